"""podnet.fabric.node_route against a real kernel, in scratch namespaces."""

import pytest

from conftest import ipj, sh, snapshot

HOST_GW = [{"dst": "192.168.11.0/24", "via": "10.57.4.21", "dev": "eth0", "onlink": True},
           {"dst": "192.168.12.0/24", "via": "10.57.4.22", "dev": "eth0", "metric": 10}]


def podnet_routes(ns, table="main"):
    return sorted((r["dst"], r.get("gateway"), r.get("metric", 0))
                  for r in ipj(ns, "route", "show", "table", table) if r.get("protocol") in ("150", "podnet"))


def test_present_idempotent_check_diff_absent(module, node):
    before = snapshot(node)
    check = module("node_route", {"routes": HOST_GW}, ns=node, check=True, diff=True)
    assert check.changed and len(check["commands"]) == 2, check
    assert check["diff"]["before"] == {"routes": []}
    assert snapshot(node) == before, "check mode changed the kernel"

    first = module("node_route", {"routes": HOST_GW}, ns=node, diff=True)
    assert first.changed, first
    assert [c[1:3] for c in first["commands"]] == [["route", "replace"]] * 2
    assert podnet_routes(node) == [("192.168.11.0/24", "10.57.4.21", 0), ("192.168.12.0/24", "10.57.4.22", 10)]
    assert [r["dst"] for r in first["diff"]["after"]["routes"]] == ["192.168.11.0/24", "192.168.12.0/24"]
    onlink = ipj(node, "route", "show", "192.168.11.0/24")[0]
    assert "onlink" in onlink["flags"] and onlink["protocol"] == "150"

    again = module("node_route", {"routes": HOST_GW}, ns=node)
    assert not again.changed and again["commands"] == [], again

    gone = module("node_route", {"routes": HOST_GW, "state": "absent"}, ns=node)
    assert gone.changed and podnet_routes(node) == []
    assert not module("node_route", {"routes": HOST_GW, "state": "absent"}, ns=node).changed
    assert snapshot(node) == before


def test_changed_attributes_replace_and_metric_change_leaves_one_route(module, node):
    module("node_route", {"routes": HOST_GW}, ns=node)
    moved = [dict(HOST_GW[0], via="10.57.4.99"), dict(HOST_GW[1], metric=20)]
    result = module("node_route", {"routes": moved}, ns=node)
    assert result.changed
    assert podnet_routes(node) == [("192.168.11.0/24", "10.57.4.99", 0), ("192.168.12.0/24", "10.57.4.22", 20)]
    assert not module("node_route", {"routes": moved}, ns=node).changed


def test_purge_removes_only_podnet_routes(module, node):
    sh("ip", "-n", node, "route", "add", "10.99.0.0/16", "via", "10.57.4.1", "proto", "static")
    sh("ip", "-n", node, "route", "add", "10.98.0.0/16", "via", "10.57.4.1")
    module("node_route", {"routes": HOST_GW}, ns=node)
    result = module("node_route", {"routes": HOST_GW[:1], "purge": True}, ns=node)
    assert result.changed
    assert podnet_routes(node) == [("192.168.11.0/24", "10.57.4.21", 0)]
    dsts = [r["dst"] for r in ipj(node, "route", "show")]
    assert "10.99.0.0/16" in dsts and "10.98.0.0/16" in dsts
    wipe = module("node_route", {"state": "absent", "purge": True}, ns=node)
    assert wipe.changed and podnet_routes(node) == []
    assert "10.99.0.0/16" in [r["dst"] for r in ipj(node, "route", "show")]


def test_foreign_route_with_same_dst_is_never_touched(module, node):
    sh("ip", "-n", node, "route", "add", "192.168.11.0/24", "via", "10.57.4.1", "proto", "static")
    before = snapshot(node)
    result = module("node_route", {"routes": HOST_GW}, ns=node)
    assert result.failed
    assert "does not own" in result["msg"] and "192.168.11.0/24 via 10.57.4.1" in result["msg"]
    absent = module("node_route", {"routes": HOST_GW, "state": "absent"}, ns=node)
    assert not absent.changed
    assert snapshot(node) == before


