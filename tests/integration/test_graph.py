"""playbooks/graph.yml on a 3-node, two-subnet lab (test_labs.py draws the lab inventory): the
picture renders to SVG and PNG and names every node and pod, the router and both switches, and
each route to a peer in its mode's colour (hybrid vxlan: host-gw inside the subnet)."""

import re
import struct
from xml.etree import ElementTree

from test_site import Lab

SVG = "{http://www.w3.org/2000/svg}"


def test_three_nodes_two_subnets_drawn(tmp_path):
    lab = Lab(tmp_path, "g", [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24"),
                              ("10.57.5.30", "192.168.12.0/24")])
    hybrid = ["-e", "podnet_direct_routing=true"]
    out = tmp_path / "graphs"
    try:
        lab.up()
        lab.converge("vxlan", *hybrid)
        lab.play("playbooks/graph.yml", "-e", "mode=vxlan", "-e", "graph_dir=%s" % out, *(hybrid + lab.lab_vars))
        svg, png = out / "podnet-vxlan.svg", out / "podnet-vxlan.png"
        root = ElementTree.parse(str(svg)).getroot()
        texts = [t.text or "" for t in root.iter(SVG + "text")]
        names = ["node %s" % h for h in lab.hosts] + [p["name"] for h in lab.hosts.values() for p in h["pods"]] \
            + [p["ip"] for h in lab.hosts.values() for p in h["pods"]] \
            + ["router %srt" % lab.prefix, "switch %ssw-10.57.4.0-24" % lab.prefix, "switch %ssw-10.57.5.0-24" % lab.prefix]
        assert [n for n in names if n not in texts] == [], texts
        # h1 -> h2 in its subnet: host-gw (green), via eth0; h1 -> h3 across the router: vxlan (blue).
        labels = {}
        for group in root.iter(SVG + "g"):
            if group.get("class") == "edge":
                words = [t.text for t in group.iter(SVG + "text")]
                paths = [p.get("stroke") for p in group.iter(SVG + "path")]
                if words and paths:
                    labels[words[0]] = paths[0]
        assert labels["192.168.11.0/24 via 10.57.4.21 dev eth0"] == "#2e7d32", labels
        assert labels["192.168.12.0/24 via 192.168.12.1 dev vxlan0"] == "#1565c0", labels
        with open(str(png), "rb") as handle:
            head = handle.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and min(struct.unpack(">II", head[16:24])) > 100
        assert re.search(r"digraph podnet \{", (out / "podnet-vxlan.dot").read_text())
    finally:
        lab.down()


NODES = [dict(name="host1", node_ip="10.57.4.20", prefixlen=24, pod_cidr="192.168.10.0/24",
              pods=[dict(name="pod-a", ip="192.168.10.10")]),
         dict(name="host2", node_ip="10.57.4.21", prefixlen=24, pod_cidr="192.168.11.0/24",
              pods=[dict(name="pod-b", ip="192.168.11.10")])]


def test_topology_graph_check_mode_idempotence_diff_and_bad_input(module, tmp_path):
    args = dict(dest=str(tmp_path / "out"), name="lab-host-gw", mode="host-gw", nodes=NODES)
    check = module("topology_graph", args, check=True, diff=True)
    assert check.changed and not check.failed and not (tmp_path / "out").exists(), check
    assert check["diff"]["before"] == "" and "pod-a" in check["diff"]["after"]
    assert [argv[1] for argv in check["commands"]] == ["-Tsvg", "-Tpng"]
    first = module("topology_graph", args)
    assert first.changed and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "lab-host-gw.dot", "lab-host-gw.png", "lab-host-gw.svg"]
    again = module("topology_graph", args, diff=True)
    assert not again.changed and again["commands"] == [] and again["diff"]["before"] == again["diff"]["after"]
    # A picture someone deleted is drawn again; a changed cluster redraws all.
    (tmp_path / "out" / "lab-host-gw.png").unlink()
    redraw = module("topology_graph", args)
    assert redraw.changed and [argv[1] for argv in redraw["commands"]] == ["-Tpng"]
    for bad, message in ((dict(args, name="../x"), "name: '../x' is not a file name"),
                         (dict(args, nodes=[dict(NODES[0], pod_cidr="192.168.10.0/33")]), "nodes[0]:"),
                         (dict(args, nodes=[]), "nodes: nothing to draw")):
        refused = module("topology_graph", dict(bad, dest=str(tmp_path / "never")))
        assert refused.failed and message in refused["msg"], refused
        assert not (tmp_path / "never").exists()
