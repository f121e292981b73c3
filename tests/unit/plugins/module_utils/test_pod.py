# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure pod planner (podnet.fabric.pod_netns): no kernel, no mocks."""

from __future__ import annotations

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import pod
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

POD = "pod-a"
HOST = "veth-pod-a"
HMAC, PMAC = "0e:00:00:00:00:01", "0e:00:00:00:00:02"
GOOD_SYSCTLS = dict(proxy_arp=True, proxy_delay=0, forwarding=True)


def want(**overrides):
    args = dict(name=POD, address="192.168.10.10/24")
    args.update(overrides)
    return pod.wanted(**args)


def host_link(ifindex=7, peer_index=2, kind="veth", netnsid=0, up=True, mtu=1500, name=HOST):
    link = dict(ifindex=ifindex, ifname=name, mtu=mtu, address=HMAC,
                flags=["BROADCAST", "MULTICAST"] + (["UP", "LOWER_UP"] if up else []),
                linkinfo=dict(info_kind=kind))
    if kind == "veth":
        link["link_index"] = peer_index
        if netnsid is not None:
            link["link_netnsid"] = netnsid
    return link


def node_links(*extra):
    return [dict(ifindex=1, ifname="lo", flags=["LOOPBACK", "UP"], mtu=65536),
            dict(ifindex=2, ifname="eth0", flags=["UP"], mtu=1500, linkinfo=dict(info_kind="veth"),
                 link_index=3)] + list(extra)


def pod_links(addrs=("192.168.10.10/24",), up=True, lo_up=True, mtu=1500, peer_index=7, ifindex=2):
    addr_info = []
    for addr in addrs:
        local, prefixlen = addr.split("/")
        addr_info.append(dict(family="inet", local=local, prefixlen=int(prefixlen)))
    addr_info.append(dict(family="inet6", local="fe80::1", prefixlen=64))
    return [dict(ifindex=1, ifname="lo", flags=["LOOPBACK"] + (["UP"] if lo_up else []), addr_info=[]),
            dict(ifindex=ifindex, ifname="eth0", mtu=mtu, address=PMAC, link_index=peer_index, link_netnsid=0,
                 flags=["BROADCAST", "MULTICAST"] + (["UP"] if up else []),
                 linkinfo=dict(info_kind="veth"), addr_info=addr_info)]


def pod_default(gw="169.254.10.24", metric=None):
    route = dict(dst="default", gateway=gw, dev="eth0", flags=["onlink"])
    if metric:
        route["metric"] = metric
    return route


def host_route(dst="192.168.10.10", dev=HOST, protocol="150"):
    return dict(dst=dst, dev=dev, protocol=protocol, scope="link", flags=[])


NODE_ROUTES = [dict(dst="10.57.4.0/24", dev="eth0", protocol="kernel", scope="link", prefsrc="10.57.4.20"),
               dict(dst="default", gateway="10.57.4.1", dev="eth0", flags=["onlink"])]


def converged(**kw):
    """plan() arguments for a pod that is exactly as wanted."""
    args = dict(namespace=pod.NS_PRESENT, node_links=node_links(host_link()),
                node_routes=NODE_ROUTES + [host_route()], peer_ns=POD, pod_links=pod_links(),
                pod_routes=[pod_default()], sysctls=dict(GOOD_SYSCTLS), macs=(HMAC, PMAC))
    args.update(kw)
    return args


def run(w, **kw):
    """``(steps, before, after, facts, warnings)`` of the Plan."""
    plan = pod.plan(w, **converged(**kw))
    return plan.commands, plan.before, plan.after, plan.facts, plan.warnings


def lines(steps):
    return ["%s: %s" % (where, " ".join(args)) for where, args in steps]


# -- wanted ------------------------------------------------------------------

def test_wanted_defaults_and_derived_host_ifname():
    w = want()
    assert w["host_ifname"] == HOST and w["ifname"] == "eth0" and w["gateway"] == "169.254.10.24"
    assert w["proxy_arp"] and w["forwarding"] and w["host_route"] and w["mtu"] is None


def test_long_pod_name_gets_a_hashed_host_ifname_unless_one_is_given():
    derived = want(name="a-long-podname")["host_ifname"]
    assert derived == pod.veth_name("a-long-podname") and len(derived) == 15 and derived[4] != "-"
    assert want(name="a-long-podname", host_ifname="vh1")["host_ifname"] == "vh1"
    with pytest.raises(PodnetError, match=r"^host_ifname: interface name 'veth-a-long-podname'"):
        want(name="a-long-podname", host_ifname="veth-a-long-podname")


