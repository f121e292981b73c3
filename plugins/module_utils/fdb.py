# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for podnet.fabric.vxlan_fdb: wanted FDB/neighbour entries + JSON reads -> argv.

An FDB entry is ``{mac, dst}``: a unicast MAC maps to exactly one VTEP address (the
vxlan driver keeps one remote per unicast MAC, ``bridge fdb replace``), while the
all-zero MAC is the flood list and may list many VTEPs (``bridge fdb append``, one
remote per dst).  A neighbour is ``{ip, mac}``: a permanent ARP entry on the device.

There is no ownership tag for FDB or neighbour entries, so podnet owns exactly the
entries it could have written itself (see ``parse_fdb``/``parse_neigh``): permanent,
``self``, a unicast or all-zero MAC, a unicast IPv4 dst, no port/vni/via/nhid, no
``extern_learn``, and not the device's own default destination (its ``remote`` or
``group``).  Learned (dynamic) entries are the kernel's cache: podnet replaces one when
the same MAC/IP is listed, and never removes one.  Anything else is foreign: podnet
never changes or removes it and refuses to plan over it.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.plan import Plan
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

ZERO_MAC = "00:00:00:00:00:00"
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"

ENTRY_KEYS = ("mac", "dst")
NEIGHBOR_KEYS = ("ip", "mac")

# Keys in ``bridge -json fdb show`` that podnet never writes: an entry carrying one
# of them was written by someone else.
_FDB_FOREIGN_KEYS = ("port", "vni", "src_vni", "nhid", "via", "viaIf", "viaIfIndex",
                     "linkNetNsId", "master", "vlan")
# Neighbour flags podnet never writes.
_NEIGH_FOREIGN_KEYS = ("extern_learn", "router", "proxy", "managed")
# Neighbour states that are configuration, not cache.
_NEIGH_CONFIG_STATES = ("PERMANENT", "NOARP")


_unicast_ip = validate.unicast_ipv4


def _mac(value, option, allow_zero):
    mac = validate.mac(value, option, allow_zero=allow_zero)
    if mac == BROADCAST_MAC:
        hint = "; the flood list is the all-zero MAC 00:00:00:00:00:00" if allow_zero else ""
        raise PodnetError("%s: the broadcast MAC is not allowed here%s" % (option, hint))
    return mac


def _items(items, option, keys, what):
    for where, item in validate.entries(items, option, keys, what):
        for key in keys:
            if item.get(key) in (None, ""):
                raise PodnetError("%s.%s: a value is required" % (where, key))
        yield where, item


def wanted_entries(entries, option="entries"):
    """Validate and normalise the ``entries`` option: a list of ``{mac, dst}``.

    Listing the same entry twice, or one unicast MAC with two dsts, is refused.
    """
    result, seen = [], {}
    for where, item in _items(entries, option, ENTRY_KEYS, "FDB entry"):
        mac = _mac(item["mac"], where + ".mac", allow_zero=True)
        dst = _unicast_ip(item["dst"], where + ".dst")
        key = (mac, dst) if mac == ZERO_MAC else mac
        if key in seen:
            other = seen[key]
            if result[other]["dst"] == dst:
                raise PodnetError("%s: %s dst %s is listed twice (also %s[%d])"
                                  % (where, mac, dst, option, other))
            raise PodnetError(
                "%s.mac: unicast MAC %s is already mapped to dst %s by %s[%d]; a unicast MAC has "
                "exactly one dst (only the all-zero flood MAC may list several)"
                % (where, mac, result[other]["dst"], option, other))
        seen[key] = len(result)
        result.append(dict(mac=mac, dst=dst))
    return result


def wanted_neighbors(neighbors, option="neighbors"):
    """Validate and normalise the ``neighbors`` option: a list of ``{ip, mac}``."""
    result, seen = [], {}
    for where, item in _items(neighbors, option, NEIGHBOR_KEYS, "neighbour"):
        address = _unicast_ip(item["ip"], where + ".ip")
        mac = _mac(item["mac"], where + ".mac", allow_zero=False)
        if address in seen:
            other = seen[address]
            if result[other]["mac"] == mac:
                raise PodnetError("%s: %s lladdr %s is listed twice (also %s[%d])"
                                  % (where, address, mac, option, other))
            raise PodnetError("%s.ip: %s is already mapped to MAC %s by %s[%d]; an address has one MAC"
                              % (where, address, result[other]["mac"], option, other))
        seen[address] = len(result)
        result.append(dict(ip=address, mac=mac))
    return result


