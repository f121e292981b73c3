# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for podnet.fabric.pod_netns: a pod namespace joined to the node by a veth pair.

``wanted()`` validates the options, ``owned()`` decides whether a device named
``host_ifname`` on the node is this pod's veth, and ``plan()`` compares what was read
(``ip -json`` of node and pod, the host veth's sysctls) with what is wanted and
returns the steps to run.  A step is ``(where, argv_tail)``:

- ``ns``: ``ip netns add|del POD`` (the module runs it in the right mount namespace);
- ``node``: ``ip ARGS`` in the node's namespace;
- ``pod``: ``ip -n POD ARGS``;
- ``sysctl``: ``sysctl ARGS`` in the node's namespace.

Nothing here touches the system.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.podnet.fabric.plugins.module_utils import route, validate
from ansible_collections.podnet.fabric.plugins.module_utils.plan import Plan
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

DEFAULT_GATEWAY = "169.254.10.24"
DEFAULT_IFNAME = "eth0"
HOST_IFNAME_PREFIX = "veth-"
HOST_IFNAME_HASHED = "veth"
VETH_DEFAULT_MTU = 1500

# Namespace states as the module finds them under /run/netns.
NS_PRESENT, NS_ABSENT, NS_BROKEN = "present", "absent", "broken"


def derive_host_ifname(name):
    """The node's end of pod ``name``'s veth: ``veth-NAME`` when it fits the kernel's 15
    characters (``veth-pod-a``, as in the seed), else ``veth`` + the first 11 hex digits of the
    SHA-256 of the pod name (``frontend-7d9f8b6c4-x2k9p`` -> ``veth`` + 11 digits), stable
    across runs and nodes, as calico derives ``caliXXXXXXXXXXX``.  The two forms never meet: a
    hashed name has no ``-`` after ``veth``."""
    derived = HOST_IFNAME_PREFIX + name
    if len(derived) <= validate.IFNAMSIZ:
        return derived
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return HOST_IFNAME_HASHED + digest[:validate.IFNAMSIZ - len(HOST_IFNAME_HASHED)]


def veth_name(name, given=None, option="host_ifname"):
    """The node's end of pod ``name``'s veth: ``given`` when set, else ``derive_host_ifname``;
    the one place podnet names a pod's veth (the model and pod_netns both call it). Raises
    ``PodnetError`` starting with ``option``."""
    if given in (None, ""):
        given = derive_host_ifname(name)
    return validate.ifname(given, option)


def check_address(address, option="address", gateway=None):
    """A pod's address with prefix length (192.168.10.10/24), canonical: a host address of its
    subnet (not the network or broadcast address), not multicast, loopback or 0.0.0.0, and not
    ``gateway``; raises ``PodnetError`` starting with ``option``."""
    text = validate.ipv4_interface(address, option)
    ip = ipaddress.IPv4Interface(text).ip
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise PodnetError("%s: %s cannot be a pod address (multicast, loopback or 0.0.0.0)" % (option, ip))
    validate.host_interface(text, option)
    if gateway is not None and str(ip) == gateway:
        raise PodnetError("%s: %s is also the gateway; the pod needs an address of its own" % (option, ip))
    return text


def wanted(name, ifname=DEFAULT_IFNAME, host_ifname=None, address=None, gateway=DEFAULT_GATEWAY,
           mtu=None, proxy_arp=True, host_route=True, state="present", node_netns=None, forwarding=True,
           wired_only=False, replaces=None):
    """Validate and normalise the options; raise ``PodnetError`` naming the option."""
    want = dict(name=validate.netns_name(name, "name"), state=state, wired_only=bool(wired_only))
    if node_netns is not None and name == node_netns:
        raise PodnetError("name: %r is the node namespace given in netns; a pod needs its own namespace"
                          % name)
    want["ifname"] = validate.ifname(ifname if ifname is not None else DEFAULT_IFNAME, "ifname")
    want["host_ifname"] = veth_name(want["name"], host_ifname)
    want["replaces"] = [validate.ifname(old, "replaces") for old in replaces or [] if old != want["host_ifname"]]
    want["mtu"] = validate.mtu(mtu, "mtu") if mtu not in (None, "") else None
    want["proxy_arp"] = bool(proxy_arp)
    want["forwarding"] = bool(forwarding)
    want["host_route"] = bool(host_route)
    gateway = DEFAULT_GATEWAY if gateway in (None, "") else gateway
    want["gateway"] = validate.ipv4(gateway, "gateway")
    gw = ipaddress.IPv4Address(want["gateway"])
    if gw.is_multicast or gw.is_unspecified or gw.is_loopback or gw == ipaddress.IPv4Address("255.255.255.255"):
        raise PodnetError("gateway: %s cannot be a gateway (multicast, loopback, broadcast or 0.0.0.0)" % gw)
    if address in (None, ""):
        if state == "present":
            raise PodnetError("address: the pod address (e.g. 192.168.10.10/24) is required with state=present")
        want["address"] = None
        return want
    want["address"] = check_address(address, "address", want["gateway"])
    return want


def find_link(links, ifname):
    """The link called ``ifname`` in an ``ip -json link``/``addr`` read, or None."""
    for link in links or []:
        if link.get("ifname") == ifname:
            return link
    return None


def _kind(link):
    return (link.get("linkinfo") or {}).get("info_kind")


def owned(want, host, pod_if, peer_ns):
    """Is ``host`` (the node's link named host_ifname) this pod's veth?

    True when it is a veth whose peer lives in the namespace named ``want["name"]``
    (``peer_ns``: the name ``ip netns list-id`` gives the host veth's ``link_netnsid``)
    and is the pod's ``ifname``, each side's ``link_index`` being the other's ifindex.
    Returns ``(True, None)`` or ``(False, reason)``; ``(False, None)`` when there is no
    such link.
    """
    if host is None:
        return False, None
    what = "host_ifname: the node already has a device named %r" % want["host_ifname"]
    advice = "; podnet will not touch it (remove it yourself or set host_ifname to another name)"
    kind = _kind(host)
    if kind != "veth":
        return False, "%s, a %s device, not this pod's veth%s" % (what, kind or "plain", advice)
    if "link_netnsid" not in host or peer_ns != want["name"]:
        where = "the node itself" if "link_netnsid" not in host else (
            "namespace %r" % peer_ns if peer_ns else "another namespace")
        return False, "%s, a veth whose peer is in %s, not in pod %r%s" % (what, where, want["name"], advice)
    if (pod_if is None or _kind(pod_if) != "veth" or "link_netnsid" not in pod_if
            or pod_if.get("ifindex") != host.get("link_index")
            or pod_if.get("link_index") != host.get("ifindex")):
        return False, "%s, a veth whose peer is not %s in pod %r%s" % (
            what, want["ifname"], want["name"], advice)
    return True, None


# The host veth's sysctls podnet manages, in the order they are read.
SYSCTLS = ("proxy_arp", "proxy_delay", "forwarding")


def sysctl_keys(host_ifname):
    """The host veth's sysctls (SYSCTLS order), in the slash form: interface names may contain dots."""
    return ["net/ipv4/conf/%s/proxy_arp" % host_ifname, "net/ipv4/neigh/%s/proxy_delay" % host_ifname,
            "net/ipv4/conf/%s/forwarding" % host_ifname]


def parse_sysctls(text):
    """``sysctl -n KEYS`` output -> ``{proxy_arp: bool, proxy_delay: int, forwarding: bool}``."""
    values = [line.strip() for line in (text or "").splitlines() if line.strip()]
    try:
        if len(values) != len(SYSCTLS):
            raise ValueError
        numbers = [int(value) for value in values]
    except ValueError:
        raise PodnetError("could not read %s from the sysctl output %r" % ("/".join(SYSCTLS), text))
    return dict(proxy_arp=numbers[0] != 0, proxy_delay=numbers[1], forwarding=numbers[2] != 0)


def _addresses(link):
    return sorted("%s/%s" % (a["local"], a["prefixlen"])
                  for a in (link or {}).get("addr_info", []) if a.get("family") == "inet")


def _up(link):
    return bool(link) and "UP" in link.get("flags", [])


def _defaults(pod_routes):
    ours, foreign = route.parse(pod_routes)
    return [r for r in ours + foreign if r["dst"] == "0.0.0.0/0"]


def _default_matches(want, routes):
    return (len(routes) == 1 and routes[0]["via"] == want["gateway"] and routes[0]["dev"] == want["ifname"]
            and routes[0]["onlink"] and routes[0]["metric"] == 0)


def _host_routes(node_routes, host_ifname, dst=None):
    """Node routes that concern this pod: podnet's on host_ifname, and any to ``dst``."""
    result = []
    for item in node_routes or []:
        ours, foreign = route.parse([item])
        for r in ours:
            if r["dev"] == host_ifname or r["dst"] == dst:
                result.append(item)
        for r in foreign:
            if dst is not None and r["dst"] == dst:
                result.append(item)
    return result


def _host_route_plan(want, node_routes, veth_ok, gone=()):
    """(commands, before, after) for the /32 host route, via route.plan. ``gone``: the host veths
    deleted first (``replaces``), whose routes go with them."""
    dst = None
    if want["state"] == "present" and want["host_route"]:
        dst = str(ipaddress.IPv4Interface(want["address"]).ip) + "/32"
    relevant = [item for item in _host_routes(node_routes, want["host_ifname"], dst) if item.get("dev") not in gone]
    if not veth_ok:
        # host_ifname is missing (no route can use it) or not ours: leave routes on it alone.
        relevant = [item for item in relevant if item.get("dev") != want["host_ifname"]]
    foreign = route.parse(relevant)[1]
    if dst is None:
        return route.plan([], relevant, "main", "absent", purge=True)
    conflicts = [route.describe(r) for r in foreign if r["dst"] == dst]
    if conflicts:
        raise PodnetError(
            "host_route: a route podnet does not own holds the pod's address; podnet will not touch it "
            "(remove it yourself or set host_route=false): %s" % "; ".join(conflicts))
    host = dict(dst=dst, via=None, dev=want["host_ifname"], onlink=False, scope="link", src=None, metric=0)
    return route.plan([host], relevant, "main", "present", purge=True)


def _state(namespace, veth, host=None, pod_if=None, lo=None, pod_routes=None, sysctls=None,
           host_routes=None):
    """The pod as data, for diff before/after."""
    defaults = _defaults(pod_routes) if veth else []
    return dict(
        namespace=namespace,
        veth=veth,
        addresses=_addresses(pod_if) if veth else [],
        gateway=None if not defaults else (defaults[0]["via"] if len(defaults) == 1
                                           else [r["via"] for r in defaults]),
        mtu=pod_if.get("mtu") if veth else None,
        host_mtu=host.get("mtu") if veth else None,
        up=_up(pod_if) if veth else False,
        host_up=_up(host) if veth else False,
        lo_up=_up(lo) if namespace == NS_PRESENT else False,
        proxy_arp=sysctls["proxy_arp"] if veth and sysctls else None,
        proxy_delay=sysctls["proxy_delay"] if veth and sysctls else None,
        forwarding=sysctls["forwarding"] if veth and sysctls else None,
        host_routes=host_routes or [],
    )


def plan(want, namespace, node_links, node_routes, peer_ns=None, pod_links=None, pod_routes=None,
         sysctls=None, macs=None, replaced_peers=None):
    """Compare and return a ``Plan``: the steps, before, after, warnings, and the facts
    ``host_mac``/``mac``.

    ``namespace`` is NS_PRESENT, NS_ABSENT or NS_BROKEN (listed under /run/netns but not
    a usable namespace); ``pod_links``/``pod_routes`` are the pod's reads (None unless
    NS_PRESENT); ``sysctls`` is ``parse_sysctls()`` of the host veth (None unless it is
    ours); ``macs`` is ``(host_mac, pod_mac)`` for a veth that has to be created;
    ``replaced_peers``: for each of ``want["replaces"]`` that is a veth on the node, the name of
    the namespace of its peer (as ``peer_ns``). A veth of ``replaces`` that is this pod's (the
    pod's earlier host_ifname: ``owned`` under that name) is deleted first, with its routes and
    the pod's end; the pod is then wired again under ``host_ifname``.
    The facts are the MACs after the run (None when unknown).  Raises
    ``PodnetError`` (naming the option) when a device podnet does not own is in the way.
    """
    name, ifname, host_ifname = want["name"], want["ifname"], want["host_ifname"]
    host = find_link(node_links, host_ifname)
    pod_if = find_link(pod_links, ifname) if namespace == NS_PRESENT else None
    lo = find_link(pod_links, "lo") if namespace == NS_PRESENT else None
    steps, warnings = [], []
    # The pod's earlier host veth (its host_ifname changed): deleted, and the pod's end with it.
    gone = [old for old in want.get("replaces") or [] if want["state"] == "present" and owned(
        dict(want, host_ifname=old), find_link(node_links, old), pod_if, (replaced_peers or {}).get(old))[0]]
    steps.extend(("node", ["link", "del", old]) for old in gone)
    if gone:
        pod_if = None
        pod_routes = [r for r in pod_routes or [] if r.get("dev") != ifname]
    veth_ok, reason = owned(want, host, pod_if, peer_ns)
    if reason and want["state"] == "present":
        raise PodnetError(reason)

    route_cmds, routes_before, routes_after = _host_route_plan(want, node_routes, veth_ok, gone)
    before = _state(namespace, veth_ok, host, pod_if, lo, pod_routes, sysctls, routes_before)

    def node(*args):
        steps.append(("node", list(args)))

    def pod(*args):
        steps.append(("pod", list(args)))

    if want["state"] == "absent":
        if reason:
            warnings.append(reason.replace("; podnet will not touch it", "; left untouched"))
        if veth_ok:
            steps.extend(("node", args) for args in route_cmds)
            node("link", "del", host_ifname)
        if namespace != NS_ABSENT and (veth_ok or not want["wired_only"]):
            steps.append(("ns", ["netns", "del", name]))
        elif namespace != NS_ABSENT:
            warnings.append("name: namespace %r is not wired to this node by a veth %r; left untouched (wired_only)"
                            % (name, host_ifname))
            return Plan(steps, before, before, warnings, host_mac=None, mac=None)
        return Plan(steps, before, _state(NS_ABSENT, False), warnings, host_mac=None, mac=None)

    if not veth_ok and pod_if is not None:
        raise PodnetError(
            "ifname: pod %r already has an interface %r that is not the peer of host_ifname %r; podnet "
            "will not guess (remove the pod with state=absent, or fix host_ifname/ifname)"
            % (name, ifname, host_ifname))

    if namespace == NS_BROKEN:
        steps.append(("ns", ["netns", "del", name]))
    if namespace != NS_PRESENT:
        steps.append(("ns", ["netns", "add", name]))
    if not _up(lo):
        pod("link", "set", "lo", "up")

    mtu = want["mtu"]
    if veth_ok:
        facts = dict(host_mac=host.get("address"), mac=pod_if.get("address"))
        if mtu is not None and host.get("mtu") != mtu:
            node("link", "set", host_ifname, "mtu", str(mtu))
        if mtu is not None and pod_if.get("mtu") != mtu:
            pod("link", "set", ifname, "mtu", str(mtu))
    else:
        host_mac, pod_mac = macs if macs else (None, None)
        facts = dict(host_mac=host_mac, mac=pod_mac)
        args = ["link", "add", host_ifname]
        if host_mac:
            args += ["address", host_mac]
        if mtu is not None:
            args += ["mtu", str(mtu)]
        args += ["type", "veth", "peer", "name", ifname]
        if pod_mac:
            args += ["address", pod_mac]
        if mtu is not None:
            args += ["mtu", str(mtu)]
        node(*(args + ["netns", name]))
    if not (veth_ok and _up(host)):
        node("link", "set", host_ifname, "up")
    if not (veth_ok and _up(pod_if)):
        pod("link", "set", ifname, "up")

    have_addrs = _addresses(pod_if) if veth_ok else []
    if have_addrs != [want["address"]]:
        for addr in have_addrs:
            if addr != want["address"]:
                pod("addr", "del", addr, "dev", ifname)
        # replace, not add: deleting a primary address also deletes its secondaries,
        # which may include the wanted one.
        pod("addr", "replace", want["address"], "dev", ifname)

    defaults = _defaults(pod_routes) if veth_ok else []
    if not _default_matches(want, defaults):
        for old in defaults:
            if old["metric"] != 0:
                pod("route", "del", "default", "metric", str(old["metric"]))
        pod("route", "replace", "default", "via", want["gateway"], "dev", ifname, "onlink")

    current = sysctls if veth_ok and sysctls else {}
    keys = dict(zip(SYSCTLS, sysctl_keys(host_ifname)))
    writes = []
    for option in ("proxy_arp", "forwarding"):
        if current.get(option) is not want[option]:
            writes.append("%s=%d" % (keys[option], 1 if want[option] else 0))
    if want["proxy_arp"] and current.get("proxy_delay") != 0:
        writes.append("%s=0" % keys["proxy_delay"])
    if writes:
        steps.append(("sysctl", ["-w"] + writes))

    steps.extend(("node", args) for args in route_cmds)

    after = dict(
        namespace=NS_PRESENT,
        veth=True,
        addresses=[want["address"]],
        gateway=want["gateway"],
        mtu=mtu if mtu is not None else (pod_if.get("mtu") if veth_ok else VETH_DEFAULT_MTU),
        host_mtu=mtu if mtu is not None else (host.get("mtu") if veth_ok else VETH_DEFAULT_MTU),
        up=True,
        host_up=True,
        lo_up=True,
        proxy_arp=want["proxy_arp"],
        proxy_delay=0 if want["proxy_arp"] else current.get("proxy_delay"),
        forwarding=want["forwarding"],
        host_routes=routes_after,
    )
    return Plan(steps, before, after, warnings, **facts)
