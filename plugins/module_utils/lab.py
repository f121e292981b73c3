# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for podnet.fabric.lab_topology: an inventory's nodes as namespaces on one machine.

The lab looks like a small real network::

    host1 (eth0 10.57.4.20/24) --+                              +-- host3 (eth0 10.57.5.20/24)
    host2 (eth0 10.57.4.21/24) --+- SWITCH 10.57.4.0/24 -+      |
                                   (namespace, bridge br0) |      +- SWITCH 10.57.5.0/24
                                                           +- ROUTER -+
                                           10.57.4.254/24 (sw-0a390400)  (sw-0a390500) 10.57.5.254/24

- one switch namespace per underlay subnet (``<switch_prefix>-10.57.4.0-24``) holding a bridge
  ``br0``; each node's interface is a veth whose peer (``p-<host number>``, e.g. ``p-20`` for
  10.57.4.20 in 10.57.4.0/24) is a port of that bridge;
- one router namespace with a leg (``sw-<network in hex>``) into every switch, at the last usable
  address of the subnet unless told otherwise, forwarding between them;
- every node routes ``default via <router address of its subnet> dev <iface>``.

Nodes on one switch reach each other directly (host-gw works); nodes on different switches only
through the router (host-gw fails, as it does between subnets of a real network).

The functions here never touch the system: ``wanted()`` validates the input into a model,
``parse()`` turns the module's reads into a state, ``plan()`` compares and returns the commands,
and ``describe()`` renders a state for the diff.  A state is a dict ``namespace -> {links,
default, sysctl}`` where ``links`` maps ``ifname -> {kind, up, master, addresses, peer}`` and a
veth's ``peer`` is ``[namespace, ifname]`` of its other end.
"""

from __future__ import annotations

import copy
import ipaddress
import re

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.plan import Plan
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

SWITCH_PREFIX = "podnet-sw"
ROUTER = "podnet-rt"
BRIDGE = "br0"
DEFAULT_IFACE = "eth0"
NODE_KEYS = ("name", "iface", "address")
# The protocol of the default route the lab gives a node: "configured by an administrator",
# not podnet's 150, so that node_route's purge never removes it.
DEFAULT_ROUTE_PROTO = "static"

SYSCTL_KEYS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.disable_ipv6",
               "net.ipv6.conf.default.disable_ipv6")
# podnet is IPv4-only: no IPv6 in the lab (no link-local addresses, no DAD, stable snapshots).
_SYSCTL_ALL = (("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1"))
# Nodes keep the ip_forward the kernel copied into them: the node role manages it.
_SYSCTL_ROUTER = _SYSCTL_ALL + (("net.ipv4.ip_forward", "1"),)

ROLES = ("router", "switch", "node")
# Longest suffix a switch name gets: -255.255.255.255-30.
_SWITCH_SUFFIX_MAX = len("-255.255.255.255-30")
_PORT_RE = re.compile(r"^p-[0-9]+$")
_LEG_RE = re.compile(r"^sw-[0-9a-f]{8}$")


# -- names ------------------------------------------------------------------


def switch_name(prefix, subnet):
    """The switch namespace of a subnet: ``podnet-sw-10.57.4.0-24``."""
    net = ipaddress.IPv4Network(subnet)
    return "%s-%s-%d" % (prefix, net.network_address, net.prefixlen)


def switch_name_re(prefix):
    """Matches every switch namespace name this prefix can produce (to find stale ones)."""
    return re.compile(r"^%s-[0-9]{1,3}(\.[0-9]{1,3}){3}-[0-9]{1,2}$" % re.escape(prefix))


def port_name(address, subnet):
    """A switch port: ``p-`` and the host number of the address behind it (10.57.4.20/24 -> p-20)."""
    net = ipaddress.IPv4Network(subnet)
    return "p-%d" % (int(ipaddress.IPv4Address(address)) - int(net.network_address))


def leg_name(subnet):
    """The router's leg into a subnet's switch: ``sw-`` and the network in hex (sw-0a390400)."""
    return "sw-%08x" % int(ipaddress.IPv4Network(subnet).network_address)


# -- input ------------------------------------------------------------------


def _address(value, where):
    text = validate.ipv4_interface(value, where)
    if ipaddress.IPv4Interface(text).network.prefixlen > 30:
        raise PodnetError("%s: %s leaves no room in the subnet for the lab router; use a prefix "
                          "length of at most 30" % (where, text))
    return ipaddress.IPv4Interface(validate.host_interface(text, where))


def _router_addresses(value, subnets):
    """The router's address in each subnet: the last usable one unless ``router_addresses`` says."""
    result = dict((net, net.broadcast_address - 1) for net in subnets)
    for key, address in sorted((value or {}).items()):
        where = "router_addresses[%s]" % key
        net = ipaddress.IPv4Network(validate.ipv4_network(key, where))
        if net not in result:
            raise PodnetError("%s: no node is in %s (subnets of the nodes: %s)"
                              % (where, net, ", ".join(str(n) for n in sorted(subnets)) or "none"))
        ip = ipaddress.IPv4Address(validate.ipv4(address, where))
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise PodnetError("%s: %s is not a host address of %s" % (where, ip, net))
        result[net] = ip
    return result


