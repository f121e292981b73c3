# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for podnet.fabric.ip_tunnel: wanted tunnel + ``ip -d -json addr show`` -> argv.

The device is podnet's when a link with that name exists and its ``info_kind`` is one of
podnet's tunnel kinds (ipip, vxlan).  A same-named link of any other kind (a veth, a
bridge, a physical NIC) is never touched.

What can change in place was measured on Linux 6.18 with iproute2 6.1
(``ip link set NAME type vxlan ...``):

* vxlan accepts in place: learning, ttl, local (also cleared with ``local 0.0.0.0``),
  dev, group, remote, tos, ageing.  It refuses VNI ("Cannot change VNI"), port, source
  port range, UDP checksum and l2miss/l3miss changes.  A ``ttl inherit`` flag cannot be
  cleared in place.
* podnet changes in place only what is safe on every kernel it targets: learning, ttl
  and local, plus MTU, MAC, addresses and the UP flag.  dev and group are recreated:
  kernels before ~6.10 leave the multicast membership on the old device/group when they
  are changed in place (6.18 moves it).
* ipip (not measurable on a kernel without IPIP; from ip_tunnel_changelink): ttl in
  place; local and remote recreate (the kernel refuses to switch between one-to-many and
  point-to-point in place).

Commands are ``(tool, argv_tail)`` pairs; ``tool`` is ``ip`` or ``ethtool``.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.plan import Plan
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

KINDS = ("ipip", "vxlan")
DEFAULT_PORT = 4789
DEFAULT_TTL = dict(ipip=64, vxlan=0)
CSUM_FEATURE = "tx-checksum-ip-generic"

# Options that belong to one kind only; giving them for the other kind is refused.
KIND_OPTIONS = dict(
    ipip=("remote",),
    vxlan=("vni", "port", "dev", "learning", "group", "mac"),
)
# Attributes that are changed in place; every other differing attribute recreates.
IN_PLACE = dict(ipip=("ttl",), vxlan=("learning", "ttl", "local"))
IMMUTABLE = dict(ipip=("local", "remote"), vxlan=("vni", "port", "dev", "group"))

# Devices the kernel creates by itself when a tunnel module loads; never podnet's.
FALLBACK_DEVICES = ("tunl0", "gre0", "gretap0", "erspan0", "sit0", "ip_vti0",
                    "ip6tnl0", "ip6gre0", "ip6_vti0")

NO_IPIP_MSG = (
    "kind=ipip: this kernel has no IPIP support (ip link add ... type ipip failed with %r). "
    "The kernel needs CONFIG_NET_IPIP=y or =m with the ipip module loadable: check with "
    "`grep CONFIG_NET_IPIP /boot/config-$(uname -r)` and `modprobe ipip` (in a container, "
    "load the module on the host). Or use kind=vxlan.")
NO_KIND_MARKERS = ("Unknown device type", "Operation not supported")


def create_failed(kind, args, error):
    """The message for an ``ip link add`` (``args``) that failed with ``error``."""
    if any(marker in error for marker in NO_KIND_MARKERS):
        if kind == "ipip":
            return NO_IPIP_MSG % error
        return ("kind=vxlan: this kernel has no VXLAN support (%r); it needs CONFIG_VXLAN=y or =m "
                "with the vxlan module loadable" % error)
    return "ip %s failed: %s" % (" ".join(args), error)


_unicast = validate.unicast_ipv4


def _given(params, key):
    return params.get(key) not in (None, "")


