"""podnet.fabric.pod_netns against a real kernel, in scratch namespaces.

The module runs under ``ip netns exec <node>`` (as the netns connection runs it), so it
lives in a private mount namespace; the pods it creates must still be usable from the
root mount namespace afterwards, which every test that builds a pod checks.
"""

import os

import pytest

from conftest import ipj, settle, sh, snapshot

HOST = "veth-pod-a"
ADDR = "192.168.10.10/24"


def args(pod, **kw):
    result = dict(name=pod, host_ifname=HOST, address=ADDR)
    result.update(kw)
    return result


def node_snapshot(ns):
    """snapshot() without a bridge's timers (they tick on their own)."""
    snap = snapshot(ns)
    for link in snap["links"]:
        data = link.get("linkinfo", {}).get("info_data", {})
        for key in [k for k in data if k.endswith("_timer")]:
            del data[key]
    return snap


def pod_snapshot(ns):
    """snapshot() of a pod, without IPv6 (link-local addresses and routes come and go on their own)."""
    snap = snapshot(ns)
    for link in snap["addrs"]:
        link["addr_info"] = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
    snap["routes"] = [r for r in snap["routes"] if ":" not in r.get("dst", "")]
    return snap


def usable_from_root(pod):
    """The pod namespace works from the root mount namespace (not only inside the module's)."""
    out = sh("ip", "netns", "exec", pod, "ip", "-json", "addr", "show")
    return '"ifname":"lo"' in out.replace(" ", "")


def podnet_routes(ns):
    return sorted((r["dst"], r.get("dev")) for r in ipj(ns, "route", "show", "table", "main")
                  if r.get("protocol") in ("150", "podnet"))


def sysctl(ns, key):
    return sh("sysctl", "-n", key, ns=ns).strip()


def ping(ns, address):
    sh("ping", "-c", "3", "-i", "0.2", "-W", "2", address, ns=ns)


def argv_words(result):
    return [" ".join(os.path.basename(w) if i == 0 else w for i, w in enumerate(c)) for c in result["commands"]]


def test_present_idempotent_check_diff_and_usable_from_root(module, node, namespaces):
    pod = namespaces.name("p")
    node_before = snapshot(node)
    check = module("pod_netns", args(pod), ns=node, check=True, diff=True)
    assert check.changed and check["commands"], check
    assert check["mac"] is None and check["host_mac"] is None
    assert snapshot(node) == node_before, "check mode changed the node"
    assert not os.path.exists("/run/netns/" + pod), "check mode created the pod"

    first = module("pod_netns", args(pod), ns=node, diff=True)
    assert first.changed, first
    words = argv_words(first)
    assert words[0].endswith("ip netns add " + pod)
    assert any(w.startswith("ip link add %s " % HOST) and w.endswith("netns " + pod) for w in words)
    assert first["diff"]["before"]["namespace"] == "absent"
    after = first["diff"]["after"]
    assert after["namespace"] == "present" and after["addresses"] == [ADDR] and after["proxy_arp"]
    assert [r["dst"] for r in after["host_routes"]] == ["192.168.10.10/32"]
    # The module ran in `ip netns exec`'s private mount namespace; the pod must outlive it.
    assert usable_from_root(pod)

    host = [l for l in ipj(node, "-details", "link", "show") if l["ifname"] == HOST][0]
    eth0 = [l for l in ipj(pod, "-details", "link", "show") if l["ifname"] == "eth0"][0]
    assert host["linkinfo"]["info_kind"] == "veth" and "UP" in host["flags"] and "UP" in eth0["flags"]
    assert first["host_ifname"] == HOST and first["host_mac"] == host["address"] and first["mac"] == eth0["address"]
    assert [(a["local"], a["prefixlen"]) for a in ipj(pod, "addr", "show", "eth0")[0]["addr_info"]
            if a["family"] == "inet"] == [("192.168.10.10", 24)]
    default = [r for r in ipj(pod, "route", "show") if r["dst"] == "default"]
    assert len(default) == 1 and default[0]["gateway"] == "169.254.10.24" and "onlink" in default[0]["flags"]
    assert "UP" in [l for l in ipj(pod, "link", "show") if l["ifname"] == "lo"][0]["flags"]
    assert podnet_routes(node) == [("192.168.10.10", HOST)]
    assert sysctl(node, "net.ipv4.conf.%s.proxy_arp" % HOST) == "1"
    assert sysctl(node, "net.ipv4.neigh.%s.proxy_delay" % HOST) == "0"
    assert sysctl(node, "net.ipv4.conf.%s.forwarding" % HOST) == "1"

    again = module("pod_netns", args(pod), ns=node, diff=True)
    assert not again.changed and again["commands"] == [], again
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["mac"] == first["mac"] and again["host_mac"] == first["host_mac"]

    node_snap, pod_snap = snapshot(settle(node)), pod_snapshot(settle(pod))
    check = module("pod_netns", args(pod), ns=node, check=True)
    assert not check.changed and check["commands"] == []
    # Check mode on drift: reports the repair, changes nothing.
    sh("ip", "-n", node, "route", "del", "192.168.10.10/32", "dev", HOST)
    node_snap = snapshot(node)
    check = module("pod_netns", args(pod, address="192.168.10.11/24", mtu=1400), ns=node, check=True, diff=True)
    assert check.changed and len(check["commands"]) == 5, check
    assert check["diff"]["after"]["addresses"] == ["192.168.10.11/24"] and check["diff"]["after"]["mtu"] == 1400
    assert snapshot(node) == node_snap and pod_snapshot(pod) == pod_snap