def wanted(nodes, switch_prefix=SWITCH_PREFIX, router=ROUTER, pods=None, router_addresses=None,
           state="present"):
    """Validate the module's options into the lab model (raises ``PodnetError`` naming the option)."""
    prefix = validate.netns_name(switch_prefix, "switch_prefix")
    if len(prefix) > 64 - _SWITCH_SUFFIX_MAX:
        raise PodnetError("switch_prefix: %r is too long: switch names add up to %d characters "
                          "(-255.255.255.255-30) and namespace names may have 64"
                          % (prefix, _SWITCH_SUFFIX_MAX))
    router = validate.netns_name(router, "router")
    if state == "present" and not nodes:
        raise PodnetError("nodes: at least one node is needed to build a lab")

    owners = {router: "router"}   # namespace name -> what uses it, to refuse clashes

    def claim(name, where, owner):
        if name in owners:
            raise PodnetError("%s: namespace name %r is already used by %s" % (where, name, owners[name]))
        owners[name] = owner

    model_nodes, by_ip = [], {}
    for where, item in validate.entries(nodes, "nodes", NODE_KEYS, "node"):
        name = validate.netns_name(item.get("name"), where + ".name")
        iface = item.get("iface")
        iface = DEFAULT_IFACE if iface in (None, "") else validate.ifname(iface, where + ".iface")
        if iface == "lo":
            raise PodnetError("%s.iface: lo is the loopback device; name the underlay interface, "
                              "e.g. eth0" % where)
        if item.get("address") in (None, ""):
            raise PodnetError("%s.address: the node's underlay address with prefix length "
                              "(node_ip/prefixlen, e.g. 10.57.4.20/24) is required" % where)
        address = _address(item["address"], where + ".address")
        if address.ip in by_ip:
            raise PodnetError("%s.address: %s is also the address of %s"
                              % (where, address.ip, by_ip[address.ip]))
        claim(name, where + ".name", where)
        by_ip[address.ip] = where
        model_nodes.append(dict(name=name, iface=iface, interface=address, where=where))

    subnets = []
    for node in model_nodes:
        net = node["interface"].network
        for other in subnets:
            if net != other and net.overlaps(other):
                first = [n for n in model_nodes if n["interface"].network == other][0]
                raise PodnetError(
                    "%s.address: subnet %s overlaps %s of %s; nodes that share a switch need the "
                    "same prefix length" % (node["where"], net, other, first["where"]))
        if net not in subnets:
            subnets.append(net)
    subnets.sort()

    gateways = _router_addresses(router_addresses, subnets)
    for node in model_nodes:
        gateway = gateways[node["interface"].network]
        if node["interface"].ip == gateway:
            raise PodnetError(
                "%s.address: %s is the lab router's address in %s (by default the last usable "
                "address); choose another node address or set router_addresses"
                % (node["where"], gateway, node["interface"].network))

    switches = []
    for net in subnets:
        name = switch_name(prefix, net)
        label = "the switch of %s" % net
        claim(name, label, label)
        members = [n for n in model_nodes if n["interface"].network == net]
        switches.append(dict(name=name, subnet=str(net), gateway=str(gateways[net]),
                             ports=[port_name(n["interface"].ip, net) for n in members]
                             + [port_name(gateways[net], net)]))

    legs = [dict(ifname=leg_name(net), address="%s/%d" % (gateways[net], net.prefixlen),
                 switch=switch_name(prefix, net), port=port_name(gateways[net], net),
                 subnet=str(net)) for net in subnets]

    result_nodes = []
    for node in model_nodes:
        net = node["interface"].network
        result_nodes.append(dict(
            name=node["name"], iface=node["iface"], address=str(node["interface"]),
            ip=str(node["interface"].ip), subnet=str(net), gateway=str(gateways[net]),
            switch=switch_name(prefix, net), port=port_name(node["interface"].ip, net)))

    result_pods = []
    for index, name in enumerate(pods or []):
        name = validate.netns_name(name, "pods[%d]" % index)
        if name in result_pods:
            continue
        if name in owners:
            raise PodnetError("pods[%d]: namespace name %r is already used by %s"
                              % (index, name, owners[name]))
        result_pods.append(name)

    return dict(switch_prefix=prefix, router=dict(name=router, legs=legs), switches=switches,
                nodes=result_nodes, pods=result_pods)


