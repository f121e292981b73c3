# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``playbooks/verify.yml`` checks from one node (podnet.fabric.reach's options).

``probes``: every local pod to every other pod (a pair podnet_policy denies must fail), the
node to every remote pod, and a path-MTU pair (MTU-28 bytes with DF passes, one byte more
fails).  ``capture``: one pod-to-pod ping, from the first node's first pod to a pod of a peer
reached through the tunnel when there is one, captured where it leaves the sender.

Only nodes this run read (``fact_of`` answers for them) are probed: a pod on a node not read
(unreachable, or outside ``--limit``) is skipped, never a failure; ``unread`` names those nodes
and ``skipped`` their pods, so verify.yml checks everything else and then stops naming them.
"""

from __future__ import annotations

from ansible_collections.podnet.fabric.plugins.module_utils import node_plan, underlay


def _remote(cluster, node, fact, read=None):
    """Other nodes' pods ``node``'s first pod may reach, those behind the tunnel first (bgp: those
    behind a router, off the node's subnet, first: their packets cross the router)."""
    if not node.pods:
        return [], set()
    tunnelled = set(peer.name for peer in node_plan.tunnel_peers(cluster, node, fact))
    first = node.pods[0]["name"]
    pods = [(n, p) for n, p in cluster.pods() if n is not node and not cluster.denied(first, p["ip"])
            and (read is None or n.name in read)]
    if cluster.mode == "bgp":
        return sorted(pods, key=lambda item: underlay.on_link(node, fact, item[0])), tunnelled
    return sorted(pods, key=lambda item: item[0].name not in tunnelled), tunnelled


def plan(cluster, name, mtu, fact_of):
    """``mtu``: this node's pod MTU (its plan's); ``fact_of(host)``: that host's node_facts or None."""
    node = cluster.node(name)
    read = set(n.name for n in cluster.nodes if n is node or fact_of(n.name))
    everyone = [(n, p) for n, p in cluster.pods() if n.name in read]
    probes = []
    for pod in node.pods:
        probes += [dict(src=pod["name"], dst=p["ip"], **({"expect": False} if cluster.denied(pod["name"], p["ip"]) else {}))
                   for _n, p in everyone if p["name"] != pod["name"]]
    probes += [dict(src="", dst=p["ip"]) for n, p in everyone if n is not node]
    remote = _remote(cluster, node, fact_of(name), read)
    if remote and remote[0]:
        target = remote[0][0][1]["ip"]
        probes.append(dict(src=node.pods[0]["name"], dst=target, size=mtu - 28, df=True))
        probes.append(dict(src=node.pods[0]["name"], dst=target, size=mtu - 27, df=True, expect=False))
    unread = [n.name for n in cluster.nodes if n.name not in read]
    skipped = [dict(node=n.name, pod=p["name"], ip=p["ip"]) for n, p in cluster.pods() if n.name not in read]
    return dict(probes=probes, capture=_capture(cluster, fact_of, read), unread=unread, skipped=skipped)


def _capture(cluster, fact_of, read):
    """The first node (that this run read) whose first pod may reach a remote pod (on a node
    read) sends one ping."""
    for sender in cluster.nodes:
        fact = fact_of(sender.name)
        remote = _remote(cluster, sender, fact, read) if fact else None
        if remote and remote[0]:
            break
    else:
        return None
    (receiver, pod), tunnelled = remote[0][0], remote[1]
    src_pod = sender.pods[0]
    kind = cluster.mode if receiver.name in tunnelled or cluster.mode == "bgp" else "host-gw"
    port, vni = cluster.settings["vxlan_port"], cluster.settings["vxlan_vni"]
    inner = "%s > %s: ICMP echo request" % (src_pod["ip"], pod["ip"])
    if kind == "ipip":
        # tcpdump: "IP <node> > <node>: IP <pod> > <pod>: ICMP echo request ..."; the filter
        # (IP protocol 4) is what proves the encapsulation.
        bpf, expect = "ip proto 4 and src host %s" % sender.node_ip, [
            "IP %s > %s: IP " % (sender.node_ip, receiver.node_ip), inner]
    elif kind == "vxlan":
        # udp[28:2]: the inner frame's EtherType (UDP 8 + VXLAN 8 + MACs 12): IPv4 only, not the ARP a
        # stale neighbour entry sends first (multicast and flood learn their neighbours).
        bpf, expect = "udp port %d and src host %s and udp[28:2] = 0x0800" % (port, sender.node_ip), [
            "%s." % sender.node_ip, "> %s.%d: VXLAN" % (receiver.node_ip, port), "vni %d" % vni, inner]
    else:   # host-gw and bgp: the pod's own packet, unencapsulated
        bpf, expect = "icmp and src host %s" % src_pod["ip"], [inner]
    # Captured where it leaves the sender: what the mode puts on the wire.
    return dict(kind=kind, sender=sender.name, receiver=receiver.name, src=src_pod["name"], dst=pod["ip"],
                iface=fact["iface"], filter=bpf, expect=expect)
