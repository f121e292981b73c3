#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: iptables_chain
short_description: Manage iptables chains podnet owns, all their rules at once, and the jumps to them
version_added: 0.1.0
description:
  - Makes one chain of an iptables table hold exactly the listed rules, in order, and makes a
    parent chain (for example C(INPUT)) jump to it from one position, with the comment C(podnet).
    The chain is podnet's, so rules in it that are not listed are removed.
  - One module call for any number of rules, so a role's task count does not grow with the
    cluster (M(ansible.builtin.iptables) manages one rule per task).
  - The table is read once with C(iptables -S). When anything differs, one
    C(iptables-restore --noflush) transaction declares the chain (which creates it, or empties
    it), refills it, and puts the jump in place; nothing else in the table is touched, and no
    packet ever sees a half-written chain.
  - Rules compare as data, not text, so a protocol that C(/etc/protocols) names differently
    (4 is C(ipencap) on Debian, C(ipv4) elsewhere) is still the same rule.
  - With O(state=absent), every rule that jumps to the chain is deleted, then the chain.
  - A jump is deleted by its rule spec (C(-D CHAIN -m comment --comment podnet -j NAME)), never by
    a rule number read earlier, so rules that other writers (docker, kube-proxy, firewalld) insert
    or delete between the read and the transaction are never hit; a jump that went meanwhile makes
    the transaction fail whole. Every call waits for the xtables lock (C(-w)).
  - O(chains) manages several chains of one table in the same single read and single
    transaction (podnet's node role writes its forward, policy and INPUT chains with one task).
    The module orders them itself (a chain after its parent and after the chains its rules
    jump to, and the chains that go last); each is planned against what the ones before leave.
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
requirements:
  - iptables and iptables-restore (nf_tables or legacy, the same backend).
options:
  name:
    description:
      - The chain (at most 28 characters; letters, digits, C(_) and C(-)).
      - Exactly one of O(name) and O(chains) is required.
    type: str
  chains:
    description:
      - Several chains at once, all in O(table), instead of O(name), O(parent) and O(rules) (which
        are then not allowed); the top-level O(position) and O(state) are then ignored.
      - A present chain may not need (as its parent, or a rule's target) a chain listed as absent.
    type: list
    elements: dict
    suboptions:
      name:
        description: The chain, as O(name).
        type: str
        required: true
      parent:
        description: As O(parent).
        type: str
      position:
        description: As O(position).
        type: int
        default: 1
      rules:
        description: As O(rules), with the same keys (checked the same way).
        type: list
        elements: dict
        default: []
        suboptions:
          source:
            description: As O(rules[].source).
            type: str
          destination:
            description: As O(rules[].destination).
            type: str
          in_interface:
            description: As O(rules[].in_interface).
            type: str
          out_interface:
            description: As O(rules[].out_interface).
            type: str
          protocol:
            description: As O(rules[].protocol).
            type: str
          destination_port:
            description: As O(rules[].destination_port).
            type: int
          ctstate:
            description: As O(rules[].ctstate).
            type: list
            elements: str
          comment:
            description: As O(rules[].comment).
            type: str
          jump:
            description: As O(rules[].jump).
            type: str
            required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
  chains_json:
    description:
      - O(chains) as JSON text, validated on the node exactly as O(chains) is. Mutually exclusive with O(chains).
      - podnet's roles pass per-peer lists this way, which costs the controller nothing per entry.
    type: str
  table:
    description: The iptables table.
    type: str
    choices: [filter, mangle, nat, raw, security]
    default: filter
  parent:
    description:
      - A chain that must jump to O(name) (for example V(INPUT), or another podnet chain).
        It must exist (in check mode a missing one is taken as empty, as if an earlier task had
        made it). When omitted, no jump is managed.
    type: str
  position:
    description:
      - The rule number of the jump in O(parent), 1 being first. A jump elsewhere is moved;
        duplicates are removed. A position past the end means the end.
    type: int
    default: 1
  rules:
    description:
      - The chain's rules, in order. Every key but O(rules[].jump) is optional; an omitted key
        matches anything.
      - Ignored with O(state=absent).
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Source address or network (a bare address means /32).
        type: str
      destination:
        description: Destination address or network (a bare address means /32).
        type: str
      in_interface:
        description: Interface the packet came in on.
        type: str
      out_interface:
        description: Interface the packet goes out on.
        type: str
      protocol:
        description:
          - IP protocol, by number or name (V(tcp), V(udp), V(icmp)). IP-in-IP is V(4);
            the name V(ipip) is refused because C(/etc/protocols) gives it 94.
        type: str
      destination_port:
        description: Destination port; needs O(rules[].protocol) V(tcp) or V(udp).
        type: int
      ctstate:
        description: Conntrack states to match (C(-m conntrack --ctstate)), for example V([NEW]).
        type: list
        elements: str
      comment:
        description: A comment (C(-m comment)); printable, no quotes or backslashes.
        type: str
      jump:
        description: The target, V(ACCEPT), V(DROP), V(RETURN) or a chain.
        type: str
        required: true
notes:
  - The O(netns) option runs C(iptables) under C(ip netns exec).
"""

EXAMPLES = r"""
- name: Accept VXLAN only from the other nodes (podnet's encapsulation guard)
  podnet.fabric.iptables_chain:
    name: PODNET-INPUT
    parent: INPUT
    position: 1
    rules:
      - {source: 10.57.4.21, protocol: udp, destination_port: 4789, jump: ACCEPT, comment: podnet peer}
      - {protocol: udp, destination_port: 4789, jump: DROP, comment: podnet guard}

- name: pod-a may not open connections to pod-b; the jump sits after PODNET-FORWARD's conntrack rule
  podnet.fabric.iptables_chain:
    name: PODNET-POLICY
    parent: PODNET-FORWARD
    position: 2
    rules:
      - {source: 192.168.10.10, destination: 192.168.11.10, ctstate: [NEW], jump: DROP}

- name: Remove the chain and the jumps to it
  podnet.fabric.iptables_chain:
    name: PODNET-INPUT
    state: absent

- name: podnet's forward chain with the jump to its policy chain, in one transaction
  podnet.fabric.iptables_chain:
    chains:
      - name: PODNET-FORWARD
        parent: FORWARD
        rules:
          - {ctstate: [ESTABLISHED, RELATED], jump: ACCEPT, comment: podnet replies}
          - {jump: PODNET-POLICY, comment: podnet}
          - {source: 192.168.10.0/24, jump: ACCEPT, comment: podnet pods out}
          - {destination: 192.168.10.0/24, jump: ACCEPT, comment: podnet pods in}
      - name: PODNET-POLICY
        rules:
          - {source: 192.168.10.10, destination: 192.168.11.10, ctstate: [NEW], jump: DROP}
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/iptables-restore", "-w", "--noflush"]]
script:
  description: The iptables-restore input those commands were fed (empty when nothing changes).
  returned: always
  type: list
  elements: str
  sample: ["*filter", ":PODNET-INPUT - [0:0]", "-A PODNET-INPUT -s 10.57.4.21/32 -p udp -m udp --dport 4789 -j ACCEPT",
           "-A PODNET-INPUT -p udp -m udp --dport 4789 -j DROP", "-I INPUT 1 -m comment --comment podnet -j PODNET-INPUT",
           "COMMIT"]
rules:
  description: The chain's rules after the run (as planned in check mode), as C(iptables -S) lines.
  returned: with O(name)
  type: list
  elements: str
  sample: ["-A PODNET-INPUT -s 10.57.4.21/32 -p udp -m udp --dport 4789 -j ACCEPT"]
chains:
  description: Per chain of O(chains), its rules after the run (as planned in check mode; empty when it goes).
  returned: with O(chains)
  type: dict
  sample: {"PODNET-POLICY": ["-A PODNET-POLICY -s 192.168.10.10/32 -d 192.168.11.10/32 -m conntrack --ctstate NEW -j DROP"]}
"""

from ansible_collections.podnet.fabric.plugins.module_utils import chain, skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner

RULE_OPTIONS = dict(
    source=dict(type="str"),
    destination=dict(type="str"),
    in_interface=dict(type="str"),
    out_interface=dict(type="str"),
    protocol=dict(type="str"),
    destination_port=dict(type="int"),
    ctstate=dict(type="list", elements="str"),
    comment=dict(type="str"),
    jump=dict(type="str", required=True),
)


def converge(module):
    params = module.params
    many = params["chains"] is not None
    wants = chain.wanted_many(params) if many else [chain.wanted(params)]
    runner = Runner(module, params["netns"])
    have = runner.read("iptables", ["-w", "-t", params["table"], "-S"])
    plan = chain.plan_many(wants, params["table"], have, module.check_mode)
    if plan.commands:
        runner.run("iptables-restore", ["-w", "--noflush"], data="\n".join(plan.commands))
    if many:
        return skeleton.result(runner, bool(plan.commands), plan.before, plan.after, script=plan.commands,
                               chains=dict((name, value["rules"]) for name, value in plan.after.items()))
    name = wants[0]["name"]
    return skeleton.result(runner, bool(plan.commands), plan.before[name], plan.after[name],
                           script=plan.commands, rules=plan.after[name]["rules"])


def main():
    skeleton.main(
        converge,
        dict(
            skeleton.COMMON_ARGS,
            name=dict(type="str"),
            chains=dict(type="list", elements="dict", options=dict(
                name=dict(type="str", required=True),
                parent=dict(type="str"),
                position=dict(type="int", default=1),
                rules=dict(type="list", elements="dict", default=[], options=RULE_OPTIONS),
                state=dict(type="str", default="present", choices=["present", "absent"]),
            )),
            table=dict(type="str", default="filter", choices=list(chain.TABLES)),
            parent=dict(type="str"),
            position=dict(type="int", default=1),
            rules=dict(type="list", elements="dict", default=[], options=RULE_OPTIONS),
        ),
        json_options=("chains",),
        required_one_of=[("name", "chains", "chains_json")],
        mutually_exclusive=[("chains", "name"), ("chains", "parent"), ("chains", "rules"),
                            ("chains_json", "name"), ("chains_json", "parent"), ("chains_json", "rules")],
    )


if __name__ == "__main__":
    main()
