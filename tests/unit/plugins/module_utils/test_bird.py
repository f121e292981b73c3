"""Unit tests for bgp mode's planner (plugins/module_utils/bird.py): BIRD configs from the model."""

import copy
import json
import shutil
import subprocess

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import bird
from ansible_collections.podnet.fabric.plugins.module_utils.model import Cluster
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

ROUTER_A = {"address": "10.57.4.254", "as": 65000, "password": "rack-a"}
HOSTS = {
    "h1": {"node_ip": "10.57.4.20", "pod_cidr": "192.168.10.0/24", "pods": [{"name": "pa", "ip": "192.168.10.10"}]},
    "h2": {"node_ip": "10.57.4.21", "pod_cidr": "192.168.11.0/24", "pods": [{"name": "pb", "ip": "192.168.11.10"}]},
    "h3": {"node_ip": "10.57.5.30", "pod_cidr": "192.168.12.0/24", "pods": []},
}
FACT = {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True}
FACTS = dict((h, dict(FACT)) for h in HOSTS)


def cluster(hosts=None, **settings):
    return Cluster.from_inventory(copy.deepcopy(hosts or HOSTS), dict(settings, mode="bgp"))


def tor_hosts():
    hosts = copy.deepcopy(HOSTS)
    hosts["h1"]["podnet_bgp_peers"] = [ROUTER_A]
    hosts["h2"]["podnet_bgp_peers"] = [ROUTER_A]
    hosts["h3"]["podnet_bgp_peers"] = [{"address": "10.57.5.254", "as": 65000}]
    return hosts


def protocol(config, name):
    """The text of one ``protocol bgp NAME { ... }`` block."""
    start = config.index("protocol bgp %s {" % name)
    return config[start:config.index("\n}\n", start)]


def test_mesh_of_two_is_one_session_each_importing_exactly_the_peer_cidr():
    two = dict((h, HOSTS[h]) for h in ("h1", "h2"))
    c = cluster(two)
    c.check_underlay(FACTS)
    plan = c.node_plan("h1", FACTS)
    assert plan["mode"] == "bgp" and plan["tunnel"] is None and plan["iptables"][2]["rules"] == []
    # Only the node's own pods are podnet's routes; the peer's pod CIDR comes from BIRD.
    assert plan["routes"] == [{"dst": "192.168.10.10/32", "dev": "veth-pa", "scope": "link"}]
    bgp = plan["bgp"]
    assert bgp["sessions"] == [{"name": "mesh_10_57_4_21", "neighbor": "10.57.4.21", "role": "node", "as": 64512}]
    config = bgp["config"]
    assert "router id 10.57.4.20;" in config
    assert "route 192.168.10.0/24 unreachable;" in config
    assert "export where source = RTS_BGP && net ~ PODNET_PODS;" in config
    block = protocol(config, "mesh_10_57_4_21")
    assert "local 10.57.4.20 as 64512;" in block and "neighbor 10.57.4.21 as 64512;" in block
    assert "import where net = 192.168.11.0/24;" in block and "export filter podnet_own_only;" in block
    assert "hold time 90;" in block and "password" not in block and "rr client" not in block
    assert bgp["config_file"].endswith("/h1-bird.conf") and bgp["socket"].endswith("/h1-bird.ctl")


def test_settings_as_hold_time_and_password():
    two = dict((h, HOSTS[h]) for h in ("h1", "h2"))
    c = cluster(two, bgp_as="65010", bgp_hold_time=6, bgp_password="s3cret")
    block = protocol(c.node_plan("h2", FACTS)["bgp"]["config"], "mesh_10_57_4_20")
    assert "local 10.57.4.21 as 65010;" in block and "hold time 6;" in block and "keepalive time 2;" in block
    assert 'password "s3cret";' in block


