"""bgp mode with route reflectors instead of the mesh, and drift, on one lab of real BIRD 2 processes.

The lab: five nodes h1..h5 on one subnet (10.57.6.0/24), ``podnet_bgp_route_reflectors: [h1, h2]``.
A full mesh would be 10 sessions (4 per node); with the reflectors it is 7: h1-h2, and each of
h3, h4, h5 with h1 and h2 (2 per client, 4 per reflector). The reflectors share one cluster id
(the lowest reflector node_ip, 10.57.6.20), as Calico's do, and pass routes on with the announcing
node as next hop. One lab for the file (lean `make test`): reflectors, then drift.
"""

import os
import re
import signal
import time

import pytest

from test_bgp import bird_processes, until
from test_site import Lab, assert_same, changed_per_host
from conftest import ipj, sh

NODES = [("10.57.6.%d" % (20 + i), "192.168.%d.0/24" % (20 + i)) for i in range(5)]
REFLECTORS = ["h1", "h2"]
NAMES = ["h%d" % (i + 1) for i in range(len(NODES))]


class RrLab(Lab):
    def __init__(self, tmp_path):
        super(RrLab, self).__init__(tmp_path, "r", NODES)
        self.extra = ["-e", '{"podnet_bgp_route_reflectors": ["h1", "h2"], "podnet_bgp_hold_time": 6}']

    def ns(self, name):
        return self.hosts[name]["ansible_host"]

    def birdc(self, name, *args):
        return sh("birdc", "-s", os.path.join(self.state_dir, name + "-bird.ctl"), *args)

    def bgp_sessions(self, name):
        """(protocol, state, info) of every BGP protocol of the node's BIRD (`birdc show protocols`)."""
        rows = [line.split() for line in self.birdc(name, "show", "protocols").splitlines()]
        return sorted((r[0], r[3], r[5] if len(r) > 5 else "") for r in rows if len(r) > 3 and r[1] == "BGP")

    def bird_routes(self, name):
        return dict((r["dst"], r.get("gateway")) for r in ipj(self.ns(name), "route", "show", "proto", "bird"))

    def expected_routes(self, name):
        return dict((h["pod_cidr"], h["node_ip"]) for n, h in self.hosts.items() if n != name)

    def birds(self):
        return [process[0] for process in bird_processes(self.state_dir)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = RrLab(tmp_path_factory.mktemp("bgprr"))
    try:
        lab.up()
        yield lab
    finally:
        lab.play("playbooks/teardown.yml", *lab.extra, check=False)
        lab.down()
        for pid in lab.birds():
            os.kill(pid, signal.SIGTERM)


def test_reflectors_replace_the_mesh_and_keep_the_announcing_node_as_next_hop(lab):
    pristine = lab.state()
    lab.converge("bgp", *lab.extra)
    # verify: every planned session Established, then every pod reaches every pod.
    verify = lab.verify("bgp", *lab.extra)
    assert "bgp on the wire" in verify.stdout, verify.stdout[-3000:]
    # Sessions as BIRD itself lists them: no mesh, the reflectors and their clients only.
    ips = dict((n, h["node_ip"].replace(".", "_")) for n, h in lab.hosts.items())
    for name in NAMES:
        rows = lab.bgp_sessions(name)
        assert all(row[1:] == ("up", "Established") for row in rows), (name, rows)
        if name in REFLECTORS:
            other = [r for r in REFLECTORS if r != name][0]
            want = ["rr_" + ips[other]] + ["rrc_" + ips[n] for n in NAMES if n not in REFLECTORS]
        else:
            want = ["rr_" + ips[r] for r in REFLECTORS]
        assert sorted(row[0] for row in rows) == sorted(want), (name, rows)
    assert sum(len(lab.bgp_sessions(n)) for n in NAMES) == 2 * 7   # 7 sessions, not the mesh's 10
    # Every node has every other pod CIDR via the node that announces it, never via a reflector.
    for name in NAMES:
        until(lambda: lab.bird_routes(name) == lab.expected_routes(name), "%s has every pod route" % name, bound=90, every=0.5)
    # h3 learnt h4's CIDR through the reflectors: originator h4, cluster list the shared cluster id.
    route = lab.birdc("h3", "show", "route", "all", "192.168.23.0/24")
    assert "BGP.originator_id: 10.57.6.23" in route, route
    assert re.search(r"BGP\.cluster_list: 10\.57\.6\.20\s*$", route, re.M), route
    assert "BGP.next_hop: 10.57.6.23" in route, route
    again = lab.converge("bgp", *lab.extra)
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    lab.play("playbooks/teardown.yml", *lab.extra)
    assert_same(lab.state(), pristine)
    assert lab.birds() == []
    assert os.listdir(lab.state_dir) == []


def test_a_route_deleted_by_hand_comes_back_from_bird_and_a_users_route_is_left_alone(lab):
    lab.converge("bgp", *lab.extra)
    until(lambda: lab.bird_routes("h3") == lab.expected_routes("h3"), "h3 has every pod route", bound=90, every=0.5)
    # The user's own route for a foreign prefix first, then the drift: a pod route deleted by hand.
    sh("ip", "-n", lab.ns("h3"), "route", "add", "10.99.0.0/24", "via", "10.57.6.24")
    try:
        sh("ip", "-n", lab.ns("h3"), "route", "del", "192.168.23.0/24")
        assert "192.168.23.0/24" not in lab.bird_routes("h3")
        start = time.monotonic()
        # BIRD's kernel protocol puts it back on its next scan (`scan time 10`), with no Ansible run.
        until(lambda: lab.bird_routes("h3") == lab.expected_routes("h3"), "BIRD restores h3's route to h4's pods", bound=90, every=0.5)
        print("drift: BIRD restored the route after %.1f s" % (time.monotonic() - start))
        sh("ping", "-c", "1", "-W", "2", lab.hosts["h4"]["pods"][0]["ip"], ns=lab.hosts["h3"]["pods"][0]["name"])
        # That scan left the user's route alone, and so does a podnet run.
        user = ipj(lab.ns("h3"), "route", "show", "10.99.0.0/24")
        assert [(r.get("gateway"), r.get("protocol", "boot")) for r in user] == [("10.57.6.24", "boot")], user
        again = lab.converge("bgp", *lab.extra)
        assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
        assert len(ipj(lab.ns("h3"), "route", "show", "10.99.0.0/24")) == 1
    finally:
        sh("ip", "-n", lab.ns("h3"), "route", "del", "10.99.0.0/24", check=False)
