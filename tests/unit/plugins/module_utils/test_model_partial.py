"""The cluster model when some nodes could not be read (unreachable, or outside --limit).

A node that was not read is not checked itself, but it stays a peer: the others plan it from
the inventory alone, and the checks that concern it as a peer still run.
"""

import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.podnet.fabric.plugins.filter import cluster as filters
from ansible_collections.podnet.fabric.plugins.module_utils import node_plan as planner, script as renderer
from ansible_collections.podnet.fabric.plugins.module_utils.model import Cluster
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

HOSTS = {
    "host1": {"node_ip": "10.57.4.20", "pod_cidr": "192.168.10.0/24", "pods": [{"name": "pod-a", "ip": "192.168.10.10"}]},
    "host2": {"node_ip": "10.57.4.21", "pod_cidr": "192.168.11.0/24", "pods": [{"name": "pod-b", "ip": "192.168.11.10"}]},
    "host3": {"node_ip": "10.57.4.22", "pod_cidr": "192.168.12.0/24", "pods": [{"name": "pod-c", "ip": "192.168.12.10"}]},
}
FACT = {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True}
ALL = dict((host, dict(FACT)) for host in HOSTS)
READ = {"host1": FACT, "host2": FACT, "host3": None}


def far_host3():
    hosts = dict(HOSTS)
    hosts["host3"] = dict(HOSTS["host3"], node_ip="10.57.5.30")
    return hosts


@pytest.mark.parametrize("settings", [{"mode": "vxlan"}, {"mode": "ipip"}, {"mode": "host-gw"},
                                      {"vxlan_fdb": "flood"}, {"vxlan_fdb": "multicast"},
                                      {"mode": "ipip", "direct_routing": True}])
def test_a_peer_is_planned_the_same_whether_its_facts_were_read_or_not(settings):
    cluster = Cluster.from_inventory(HOSTS, settings)
    cluster.check_underlay(READ, ["host1", "host2"])
    for host in ("host1", "host2"):
        assert cluster.node_plan(host, READ) == cluster.node_plan(host, ALL)


def test_a_node_not_read_is_not_checked_itself():
    cluster = Cluster.from_inventory(HOSTS)
    with pytest.raises(PodnetError, match="host host3: node_ip: no interface on the node holds 10.57.4.22"):
        cluster.check_underlay(READ)
    cluster.check_underlay(READ, ["host1", "host2"])
    # ...but a node that was read still is (bad input stops the run).
    bad = dict(READ, host2=dict(FACT, gateway_route=False))
    with pytest.raises(PodnetError, match="host host2: podnet_pod_gateway"):
        cluster.check_underlay(bad, ["host1", "host2"])


@pytest.mark.parametrize("settings, message", [
    ({"mode": "host-gw"}, "host host1: mode: host-gw needs every node on one L2 segment, but peer(s) host3"),
    ({"vxlan_fdb": "multicast"}, "podnet_vxlan_fdb: multicast needs every node in one subnet, but node(s) host3 "
                                 "are not in 10.57.4.0/24"),
])
def test_a_node_not_read_is_still_checked_as_a_peer_from_the_inventory(settings, message):
    cluster = Cluster.from_inventory(far_host3(), settings)
    with pytest.raises(PodnetError) as info:
        cluster.check_underlay(READ, ["host1", "host2"])
    assert message in str(info.value)


def test_nothing_read_checks_nothing():
    Cluster.from_inventory(far_host3(), {"vxlan_fdb": "multicast"}).check_underlay({}, [])


def hostvars(facts):
    result = {}
    for host, data in HOSTS.items():
        result[host] = dict(data)
        if facts.get(host) is not None:
            result[host]["podnet_underlay"] = facts[host]
    return result


def test_the_filter_checks_the_hosts_the_play_read():
    hv = hostvars(READ)
    # Without `read` (as before): every node must have been read.
    data = filters.cluster(sorted(HOSTS), hv)
    with pytest.raises(AnsibleFilterError, match="host host3: node_ip: no interface"):
        filters.check_underlay(data, hv)
    assert filters.check_underlay(data, hv, ["host1", "host2"]) is True
    # A host outside the group in `read` changes nothing; the plans need no peer facts.
    assert filters.check_underlay(data, hv, ["host2", "host1", "other"]) is True
    # The filter hands the per-peer lists to Ansible as JSON text (the modules' *_json options),
    # planned in the task that uses one (peer_list); the node's plan keeps none of them.
    fact = hv["host1"]["podnet_underlay"]
    assert json.loads(filters.peer_list(data, "host1", fact, "fdb_entries"))[-1] == {
        "mac": "0e:50:0a:39:04:16", "dst": "10.57.4.22"}
    plan = filters.node_plan(data, "host1", fact)
    assert plan["routes"] is None and plan["iptables"] is None and plan["fdb"] == {"device": "vxlan0"}
    assert json.loads(filters.peer_list(data, "host1", fact, "routes"))[-1]["dst"] == "192.168.12.0/24"
    with pytest.raises(AnsibleFilterError, match="peer_list: 'nope' is none of"):
        filters.peer_list(data, "host1", fact, "nope")


def test_node_script_plans_the_node_whole_from_the_cluster():
    """The replay script and render.yml: podnet_plan holds no peer lists, so node_script plans the
    node from the validated cluster itself, the same script as from the whole plan."""
    hv = hostvars(ALL)
    data = filters.cluster(sorted(HOSTS), hv)
    the = Cluster.from_data(json.loads(data))
    whole = planner.plan(the, "host1", FACT)
    text = filters.node_script(data, "host1", FACT)
    assert text == renderer.render(whole, "host1") == filters.node_script(whole, "host1")
    assert "192.168.12.0/24" in text and "10.57.4.22" in text
    # The pre-flight's narrower path MTU (by host) reaches the script as it reaches the plan.
    narrow = filters.node_script(data, "host1", FACT, {"host1": 1400, "host2": 1300})
    assert narrow == renderer.render(planner.plan(the, "host1", dict(FACT, path_mtu=1400)), "host1") != text
    assert filters.node_plan(data, "host1", FACT, {"host1": 1400})["mtu"] == \
        planner.plan(the, "host1", dict(FACT, path_mtu=1400))["mtu"]
    with pytest.raises(AnsibleFilterError, match="podnet_plan holds no peer lists"):
        filters.node_script(filters.node_plan(data, "host1", FACT), "host1")
    with pytest.raises(AnsibleFilterError, match="expected the node's plan"):
        filters.node_script("nonsense", "host1")