def test_absent_needs_no_address():
    assert pod.wanted(name=POD, state="absent")["address"] is None


@pytest.mark.parametrize("overrides, option", [
    (dict(address="192.168.10.10"), "address"),
    (dict(address="192.168.10.300/24"), "address"),
    (dict(address="192.168.10.0/24"), "address"),
    (dict(address="224.0.0.1/24"), "address"),
    (dict(address="169.254.10.24/16"), "address"),
    (dict(address=None), "address"),
    (dict(mtu=10), "mtu"),
    (dict(mtu=70000), "mtu"),
    (dict(ifname="a" * 16), "ifname"),
    (dict(ifname="-eth0"), "ifname"),
    (dict(ifname="eth 0"), "ifname"),
    (dict(ifname="eth0;reboot"), "ifname"),
    (dict(host_ifname="-veth"), "host_ifname"),
    (dict(host_ifname="veth x"), "host_ifname"),
    (dict(name="-pod"), "name"),
    (dict(name="pod a"), "name"),
    (dict(name="pod;a"), "name"),
    (dict(name="node1", node_netns="node1"), "name"),
    (dict(gateway="169.254.10"), "gateway"),
    (dict(gateway="0.0.0.0"), "gateway"),
    (dict(gateway="255.255.255.255"), "gateway"),
])
def test_bad_values_are_refused_naming_the_option(overrides, option):
    with pytest.raises(PodnetError) as exc:
        want(**overrides)
    assert str(exc.value).startswith(option + ":"), exc.value


# -- owned -------------------------------------------------------------------

def test_owned_only_when_both_ends_point_at_each_other_and_the_peer_is_the_pod():
    w, p = want(), pod_links()[1]
    assert pod.owned(w, host_link(), p, POD) == (True, None)
    assert pod.owned(w, None, p, POD) == (False, None)
    for host, peer_ns in [(host_link(kind="bridge"), None),
                          (host_link(netnsid=None), None),
                          (host_link(), "other"),
                          (host_link(ifindex=9), POD),
                          (host_link(peer_index=5), POD)]:
        ok, reason = pod.owned(w, host, p, peer_ns)
        assert not ok and reason.startswith("host_ifname:") and HOST in reason, reason
    assert "bridge" in pod.owned(w, host_link(kind="bridge"), p, None)[1]
    assert "the node itself" in pod.owned(w, host_link(netnsid=None), p, None)[1]


def test_parse_sysctls():
    assert pod.parse_sysctls("1\n0\n1\n") == GOOD_SYSCTLS
    assert pod.parse_sysctls("0\n80\n0\n") == dict(proxy_arp=False, proxy_delay=80, forwarding=False)
    with pytest.raises(PodnetError):
        pod.parse_sysctls("1\n")
    assert pod.sysctl_keys("veth.1")[0] == "net/ipv4/conf/veth.1/proxy_arp"


# -- plan: present -----------------------------------------------------------

def test_converged_pod_plans_nothing():
    steps, before, after, facts, warnings = run(want())
    assert steps == [] and before == after and not warnings
    assert facts == dict(host_mac=HMAC, mac=PMAC)


def test_new_pod_is_built_in_order():
    steps, before, after, facts, warnings = run(
        want(mtu=1450), namespace=pod.NS_ABSENT, node_links=node_links(), node_routes=NODE_ROUTES,
        peer_ns=None, pod_links=None, pod_routes=None, sysctls=None)
    assert not warnings
    assert lines(steps) == [
        "ns: netns add pod-a",
        "pod: link set lo up",
        "node: link add veth-pod-a address %s mtu 1450 type veth peer name eth0 address %s mtu 1450 "
        "netns pod-a" % (HMAC, PMAC),
        "node: link set veth-pod-a up",
        "pod: link set eth0 up",
        "pod: addr replace 192.168.10.10/24 dev eth0",
        "pod: route replace default via 169.254.10.24 dev eth0 onlink",
        "sysctl: -w net/ipv4/conf/veth-pod-a/proxy_arp=1 net/ipv4/conf/veth-pod-a/forwarding=1 "
        "net/ipv4/neigh/veth-pod-a/proxy_delay=0",
        "node: route replace 192.168.10.10/32 dev veth-pod-a scope link metric 0 proto 150 table main",
    ]
    assert before["namespace"] == "absent" and not before["veth"]
    assert after["namespace"] == "present" and after["mtu"] == 1450 and after["addresses"] == ["192.168.10.10/24"]
    assert [r["dst"] for r in after["host_routes"]] == ["192.168.10.10/32"]
    assert facts == dict(host_mac=HMAC, mac=PMAC)


