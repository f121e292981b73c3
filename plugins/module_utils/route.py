# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for podnet.fabric.node_route: wanted routes + ``ip -json route`` -> ip argv.

A route is a dict ``{dst, via, dev, onlink, scope, src, metric}`` with canonical
values.  A destination is owned by podnet when the route to it carries podnet's
protocol number; podnet never changes or removes any other route.
"""

from __future__ import annotations

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.plan import Plan
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

SCOPES = ("global", "link", "host")
_KEYS = ("dst", "via", "dev", "onlink", "scope", "src", "metric")


def wanted(routes, option="routes"):
    """Validate and normalise the ``routes`` option (a list of dicts)."""
    result, seen = [], {}
    for where, item in validate.entries(routes, option, _KEYS, "route"):
        if item.get("dst") in (None, ""):
            raise PodnetError("%s.dst: a destination is required" % where)
        route = dict(dst=validate.ipv4_network(item["dst"], where + ".dst"))
        via = item.get("via")
        route["via"] = validate.ipv4(via, where + ".via") if via not in (None, "") else None
        dev = item.get("dev")
        route["dev"] = validate.ifname(dev, where + ".dev") if dev not in (None, "") else None
        route["onlink"] = bool(item.get("onlink", False))
        if route["onlink"] and not (route["via"] and route["dev"]):
            raise PodnetError("%s.onlink: onlink needs both via and dev" % where)
        if not route["via"] and not route["dev"]:
            raise PodnetError("%s: a route needs via, dev or both" % where)
        scope = item.get("scope")
        if scope in (None, ""):
            scope = "global" if route["via"] else "link"
        if route["via"] and scope != "global":
            raise PodnetError("%s.scope: a route via a gateway must have scope global" % where)
        route["scope"] = scope
        src = item.get("src")
        route["src"] = validate.ipv4(src, where + ".src") if src not in (None, "") else None
        metric = item.get("metric")
        route["metric"] = validate.int_range(metric if metric not in (None, "") else 0,
                                             where + ".metric", 0, 2 ** 32 - 1, "metric")
        if route["dst"] in seen:
            raise PodnetError("%s.dst: %s is listed twice (also %s)" % (where, route["dst"], seen[route["dst"]]))
        seen[route["dst"]] = where
        result.append(route)
    return result


def parse(ip_json):
    """Routes from ``ip -json route show table T``: (podnet's, foreign) lists of dicts."""
    ours, foreign = [], []
    for item in ip_json or []:
        if item.get("type", "unicast") != "unicast":
            continue
        dst = item.get("dst")
        if dst == "default":
            dst = "0.0.0.0/0"
        elif dst and "/" not in dst:
            dst += "/32"
        route = dict(
            dst=dst,
            via=item.get("gateway"),
            dev=item.get("dev"),
            onlink="onlink" in item.get("flags", []),
            scope=item.get("scope", "global") if item.get("scope") != "universe" else "global",
            src=item.get("prefsrc"),
            metric=int(item.get("metric", 0)),
            protocol=str(item.get("protocol", "boot")),
        )
        (ours if validate.rt_proto_is_podnet(route["protocol"]) else foreign).append(route)
    return ours, foreign


def describe(route):
    """A route as ``ip route`` would print it, for messages."""
    words = [route["dst"]]
    for key, word in (("via", "via"), ("dev", "dev")):
        if route.get(key):
            words += [word, route[key]]
    if route.get("onlink"):
        words.append("onlink")
    if route.get("scope") and route["scope"] != "global":
        words += ["scope", route["scope"]]
    if route.get("src"):
        words += ["src", route["src"]]
    if route.get("metric"):
        words += ["metric", str(route["metric"])]
    if route.get("protocol"):
        words += ["proto", route["protocol"]]
    return " ".join(words)


def _matches(want, have):
    """True when an existing podnet route already is the wanted one.

    ``dev`` and ``src`` are compared only when the caller set them (the kernel
    fills them in otherwise).
    """
    for key in ("dst", "via", "onlink", "scope", "metric"):
        if want[key] != have[key]:
            return False
    return all(want[key] is None or want[key] == have[key] for key in ("dev", "src"))


def _spec(route):
    words = [route["dst"]]
    if route["via"]:
        words += ["via", route["via"]]
    if route["dev"]:
        words += ["dev", route["dev"]]
    if route["onlink"]:
        words.append("onlink")
    words += ["scope", route["scope"]]
    if route["src"]:
        words += ["src", route["src"]]
    return words


def _public(route):
    return dict((key, route[key]) for key in _KEYS)


def plan(want, have_json, table="main", state="present", purge=False):
    """Compare and return a ``Plan``: commands, before, after (lists of podnet's routes).

    The commands are the arguments after ``ip`` (``route replace ...``).  Raises
    ``PodnetError`` when a wanted destination is held by a route podnet does not own.
    """
    ours, foreign = parse(have_json)
    by_dst = {}
    for route in ours:
        by_dst.setdefault(route["dst"], []).append(route)
    foreign_by_dst = {}
    for route in foreign:
        foreign_by_dst.setdefault(route["dst"], []).append(route)
    tail = ["proto", str(validate.PODNET_RT_PROTO), "table", table]
    commands = []

    def delete(route):
        commands.append(["route", "del", route["dst"], "metric", str(route["metric"])] + tail)

    if state == "present":
        conflicts = [describe(r) for w in want for r in foreign_by_dst.get(w["dst"], [])]
        if conflicts:
            raise PodnetError(
                "routes: a route podnet does not own holds the destination; podnet will not "
                "touch it (remove it yourself or choose another dst): %s" % "; ".join(conflicts))
        wanted_dsts = set(route["dst"] for route in want)
        for route in want:
            existing = by_dst.get(route["dst"], [])
            if len(existing) == 1 and _matches(route, existing[0]):
                continue
            # A different metric is a different kernel route: replace would add a second one.
            for old in existing:
                if old["metric"] != route["metric"] or len(existing) > 1:
                    delete(old)
            commands.append(["route", "replace"] + _spec(route)
                            + ["metric", str(route["metric"])] + tail)
        if purge:
            for route in ours:
                if route["dst"] not in wanted_dsts:
                    delete(route)
    else:
        targets = ours if purge else [r for w in want for r in by_dst.get(w["dst"], [])]
        for route in targets:
            delete(route)

    before = sorted((_public(r) for r in ours), key=lambda r: (r["dst"], r["metric"]))
    if state == "present":
        kept = [r for r in ours if purge is False and r["dst"] not in set(w["dst"] for w in want)]
        after = sorted([_public(r) for r in kept] + list(want), key=lambda r: (r["dst"], r["metric"]))
    else:
        removed = set(id(r) for r in targets)
        after = [_public(r) for r in sorted(ours, key=lambda r: (r["dst"], r["metric"]))
                 if id(r) not in removed]
    return Plan(commands, before, after)
