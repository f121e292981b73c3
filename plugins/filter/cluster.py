# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that expose podnet's cluster model (plugins/module_utils/model.py) to roles."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.podnet.fabric.plugins.module_utils import model
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

_NODE_VARS = ("node_ip", "pod_cidr", "pods", "node_iface")


def _cluster(hostvars, hosts):
    hosts = sorted(hosts or [])
    if not hosts:
        raise AnsibleFilterError("podnet: the inventory group 'nodes' is empty")
    settings = None
    for host in hosts:
        mine = model.settings_from_vars(hostvars[host])
        if settings is None:
            settings, first = mine, host
        elif mine != settings:
            keys = sorted(k for k in set(mine) | set(settings) if mine.get(k) != settings.get(k))
            raise AnsibleFilterError("podnet: host %s: %s differ(s) from host %s; cluster settings must agree"
                                     % (host, ", ".join(("podnet_" + k) if k != "mode" else k for k in keys), first))
    data = dict((host, dict((k, hostvars[host].get(k)) for k in _NODE_VARS)) for host in hosts)
    try:
        return model.Cluster.from_inventory(data, settings)
    except PodnetError as exc:
        raise AnsibleFilterError("podnet: %s" % exc)


def _facts(hostvars, hosts):
    return dict((host, hostvars[host].get("podnet_underlay")) for host in hosts)


def validate_inventory(hosts, hostvars):
    """``groups.nodes | podnet.fabric.validate_inventory(hostvars)``: the static checks; returns the mode."""
    return _cluster(hostvars, hosts).mode


def validate_underlay(hosts, hostvars, read=None):
    """The checks that need the nodes' ``podnet_underlay`` facts; returns True.

    ``read`` (``ansible_play_hosts``): the nodes whose facts this run read. The others (unreachable,
    or outside ``--limit``) are checked only as peers, from the inventory. Default: every node.
    """
    cluster = _cluster(hostvars, hosts)
    read = None if read is None else [host for host in hosts if host in read]
    try:
        cluster.check_underlay(_facts(hostvars, read if read is not None else hosts), read)
    except PodnetError as exc:
        raise AnsibleFilterError("podnet: %s" % exc)
    return True


def node_plan(host, hosts, hostvars):
    """``inventory_hostname | podnet.fabric.node_plan(groups.nodes, hostvars)``: what this node must hold."""
    cluster = _cluster(hostvars, hosts)
    try:
        return cluster.node_plan(host, _facts(hostvars, hosts))
    except PodnetError as exc:
        raise AnsibleFilterError("podnet: %s" % exc)


def verify_plan(host, hosts, hostvars):
    """``inventory_hostname | podnet.fabric.verify_plan(groups.nodes, hostvars)``: probes and the capture."""
    cluster = _cluster(hostvars, hosts)
    try:
        return cluster.verify_plan(host, _facts(hostvars, hosts))
    except PodnetError as exc:
        raise AnsibleFilterError("podnet: %s" % exc)


class FilterModule(object):
    def filters(self):
        return dict(validate_inventory=validate_inventory, validate_underlay=validate_underlay,
                    node_plan=node_plan, verify_plan=verify_plan)
