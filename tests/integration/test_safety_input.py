"""Bad input is refused before any change: site.yml against a converged lab, once per bad value.

One lab of three nodes in two subnets (h1, h2 in 10.57.4.0/24, h3 in 10.57.5.0/24, so host-gw
and multicast FDB are refused naturally) is converged once in vxlan mode for the whole module.
Each case then runs site.yml with a bad inventory or an ``-e`` override and checks that

* the run fails,
* one failed task's message names the host and the variable (a cluster-wide setting given with
  ``-e`` is reported by the host that evaluated it),
* no task reported a change, and
* every node (links, addresses, routes, neighbours, FDB, iptables, ip_forward), the set of the
  lab's namespaces and podnet's state files are exactly as before.

Validation fails before anything runs, so each case costs one short playbook run.
"""

import copy
import json
import os
import subprocess

import pytest
import yaml

from conftest import ROOT, VENV_BIN, ipj, sh
from test_site import PLAYBOOK, Lab, assert_same

CALLBACKS = os.path.join(ROOT, "tests", "integration", "callback_plugins")
DEL = object()  # a mutation value: remove the variable


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("safety"), "s", [
        ("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24"), ("10.57.5.30", "192.168.12.0/24")])
    try:
        lab.up()
        lab.converge("vxlan")
        lab.snapshot = full_state(lab)
        yield lab
    finally:
        lab.down()


def full_state(lab):
    """Lab.state() plus the lab's namespaces and podnet's state files (name -> content)."""
    state = lab.state()
    files = {}
    for name in sorted(os.listdir(lab.state_dir)) if os.path.isdir(lab.state_dir) else []:
        with open(os.path.join(lab.state_dir, name), "rb") as handle:
            files[name] = handle.read()
    state["lab"] = dict(netns=sorted(n for n in os.listdir("/run/netns") if n.startswith(lab.prefix)),
                        state_files=files)
    return state


