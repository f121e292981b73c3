"""bgp mode end to end with real BIRD 2 processes, on one lab of throwaway namespaces.

The lab: h1 and h2 on 10.57.4.0/24 (an iBGP mesh of two), h3 on 10.57.5.0/24, and the lab router
joining the subnets, running BIRD as the racks' top-of-rack router (AS 65000; every node peers
with it, so it carries the pod CIDRs across the subnets). The tests run in order on that one lab
(one lab per file keeps `make test` lean): converge/verify/rerun/teardown, a rogue speaker and a
misbehaving router, a killed BIRD, a node leaving the inventory, mode switches. Last, the default
lab the way a person starts it, `make lab MODE=bgp` (the seed's host1/host2: a mesh of two), under
this run's own lab name.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from conftest import RUN_ID, ipj, sh
from test_labs import make
from test_site import Lab, assert_same, changed_per_host

NODES = [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24"), ("10.57.5.30", "192.168.12.0/24")]
ROUTER = {"10.57.4.0/24": "10.57.4.254", "10.57.5.0/24": "10.57.5.254"}
HOLD = 6
SETTINGS = dict(podnet_bgp_hold_time=HOLD, podnet_bgp_password="mesh-secret")


class BgpLab(Lab):
    def __init__(self, tmp_path):
        super(BgpLab, self).__init__(tmp_path, "g", NODES)
        for host in self.hosts.values():
            subnet = host["node_ip"].rsplit(".", 1)[0] + ".0/24"
            host["podnet_bgp_peers"] = [dict(address=ROUTER[subnet], **{"as": 65000})]
        self.all_hosts = dict(self.hosts)
        self.router = self.prefix + "rt"
        self.write()

    def write(self, names=None):
        with open(self.inventory) as handle:
            inventory = yaml.safe_load(handle)
        inventory["nodes"]["hosts"] = dict((n, h) for n, h in self.all_hosts.items() if names is None or n in names)
        inventory["nodes"]["vars"].update(SETTINGS)
        self.hosts = inventory["nodes"]["hosts"]
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(inventory, handle)

    def ns(self, name):
        return self.all_hosts[name]["ansible_host"]

    def pod(self, name):
        return self.all_hosts[name]["pods"][0]

    def bird_routes(self, name):
        return dict((r["dst"], r.get("gateway")) for r in ipj(self.ns(name), "route", "show", "proto", "bird"))

    def birds(self):
        return bird_processes(self.state_dir)


def bird_processes(state_dir):
    """(pid, argv) of the BIRD processes running on a config file in ``state_dir`` (a lab's)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid) as handle:
                argv = handle.read().split("\0")
        except OSError:
            continue
        if argv and argv[0].endswith("bird") and any(a.startswith(state_dir) for a in argv):
            found.append((int(pid), argv))
    return found


def sessions(verify):
    """(node, session) of each Established row of verify's sessions table."""
    return re.findall(r"^\s+- '?(h\d) +(\S+) +\S+ +\d+ +up +Established ", verify.stdout, re.M)


def until(predicate, what, bound=60, every=0.2):
    """Wait for an event (a BGP state change); the bound only keeps a broken run from hanging
    (no timing is asserted)."""
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("never happened: %s" % what)
        time.sleep(every)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = BgpLab(tmp_path_factory.mktemp("bgp"))
    try:
        lab.up()
        yield lab
    finally:
        lab.write()
        lab.play("playbooks/teardown.yml", check=False)
        lab.down()
        for pid, argv in lab.birds():
            os.kill(pid, signal.SIGTERM)


def capture_in_router(lab, leg, bpf, ping_from, ping_to):
    """tcpdump in the router namespace on one leg while a pod pings: what crosses the router.
    The pod pings until tcpdump has its packet (it may not be listening for the first one)."""
    proc = subprocess.Popen(["ip", "netns", "exec", lab.router, "tcpdump", "-l", "-n", "-c", "1", "-i", leg, bpf],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        def captured():
            sh("ping", "-c", "1", "-W", "1", ping_to, ns=ping_from, check=False)
            return proc.poll() is not None
        until(captured, "tcpdump in the router sees the ping", 30)
        return proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_host_gw_fails_bgp_converges_verifies_reruns_and_tears_down(lab):
    pristine = lab.state()
    refused = lab.play("site.yml", "-e", "mode=host-gw", check=False)
    assert refused.returncode != 0 and "host-gw needs every node on one L2 segment" in refused.stdout
    lab.converge("bgp")
    verify = lab.verify("bgp")
    assert "bgp on the wire" in verify.stdout, verify.stdout[-3000:]
    # The sessions table: every planned session Established (h1, h2: mesh + router; h3: router).
    assert sorted(sessions(verify)) == [("h1", "mesh_10_57_4_21"), ("h1", "peer_10_57_4_254"),
                                        ("h2", "mesh_10_57_4_20"), ("h2", "peer_10_57_4_254"),
                                        ("h3", "peer_10_57_5_254")], verify.stdout[-4000:]
    # h1: the mesh peer's pod CIDR straight from it, the other rack's through the router.
    assert lab.bird_routes("h1") == {"192.168.11.0/24": "10.57.4.21", "192.168.12.0/24": "10.57.4.254"}
    assert lab.bird_routes("h3") == {"192.168.10.0/24": "10.57.5.254", "192.168.11.0/24": "10.57.5.254"}
    # The pod's own packet crosses the router unencapsulated (captured on the router's leg into rack b).
    out = capture_in_router(lab, "sw-0a390500", "icmp", lab.pod("h1")["name"], lab.pod("h3")["ip"])
    assert "192.168.10.10 > 192.168.12.10: ICMP echo request" in out, out
    again = lab.converge("bgp")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    lab.play("playbooks/teardown.yml")
    assert_same(lab.state(), pristine)
    assert [argv for pid, argv in lab.birds() if lab.router not in " ".join(argv)] == []
    assert sorted(os.listdir(lab.state_dir)) == sorted(lab.router + "-bird" + s for s in (".conf", ".ctl", ".pid"))


ROGUE = """router id 10.57.4.99;
protocol device {}
protocol static rogue {
  ipv4;
  route 0.0.0.0/0 unreachable;
  route 10.99.0.0/24 unreachable;
  route 192.168.11.0/24 unreachable;
}
protocol bgp to_h1 {
  local 10.57.4.99 as 64512;
  neighbor 10.57.4.20 as 64512;
  direct;
  connect retry time 1;
  ipv4 { import none; export all; };
}
protocol bgp to_h2 {
  local 10.57.4.99 as 64512;
  neighbor 10.57.4.21 as 64512;
  direct;
  password "guessed";
  connect retry time 1;
  ipv4 { import none; export all; };
}
"""


def test_a_rogue_speaker_and_a_misbehaving_router_never_reach_a_kernel(lab):
    lab.converge("bgp")
    # A namespace on rack a's switch speaks BGP to h1 (no password) and h2 (a wrong one), offering
    # a default route, a foreign /24 and h2's own pod CIDR.
    intruder, switch = lab.prefix + "x", lab.prefix + "sw-10.57.4.0-24"
    sh("ip", "netns", "add", intruder)
    sh("ip", "-n", intruder, "link", "set", "lo", "up")
    sh("ip", "-n", switch, "link", "add", "p-99", "type", "veth", "peer", "name", "eth0", "netns", intruder)
    sh("ip", "-n", switch, "link", "set", "p-99", "master", "br0", "up")
    sh("ip", "-n", intruder, "addr", "add", "10.57.4.99/24", "dev", "eth0")
    sh("ip", "-n", intruder, "link", "set", "eth0", "up")
    conf, ctl = os.path.join(lab.state_dir, "rogue.conf"), os.path.join(lab.state_dir, "rogue.ctl")
    with open(conf, "w") as handle:
        handle.write(ROGUE)
    sh("bird", "-c", conf, "-s", ctl, "-P", os.path.join(lab.state_dir, "rogue.pid"), ns=intruder)
    try:
        # Wait for both refusals (events, not times): h1's BIRD closes the connection of a speaker it
        # has no session for; h2's kernel drops the TCP-MD5-signed SYNs from an address it holds no
        # key for (TcpExtTCPMD5Unexpected), so BIRD never even sees them.
        def md5_drops():
            out = sh("nstat", "-az", "TcpExtTCPMD5Unexpected", ns=lab.ns("h2"))
            return int(out.split("TcpExtTCPMD5Unexpected")[1].split()[0])
        until(lambda: "Last error:" in sh("birdc", "-s", ctl, "show", "protocols", "all", "to_h1", check=False),
              "h1 refuses the rogue")
        until(lambda: md5_drops() > 0, "h2's kernel drops the rogue's signed SYNs")
        text = sh("birdc", "-s", ctl, "show", "protocols")
        assert "Established" not in text, text
        # The router misbehaves: it announces everything it has, a default route, a foreign /24 and a
        # more-specific of h1's pod CIDR (which would pull h1's pods' traffic to it).
        router_conf = os.path.join(lab.state_dir, lab.router + "-bird.conf")
        with open(router_conf) as handle:
            good = handle.read()
        bad = good.replace("export filter podnet_pods_only;", "export all;") + (
            "\nprotocol static rogue {\n  ipv4;\n  route 0.0.0.0/0 unreachable;\n  route 10.99.0.0/24 unreachable;\n"
            "  route 192.168.10.128/25 unreachable;\n}\n")
        with open(router_conf, "w") as handle:
            handle.write(bad)
        ctl_rt = os.path.join(lab.state_dir, lab.router + "-bird.ctl")
        assert "Reconfigured" in sh("birdc", "-s", ctl_rt, "configure")
        h1_ctl = os.path.join(lab.state_dir, "h1-bird.ctl")
        until(lambda: "10.99.0.0/24" in sh("birdc", "-s", h1_ctl, "show", "route", "filtered"),
              "h1 receives (and filters) the router's bogus routes")
        for name in ("h1", "h2", "h3"):
            # (the lab's own default route via the router is static, not BIRD's)
            others = set(h["pod_cidr"] for n, h in lab.all_hosts.items() if n != name)
            assert set(lab.bird_routes(name)) == others, name
            dsts = set(r["dst"] for r in ipj(lab.ns(name), "route", "show", "table", "all"))
            assert not dsts & {"10.99.0.0/24", "192.168.10.128/25"}, name
        # verify still passes and reports what was filtered.
        verify = lab.verify("bgp")
        assert "filtered: 0.0.0.0/0 from peer_10_57_4_254" in verify.stdout, verify.stdout[-4000:]
        assert "filtered: 10.99.0.0/24 from peer_10_57_4_254" in verify.stdout
        assert "filtered: 192.168.10.128/25 from peer_10_57_5_254" in verify.stdout
    finally:
        sh("birdc", "-s", ctl, "down", check=False)
        sh("ip", "netns", "del", intruder, check=False)
        lab.up()   # the router's own configuration back (reconfigured: it changed)
    assert "10.99.0.0/24" not in sh("birdc", "-s", h1_ctl, "show", "route", "filtered")


def test_a_killed_bird_is_withdrawn_and_a_rerun_brings_it_back(lab):
    lab.converge("bgp")
    until(lambda: "192.168.12.0/24" in lab.bird_routes("h1"), "h1 learns h3's pod CIDR")
    with open(os.path.join(lab.state_dir, "h3-bird.pid")) as handle:
        os.kill(int(handle.read()), signal.SIGKILL)
    # Withdrawn from the others within the hold time (a killed BIRD's TCP sessions close at once).
    start = time.monotonic()
    until(lambda: all("192.168.12.0/24" not in lab.bird_routes(n) for n in ("h1", "h2")), "h3's CIDR withdrawn",
          bound=HOLD * 3)
    withdrawn = time.monotonic() - start
    assert withdrawn <= HOLD * 3
    again = lab.converge("bgp")
    assert changed_per_host(again)["h3"] > 0 and changed_per_host(again)["h1"] == 0
    until(lambda: "192.168.12.0/24" in lab.bird_routes("h1") and "192.168.12.0/24" in lab.bird_routes("h2"),
          "h3's CIDR back")


def test_a_node_leaving_the_inventory_leaves_no_route_and_mode_switches_leave_no_bird(lab):
    lab.converge("bgp")
    # h3 leaves (its BIRD still runs and the router still carries its CIDR): the others drop it.
    lab.write(["h1", "h2"])
    lab.converge("bgp")
    for name in ("h1", "h2"):
        assert "192.168.12.0/24" not in lab.bird_routes(name)
        assert "192.168.12.0/24" not in set(r["dst"] for r in ipj(lab.ns(name), "route", "show"))
    # bgp -> vxlan -> host-gw -> bgp on the mesh of two: nothing of the previous mode is left.
    for mode in ("vxlan", "host-gw"):
        lab.converge(mode)
        for name in ("h1", "h2"):
            assert lab.bird_routes(name) == {}, (mode, name)
            assert not os.path.exists(os.path.join(lab.state_dir, name + "-bird.conf"))
        assert [a for p, a in lab.birds() if any("/h1-bird" in x or "/h2-bird" in x for x in a)] == []
    vxlan = [l for l in ipj(lab.ns("h1"), "-details", "link", "show") if l["ifname"] == "vxlan0"]
    assert vxlan == []
    lab.converge("bgp")
    until(lambda: lab.bird_routes("h1") == {"192.168.11.0/24": "10.57.4.21"}, "the mesh of two converges")
    routes = ipj(lab.ns("h1"), "route", "show")
    # podnet's own routes (protocol 150) are the pod's host route only: no host-gw route is left.
    assert [r["dst"] for r in routes if r.get("protocol") in ("150", "podnet")] == [lab.pod("h1")["ip"]]
    lab.verify("bgp")
    # h3 is back: everything converges again.
    lab.write()
    lab.converge("bgp")
    verify = lab.verify("bgp")
    assert len(sessions(verify)) == 5
    assert json.dumps(lab.bird_routes("h3"), sort_keys=True) == json.dumps(
        {"192.168.10.0/24": "10.57.5.254", "192.168.11.0/24": "10.57.5.254"}, sort_keys=True)


def test_make_lab_mode_bgp_is_a_mesh_of_two(tmp_path):
    name = "pnt%smb" % RUN_ID
    state = str(tmp_path / "state")
    args = ["LAB=" + name, "LAB_ARGS=-e podnet_state_dir=%s" % state]

    def birds():
        return [p for p in os.listdir("/proc") if p.isdigit() and state in _cmdline(p)]
    try:
        up = make("lab", "MODE=bgp", *args)
        assert "The lab %s is up in bgp mode" % name in up.stdout, up.stdout[-3000:]
        # verify's table: the one mesh session, Established on both nodes.
        rows = re.findall(r"^\s+- '?(host\d) +(\S+) +\S+ +\d+ +up +Established ", up.stdout, re.M)
        assert sorted(rows) == [("host1", "mesh_10_57_4_21"), ("host2", "mesh_10_57_4_20")], up.stdout[-4000:]
        routes = ipj(name + "-host1", "route", "show", "proto", "bird")
        assert [(r["dst"], r.get("gateway")) for r in routes] == [("192.168.11.0/24", "10.57.4.21")]
        sh("ping", "-c", "1", "-W", "2", "192.168.11.10", ns=name + "-pod-a")
        assert len(birds()) == 2
    finally:
        make("lab-down", *args, check=False)
        for ns in os.listdir("/run/netns"):
            if ns.startswith(name + "-"):
                sh("ip", "netns", "del", ns, check=False)
    assert [n for n in os.listdir("/run/netns") if n.startswith(name + "-")] == []
    assert birds() == []
    left = os.listdir(state) if os.path.isdir(state) else []
    assert [f for f in left if f.startswith("host")] == [], left


def _cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid) as handle:
            return handle.read()
    except OSError:
        return ""
