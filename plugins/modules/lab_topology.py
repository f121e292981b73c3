#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: lab_topology
short_description: Build an inventory's nodes as network namespaces on this machine (the podnet lab)
version_added: 0.1.0
description:
  - Builds a small network out of network namespaces so that podnet can be tried on one machine,
    with the P(podnet.fabric.netns#connection) connection reaching each node namespace.
  - Every node in O(nodes) becomes a namespace whose interface O(nodes[].iface) is a veth with the
    node's address. Nodes are grouped by the subnet of their address; each subnet gets a I(switch)
    namespace (O(switch_prefix)C(-10.57.4.0-24)) holding a bridge C(br0), and the peer of every node
    interface is a port of that bridge, named C(p-) and the host number of the node's address
    (C(p-20) for C(10.57.4.20/24)).
  - The node and router ends get a MAC made of C(02:4c) and the bytes of their address
    (C(02:4c:0a:39:04:14) for C(10.57.4.20)), so an interface made again after someone deleted it
    keeps its MAC, as a real NIC would, and the neighbour caches of its peers stay right.
  - One I(router) namespace (O(router)) has a leg into every switch, named C(sw-) and the subnet's
    network address in hex (C(sw-0a390400) for C(10.57.4.0/24)), at the last usable address of the
    subnet unless O(router_addresses) says otherwise, and forwards between them.
  - Every node gets C(default via ROUTER-ADDRESS dev IFACE proto static). Nodes in one subnet reach
    each other through their switch; nodes in different subnets only through the router, so
    podnet's host-gw mode fails between subnets as it does on a real network, and ipip or vxlan
    work.
  - IPv6 is disabled in every lab namespace (podnet is IPv4-only); C(net.ipv4.ip_forward) is set in
    the router and left as it is in the nodes (podnet's node role manages it).
  - The module changes nothing in the network namespace it runs in; every command targets a lab
    namespace (C(ip -n NAME)). Bridges are never created in the root namespace, so the root
    namespace's firewall does not filter the lab.
  - The lab owns its namespaces. Links of the lab that differ from the plan are fixed or made again;
    switch ports (C(p-N)) and router legs (C(sw-XXXXXXXX)) that the lab no longer needs are removed,
    and so are switch namespaces of O(switch_prefix) for subnets no node is in. Other links in the
    node namespaces (for example the pods' veths) are never touched.
  - With O(state=absent), every namespace the lab would create, the switches of O(switch_prefix) and
    the namespaces in O(pods) are removed.
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  nodes:
    description:
      - The nodes, usually one per host of the inventory group C(nodes).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The node's network namespace (the host's C(ansible_host) in the lab inventory).
        type: str
        required: true
      iface:
        description: The node's underlay interface in its namespace.
        type: str
        default: eth0
      address:
        description:
          - The node's underlay address with prefix length (C(node_ip/prefixlen), e.g. C(10.57.4.20/24)).
            Nodes whose addresses share a subnet share a switch.
          - The prefix length must be at most 30, and the address must not be the router's.
        type: str
        required: true
  pods:
    description:
      - Pod namespaces to remove with O(state=absent), for example those that podnet's
        P(podnet.fabric.pod_netns#module) made in the lab. Ignored with O(state=present).
    type: list
    elements: str
    default: []
  switch_prefix:
    description: Switch namespaces are named this prefix, C(-), the subnet's network address, C(-) and its prefix length.
    type: str
    default: podnet-sw
  router:
    description: The router's namespace.
    type: str
    default: podnet-rt
  router_addresses:
    description:
      - The router's address in a subnet, keyed by the subnet in CIDR notation. Subnets not listed get
        their last usable address (C(10.57.4.254) in C(10.57.4.0/24)).
    type: dict
    default: {}
  netns:
    description:
      - Not supported; the lab's namespaces are named by O(nodes), O(switch_prefix) and O(router).
        Setting it is refused.
    type: str
notes:
  - Needs root. C(ip netns add) and C(ip netns del) run in PID 1's mount namespace (with C(nsenter))
    when the module runs in another one (as under C(ip netns exec)), so that the namespaces outlive
    the module. When PID 1's mount namespace cannot be read, the outermost readable one of the
    module's ancestors is used.
requirements:
  - C(nsenter) (util-linux) when the module runs in a mount namespace other than PID 1's.
"""

EXAMPLES = r"""
- name: Build the lab for the inventory group nodes
  podnet.fabric.lab_topology:
    nodes:
      - {name: host1, address: 10.57.4.20/24}
      - {name: host2, address: 10.57.4.21/24}
      - {name: host3, iface: eth0, address: 10.57.5.20/24}

- name: Put the router at .1 in one subnet
  podnet.fabric.lab_topology:
    nodes:
      - {name: host1, address: 10.57.4.20/24}
    router_addresses:
      10.57.4.0/24: 10.57.4.1

- name: Remove the lab and the pods that were made in it
  podnet.fabric.lab_topology:
    state: absent
    nodes:
      - {name: host1, address: 10.57.4.20/24}
      - {name: host2, address: 10.57.4.21/24}
    pods: [pod-a, pod-b]
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/ip", "netns", "add", "podnet-rt"],
           ["/usr/sbin/ip", "-n", "podnet-sw-10.57.4.0-24", "link", "add", "p-20", "type", "veth",
            "peer", "name", "eth0", "address", "02:4c:0a:39:04:14", "netns", "host1"]]
lab:
  description: The lab as planned (also with O(state=absent)).
  returned: always
  type: dict
  contains:
    router:
      description: The router's namespace and its legs.
      type: dict
      sample: {"name": "podnet-rt", "legs": [{"ifname": "sw-0a390400", "address": "10.57.4.254/24",
               "switch": "podnet-sw-10.57.4.0-24", "port": "p-254", "subnet": "10.57.4.0/24"}]}
    switches:
      description: One switch per subnet, with its bridge ports.
      type: list
      elements: dict
      sample: [{"name": "podnet-sw-10.57.4.0-24", "subnet": "10.57.4.0/24", "gateway": "10.57.4.254",
                "ports": ["p-20", "p-21", "p-254"]}]
    nodes:
      description: The nodes, each with its switch, port and default gateway.
      type: list
      elements: dict
      sample: [{"name": "host1", "iface": "eth0", "address": "10.57.4.20/24", "ip": "10.57.4.20",
                "subnet": "10.57.4.0/24", "gateway": "10.57.4.254", "switch": "podnet-sw-10.57.4.0-24",
                "port": "p-20"}]
    pods:
      description: The pod namespaces named in O(pods).
      type: list
      elements: str
      sample: ["pod-a", "pod-b"]
"""

import os

from ansible_collections.podnet.fabric.plugins.module_utils import lab, skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.netns import NETNS_DIR
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def listed():
    """``(existing, broken)``: the names under /run/netns, and those with no namespace mounted."""
    try:
        names = sorted(os.listdir(NETNS_DIR))
        own_dev = os.stat(NETNS_DIR).st_dev
    except OSError:
        return [], []
    broken = []
    for name in names:
        try:
            if os.stat(os.path.join(NETNS_DIR, name)).st_dev == own_dev:
                broken.append(name)
        except OSError:
            broken.append(name)
    return names, broken


def read(runner, model, existing, broken):
    """The module's reads of every lab namespace that exists, for ``lab.parse``."""
    reads = {}
    role_of = dict(lab.roles(model))
    for name in lab.to_read(model, existing):
        if name in broken:
            continue
        reads[name] = dict(
            links=runner.read_json("ip", ["-details", "addr", "show"], netns=name),
            nsids=runner.read_json("ip", ["netns", "list-id"], netns=name),
            routes=runner.read_json("ip", ["route", "show", "table", "main"], netns=name)
            if role_of.get(name) == "node" else [],
            sysctl=runner.read("sysctl", ["-n"] + list(lab.SYSCTL_KEYS), netns=name),
        )
    return reads


def converge(module):
    params = module.params
    if params["netns"] is not None:
        raise PodnetError("netns: not supported by lab_topology; the lab's namespaces are named "
                          "by nodes, switch_prefix and router")
    model = lab.wanted(params["nodes"], params["switch_prefix"], params["router"], params["pods"],
                       params["router_addresses"], params["state"])
    runner = Runner(module)
    existing, broken = listed()
    plan = lab.plan(model, lab.parse(read(runner, model, existing, broken)), existing, params["state"], broken)
    for tool, netns, args in plan.commands:
        if netns is None:
            runner.run_ip_netns(args)
        else:
            runner.run(tool, args, netns=netns)
    summary = dict(router=model["router"], switches=model["switches"], nodes=model["nodes"],
                   pods=model["pods"])
    return skeleton.result(runner, bool(plan.commands), plan.before, plan.after, lab=summary)


def main():
    skeleton.main(converge, dict(
        skeleton.COMMON_ARGS,
        nodes=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            iface=dict(type="str", default=lab.DEFAULT_IFACE),
            address=dict(type="str", required=True),
        )),
        pods=dict(type="list", elements="str", default=[]),
        switch_prefix=dict(type="str", default=lab.SWITCH_PREFIX),
        router=dict(type="str", default=lab.ROUTER),
        router_addresses=dict(type="dict", default={}),
    ))


if __name__ == "__main__":
    main()
