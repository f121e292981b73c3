# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BGP mode: what one node's BIRD 2 must say, from the cluster model (pure, no kernel).

Every node runs BIRD with router id = its node_ip and AS ``podnet_bgp_as`` (64512 by default,
as Calico). It originates exactly its own pod CIDR (``protocol static``, never written to the
kernel) and talks BGP only with the neighbours the inventory implies:

* the node-to-node mesh: every other node on the same underlay subnet (iBGP, ``direct``);
* ``podnet_bgp_route_reflectors`` (node names), instead of the mesh: a reflector has an
  ``rr client`` session with every other node on its subnet and a plain one with the other
  reflectors; a client talks to the reflectors only. As in Calico, the reflectors of a cluster
  share one cluster id (here the lowest reflector node_ip), so a route one reflector passes on is
  not reflected back by another, and reflection keeps the announcing node as the next hop;
* ``podnet_bgp_peers`` (a host or group variable): routers the node peers with, e.g. its
  top-of-rack switch, each ``{address, as, password, name}`` on the node's subnet. These carry
  the pod routes across subnets. When the router's AS differs, the session allows the node's
  own AS in paths (``allow local as``), since the other nodes' routes come back through it.

Filters (whitelists, so a default route or a foreign prefix never gets in):
import from a node (mesh peer, reflector client) = exactly that node's pod CIDR; import from a
router or a reflector = any other node's pod CIDR; export = the node's own pod CIDR (a reflector
also passes on the pod CIDRs it reflects); to the kernel = routes learnt by BGP inside the
inventory's pod CIDRs. The kernel protocol writes them with BIRD's own protocol tag (``proto
bird``), so podnet's route purge (protocol 150) and BIRD never touch each other's routes.
Filtered routes are kept (``import keep filtered``) so verify can count and show them.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

# Cluster-wide settings (model.DEFAULTS takes these; variables are podnet_<key>).
DEFAULTS = dict(bgp_as=64512, bgp_hold_time=90, bgp_password=None, bgp_mesh=True, bgp_route_reflectors=[])
PEER_KEYS = ("address", "as", "password", "name")
UNIT = "podnet-bird.service"
HOLD_MIN, HOLD_MAX = 3, 65535
AS_MIN, AS_MAX = 1, 2 ** 32 - 1
_PASSWORD_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,80}$")   # printable, no space, " or \
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


def _integer(value, var, low, high):
    try:
        number = int(str(value).strip())
    except ValueError:
        raise PodnetError("%s: %r is not a number" % (var, value))
    if isinstance(value, bool) or not low <= number <= high:
        raise PodnetError("%s: %r is outside %d..%d" % (var, value, low, high))
    return number


def asn(value, var):
    return _integer(value, var, AS_MIN, AS_MAX)


def password(value, var):
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _PASSWORD_RE.match(value):
        raise PodnetError("%s: a TCP-MD5 password is 1 to 80 printable characters without spaces, quotes "
                          "or backslashes" % var)
    return value


def check_settings(s):
    """Normalise the cluster-wide BGP settings in ``s`` (a model settings dict) in place."""
    s["bgp_as"] = asn(s["bgp_as"], "podnet_bgp_as")
    s["bgp_hold_time"] = _integer(s["bgp_hold_time"], "podnet_bgp_hold_time", HOLD_MIN, HOLD_MAX)
    s["bgp_password"] = password(s["bgp_password"], "podnet_bgp_password")
    mesh = s["bgp_mesh"]
    if not isinstance(mesh, bool):
        text = str(mesh).strip().lower()
        if text not in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            raise PodnetError("podnet_bgp_mesh: must be true or false, not %r" % (mesh,))
        mesh = text in ("true", "yes", "on", "1")
    s["bgp_mesh"] = mesh
    reflectors = s["bgp_route_reflectors"] or []
    if not isinstance(reflectors, list) or not all(isinstance(r, str) and r for r in reflectors):
        raise PodnetError("podnet_bgp_route_reflectors: must be a list of node names")
    s["bgp_route_reflectors"] = sorted(set(reflectors))
    return s


