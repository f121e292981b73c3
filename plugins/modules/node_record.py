#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_record
short_description: Keep the record of what podnet made on a node
version_added: 0.1.0
description:
  - Writes the node's record (JSON) - the tunnel devices podnet made and their kinds, its iptables
    chains, its pods and their host veths, where the values before podnet of the sysctls it set are
    saved. site.yml writes it at the end of a run; the next run reads it (M(podnet.fabric.node_facts),
    O(podnet.fabric.node_facts#module:record)) and removes what it lists and the inventory no longer
    wants - pods dropped from the inventory, devices and chains under names since renamed, sysctls
    saved in a previous state directory. teardown.yml removes it last.
  - The file is replaced atomically (a temporary file in the same directory, then a rename), and only
    when its content changes.
author:
  - podnet developers (@podnet)
options:
  path:
    description: The record file, C(<podnet_record_dir>/<node>-record.json). Its directory is made if needed.
    type: path
    required: true
  record:
    description:
      - The record (the node plan's C(record)). Required with O(state=present).
    type: dict
    suboptions:
      version:
        description: The record format, C(1).
        type: int
        required: true
      node:
        description: The node's inventory hostname.
        type: str
        required: true
      devices:
        description: The tunnel devices podnet made.
        type: list
        elements: dict
        required: true
      chains:
        description: podnet's iptables chains (filter table).
        type: list
        elements: str
        required: true
      pods:
        description: The pods podnet made, C({name, host_ifname}).
        type: list
        elements: dict
        required: true
      sysctls:
        description: C({file, keys}) - where M(podnet.fabric.node_sysctl) saved the values before podnet.
        type: dict
        required: true
  state:
    description: V(present) writes the record; V(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
  lock:
    description:
      - After the record, give this run's lock (M(podnet.fabric.node_lock)) back, as a run's last step -
        site.yml and teardown.yml do, so the record is written and the lock given back in one call.
      - Removed only when this run holds it; a lock of another run is left alone, with a warning.
        Not removed in check mode.
      - The action plugin fills in the run's identity, as M(podnet.fabric.node_lock)'s does.
    type: dict
    suboptions:
      path:
        description: The lock file, C(<podnet_state_dir>/<node>.lock).
        type: path
        required: true
      holder:
        description: This run (filled in by the action plugin).
        type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The record before and after.
  platform:
    support: N/A
    platforms: posix
"""

EXAMPLES = r"""
- name: Record what podnet made on this node
  podnet.fabric.node_record:
    path: "{{ podnet_plan.record_file }}"
    record: "{{ podnet_plan.record }}"

- name: Record it and give this run's lock back (site.yml's last step)
  podnet.fabric.node_record:
    path: "{{ podnet_plan.record_file }}"
    record: "{{ podnet_plan.record }}"
    lock:
      path: /var/lib/podnet/host1.lock

- name: Forget it (teardown)
  podnet.fabric.node_record:
    path: /var/lib/podnet/host1-record.json
    state: absent
"""

RETURN = r"""
record:
  description: The record after the run (null after O(state=absent)).
  returned: always
  type: dict
  sample: {"version": 1, "node": "host1", "devices": [{"name": "vxlan0", "kind": "vxlan"}],
           "chains": ["PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT"],
           "pods": [{"name": "pod-a", "host_ifname": "veth-pod-a"}],
           "sysctls": {"file": "/var/lib/podnet/host1-sysctl.json", "keys": ["net.ipv4.ip_forward"]}}
lock_released:
  description: The lock of O(lock) was this run's and is removed (or would be, in check mode).
  returned: with O(lock)
  type: bool
  sample: true
lock_holder:
  description: The other run's lock, left alone, when another run holds it.
  returned: with O(lock), when another run holds the lock
  type: dict
commands:
  description: Always empty (the module writes one file, it runs no command).
  returned: always
  type: list
  elements: list
  sample: []
"""

import json
import os

from ansible_collections.podnet.fabric.plugins.module_utils import files, lock, lock_file, record, skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def read(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except ValueError:
        return "(not JSON)"


def write(path, data):
    """Replace ``path`` with ``data`` as JSON, atomically."""
    files.write_atomic(path, json.dumps(data, sort_keys=True, indent=1) + "\n")


def converge(module):
    params = module.params
    path = params["path"]
    present = params["state"] == "present"
    if present and params["record"] is None:
        raise PodnetError("record: required with state=present")
    want = record.check(params["record"], "record", read=False) if present else None
    have = read(path)
    changed = have != want
    if changed and not module.check_mode:
        if present:
            write(path, want)
        else:
            os.unlink(path)
    extra = {}
    if params["lock"]:
        # The record first: a run that stops here keeps its lock, and the always block gives it back.
        released, before, other = lock_file.give_back(params["lock"]["path"], params["lock"]["holder"],
                                                      check_mode=module.check_mode)
        extra["lock_released"] = released
        if other:
            module.warn("podnet: %s is held by another run (%s): left alone"
                        % (params["lock"]["path"], lock.describe(other)))
            extra["lock_holder"] = other
    return skeleton.result(Runner(module), changed, dict(record=have), dict(record=want), record=want, **extra)


def main():
    skeleton.main(converge, dict(
        path=dict(type="path", required=True),
        record=dict(type="dict", options=dict(
            version=dict(type="int", required=True),
            node=dict(type="str", required=True),
            devices=dict(type="list", elements="dict", required=True),
            chains=dict(type="list", elements="str", required=True),
            pods=dict(type="list", elements="dict", required=True),
            sysctls=dict(type="dict", required=True))),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        lock=dict(type="dict", options=dict(path=dict(type="path", required=True), holder=dict(type="dict")))))


if __name__ == "__main__":
    main()
