"""Keeping intruders out: the encapsulation guard and the network policy, end to end on a lab.

The guard: an intruder namespace on the lab's switch (an unused underlay address) sends a
crafted encapsulated packet (scapy) that carries an ICMP echo "from" the second pod to the
first pod. The pod never sees it: the first node's guard drops it, and its DROP counter says
when. The same packet with a member node's address as outer source (spoofed from the same
intruder) is delivered, so the test fails when the guard lets everything through or nothing.

The policy (podnet_policy: the first pod may not initiate connections to the second): ping
and a TCP connect from the first pod to the second fail; from the second to the first they
work, replies included.

vxlan and host-gw run here; ipip's guard and policy are checked in test_ipip.py (the qemu VM).
"""

import json
import subprocess
import time

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils.validate import vtep_mac
from conftest import ipj, settle, sh
from test_site import Lab, assert_same, changed_per_host

PYTHON = "/usr/bin/python3"   # Debian's, which has python3-scapy
INTRUDER_IP = "10.57.4.99"
PORT = 5201

# scapy: one encapsulated ICMP echo, outer and inner addresses from argv, sent `count` times.
CRAFT = r"""
import struct, sys
from scapy.all import Ether, ICMP, IP, UDP, Raw, sendp
mode, outer_src, outer_dst, dst_mac, inner_src, inner_dst, vtep_mac, port, vni, count = sys.argv[1:]
inner = IP(src=inner_src, dst=inner_dst, ttl=64) / ICMP(type=8, id=0x5eed, seq=1) / b"podnet guard test"
if mode == "vxlan":
    # The VXLAN header by hand (flag I, the VNI): scapy's VXLAN layer over Ether sets the GPE
    # next-protocol flag, which Linux drops as a malformed header.
    header = Raw(struct.pack("!II", 0x08000000, int(vni) << 8))
    outer = IP(src=outer_src, dst=outer_dst, ttl=64) / UDP(sport=49152, dport=int(port)) / header / \
        Ether(src="02:00:0a:39:04:63", dst=vtep_mac) / inner
else:
    outer = IP(src=outer_src, dst=outer_dst, ttl=64, proto=4) / inner
sendp(Ether(dst=dst_mac) / outer, iface="eth0", count=int(count), verbose=False)
"""

SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(64))
    c.close()
"""

CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(b"podnet")
    sys.exit(0 if c.recv(64) == b"podnet" else 4)
except socket.timeout:
    sys.exit(2)
except ConnectionRefusedError:
    sys.exit(3)
"""