def check_peers(host, raw, node_ips):
    """A node's ``podnet_bgp_peers`` -> [{address, as, password, name}] (``name``: BIRD protocol name)."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise PodnetError("host %s: podnet_bgp_peers: must be a list of {address, as, password}" % host)
    peers, seen = [], {}
    for index, entry in enumerate(raw):
        var = "host %s: podnet_bgp_peers[%d]" % (host, index)
        if not isinstance(entry, dict):
            raise PodnetError("%s: must be a dict {address, as, password}" % var)
        unknown = sorted(str(k) for k in entry if k not in PEER_KEYS)
        if unknown:
            raise PodnetError("%s: unknown key(s) %s; a peer has %s" % (var, ", ".join(unknown), ", ".join(PEER_KEYS)))
        if entry.get("address") in (None, "") or entry.get("as") in (None, ""):
            raise PodnetError("%s: a peer needs an address and an as" % var)
        try:
            address = validate.ipv4(entry["address"], "address")
        except PodnetError as exc:
            raise PodnetError("%s.%s" % (var, exc))
        if address in node_ips:
            raise PodnetError("%s.address: %s is the node_ip of host %s; nodes peer with each other through the "
                              "mesh or the route reflectors" % (var, address, node_ips[address]))
        if address in seen:
            raise PodnetError("%s.address: %s is already podnet_bgp_peers[%d]" % (var, address, seen[address]))
        seen[address] = index
        name = entry.get("name") or "peer_" + address.replace(".", "_")
        if not _NAME_RE.match(str(name)):
            raise PodnetError("%s.name: %r is not a BIRD protocol name (a letter, then letters, digits, _)"
                              % (var, name))
        peers.append(dict(address=address, name=str(name), password=password(entry.get("password"), var + ".password"),
                          **{"as": asn(entry["as"], var + ".as")}))
    return peers


def check_cluster(cluster, raw_peers):
    """Cluster-wide checks for bgp mode; ``raw_peers``: {host: podnet_bgp_peers}. Returns {host: peers}."""
    names = [n.name for n in cluster.nodes]
    unknown = [r for r in cluster.settings["bgp_route_reflectors"] if r not in names]
    if unknown:
        raise PodnetError("podnet_bgp_route_reflectors: %s not in the group 'nodes'" % ", ".join(unknown))
    node_ips = dict((n.node_ip, n.name) for n in cluster.nodes)
    return dict((n.name, check_peers(n.name, raw_peers.get(n.name), node_ips)) for n in cluster.nodes)


def _subnet(node, fact):
    return ipaddress.IPv4Interface("%s/%s" % (node.node_ip, fact["prefixlen"])).network


def _proto(prefix, ip):
    return prefix + "_" + ip.replace(".", "_")


def paths(state_dir, name):
    """Where a node's BIRD keeps its config, control socket and pid file (lab nodes share a file system)."""
    base = "%s/%s-bird" % (state_dir.rstrip("/"), name)
    return dict(config_file=base + ".conf", socket=base + ".ctl", pidfile=base + ".pid")


def node_bgp(cluster, name, facts, peers, strict=True):
    """One node's BGP plan: ``config`` (BIRD 2 text), the file paths and ``sessions`` (what must be up).

    ``facts``: {host: {prefixlen, ...}} (node_facts); the node's own are needed, a peer's never (a peer
    is on the node's subnet when its node_ip is). ``peers``: {host: [router peers]} from check_cluster.
    ``strict`` (the underlay check): raise PodnetError for a router peer off the node's subnet, or a
    node that reaches no other node. Planning is not strict, so a teardown of such a cluster still runs.
    """
    s = cluster.settings
    node = cluster.node(name)
    subnet = _subnet(node, facts[name])
    mine = peers.get(name) or []
    for peer in mine if strict else []:
        if ipaddress.IPv4Address(peer["address"]) not in subnet:
            raise PodnetError("host %s: podnet_bgp_peers: %s is not in this node's underlay subnet %s (sessions are "
                              "direct, as with a top-of-rack router)" % (name, peer["address"], subnet))
    local = [n for n in cluster.nodes if n.name != name and ipaddress.IPv4Address(n.node_ip) in subnet]
    reflectors = s["bgp_route_reflectors"]
    cluster_id = min((cluster.node(r).node_ip for r in reflectors), key=ipaddress.IPv4Address) if reflectors else None
    sessions = []   # dict(name, neighbor, as, password, role) role: node | client | reflector | router
    if reflectors:
        if name in reflectors:
            for other in local:
                role = "reflector" if other.name in reflectors else "client"
                sessions.append(dict(name=_proto("rr" if role == "reflector" else "rrc", other.node_ip), node=other,
                                     neighbor=other.node_ip, role=role, password=s["bgp_password"], export="pods",
                                     cluster_id=cluster_id, **{"as": s["bgp_as"]}))
        else:
            for other in local:
                if other.name in reflectors:
                    sessions.append(dict(name=_proto("rr", other.node_ip), node=other, neighbor=other.node_ip,
                                         role="reflector", password=s["bgp_password"], **{"as": s["bgp_as"]}))
    elif s["bgp_mesh"]:
        for other in local:
            sessions.append(dict(name=_proto("mesh", other.node_ip), node=other, neighbor=other.node_ip, role="node",
                                 password=s["bgp_password"], **{"as": s["bgp_as"]}))
    for peer in mine:
        sessions.append(dict(name=peer["name"], node=None, neighbor=peer["address"], role="router",
                             password=peer["password"], **{"as": peer["as"]}))
    if strict and not sessions and len(cluster.nodes) > 1:
        raise PodnetError("host %s: mode: bgp gives this node no BGP neighbour: no other node is in its subnet %s "
                          "(or none is a route reflector) and podnet_bgp_peers names no router" % (name, subnet))
    others = [n.pod_cidr for n in cluster.nodes if n.name != name]
    config = render(router_id=node.node_ip, local_as=s["bgp_as"], hold=s["bgp_hold_time"], own=[node.pod_cidr],
                    pods=[n.pod_cidr for n in cluster.nodes], others=others, sessions=sessions, title=name)
    plan = dict(paths(s["state_dir"], name), config=config, unit=UNIT,
                sessions=[dict(name=x["name"], neighbor=x["neighbor"], role=x["role"], **{"as": x["as"]})
                          for x in sessions])
    return plan


