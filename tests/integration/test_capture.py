"""make capture: per mode, a pcap of a pod-to-pod ping on the sender's underlay and tunnel device,
read back with tshark.  One lab (the lab inventory, named by this run) for the whole file; ipip's
capture runs in the qemu VM, as part of test_ipip.py's lab.
"""

import os
import subprocess

import pytest

from conftest import RUN_ID, ROOT, sh
from pcaps import echo_requests, packets

POD_A, POD_B = "192.168.10.10", "192.168.11.10"
NODE1, NODE2 = "10.57.4.20", "10.57.4.21"


def make(*args):
    proc = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + list(args),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "make %s failed:\n%s\n%s" % (" ".join(args), proc.stdout[-6000:], proc.stderr[-2000:])
    return proc


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("capture")
    name = "pnt%scap" % RUN_ID
    args = ["LAB=" + name, "LAB_ARGS=-e podnet_state_dir=%s/state -e capture_dir=%s/captures" % (tmp, tmp)]
    try:
        make("lab", *args)
        yield dict(name=name, args=args, dir=tmp / "captures")
    finally:
        make("lab-down", *args)
        for ns in os.listdir("/run/netns"):
            if ns.startswith(name + "-"):
                sh("ip", "netns", "del", ns, check=False)


def test_vxlan_capture_shows_udp_4789_vni_100_around_the_inner_frame(lab):
    make("capture", "MODE=vxlan", *lab["args"])
    underlay = lab["dir"] / ("%s-vxlan-underlay-eth0.pcap" % lab["name"])
    tunnel = lab["dir"] / ("%s-vxlan-tunnel-vxlan0.pcap" % lab["name"])
    requests = echo_requests(underlay, POD_A, POD_B)
    assert requests, packets(underlay)
    for packet in packets(underlay):
        # Outer Ethernet + IP + UDP + VXLAN, then the pods' whole Ethernet frame and their packet.
        assert packet["frame.protocols"] == ["eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp:data"], packet
        assert packet["udp.dstport"] == ["4789"] and packet["vxlan.vni"] == ["100"], packet
        assert sorted(packet["ip.src"][:1] + packet["ip.dst"][:1]) == [NODE1, NODE2], packet
    # The inner frame is addressed to the peer's VTEP MAC (0e:50: and host2's node IP), outer to host2.
    assert requests[0]["ip.src"] == [NODE1, POD_A] and requests[0]["ip.dst"] == [NODE2, POD_B]
    assert requests[0]["eth.dst"][1] == "0e:50:0a:39:04:15", requests[0]
    # On the tunnel device: the pods' frame alone, nothing around it.
    assert echo_requests(tunnel, POD_A, POD_B)
    assert {p["frame.protocols"][0] for p in packets(tunnel)} == {"eth:ethertype:ip:icmp:data"}
    assert {p["ip.src"][0] for p in packets(tunnel)} == {POD_A, POD_B}


def test_host_gw_capture_shows_the_pods_own_packet(lab):
    make("capture", "MODE=host-gw", *lab["args"])
    underlay = lab["dir"] / ("%s-host-gw-underlay-eth0.pcap" % lab["name"])
    assert echo_requests(underlay, POD_A, POD_B), packets(underlay)
    for packet in packets(underlay):
        # Nothing around the pods' packet: one IP header, the pods' addresses.
        assert packet["frame.protocols"] == ["eth:ethertype:ip:icmp:data"], packet
        assert packet["ip.proto"] == ["1"] and {packet["ip.src"][0], packet["ip.dst"][0]} == {POD_A, POD_B}, packet
    # host-gw has no tunnel device, so no second file.
    assert sorted(p.name for p in lab["dir"].iterdir() if "-host-gw-" in p.name) == [underlay.name]


def test_capture_module_check_mode_and_bad_input(module, tmp_path):
    args = dict(src="pod-a", dst=POD_B, interfaces=[dict(name="eth0", path=str(tmp_path / "u.pcap"), filter="icmp")])
    check = module("capture", args, check=True)
    assert check.changed and not check.failed and list(tmp_path.iterdir()) == [], check
    assert check["commands"][0][2].endswith("/tcpdump") and check["commands"][1][4].endswith("/ping")
    assert check["commands"][0][-3:] == ["-w", str(tmp_path / "u.pcap"), "icmp"]
    for bad, message in ((dict(args, dst="192.168.11.300"), "dst:"),
                         (dict(args, src="bad/name"), "src:"),
                         (dict(args, interfaces=[dict(name="eth0", path="relative.pcap")]), "interfaces[0].path:"),
                         (dict(args, interfaces=[]), "interfaces: at least one"),
                         (dict(args, interfaces=args["interfaces"] * 2), "interfaces[1].path:")):
        refused = module("capture", bad)
        assert refused.failed and message in refused["msg"], refused
    assert list(tmp_path.iterdir()) == []
