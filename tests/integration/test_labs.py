"""A classroom on one machine: `make lab LAB=a` and `make lab LAB=b` side by side, the seed's
addresses in each; the labs cannot reach each other; `make lab-down LAB=a` leaves b working;
`make graph` draws a lab.  Two labs (the lab inventory, named by this run) for the whole file.
"""

import json
import os
import re
import struct
import subprocess
from xml.etree import ElementTree

import pytest

from conftest import RUN_ID, ROOT, VENV_BIN, ipj, sh

SEED_NODES, SEED_PODS = ("host1", "host2"), ("pod-a", "pod-b")


def make(*args, check=True):
    proc = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + list(args),
                          capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, "make %s failed:\n%s\n%s" % (" ".join(args), proc.stdout[-6000:], proc.stderr[-2000:])
    return proc


class Classroom(object):
    def __init__(self, tmp):
        self.tmp = tmp
        self.names = ["pnt%sl%s" % (RUN_ID, x) for x in "ab"]

    def args(self, lab):
        return ["LAB=" + lab, "LAB_ARGS=-e podnet_state_dir=%s/%s -e graph_dir=%s/graphs" % (self.tmp, lab, self.tmp)]

    def namespaces(self, lab):
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(lab + "-"))

    def remove(self, lab):
        make("lab-down", *self.args(lab), check=False)
        for ns in self.namespaces(lab):
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    room = Classroom(tmp_path_factory.mktemp("classroom"))
    try:
        for lab in room.names:
            up = make("lab", *room.args(lab))
            assert "The lab %s is up in vxlan mode" % lab in up.stdout
        yield room
    finally:
        for lab in room.names:
            room.remove(lab)


def rx_packets(ns, ifname="eth0"):
    return ipj(ns, "-stats", "link", "show", "dev", ifname)[0]["stats64"]["rx"]["packets"]


def test_each_lab_has_its_own_names_and_the_seed_addresses(classroom):
    for lab in classroom.names:
        expected = ["%s-%s" % (lab, n) for n in SEED_NODES + SEED_PODS + ("rt", "sw-10.57.4.0-24")]
        assert classroom.namespaces(lab) == sorted(expected)
        addresses = [(a["ifname"], i["local"]) for a in ipj(lab + "-host1", "addr", "show") for i in a["addr_info"]]
        assert ("eth0", "10.57.4.20") in addresses
        assert [i["local"] for a in ipj(lab + "-pod-b", "-4", "addr", "show", "dev", "eth0")
                for i in a["addr_info"]] == ["192.168.11.10"]


def test_labs_are_isolated(classroom):
    a, b = classroom.names
    # No wire leaves a lab: every veth of every namespace of a lab ends in a namespace of the same lab.
    for lab in classroom.names:
        for ns in classroom.namespaces(lab):
            ids = dict((str(e["nsid"]), e.get("name")) for e in json.loads(sh("ip", "-n", ns, "-json", "netns", "list-id") or "[]"))
            for link in ipj(ns, "-details", "link", "show"):
                if "link_netnsid" in link:
                    peer = ids.get(str(link["link_netnsid"]))
                    assert peer and peer.startswith(lab + "-"), (ns, link["ifname"], peer)
    # Lab a's pod-a pings 192.168.11.10: lab a's pod-b answers; lab b's pod-b never sees a packet.
    a_before, b_before = rx_packets(a + "-pod-b"), rx_packets(b + "-pod-b")
    sh("ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "192.168.11.10", ns=a + "-pod-a")
    assert rx_packets(a + "-pod-b") >= a_before + 5
    assert rx_packets(b + "-pod-b") == b_before


def svg_texts(path):
    texts = [t.text or "" for t in ElementTree.parse(str(path)).iter("{http://www.w3.org/2000/svg}text")]
    assert texts, "%s has no text" % path
    return texts


def test_graph_of_the_lab_names_every_node_and_pod(classroom):
    lab = classroom.names[1]
    first = make("graph", *classroom.args(lab))
    svg, png = classroom.tmp / "graphs" / (lab + "-vxlan.svg"), classroom.tmp / "graphs" / (lab + "-vxlan.png")
    texts = svg_texts(svg)
    for name in ("node host1", "node host2", lab + "-pod-a", lab + "-pod-b", "192.168.10.10", "192.168.11.10",
                 "switch %s-sw-10.57.4.0-24" % lab, "vxlan0 (vxlan)", "VNI 100, port 4789",
                 "192.168.11.0/24 via 192.168.11.1 dev vxlan0", "192.168.10.0/24 via 192.168.10.1 dev vxlan0"):
        assert name in texts, (name, texts)
    with open(str(png), "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and min(struct.unpack(">II", head[16:24])) > 100
    assert re.search(r"localhost\s+: ok=\d+\s+changed=1 ", first.stdout)
    # Nothing changed on the nodes: drawing it again writes nothing.
    again = make("graph", *classroom.args(lab))
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", again.stdout), again.stdout[-2000:]


def test_lab_down_removes_one_lab_and_leaves_the_other_working(classroom):
    a, b = classroom.names
    make("lab-down", *classroom.args(a))
    assert classroom.namespaces(a) == []
    assert os.listdir(str(classroom.tmp / a)) == []   # teardown took its saved sysctls back
    assert len(classroom.namespaces(b)) == 6
    verify = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/verify.yml", "-e", "lab=" + b,
                             "-e", "podnet_state_dir=%s/%s" % (classroom.tmp, b)],
                            cwd=ROOT, capture_output=True, text=True, check=False,
                            env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert verify.returncode == 0, verify.stdout[-4000:]
    assert "vxlan on the wire" in verify.stdout
