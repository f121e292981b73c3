"""Unit tests for the ip_tunnel planner: wanted device + `ip -d -json addr show` -> ip/ethtool argv."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import tunnel
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

VXLAN = dict(name="vxlan0", kind="vxlan", vni=100, local="10.57.4.20", dev="eth0",
             mac="0E:50:0A:39:04:14", mtu=1450, addresses=["192.168.10.1/32"])
IPIP = dict(name="mustang.tun0", kind="ipip", local="10.57.4.20", mtu=1480, addresses=["192.168.10.1/32"])


def link(name, kind, data=None, addrs=(), flags=("BROADCAST", "MULTICAST", "UP", "LOWER_UP"),
         mtu=1450, address="0e:50:0a:39:04:14", ifindex=7):
    item = {"ifindex": ifindex, "ifname": name, "flags": list(flags), "mtu": mtu, "address": address,
            "addr_info": [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                          for a in addrs]}
    if kind:
        item["linkinfo"] = {"info_kind": kind, "info_data": data or {}}
    return item


def vxlan_link(**data):
    base = {"id": 100, "local": "10.57.4.20", "link": "eth0", "port": 4789, "learning": False, "ttl": 0}
    base.update(data)
    return link("vxlan0", "vxlan", base, addrs=["192.168.10.1/32"])


def ipip_link(**data):
    base = {"proto": "any", "remote": "any", "local": "10.57.4.20", "ttl": 64, "pmtudisc": True}
    base.update(data)
    return link("mustang.tun0", "ipip", base, addrs=["192.168.10.1/32"], mtu=1480, address="10.57.4.20",
                flags=("NOARP", "UP", "LOWER_UP"))


def run(params, links, offload=None, **extra):
    """Plan against ``links`` plus the underlays eth0 and eth1."""
    links = list(links) + [link("eth0", "veth", ifindex=2), link("eth1", "veth", ifindex=3)]
    want = tunnel.wanted(dict(params, **extra))
    have, names = tunnel.parse(links, want["name"])
    plan = tunnel.plan(want, have, names, offload)
    # Read as a dict: the Plan's fields, its facts (action, reasons) and its warning.
    return dict(plan.facts, commands=plan.commands, before=plan.before, after=plan.after,
                warning=plan.warnings[0] if plan.warnings else None)


def ip_args(result):
    return [args for tool, args in result["commands"] if tool == "ip"]


# -- wanted -------------------------------------------------------------------

def test_wanted_vxlan_defaults_and_normalises():
    want = tunnel.wanted(VXLAN)
    assert want["port"] == 4789 and want["learning"] is False and want["ttl"] == 0
    assert want["mac"] == "0e:50:0a:39:04:14" and want["group"] is None and want["recreate"] is True
    assert want["tx_checksum_offload"] is None


def test_wanted_ipip_defaults_ttl_64_and_sorts_addresses():
    want = tunnel.wanted(dict(IPIP, addresses=["192.168.10.9/32", "192.168.10.1/24"]))
    assert want["ttl"] == 64 and want["remote"] is None
    assert want["addresses"] == ["192.168.10.1/24", "192.168.10.9/32"]


@pytest.mark.parametrize("params, message", [
    (dict(VXLAN, vni=0), "vni: VNI 0 is out of range"),
    (dict(VXLAN, vni=2 ** 24), "vni: VNI 16777216 is out of range"),
    (dict(VXLAN, vni=None), "vni: kind=vxlan needs a VNI"),
    (dict(VXLAN, port=0), "port: port 0 is out of range"),
    (dict(VXLAN, port=65536), "port: port 65536"),
    (dict(VXLAN, mtu=10), "mtu: MTU 10"),
    (dict(VXLAN, name="a" * 16), "name: interface name"),
    (dict(VXLAN, name="-vx"), "name: interface name"),
    (dict(VXLAN, name="vx 0"), "name: interface name"),
    (dict(VXLAN, name="vx;0"), "name: interface name"),
    (dict(VXLAN, local="10.57.4"), "local: '10.57.4' is not an IPv4 address"),
    (dict(VXLAN, local="239.1.1.1"), "local: 239.1.1.1 is not a unicast"),
    (dict(VXLAN, mac="0e:50:0a:39:04"), "mac: "),
    (dict(VXLAN, mac="01:00:5e:00:00:01"), "mac: "),
    (dict(VXLAN, mac="00:00:00:00:00:00"), "mac: the all-zero MAC"),
    (dict(VXLAN, group="239.1.1.1", dev=None), "group: a multicast group needs dev"),
    (dict(VXLAN, group="10.1.1.1"), "group: 10.1.1.1 is not an IPv4 multicast"),
    (dict(VXLAN, ttl=256), "ttl: TTL 256"),
    (dict(VXLAN, addresses=["192.168.10.1"]), "addresses[0]: '192.168.10.1' needs a prefix length"),
    (dict(VXLAN, addresses=["192.168.10.1/32", "192.168.10.1/32"]), "addresses[1]: 192.168.10.1/32 is listed twice"),
    (dict(VXLAN, remote="10.57.4.21"), "remote: not an option of kind=vxlan"),
    (dict(IPIP, vni=100, port=4789), "vni, port: not an option of kind=ipip"),
    (dict(IPIP, mac="0e:50:0a:39:04:14"), "mac: not an option of kind=ipip"),
    (dict(IPIP, learning=False), "learning: not an option of kind=ipip"),
    (dict(IPIP, local=None), "local: kind=ipip needs local"),
    (dict(IPIP, name="tunl0"), "name: tunl0 is the device the kernel creates"),
    (dict(VXLAN, kind="gre"), "kind: 'gre' is not one of"),
])
def test_wanted_refuses_bad_input_naming_the_option(params, message):
    with pytest.raises(PodnetError) as err:
        tunnel.wanted(params)
    assert message in str(err.value)


def test_absent_needs_only_name_and_kind():
    assert tunnel.wanted(dict(name="vxlan0", kind="vxlan", state="absent", vni=None)) == \
        dict(name="vxlan0", kind="vxlan", state="absent")


# -- parse --------------------------------------------------------------------

def test_parse_vxlan_and_ipip_endpoints():
    have, names = tunnel.parse([link("lo", None), vxlan_link()], "vxlan0")
    assert names == {"lo": ("", None), "vxlan0": ("vxlan", (100, 4789))}
    assert tunnel.public(have) == dict(name="vxlan0", kind="vxlan", local="10.57.4.20", vni=100, port=4789,
                                       dev="eth0", group=None, learning=False, ttl=0, mac="0e:50:0a:39:04:14",
                                       mtu=1450, addresses=["192.168.10.1/32"], up=True)
    have, _names = tunnel.parse([ipip_link()], "mustang.tun0")
    assert tunnel.public(have) == dict(name="mustang.tun0", kind="ipip", local="10.57.4.20", remote=None,
                                       ttl=64, mtu=1480, addresses=["192.168.10.1/32"], up=True)
    have, _names = tunnel.parse([ipip_link(local="any", remote="10.57.4.21")], "mustang.tun0")
    assert have["local"] is None and have["remote"] == "10.57.4.21"


def test_parse_ignores_ipv6_and_missing_device():
    item = vxlan_link()
    item["addr_info"].append({"family": "inet6", "local": "fe80::1", "prefixlen": 64})
    have, _names = tunnel.parse([item], "vxlan0")
    assert have["addresses"] == ["192.168.10.1/32"]
    assert tunnel.parse([item], "other")[0] is None


def test_parse_offload():
    text = "Features for vx0:\ntx-checksumming: on\n\ttx-checksum-ipv4: off [fixed]\n\ttx-checksum-ip-generic: on\n"
    assert tunnel.parse_offload(text) == (True, False)
    assert tunnel.parse_offload("\ttx-checksum-ip-generic: off [fixed]\n") == (False, True)
    assert tunnel.parse_offload("nothing") == (None, None)


# -- plan ---------------------------------------------------------------------

def test_create_vxlan_commands_in_order():
    result = run(VXLAN, [], tx_checksum_offload=False)
    assert result["action"] == "create" and result["before"] is None
    assert result["commands"] == [
        ("ip", ["link", "add", "vxlan0", "address", "0e:50:0a:39:04:14", "mtu", "1450", "type", "vxlan",
                "id", "100", "dstport", "4789", "local", "10.57.4.20", "dev", "eth0", "nolearning", "ttl", "0"]),
        ("ip", ["addr", "add", "192.168.10.1/32", "dev", "vxlan0"]),
        ("ethtool", ["-K", "vxlan0", "tx-checksum-ip-generic", "off"]),
        ("ip", ["link", "set", "vxlan0", "up"]),
    ]
    assert result["after"]["up"] is True and result["after"]["mac"] == "0e:50:0a:39:04:14"


def test_create_ipip_like_the_seed():
    result = run(dict(IPIP, mtu=None), [])
    assert ip_args(result)[0] == ["link", "add", "mustang.tun0", "type", "ipip", "local", "10.57.4.20", "ttl", "64"]
    assert result["after"]["mtu"] is None and "mac" not in result["after"]


def test_create_vxlan_with_group_and_without_mac():
    result = run(dict(VXLAN, mac=None, group="239.1.1.1", learning=True), [])
    assert ip_args(result)[0] == ["link", "add", "vxlan0", "mtu", "1450", "type", "vxlan", "id", "100",
                                  "dstport", "4789", "local", "10.57.4.20", "group", "239.1.1.1", "dev", "eth0",
                                  "learning", "ttl", "0"]
    assert result["after"]["mac"] is None


def test_unchanged_is_empty():
    result = run(VXLAN, [vxlan_link()])
    assert result["commands"] == [] and result["action"] == "none"
    assert result["before"] == result["after"]


def test_in_place_changes_keep_the_device():
    result = run(dict(VXLAN, mtu=1400, learning=True, ttl=32, local="10.57.4.30", mac="0e:50:0a:39:04:15",
                      addresses=["192.168.10.2/32"]), [vxlan_link()])
    assert result["action"] == "update"
    assert ip_args(result) == [
        ["link", "set", "vxlan0", "type", "vxlan", "learning", "ttl", "32", "local", "10.57.4.30"],
        ["link", "set", "vxlan0", "address", "0e:50:0a:39:04:15"],
        ["link", "set", "vxlan0", "mtu", "1400"],
        ["addr", "del", "192.168.10.1/32", "dev", "vxlan0"],
        ["addr", "add", "192.168.10.2/32", "dev", "vxlan0"],
    ]


def test_local_cleared_in_place_and_down_device_set_up():
    item = vxlan_link()
    item["flags"] = ["BROADCAST", "MULTICAST"]
    result = run(dict(VXLAN, local=None), [item])
    assert ip_args(result) == [["link", "set", "vxlan0", "type", "vxlan", "local", "0.0.0.0"],
                               ["link", "set", "vxlan0", "up"]]


def test_unmanaged_mtu_mac_addresses_are_left_alone():
    result = run(dict(VXLAN, mtu=None, mac=None, addresses=None), [vxlan_link()])
    assert result["commands"] == []
    assert result["after"]["mtu"] == 1450 and result["after"]["addresses"] == ["192.168.10.1/32"]


def test_empty_addresses_removes_all_ipv4_addresses():
    assert ip_args(run(dict(VXLAN, addresses=[]), [vxlan_link()])) == [
        ["addr", "del", "192.168.10.1/32", "dev", "vxlan0"]]


@pytest.mark.parametrize("extra, data, reason", [
    (dict(vni=200), {}, "vni (100 -> 200)"),
    (dict(port=8472), {}, "port (4789 -> 8472)"),
    (dict(dev="eth1"), {}, "dev (eth0 -> eth1)"),
    (dict(group="239.1.1.1"), {}, "group (None -> 239.1.1.1)"),
    ({}, dict(remote="10.57.4.21"), "remote (10.57.4.21 -> none"),
    ({}, dict(ttl=None), "ttl (inherit -> 0"),
    ({}, dict(external=True), "external"),
])
def test_immutable_difference_recreates_or_fails(extra, data, reason):
    item = vxlan_link(**data)
    if data.get("ttl", 0) is None:
        del item["linkinfo"]["info_data"]["ttl"]
    result = run(dict(VXLAN, **extra), [item])
    assert result["action"] == "recreate" and reason in result["reasons"][0]
    assert ip_args(result)[0] == ["link", "del", "vxlan0"] and ip_args(result)[1][:2] == ["link", "add"]
    with pytest.raises(PodnetError) as err:
        run(dict(VXLAN, recreate=False, **extra), [item])
    assert "recreate:" in str(err.value) and reason in str(err.value)


def test_ipip_ttl_in_place_local_and_remote_recreate():
    assert ip_args(run(dict(IPIP, ttl=32), [ipip_link()])) == [
        ["link", "set", "mustang.tun0", "type", "ipip", "ttl", "32"]]
    result = run(dict(IPIP, remote="10.57.4.21"), [ipip_link()])
    assert result["reasons"] == ["remote (None -> 10.57.4.21)"]
    result = run(dict(IPIP, local="10.57.4.30"), [ipip_link()])
    assert result["reasons"] == ["local (10.57.4.20 -> 10.57.4.30)"]


def test_kind_change_builds_the_new_device_beside_the_old_one():
    item = vxlan_link()
    item["ifname"] = "mustang.tun0"
    result = run(IPIP, [item])
    tmp = tunnel.temp_name("mustang.tun0")
    assert len(tmp) <= 15
    assert result["reasons"] == ["kind (vxlan -> ipip)"]
    assert ip_args(result)[:3] == [
        ["link", "add", tmp, "mtu", "1480", "type", "ipip", "local", "10.57.4.20", "ttl", "64"],
        ["link", "del", "mustang.tun0"],
        ["link", "set", tmp, "name", "mustang.tun0"],
    ]
    with pytest.raises(PodnetError) as err:
        run(IPIP, [item, link(tmp, "ipip")])
    assert "temporary device" in str(err.value)


@pytest.mark.parametrize("kind", ["veth", "bridge", None])
def test_foreign_device_is_never_touched(kind):
    with pytest.raises(PodnetError) as err:
        run(VXLAN, [link("vxlan0", kind)])
    assert "podnet never changes or removes a device it does not own" in str(err.value)
    absent = run(dict(name="vxlan0", kind="vxlan", state="absent"), [link("vxlan0", kind)])
    assert absent["commands"] == [] and "left alone" in absent["warning"]


def test_absent_deletes_only_its_own_kind():
    result = run(dict(name="vxlan0", kind="vxlan", state="absent"), [vxlan_link()])
    assert result["commands"] == [("ip", ["link", "del", "vxlan0"])] and result["after"] is None
    assert result["before"]["vni"] == 100
    other = run(dict(name="vxlan0", kind="ipip", state="absent"), [vxlan_link()])
    assert other["commands"] == [] and "not a ipip tunnel" in other["warning"]
    assert run(dict(name="vxlan0", kind="vxlan", state="absent"), [])["commands"] == []


@pytest.mark.parametrize("current, wanted, command", [
    (True, False, ["-K", "vxlan0", "tx-checksum-ip-generic", "off"]),
    (False, True, ["-K", "vxlan0", "tx-checksum-ip-generic", "on"]),
    (False, False, None),
    (True, None, None),
])
def test_tx_checksum_offload(current, wanted, command):
    result = run(VXLAN, [vxlan_link()], offload=current, tx_checksum_offload=wanted)
    ethtool = [args for tool, args in result["commands"] if tool == "ethtool"]
    assert ethtool == ([command] if command else [])


def test_missing_underlay_and_taken_vni_or_endpoint_are_refused_before_anything():
    with pytest.raises(PodnetError) as err:
        run(dict(VXLAN, dev="eth9"), [vxlan_link()])
    assert "dev: the underlay interface eth9 does not exist" in str(err.value)
    other = vxlan_link()
    other["ifname"] = "vxlan9"
    with pytest.raises(PodnetError) as err:
        run(VXLAN, [other])
    assert "vni: the vxlan device vxlan9 already uses VNI 100 on port 4789" in str(err.value)
    assert run(dict(VXLAN, port=8472), [other])["action"] == "create"
    twin = ipip_link()
    twin["ifname"] = "tun9"
    with pytest.raises(PodnetError) as err:
        run(IPIP, [twin])
    assert "local: the ipip device tun9 already uses local 10.57.4.20 remote any" in str(err.value)
    # The kernel's fallback tunl0 (any -> any) never collides with podnet's tunnel.
    tunl0 = ipip_link(local="any")
    tunl0["ifname"] = "tunl0"
    assert run(IPIP, [tunl0])["action"] == "create"


def test_replaces_deletes_the_renamed_device_of_its_kind_first():
    old = vxlan_link()   # vxlan0 holds VNI 100 on port 4789
    result = run(dict(VXLAN, name="vx1"), [old], replaces=["vxlan0"])
    assert result["action"] == "create"
    assert ip_args(result)[0] == ["link", "del", "vxlan0"] and ip_args(result)[1][:3] == ["link", "add", "vx1"]
    # Not of this kind: left alone, and the usual checks apply.
    bridge = link("br9", "bridge")
    assert ip_args(run(dict(VXLAN, name="vx1"), [bridge], replaces=["br9"]))[0][:3] == ["link", "add", "vx1"]
    # Gone already, or the device itself: nothing more.
    assert run(VXLAN, [vxlan_link()], replaces=["vxlan0", "old0"])["action"] == "none"
    with pytest.raises(PodnetError, match=r"replaces\[0\]"):
        run(VXLAN, [], replaces=["bad name"])
