"""Reading pcap files back with tshark (Debian's `tshark`, installed by tests/tools/install-deps)."""

import subprocess

FIELDS = ("frame.protocols", "ip.proto", "ip.src", "ip.dst", "udp.dstport", "vxlan.vni", "eth.dst", "icmp.type")


def packets(path):
    """Every packet of a pcap as a dict of FIELDS; a field found at several layers (outer, inner)
    is a list, outermost first."""
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=|", "-E", "occurrence=a",
            "-E", "aggregator=,"]
    for field in FIELDS:
        argv += ["-e", field]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "tshark -r %s failed: %s" % (path, proc.stderr)
    result = []
    for line in proc.stdout.splitlines():
        values = line.split("|")
        result.append(dict((field, value.split(",") if value else []) for field, value in zip(FIELDS, values)))
    assert result, "%s holds no packet" % path
    return result


def echo_requests(path, src, dst):
    """The packets of a pcap that carry the ICMP echo request src -> dst (at any depth)."""
    return [p for p in packets(path) if "8" in p["icmp.type"] and p["ip.src"][-1:] == [src] and p["ip.dst"][-1:] == [dst]]


def check_ipip(folder, stem, node_ips, pod_ips):
    """An ipip capture: IP protocol 4 between two nodes around the pods' own packet on the underlay;
    on the tunnel device, the pods' packet alone (no link layer: a raw IP device)."""
    underlay = [p for p in folder.iterdir() if p.name.startswith(stem + "-underlay-")]
    tunnel = [p for p in folder.iterdir() if p.name.startswith(stem + "-tunnel-")]
    assert len(underlay) == 1 and len(tunnel) == 1, sorted(p.name for p in folder.iterdir())
    # tshark is slow to start under software emulation: each file is read once.
    outer, inner = packets(underlay[0]), packets(tunnel[0])
    assert [p for p in outer if "8" in p["icmp.type"]], outer
    for packet in outer:
        assert packet["frame.protocols"] == ["eth:ethertype:ip:ip:icmp:data"], packet
        # Outer header: node to node, protocol 4; inner: pod to pod, ICMP.
        assert packet["ip.proto"] == ["4", "1"], packet
        assert set(packet["ip.src"][:1] + packet["ip.dst"][:1]) <= set(node_ips), packet
        assert set(packet["ip.src"][1:] + packet["ip.dst"][1:]) <= set(pod_ips), packet
    for packet in inner:
        assert packet["frame.protocols"] == ["raw:ip:icmp:data"], packet
        assert packet["ip.proto"] == ["1"] and set(packet["ip.src"] + packet["ip.dst"]) <= set(pod_ips), packet
