# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the script planner (render and boot replay): no kernel, no mocks."""

from __future__ import annotations

import json
import shlex

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import node_plan, script
from ansible_collections.podnet.fabric.plugins.module_utils.model import Cluster

SEED = {
    "host1": {"node_ip": "10.57.4.20", "pod_cidr": "192.168.10.0/24", "pods": [{"name": "pod-a", "ip": "192.168.10.10"}]},
    "host2": {"node_ip": "10.57.4.21", "pod_cidr": "192.168.11.0/24", "pods": [{"name": "pod-b", "ip": "192.168.11.10"}]},
}
FACT = {"iface": "eth0", "prefixlen": 24, "mtu": 1500, "gateway_route": True}
POLICY = [{"from": "pod-a", "to": "pod-b"}]


def plan(**settings):
    return node_plan.plan(Cluster.from_inventory(SEED, settings), "host1", FACT)


def argvs(steps):
    return [c["argv"] for step in steps for c in step["commands"]]


def names(steps):
    return [step["name"] for step in steps]


def test_vxlan_static_order_is_site_yml_s_and_flannel_s():
    steps = script.steps(plan(mode="vxlan", policy=POLICY))
    assert names(steps) == ["node", "policy and guard", "pods", "mode", "FDB and neighbours", "routes"]
    flat = argvs(steps)
    neigh = flat.index(["ip", "neigh", "replace", "192.168.11.1", "lladdr", "0e:50:0a:39:04:15", "dev", "vxlan0",
                        "nud", "permanent"])
    fdb = flat.index(["bridge", "fdb", "replace", "0e:50:0a:39:04:15", "dev", "vxlan0", "dst", "10.57.4.21", "self",
                      "permanent"])
    route = flat.index(["ip", "route", "replace", "192.168.11.0/24", "via", "192.168.11.1", "dev", "vxlan0", "onlink",
                        "scope", "global", "metric", "0", "proto", "150", "table", "main"])
    assert neigh < fdb < route
    assert flat[0] == ["sysctl", "-w", "net.ipv4.ip_forward=1"]


def test_creations_run_only_when_absent_and_addresses_are_replaced():
    steps = script.steps(plan(mode="vxlan"))
    netns = [c for s in steps for c in s["commands"] if c["argv"][1] == "netns"]
    usable = ["ip", "-n", "pod-a", "link", "show", "lo"]
    assert netns == [script.command(["ip", "netns", "del", "pod-a"], unless=usable, tolerate=True),
                     script.command(["ip", "netns", "add", "pod-a"], unless=usable)]
    text = script.render(plan(mode="vxlan"), "host1")
    assert "ip -n pod-a link show lo >/dev/null 2>&1 || ip netns del pod-a 2>/dev/null || :\n" in text
    assert "ip -n pod-a link show lo >/dev/null 2>&1 || ip netns add pod-a\n" in text
    adds = [c for s in steps for c in s["commands"] if c["argv"][:3] == ["ip", "link", "add"]]
    assert [c["unless"] for c in adds] == [["ip", "link", "show", "dev", "veth-pod-a"],
                                           ["ip", "link", "show", "dev", "vxlan0"]]
    flat = argvs(steps)
    assert ["ip", "addr", "replace", "192.168.10.1/32", "dev", "vxlan0"] in flat
    assert not [a for a in flat if a[:3] == ["ip", "addr", "add"]]


def test_chains_are_one_restore_without_jumps_and_jumps_are_checked_first():
    steps = script.steps(plan(mode="vxlan", policy=POLICY))
    chains = [s for s in steps if s["name"] == "policy and guard"][0]["commands"]
    restore, jumps = chains[0], chains[1:]
    assert restore["argv"] == ["iptables-restore", "-w", "--noflush"]
    lines = restore["stdin"].splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert ":PODNET-POLICY - [0:0]" in lines and lines.index(":PODNET-POLICY - [0:0]") < lines.index(
        ":PODNET-FORWARD - [0:0]")
    assert not [line for line in lines if line.startswith(("-I", "-D", "-X", "-F"))]
    assert [j["argv"][4:6] for j in jumps] == [["-I", "FORWARD"], ["-I", "INPUT"]]
    for jump in jumps:
        assert jump["unless"][4] == "-C" and jump["unless"][5:] == [jump["argv"][5]] + jump["argv"][7:]


