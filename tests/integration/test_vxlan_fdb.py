"""podnet.fabric.vxlan_fdb against a real kernel, in scratch namespaces."""

import json
import subprocess

import pytest

from conftest import ipj, settle, sh, snapshot

ZERO = "00:00:00:00:00:00"
MAC_B = "0e:50:0a:39:04:15"   # podnet's VTEP MAC for 10.57.4.21
MAC_C = "0e:50:0a:39:04:16"   # ... for 10.57.4.22
ENTRIES = [{"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": ZERO, "dst": "10.57.4.21"},
           {"mac": MAC_C, "dst": "10.57.4.22"}, {"mac": ZERO, "dst": "10.57.4.22"}]
NEIGHBORS = [{"ip": "192.168.11.0", "mac": MAC_B}, {"ip": "192.168.12.0", "mac": MAC_C}]
WIRING = {"device": "vxlan0", "entries": ENTRIES, "neighbors": NEIGHBORS}


def add_vxlan(ns, name="vxlan0", vni="100", *extra):
    sh("ip", "-n", ns, "link", "add", name, "type", "vxlan", "id", vni, "dstport", "4789",
       "local", "10.57.4.20", "dev", "eth0", "nolearning", *extra)
    sh("ip", "-n", ns, "link", "set", name, "up")


def fdb(ns, dev="vxlan0", state="permanent"):
    """(mac, dst) of the device's `self` entries in ``state``, plus extras as text."""
    out = json.loads(sh("bridge", "-n", ns, "-json", "fdb", "show", "dev", dev) or "[]")
    return sorted((e["mac"], e.get("dst")) + (("via", e["viaIf"]) if "viaIf" in e else ())
                  for e in out if "self" in e.get("flags", []) and e.get("state", "") == state)


def neigh(ns, dev="vxlan0", state="PERMANENT"):
    return sorted((n["dst"], n.get("lladdr")) for n in ipj(ns, "-4", "neigh", "show", "dev", dev)
                  if state in n.get("state", []))


@pytest.fixture
def vxnode(node):
    add_vxlan(node)
    return settle(node)


def test_present_idempotent_check_diff_absent(module, vxnode):
    before = snapshot(vxnode)
    check = module("vxlan_fdb", WIRING, ns=vxnode, check=True, diff=True)
    assert check.changed and len(check["commands"]) == 6, check
    assert check["diff"]["before"] == {"entries": [], "neighbors": []}
    assert len(check["diff"]["after"]["entries"]) == 4
    assert snapshot(vxnode) == before, "check mode changed the kernel"

    first = module("vxlan_fdb", WIRING, ns=vxnode, diff=True)
    assert first.changed, first
    # Neighbours before FDB entries; unicast MACs replaced, the flood list appended.
    assert [c[1:3] for c in first["commands"]] == [["neigh", "replace"]] * 2 + [
        ["fdb", "replace"], ["fdb", "append"], ["fdb", "replace"], ["fdb", "append"]]
    assert fdb(vxnode) == sorted((e["mac"], e["dst"]) for e in ENTRIES)
    assert neigh(vxnode) == sorted((n["ip"], n["mac"]) for n in NEIGHBORS)
    assert first["diff"]["after"] == {"entries": first["entries"], "neighbors": first["neighbors"]}
    assert first["entries"][:2] == [{"mac": ZERO, "dst": "10.57.4.21"}, {"mac": ZERO, "dst": "10.57.4.22"}]

    again = module("vxlan_fdb", WIRING, ns=vxnode)
    assert not again.changed and again["commands"] == [], again
    wired = snapshot(vxnode)
    recheck = module("vxlan_fdb", WIRING, ns=vxnode, check=True, diff=True)
    assert not recheck.changed and recheck["diff"]["before"] == recheck["diff"]["after"]
    assert snapshot(vxnode) == wired

    gone = module("vxlan_fdb", dict(WIRING, state="absent"), ns=vxnode)
    assert gone.changed
    # FDB entries first, then neighbours.
    assert [c[1:3] for c in gone["commands"]] == [["fdb", "del"]] * 4 + [["neigh", "del"]] * 2
    assert fdb(vxnode) == [] and neigh(vxnode) == []
    assert gone["entries"] == [] and gone["neighbors"] == []
    assert not module("vxlan_fdb", dict(WIRING, state="absent"), ns=vxnode).changed
    assert snapshot(vxnode) == before