def test_node_and_pod_ping_each_other(module, node, namespaces):
    pod = namespaces.name("p")
    # Proxy ARP answers for 169.254.10.24 only when the node routes it through another interface.
    sh("ip", "-n", node, "route", "add", "default", "via", "10.57.4.1", "dev", "eth0", "onlink")
    assert module("pod_netns", args(pod), ns=node).changed
    ping(node, "192.168.10.10")
    ping(pod, "10.57.4.20")
    neigh = [n for n in ipj(pod, "neigh", "show") if n.get("dst") == "169.254.10.24"]
    assert neigh and neigh[0]["lladdr"] == [l for l in ipj(node, "link", "show") if l["ifname"] == HOST][0]["address"]


@pytest.mark.parametrize("drift", ["host_route", "proxy_arp", "proxy_delay", "forwarding", "veth", "address",
                                   "primary", "gateway", "lo", "down"])
def test_drift_is_repaired(module, node, namespaces, drift):
    pod = namespaces.name("p")
    assert module("pod_netns", args(pod), ns=node).changed
    good_node, good_pod = snapshot(settle(node)), pod_snapshot(settle(pod))
    if drift == "host_route":
        sh("ip", "-n", node, "route", "del", "192.168.10.10/32", "dev", HOST)
    elif drift == "proxy_arp":
        sh("sysctl", "-qw", "net.ipv4.conf.%s.proxy_arp=0" % HOST, ns=node)
    elif drift == "proxy_delay":
        sh("sysctl", "-qw", "net.ipv4.neigh.%s.proxy_delay=80" % HOST, ns=node)
    elif drift == "forwarding":
        sh("sysctl", "-qw", "net.ipv4.conf.%s.forwarding=0" % HOST, ns=node)
    elif drift == "veth":
        sh("ip", "-n", node, "link", "del", HOST)
    elif drift == "address":
        sh("ip", "-n", pod, "addr", "add", "10.9.9.9/8", "dev", "eth0")
    elif drift == "primary":
        # The wanted address becomes a secondary: repairing must not lose it with the primary.
        sh("ip", "-n", pod, "addr", "del", ADDR, "dev", "eth0")
        sh("ip", "-n", pod, "addr", "add", "192.168.10.9/24", "dev", "eth0")
        sh("ip", "-n", pod, "addr", "add", ADDR, "dev", "eth0")
    elif drift == "down":
        sh("ip", "-n", node, "link", "set", HOST, "down")
    elif drift == "gateway":
        sh("ip", "-n", pod, "route", "replace", "default", "via", "169.254.1.1", "dev", "eth0", "onlink")
    elif drift == "lo":
        sh("ip", "-n", pod, "link", "set", "lo", "down")
    repaired = module("pod_netns", args(pod), ns=node)
    assert repaired.changed and repaired["commands"], repaired
    assert not any("netns" in w.split()[1:3] for w in argv_words(repaired)), "the namespace was recreated"
    assert not module("pod_netns", args(pod), ns=node).changed
    if drift == "veth":
        # A new pair: new ifindexes and MACs; compare what the module manages.
        assert podnet_routes(node) == [("192.168.10.10", HOST)]
        assert sysctl(node, "net.ipv4.conf.%s.proxy_arp" % HOST) == "1"
        assert usable_from_root(pod)
    else:
        assert snapshot(settle(node)) == good_node and pod_snapshot(settle(pod)) == good_pod


