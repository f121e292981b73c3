# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of what podnet made on a node, and what of it the inventory no longer wants.

Each node keeps one JSON file, ``<podnet_record_dir>/<node>-record.json`` (``path``)::

    {"version": 1, "node": "host1",
     "devices": [{"name": "vxlan0", "kind": "vxlan"}],
     "chains": ["PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT"],
     "pods": [{"name": "pod-a", "host_ifname": "veth-pod-a"}],
     "sysctls": {"file": "/var/lib/podnet/host1-sysctl.json", "keys": ["net.ipv4.ip_forward"]}}

The run reads it first (podnet.fabric.node_facts, option ``record``), the node's plan removes
what it lists and the inventory no longer wants (``leftovers``), and podnet.fabric.node_record
writes the new one (``build``) at the end of a successful run; teardown removes it last.
podnet_record_dir is not podnet_state_dir on purpose: after a rename of the state directory (or of
the devices, the chain prefix) the next run still finds the record, which says where the saved
sysctls are. Nothing outside the record is ever removed because of it, and what it lists is
removed only by podnet's usual ownership checks (a device by name *and* kind, a pod's namespace
only when the node's veth of that name leads into it).
"""

from __future__ import annotations

from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

VERSION = 1
DEVICE_KINDS = ("ipip", "vxlan")


def path(record_dir, node):
    """Where node ``node`` keeps its record."""
    return "%s/%s-record.json" % (record_dir.rstrip("/") or "", node)


def build(node, tunnel, chains, pods, sysctl_file, sysctl_keys):
    """The record of a run that converged: this mode's device (None in host-gw and bgp), podnet's
    chain names, the node's pods, where its saved sysctls are."""
    return dict(version=VERSION, node=node,
                devices=[dict(name=tunnel["name"], kind=tunnel["kind"])] if tunnel else [],
                chains=list(chains),
                pods=[dict(name=p["name"], host_ifname=p["host_ifname"]) for p in pods],
                sysctls=dict(file=sysctl_file, keys=sorted(sysctl_keys)))


def check(data, where="record", read=True):
    """A record (``read``: read from a node), checked; None stays None. Raises PodnetError naming
    what is wrong (podnet does not guess what to remove from a record it cannot read)."""
    if data is None:
        return None

    def bad(what):
        advice = "; fix or remove the file (podnet then forgets what it made there)" if read else ""
        raise PodnetError("%s: %s%s" % (where, what, advice))

    if not isinstance(data, dict) or data.get("version") != VERSION:
        bad("not a podnet record of version %d" % VERSION)
    devices, chains, pods, sysctls = (data.get(k) for k in ("devices", "chains", "pods", "sysctls"))
    if not isinstance(devices, list) or not all(
            isinstance(d, dict) and isinstance(d.get("name"), str) and d.get("kind") in DEVICE_KINDS for d in devices):
        bad("devices must be a list of {name, kind} with kind %s" % " or ".join(DEVICE_KINDS))
    if not isinstance(chains, list) or not all(isinstance(c, str) and c for c in chains):
        bad("chains must be a list of chain names")
    if not isinstance(pods, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("host_ifname"), str)
            for p in pods):
        bad("pods must be a list of {name, host_ifname}")
    if not isinstance(sysctls, dict) or not isinstance(sysctls.get("file"), str):
        bad("sysctls must be {file, keys}")
    return data


def leftovers(previous, devices, chains, pods, sysctl_file):
    """What ``previous`` (a checked record, or None) lists and this run does not make: devices
    (``[{name, kind}]``, not named like one of ``devices``), chains (names not in ``chains``), pods
    (``[{name, host_ifname}]`` whose name is not among ``pods``), the earlier host veths of the pods
    that stay (``{pod: host_ifname}`` where it changed), and the earlier sysctl file (``[path]``
    unless it is ``sysctl_file``)."""
    if not previous:
        return dict(devices=[], chains=[], pods=[], veths={}, sysctl_files=[])
    names = set(d["name"] for d in devices)
    wanted_pods = dict((p["name"], p["host_ifname"]) for p in pods)
    old_file = previous["sysctls"]["file"]
    return dict(devices=[dict(name=d["name"], kind=d["kind"]) for d in previous["devices"] if d["name"] not in names],
                chains=[c for c in previous["chains"] if c not in chains],
                pods=[dict(name=p["name"], host_ifname=p["host_ifname"]) for p in previous["pods"]
                      if p["name"] not in wanted_pods],
                veths=dict((p["name"], p["host_ifname"]) for p in previous["pods"]
                           if wanted_pods.get(p["name"], p["host_ifname"]) != p["host_ifname"]),
                sysctl_files=[old_file] if old_file != sysctl_file else [])
