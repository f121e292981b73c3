"""podnet.fabric.iptables_chain against a real kernel, in scratch namespaces."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import chain
from conftest import sh

GUARD = [{"source": "10.57.4.21", "protocol": "udp", "destination_port": 4789, "jump": "ACCEPT", "comment": "podnet peer"},
         {"source": "10.57.4.22", "protocol": "udp", "destination_port": 4789, "jump": "ACCEPT", "comment": "podnet peer"},
         {"protocol": "udp", "destination_port": 4789, "jump": "DROP", "comment": "podnet guard"}]
ARGS = {"name": "PODNET-INPUT", "parent": "INPUT", "position": 1, "rules": GUARD}


def rules(ns):
    """`iptables -S` of the namespace (policies and rules)."""
    return sh("iptables", "-w", "-S", ns=ns).splitlines()


def test_present_idempotent_check_diff_absent(module, node):
    sh("iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT", ns=node)
    before = rules(node)
    check = module("iptables_chain", ARGS, ns=node, check=True, diff=True)
    assert check.changed and check["commands"][0][-3:] == [check["commands"][0][-3], "-w", "--noflush"], check
    assert check["diff"]["before"] == {"exists": False, "rules": [], "jump": None}
    assert check["script"][1] == ":PODNET-INPUT - [0:0]"
    assert rules(node) == before, "check mode changed iptables"

    first = module("iptables_chain", ARGS, ns=node, diff=True)
    assert first.changed and first["script"] == check["script"], first
    now = rules(node)
    assert now.index("-A INPUT -m comment --comment podnet -j PODNET-INPUT") < \
        now.index("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT")
    assert [r for r in now if r.startswith("-A PODNET-INPUT")] == [
        '-A PODNET-INPUT -s 10.57.4.21/32 -p udp -m udp --dport 4789 -m comment --comment "podnet peer" -j ACCEPT',
        '-A PODNET-INPUT -s 10.57.4.22/32 -p udp -m udp --dport 4789 -m comment --comment "podnet peer" -j ACCEPT',
        '-A PODNET-INPUT -p udp -m udp --dport 4789 -m comment --comment "podnet guard" -j DROP']
    assert first["rules"] == [r for r in now if r.startswith("-A PODNET-INPUT")]

    again = module("iptables_chain", ARGS, ns=node, diff=True)
    assert not again.changed and again["commands"] == [] and again["diff"]["before"] == again["diff"]["after"], again

    # A peer leaves: one run rewrites the chain.
    fewer = module("iptables_chain", dict(ARGS, rules=GUARD[1:]), ns=node)
    assert fewer.changed and not [r for r in rules(node) if "10.57.4.21" in r]

    gone = module("iptables_chain", {"name": "PODNET-INPUT", "state": "absent"}, ns=node)
    assert gone.changed and rules(node) == before
    assert not module("iptables_chain", {"name": "PODNET-INPUT", "state": "absent"}, ns=node).changed


def test_ipip_protocol_and_policy_chain_inside_another_podnet_chain(module, node):
    sh("iptables", "-w", "-N", "PODNET-FORWARD", ns=node)
    sh("iptables", "-w", "-A", "PODNET-FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT", ns=node)
    sh("iptables", "-w", "-A", "PODNET-FORWARD", "-s", "192.168.10.0/24", "-j", "ACCEPT", ns=node)
    policy = {"name": "PODNET-POLICY", "parent": "PODNET-FORWARD", "position": 2,
              "rules": [{"source": "192.168.10.10", "destination": "192.168.11.10", "ctstate": ["NEW"], "jump": "DROP"}]}
    assert module("iptables_chain", policy, ns=node).changed
    forward = [r for r in rules(node) if r.startswith("-A PODNET-FORWARD")]
    assert forward[1] == "-A PODNET-FORWARD -m comment --comment podnet -j PODNET-POLICY", forward
    assert not module("iptables_chain", policy, ns=node).changed
    # /etc/protocols names 4 "ipencap": still the same rule on the second run.
    ipip = dict(ARGS, rules=[{"source": "10.57.4.21", "protocol": "4", "jump": "ACCEPT"}, {"protocol": "4", "jump": "DROP"}])
    assert module("iptables_chain", ipip, ns=node).changed
    assert "-A PODNET-INPUT -p ipencap -j DROP" in rules(node)
    assert not module("iptables_chain", ipip, ns=node).changed


def test_drift_is_repaired_and_foreign_rules_elsewhere_stay(module, node):
    module("iptables_chain", ARGS, ns=node)
    sh("iptables", "-w", "-A", "PODNET-INPUT", "-s", "10.9.9.9", "-j", "ACCEPT", ns=node)   # a stray rule
    sh("iptables", "-w", "-I", "INPUT", "1", "-p", "icmp", "-j", "ACCEPT", ns=node)         # the jump slips to 2
    sh("iptables", "-w", "-N", "USER", ns=node)
    sh("iptables", "-w", "-A", "USER", "-j", "RETURN", ns=node)
    repaired = module("iptables_chain", ARGS, ns=node)
    assert repaired.changed
    now = rules(node)
    assert not [r for r in now if "10.9.9.9" in r]
    assert [r for r in now if r.startswith("-A INPUT")] == [
        "-A INPUT -m comment --comment podnet -j PODNET-INPUT", "-A INPUT -p icmp -j ACCEPT"]
    assert "-A USER -j RETURN" in now
    assert not module("iptables_chain", ARGS, ns=node).changed


def test_netns_option(module, node):
    result = module("iptables_chain", dict(ARGS, netns=node))
    assert result.changed and result["commands"][0][1:4] == ["netns", "exec", node]
    assert "-N PODNET-INPUT" in rules(node)


@pytest.mark.parametrize("args, message", [
    (dict(ARGS, name="PODNET INPUT"), "name: 'PODNET INPUT' is not a valid chain name"),
    (dict(ARGS, parent="NOSUCH"), "parent: chain NOSUCH does not exist in table filter"),
    (dict(ARGS, rules=[{"protocol": "ipip", "jump": "DROP"}]), "rules[0].protocol: 'ipip' is ambiguous"),
    (dict(ARGS, rules=GUARD + [{"source": "10.57.4.300", "jump": "ACCEPT"}]), "rules[3].source"),
    (dict(ARGS, rules=[{"destination_port": 4789, "jump": "DROP"}]), "rules[0].destination_port: needs protocol tcp or udp"),
])
def test_bad_input_refused_before_any_change(module, node, args, message):
    before = rules(node)
    result = module("iptables_chain", args, ns=node)
    assert result.failed and message in result["msg"], result
    assert rules(node) == before


FORWARD = [{"ctstate": ["ESTABLISHED", "RELATED"], "jump": "ACCEPT", "comment": "podnet replies"},
           {"jump": "PODNET-POLICY", "comment": "podnet"},
           {"source": "192.168.10.0/24", "jump": "ACCEPT", "comment": "podnet pods out"}]
POLICY = [{"source": "192.168.10.10", "destination": "192.168.11.10", "ctstate": ["NEW"], "jump": "DROP"}]


def node_chains(policy=True, state="present"):
    """podnet's node role: forward, policy and INPUT chains in one call (policy listed after its user)."""
    return {"chains": [
        {"name": "PODNET-FORWARD", "parent": "FORWARD", "state": state,
         "rules": FORWARD if policy else [FORWARD[0], FORWARD[2]]},
        {"name": "PODNET-POLICY", "rules": POLICY, "state": "present" if policy and state == "present" else "absent"},
        {"name": "PODNET-INPUT", "parent": "INPUT", "rules": GUARD, "state": state}]}