def wanted(params):
    """Validate and normalise the module's parameters into the wanted device.

    Raises ``PodnetError`` naming the option, before anything is read or changed.
    """
    name = validate.ifname(params.get("name"), "name")
    if name in FALLBACK_DEVICES:
        raise PodnetError(
            "name: %s is the device the kernel creates by itself when its tunnel module "
            "loads; podnet does not manage it. Choose another name (e.g. mustang.tun0)" % name)
    kind = params.get("kind")
    if kind not in KINDS:
        raise PodnetError("kind: %r is not one of %s" % (kind, ", ".join(KINDS)))
    state = params.get("state") or "present"
    want = dict(name=name, kind=kind, state=state)
    if state == "absent":
        return want
    other = [k for k in KINDS if k != kind][0]
    refused = [key for key in KIND_OPTIONS[other] if params.get(key) is not None]
    if refused:
        raise PodnetError("%s: not an option of kind=%s (only of kind=%s)"
                          % (", ".join(refused), kind, other))

    want["local"] = _unicast(params["local"], "local") if _given(params, "local") else None
    want["ttl"] = validate.ttl(params["ttl"] if params.get("ttl") is not None else DEFAULT_TTL[kind], "ttl")
    mtu = params.get("mtu")
    want["mtu"] = validate.mtu(mtu, "mtu") if mtu is not None else None
    addresses = params.get("addresses")
    if addresses is None:
        want["addresses"] = None
    else:
        seen = {}
        for index, item in enumerate(addresses):
            where = "addresses[%d]" % index
            address = validate.ipv4_interface(item, where)
            if address in seen:
                raise PodnetError("%s: %s is listed twice (also addresses[%d])" % (where, address, seen[address]))
            seen[address] = index
        want["addresses"] = sorted(seen, key=_addr_key)
    want["recreate"] = bool(params.get("recreate", True))
    want["replaces"] = [validate.ifname(old, "replaces[%d]" % index)
                        for index, old in enumerate(params.get("replaces") or [])]
    offload = params.get("tx_checksum_offload")
    want["tx_checksum_offload"] = None if offload is None else bool(offload)

    if kind == "ipip":
        want["remote"] = _unicast(params["remote"], "remote") if _given(params, "remote") else None
        if not want["local"] and not want["remote"]:
            raise PodnetError(
                "local: kind=ipip needs local (and optionally remote): a tunnel with neither "
                "is the kernel's own fallback device tunl0 (any -> any)")
    else:
        if params.get("vni") is None:
            raise PodnetError("vni: kind=vxlan needs a VNI (1..%d)" % validate.VNI_MAX)
        want["vni"] = validate.vni(params["vni"], "vni")
        port = params.get("port")
        want["port"] = validate.port(port if port is not None else DEFAULT_PORT, "port")
        want["dev"] = validate.ifname(params["dev"], "dev") if _given(params, "dev") else None
        want["learning"] = bool(params.get("learning"))
        if _given(params, "group"):
            group = validate.ipv4(params["group"], "group")
            if not ipaddress.IPv4Address(group).is_multicast:
                raise PodnetError("group: %s is not an IPv4 multicast address (224.0.0.0/4)" % group)
            if not want["dev"]:
                raise PodnetError("group: a multicast group needs dev (the underlay interface to join it on)")
            want["group"] = group
        else:
            want["group"] = None
        want["mac"] = validate.mac(params["mac"], "mac", allow_zero=False) if _given(params, "mac") else None
        if want["mac"] == "ff:ff:ff:ff:ff:ff":
            raise PodnetError("mac: the broadcast MAC cannot be a device address")
    return want


def _addr_key(text):
    iface = ipaddress.IPv4Interface(text)
    return (int(iface.ip), iface.network.prefixlen)


def _endpoint(value):
    """An iproute2 tunnel endpoint ("any", "0.0.0.0" or an address) -> address or None."""
    if value in (None, "", "any", "0.0.0.0"):
        return None
    return value


def _key(kind, data):
    """What the kernel keeps unique among devices of a kind: vxlan (VNI, port), ipip (local, remote, dev)."""
    if kind == "vxlan":
        return (data.get("id"), data.get("port"))
    if kind == "ipip":
        return (_endpoint(data.get("local")), _endpoint(data.get("remote")), data.get("link"))
    return None


def parse(ip_json, name):
    """Find ``name`` in ``ip -d -json addr show``: ``(device or None, links)``.

    ``device`` has ``kind`` (the link's info_kind, "" for links without one) and, for
    podnet's kinds, the normalised attributes.  ``links`` maps every link name to
    ``(kind, key)``, ``key`` being what the kernel keeps unique among tunnels of a kind.
    """
    names = {}
    found = None
    for link in ip_json or []:
        info = link.get("linkinfo") or {}
        kind = info.get("info_kind") or ""
        names[link.get("ifname")] = (kind, _key(kind, info.get("info_data") or {}))
        if link.get("ifname") == name:
            found = link
    if found is None:
        return None, names
    info = found.get("linkinfo") or {}
    kind = info.get("info_kind") or ""
    data = info.get("info_data") or {}
    device = dict(name=name, kind=kind, ifindex=found.get("ifindex"))
    if kind not in KINDS:
        return device, names
    addresses = []
    for addr in found.get("addr_info") or []:
        if addr.get("family") != "inet":
            continue
        text = "%s/%s" % (addr["local"], addr["prefixlen"])
        if addr.get("address") and addr["address"] != addr["local"]:
            text += " peer %s" % addr["address"]
        addresses.append(text)
    device.update(
        up="UP" in (found.get("flags") or []),
        mtu=found.get("mtu"),
        addresses=sorted(addresses, key=lambda t: _addr_key(t.split(" ")[0]) + (t,)),
        local=_endpoint(data.get("local")),
        # iproute2 leaves ttl out of the JSON when the ttl-inherit flag is set.
        ttl=data.get("ttl"),
        external=bool(data.get("external")),
    )
    if kind == "ipip":
        device["remote"] = _endpoint(data.get("remote"))
        device["mac"] = None
    else:
        device.update(
            vni=data.get("id"), port=data.get("port"), dev=data.get("link"),
            learning=bool(data.get("learning")), group=data.get("group"),
            remote=data.get("remote"), mac=found.get("address"),
        )
    return device, names