def roles(model):
    """``[(namespace, role)]`` in build order: router, switches, nodes."""
    return ([(model["router"]["name"], "router")] + [(s["name"], "switch") for s in model["switches"]]
            + [(n["name"], "node") for n in model["nodes"]])


def stale_switches(model, existing):
    """Namespaces named like this lab's switches that the lab no longer needs."""
    pattern = switch_name_re(model["switch_prefix"])
    wanted_names = set(s["name"] for s in model["switches"])
    return sorted(n for n in existing if pattern.match(n) and n not in wanted_names)


def to_read(model, existing):
    """The existing namespaces whose links, routes and sysctls the module reads."""
    existing = set(existing)
    return [name for name, role in roles(model) if name in existing] + stale_switches(model, existing)


# -- what the kernel has ----------------------------------------------------


def _link(item):
    return dict(
        kind=(item.get("linkinfo") or {}).get("info_kind") or item.get("link_type"),
        up="UP" in item.get("flags", []),
        master=item.get("master"),
        addresses=sorted("%s/%s" % (a["local"], a["prefixlen"]) for a in item.get("addr_info", [])
                         if a.get("family") == "inet"),
    )


def parse(reads):
    """The lab's state from the module's reads.

    ``reads`` maps a namespace to ``{links: ip -d -json addr show, nsids: ip -json netns list-id,
    routes: ip -json route show table main, sysctl: sysctl -n SYSCTL_KEYS output}``.
    """
    state, peers = {}, {}
    for name, read in reads.items():
        names = dict((item.get("nsid"), item.get("name")) for item in read.get("nsids") or [])
        links = {}
        for item in read.get("links") or []:
            link = _link(item)
            link["peer"] = None
            links[item["ifname"]] = link
            if link["kind"] == "veth" and "link_index" in item:
                if "link_netnsid" in item:
                    peer_ns = names.get(item["link_netnsid"])
                else:
                    peer_ns = name
                peers[(name, item["ifname"])] = (peer_ns, item["link_index"])
        default = None
        for route in read.get("routes") or []:
            if route.get("dst") == "default" and not route.get("metric"):
                default = dict(via=route.get("gateway"), dev=route.get("dev"))
        values = (read.get("sysctl") or "").split()
        sysctl = dict(zip(SYSCTL_KEYS, values)) if len(values) == len(SYSCTL_KEYS) else {}
        state[name] = dict(links=links, default=default, sysctl=sysctl,
                           _ifindex=dict((item["ifindex"], item["ifname"])
                                         for item in read.get("links") or []))
    for (name, ifname), (peer_ns, index) in peers.items():
        if peer_ns in state:
            peer_if = state[peer_ns]["_ifindex"].get(index)
            state[name]["links"][ifname]["peer"] = [peer_ns, peer_if or "#%d" % index]
        else:
            # A peer in a namespace the module did not read (or one without a name).
            state[name]["links"][ifname]["peer"] = [peer_ns, "#%d" % index]
    for entry in state.values():
        del entry["_ifindex"]
    return state


