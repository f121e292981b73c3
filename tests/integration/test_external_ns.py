"""site.yml against nodes that podnet's lab did not build.

Two node namespaces and a switch namespace are made here by hand, with iproute2 only, the way a
user might have set up machines (or containers) of their own: the underlay interface is ``ens3``
(not the lab's eth0, and node_iface is left unset), the gateway is the switch's bridge address, the
inventory hosts are named unlike their namespaces. site.yml and verify.yml run against an inventory that only says
``ansible_connection: podnet.fabric.netns`` and ``ansible_host: <namespace>``; teardown.yml returns
the nodes to their state before podnet.
"""

import os

import yaml

from conftest import VENV_BIN, ipj, settle, sh
from test_site import Lab, assert_same, changed_per_host

SUBNET = "10.57.9"          # the hand-made underlay: nodes .11 and .12, the switch's bridge .254


class Nodes(object):
    """An inventory of existing namespaces; runs playbooks and snapshots like test_site.Lab."""

    play = Lab.play
    state = Lab.state

    def __init__(self, tmp_path, hosts, namespaces):
        self.hosts = hosts
        self.namespaces = namespaces
        self.state_dir = str(tmp_path / "state")
        self.inventory = str(tmp_path / "inventory.yml")
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(dict(nodes=dict(hosts=hosts, vars=dict(
                ansible_connection="podnet.fabric.netns",
                ansible_python_interpreter=os.path.join(VENV_BIN, "python"),
                podnet_state_dir=self.state_dir,
                podnet_record_dir=self.state_dir))), handle)


def build_node(switch, ns, address, port):
    """A node namespace whose ens3 is a port of the switch's br0, with a default route."""
    sh("ip", "-n", ns, "link", "add", "ens3", "type", "veth", "peer", "name", port, "netns", switch)
    sh("ip", "-n", ns, "addr", "add", address + "/24", "dev", "ens3")
    sh("ip", "-n", ns, "link", "set", "ens3", "up")
    sh("ip", "-n", switch, "link", "set", port, "master", "br0", "up")
    # Proxy ARP answers only with a route to the pods' gateway through another interface.
    sh("ip", "-n", ns, "route", "add", "default", "via", SUBNET + ".254", "dev", "ens3")
    settle(ns)


def test_site_on_namespaces_built_by_hand(tmp_path, namespaces):
    switch = namespaces.add("sw")
    sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", switch, "addr", "add", SUBNET + ".254/24", "dev", "br0")
    sh("ip", "-n", switch, "link", "set", "br0", "up")
    hosts = {}
    for index, name in enumerate(("alpha", "beta")):
        ns = namespaces.add(name[0])
        address = "%s.%d" % (SUBNET, 11 + index)
        build_node(switch, ns, address, "port-" + name)
        hosts[name] = dict(ansible_host=ns, node_ip=address, pod_cidr="10.244.%d.0/24" % (index + 1),
                           pods=[dict(name=namespaces.name("pod"), ip="10.244.%d.5" % (index + 1),
                                      host_ifname="veth-" + name)])
    settle(switch)
    nodes = Nodes(tmp_path, hosts, [h["ansible_host"] for h in hosts.values()])
    pristine = nodes.state()

    nodes.play("site.yml", "-e", "mode=vxlan")
    verify = nodes.play("playbooks/verify.yml", "-e", "mode=vxlan")
    assert "vxlan on the wire" in verify.stdout, verify.stdout[-3000:]
    # The underlay podnet found on its own (node_iface unset) is the hand-made ens3.
    vxlan = ipj(hosts["alpha"]["ansible_host"], "-details", "link", "show", "vxlan0")[0]["linkinfo"]["info_data"]
    assert vxlan.get("link") == "ens3" and vxlan.get("local") == "10.57.9.11", vxlan

    again = nodes.play("site.yml", "-e", "mode=vxlan")
    assert changed_per_host(again) == {"alpha": 0, "beta": 0}, again.stdout[-3000:]

    nodes.play("playbooks/teardown.yml")
    assert_same(nodes.state(), pristine)
    assert os.listdir(nodes.state_dir) == []
    assert not [p["name"] for h in hosts.values() for p in h["pods"] if os.path.exists("/run/netns/" + p["name"])]
