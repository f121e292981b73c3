"""podnet removes only what it created: foreign objects survive converges, mode switches and teardown.

Before podnet runs, every node of a two-node lab gets objects podnet must never touch, several of
them shaped like podnet's own (the same destination in another table, the same FDB entries on
another vxlan device, a device with podnet's ipip name but another kind, a pod-like veth):

* routes of other protocols (static, boot, 42), one to the peer's pod CIDR in table 100;
* devices: a bridge with a veth port, a vxlan device of another name/VNI/port, a dummy-like device
  (dummy, or a tap where the kernel has no dummy) and a veth whose peer is in another namespace;
  with IPIP also an ipip device of another name (and the kernel's tunl0);
* permanent neighbour entries on eth0 and on the foreign vxlan device;
* permanent FDB entries on the foreign vxlan device;
* iptables rules in FORWARD (whose policy is DROP), INPUT, a user chain and the nat table.

Then site.yml converges in vxlan, switches to host-gw, switches to vxlan (flood) and teardown
runs; after every step the snapshot of just the foreign objects must equal the one taken before,
and after teardown the whole nodes are exactly as before. The ipip variant of the foreign objects
(``add_foreign(..., ipip=True)``) is used by test_ipip.py, which runs in the qemu VM.
"""

import json
import re

from conftest import ipj, kernel_has, settle, sh
from test_site import Lab, assert_same