def default_destinations(link):
    """The dsts of the all-zero entry the kernel adds itself for a device's ``remote``/``group``."""
    data = ((link or {}).get("linkinfo") or {}).get("info_data") or {}
    return tuple(data[key] for key in ("remote", "group") if data.get(key))


def _is_podnet_ip(value):
    try:
        _unicast_ip(value, "dst")
    except PodnetError:
        return False
    return True


def _is_podnet_mac(value, allow_zero):
    try:
        _mac(value, "mac", allow_zero)
    except PodnetError:
        return False
    return True


def _fdb_describe(item):
    words = [str(item.get("mac"))]
    for key in ("dst", "port", "vni", "src_vni", "nhid", "viaIf", "master", "vlan"):
        if item.get(key) not in (None, ""):
            words += ["via" if key == "viaIf" else key, str(item[key])]
    words += list(item.get("flags", []))
    if item.get("state"):
        words.append(item["state"])
    return " ".join(words)


def parse_fdb(fdb_json, defaults=()):
    """``bridge -json fdb show dev DEV`` -> ``(ours, learned, foreign)``.

    ``ours``: podnet-shaped permanent entries ``{mac, dst}``; ``learned``: dynamic
    entries ``{mac, dst}`` (the kernel's cache); ``foreign``: every other ``self`` entry,
    as text for messages, keyed by MAC.  Entries without ``self`` (a bridge's own
    entries for a bridge port) are not the vxlan FDB and are dropped.
    """
    ours, learned, foreign = [], [], []
    for item in fdb_json or []:
        flags = item.get("flags") or []
        if "self" not in flags or not item.get("mac"):
            continue
        mac, dst, state = str(item["mac"]).lower(), item.get("dst"), item.get("state") or ""
        plain = (set(flags) == {"self"} and dst
                 and not any(key in item for key in _FDB_FOREIGN_KEYS))
        if (plain and state == "permanent" and _is_podnet_mac(mac, allow_zero=True)
                and _is_podnet_ip(dst) and not (mac == ZERO_MAC and dst in defaults)):
            ours.append(dict(mac=mac, dst=dst))
        elif plain and state not in ("permanent", "static", "noarp") and mac != ZERO_MAC:
            learned.append(dict(mac=mac, dst=dst))
        else:
            foreign.append(dict(mac=mac, dst=dst, text=_fdb_describe(item)))
    return ours, learned, foreign


def parse_neigh(neigh_json):
    """``ip -4 -json neigh show dev DEV`` -> ``(ours, learned, foreign)``.

    ``ours``: permanent entries ``{ip, mac}`` podnet could have written; ``learned``:
    the ARP cache (reachable, stale, failed, ...); ``foreign``: other configured
    entries (noarp, extern_learn, router, a multicast lladdr ...).
    """
    ours, learned, foreign = [], [], []
    for item in neigh_json or []:
        address, mac = item.get("dst"), str(item.get("lladdr") or "").lower()
        if not address:
            continue
        states = item.get("state") or []
        configured = any(state in _NEIGH_CONFIG_STATES for state in states)
        plain = not any(key in item for key in _NEIGH_FOREIGN_KEYS)
        if (plain and "PERMANENT" in states and _is_podnet_ip(address)
                and _is_podnet_mac(mac, allow_zero=False)):
            ours.append(dict(ip=address, mac=mac))
        elif plain and not configured:
            learned.append(dict(ip=address, mac=mac or None))
        else:
            words = [address] + (["lladdr", mac] if mac else [])
            words += [key for key in _NEIGH_FOREIGN_KEYS if key in item] + list(states)
            foreign.append(dict(ip=address, mac=mac or None, text=" ".join(words)))
    return ours, learned, foreign


def _entry_key(entry):
    return (entry["mac"], entry["dst"]) if entry["mac"] == ZERO_MAC else entry["mac"]


def _entry_sort(entry):
    return (entry["mac"], ipaddress.IPv4Address(entry["dst"]))


def _neigh_sort(neighbor):
    return ipaddress.IPv4Address(neighbor["ip"])


