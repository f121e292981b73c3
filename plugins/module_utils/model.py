# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster model: inventory -> validated cluster -> what each node must hold.

Pure Python, no Ansible and no kernel, so every rule is unit-tested and the
validation role refuses exactly what the planner could not build.  Two steps:

* ``Cluster.from_inventory(hosts, settings)`` checks what the inventory alone can
  tell (addresses, CIDRs, names, ranges, duplicates, overlaps) and raises
  ``PodnetError`` naming the host and the variable;
* ``cluster.check_underlay(facts)`` adds what only the nodes can tell (the underlay
  interface, its subnet and MTU, a route to the pod gateway) and checks the mode
  against it (host-gw needs on-link peers, the MTU must fit the underlay);
* ``cluster.node_plan(host, facts)`` returns the per-node desired state the roles
  hand to the modules: pods, routes, the tunnel device, FDB and neighbour entries.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

MODES = ("host-gw", "ipip", "vxlan")
_CHAIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,27}$")
FDB_STRATEGIES = ("static", "flood", "multicast")
OVERHEAD = {"host-gw": 0, "ipip": 20, "vxlan": 50}
POD_KEYS = ("name", "ip", "host_ifname")

DEFAULTS = dict(
    mode="vxlan",
    pod_gateway="169.254.10.24",
    vxlan_vni=100,
    vxlan_port=4789,
    vxlan_fdb="static",
    vxlan_group="239.1.1.1",
    vxlan_device="vxlan0",
    ipip_device="mustang.tun0",
    ipip_ttl=64,
    direct_routing=False,
    mtu=None,
    state_dir="/var/lib/podnet",
    iptables_chain="PODNET-FORWARD",
    policy=[],
    tx_checksum_offload=None,
)
POLICY_ACTIONS = ("deny",)
_POLICY_KEYS = ("from", "to", "action")
_COMMENT_SAFE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _err(host, var, message):
    """An error naming the host (None for a cluster-wide setting) and the variable."""
    if host is None:
        return PodnetError("%s: %s" % (var, message))
    return PodnetError("host %s: %s: %s" % (host, var, message))


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _boolean(value, var):
    """A boolean as Ansible reads one (``-e var=true`` arrives as a string)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise _err(None, var, "must be true or false, not %r" % (value,))


def _check(host, var, func, *args):
    """Run a validator; re-raise its error prefixed with the host and variable."""
    try:
        return func(*args)
    except PodnetError as exc:
        text = str(exc)
        if text.startswith(args[-1] + ": "):
            text = text[len(args[-1]) + 2:]
        raise _err(host, var, text)


class Node(object):
    def __init__(self, name, node_ip, pod_cidr, pods, node_iface):
        self.name = name
        self.node_ip = node_ip
        self.pod_cidr = pod_cidr
        self.pods = pods
        self.node_iface = node_iface

    @property
    def network(self):
        return ipaddress.IPv4Network(self.pod_cidr)

    @property
    def tunnel_ip(self):
        """The node's own address in its pod CIDR (first host): the tunnel device's /32."""
        return str(self.network.network_address + 1)

    @property
    def vtep_mac(self):
        return validate.vtep_mac(self.node_ip)


class Cluster(object):
    """A validated podnet cluster."""

    def __init__(self, nodes, settings):
        self.nodes = nodes
        self.settings = settings

    @property
    def mode(self):
        return self.settings["mode"]

    # -- step 1: the inventory alone ------------------------------------------------

    @classmethod
    def from_inventory(cls, hosts, settings=None):
        """``hosts``: {hostname: {node_ip, pod_cidr, pods, node_iface}}; ``settings``: tunables."""
        settings = cls._settings(settings or {})
        if not hosts:
            raise PodnetError("inventory: the group 'nodes' has no hosts")
        nodes, seen_ip, seen_pod = [], {}, {}
        for name in sorted(hosts):
            nodes.append(cls._node(name, hosts[name] or {}, settings, seen_ip, seen_pod))
        for i, one in enumerate(nodes):
            for other in nodes[i + 1:]:
                if one.network.overlaps(other.network):
                    raise _err(other.name, "pod_cidr", "%s overlaps %s of host %s"
                               % (other.pod_cidr, one.pod_cidr, one.name))
        for node in nodes:
            for peer in nodes:
                if peer is not node and ipaddress.IPv4Address(peer.node_ip) in node.network:
                    raise _err(node.name, "pod_cidr", "%s contains node_ip %s of host %s"
                               % (node.pod_cidr, peer.node_ip, peer.name))
        gateway = ipaddress.IPv4Address(settings["pod_gateway"])
        for node in nodes:
            if gateway in node.network:
                raise _err(node.name, "pod_cidr", "%s contains the pod gateway %s (podnet_pod_gateway)"
                           % (node.pod_cidr, gateway))
        settings["policy"] = cls._policy(settings["policy"], nodes)
        return cls(nodes, settings)

    @staticmethod
    def _policy(raw, nodes):
        """``podnet_policy``: [{from: POD, to: POD, action: deny}] -> the same with both pods' IPs and nodes."""
        if not isinstance(raw, list):
            raise _err(None, "podnet_policy", "must be a list of {from, to, action: deny}")
        pods = dict((p["name"], (n.name, p["ip"])) for n in nodes for p in n.pods)
        result, seen = [], {}
        for index, entry in enumerate(raw):
            var = "podnet_policy[%d]" % index
            if not isinstance(entry, dict):
                raise _err(None, var, "must be a dict {from, to, action: deny}")
            unknown = sorted(str(k) for k in entry if k not in _POLICY_KEYS)
            if unknown:
                raise _err(None, var, "unknown key(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(_POLICY_KEYS)))
            for key in ("from", "to"):
                if entry.get(key) not in pods:
                    raise _err(None, "%s.%s" % (var, key), "unknown pod %r; the pods are %s"
                               % (entry.get(key), ", ".join(sorted(pods)) or "none"))
            if entry["from"] == entry["to"]:
                raise _err(None, var, "from and to are both %s; a pod's traffic to itself never leaves it" % entry["to"])
            action = entry.get("action", "deny")
            if action not in POLICY_ACTIONS:
                raise _err(None, "%s.action" % var, "unknown action %r; podnet knows %s (everything not denied "
                           "is allowed)" % (action, ", ".join(POLICY_ACTIONS)))
            key = (entry["from"], entry["to"])
            if key in seen:
                raise _err(None, var, "%s -> %s is already podnet_policy[%d]" % (key + (seen[key],)))
            seen[key] = index
            result.append(dict(entry, action=action, from_node=pods[key[0]][0], from_ip=pods[key[0]][1],
                               to_node=pods[key[1]][0], to_ip=pods[key[1]][1]))
        return result

    def denied(self, src_pod, dst_ip):
        """True when ``podnet_policy`` drops new connections from pod ``src_pod`` to ``dst_ip``."""
        return any(e["from"] == src_pod and e["to_ip"] == dst_ip for e in self.settings["policy"])

    @staticmethod
    def _settings(raw):
        s = dict(DEFAULTS)
        s.update(dict((k, v) for k, v in raw.items() if v is not None or k == "mtu"))
        where = None
        if s["mode"] not in MODES:
            raise _err(where, "mode", "unknown mode %r; choose one of %s" % (s["mode"], ", ".join(MODES)))
        if s["vxlan_fdb"] not in FDB_STRATEGIES:
            raise _err(where, "podnet_vxlan_fdb", "unknown FDB strategy %r; choose one of %s"
                       % (s["vxlan_fdb"], ", ".join(FDB_STRATEGIES)))
        s["pod_gateway"] = _check(where, "podnet_pod_gateway", validate.ipv4, s["pod_gateway"], "podnet_pod_gateway")
        s["vxlan_vni"] = _check(where, "podnet_vxlan_vni", validate.vni, s["vxlan_vni"], "podnet_vxlan_vni")
        s["vxlan_port"] = _check(where, "podnet_vxlan_port", validate.port, s["vxlan_port"], "podnet_vxlan_port")
        s["ipip_ttl"] = _check(where, "podnet_ipip_ttl", validate.ttl, s["ipip_ttl"], "podnet_ipip_ttl")
        group = _check(where, "podnet_vxlan_group", validate.ipv4, s["vxlan_group"], "podnet_vxlan_group")
        if not ipaddress.IPv4Address(group).is_multicast:
            raise _err(where, "podnet_vxlan_group", "%s is not a multicast address (224.0.0.0/4)" % group)
        s["vxlan_group"] = group
        for var in ("vxlan_device", "ipip_device"):
            s[var] = _check(where, "podnet_" + var, validate.ifname, s[var], "podnet_" + var)
        if s["vxlan_device"] == s["ipip_device"]:
            raise _err(where, "podnet_ipip_device", "must differ from podnet_vxlan_device")
        if s["mtu"] not in (None, ""):
            s["mtu"] = _check(where, "podnet_mtu", validate.mtu, s["mtu"], "podnet_mtu")
        else:
            s["mtu"] = None
        if not str(s["state_dir"]).startswith("/"):
            raise _err(where, "podnet_state_dir", "%r is not an absolute path" % (s["state_dir"],))
        if not _CHAIN_RE.match(str(s["iptables_chain"])):
            raise _err(where, "podnet_iptables_chain", "%r is not a valid chain name (letters, digits, _ -; "
                       "at most 28 characters)" % (s["iptables_chain"],))
        s["direct_routing"] = _boolean(s["direct_routing"], "podnet_direct_routing")
        if len(_chain_prefix(s["iptables_chain"]) + "-POLICY") > 28:
            raise _err(where, "podnet_iptables_chain", "%r is too long: podnet's INPUT and policy chains are named "
                       "after it (%s-POLICY) and must fit 28 characters"
                       % (s["iptables_chain"], _chain_prefix(s["iptables_chain"])))
        if s["tx_checksum_offload"] not in (None, ""):
            s["tx_checksum_offload"] = _boolean(s["tx_checksum_offload"], "podnet_tx_checksum_offload")
        else:
            s["tx_checksum_offload"] = None
        return s

    @staticmethod
    def _node(name, hv, settings, seen_ip, seen_pod):
        for var in ("node_ip", "pod_cidr"):
            if hv.get(var) in (None, ""):
                raise _err(name, var, "is required")
        node_ip = _check(name, "node_ip", validate.ipv4, hv["node_ip"], "node_ip")
        if node_ip in seen_ip:
            raise _err(name, "node_ip", "%s is also the node_ip of host %s" % (node_ip, seen_ip[node_ip]))
        seen_ip[node_ip] = name
        parsed = ipaddress.IPv4Address(node_ip)
        if (parsed.is_unspecified or parsed.is_loopback or parsed.is_multicast or parsed.is_reserved
                or node_ip == "255.255.255.255"):
            raise _err(name, "node_ip", "%s is not a unicast address other nodes can reach" % node_ip)
        pod_cidr = _check(name, "pod_cidr", validate.ipv4_network, hv["pod_cidr"], "pod_cidr")
        network = ipaddress.IPv4Network(pod_cidr)
        if network.is_multicast or network.is_loopback or network.is_reserved or network.is_unspecified:
            raise _err(name, "pod_cidr", "%s is a multicast, loopback or reserved network, not one for pods" % pod_cidr)
        if network.prefixlen > 30:
            raise _err(name, "pod_cidr", "%s is too small: it needs room for the node's address and pods" % pod_cidr)
        if ipaddress.IPv4Address(node_ip) in network:
            raise _err(name, "pod_cidr", "%s contains the node's own node_ip %s" % (pod_cidr, node_ip))
        iface = hv.get("node_iface")
        if iface not in (None, ""):
            iface = _check(name, "node_iface", validate.ifname, iface, "node_iface")
        else:
            iface = None
        pods = []
        raw_pods = hv.get("pods") or []
        if not isinstance(raw_pods, list):
            raise _err(name, "pods", "must be a list of {name, ip}")
        used = {str(network.network_address + 1): "the node's own tunnel address"}
        mine, ifnames = {}, {}
        for index, pod in enumerate(raw_pods):
            var = "pods[%d]" % index
            if not isinstance(pod, dict) or not pod.get("name") or not pod.get("ip"):
                raise _err(name, var, "each pod needs a name and an ip")
            unknown = sorted(str(key) for key in pod if key not in POD_KEYS)
            if unknown:
                raise _err(name, var, "unknown key(s) %s; a pod has %s" % (", ".join(unknown), ", ".join(POD_KEYS)))
            pod_name = _check(name, var + ".name", validate.netns_name, pod["name"], var + ".name")
            if pod_name in mine:
                raise _err(name, var + ".name", "pod %s is listed twice on this host (also pods[%d])"
                           % (pod_name, mine[pod_name]))
            mine[pod_name] = index
            if pod_name in seen_pod:
                raise _err(name, var + ".name", "pod %s is also defined on host %s (pod names are namespace "
                           "names and must be unique across the cluster)" % (pod_name, seen_pod[pod_name]))
            seen_pod[pod_name] = name
            ip = _check(name, var + ".ip", validate.ipv4, pod["ip"], var + ".ip")
            address = ipaddress.IPv4Address(ip)
            if address not in network:
                raise _err(name, var + ".ip", "%s is outside the node's pod_cidr %s" % (ip, pod_cidr))
            if address in (network.network_address, network.broadcast_address):
                raise _err(name, var + ".ip", "%s is the %s address of %s" % (
                    ip, "network" if address == network.network_address else "broadcast", pod_cidr))
            if ip in used:
                raise _err(name, var + ".ip", "%s is already %s" % (ip, used[ip]))
            used[ip] = "used by pod %s" % pod_name
            host_ifname = pod.get("host_ifname") or ("veth-" + pod_name)
            if not pod.get("host_ifname") and len(host_ifname) > validate.IFNAMSIZ:
                raise _err(name, var + ".name", "the host-side interface %r derived from the pod name is over "
                           "%d characters; set %s.host_ifname" % (host_ifname, validate.IFNAMSIZ, var))
            host_ifname = _check(name, var + ".host_ifname", validate.ifname, host_ifname, var + ".host_ifname")
            if host_ifname in ifnames:
                raise _err(name, var + ".host_ifname", "%s is also the host_ifname of pod %s"
                           % (host_ifname, ifnames[host_ifname]))
            ifnames[host_ifname] = pod_name
            if host_ifname in (settings["vxlan_device"], settings["ipip_device"]):
                raise _err(name, var + ".host_ifname", "%s is podnet's tunnel device name" % host_ifname)
            if host_ifname == iface:
                raise _err(name, var + ".host_ifname", "%s is the node's underlay interface (node_iface)" % host_ifname)
            pods.append(dict(name=pod_name, ip=ip, prefixlen=network.prefixlen, host_ifname=host_ifname))
        return Node(name, node_ip, pod_cidr, pods, iface)

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise PodnetError("host %s: is not in the group 'nodes'" % name)

    # -- step 2: what the nodes tell ------------------------------------------------

    def check_underlay(self, facts, read=None):
        """``facts``: {host: {iface, prefixlen, mtu, gateway_route}} from podnet.fabric.node_facts.

        ``read``: the hosts whose facts this run could read (default: every node). A node not read
        (unreachable, or outside ``--limit``) is not checked itself, but it is still checked as a
        peer from what the inventory tells (its node_ip against the read nodes' subnets): a peer's
        facts are never needed to plan a node.

        Raises ``PodnetError`` for the first host whose underlay cannot carry the mode.
        """
        subjects = [node for node in self.nodes if read is None or node.name in read]
        for node in subjects:
            fact = facts.get(node.name)
            if not fact or not fact.get("iface"):
                raise _err(node.name, "node_ip", "no interface on the node holds %s" % node.node_ip)
            if node.node_iface and fact["iface"] != node.node_iface:
                raise _err(node.name, "node_iface", "%s does not hold node_ip %s (it is on %s)"
                           % (node.node_iface, node.node_ip, fact["iface"]))
            for index, pod in enumerate(node.pods):
                if pod["host_ifname"] == fact["iface"]:
                    raise _err(node.name, "pods[%d].host_ifname" % index, "%s is the node's underlay interface "
                               "(it holds node_ip %s)" % (fact["iface"], node.node_ip))
            if not fact.get("gateway_route"):
                raise _err(node.name, "podnet_pod_gateway", "the node has no route to %s through another "
                           "interface (e.g. a default route), so proxy ARP would never answer the pods"
                           % self.settings["pod_gateway"])
            mtu = self.mtu(node.name, facts)
            limit = fact["mtu"] - OVERHEAD[self.mode]
            if mtu > limit:
                raise _err(node.name, "podnet_mtu", "%d is larger than the underlay %s allows for %s (%d - %d = %d)"
                           % (mtu, fact["iface"], self.mode, fact["mtu"], OVERHEAD[self.mode], limit))
        if self.mode == "host-gw":
            for node in subjects:
                far = [peer.name for peer in self.peers(node.name) if not self.on_link(node.name, peer.name, facts)]
                if far:
                    raise _err(node.name, "mode", "host-gw needs every node on one L2 segment, but peer(s) %s "
                               "are not in this node's underlay subnet; use ipip or vxlan, with "
                               "podnet_direct_routing=true for host-gw routes where possible" % ", ".join(far))
        if self.mode == "vxlan" and self.settings["vxlan_fdb"] == "multicast":
            nets = set(self._subnet(n.name, facts) for n in subjects)
            if len(nets) > 1:
                raise _err(None, "podnet_vxlan_fdb", "multicast needs every node in one subnet (the group is not "
                           "routed between %s); use static" % ", ".join(sorted(str(n) for n in nets)))
            # The nodes not read are judged by their node_ip against the read nodes' one subnet.
            net = next(iter(nets), None)
            far = [n.name for n in self.nodes if net and ipaddress.IPv4Address(n.node_ip) not in net]
            if far:
                raise _err(None, "podnet_vxlan_fdb", "multicast needs every node in one subnet, but node(s) %s "
                           "are not in %s; use static" % (", ".join(far), net))

    def _subnet(self, name, facts):
        fact = facts[name]
        return ipaddress.IPv4Interface("%s/%s" % (self.node(name).node_ip, fact["prefixlen"])).network

    def on_link(self, name, peer, facts):
        return ipaddress.IPv4Address(self.node(peer).node_ip) in self._subnet(name, facts)

    def peers(self, name):
        return [node for node in self.nodes if node.name != name]

    def mtu(self, name, facts):
        if self.settings["mtu"]:
            return self.settings["mtu"]
        return facts[name]["mtu"] - OVERHEAD[self.mode]

    # -- step 3: what one node must hold ------------------------------------------

    def node_plan(self, name, facts):
        node = self.node(name)
        s = self.settings
        iface = facts[name]["iface"]
        mtu = self.mtu(name, facts)
        plan = dict(mode=self.mode, mtu=mtu, iface=iface, pod_cidr=node.pod_cidr,
                    sysctl_file="%s/%s-sysctl.json" % (s["state_dir"].rstrip("/"), name),
                    iptables_chain=s["iptables_chain"],
                    pods=[dict(p, address="%s/%d" % (p["ip"], p["prefixlen"]), gateway=s["pod_gateway"], mtu=mtu)
                          for p in node.pods])
        # podnet.fabric.pod_netns's pods option: every pod of the node in one call.
        plan["pod_netns"] = [dict((k, p[k]) for k in ("name", "address", "host_ifname", "gateway", "mtu"))
                             for p in plan["pods"]]
        plan["pod_netns_absent"] = [dict(name=p["name"], host_ifname=p["host_ifname"], state="absent") for p in node.pods]
        routes = [dict(dst=p["ip"] + "/32", dev=p["host_ifname"], scope="link") for p in node.pods]
        tunnel_peers = []
        for peer in self.peers(name):
            direct = self.mode == "host-gw" or (s["direct_routing"] and self.on_link(name, peer.name, facts))
            if direct:
                routes.append(dict(dst=peer.pod_cidr, via=peer.node_ip, dev=iface, onlink=True))
            elif self.mode == "ipip":
                routes.append(dict(dst=peer.pod_cidr, via=peer.node_ip, dev=s["ipip_device"], onlink=True))
                tunnel_peers.append(peer)
            else:
                routes.append(dict(dst=peer.pod_cidr, via=peer.tunnel_ip, dev=s["vxlan_device"], onlink=True))
                tunnel_peers.append(peer)
        plan["routes"] = routes
        plan["tunnel"] = None
        plan["fdb"] = None
        # Devices of the modes not in use are removed (only if they are podnet's kind).
        plan["absent_tunnels"] = [dict(name=s["ipip_device"], kind="ipip"), dict(name=s["vxlan_device"], kind="vxlan")]
        if self.mode == "ipip":
            plan["tunnel"] = dict(name=s["ipip_device"], kind="ipip", local=node.node_ip, ttl=s["ipip_ttl"],
                                  mtu=mtu, addresses=[node.tunnel_ip + "/32"])
        elif self.mode == "vxlan":
            strategy = s["vxlan_fdb"]
            tunnel = dict(name=s["vxlan_device"], kind="vxlan", vni=s["vxlan_vni"], port=s["vxlan_port"],
                          local=node.node_ip, dev=iface, learning=strategy != "static", mac=node.vtep_mac,
                          mtu=mtu, addresses=[node.tunnel_ip + "/32"])
            if strategy == "multicast":
                tunnel["group"] = s["vxlan_group"]
            plan["tunnel"] = tunnel
            if strategy == "static":
                plan["fdb"] = dict(device=s["vxlan_device"],
                                   neighbors=[dict(ip=p.tunnel_ip, mac=p.vtep_mac) for p in tunnel_peers],
                                   entries=[dict(mac=p.vtep_mac, dst=p.node_ip) for p in tunnel_peers])
            elif strategy == "flood":
                plan["fdb"] = dict(device=s["vxlan_device"], neighbors=[],
                                   entries=[dict(mac="00:00:00:00:00:00", dst=p.node_ip) for p in tunnel_peers])
            else:
                plan["fdb"] = dict(device=s["vxlan_device"], neighbors=[], entries=[])
        if plan["tunnel"]:
            plan["absent_tunnels"] = [t for t in plan["absent_tunnels"] if t["kind"] != plan["tunnel"]["kind"]]
        # The node told which ipip/vxlan devices exist: only those need a call to go.
        existing = facts[name].get("tunnels")
        if existing is not None:
            plan["absent_tunnels"] = [t for t in plan["absent_tunnels"] if existing.get(t["name"]) == t["kind"]]
        # Traffic this node forwards is always to or from its own pods.
        plan["devices"] = dict(ipip=s["ipip_device"], vxlan=s["vxlan_device"])
        plan["forward_cidr"] = node.pod_cidr
        plan["encap_peers"] = [p.node_ip for p in tunnel_peers]
        if plan["tunnel"] and s["tx_checksum_offload"] is not None:
            plan["tunnel"]["tx_checksum_offload"] = s["tx_checksum_offload"]
        plan.update(self._netfilter_plan(node))
        plan["warnings"] = self._warnings(name, plan, facts[name])
        return plan

    def _netfilter_plan(self, node):
        """podnet's iptables chains for a node, for one podnet.fabric.iptables_chain task (``iptables``).

        The forward chain, jumped to first from FORWARD: replies first (conntrack), then the
        policy chain when there is one, then this node's pods out and in (traffic a node forwards
        is always to or from its own pods).
        The policy chain: a NEW-connection DROP per podnet_policy entry that involves a pod of
        this node; no entry, no chain.
        The INPUT guard, in ipip and vxlan modes: encapsulated packets (IP protocol 4, or UDP to
        the VXLAN port) are accepted from the other nodes only and dropped from anyone else. The
        kernel decapsulates whatever reaches a one-to-many tunnel, so without it any host on the
        underlay could inject packets "from" any pod. host-gw: no chain.
        """
        s = self.settings
        prefix = _chain_prefix(s["iptables_chain"])
        input_chain, policy_chain = prefix + "-INPUT", prefix + "-POLICY"
        match = {"ipip": dict(protocol="4"), "vxlan": dict(protocol="udp", destination_port=s["vxlan_port"])}
        guard = []
        if self.mode in match:
            for peer in self.peers(node.name):
                label = " " + peer.name if _COMMENT_SAFE_RE.match(peer.name) else ""
                guard.append(dict(match[self.mode], source=peer.node_ip, jump="ACCEPT", comment="podnet peer" + label))
            guard.append(dict(match[self.mode], jump="DROP", comment="podnet guard"))
        policy = [dict(source=e["from_ip"], destination=e["to_ip"], ctstate=["NEW"], jump="DROP",
                       comment="podnet policy %s -> %s" % (e["from"], e["to"]))
                  for e in s["policy"] if node.name in (e["from_node"], e["to_node"])]
        forward = ([dict(ctstate=["ESTABLISHED", "RELATED"], jump="ACCEPT", comment="podnet replies")]
                   + ([dict(jump=policy_chain, comment="podnet")] if policy else [])
                   + [dict(source=node.pod_cidr, jump="ACCEPT", comment="podnet pods out"),
                      dict(destination=node.pod_cidr, jump="ACCEPT", comment="podnet pods in")])
        chains = [dict(name=s["iptables_chain"], parent="FORWARD", position=1, rules=forward, state="present"),
                  dict(name=policy_chain, rules=policy, state="present" if policy else "absent"),
                  dict(name=input_chain, parent="INPUT", position=1, rules=guard,
                       state="present" if guard else "absent")]
        return dict(input_chain=input_chain, guard=guard, policy_chain=policy_chain, policy=policy, iptables=chains)

    @staticmethod
    def _warnings(name, plan, fact):
        """Preflight warnings about reverse-path filtering where pod traffic enters the node: the
        underlay, the tunnel device and the pods' veths. The effective value is the larger of
        conf.all and the interface's own (a device not made yet will take conf.default).
        Loose (2): traffic flows, but a pod can send with another pod's address, so rules that
        match on addresses (podnet_policy, the accepts) cannot tell which pod sent a packet.
        Strict (1): fine for podnet's symmetric routes, except where a peer reaches this node on
        another interface than the route back; on the pods' veths it is good (anti-spoofing)."""
        rp = fact.get("rp_filter") or {}
        if not rp:
            return []
        pods = [p["host_ifname"] for p in plan["pods"]]
        where = [plan["iface"]] + ([plan["tunnel"]["name"]] if plan["tunnel"] else []) + pods
        value = dict((iface, max(rp.get("all", 0), rp.get(iface, rp.get("default", 0)))) for iface in where)
        loose = [iface for iface in where if value[iface] == 2]
        strict = [iface for iface in where if value[iface] == 1 and iface not in pods]
        warnings = []
        if loose:
            warnings.append(
                "%s: rp_filter is loose (2) on %s (all=%s, default=%s). Pod traffic flows, but a pod can send with "
                "another pod's address, so podnet_policy and the accept rules, which match on addresses, cannot "
                "tell which pod sent a packet (Calico refuses to run with loose for this reason). podnet leaves it "
                "to you: net.ipv4.conf.all.rp_filter=0 with 1 on the pods' veths keeps pods honest."
                % (name, ", ".join(loose), rp.get("all", 0), rp.get("default", 0)))
        if strict:
            warnings.append(
                "%s: rp_filter is strict (1) on %s. podnet's routes are symmetric, so this is fine unless a peer "
                "reaches this node on another interface than this node's route back to it (for example "
                "podnet_direct_routing between nodes whose underlay prefixes differ): such pod traffic is dropped."
                % (name, ", ".join(strict)))
        return warnings

    def verify_plan(self, name, facts):
        """What ``playbooks/verify.yml`` checks from this node.

        ``probes``: every local pod to every other pod, the node to every remote pod, and a
        path-MTU pair (MTU-28 bytes with DF passes, one byte more fails).  ``capture``: one
        pod-to-pod ping, from the first node's first pod to a pod of a peer reached through
        the tunnel when there is one, captured where it leaves the sender.
        """
        node = self.node(name)
        all_pods = [(n, p) for n in self.nodes for p in n.pods]
        probes = []
        for pod in node.pods:
            # A pair podnet_policy denies must not get through.
            probes += [dict(src=pod["name"], dst=p["ip"], **({"expect": False} if self.denied(pod["name"], p["ip"]) else {}))
                       for n, p in all_pods if p["name"] != pod["name"]]
        probes += [dict(src="", dst=p["ip"]) for n, p in all_pods if n.name != name]
        plan = self.node_plan(name, facts)
        encap = set(plan["encap_peers"])
        remote = [(n, p) for n, p in all_pods if n.name != name]
        remote.sort(key=lambda item: item[0].node_ip not in encap)
        remote = [(n, p) for n, p in remote if not (node.pods and self.denied(node.pods[0]["name"], p["ip"]))]
        if node.pods and remote:
            mtu = plan["mtu"]
            target = remote[0][1]["ip"]
            probes.append(dict(src=node.pods[0]["name"], dst=target, size=mtu - 28, df=True))
            probes.append(dict(src=node.pods[0]["name"], dst=target, size=mtu - 27, df=True, expect=False))
        capture = None
        # The first node whose first pod may reach some remote pod (podnet_policy can deny some).
        sender = next((n for n in self.nodes if n.pods and any(
            not self.denied(n.pods[0]["name"], p["ip"]) for m, p in all_pods if m.name != n.name)), None)
        if sender is not None:
            sender_plan = self.node_plan(sender.name, facts)
            targets = [(n, p) for n, p in all_pods if n.name != sender.name]
            targets.sort(key=lambda item: item[0].node_ip not in set(sender_plan["encap_peers"]))
            targets = [(n, p) for n, p in targets if not self.denied(sender.pods[0]["name"], p["ip"])]
            if targets:
                receiver, pod = targets[0]
                src_pod = sender.pods[0]
                tunnelled = receiver.node_ip in sender_plan["encap_peers"]
                kind = self.mode if tunnelled else "host-gw"
                inner = "%s > %s: ICMP echo request" % (src_pod["ip"], pod["ip"])
                if kind == "ipip":
                    # tcpdump: "IP <node> > <node>: IP <pod> > <pod>: ICMP echo request ..."; the
                    # filter (IP protocol 4) is what proves the encapsulation.
                    bpf, expect = "ip proto 4 and src host %s" % sender.node_ip, [
                        "IP %s > %s: IP " % (sender.node_ip, receiver.node_ip), inner]
                elif kind == "vxlan":
                    bpf, expect = "udp port %d and src host %s" % (self.settings["vxlan_port"], sender.node_ip), [
                        "%s." % sender.node_ip, "> %s.%d: VXLAN" % (receiver.node_ip, self.settings["vxlan_port"]),
                        "vni %d" % self.settings["vxlan_vni"], inner]
                else:
                    bpf, expect = "icmp and src host %s" % src_pod["ip"], [inner]
                # Captured where it leaves the sender: what the mode puts on the wire.
                capture = dict(kind=kind, sender=sender.name, receiver=receiver.name, src=src_pod["name"],
                               dst=pod["ip"], iface=facts[sender.name]["iface"], filter=bpf, expect=expect)
        return dict(probes=probes, capture=capture)


def _chain_prefix(chain):
    """PODNET-FORWARD -> PODNET: podnet's other chains are PODNET-INPUT and PODNET-POLICY."""
    return chain[:-len("-FORWARD")] if chain.endswith("-FORWARD") and chain != "-FORWARD" else chain


def settings_from_vars(hostvars):
    """The tunables from a host's variables (``mode`` and ``podnet_*``)."""
    raw = {}
    if "mode" in hostvars:
        raw["mode"] = hostvars["mode"]
    for key in DEFAULTS:
        if "podnet_" + key in hostvars:
            raw[key] = hostvars["podnet_" + key]
    return raw