def test_several_chains_one_transaction_lifecycle(module, node):
    sh("iptables", "-w", "-A", "FORWARD", "-p", "tcp", "-j", "ACCEPT", ns=node)   # the user's
    before = rules(node)
    check = module("iptables_chain", node_chains(), ns=node, check=True, diff=True)
    assert check.changed and rules(node) == before, "check mode changed iptables"
    assert set(check["diff"]["before"]) == {"PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT"}

    first = module("iptables_chain", node_chains(), ns=node)
    assert first.changed and len(first["commands"]) == 1, first          # one iptables-restore
    now = rules(node)
    assert [r for r in now if r.startswith("-A PODNET-FORWARD")][1] == \
        "-A PODNET-FORWARD -m comment --comment podnet -j PODNET-POLICY"
    assert [r for r in now if r.startswith("-A FORWARD")] == [
        "-A FORWARD -m comment --comment podnet -j PODNET-FORWARD", "-A FORWARD -p tcp -j ACCEPT"]
    assert first["chains"]["PODNET-POLICY"] == [r for r in now if r.startswith("-A PODNET-POLICY")]
    again = module("iptables_chain", node_chains(), ns=node, diff=True)
    assert not again.changed and again["commands"] == [] and again["diff"]["before"] == again["diff"]["after"]

    # Everything goes at once, the policy included, listed as the teardown role lists them (the
    # policy chain first): one transaction, nothing left.
    teardown = {"chains": [{"name": name, "state": "absent"} for name in ("PODNET-POLICY", "PODNET-INPUT", "PODNET-FORWARD")]}
    gone = module("iptables_chain", teardown, ns=node)
    assert gone.changed and len(gone["commands"]) == 1 and rules(node) == before, gone
    assert module("iptables_chain", node_chains(), ns=node).changed

    # The policy goes: the forward chain loses its jump and the policy chain goes, in one transaction.
    nopolicy = module("iptables_chain", node_chains(policy=False), ns=node)
    assert nopolicy.changed and len(nopolicy["commands"]) == 1
    now = rules(node)
    assert "-N PODNET-POLICY" not in now and not [r for r in now if "-j PODNET-POLICY" in r]
    assert not module("iptables_chain", node_chains(policy=False), ns=node).changed

    gone = module("iptables_chain", node_chains(state="absent"), ns=node)
    assert gone.changed and rules(node) == before
    assert not module("iptables_chain", node_chains(state="absent"), ns=node).changed