@pytest.mark.parametrize("settings, message", [
    ({"bgp_as": 0}, "podnet_bgp_as: 0 is outside 1..4294967295"),
    ({"bgp_as": "x"}, "podnet_bgp_as: 'x' is not a number"),
    ({"bgp_hold_time": 2}, "podnet_bgp_hold_time: 2 is outside 3..65535"),
    ({"bgp_password": 'a"b'}, "podnet_bgp_password: a TCP-MD5 password"),
    ({"bgp_password": "x" * 81}, "podnet_bgp_password: a TCP-MD5 password"),
    ({"bgp_mesh": "maybe"}, "podnet_bgp_mesh: must be true or false"),
    ({"bgp_route_reflectors": ["h9"]}, "podnet_bgp_route_reflectors: h9 not in the group 'nodes'"),
    ({"bgp_route_reflectors": "h1"}, "podnet_bgp_route_reflectors: must be a list of node names"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(PodnetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cluster(**settings)


@pytest.mark.parametrize("peers, message", [
    ("10.57.4.254", "podnet_bgp_peers: must be a list"),
    ([{"address": "10.57.4.254"}], r"podnet_bgp_peers\[0\]: a peer needs an address and an as"),
    ([{"address": "10.57.4.254", "as": 65000, "port": 179}], r"unknown key\(s\) port"),
    ([{"address": "10.57.4", "as": 65000}], r"podnet_bgp_peers\[0\].address: '10.57.4' is not an IPv4"),
    ([{"address": "10.57.4.21", "as": 65000}], "is the node_ip of host h2"),
    ([ROUTER_A, ROUTER_A], r"podnet_bgp_peers\[1\].address: 10.57.4.254 is already podnet_bgp_peers\[0\]"),
    ([{"address": "10.57.4.254", "as": 65000, "name": "tor-a"}], "is not a BIRD protocol name"),
])
def test_bad_peers_are_refused_naming_the_host(peers, message):
    hosts = copy.deepcopy(HOSTS)
    hosts["h1"]["podnet_bgp_peers"] = peers
    with pytest.raises(PodnetError, match="host h1: .*" + message):
        cluster(hosts)


def test_a_node_alone_in_its_subnet_needs_a_router():
    with pytest.raises(PodnetError, match="host h3: mode: bgp gives this node no BGP neighbour"):
        cluster().check_underlay(FACTS)
    # Planning (teardown skips the underlay check) still works, so such a cluster can be taken away.
    assert cluster().node_plan("h3", FACTS)["bgp"]["sessions"] == []


def test_a_router_off_the_node_subnet_is_refused():
    hosts = tor_hosts()
    hosts["h3"]["podnet_bgp_peers"] = [ROUTER_A]
    with pytest.raises(PodnetError, match="host h3: podnet_bgp_peers: 10.57.4.254 is not in this node's underlay"):
        cluster(hosts).check_underlay(FACTS)


def test_top_of_rack_peering_imports_only_other_pod_cidrs_and_allows_the_local_as():
    c = cluster(tor_hosts())
    c.check_underlay(FACTS)
    h1 = c.node_plan("h1", FACTS)["bgp"]
    assert [s["name"] for s in h1["sessions"]] == ["mesh_10_57_4_21", "peer_10_57_4_254"]
    config = h1["config"]
    assert "define PODNET_OTHERS = [ 192.168.11.0/24, 192.168.12.0/24 ];" in config
    block = protocol(config, "peer_10_57_4_254")
    assert "neighbor 10.57.4.254 as 65000;" in block and "allow local as;" in block
    assert "import filter podnet_others_only;" in block and "export filter podnet_own_only;" in block
    assert 'password "rack-a";' in block
    h3 = c.node_plan("h3", FACTS)["bgp"]
    assert [s["name"] for s in h3["sessions"]] == ["peer_10_57_5_254"]


def test_route_reflectors_replace_the_mesh():
    hosts = copy.deepcopy(HOSTS)
    hosts["h4"] = {"node_ip": "10.57.4.22", "pod_cidr": "192.168.13.0/24"}
    hosts["h3"]["podnet_bgp_peers"] = [{"address": "10.57.5.254", "as": 65000}]
    facts = dict(FACTS, h4=dict(FACT))
    c = cluster(hosts, bgp_route_reflectors=["h1", "h2"])
    c.check_underlay(facts)
    rr = c.node_plan("h1", facts)["bgp"]
    roles = [(s["name"], s["role"]) for s in rr["sessions"]]
    assert roles == [("rr_10_57_4_21", "reflector"), ("rrc_10_57_4_22", "client")]
    client = protocol(rr["config"], "rrc_10_57_4_22")
    assert "rr client;" in client and "import where net = 192.168.13.0/24;" in client
    # one cluster id shared by the reflectors (the lowest reflector's node_ip), as Calico's RRs share one
    assert "rr cluster id 10.57.4.20;" in client
    assert "export filter podnet_pods_only;" in client
    other = protocol(rr["config"], "rr_10_57_4_21")
    assert "rr client" not in other and "import filter podnet_others_only;" in other
    assert "rr cluster id 10.57.4.20;" in other
    assert "rr cluster id 10.57.4.20;" in protocol(c.node_plan("h2", facts)["bgp"]["config"], "rrc_10_57_4_22")
    leaf = c.node_plan("h4", facts)["bgp"]
    roles = [(s["name"], s["role"]) for s in leaf["sessions"]]
    assert roles == [("rr_10_57_4_20", "reflector"), ("rr_10_57_4_21", "reflector")]
    assert "export filter podnet_own_only;" in protocol(leaf["config"], "rr_10_57_4_20")
    assert "rr cluster id" not in leaf["config"]


def test_no_mesh_without_routers_is_refused():
    two = dict((h, HOSTS[h]) for h in ("h1", "h2"))
    with pytest.raises(PodnetError, match="gives this node no BGP neighbour"):
        cluster(two, bgp_mesh=False).check_underlay(FACTS)


def test_other_modes_plan_bird_away():
    plan = Cluster.from_inventory(copy.deepcopy(HOSTS), {"mode": "vxlan"}).node_plan("h1", FACTS)
    assert plan["bgp"] is None
    assert plan["bird_absent"]["config_file"].endswith("/h1-bird.conf")
    assert plan["bird_absent"]["flush_routes"] == ["192.168.11.0/24", "192.168.12.0/24"]


def test_bird_absent_only_where_node_facts_found_the_config():
    c = Cluster.from_inventory(copy.deepcopy(HOSTS), {"mode": "vxlan"})
    conf = bird.paths(c.settings["state_dir"], "h1")["config_file"]
    # node_facts was asked (files) and found no BIRD config: no call planned in any mode.
    assert c.node_plan("h1", {"h1": dict(FACT, files=[])})["bird_absent"] is None
    assert cluster().node_plan("h1", {"h1": dict(FACT, files=[])})["bird_absent"] is None
    assert c.node_plan("h1", {"h1": dict(FACT, files=[conf])})["bird_absent"]["config_file"] == conf
    # bgp too (teardown stops it); site.yml skips it in bgp by the mode.
    assert cluster().node_plan("h1", {"h1": dict(FACT, files=[conf])})["bird_absent"]["config_file"] == conf


def test_bgp_peers_travel_with_the_cluster_data():
    c = cluster(tor_hosts())
    again = Cluster.from_data(json.loads(json.dumps(c.to_data())))
    assert again.bgp_peers == c.bgp_peers and again.bgp_peers["h1"]
    assert again.node_plan("h1", FACTS)["bgp"] == c.node_plan("h1", FACTS)["bgp"]


def test_verify_captures_a_pod_behind_the_router_unencapsulated():
    hosts = tor_hosts()
    hosts["h3"]["pods"] = [{"name": "pc", "ip": "192.168.12.10"}]
    capture = cluster(hosts).verify_plan("h1", FACTS)["capture"]
    assert (capture["kind"], capture["sender"], capture["receiver"]) == ("bgp", "h1", "h3")
    assert capture["filter"] == "icmp and src host 192.168.10.10"
    assert capture["expect"] == ["192.168.10.10 > 192.168.12.10: ICMP echo request"]


def test_tor_config_one_session_per_node_exporting_every_pod_cidr():
    c = cluster(tor_hosts())
    text = bird.tor_config(c, c.bgp_peers)
    assert "router id 10.57.4.254;" in text and "protocol static podnet_own {\n  ipv4;\n}" in text
    block = protocol(text, "node_10_57_5_30")
    assert "local 10.57.5.254 as 65000;" in block and "neighbor 10.57.5.30 as 64512;" in block
    assert "import where net = 192.168.12.0/24;" in block and "export filter podnet_pods_only;" in block
    assert 'password "rack-a";' in protocol(text, "node_10_57_4_20")


@pytest.mark.skipif(not shutil.which("bird"), reason="bird2 not installed")
def test_bird_parses_every_config(tmp_path):
    c = cluster(tor_hosts(), bgp_password="mesh")
    texts = [c.node_plan(h, FACTS)["bgp"]["config"] for h in HOSTS] + [bird.tor_config(c, c.bgp_peers)]
    for index, text in enumerate(texts):
        path = tmp_path / ("%d.conf" % index)
        path.write_text(text)
        proc = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


SHOW_PROTOCOLS = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     09:10:11.123
podnet_own Static     master4    up     09:10:11.123
mesh_10_57_4_21 BGP        ---        up     09:10:12.456  Established
  Description:    node
  BGP state:          Established
    Neighbor address: 10.57.4.21
    Neighbor AS:      64512
    Local AS:         64512
  Channel ipv4
    State:          UP
    Routes:         1 imported, 2 filtered, 1 exported, 1 preferred
peer_10_57_4_254 BGP        ---        start  09:10:12.456  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 10.57.4.254
    Neighbor AS:      65000
"""


def test_parse_show_protocols_all():
    rows = bird.parse_protocols(SHOW_PROTOCOLS)
    bgp = [r for r in rows if r["proto"] == "BGP"]
    assert bgp[0] == dict(name="mesh_10_57_4_21", proto="BGP", state="up", since="09:10:12.456", info="Established",
                          neighbor="10.57.4.21", imported=1, filtered=2, exported=1, **{"as": 64512})
    assert bgp[1]["state"] == "start" and bgp[1]["info"].startswith("Active") and bgp[1]["as"] == 65000


def test_parse_filtered_routes():
    text = ("BIRD 2.0.12 ready.\nTable master4:\n0.0.0.0/0            unicast [peer_10_57_4_254 09:10:12.456] "
            "(100) [AS65000i]\n\tvia 10.57.4.254 on eth0\n192.168.10.0/24      unicast [peer_10_57_4_254 "
            "09:10:12.456] (100) [AS65000i]\n\tvia 10.57.4.254 on eth0\n                     unicast "
            "[mesh_10_57_4_21 09:10:12.456] (100) [i]\n\tvia 10.57.4.21 on eth0\n")
    assert bird.parse_routes(text) == [{"prefix": "0.0.0.0/0", "protocol": "peer_10_57_4_254"},
                                       {"prefix": "192.168.10.0/24", "protocol": "peer_10_57_4_254"},
                                       {"prefix": "192.168.10.0/24", "protocol": "mesh_10_57_4_21"}]


def test_unit_is_podnet_own():
    text = bird.unit_text("/usr/sbin/bird", "/usr/sbin/birdc", "/var/lib/podnet/h1-bird.conf",
                          "/var/lib/podnet/h1-bird.ctl", "/var/lib/podnet/h1-bird.pid")
    assert "ExecStart=/usr/sbin/bird -c /var/lib/podnet/h1-bird.conf -s /var/lib/podnet/h1-bird.ctl" in text
    assert "/etc/bird" not in text


@pytest.mark.skipif(not (shutil.which("systemd-analyze") and shutil.which("bird")), reason="needs systemd-analyze, bird2")
def test_systemd_accepts_the_unit(tmp_path):
    unit = tmp_path / bird.UNIT
    unit.write_text(bird.unit_text(shutil.which("bird"), shutil.which("birdc"), "/var/lib/podnet/h1-bird.conf",
                                   "/var/lib/podnet/h1-bird.ctl", "/var/lib/podnet/h1-bird.pid"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
