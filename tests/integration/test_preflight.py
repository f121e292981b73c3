"""The pre-flight probe of the underlay (roles/preflight) on a lab whose router drops or narrows.

One lab for the file: h1 and h2 on the switch of 10.57.4.0/24, h3 behind the lab router on
10.57.5.0/24. The router (a namespace) is where the faults go: iptables rules in its FORWARD
chain drop IP protocol 4 or UDP to the VXLAN port between h1 and h3 only (a firewall between
racks, calico #2700, flannel #2388), or one of its legs gets a smaller MTU (a narrower link in
the path). Every fault is taken away again after its test. Traffic stays between the lab's
namespaces.

The tests run in file order: the blocked-pair tests first, while no pod namespace exists.
"""

import os

import pytest

from conftest import requires_ipip, sh
from test_site import Lab

THREE = [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24"), ("10.57.5.30", "192.168.12.0/24")]
SLOW = pytest.mark.timeout(1800)
H1, H3 = "10.57.4.20", "10.57.5.30"
LEG_B = "sw-0a390500"   # the router's leg into 10.57.5.0/24


class PreflightLab(Lab):
    def converge(self, mode, *extra, check=True):
        return self.play("site.yml", "-e", "mode=%s" % mode, *extra, check=check)

    def verify(self, mode, *extra, check=True):
        return self.play("playbooks/verify.yml", "-e", "mode=%s" % mode, *extra, check=check)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = PreflightLab(tmp_path_factory.mktemp("preflight"), "pf", THREE)
    lab.router = lab.prefix + "rt"
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def pods(lab):
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(lab.prefix + "p"))


def link_mtu(ns, ifname):
    return int(sh("cat", "/sys/class/net/%s/mtu" % ifname, ns=ns))


class Drop(object):
    """FORWARD rules in the lab router dropping ``match`` between h1 and h3, both ways."""

    def __init__(self, lab, *match):
        self.rules = [["FORWARD", "-s", a, "-d", b] + list(match) + ["-j", "DROP"] for a, b in ((H1, H3), (H3, H1))]
        self.ns = lab.router

    def __enter__(self):
        for rule in self.rules:
            sh("iptables", "-w", "-A", *rule, ns=self.ns)
        return self

    def __exit__(self, *exc):
        for rule in self.rules:
            sh("iptables", "-w", "-D", *rule, ns=self.ns, check=False)


def matrix(proc):
    """The preflight matrix lines of a run's output."""
    out = proc.stdout
    start = out.index("sender (row) -> receiver (column)")
    return out[start:out.index("]", start)]


@SLOW
def test_vxlan_blocked_pair_stops_before_any_pod_is_wired(lab):
    with Drop(lab, "-p", "udp", "--dport", "4789"):
        proc = lab.converge("vxlan", check=False)
    assert proc.returncode != 0, proc.stdout[-3000:]
    out = proc.stdout
    assert "h1 -> h3 (10.57.4.20 -> 10.57.5.30): UDP to port 4789 (vxlan) dropped" in out, out[-4000:]
    assert "h3 -> h1 (10.57.5.30 -> 10.57.4.20): UDP to port 4789 (vxlan) dropped" in out, out[-4000:]
    # Only that pair: h2 <-> h3 crosses the same router and passes.
    assert "h2 -> h3" not in out.split("preflight: the underlay")[-1], out[-4000:]
    shown = matrix(proc)
    print(shown)
    assert "udp dropped" in shown and "ok" in shown, shown
    assert pods(lab) == [], "a pod was wired although the underlay drops vxlan between h1 and h3"
    for ns in lab.namespaces:
        assert "vxlan0" not in sh("ip", "-br", "link", ns=ns)


@SLOW
def test_ipip_blocked_pair_stops_with_the_probes_error(lab):
    # The probe runs before the ipip role, so it answers even on a kernel without IPIP.
    with Drop(lab, "-p", "4"):
        proc = lab.converge("ipip", check=False)
    assert proc.returncode != 0, proc.stdout[-3000:]
    out = proc.stdout
    assert "h1 -> h3 (10.57.4.20 -> 10.57.5.30): IP protocol 4 (ipip) dropped" in out, out[-4000:]
    assert "preflight: the underlay does not carry ipip" in out, out[-4000:]
    assert pods(lab) == []


@SLOW
def test_preflight_false_skips_the_probe(lab):
    with Drop(lab, "-p", "udp", "--dport", "4789"):
        proc = lab.converge("vxlan", "-e", "podnet_preflight=false")
    assert "preflight vxlan:" not in proc.stdout
    assert len(pods(lab)) == 3