def absent(cluster, name):
    """What the bird module needs to stop and remove a node's BIRD (any mode). ``flush_routes``: the
    other nodes' pod CIDRs, whose ``proto bird`` routes a BIRD killed without shutting down leaves."""
    return dict(paths(cluster.settings["state_dir"], name), unit=UNIT,
                flush_routes=[n.pod_cidr for n in cluster.nodes if n.name != name])


def _set(cidrs):
    return "[ %s ]" % ", ".join(cidrs)


def render(router_id, local_as, hold, own, pods, others, sessions, title):
    """The BIRD 2 configuration text (deterministic: the module compares it byte for byte).

    ``own``: the prefixes this speaker originates; ``pods``: every pod CIDR of the inventory;
    ``others``: the ones it may learn. A session's import: a node's (``node``/``client``) exactly its
    pod CIDR, a router's or reflector's any of ``others``. Export: ``own``, plus everything it learnt
    for a reflector towards its clients and other reflectors, and for the lab router towards nodes.
    """
    lines = ["# podnet: BIRD 2 configuration of %s. Written by podnet.fabric.bird; edits are overwritten." % title,
             "router id %s;" % router_id, "",
             "define PODNET_PODS = %s;" % _set(pods)]
    if others:
        lines.append("define PODNET_OTHERS = %s;" % _set(others))
    lines += ["",
              "# Interfaces (next hops must be on a connected subnet).",
              "protocol device {", "  scan time 10;", "}", "",
              "# The prefixes this speaker originates; BGP only, never written to the kernel.",
              "protocol static podnet_own {", "  ipv4;"]
    lines += ["  route %s unreachable;" % cidr for cidr in own]
    lines += ["}", ""]
    lines += ["# Learnt pod routes into the kernel (proto bird); nothing is read from it.",
              "protocol kernel podnet_kernel {", "  scan time 10;", "  ipv4 {", "    import none;",
              "    export where source = RTS_BGP && net ~ PODNET_PODS;", "  };", "}", ""]
    lines += ["filter podnet_own_only {", "  if proto = \"podnet_own\" then accept;", "  reject;", "}", "",
              "filter podnet_pods_only {", "  if net ~ PODNET_PODS then accept;", "  reject;", "}", ""]
    if others:
        lines += ["filter podnet_others_only {", "  if net ~ PODNET_OTHERS then accept;", "  reject;", "}", ""]
    for x in sessions:
        if x["role"] in ("node", "client"):
            imp = "where net = %s" % x["node"].pod_cidr
        elif others:
            imp = "filter podnet_others_only"
        else:
            imp = "none"
        exp = "filter podnet_pods_only" if x.get("export") == "pods" else "filter podnet_own_only"
        lines += ["protocol bgp %s {" % x["name"],
                  "  description \"%s\";" % x["role"],
                  "  local %s as %d;" % (x.get("local", router_id), x.get("local_as", local_as)),
                  "  neighbor %s as %d;" % (x["neighbor"], x["as"]),
                  "  direct;", "  hold time %d;" % hold, "  keepalive time %d;" % max(1, hold // 3),
                  "  connect delay time 1;", "  connect retry time 5;", "  error wait time 1, 30;",
                  "  graceful restart off;"]
        if x["role"] == "client":
            lines.append("  rr client;")
        if x.get("cluster_id"):
            lines.append("  rr cluster id %s;" % x["cluster_id"])
        if x["as"] != x.get("local_as", local_as) and x["role"] == "router":
            lines.append("  allow local as;")
        if x.get("password"):
            lines.append("  password \"%s\";" % x["password"])
        lines += ["  ipv4 {", "    import keep filtered on;", "    import %s;" % imp, "    export %s;" % exp,
                  "  };", "}", ""]
    return "\n".join(lines)


def tor_config(cluster, peers, router_id=None):
    """BIRD 2 config for a router that every ``podnet_bgp_peers`` entry names (the lab's ToR).

    One eBGP/iBGP session per (node, peer entry): local = the peer's address and AS, neighbor = the
    node; import exactly that node's pod CIDR; export every pod CIDR (the router writes them to its
    own kernel too, so it forwards the pods' packets, unencapsulated).
    """
    s = cluster.settings
    sessions = []
    for node in cluster.nodes:
        for peer in peers.get(node.name) or []:
            sessions.append(dict(name=_proto("node", node.node_ip), node=node, neighbor=node.node_ip, role="node", export="pods",
                                 local=peer["address"], local_as=peer["as"], password=peer["password"],
                                 **{"as": s["bgp_as"]}))
    if not sessions:
        raise PodnetError("podnet_bgp_peers: no node names a router to peer with")
    # a node listed under several addresses of the router would give duplicate names
    names = [x["name"] for x in sessions]
    if len(set(names)) != len(names):
        raise PodnetError("podnet_bgp_peers: a node names the router more than once")
    router_id = router_id or min((x["local"] for x in sessions), key=ipaddress.IPv4Address)
    pods = [n.pod_cidr for n in cluster.nodes]
    return render(router_id=router_id, local_as=sessions[0]["local_as"], hold=s["bgp_hold_time"], own=[],
                  pods=pods, others=pods, sessions=sessions, title="the lab router")


# -- reading BIRD ------------------------------------------------------------------------------

_ROW_RE = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(up|down|start|stop)\s+(\S+(?:\s+\d\d:\d\d:\d\d(?:\.\d+)?)?)\s*(.*)$")
_ROUTES_RE = re.compile(r"Routes:\s+(\d+) imported, (?:(\d+) filtered, )?(\d+) exported")


def parse_protocols(text):
    """``birdc show protocols all`` -> [{name, proto, state, info, neighbor, as, imported, filtered, exported}]."""
    result, current = [], None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Name ")):
            continue
        if not line[0].isspace():
            match = _ROW_RE.match(line)
            if match:
                current = dict(name=match.group(1), proto=match.group(2), state=match.group(4),
                               since=match.group(5), info=match.group(6).strip(), neighbor=None,
                               imported=0, filtered=0, exported=0, **{"as": None})
                result.append(current)
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("Neighbor address:"):
            current["neighbor"] = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("Neighbor AS:"):
            current["as"] = int(stripped.split(":", 1)[1].strip())
        else:
            match = _ROUTES_RE.search(stripped)
            if match:
                current["imported"] = int(match.group(1))
                current["filtered"] = int(match.group(2) or 0)
                current["exported"] = int(match.group(3))
    return result


def parse_routes(text):
    """``birdc show route ...`` -> [{prefix, protocol}] (one per route, also several per prefix)."""
    result, prefix = [], None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Table ")):
            continue
        fields = line.split()
        if not line[0].isspace():
            prefix = fields[0]
        if prefix and "[" in line and fields[0] != "via":
            protocol = line.split("[", 1)[1].split()[0]
            result.append(dict(prefix=prefix, protocol=protocol))
    return result


def unit_text(bird, birdc, config_file, socket, pidfile):
    """podnet's own systemd unit (never the Debian package's bird.service or /etc/bird/bird.conf)."""
    return "\n".join([
        "# podnet: BIRD for podnet's BGP mode. Written by podnet.fabric.bird.",
        "[Unit]",
        "Description=BIRD routing daemon for podnet's pod routes",
        "Documentation=man:bird(8)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=forking",
        "ExecStartPre=%s -p -c %s" % (bird, config_file),
        "ExecStart=%s -c %s -s %s -P %s" % (bird, config_file, socket, pidfile),
        "ExecReload=%s -s %s configure" % (birdc, socket),
        "PIDFile=%s" % pidfile,
        "Restart=on-failure",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        ""])
