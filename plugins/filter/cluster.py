# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that expose podnet's cluster model (plugins/module_utils/model.py) to the roles.

The validate role calls them in this order (see playbooks/plan.yml):

1. ``groups.nodes | podnet.fabric.cluster(hostvars)``, once per run (``run_once``): the whole
   inventory validated, returned as JSON text that every node then reads (``validate_cluster``):
   one ``json.loads`` per reader instead of Ansible templating a thousand nested dicts;
2. ``validate_cluster | podnet.fabric.check_underlay(hostvars, ansible_play_hosts)``, once:
   the underlay of every node read can carry the mode;
3. ``podnet.fabric.plan`` (plugins/action/plan.py, ``node_plan`` here), per node: what this
   node must hold (``podnet_plan``), without its per-peer lists; it reads only the cluster data
   and the node's own facts;
4. ``validate_cluster | podnet.fabric.peer_list(inventory_hostname, podnet_underlay, NAME)``, in
   the task that hands a per-peer list to a module: each node's cost grows only with its own
   peer list, and no process holds every node's list at once;
5. ``validate_cluster | podnet.fabric.node_script(inventory_hostname, podnet_underlay, path_mtu)``,
   in the one task that writes the node's replay script: the whole plan, lists too, in that call.

``podnet.fabric.verify_plan`` plans the verify role's probes the same way.
"""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.podnet.fabric.plugins.module_utils import bird, model, node_plan as planner, preflight, underlay
from ansible_collections.podnet.fabric.plugins.module_utils import script as renderer
from ansible_collections.podnet.fabric.plugins.module_utils import verify_plan as verifier
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

_NODE_VARS = ("node_ip", "pod_cidr", "pods", "node_iface", "podnet_bgp_peers")


def _podnet(func, *args):
    try:
        return func(*args)
    except PodnetError as exc:
        raise AnsibleFilterError("podnet: %s" % exc)


def _inventory(hosts, hostvars):
    """The validated Cluster from the inventory group ``nodes`` (every host's variables read once)."""
    hosts = sorted(hosts or [])
    if not hosts:
        raise AnsibleFilterError("podnet: the inventory group 'nodes' is empty")
    settings, data = None, {}
    for host in hosts:
        hv = hostvars[host]
        mine = model.settings_from_vars(hv)
        if settings is None:
            settings, first = mine, host
        elif mine != settings:
            keys = sorted(k for k in set(mine) | set(settings) if mine.get(k) != settings.get(k))
            raise AnsibleFilterError("podnet: host %s: %s differ(s) from host %s; cluster settings must agree"
                                     % (host, ", ".join(("podnet_" + k) if k != "mode" else k for k in keys), first))
        data[host] = dict((k, hv.get(k)) for k in _NODE_VARS)
    return _podnet(model.Cluster.from_inventory, data, settings)


def _cluster(data):
    """The Cluster from ``cluster``'s result (as data, or as JSON text)."""
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, dict) or "nodes" not in data:
        raise AnsibleFilterError("podnet: expected the result of podnet.fabric.cluster (the validate role's "
                                 "validate_cluster), got %s" % type(data).__name__)
    return model.Cluster.from_data(data)


def cluster(hosts, hostvars):
    """``groups.nodes | podnet.fabric.cluster(hostvars)``: the whole inventory validated, as JSON
    text (``Cluster.to_data``); ``from_json`` gives the data (``settings``, ``nodes``)."""
    return json.dumps(_inventory(hosts, hostvars).to_data(), sort_keys=True, separators=(",", ":"))


def validate_inventory(hosts, hostvars):
    """``groups.nodes | podnet.fabric.validate_inventory(hostvars)``: the static checks; returns the mode."""
    return _inventory(hosts, hostvars).mode


def check_underlay(data, hostvars, read=None):
    """The checks that need the nodes' ``podnet_underlay`` facts; returns True.

    ``read`` (``ansible_play_hosts``): the nodes whose facts this run read. The others (unreachable,
    or outside ``--limit``) are checked only as peers, from the inventory. Default: every node.
    """
    the = _cluster(data)
    names = [node.name for node in the.nodes]
    read = names if read is None else [name for name in names if name in read]
    facts = dict((name, hostvars[name].get("podnet_underlay")) for name in read)
    _podnet(underlay.check, the, facts, read)
    return True


def _underlay(host, fact, path_mtu=None):
    """The node's underlay fact, with the pre-flight probe's narrower path MTU (``path_mtu``: by host,
    ``preflight_verdict.path_mtu``) when it found one."""
    if not isinstance(fact, dict) or not fact.get("iface"):
        raise AnsibleFilterError("podnet: host %s: its underlay was not read (podnet.fabric.node_facts)" % host)
    if (path_mtu or {}).get(host):
        fact = dict(fact, path_mtu=int(path_mtu[host]))
    return fact


def _plan(data, host, fact, path_mtu=None):
    """The whole plan of ``host`` (node_plan.py); the last one is kept, so the lists one task asks
    for (vxlan_fdb's entries and neighbours) are planned once."""
    fact = _underlay(host, fact, path_mtu)
    key = (host, data)
    if _LAST[0] != key or _LAST[1] != fact:
        _LAST[:] = [key, fact, _podnet(planner.plan, _cluster(data), host, fact)]
    return _LAST[2]


_LAST = [None, None, None]


