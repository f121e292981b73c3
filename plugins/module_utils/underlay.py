# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The underlay checks: what only the nodes can tell, against the mode.

``facts`` are podnet.fabric.node_facts' ``podnet_underlay`` per host: {iface, prefixlen, mtu,
gateway_route, ...}.  Pure Python; errors name the host and the variable to fix.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.podnet.fabric.plugins.module_utils import bird
from ansible_collections.podnet.fabric.plugins.module_utils.model import OVERHEAD, error


def subnet(node, fact):
    """The node's underlay subnet, from its node_ip and the prefix length the node holds it with."""
    return ipaddress.IPv4Interface("%s/%s" % (node.node_ip, fact["prefixlen"])).network


def on_link(node, fact, peer):
    """True when ``peer``'s node IP is in ``node``'s underlay subnet (its next hop is L2-reachable)."""
    return ipaddress.IPv4Address(peer.node_ip) in subnet(node, fact)


def mtu(cluster, fact):
    """The pod and tunnel MTU: podnet_mtu, or the underlay's minus the mode's overhead.

    ``path_mtu`` (set by the pre-flight probe, preflight.py, when a path to or from a peer is
    narrower than the node's own underlay): the MTU is derived from it instead."""
    limit = min(fact["mtu"], fact.get("path_mtu") or fact["mtu"])
    return cluster.settings["mtu"] or limit - OVERHEAD[cluster.mode]


def check(cluster, facts, read=None):
    """Raise ``PodnetError`` for the first host whose underlay cannot carry the mode.

    ``read``: the hosts whose facts this run could read (default: every node). A node not read
    (unreachable, or outside ``--limit``) is not checked itself, but it is still checked as a
    peer from what the inventory tells (its node_ip against the read nodes' subnets): a peer's
    facts are never needed to plan a node.
    """
    subjects = [node for node in cluster.nodes if read is None or node.name in read]
    for node in subjects:
        _check_node(cluster, node, facts.get(node.name))
    _no_pod_cidr_in_underlay(cluster, subjects, facts)
    if cluster.mode == "host-gw":
        for node in subjects:
            net = subnet(node, facts[node.name])
            low, high = int(net.network_address), int(net.broadcast_address)
            far = [peer.name for peer in cluster.nodes
                   if peer is not node and not low <= int(ipaddress.IPv4Address(peer.node_ip)) <= high]
            if far:
                raise error(node.name, "mode", "host-gw needs every node on one L2 segment, but peer(s) %s "
                            "are not in this node's underlay subnet; use ipip or vxlan, with "
                            "podnet_direct_routing=true for host-gw routes where possible" % ", ".join(far))
    if cluster.mode == "bgp":
        for node in subjects:
            bird.node_bgp(cluster, node.name, facts, cluster.bgp_peers)
    if cluster.mode == "vxlan" and cluster.settings["vxlan_fdb"] == "multicast":
        nets = set(subnet(node, facts[node.name]) for node in subjects)
        if len(nets) > 1:
            raise error(None, "podnet_vxlan_fdb", "multicast needs every node in one subnet (the group is not "
                        "routed between %s); use static" % ", ".join(sorted(str(n) for n in nets)))
        # The nodes not read are judged by their node_ip against the read nodes' one subnet.
        net = next(iter(nets), None)
        far = [n.name for n in cluster.nodes if net and ipaddress.IPv4Address(n.node_ip) not in net]
        if far:
            raise error(None, "podnet_vxlan_fdb", "multicast needs every node in one subnet, but node(s) %s "
                        "are not in %s; use static" % (", ".join(far), net))


def _no_pod_cidr_in_underlay(cluster, subjects, facts):
    """No pod CIDR overlaps a read node's underlay subnet: the pods' routes would shadow the
    node addresses (and the node's own connected route would swallow the pods' traffic).

    The node's own subnet first (the common mistake), then the other read nodes' subnets, each
    distinct subnet once, so a large cluster in a few subnets costs nodes x subnets."""
    for node in subjects:
        net = subnet(node, facts[node.name])
        if node.network.overlaps(net):
            raise error(node.name, "pod_cidr", "%s overlaps the node's own underlay subnet %s (node_ip %s on %s)"
                        % (node.pod_cidr, net, node.node_ip, facts[node.name]["iface"]))
    nets = {}
    for node in subjects:
        nets.setdefault(subnet(node, facts[node.name]), node)
    for node in cluster.nodes:
        for net, holder in nets.items():
            if holder is not node and node.network.overlaps(net):
                raise error(node.name, "pod_cidr", "%s overlaps the underlay subnet %s of host %s"
                            % (node.pod_cidr, net, holder.name))


def _check_node(cluster, node, fact):
    if not fact or not fact.get("iface"):
        raise error(node.name, "node_ip", "no interface on the node holds %s" % node.node_ip)
    if node.node_iface and fact["iface"] != node.node_iface:
        raise error(node.name, "node_iface", "%s does not hold node_ip %s (it is on %s)"
                    % (node.node_iface, node.node_ip, fact["iface"]))
    for index, pod in enumerate(node.pods):
        if pod["host_ifname"] == fact["iface"]:
            raise error(node.name, "pods[%d].host_ifname" % index, "%s is the node's underlay interface "
                        "(it holds node_ip %s)" % (fact["iface"], node.node_ip))
    if not fact.get("gateway_route"):
        raise error(node.name, "podnet_pod_gateway", "the node has no route to %s through another "
                    "interface (e.g. a default route), so proxy ARP would never answer the pods"
                    % cluster.settings["pod_gateway"])
    wanted = mtu(cluster, fact)
    limit = fact["mtu"] - OVERHEAD[cluster.mode]
    if wanted > limit:
        raise error(node.name, "podnet_mtu", "%d is larger than the underlay %s allows for %s (%d - %d = %d)"
                    % (wanted, fact["iface"], cluster.mode, fact["mtu"], OVERHEAD[cluster.mode], limit))
