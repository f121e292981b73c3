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
  - With O(replay), the same call first writes the node's boot replay, as M(podnet.fabric.replay)
    does (the same code, with its options). So site.yml's last step keeps the node's pod network
    across reboots, records what podnet made, and gives this run's lock back in one module call.
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
  replay:
    description:
      - Before the record, write the node's boot replay script (and on a host run by systemd its unit),
        as M(podnet.fabric.replay) with O(podnet.fabric.replay#module:state=present) does. Only with
        O(state=present); teardown removes the replay with M(podnet.fabric.replay) first of all.
      - Its options are checked with the record's, before anything is written.
    type: dict
    suboptions:
      path:
        description: Where the script goes (podnet_state_dir/NODE-replay.sh in site.yml).
        type: path
        required: true
      moved_from:
        description: Earlier paths of the script (a renamed podnet_state_dir), removed when they exist.
        type: list
        elements: path
        default: []
      script:
        description: The script's text (the C(podnet.fabric.node_script) filter's). Required.
        type: str
      iface:
        description: The underlay interface the unit waits for and binds to. Required when the unit is written.
        type: str
      service:
        description: How the script runs at boot, as M(podnet.fabric.replay)'s O(podnet.fabric.replay#module:service).
        type: str
        choices: [auto, none, systemd]
        default: auto
      unit:
        description: The systemd unit.
        type: str
        default: podnet-replay.service
      unit_dir:
        description: Where the unit file goes.
        type: path
        default: /etc/systemd/system
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
    details: The record before and after (with O(replay), also the script, the unit and whether it is enabled).
  platform:
    support: N/A
    platforms: posix
"""

EXAMPLES = r"""
- name: Record what podnet made on this node
  podnet.fabric.node_record:
    path: "{{ podnet_plan.record_file }}"
    record: "{{ podnet_plan.record }}"

- name: Write the boot replay, record it, and give this run's lock back (site.yml's last step)
  podnet.fabric.node_record:
    path: "{{ podnet_plan.record_file }}"
    record: "{{ podnet_plan.record }}"
    replay:
      path: "{{ podnet_plan.replay_file }}"
      script: "{{ validate_cluster | podnet.fabric.node_script(inventory_hostname, podnet_underlay) }}"
      iface: "{{ podnet_plan.iface }}"
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
replay:
  description: With O(replay), what the replay step did.
  returned: with O(replay)
  type: dict
  contains:
    changed:
      description: The script or the unit was written, or an earlier script removed.
      type: bool
    service:
      description: How the script runs at boot (none or systemd).
      type: str
    unit_file:
      description: The unit's path (null unless the service is systemd).
      type: str
  sample: {"changed": false, "service": "none", "unit_file": null}
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
  description: The commands that ran (or would run), as argument lists; only the replay's systemd unit runs any.
  returned: always
  type: list
  elements: list
  sample: []
"""

import json
import os

from ansible_collections.podnet.fabric.plugins.module_utils import boot, files, lock, lock_file, record, skeleton
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
    replay = params["replay"]
    if replay is not None and not present:
        raise PodnetError("replay: only with state=present (teardown removes the replay with podnet.fabric.replay)")
    kind = boot.check(replay, True, "replay.") if replay is not None else None
    runner = Runner(module)
    extra = {}
    have = read(path)
    before, after = dict(record=have), dict(record=want)
    replayed = False
    if replay is not None:
        # The replay first: a run that stops in it leaves the record of the run before.
        replayed, before["replay"], after["replay"], more = boot.converge(runner, replay, True, kind, module.check_mode)
        extra["replay"] = dict(more, changed=replayed)
    changed = have != want
    if changed and not module.check_mode:
        if present:
            write(path, want)
        else:
            os.unlink(path)
    changed = changed or replayed
    if params["lock"]:
        # The record first: a run that stops here keeps its lock, and the always block gives it back.
        released, _held, other = lock_file.give_back(params["lock"]["path"], params["lock"]["holder"],
                                                     check_mode=module.check_mode)
        extra["lock_released"] = released
        if other:
            module.warn("podnet: %s is held by another run (%s): left alone"
                        % (params["lock"]["path"], lock.describe(other)))
            extra["lock_holder"] = other
    return skeleton.result(runner, changed, before, after, record=want, **extra)


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
        replay=dict(type="dict", options=boot.OPTIONS),
        lock=dict(type="dict", options=dict(path=dict(type="path", required=True), holder=dict(type="dict")))))


if __name__ == "__main__":
    main()
