"""Unit tests for the lab planner: inventory nodes -> switches, router, veth pairs -> ip argv."""

import copy

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import lab
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

SEED = [{"name": "host1", "address": "10.57.4.20/24"}, {"name": "host2", "address": "10.57.4.21/24"}]
THREE = SEED + [{"name": "host3", "iface": "ens3", "address": "10.57.5.20/24"}]
SW4, SW5 = "podnet-sw-10.57.4.0-24", "podnet-sw-10.57.5.0-24"


def names(model):
    return [name for name, role in lab.roles(model)]


def reads_of(state):
    """What the module would read from a kernel in ``state`` (ifindexes and nsids made up)."""
    index = {}
    for name in sorted(state):
        for number, ifname in enumerate(sorted(state[name]["links"], key=lambda i: i != "lo"), 1):
            index[(name, ifname)] = number
    reads = {}
    for name in sorted(state):
        nsids, links = {}, []
        for ifname, link in state[name]["links"].items():
            item = {"ifindex": index[(name, ifname)], "ifname": ifname,
                    "flags": ["UP"] if link["up"] else [],
                    "addr_info": [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                                  for a in link["addresses"]]}
            if link["kind"] == "loopback":
                item["link_type"] = "loopback"
            else:
                item["linkinfo"] = {"info_kind": link["kind"]}
            if link["master"]:
                item["master"] = link["master"]
            if link["peer"]:
                item["link_index"] = index[tuple(link["peer"])]
                if link["peer"][0] != name:
                    item["link_netnsid"] = nsids.setdefault(link["peer"][0], len(nsids))
            links.append(item)
        routes = [{"dst": "10.0.0.0/8", "dev": "x"}]
        if state[name]["default"]:
            routes.append({"dst": "default", "gateway": state[name]["default"]["via"],
                           "dev": state[name]["default"]["dev"], "protocol": "static"})
        reads[name] = {"links": links, "routes": routes,
                       "nsids": [{"nsid": i, "name": n} for n, i in nsids.items()],
                       "sysctl": "\n".join(state[name]["sysctl"].get(k) or "0" for k in lab.SYSCTL_KEYS)}
    return reads


# -- names and the model ----------------------------------------------------


def test_names_are_deterministic_and_short():
    assert lab.switch_name("podnet-sw", "10.57.4.0/24") == SW4
    assert lab.port_name("10.57.4.20", "10.57.4.0/24") == "p-20"
    assert lab.leg_name("10.57.4.0/24") == "sw-0a390400"
    # The longest names any IPv4 subnet can give still fit IFNAMSIZ.
    assert len(lab.port_name("10.255.255.254", "10.0.0.0/8")) <= 15
    assert len(lab.leg_name("255.255.255.0/24")) <= 15
    assert lab.switch_name_re("podnet-sw").match(SW4)
    assert not lab.switch_name_re("podnet-sw").match("podnet-swx-10.57.4.0-24")


def test_wanted_builds_switches_router_and_gateways():
    model = lab.wanted(THREE, pods=["pod-a", "pod-b", "pod-a"])
    assert [s["name"] for s in model["switches"]] == [SW4, SW5]
    assert model["switches"][0]["ports"] == ["p-20", "p-21", "p-254"]
    assert model["router"] == {"name": "podnet-rt", "legs": [
        {"ifname": "sw-0a390400", "address": "10.57.4.254/24", "switch": SW4, "port": "p-254",
         "subnet": "10.57.4.0/24"},
        {"ifname": "sw-0a390500", "address": "10.57.5.254/24", "switch": SW5, "port": "p-254",
         "subnet": "10.57.5.0/24"}]}
    host1, host3 = model["nodes"][0], model["nodes"][2]
    assert host1 == {"name": "host1", "iface": "eth0", "address": "10.57.4.20/24", "ip": "10.57.4.20",
                     "subnet": "10.57.4.0/24", "gateway": "10.57.4.254", "switch": SW4, "port": "p-20"}
    assert (host3["iface"], host3["gateway"], host3["switch"]) == ("ens3", "10.57.5.254", SW5)
    assert model["pods"] == ["pod-a", "pod-b"]
    assert names(model) == ["podnet-rt", SW4, SW5, "host1", "host2", "host3"]


def test_wanted_custom_names_and_router_address():
    model = lab.wanted(SEED, switch_prefix="t1sw", router="t1rt",
                       router_addresses={"10.57.4.0/24": "10.57.4.1"})
    assert model["switches"][0]["name"] == "t1sw-10.57.4.0-24"
    assert model["switches"][0]["ports"] == ["p-20", "p-21", "p-1"]
    assert model["router"]["legs"][0]["address"] == "10.57.4.1/24"
    assert [n["gateway"] for n in model["nodes"]] == ["10.57.4.1"] * 2