def test_changed_dst_is_replaced_and_flood_list_grows(module, vxnode):
    module("vxlan_fdb", WIRING, ns=vxnode)
    moved = [dict(ENTRIES[0], dst="10.57.4.99")] + ENTRIES[1:] + [{"mac": ZERO, "dst": "10.57.4.99"}]
    result = module("vxlan_fdb", dict(WIRING, entries=moved), ns=vxnode, diff=True)
    assert result.changed
    assert [c[1:4] for c in result["commands"]] == [["fdb", "replace", MAC_B], ["fdb", "append", ZERO]]
    assert (MAC_B, "10.57.4.99") in fdb(vxnode) and (MAC_B, "10.57.4.21") not in fdb(vxnode)
    assert [d for m, d in fdb(vxnode) if m == ZERO] == ["10.57.4.21", "10.57.4.22", "10.57.4.99"]
    # A neighbour's MAC changes in place.
    renamed = [dict(NEIGHBORS[0], mac=MAC_C)] + NEIGHBORS[1:]
    result = module("vxlan_fdb", dict(WIRING, entries=moved, neighbors=renamed), ns=vxnode)
    assert [c[1:4] for c in result["commands"]] == [["neigh", "replace", "192.168.11.0"]]
    assert ("192.168.11.0", MAC_C) in neigh(vxnode)
    assert not module("vxlan_fdb", dict(WIRING, entries=moved, neighbors=renamed), ns=vxnode).changed


def test_purge_spares_learned_static_kernel_and_other_devices_entries(module, vxnode):
    ns = vxnode
    # A user's second vxlan device with a `remote`: the kernel adds its own all-zero entry.
    add_vxlan(ns, "vxuser", "101", "remote", "10.57.4.30")
    sh("bridge", "-n", ns, "fdb", "append", ZERO, "dev", "vxuser", "dst", "10.57.4.40", "self", "permanent")
    sh("bridge", "-n", ns, "fdb", "replace", MAC_B, "dev", "vxuser", "dst", "10.57.4.40", "self", "permanent")
    sh("ip", "-n", ns, "neigh", "replace", "192.168.11.0", "lladdr", MAC_B, "dev", "vxuser", "nud", "permanent")
    # On podnet's device: a learned (dynamic) entry, a static one, an ARP cache entry.
    sh("bridge", "-n", ns, "fdb", "add", "0e:50:0a:39:04:19", "dev", "vxlan0", "dst", "10.57.4.23", "self", "dynamic")
    sh("bridge", "-n", ns, "fdb", "add", "0e:50:0a:39:04:17", "dev", "vxlan0", "dst", "10.57.4.23", "self", "static")
    sh("ip", "-n", ns, "neigh", "add", "192.168.13.0", "lladdr", "0e:50:0a:39:04:17", "dev", "vxlan0", "nud", "stale")
    others = dict(user_fdb=fdb(ns, "vxuser"), user_neigh=neigh(ns, "vxuser"),
                  learned=fdb(ns, state=""), static=fdb(ns, state="static"), stale=neigh(ns, state="STALE"))
    assert others["learned"] and others["static"] and others["stale"] and others["user_neigh"]
    assert others["user_fdb"] == [(ZERO, "10.57.4.30", "via", "eth0"), (ZERO, "10.57.4.40"),
                                  (MAC_B, "10.57.4.40")]

    def untouched():
        return others == dict(user_fdb=fdb(ns, "vxuser"), user_neigh=neigh(ns, "vxuser"),
                              learned=fdb(ns, state=""), static=fdb(ns, state="static"),
                              stale=neigh(ns, state="STALE"))

    module("vxlan_fdb", WIRING, ns=ns)
    keep = {"device": "vxlan0", "entries": ENTRIES[:2], "neighbors": NEIGHBORS[:1], "purge": True}
    result = module("vxlan_fdb", keep, ns=ns)
    assert result.changed
    assert [c[1:4] for c in result["commands"]] == [["fdb", "del", ZERO], ["fdb", "del", MAC_C],
                                                    ["neigh", "del", "192.168.12.0"]]
    assert fdb(ns) == [(ZERO, "10.57.4.21"), (MAC_B, "10.57.4.21")]
    assert neigh(ns) == [("192.168.11.0", MAC_B)]
    assert untouched()
    assert not module("vxlan_fdb", keep, ns=ns).changed

    wipe = module("vxlan_fdb", {"device": "vxlan0", "state": "absent", "purge": True}, ns=ns)
    assert wipe.changed and fdb(ns) == [] and neigh(ns) == []
    assert untouched()
    # On the user's device, absent + purge removes the listed-style entries but never the
    # entry the kernel keeps for the device's own `remote`.
    user = module("vxlan_fdb", {"device": "vxuser", "state": "absent", "purge": True}, ns=ns)
    assert user.changed and fdb(ns, "vxuser") == [(ZERO, "10.57.4.30", "via", "eth0")]


