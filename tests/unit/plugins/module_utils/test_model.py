"""Unit tests for the cluster model: inventory validation and per-node plans (no kernel)."""

import copy
import os

import pytest
import yaml

from ansible_collections.podnet.fabric.plugins.module_utils import model
from ansible_collections.podnet.fabric.plugins.module_utils.model import Cluster
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

SEED = {
    "host1": {"node_ip": "10.57.4.20", "pod_cidr": "192.168.10.0/24", "pods": [{"name": "pod-a", "ip": "192.168.10.10"}]},
    "host2": {"node_ip": "10.57.4.21", "pod_cidr": "192.168.11.0/24", "pods": [{"name": "pod-b", "ip": "192.168.11.10"}]},
}
FACTS = {"host1": {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True},
         "host2": {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True}}


def chain_rules(plan, index):
    """The rules of one of the plan's chains: 0 forward, 1 policy, 2 INPUT guard."""
    return plan["iptables"][index]["rules"]


def guard(plan):
    return chain_rules(plan, 2)


def policy(plan):
    return chain_rules(plan, 1)


def hosts(**changes):
    data = copy.deepcopy(SEED)
    for host, values in changes.items():
        data[host].update(values)
    return data


def test_seed_is_valid_and_defaults_apply():
    cluster = Cluster.from_inventory(SEED)
    assert cluster.mode == "vxlan" and cluster.settings["vxlan_vni"] == 100
    cluster.check_underlay(FACTS)


@pytest.mark.parametrize("data, settings, message", [
    (hosts(host1={"node_ip": None}), {}, "host host1: node_ip: is required"),
    (hosts(host1={"node_ip": "10.57.4"}), {}, "host host1: node_ip: '10.57.4' is not an IPv4 address"),
    (hosts(host2={"node_ip": "10.57.4.20"}), {}, "host host2: node_ip: 10.57.4.20 is also the node_ip of host host1"),
    (hosts(host1={"pod_cidr": "192.168.10.0/33"}), {}, "host host1: pod_cidr:"),
    (hosts(host2={"pod_cidr": "192.168.10.128/25", "pods": []}), {}, "host host2: pod_cidr: 192.168.10.128/25 overlaps 192.168.10.0/24 of host host1"),
    (hosts(host1={"pods": [{"name": "pod-a", "ip": "192.168.11.5"}]}), {}, "host host1: pods[0].ip: 192.168.11.5 is outside the node's pod_cidr"),
    (hosts(host1={"pods": [{"name": "pod-a", "ip": "192.168.10.0"}]}), {}, "is the network address"),
    (hosts(host1={"pods": [{"name": "pod-a", "ip": "192.168.10.255"}]}), {}, "is the broadcast address"),
    (hosts(host1={"pods": [{"name": "pod-a", "ip": "192.168.10.1"}]}), {}, "is already the node's own tunnel address"),
    (hosts(host1={"pods": [{"name": "p1", "ip": "192.168.10.10"}, {"name": "p2", "ip": "192.168.10.10"}]}), {},
     "pods[1].ip: 192.168.10.10 is already used by pod p1"),
    (hosts(host2={"pods": [{"name": "pod-a", "ip": "192.168.11.10"}]}), {}, "host host2: pods[0].name: pod pod-a is also defined on host host1"),
    (hosts(host1={"pods": [{"name": "-pod", "ip": "192.168.10.10"}]}), {}, "host host1: pods[0].name:"),
    (hosts(host1={"pods": [{"name": "a-pod", "ip": "192.168.10.10", "host_ifname": "veth-a-very-long-pod-name"}]}), {},
     "host host1: pods[0].host_ifname: interface name 'veth-a-very-long-pod-name'"),
    (hosts(host1={"node_iface": "eth0;reboot"}), {}, "host host1: node_iface:"),
    (SEED, {"mode": "calico"}, "mode: unknown mode 'calico'"),
    (SEED, {"vxlan_fdb": "gossip"}, "podnet_vxlan_fdb: unknown FDB strategy"),
    (SEED, {"vxlan_vni": 0}, "podnet_vxlan_vni: VNI 0 is out of range"),
    (SEED, {"vxlan_vni": 2 ** 24}, "podnet_vxlan_vni"),
    (SEED, {"vxlan_port": 0}, "podnet_vxlan_port"),
    (SEED, {"ipip_ttl": 300}, "podnet_ipip_ttl"),
    (SEED, {"mtu": 10}, "podnet_mtu: MTU 10 is out of range"),
    (SEED, {"vxlan_group": "10.0.0.1"}, "podnet_vxlan_group: 10.0.0.1 is not a multicast address"),
    (SEED, {"vxlan_device": "x" * 16}, "podnet_vxlan_device"),
    (SEED, {"pod_gateway": "192.168.10.24"}, "contains the pod gateway"),
])
def test_inventory_errors_name_host_and_variable(data, settings, message):
    with pytest.raises(PodnetError) as err:
        Cluster.from_inventory(data, settings)
    assert message in str(err.value)