PEERS = [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24")]
FLOOD = ["-e", "podnet_vxlan_fdb=flood"]
# vxlan -> host-gw -> vxlan (flood) -> teardown (ipip: test_ipip.py).
STEPS = [("vxlan", []), ("host-gw", []), ("vxlan", FLOOD), ("teardown", [])]
PODNET_CHAIN = re.compile(r"\bPODNET-")


def add_foreign(lab, ns, index, ipip):
    """Objects a user or another tool put on node ``ns`` (the ``index``-th node)."""
    node_ip, pod_cidr = PEERS[index]
    peer_ip, peer_cidr = PEERS[1 - index]

    def ip(*args):
        return sh("ip", "-n", ns, *args)

    # Devices.
    ip("link", "add", "brf0", "type", "bridge")
    ip("link", "add", "veth-f0", "type", "veth", "peer", "name", "vfb0")
    ip("link", "set", "veth-f0", "master", "brf0")
    for dev in ("brf0", "veth-f0", "vfb0"):
        ip("link", "set", dev, "up")
    ip("addr", "add", "10.88.%d.1/24" % index, "dev", "brf0")
    ip("link", "add", "vxf0", "type", "vxlan", "id", "4242", "dstport", "8472", "local", node_ip, "dev", "eth0",
       "nolearning")
    ip("link", "set", "vxf0", "up")
    # A device with podnet's ipip device name but another kind (not in the ipip variant, where podnet
    # needs that name for its own device).
    dummy = "dumf0" if ipip else "mustang.tun0"
    if kernel_has("dummy"):
        ip("link", "add", dummy, "type", "dummy")
    else:
        ip("tuntap", "add", "dev", dummy, "mode", "tap")
    # A pod-like namespace podnet was not told about: a veth named like a pod's, proxy ARP, a /32 route.
    other = "%sf%d" % (lab.prefix, index + 1)
    sh("ip", "netns", "add", other)
    ip("link", "add", "veth-f1", "type", "veth", "peer", "name", "eth0", "netns", other)
    ip("link", "set", "veth-f1", "up")
    sh("ip", "-n", other, "link", "set", "eth0", "up")
    sh("sysctl", "-qw", "net.ipv4.conf.veth-f1.proxy_arp=1", ns=ns)
    pod_like = pod_cidr.replace(".0/24", ".99")
    ip("route", "add", pod_like, "dev", "veth-f1", "scope", "link", "proto", "static")
    if ipip:
        ip("link", "add", "ipf0", "type", "ipip", "local", node_ip, "remote", "10.57.4.99", "ttl", "32")
        ip("link", "set", "ipf0", "up")
        ip("route", "add", "10.99.4.0/24", "dev", "ipf0", "proto", "static")
    # Routes.
    ip("route", "add", "10.99.1.0/24", "via", "10.57.4.1", "dev", "eth0", "proto", "static")
    ip("route", "add", "10.99.2.0/24", "dev", "brf0", "proto", "42", "metric", "50")
    ip("route", "add", "10.99.3.0/24", "via", "10.57.4.1", "dev", "eth0")
    ip("route", "add", "10.99.6.0/24", "via", "10.99.6.1", "dev", "vxf0", "onlink", "proto", "static")
    ip("route", "add", peer_cidr, "via", "10.57.4.1", "dev", "eth0", "proto", "static", "table", "100")
    ip("route", "add", "default", "via", "10.57.4.254", "dev", "eth0", "proto", "static", "table", "100")
    # Permanent neighbour entries (one with a MAC of podnet's VTEP shape) and FDB entries on the foreign
    # vxlan device, the same as podnet writes on its own (the peer's VTEP MAC and flood entry).
    ip("neigh", "add", "10.57.4.77", "lladdr", "02:00:00:00:04:77", "dev", "eth0", "nud", "permanent")
    ip("neigh", "add", "10.57.4.78", "lladdr", "0e:50:0a:39:04:4e", "dev", "eth0", "nud", "permanent")
    ip("neigh", "add", peer_cidr.replace(".0/24", ".1"), "lladdr", "0e:50:0a:39:04:63", "dev", "vxf0",
       "nud", "permanent")
    vtep = "0e:50:" + ":".join("%02x" % int(o) for o in peer_ip.split("."))
    for args in (["append", "00:00:00:00:00:00", "dev", "vxf0", "dst", peer_ip],
                 ["append", "00:00:00:00:00:00", "dev", "vxf0", "dst", "10.57.4.77"],
                 ["add", vtep, "dev", "vxf0", "dst", peer_ip]):
        sh("bridge", "-n", ns, "fdb", *args, "self", "permanent")
    # iptables.
    for rule in (["-P", "FORWARD", "DROP"],
                 ["-A", "FORWARD", "-s", "10.99.0.0/16", "-j", "ACCEPT"],
                 ["-A", "FORWARD", "-s", "192.168.0.0/16", "-d", "192.168.0.0/16", "-j", "ACCEPT"],
                 ["-N", "FOREIGN-FWD"],
                 ["-A", "FOREIGN-FWD", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
                 ["-A", "FOREIGN-FWD", "-j", "RETURN"],
                 ["-A", "FORWARD", "-j", "FOREIGN-FWD"],
                 ["-A", "INPUT", "-p", "udp", "--dport", "8472", "-j", "ACCEPT"],
                 ["-t", "nat", "-A", "POSTROUTING", "-s", pod_cidr, "!", "-d", "192.168.0.0/16",
                  "-j", "MASQUERADE"]):
        sh("iptables", "-w", *rule, ns=ns)
    settle(ns)
    settle(other)


def podnet_links(lab):
    """(name, kind) of every device podnet may create: its tunnels and its pods' veths."""
    ours = {("vxlan0", "vxlan"), ("mustang.tun0", "ipip")}
    for host in lab.hosts.values():
        ours |= set((pod["host_ifname"], "veth") for pod in host["pods"])
    return ours


def foreign_state(lab, ns):
    """Everything on ``ns`` that is not podnet's: devices, addresses, routes, neighbours, FDB, iptables."""
    links = ipj(ns, "-details", "link", "show")

    def kind(link):
        return link.get("linkinfo", {}).get("info_kind")

    def config(link):   # a bridge's running timers (gc_timer, hello_timer, ...) are not configuration
        data = link.get("linkinfo", {}).get("info_data") or {}
        return json.dumps(dict((k, v) for k, v in data.items() if not k.endswith("_timer")), sort_keys=True)

    ours = set(l["ifname"] for l in links if (l["ifname"], kind(l)) in podnet_links(lab))
    state = dict(links=sorted(
        (l["ifname"], kind(l), l["mtu"], tuple(sorted(l["flags"])), l.get("address"), l.get("master"),
         config(l))
        for l in links if l["ifname"] not in ours))
    state["addrs"] = sorted((a["ifname"], i["local"], i["prefixlen"]) for a in ipj(ns, "addr", "show")
                            if a["ifname"] not in ours for i in a.get("addr_info", []))
    state["routes"] = sorted(
        tuple(str(r.get(k)) for k in ("table", "type", "dst", "gateway", "dev", "protocol", "scope", "metric",
                                      "prefsrc", "flags"))
        for r in ipj(ns, "route", "show", "table", "all")
        if r.get("dev") not in ours and str(r.get("protocol")) not in ("150", "podnet"))
    state["neigh"] = sorted((n["dst"], n.get("dev"), n.get("lladdr"), tuple(n.get("state", [])))
                            for n in ipj(ns, "neigh", "show")
                            if n.get("dev") not in ours and set(n.get("state", [])) & {"PERMANENT", "NOARP"})
    state["fdb"] = sorted((f["mac"], f.get("ifname"), f.get("dst"), f.get("master"), f.get("state"),
                           tuple(f.get("flags", [])))
                          for f in json.loads(sh("bridge", "-n", ns, "-json", "fdb", "show") or "[]")
                          if f.get("ifname") not in ours and f.get("state") in ("permanent", "static"))
    for table in ("filter", "nat"):
        lines = []
        for line in sh("iptables-save", "-t", table, ns=ns).splitlines():
            if not line or line.startswith(("#", "*", "COMMIT")) or PODNET_CHAIN.search(line):
                continue
            lines.append(" ".join(line.split()[:2]) if line.startswith(":") else line)
        state["iptables-" + table] = lines   # in order: podnet must not reorder foreign rules either
    return state


def assert_foreign_intact(lab, before, step):
    problems = []
    for ns in lab.namespaces:
        now = foreign_state(lab, ns)
        for key in before[ns]:
            if now[key] != before[ns][key]:
                gone = [x for x in before[ns][key] if x not in now[key]]
                new = [x for x in now[key] if x not in before[ns][key]]
                problems.append("%s %s: gone %s, new %s%s"
                                % (ns, key, gone, new, "" if gone or new else " (order changed)"))
    assert not problems, "after %s, foreign objects changed:\n%s" % (step, "\n".join(problems))


def run_sequence(lab, steps):
    lab.up()
    for index, ns in enumerate(lab.namespaces):
        add_foreign(lab, ns, index, ipip=False)
    pristine = lab.state()
    before = dict((ns, foreign_state(lab, ns)) for ns in lab.namespaces)
    for key in ("links", "routes", "neigh", "fdb", "iptables-filter", "iptables-nat"):
        assert before[lab.namespaces[0]][key], "the foreign %s were not set up" % key
    for mode, extra in steps:
        if mode == "teardown":
            lab.play("playbooks/teardown.yml")
        else:
            lab.converge(mode, *extra)
            routes = ipj(lab.namespaces[0], "route", "show", "proto", "150")
            assert any(r["dst"] == PEERS[1][1] for r in routes), "%s did not route the peer: %s" % (mode, routes)
        assert_foreign_intact(lab, before, "%s %s" % (mode, " ".join(extra)))
    assert_same(lab.state(), pristine, "teardown with foreign objects")


def test_foreign_objects_survive_vxlan_host_gw_flood_teardown(tmp_path):
    lab = Lab(tmp_path, "o", PEERS)
    try:
        run_sequence(lab, STEPS)
    finally:
        lab.down()
