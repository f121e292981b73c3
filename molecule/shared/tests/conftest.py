# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""testinfra fixtures of the molecule verifier: a node, its peers, and what the mode must leave.

Molecule runs these tests with ``--connection=ansible --ansible-inventory=<scenario inventory>``,
so testinfra's ``host`` is one inventory host of the group ``nodes``. A Docker node is reached the
way testinfra reaches any container (``docker exec``). testinfra has no backend for podnet's
``podnet.fabric.netns`` connection: for such a node, commands run on this machine under
``ip netns exec NODE``, exactly what the connection plugin does for Ansible.

The expected state is written out here from the inventory alone (node_ip, pod_cidr, pods, mode),
not taken from podnet's planner, so a planner mistake cannot hide itself.
"""

from __future__ import annotations

import ipaddress
import json
import shlex

import pytest
import testinfra

GATEWAY = "169.254.10.24"


class Node(object):
    """One node of the cluster as the inventory describes it."""

    def __init__(self, name, hostvars):
        self.name = name
        self.vars = hostvars
        self.node_ip = hostvars["node_ip"]
        self.pod_cidr = hostvars["pod_cidr"]
        self.network = ipaddress.IPv4Network(self.pod_cidr)
        self.iface = hostvars.get("node_iface", "eth0")
        self.pods = [dict(name=p["name"], ip=p["ip"], host_ifname=p.get("host_ifname") or "veth-" + p["name"])
                     for p in hostvars.get("pods", [])]

    @property
    def tunnel_ip(self):
        """The node's own address in its pod CIDR (the first host): the tunnel device's /32."""
        return str(self.network.network_address + 1)

    @property
    def vtep_mac(self):
        """The VXLAN MAC podnet derives from the node IP: 0e:50 and the four bytes of the address."""
        return "0e:50:" + ":".join("%02x" % b for b in ipaddress.IPv4Address(self.node_ip).packed)


class Runner(object):
    """Runs commands on one node (its shell), returning testinfra CommandResults."""

    def __init__(self, host, hostvars):
        self.host = host
        self.prefix = []
        if hostvars.get("ansible_connection") == "podnet.fabric.netns":
            self.host = testinfra.get_host("local://")
            self.prefix = ["ip", "netns", "exec", hostvars.get("ansible_host") or hostvars["inventory_hostname"]]

    def run(self, *argv):
        return self.host.run(shlex.join(self.prefix + [str(a) for a in argv]))

    def check(self, *argv):
        result = self.run(*argv)
        assert result.rc == 0, "%s failed (%d): %s" % (shlex.join(argv), result.rc, result.stderr.strip())
        return result.stdout

    def json(self, *argv):
        out = self.check(*argv).strip()
        return [item for item in json.loads(out or "[]") if item]


@pytest.fixture(scope="module")
def inventory(host):
    return host.backend.ansible_runner


@pytest.fixture(scope="module")
def cluster(inventory):
    """Every node of the group ``nodes``: {name: Node}."""
    return dict((name, Node(name, inventory.get_variables(name))) for name in inventory.get_hosts("nodes"))


@pytest.fixture(scope="module")
def node(host, cluster):
    return cluster[host.backend.get_variables()["inventory_hostname"]]


@pytest.fixture(scope="module")
def peers(node, cluster):
    return [cluster[name] for name in sorted(cluster) if name != node.name]


@pytest.fixture(scope="module")
def settings(host):
    """The mode and the podnet settings the tests depend on (podnet's defaults unless overridden)."""
    hv = host.backend.get_variables()
    return dict(mode=hv.get("mode", "vxlan"), vxlan_device=hv.get("podnet_vxlan_device", "vxlan0"),
                vxlan_vni=int(hv.get("podnet_vxlan_vni", 100)), vxlan_port=int(hv.get("podnet_vxlan_port", 4789)),
                vxlan_fdb=hv.get("podnet_vxlan_fdb", "static"), ipip_device=hv.get("podnet_ipip_device", "mustang.tun0"),
                chain=hv.get("podnet_iptables_chain", "PODNET-FORWARD"))


@pytest.fixture(scope="module")
def sh(host):
    return Runner(host, host.backend.get_variables())