def test_address_mtu_and_switches_change_in_place(module, node, namespaces):
    pod = namespaces.name("p")
    assert module("pod_netns", args(pod), ns=node).changed
    mac = module("pod_netns", args(pod), ns=node)["mac"]
    moved = args(pod, address="192.168.10.11/25", mtu=1450, gateway="169.254.1.1")
    result = module("pod_netns", moved, ns=node)
    assert result.changed and result["mac"] == mac
    inet = [(a["local"], a["prefixlen"]) for a in ipj(pod, "addr", "show", "eth0")[0]["addr_info"]
            if a["family"] == "inet"]
    assert inet == [("192.168.10.11", 25)]
    assert podnet_routes(node) == [("192.168.10.11", HOST)]
    assert [l["mtu"] for l in ipj(node, "link", "show", HOST)] == [1450]
    assert [l["mtu"] for l in ipj(pod, "link", "show", "eth0")] == [1450]
    assert [r["gateway"] for r in ipj(pod, "route", "show") if r["dst"] == "default"] == ["169.254.1.1"]
    assert not module("pod_netns", moved, ns=node).changed

    off = dict(moved, host_route=False, proxy_arp=False, forwarding=False)
    assert module("pod_netns", off, ns=node).changed
    assert podnet_routes(node) == []
    assert sysctl(node, "net.ipv4.conf.%s.proxy_arp" % HOST) == "0"
    assert not module("pod_netns", off, ns=node).changed


def test_absent_removes_everything_and_then_is_not_changed(module, node, namespaces):
    pod = namespaces.name("p")
    sh("ip", "-n", node, "route", "add", "192.168.10.0/24", "via", "10.57.4.1", "proto", "static")
    before = snapshot(node)
    assert module("pod_netns", args(pod), ns=node).changed
    gone = module("pod_netns", {"name": pod, "host_ifname": HOST, "state": "absent"}, ns=node, diff=True)
    assert gone.changed, gone
    assert gone["diff"]["before"]["namespace"] == "present" and gone["diff"]["after"]["namespace"] == "absent"
    assert gone["mac"] is None
    assert not os.path.exists("/run/netns/" + pod)
    assert snapshot(node) == before, "something of the pod is left on the node (or a user's route is gone)"
    again = module("pod_netns", {"name": pod, "host_ifname": HOST, "state": "absent"}, ns=node)
    assert not again.changed and again["commands"] == []


def test_absent_on_a_half_built_pod(module, node, namespaces):
    pod = namespaces.add("p")        # the namespace only: no veth, no route
    before = snapshot(node)
    result = module("pod_netns", {"name": pod, "host_ifname": HOST, "state": "absent"}, ns=node)
    assert result.changed and not result.failed, result
    assert not os.path.exists("/run/netns/" + pod)
    assert dict(snapshot(node), netns=None) == dict(before, netns=None)


def test_stale_namespace_is_recreated_or_removed(module, node, namespaces):
    pod = namespaces.name("p")

    def make_stale():
        # What a plain `ip netns add` under `ip netns exec` leaves behind: a file, no namespace.
        sh("ip", "netns", "exec", node, "ip", "netns", "add", pod)
        assert os.path.exists("/run/netns/" + pod)
        assert sh("ip", "netns", "exec", pod, "true", check=False) == "" and not usable_ns(pod)

    def usable_ns(name):
        return sh("ip", "-n", name, "link", "show", "lo", check=False) != ""

    make_stale()
    fixed = module("pod_netns", args(pod), ns=node)
    assert fixed.changed, fixed
    words = argv_words(fixed)
    assert words[0].endswith("ip netns del " + pod) and words[1].endswith("ip netns add " + pod)
    assert usable_from_root(pod)
    assert not module("pod_netns", args(pod), ns=node).changed

    assert module("pod_netns", {"name": pod, "host_ifname": HOST, "state": "absent"}, ns=node).changed
    make_stale()
    removed = module("pod_netns", {"name": pod, "host_ifname": HOST, "state": "absent"}, ns=node)
    assert removed.changed and not os.path.exists("/run/netns/" + pod)


