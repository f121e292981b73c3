# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab router as a top-of-rack BGP speaker (plugins/module_utils/bird.py tor_config)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

import json

from ansible_collections.podnet.fabric.plugins.filter.cluster import _inventory
from ansible_collections.podnet.fabric.plugins.module_utils import bird
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def bgp_tor(hosts, hostvars, router, state_dir="/var/lib/podnet"):
    """``groups.nodes | podnet.fabric.bgp_tor(hostvars, ROUTER)``: the router's BIRD, or None when no
    node names a router in ``podnet_bgp_peers``."""
    if not any(hostvars[h].get("podnet_bgp_peers") for h in hosts or []):
        return None   # (nor is a lab without peers checked as a podnet cluster: it may be a bare lab)
    cluster = _inventory(hosts, hostvars)
    try:
        peers = cluster.bgp_peers if cluster.mode == "bgp" else \
            bird.check_cluster(cluster, dict((h, hostvars[h].get("podnet_bgp_peers")) for h in hosts))
        if not any(peers.values()):
            return None
        return dict(bird.paths(state_dir, router), netns=router, config=bird.tor_config(cluster, peers))
    except PodnetError as exc:
        raise AnsibleFilterError("podnet: %s" % exc)


def bird_files(host, state_dir="/var/lib/podnet"):
    """``inventory_hostname | podnet.fabric.bird_files(podnet_state_dir)``: a node's BIRD config, socket, pid file."""
    return bird.paths(state_dir, host)


def node_bird_files(data, host):
    """``validate_cluster | podnet.fabric.node_bird_files(inventory_hostname)``: this node's BIRD
    files (``bird_files``) under the validated cluster's ``state_dir``; the validate role asks
    podnet.fabric.node_facts whether the config exists, so only a node that has podnet's BIRD stops it."""
    if isinstance(data, str):
        data = json.loads(data)
    try:
        state_dir = data["settings"]["state_dir"]
    except (TypeError, KeyError):
        raise AnsibleFilterError("podnet: expected the result of podnet.fabric.cluster (validate_cluster)")
    return bird.paths(state_dir, host)


class FilterModule(object):
    def filters(self):
        return dict(bgp_tor=bgp_tor, bird_files=bird_files, node_bird_files=node_bird_files)