def public(device):
    """The attributes ip_tunnel reports (``device`` in the result and the diff)."""
    if not device:
        return None
    keys = ["name", "kind", "local"]
    if device["kind"] == "ipip":
        keys += ["remote", "ttl"]
    else:
        keys += ["vni", "port", "dev", "group", "learning", "ttl", "mac"]
    keys += ["mtu", "addresses", "up"]
    return dict((key, device.get(key)) for key in keys)


def describe_kind(kind):
    if not kind:
        return "a device without a link kind (e.g. a physical interface or loopback)"
    return "a %s device" % kind


def immutable_differences(want, have):
    """Attributes that differ and cannot be changed in place, as ``name (old -> new)``."""
    if have["kind"] != want["kind"]:
        return ["kind (%s -> %s)" % (have["kind"], want["kind"])]
    reasons = []
    if have.get("external"):
        reasons.append("external (collect-metadata mode -> off)")
    for key in IMMUTABLE[want["kind"]]:
        if have.get(key) != want[key]:
            reasons.append("%s (%s -> %s)" % (key, have.get(key), want[key]))
    if want["kind"] == "vxlan" and have.get("remote"):
        reasons.append("remote (%s -> none; podnet's vxlan uses FDB entries, not a fixed remote)" % have["remote"])
    if have.get("ttl") is None:
        reasons.append("ttl (inherit -> %s; the inherit flag cannot be cleared in place)" % want["ttl"])
    return reasons


def temp_name(name):
    """A deterministic temporary name for building a device of another kind beside the old one."""
    return "pn%s.new" % hashlib.sha1(name.encode("utf-8")).hexdigest()[:9]


def create_args(want, name=None):
    """``ip link add`` argv tail for the wanted device (named ``name`` when given)."""
    args = ["link", "add", name or want["name"]]
    if want["kind"] == "vxlan" and want["mac"]:
        args += ["address", want["mac"]]
    if want["mtu"] is not None:
        args += ["mtu", str(want["mtu"])]
    args += ["type", want["kind"]]
    if want["kind"] == "ipip":
        if want["local"]:
            args += ["local", want["local"]]
        if want["remote"]:
            args += ["remote", want["remote"]]
        args += ["ttl", str(want["ttl"])]
    else:
        args += ["id", str(want["vni"]), "dstport", str(want["port"])]
        if want["local"]:
            args += ["local", want["local"]]
        if want["group"]:
            args += ["group", want["group"]]
        if want["dev"]:
            args += ["dev", want["dev"]]
        args += ["learning" if want["learning"] else "nolearning", "ttl", str(want["ttl"])]
    return args


def _addr_args(verb, text, name):
    words = text.split(" ")
    return ["addr", verb, words[0]] + words[1:] + ["dev", name]


def _check_neighbours(want, names):
    """Refuse, before anything changes, what would make ``ip link add`` fail after a delete."""
    name = want["name"]
    names = names or {}
    if want["kind"] == "vxlan" and want["dev"]:
        if want["dev"] == name or want["dev"] not in names:
            raise PodnetError("dev: the underlay interface %s does not exist" % want["dev"])
    if want["kind"] == "vxlan":
        key, what = (want["vni"], want["port"]), "VNI %s on port %s" % (want["vni"], want["port"])
    else:
        key, what = (want["local"], want["remote"], None), "local %s remote %s" % (
            want["local"] or "any", want["remote"] or "any")
    for other, (kind, other_key) in sorted(names.items()):
        if other != name and kind == want["kind"] and other_key == key:
            raise PodnetError(
                "%s: the %s device %s already uses %s; the kernel allows only one"
                % ("vni" if want["kind"] == "vxlan" else "local", kind, other, what))


