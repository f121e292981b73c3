# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight warnings about reverse-path filtering where pod traffic enters a node.

Where: the underlay interface, the tunnel device and the pods' veths. The effective value is
the larger of conf.all and the interface's own (a device not made yet will take conf.default).

* Loose (2): traffic flows, but a pod can send with another pod's address, so rules that match
  on addresses (podnet_policy, the accepts) cannot tell which pod sent a packet.
* Strict (1): fine for podnet's symmetric routes, except where a peer reaches this node on
  another interface than the route back; on the pods' veths it is good (anti-spoofing).

podnet warns and leaves the setting to the user.
"""

from __future__ import annotations


def warnings(name, iface, tunnel, veths, fact):
    """The warnings for node ``name`` from node_facts' ``rp_filter`` read ({all, default, IFACE})."""
    rp = fact.get("rp_filter") or {}
    if not rp:
        return []
    where = [iface] + ([tunnel] if tunnel else []) + list(veths)
    value = dict((i, max(rp.get("all", 0), rp.get(i, rp.get("default", 0)))) for i in where)
    loose = [i for i in where if value[i] == 2]
    strict = [i for i in where if value[i] == 1 and i not in veths]
    result = []
    if loose:
        result.append(
            "%s: rp_filter is loose (2) on %s (all=%s, default=%s). Pod traffic flows, but a pod can send with "
            "another pod's address, so podnet_policy and the accept rules, which match on addresses, cannot "
            "tell which pod sent a packet (Calico refuses to run with loose for this reason). podnet leaves it "
            "to you: net.ipv4.conf.all.rp_filter=0 with 1 on the pods' veths keeps pods honest."
            % (name, ", ".join(loose), rp.get("all", 0), rp.get("default", 0)))
    if strict:
        result.append(
            "%s: rp_filter is strict (1) on %s. podnet's routes are symmetric, so this is fine unless a peer "
            "reaches this node on another interface than this node's route back to it (for example "
            "podnet_direct_routing between nodes whose underlay prefixes differ): such pod traffic is dropped."
            % (name, ", ".join(strict)))
    return result