def test_other_table_and_netns_option(module, node):
    # Run from the root namespace's view with netns=, as a controller would for a local namespace.
    routes = [{"dst": "192.168.20.0/24", "dev": "eth0"}]
    result = module("node_route", {"routes": routes, "table": "100", "netns": node})
    assert result.changed
    assert result["commands"][0][1:3] == ["-n", node]
    assert podnet_routes(node, "100") == [("192.168.20.0/24", None, 0)]
    assert podnet_routes(node) == []
    assert not module("node_route", {"routes": routes, "table": "100", "netns": node}).changed


@pytest.mark.parametrize("routes, table, message", [
    ([{"dst": "192.168.11.0/33", "dev": "eth0"}], "main", "routes[0].dst"),
    ([{"dst": "192.168.11.5/24", "dev": "eth0"}], "main", "host bits set"),
    ([{"dst": "192.168.11.0/24", "via": "10.57.4"}], "main", "routes[0].via"),
    ([{"dst": "192.168.11.0/24", "dev": "a-very-long-name0"}], "main", "routes[0].dev"),
    ([{"dst": "192.168.11.0/24", "dev": "-eth0"}], "main", "routes[0].dev"),
    ([{"dst": "192.168.11.0/24", "dev": "eth0;reboot"}], "main", "routes[0].dev"),
    ([{"dst": "192.168.11.0/24", "dev": "eth 0"}], "main", "routes[0].dev"),
    ([{"dst": "192.168.11.0/24", "via": "10.57.4.21", "onlink": True}], "main", "routes[0].onlink"),
    ([{"dst": "192.168.11.0/24", "dev": "eth0"}, {"dst": "192.168.11.0/24", "dev": "eth0"}], "main", "listed twice"),
    ([{"dst": "192.168.11.0/24", "dev": "eth0"}], "0", "table"),
    ([{"dst": "192.168.11.0/24", "dev": "eth0"}], "--all", "table"),
])
def test_bad_input_is_refused_before_any_change(module, node, routes, table, message):
    before = snapshot(node)
    result = module("node_route", {"routes": routes, "table": table}, ns=node)
    assert result.failed and message in result["msg"], result
    assert result.get("commands") in (None, [])
    assert snapshot(node) == before


def test_bad_netns_option(module, node):
    result = module("node_route", {"routes": [], "netns": "-x"}, ns=node)
    assert result.failed and "netns" in result["msg"]


def test_routes_as_json_text_are_the_same_routes(module, node):
    """routes_json (what podnet's roles pass) is validated on the node by routes' own spec."""
    import json
    before = snapshot(node)
    first = module("node_route", {"routes_json": json.dumps(HOST_GW)}, ns=node)
    assert first.changed and podnet_routes(node) == [("192.168.11.0/24", "10.57.4.21", 0),
                                                     ("192.168.12.0/24", "10.57.4.22", 10)]
    # The same routes given as a list: nothing to do.
    assert not module("node_route", {"routes": HOST_GW}, ns=node).changed
    now = snapshot(node)
    for bad, message in [("[{dst: 1}", "routes_json: not JSON text"),
                         (json.dumps([{"via": "10.57.4.21"}]), "routes_json: "),
                         (json.dumps([dict(HOST_GW[0], scope="nowhere")]), "routes_json: ")]:
        refused = module("node_route", {"routes_json": bad}, ns=node)
        assert refused.failed and refused["msg"].startswith(message), refused
        assert snapshot(node) == now
    both = module("node_route", {"routes_json": "[]", "routes": HOST_GW}, ns=node)
    assert both.failed and "mutually exclusive" in both["msg"], both
    module("node_route", {"routes": HOST_GW, "state": "absent"}, ns=node)
    assert snapshot(node) == before
