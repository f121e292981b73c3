# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's plan as the plain commands that build it from scratch: the rendered script
(playbooks/render.yml) and the boot replay (podnet.fabric.replay) are this one text.

``steps(plan)`` asks the modules' own planners what they would run on a bare node (nothing
read, nothing there): ``pod.plan`` for each pod, ``tunnel.plan`` for the device, ``fdb.plan``
for the neighbour and FDB entries, ``route.plan`` for the routes, ``chain.plan_many`` for the
chains, so the script and a converge decide with the same code. Then it makes each command
safe to run again on a node that already holds it:

* ``ip netns add`` and ``ip link add`` run only when the namespace or device is absent (a pod's
  stale /run/netns entry, which a container's restart leaves, is deleted first, as pod_netns does);
* ``ip addr add`` on the tunnel becomes ``ip addr replace`` (pods already use replace);
* routes (``ip route replace ... proto 150``), neighbours (``ip neigh replace``), FDB entries
  (``bridge fdb replace``, and ``append`` for the flood list, which the kernel keeps once) and
  sysctls are idempotent as the planners write them;
* podnet's chains go through ``iptables-restore -w --noflush`` (declaring a chain empties and
  refills it, nothing else in the table is touched); the parents' jumps are checked with
  ``iptables -C`` and inserted with ``-I`` only when missing.

