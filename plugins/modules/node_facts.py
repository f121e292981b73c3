#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_facts
short_description: Read what podnet needs to know about a node's underlay
version_added: 0.1.0
description:
  - Finds the interface that holds O(node_ip), its prefix length and MTU, whether the node has a
    route to the pod gateway through another interface (proxy ARP answers only then), whether
    IPv4 forwarding is on, the rp_filter setting of C(all), C(default) and every interface (the
    planner warns where it can drop pod traffic), and the ipip and vxlan devices that exist (so a
    run removes a previous mode's device only when there is one), and which of O(files) exist
    (the validate role asks about podnet's BIRD config, so only a node that has one stops it), and
    the node's record of what podnet made (O(record); the node's plan removes what it lists and the
    inventory no longer wants).
  - Read-only, in three reads (C(ip -details -json addr show), C(ip route get), one C(sysctl)).
    Returns the fact C(podnet_underlay).
author:
  - podnet developers (@podnet)
options:
  node_ip:
    description: The node's underlay address.
    type: str
    required: true
  pod_gateway:
    description: The pods' gateway address (answered by proxy ARP).
    type: str
    default: 169.254.10.24
  netns:
    description: Read inside this network namespace instead of the current one.
    type: str
  files:
    description:
      - Paths to check; those that exist are returned in C(files) of the fact (the file system is
        the node's, also with O(netns)).
    type: list
    elements: path
    default: []
  record:
    description:
      - The node's record of what podnet made (JSON, written by M(podnet.fabric.node_record)); its
        content is returned in C(record) of the fact, C(null) when the file does not exist. A file
        that is not JSON fails the module.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    support: N/A
    platforms: posix
"""

EXAMPLES = r"""
- name: Read the underlay
  podnet.fabric.node_facts:
    node_ip: 10.57.4.20
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    podnet_underlay:
      description: The underlay as podnet sees it.
      type: dict
      returned: always
      sample: {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": true, "ip_forward": 1,
               "rp_filter": {"all": 0, "default": 0, "eth0": 0, "lo": 0, "flannel.1": 0},
               "tunnels": {"flannel.1": "vxlan"}, "tunnel_mtu": {"flannel.1": 1450},
               "files": ["/var/lib/podnet/host1-bird.conf"],
               "record": {"version": 1, "node": "host1", "devices": [{"name": "vxlan0", "kind": "vxlan"}],
                          "chains": ["PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT"],
                          "pods": [{"name": "pod-a", "host_ifname": "veth-pod-a"}],
                          "sysctls": {"file": "/var/lib/podnet/host1-sysctl.json", "keys": ["net.ipv4.ip_forward"]}}}
"""

import json
import os

from ansible_collections.podnet.fabric.plugins.module_utils import skeleton, validate
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

# Devices of these kinds are reported in ``tunnels`` (podnet's modes make them).
TUNNEL_KINDS = ("ipip", "vxlan")


def read_record(path):
    """The record's content (JSON), or None without a path or a file."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except ValueError as exc:
        raise PodnetError("record: %s is not JSON (%s); fix or remove it (podnet then forgets what it made)"
                          % (path, exc))


def converge(module):
    node_ip = validate.ipv4(module.params["node_ip"], "node_ip")
    gateway = validate.ipv4(module.params["pod_gateway"], "pod_gateway")
    runner = Runner(module, module.params["netns"])

    fact = dict(iface=None, prefixlen=None, mtu=None, gateway_route=False, rp_filter={}, ip_forward=None,
                tunnels={}, tunnel_mtu={}, files=[path for path in module.params["files"] if os.path.lexists(path)],
                record=read_record(module.params["record"]))
    names = []
    for link in runner.read_json("ip", ["-details", "addr", "show"]):
        names.append(link["ifname"])
        kind = link.get("linkinfo", {}).get("info_kind")
        if kind in TUNNEL_KINDS:
            fact["tunnels"][link["ifname"]] = kind
            fact["tunnel_mtu"][link["ifname"]] = link.get("mtu")
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and addr.get("local") == node_ip:
                fact.update(iface=link["ifname"], prefixlen=addr["prefixlen"], mtu=link["mtu"])
    routes = runner.read_json("ip", ["route", "get", gateway], missing_ok=True)
    # `ip route get` fails with "Network is unreachable" when nothing covers the gateway.
    fact["gateway_route"] = bool(routes) and routes[0].get("type", "unicast") == "unicast"
    # Slash-separated keys keep a dot in an interface name (eth0.100) literal; -e skips an
    # interface that went away since the read above. sysctl prints such a dot as "/".
    keys = ["net/ipv4/ip_forward"] + ["net/ipv4/conf/%s/rp_filter" % name for name in ["all", "default"] + names]
    for row in runner.read("sysctl", ["-e"] + keys).splitlines():
        key, sep, value = row.partition(" = ")
        if not sep or not value.strip().isdigit():
            continue
        if key == "net.ipv4.ip_forward":
            fact["ip_forward"] = int(value)
        elif key.startswith("net.ipv4.conf.") and key.endswith(".rp_filter"):
            fact["rp_filter"][key[len("net.ipv4.conf."):-len(".rp_filter")].replace("/", ".")] = int(value)
    return dict(changed=False, ansible_facts=dict(podnet_underlay=fact))


def main():
    skeleton.main(converge, dict(node_ip=dict(type="str", required=True),
                                 pod_gateway=dict(type="str", default="169.254.10.24"),
                                 files=dict(type="list", elements="path", default=[]),
                                 record=dict(type="path"),
                                 netns=dict(type="str")))


if __name__ == "__main__":
    main()