def test_entry_podnet_does_not_own_is_never_taken_over(module, vxnode):
    sh("bridge", "-n", vxnode, "fdb", "add", MAC_B, "dev", "vxlan0", "dst", "10.57.4.23", "self", "static")
    before = snapshot(vxnode)
    result = module("vxlan_fdb", WIRING, ns=vxnode)
    assert result.failed and "entries[0].mac" in result["msg"] and "does not own" in result["msg"], result
    assert "0e:50:0a:39:04:15 dst 10.57.4.23 self static" in result["msg"]
    assert snapshot(vxnode) == before


def test_device_must_exist_and_be_vxlan(module, vxnode):
    before = snapshot(vxnode)
    missing = module("vxlan_fdb", dict(WIRING, device="vxlan9"), ns=vxnode)
    assert missing.failed and missing["msg"] == "device: vxlan device 'vxlan9' does not exist", missing
    veth = module("vxlan_fdb", dict(WIRING, device="eth0"), ns=vxnode)
    assert veth.failed and veth["msg"] == "device: 'eth0' is a veth device, not a vxlan device", veth
    lo = module("vxlan_fdb", dict(WIRING, device="lo", state="absent", purge=True), ns=vxnode)
    assert lo.failed and lo["msg"].startswith("device: 'lo' is"), lo
    # Removing entries from a device that is already gone: nothing to do.
    gone = module("vxlan_fdb", dict(WIRING, device="vxlan9", state="absent"), ns=vxnode)
    assert not gone.failed and not gone.changed and gone["entries"] == []
    assert snapshot(vxnode) == before


def test_check_mode_with_missing_device_reports_additions(module, node):
    before = snapshot(settle(node))
    result = module("vxlan_fdb", WIRING, ns=node, check=True, diff=True)
    assert not result.failed and result.changed, result
    assert len(result["commands"]) == 6
    assert result["entries"] == sorted(ENTRIES, key=lambda e: (e["mac"], e["dst"]))
    assert result["diff"]["before"] == {"entries": [], "neighbors": []}
    assert any("does not exist" in w for w in result.get("warnings", []))
    assert snapshot(node) == before


def test_netns_option(module, vxnode):
    # Run from the root namespace's view with netns=, as a controller would for a local namespace.
    args = dict(WIRING, netns=vxnode)
    result = module("vxlan_fdb", args)
    assert result.changed and result["commands"][0][1:3] == ["-n", vxnode]
    assert len(fdb(vxnode)) == 4
    assert not module("vxlan_fdb", args).changed