def test_host_gw_has_no_device_no_guard_and_routes_via_the_peer():
    steps = script.steps(plan(mode="host-gw"))
    assert names(steps) == ["node", "policy and guard", "pods", "routes"]
    restore = steps[1]["commands"][0]["stdin"]
    assert "PODNET-INPUT" not in restore and "PODNET-POLICY" not in restore
    assert steps[-1]["commands"] == [script.command(
        ["ip", "route", "replace", "192.168.11.0/24", "via", "10.57.4.21", "dev", "eth0", "onlink", "scope", "global",
         "metric", "0", "proto", "150", "table", "main"])]


def test_flood_appends_and_ipip_and_multicast():
    flood = argvs(script.steps(plan(mode="vxlan", vxlan_fdb="flood")))
    assert ["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0", "dst", "10.57.4.21", "self",
            "permanent"] in flood
    assert not [a for a in flood if a[1] == "neigh"]
    multicast = script.steps(plan(mode="vxlan", vxlan_fdb="multicast"))
    assert "FDB and neighbours" not in names(multicast)
    assert "group" in [c for c in argvs(multicast) if c[:3] == ["ip", "link", "add"]][-1]
    ipip = script.steps(plan(mode="ipip", tx_checksum_offload=False))
    flat = argvs(ipip)
    assert ["ip", "link", "add", "mustang.tun0", "mtu", "1480", "type", "ipip", "local", "10.57.4.20", "ttl",
            "64"] in flat
    assert ["ethtool", "-K", "mustang.tun0", "tx-checksum-ip-generic", "off"] in flat


def test_render_quotes_every_word_and_annotates_every_step():
    data = plan(mode="vxlan", policy=POLICY)
    text = script.render(data, "host1")
    assert text.startswith("#!/bin/sh\n") and "\nset -eu\n" in text
    for number, step in enumerate(script.steps(data), 1):
        assert "\n# %d. %s: " % (number, step["name"]) in text
    assert "-m comment --comment \"podnet policy pod-a -> pod-b\" -j DROP" in text
    assert "<<'PODNET_EOF'\n*filter\n" in text
    command = dict(argv=["ip", "link", "add", "a b;rm -rf /"], unless=["x'y"], stdin=None)
    line = script._line(command)
    assert shlex.split(line.split(" || ")[1]) == command["argv"]
    assert line.split(" >/dev/null")[0] == shlex.quote("x'y")


def test_bgp_replays_pods_and_chains_only():
    data = plan(mode="bgp")
    steps = script.steps(data)
    assert names(steps) == ["node", "policy and guard", "pods", "routes"]
    assert steps[-1]["commands"] == []
    assert ": # nothing in this mode" in script.render(data, "host1")


@pytest.mark.parametrize("iface, device", [("eth0", "sys-subsystem-net-devices-eth0.device"),
                                           ("br-lan", "sys-subsystem-net-devices-br\\x2dlan.device")])
def test_unit_waits_for_and_binds_to_the_underlay_device(iface, device):
    text = script.unit_text("/var/lib/podnet/host1-replay.sh", iface)
    lines = text.splitlines()
    assert "BindsTo=%s" % device in lines
    assert "After=network-online.target %s" % device in lines
    assert "Wants=network-online.target" in lines
    assert "WantedBy=multi-user.target %s" % device in lines
    assert "Type=oneshot" in lines and "RemainAfterExit=yes" in lines
    assert "ExecStart=/bin/sh /var/lib/podnet/host1-replay.sh" in lines


def test_plan_carries_the_replay_file_iface_and_sysctls():
    data = plan(mode="vxlan", state_dir="/srv/podnet/")
    assert data["replay_file"] == "/srv/podnet/host1-replay.sh"
    assert data["iface"] == "eth0" and data["sysctls"] == {"net.ipv4.ip_forward": 1}
    json.dumps(data)