def test_underlay_checks():
    cluster = Cluster.from_inventory(SEED, {"mode": "host-gw"})
    far = copy.deepcopy(FACTS)
    far["host2"]["prefixlen"] = 32  # host1 is not in host2's subnet any more
    with pytest.raises(PodnetError, match="host host2: mode: host-gw needs every node on one L2 segment, but peer"):
        cluster.check_underlay(far)
    no_gw = copy.deepcopy(FACTS)
    no_gw["host1"]["gateway_route"] = False
    with pytest.raises(PodnetError, match="host host1: podnet_pod_gateway: the node has no route"):
        cluster.check_underlay(no_gw)
    big = Cluster.from_inventory(SEED, {"mode": "ipip", "mtu": 1490})
    with pytest.raises(PodnetError, match=r"podnet_mtu: 1490 is larger than the underlay eth0 allows for ipip \(1500 - 20 = 1480\)"):
        big.check_underlay(FACTS)
    wrong_iface = Cluster.from_inventory(hosts(host1={"node_iface": "eth1"}))
    with pytest.raises(PodnetError, match="host host1: node_iface: eth1 does not hold node_ip"):
        wrong_iface.check_underlay(FACTS)


def test_host_gw_plan():
    plan = Cluster.from_inventory(SEED, {"mode": "host-gw"}).node_plan("host1", FACTS)
    assert plan["mtu"] == 1500 and plan["tunnel"] is None and plan["fdb"] is None
    assert plan["routes"] == [
        {"dst": "192.168.10.10/32", "dev": "veth-pod-a", "scope": "link"},
        {"dst": "192.168.11.0/24", "via": "10.57.4.21", "dev": "eth0", "onlink": True}]
    assert plan["pods"][0]["address"] == "192.168.10.10/24" and plan["pods"][0]["gateway"] == "169.254.10.24"
    # Exactly pod_netns's options, for its pods list (one call per node).
    assert plan["pods"] == [{"name": "pod-a", "address": "192.168.10.10/24", "host_ifname": "veth-pod-a",
                             "gateway": "169.254.10.24", "mtu": 1500}]
    # Teardown: the same entries with state absent (roles/teardown).
    assert [dict((k, p[k]) for k in ("name", "host_ifname")) for p in plan["pods"]] == [
        {"name": "pod-a", "host_ifname": "veth-pod-a"}]
    assert {t["kind"] for t in plan["absent_tunnels"]} == {"ipip", "vxlan"}


def test_ipip_plan_matches_the_seed():
    plan = Cluster.from_inventory(SEED, {"mode": "ipip"}).node_plan("host1", FACTS)
    assert plan["tunnel"] == {"name": "mustang.tun0", "kind": "ipip", "local": "10.57.4.20", "ttl": 64,
                              "mtu": 1480, "addresses": ["192.168.10.1/32"]}
    assert plan["routes"][1] == {"dst": "192.168.11.0/24", "via": "10.57.4.21", "dev": "mustang.tun0", "onlink": True}
    assert plan["absent_tunnels"] == [{"name": "vxlan0", "kind": "vxlan"}]
    assert plan["pods"][0]["mtu"] == 1480