def test_broken_namespace_is_recreated():
    steps = run(want(), namespace=pod.NS_BROKEN, node_links=node_links(), node_routes=NODE_ROUTES,
                peer_ns=None, pod_links=None, pod_routes=None, sysctls=None)[0]
    assert lines(steps)[:2] == ["ns: netns del pod-a", "ns: netns add pod-a"]


def test_missing_veth_in_existing_namespace_is_recreated():
    steps = run(want(), node_links=node_links(), node_routes=NODE_ROUTES, peer_ns=None,
                pod_links=pod_links()[:1], pod_routes=[], sysctls=None)[0]
    assert lines(steps)[0].startswith("node: link add veth-pod-a address")
    assert "ns: netns add pod-a" not in lines(steps)


@pytest.mark.parametrize("kw, expected", [
    (dict(sysctls=dict(GOOD_SYSCTLS, proxy_arp=False)), ["sysctl: -w net/ipv4/conf/veth-pod-a/proxy_arp=1"]),
    (dict(sysctls=dict(GOOD_SYSCTLS, proxy_delay=80)), ["sysctl: -w net/ipv4/neigh/veth-pod-a/proxy_delay=0"]),
    (dict(sysctls=dict(GOOD_SYSCTLS, forwarding=False)), ["sysctl: -w net/ipv4/conf/veth-pod-a/forwarding=1"]),
    (dict(node_routes=NODE_ROUTES),
     ["node: route replace 192.168.10.10/32 dev veth-pod-a scope link metric 0 proto 150 table main"]),
    (dict(pod_links=pod_links(lo_up=False)), ["pod: link set lo up"]),
    (dict(pod_links=pod_links(up=False)), ["pod: link set eth0 up"]),
    (dict(node_links=node_links(host_link(up=False))), ["node: link set veth-pod-a up"]),
    (dict(pod_routes=[]), ["pod: route replace default via 169.254.10.24 dev eth0 onlink"]),
    (dict(pod_routes=[pod_default("169.254.1.1")]), ["pod: route replace default via 169.254.10.24 dev eth0 onlink"]),
    (dict(pod_routes=[pod_default(), pod_default("10.0.0.1", metric=100)]),
     ["pod: route del default metric 100", "pod: route replace default via 169.254.10.24 dev eth0 onlink"]),
    (dict(pod_links=pod_links(addrs=("192.168.10.10/24", "10.9.9.9/8"))),
     ["pod: addr del 10.9.9.9/8 dev eth0", "pod: addr replace 192.168.10.10/24 dev eth0"]),
    (dict(pod_links=pod_links(addrs=("192.168.10.9/24", "192.168.10.10/24"))),
     ["pod: addr del 192.168.10.9/24 dev eth0", "pod: addr replace 192.168.10.10/24 dev eth0"]),
])
def test_drift_is_repaired_in_place(kw, expected):
    steps, before, after = run(want(), **kw)[:3]
    assert lines(steps) == expected
    assert before != after


def test_address_change_moves_address_and_host_route():
    steps = run(want(address="192.168.10.11/24"))[0]
    assert lines(steps) == [
        "pod: addr del 192.168.10.10/24 dev eth0",
        "pod: addr replace 192.168.10.11/24 dev eth0",
        "node: route replace 192.168.10.11/32 dev veth-pod-a scope link metric 0 proto 150 table main",
        "node: route del 192.168.10.10/32 metric 0 proto 150 table main",
    ]


def test_mtu_converges_on_both_ends():
    steps = run(want(mtu=1450))[0]
    assert lines(steps) == ["node: link set veth-pod-a mtu 1450", "pod: link set eth0 mtu 1450"]


def test_switches_off():
    steps = run(want(host_route=False, proxy_arp=False, forwarding=False))[0]
    assert lines(steps) == [
        "sysctl: -w net/ipv4/conf/veth-pod-a/proxy_arp=0 net/ipv4/conf/veth-pod-a/forwarding=0",
        "node: route del 192.168.10.10/32 metric 0 proto 150 table main",
    ]