def play_json(lab, inventory, *extra):
    """site.yml with one JSON line per task result (``RESULT host {...}``): returns (rc, results, output)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="result_json", ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([PLAYBOOK, "-i", inventory, os.path.join(ROOT, "site.yml")] + list(extra),
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    results = []
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            _tag, host, data = line.split(" ", 2)
            results.append((host, json.loads(data)))
    return proc.returncode, results, proc.stdout[-4000:] + proc.stderr[-2000:]


# -- the cases -------------------------------------------------------------------------------
# Each: (id, per-host changes, -e arguments, host named (None: a cluster-wide setting), variable,
# a fragment of the message). A change is {host: {var: value or DEL}}, a function(hosts) or a
# NoDefaultRoute(host).

def pods_of(host, *pods):
    """A change giving ``host`` these pods: (name or None for the host's own pod name, ip[, host_ifname])."""
    def change(hosts):
        own = hosts[host]["pods"][0]["name"]
        hosts[host]["pods"] = [dict(name=p[0] if p[0] is not None else own, ip=p[1],
                                    host_ifname=p[2] if len(p) > 2 else "veth-x%d" % i)
                               for i, p in enumerate(pods)]
    return change


class NoDefaultRoute(object):
    """Not an inventory change: the node loses its default route for the run (restored after)."""

    def __init__(self, host):
        self.host = host


def same_pod_name(hosts):
    hosts["h2"]["pods"][0]["name"] = hosts["h1"]["pods"][0]["name"]


def pod_key(key, value):
    def change(hosts):
        hosts["h2"]["pods"][0][key] = value
    return change


CASES = [
    # node_ip / pod_cidr: missing, malformed, duplicate, overlapping
    ("node_ip-missing", {"h2": {"node_ip": DEL}}, [], "h2", "node_ip", "missing required arguments"),
    ("node_ip-empty", {"h2": {"node_ip": ""}}, [], "h2", "node_ip", "is required"),
    ("node_ip-malformed", {"h2": {"node_ip": "10.57.4"}}, [], "h2", "node_ip", "is not an IPv4 address"),
    ("node_ip-with-prefix", {"h2": {"node_ip": "10.57.4.21/24"}}, [], "h2", "node_ip", "is not an IPv4 address"),
    ("node_ip-loopback", {"h2": {"node_ip": "127.0.0.1"}}, [], "h2", "node_ip", "not a unicast address"),
    ("node_ip-duplicate", {"h2": {"node_ip": "10.57.4.20"}}, [], "h2", "node_ip", "is also the node_ip of host h1"),
    ("node_ip-not-on-node", {"h2": {"node_ip": "10.57.4.99"}}, [], "h2", "node_ip", "no interface on the node holds"),
    ("pod_cidr-missing", {"h2": {"pod_cidr": DEL}}, [], "h2", "pod_cidr", "missing required arguments"),
    ("pod_cidr-malformed", {"h2": {"pod_cidr": "192.168.11.0/33"}}, [], "h2", "pod_cidr", "is not an IPv4 network"),
    ("pod_cidr-host-bits", {"h2": {"pod_cidr": "192.168.11.10/24"}}, [], "h2", "pod_cidr", "did you mean 192.168.11.0/24"),
    ("pod_cidr-too-small", {"h2": {"pod_cidr": "192.168.11.10/31"}}, [], "h2", "pod_cidr", "is too small"),
    ("pod_cidr-multicast", {"h2": {"pod_cidr": "224.1.1.0/24"}}, [], "h2", "pod_cidr", "multicast"),
    ("pod_cidr-overlap", {"h2": {"pod_cidr": "192.168.10.128/25", "pods": []}}, [], "h2", "pod_cidr",
     "overlaps 192.168.10.0/24 of host h1"),
    ("pod_cidr-contains-all", {"h3": {"pod_cidr": "192.168.0.0/16", "pods": []}}, [], "h3", "pod_cidr", "overlaps"),
    ("pod_cidr-holds-own-node-ip", {"h2": {"pod_cidr": "10.57.4.0/24", "pods": []}}, [], "h2", "pod_cidr",
     "contains the node's own node_ip"),
    ("pod_cidr-holds-peer-node-ip", {"h3": {"pod_cidr": "10.57.4.0/24", "pods": []}}, [], "h3", "pod_cidr",
     "contains node_ip 10.57.4.20 of host h1"),
    ("pod_cidr-holds-gateway", {"h2": {"pod_cidr": "169.254.10.0/24", "pods": []}}, [], "h2", "pod_cidr",
     "contains the pod gateway"),
    # pods
    ("pods-not-a-list", {"h2": {"pods": "pod-b"}}, [], "h2", "pods", "unable to convert to dict"),
    ("pod-ip-missing", pod_key("ip", None), [], "h2", "pods[0]", "needs a name and an ip"),
    ("pod-unknown-key", pod_key("adress", "192.168.11.11"), [], "h2", "pods[0]", "unknown key"),
    ("pod-ip-malformed", pods_of("h2", (None, "192.168.11.300")), [], "h2", "pods[0].ip", "is not an IPv4 address"),
    ("pod-ip-outside", pods_of("h2", (None, "192.168.10.50")), [], "h2", "pods[0].ip", "is outside the node's pod_cidr"),
    ("pod-ip-network", pods_of("h2", (None, "192.168.11.0")), [], "h2", "pods[0].ip", "is the network address"),
    ("pod-ip-broadcast", pods_of("h2", (None, "192.168.11.255")), [], "h2", "pods[0].ip", "is the broadcast address"),
    ("pod-ip-node-address", pods_of("h2", (None, "192.168.11.1")), [], "h2", "pods[0].ip",
     "is already the node's own tunnel address"),
    ("pod-ip-twice", pods_of("h2", (None, "192.168.11.10"), ("other", "192.168.11.10")), [], "h2", "pods[1].ip",
     "is already used by pod"),
    ("pod-name-twice-on-node", pods_of("h2", (None, "192.168.11.10"), (None, "192.168.11.11")), [], "h2",
     "pods[1].name", "is listed twice on this host"),
    ("pod-name-twice-in-lab", same_pod_name, [], "h2", "pods[0].name", "is also defined on host h1"),
    ("pod-name-option-like", pods_of("h2", ("-n", "192.168.11.10")), [], "h2", "pods[0].name", "must not start with -"),
    ("pod-name-too-long", pods_of("h2", ("p" * 65, "192.168.11.10")), [], "h2", "pods[0].name", "longer than 64"),
    ("host_ifname-too-long", pods_of("h2", (None, "192.168.11.10", "veth-" + "x" * 11)), [], "h2",
     "pods[0].host_ifname", "the kernel allows at most 15"),
    ("host_ifname-option-like", pods_of("h2", (None, "192.168.11.10", "-veth")), [], "h2", "pods[0].host_ifname",
     "must not start with -"),
    ("host_ifname-twice", pods_of("h2", ("pa", "192.168.11.10", "veth-x"), ("pb", "192.168.11.11", "veth-x")), [],
     "h2", "pods[1].host_ifname", "is also the host_ifname of pod pa"),
    ("host_ifname-is-underlay", pods_of("h2", (None, "192.168.11.10", "eth0")), [], "h2", "pods[0].host_ifname",
     "is the node's underlay interface"),
    ("host_ifname-is-tunnel", pods_of("h2", (None, "192.168.11.10", "vxlan0")), [], "h2", "pods[0].host_ifname",
     "is podnet's tunnel device"),
    # the underlay interface
    ("node_iface-option-like", {"h2": {"node_iface": "-eth0"}}, [], "h2", "node_iface", "must not start with -"),
    ("node_iface-too-long", {"h2": {"node_iface": "e" * 16}}, [], "h2", "node_iface", "the kernel allows at most 15"),
    ("node_iface-wrong", {"h2": {"node_iface": "lo"}}, [], "h2", "node_iface", "lo does not hold node_ip"),
    # cluster-wide settings
    ("mode-unknown", None, ["-e", "mode=bgp"], None, "mode", "bgp"),
    ("fdb-unknown", None, ["-e", "podnet_vxlan_fdb=gossip"], None, "podnet_vxlan_fdb", "gossip"),
    ("settings-disagree", {"h2": {"podnet_vxlan_vni": 200}}, [], "h2", "podnet_vxlan_vni", "must agree"),
    ("vni-zero", None, ["-e", "podnet_vxlan_vni=0"], None, "podnet_vxlan_vni", "out of range"),
    ("vni-too-big", None, ["-e", "podnet_vxlan_vni=16777216"], None, "podnet_vxlan_vni", "out of range"),
    ("vni-not-a-number", None, ["-e", "podnet_vxlan_vni=ten"], None, "podnet_vxlan_vni", "ten"),
    ("port-zero", None, ["-e", "podnet_vxlan_port=0"], None, "podnet_vxlan_port", "out of range"),
    ("port-too-big", None, ["-e", "podnet_vxlan_port=65536"], None, "podnet_vxlan_port", "out of range"),
    ("ttl-too-big", None, ["-e", "podnet_ipip_ttl=256"], None, "podnet_ipip_ttl", "out of range"),
    ("ttl-negative", None, ["-e", "podnet_ipip_ttl=-1"], None, "podnet_ipip_ttl", "out of range"),
    ("mtu-too-small", None, ["-e", "podnet_mtu=67"], None, "podnet_mtu", "out of range"),
    ("mtu-below-ipv4-minimum", None, ["-e", "podnet_mtu=100"], None, "podnet_mtu", "is below 576"),
    ("mtu-too-big", None, ["-e", "podnet_mtu=65536"], None, "podnet_mtu", "out of range"),
    ("mtu-over-underlay-vxlan", None, ["-e", "podnet_mtu=1451"], "h1", "podnet_mtu",
     "larger than the underlay eth0 allows for vxlan (1500 - 50 = 1450)"),
    ("mtu-over-underlay-ipip", None, ["-e", "mode=ipip", "-e", "podnet_mtu=1481"], "h1", "podnet_mtu",
     "allows for ipip (1500 - 20 = 1480)"),
    ("mtu-over-underlay-host-gw", None, ["-e", "mode=host-gw", "-e", "podnet_mtu=1501"], "h1",
     "podnet_mtu", "(1500 - 0 = 1500)"),
    ("vxlan_device-too-long", None, ["-e", "podnet_vxlan_device=vxlan01234567890"], None, "podnet_vxlan_device",
     "at most 15"),
    ("vxlan_device-option-like", None, ["-e", "podnet_vxlan_device=-vx"], None, "podnet_vxlan_device",
     "must not start with -"),
    ("ipip_device-option-like", None, ["-e", "podnet_ipip_device=-tun"], None, "podnet_ipip_device",
     "must not start with -"),
    ("ipip_device-is-vxlan_device", None, ["-e", "podnet_ipip_device=vxlan0"], None, "podnet_ipip_device",
     "must differ"),
    ("vxlan_group-unicast", None, ["-e", "podnet_vxlan_group=10.0.0.1"], None, "podnet_vxlan_group",
     "not a multicast address"),
    ("pod_gateway-malformed", None, ["-e", "podnet_pod_gateway=169.254.10"], None, "podnet_pod_gateway",
     "not an IPv4 address"),
    ("iptables_chain-bad", None, ["-e", '{"podnet_iptables_chain": "-j ACCEPT"}'], None, "podnet_iptables_chain",
     "not a valid chain name"),
    ("state_dir-relative", None, ["-e", "podnet_state_dir=state"], None, "podnet_state_dir", "not an absolute path"),
    ("direct_routing-not-bool", None, ["-e", "podnet_direct_routing=maybe"], None, "podnet_direct_routing", "maybe"),
    # what only the nodes can tell
    ("host-gw-peer-not-on-link", None, ["-e", "mode=host-gw"], "h1", "mode", "peer(s) h3 are not in this node's"),
    ("multicast-across-subnets", None, ["-e", "podnet_vxlan_fdb=multicast"], None, "podnet_vxlan_fdb",
     "multicast needs every node in one subnet"),
    ("pod_cidr-in-own-underlay-subnet", {"h2": {"pod_cidr": "10.57.4.128/25", "pods": []}}, [], "h2", "pod_cidr",
     "overlaps the node's own underlay subnet 10.57.4.0/24"),
    ("no-route-to-pod-gateway", NoDefaultRoute("h2"), [], "h2", "podnet_pod_gateway",
     "so proxy ARP would never answer"),
]


def bad_inventory(lab, tmp_path, change):
    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    hosts = inventory["nodes"]["hosts"]
    if callable(change):
        change(hosts)
    else:
        for host, values in (change or {}).items():
            for key, value in values.items():
                if value is DEL:
                    hosts[host].pop(key, None)
                else:
                    hosts[host][key] = copy.deepcopy(value)
    path = str(tmp_path / "bad-inventory.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle)
    return path


def remove_default_route(ns):
    """Delete ``ns``'s default route; return a function that puts exactly it back."""
    routes = [r for r in ipj(ns, "route", "show", "default") if r.get("dst") == "default"]
    assert routes, "the lab node %s has no default route to remove" % ns
    sh("ip", "-n", ns, "route", "del", "default")

    def restore():
        for route in routes:
            argv = ["ip", "-n", ns, "route", "add", "default", "via", route["gateway"], "dev", route["dev"]]
            if route.get("protocol"):
                argv += ["proto", route["protocol"]]
            if route.get("metric"):
                argv += ["metric", str(route["metric"])]
            sh(*argv)
    return restore


def assert_refused(rc, results, output, host, var, fragment):
    assert rc != 0, "the bad input was accepted:\n" + output
    changed = [(h, r.get("msg") or r.get("cmd")) for h, r in results if r.get("changed")]
    assert not changed, "a refused run reported changes: %s" % changed
    failures = [(h, " ".join(str(r.get("msg", "")).split())) for h, r in results if r.get("failed")]
    assert failures, "no task failed:\n" + output
    for task_host, msg in failures:
        names_host = host is None or task_host == host or ("host %s:" % host) in msg
        if var in msg and fragment in msg and names_host:
            return msg
    raise AssertionError("no failure names host %s and variable %s with %r:\n%s"
                         % (host, var, fragment, "\n".join("[%s] %s" % f for f in failures)))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_change(lab, tmp_path, case):
    _id, change, extra, host, var, fragment = case
    restore = None
    before = lab.snapshot
    if isinstance(change, NoDefaultRoute):
        restore = remove_default_route(lab.hosts[change.host]["ansible_host"])
        change = None
        before = full_state(lab)
    try:
        inventory = bad_inventory(lab, tmp_path, change) if change else lab.inventory
        rc, results, output = play_json(lab, inventory, *extra)
        assert_refused(rc, results, output, host, var, fragment)
        assert_same(full_state(lab), before, "a refused run")
    finally:
        if restore:
            restore()
    if restore:
        assert_same(full_state(lab), lab.snapshot, "restoring the default route")
