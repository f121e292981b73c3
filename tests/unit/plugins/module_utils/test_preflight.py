"""The pre-flight probe's pure parts: sampling, the probes per mode, the matrix, the MTU derived."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import preflight
from ansible_collections.podnet.fabric.plugins.module_utils.model import Cluster
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError
from ansible_collections.podnet.fabric.plugins.modules import preflight as module

HOSTS = {
    "h1": {"node_ip": "10.57.4.20", "pod_cidr": "192.168.10.0/24"},
    "h2": {"node_ip": "10.57.4.21", "pod_cidr": "192.168.11.0/24"},
    "h3": {"node_ip": "10.57.5.30", "pod_cidr": "192.168.12.0/24"},
}
FACT = {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True}
FACTS = dict((h, dict(FACT)) for h in HOSTS)
READ = sorted(HOSTS)


def cluster(**settings):
    return Cluster.from_inventory(HOSTS, dict(settings))


def everything(the, facts=None, drop=lambda sender, receiver, probe: False):
    """What every node hears when the underlay carries every probe but those ``drop`` says."""
    facts = facts or FACTS
    received = dict((h, {}) for h in READ)
    for sender in READ:
        plan = preflight.plan(the, sender, facts.get, READ, "t0")
        for peer_ip in plan["peers"]:
            receiver = [h for h in READ if HOSTS[h]["node_ip"] == peer_ip][0]
            received[receiver][HOSTS[sender]["node_ip"]] = [
                p for p in plan["probes"] if not drop(sender, receiver, p)]
    return received


def test_small_clusters_probe_every_pair_both_ways():
    assert preflight.offsets(3, 16, "t") == [1, 2]
    assert preflight.offsets(17, 16, "t") == list(range(1, 17))
    send, hear = preflight.peers_of(cluster(), "h1", READ, "t", 16)
    assert send == ["h2", "h3"] and sorted(hear) == ["h2", "h3"]


def test_large_clusters_sample_a_ring_and_random_offsets_the_same_for_every_node():
    steps = preflight.offsets(1000, 16, "run1")
    assert steps[:12] == list(range(1, 13)) and len(steps) == 16 == len(set(steps))
    assert all(13 <= s <= 999 for s in steps[12:])
    assert preflight.offsets(1000, 16, "run1") == steps          # the same token, the same sample
    assert preflight.offsets(1000, 16, "run2") != steps          # another run, other random peers
    hosts = dict(("n%03d" % i, {"node_ip": "10.1.%d.%d" % (i // 200, i % 200 + 1),
                                "pod_cidr": "10.200.%d.0/24" % i}) for i in range(40))
    the = Cluster.from_inventory(hosts, {})
    names = sorted(hosts)
    sends = dict((n, preflight.peers_of(the, n, names, "x", 8)[0]) for n in names)
    for name in names:
        hears = preflight.peers_of(the, name, names, "x", 8)[1]
        assert sorted(hears) == sorted(n for n in names if name in sends[n])
        assert len(sends[name]) == 8


def test_unread_nodes_are_neither_probed_nor_expected():
    send, hear = preflight.peers_of(cluster(), "h1", ["h1", "h2"], "t", 16)
    assert send == ["h2"] and hear == ["h2"]


@pytest.mark.parametrize("mode, kinds, top", [
    ("vxlan", ["icmp", "udp"], 1500), ("ipip", ["icmp", "ipip"], 1500), ("host-gw", ["icmp"], 1500),
    ("bgp", ["icmp"], 1500)])
def test_probes_per_mode(mode, kinds, top):
    plan = preflight.plan(cluster(mode=mode), "h1", FACTS.get, READ, "t0")
    assert plan["kinds"] == kinds and plan["peers"] == ["10.57.4.21", "10.57.5.30"]
    encap, mtu_kind = preflight.kinds(mode)
    assert plan["probes"][:2 if encap else 1] == [["icmp", 100]] + ([[encap, 100]] if encap else [])
    ladder = [size for kind, size in plan["probes"] if kind == mtu_kind and size > 100]
    assert ladder[0] == top and ladder == sorted(ladder, reverse=True) and 1400 in ladder and 576 in ladder
    assert plan["expect"]["10.57.4.21"] == plan["probes"]


def test_an_explicit_mtu_probes_what_it_needs():
    plan = preflight.plan(cluster(mode="vxlan", mtu=1400), "h1", FACTS.get, READ, "t0")
    assert ["udp", 1450] in plan["probes"] and ["udp", 1500] not in plan["probes"]


def test_all_passing_is_all_ok():
    the = cluster()
    result = preflight.verdict(the, FACTS, everything(the), READ, "t0")
    assert result["errors"] == [] and result["path_mtu"] == {}
    rows = result["lines"][2:]
    assert rows[0].split() == ["h1", "-", "ok", "ok"]


@pytest.mark.parametrize("mode, kind, text", [
    ("vxlan", "udp", "UDP to port 4789 (vxlan) dropped (ICMP echo passes)"),
    ("ipip", "ipip", "IP protocol 4 (ipip) dropped (ICMP echo passes)")])
def test_a_pair_dropping_the_encapsulation_is_named(mode, kind, text):
    the = cluster(mode=mode)
    received = everything(the, drop=lambda s, r, p: {s, r} == {"h1", "h3"} and p[0] == kind)
    result = preflight.verdict(the, FACTS, received, READ, "t0")
    assert result["errors"] == ["h1 -> h3 (10.57.4.20 -> 10.57.5.30): " + text,
                                "h3 -> h1 (10.57.5.30 -> 10.57.4.20): " + text]
    assert "%s dropped" % kind in result["lines"][2] and result["lines"][3].split() == ["h2", "ok", "-", "ok"]


def test_nothing_arriving_is_named():
    the = cluster()
    received = everything(the, drop=lambda s, r, p: s == "h2" and r == "h1")
    errors = preflight.verdict(the, FACTS, received, READ, "t0")["errors"]
    assert errors == ["h2 -> h1 (10.57.4.21 -> 10.57.4.20): nothing arrived (ICMP echo, UDP to port 4789 (vxlan))"]


def test_a_narrower_path_derives_the_mtu_of_both_ends():
    the = cluster()
    received = everything(the, drop=lambda s, r, p: "h3" in (s, r) and p[1] > 1400)
    result = preflight.verdict(the, FACTS, received, READ, "t0")
    assert result["errors"] == [] and result["path_mtu"] == {"h1": 1400, "h2": 1400, "h3": 1400}
    assert result["derived"] == {"h1": 1350, "h2": 1350, "h3": 1350}
    assert "path mtu 1400" in result["lines"][2]
    fact = dict(FACT, path_mtu=1400)
    assert the.node_plan("h1", {"h1": fact})["mtu"] == 1350
    assert cluster(mode="ipip").node_plan("h1", {"h1": fact})["mtu"] == 1380


def test_an_explicit_mtu_the_path_cannot_carry_is_refused():
    the = cluster(mtu=1450)
    received = everything(the, drop=lambda s, r, p: "h3" in (s, r) and p[1] > 1400)
    errors = preflight.verdict(the, FACTS, received, READ, "t0")["errors"]
    assert errors[0] == ("host h1: podnet_mtu: 1450 is larger than the path h1 -> h3 carries in vxlan: "
                         "path MTU 1400 - 50 = 1350")


def test_a_path_below_the_ladder_or_the_floor_is_refused():
    the = cluster()
    received = everything(the, drop=lambda s, r, p: s == "h1" and r == "h2" and p[1] > 100)
    errors = preflight.verdict(the, FACTS, received, READ, "t0")["errors"]
    assert errors == ["h1 -> h2 (10.57.4.20 -> 10.57.4.21): no UDP to port 4789 (vxlan) with DF of 576 bytes "
                      "or more arrived (the path MTU is below 576)"]
    received = everything(the, drop=lambda s, r, p: s == "h1" and r == "h2" and p[1] > 600)
    errors = preflight.verdict(the, FACTS, received, READ, "t0")["errors"]
    assert errors[0].startswith("host h1: podnet_mtu: the path h1 -> h2 has an MTU of 576: 576 - 50 = 526 is below 576")


def test_a_9000_underlay_needs_9000_and_gives_8950():
    facts = dict((h, dict(FACT, mtu=9000)) for h in HOSTS)
    the = cluster()
    assert preflight.plan(the, "h1", facts.get, READ, "t")["probes"][2] == ["udp", 9000]
    result = preflight.verdict(the, facts, everything(the, facts), READ, "t")
    assert result["path_mtu"] == {} and the.node_plan("h1", facts)["mtu"] == 8950
    # A peer whose own link is only 1500: the 9000 node derives 1450 towards it instead of 8950.
    facts["h3"] = dict(FACT)
    received = everything(the, facts, drop=lambda s, r, p: r == "h3" and p[1] > 1500)
    assert preflight.verdict(the, facts, received, READ, "t")["derived"] == {"h1": 1450, "h2": 1450}


def test_a_node_that_did_not_collect_is_not_judged():
    the = cluster()
    received = everything(the)
    received["h3"] = None
    result = preflight.verdict(the, FACTS, received, READ, "t0")
    assert result["errors"] == [] and "not collected" in result["lines"][2]


def test_large_clusters_show_only_the_pairs_not_ok():
    hosts = dict(("n%02d" % i, {"node_ip": "10.1.0.%d" % (i + 1), "pod_cidr": "10.200.%d.0/24" % i}) for i in range(40))
    the = Cluster.from_inventory(hosts, {})
    names = sorted(hosts)
    facts = dict((n, dict(FACT)) for n in names)
    received = dict((n, {}) for n in names)
    for sender in names:
        plan = preflight.plan(the, sender, facts.get, names, "t", 16)
        for ip in plan["peers"]:
            receiver = [n for n in names if hosts[n]["node_ip"] == ip][0]
            received[receiver][hosts[sender]["node_ip"]] = [] if (sender, receiver) == ("n00", "n01") else plan["probes"]
    result = preflight.verdict(the, facts, received, names, "t", 16)
    assert result["lines"][1] == "640 pairs probed, 1 not ok" and result["lines"][2] == "n00 -> n01: nothing arrived"


def test_settings_are_validated():
    assert cluster().settings["preflight"] is True and cluster().settings["preflight_peers"] == 16
    assert cluster(preflight="false").settings["preflight"] is False
    with pytest.raises(PodnetError, match="podnet_preflight: must be true or false"):
        cluster(preflight="maybe")
    with pytest.raises(PodnetError, match="podnet_preflight_peers"):
        cluster(preflight_peers=0)


@pytest.mark.parametrize("kind", ["icmp", "ipip", "udp"])
def test_a_probe_is_the_size_it_says_and_is_recognised(kind):
    import socket
    import struct
    payload = module.packet(kind, 1400, "abc", "10.57.4.20", "10.57.4.21")
    proto = module.PROTO[kind]
    udp = struct.pack("!HHHH", 40000, 4789, len(payload) + 8, 0) if kind == "udp" else b""
    total = 20 + len(udp) + len(payload)
    assert total == 1400
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, proto, 0,
                         socket.inet_aton("10.57.4.21"), socket.inet_aton("10.57.4.20"))
    assert module.parse(header + udp + payload, "abc", 4789) == ("10.57.4.21", kind, 1400)
    assert module.parse(header + udp + payload, "abd", 4789) is None
    if kind == "icmp":
        assert module._checksum(payload) == 0


def test_a_joining_node_dropped_by_the_peers_own_guard_is_not_blocked():
    the = cluster()
    facts = dict((h, dict(FACT, tunnels={"vxlan0": "vxlan"})) for h in ("h1", "h2"))
    facts["h3"] = dict(FACT, tunnels={})
    received = everything(the, facts, drop=lambda s, r, p: s == "h3" and p[0] == "udp")
    result = preflight.verdict(the, facts, received, READ, "t0")
    assert result["errors"] == [] and "new to guard" in result["lines"][4]
    # Both ends already converged: a drop is the underlay's, and stops the run.
    facts["h3"] = dict(FACT, tunnels={"vxlan0": "vxlan"})
    assert len(preflight.verdict(the, facts, received, READ, "t0")["errors"]) == 2
