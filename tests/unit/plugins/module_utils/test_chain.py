"""Unit tests for the iptables_chain planner: wanted chain + `iptables -S` -> iptables-restore script."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import chain
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

EMPTY = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
GUARD = [{"source": "10.57.4.21", "protocol": "udp", "destination_port": 4789, "jump": "ACCEPT", "comment": "podnet peer h2"},
         {"protocol": "udp", "destination_port": 4789, "jump": "DROP", "comment": "podnet guard"}]
# What iptables 1.8.9 (nf_tables) printed after applying GUARD's script.
APPLIED = EMPTY + """-N PODNET-INPUT
-A INPUT -m comment --comment podnet -j PODNET-INPUT
-A INPUT -p tcp -j ACCEPT
-A PODNET-INPUT -s 10.57.4.21/32 -p udp -m udp --dport 4789 -m comment --comment "podnet peer h2" -j ACCEPT
-A PODNET-INPUT -p udp -m udp --dport 4789 -m comment --comment "podnet guard" -j DROP
"""


def want(**params):
    base = dict(name="PODNET-INPUT", parent="INPUT", position=1, rules=GUARD, state="present")
    base.update(params)
    return chain.wanted(base)


def test_rule_normalises():
    rule = chain.rule({"source": "192.168.10.10", "destination": "192.168.11.0/24", "protocol": "TCP",
                       "ctstate": ["new", "ESTABLISHED"], "jump": "DROP"}, "rules[0]")
    assert rule["source"] == "192.168.10.10/32" and rule["protocol"] == 6
    assert rule["ctstate"] == ["ESTABLISHED", "NEW"] and rule["comment"] is None
    assert chain.args(rule) == ["-s", "192.168.10.10/32", "-d", "192.168.11.0/24", "-p", "tcp", "-m", "conntrack",
                                "--ctstate", "ESTABLISHED,NEW", "-j", "DROP"]


@pytest.mark.parametrize("params, message", [
    ({"name": "A" * 29}, "name: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAA' is not a valid chain name"),
    ({"name": "-X"}, "name: '-X' is not a valid chain name"),
    ({"table": "broute"}, "table: 'broute' is not one of"),
    ({"parent": "PODNET-INPUT"}, "parent: a chain cannot jump to itself"),
    ({"position": 0}, "position: position 0 is out of range"),
    ({"rules": [{"protocol": "ipip", "jump": "DROP"}]}, "rules[0].protocol: 'ipip' is ambiguous"),
    ({"rules": [{"protocol": "nosuchproto", "jump": "DROP"}]}, "rules[0].protocol: unknown protocol"),
    ({"rules": [{"destination_port": 4789, "jump": "DROP"}]}, "rules[0].destination_port: needs protocol tcp or udp"),
    ({"rules": [{"protocol": "udp", "destination_port": 70000, "jump": "DROP"}]}, "rules[0].destination_port"),
    ({"rules": [{"source": "10.0.0.1/33", "jump": "DROP"}]}, "rules[0].source"),
    ({"rules": [{"source": "10.0.0.1/24", "jump": "DROP"}]}, "has host bits set"),
    ({"rules": [{"in_interface": "eth0;x", "jump": "DROP"}]}, "rules[0].in_interface"),
    ({"rules": [{"ctstate": ["NEWISH"], "jump": "DROP"}]}, "rules[0].ctstate: unknown state(s) NEWISH"),
    ({"rules": [{"comment": 'say "hi"', "jump": "DROP"}]}, "rules[0].comment"),
    ({"rules": [{"source": "10.0.0.1"}]}, "rules[0].jump: a target"),
    ({"rules": [{"jump": "PODNET-INPUT"}]}, "rules[0].jump: a rule of PODNET-INPUT cannot jump to PODNET-INPUT itself"),
    ({"rules": [{"jump": "DROP", "bogus": 1}]}, "rules[0]: unknown key(s) bogus"),
    ({"rules": ["-j DROP"]}, "rules[0]: each rule must be a dict"),
])
def test_wanted_refuses_naming_the_option(params, message):
    with pytest.raises(PodnetError) as err:
        want(**params)
    assert message in str(err.value)


def test_create_chain_and_jump_in_one_transaction():
    script, before, after = chain.plan(want(), EMPTY)
    assert script == [
        "*filter",
        ":PODNET-INPUT - [0:0]",
        '-A PODNET-INPUT -s 10.57.4.21/32 -p udp -m udp --dport 4789 -m comment --comment "podnet peer h2" -j ACCEPT',
        '-A PODNET-INPUT -p udp -m udp --dport 4789 -m comment --comment "podnet guard" -j DROP',
        "-I INPUT 1 -m comment --comment podnet -j PODNET-INPUT",
        "COMMIT"]
    assert before == {"exists": False, "rules": [], "jump": None}
    assert after["exists"] and after["jump"] == {"chain": "INPUT", "position": 1} and len(after["rules"]) == 2


def test_applied_state_is_no_change_and_diff_is_equal():
    script, before, after = chain.plan(want(), APPLIED)
    assert script == [] and before == after


def test_protocol_names_from_etc_protocols_compare_as_numbers():
    rules = [{"source": "10.57.4.21", "protocol": "4", "jump": "ACCEPT"}, {"protocol": 4, "jump": "DROP"}]
    for name in ("ipencap", "ipv4", "4"):
        live = EMPTY + "-N PODNET-INPUT\n-A INPUT -m comment --comment podnet -j PODNET-INPUT\n" \
            "-A PODNET-INPUT -s 10.57.4.21/32 -p %s -j ACCEPT\n-A PODNET-INPUT -p %s -j DROP\n" % (name, name)
        assert chain.plan(want(rules=rules), live)[0] == [], name
    # 94 is what /etc/protocols calls ipip: not the same rule.
    live = EMPTY + "-N PODNET-INPUT\n-A INPUT -m comment --comment podnet -j PODNET-INPUT\n" \
        "-A PODNET-INPUT -s 10.57.4.21/32 -p ipencap -j ACCEPT\n-A PODNET-INPUT -p 94 -j DROP\n"
    assert chain.plan(want(rules=rules), live)[0][1] == ":PODNET-INPUT - [0:0]"


@pytest.mark.parametrize("extra", [
    "-A PODNET-INPUT -s 10.9.9.9/32 -j ACCEPT",                  # a rule not listed
    "-A PODNET-INPUT ! -s 10.9.9.9/32 -j ACCEPT",                # something podnet never writes
    "-A PODNET-INPUT -m mark --mark 0x1 -j ACCEPT",
])
def test_any_other_rule_in_the_chain_rewrites_it(extra):
    script, before, after = chain.plan(want(), APPLIED + extra + "\n")
    assert script[1] == ":PODNET-INPUT - [0:0]" and script[-1] == "COMMIT"
    assert not any(line.startswith(("-D", "-I")) for line in script), "the jump was fine"
    assert extra in before["rules"] and extra not in after["rules"]


def test_changed_order_rewrites():
    swapped = APPLIED.splitlines()
    swapped[-1], swapped[-2] = swapped[-2], swapped[-1]
    assert chain.plan(want(), "\n".join(swapped))[0][1] == ":PODNET-INPUT - [0:0]"


def test_jump_moved_to_its_position_and_duplicates_removed():
    live = APPLIED.replace("-A INPUT -p tcp -j ACCEPT\n", "") + \
        "-A INPUT -p tcp -j ACCEPT\n-A INPUT -j PODNET-INPUT\n"
    live = live.replace("-A INPUT -m comment --comment podnet -j PODNET-INPUT\n", "")
    live += "-A INPUT -m comment --comment podnet -j PODNET-INPUT\n"
    # INPUT: 1 tcp accept, 2 bare jump, 3 podnet's jump.
    script, before, after = chain.plan(want(), live)
    assert script == ["*filter", "-D INPUT -m comment --comment podnet -j PODNET-INPUT", "-D INPUT -j PODNET-INPUT",
                      "-I INPUT 1 -m comment --comment podnet -j PODNET-INPUT", "COMMIT"]
    assert before["jump"] == {"chain": "INPUT", "position": 2}


def test_position_past_the_end_means_the_end():
    live = EMPTY + "-N PODNET-FORWARD\n-A PODNET-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    policy = [{"source": "192.168.10.10", "destination": "192.168.11.10", "ctstate": ["NEW"], "jump": "DROP"}]
    w = want(name="PODNET-POLICY", parent="PODNET-FORWARD", position=2, rules=policy)
    script, before, after = chain.plan(w, live)
    assert script[-2] == "-I PODNET-FORWARD 2 -m comment --comment podnet -j PODNET-POLICY"
    applied = live + "-N PODNET-POLICY\n-A PODNET-FORWARD -m comment --comment podnet -j PODNET-POLICY\n" \
        "-A PODNET-POLICY -s 192.168.10.10/32 -d 192.168.11.10/32 -m conntrack --ctstate NEW -j DROP\n"
    assert chain.plan(w, applied)[0] == []
    # With no rule in the parent, the end is position 1.
    assert chain.plan(w, EMPTY + "-N PODNET-FORWARD\n")[0][-2].startswith("-I PODNET-FORWARD 1 ")


def test_missing_parent_is_refused():
    with pytest.raises(PodnetError, match="parent: chain PODNET-FORWARD does not exist in table filter"):
        chain.plan(want(name="PODNET-POLICY", parent="PODNET-FORWARD"), EMPTY)
    # In check mode an earlier task would have made it (a fresh node): planned as empty.
    script = chain.plan(want(name="PODNET-POLICY", parent="PODNET-FORWARD", position=2), EMPTY, check_mode=True)[0]
    assert script[-2] == "-I PODNET-FORWARD 1 -m comment --comment podnet -j PODNET-POLICY"


def test_no_parent_manages_no_jump():
    script, before, after = chain.plan(want(parent=None), EMPTY)
    assert script == ["*filter", ":PODNET-INPUT - [0:0]"] + script[2:4] + ["COMMIT"] and after["jump"] is None


def test_absent_removes_every_jump_then_the_chain():
    live = APPLIED + "-N OTHER\n-A OTHER -j PODNET-INPUT\n-A OTHER -j ACCEPT\n-A OTHER -g PODNET-INPUT\n"
    script, before, after = chain.plan(want(state="absent"), live)
    assert script == ["*filter", "-D INPUT -m comment --comment podnet -j PODNET-INPUT", "-D OTHER -g PODNET-INPUT",
                      "-D OTHER -j PODNET-INPUT", "-F PODNET-INPUT", "-X PODNET-INPUT", "COMMIT"]
    assert after == {"exists": False, "rules": [], "jump": None}
    assert chain.plan(want(state="absent"), EMPTY)[0] == []


def test_parse_keeps_chains_and_unparseable_rules():
    chains = chain.parse(APPLIED + '-A PODNET-INPUT -m comment --comment "unbalanced -j DROP\n')
    assert set(chains) == {"INPUT", "FORWARD", "OUTPUT", "PODNET-INPUT"}
    assert chains["PODNET-INPUT"][-1][0] is None
    assert chains["PODNET-INPUT"][0][0]["comment"] == "podnet peer h2"


# -- several chains in one transaction (podnet's node role) ---------------------------------
POLICY = [{"source": "192.168.10.10", "destination": "192.168.11.10", "ctstate": ["NEW"], "jump": "DROP"}]


def forward_rules(policy=True):
    return ([{"ctstate": ["ESTABLISHED", "RELATED"], "jump": "ACCEPT", "comment": "podnet replies"}]
            + ([{"jump": "PODNET-POLICY", "comment": "podnet"}] if policy else [])
            + [{"source": "192.168.10.0/24", "jump": "ACCEPT", "comment": "podnet pods out"}])


def node_chains(policy=True, forward_state="present"):
    return chain.wanted_many({"chains": [
        {"name": "PODNET-FORWARD", "parent": "FORWARD", "rules": forward_rules(policy), "state": forward_state},
        {"name": "PODNET-POLICY", "rules": POLICY, "state": "present" if policy else "absent"},
        {"name": "PODNET-INPUT", "parent": "INPUT", "rules": GUARD, "state": forward_state}]})


# What iptables printed after the first script of test_several_chains_... (nf_tables 1.8.9).
NODE_APPLIED = EMPTY + """-N PODNET-FORWARD
-N PODNET-INPUT
-N PODNET-POLICY
-A INPUT -m comment --comment podnet -j PODNET-INPUT
-A FORWARD -m comment --comment podnet -j PODNET-FORWARD
-A FORWARD -j DOCKER-USER
-A PODNET-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "podnet replies" -j ACCEPT
-A PODNET-FORWARD -m comment --comment podnet -j PODNET-POLICY
-A PODNET-FORWARD -s 192.168.10.0/24 -m comment --comment "podnet pods out" -j ACCEPT
-A PODNET-INPUT -s 10.57.4.21/32 -p udp -m udp --dport 4789 -m comment --comment "podnet peer h2" -j ACCEPT
-A PODNET-INPUT -p udp -m udp --dport 4789 -m comment --comment "podnet guard" -j DROP
-A PODNET-POLICY -s 192.168.10.10/32 -d 192.168.11.10/32 -m conntrack --ctstate NEW -j DROP
"""


def test_several_chains_in_one_transaction_targets_first():
    script, before, after = chain.plan_many(node_chains(), "filter", EMPTY + "-A FORWARD -j DOCKER-USER\n")
    declared = [line for line in script if line.startswith(":")]
    # PODNET-POLICY is listed after PODNET-FORWARD, but the forward chain's rule jumps to it.
    assert declared == [":PODNET-POLICY - [0:0]", ":PODNET-FORWARD - [0:0]", ":PODNET-INPUT - [0:0]"]
    assert script[0] == "*filter" and script[-1] == "COMMIT" and script.count("COMMIT") == 1
    assert "-I FORWARD 1 -m comment --comment podnet -j PODNET-FORWARD" in script
    assert "-A PODNET-FORWARD -m comment --comment podnet -j PODNET-POLICY" in script
    assert after["PODNET-POLICY"]["jump"] is None and after["PODNET-INPUT"]["jump"] == {"chain": "INPUT", "position": 1}
    assert all(not value["exists"] for value in before.values())


def test_several_chains_applied_is_no_change():
    script, before, after = chain.plan_many(node_chains(), "filter", NODE_APPLIED)
    assert script == [] and before == after


def test_policy_gone_rewrites_forward_then_drops_the_chain_without_stale_numbers():
    script = chain.plan_many(node_chains(policy=False), "filter", NODE_APPLIED)[0]
    assert script == ["*filter", ":PODNET-FORWARD - [0:0]",
                      '-A PODNET-FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment "podnet replies" -j ACCEPT',
                      '-A PODNET-FORWARD -s 192.168.10.0/24 -m comment --comment "podnet pods out" -j ACCEPT',
                      "-F PODNET-POLICY", "-X PODNET-POLICY", "COMMIT"]


def test_everything_absent_deletes_each_jump_once():
    wants = chain.wanted_many({"chains": [{"name": n, "state": "absent"}
                                          for n in ("PODNET-POLICY", "PODNET-INPUT", "PODNET-FORWARD")]})
    script = chain.plan_many(wants, "filter", NODE_APPLIED)[0]
    # The forward chain goes before the policy chain it jumps to, so its jump goes with it: a
    # "-D PODNET-FORWARD 2" followed by "-F PODNET-FORWARD" makes iptables-nft 1.8.9 fail the
    # policy chain's -X with EBUSY (seen in the ipip VM test, reproduced on the host).
    assert script == ["*filter", "-D INPUT -m comment --comment podnet -j PODNET-INPUT", "-F PODNET-INPUT",
                      "-X PODNET-INPUT", "-D FORWARD -m comment --comment podnet -j PODNET-FORWARD",
                      "-F PODNET-FORWARD", "-X PODNET-FORWARD",
                      "-F PODNET-POLICY", "-X PODNET-POLICY", "COMMIT"]
    assert chain.plan_many(wants, "filter", EMPTY)[0] == []


def test_parent_listed_is_written_before_its_child():
    wants = chain.wanted_many({"chains": [
        {"name": "PODNET-POLICY", "parent": "PODNET-FORWARD", "position": 2, "rules": POLICY},
        {"name": "PODNET-FORWARD", "parent": "FORWARD", "rules": forward_rules(policy=False)}]})
    script = chain.plan_many(wants, "filter", EMPTY)[0]
    assert script.index(":PODNET-FORWARD - [0:0]") < script.index("-I PODNET-FORWARD 2 -m comment --comment podnet -j PODNET-POLICY")


@pytest.mark.parametrize("chains, message", [
    ([{"name": "A"}, {"name": "A"}], "chains: A listed more than once"),
    ([{"name": "A", "rules": [{"jump": "B"}]}, {"name": "B", "rules": [{"jump": "A"}]}], "chains: A, B jump to each other in a cycle"),
    ([{"name": "A", "rules": [{"jump": "B"}]}, {"name": "B", "state": "absent"}], "chains[0]: A needs chain B, which is listed with state=absent"),
    ([{"name": "A", "parent": "B"}, {"name": "B", "state": "absent"}], "chains[0]: A needs chain B"),
    ([{"name": "A"}, {"name": "B", "rules": [{"jump": "DROP", "source": "x"}]}], "chains[1].rules[0].source"),
    ([{"name": "A"}, {"name": "-B"}], "chains[1].name: '-B' is not a valid chain name"),
    ([{"name": "A", "state": "gone"}], "chains[0].state: 'gone' is not present or absent"),
    (["A"], "chains[0]: each chain must be a dict"),
])
def test_several_chains_refused_naming_the_entry(chains, message):
    with pytest.raises(PodnetError) as err:
        chain.plan_many(chain.wanted_many({"chains": chains}), "filter", EMPTY)
    assert message in str(err.value)