def node_plan(data, host, fact, path_mtu=None):
    """``validate_cluster | podnet.fabric.node_plan(inventory_hostname, podnet_underlay, path_mtu)``: what
    this node must hold (node_plan.py) without the lists that grow with the cluster (``PEER_LISTS``):
    ``fdb`` keeps its device, ``iptables_switch`` says whether a mode switch is under way. Those lists
    are planned by ``peer_list`` in the task that hands them to a module (and by ``node_script`` for
    the replay script), so no process keeps every node's peer list (N^2 entries) at once.
    ``path_mtu``: the pre-flight probe's narrower path MTUs by host (``preflight_verdict.path_mtu``)."""
    plan = _plan(data, host, fact, path_mtu)
    return dict(plan, routes=None, iptables=None, iptables_switch=bool(plan["iptables_switch"]),
                fdb=plan["fdb"] and dict(device=plan["fdb"]["device"]))


# The plan's lists that grow with the cluster, by the name ``peer_list`` takes: one route per peer,
# in vxlan one FDB and one neighbour entry per tunnel peer, the chains with the guard's rule per peer
# (``iptables_switch``: during a mode switch, the guard also covers the previous mode's device).
PEER_LISTS = dict(routes=lambda p: p["routes"], iptables=lambda p: p["iptables"],
                  iptables_switch=lambda p: p["iptables_switch"] or p["iptables"],
                  fdb_entries=lambda p: p["fdb"]["entries"], fdb_neighbors=lambda p: p["fdb"]["neighbors"])


def peer_list(data, host, fact, name):
    """``validate_cluster | podnet.fabric.peer_list(inventory_hostname, podnet_underlay, 'routes')``:
    one of this node's lists that grow with the cluster (``PEER_LISTS``), as the JSON text the
    modules take (``routes_json``, ``chains_json``, ``entries_json``, ``neighbors_json``): Ansible
    templates a string at no cost, a list of dicts entry by entry (skeleton.main). No list depends
    on the path MTU, so the pre-flight's is not asked for."""
    if name not in PEER_LISTS:
        raise AnsibleFilterError("podnet: peer_list: %r is none of %s" % (name, ", ".join(sorted(PEER_LISTS))))
    return json.dumps(PEER_LISTS[name](_plan(data, host, fact)), separators=(",", ":"))


def node_script(data, host, fact=None, path_mtu=None):
    """The POSIX sh script that builds this node from scratch (script.py), the boot replay's and
    playbooks/render.yml's one text: ``validate_cluster | podnet.fabric.node_script(inventory_hostname,
    podnet_underlay, path_mtu)`` plans the node whole (its peer lists too) in this one call; a whole
    plan (``node_plan.plan``) renders as given."""
    if isinstance(data, dict) and data.get("routes") is not None:
        return _podnet(renderer.render, data, host)
    if isinstance(data, dict) and "routes" in data:
        raise AnsibleFilterError("podnet: host %s: podnet_plan holds no peer lists; give node_script the "
                                 "validated cluster (validate_cluster), the node's underlay and path_mtu" % host)
    if fact is None:
        raise AnsibleFilterError("podnet: host %s: expected the node's plan (podnet_plan)" % host)
    return _podnet(renderer.render, _plan(data, host, fact, path_mtu), host)


def verify_plan(data, host, mtu, hostvars):
    """``validate_cluster | podnet.fabric.verify_plan(inventory_hostname, podnet_plan.mtu, hostvars)``:
    this node's probes and, for the capture, the sender chosen among the nodes read."""
    def fact_of(name):
        return hostvars[name].get("podnet_underlay") if name in hostvars else None
    return _podnet(verifier.plan, _cluster(data), host, int(mtu), fact_of)


def _read(the, read):
    return [node.name for node in the.nodes if node.name in read]


def node_files(data, host):
    """``validate_cluster | podnet.fabric.node_files(inventory_hostname)``: the files podnet.fabric.node_facts
    tells the plan about (``files``): podnet's BIRD config, so only a node that has one stops its BIRD,
    and the kernel modules an ipip device loaded, so teardown asks ip_tunnel to unload them only there."""
    if isinstance(data, str):
        data = json.loads(data)
    try:
        settings = data["settings"]
    except (TypeError, KeyError):
        raise AnsibleFilterError("podnet: expected the result of podnet.fabric.cluster (validate_cluster)")
    return [bird.paths(settings["state_dir"], host)["config_file"], planner.kmod_file(settings, host)]


def preflight_plan(data, host, hostvars, read, token):
    """``validate_cluster | podnet.fabric.preflight_plan(inventory_hostname, hostvars, ansible_play_hosts,
    token)``: podnet.fabric.preflight's options for this node (whom it probes, with what)."""
    the = _cluster(data)

    def fact_of(name):
        return hostvars[name]["podnet_underlay"]

    return _podnet(preflight.plan, the, host, fact_of, _read(the, read), token, the.settings["preflight_peers"])


def preflight_verdict(data, hostvars, read, token):
    """``validate_cluster | podnet.fabric.preflight_verdict(hostvars, ansible_play_hosts, token)``, once:
    the matrix (``lines``), why the run must stop (``errors``), the narrower path MTUs (``path_mtu``)."""
    the = _cluster(data)
    read = _read(the, read)
    facts = dict((name, hostvars[name]["podnet_underlay"]) for name in read)
    received = dict((name, (hostvars[name].get("preflight_collect") or {}).get("received")) for name in read)
    return _podnet(preflight.verdict, the, facts, received, read, token, the.settings["preflight_peers"])


class FilterModule(object):
    def filters(self):
        return dict(cluster=cluster, validate_inventory=validate_inventory, check_underlay=check_underlay,
                    node_plan=node_plan, peer_list=peer_list, node_script=node_script, verify_plan=verify_plan,
                    preflight_plan=preflight_plan, preflight_verdict=preflight_verdict, node_files=node_files)
