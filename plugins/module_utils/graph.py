# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure drawing for podnet.fabric.topology_graph: a cluster as a graphviz (DOT) picture.

``dot(topology)`` takes what the inventory says and what the nodes hold, and returns the DOT
source of a picture with

- one box per underlay subnet (a switch in the lab), and a router joining them when there are
  several subnets;
- one frame per node with its underlay interface and address, its tunnel device (kind, VNI or
  local address, tunnel address) and its pods with their addresses (a pod whose veth the node
  does not hold is drawn dashed);
- one arrow per route a node holds (route protocol 150, podnet's) to a peer's pod CIDR, labelled
  like ``ip route`` and coloured by how it carries the packet: host-gw, ipip or vxlan.

``topology``::

    {"title": "lab alice", "mode": "vxlan", "switch_prefix": "alice-sw" or None,
     "router": "alice-rt" or None,
     "nodes": [{"name": "host1", "netns": "alice-host1" or None, "node_ip": "10.57.4.20",
                "prefixlen": 24, "iface": "eth0", "pod_cidr": "192.168.10.0/24",
                "pods": [{"name": "alice-pod-a", "ip": "192.168.10.10", "host_ifname": "veth-pod-a"}],
                (a pod's "address", "192.168.10.10/24", stands for its "ip" too)
                "links": <ip -json -details addr show>, "routes": <ip -json route show table main>}]}

Nothing here touches the system; the same input always gives the same text.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.podnet.fabric.plugins.module_utils import lab
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

PODNET_PROTO = "150"
TUNNEL_KINDS = ("ipip", "vxlan")
# Colour per way of carrying a pod's packet: (line, fill).
COLOURS = {
    "host-gw": ("#2e7d32", "#e8f5e9"),
    "ipip": ("#e65100", "#fff3e0"),
    "vxlan": ("#1565c0", "#e3f2fd"),
}
NEUTRAL = ("#546e7a", "#eceff1")


def quote(text):
    """A DOT double-quoted string."""
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"')


def label(*lines):
    """A DOT label of several lines (each escaped, joined with DOT's newline)."""
    return '"%s"' % "\\n".join(str(line).replace("\\", "\\\\").replace('"', '\\"') for line in lines if line)


def attrs(**values):
    """``[key=value, ...]``; values already quoted stay as they are."""
    parts = []
    for key in sorted(values):
        value = values[key]
        if value is None:
            continue
        text = str(value)
        if not (text.startswith('"') and text.endswith('"') and len(text) > 1):
            text = quote(text)
        parts.append("%s=%s" % (key, text))
    return "[%s]" % ", ".join(parts)


def _subnet(node):
    return ipaddress.IPv4Interface("%s/%s" % (node["node_ip"], node.get("prefixlen") or 32)).network


def tunnel_of(links):
    """The node's ipip or vxlan device from ``ip -json -details addr show``, or None."""
    for link in links or []:
        info = link.get("linkinfo") or {}
        kind = info.get("info_kind")
        if kind not in TUNNEL_KINDS:
            continue
        data = info.get("info_data") or {}
        addresses = ["%s/%s" % (a["local"], a["prefixlen"]) for a in link.get("addr_info", [])
                     if a.get("family") == "inet"]
        return dict(name=link["ifname"], kind=kind, vni=data.get("id"), port=data.get("port"),
                    local=data.get("local"), mtu=link.get("mtu"), addresses=addresses)
    return None


def peer_routes(node, nodes, tunnel):
    """The node's podnet routes to its peers' pod CIDRs: ``[{peer, dst, via, dev, kind}]``."""
    by_cidr = dict((str(ipaddress.IPv4Network(n["pod_cidr"])), n["name"]) for n in nodes if n is not node)
    result = []
    for route in node.get("routes") or []:
        if str(route.get("protocol")) != PODNET_PROTO:
            continue
        try:
            dst = str(ipaddress.IPv4Network(route.get("dst", "")))
        except ValueError:
            continue
        if dst not in by_cidr:
            continue
        dev = route.get("dev")
        kind = tunnel["kind"] if tunnel and dev == tunnel["name"] else "host-gw"
        result.append(dict(peer=by_cidr[dst], dst=dst, via=route.get("gateway"), dev=dev, kind=kind,
                           onlink="onlink" in (route.get("flags") or [])))
    return sorted(result, key=lambda r: (r["peer"], r["dst"]))


def _check(topology):
    nodes = topology.get("nodes") or []
    if not nodes:
        raise PodnetError("nodes: nothing to draw, no node given")
    names = set()
    for index, node in enumerate(nodes):
        for key in ("name", "node_ip", "pod_cidr"):
            if not node.get(key):
                raise PodnetError("nodes[%d].%s: is required" % (index, key))
        if node["name"] in names:
            raise PodnetError("nodes[%d].name: %s is listed twice" % (index, node["name"]))
        names.add(node["name"])
        try:
            _subnet(node)
            ipaddress.IPv4Network(node["pod_cidr"])
        except ValueError as exc:
            raise PodnetError("nodes[%d]: %s" % (index, exc))
    return nodes


def dot(topology):
    """The DOT source of the picture (see the module's docstring for ``topology``)."""
    nodes = _check(topology)
    mode = topology.get("mode") or ""
    line, fill = COLOURS.get(mode, NEUTRAL)
    switch_prefix, router = topology.get("switch_prefix"), topology.get("router")
    subnets = sorted(set(_subnet(n) for n in nodes))
    routed = len(subnets) > 1

    out = ["digraph podnet {"]
    out.append("  graph %s;" % attrs(label=label(topology.get("title") or "podnet", "mode %s" % mode if mode else ""),
                                     labelloc="t", fontname="Helvetica", fontsize="16", rankdir="TB",
                                     newrank="true", nodesep="0.4", ranksep="0.6"))
    out.append("  node %s;" % attrs(shape="box", style="rounded,filled", fontname="Helvetica", fontsize="11",
                                    fillcolor="white", color=NEUTRAL[0]))
    out.append("  edge %s;" % attrs(fontname="Helvetica", fontsize="9", color=NEUTRAL[0], dir="none"))

    # The underlay: a switch per subnet, a router between them.
    for net in subnets:
        title = ("switch " + lab.switch_name(switch_prefix, net)) if switch_prefix else "underlay subnet"
        out.append("  %s %s;" % (quote("subnet:%s" % net), attrs(
            label=label(title, str(net)), shape="box", style="filled", fillcolor=NEUTRAL[1])))
    if routed:
        legs = ["%s %s" % (lab.leg_name(net), net.broadcast_address - 1) for net in subnets] if router else []
        out.append("  %s %s;" % (quote("router"), attrs(
            label=label("router " + router if router else "router", *legs), shape="octagon",
            style="filled", fillcolor=NEUTRAL[1])))
        for net in subnets:
            out.append("  %s -> %s;" % (quote("subnet:%s" % net), quote("router")))

    tunnels = {}
    for node in nodes:
        name = node["name"]
        tunnel = tunnels[name] = tunnel_of(node.get("links"))
        ifnames = set(link.get("ifname") for link in node.get("links") or [])
        iface = node.get("iface") or "eth0"
        out.append("  subgraph %s {" % quote("cluster_" + name))
        out.append("    graph %s;" % attrs(label=label(name, "netns " + node["netns"] if node.get("netns") else ""),
                                           color=line, style="rounded", penwidth="2", fontname="Helvetica"))
        out.append("    %s %s;" % (quote("node:" + name), attrs(
            label=label("node " + name, "%s %s/%s" % (iface, node["node_ip"], node.get("prefixlen") or 32),
                        "pods " + str(ipaddress.IPv4Network(node["pod_cidr"]))),
            fillcolor="white", color=line, penwidth="1.5")))
        if tunnel:
            t_line, t_fill = COLOURS[tunnel["kind"]]
            detail = ("VNI %s, port %s" % (tunnel["vni"], tunnel["port"]) if tunnel["kind"] == "vxlan"
                      else "local %s" % tunnel["local"])
            out.append("    %s %s;" % (quote("tunnel:" + name), attrs(
                label=label("%s (%s)" % (tunnel["name"], tunnel["kind"]), detail, ", ".join(tunnel["addresses"]),
                            "MTU %s" % tunnel["mtu"] if tunnel.get("mtu") else ""),
                shape="cds", style="filled", fillcolor=t_fill, color=t_line)))
            out.append("    %s -> %s %s;" % (quote("node:" + name), quote("tunnel:" + name), attrs(style="dotted")))
        for pod in node.get("pods") or []:
            ip = pod.get("ip") or str(pod.get("address", "")).split("/", maxsplit=1)[0]
            held = not node.get("links") or pod.get("host_ifname") in ifnames
            out.append("    %s %s;" % (quote("pod:" + pod["name"]), attrs(
                label=label(pod["name"], ip), shape="ellipse",
                style="filled" if held else "filled,dashed", fillcolor=fill)))
            out.append("    %s -> %s %s;" % (quote("node:" + name), quote("pod:" + pod["name"]),
                                             attrs(label=pod.get("host_ifname") or "")))
        out.append("  }")
        out.append("  %s -> %s %s;" % (quote("node:" + name), quote("subnet:%s" % _subnet(node)),
                                       attrs(label=label(iface, node["node_ip"]), minlen="2")))

    # The routes each node holds to its peers' pods, coloured by how they carry the packet.
    for node in nodes:
        tunnel = tunnels[node["name"]]
        for route in peer_routes(node, nodes, tunnel):
            # From the device the route leaves by, to the peer that holds the pods.
            tail = ("tunnel:" if route["kind"] != "host-gw" else "node:") + node["name"]
            head = "node:" + route["peer"]
            text = "%s via %s dev %s" % (route["dst"], route["via"], route["dev"]) if route["via"] \
                else "%s dev %s" % (route["dst"], route["dev"])
            out.append("  %s -> %s %s;" % (quote(tail), quote(head), attrs(
                label=label(text), color=COLOURS[route["kind"]][0], fontcolor=COLOURS[route["kind"]][0],
                style="dashed", dir="forward", constraint="false", penwidth="1.5")))

    # A legend: what each colour means.
    out.append("  subgraph %s {" % quote("cluster_legend"))
    out.append("    graph %s;" % attrs(label="routes to peers", style="rounded", color=NEUTRAL[0], fontname="Helvetica"))
    for kind in ("host-gw", "ipip", "vxlan"):
        out.append("    %s %s;" % (quote("legend:" + kind), attrs(
            label=kind, shape="plaintext", style="", fontcolor=COLOURS[kind][0])))
    out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"
