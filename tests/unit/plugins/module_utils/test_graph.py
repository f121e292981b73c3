"""Unit tests for the topology picture: inventory + what nodes hold -> graphviz source."""

import re

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import graph
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def link(ifname, kind=None, addresses=(), **data):
    """An entry of ``ip -json -details addr show`` (the keys podnet reads)."""
    entry = dict(ifname=ifname, mtu=1450 if kind in ("vxlan", "ipip") else 1500,
                 addr_info=[dict(family="inet", local=a.split("/")[0], prefixlen=int(a.split("/")[1]))
                            for a in addresses])
    if kind:
        entry["linkinfo"] = dict(info_kind=kind, info_data=data)
    return entry


def node(name, node_ip, pod_cidr, pod, pod_ip, routes, tunnel=None, prefixlen=24, held=True):
    links = [link("lo", addresses=["127.0.0.1/8"]), link("eth0", "veth", ["%s/%d" % (node_ip, prefixlen)])]
    if held:
        links.append(link("veth-" + pod[-5:], "veth"))
    if tunnel:
        links.append(tunnel)
    return dict(name=name, netns="lab-" + name, node_ip=node_ip, prefixlen=prefixlen, iface="eth0",
                pod_cidr=pod_cidr, pods=[dict(name=pod, ip=pod_ip, host_ifname="veth-" + pod[-5:])],
                links=links, routes=routes)


def route(dst, gateway, dev, protocol="150"):
    return dict(dst=dst, gateway=gateway, dev=dev, protocol=protocol, flags=["onlink"])


def vxlan(tunnel_ip):
    return link("vxlan0", "vxlan", [tunnel_ip + "/32"], id=100, port=4789, local="10.57.4.20")


def seed_vxlan():
    return [
        node("host1", "10.57.4.20", "192.168.10.0/24", "lab-pod-a", "192.168.10.10",
             [dict(dst="default", gateway="10.57.4.254", dev="eth0", protocol="static"),
              dict(dst="192.168.10.10", dev="veth-pod-a", protocol="150", scope="link"),
              route("192.168.11.0/24", "192.168.11.1", "vxlan0")], vxlan("192.168.10.1")),
        node("host2", "10.57.4.21", "192.168.11.0/24", "lab-pod-b", "192.168.11.10",
             [route("192.168.10.0/24", "192.168.10.1", "vxlan0")], vxlan("192.168.11.1")),
    ]


def statements(source, prefix):
    return [line.strip() for line in source.splitlines() if line.strip().startswith(prefix)]


def test_seed_in_vxlan_names_every_node_pod_switch_and_tunnel():
    source = graph.dot(dict(title="podnet lab", mode="vxlan", switch_prefix="lab-sw", router="lab-rt",
                            nodes=seed_vxlan()))
    assert source.startswith("digraph podnet {") and source.rstrip().endswith("}")
    assert 'label="podnet lab\\nmode vxlan"' in source
    assert statements(source, '"subnet:') == [
        '"subnet:10.57.4.0/24" [fillcolor="#eceff1", label="switch lab-sw-10.57.4.0-24\\n10.57.4.0/24", '
        'shape="box", style="filled"];']
    # One subnet: no router.
    assert '"router"' not in source
    assert 'label="lab-pod-a\\n192.168.10.10"' in source and 'label="lab-pod-b\\n192.168.11.10"' in source
    assert 'label="host1\\nnetns lab-host1"' in source
    assert 'label="vxlan0 (vxlan)\\nVNI 100, port 4789\\n192.168.10.1/32\\nMTU 1450"' in source
    # The routes to peers, from the tunnel device, in vxlan's colour; not the pod's /32 nor the default.
    arrows = statements(source, '"tunnel:')
    arrows = [a for a in arrows if "->" in a and "dashed" in a]
    assert [re.search(r'label="([^"]*)"', a).group(1) for a in arrows] == [
        "192.168.11.0/24 via 192.168.11.1 dev vxlan0", "192.168.10.0/24 via 192.168.10.1 dev vxlan0"]
    assert all('color="%s"' % graph.COLOURS["vxlan"][0] in a for a in arrows)


