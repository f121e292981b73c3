#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pod_netns
short_description: Manage a pod, a network namespace joined to the node by a veth pair
version_added: 0.1.0
description:
  - Wires a pod the way Kubernetes CNI plugins do (and the seed does by hand for C(pod-a)); a network
    namespace O(name) with its loopback up, and a veth pair with O(ifname) inside the pod and
    O(host_ifname) on the node.
  - Inside the pod the interface has the address O(address), and the only default route is
    C(default via GATEWAY dev IFNAME onlink). The node answers ARP for the gateway by proxy ARP
    on the host veth, so no address is needed on the node for it (as Calico does with 169.254.1.1).
  - On the node the host veth is up, has proxy ARP on with C(proxy_delay=0) and forwarding on
    (as Calico sets its host veths), and a host route C(POD_IP/32 dev HOST_IFNAME scope link) tagged
    with podnet's route protocol C(150).
  - Everything that can change in place converges in place (address, gateway, MTU, proxy ARP,
    host route, links up); a missing veth pair is recreated with one C(ip link add) command.
  - A device named O(host_ifname) that is not this pod's veth (another kind, or a veth whose peer is
    not O(ifname) in this pod) is never touched; the module fails and names it.
  - A pod namespace listed in C(/run/netns) that is not a usable namespace (a stale mount point)
    is removed and created again (or only removed with O(state=absent)).
  - O(state=absent) removes podnet's host route, the host veth (only when it is this pod's) and
    the namespace. It succeeds on a half-built pod and reports no change when nothing is there.
  - O(pods) wires several pods in one call (podnet's pods role passes every pod of the node), so a
    node's module invocations do not grow with its pods. Every pod is validated, read and planned
    before anything changes.
  - The node is read once (for all pods) with one C(ip -d -json link show) and one
    C(ip -json route show table main), each pod with one C(ip -json -d addr show) and one
    C(ip -json route show), its host veth's sysctls with one C(sysctl -n).
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  name:
    description:
      - The pod's network namespace (a name under C(/run/netns)).
      - Must not be the node's own namespace.
      - Exactly one of O(name) and O(pods) is required.
    type: str
  pods:
    description:
      - Several pods, each a dict with the keys of the single-pod options (O(name) required,
        O(address) with V(present)) and its own C(state); instead of O(name), O(address) and
        O(host_ifname). The top-level O(ifname), O(gateway), O(mtu), O(proxy_arp), O(forwarding),
        O(host_route) and O(state) are then ignored.
      - Names and host interface names must be unique in the list.
    type: list
    elements: dict
    suboptions:
      name:
        description: As O(name).
        type: str
        required: true
      ifname:
        description: As O(ifname).
        type: str
        default: eth0
      host_ifname:
        description: As O(host_ifname).
        type: str
      address:
        description: As O(address).
        type: str
      gateway:
        description: As O(gateway).
        type: str
        default: 169.254.10.24
      mtu:
        description: As O(mtu).
        type: int
      proxy_arp:
        description: As O(proxy_arp).
        type: bool
        default: true
      forwarding:
        description: As O(forwarding).
        type: bool
        default: true
      host_route:
        description: As O(host_route).
        type: bool
        default: true
      wired_only:
        description: As O(wired_only).
        type: bool
        default: false
      replaces:
        description: As O(replaces).
        type: list
        elements: str
        default: []
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
  ifname:
    description: The pod's end of the veth pair, inside the pod.
    type: str
    default: eth0
  host_ifname:
    description:
      - The node's end of the veth pair.
      - Defaults to C(veth-NAME) (e.g. C(veth-pod-a)) when that fits the kernel's 15 characters,
        else to C(veth) and the first 11 hex digits of the SHA-256 of the pod name (as calico
        derives C(caliXXXXXXXXXXX)), stable across runs; a hashed name has no C(-) after C(veth).
        An explicit value always wins.
    type: str
  address:
    description:
      - The pod's IPv4 address with prefix length, e.g. C(192.168.10.10/24). Other IPv4 addresses
        on O(ifname) are removed.
      - Required with O(state=present).
    type: str
  gateway:
    description:
      - The pod's default gateway, reached C(onlink) through O(ifname); the node answers for it
        by proxy ARP (O(proxy_arp)).
      - The node needs a route covering this address through another interface (a default route
        does), otherwise proxy ARP does not answer.
    type: str
    default: 169.254.10.24
  mtu:
    description:
      - MTU of both ends of the veth pair, for example the underlay MTU minus the tunnel overhead
        (1450 for VXLAN on a 1500 underlay).
      - When not set, the MTU is left as it is (1500 for a new pair).
    type: int
  proxy_arp:
    description:
      - Answer ARP on the host veth for addresses the node routes elsewhere (the gateway), with
        C(net.ipv4.conf.HOST_IFNAME.proxy_arp=1) and C(net.ipv4.neigh.HOST_IFNAME.proxy_delay=0).
      - V(false) sets C(proxy_arp=0) and leaves C(proxy_delay) alone.
      - The kernel answers proxy ARP only on an interface with forwarding on, see O(forwarding).
    type: bool
    default: true
  forwarding:
    description:
      - IPv4 forwarding on the host veth (C(net.ipv4.conf.HOST_IFNAME.forwarding=1)), so the node
        routes the pod's packets and answers proxy ARP for the gateway. V(false) sets it to C(0).
      - Forwarding on the node's other interfaces (C(net.ipv4.ip_forward)) is node configuration;
        note that writing C(net.ipv4.conf.all.forwarding) or C(net.ipv4.ip_forward) later resets this
        one too, and the next run repairs it.
    type: bool
    default: true
  host_route:
    description:
      - Route the pod's address to the host veth on the node (C(POD_IP/32 dev HOST_IFNAME scope link
        proto 150)); podnet's host routes on O(host_ifname) to other addresses are removed.
      - V(false) removes podnet's host routes on O(host_ifname).
      - A route podnet does not own to the pod's address is never touched; the module fails and shows it.
    type: bool
    default: true
  wired_only:
    description:
      - With O(state=absent), remove the namespace only when the node's O(host_ifname) is this pod's
        veth (its peer is the pod's O(ifname) in that namespace); otherwise leave it and warn. podnet's
        purge of pods that left the inventory sets it - a namespace of that name that is not wired
        to this node is not podnet's.
    type: bool
    default: false
  replaces:
    description:
      - Earlier names of the pod's host veth (a O(host_ifname) changed since the last run; podnet's
        node record gives them). With O(state=present), such a device that is this pod's veth (its peer
        is the pod's O(ifname) in its namespace) is deleted first, with its routes and the pod's end,
        and the pod is wired again under O(host_ifname); its namespace stays. Any other device of
        such a name is left alone.
    type: list
    elements: str
    default: []