@SLOW
def test_loose_rp_filter_on_the_underlay_is_warned_and_left_alone(lab):
    """The plan's rp_filter warnings (rp_filter.py) are the run's own Ansible warnings."""
    h3 = lab.hosts["h3"]["ansible_host"]
    key = "net.ipv4.conf.eth0.rp_filter"
    before = sh("sysctl", "-n", key, ns=h3).strip()
    sh("sysctl", "-q", "-w", "%s=2" % key, ns=h3)
    try:
        proc = lab.converge("vxlan", "-e", "podnet_preflight=false")
        # Ansible prints warnings on stderr, folded to the terminal's width.
        text = " ".join(proc.stderr.split())
        assert "[WARNING]: h3: rp_filter is loose (2) on eth0" in text, proc.stderr[-4000:]
        assert "h1: rp_filter" not in text and "h2: rp_filter" not in text, proc.stderr[-4000:]
        assert sh("sysctl", "-n", key, ns=h3).strip() == "2", "podnet changed the user's rp_filter"
    finally:
        sh("sysctl", "-q", "-w", "%s=%s" % (key, before), ns=h3)


@SLOW
def test_a_narrower_link_in_the_path_gives_a_smaller_mtu_and_verify_proves_it(lab):
    sh("ip", "-n", lab.router, "link", "set", LEG_B, "mtu", "1400")
    try:
        proc = lab.converge("vxlan")
        assert "path mtu 1400" in matrix(proc), matrix(proc)
        for ns in lab.namespaces:
            assert link_mtu(ns, "vxlan0") == 1350, ns
        verified = lab.verify("vxlan")
        assert "MTU 1350" in verified.stdout
        # An explicit MTU the path cannot carry is refused, naming the variable and the path.
        refused = lab.converge("vxlan", "-e", "podnet_mtu=1450", check=False)
        assert refused.returncode != 0
        assert "podnet_mtu: 1450 is larger than the path" in refused.stdout, refused.stdout[-3000:]
        assert "path MTU 1400 - 50 = 1350" in refused.stdout
    finally:
        sh("ip", "-n", lab.router, "link", "set", LEG_B, "mtu", "1500")


@SLOW
def test_verify_finds_a_link_that_narrowed_after_the_converge(lab):
    lab.converge("vxlan")
    for ns in lab.namespaces:
        assert link_mtu(ns, "vxlan0") == 1450
    sh("ip", "-n", lab.router, "link", "set", LEG_B, "mtu", "1400")
    try:
        proc = lab.verify("vxlan", check=False)
    finally:
        sh("ip", "-n", lab.router, "link", "set", LEG_B, "mtu", "1500")
    assert proc.returncode != 0
    assert "path mtu 1400" in matrix(proc)
    assert "vxlan0 has MTU 1450, larger than the path carries (1350)" in proc.stdout, proc.stdout[-3000:]


def set_underlay_mtu(lab, mtu):
    """Every link of the lab's underlay: the nodes' eth0, the switch ports, the router's legs."""
    for ns in os.listdir("/run/netns"):
        if not ns.startswith(lab.prefix) or ns.startswith(lab.prefix + "p"):
            continue
        for line in sh("ip", "-o", "link", "show", ns=ns).splitlines():
            ifname = line.split(":")[1].strip().split("@")[0]
            if ifname == "eth0" or ifname.startswith(("p-", "sw-")):
                sh("ip", "-n", ns, "link", "set", ifname, "mtu", str(mtu))


@SLOW
def test_a_9000_byte_underlay_gives_8950_and_verify_proves_it(lab):
    set_underlay_mtu(lab, 9000)
    try:
        proc = lab.converge("vxlan")
        assert "path mtu" not in matrix(proc)
        for ns in lab.namespaces:
            assert link_mtu(ns, "vxlan0") == 8950, ns
        verified = lab.verify("vxlan")
        assert "MTU 8950" in verified.stdout
        # The pod-to-pod DF probe at 8950 - 28 crossed the underlay through the tunnel.
        assert "8922 bytes DF: passes" in verified.stdout, verified.stdout[-3000:]
    finally:
        set_underlay_mtu(lab, 1500)


@pytest.mark.vm_extra
@SLOW
@pytest.mark.ipip
def test_a_9000_byte_underlay_gives_8980_in_ipip_and_verify_proves_it(lab):
    requires_ipip()
    set_underlay_mtu(lab, 9000)
    try:
        proc = lab.converge("ipip")
        assert "path mtu" not in matrix(proc)
        for ns in lab.namespaces:
            assert link_mtu(ns, "mustang.tun0") == 8980, ns
        verified = lab.verify("ipip")
        assert "MTU 8980" in verified.stdout
        assert "8952 bytes DF: passes" in verified.stdout, verified.stdout[-3000:]
    finally:
        set_underlay_mtu(lab, 1500)
