"""The cluster is validated and planned once per run (playbooks/plan.yml), and that stays right
whatever the user does with the run: ``--limit``, ``strategy: free`` in their ansible.cfg,
``serial`` (``podnet_serial``). Each converges and verifies as a plain run does.

One 3-node vxlan lab (two subnets, behind the lab router) shared by the tests of this file.
"""

import pytest

from test_faults import SLOW, THREE, built, changed_per_host, fresh, recap


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    with built(tmp_path_factory, "plan-once", "po", THREE) as lab:
        yield lab


def peer_routes(lab, host):
    state = lab.node_state(host)[lab.ns(host)]
    return sorted(r[1] for r in state["routes"] if r[4] == "150" and "/" in r[1])


@SLOW
def test_limit_then_free_strategy(lab3, monkeypatch):
    fresh(lab3)
    one = lab3.converge("vxlan", "--limit", "h1")
    assert set(changed_per_host(one)) == {"h1"}, one.stdout[-3000:]
    # h1 planned its peers from the inventory alone; nobody else was touched.
    assert peer_routes(lab3, "h1") == ["192.168.11.0/24", "192.168.12.0/24"]
    for host in ("h2", "h3"):
        assert lab3.node_state(host) == dict([(lab3.ns(host), lab3.pristine[lab3.ns(host)])])
    # The user's ansible.cfg says strategy free: the plan play stays linear, the nodes run free.
    monkeypatch.setenv("ANSIBLE_STRATEGY", "free")
    rest = lab3.converge("vxlan")
    assert changed_per_host(rest)["h1"] == 0 and changed_per_host(rest)["h2"] > 0, rest.stdout[-3000:]
    lab3.verify("vxlan")
    again = lab3.converge("vxlan")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    lab3.assert_reach()


@SLOW
def test_serial_converges_one_node_at_a_time(lab3):
    fresh(lab3)
    run = lab3.converge("vxlan", "-e", "podnet_serial=1")
    # One batch per node after the one plan play for the whole cluster.
    assert run.stdout.count("PLAY [Wire the nodes]") == 3, run.stdout[-3000:]
    assert run.stdout.count("PLAY [Validate the inventory and plan every node (no change)]") == 1
    assert all(recap(run, host)["failed"] == "0" for host in ("h1", "h2", "h3"))
    lab3.verify("vxlan")
    again = lab3.converge("vxlan", "-e", "podnet_serial=1")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