The order is site.yml's: the node (ip_forward, the forward, policy and guard chains: the guard
is in place before a tunnel can decapsulate), the pods, the mode's device, its neighbour and
FDB entries, and last the routes (flannel's order: the kernel never has to ask).

A step is ``dict(name, comment, commands)``; a command is ``dict(argv, unless, stdin, tolerate)``:
run ``argv`` unless ``unless`` (argv) succeeds, feeding ``stdin``; ``tolerate``: its failure is
not the script's (deleting a stale entry that may not be there). ``render(steps)`` writes POSIX
sh with every word quoted by ``shlex.quote``. Pure: nothing here touches the system.
"""

from __future__ import annotations

import shlex

from ansible_collections.podnet.fabric.plugins.module_utils import chain, fdb, pod, route, tunnel

# What ``iptables -S`` shows on a bare node: the filter table's built-in chains, no rule.
BARE_FILTER = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
UNIT = "podnet-replay.service"


def command(argv, unless=None, stdin=None, tolerate=False):
    return dict(argv=[str(word) for word in argv], unless=unless and [str(word) for word in unless], stdin=stdin,
                tolerate=tolerate)


def _node_steps(plan):
    commands = [command(["sysctl", "-w", "%s=%s" % (key, value)])
                for key, value in sorted((plan.get("sysctls") or {}).items())]
    yield dict(name="node", comment="Forward packets for the pods (podnet.fabric.node_sysctl)", commands=commands)
    wants = chain.wanted_many(dict(chains=plan["iptables"]))
    lines = chain.plan_many(wants, "filter", BARE_FILTER).commands
    jumps = [want for want in chain.order(wants) if want["state"] == "present" and want["parent"]]
    # The restore payload without the jumps (-I): declaring a chain empties it, an -I would repeat.
    payload = [line for line in lines if not line.startswith("-I ")]
    commands = [command(["iptables-restore", "-w", "--noflush"], stdin="\n".join(payload) + "\n")] if payload else []
    for want in jumps:
        spec = chain.args(chain.jump_rule(want["name"]))
        commands.append(command(["iptables", "-w", "-t", "filter", "-I", want["parent"], str(want["position"])] + spec,
                                unless=["iptables", "-w", "-t", "filter", "-C", want["parent"]] + spec))
    names = ", ".join(want["name"] for want in wants if want["state"] == "present")
    yield dict(name="policy and guard",
               comment="podnet's chains %s, their rules in one iptables-restore transaction "
                       "(podnet.fabric.iptables_chain), then the jumps to them" % names, commands=commands)


def _pod_steps(plan):
    # A pod the node's record lists and the inventory dropped (state absent) is not built.
    for item in (p for p in plan["pods"] if p.get("state", "present") == "present"):
        want = pod.wanted(item["name"], host_ifname=item["host_ifname"], address=item["address"],
                          gateway=item["gateway"], mtu=item.get("mtu"))
        commands = []
        # Planned as a stale namespace (its /run/netns file left, no namespace behind it, as a
        # container's restart leaves it): delete, then add; both only when the pod is not usable.
        usable = ["ip", "-n", want["name"], "link", "show", "lo"]
        for where, args in pod.plan(want, pod.NS_BROKEN, [], []).commands:
            if where == "ns":
                commands.append(command(["ip"] + args, unless=usable, tolerate=args[1] == "del"))
            elif where == "pod":
                commands.append(command(["ip", "-n", want["name"]] + args))
            elif where == "sysctl":
                commands.append(command(["sysctl"] + args))
            elif args[:2] == ["link", "add"]:
                commands.append(command(["ip"] + args, unless=["ip", "link", "show", "dev", want["host_ifname"]]))
            else:
                commands.append(command(["ip"] + args))
        yield dict(name="pods", comment="Pod %s: namespace, veth %s, address %s, default route via the proxy-ARP "
                   "gateway %s, host route (podnet.fabric.pod_netns)" % (want["name"], want["host_ifname"],
                                                                         want["address"], want["gateway"]),
                   commands=commands)


def _tunnel_step(plan):
    params = dict(plan["tunnel"], state="present")
    want = tunnel.wanted(params)
    names = {want["dev"]: ("", None)} if want.get("dev") else {}
    commands = []
    for tool, args in tunnel.plan(want, None, names).commands:
        if args[:2] == ["link", "add"]:
            commands.append(command([tool] + args, unless=["ip", "link", "show", "dev", want["name"]]))
        elif args[:2] == ["addr", "add"]:
            commands.append(command([tool, "addr", "replace"] + args[2:]))
        else:
            commands.append(command([tool] + args))
    what = "VXLAN device (VNI %s, port %s, VTEP MAC %s)" % (want["vni"], want["port"], want["mac"]) \
        if want["kind"] == "vxlan" else "one-to-many IPIP device"
    return dict(name="mode", comment="The %s %s, address %s (podnet.fabric.ip_tunnel)"
                % (what, want["name"], ", ".join(want["addresses"] or [])), commands=commands)


def _fdb_step(plan):
    spec = plan["fdb"]
    entries = fdb.wanted_entries(spec["entries"])
    neighbors = fdb.wanted_neighbors(spec["neighbors"])
    commands = [command([tool] + args) for tool, args in fdb.plan(entries, neighbors, [], [], spec["device"]).commands]
    return dict(name="FDB and neighbours",
                comment="Per peer a permanent neighbour (tunnel address -> VTEP MAC), then its FDB entry "
                        "(MAC -> node IP) on %s (podnet.fabric.vxlan_fdb)" % spec["device"], commands=commands)


def steps(plan):
    """The node's plan (node_plan.plan, or podnet_plan as the roles get it) as ordered steps."""
    result = list(_node_steps(plan)) + list(_pod_steps(plan))
    if plan.get("tunnel"):
        result.append(_tunnel_step(plan))
    if plan.get("fdb") and (plan["fdb"]["entries"] or plan["fdb"]["neighbors"]):
        result.append(_fdb_step(plan))
    routes = route.wanted(plan["routes"])
    peers = [r for r in routes if r["dev"] not in set(p.get("host_ifname") for p in plan["pods"])]
    how = dict(bgp="none here: BIRD (its own unit, podnet-bird.service) learns them",
               **{"host-gw": "via the peer on the underlay"}).get(plan["mode"], "through the tunnel")
    result.append(dict(name="routes", comment="Every peer's pod CIDR (%s), tagged proto 150 (podnet.fabric.node_route)"
                       % how,
                       commands=[command(["ip"] + args) for args in route.plan(peers, []).commands]))
    return result


def _line(cmd):
    text = " ".join(shlex.quote(word) for word in cmd["argv"])
    if cmd.get("tolerate"):
        text += " 2>/dev/null || :"
    if cmd["unless"]:
        text = "%s >/dev/null 2>&1 || %s" % (" ".join(shlex.quote(word) for word in cmd["unless"]), text)
    if cmd["stdin"] is not None:
        text += " <<'PODNET_EOF'\n%sPODNET_EOF" % cmd["stdin"]
    return text


def render(plan, node):
    """The POSIX sh script that builds ``node`` from its plan, annotated step by step."""
    out = ["#!/bin/sh",
           "# podnet: node %s, mode %s. Builds the node's pod network from scratch, in site.yml's order;" % (
               node, plan["mode"]),
           "# safe to run again on a node that holds it already. Written by podnet.fabric (script.py) from",
           "# the same plan and planners a converge uses. Needs iproute2, iptables and procps (sysctl).",
           "set -eu"]
    for number, step in enumerate(steps(plan), 1):
        out += ["", "# %d. %s: %s" % (number, step["name"], step["comment"])]
        out += [_line(cmd) for cmd in step["commands"]] or [": # nothing in this mode"]
    return "\n".join(out) + "\n"


def unit_text(script, iface):
    """podnet's systemd unit: replays ``script`` at boot once ``iface`` (the underlay) is there,
    and again whenever the device comes back (BindsTo stops it with the device, WantedBy starts it
    when the device appears)."""
    device = "sys-subsystem-net-devices-%s.device" % iface.replace("-", "\\x2d")
    return "\n".join([
        "# podnet: replays this node's pod network at boot. Written by podnet.fabric.replay.",
        "[Unit]",
        "Description=podnet: replay the node's pod network (pods, tunnel, FDB, routes, chains)",
        "Documentation=file://%s" % script,
        "Wants=network-online.target",
        "After=network-online.target %s" % device,
        "BindsTo=%s" % device,
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        "ExecStart=/bin/sh %s" % script,
        "",
        "[Install]",
        "WantedBy=multi-user.target %s" % device,
        ""])
