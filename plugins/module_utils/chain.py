# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for podnet.fabric.iptables_chain: one chain podnet owns, its rules in order,
and the one rule that jumps to it from a parent chain.

A rule is a dict ``{source, destination, in_interface, out_interface, protocol,
destination_port, ctstate, comment, jump}`` with canonical values (networks with a prefix
length, the protocol as a number, ctstate sorted).  ``parse()`` reads ``iptables -S`` into
the same dicts, so wanted and live rules compare as data, whatever names the system's
/etc/protocols gives the numbers.  A live rule with anything podnet does not write (another
match, a negation, a goto) never equals a wanted rule, so the chain is rewritten.

``plan()`` returns one ``iptables-restore --noflush`` script: the chain is declared (which
creates it, or empties it when it exists) and refilled in one atomic transaction, then the
jump is put at its position.  Only the chain and the jumps to it are ever touched; a jump is
deleted by its rule spec, never by a number (see ``_deletes``).
"""

from __future__ import annotations

import re
import shlex
import socket

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.plan import Plan
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

TABLES = ("filter", "mangle", "nat", "raw", "security")
CTSTATES = ("DNAT", "ESTABLISHED", "INVALID", "NEW", "RELATED", "SNAT", "UNTRACKED")
RULE_KEYS = ("source", "destination", "in_interface", "out_interface", "protocol",
             "destination_port", "ctstate", "comment", "jump")
CHAIN_KEYS = ("name", "parent", "position", "rules", "state")
# The comment on the rule that jumps to podnet's chain.
JUMP_COMMENT = "podnet"
# iptables chain and target names: at most 28 characters (XT_EXTENSION_MAXNAMELEN - 1).
_CHAIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,27}$")
# Printable, no quotes or backslashes: the comment travels through iptables-restore's quoting.
_COMMENT_RE = re.compile(r"^[A-Za-z0-9 _.,:;=+/>@()\[\]#-]{1,256}$")
# Protocol names iptables may print, by number. /etc/protocols calls 4 "ipencap" (Debian) or
# "ipv4" (Fedora), and 94 "ipip": `-p ipip` is NOT what an ipip device sends.
_PROTOCOLS = {"icmp": 1, "ipencap": 4, "ipv4": 4, "ip-encap": 4, "tcp": 6, "udp": 17, "gre": 47,
              "esp": 50, "ah": 51, "sctp": 132, "udplite": 136}
_PORT_PROTOCOLS = {6: "tcp", 17: "udp"}
_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


def chain_name(value, option):
    """An iptables chain or target name (at most 28 characters); the message starts with ``option``."""
    if not isinstance(value, str) or not _CHAIN_RE.match(value):
        raise PodnetError("%s: %r is not a valid chain name (letters, digits, _ and -, at most 28 "
                          "characters)" % (option, value))
    return value


def protocol_number(value, option, lookup=True):
    """A protocol (number or name) as its number; ``ipip`` is refused as ambiguous."""
    text = str(value).strip().lower()
    if text == "ipip":
        raise PodnetError("%s: 'ipip' is ambiguous (/etc/protocols gives it 94); IP-in-IP as "
                          "Linux ipip devices send it is protocol 4" % option)
    if text.isdigit():
        return validate.int_range(text, option, 0, 255, "protocol")
    if text in _PROTOCOLS:
        return _PROTOCOLS[text]
    if lookup:
        try:
            return socket.getprotobyname(text)
        except (OSError, socket.error):
            pass
    raise PodnetError("%s: unknown protocol %r; give its number" % (option, value))


def _network(value, option):
    text = str(value)
    return validate.ipv4_network(text if "/" in text else text + "/32", option)


def empty_rule():
    return dict((key, None) for key in RULE_KEYS)


def rule(item, where):
    """Validate and normalise one wanted rule (a dict)."""
    result = empty_rule()
    for key in ("source", "destination"):
        if item.get(key) not in (None, ""):
            result[key] = _network(item[key], "%s.%s" % (where, key))
    for key in ("in_interface", "out_interface"):
        if item.get(key) not in (None, ""):
            result[key] = validate.ifname(item[key], "%s.%s" % (where, key))
    if item.get("protocol") not in (None, ""):
        result["protocol"] = protocol_number(item["protocol"], where + ".protocol")
    if item.get("destination_port") not in (None, ""):
        if result["protocol"] not in _PORT_PROTOCOLS:
            raise PodnetError("%s.destination_port: needs protocol tcp or udp" % where)
        result["destination_port"] = validate.port(item["destination_port"], where + ".destination_port")
    if item.get("ctstate"):
        states = item["ctstate"]
        if isinstance(states, str):
            states = states.split(",")
        states = sorted(set(str(s).strip().upper() for s in states))
        bad = [s for s in states if s not in CTSTATES]
        if bad:
            raise PodnetError("%s.ctstate: unknown state(s) %s; choose from %s"
                              % (where, ", ".join(bad), ", ".join(CTSTATES)))
        result["ctstate"] = states
    if item.get("comment") not in (None, ""):
        if not _COMMENT_RE.match(str(item["comment"])):
            raise PodnetError("%s.comment: %r must be 1..256 printable characters without quotes or "
                              "backslashes" % (where, item["comment"]))
        result["comment"] = str(item["comment"])
    if item.get("jump") in (None, ""):
        raise PodnetError("%s.jump: a target (ACCEPT, DROP, RETURN or a chain) is required" % where)
    result["jump"] = chain_name(item["jump"], where + ".jump")
    return result


def _want(item, table, where):
    """One chain's wanted state ``{name, table, parent, position, rules, state}``; option names in
    messages are prefixed with ``where`` (empty for the module's top-level options)."""
    name = chain_name(item.get("name"), where + "name")
    parent = item.get("parent")
    if parent not in (None, ""):
        parent = chain_name(parent, where + "parent")
        if parent == name:
            raise PodnetError("%sparent: a chain cannot jump to itself" % where)
    else:
        parent = None
    position = item.get("position")
    position = validate.int_range(1 if position is None else position, where + "position", 1, 2 ** 31 - 1,
                                  "position")
    state = item.get("state") or "present"
    if state not in ("present", "absent"):
        raise PodnetError("%sstate: %r is not present or absent" % (where, state))
    rules = []
    for place, one in validate.entries(item.get("rules"), where + "rules", RULE_KEYS, "rule"):
        one = rule(one, place)
        if one["jump"] == name:
            raise PodnetError("%s.jump: a rule of %s cannot jump to %s itself" % (place, name, name))
        rules.append(one)
    return dict(name=name, table=table, parent=parent, position=position, rules=rules, state=state)


def _table(params):
    table = params.get("table") or "filter"
    if table not in TABLES:
        raise PodnetError("table: %r is not one of %s" % (table, ", ".join(TABLES)))
    return table


def wanted(params):
    """Validate the module's parameters into ``{name, table, parent, position, rules, state}``."""
    return _want(params, _table(params), "")


def wanted_many(params):
    """Validate the module's O(chains) into a list of wanted chains (one table for all)."""
    table = _table(params)
    items = list(validate.entries(params.get("chains"), "chains", CHAIN_KEYS, "chain"))
    return [_want(item, table, where + ".") for where, item in items]


def args(item):
    """A normalised rule as iptables arguments (after ``-A CHAIN``), in iptables' own order."""
    argv = []
    for key, flag in (("source", "-s"), ("destination", "-d"), ("in_interface", "-i"), ("out_interface", "-o")):
        if item[key] is not None:
            argv += [flag, item[key]]
    if item["protocol"] is not None:
        argv += ["-p", _NAMES.get(item["protocol"], str(item["protocol"]))]
    if item["destination_port"] is not None:
        argv += ["-m", _PORT_PROTOCOLS[item["protocol"]], "--dport", str(item["destination_port"])]
    if item["ctstate"]:
        argv += ["-m", "conntrack", "--ctstate", ",".join(item["ctstate"])]
    if item["comment"] is not None:
        argv += ["-m", "comment", "--comment", item["comment"]]
    return argv + ["-j", item["jump"]]


def line(chain, item, verb="-A", position=None):
    """One iptables-restore (and ``iptables -S``) line; arguments with spaces are double-quoted."""
    words = [verb, chain] + ([str(position)] if position else []) + args(item)
    return " ".join('"%s"' % w if " " in w or not w else w for w in words)


def jump_rule(name):
    return dict(empty_rule(), comment=JUMP_COMMENT, jump=name)


def _parse_rule(tokens):
    """``iptables -S`` tokens after ``-A CHAIN`` -> a normalised rule, or None when podnet would
    never write it (another match, a negation, a goto, an option it does not know)."""
    result = empty_rule()
    flags = {"-s": "source", "-d": "destination", "-i": "in_interface", "-o": "out_interface",
             "--dport": "destination_port", "--ctstate": "ctstate", "--comment": "comment",
             "-j": "jump", "-p": "protocol"}
    index = 0
    try:
        while index < len(tokens):
            token = tokens[index]
            if token == "-m" and tokens[index + 1] in ("udp", "tcp", "conntrack", "comment"):
                index += 2
                continue
            key = flags.get(token)
            if key is None or result[key] is not None:
                return None
            value = tokens[index + 1]
            if key in ("source", "destination"):
                value = _network(value, key)
            elif key == "protocol":
                value = protocol_number(value, key)
            elif key == "destination_port":
                value = int(value)
            elif key == "ctstate":
                value = sorted(value.split(","))
            result[key] = value
            index += 2
    except (IndexError, ValueError):
        return None
    if result["jump"] is None:
        return None
    return result


def parse(text):
    """``iptables -t TABLE -S`` -> ``{chain: [(rule or None, line), ...]}`` for every chain."""
    chains = {}
    for raw in (text or "").splitlines():
        raw = raw.strip()
        try:
            tokens, parsed = shlex.split(raw), True
        except ValueError:
            tokens, parsed = raw.split(), False
        if len(tokens) >= 2 and tokens[0] in ("-P", "-N"):
            chains.setdefault(tokens[1], [])
        elif len(tokens) >= 2 and tokens[0] == "-A":
            chains.setdefault(tokens[1], []).append((_parse_rule(tokens[2:]) if parsed else None, raw))
    return chains


def _jumps(chains, name):
    """``{chain: [rule numbers]}`` of the rules that jump (or go) to ``name``."""
    pattern = re.compile(r"(^|\s)-[jg] %s(\s|$)" % re.escape(name))
    found = {}
    for chain, items in chains.items():
        numbers = [index + 1 for index, (item, raw) in enumerate(items) if pattern.search(raw)]
        if numbers and chain != name:
            found[chain] = numbers
    return found


def _deletes(chains, chain, numbers):
    """``-D CHAIN <rule spec>`` lines for the rules ``numbers`` of ``chain`` (which are then dropped
    from ``chains``).  By spec, never by number: another writer (docker, kube-proxy, firewalld) may
    insert or delete rules between podnet's read and its write, and a number read earlier would
    then name somebody else's rule.  Each ``-D`` removes the first rule that matches, so
    identical copies go one ``-D`` each; a rule that has gone meanwhile fails the transaction."""
    lines = ["-D %s%s" % (chain, chains[chain][number - 1][1].strip()[len("-A " + chain):]) for number in sorted(numbers, reverse=True)]
    chains[chain] = [item for index, item in enumerate(chains[chain]) if index + 1 not in numbers]
    return lines


def _show(chain, items):
    """Live rules as lines, rendered like wanted ones when podnet could have written them."""
    return [line(chain, item) if item is not None else raw for item, raw in items]


def _plan_one(want, chains, check_mode):
    """(script body lines, before, after) for one chain against the parsed ``chains``, which is
    then updated to what the body leaves, so a next chain is planned against that."""
    name, parent = want["name"], want["parent"]
    exists = name in chains
    current = chains.get(name, [])
    jumps = _jumps(chains, name)
    before = dict(exists=exists, rules=_show(name, current),
                  jump=dict(chain=parent, position=jumps[parent][0]) if parent in jumps else None)
    body = []
    if want["state"] == "absent":
        after = dict(exists=False, rules=[], jump=None)
        if not exists:
            return [], before, after
        for chain in sorted(jumps):
            body += _deletes(chains, chain, jumps[chain])
        body += ["-F %s" % name, "-X %s" % name]
        del chains[name]
        return body, before, after
    if parent and parent not in chains:
        if not check_mode:
            raise PodnetError("parent: chain %s does not exist in table %s" % (parent, want["table"]))
        chains[parent] = []
    rules = [line(name, item) for item in want["rules"]]
    if not exists or [item for item, raw in current] != want["rules"]:
        # Declaring a chain creates it, or empties one that exists (--noflush keeps the rest).
        body += [":%s - [0:0]" % name] + rules
        chains[name] = list(zip(want["rules"], rules))
    jump = None
    if parent:
        mine = jumps.get(parent, [])
        position = min(want["position"], len(chains[parent]) - len(mine) + 1)
        jump = dict(chain=parent, position=position)
        if mine != [position] or chains[parent][position - 1][0] != jump_rule(name):
            body += _deletes(chains, parent, mine)
            body.append(line(parent, jump_rule(name), "-I", position))
            chains[parent].insert(position - 1, (jump_rule(name), line(parent, jump_rule(name))))
    return body, before, dict(exists=True, rules=rules, jump=jump)


def plan(want, text, check_mode=False):
    """A ``Plan`` (restore script lines or [], before, after) for ``want`` against ``iptables -S`` output.

    A missing parent fails, except in check mode, where an earlier task that would have made it
    (podnet's forward chain, on a fresh node) did not run: the plan then assumes it empty.
    """
    body, before, after = _plan_one(want, parse(text), check_mode)
    return Plan(_script(want["table"], body), before, after)


def order(wants, chains=None):
    """The chains in the order one transaction must write them, against the live ``chains``
    (``parse()``): a chain that is present comes after its parent and after the chains its rules
    jump to (when those are listed too); the chains that go come last, each before the chains
    its live rules jump to. So a jump is removed by deleting (or rewriting) the chain that holds
    it, never by a ``-D`` followed later by a flush of the same chain, which iptables-nft 1.8.9
    turns into "CHAIN_DEL failed (Device or resource busy)" for the chain jumped to. Refuses a
    duplicate, a cycle, and a present chain that needs one that goes."""
    names = [want["name"] for want in wants]
    duplicates = sorted(set(name for name in names if names.count(name) > 1))
    if duplicates:
        raise PodnetError("chains: %s listed more than once" % ", ".join(duplicates))
    state = dict((want["name"], want["state"]) for want in wants)
    needs = {}
    for index, want in enumerate(wants):
        if want["state"] == "absent":
            continue
        wanted_chains = ([want["parent"]] if want["parent"] else []) + [r["jump"] for r in want["rules"]]
        for other in wanted_chains:
            if state.get(other) == "absent":
                raise PodnetError("chains[%d]: %s needs chain %s, which is listed with state=absent"
                                  % (index, want["name"], other))
        needs[want["name"]] = [other for other in wanted_chains if state.get(other) == "present"]
    result, done = [], set()
    pending = [want for want in wants if want["state"] != "absent"]
    while pending:
        # The first listed chain whose needs are written: the list's order wherever it can be kept.
        ready = [want for want in pending if all(other in done for other in needs[want["name"]])]
        if not ready:
            raise PodnetError("chains: %s jump to each other in a cycle"
                              % ", ".join(want["name"] for want in pending))
        done.add(ready[0]["name"])
        result.append(ready[0])
        pending.remove(ready[0])
    # The chains that go: a chain before the ones it jumps to now (iptables has no jump loops).
    pending = [want for want in wants if want["state"] == "absent"]
    while pending:
        names = set(want["name"] for want in pending)
        ready = [want for want in pending if not names.intersection(_jumps(chains or {}, want["name"]))] or pending
        result.append(ready[0])
        pending.remove(ready[0])
    return result


def plan_many(wants, table, text, check_mode=False):
    """One transaction for several chains of ``table``: a ``Plan`` (script or [], {name: before},
    {name: after}), each chain planned against what the ones before it leave."""
    chains = parse(text)
    body, before, after = [], {}, {}
    for want in order(wants, chains):
        lines, before[want["name"]], after[want["name"]] = _plan_one(want, chains, check_mode)
        body += lines
    return Plan(_script(table, body), before, after)


def _script(table, body):
    """The iptables-restore script for ``body`` lines in ``table`` (none when there is no body)."""
    return ["*%s" % table] + body + ["COMMIT"] if body else []