def test_other_pods_routes_and_foreign_routes_are_left_alone():
    routes = NODE_ROUTES + [host_route(), host_route("192.168.10.20", "veth-pod-b"),
                            host_route("192.168.10.30", protocol="boot")]
    assert run(want(), node_routes=routes)[0] == []


def test_foreign_route_to_the_pod_address_is_refused():
    routes = NODE_ROUTES + [host_route(protocol="static", dev="eth0")]
    with pytest.raises(PodnetError, match=r"^host_route: .*192.168.10.10/32 dev eth0"):
        run(want(), node_routes=routes)


@pytest.mark.parametrize("host, peer_ns", [
    (host_link(kind="bridge"), None),
    (host_link(netnsid=None), None),
    (host_link(), "someone-else"),
])
def test_foreign_host_device_is_refused(host, peer_ns):
    with pytest.raises(PodnetError, match=r"^host_ifname: .*'veth-pod-a'.*will not touch it"):
        run(want(), node_links=node_links(host), peer_ns=peer_ns)


def test_foreign_host_device_refused_also_when_the_pod_is_missing():
    with pytest.raises(PodnetError, match=r"^host_ifname:"):
        run(want(), namespace=pod.NS_ABSENT, peer_ns=None, pod_links=None, pod_routes=None, sysctls=None)


def test_pod_interface_without_the_host_veth_is_refused():
    with pytest.raises(PodnetError, match=r"^ifname: .*'eth0'"):
        run(want(), node_links=node_links(), peer_ns=None, sysctls=None)


def test_an_earlier_host_veth_of_the_pod_is_replaced_in_its_namespace():
    """host_ifname changed: the pod's veth under its old name goes (its routes and the pod's end
    with it), the pod is wired again under the new name; the namespace stays."""
    old = host_link(name="veth-old")
    steps, before, after, _facts, _warnings = run(
        want(host_ifname="veth-new", replaces=["veth-old"]), node_links=node_links(old),
        node_routes=NODE_ROUTES + [host_route(dev="veth-old")], peer_ns=None, sysctls=None,
        replaced_peers={"veth-old": POD})
    assert lines(steps) == [
        "node: link del veth-old",
        "node: link add veth-new address %s type veth peer name eth0 address %s netns pod-a" % (HMAC, PMAC),
        "node: link set veth-new up", "pod: link set eth0 up", "pod: addr replace 192.168.10.10/24 dev eth0",
        "pod: route replace default via 169.254.10.24 dev eth0 onlink",
        "sysctl: -w net/ipv4/conf/veth-new/proxy_arp=1 net/ipv4/conf/veth-new/forwarding=1 "
        "net/ipv4/neigh/veth-new/proxy_delay=0",
        "node: route replace 192.168.10.10/32 dev veth-new scope link metric 0 proto 150 table main"]
    assert before["namespace"] == after["namespace"] == "present" and after["veth"]


def test_an_earlier_name_that_is_not_the_pods_veth_is_left_alone():
    # A veth of that name whose peer is in another namespace, and a device of another kind.
    for other, peer in ((host_link(name="veth-old"), "someone-else"), (host_link(name="veth-old", kind="dummy"), None)):
        with pytest.raises(PodnetError, match=r"^ifname: .*'eth0'"):
            run(want(host_ifname="veth-new", replaces=["veth-old"]), node_links=node_links(other),
                peer_ns=None, sysctls=None, replaced_peers={"veth-old": peer})
    # Nothing of that name (a converged pod; a record older than the veth): nothing to delete.
    assert run(want(replaces=["veth-old"]))[0] == []


# -- plan: absent ------------------------------------------------------------

def test_absent_removes_route_veth_and_namespace():
    steps, before, after, facts, warnings = run(want(state="absent"))
    assert lines(steps) == ["node: route del 192.168.10.10/32 metric 0 proto 150 table main",
                            "node: link del veth-pod-a", "ns: netns del pod-a"]
    assert before["namespace"] == "present" and after["namespace"] == "absent" and after["host_routes"] == []
    assert facts == dict(host_mac=None, mac=None) and not warnings


def test_absent_without_address_works_too():
    steps = run(pod.wanted(name=POD, state="absent"))[0]
    assert len(steps) == 3


