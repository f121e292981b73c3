"""Unit tests for the node_route planner: wanted routes + `ip -json route` -> ip argv tails."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import route
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

TAIL = ["metric", "0", "proto", "150", "table", "main"]


def kernel(dst, proto="150", **extra):
    item = {"dst": dst, "protocol": proto, "flags": extra.pop("flags", [])}
    item.update(extra)
    return item


def test_wanted_normalises_and_defaults_scope():
    want = route.wanted([{"dst": "192.168.11.0/24", "via": "10.57.4.21", "dev": "eth0", "onlink": True},
                         {"dst": "192.168.10.10", "dev": "veth-pod-a"}])
    assert want[0]["scope"] == "global" and want[0]["metric"] == 0
    assert want[1] == {"dst": "192.168.10.10/32", "via": None, "dev": "veth-pod-a", "onlink": False,
                       "scope": "link", "src": None, "metric": 0}


@pytest.mark.parametrize("routes, message", [
    ([{"dst": "192.168.11.0/24"}], "routes[0]: a route needs via, dev or both"),
    ([{"via": "10.57.4.21"}], "routes[0].dst: a destination is required"),
    ([{"dst": "192.168.11.0/24", "via": "10.57.4.21", "scope": "link"}], "routes[0].scope"),
    ([{"dst": "192.168.11.0/24", "dev": "eth0", "bogus": 1}], "routes[0]: unknown key(s) bogus"),
    (["192.168.11.0/24"], "routes[0]: each route must be a dict"),
])
def test_wanted_refuses(routes, message):
    with pytest.raises(PodnetError) as err:
        route.wanted(routes)
    assert message in str(err.value)


def test_parse_splits_ours_from_foreign_and_normalises():
    ours, foreign = route.parse([
        kernel("192.168.11.0/24", gateway="10.57.4.21", dev="eth0", flags=["onlink"]),
        kernel("192.168.10.10", "podnet", dev="veth-pod-a", scope="link"),
        kernel("default", "static", gateway="10.57.4.1", dev="eth0"),
        {"type": "broadcast", "dst": "10.57.4.255", "protocol": "kernel"},
    ])
    assert [r["dst"] for r in ours] == ["192.168.11.0/24", "192.168.10.10/32"]
    assert ours[0]["onlink"] and ours[0]["scope"] == "global"
    assert [r["dst"] for r in foreign] == ["0.0.0.0/0"]


def test_plan_adds_then_is_idempotent():
    want = route.wanted([{"dst": "192.168.11.0/24", "via": "10.57.4.21", "dev": "eth0", "onlink": True}])
    commands, before, after = route.plan(want, [])
    assert commands == [["route", "replace", "192.168.11.0/24", "via", "10.57.4.21", "dev", "eth0", "onlink",
                         "scope", "global"] + TAIL]
    assert before == [] and after == want
    have = [kernel("192.168.11.0/24", gateway="10.57.4.21", dev="eth0", flags=["onlink"])]
    assert route.plan(want, have)[0] == []


def test_plan_replaces_changed_gateway_and_moves_metric():
    want = route.wanted([{"dst": "192.168.11.0/24", "via": "10.57.4.99"},
                         {"dst": "192.168.12.0/24", "via": "10.57.4.22", "metric": 20}])
    have = [kernel("192.168.11.0/24", gateway="10.57.4.21", dev="eth0"),
            kernel("192.168.12.0/24", gateway="10.57.4.22", dev="eth0", metric=10)]
    commands = route.plan(want, have)[0]
    assert commands[0][:2] == ["route", "replace"] and "10.57.4.99" in commands[0]
    assert commands[1] == ["route", "del", "192.168.12.0/24", "metric", "10", "proto", "150", "table", "main"]
    assert commands[2][:3] == ["route", "replace", "192.168.12.0/24"] and "20" in commands[2]


def test_plan_refuses_foreign_route_with_same_dst():
    want = route.wanted([{"dst": "192.168.11.0/24", "via": "10.57.4.21"}])
    with pytest.raises(PodnetError, match="192.168.11.0/24 via 10.57.4.1 dev eth0 proto static"):
        route.plan(want, [kernel("192.168.11.0/24", "static", gateway="10.57.4.1", dev="eth0")])


def test_purge_and_absent_only_touch_podnet_routes():
    have = [kernel("192.168.11.0/24", gateway="10.57.4.21"), kernel("192.168.12.0/24", gateway="10.57.4.22"),
            kernel("10.99.0.0/16", "static", gateway="10.57.4.1")]
    want = route.wanted([{"dst": "192.168.11.0/24", "via": "10.57.4.21"}])
    commands, _before, after = route.plan(want, have, purge=True)
    assert commands == [["route", "del", "192.168.12.0/24", "metric", "0", "proto", "150", "table", "main"]]
    assert [r["dst"] for r in after] == ["192.168.11.0/24"]
    commands, _before, after = route.plan([], have, state="absent", purge=True)
    assert [c[2] for c in commands] == ["192.168.11.0/24", "192.168.12.0/24"] and after == []
    assert route.plan(route.wanted([{"dst": "10.99.0.0/16", "dev": "eth0"}]), have, state="absent")[0] == []