# -- what the lab wants -----------------------------------------------------


def _new_link(kind, peer=None):
    return dict(kind=kind, up=False, master=None, addresses=[], peer=peer)


def _new_ns():
    return dict(links={"lo": _new_link("loopback")}, default=None,
                sysctl=dict((key, None) for key in SYSCTL_KEYS))


def managed_links(model):
    """``{namespace: {ifname: {master, addresses}}}``: every link the lab owns and converges."""
    result = {}
    result[model["router"]["name"]] = dict(
        (leg["ifname"], dict(master=None, addresses=[leg["address"]])) for leg in model["router"]["legs"])
    for switch in model["switches"]:
        links = {BRIDGE: dict(master=None, addresses=[])}
        for port in switch["ports"]:
            links[port] = dict(master=BRIDGE, addresses=[])
        result[switch["name"]] = links
    for node in model["nodes"]:
        result[node["name"]] = {node["iface"]: dict(master=None, addresses=[node["address"]])}
    return result


def nic_mac(address):
    """The MAC of the node or router end of a veth: ``02:4c`` and the four bytes of its IPv4 address.

    Like a real NIC, an interface the lab makes again (after someone deleted it) comes back with
    the same MAC, so the neighbour caches of the other nodes and of the router stay right.
    """
    ip = ipaddress.IPv4Interface(address).ip
    return "02:4c:" + ":".join("%02x" % byte for byte in ip.packed)


def pairs(model):
    """Every veth pair: ``(switch, port, namespace, ifname, mac)`` of the node or router end."""
    result = [(n["switch"], n["port"], n["name"], n["iface"], nic_mac(n["address"])) for n in model["nodes"]]
    result += [(leg["switch"], leg["port"], model["router"]["name"], leg["ifname"], nic_mac(leg["address"]))
               for leg in model["router"]["legs"]]
    return sorted(result)


def wanted_sysctl(role):
    return _SYSCTL_ROUTER if role == "router" else _SYSCTL_ALL


def ideal(model):
    """The state a converged lab has."""
    state = {}
    role_of = dict(roles(model))
    for name, role in roles(model):
        entry = _new_ns()
        entry["links"]["lo"]["up"] = True
        for key, value in wanted_sysctl(role):
            entry["sysctl"][key] = value
        state[name] = entry
    for name, links in managed_links(model).items():
        for ifname, want in links.items():
            kind = "bridge" if role_of[name] == "switch" and ifname == BRIDGE else "veth"
            state[name]["links"][ifname] = dict(_new_link(kind), up=True, master=want["master"],
                                                addresses=list(want["addresses"]))
    for switch, port, name, ifname, _mac in pairs(model):
        state[switch]["links"][port]["peer"] = [name, ifname]
        state[name]["links"][ifname]["peer"] = [switch, port]
    for node in model["nodes"]:
        state[node["name"]]["default"] = dict(via=node["gateway"], dev=node["iface"])
    return state