def plan(want, have, names=None, offload=None):
    """Compare and return a ``Plan``: commands, before, after, and the facts ``action`` (create,
    recreate, update, delete or none) and ``reasons`` (why a recreate, see ``immutable_differences``).

    ``have``/``names`` come from ``parse``; ``offload`` is the device's current
    tx-checksum-ip-generic state (True/False) when ``tx_checksum_offload`` is managed and
    the device exists, else None.  Raises ``PodnetError`` for a same-named device podnet
    does not own, and for a needed recreate when ``recreate`` is false.
    """
    name = want["name"]
    names = names or {}
    ours = have is not None and have["kind"] in KINDS
    before = public(have) if ours else None
    commands = []
    if have is not None and not ours and want["state"] == "present":
        raise PodnetError(
            "name: %s already exists and is %s, not a %s tunnel; podnet never changes or "
            "removes a device it does not own (remove or rename it yourself, or choose another name)"
            % (name, describe_kind(have["kind"]), want["kind"]))

    if want["state"] == "absent":
        if ours and have["kind"] == want["kind"]:
            return Plan([("ip", ["link", "del", name])], before, None, action="delete", reasons=[])
        warnings = []
        if have is not None:
            warnings.append("%s exists but is %s, not a %s tunnel: left alone"
                            % (name, describe_kind(have["kind"]), want["kind"]))
        return Plan([], None, None, warnings, action="none", reasons=[])

    # The devices this one replaces (a renamed podnet_vxlan_device or podnet_ipip_device: the node's
    # record names them) go first, only when of this kind: the kernel would refuse a second device
    # with the same VNI and port (vxlan) or the same endpoints (ipip).
    for old in want.get("replaces") or []:
        if old != name and names.get(old, ("", None))[0] == want["kind"]:
            commands.append(("ip", ["link", "del", old]))
            names = dict((k, v) for k, v in names.items() if k != old)
    _check_neighbours(want, names)
    reasons = immutable_differences(want, have) if ours else []
    if reasons and not want["recreate"]:
        raise PodnetError(
            "recreate: %s %s differs in %s, which cannot be changed in place; recreate=false "
            "forbids deleting and re-creating the device (its routes, FDB and neighbour "
            "entries go with it)" % (have["kind"], name, "; ".join(reasons)))

    after = dict(want)
    if have is None or reasons:
        # A new device: kernel defaults for what is not managed.
        action = "create" if have is None else "recreate"
        if have is not None and have["kind"] != want["kind"]:
            # Build the new kind beside the old device first: if the kernel cannot make it
            # (no IPIP), nothing has changed yet.
            tmp = temp_name(name)
            if tmp in names:
                raise PodnetError(
                    "name: the temporary device %s (left over from an interrupted run?) exists; "
                    "remove it with `ip link del %s` and run again" % (tmp, tmp))
            commands.append(("ip", create_args(want, tmp)))
            commands.append(("ip", ["link", "del", name]))
            commands.append(("ip", ["link", "set", tmp, "name", name]))
        else:
            if have is not None:
                commands.append(("ip", ["link", "del", name]))
            commands.append(("ip", create_args(want)))
        for address in want["addresses"] or []:
            commands.append(("ip", _addr_args("add", address, name)))
        if want["tx_checksum_offload"] is False:
            # New devices start with the offload on.
            commands.append(("ethtool", ["-K", name, CSUM_FEATURE, "off"]))
        commands.append(("ip", ["link", "set", name, "up"]))
        if want["addresses"] is None:
            after["addresses"] = []
        if want["kind"] == "vxlan" and want["mac"] is None:
            after["mac"] = None
    else:
        action = "update"
        changes = []
        for key in IN_PLACE[want["kind"]]:
            if have.get(key) != want[key]:
                if key == "learning":
                    changes.append("learning" if want[key] else "nolearning")
                elif key == "local":
                    changes += ["local", want[key] or "0.0.0.0"]
                else:
                    changes += [key, str(want[key])]
        if changes:
            commands.append(("ip", ["link", "set", name, "type", want["kind"]] + changes))
        if want["kind"] == "vxlan":
            if want["mac"] is not None and want["mac"] != have["mac"]:
                commands.append(("ip", ["link", "set", name, "address", want["mac"]]))
            if want["mac"] is None:
                after["mac"] = have["mac"]
        if want["mtu"] is not None and want["mtu"] != have["mtu"]:
            commands.append(("ip", ["link", "set", name, "mtu", str(want["mtu"])]))
        if want["mtu"] is None:
            after["mtu"] = have["mtu"]
        if want["addresses"] is None:
            after["addresses"] = have["addresses"]
        else:
            # Delete first: removing a primary address also removes its secondaries.
            for address in have["addresses"]:
                if address not in want["addresses"]:
                    commands.append(("ip", _addr_args("del", address, name)))
            for address in want["addresses"]:
                if address not in have["addresses"]:
                    commands.append(("ip", _addr_args("add", address, name)))
        if want["tx_checksum_offload"] is not None and offload is not None \
                and offload != want["tx_checksum_offload"]:
            commands.append(("ethtool", ["-K", name, CSUM_FEATURE,
                                         "on" if want["tx_checksum_offload"] else "off"]))
        if not have["up"]:
            commands.append(("ip", ["link", "set", name, "up"]))
        if not commands:
            action = "none"
    after["up"] = True
    return Plan(commands, before, public(after), action=action, reasons=reasons)


def parse_offload(ethtool_text):
    """``ethtool -k NAME`` text -> (on, fixed) for tx-checksum-ip-generic, or (None, None)."""
    for line in (ethtool_text or "").splitlines():
        key, _sep, value = line.strip().partition(":")
        if key == CSUM_FEATURE:
            words = value.split()
            return (words[0] == "on" if words else None), "[fixed]" in value
    return None, None
