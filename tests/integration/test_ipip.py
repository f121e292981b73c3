"""ipip end to end, in one lab: the qemu VM runs these (this machine's kernel has no IPIP).

Every playbook run costs minutes under software emulation, so one lab carries ipip's end-to-end
checks, in the order a user meets them, instead of one lab per concern (the same checks run
separately, and faster, in vxlan and host-gw in test_site, test_ownership, test_guard_policy and
test_faults). ``make test`` runs ``test_ipip_end_to_end``:

1. two nodes with foreign objects podnet must never touch (test_ownership's, ipip variant) and an
   intruder namespace on their switch; a snapshot of everything;
2. converge ipip with a network policy (pod 1 may not initiate to pod 2) and the checksum-offload
   workaround; ``verify.yml`` passes and shows IP protocol 4 on the wire; a second converge
   changes nothing;
3. the encapsulation guard: a crafted ipip packet from the intruder never reaches the pod, the same
   packet from a member node's address does; the policy holds both ways;
4. drift (a route, a pod's veth, the other node's tunnel device) is repaired and reported;
5. teardown returns both nodes to the snapshot; the foreign objects were intact after every step.

``make ipip-vm-all`` also runs ``test_ipip_capture_and_a_switch_to_vxlan_and_back`` (vm_extra:
five more playbook runs, which ``make test``'s time budget cannot carry): ``capture.yml``'s pcaps,
read back with tshark, hold IP protocol 4 around the pods' packet (test_capture.py checks
host-gw's and vxlan's), and a switch to vxlan (flood) and back leaves ipip exactly as fresh, with
nothing of ipip in between. The namespace suite switches between every other pair of modes
(test_site's test_mode_switches_leave_nothing_of_the_previous_mode); the ipip device and guard go
with the teardown in ``test_ipip_end_to_end``.

The hybrid case (3 nodes, 2 subnets, ``podnet_direct_routing``) is test_site's
``test_ipip_hybrid_across_two_subnets``.
"""

import pytest

from conftest import ipj, requires_ipip, sh
from pcaps import check_ipip
from test_faults import changed_tasks
from test_guard_policy import Cluster
from test_ownership import FLOOD, PEERS, add_foreign, assert_foreign_intact, foreign_state
from test_site import Lab, assert_same, changed_per_host

TUNNEL = "mustang.tun0"


def tunnels(lab):
    """(namespace, name) of every ipip device podnet may own on the nodes."""
    return [(ns, link["ifname"]) for ns in lab.namespaces for link in ipj(ns, "-details", "link", "show")
            if link["ifname"] == TUNNEL and link.get("linkinfo", {}).get("info_kind") == "ipip"]


@pytest.mark.ipip
@pytest.mark.timeout(3600)   # five playbook runs under software emulation
def test_ipip_end_to_end(tmp_path):
    requires_ipip()
    lab = Lab(tmp_path, "q", PEERS)
    cluster = Cluster(lab)
    policy = cluster.policy_vars()
    try:
        # 1. Foreign objects, an intruder, the snapshot.
        lab.up()
        for index, ns in enumerate(lab.namespaces):
            add_foreign(lab, ns, index, ipip=True)
        cluster.add_intruder()
        pristine = lab.state()
        foreign = dict((ns, foreign_state(lab, ns)) for ns in lab.namespaces)

        # 2. Converge, verify (protocol 4 on the wire), idempotent.
        lab.converge("ipip", *policy)
        assert_foreign_intact(lab, foreign, "converging ipip")
        verify = lab.verify("ipip", *policy)
        assert "ipip on the wire" in verify.stdout and "ip proto 4" in verify.stdout, verify.stdout[-3000:]
        again = lab.converge("ipip", *policy)
        assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
        fresh = lab.state()

        # 3. The guard and the policy.
        assert cluster.offload(TUNNEL) == "off"
        cluster.check_guard("ipip")
        cluster.check_policy()

        # 4. Drift on both nodes at once: repaired where it happened, and reported.
        sh("ip", "-n", cluster.n1, "route", "del", PEERS[1][1])
        sh("ip", "-n", cluster.n1, "link", "del", lab.hosts["h1"]["pods"][0]["host_ifname"])
        sh("ip", "-n", cluster.n2, "link", "del", TUNNEL)
        repair = lab.converge("ipip", *policy)
        changed = changed_tasks(repair)
        for host, words in (("h1", "through the tunnel"), ("h1", "Wire each pod"), ("h2", "IPIP device")):
            assert any(h == host and words in task for task, h in changed), (host, words, repair.stdout[-4000:])
        assert_same(lab.state(), fresh, "repairing ipip drift")
        assert cluster.ping(cluster.p2, cluster.p1)

        # 5. Teardown: exactly as before podnet, the ipip device and its guard gone.
        lab.play("playbooks/teardown.yml")
        assert not tunnels(lab), "ipip devices left after teardown"
        assert_foreign_intact(lab, foreign, "teardown")
        assert_same(lab.state(), pristine)
    finally:
        cluster.stop_servers()
        lab.down()


@pytest.mark.vm_extra
@pytest.mark.ipip
@pytest.mark.timeout(3600)   # five playbook runs under software emulation
def test_ipip_capture_and_a_switch_to_vxlan_and_back(tmp_path):
    requires_ipip()
    lab = Lab(tmp_path, "r", PEERS)
    try:
        lab.up()
        for index, ns in enumerate(lab.namespaces):
            add_foreign(lab, ns, index, ipip=True)
        pristine = lab.state()
        foreign = dict((ns, foreign_state(lab, ns)) for ns in lab.namespaces)

        # capture.yml: IP protocol 4 around the pods' packet, read back with tshark.
        lab.converge("ipip")
        captures = tmp_path / "captures"
        lab.play("playbooks/capture.yml", "-e", "mode=ipip", "-e", "capture_dir=%s" % captures)
        check_ipip(captures, "podnet-ipip", [h["node_ip"] for h in lab.hosts.values()],
                   [p["ip"] for h in lab.hosts.values() for p in h["pods"]])
        fresh = lab.state()

        # Away to vxlan (flood) and back: nothing of ipip in between, ipip as fresh after.
        lab.converge("vxlan", *FLOOD)
        assert_foreign_intact(lab, foreign, "switching to vxlan")
        assert not tunnels(lab), "ipip devices left after switching to vxlan"
        lab.converge("ipip")
        assert_same(lab.state(), fresh, "switching back to ipip")
        assert_foreign_intact(lab, foreign, "switching back to ipip")

        lab.play("playbooks/teardown.yml")
        assert_foreign_intact(lab, foreign, "teardown")
        assert_same(lab.state(), pristine)
    finally:
        lab.down()
