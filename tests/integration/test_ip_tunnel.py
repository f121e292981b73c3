"""podnet.fabric.ip_tunnel against a real kernel, in scratch namespaces.

vxlan runs here; the ipip tests are marked ``ipip`` and skip on kernels without IPIP
(they run in the qemu VM of tests/qemu).  On a kernel without IPIP, kind=ipip must fail
with a clear message and change nothing.
"""

import time

import pytest

from conftest import ipj, kernel_has, requires_ipip, sh
from conftest import snapshot as raw_snapshot

MAC = "0e:50:0a:39:04:14"  # validate.vtep_mac("10.57.4.20")
VXLAN = {"name": "vxlan0", "kind": "vxlan", "vni": 100, "port": 4789, "local": "10.57.4.20", "dev": "eth0",
         "learning": False, "mac": MAC, "mtu": 1450, "addresses": ["192.168.10.1/32"]}
# The seed: ip tunnel add mustang.tun0 mode ipip local 10.57.4.20 ttl 64; mtu 1480; 192.168.10.1/32.
IPIP = {"name": "mustang.tun0", "kind": "ipip", "local": "10.57.4.20", "ttl": 64, "mtu": 1480,
        "addresses": ["192.168.10.1/32"]}


def snapshot(ns):
    """``conftest.snapshot`` once every link's state has settled.

    The kernel sets a just-upped link's operstate (IFF_RUNNING, shown as the absence of
    NO-CARRIER) and attaches its qdisc asynchronously (linkwatch); on a loaded machine a
    snapshot can catch a link with LOWER_UP and NO-CARRIER at once, or UP with qdisc noop.
    Wait for that to pass (bounded; this is not an assertion), then take the snapshot.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        links = ipj(ns, "link", "show")
        if not any(("LOWER_UP" in l["flags"] and "NO-CARRIER" in l["flags"])
                   or ("UP" in l["flags"] and l.get("qdisc") == "noop") for l in links):
            break
        time.sleep(0.05)
    return raw_snapshot(ns)


def dev(ns, name):
    """The link ``name`` in ``ns`` with details, or None."""
    links = [l for l in ipj(ns, "-details", "link", "show") if l["ifname"] == name]
    return links[0] if links else None


def ipv4(ns, name):
    return sorted("%s/%s" % (a["local"], a["prefixlen"])
                  for l in ipj(ns, "addr", "show", "dev", name) for a in l.get("addr_info", [])
                  if a["family"] == "inet")


def info(link):
    return link["linkinfo"]["info_data"]


# -- vxlan (runs here) -------------------------------------------------------

def test_vxlan_present_again_check_diff_absent(module, node):
    empty = snapshot(node)
    check = module("ip_tunnel", VXLAN, ns=node, check=True, diff=True)
    assert check.changed and check["action"] == "create", check
    assert [c[1:3] for c in check["commands"]] == [["link", "add"], ["addr", "add"], ["link", "set"]]
    assert check["diff"]["before"] == {"device": None}
    assert check["diff"]["after"]["device"]["vni"] == 100
    assert snapshot(node) == empty, "check mode changed the kernel"

    first = module("ip_tunnel", VXLAN, ns=node, diff=True)
    assert first.changed and first["action"] == "create", first
    link = dev(node, "vxlan0")
    data = info(link)
    assert link["linkinfo"]["info_kind"] == "vxlan" and "UP" in link["flags"]
    assert (data["id"], data["port"], data["local"], data["link"], data["learning"]) == \
        (100, 4789, "10.57.4.20", "eth0", False)
    assert link["address"] == MAC and link["mtu"] == 1450
    assert ipv4(node, "vxlan0") == ["192.168.10.1/32"]
    assert first["mac"] == MAC
    assert first["device"] == {"name": "vxlan0", "kind": "vxlan", "local": "10.57.4.20", "vni": 100,
                               "port": 4789, "dev": "eth0", "group": None, "learning": False, "ttl": 0,
                               "mac": MAC, "mtu": 1450, "addresses": ["192.168.10.1/32"], "up": True}
    assert first["diff"] == {"before": {"device": None}, "after": {"device": first["device"]}}

    again = module("ip_tunnel", VXLAN, ns=node, diff=True)
    assert not again.changed and again["commands"] == [] and again["action"] == "none", again
    assert again["diff"]["before"] == again["diff"]["after"] == {"device": first["device"]}

    made = snapshot(node)
    check = module("ip_tunnel", VXLAN, ns=node, check=True)
    assert not check.changed and check["commands"] == []
    # A change in check mode: reported with its diff, not made.
    check = module("ip_tunnel", dict(VXLAN, mtu=1400), ns=node, check=True, diff=True)
    assert check.changed and check["commands"][0][1:] == ["link", "set", "vxlan0", "mtu", "1400"]
    assert (check["diff"]["before"]["device"]["mtu"], check["diff"]["after"]["device"]["mtu"]) == (1450, 1400)
    assert snapshot(node) == made

    gone = module("ip_tunnel", {"name": "vxlan0", "kind": "vxlan", "state": "absent"}, ns=node, diff=True)
    assert gone.changed and gone["action"] == "delete" and dev(node, "vxlan0") is None
    assert gone["diff"]["after"] == {"device": None} and gone["device"] is None
    again = module("ip_tunnel", {"name": "vxlan0", "kind": "vxlan", "state": "absent"}, ns=node)
    assert not again.changed and again["commands"] == []
    assert snapshot(node) == empty


def test_vxlan_in_place_changes_keep_the_device(module, node):
    module("ip_tunnel", VXLAN, ns=node)
    ifindex = dev(node, "vxlan0")["ifindex"]
    changed = dict(VXLAN, mtu=1400, learning=True, ttl=32,
                   addresses=["192.168.10.1/24", "192.168.10.5/32"])
    result = module("ip_tunnel", changed, ns=node)
    assert result.changed and result["action"] == "update", result
    assert not any(c[1:3] in (["link", "add"], ["link", "del"]) for c in result["commands"])
    link = dev(node, "vxlan0")
    assert link["ifindex"] == ifindex
    assert link["mtu"] == 1400 and info(link)["learning"] is True and info(link)["ttl"] == 32
    assert ipv4(node, "vxlan0") == ["192.168.10.1/24", "192.168.10.5/32"]
    assert not module("ip_tunnel", changed, ns=node).changed

    # An address added by hand is not in the list: podnet removes it (the device is podnet's).
    sh("ip", "-n", node, "addr", "add", "192.168.99.1/32", "dev", "vxlan0")
    sh("ip", "-n", node, "link", "set", "vxlan0", "down")
    fixed = module("ip_tunnel", VXLAN, ns=node)
    assert fixed.changed
    assert ipv4(node, "vxlan0") == ["192.168.10.1/32"] and "UP" in dev(node, "vxlan0")["flags"]
    assert dev(node, "vxlan0")["ifindex"] == ifindex and not dev(node, "vxlan0")["linkinfo"]["info_data"]["learning"]


def test_vxlan_vni_change_recreates_with_the_same_mac_or_fails_with_recreate_false(module, node):
    module("ip_tunnel", VXLAN, ns=node)
    ifindex = dev(node, "vxlan0")["ifindex"]

    before = snapshot(node)
    refused = module("ip_tunnel", dict(VXLAN, vni=200, recreate=False), ns=node)
    assert refused.failed and "recreate" in refused["msg"] and "vni (100 -> 200)" in refused["msg"], refused
    assert snapshot(node) == before

    result = module("ip_tunnel", dict(VXLAN, vni=200), ns=node)
    assert result.changed and result["action"] == "recreate", result
    assert result["recreate_reasons"] == ["vni (100 -> 200)"]
    link = dev(node, "vxlan0")
    assert link["ifindex"] != ifindex
    assert info(link)["id"] == 200 and link["address"] == MAC and result["mac"] == MAC
    assert ipv4(node, "vxlan0") == ["192.168.10.1/32"] and "UP" in link["flags"]
    assert not module("ip_tunnel", dict(VXLAN, vni=200), ns=node).changed


def test_vxlan_without_fixed_mac_reports_the_kernels(module, node):
    args = dict(VXLAN, mac=None, mtu=None, addresses=None)
    check = module("ip_tunnel", args, ns=node, check=True)
    assert check.changed and check["mac"] is None and check["device"]["mtu"] is None
    result = module("ip_tunnel", args, ns=node)
    link = dev(node, "vxlan0")
    assert result["mac"] == link["address"] and result["device"]["mtu"] == link["mtu"] == 1450
    assert not module("ip_tunnel", args, ns=node).changed


def test_tx_checksum_offload_through_ethtool_with_netns_option(module, node):
    def offload():
        out = sh("ethtool", "-k", "vxlan0", ns=node)
        return [l.split(":")[1].split()[0] for l in out.splitlines() if l.strip().startswith("tx-checksum-ip-generic:")][0]

    args = dict(VXLAN, tx_checksum_offload=False, netns=node)
    first = module("ip_tunnel", args)  # run from the root namespace's view, like a controller
    assert first.changed and ["-K", "vxlan0", "tx-checksum-ip-generic", "off"] == first["commands"][2][-4:]
    assert first["commands"][0][1:3] == ["-n", node] and first["commands"][2][1:4] == ["netns", "exec", node]
    assert offload() == "off"
    assert not module("ip_tunnel", args).changed
    on = module("ip_tunnel", dict(args, tx_checksum_offload=True))
    assert on.changed and on["commands"][0][-1] == "on" and offload() == "on"
    # Omitted: left alone.
    assert not module("ip_tunnel", dict(VXLAN, netns=node)).changed


@pytest.mark.parametrize("kind", ["veth", "bridge"])
def test_foreign_same_named_device_is_never_touched(module, node, kind):
    if kind == "veth":
        sh("ip", "-n", node, "link", "add", "vxlan0", "type", "veth", "peer", "name", "vxpeer")
    else:
        sh("ip", "-n", node, "link", "add", "vxlan0", "type", "bridge")
    before = snapshot(node)
    result = module("ip_tunnel", VXLAN, ns=node)
    assert result.failed and "vxlan0 already exists and is a %s device" % kind in result["msg"], result
    assert "does not own" in result["msg"]
    absent = module("ip_tunnel", {"name": "vxlan0", "kind": "vxlan", "state": "absent"}, ns=node)
    assert not absent.changed and absent["commands"] == []
    assert snapshot(node) == before


@pytest.mark.parametrize("args, message", [
    (dict(VXLAN, vni=0), "vni: VNI 0 is out of range"),
    (dict(VXLAN, vni=2 ** 24), "vni: VNI 16777216 is out of range"),
    (dict(VXLAN, port=0), "port: port 0 is out of range"),
    (dict(VXLAN, port=65536), "port: port 65536 is out of range"),
    (dict(VXLAN, mtu=10), "mtu: MTU 10 is out of range"),
    (dict(VXLAN, name="vxlan01234567890"), "name: interface name 'vxlan01234567890' is 16 characters"),
    (dict(VXLAN, name="-vxlan0"), "name: interface name '-vxlan0' may only"),
    (dict(VXLAN, name="vx lan0"), "name: interface name 'vx lan0' may only"),
    (dict(VXLAN, name="vxlan0;reboot"), "name: interface name 'vxlan0;reboot' may only"),
    (dict(VXLAN, local="10.57.4.300"), "local: '10.57.4.300' is not an IPv4 address"),
    (dict(VXLAN, mac="0e:50:0a:39:04"), "mac: '0e:50:0a:39:04' is not a MAC address"),
    (dict(VXLAN, group="239.1.1.1", dev=None), "group: a multicast group needs dev"),
    (dict(VXLAN, dev="eth9"), "dev: the underlay interface eth9 does not exist"),
    (dict(VXLAN, remote="10.57.4.21"), "remote: not an option of kind=vxlan"),
    (dict(IPIP, vni=100), "vni: not an option of kind=ipip"),
])
def test_bad_input_is_refused_before_any_change(module, node, args, message):
    before = snapshot(node)
    result = module("ip_tunnel", args, ns=node)
    assert result.failed and message in result["msg"], result
    assert result.get("commands") in (None, [])
    assert snapshot(node) == before


# -- ipip on a kernel without IPIP (this machine) -----------------------------

def test_ipip_on_a_kernel_without_ipip_fails_clearly_and_changes_nothing(module, node):
    if kernel_has("ipip"):
        pytest.skip("this kernel has IPIP; the no-IPIP message cannot be provoked")
    before = snapshot(node)
    result = module("ip_tunnel", IPIP, ns=node)
    assert result.failed, result
    assert "this kernel has no IPIP support" in result["msg"] and "CONFIG_NET_IPIP" in result["msg"]
    assert "modprobe ipip" in result["msg"]
    assert snapshot(node) == before

    # Switching an existing vxlan device of that name to ipip: the ipip device is built
    # beside it first, so the vxlan device survives the failure untouched.
    module("ip_tunnel", dict(VXLAN, name="mustang.tun0"), ns=node)
    before = snapshot(node)
    result = module("ip_tunnel", IPIP, ns=node)
    assert result.failed and "this kernel has no IPIP support" in result["msg"], result
    assert snapshot(node) == before


# -- ipip (qemu VM with a stock Debian kernel) ---------------------------------

@pytest.mark.ipip
def test_ipip_seed_tunnel_lifecycle(module, node):
    requires_ipip()
    # The ipip module is loaded now: the kernel's fallback tunl0 exists in this namespace
    # (unless net.core.fb_tunnels_only_for_init_net says otherwise). It is the kernel's.
    empty = snapshot(node)
    had_tunl0 = dev(node, "tunl0") is not None

    check = module("ip_tunnel", IPIP, ns=node, check=True, diff=True)
    assert check.changed and check["commands"][0][1:] == [
        "link", "add", "mustang.tun0", "mtu", "1480", "type", "ipip", "local", "10.57.4.20", "ttl", "64"]
    assert snapshot(node) == empty

    first = module("ip_tunnel", IPIP, ns=node, diff=True)
    assert first.changed and first["action"] == "create", first
    link = dev(node, "mustang.tun0")
    assert link["linkinfo"]["info_kind"] == "ipip" and "UP" in link["flags"] and link["mtu"] == 1480
    assert info(link)["local"] == "10.57.4.20" and info(link)["remote"] == "any" and info(link)["ttl"] == 64
    assert ipv4(node, "mustang.tun0") == ["192.168.10.1/32"]
    assert first["mac"] is None
    assert first["device"] == {"name": "mustang.tun0", "kind": "ipip", "local": "10.57.4.20", "remote": None,
                               "ttl": 64, "mtu": 1480, "addresses": ["192.168.10.1/32"], "up": True}
    tunl0 = dev(node, "tunl0")
    assert (tunl0 is not None) == had_tunl0, "tunl0 appeared after the module was loaded"

    again = module("ip_tunnel", IPIP, ns=node)
    assert not again.changed and again["commands"] == [], again
    made = snapshot(node)
    assert not module("ip_tunnel", IPIP, ns=node, check=True).changed
    assert snapshot(node) == made

    # ttl changes in place; remote recreates (one-to-many <-> point-to-point cannot change in place).
    ifindex = link["ifindex"]
    ttl = module("ip_tunnel", dict(IPIP, ttl=32), ns=node)
    assert ttl.changed and ttl["action"] == "update", ttl
    assert dev(node, "mustang.tun0")["ifindex"] == ifindex and info(dev(node, "mustang.tun0"))["ttl"] == 32
    refused = module("ip_tunnel", dict(IPIP, remote="10.57.4.21", recreate=False), ns=node)
    assert refused.failed and "remote (None -> 10.57.4.21)" in refused["msg"], refused
    p2p = module("ip_tunnel", dict(IPIP, remote="10.57.4.21"), ns=node)
    assert p2p.changed and p2p["action"] == "recreate", p2p
    link = dev(node, "mustang.tun0")
    assert link["ifindex"] != ifindex and info(link)["remote"] == "10.57.4.21" and info(link)["ttl"] == 64
    assert ipv4(node, "mustang.tun0") == ["192.168.10.1/32"]

    gone = module("ip_tunnel", {"name": "mustang.tun0", "kind": "ipip", "state": "absent"}, ns=node)
    assert gone.changed and dev(node, "mustang.tun0") is None
    assert not module("ip_tunnel", {"name": "mustang.tun0", "kind": "ipip", "state": "absent"}, ns=node).changed
    # tunl0 is the kernel's: still there (if it was), unchanged; nothing else left behind.
    if tunl0 is not None:
        assert dev(node, "tunl0")["ifindex"] == tunl0["ifindex"]
    assert snapshot(node) == empty


@pytest.mark.ipip
def test_ipip_kind_switch_and_the_kernels_tunl0(module, node):
    requires_ipip()
    # vxlan -> ipip under the same name: a recreate that builds the ipip device first.
    module("ip_tunnel", dict(VXLAN, name="mustang.tun0"), ns=node)
    result = module("ip_tunnel", IPIP, ns=node)
    assert result.changed and result["recreate_reasons"] == ["kind (vxlan -> ipip)"], result
    link = dev(node, "mustang.tun0")
    assert link["linkinfo"]["info_kind"] == "ipip" and "UP" in link["flags"]
    assert ipv4(node, "mustang.tun0") == ["192.168.10.1/32"]
    assert not [l for l in ipj(node, "link", "show") if l["ifname"].endswith(".new")]
    assert not module("ip_tunnel", IPIP, ns=node).changed

    # The kernel's fallback device is never podnet's.
    refused = module("ip_tunnel", dict(IPIP, name="tunl0"), ns=node)
    assert refused.failed and "name: tunl0 is the device the kernel creates" in refused["msg"]
    # An ipip device is not removed by a vxlan absent.
    other = module("ip_tunnel", {"name": "mustang.tun0", "kind": "vxlan", "state": "absent"}, ns=node)
    assert not other.changed and dev(node, "mustang.tun0") is not None
