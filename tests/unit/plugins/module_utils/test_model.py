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
    (hosts(host1={"pods": [{"name": "a-very-long-pod-name", "ip": "192.168.10.10"}]}), {}, "set pods[0].host_ifname"),
    (hosts(host1={"node_iface": "eth0;reboot"}), {}, "host host1: node_iface:"),
    (SEED, {"mode": "bgp"}, "mode: unknown mode 'bgp'"),
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