def wait_for(what, condition, seconds=60):
    """Poll ``condition`` until it holds (a deadline against hangs, not a timed assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("gave up waiting for " + what)
        time.sleep(0.2)


class Cluster(object):
    """The lab's two nodes and pods, an intruder on the switch, and the probes."""

    def __init__(self, lab):
        self.lab = lab
        (self.h1, self.h2) = [lab.hosts[h] for h in sorted(lab.hosts)]
        self.n1, self.n2 = self.h1["ansible_host"], self.h2["ansible_host"]
        self.p1, self.p2 = self.h1["pods"][0], self.h2["pods"][0]
        self.intruder = lab.prefix + "x"
        self.servers = []

    def policy_vars(self):
        """podnet_policy (pod 1 may not initiate to pod 2), and the checksum-offload workaround."""
        policy = [{"from": self.p1["name"], "to": self.p2["name"], "action": "deny"}]
        return ["-e", json.dumps({"podnet_policy": policy}), "-e", "podnet_tx_checksum_offload=false"]

    def offload(self, device):
        """tx-checksum-ip-generic of node 1's tunnel device: on or off."""
        for line in sh("ethtool", "-k", device, ns=self.n1).splitlines():
            if line.strip().startswith("tx-checksum-ip-generic:"):
                return line.split(":")[1].split()[0]
        raise AssertionError("ethtool -k %s shows no tx-checksum-ip-generic" % device)

    # -- the intruder -------------------------------------------------------------------

    def add_intruder(self):
        switch = self.lab.prefix + "sw-10.57.4.0-24"
        sh("ip", "netns", "add", self.intruder)
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", ns=self.intruder)
        sh("ip", "-n", switch, "link", "add", "p-99", "type", "veth", "peer", "name", "eth0", "netns", self.intruder)
        sh("ip", "-n", switch, "link", "set", "p-99", "master", "br0", "up")
        sh("ip", "-n", self.intruder, "addr", "add", INTRUDER_IP + "/24", "dev", "eth0")
        sh("ip", "-n", self.intruder, "link", "set", "eth0", "up")
        settle(self.intruder)

    def send(self, mode, outer_src, count=3, port=4789, vni=100):
        """The crafted packet: pod 2 -> pod 1 ICMP echo, encapsulated to node 1."""
        eth0 = ipj(self.n1, "link", "show", "eth0")[0]["address"]
        vtep = vtep_mac(self.h1["node_ip"]) if mode == "vxlan" else "-"   # podnet's, also with no vxlan0
        sh(PYTHON, "-c", CRAFT, mode, outer_src, self.h1["node_ip"], eth0, self.p2["ip"], self.p1["ip"], vtep,
           port, vni, count, ns=self.intruder)

    # -- counters ----------------------------------------------------------------------

    def echoes_seen_by_pod1(self):
        rows = [line.split() for line in sh("cat", "/proc/net/snmp", ns=self.p1["name"]).splitlines()
                if line.startswith("Icmp:")]
        return int(dict(zip(rows[0], rows[1]))["InEchos"])

    def guard_drops(self):
        lines = sh("iptables", "-w", "-L", "PODNET-INPUT", "-n", "-v", "-x", ns=self.n1).splitlines()
        return sum(int(l.split()[0]) for l in lines[2:] if l.split()[2:3] == ["DROP"])

    def chains(self, ns):
        return sorted(l.split()[1] for l in sh("iptables", "-w", "-S", ns=ns).splitlines() if l.startswith("-N "))

    # -- pod to pod --------------------------------------------------------------------

    def ping(self, src, dst):
        return subprocess.run(["ip", "netns", "exec", src["name"], "ping", "-n", "-c", "2", "-W", "2", dst["ip"]],
                              capture_output=True, check=False).returncode == 0

    def serve(self, pod):
        proc = subprocess.Popen(["ip", "netns", "exec", pod["name"], PYTHON, "-c", SERVER, str(PORT)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.servers.append(proc)
        wait_for("a listener in " + pod["name"],
                 lambda: sh("ss", "-Htln", "sport = :%d" % PORT, ns=pod["name"]).strip() != "")

    def connect(self, src, dst):
        """0 connected and echoed, 2 timed out (dropped), 3 refused."""
        return subprocess.run(["ip", "netns", "exec", src["name"], PYTHON, "-c", CLIENT, dst["ip"], str(PORT), "4"],
                              capture_output=True, check=False).returncode

    def stop_servers(self):
        for proc in self.servers:
            proc.kill()
            proc.wait()
        self.servers = []

    # -- the checks --------------------------------------------------------------------

    def check_guard(self, mode):
        assert "PODNET-INPUT" in self.chains(self.n1)
        seen, drops = self.echoes_seen_by_pod1(), self.guard_drops()
        # From an address that is no node: dropped by node 1's guard, the pod sees nothing.
        self.send(mode, INTRUDER_IP)
        wait_for("the guard to drop the intruder's packets", lambda: self.guard_drops() >= drops + 3)
        assert self.echoes_seen_by_pod1() == seen, "the pod saw the intruder's packets"
        # The same packets from node 2's address: delivered (so the guard is what stopped them).
        self.send(mode, self.h2["node_ip"])
        wait_for("the pod to see the member's packets", lambda: self.echoes_seen_by_pod1() >= seen + 3)
        assert self.guard_drops() == drops + 3

    def check_policy(self):
        self.serve(self.p1)
        self.serve(self.p2)
        try:
            assert not self.ping(self.p1, self.p2), "pod 1 may not ping pod 2"
            assert self.connect(self.p1, self.p2) == 2, "pod 1 may not connect to pod 2 (dropped, not refused)"
            assert self.ping(self.p2, self.p1), "pod 2 pings pod 1 and gets the replies"
            assert self.connect(self.p2, self.p1) == 0, "pod 2 connects to pod 1 and gets the echo back"
        finally:
            self.stop_servers()


@pytest.fixture
def cluster(tmp_path):
    lab = Lab(tmp_path, "g", [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24")])
    one = Cluster(lab)
    try:
        lab.up()
        one.add_intruder()
        yield one
    finally:
        one.stop_servers()
        lab.down()


@pytest.mark.timeout(2400)   # six playbook runs; on a loaded 2-core machine that exceeds the default 600 s
def test_vxlan_guard_and_policy_then_host_gw(cluster):
    lab = cluster.lab
    pristine = lab.state()
    policy = cluster.policy_vars()

    lab.converge("vxlan", *policy)
    lab.verify("vxlan", *policy)         # verify expects pod 1 -> pod 2 to fail
    assert cluster.offload("vxlan0") == "off"
    cluster.check_guard("vxlan")
    cluster.check_policy()
    again = lab.converge("vxlan", *policy)
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]

    # Without the guard the intruder's packets do reach the pod; the next converge puts it back.
    sh("iptables", "-w", "-D", "INPUT", "-m", "comment", "--comment", "podnet", "-j", "PODNET-INPUT", ns=cluster.n1)
    seen = cluster.echoes_seen_by_pod1()
    cluster.send("vxlan", INTRUDER_IP)
    wait_for("the intruder's packets to reach the unguarded pod", lambda: cluster.echoes_seen_by_pod1() >= seen + 3)
    repair = lab.converge("vxlan", *policy)
    assert changed_per_host(repair) == {"h1": 1, "h2": 0}, repair.stdout[-3000:]
    cluster.check_guard("vxlan")

    # host-gw: no encapsulation, so no guard; the policy holds.
    lab.converge("host-gw", *policy)
    assert cluster.chains(cluster.n1) == ["PODNET-FORWARD", "PODNET-POLICY"]
    cluster.check_policy()
    # Nor can an intruder inject encapsulated packets: with no tunnel device nothing decapsulates
    # them, even from a member's address.
    seen = cluster.echoes_seen_by_pod1()
    cluster.send("vxlan", cluster.h2["node_ip"])
    cluster.send("ipip", cluster.h2["node_ip"])
    # Then real pings on the same path: the pod counts exactly those.
    out = sh("ping", "-n", "-c", "2", "-W", "2", cluster.p1["ip"], ns=cluster.p2["name"])
    received = int(out.split(" received")[0].rsplit(" ", 1)[1])
    assert received > 0 and cluster.echoes_seen_by_pod1() == seen + received, out

    # Without the policy its chain goes and pod 1 reaches pod 2 again.
    lab.converge("host-gw")
    assert cluster.chains(cluster.n1) == ["PODNET-FORWARD"] and cluster.chains(cluster.n2) == ["PODNET-FORWARD"]
    assert cluster.ping(cluster.p1, cluster.p2)

    # Teardown with the policy in place: the three chains go in one transaction (the forward
    # chain before the policy chain it jumps to), leaving the node as before podnet.
    lab.converge("vxlan", *policy)
    lab.play("playbooks/teardown.yml")
    assert_same(lab.state(), pristine)


def test_unknown_pod_refused_and_check_mode_changes_nothing(cluster):
    lab = cluster.lab
    pristine = lab.state()
    bad = json.dumps({"podnet_policy": [{"from": cluster.p1["name"], "to": "nosuchpod"}]})
    refused = lab.play("site.yml", "-e", bad, check=False)
    assert refused.returncode != 0
    assert "podnet_policy[0].to: unknown pod 'nosuchpod'" in refused.stdout, refused.stdout[-3000:]
    assert_same(lab.state(), pristine, "a refused run")
    # On a fresh node, check mode plans the forward chain, the guard and the policy (one task) and
    # changes nothing.
    check = lab.play("site.yml", "-e", "mode=vxlan", "--check", *cluster.policy_vars())
    assert "Write podnet's forward, policy and encapsulation-guard chains" in check.stdout
    assert_same(lab.state(), pristine, "a check-mode run")
