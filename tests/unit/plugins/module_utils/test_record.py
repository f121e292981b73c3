# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the node record (record.py) and what the node plan does with a previous one."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import record
from ansible_collections.podnet.fabric.plugins.module_utils.model import Cluster
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

SEED = {
    "host1": {"node_ip": "10.57.4.20", "pod_cidr": "192.168.10.0/24", "pods": [{"name": "pod-a", "ip": "192.168.10.10"}]},
    "host2": {"node_ip": "10.57.4.21", "pod_cidr": "192.168.11.0/24", "pods": [{"name": "pod-b", "ip": "192.168.11.10"}]},
}
FACT = {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True}


def plan(settings=None, fact=None, inventory=None):
    return Cluster.from_inventory(inventory or SEED, settings or {}).node_plan("host1", {"host1": fact or FACT})


def with_record(previous, **fact):
    return dict(FACT, record=previous, **fact)


def test_path_and_the_record_of_a_vxlan_run():
    assert record.path("/var/lib/podnet/", "host1") == "/var/lib/podnet/host1-record.json"
    new = plan()
    assert new["record_file"] == "/var/lib/podnet/host1-record.json"
    assert new["record"] == {
        "version": 1, "node": "host1", "devices": [{"name": "vxlan0", "kind": "vxlan"}],
        "chains": ["PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT"],
        "pods": [{"name": "pod-a", "host_ifname": "veth-pod-a"}],
        "sysctls": {"file": "/var/lib/podnet/host1-sysctl.json", "keys": ["net.ipv4.ip_forward"]}}
    assert record.check(json.loads(json.dumps(new["record"]))) == new["record"]
    assert plan({"mode": "host-gw", "record_dir": "/srv/rec"})["record"]["devices"] == []
    assert plan({"record_dir": "/srv/rec"})["record_file"] == "/srv/rec/host1-record.json"


def test_no_record_plans_as_before():
    first = plan()
    assert first["sysctl_moved_from"] == [] and "replaces" not in first["tunnel"]
    assert first["replay_moved_from"] == []
    assert [p["name"] for p in first["pods"]] == ["pod-a"]
    assert plan(fact=with_record(None)) == first
    # The record of this very run changes nothing.
    assert plan(fact=with_record(first["record"])) == first


def test_a_pod_dropped_from_the_inventory_is_purged_wired_only():
    previous = plan(inventory=dict(SEED, host1=dict(SEED["host1"], pods=SEED["host1"]["pods"] + [
        {"name": "pod-c", "ip": "192.168.10.11"}])))["record"]
    now = plan(fact=with_record(previous))
    assert now["pods"][1:] == [{"name": "pod-c", "host_ifname": "veth-pod-c", "state": "absent", "wired_only": True}]
    assert [p["name"] for p in now["record"]["pods"]] == ["pod-a"]


def test_a_pods_changed_host_ifname_replaces_its_old_veth():
    previous = plan()["record"]
    renamed = dict(SEED, host1=dict(SEED["host1"], pods=[dict(SEED["host1"]["pods"][0], host_ifname="veth-new")]))
    now = plan(fact=with_record(previous), inventory=renamed)
    assert [(p["name"], p["host_ifname"], p.get("replaces")) for p in now["pods"]] == [
        ("pod-a", "veth-new", ["veth-pod-a"])]
    assert now["record"]["pods"] == [{"name": "pod-a", "host_ifname": "veth-new"}]
    assert "replaces" not in plan(fact=with_record(now["record"]), inventory=renamed)["pods"][0]