def describe(model, state, names):
    """The part of ``state`` the lab manages, for the diff: ``{namespaces: {name: ...}}``."""
    managed = managed_links(model)
    role_of = dict(roles(model))
    result = {}
    for name in names:
        if name not in state:
            continue
        entry = state[name]
        role = role_of.get(name)
        if role is None:
            result[name] = {}        # a pod, or a stale switch: only its existence matters
            continue
        links = {}
        for ifname in sorted(managed.get(name, {})):
            if ifname in entry["links"]:
                link = entry["links"][ifname]
                links[ifname] = dict(kind=link["kind"], up=link["up"], master=link["master"],
                                     addresses=list(link["addresses"]),
                                     peer="/".join(str(p) for p in link["peer"]) if link["peer"] else None)
        lo = entry["links"].get("lo")
        info = dict(role=role, links=links, lo_up=bool(lo and lo["up"]),
                    sysctl=dict((key, entry["sysctl"].get(key)) for key, value in wanted_sysctl(role)))
        if role == "node":
            info["default"] = dict(entry["default"]) if entry["default"] else None
        result[name] = info
    return dict(namespaces=result)


# -- the plan ---------------------------------------------------------------


class _Steps(object):
    """Collects commands and keeps a simulated state in step with them."""

    def __init__(self, state):
        self.sim = copy.deepcopy(state)
        self.commands = []

    def cmd(self, tool, netns, args):
        self.commands.append((tool, netns, list(args)))

    def _forget_peer(self, link):
        peer = link.get("peer")
        if link["kind"] == "veth" and peer and peer[0] in self.sim and peer[0] is not None:
            gone = self.sim[peer[0]]["links"].pop(peer[1], None)
            if gone is not None:
                self._lost_link(peer[0], peer[1])

    def _lost_link(self, netns, ifname):
        entry = self.sim[netns]
        if entry["default"] and entry["default"].get("dev") == ifname:
            entry["default"] = None
        for link in entry["links"].values():
            if link["master"] == ifname:
                link["master"] = None

    def netns_add(self, name):
        self.cmd("ip", None, ["netns", "add", name])
        self.sim[name] = _new_ns()

    def netns_del(self, name):
        self.cmd("ip", None, ["netns", "del", name])
        entry = self.sim.pop(name, None)
        for link in (entry or {}).get("links", {}).values():
            self._forget_peer(link)

    def link_del(self, netns, ifname):
        self.cmd("ip", netns, ["link", "del", ifname])
        link = self.sim[netns]["links"].pop(ifname)
        self._lost_link(netns, ifname)
        self._forget_peer(link)


