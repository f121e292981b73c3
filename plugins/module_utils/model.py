# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster model: the inventory, validated once for the whole cluster.

Pure Python, no Ansible and no kernel.  Data flows one way, each step in its own file:

* here, ``Cluster.from_inventory(hosts, settings)``: what the inventory alone can tell
  (addresses, CIDRs, names, ranges, duplicates, overlaps), refused with ``PodnetError``
  naming the host and the variable; the defaults of every setting (``DEFAULTS``);
* ``underlay.py``: what only the nodes can tell (their ``node_facts``): the underlay
  interface, its subnet and MTU, a route to the pod gateway, checked against the mode;
* ``node_plan.py``: what one node must hold (pods, routes, tunnel device, FDB and
  neighbour entries), with ``netfilter.py`` (podnet's iptables chains) and
  ``rp_filter.py`` (the reverse-path filtering warnings);
* ``verify_plan.py``: what ``playbooks/verify.yml`` probes from one node.

The validated cluster travels between Ansible tasks as plain data (``to_data`` /
``from_data``): it is validated once per run and every node plans itself from it.
"""

from __future__ import annotations

import bisect
import ipaddress

from ansible_collections.podnet.fabric.plugins.module_utils import bird, chain, pod, tunnel, validate
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

MODES = ("host-gw", "ipip", "vxlan", "bgp")
FDB_STRATEGIES = ("static", "flood", "multicast")
OVERHEAD = {"host-gw": 0, "ipip": 20, "vxlan": 50, "bgp": 0}
POD_KEYS = ("name", "ip", "host_ifname")
CHAIN_MAX = 28
# The smallest datagram every IPv4 host must accept (RFC 791): a pod MTU below it breaks ordinary
# traffic (DNS over UDP, TCP's default MSS), although the kernel accepts MTUs down to 68.
MTU_FLOOR = 576

# Every cluster setting and its default, in one place (inventory: ``mode`` and ``podnet_<key>``).
# roles/validate/meta/argument_specs.yml documents the same defaults (a unit test keeps them in step).
DEFAULTS = dict(
    mode="vxlan",
    pod_gateway=pod.DEFAULT_GATEWAY,
    vxlan_vni=100,
    vxlan_port=tunnel.DEFAULT_PORT,
    vxlan_fdb="static",
    vxlan_group="239.1.1.1",
    vxlan_device="vxlan0",
    ipip_device="mustang.tun0",
    ipip_ttl=tunnel.DEFAULT_TTL["ipip"],
    direct_routing=False,
    mtu=None,
    state_dir="/var/lib/podnet",
    record_dir="/var/lib/podnet",
    iptables_chain="PODNET-FORWARD",
    policy=[],
    tx_checksum_offload=None,
    preflight=True,
    preflight_peers=16,
    **bird.DEFAULTS
)
POLICY_ACTIONS = ("deny",)
_POLICY_KEYS = ("from", "to", "action")


def error(host, var, message):
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
    raise error(None, var, "must be true or false, not %r" % (value,))


def _check(host, var, func, *args):
    """Run a planner's validator, which names the option it was given (``var`` or a key under
    it, e.g. ``pods[0].name``); re-raise its error prefixed with the host."""
    try:
        return func(*args)
    except PodnetError as exc:
        text = str(exc)
        if not (text.startswith(var) and text[len(var):len(var) + 1] in (":", ".", "[")):
            text = "%s: %s" % (var, text)
        raise PodnetError(text if host is None else "host %s: %s" % (host, text))


def chain_prefix(name):
    """PODNET-FORWARD -> PODNET: podnet's other chains are PODNET-INPUT and PODNET-POLICY."""
    return name[:-len("-FORWARD")] if name.endswith("-FORWARD") and name != "-FORWARD" else name