def test_renames_remove_the_old_device_chains_and_move_the_sysctls():
    previous = plan()["record"]
    renamed = {"vxlan_device": "vx1", "iptables_chain": "NEW-FORWARD", "state_dir": "/srv/podnet"}
    now = plan(renamed, with_record(previous, tunnels={"vxlan0": "vxlan"}))
    # The same mode's device: ip_tunnel deletes the old one before it makes vx1 (not cleanup's).
    assert now["tunnel"]["name"] == "vx1" and now["tunnel"]["replaces"] == ["vxlan0"]
    assert now["absent_tunnels"] == [] and now["iptables_switch"] is None
    assert {"name": "vxlan0", "kind": "vxlan"} in now["devices"]          # teardown finds it too
    gone = [{"name": c, "state": "absent"} for c in ("PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT")]
    chains = json.loads(json.dumps(now["iptables"]))
    assert [c["name"] for c in chains[:3]] == ["NEW-FORWARD", "NEW-POLICY", "NEW-INPUT"] and chains[3:] == gone
    assert now["iptables_absent"][3:] == gone
    assert now["sysctl_file"] == "/srv/podnet/host1-sysctl.json"
    assert now["sysctl_moved_from"] == ["/var/lib/podnet/host1-sysctl.json"]
    assert now["replay_moved_from"] == ["/var/lib/podnet/host1-replay.sh"]
    assert now["record"]["devices"] == [{"name": "vx1", "kind": "vxlan"}]
    assert now["record"]["chains"] == ["NEW-FORWARD", "NEW-POLICY", "NEW-INPUT"]


def test_renamed_device_of_another_mode_goes_with_cleanup_under_the_guard():
    previous = plan()["record"]
    now = plan({"mode": "ipip", "vxlan_device": "vx1"}, with_record(previous, tunnels={"vxlan0": "vxlan"}))
    assert now["absent_tunnels"] == [{"name": "vxlan0", "kind": "vxlan"}]
    assert "replaces" not in now["tunnel"] and now["iptables_switch"] is not None
    # The old device is gone already (tunnels): nothing to call.
    assert plan({"vxlan_device": "vx1"}, with_record(previous, tunnels={}))["tunnel"].get("replaces") is None
    # Never a device of another kind under the recorded name.
    assert plan({"mode": "host-gw", "vxlan_device": "vx1"},
                with_record(previous, tunnels={"vxlan0": "bridge"}))["absent_tunnels"] == []


@pytest.mark.parametrize("bad, message", [
    ({"version": 2}, "not a podnet record of version 1"),
    ("text", "not a podnet record"),
    (dict(version=1, devices=[{"name": "br0", "kind": "bridge"}], chains=[], pods=[], sysctls={"file": "/x"}),
     "kind ipip or vxlan"),
    (dict(version=1, devices=[], chains=[""], pods=[], sysctls={"file": "/x"}), "chains"),
    (dict(version=1, devices=[], chains=[], pods=[{"name": "p"}], sysctls={"file": "/x"}), "pods"),
    (dict(version=1, devices=[], chains=[], pods=[], sysctls=None), "sysctls"),
])
def test_a_record_that_cannot_be_read_is_refused_naming_the_file(bad, message):
    with pytest.raises(PodnetError, match="host host1: /var/lib/podnet/host1-record.json: .*" + message):
        plan(fact=with_record(copy.deepcopy(bad)))


def test_teardown_asks_only_about_the_devices_the_node_holds():
    both = [{"name": "mustang.tun0", "kind": "ipip"}, {"name": "vxlan0", "kind": "vxlan"}]
    assert plan()["devices"] == both                          # nothing read: every device
    read = dict(FACT, tunnels={"vxlan0": "vxlan", "mustang.tun0": "vxlan"}, files=[])
    assert plan(fact=read)["devices"] == [{"name": "vxlan0", "kind": "vxlan"}]   # a same-named vxlan is not podnet's ipip
    kmod = dict(read, files=["/var/lib/podnet/host1-kmod.json"])
    assert plan(fact=kmod)["devices"] == both                 # ipip's modules recorded: ip_tunnel unloads them
    assert plan({"mode": "host-gw"}, dict(FACT, tunnels={}, files=[]))["devices"] == []
    # A renamed state directory (the record names the earlier one): every device, under every name.
    previous = plan()["record"]
    renamed = plan({"state_dir": "/srv/podnet"}, with_record(previous, tunnels={}, files=[]))
    assert both[0] in renamed["devices"] and both[1] in renamed["devices"]


def test_the_lock_file_is_where_the_lock_role_takes_it():
    # roles/lock: "{{ podnet_state_dir | default('/var/lib/podnet') }}/{{ inventory_hostname }}.lock"
    assert plan()["lock_file"] == "/var/lib/podnet/host1.lock"
    assert plan({"state_dir": "/srv/podnet/"})["lock_file"] == "/srv/podnet/host1.lock"