def plan(model, state, existing, lab_state="present", broken=()):
    """Compare the lab with the kernel: a ``Plan`` (commands, before, after).

    ``commands`` are ``(tool, netns, args)``: ``tool`` is ``ip`` (``ip -n NETNS args``, or
    ``ip args`` when ``netns`` is None) or ``sysctl`` (run inside ``netns``).  ``ip netns add|del``
    come as ``("ip", None, ["netns", "add", NAME])``.  ``existing`` lists the names under
    /run/netns, ``broken`` those of them that are not mounted namespaces (left behind by a
    mount namespace that went away): they are removed and, when the lab needs them, made again.
    """
    existing = set(existing)
    broken = set(broken) & existing
    stale = stale_switches(model, existing)
    names = [name for name, role in roles(model)]
    steps = _Steps(dict((k, v) for k, v in state.items() if k in existing))

    if lab_state == "absent":
        targets = []
        for name in model["pods"] + [n["name"] for n in model["nodes"]] + \
                [s["name"] for s in model["switches"]] + stale + [model["router"]["name"]]:
            if name in existing and name not in targets:
                targets.append(name)
        before = describe(model, state, targets)
        for name in targets:
            steps.netns_del(name)
        before["namespaces"].update((name, {}) for name in targets if name not in before["namespaces"])
        return Plan(steps.commands, before, dict(namespaces={}))

    before = describe(model, state, names + stale)
    before["namespaces"].update((name, None) for name in broken if name in names)

    for name in stale:
        steps.netns_del(name)

    role_of = dict(roles(model))
    for name in names:
        if name in broken:
            steps.netns_del(name)
        if name not in steps.sim:
            steps.netns_add(name)
        entry = steps.sim[name]
        changes = [(key, value) for key, value in wanted_sysctl(role_of[name])
                   if entry["sysctl"].get(key) != value]
        if changes:
            steps.cmd("sysctl", name, ["-qw"] + ["%s=%s" % item for item in changes])
            entry["sysctl"].update(changes)
        lo = entry["links"].get("lo")
        if lo is None or not lo["up"]:
            steps.cmd("ip", name, ["link", "set", "lo", "up"])
            entry["links"]["lo"] = dict(lo or _new_link("loopback"), up=True)

    # Ports and legs the lab no longer needs (a node left the inventory or moved).
    managed = managed_links(model)
    for switch in model["switches"]:
        links = steps.sim[switch["name"]]["links"]
        for ifname in sorted(links):
            if ifname in links and _PORT_RE.match(ifname) and ifname not in switch["ports"]:
                steps.link_del(switch["name"], ifname)
    router = model["router"]["name"]
    for ifname in sorted(steps.sim[router]["links"]):
        if ifname in steps.sim[router]["links"] and _LEG_RE.match(ifname) and ifname not in managed[router]:
            steps.link_del(router, ifname)

    for switch in model["switches"]:
        links = steps.sim[switch["name"]]["links"]
        if BRIDGE in links and links[BRIDGE]["kind"] != "bridge":
            steps.link_del(switch["name"], BRIDGE)
        if BRIDGE not in links:
            steps.cmd("ip", switch["name"], ["link", "add", BRIDGE, "type", "bridge"])
            links[BRIDGE] = _new_link("bridge")

    for switch, port, name, ifname, mac in pairs(model):
        sw_link = steps.sim[switch]["links"].get(port)
        end_link = steps.sim[name]["links"].get(ifname)
        if (sw_link is not None and end_link is not None and sw_link["kind"] == "veth"
                and end_link["kind"] == "veth" and sw_link["peer"] == [name, ifname]
                and end_link["peer"] == [switch, port]):
            continue
        if end_link is not None:
            steps.link_del(name, ifname)
        if port in steps.sim[switch]["links"]:
            steps.link_del(switch, port)
        steps.cmd("ip", switch, ["link", "add", port, "type", "veth", "peer", "name", ifname,
                                 "address", mac, "netns", name])
        steps.sim[switch]["links"][port] = _new_link("veth", [name, ifname])
        steps.sim[name]["links"][ifname] = _new_link("veth", [switch, port])

    readdressed = set()
    for name in names:
        for ifname, want in sorted(managed[name].items()):
            link = steps.sim[name]["links"][ifname]
            for address in list(link["addresses"]):
                if address not in want["addresses"]:
                    steps.cmd("ip", name, ["addr", "del", address, "dev", ifname])
                    link["addresses"].remove(address)
                    readdressed.add((name, ifname))
            for address in want["addresses"]:
                if address not in link["addresses"]:
                    steps.cmd("ip", name, ["addr", "add", address, "dev", ifname])
                    link["addresses"].append(address)
                    readdressed.add((name, ifname))
            link["addresses"].sort()
            args = []
            if link["master"] != want["master"]:
                args += ["master", want["master"]] if want["master"] else ["nomaster"]
                link["master"] = want["master"]
            if not link["up"]:
                args.append("up")
                link["up"] = True
            if args:
                steps.cmd("ip", name, ["link", "set", ifname] + args)

    for node in model["nodes"]:
        entry = steps.sim[node["name"]]
        want = dict(via=node["gateway"], dev=node["iface"])
        if entry["default"] != want or (node["name"], node["iface"]) in readdressed:
            steps.cmd("ip", node["name"], ["route", "replace", "default", "via", node["gateway"],
                                           "dev", node["iface"], "proto", DEFAULT_ROUTE_PROTO])
            entry["default"] = want

    return Plan(steps.commands, before, describe(model, steps.sim, names))
