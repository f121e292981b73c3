#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: state_files
short_description: Move a node's podnet files out of a renamed state directory
version_added: 0.1.0
description:
  - After a rename of C(podnet_state_dir), moves the node's files that podnet keeps there and that
    no other module moves itself - the note of the kernel modules an ipip device loaded
    (C(NODE-kmod.json), M(podnet.fabric.ip_tunnel)'s O(podnet.fabric.ip_tunnel#module:kernel_module_file))
    and the CNI plugin's record of the directories it made (C(NODE-cni.json),
    M(podnet.fabric.cni_plugin)'s O(podnet.fabric.cni_plugin#module:record)) - from the earlier
    directories O(moved_from) (the node's record says which) into O(path), so teardown still finds them.
  - A file already in O(path) was written by a run under the new name and stays; the earlier copy is
    removed. Only the O(files) named are touched; the earlier directory itself stays.
  - The saved sysctls and the boot replay script move with their own modules
    (M(podnet.fabric.node_sysctl), M(podnet.fabric.replay)); podnet's BIRD of the earlier directory is
    stopped (M(podnet.fabric.bird)), as its socket cannot move.
author:
  - podnet developers (@podnet)
options:
  path:
    description: The state directory now (C(podnet_state_dir)). Made if a file has to move into it.
    type: path
    required: true
  moved_from:
    description: Earlier state directories of this node.
    type: list
    elements: path
    default: []
  files:
    description: The file names (no directory) to move, for example C(host1-kmod.json).
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The files found in the earlier directories, before and after.
  platform:
    support: N/A
    platforms: posix
"""

EXAMPLES = r"""
- name: Move podnet's files out of a renamed state directory
  podnet.fabric.state_files:
    path: /var/lib/podnet
    moved_from: [/srv/podnet]
    files: [host1-kmod.json, host1-cni.json]
"""

RETURN = r"""
moved:
  description: The files moved, as C([from, to]) (a C(to) of null - removed, O(path) had one already).
  returned: always
  type: list
  elements: list
  sample: [["/srv/podnet/host1-kmod.json", "/var/lib/podnet/host1-kmod.json"]]
commands:
  description: Always empty (the module moves files, it runs no command).
  returned: always
  type: list
  elements: list
  sample: []
"""

import os
import shutil

from ansible_collections.podnet.fabric.plugins.module_utils import skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def converge(module):
    p = module.params
    target = p["path"].rstrip("/") or "/"
    for name in p["files"]:
        if not name or "/" in name or name in (".", ".."):
            raise PodnetError("files: %r is not a file name (no directory)" % name)
    moved = []
    for old in p["moved_from"]:
        old = old.rstrip("/") or "/"
        if old == target:
            continue
        for name in p["files"]:
            src, dst = os.path.join(old, name), os.path.join(target, name)
            if not os.path.lexists(src):
                continue
            keep = not os.path.lexists(dst) and dst not in [m[1] for m in moved]
            moved.append([src, dst if keep else None])
            if module.check_mode:
                continue
            if keep:
                os.makedirs(target, 0o755, exist_ok=True)
                # shutil.move: a rename, or a copy and delete across file systems.
                shutil.move(src, dst)
            else:
                os.unlink(src)
    before = sorted(m[0] for m in moved)
    return skeleton.result(Runner(module), bool(moved), dict(files=before), dict(files=[]), moved=moved)


def main():
    skeleton.main(converge, dict(path=dict(type="path", required=True),
                                 moved_from=dict(type="list", elements="path", default=[]),
                                 files=dict(type="list", elements="str", required=True)))


if __name__ == "__main__":
    main()