@pytest.mark.parametrize("kw, expected", [
    (dict(namespace=pod.NS_ABSENT, node_links=node_links(), node_routes=NODE_ROUTES, pod_links=None,
          pod_routes=None, sysctls=None), []),
    (dict(node_links=node_links(), node_routes=NODE_ROUTES, pod_links=pod_links()[:1], pod_routes=[],
          sysctls=None), ["ns: netns del pod-a"]),
    (dict(namespace=pod.NS_BROKEN, node_links=node_links(), node_routes=NODE_ROUTES, pod_links=None,
          pod_routes=None, sysctls=None), ["ns: netns del pod-a"]),
])
def test_absent_on_nothing_or_half_built(kw, expected):
    assert lines(run(want(state="absent"), **kw)[0]) == expected


def test_absent_leaves_a_foreign_host_device_and_warns():
    result = run(want(state="absent"), node_links=node_links(host_link(kind="bridge")), peer_ns=None,
                 sysctls=None)
    steps, warnings = result[0], result[4]
    assert lines(steps) == ["ns: netns del pod-a"]
    assert len(warnings) == 1 and "left untouched" in warnings[0] and HOST in warnings[0]


def test_foreign_device_is_reported_before_a_foreign_route():
    routes = NODE_ROUTES + [host_route(protocol="static", dev="eth0")]
    with pytest.raises(PodnetError, match=r"^host_ifname:"):
        run(want(), node_links=node_links(host_link(kind="bridge")), node_routes=routes, peer_ns=None)


# -- the validators the inventory model shares --------------------------------

def test_veth_name_derives_or_takes_the_given_one_naming_the_option():
    assert pod.veth_name("pod-a") == "veth-pod-a"
    assert pod.veth_name("a-very-long-pod-name", "cali1", "pods[0].host_ifname") == "cali1"
    with pytest.raises(PodnetError, match=r"^pods\[0\]\.host_ifname: interface name 'veth-a-very-long-pod-name'"):
        pod.veth_name("a-very-long-pod-name", "veth-a-very-long-pod-name", "pods[0].host_ifname")
    with pytest.raises(PodnetError, match=r"^pods\[0\]\.host_ifname: interface name '-x'"):
        pod.veth_name("pod-a", "-x", "pods[0].host_ifname")


def test_long_pod_names_get_a_stable_hashed_veth_name():
    import hashlib
    name = "frontend-7d9f8b6c4-x2k9p"
    derived = pod.veth_name(name)
    assert derived == "veth" + hashlib.sha256(name.encode()).hexdigest()[:11]
    assert len(derived) == 15 and derived == pod.veth_name(name) and "-" not in derived
    assert pod.veth_name("frontend-7d9f8b6c4-x2k9q") != derived
    # Names that fit keep veth-NAME (nothing changes for existing users); 10 characters is the most.
    assert pod.veth_name("abcdefghij") == "veth-abcdefghij"
    assert pod.veth_name("abcdefghijk").startswith("veth") and pod.veth_name("abcdefghijk")[4] != "-"
    # An explicit host_ifname still wins, and pod_netns derives the same name as the model.
    assert pod.veth_name(name, "eth-front") == "eth-front"
    assert want(name=name)["host_ifname"] == derived


@pytest.mark.parametrize("address, words", [
    ("192.168.11.0/24", "is the network address of 192.168.11.0/24"),
    ("192.168.11.255/24", "is the broadcast address of 192.168.11.0/24"),
    ("224.0.0.1/24", "cannot be a pod address"),
    ("169.254.10.24/16", "is also the gateway"),
])
def test_check_address_names_the_option(address, words):
    with pytest.raises(PodnetError) as err:
        pod.check_address(address, "pods[0].ip", "169.254.10.24")
    assert str(err.value).startswith("pods[0].ip: ") and words in str(err.value)
    assert pod.check_address("192.168.11.10/24", "pods[0].ip", "169.254.10.24") == "192.168.11.10/24"


def test_absent_wired_only_removes_a_namespace_only_through_its_veth():
    # Wired to this node: everything goes, as without wired_only.
    assert len(run(want(state="absent", wired_only=True))[0]) == 3
    # Not wired to this node (no such veth, or a veth into another namespace): left alone, with a warning.
    for kw in (dict(node_links=node_links(), peer_ns=None, sysctls=None),
               dict(peer_ns="someone-else", sysctls=None)):
        steps, before, after, _facts, warnings = run(want(state="absent", wired_only=True), **kw)
        assert steps == [] and after == before and any("wired_only" in w for w in warnings)
