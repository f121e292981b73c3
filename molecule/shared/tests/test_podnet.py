# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The molecule verifier (testinfra): what podnet must leave on every node, per mode.

Each test runs once per host of the group ``nodes`` and names, when it fails, the node and the
exact device, route, entry or pod pair that is wrong. tests/molecule/test_verifier_catches_breakage.py
shows that they fail when a route or an FDB entry is taken away.
"""

from __future__ import annotations

import pytest

from conftest import GATEWAY

testinfra_hosts = ["nodes"]


def links(sh):
    return dict((link["ifname"], link) for link in sh.json("ip", "-details", "-json", "link", "show"))


def routes(sh):
    return dict((r["dst"], r) for r in sh.json("ip", "-json", "route", "show"))


def test_node_forwards_for_its_pods(sh, settings):
    assert sh.check("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
    rules = sh.check("iptables", "-w", "-S", "FORWARD").splitlines()
    assert any(rule.startswith("-A FORWARD") and rule.endswith("-j " + settings["chain"]) for rule in rules), \
        "FORWARD does not jump to %s: %s" % (settings["chain"], rules)


def test_pods_are_wired_to_the_node(sh, node):
    have_links, have_routes = links(sh), routes(sh)
    for pod in node.pods:
        veth = have_links.get(pod["host_ifname"])
        assert veth, "%s: no host veth %s for pod %s" % (node.name, pod["host_ifname"], pod["name"])
        assert veth.get("linkinfo", {}).get("info_kind") == "veth" and "UP" in veth["flags"], veth
        proxy_arp = sh.check("cat", "/proc/sys/net/ipv4/conf/%s/proxy_arp" % pod["host_ifname"]).strip()
        assert proxy_arp == "1", "%s: proxy ARP is off on %s" % (node.name, pod["host_ifname"])
        host_route = have_routes.get(pod["ip"]) or have_routes.get(pod["ip"] + "/32")
        assert host_route and host_route.get("dev") == pod["host_ifname"], \
            "%s: no route to pod %s on %s: %s" % (node.name, pod["ip"], pod["host_ifname"], host_route)

        addrs = sh.json("ip", "netns", "exec", pod["name"], "ip", "-json", "addr", "show", "dev", "eth0")
        inet = [(a["local"], a["prefixlen"]) for a in addrs[0].get("addr_info", []) if a["family"] == "inet"]
        assert inet == [(pod["ip"], node.network.prefixlen)], "%s: pod %s eth0 has %s" % (node.name, pod["name"], inet)
        default = [r for r in sh.json("ip", "netns", "exec", pod["name"], "ip", "-json", "route", "show")
                   if r["dst"] == "default"]
        assert len(default) == 1 and default[0].get("gateway") == GATEWAY and "onlink" in default[0].get("flags", []), \
            "%s: pod %s default route: %s" % (node.name, pod["name"], default)


def test_routes_to_every_peer_pod_cidr(sh, node, peers, settings):
    have = routes(sh)
    mode = settings["mode"]
    for peer in peers:
        if mode in ("host-gw", "bgp"):
            want = (peer.node_ip, node.iface)
        elif mode == "ipip":
            want = (peer.node_ip, settings["ipip_device"])
        else:
            want = (peer.tunnel_ip, settings["vxlan_device"])
        route = have.get(peer.pod_cidr)
        assert route is not None, "%s: no route to %s (the pods of %s)" % (node.name, peer.pod_cidr, peer.name)
        have_via = (route.get("gateway"), route.get("dev"))
        assert have_via == want, "%s: %s goes via %s dev %s, not via %s dev %s" % (
            node.name, peer.pod_cidr, have_via[0], have_via[1], want[0], want[1])
        if mode == "bgp":
            # Learnt from the peer by BIRD, which tags what it writes with its own protocol.
            assert route.get("protocol") == "bird", "%s: %s is not BIRD's: %s" % (node.name, peer.pod_cidr, route)
        elif mode != "host-gw":
            assert "onlink" in route.get("flags", []), "%s: %s is not onlink: %s" % (node.name, peer.pod_cidr, route)


def test_tunnel_device_of_the_mode_only(sh, node, settings):
    have = links(sh)
    mode = settings["mode"]
    kinds = dict((name, link.get("linkinfo", {}).get("info_kind")) for name, link in have.items())
    if mode != "vxlan":
        assert kinds.get(settings["vxlan_device"]) != "vxlan", "%s: %s left in %s mode" % (
            node.name, settings["vxlan_device"], mode)
    if mode != "ipip":
        assert kinds.get(settings["ipip_device"]) != "ipip", "%s: %s left in %s mode" % (
            node.name, settings["ipip_device"], mode)
    if mode in ("host-gw", "bgp"):
        return
    name = settings["vxlan_device"] if mode == "vxlan" else settings["ipip_device"]
    device = have.get(name)
    assert device is not None, "%s: no %s device %s" % (node.name, mode, name)
    assert kinds[name] == mode and "UP" in device["flags"], device
    data = device["linkinfo"].get("info_data", {})
    assert data.get("local") == node.node_ip, data
    if mode == "vxlan":
        assert (data.get("id"), data.get("port"), data.get("link")) == (
            settings["vxlan_vni"], settings["vxlan_port"], node.iface), data
        assert device["address"] == node.vtep_mac, "%s: %s has MAC %s, not %s" % (
            node.name, name, device["address"], node.vtep_mac)
        assert data.get("learning") is (settings["vxlan_fdb"] != "static"), data
    addrs = sh.json("ip", "-json", "addr", "show", "dev", name)
    inet = [(a["local"], a["prefixlen"]) for a in addrs[0].get("addr_info", []) if a["family"] == "inet"]
    assert inet == [(node.tunnel_ip, 32)], "%s: %s has %s" % (node.name, name, inet)


def test_vxlan_fdb_and_neighbour_entries(sh, node, peers, settings):
    if settings["mode"] != "vxlan":
        pytest.skip("no FDB or neighbour entries in %s mode" % settings["mode"])
    device = settings["vxlan_device"]
    fdb = set((e["mac"], e.get("dst")) for e in sh.json("bridge", "-json", "fdb", "show", "dev", device)
              if e.get("state") == "permanent" and e.get("dst"))
    neigh = dict((n["dst"], n.get("lladdr")) for n in sh.json("ip", "-json", "neigh", "show", "dev", device)
                 if "PERMANENT" in n.get("state", []))
    for peer in peers:
        if settings["vxlan_fdb"] == "static":
            assert (peer.vtep_mac, peer.node_ip) in fdb, "%s: no FDB entry %s dst %s on %s (peer %s); have %s" % (
                node.name, peer.vtep_mac, peer.node_ip, device, peer.name, sorted(fdb))
            assert neigh.get(peer.tunnel_ip) == peer.vtep_mac, "%s: no neighbour %s lladdr %s on %s; have %s" % (
                node.name, peer.tunnel_ip, peer.vtep_mac, device, neigh)
        elif settings["vxlan_fdb"] == "flood":
            assert ("00:00:00:00:00:00", peer.node_ip) in fdb, "%s: no flood entry to %s" % (node.name, peer.node_ip)


def test_every_pod_reaches_every_other_pod(sh, node, cluster):
    """From inside each pod of this node, one ping to every other pod of the cluster."""
    failed = []
    for pod in node.pods:
        for other in cluster.values():
            for target in other.pods:
                if target["name"] == pod["name"]:
                    continue
                result = sh.run("ip", "netns", "exec", pod["name"], "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2",
                                target["ip"])
                if result.rc != 0:
                    failed.append("%s (%s on %s) -> %s (%s on %s)" % (pod["name"], pod["ip"], node.name,
                                                                      target["name"], target["ip"], other.name))
    assert not failed, "pods that cannot reach another pod:\n  " + "\n  ".join(failed)