@pytest.mark.parametrize("nodes, extra, message", [
    (SEED + [{"name": "host1", "address": "10.57.4.22/24"}], {}, "nodes[2].name: namespace name 'host1' is already used by nodes[0]"),
    (SEED + [{"name": "host3", "address": "10.57.4.20/24"}], {}, "nodes[2].address: 10.57.4.20 is also the address of nodes[0]"),
    ([{"name": "-x", "address": "10.57.4.20/24"}], {}, "nodes[0].name"),
    ([{"name": "host1", "iface": "a-very-long-interface", "address": "10.57.4.20/24"}], {}, "nodes[0].iface"),
    ([{"name": "host1", "iface": "lo", "address": "10.57.4.20/24"}], {}, "nodes[0].iface: lo"),
    ([{"name": "host1", "address": "10.57.4.20"}], {}, "nodes[0].address: '10.57.4.20' needs a prefix length"),
    ([{"name": "host1"}], {}, "nodes[0].address: the node's underlay address"),
    ([{"name": "host1", "address": "10.57.4.20/31"}], {}, "leaves no room in the subnet for the lab router"),
    ([{"name": "host1", "address": "10.57.4.0/24"}], {}, "is the network address"),
    ([{"name": "host1", "address": "10.57.4.255/24"}], {}, "is the broadcast address"),
    ([{"name": "host1", "address": "10.57.4.254/24"}], {}, "nodes[0].address: 10.57.4.254 is the lab router's address"),
    ([{"name": "host1", "address": "10.57.4.1/24"}], {"router_addresses": {"10.57.4.0/24": "10.57.4.1"}},
     "lab router's address"),
    ([{"name": "host1", "address": "10.57.4.20/24"}], {"router_addresses": {"10.57.9.0/24": "10.57.9.1"}},
     "router_addresses[10.57.9.0/24]: no node is in 10.57.9.0/24"),
    ([{"name": "host1", "address": "10.57.4.20/24"}], {"router_addresses": {"10.57.4.0/24": "10.57.5.1"}},
     "not a host address of 10.57.4.0/24"),
    (SEED + [{"name": "host3", "address": "10.57.5.20/16"}], {}, "nodes[2].address: subnet 10.57.0.0/16 overlaps"),
    ([{"name": "host1", "address": "10.57.4.20/24", "ip": "x"}], {}, "nodes[0]: unknown key(s) ip"),
    (["host1"], {}, "nodes[0]: each node must be a dict"),
    ([], {}, "nodes: at least one node"),
    ([{"name": "podnet-rt", "address": "10.57.4.20/24"}], {}, "already used by router"),
    (SEED, {"pods": ["host2"]}, "pods[0]: namespace name 'host2' is already used by nodes[1]"),
    (SEED, {"pods": [SW4]}, "pods[0]: namespace name %r is already used by the switch" % SW4),
    (SEED, {"switch_prefix": "x" * 50}, "switch_prefix: "),
    (SEED, {"router": "bad name"}, "router: "),
])
def test_wanted_refuses(nodes, extra, message):
    with pytest.raises(PodnetError) as err:
        lab.wanted(nodes, **extra)
    assert message in str(err.value)


def test_absent_needs_no_nodes():
    model = lab.wanted([], pods=["pod-a"], state="absent")
    assert names(model) == ["podnet-rt"] and model["pods"] == ["pod-a"]


# -- parse ------------------------------------------------------------------


def test_parse_resolves_peers_across_namespaces():
    model = lab.wanted(THREE)
    ideal = lab.ideal(model)
    parsed = lab.parse(reads_of(ideal))
    for name in names(model)[1:]:
        # The lab leaves ip_forward in nodes and switches as it finds it (reads_of says 0).
        assert parsed[name]["sysctl"].pop("net.ipv4.ip_forward") == "0"
        assert ideal[name]["sysctl"].pop("net.ipv4.ip_forward") is None
    assert parsed == ideal


