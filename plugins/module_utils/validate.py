# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure validators shared by podnet's modules and its inventory model.

Every function takes the value and the name of the option (or variable) it came
from, and either returns a normalised value or raises ``PodnetError`` with one
message that names that option.  Nothing here touches the system, so the same
checks serve the modules (per option) and the validation role (per host).
"""

from __future__ import annotations

import ipaddress
import re

# The route protocol number podnet tags its routes with (``ip route ... proto 150``).
# /etc/iproute2/rt_protos.d/podnet.conf may map it to the name "podnet".
PODNET_RT_PROTO = 150
PODNET_RT_PROTO_NAME = "podnet"

IFNAMSIZ = 15
VNI_MIN, VNI_MAX = 1, 2 ** 24 - 1
MTU_MIN, MTU_MAX = 68, 65535

# Linux accepts almost any byte in an interface name; podnet accepts the
# conventional subset, which can never be read as an option or split by a shell.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
_NETNS_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class PodnetError(ValueError):
    """A value podnet refuses; the message names the option it came from."""


def ifname(value, option):
    """An interface name: 1..15 characters that cannot be read as an option."""
    if not isinstance(value, str) or not value:
        raise PodnetError("%s: an interface name is required" % option)
    if len(value) > IFNAMSIZ:
        raise PodnetError(
            "%s: interface name %r is %d characters, the kernel allows at most %d"
            % (option, value, len(value), IFNAMSIZ))
    if not _IFNAME_RE.match(value) or value in (".", ".."):
        raise PodnetError(
            "%s: interface name %r may only contain letters, digits and _ . @ -, "
            "and must not start with - or ." % (option, value))
    return value


def netns_name(value, option):
    """A network namespace name (a file under /run/netns)."""
    if not isinstance(value, str) or not value:
        raise PodnetError("%s: a namespace name is required" % option)
    if len(value) > 64:
        raise PodnetError("%s: namespace name %r is longer than 64 characters" % (option, value))
    if not _NETNS_RE.match(value):
        raise PodnetError(
            "%s: namespace name %r may only contain letters, digits and _ . -, "
            "and must not start with - or ." % (option, value))
    return value


def ipv4(value, option):
    """An IPv4 address, returned as its canonical string."""
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise PodnetError("%s: %r is not an IPv4 address" % (option, value))


def unicast_ipv4(value, option):
    """An IPv4 address a packet can be sent to: not 0.0.0.0, multicast or broadcast."""
    address = ipv4(value, option)
    parsed = ipaddress.IPv4Address(address)
    if parsed.is_unspecified or parsed.is_multicast or address == "255.255.255.255":
        raise PodnetError("%s: %s is not a unicast IPv4 address" % (option, address))
    return address


def ipv4_interface(value, option):
    """An address with prefix length (192.168.10.10/24), returned canonical."""
    text = str(value)
    if "/" not in text:
        raise PodnetError("%s: %r needs a prefix length, e.g. %s/24" % (option, value, text))
    try:
        return str(ipaddress.IPv4Interface(text))
    except ValueError:
        raise PodnetError("%s: %r is not an IPv4 address with prefix length" % (option, value))


def host_interface(value, option):
    """An address with prefix length that is a host of its subnet: not the network or the
    broadcast address (a /31 or /32 has neither), returned canonical."""
    text = ipv4_interface(value, option)
    iface = ipaddress.IPv4Interface(text)
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        raise PodnetError("%s: %s is the %s address of %s, not a host address"
                          % (option, iface.ip, "network" if iface.ip == net.network_address else "broadcast",
                             net))
    return text


def ipv4_network(value, option):
    """A network (192.168.11.0/24, a bare address means /32, ``default`` means 0.0.0.0/0).

    Host bits must be zero, as ``ip route`` demands.
    """
    text = str(value)
    if text == "default":
        text = "0.0.0.0/0"
    try:
        return str(ipaddress.IPv4Network(text, strict=True))
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(text, strict=False)
            raise PodnetError("%s: %r has host bits set; did you mean %s?" % (option, value, fixed))
        raise PodnetError("%s: %r is not an IPv4 network (CIDR)" % (option, value))


def mac(value, option, allow_zero=True):
    """A MAC address, returned lower-case with colons."""
    text = str(value).lower()
    if not _MAC_RE.match(text):
        raise PodnetError("%s: %r is not a MAC address (aa:bb:cc:dd:ee:ff)" % (option, value))
    if not allow_zero and text == "00:00:00:00:00:00":
        raise PodnetError("%s: the all-zero MAC is not allowed here" % option)
    if int(text[:2], 16) & 1 and text != "ff:ff:ff:ff:ff:ff":
        raise PodnetError("%s: %r is a multicast MAC" % (option, value))
    return text


def known_keys(entry, allowed, option):
    """Refuse the keys of a dict (one entry of a list-of-dicts option) that are not ``allowed``."""
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if unknown:
        raise PodnetError("%s: unknown key(s) %s; allowed: %s" % (option, ", ".join(unknown), ", ".join(allowed)))
    return entry


def entries(items, option, allowed, what="entry"):
    """The entries of a list-of-dicts option: yields ``("OPTION[i]", entry)`` for each, refusing
    an entry that is not a dict or has a key not in ``allowed``."""
    for index, entry in enumerate(items or []):
        where = "%s[%d]" % (option, index)
        if not isinstance(entry, dict):
            raise PodnetError("%s: each %s must be a dict (keys: %s)" % (where, what, ", ".join(allowed)))
        yield where, known_keys(entry, allowed, where)


def int_range(value, option, low, high, what="value"):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PodnetError("%s: %r is not a number" % (option, value))
    if isinstance(value, bool) or not low <= number <= high:
        raise PodnetError("%s: %s %r is out of range %d..%d" % (option, what, value, low, high))
    return number


def mtu(value, option):
    return int_range(value, option, MTU_MIN, MTU_MAX, "MTU")


def vni(value, option):
    return int_range(value, option, VNI_MIN, VNI_MAX, "VNI")


def port(value, option):
    return int_range(value, option, 1, 65535, "port")


def ttl(value, option):
    # 0 means "inherit" for tunnels.
    return int_range(value, option, 0, 255, "TTL")


def route_table(value, option):
    """A routing table: main, local, default or a number 1..2^32-1 (not 0)."""
    if value in (None, "", "main", 254, "254"):
        return "main"
    if value in ("local", 255, "255"):
        return "local"
    if value in ("default", 253, "253"):
        return "default"
    return str(int_range(value, option, 1, 2 ** 32 - 1, "table"))


def vtep_mac(node_ip):
    """The VXLAN device MAC podnet derives from a node IP.

    Locally administered, unicast: 0e:50 followed by the four bytes of the IP, so a
    recreated device keeps its MAC and peers' FDB and neighbour entries stay valid.
    """
    octets = ipaddress.IPv4Address(node_ip).packed
    return "0e:50:" + ":".join("%02x" % b for b in octets)


def rt_proto_is_podnet(protocol):
    """True when an ``ip -json route`` ``protocol`` field is podnet's (number or name)."""
    return str(protocol) in (str(PODNET_RT_PROTO), PODNET_RT_PROTO_NAME)
