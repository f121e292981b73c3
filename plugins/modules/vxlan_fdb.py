#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vxlan_fdb
short_description: Manage permanent FDB and neighbour entries on a vxlan device, as flannel writes them
version_added: 0.1.0
description:
  - Makes permanent forwarding-database entries (C(bridge fdb ... dev DEVICE dst IP self permanent))
    and permanent neighbour entries (C(ip neigh replace IP lladdr MAC dev DEVICE nud permanent))
    exist on one vxlan device, so that a vxlan device with learning off knows which node
    (VTEP) to send each inner MAC to, and which MAC each remote gateway has.
  - A unicast MAC maps to exactly one destination; a different destination replaces it
    (C(bridge fdb replace)). The all-zero MAC C(00:00:00:00:00:00) is the flood list and may be
    listed once per destination (C(bridge fdb append)).
  - Neighbours are written first, then FDB entries, so that a route added afterwards (see
    M(podnet.fabric.node_route)) never makes the kernel ARP for its gateway. Removals run the
    other way round, FDB entries first.
  - The device is read once with C(ip -details -json link show), its FDB once with
    C(bridge -json fdb show dev DEVICE) and its IPv4 neighbours once with
    C(ip -4 -json neigh show dev DEVICE).
  - podnet owns, and with O(purge=true) removes, only the entries it could have written itself,
    that is permanent C(self) entries with a unicast or all-zero MAC and a unicast IPv4 destination and
    no port, VNI, via interface, nexthop or C(extern_learn), and permanent IPv4 neighbours with a
    unicast MAC and no C(extern_learn), C(router) or C(proxy) flag.
  - podnet never removes learned (dynamic) entries, and never changes or removes static
    entries, entries of any other device, the bridge's own entries when the device is a
    bridge port, the all-zero entry the kernel adds for the device's own C(remote) or
    C(group), or IPv6 neighbours.
  - A learned entry for a listed MAC or address is the kernel's cache; the permanent entry
    replaces it. Listing a MAC or address held by an entry podnet does not own (static,
    C(extern_learn), custom port or VNI, the device's default destination) fails and shows
    that entry.
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  device:
    description:
      - The vxlan device, which must exist and be of kind C(vxlan); a missing device or one of
        another kind fails.
      - In check mode a missing device is not an error (a play may create it in an earlier
        task); every listed entry is reported as to be added, with a warning.
      - With O(state=absent) a missing device means there is nothing to remove.
    type: str
    required: true
  entries:
    description:
      - Permanent FDB entries on O(device). Listing the same entry twice, or one unicast MAC
        with two destinations, is refused.
      - With O(state=absent), an entry with a unicast MAC is matched by O(entries[].mac) alone,
        a flood-list entry by O(entries[].mac) and O(entries[].dst).
    type: list
    elements: dict
    default: []
    suboptions:
      mac:
        description:
          - Inner destination MAC (usually the remote VTEP's device MAC), or
            V(00:00:00:00:00:00) for the flood list. Multicast and broadcast MACs are refused.
        type: str
        required: true
      dst:
        description: Unicast IPv4 address of the remote VTEP (the remote node's underlay address).
        type: str
        required: true
  entries_json:
    description:
      - O(entries) as JSON text, validated on the node exactly as O(entries) is. Mutually exclusive with O(entries).
      - podnet's roles pass per-peer lists this way, which costs the controller nothing per entry.
    type: str
  neighbors:
    description:
      - Permanent neighbour (ARP) entries on O(device), as flannel writes them, mapping the remote
        pod subnet's gateway address to the remote VTEP MAC.
      - Listing an address twice is refused. With O(state=absent) an entry is matched by
        O(neighbors[].ip) alone.
    type: list
    elements: dict
    default: []
    suboptions:
      ip:
        description: Unicast IPv4 address of the neighbour.
        type: str
        required: true
      mac:
        description: Its MAC address (not the all-zero, a multicast or the broadcast MAC).
        type: str
        required: true
  neighbors_json:
    description:
      - O(neighbors) as JSON text, validated on the node exactly as O(neighbors) is. Mutually exclusive with O(neighbors).
      - podnet's roles pass per-peer lists this way, which costs the controller nothing per entry.
    type: str
  purge:
    description:
      - With O(state=present), remove the permanent FDB and neighbour entries podnet owns on
        O(device) that are not listed.
      - With O(state=absent), remove every permanent FDB and neighbour entry podnet owns on
        O(device).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Flannel-style wiring of host2 on host1 (neighbour, FDB, flood list)
  podnet.fabric.vxlan_fdb:
    device: vxlan0
    neighbors:
      - {ip: 192.168.11.0, mac: "0e:50:0a:39:04:15"}
    entries:
      - {mac: "0e:50:0a:39:04:15", dst: 10.57.4.21}
      - {mac: "00:00:00:00:00:00", dst: 10.57.4.21}

- name: Make the list exact, removing entries of nodes that left
  podnet.fabric.vxlan_fdb:
    device: vxlan0
    neighbors: "{{ podnet_vxlan_neighbors }}"
    entries: "{{ podnet_vxlan_entries }}"
    purge: true

- name: Remove every permanent FDB and neighbour entry from the device
  podnet.fabric.vxlan_fdb:
    device: vxlan0
    state: absent
    purge: true
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/ip", "neigh", "replace", "192.168.11.0", "lladdr", "0e:50:0a:39:04:15", "dev", "vxlan0",
            "nud", "permanent"],
           ["/usr/sbin/bridge", "fdb", "replace", "0e:50:0a:39:04:15", "dev", "vxlan0", "dst", "10.57.4.21",
            "self", "permanent"]]
entries:
  description: The permanent FDB entries podnet owns on the device after the run (as planned in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{"mac": "00:00:00:00:00:00", "dst": "10.57.4.21"}, {"mac": "0e:50:0a:39:04:15", "dst": "10.57.4.21"}]
neighbors:
  description: The permanent IPv4 neighbour entries podnet owns on the device after the run (as planned in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{"ip": "192.168.11.0", "mac": "0e:50:0a:39:04:15"}]
"""

from ansible_collections.podnet.fabric.plugins.module_utils import fdb, skeleton, validate
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def read(module, runner, device):
    """``(fdb_json, neigh_json, default destinations)`` of the vxlan device, ``[]`` when it is not there."""
    link = [item for item in runner.links() if item.get("ifname") == device]
    if link:
        kind = (link[0].get("linkinfo") or {}).get("info_kind")
        if kind != "vxlan":
            raise PodnetError("device: %r is %s, not a vxlan device"
                              % (device, "a %s device" % kind if kind else "a device without a link kind"))
        return (runner.read_json("bridge", ["fdb", "show", "dev", device]),
                runner.read_json("ip", ["-4", "neigh", "show", "dev", device]),
                fdb.default_destinations(link[0]))
    if module.params["state"] == "absent":
        return [], [], ()
    if module.check_mode:
        module.warn("device: vxlan device %r does not exist (yet); every listed entry is reported "
                    "as to be added" % device)
        return [], [], ()
    raise PodnetError("device: vxlan device %r does not exist" % device)


def converge(module):
    params = module.params
    device = validate.ifname(params["device"], "device")
    entries = fdb.wanted_entries(params["entries"])
    neighbors = fdb.wanted_neighbors(params["neighbors"])
    runner = Runner(module, params["netns"])
    have_fdb, have_neigh, defaults = read(module, runner, device)
    plan = fdb.plan(entries, neighbors, have_fdb, have_neigh, device, params["state"], params["purge"], defaults)
    for tool, args in plan.commands:
        runner.run(tool, args)
    return skeleton.result(runner, bool(plan.commands), plan.before, plan.after,
                           entries=plan.after["entries"], neighbors=plan.after["neighbors"])


def main():
    skeleton.main(converge, dict(
        skeleton.COMMON_ARGS,
        device=dict(type="str", required=True),
        entries=dict(type="list", elements="dict", default=[], options=dict(
            mac=dict(type="str", required=True),
            dst=dict(type="str", required=True),
        )),
        neighbors=dict(type="list", elements="dict", default=[], options=dict(
            ip=dict(type="str", required=True),
            mac=dict(type="str", required=True),
        )),
        purge=dict(type="bool", default=False),
    ), json_options=("entries", "neighbors"))


if __name__ == "__main__":
    main()
