# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-flight probe of the underlay: which node probes which peer, with what, and the verdict.

Before any pod is wired (``playbooks/plan.yml``, for site.yml and verify.yml) every node sends
marked packets to its peers' underlay addresses, and every node records which arrived
(podnet.fabric.preflight: listen, send, collect). Per directed pair ``sender -> receiver``:

* ``icmp`` at ``SMALL`` bytes: plain reachability (an ICMP echo request);
* the mode's encapsulation at ``SMALL`` bytes: ``ipip`` (IP protocol 4) or ``udp`` (UDP to the
  VXLAN port); none in host-gw and bgp;
* the path MTU: the mode's packet (the encapsulation, or ICMP in host-gw and bgp) with DF set at
  the size the mode needs (``required``: the tunnel MTU plus the overhead, the underlay MTU by
  default) and at every size of ``LADDER`` below it. The largest that arrived is the path MTU as
  far as the probe can tell (a lower bound, so a tunnel MTU derived from it is never too large).

Sampling: a node probes every other node while the cluster has at most ``peers`` + 1 nodes.
Beyond, the nodes (sorted by name) form a ring and each probes the next ``ring(peers)`` nodes
and ``peers - ring(peers)`` more at offsets drawn at random per run, the same offsets for every
node (so each node knows who probes it): each node sends to and hears from ``peers`` peers.