class Node(object):
    """One node as validated: its addresses, pods and the names derived from them."""

    __slots__ = ("name", "node_ip", "pod_cidr", "pods", "node_iface", "tunnel_ip", "vtep_mac")

    def __init__(self, name, node_ip, pod_cidr, pods, node_iface, tunnel_ip=None, vtep_mac=None):
        self.name = name
        self.node_ip = node_ip
        self.pod_cidr = pod_cidr
        self.pods = pods
        self.node_iface = node_iface
        # The node's own address in its pod CIDR (first host): the tunnel device's /32.
        self.tunnel_ip = tunnel_ip or str(ipaddress.IPv4Network(pod_cidr).network_address + 1)
        self.vtep_mac = vtep_mac or validate.vtep_mac(node_ip)

    @property
    def network(self):
        return ipaddress.IPv4Network(self.pod_cidr)

    def to_data(self):
        return dict((key, getattr(self, key)) for key in self.__slots__)


class Cluster(object):
    """A validated podnet cluster: its nodes (sorted by name) and settings."""

    def __init__(self, nodes, settings, bgp_peers=None):
        self.nodes = nodes
        self.settings = settings
        self.bgp_peers = bgp_peers or {}   # bgp mode: {host: [router peers]} (bird.check_cluster)
        self._by_name = dict((node.name, node) for node in nodes)

    @property
    def mode(self):
        return self.settings["mode"]

    def node(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise PodnetError("host %s: is not in the group 'nodes'" % name)

    def peers(self, name):
        return [node for node in self.nodes if node.name != name]

    def pods(self):
        """Every pod of the cluster as ``(node, pod)``, in node order."""
        return [(node, one) for node in self.nodes for one in node.pods]

    def denied(self, src_pod, dst_ip):
        """True when ``podnet_policy`` drops new connections from pod ``src_pod`` to ``dst_ip``."""
        return (src_pod, dst_ip) in self.settings["_denied"]

    @property
    def input_chain(self):
        return chain_prefix(self.settings["iptables_chain"]) + "-INPUT"

    @property
    def policy_chain(self):
        return chain_prefix(self.settings["iptables_chain"]) + "-POLICY"

    # -- the data every node plans from (validated once per run) ---------------------

    def to_data(self):
        settings = dict((k, v) for k, v in self.settings.items() if not k.startswith("_"))
        return dict(settings=settings, nodes=[node.to_data() for node in self.nodes], bgp_peers=self.bgp_peers)

    @classmethod
    def from_data(cls, data):
        """The cluster ``to_data`` returned, without validating it again."""
        settings = dict(data["settings"])
        settings["_denied"] = frozenset((e["from"], e["to_ip"]) for e in settings["policy"])
        nodes = [Node(n["name"], n["node_ip"], n["pod_cidr"], n["pods"], n["node_iface"], n["tunnel_ip"],
                      n["vtep_mac"]) for n in data["nodes"]]
        return cls(nodes, settings, data.get("bgp_peers"))

    # -- the next steps, each in its own file ------------------------------------------

    def check_underlay(self, facts, read=None):
        """See ``underlay.check``."""
        from ansible_collections.podnet.fabric.plugins.module_utils import underlay
        underlay.check(self, facts, read)

    def node_plan(self, name, facts):
        """See ``node_plan.plan``; ``facts``: {host: node_facts}, only ``name``'s are read."""
        from ansible_collections.podnet.fabric.plugins.module_utils import node_plan
        return node_plan.plan(self, name, facts[name])

    def verify_plan(self, name, facts):
        """See ``verify_plan.plan``."""
        from ansible_collections.podnet.fabric.plugins.module_utils import verify_plan
        return verify_plan.plan(self, name, self.node_plan(name, facts)["mtu"], facts.get)

    # -- the inventory alone -----------------------------------------------------------

    @classmethod
    def from_inventory(cls, hosts, settings=None):
        """``hosts``: {hostname: {node_ip, pod_cidr, pods, node_iface}}; ``settings``: tunables."""
        settings = cls._settings(settings or {})
        if not hosts:
            raise PodnetError("inventory: the group 'nodes' has no hosts")
        nodes, seen_ip, seen_pod = [], {}, {}
        for name in sorted(hosts):
            nodes.append(cls._node(name, hosts[name] or {}, settings, seen_ip, seen_pod))
        cls._no_overlaps(nodes, settings)
        settings["policy"] = cls._policy(settings["policy"], nodes)
        settings["_denied"] = frozenset((e["from"], e["to_ip"]) for e in settings["policy"])
        cluster = cls(nodes, settings)
        if settings["mode"] == "bgp":
            cluster.bgp_peers = bird.check_cluster(cluster, dict((n, (hosts[n] or {}).get("podnet_bgp_peers"))
                                                                 for n in hosts))
        return cluster

    @staticmethod
    def _no_overlaps(nodes, settings):
        """Pod CIDRs overlap no other, and hold no node's IP and not the pod gateway.

        Sorted intervals instead of every pair, so a thousand nodes cost milliseconds."""
        spans = sorted((int(n.network.network_address), int(n.network.broadcast_address), n) for n in nodes)
        for (_start, end, one), (start, _end, other) in zip(spans, spans[1:]):
            if start <= end:
                first, second = sorted((one, other), key=lambda n: n.name)
                raise error(second.name, "pod_cidr", "%s overlaps %s of host %s"
                            % (second.pod_cidr, first.pod_cidr, first.name))
        starts = [span[0] for span in spans]

        def holder(address):
            index = bisect.bisect_right(starts, int(address)) - 1
            return spans[index][2] if index >= 0 and int(address) <= spans[index][1] else None

        for peer in nodes:
            node = holder(ipaddress.IPv4Address(peer.node_ip))
            if node is not None and node is not peer:
                raise error(node.name, "pod_cidr", "%s contains node_ip %s of host %s"
                            % (node.pod_cidr, peer.node_ip, peer.name))
        node = holder(ipaddress.IPv4Address(settings["pod_gateway"]))
        if node is not None:
            raise error(node.name, "pod_cidr", "%s contains the pod gateway %s (podnet_pod_gateway)"
                        % (node.pod_cidr, settings["pod_gateway"]))

    @staticmethod
    def _policy(raw, nodes):
        """``podnet_policy``: [{from: POD, to: POD, action: deny}] -> the same with both pods' IPs and nodes."""
        if not isinstance(raw, list):
            raise error(None, "podnet_policy", "must be a list of {from, to, action: deny}")
        pods = dict((p["name"], (n.name, p["ip"])) for n in nodes for p in n.pods)
        result, seen = [], {}
        for index, entry in enumerate(raw):
            var = "podnet_policy[%d]" % index
            if not isinstance(entry, dict):
                raise error(None, var, "must be a dict {from, to, action: deny}")
            _check(None, var, validate.known_keys, entry, _POLICY_KEYS, var)
            for key in ("from", "to"):
                if entry.get(key) not in pods:
                    raise error(None, "%s.%s" % (var, key), "unknown pod %r; the pods are %s"
                                % (entry.get(key), ", ".join(sorted(pods)) or "none"))
            if entry["from"] == entry["to"]:
                raise error(None, var, "from and to are both %s; a pod's traffic to itself never leaves it" % entry["to"])
            action = entry.get("action", "deny")
            if action not in POLICY_ACTIONS:
                raise error(None, "%s.action" % var, "unknown action %r; podnet knows %s (everything not denied "
                            "is allowed)" % (action, ", ".join(POLICY_ACTIONS)))
            key = (entry["from"], entry["to"])
            if key in seen:
                raise error(None, var, "%s -> %s is already podnet_policy[%d]" % (key + (seen[key],)))
            seen[key] = index
            result.append(dict(entry, action=action, from_node=pods[key[0]][0], from_ip=pods[key[0]][1],
                               to_node=pods[key[1]][0], to_ip=pods[key[1]][1]))
        return result

    @staticmethod
    def _settings(raw):
        s = dict(DEFAULTS)
        s.update(dict((k, v) for k, v in raw.items() if v is not None or k == "mtu"))
        where = None
        if s["mode"] not in MODES:
            raise error(where, "mode", "unknown mode %r; choose one of %s" % (s["mode"], ", ".join(MODES)))
        if s["vxlan_fdb"] not in FDB_STRATEGIES:
            raise error(where, "podnet_vxlan_fdb", "unknown FDB strategy %r; choose one of %s"
                        % (s["vxlan_fdb"], ", ".join(FDB_STRATEGIES)))
        s["pod_gateway"] = _check(where, "podnet_pod_gateway", validate.ipv4, s["pod_gateway"], "podnet_pod_gateway")
        s["vxlan_vni"] = _check(where, "podnet_vxlan_vni", validate.vni, s["vxlan_vni"], "podnet_vxlan_vni")
        s["vxlan_port"] = _check(where, "podnet_vxlan_port", validate.port, s["vxlan_port"], "podnet_vxlan_port")
        s["ipip_ttl"] = _check(where, "podnet_ipip_ttl", validate.ttl, s["ipip_ttl"], "podnet_ipip_ttl")
        group = _check(where, "podnet_vxlan_group", validate.ipv4, s["vxlan_group"], "podnet_vxlan_group")
        if not ipaddress.IPv4Address(group).is_multicast:
            raise error(where, "podnet_vxlan_group", "%s is not a multicast address (224.0.0.0/4)" % group)
        s["vxlan_group"] = group
        for var in ("vxlan_device", "ipip_device"):
            s[var] = _check(where, "podnet_" + var, validate.ifname, s[var], "podnet_" + var)
        if s["vxlan_device"] == s["ipip_device"]:
            raise error(where, "podnet_ipip_device", "must differ from podnet_vxlan_device")
        if s["mtu"] not in (None, ""):
            s["mtu"] = _check(where, "podnet_mtu", validate.mtu, s["mtu"], "podnet_mtu")
            if s["mtu"] < MTU_FLOOR:
                raise error(where, "podnet_mtu", "%s is below %d, the datagram size every IPv4 host must accept "
                            "(RFC 791); pods could not exchange ordinary traffic" % (s["mtu"], MTU_FLOOR))
        else:
            s["mtu"] = None
        for var in ("state_dir", "record_dir"):
            if not str(s[var]).startswith("/"):
                raise error(where, "podnet_" + var, "%r is not an absolute path" % (s[var],))
        name = _check(where, "podnet_iptables_chain", chain.chain_name, s["iptables_chain"], "podnet_iptables_chain")
        if len(chain_prefix(name) + "-POLICY") > CHAIN_MAX:
            raise error(where, "podnet_iptables_chain", "%r is too long: podnet's INPUT and policy chains are named "
                        "after it (%s-POLICY) and must fit %d characters" % (name, chain_prefix(name), CHAIN_MAX))
        s["direct_routing"] = _boolean(s["direct_routing"], "podnet_direct_routing")
        s["preflight"] = _boolean(s["preflight"], "podnet_preflight")
        s["preflight_peers"] = _check(where, "podnet_preflight_peers", validate.int_range, s["preflight_peers"],
                                      "podnet_preflight_peers", 1, 1000, "number of peers")
        if s["tx_checksum_offload"] not in (None, ""):
            s["tx_checksum_offload"] = _boolean(s["tx_checksum_offload"], "podnet_tx_checksum_offload")
        else:
            s["tx_checksum_offload"] = None
        bird.check_settings(s)
        return s

    @staticmethod
    def _node(name, hv, settings, seen_ip, seen_pod):
        for var in ("node_ip", "pod_cidr"):
            if hv.get(var) in (None, ""):
                raise error(name, var, "is required")
        node_ip = _check(name, "node_ip", validate.ipv4, hv["node_ip"], "node_ip")
        if node_ip in seen_ip:
            raise error(name, "node_ip", "%s is also the node_ip of host %s" % (node_ip, seen_ip[node_ip]))
        seen_ip[node_ip] = name
        parsed = ipaddress.IPv4Address(node_ip)
        if (parsed.is_unspecified or parsed.is_loopback or parsed.is_multicast or parsed.is_reserved
                or node_ip == "255.255.255.255"):
            raise error(name, "node_ip", "%s is not a unicast address other nodes can reach" % node_ip)
        pod_cidr = _check(name, "pod_cidr", validate.ipv4_network, hv["pod_cidr"], "pod_cidr")
        network = ipaddress.IPv4Network(pod_cidr)
        if network.is_multicast or network.is_loopback or network.is_reserved or network.is_unspecified:
            raise error(name, "pod_cidr", "%s is a multicast, loopback or reserved network, not one for pods" % pod_cidr)
        if network.prefixlen > 30:
            raise error(name, "pod_cidr", "%s is too small: it needs room for the node's address and pods" % pod_cidr)
        if parsed in network:
            raise error(name, "pod_cidr", "%s contains the node's own node_ip %s" % (pod_cidr, node_ip))
        iface = hv.get("node_iface")
        if iface not in (None, ""):
            iface = _check(name, "node_iface", validate.ifname, iface, "node_iface")
        else:
            iface = None
        node = Node(name, node_ip, pod_cidr, [], iface)
        raw_pods = hv.get("pods") or []
        if not isinstance(raw_pods, list):
            raise error(name, "pods", "must be a list of {name, ip}")
        used = {node.tunnel_ip: "the node's own tunnel address"}
        mine, ifnames = {}, {}
        for index, one in enumerate(raw_pods):
            node.pods.append(Cluster._pod(node, index, one, settings, used, mine, ifnames, seen_pod))
        return node

    @staticmethod
    def _pod(node, index, raw, settings, used, mine, ifnames, seen_pod):
        """One entry of a node's ``pods``, checked by pod_netns's own validation (the pod
        name, its derived veth name, its address in the node's pod CIDR) and against the
        rest of the cluster."""
        name, var = node.name, "pods[%d]" % index
        if not isinstance(raw, dict) or not raw.get("name") or not raw.get("ip"):
            raise error(name, var, "each pod needs a name and an ip")
        _check(name, var, validate.known_keys, raw, POD_KEYS, var)
        ip = _check(name, var + ".ip", validate.ipv4, raw["ip"], var + ".ip")
        network = node.network
        if ipaddress.IPv4Address(ip) not in network:
            raise error(name, var + ".ip", "%s is outside the node's pod_cidr %s" % (ip, node.pod_cidr))
        _check(name, var + ".ip", pod.check_address, "%s/%d" % (ip, network.prefixlen), var + ".ip")
        pod_name = _check(name, var + ".name", validate.netns_name, raw["name"], var + ".name")
        host_ifname = _check(name, var + ".host_ifname", pod.veth_name, pod_name, raw.get("host_ifname"),
                             var + ".host_ifname")
        if pod_name in mine:
            raise error(name, var + ".name", "pod %s is listed twice on this host (also pods[%d])"
                        % (pod_name, mine[pod_name]))
        mine[pod_name] = index
        if pod_name in seen_pod:
            raise error(name, var + ".name", "pod %s is also defined on host %s (pod names are namespace "
                        "names and must be unique across the cluster)" % (pod_name, seen_pod[pod_name]))
        seen_pod[pod_name] = name
        if ip in used:
            raise error(name, var + ".ip", "%s is already %s" % (ip, used[ip]))
        used[ip] = "used by pod %s" % pod_name
        if host_ifname in ifnames:
            raise error(name, var + ".host_ifname", "%s is also the host_ifname of pod %s"
                        % (host_ifname, ifnames[host_ifname]))
        ifnames[host_ifname] = pod_name
        if host_ifname in (settings["vxlan_device"], settings["ipip_device"]):
            raise error(name, var + ".host_ifname", "%s is podnet's tunnel device name" % host_ifname)
        if host_ifname == node.node_iface:
            raise error(name, var + ".host_ifname", "%s is the node's underlay interface (node_iface)" % host_ifname)
        return dict(name=pod_name, ip=ip, prefixlen=network.prefixlen, host_ifname=host_ifname)


def settings_from_vars(hostvars):
    """The tunables from a host's variables (``mode`` and ``podnet_*``)."""
    raw = {}
    if "mode" in hostvars:
        raw["mode"] = hostvars["mode"]
    for key in DEFAULTS:
        if "podnet_" + key in hostvars:
            raw[key] = hostvars["podnet_" + key]
    return raw
