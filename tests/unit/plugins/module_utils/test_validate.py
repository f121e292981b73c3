"""Unit tests for the pure validators (no kernel)."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


@pytest.mark.parametrize("name", ["eth0", "veth-pod-a", "mustang.tun0", "flannel.1", "a" * 15, "vxlan@x"])
def test_ifname_accepts(name):
    assert validate.ifname(name, "dev") == name


@pytest.mark.parametrize("name, words", [
    ("a" * 16, "16 characters"),
    ("-eth0", "must not start"),
    ("eth 0", "may only contain"),
    ("eth0;reboot", "may only contain"),
    ("eth/0", "may only contain"),
    ("..", "may only contain"),
    ("", "required"),
    (None, "required"),
])
def test_ifname_refuses_naming_the_option(name, words):
    with pytest.raises(PodnetError) as err:
        validate.ifname(name, "host_ifname")
    assert str(err.value).startswith("host_ifname: ") and words in str(err.value)


@pytest.mark.parametrize("value, expected", [
    ("192.168.11.0/24", "192.168.11.0/24"),
    ("192.168.10.10", "192.168.10.10/32"),
    ("default", "0.0.0.0/0"),
])
def test_ipv4_network(value, expected):
    assert validate.ipv4_network(value, "dst") == expected


def test_ipv4_network_host_bits_suggests_the_network():
    with pytest.raises(PodnetError, match=r"dst: '192.168.11.5/24' has host bits set; did you mean 192.168.11.0/24"):
        validate.ipv4_network("192.168.11.5/24", "dst")


@pytest.mark.parametrize("value", ["192.168.11.0/33", "fe80::/64", "x", "300.1.1.1/8"])
def test_ipv4_network_refuses(value):
    with pytest.raises(PodnetError, match="^dst: "):
        validate.ipv4_network(value, "dst")


def test_ipv4_interface_needs_prefix():
    assert validate.ipv4_interface("192.168.10.10/24", "address") == "192.168.10.10/24"
    with pytest.raises(PodnetError, match="needs a prefix length"):
        validate.ipv4_interface("192.168.10.10", "address")


@pytest.mark.parametrize("func, bad", [
    (validate.vni, 0), (validate.vni, 2 ** 24), (validate.port, 0), (validate.port, 65536),
    (validate.mtu, 10), (validate.mtu, 65536), (validate.ttl, 256), (validate.vni, "x"), (validate.mtu, True),
])
def test_ranges(func, bad):
    with pytest.raises(PodnetError, match="^opt: "):
        func(bad, "opt")


def test_ranges_accept_edges():
    assert validate.vni(1, "v") == 1 and validate.vni(2 ** 24 - 1, "v") == 2 ** 24 - 1
    assert validate.port("4789", "p") == 4789 and validate.mtu(68, "m") == 68


def test_mac():
    assert validate.mac("0E:50:0A:39:04:14", "mac") == "0e:50:0a:39:04:14"
    assert validate.mac("00:00:00:00:00:00", "mac") == "00:00:00:00:00:00"
    for bad in ("0e:50:0a:39:04", "01:00:5e:00:00:01", "zz:50:0a:39:04:14"):
        with pytest.raises(PodnetError, match="^mac: "):
            validate.mac(bad, "mac")
    with pytest.raises(PodnetError, match="all-zero"):
        validate.mac("00:00:00:00:00:00", "mac", allow_zero=False)


def test_vtep_mac_is_derived_from_the_node_ip_and_unicast_local():
    mac = validate.vtep_mac("10.57.4.20")
    assert mac == "0e:50:0a:39:04:14"
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert validate.vtep_mac("10.57.4.21") != mac


def test_route_table_and_proto():
    assert validate.route_table(None, "table") == "main"
    assert validate.route_table("254", "table") == "main"
    assert validate.route_table("100", "table") == "100"
    with pytest.raises(PodnetError, match="^table: "):
        validate.route_table("0", "table")
    assert validate.rt_proto_is_podnet("150") and validate.rt_proto_is_podnet("podnet")
    assert not validate.rt_proto_is_podnet("static")


@pytest.mark.parametrize("name", ["-n", "a b", "x;y", "", "a" * 65])
def test_netns_name_refuses(name):
    with pytest.raises(PodnetError, match="^netns: "):
        validate.netns_name(name, "netns")


# -- list-of-dicts entries and host addresses (shared by the planners and the model) ----------

def test_known_keys_names_the_entry_and_lists_what_is_allowed():
    assert validate.known_keys({"name": "a"}, ("name", "ip"), "pods[0]") == {"name": "a"}
    with pytest.raises(PodnetError) as err:
        validate.known_keys({"name": "a", "adress": "x", "zz": 1}, ("name", "ip"), "pods[0]")
    assert str(err.value) == "pods[0]: unknown key(s) adress, zz; allowed: name, ip"


def test_entries_yields_where_and_refuses_a_non_dict():
    assert list(validate.entries([{"dst": "x"}, {}], "routes", ("dst",), "route")) == [
        ("routes[0]", {"dst": "x"}), ("routes[1]", {})]
    assert list(validate.entries(None, "routes", ("dst",))) == []
    with pytest.raises(PodnetError, match=r"^routes\[1\]: each route must be a dict \(keys: dst, via\)$"):
        list(validate.entries([{}, "10.0.0.0/8"], "routes", ("dst", "via"), "route"))


@pytest.mark.parametrize("value, words", [
    ("10.57.4.0/24", "10.57.4.0 is the network address of 10.57.4.0/24"),
    ("10.57.4.255/24", "10.57.4.255 is the broadcast address of 10.57.4.0/24"),
    ("10.57.4.20", "needs a prefix length"),
])
def test_host_interface_refuses_network_and_broadcast(value, words):
    with pytest.raises(PodnetError) as err:
        validate.host_interface(value, "pods[0].ip")
    assert str(err.value).startswith("pods[0].ip: ") and words in str(err.value)


@pytest.mark.parametrize("value", ["10.57.4.20/24", "10.57.4.0/31", "10.57.4.1/31", "10.57.4.7/32"])
def test_host_interface_accepts_hosts_and_point_to_point(value):
    assert validate.host_interface(value, "address") == value
