#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: replay
short_description: Keep a node's pod network across reboots (the boot replay script and its systemd unit)
version_added: 0.1.0
description:
  - Writes O(script) (the node's commands, rendered by the C(podnet.fabric.node_script) filter from the
    node's plan) to O(path), mode 0755. It builds the node's pods, tunnel, neighbour and FDB entries,
    routes, chains and sysctls from scratch with plain iproute2, iptables-restore and sysctl, and is
    safe to run again on a node that holds them already.
  - On a host run by systemd (O(service=systemd), or V(auto) in the host's own network namespace)
    it also writes and enables the unit O(unit) (checked with C(systemd-analyze verify) first), a
    oneshot that runs the script at boot after C(network-online.target) and the underlay device
    O(iface). The unit is C(BindsTo) and C(WantedBy) the device unit
    C(sys-subsystem-net-devices-IFACE.device), so when the interface goes away and comes back
    (a driver reload, a hot-plugged NIC) the replay runs again. It is enabled, not started (the
    converge that wrote it has just built the same state).
  - Elsewhere (O(service=none), for example a lab node, a network namespace without systemd) only the
    script is written; run it by hand.
  - With O(state=absent), the unit is disabled and removed, then the script.
author:
  - podnet developers (@podnet)
options:
  path:
    description: Where the script goes (podnet_state_dir/NODE-replay.sh in site.yml).
    type: path
    required: true
  moved_from:
    description:
      - Earlier paths of the script (NODE-replay.sh in a podnet_state_dir renamed since, as the node's
        record says), removed when they exist.
    type: list
    elements: path
    default: []
  script:
    description: The script's text. Required with O(state=present).
    type: str
  iface:
    description: The node's underlay interface the unit waits for and binds to. Required when the unit is written.
    type: str
  service:
    description:
      - How the script runs at boot. V(auto) is V(systemd) when C(/run/systemd/system) exists and the module
        runs in PID 1's network namespace, else V(none).
    type: str
    choices: [auto, none, systemd]
    default: auto
  unit:
    description: The systemd unit (O(service=systemd)).
    type: str
    default: podnet-replay.service
  unit_dir:
    description: Where the unit file goes (O(service=systemd)).
    type: path
    default: /etc/systemd/system
  state:
    description: V(present) writes the script (and the unit); V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - systemd (C(systemctl), C(systemd-analyze)) for O(service=systemd).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Nothing changes; the result's C(commands) lists what would run.
  diff_mode:
    support: full
    details: The script, the unit and whether it is enabled, before and after.
  platform:
    support: N/A
    platforms: posix
notes:
  - Commands run as argument lists, never through a shell.
"""

EXAMPLES = r"""
- name: Keep the node's pod network across reboots
  podnet.fabric.replay:
    path: "{{ podnet_plan.replay_file }}"
    script: "{{ validate_cluster | podnet.fabric.node_script(inventory_hostname, podnet_underlay) }}"
    iface: "{{ podnet_plan.iface }}"

- name: Forget it (teardown)
  podnet.fabric.replay:
    path: /var/lib/podnet/host1-replay.sh
    state: absent
"""

RETURN = r"""
commands:
  description: The commands that ran (or would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/systemctl", "daemon-reload"], ["/usr/bin/systemctl", "enable", "podnet-replay.service"]]
service:
  description: How the script runs at boot (none or systemd).
  returned: always
  type: str
  sample: systemd
unit_file:
  description: The unit's path (null unless O(service) is systemd).
  returned: always
  type: str
  sample: /etc/systemd/system/podnet-replay.service
"""

from ansible_collections.podnet.fabric.plugins.module_utils import boot, skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner


def converge(module):
    p = module.params
    present = p["state"] == "present"
    kind = boot.check(p, present)
    runner = Runner(module)
    changed, before, after, extra = boot.converge(runner, p, present, kind, module.check_mode)
    return skeleton.result(runner, changed, before, after, **extra)


def main():
    skeleton.main(converge, dict(boot.OPTIONS,
                                 state=dict(type="str", default="present", choices=["present", "absent"])))


if __name__ == "__main__":
    main()