notes:
  - O(netns) is the B(node's) namespace; the pod's namespace is always O(name).
  - C(ip netns exec NODE CMD) runs CMD in a private mount namespace whose C(/) is a slave of the
    caller's, so a namespace that C(ip netns add) makes there (a bind mount on C(/run/netns/NAME))
    would vanish for everybody else when the module exits, and only an empty, unusable file would
    remain. When the module runs in a mount namespace other than PID 1's (as under C(ip netns exec),
    which podnet's C(netns) connection uses), it runs C(ip netns add) and C(ip netns del) inside PID 1's
    mount namespace with C(nsenter --mount=/proc/1/ns/mnt ip netns add NAME). If C(/proc/1/ns/mnt)
    cannot be read (some sandboxes), the mount namespace of the outermost ancestor process whose
    namespace can be read is used instead. Mounts made there propagate into the module's namespace.
    Both commands appear in RV(commands).
  - The node also needs IP forwarding (C(net.ipv4.ip_forward=1)) for pod traffic that does not end
    on the node itself; that is node configuration, not set by this module.
requirements:
  - C(nsenter) (util-linux) when the module runs in a mount namespace other than PID 1's
  - C(sysctl) (procps)
"""

EXAMPLES = r"""
- name: Wire pod-a on host1 as in the seed (veth-pod-a on the node, eth0 in the pod)
  podnet.fabric.pod_netns:
    name: pod-a
    address: 192.168.10.10/24

- name: A pod with its own host interface name and a VXLAN-sized MTU, in the lab's node namespace
  podnet.fabric.pod_netns:
    name: web-frontend-1
    host_ifname: cali-web1
    address: 192.168.10.11/24
    mtu: 1450
    netns: host1

- name: Every pod of the node in one call
  podnet.fabric.pod_netns:
    pods:
      - {name: pod-a, address: 192.168.10.10/24, mtu: 1450}
      - {name: pod-c, address: 192.168.10.11/24, mtu: 1450}
      - {name: pod-old, state: absent}

- name: Remove the pod (namespace, host veth and podnet's host route)
  podnet.fabric.pod_netns:
    name: pod-a
    state: absent
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/nsenter", "--mount=/proc/1/ns/mnt", "/usr/sbin/ip", "netns", "add", "pod-a"],
           ["/usr/sbin/ip", "-n", "pod-a", "link", "set", "lo", "up"],
           ["/usr/sbin/ip", "link", "add", "veth-pod-a", "address", "0e:5c:21:8a:4f:10", "type", "veth",
            "peer", "name", "eth0", "address", "6a:91:0d:33:e2:7b", "netns", "pod-a"]]
host_ifname:
  description: The node's end of the veth pair (given or derived).
  returned: with O(name)
  type: str
  sample: veth-pod-a
mac:
  description: MAC address of the pod's interface; null after O(state=absent), and in check mode
    when the veth pair would be created.
  returned: with O(name)
  type: str
  sample: 6a:91:0d:33:e2:7b
host_mac:
  description: MAC address of the host veth; null after O(state=absent), and in check mode when
    the veth pair would be created.
  returned: with O(name)
  type: str
  sample: 0e:5c:21:8a:4f:10
pods:
  description: With O(pods), per pod (in order) its name, host_ifname, mac, host_mac (as above) and whether it changed.
  returned: with O(pods)
  type: list
  elements: dict
  sample: [{"name": "pod-a", "host_ifname": "veth-pod-a", "mac": "6a:91:0d:33:e2:7b",
            "host_mac": "0e:5c:21:8a:4f:10", "changed": true}]
"""

import os

from ansible_collections.podnet.fabric.plugins.module_utils import pod, skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.netns import NETNS_DIR
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def random_mac():
    """A random locally administered unicast MAC, as the kernel picks for a new veth."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join("%02x" % b for b in octets)


def namespace_state(name):
    """NS_PRESENT, NS_ABSENT or NS_BROKEN (a file under /run/netns with no namespace on it)."""
    path = os.path.join(NETNS_DIR, name)
    try:
        entry = os.stat(path)
    except OSError:
        return pod.NS_ABSENT, None
    if entry.st_dev == os.stat(NETNS_DIR).st_dev:
        return pod.NS_BROKEN, None
    return pod.NS_PRESENT, (entry.st_dev, entry.st_ino)


POD_OPTIONS = dict(
    ifname=dict(type="str", default=pod.DEFAULT_IFNAME),
    host_ifname=dict(type="str"),
    address=dict(type="str"),
    gateway=dict(type="str", default=pod.DEFAULT_GATEWAY),
    mtu=dict(type="int"),
    proxy_arp=dict(type="bool", default=True),
    forwarding=dict(type="bool", default=True),
    host_route=dict(type="bool", default=True),
    wired_only=dict(type="bool", default=False),
    replaces=dict(type="list", elements="str", default=[]),
)


def _wanted(item, node_netns, where=""):
    try:
        return pod.wanted(item["name"], item["ifname"], item["host_ifname"], item["address"], item["gateway"],
                          item["mtu"], item["proxy_arp"], item["host_route"], item["state"], node_netns,
                          item["forwarding"], item["wired_only"], item["replaces"])
    except PodnetError as exc:
        raise PodnetError(where + str(exc))


def wanted_pods(params):
    """The pods to converge, validated (all of them before anything changes)."""
    if params["pods"] is None:
        return [_wanted(params, params["netns"])]
    wants = [_wanted(item, params["netns"], "pods[%d]." % index) for index, item in enumerate(params["pods"])]
    for key in ("name", "host_ifname"):
        values = [want[key] for want in wants]
        for index, value in enumerate(values):
            if value in values[:index]:
                raise PodnetError("pods[%d].%s: %r is already pods[%d]'s" % (index, key, value, values.index(value)))
    return wants


def plan_pod(module, runner, want, node_links, node_routes):
    """Read one pod and plan it: ``(plan, is_ours)``; raises PodnetError before any change."""
    name = want["name"]
    namespace, identity = namespace_state(name)
    if identity is not None:
        node_ns = os.path.join(NETNS_DIR, module.params["netns"]) if module.params["netns"] else "/proc/self/ns/net"
        node_stat = os.stat(node_ns)
        if identity == (node_stat.st_dev, node_stat.st_ino):
            raise PodnetError("name: %r is the node's own network namespace (the one the module "
                              "operates in); a pod needs its own namespace" % name)
    pod_links = pod_routes = None
    if namespace == pod.NS_PRESENT:
        pod_links = runner.read_json("ip", ["-details", "addr", "show"], netns=name)
        pod_routes = runner.read_json("ip", ["route", "show"], netns=name)

    def peer_namespace(link):
        if link is None or "link_netnsid" not in link or namespace != pod.NS_PRESENT:
            return None
        ids = runner.read_json("ip", ["netns", "list-id", "nsid", str(link["link_netnsid"])])
        return ids[0].get("name") if ids else None

    host = pod.find_link(node_links, want["host_ifname"])
    peer_ns = peer_namespace(host)
    replaced_peers = dict((old, peer_namespace(pod.find_link(node_links, old))) for old in want["replaces"])
    sysctls = None
    is_ours = pod.owned(want, host, pod.find_link(pod_links, want["ifname"]), peer_ns)[0]
    if is_ours:
        sysctls = pod.parse_sysctls(runner.read("sysctl", ["-n"] + pod.sysctl_keys(want["host_ifname"])))

    macs = (random_mac(), random_mac())
    try:
        plan = pod.plan(want, namespace, node_links, node_routes, peer_ns, pod_links, pod_routes, sysctls, macs,
                        replaced_peers)
    except PodnetError as exc:
        raise PodnetError(str(exc) if module.params["pods"] is None else "pod %s: %s" % (name, exc))
    for warning in plan.warnings:
        module.warn(warning)
    return plan, is_ours


def apply(runner, name, steps):
    """Run one pod's steps (see ``pod``: ns, node, pod, sysctl)."""
    for where, args in steps:
        if where == "ns":
            runner.run_ip_netns(args)
        elif where == "pod":
            runner.run("ip", args, netns=name)
        elif where == "sysctl":
            runner.run("sysctl", args)
        else:
            runner.run("ip", args)


def converge(module):
    wants = wanted_pods(module.params)
    runner = Runner(module, module.params["netns"])

    # The node is read once for every pod: each pod's plan looks only at its own host veth and routes.
    node_links = runner.links()
    node_routes = runner.read_json("ip", ["route", "show", "table", "main"])
    plans = [plan_pod(module, runner, want, node_links, node_routes) for want in wants]

    results = []
    for want, (plan, is_ours) in zip(wants, plans):
        apply(runner, want["name"], plan.commands)
        facts = plan.facts if is_ours or not module.check_mode else dict(host_mac=None, mac=None)
        results.append(dict(facts, name=want["name"], host_ifname=want["host_ifname"], changed=bool(plan.commands)))
    changed = any(result["changed"] for result in results)
    if module.params["pods"] is None:
        one = dict(results[0])
        del one["name"], one["changed"]
        return skeleton.result(runner, changed, plans[0][0].before, plans[0][0].after, **one)
    return skeleton.result(runner, changed, dict((w["name"], p.before) for w, (p, _o) in zip(wants, plans)),
                           dict((w["name"], p.after) for w, (p, _o) in zip(wants, plans)), pods=results)


def main():
    skeleton.main(
        converge,
        dict(
            skeleton.COMMON_ARGS,
            name=dict(type="str"),
            pods=dict(type="list", elements="dict", options=dict(
                POD_OPTIONS, name=dict(type="str", required=True),
                state=dict(type="str", default="present", choices=["present", "absent"]))),
            **POD_OPTIONS
        ),
        required_one_of=[("name", "pods")],
        mutually_exclusive=[("name", "pods"), ("pods", "address"), ("pods", "host_ifname")],
        required_if=[("state", "present", ["address", "pods"], True)],
    )


if __name__ == "__main__":
    main()