Pure Python: the module does the packets, this file the plan and the matrix.
"""

from __future__ import annotations

import random

from ansible_collections.podnet.fabric.plugins.module_utils import underlay
from ansible_collections.podnet.fabric.plugins.module_utils.model import MTU_FLOOR, OVERHEAD, error

# Total IP packet sizes (bytes) probed below the required one: common link MTUs.
LADDER = (9000, 8000, 4000, 1500, 1492, 1480, 1450, 1420, 1400, 1380, 1350, 1300, 1280, 1200, 1000, 800, 576)
SMALL = 100
ENCAPSULATION = {"ipip": "ipip", "vxlan": "udp"}
DEFAULT_PEERS = 16
# Above this many nodes the matrix shows only the pairs that failed (it would have N x N cells).
MATRIX_MAX = 32


def ring(peers):
    """How many of a node's ``peers`` probes go to the next nodes of the ring (the rest: random offsets)."""
    return max(1, peers - peers // 4)


def offsets(count, peers, token):
    """The ring offsets every node probes in a cluster of ``count`` nodes (``1..count-1``)."""
    if count - 1 <= peers:
        return list(range(1, count))
    near = ring(peers)
    far = random.Random(str(token)).sample(range(near + 1, count), peers - near)
    return list(range(1, near + 1)) + sorted(far)


def kinds(mode):
    """``(encapsulation or None, the kind the path MTU is probed with)``."""
    encap = ENCAPSULATION.get(mode)
    return encap, encap or "icmp"


def required(cluster, fact):
    """The largest packet the mode puts on this node's underlay: its tunnel (or pod) MTU plus the overhead."""
    return underlay.mtu(cluster, dict(fact, path_mtu=None)) + OVERHEAD[cluster.mode]


def probes(cluster, fact):
    """``[[kind, size], ...]`` a node sends to each peer."""
    encap, mtu_kind = kinds(cluster.mode)
    top = required(cluster, fact)
    result = [["icmp", SMALL]] + ([[encap, SMALL]] if encap else [])
    return result + [[mtu_kind, top]] + [[mtu_kind, size] for size in LADDER if size < top]


def peers_of(cluster, name, read, token, peers):
    """``(send_to, hear_from)``: the nodes ``name`` probes and those that probe it (both only nodes read)."""
    names = [node.name for node in cluster.nodes]
    index, count = names.index(name), len(names)
    steps = offsets(count, peers, token)
    send = [names[(index + o) % count] for o in steps]
    hear = [names[(index - o) % count] for o in steps]
    return [n for n in send if n in read], [n for n in hear if n in read]


def plan(cluster, name, fact_of, read, token, peers=DEFAULT_PEERS):
    """podnet.fabric.preflight's options for node ``name``: whom it probes with what, and what it
    should hear (``expect``: per sender address, its probes). ``fact_of(host)``: node_facts of a
    node read; ``read``: the nodes this run read."""
    send, hear = peers_of(cluster, name, read, token, peers)
    encap, _mtu_kind = kinds(cluster.mode)
    return dict(run=str(token), local=cluster.node(name).node_ip, port=cluster.settings["vxlan_port"],
                kinds=sorted(set(["icmp"] + ([encap] if encap else []))),
                peers=[cluster.node(n).node_ip for n in send], probes=probes(cluster, fact_of(name)),
                expect=dict((cluster.node(n).node_ip, probes(cluster, fact_of(n))) for n in hear))


def what(kind, cluster):
    """A probe kind as the user reads it."""
    return {"icmp": "ICMP echo", "ipip": "IP protocol 4 (ipip)",
            "udp": "UDP to port %d (vxlan)" % cluster.settings["vxlan_port"]}[kind]


def pair(cluster, sent, got):
    """The verdict on one directed pair: ``dict(cell, blocked, path)``.

    ``sent``: the probes the sender sent; ``got``: the ``[kind, size]`` that arrived.
    ``path``: the largest size of the path-MTU kind that arrived (None when none did);
    ``blocked``: why the pair cannot carry the mode (None when it can, MTU aside)."""
    encap, mtu_kind = kinds(cluster.mode)
    got = set(tuple(g) for g in got)
    ladder = [size for kind, size in sent if kind == mtu_kind and size > SMALL]
    top, bottom = max(ladder), min(ladder)
    sizes = [size for kind, size in got if kind == mtu_kind and size > SMALL]
    path = max(sizes) if sizes else None
    if not got:
        return dict(cell="nothing arrived", path=None,
                    blocked="nothing arrived (%s)" % ", ".join(what(k, cluster) for k in sorted(set(k for k, _s in sent))))
    for kind in ([encap] if encap else []) + ["icmp"]:
        if (kind, SMALL) not in got:
            return dict(cell="%s dropped" % kind, path=path, blocked="%s dropped%s" % (
                what(kind, cluster), " (%s passes)" % " and ".join(sorted(set(
                    what(k, cluster) for k, _s in got))) if got else ""))
    if path is None:
        return dict(cell="mtu < %d" % bottom, path=None,
                    blocked="no %s with DF of %d bytes or more arrived (the path MTU is below %d)"
                    % (what(mtu_kind, cluster), bottom, bottom))
    if path < top:
        return dict(cell="path mtu %d" % path, path=path, blocked=None)
    return dict(cell="ok", path=path, blocked=None)


def verdict(cluster, facts, received, read, token, peers=DEFAULT_PEERS):
    """The matrix and what it means for the run.

    ``facts``: node_facts of every node read; ``received``: per node read, podnet.fabric.preflight
    collect's ``received`` (``{sender's node_ip: [[kind, size], ...]}``), or None when the node
    could not collect. Returns ``dict(lines, errors, path_mtu)``: the matrix as text lines,
    the reasons the run must stop (blocked pairs, a podnet_mtu the path cannot carry, a derived
    MTU below 576), and per node the narrowest path MTU found below what the mode needs (the
    tunnel MTU is derived from it: path MTU - overhead).
    """
    names = [node.name for node in cluster.nodes]
    read = [n for n in names if n in read]
    cells, errors, limits = {}, [], {}
    for sender in read:
        sent = probes(cluster, facts[sender])
        top = required(cluster, facts[sender])
        for receiver in peers_of(cluster, sender, read, token, peers)[0]:
            heard = received.get(receiver)
            if heard is None:
                cells[(sender, receiver)] = dict(cell="not collected", path=None, blocked=None)
                continue
            got = heard.get(cluster.node(sender).node_ip, [])
            result = pair(cluster, sent, got)
            if result["cell"] == "%s dropped" % kinds(cluster.mode)[0] and _new_to_guard(cluster, facts, sender, receiver):
                # The receiver's own encapsulation guard (podnet's PODNET-INPUT, from its last converge)
                # drops a node that has no tunnel device yet (a node joining): this run teaches it.
                result = dict(result, cell="new to guard", blocked=None)
            cells[(sender, receiver)] = result
            if result["blocked"]:
                errors.append("%s -> %s (%s -> %s): %s" % (sender, receiver, cluster.node(sender).node_ip,
                                                           cluster.node(receiver).node_ip, result["blocked"]))
            elif result["path"] is not None and result["path"] < top:
                for name in (sender, receiver):
                    if name not in limits or result["path"] < limits[name][0]:
                        limits[name] = (result["path"], sender, receiver)
    path_mtu = {}
    overhead = OVERHEAD[cluster.mode]
    for name, (path, sender, receiver) in sorted(limits.items()):
        fact_limit = facts[name]["mtu"] - overhead
        carries = path - overhead
        wanted = cluster.settings["mtu"]
        if wanted is not None and wanted > carries:
            errors.append(str(error(name, "podnet_mtu", "%d is larger than the path %s -> %s carries in %s: "
                                    "path MTU %d - %d = %d" % (wanted, sender, receiver, cluster.mode,
                                                               path, overhead, carries))))
        elif wanted is None and carries < MTU_FLOOR:
            errors.append(str(error(name, "podnet_mtu", "the path %s -> %s has an MTU of %d: %d - %d = %d is "
                                    "below %d (RFC 791); fix the underlay" % (sender, receiver, path, path, overhead,
                                                                              carries, MTU_FLOOR))))
        elif carries < fact_limit:
            path_mtu[name] = path
    return dict(lines=lines(cluster, names, read, cells), errors=errors, path_mtu=path_mtu,
                derived=dict((n, p - overhead) for n, p in path_mtu.items()))


def _new_to_guard(cluster, facts, sender, receiver):
    """True when ``receiver`` holds the mode's tunnel device (so podnet's guard accepts the encapsulation
    only from the nodes of its last converge) and ``sender`` holds none (it is joining)."""
    device = cluster.settings["%s_device" % cluster.mode]
    return ((facts[receiver].get("tunnels") or {}).get(device) is not None
            and (facts[sender].get("tunnels") or {}).get(device) is None)


def lines(cluster, names, read, cells):
    """The matrix: rows send to columns; ok, ``path mtu N``, what was dropped; ``skip``: not sampled."""
    encap, mtu_kind = kinds(cluster.mode)
    head = "preflight %s: %s%s with DF at the size the mode needs, sender (row) -> receiver (column)" % (
        cluster.mode, "ICMP echo, " + (what(encap, cluster) + ", " if encap else ""), what(mtu_kind, cluster))
    if len(names) > MATRIX_MAX:
        bad = ["%s -> %s: %s" % (s, r, c["cell"]) for (s, r), c in sorted(cells.items()) if c["cell"] != "ok"]
        return [head, "%d pairs probed, %d not ok" % (len(cells), len(bad))] + bad
    width = max([len(n) for n in names] + [len(c["cell"]) for c in cells.values()] + [8]) + 2
    out = [head, ("from \\ to".ljust(width) + "".join(n.ljust(width) for n in names)).rstrip()]
    for sender in names:
        if sender not in read:
            row = ["not read".ljust(width)] * len(names)
        else:
            row = [("-" if sender == r else cells.get((sender, r), dict(cell="skip"))["cell"]).ljust(width)
                   for r in names]
        out.append((sender.ljust(width) + "".join(row)).rstrip())
    return out