def test_two_subnets_get_a_router_and_hybrid_routes_their_own_colours():
    nodes = [
        node("host1", "10.57.4.20", "192.168.10.0/24", "pod-a", "192.168.10.10",
             [route("192.168.11.0/24", "10.57.4.21", "eth0"), route("192.168.12.0/24", "192.168.12.1", "vxlan0")],
             vxlan("192.168.10.1")),
        node("host2", "10.57.4.21", "192.168.11.0/24", "pod-b", "192.168.11.10", [], vxlan("192.168.11.1")),
        node("host3", "10.57.5.30", "192.168.12.0/24", "pod-c", "192.168.12.10", [], vxlan("192.168.12.1")),
    ]
    source = graph.dot(dict(mode="vxlan", switch_prefix="sw", router="rt", nodes=nodes))
    assert '"router" [fillcolor="#eceff1", label="router rt\\nsw-0a390400 10.57.4.254\\nsw-0a390500 10.57.5.254"' in source
    assert '"subnet:10.57.4.0/24" -> "router";' in source and '"subnet:10.57.5.0/24" -> "router";' in source
    assert '"node:host3" -> "subnet:10.57.5.0/24"' in source
    direct = statements(source, '"node:host1" -> "node:host2"')
    assert len(direct) == 1 and 'color="%s"' % graph.COLOURS["host-gw"][0] in direct[0]
    assert "192.168.11.0/24 via 10.57.4.21 dev eth0" in direct[0]
    tunnelled = statements(source, '"tunnel:host1" -> "node:host3"')
    assert len(tunnelled) == 1 and 'color="%s"' % graph.COLOURS["vxlan"][0] in tunnelled[0]


def test_real_hosts_get_subnets_not_lab_names_and_a_missing_pod_is_dashed():
    nodes = seed_vxlan()
    nodes[1] = node("host2", "10.57.4.21", "192.168.11.0/24", "lab-pod-b", "192.168.11.10", [], held=False)
    nodes[1]["netns"] = None
    source = graph.dot(dict(mode="host-gw", nodes=nodes))
    assert 'label="underlay subnet\\n10.57.4.0/24"' in source
    assert 'label="host2"' in source
    pod_b = statements(source, '"pod:lab-pod-b" [')
    assert len(pod_b) == 1 and 'style="filled,dashed"' in pod_b[0]
    # host2 has no tunnel device: nothing drawn for one.
    assert '"tunnel:host2"' not in source


def test_same_input_same_text_and_quotes_are_escaped():
    nodes = seed_vxlan()
    nodes[0]["pods"][0]["name"] = 'odd"name\\'
    first = graph.dot(dict(title='a "title"', mode="vxlan", nodes=nodes))
    assert first == graph.dot(dict(title='a "title"', mode="vxlan", nodes=nodes))
    assert '"pod:odd\\"name\\\\"' in first and 'label="a \\"title\\"\\nmode vxlan"' in first


def test_foreign_routes_are_not_drawn():
    nodes = seed_vxlan()
    nodes[0]["routes"] = [route("192.168.11.0/24", "10.57.4.21", "eth0", protocol="static")]
    nodes[1]["routes"] = [route("10.99.0.0/16", "10.57.4.20", "eth0")]
    source = graph.dot(dict(mode="vxlan", nodes=nodes))
    # Route arrows are the only dashed lines (every pod's veth is there).
    assert "dashed" not in source


@pytest.mark.parametrize("nodes, message", [
    ([], "nodes: nothing to draw"),
    ([{"name": "h1", "node_ip": "10.57.4.20"}], "nodes[0].pod_cidr: is required"),
    ([{"name": "h1", "node_ip": "10.57.4.20", "pod_cidr": "10.1.0.0/24"},
      {"name": "h1", "node_ip": "10.57.4.21", "pod_cidr": "10.2.0.0/24"}], "nodes[1].name: h1 is listed twice"),
    ([{"name": "h1", "node_ip": "10.57.4.300", "pod_cidr": "10.1.0.0/24"}], "nodes[0]:"),
])
def test_bad_input_is_refused_naming_the_node(nodes, message):
    with pytest.raises(PodnetError, match=re.escape(message)):
        graph.dot(dict(nodes=nodes))


def test_a_pod_given_as_its_plan_entry_shows_its_address():
    nodes = seed_vxlan()
    nodes[0]["pods"] = [dict(name="lab-pod-a", address="192.168.10.10/24", host_ifname="veth-pod-a")]
    assert 'label="lab-pod-a\\n192.168.10.10"' in graph.dot(dict(mode="vxlan", nodes=nodes))