@pytest.mark.parametrize("args, message", [
    ({"entries": [{"mac": "0e:50:0a:39:04", "dst": "10.57.4.21"}]}, "entries[0].mac"),
    ({"entries": ENTRIES[:2] + [{"mac": "01:00:5e:00:00:01", "dst": "10.57.4.21"}]}, "entries[2].mac: '01:00:5e:00:00:01' is a multicast MAC"),
    ({"entries": [{"mac": MAC_B, "dst": "10.57.4.321"}]}, "entries[0].dst"),
    ({"entries": [{"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": MAC_B, "dst": "10.57.4.22"}]}, "entries[1].mac: unicast MAC"),
    ({"neighbors": [{"ip": "192.168.11.0", "mac": ZERO}]}, "neighbors[0].mac: the all-zero MAC"),
    ({"neighbors": [{"ip": "192.168.11.x", "mac": MAC_B}]}, "neighbors[0].ip"),
    ({"device": "-x"}, "device: interface name '-x'"),
    ({"device": "vxlan0123456789a"}, "device: interface name 'vxlan0123456789a' is 16 characters"),
    ({"device": "vxlan0;reboot"}, "device: interface name 'vxlan0;reboot'"),
])
def test_bad_input_is_refused_before_any_change(module, vxnode, args, message):
    before = snapshot(vxnode)
    result = module("vxlan_fdb", dict(WIRING, **args), ns=vxnode)
    assert result.failed and message in result["msg"], result
    assert result.get("commands") in (None, [])
    assert snapshot(vxnode) == before


def ping(ns, dst, src):
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", "-I", src, dst],
                          capture_output=True, text=True, check=False).returncode == 0


def test_overlay_ping_needs_the_fdb_entry(module, namespaces):
    """Two nodes wired flannel-style: neighbour + FDB entry by the module, then the route."""
    nodes = {}
    for label, me, peer in (("a", 20, 21), ("b", 21, 20)):
        nodes[label] = dict(ns=namespaces.add(label), ip="10.57.4.%d" % me, peer_ip="10.57.4.%d" % peer,
                            mac="0e:50:0a:39:04:%02x" % me, peer_mac="0e:50:0a:39:04:%02x" % peer,
                            gw="192.168.%d.0" % (me - 10), peer_gw="192.168.%d.0" % (peer - 10),
                            peer_cidr="192.168.%d.0/24" % (peer - 10))
    a, b = nodes["a"], nodes["b"]
    sh("ip", "-n", a["ns"], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b["ns"])
    for n in (a, b):
        ns = n["ns"]
        sh("ip", "-n", ns, "addr", "add", n["ip"] + "/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "add", "vxlan0", "address", n["mac"], "type", "vxlan", "id", "100",
           "dstport", "4789", "local", n["ip"], "dev", "eth0", "nolearning")
        sh("ip", "-n", ns, "addr", "add", n["gw"] + "/32", "dev", "vxlan0")
        sh("ip", "-n", ns, "link", "set", "vxlan0", "up")
        wiring = {"device": "vxlan0", "neighbors": [{"ip": n["peer_gw"], "mac": n["peer_mac"]}],
                  "entries": [{"mac": n["peer_mac"], "dst": n["peer_ip"]}]}
        assert module("vxlan_fdb", wiring, ns=ns).changed
        # The route comes last (node_route's job in a play), so the kernel never ARPs for the gateway.
        sh("ip", "-n", ns, "route", "add", n["peer_cidr"], "via", n["peer_gw"], "dev", "vxlan0", "onlink")
    assert ping(a["ns"], b["gw"], a["gw"]), "overlay ping failed with FDB and neighbour entries in place"

    unwire = {"device": "vxlan0", "state": "absent", "entries": [{"mac": b["mac"], "dst": b["ip"]}]}
    assert module("vxlan_fdb", unwire, ns=a["ns"]).changed
    assert neigh(a["ns"]) == [(b["gw"], b["mac"])]
    assert not ping(a["ns"], b["gw"], a["gw"]), "overlay ping worked without an FDB entry"

    # The flood list alone carries the frame again (unknown unicast goes to every listed VTEP).
    flood = {"device": "vxlan0", "entries": [{"mac": ZERO, "dst": b["ip"]}]}
    assert module("vxlan_fdb", flood, ns=a["ns"]).changed
    assert ping(a["ns"], b["gw"], a["gw"]), "overlay ping failed through the flood list"
