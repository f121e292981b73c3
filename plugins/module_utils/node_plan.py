# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one node must hold, from the validated cluster and the node's own underlay facts.

``plan(cluster, name, fact)`` returns exactly what the roles hand to the modules, each once:

===================  ===================================================================
Only this node's own peer list grows with the cluster: one route per peer, and in vxlan one
neighbour and one FDB entry per tunnel peer, and in the tunnel modes one guard rule per peer.
The ``podnet.fabric.node_plan`` filter hands those lists (``routes``, ``fdb``'s entries and
neighbours, ``iptables``) to Ansible as JSON text, which the modules take as ``routes_json``,
``entries_json``, ``neighbors_json`` and ``chains_json``: Ansible templates a string at no cost
and a list of dicts entry by entry (plugins/module_utils/skeleton.py ``main``).
"""

from __future__ import annotations

from ansible_collections.podnet.fabric.plugins.module_utils import bird, netfilter, record, rp_filter, underlay

ZERO_MAC = "00:00:00:00:00:00"
# The node's kernel parameters podnet sets (podnet.fabric.node_sysctl; teardown gives them back).
SYSCTLS = {"net.ipv4.ip_forward": 1}


def direct(cluster, node, fact, peer):
    """True when ``node`` routes to ``peer`` on the underlay (host-gw, or direct routing on-link)."""
    return cluster.mode == "host-gw" or (cluster.settings["direct_routing"] and underlay.on_link(node, fact, peer))


def tunnel_peers(cluster, node, fact):
    """The peers ``node`` reaches through its tunnel device (none in host-gw and bgp)."""
    if cluster.mode in ("host-gw", "bgp"):
        return []
    return [peer for peer in cluster.peers(node.name) if not direct(cluster, node, fact, peer)]


def plan(cluster, name, fact):
    node = cluster.node(name)
    s = cluster.settings
    iface = fact["iface"]
    mtu = underlay.mtu(cluster, fact)
    pods = [dict(name=p["name"], address="%s/%d" % (p["ip"], p["prefixlen"]), host_ifname=p["host_ifname"],
                 gateway=s["pod_gateway"], mtu=mtu) for p in node.pods]
    routes = [dict(dst=p["ip"] + "/32", dev=p["host_ifname"], scope="link") for p in node.pods]
    peers = []
    # bgp: the peers' pod CIDRs come from BIRD (proto bird); podnet routes only the node's pods.
    for peer in cluster.peers(name) if cluster.mode != "bgp" else []:
        if direct(cluster, node, fact, peer):
            routes.append(dict(dst=peer.pod_cidr, via=peer.node_ip, dev=iface, onlink=True))
        elif cluster.mode == "ipip":
            routes.append(dict(dst=peer.pod_cidr, via=peer.node_ip, dev=s["ipip_device"], onlink=True))
            peers.append(peer)
        else:
            routes.append(dict(dst=peer.pod_cidr, via=peer.tunnel_ip, dev=s["vxlan_device"], onlink=True))
            peers.append(peer)
    devices = [dict(name=s["ipip_device"], kind="ipip"), dict(name=s["vxlan_device"], kind="vxlan")]
    tunnel = _tunnel(cluster, node, iface, mtu)
    sysctl_file = "%s/%s-sysctl.json" % (s["state_dir"].rstrip("/"), name)
    chains = netfilter.names(cluster)
    # What the node's record (plugins/module_utils/record.py) lists and this run does not make: pods
    # dropped from the inventory, devices and chains under names since renamed, the sysctls saved
    # in a previous state directory. They go the same way as the rest (teardown too).
    record_file = record.path(s["record_dir"], name)
    previous = record.check(fact.get("record"), "host %s: %s" % (name, record_file))
    gone = record.leftovers(previous, devices, chains, node.pods, sysctl_file)
    # The state directories renamed since (where the record's sysctl file is).
    old_dirs = [old.rsplit("/", 1)[0] or "/" for old in gone["sysctl_files"]]
    devices += gone["devices"]
    # A pod whose host_ifname changed: its earlier veth goes (pod_netns ``replaces``), the namespace stays.
    for item in pods:
        if item["name"] in gone["veths"]:
            item["replaces"] = [gone["veths"][item["name"]]]
    # A pod that left the inventory: its namespace goes only if this node's veth leads into it.
    pods += [dict(p, state="absent", wired_only=True) for p in gone["pods"]]
    gone_chains = [dict(name=c, state="absent") for c in gone["chains"]]
    # Devices of the modes not in use go (only if they are podnet's kind), and only those the node
    # told node_facts it has need a call.
    existing = fact.get("tunnels")
    absent = [d for d in devices if not (tunnel and d["kind"] == tunnel["kind"])
              and (existing is None or existing.get(d["name"]) == d["kind"])]
    # The mode's own device renamed: ip_tunnel deletes the old one before it makes the new one (the
    # kernel refuses two with the same VNI and port, or the same endpoints).
    replaces = [d["name"] for d in gone["devices"] if tunnel and d["kind"] == tunnel["kind"]
                and (existing is None or existing.get(d["name"]) == d["kind"])]
    if replaces:
        tunnel["replaces"] = replaces
    held = _teardown_devices(devices, existing, fact, kmod_file(s, name), old_dirs)
    result = dict(mode=cluster.mode, mtu=mtu, pods=pods, routes=routes, tunnel=tunnel,
                  fdb=_fdb(cluster, peers), devices=held, absent_tunnels=absent,
                  iptables=netfilter.chains(cluster, node) + gone_chains,
                  iptables_absent=[dict(name=c, state="absent") for c in chains] + gone_chains,
                  # During a mode switch the node role writes this: the guard also covers the old
                  # mode's device; the cleanup role deletes the device, then writes ``iptables``.
                  iptables_switch=netfilter.chains(cluster, node, [d["kind"] for d in absent]) + gone_chains
                  if absent else None,
                  # The node role's kernel parameters; the boot replay (script.py) writes them too.
                  sysctls=dict(SYSCTLS), iface=iface,
                  sysctl_file=sysctl_file, sysctl_moved_from=gone["sysctl_files"],
                  record_file=record_file,
                  # The run lock's file (roles/lock takes it, before this plan exists, under the same
                  # podnet_state_dir); node_record gives it back as a run's last step.
                  lock_file="%s/%s.lock" % (s["state_dir"].rstrip("/"), name),
                  record=record.build(name, tunnel, chains, node.pods, sysctl_file, SYSCTLS),
                  # The node's commands as a script (script.py), kept for the boot replay.
                  replay_file="%s/%s-replay.sh" % (s["state_dir"].rstrip("/"), name),
                  # The script in a state directory renamed since (the record's old sysctl file's).
                  replay_moved_from=["%s/%s-replay.sh" % (old, name) for old in old_dirs],
                  # The other files podnet keeps there (podnet.fabric.state_files moves them): the
                  # kernel modules an ipip device loaded (ip_tunnel) and the CNI plugin's record.
                  state_moved_from=old_dirs, state_files=[kmod_file(s, name).rsplit("/", 1)[1], "%s-cni.json" % name])
    result["warnings"] = rp_filter.warnings(name, iface, tunnel and tunnel["name"],
                                            [p["host_ifname"] for p in node.pods], fact)
    # bgp needs only this node's own fact (a peer is on its subnet when its node_ip is).
    result["bgp"] = bird.node_bgp(cluster, name, {name: fact}, cluster.bgp_peers, strict=False) \
        if cluster.mode == "bgp" else None
    result["bird_absent"] = _bird_absent(cluster, name, fact, old_dirs)
    return result


def kmod_file(settings, name):
    """Where ip_tunnel keeps the kernel modules an ipip device of node ``name`` loaded."""
    return "%s/%s-kmod.json" % (settings["state_dir"].rstrip("/"), name)


def _teardown_devices(devices, existing, fact, kmod, old_dirs):
    """The devices teardown removes, one ip_tunnel call each: podnet's (name and kind) that the node
    holds (node_facts' ``tunnels``), and the ipip device also when the node keeps the kernel modules
    an ipip device loaded (node_facts' ``files``: ip_tunnel unloads them, so tunl0 goes too). Unknown
    (no facts, or a renamed state directory whose files were not asked about): every device."""
    files = fact.get("files")
    if existing is None or files is None or old_dirs:
        return devices
    return [d for d in devices if existing.get(d["name"]) == d["kind"] or (d["kind"] == "ipip" and kmod in files)]


def _bird_absent(cluster, name, fact, old_dirs):
    """What stops podnet's BIRD (podnet.fabric.bird state=absent), or None when the node has none.

    node_facts' ``files`` lists which of the files the validate role asked about exist; only a node
    holding its BIRD config (written first, removed last) costs the call. Unknown (no ``files``): asked.
    After a rename of the state directory (``old_dirs``), podnet's BIRD, if any, runs from the earlier
    one (its socket and pid file cannot move): that one is stopped, in any mode (bgp starts it again
    from the new directory); asked once, as the record then names the new directory.
    """
    gone = bird.absent(cluster, name)
    if old_dirs:
        return dict(gone, **bird.paths(old_dirs[0], name))
    files = fact.get("files")
    return gone if files is None or gone["config_file"] in files else None


def _tunnel(cluster, node, iface, mtu):
    """The ipip or vxlan device's wanted state (podnet.fabric.ip_tunnel's options); None in host-gw."""
    s = cluster.settings
    if cluster.mode == "ipip":
        tunnel = dict(name=s["ipip_device"], kind="ipip", local=node.node_ip, ttl=s["ipip_ttl"],
                      mtu=mtu, addresses=[node.tunnel_ip + "/32"])
    elif cluster.mode == "vxlan":
        tunnel = dict(name=s["vxlan_device"], kind="vxlan", vni=s["vxlan_vni"], port=s["vxlan_port"],
                      local=node.node_ip, dev=iface, learning=s["vxlan_fdb"] != "static", mac=node.vtep_mac,
                      mtu=mtu, addresses=[node.tunnel_ip + "/32"])
        if s["vxlan_fdb"] == "multicast":
            tunnel["group"] = s["vxlan_group"]
    else:
        return None
    if s["tx_checksum_offload"] is not None:
        tunnel["tx_checksum_offload"] = s["tx_checksum_offload"]
    return tunnel


def _fdb(cluster, peers):
    """vxlan: per tunnel peer, in flannel's order, a neighbour (peer's tunnel address -> its VTEP
    MAC) and an FDB entry (that MAC -> the peer's node IP) with ``static``; the all-zero flood
    entries with ``flood``; nothing with ``multicast`` (the group learns). None unless vxlan."""
    if cluster.mode != "vxlan":
        return None
    device, strategy = cluster.settings["vxlan_device"], cluster.settings["vxlan_fdb"]
    if strategy == "static":
        return dict(device=device, neighbors=[dict(ip=p.tunnel_ip, mac=p.vtep_mac) for p in peers],
                    entries=[dict(mac=p.vtep_mac, dst=p.node_ip) for p in peers])
    if strategy == "flood":
        return dict(device=device, neighbors=[], entries=[dict(mac=ZERO_MAC, dst=p.node_ip) for p in peers])
    return dict(device=device, neighbors=[], entries=[])