def test_several_chains_bad_input_refused_before_any_change(module, node):
    before = rules(node)
    bad = node_chains()
    bad["chains"][1]["state"] = "absent"        # PODNET-FORWARD still jumps to it
    result = module("iptables_chain", bad, ns=node)
    assert result.failed and "chains[0]: PODNET-FORWARD needs chain PODNET-POLICY, which is listed with " \
        "state=absent" in result["msg"], result
    both = dict(node_chains(), name="PODNET-INPUT")
    result = module("iptables_chain", both, ns=node)
    assert result.failed and "mutually exclusive" in result["msg"], result
    assert rules(node) == before


def test_other_writers_between_the_read_and_the_write_keep_their_rules(node):
    """A script planned from one read is applied after another writer (as docker, kube-proxy and
    firewalld do) deleted its rule at the top of FORWARD and inserted one at the top of INPUT:
    podnet's jumps are moved, then removed, by their rule spec, and every other rule is intact.
    (By the numbers read earlier, "-D FORWARD 2" removed the user's -A FORWARD -s 172.30.0.0/24
    -j ACCEPT and "-D INPUT 2" the user's ssh rule.)"""
    user = ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "-A FORWARD -s 172.30.0.0/24 -j ACCEPT"]
    sh("iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT", ns=node)
    sh("iptables", "-w", "-A", "FORWARD", "-s", "172.30.0.0/24", "-j", "ACCEPT", ns=node)
    forward = [{"source": "192.168.10.0/24", "jump": "ACCEPT"}]

    def converge(state, position):
        wants = chain.wanted_many({"chains": [
            dict(name="PODNET-INPUT", parent="INPUT", position=position, rules=GUARD, state=state),
            dict(name="PODNET-FORWARD", parent="FORWARD", position=position, rules=forward, state=state)]})
        script = chain.plan_many(wants, "filter", "\n".join(rules(node))).commands
        assert script, (state, position)
        return script

    def apply(script):
        sh("iptables-restore", "-w", "--noflush", ns=node, input="\n".join(script) + "\n")

    def jumps():
        return [r for r in rules(node) if "-j PODNET-" in r and not r.startswith("-A PODNET-")]

    # The jumps below the user's ssh rule and below the other writer's rule in FORWARD.
    sh("iptables", "-w", "-I", "FORWARD", "1", "-s", "10.99.0.9/32", "-j", "ACCEPT", ns=node)
    apply(converge("present", 2))
    assert [r for r in rules(node) if r.startswith("-A FORWARD")] == [
        "-A FORWARD -s 10.99.0.9/32 -j ACCEPT", "-A FORWARD -m comment --comment podnet -j PODNET-FORWARD", user[1]]

    for state in ("present", "absent"):
        script = converge(state, 1)
        # Between podnet's read and its write.
        sh("iptables", "-w", "-D", "FORWARD", "-s", "10.99.0.9/32", "-j", "ACCEPT", ns=node)
        sh("iptables", "-w", "-I", "INPUT", "1", "-s", "10.99.0.3/32", "-j", "ACCEPT", ns=node)
        apply(script)
        now = rules(node)
        assert all(rule in now for rule in user), now
        assert "-A INPUT -s 10.99.0.3/32 -j ACCEPT" in now and "10.99.0.9/32" not in "\n".join(now), now
        if state == "present":
            assert jumps() == ["-A INPUT -m comment --comment podnet -j PODNET-INPUT",
                               "-A FORWARD -m comment --comment podnet -j PODNET-FORWARD"], now
        else:
            assert jumps() == [] and "PODNET" not in "\n".join(now), now
        # The writer's state again as at the first read, for the next round.
        sh("iptables", "-w", "-D", "INPUT", "-s", "10.99.0.3/32", "-j", "ACCEPT", ns=node)
        sh("iptables", "-w", "-I", "FORWARD", "1", "-s", "10.99.0.9/32", "-j", "ACCEPT", ns=node)
        if state == "present":
            apply(converge("present", 2))