@pytest.mark.parametrize("kind", ["bridge", "veth-in-node", "veth-to-other-ns", "other-pods-veth"])
def test_foreign_host_device_is_never_touched(module, node, namespaces, kind):
    pod = namespaces.name("p")
    if kind == "bridge":
        sh("ip", "-n", node, "link", "add", HOST, "type", "bridge", "stp_state", "0")
    elif kind == "veth-in-node":
        sh("ip", "-n", node, "link", "add", HOST, "type", "veth", "peer", "name", "other0")
        sh("ip", "-n", node, "link", "set", "other0", "up")
    elif kind == "veth-to-other-ns":
        other = namespaces.add("o")
        sh("ip", "-n", node, "link", "add", HOST, "type", "veth", "peer", "name", "eth0", "netns", other)
        sh("ip", "-n", other, "link", "set", "eth0", "up")
    else:
        # Another pod owns HOST; this pod exists too, with its own (differently named) veth.
        other = namespaces.name("p")
        assert module("pod_netns", args(other, address="192.168.10.20/24"), ns=node).changed
        assert module("pod_netns", args(pod, host_ifname="veth-pod-b"), ns=node).changed
    sh("ip", "-n", node, "link", "set", HOST, "up")
    before = node_snapshot(settle(node))
    result = module("pod_netns", args(pod), ns=node)
    assert result.failed, result
    assert result["msg"].startswith("host_ifname:") and HOST in result["msg"] and "not touch" in result["msg"]
    assert result.get("commands") in (None, [])
    assert node_snapshot(node) == before

    absent = module("pod_netns", {"name": pod, "host_ifname": HOST, "state": "absent"}, ns=node)
    assert not absent.failed, absent
    assert any(HOST in w and "untouched" in w for w in absent.get("warnings", [])), absent
    assert [l["ifname"] for l in ipj(node, "link", "show", HOST)] == [HOST]
    assert not any(HOST in " ".join(c) for c in absent["commands"])


def test_pod_must_not_be_the_node(module, node):
    before = snapshot(node)
    result = module("pod_netns", args(node), ns=node)
    assert result.failed and result["msg"].startswith("name:") and "node" in result["msg"], result
    result = module("pod_netns", dict(args(node), state="absent"), ns=node)
    assert result.failed and result["msg"].startswith("name:"), result
    assert snapshot(node) == before and usable_from_root(node)


def test_given_host_ifname_too_long(module, node, namespaces):
    # A long pod name alone is fine (a hashed veth name, test_site); a given name is taken as is.
    pod = namespaces.name("p")
    before = snapshot(node)
    result = module("pod_netns", {"name": pod, "address": ADDR, "host_ifname": "veth-" + pod}, ns=node)
    assert len("veth-" + pod) > 15
    assert result.failed and result["msg"].startswith("host_ifname:"), result
    assert "veth-" + pod in result["msg"] and "at most 15" in result["msg"]
    assert snapshot(node) == before and not os.path.exists("/run/netns/" + pod)


@pytest.mark.parametrize("overrides, option", [
    (dict(address="192.168.10.10"), "address"),
    (dict(address="192.168.10.0/24"), "address"),
    (dict(address=None), "address"),
    (dict(mtu=10), "mtu"),
    (dict(ifname="a" * 16), "ifname"),
    (dict(ifname="-eth0"), "ifname"),
    (dict(ifname="eth 0"), "ifname"),
    (dict(ifname="eth0;reboot"), "ifname"),
    (dict(host_ifname="-veth"), "host_ifname"),
    (dict(host_ifname="veth;x"), "host_ifname"),
    (dict(name="-pod"), "name"),
    (dict(name="pod x"), "name"),
    (dict(name="pod;x"), "name"),
    (dict(gateway="169.254.10"), "gateway"),
    (dict(gateway="224.0.0.1"), "gateway"),
    (dict(netns="-x"), "netns"),
])
def test_bad_input_is_refused_before_any_change(module, node, namespaces, overrides, option):
    pod = namespaces.name("p")
    before = snapshot(node)
    params = args(pod, **overrides)
    if overrides.get("address", "") is None:
        del params["address"]
    result = module("pod_netns", params, ns=node)
    assert result.failed and option in result["msg"], result
    assert result.get("commands") in (None, [])
    assert snapshot(node) == before and not os.path.exists("/run/netns/" + pod)


