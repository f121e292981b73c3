# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The molecule verifier can fail: break one route, then one FDB entry, and it must say so.

Runs the namespace scenario (molecule/default) in vxlan mode: create and converge once, verify
(passes), then on node host1 (namespace mol-host1) delete the route to host2's pods, verify (must
fail, naming that route and the pod pair that lost each other), put the route back exactly,
verify (passes); the same with the FDB entry for host2's VTEP. The scenario is destroyed at the
end whatever happens. Everything touched is inside the scenario's own namespaces.

Run with molecule's venv (tests/molecule/run-all does):
    .venv-molecule/bin/python -m pytest -q tests/molecule
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess

import pytest
import yaml

pytest.importorskip("molecule", reason="molecule is not installed here (tests/molecule/setup builds .venv-molecule)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".venv-molecule", "bin")
SCENARIO = os.path.join(ROOT, "molecule", "default", "molecule.yml")

if os.geteuid() != 0:
    pytest.skip("the namespace scenario needs root", allow_module_level=True)


def molecule(*args):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), PODNET_MODE="vxlan",
               NO_COLOR="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run([os.path.join(BIN, "molecule")] + list(args), cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def ip(*argv):
    subprocess.run(list(argv), check=True, capture_output=True, text=True)


def vtep_mac(node_ip):
    return "0e:50:" + ":".join("%02x" % b for b in ipaddress.IPv4Address(node_ip).packed)


@pytest.fixture(scope="module")
def lab():
    """The converged scenario: names of node host1's namespace and of what it holds for host2."""
    with open(SCENARIO) as handle:
        hosts = yaml.safe_load(handle)["provisioner"]["inventory"]["host_vars"]
    one, two = hosts["host1"], hosts["host2"]
    peer_net = ipaddress.IPv4Network(two["pod_cidr"])
    info = dict(ns=one["ansible_host"], peer_cidr=two["pod_cidr"], peer_tunnel_ip=str(peer_net.network_address + 1),
                peer_ip=two["node_ip"], peer_mac=vtep_mac(two["node_ip"]), pod=one["pods"][0]["name"],
                peer_pod=two["pods"][0]["name"])
    try:
        molecule("destroy")  # whatever an interrupted run left
        for step in ("create", "converge"):
            rc, out = molecule(step)
            assert rc == 0, "molecule %s failed:\n%s" % (step, out[-6000:])
        yield info
    finally:
        rc, out = molecule("destroy")
        assert rc == 0, out[-3000:]


def verify_fails(*expected):
    rc, out = molecule("verify")
    assert rc != 0, "the verifier passed on a broken cluster:\n" + out[-4000:]
    missing = [text for text in expected if text not in out]
    assert not missing, "the verifier failed without naming %s:\n%s" % (missing, out[-6000:])
    return out


def verify_passes():
    rc, out = molecule("verify")
    assert rc == 0, "the verifier failed:\n" + out[-6000:]
    assert re.search(r"=+ \d+ passed(, \d+ skipped)? in ", out), out[-3000:]


def test_verifier_passes_on_the_converged_cluster(lab):
    verify_passes()


def test_verifier_fails_without_the_route_to_the_peer_pods(lab):
    route = [lab["peer_cidr"], "via", lab["peer_tunnel_ip"], "dev", "vxlan0", "onlink", "proto", "150"]
    ip("ip", "-n", lab["ns"], "route", "del", lab["peer_cidr"])
    try:
        verify_fails("FAILED ../shared/tests/test_podnet.py::test_routes_to_every_peer_pod_cidr[ansible://host1]",
                     "host1: no route to %s (the pods of host2)" % lab["peer_cidr"],
                     "FAILED ../shared/tests/test_podnet.py::test_every_pod_reaches_every_other_pod[ansible://host1]",
                     "%s (" % lab["pod"], "-> %s (" % lab["peer_pod"])
    finally:
        ip("ip", "-n", lab["ns"], "route", "replace", *route)
    verify_passes()


def test_verifier_fails_without_the_fdb_entry_of_the_peer(lab):
    entry = [lab["peer_mac"], "dev", "vxlan0", "dst", lab["peer_ip"]]
    ip("bridge", "-n", lab["ns"], "fdb", "del", *entry)
    try:
        verify_fails("FAILED ../shared/tests/test_podnet.py::test_vxlan_fdb_and_neighbour_entries[ansible://host1]",
                     "host1: no FDB entry %s dst %s on vxlan0" % (lab["peer_mac"], lab["peer_ip"]),
                     "FAILED ../shared/tests/test_podnet.py::test_every_pod_reaches_every_other_pod[ansible://host1]")
    finally:
        ip("bridge", "-n", lab["ns"], "fdb", "replace", *entry, "self", "permanent")
    verify_passes()
