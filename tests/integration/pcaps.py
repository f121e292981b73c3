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