def plan(want_entries, want_neighbors, fdb_json, neigh_json, device, state="present",
         purge=False, defaults=()):
    """Compare and return a ``Plan``: commands, before, after.

    ``commands`` are ``(tool, args)`` pairs, ``tool`` being ``ip`` or ``bridge``, in
    the order flannel wires a peer: with ``state=present`` neighbours are written
    first, then FDB entries, then stale FDB entries and stale neighbours are removed;
    with ``state=absent`` FDB entries are removed before neighbours.  ``before`` and
    ``after`` are ``{"entries": [...], "neighbors": [...]}`` of podnet's entries.
    Raises ``PodnetError`` when a wanted MAC or address is held by a foreign entry.
    """
    fdb_ours, _fdb_learned, fdb_foreign = parse_fdb(fdb_json, defaults)
    neigh_ours, _neigh_learned, neigh_foreign = parse_neigh(neigh_json)
    ours_by_key = dict((_entry_key(e), e) for e in fdb_ours)
    neigh_by_ip = dict((n["ip"], n) for n in neigh_ours)
    dev = ["dev", device]

    def fdb_del(entry):
        return ("bridge", ["fdb", "del", entry["mac"]] + dev + ["dst", entry["dst"], "self"])

    def neigh_del(neighbor):
        return ("ip", ["neigh", "del", neighbor["ip"]] + dev)

    commands = []
    if state == "present":
        conflicts = []
        for index, entry in enumerate(want_entries):
            for item in fdb_foreign:
                if item["mac"] == entry["mac"] and (entry["mac"] != ZERO_MAC or item["dst"] == entry["dst"]):
                    conflicts.append("entries[%d].mac: %s is held by '%s'" % (index, entry["mac"], item["text"]))
        for index, neighbor in enumerate(want_neighbors):
            for item in neigh_foreign:
                if item["ip"] == neighbor["ip"]:
                    conflicts.append("neighbors[%d].ip: %s is held by '%s'" % (index, neighbor["ip"], item["text"]))
        if conflicts:
            raise PodnetError(
                "%s on device %s: an entry podnet does not own (static, extern_learn, custom "
                "port/vni/via, or the device's own remote/group) holds a listed MAC or address; "
                "podnet will not touch it (remove it yourself or list another one)"
                % ("; ".join(conflicts), device))

        for neighbor in want_neighbors:
            have = neigh_by_ip.get(neighbor["ip"])
            if not have or have["mac"] != neighbor["mac"]:
                commands.append(("ip", ["neigh", "replace", neighbor["ip"], "lladdr", neighbor["mac"]]
                                 + dev + ["nud", "permanent"]))
        for entry in want_entries:
            have = ours_by_key.get(_entry_key(entry))
            if have and have["dst"] == entry["dst"]:
                continue
            verb = "append" if entry["mac"] == ZERO_MAC else "replace"
            commands.append(("bridge", ["fdb", verb, entry["mac"]] + dev
                             + ["dst", entry["dst"], "self", "permanent"]))
        wanted_keys = set(_entry_key(e) for e in want_entries)
        wanted_ips = set(n["ip"] for n in want_neighbors)
        fdb_gone = [e for e in fdb_ours if purge and _entry_key(e) not in wanted_keys]
        neigh_gone = [n for n in neigh_ours if purge and n["ip"] not in wanted_ips]
        after_entries = [e for e in fdb_ours if _entry_key(e) not in wanted_keys and e not in fdb_gone]
        after_entries += want_entries
        after_neighbors = [n for n in neigh_ours if n["ip"] not in wanted_ips and n not in neigh_gone]
        after_neighbors += want_neighbors
    else:
        if purge:
            fdb_gone, neigh_gone = list(fdb_ours), list(neigh_ours)
        else:
            keys = set(_entry_key(e) for e in want_entries)
            ips = set(n["ip"] for n in want_neighbors)
            fdb_gone = [e for e in fdb_ours if _entry_key(e) in keys]
            neigh_gone = [n for n in neigh_ours if n["ip"] in ips]
        after_entries = [e for e in fdb_ours if e not in fdb_gone]
        after_neighbors = [n for n in neigh_ours if n not in neigh_gone]

    commands += [fdb_del(e) for e in sorted(fdb_gone, key=_entry_sort)]
    commands += [neigh_del(n) for n in sorted(neigh_gone, key=_neigh_sort)]
    before = dict(entries=sorted(fdb_ours, key=_entry_sort),
                  neighbors=sorted(neigh_ours, key=_neigh_sort))
    after = dict(entries=sorted(after_entries, key=_entry_sort),
                 neighbors=sorted(after_neighbors, key=_neigh_sort))
    return Plan(commands, before, after)