def test_parse_peer_in_unread_namespace_and_defaults():
    state = lab.parse({"host1": {
        "links": [{"ifindex": 2, "ifname": "eth0", "flags": ["BROADCAST", "UP"], "link_index": 7,
                   "link_netnsid": 0, "linkinfo": {"info_kind": "veth"},
                   "addr_info": [{"family": "inet", "local": "10.57.4.20", "prefixlen": 24},
                                 {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}],
        "nsids": [{"nsid": 0, "name": "elsewhere"}],
        "routes": [{"dst": "default", "gateway": "10.57.4.1", "dev": "eth0", "metric": 100},
                   {"dst": "default", "gateway": "10.57.4.254", "dev": "eth0"}],
        "sysctl": "1\n1\n1\n"}})
    host = state["host1"]
    assert host["links"]["eth0"] == {"kind": "veth", "up": True, "master": None,
                                     "addresses": ["10.57.4.20/24"], "peer": ["elsewhere", "#7"]}
    assert host["default"] == {"via": "10.57.4.254", "dev": "eth0"}
    assert host["sysctl"]["net.ipv4.ip_forward"] == "1"


# -- plan: present ----------------------------------------------------------


def test_plan_from_nothing_builds_everything_and_never_touches_the_root_namespace():
    model = lab.wanted(THREE)
    commands, before, after = lab.plan(model, {}, [])
    assert before == {"namespaces": {}}
    assert after == lab.describe(model, lab.ideal(model), names(model))
    adds = [c[2][2] for c in commands if c[2][:2] == ["netns", "add"]]
    assert adds == names(model)
    for tool, netns, args in commands:
        # Only `ip netns add` runs without a namespace; everything else is `ip -n NS` or inside NS.
        assert netns is not None or args[:2] == ["netns", "add"], (tool, netns, args)
        assert tool in ("ip", "sysctl")
    assert ("ip", SW4, ["link", "add", "br0", "type", "bridge"]) in commands
    assert ("ip", SW4, ["link", "add", "p-20", "type", "veth", "peer", "name", "eth0",
                        "address", "02:4c:0a:39:04:14", "netns", "host1"]) in commands
    assert ("ip", SW5, ["link", "add", "p-254", "type", "veth", "peer", "name", "sw-0a390500",
                        "address", "02:4c:0a:39:05:fe", "netns", "podnet-rt"]) in commands
    assert ("ip", SW4, ["link", "set", "p-20", "master", "br0", "up"]) in commands
    assert ("sysctl", "podnet-rt", ["-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                    "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.ip_forward=1"]) in commands
    # Nodes keep the ip_forward the kernel gave them.
    assert ("sysctl", "host1", ["-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                "net.ipv6.conf.default.disable_ipv6=1"]) in commands
    route = ("ip", "host3", ["route", "replace", "default", "via", "10.57.5.254", "dev", "ens3", "proto", "static"])
    assert route in commands
    # The address and the link come up before the default route that needs them.
    assert commands.index(("ip", "host3", ["addr", "add", "10.57.5.20/24", "dev", "ens3"])) < commands.index(route)
    assert commands.index(("ip", "host3", ["link", "set", "ens3", "up"])) < commands.index(route)


def test_plan_converged_is_empty():
    model = lab.wanted(THREE)
    state = lab.parse(reads_of(lab.ideal(model)))
    commands, before, after = lab.plan(model, state, names(model) + ["pod-a", "unrelated"])
    assert commands == [] and before == after


def converged(nodes=None, **extra):
    model = lab.wanted(THREE if nodes is None else nodes, **extra)
    return model, copy.deepcopy(lab.ideal(model))


def test_plan_repairs_a_missing_node_interface():
    model, state = converged()
    del state["host1"]["links"]["eth0"]
    state["host1"]["default"] = None
    state[SW4]["links"]["p-20"]["peer"] = ["gone", "#9"]
    commands, before, after = lab.plan(model, state, names(model))
    assert commands == [
        ("ip", SW4, ["link", "del", "p-20"]),
        ("ip", SW4, ["link", "add", "p-20", "type", "veth", "peer", "name", "eth0",
                     "address", "02:4c:0a:39:04:14", "netns", "host1"]),
        ("ip", SW4, ["link", "set", "p-20", "master", "br0", "up"]),
        ("ip", "host1", ["addr", "add", "10.57.4.20/24", "dev", "eth0"]),
        ("ip", "host1", ["link", "set", "eth0", "up"]),
        ("ip", "host1", ["route", "replace", "default", "via", "10.57.4.254", "dev", "eth0", "proto", "static"]),
    ]
    assert after == lab.describe(model, lab.ideal(model), names(model))


def test_plan_fixes_attributes_in_place():
    model, state = converged()
    state[SW4]["links"]["p-21"]["master"] = None
    state["host2"]["links"]["eth0"]["addresses"] = ["10.1.1.1/24", "10.57.4.21/24"]
    state["podnet-rt"]["sysctl"]["net.ipv4.ip_forward"] = "0"
    state["host3"]["links"]["lo"]["up"] = False
    commands, before, after = lab.plan(model, state, names(model))
    assert commands == [
        ("sysctl", "podnet-rt", ["-qw", "net.ipv4.ip_forward=1"]),
        ("ip", "host3", ["link", "set", "lo", "up"]),
        ("ip", SW4, ["link", "set", "p-21", "master", "br0"]),
        ("ip", "host2", ["addr", "del", "10.1.1.1/24", "dev", "eth0"]),
        ("ip", "host2", ["route", "replace", "default", "via", "10.57.4.254", "dev", "eth0", "proto", "static"]),
    ]
    assert before["namespaces"]["host2"]["links"]["eth0"]["addresses"] == ["10.1.1.1/24", "10.57.4.21/24"]
    assert after == lab.describe(model, lab.ideal(model), names(model))


def test_plan_removes_what_the_lab_no_longer_needs():
    old_model, state = converged()
    # host3 left the inventory and host2 moved to .30: the 10.57.5.0/24 switch, the router's leg
    # into it and port p-21 go; the pair for host2 is made again as p-30.
    model = lab.wanted([SEED[0], {"name": "host2", "address": "10.57.4.30/24"}])
    existing = names(old_model)
    commands, before, after = lab.plan(model, state, existing)
    assert commands[0] == ("ip", None, ["netns", "del", SW5])
    assert ("ip", SW4, ["link", "del", "p-21"]) in commands
    assert ("ip", SW4, ["link", "add", "p-30", "type", "veth", "peer", "name", "eth0",
                        "address", "02:4c:0a:39:04:1e", "netns", "host2"]) in commands
    assert not [c for c in commands if c[1] == "podnet-rt"], "the leg went with the switch namespace"
    assert not [c for c in commands if "host3" in c[2] or c[1] == "host3"], "host3 is no longer the lab's"
    assert SW5 in before["namespaces"] and SW5 not in after["namespaces"]
    assert after == lab.describe(model, lab.ideal(model), names(model))


def test_plan_replaces_a_wrong_bridge_and_a_broken_namespace():
    model, state = converged(SEED)
    state[SW4]["links"]["br0"]["kind"] = "dummy"
    for port in ("p-20", "p-21", "p-254"):
        state[SW4]["links"][port]["master"] = None
    del state["host2"]
    existing = names(model)
    state["host1"]["links"]["eth0"]["peer"] = [SW4, "p-20"]
    commands, before, after = lab.plan(model, state, existing, broken=["host2"])
    assert commands[:3] == [("ip", None, ["netns", "del", "host2"]), ("ip", None, ["netns", "add", "host2"]),
                            ("sysctl", "host2", ["-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                                 "net.ipv6.conf.default.disable_ipv6=1"])]
    assert ("ip", SW4, ["link", "del", "br0"]) in commands
    assert ("ip", SW4, ["link", "add", "br0", "type", "bridge"]) in commands
    assert before["namespaces"]["host2"] is None
    assert after == lab.describe(model, lab.ideal(model), names(model))


def test_plan_leaves_foreign_links_in_nodes_alone():
    model, state = converged(SEED)
    state["host1"]["links"]["veth-pod-a"] = dict(kind="veth", up=True, master=None,
                                                 addresses=[], peer=["pod-a", "eth0"])
    state[SW4]["links"]["mirror0"] = dict(kind="veth", up=True, master=None, addresses=[], peer=None)
    assert lab.plan(model, state, names(model))[0] == []


# -- plan: absent -----------------------------------------------------------


def test_absent_removes_pods_nodes_switches_router_in_order():
    model, state = converged(THREE, pods=["pod-a", "pod-gone"])
    existing = names(model) + ["pod-a", "podnet-sw-10.57.9.0-24", "unrelated"]
    commands, before, after = lab.plan(model, state, existing, "absent")
    assert commands == [("ip", None, ["netns", "del", name]) for name in
                        ["pod-a", "host1", "host2", "host3", SW4, SW5, "podnet-sw-10.57.9.0-24", "podnet-rt"]]
    assert after == {"namespaces": {}}
    assert before["namespaces"]["pod-a"] == {} and before["namespaces"]["host1"]["role"] == "node"
    assert lab.plan(model, {}, ["unrelated"], "absent")[0] == []


def test_a_remade_interface_keeps_its_mac():
    """The node and router ends get a MAC derived from their address, as a NIC keeps its MAC."""
    assert lab.nic_mac("10.57.4.20/24") == "02:4c:0a:39:04:14"
    assert lab.nic_mac("10.57.5.254/24") == "02:4c:0a:39:05:fe"
