# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options every podnet module shares.
    DOCUMENTATION = r"""
options:
  state:
    description:
      - V(present) makes the object exist as described; V(absent) removes it.
      - Only objects podnet owns are ever removed.
    type: str
    choices: [present, absent]
    default: present
  netns:
    description:
      - Operate inside this network namespace (like C(ip -n NETNS)) instead of the
        namespace the module runs in.
      - The namespace must exist under C(/run/netns).
    type: str
requirements:
  - iproute2 (C(ip), and C(bridge) for FDB entries) with JSON output.
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: Nothing changes; the result's C(commands) lists what would run.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when in diff mode.
    support: full
    details: Before and after are returned as data.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Commands run as argument lists, never through a shell.
"""
