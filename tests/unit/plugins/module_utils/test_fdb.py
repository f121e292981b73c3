"""Unit tests for the vxlan_fdb planner: wanted entries + `bridge -json fdb` / `ip -json neigh` -> argv."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import fdb
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

ZERO = fdb.ZERO_MAC
MAC_B = "0e:50:0a:39:04:15"
MAC_C = "0e:50:0a:39:04:16"
DEV = ["dev", "vxlan0"]


def fdb_item(mac, dst=None, state="permanent", flags=("self",), **extra):
    """One object as `bridge -json fdb show dev vxlan0` prints it."""
    item = {"mac": mac, "flags": list(flags), "state": state}
    if dst:
        item["dst"] = dst
    item.update(extra)
    return item


def neigh_item(ip, mac=None, state="PERMANENT", **extra):
    item = {"dst": ip, "state": [state]}
    if mac:
        item["lladdr"] = mac
    item.update(extra)
    return item


def plan(entries=(), neighbors=(), fdb_json=(), neigh_json=(), **kwargs):
    return fdb.plan(fdb.wanted_entries(list(entries)), fdb.wanted_neighbors(list(neighbors)),
                    list(fdb_json), list(neigh_json), "vxlan0", **kwargs)


# -- validation ---------------------------------------------------------------

def test_wanted_normalises():
    assert fdb.wanted_entries([{"mac": "0E:50:0A:39:04:15", "dst": "10.57.4.21"},
                               {"mac": ZERO, "dst": "10.57.4.21"},
                               {"mac": ZERO, "dst": "10.57.4.22"}]) == [
        {"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": ZERO, "dst": "10.57.4.21"},
        {"mac": ZERO, "dst": "10.57.4.22"}]
    assert fdb.wanted_neighbors([{"ip": "192.168.11.0", "mac": MAC_B.upper()}]) == [
        {"ip": "192.168.11.0", "mac": MAC_B}]
    assert fdb.wanted_entries(None) == [] and fdb.wanted_neighbors([]) == []


@pytest.mark.parametrize("entries, message", [
    ([{"mac": "0e:50:0a:39:04", "dst": "10.57.4.21"}], "entries[0].mac: '0e:50:0a:39:04' is not a MAC"),
    ([{"mac": "01:00:5e:00:00:01", "dst": "10.57.4.21"}], "entries[0].mac: '01:00:5e:00:00:01' is a multicast MAC"),
    ([{"mac": "ff:ff:ff:ff:ff:ff", "dst": "10.57.4.21"}], "entries[0].mac: the broadcast MAC"),
    ([{"mac": MAC_B, "dst": "10.57.4"}], "entries[0].dst: '10.57.4' is not an IPv4 address"),
    ([{"mac": MAC_B, "dst": "0.0.0.0"}], "entries[0].dst: 0.0.0.0 is not a unicast"),
    ([{"mac": ZERO, "dst": "239.1.1.1"}], "entries[0].dst: 239.1.1.1 is not a unicast"),
    ([{"mac": MAC_B}], "entries[0].dst: a value is required"),
    ([{"mac": MAC_B, "dst": "10.57.4.21", "vni": 7}], "entries[0]: unknown key(s) vni"),
    ([MAC_B], "entries[0]: each FDB entry must be a dict"),
    ([{"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": MAC_C, "dst": "10.57.4.22"},
      {"mac": MAC_B, "dst": "10.57.4.23"}], "entries[2].mac: unicast MAC 0e:50:0a:39:04:15 is already "
                                            "mapped to dst 10.57.4.21 by entries[0]"),
    ([{"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": MAC_B, "dst": "10.57.4.21"}],
     "entries[1]: 0e:50:0a:39:04:15 dst 10.57.4.21 is listed twice (also entries[0])"),
    ([{"mac": ZERO, "dst": "10.57.4.21"}, {"mac": ZERO, "dst": "10.57.4.21"}],
     "entries[1]: 00:00:00:00:00:00 dst 10.57.4.21 is listed twice (also entries[0])"),
])
def test_wanted_entries_refuses(entries, message):
    with pytest.raises(PodnetError) as err:
        fdb.wanted_entries(entries)
    assert message in str(err.value)


@pytest.mark.parametrize("neighbors, message", [
    ([{"ip": "192.168.11.0", "mac": ZERO}], "neighbors[0].mac: the all-zero MAC is not allowed"),
    ([{"ip": "192.168.11.0", "mac": "33:33:00:00:00:01"}], "neighbors[0].mac: '33:33:00:00:00:01' is a multicast"),
    ([{"ip": "192.168.11.0", "mac": "ff:ff:ff:ff:ff:ff"}], "neighbors[0].mac: the broadcast MAC"),
    ([{"ip": "192.168.11.0/24", "mac": MAC_B}], "neighbors[0].ip: '192.168.11.0/24' is not an IPv4"),
    ([{"ip": "255.255.255.255", "mac": MAC_B}], "neighbors[0].ip: 255.255.255.255 is not a unicast"),
    ([{"mac": MAC_B}], "neighbors[0].ip: a value is required"),
    ([{"ip": "192.168.11.0", "mac": MAC_B}, {"ip": "192.168.11.0", "mac": MAC_C}],
     "neighbors[1].ip: 192.168.11.0 is already mapped to MAC 0e:50:0a:39:04:15 by neighbors[0]"),
    ([{"ip": "192.168.11.0", "mac": MAC_B}, {"ip": "192.168.11.0", "mac": MAC_B}],
     "neighbors[1]: 192.168.11.0 lladdr 0e:50:0a:39:04:15 is listed twice (also neighbors[0])"),
])
def test_wanted_neighbors_refuses(neighbors, message):
    with pytest.raises(PodnetError) as err:
        fdb.wanted_neighbors(neighbors)
    assert message in str(err.value)


# -- parsing ------------------------------------------------------------------

def test_parse_fdb_keeps_only_entries_podnet_could_have_written():
    ours, learned, foreign = fdb.parse_fdb([
        fdb_item(MAC_B, "10.57.4.21"),
        fdb_item(ZERO, "10.57.4.21"),
        fdb_item(ZERO, "10.57.4.30", viaIf="eth0"),            # the kernel's entry for `remote ... dev eth0`
        fdb_item(ZERO, "10.57.4.31"),                          # the kernel's entry for `remote` without dev
        fdb_item("0e:50:0a:39:04:19", "10.57.4.23", state=""),  # learned
        fdb_item("0e:50:0a:39:04:17", "10.57.4.23", state="static"),
        fdb_item("0e:50:0a:39:04:1a", "10.57.4.23", port=8472, vni=7),
        fdb_item("0e:50:0a:39:04:1b", "10.57.4.23", flags=("self", "extern_learn")),
        fdb_item("01:00:5e:00:00:01", "10.57.4.23"),
        fdb_item(ZERO, "0.0.0.0"),
        fdb_item("b6:43:3f:9a:a9:c5", flags=(), master="br0"),  # a bridge's own entry on its port
        fdb_item("0e:50:0a:39:04:1c"),                          # permanent without dst
    ], defaults=("10.57.4.31",))
    assert ours == [{"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": ZERO, "dst": "10.57.4.21"}]
    assert learned == [{"mac": "0e:50:0a:39:04:19", "dst": "10.57.4.23"}]
    assert len(foreign) == 8
    assert foreign[0]["text"] == "00:00:00:00:00:00 dst 10.57.4.30 via eth0 self permanent"


def test_parse_neigh():
    ours, learned, foreign = fdb.parse_neigh([
        neigh_item("192.168.11.0", MAC_B),
        neigh_item("192.168.12.0", MAC_C, "REACHABLE"),
        neigh_item("192.168.13.0", None, "FAILED"),
        neigh_item("192.168.14.0", MAC_C, extern_learn=None),
        neigh_item("192.168.15.0", MAC_C, "NOARP"),
    ])
    assert ours == [{"ip": "192.168.11.0", "mac": MAC_B}]
    assert [n["ip"] for n in learned] == ["192.168.12.0", "192.168.13.0"]
    assert [n["ip"] for n in foreign] == ["192.168.14.0", "192.168.15.0"]
    assert foreign[0]["text"] == "192.168.14.0 lladdr 0e:50:0a:39:04:16 extern_learn PERMANENT"


def test_default_destinations():
    link = {"linkinfo": {"info_kind": "vxlan", "info_data": {"id": 101, "remote": "10.57.4.30"}}}
    assert fdb.default_destinations(link) == ("10.57.4.30",)
    assert fdb.default_destinations({"linkinfo": {"info_data": {"group": "239.1.1.1"}}}) == ("239.1.1.1",)
    assert fdb.default_destinations({"linkinfo": {"info_kind": "vxlan"}}) == ()


# -- planning -----------------------------------------------------------------

WIRING = dict(entries=[{"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": ZERO, "dst": "10.57.4.21"}],
              neighbors=[{"ip": "192.168.11.0", "mac": MAC_B}])


def test_plan_adds_neighbours_first_then_fdb():
    commands, before, after = plan(**WIRING)
    assert commands == [
        ("ip", ["neigh", "replace", "192.168.11.0", "lladdr", MAC_B] + DEV + ["nud", "permanent"]),
        ("bridge", ["fdb", "replace", MAC_B] + DEV + ["dst", "10.57.4.21", "self", "permanent"]),
        ("bridge", ["fdb", "append", ZERO] + DEV + ["dst", "10.57.4.21", "self", "permanent"]),
    ]
    assert before == {"entries": [], "neighbors": []}
    assert after == {"entries": [{"mac": ZERO, "dst": "10.57.4.21"}, {"mac": MAC_B, "dst": "10.57.4.21"}],
                     "neighbors": [{"ip": "192.168.11.0", "mac": MAC_B}]}


def test_plan_is_idempotent():
    have_fdb = [fdb_item(MAC_B, "10.57.4.21"), fdb_item(ZERO, "10.57.4.21")]
    have_neigh = [neigh_item("192.168.11.0", MAC_B)]
    commands, before, after = plan(fdb_json=have_fdb, neigh_json=have_neigh, **WIRING)
    assert commands == [] and before == after


def test_plan_replaces_changed_dst_mac_and_learned_entries():
    have_fdb = [fdb_item(MAC_B, "10.57.4.99"), fdb_item(MAC_C, "10.57.4.22", state="")]
    have_neigh = [neigh_item("192.168.11.0", MAC_C), neigh_item("192.168.12.0", MAC_B, "STALE")]
    commands, before, after = plan(
        entries=[{"mac": MAC_B, "dst": "10.57.4.21"}, {"mac": MAC_C, "dst": "10.57.4.22"}],
        neighbors=[{"ip": "192.168.11.0", "mac": MAC_B}, {"ip": "192.168.12.0", "mac": MAC_B}],
        fdb_json=have_fdb, neigh_json=have_neigh)
    assert [c[1][:3] for c in commands] == [["neigh", "replace", "192.168.11.0"],
                                            ["neigh", "replace", "192.168.12.0"],
                                            ["fdb", "replace", MAC_B], ["fdb", "replace", MAC_C]]
    assert before["entries"] == [{"mac": MAC_B, "dst": "10.57.4.99"}]


def test_plan_flood_list_appends_one_per_dst():
    have = [fdb_item(ZERO, "10.57.4.21")]
    flood = [{"mac": ZERO, "dst": "10.57.4.21"}, {"mac": ZERO, "dst": "10.57.4.22"}]
    commands, _before, after = plan(entries=flood, fdb_json=have)
    assert commands == [("bridge", ["fdb", "append", ZERO] + DEV + ["dst", "10.57.4.22", "self", "permanent"])]
    assert [e["dst"] for e in after["entries"]] == ["10.57.4.21", "10.57.4.22"]


def test_plan_purge_removes_fdb_before_neighbours_and_spares_others():
    have_fdb = [fdb_item(MAC_B, "10.57.4.21"), fdb_item(ZERO, "10.57.4.21"), fdb_item(ZERO, "10.57.4.22"),
                fdb_item(MAC_C, "10.57.4.22"), fdb_item("0e:50:0a:39:04:19", "10.57.4.23", state=""),
                fdb_item("0e:50:0a:39:04:17", "10.57.4.23", state="static"),
                fdb_item(ZERO, "10.57.4.30", viaIf="eth0")]
    have_neigh = [neigh_item("192.168.11.0", MAC_B), neigh_item("192.168.12.0", MAC_C),
                  neigh_item("192.168.13.0", MAC_C, "REACHABLE")]
    commands, before, after = plan(fdb_json=have_fdb, neigh_json=have_neigh, purge=True, **WIRING)
    assert commands == [
        ("bridge", ["fdb", "del", ZERO] + DEV + ["dst", "10.57.4.22", "self"]),
        ("bridge", ["fdb", "del", MAC_C] + DEV + ["dst", "10.57.4.22", "self"]),
        ("ip", ["neigh", "del", "192.168.12.0"] + DEV),
    ]
    assert len(before["entries"]) == 4
    assert after == {"entries": WIRING["entries"][::-1], "neighbors": WIRING["neighbors"]}


def test_plan_without_purge_keeps_unlisted():
    have_fdb = [fdb_item(MAC_C, "10.57.4.22")]
    commands, _before, after = plan(fdb_json=have_fdb, **WIRING)
    assert all(c[1][1] != "del" for c in commands)
    assert {"mac": MAC_C, "dst": "10.57.4.22"} in after["entries"]


def test_plan_absent_matches_unicast_by_mac_and_flood_by_dst():
    have_fdb = [fdb_item(MAC_B, "10.57.4.99"), fdb_item(ZERO, "10.57.4.21"), fdb_item(ZERO, "10.57.4.22"),
                fdb_item("0e:50:0a:39:04:19", "10.57.4.21", state="")]
    have_neigh = [neigh_item("192.168.11.0", MAC_C), neigh_item("192.168.12.0", MAC_C)]
    listed = WIRING["entries"] + [{"mac": "0e:50:0a:39:04:19", "dst": "10.57.4.21"}]
    commands, _before, after = plan(entries=listed, neighbors=WIRING["neighbors"], fdb_json=have_fdb,
                                    neigh_json=have_neigh, state="absent")
    assert commands == [
        ("bridge", ["fdb", "del", ZERO] + DEV + ["dst", "10.57.4.21", "self"]),
        ("bridge", ["fdb", "del", MAC_B] + DEV + ["dst", "10.57.4.99", "self"]),
        ("ip", ["neigh", "del", "192.168.11.0"] + DEV),
    ]
    assert after == {"entries": [{"mac": ZERO, "dst": "10.57.4.22"}],
                     "neighbors": [{"ip": "192.168.12.0", "mac": MAC_C}]}
    again, _before, _after = plan(fdb_json=[fdb_item(ZERO, "10.57.4.22")], neigh_json=have_neigh[1:],
                                  state="absent", **WIRING)
    assert again == []


def test_plan_absent_purge_removes_every_owned_entry_only():
    have_fdb = [fdb_item(MAC_B, "10.57.4.21"), fdb_item(ZERO, "10.57.4.31"),
                fdb_item("0e:50:0a:39:04:19", "10.57.4.21", state="")]
    have_neigh = [neigh_item("192.168.11.0", MAC_C), neigh_item("192.168.13.0", MAC_C, "REACHABLE")]
    commands, _before, after = plan(fdb_json=have_fdb, neigh_json=have_neigh, state="absent", purge=True,
                                    defaults=("10.57.4.31",))
    assert [c[1][:3] for c in commands] == [["fdb", "del", MAC_B], ["neigh", "del", "192.168.11.0"]]
    assert after == {"entries": [], "neighbors": []}


@pytest.mark.parametrize("entries, neighbors, fdb_json, neigh_json, message", [
    ([{"mac": MAC_B, "dst": "10.57.4.21"}], [], [fdb_item(MAC_B, "10.57.4.21", state="static")], [],
     "entries[0].mac: 0e:50:0a:39:04:15 is held by '0e:50:0a:39:04:15 dst 10.57.4.21 self static'"),
    ([{"mac": MAC_B, "dst": "10.57.4.21"}], [], [fdb_item(MAC_B, "10.57.4.21", vni=7)], [],
     "vni 7 self permanent"),
    ([{"mac": ZERO, "dst": "10.57.4.30"}], [], [fdb_item(ZERO, "10.57.4.30", viaIf="eth0")], [],
     "entries[0].mac: 00:00:00:00:00:00 is held by '00:00:00:00:00:00 dst 10.57.4.30 via eth0 self permanent'"),
    ([], [{"ip": "192.168.11.0", "mac": MAC_B}], [], [neigh_item("192.168.11.0", MAC_C, "NOARP")],
     "neighbors[0].ip: 192.168.11.0 is held by '192.168.11.0 lladdr 0e:50:0a:39:04:16 NOARP'"),
])
def test_plan_refuses_to_take_over_foreign_entries(entries, neighbors, fdb_json, neigh_json, message):
    with pytest.raises(PodnetError) as err:
        plan(entries, neighbors, fdb_json, neigh_json)
    assert message in str(err.value) and "podnet will not touch it" in str(err.value)


def test_plan_flood_entry_beside_the_default_destination_is_fine():
    have = [fdb_item(ZERO, "10.57.4.30", viaIf="eth0")]
    commands, before, _after = plan(entries=[{"mac": ZERO, "dst": "10.57.4.21"}], fdb_json=have)
    assert [c[1][1] for c in commands] == ["append"] and before["entries"] == []


def test_plan_default_destination_without_via_is_not_podnets():
    have = [fdb_item(ZERO, "10.57.4.31")]
    commands, before, _after = plan(fdb_json=have, state="absent", purge=True, defaults=("10.57.4.31",))
    assert commands == [] and before["entries"] == []
    with pytest.raises(PodnetError):
        plan(entries=[{"mac": ZERO, "dst": "10.57.4.31"}], fdb_json=have, defaults=("10.57.4.31",))