def test_netns_option_from_the_root_mount_namespace(module, node, namespaces):
    pod = namespaces.name("p")
    params = args(pod, netns=node)
    result = module("pod_netns", params)        # no `ip netns exec`: ip -n NODE / ip netns exec NODE sysctl
    assert result.changed, result
    words = argv_words(result)
    assert words[0] == "ip netns add " + pod, "no nsenter needed from the root mount namespace"
    assert any(w.startswith("ip -n %s link add %s" % (node, HOST)) for w in words)
    assert any(w.startswith("ip netns exec %s " % node) and "sysctl -w" in w for w in words)
    assert usable_from_root(pod) and podnet_routes(node) == [("192.168.10.10", HOST)]
    assert sysctl(node, "net.ipv4.conf.%s.proxy_arp" % HOST) == "1"
    assert not module("pod_netns", params).changed
    assert module("pod_netns", dict(params, state="absent")).changed
    assert not os.path.exists("/run/netns/" + pod) and podnet_routes(node) == []
    assert not module("pod_netns", dict(params, state="absent")).changed


def test_several_pods_in_one_call(module, node, namespaces):
    """The pods role's call: every pod of the node, validated and planned before anything changes."""
    a, b, c = namespaces.name("p"), namespaces.name("p"), namespaces.name("p")
    pods = [dict(name=a, host_ifname="veth-pa", address="192.168.10.10/24", mtu=1450),
            dict(name=b, host_ifname="veth-pb", address="192.168.10.11/24", mtu=1450)]
    before = snapshot(node)
    check = module("pod_netns", {"pods": pods}, ns=node, check=True, diff=True)
    assert check.changed and snapshot(node) == before and not os.path.exists("/run/netns/" + a)
    assert set(check["diff"]["before"]) == {a, b}

    first = module("pod_netns", {"pods": pods}, ns=node)
    assert first.changed and [p["name"] for p in first["pods"]] == [a, b] and all(p["changed"] for p in first["pods"])
    assert usable_from_root(a) and usable_from_root(b)
    assert podnet_routes(node) == [("192.168.10.10", "veth-pa"), ("192.168.10.11", "veth-pb")]
    ping(a, "192.168.10.11")
    again = module("pod_netns", {"pods": pods}, ns=node, diff=True)
    assert not again.changed and again["commands"] == [] and again["diff"]["before"] == again["diff"]["after"]

    # One pod drifts, one is added: only those two change.
    sh("ip", "link", "set", "veth-pb", "down", ns=node)
    more = pods + [dict(name=c, host_ifname="veth-pc", address="192.168.10.12/24")]
    changed = module("pod_netns", {"pods": more}, ns=node)
    assert [p["changed"] for p in changed["pods"]] == [False, True, True], changed

    # A bad entry anywhere in the list: refused, naming it, before any pod changes.
    now = snapshot(node)
    bad = [dict(more[0], state="absent"), dict(name=namespaces.name("p"), host_ifname="veth-pd", address="192.168.10.300/24")]
    refused = module("pod_netns", {"pods": bad}, ns=node)
    assert refused.failed and refused["msg"].startswith("pods[1].address"), refused
    assert snapshot(node) == now and os.path.exists("/run/netns/" + a)
    dup = module("pod_netns", {"pods": [more[0], dict(more[1], host_ifname="veth-pa")]}, ns=node)
    assert dup.failed and "pods[1].host_ifname: 'veth-pa' is already pods[0]'s" in dup["msg"], dup

    gone = module("pod_netns", {"pods": [dict(name=p["name"], host_ifname=p["host_ifname"], state="absent")
                                         for p in more]}, ns=node)
    assert gone.changed and podnet_routes(node) == [] and not any(os.path.exists("/run/netns/" + p) for p in (a, b, c))
