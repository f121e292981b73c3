# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet's iptables chains for one node: one podnet.fabric.iptables_chain ``chains`` list.

* The forward chain (``podnet_iptables_chain``, PODNET-FORWARD), jumped to first from FORWARD:
  replies first (conntrack), then the policy chain when there is one, then this node's pods out
  and in (traffic a node forwards is always to or from its own pods).
* The policy chain (PODNET-POLICY): a NEW-connection DROP per podnet_policy entry that involves a
  pod of this node; no entry, no chain.
* The encapsulation guard (PODNET-INPUT), jumped to first from INPUT, in ipip and vxlan modes:
  encapsulated packets (IP protocol 4, or UDP to the VXLAN port) are accepted from the other
  nodes only and dropped from anyone else. The kernel decapsulates whatever reaches a
  one-to-many tunnel, so without it any host on the underlay could inject packets "from" any
  pod. host-gw: no chain.
"""

from __future__ import annotations

import re

_COMMENT_SAFE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def by_name(chains):
    """``{name: chain}`` of a ``chains`` list."""
    return dict((c["name"], c) for c in chains)


def guard(cluster, node):
    """The INPUT guard's rules: accept the mode's encapsulation from each peer, drop the rest."""
    match = {"ipip": dict(protocol="4"),
             "vxlan": dict(protocol="udp", destination_port=cluster.settings["vxlan_port"])}.get(cluster.mode)
    if match is None:
        return []
    rules = []
    for peer in cluster.peers(node.name):
        label = " " + peer.name if _COMMENT_SAFE_RE.match(peer.name) else ""
        rules.append(dict(match, source=peer.node_ip, jump="ACCEPT", comment="podnet peer" + label))
    rules.append(dict(match, jump="DROP", comment="podnet guard"))
    return rules


def policy(cluster, node):
    """The policy chain's rules: podnet_policy's entries that involve a pod of this node."""
    return [dict(source=e["from_ip"], destination=e["to_ip"], ctstate=["NEW"], jump="DROP",
                 comment="podnet policy %s -> %s" % (e["from"], e["to"]))
            for e in cluster.settings["policy"] if node.name in (e["from_node"], e["to_node"])]


def chains(cluster, node):
    """The three chains, each present or absent (the module orders them itself)."""
    drops, accepts = policy(cluster, node), guard(cluster, node)
    forward = ([dict(ctstate=["ESTABLISHED", "RELATED"], jump="ACCEPT", comment="podnet replies")]
               + ([dict(jump=cluster.policy_chain, comment="podnet")] if drops else [])
               + [dict(source=node.pod_cidr, jump="ACCEPT", comment="podnet pods out"),
                  dict(destination=node.pod_cidr, jump="ACCEPT", comment="podnet pods in")])
    return [dict(name=cluster.settings["iptables_chain"], parent="FORWARD", position=1, rules=forward,
                 state="present"),
            dict(name=cluster.policy_chain, rules=drops, state="present" if drops else "absent"),
            dict(name=cluster.input_chain, parent="INPUT", position=1, rules=accepts,
                 state="present" if accepts else "absent")]