@pytest.mark.parametrize("strategy", ["static", "flood", "multicast"])
def test_vxlan_plans(strategy):
    plan = Cluster.from_inventory(SEED, {"vxlan_fdb": strategy}).node_plan("host1", FACTS)
    tunnel = plan["tunnel"]
    assert tunnel["vni"] == 100 and tunnel["port"] == 4789 and tunnel["mtu"] == 1450
    assert tunnel["mac"] == "0e:50:0a:39:04:14" and tunnel["learning"] is (strategy != "static")
    assert plan["routes"][1] == {"dst": "192.168.11.0/24", "via": "192.168.11.1", "dev": "vxlan0", "onlink": True}
    fdb = plan["fdb"]
    if strategy == "static":
        assert fdb["neighbors"] == [{"ip": "192.168.11.1", "mac": "0e:50:0a:39:04:15"}]
        assert fdb["entries"] == [{"mac": "0e:50:0a:39:04:15", "dst": "10.57.4.21"}]
    elif strategy == "flood":
        assert fdb["entries"] == [{"mac": "00:00:00:00:00:00", "dst": "10.57.4.21"}] and fdb["neighbors"] == []
    else:
        assert tunnel["group"] == "239.1.1.1" and fdb["entries"] == []


def test_hybrid_routes_on_link_peers_directly():
    three = hosts()
    three["host3"] = {"node_ip": "10.57.5.30", "pod_cidr": "192.168.12.0/24"}
    facts = dict(FACTS, host3={"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True})
    with pytest.raises(PodnetError, match="host-gw needs every node on one L2 segment, but peer"):
        Cluster.from_inventory(three, {"mode": "host-gw"}).check_underlay(facts)
    cluster = Cluster.from_inventory(three, {"mode": "vxlan", "direct_routing": True})
    cluster.check_underlay(facts)
    plan = cluster.node_plan("host1", facts)
    assert {"dst": "192.168.11.0/24", "via": "10.57.4.21", "dev": "eth0", "onlink": True} in plan["routes"]
    assert {"dst": "192.168.12.0/24", "via": "192.168.12.1", "dev": "vxlan0", "onlink": True} in plan["routes"]
    assert plan["fdb"]["entries"] == [{"mac": "0e:50:0a:39:05:1e", "dst": "10.57.5.30"}]
    with pytest.raises(PodnetError, match="podnet_vxlan_fdb: multicast needs every node in one subnet"):
        Cluster.from_inventory(three, {"vxlan_fdb": "multicast"}).check_underlay(facts)


def test_role_argument_spec_defaults_agree_with_the_model():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    with open(os.path.join(root, "roles", "validate", "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    for key, value in model.DEFAULTS.items():
        name = "mode" if key == "mode" else "podnet_" + key
        assert name in options, name
        assert options[name].get("default") == value, name


# -- encapsulation guard, network policy, offload (issue 5) ---------------------------------

POLICY = [{"from": "pod-a", "to": "pod-b", "action": "deny"}]


def test_guard_accepts_encapsulation_from_every_other_node_only():
    three = hosts()
    three["host3"] = {"node_ip": "10.57.5.30", "pod_cidr": "192.168.12.0/24"}
    facts = dict(FACTS, host3={"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True})
    vxlan = Cluster.from_inventory(three, {"vxlan_port": 8472, "direct_routing": True}).node_plan("host1", facts)
    assert [c["name"] for c in vxlan["iptables"]][1:] == ["PODNET-POLICY", "PODNET-INPUT"]
    # host2 is routed directly (on-link), yet still allowed: its own view of the underlay may differ.
    assert guard(vxlan) == [
        {"protocol": "udp", "destination_port": 8472, "source": "10.57.4.21", "jump": "ACCEPT", "comment": "podnet peer host2"},
        {"protocol": "udp", "destination_port": 8472, "source": "10.57.5.30", "jump": "ACCEPT", "comment": "podnet peer host3"},
        {"protocol": "udp", "destination_port": 8472, "jump": "DROP", "comment": "podnet guard"}]
    ipip = Cluster.from_inventory(three, {"mode": "ipip"}).node_plan("host3", facts)
    assert [(r.get("source"), r["protocol"], r["jump"]) for r in guard(ipip)] == [
        ("10.57.4.20", "4", "ACCEPT"), ("10.57.4.21", "4", "ACCEPT"), (None, "4", "DROP")]
    assert guard(Cluster.from_inventory(SEED, {"mode": "host-gw"}).node_plan("host1", FACTS)) == []


def test_module_invocations_do_not_grow_with_nodes():
    """One rule per peer, all in one list: the roles hand each list to one task."""
    many = dict(("h%02d" % i, {"node_ip": "10.57.4.%d" % (10 + i), "pod_cidr": "192.168.%d.0/24" % i})
                for i in range(1, 41))
    facts = dict((h, FACTS["host1"]) for h in many)
    plan = Cluster.from_inventory(many).node_plan("h01", facts)
    assert len(guard(plan)) == 40 and guard(plan)[-1]["jump"] == "DROP"


def test_absent_tunnels_only_those_the_node_has():
    facts = copy.deepcopy(FACTS)
    facts["host1"]["tunnels"] = {"vxlan0": "vxlan", "tunl0": "ipip", "mustang.tun0": "vxlan"}
    plan = Cluster.from_inventory(SEED, {"mode": "host-gw"}).node_plan("host1", facts)
    # mustang.tun0 exists but is not podnet's kind for that name: not podnet's to remove.
    assert plan["absent_tunnels"] == [{"name": "vxlan0", "kind": "vxlan"}]
    facts["host1"]["tunnels"] = {}
    assert Cluster.from_inventory(SEED, {"mode": "host-gw"}).node_plan("host1", facts)["absent_tunnels"] == []


def test_iptables_chains_one_task_forward_policy_input():
    cluster = Cluster.from_inventory(SEED, {"mode": "vxlan", "policy": [{"from": "pod-a", "to": "pod-b"}]})
    chains = cluster.node_plan("host1", FACTS)["iptables"]
    assert [(c["name"], c.get("parent"), c["state"]) for c in chains] == [
        ("PODNET-FORWARD", "FORWARD", "present"), ("PODNET-POLICY", None, "present"), ("PODNET-INPUT", "INPUT", "present")]
    assert [(r.get("ctstate"), r.get("source"), r.get("destination"), r["jump"]) for r in chains[0]["rules"]] == [
        (["ESTABLISHED", "RELATED"], None, None, "ACCEPT"), (None, None, None, "PODNET-POLICY"),
        (None, "192.168.10.0/24", None, "ACCEPT"), (None, None, "192.168.10.0/24", "ACCEPT")]
    host_gw = Cluster.from_inventory(SEED, {"mode": "host-gw"}).node_plan("host1", FACTS)["iptables"]
    assert [(c["name"], c["state"]) for c in host_gw] == [
        ("PODNET-FORWARD", "present"), ("PODNET-POLICY", "absent"), ("PODNET-INPUT", "absent")]
    assert "PODNET-POLICY" not in [r["jump"] for r in host_gw[0]["rules"]]


def test_chain_names_follow_podnet_iptables_chain():
    plan = Cluster.from_inventory(SEED, {"iptables_chain": "KUBE-PODS"}).node_plan("host1", FACTS)
    assert tuple(c["name"] for c in plan["iptables"]) == (
        "KUBE-PODS", "KUBE-PODS-POLICY", "KUBE-PODS-INPUT")
    with pytest.raises(PodnetError, match="podnet_iptables_chain: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' is too long"):
        Cluster.from_inventory(SEED, {"iptables_chain": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})


def test_policy_resolves_pod_names_on_the_nodes_of_both_pods():
    three = hosts()
    three["host3"] = {"node_ip": "10.57.4.22", "pod_cidr": "192.168.12.0/24",
                      "pods": [{"name": "pod-c", "ip": "192.168.12.10"}]}
    facts = dict(FACTS, host3=FACTS["host1"])
    cluster = Cluster.from_inventory(three, {"policy": [{"from": "pod-a", "to": "pod-b"}]})
    rule = {"source": "192.168.10.10", "destination": "192.168.11.10", "ctstate": ["NEW"], "jump": "DROP",
            "comment": "podnet policy pod-a -> pod-b"}
    assert policy(cluster.node_plan("host1", facts)) == [rule]
    assert policy(cluster.node_plan("host2", facts)) == [rule]
    assert policy(cluster.node_plan("host3", facts)) == []
    assert cluster.settings["policy"][0]["action"] == "deny"
    assert policy(Cluster.from_inventory(SEED).node_plan("host1", FACTS)) == []


@pytest.mark.parametrize("policy, message", [
    ([{"from": "pod-x", "to": "pod-b"}], "podnet_policy[0].from: unknown pod 'pod-x'; the pods are pod-a, pod-b"),
    ([{"from": "pod-a", "to": "192.168.11.10"}], "podnet_policy[0].to: unknown pod '192.168.11.10'"),
    ([{"from": "pod-a"}], "podnet_policy[0].to: unknown pod None"),
    ([{"from": "pod-a", "to": "pod-a"}], "podnet_policy[0]: from and to are both pod-a"),
    ([{"from": "pod-a", "to": "pod-b", "action": "allow"}], "podnet_policy[0].action: unknown action 'allow'"),
    ([{"from": "pod-a", "to": "pod-b", "ports": [80]}], "podnet_policy[0]: unknown key(s) ports"),
    (POLICY + POLICY, "podnet_policy[1]: pod-a -> pod-b is already podnet_policy[0]"),
    (["pod-a -> pod-b"], "podnet_policy[0]: must be a dict"),
    ({"from": "pod-a"}, "podnet_policy: must be a list"),
])
def test_policy_errors_name_the_variable(policy, message):
    with pytest.raises(PodnetError) as err:
        Cluster.from_inventory(SEED, {"policy": policy})
    assert message in str(err.value)


def test_verify_expects_denied_pairs_to_fail_and_probes_mtu_and_capture_elsewhere():
    cluster = Cluster.from_inventory(SEED, {"policy": POLICY})
    one = cluster.verify_plan("host1", FACTS)
    assert {"src": "pod-a", "dst": "192.168.11.10", "expect": False} in one["probes"]
    assert not [p for p in one["probes"] if p.get("df")], "the only remote pod is denied: no PMTU pair"
    two = cluster.verify_plan("host2", FACTS)
    assert {"src": "pod-b", "dst": "192.168.10.10"} in two["probes"]
    assert [p["size"] for p in two["probes"] if p.get("df")] == [1422, 1423]
    assert one["capture"]["src"] == "pod-b" and one["capture"]["dst"] == "192.168.10.10"
    assert Cluster.from_inventory(SEED).verify_plan("host1", FACTS)["capture"]["src"] == "pod-a"


def test_tx_checksum_offload_reaches_the_tunnel_only_when_set():
    assert "tx_checksum_offload" not in Cluster.from_inventory(SEED).node_plan("host1", FACTS)["tunnel"]
    for mode in ("vxlan", "ipip"):
        plan = Cluster.from_inventory(SEED, {"mode": mode, "tx_checksum_offload": False}).node_plan("host1", FACTS)
        assert plan["tunnel"]["tx_checksum_offload"] is False
    # -e podnet_tx_checksum_offload=false arrives as a string.
    assert Cluster.from_inventory(SEED, {"tx_checksum_offload": "false"}).settings["tx_checksum_offload"] is False
    with pytest.raises(PodnetError, match="podnet_tx_checksum_offload: must be true or false, not 'maybe'"):
        Cluster.from_inventory(SEED, {"tx_checksum_offload": "maybe"})


def rp_plan(mode, **rp_filter):
    facts = copy.deepcopy(FACTS)
    facts["host1"]["rp_filter"] = rp_filter
    return Cluster.from_inventory(SEED, {"mode": mode}).node_plan("host1", facts)


def test_rp_filter_off_or_unread_warns_nothing():
    assert rp_plan("ipip", all=0, default=0, eth0=0)["warnings"] == []
    assert Cluster.from_inventory(SEED, {"mode": "ipip"}).node_plan("host1", FACTS)["warnings"] == []


def test_rp_filter_loose_anywhere_pod_traffic_enters_warns_once():
    # conf.all=2 makes every interface loose; the tunnel, not made yet, would take default.
    warnings = rp_plan("ipip", all=2, default=0, eth0=0)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith(
        "host1: rp_filter is loose (2) on eth0, mustang.tun0, veth-pod-a (all=2, default=0)")
    assert rp_plan("ipip", all=0, default=2, eth0=0)["warnings"][0].startswith(
        "host1: rp_filter is loose (2) on mustang.tun0, veth-pod-a (all=0, default=2)")


def test_rp_filter_strict_warns_on_underlay_and_tunnel_not_on_pod_veths():
    warnings = rp_plan("vxlan", all=0, default=1, eth0=1)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("host1: rp_filter is strict (1) on eth0, vxlan0.")
    assert rp_plan("host-gw", all=0, default=0, eth0=0, **{"veth-pod-a": 1})["warnings"] == []


# -- issue 5: bad input is refused before any change (checks added with the safety tests) -------

@pytest.mark.parametrize("data, message", [
    (hosts(host1={"node_ip": "127.0.0.1"}), "host host1: node_ip: 127.0.0.1 is not a unicast address"),
    (hosts(host1={"node_ip": "224.0.0.5"}), "host host1: node_ip: 224.0.0.5 is not a unicast address"),
    (hosts(host1={"node_ip": "0.0.0.0"}), "host host1: node_ip: 0.0.0.0 is not a unicast address"),
    (hosts(host2={"pod_cidr": "224.1.1.0/24", "pods": []}), "host host2: pod_cidr: 224.1.1.0/24 is a multicast"),
    (hosts(host2={"pod_cidr": "127.0.0.0/8", "pods": []}), "host host2: pod_cidr: 127.0.0.0/8 is a multicast, loopback"),
    (hosts(host1={"node_ip": "10.57.4.17"}, host2={"pod_cidr": "10.57.4.16/30", "pods": []}),
     "host host2: pod_cidr: 10.57.4.16/30 contains node_ip 10.57.4.17 of host host1"),
    (hosts(host1={"pods": [{"name": "pod-a", "ip": "192.168.10.10", "adress": "x"}]}), "host host1: pods[0]: unknown key(s) adress"),
    (hosts(host1={"pods": [{"name": "pod-a", "ip": "192.168.10.10"}, {"name": "pod-a", "ip": "192.168.10.11"}]}),
     "host host1: pods[1].name: pod pod-a is listed twice on this host (also pods[0])"),
    (hosts(host1={"pods": [{"name": "p1", "ip": "192.168.10.10", "host_ifname": "veth-x"},
                           {"name": "p2", "ip": "192.168.10.11", "host_ifname": "veth-x"}]}),
     "host host1: pods[1].host_ifname: veth-x is also the host_ifname of pod p1"),
    (hosts(host1={"pods": [{"name": "p1", "ip": "192.168.10.10", "host_ifname": "vxlan0"}]}),
     "host host1: pods[0].host_ifname: vxlan0 is podnet's tunnel device name"),
    (hosts(host1={"node_iface": "eth0", "pods": [{"name": "p1", "ip": "192.168.10.10", "host_ifname": "eth0"}]}),
     "host host1: pods[0].host_ifname: eth0 is the node's underlay interface"),
    (hosts(host1={"pods": [{"name": "p1", "ip": "192.168.10.10", "host_ifname": "veth-" + "x" * 11}]}),
     "host host1: pods[0].host_ifname: interface name 'veth-xxxxxxxxxxx' is 16 characters"),
])
def test_more_inventory_errors_name_host_and_variable(data, message):
    with pytest.raises(PodnetError) as err:
        Cluster.from_inventory(data)
    assert message in str(err.value)


def test_pod_veth_named_like_the_underlay_found_on_the_node_is_refused():
    cluster = Cluster.from_inventory(hosts(host2={"pods": [{"name": "pod-b", "ip": "192.168.11.10", "host_ifname": "eth0"}]}))
    with pytest.raises(PodnetError, match=r"host host2: pods\[0\].host_ifname: eth0 is the node's underlay interface "
                                          r"\(it holds node_ip 10.57.4.21\)"):
        cluster.check_underlay(FACTS)


@pytest.mark.parametrize("value, expected", [("true", True), ("False", False), ("yes", True), ("0", False), (True, True)])
def test_direct_routing_takes_ansible_booleans_given_as_strings(value, expected):
    # `-e podnet_direct_routing=true` arrives as the string "true".
    assert Cluster.from_inventory(SEED, {"direct_routing": value}).settings["direct_routing"] is expected
    with pytest.raises(PodnetError, match="podnet_direct_routing: must be true or false, not 'maybe'"):
        Cluster.from_inventory(SEED, {"direct_routing": "maybe"})


# -- planned once: the cluster travels as data (issue 10) ----------------------------------------

def test_the_cluster_as_data_plans_every_node_as_the_cluster_itself():
    import json
    three = hosts()
    three["host3"] = {"node_ip": "10.57.5.30", "pod_cidr": "192.168.12.0/24",
                      "pods": [{"name": "pod-c", "ip": "192.168.12.10", "host_ifname": "veth-c"}]}
    facts = dict(FACTS, host3=FACTS["host1"])
    cluster = Cluster.from_inventory(three, {"policy": POLICY, "direct_routing": True})
    again = Cluster.from_data(json.loads(json.dumps(cluster.to_data())))
    for host in three:
        assert again.node_plan(host, facts) == cluster.node_plan(host, facts)
        assert again.verify_plan(host, facts) == cluster.verify_plan(host, facts)


@pytest.mark.parametrize("cidrs, message", [
    # Nested blocks far apart in name order and in address order are still found.
    (["10.0.0.0/16", "10.1.0.0/24", "10.0.200.0/24"], "host h3: pod_cidr: 10.0.200.0/24 overlaps 10.0.0.0/16 of host h1"),
    (["10.2.0.0/24", "10.0.0.0/8", "10.9.9.0/24"], "overlaps"),
])
def test_overlaps_found_among_many(cidrs, message):
    data = dict(("h%d" % (i + 1), {"node_ip": "172.16.0.%d" % (i + 1), "pod_cidr": cidr}) for i, cidr in enumerate(cidrs))
    with pytest.raises(PodnetError) as err:
        Cluster.from_inventory(data)
    assert message in str(err.value)


@pytest.mark.parametrize("mtu, ok", [(100, False), (575, False), (576, True), ("576", True)])
def test_podnet_mtu_below_what_every_ipv4_host_accepts_is_refused(mtu, ok):
    if ok:
        assert Cluster.from_inventory(SEED, {"mtu": mtu}).settings["mtu"] == 576
        return
    with pytest.raises(PodnetError, match=r"^podnet_mtu: %d is below 576, the datagram size every IPv4 host "
                       r"must accept" % mtu):
        Cluster.from_inventory(SEED, {"mtu": mtu})


def test_pod_cidr_overlapping_the_node_own_underlay_subnet_is_refused():
    # 10.57.4.128/25 holds neither node_ip, so the inventory alone cannot tell; node_facts' /24 can.
    cluster = Cluster.from_inventory(hosts(host2={"pod_cidr": "10.57.4.128/25", "pods": []}))
    with pytest.raises(PodnetError, match=r"^host host2: pod_cidr: 10.57.4.128/25 overlaps the node's own underlay "
                       r"subnet 10.57.4.0/24 \(node_ip 10.57.4.21 on eth0\)"):
        cluster.check_underlay(FACTS)
    # A /32 underlay (no shared subnet) holds no pod CIDR.
    narrow = copy.deepcopy(FACTS)
    narrow["host1"]["prefixlen"] = narrow["host2"]["prefixlen"] = 32
    cluster.check_underlay(narrow)


def test_pod_cidr_overlapping_a_peer_underlay_subnet_is_refused_naming_the_peer():
    facts = copy.deepcopy(FACTS)
    facts["host1"]["prefixlen"] = 16  # host1 sits in 10.57.0.0/16, host2 in 10.57.4.0/24
    cluster = Cluster.from_inventory(hosts(host2={"pod_cidr": "10.57.9.0/24", "pods": []}))
    with pytest.raises(PodnetError, match=r"^host host2: pod_cidr: 10.57.9.0/24 overlaps the underlay subnet "
                       r"10.57.0.0/16 of host host1"):
        cluster.check_underlay(facts)
    # host1 not read (unreachable): its subnet is unknown, host2's own is checked only.
    cluster.check_underlay(facts, read={"host2"})


def test_long_pod_name_gets_its_veth_name_from_pod_veth_name():
    from ansible_collections.podnet.fabric.plugins.module_utils import pod
    name = "frontend-7d9f8b6c4-x2k9p"
    cluster = Cluster.from_inventory(hosts(host1={"pods": [{"name": name, "ip": "192.168.10.10"}]}))
    assert cluster.node("host1").pods[0]["host_ifname"] == pod.veth_name(name)
    assert Cluster.from_data(cluster.to_data()).node("host1").pods[0]["host_ifname"] == pod.veth_name(name)
    given = Cluster.from_inventory(hosts(host1={"pods": [{"name": name, "ip": "192.168.10.10", "host_ifname": "vf1"}]}))
    assert given.node("host1").pods[0]["host_ifname"] == "vf1"


def test_verify_skips_the_pods_of_a_node_not_read_and_names_it():
    three = hosts()
    three["host3"] = {"node_ip": "10.57.4.22", "pod_cidr": "192.168.12.0/24",
                      "pods": [{"name": "pod-c", "ip": "192.168.12.10"}]}
    cluster = Cluster.from_inventory(three)
    facts = dict(FACTS)  # host3 unreachable: its facts were never read
    one = cluster.verify_plan("host1", facts)
    assert not [p for p in one["probes"] if p["dst"] == "192.168.12.10"], one["probes"]
    assert {"src": "pod-a", "dst": "192.168.11.10"} in one["probes"] and {"src": "", "dst": "192.168.11.10"} in one["probes"]
    assert one["unread"] == ["host3"] and one["skipped"] == [{"node": "host3", "pod": "pod-c", "ip": "192.168.12.10"}]
    assert one["capture"]["sender"] == "host1" and one["capture"]["receiver"] == "host2"
    every = cluster.verify_plan("host1", dict(facts, host3=FACTS["host1"]))
    assert every["unread"] == [] and {"src": "pod-a", "dst": "192.168.12.10"} in every["probes"]


def test_a_mode_switch_keeps_the_old_device_guarded_until_cleanup_deletes_it():
    def chains(plan, key):
        return dict((c["name"], c) for c in plan[key])

    old_vxlan = dict(FACTS, host1=dict(FACTS["host1"], tunnels={"vxlan0": "vxlan"}))
    plan = Cluster.from_inventory(SEED, {"mode": "host-gw"}).node_plan("host1", old_vxlan)
    assert plan["absent_tunnels"] == [{"name": "vxlan0", "kind": "vxlan"}]
    assert chains(plan, "iptables")["PODNET-INPUT"]["state"] == "absent"
    during = chains(plan, "iptables_switch")["PODNET-INPUT"]
    assert during["state"] == "present" and during["parent"] == "INPUT"
    assert during["rules"] == [
        {"protocol": "udp", "destination_port": 4789, "source": "10.57.4.21", "jump": "ACCEPT", "comment": "podnet peer host2"},
        {"protocol": "udp", "destination_port": 4789, "jump": "DROP", "comment": "podnet guard"}]
    # vxlan -> ipip: both the old vxlan device and the new ipip device are guarded meanwhile.
    plan = Cluster.from_inventory(SEED, {"mode": "ipip"}).node_plan("host1", old_vxlan)
    kinds = [r["protocol"] for r in chains(plan, "iptables_switch")["PODNET-INPUT"]["rules"] if r["jump"] == "DROP"]
    assert kinds == ["4", "udp"] and [r["protocol"] for r in guard(plan) if r["jump"] == "DROP"] == ["4"]
    # No old device: the node role writes the final chains at once.
    steady = Cluster.from_inventory(SEED, {"mode": "host-gw"}).node_plan("host1", dict(
        FACTS, host1=dict(FACTS["host1"], tunnels={})))
    assert steady["iptables_switch"] is None and steady["absent_tunnels"] == []
