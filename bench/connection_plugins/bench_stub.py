# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench-only connection: every module "runs" at once and answers a canned result.

Used by bench/bench.py's scale section (``--scale-n``) to measure what a playbook costs on the
controller alone, at sizes no lab of namespaces reaches: Ansible's own work (the task queue, the
workers, templating, argument specs) and podnet's (validation, planning, the filters), up to and
including building each module's payload (AnsiballZ: the module, its module_utils and its
arguments), which Ansible hands to ``exec_command`` as stdin (pipelining, always on here). Nothing
runs on any host: no process is started, no file is written.

The answer depends on the payload (the module's name; node_facts' arguments); reading the name is the
stub's only work, a search from the payload's end, small beside the rest:

* ``podnet.fabric.node_facts``: a plausible ``podnet_underlay`` for the node_ip it was asked
  about: eth0 holds it (prefix length ``$PODNET_BENCH_STUB_PREFIXLEN``, default 16; MTU 1500), a
  route to the pod gateway, ip_forward 0, rp_filter 0 everywhere, no tunnel devices and no record
  of what podnet made (a first converge on a clean node);
* ``podnet.fabric.preflight``: an underlay that carries everything: ``collect`` hears every probe
  it was told to expect (``expect``), ``send`` sent them all, ``listen`` a listener;
* ``ansible.builtin.ping``: ``{"ping": "pong"}``;
* every other module: ``{"changed": false}``.

Enabled with ``ANSIBLE_CONNECTION_PLUGINS=bench/connection_plugins`` and
``ansible_connection: bench_stub``.
"""

from __future__ import annotations

import ast
import json
import os

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = r"""
name: bench_stub
short_description: answer every module run at once with a canned result (podnet's benchmark)
description:
  - Measures controller-side cost only. Module payloads are built and handed over, never run.
author:
  - podnet developers (@podnet)
options: {}
"""

# The AnsiballZ wrapper ends in ``_ansiballz_main(\nkey=repr(value),\n...)`` (ansible-core 2.19, 2.21):
# the module's name and its arguments come before the (large) zip data.
_MAIN = b"_ansiballz_main("


def _field(data, key, start, end):
    """The repr'd value of ``key=...,`` on its own line of the wrapper (a repr has no raw newline)."""
    at = data.find(b"\n" + key + b"=", start, end)
    if at < 0:
        return None
    at += len(key) + 2
    return to_text(data[at:data.find(b",\n", at, end)])


def _payload(in_data):
    """(module name, a function that reads its arguments' literal) from a pipelined AnsiballZ payload;
    (None, None) from anything else."""
    start = in_data.rfind(_MAIN) if in_data else -1
    if start < 0:
        return None, None
    end = in_data.find(b"\nzip_data=", start)
    end = len(in_data) if end < 0 else end + 1
    name = _field(in_data, b"module_fqn", start, end) or _field(in_data, b"ansible_module", start, end)
    return (ast.literal_eval(name) if name else None), (lambda: _field(in_data, b"params", start, end))


def _args(params):
    """The module's arguments, read from the payload only where the answer needs them."""
    literal = params() if params else None
    return json.loads(ast.literal_eval(literal)).get("ANSIBLE_MODULE_ARGS", {}) if literal else {}


def answer(name, params=None):
    """The canned result of module ``name``; ``params()`` reads its arguments' literal."""
    short = (name or "").rsplit(".", 1)[-1]
    if short == "node_facts":
        if not _args(params).get("node_ip"):
            return dict(failed=True, msg="bench_stub: node_facts was called without node_ip")
        # What node_facts reads on a clean node whose eth0 holds node_ip in the bench's underlay.
        fact = dict(iface="eth0", prefixlen=int(os.environ.get("PODNET_BENCH_STUB_PREFIXLEN", "16")), mtu=1500,
                    gateway_route=True, ip_forward=0, rp_filter={"all": 0, "default": 0, "eth0": 0, "lo": 0},
                    # a clean node: none of `files` (podnet's BIRD config) exists, no record of podnet's
                    tunnels={}, files=[], record=None)
        return dict(changed=False, ansible_facts=dict(podnet_underlay=fact))
    if short == "preflight":
        args = _args(params)
        if args.get("state") == "collect":
            return dict(changed=False, received=args.get("expect") or {}, missing={})
        if args.get("state") == "send":
            return dict(changed=False, sent=len(args.get("peers") or []) * len(args.get("probes") or []), errors=[])
        return dict(changed=False, pid=0)
    if short == "ping":
        return dict(changed=False, ping="pong")
    return dict(changed=False)


class Connection(ConnectionBase):
    transport = "bench_stub"
    has_pipelining = True

    def _connect(self):
        self._connected = True
        return self

    def is_pipelining_enabled(self, wrap_async=False):
        return not wrap_async

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        name, params = _payload(in_data)
        if name is None:
            return 0, b"", b""
        return 0, json.dumps(answer(name, params)).encode(), b""

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)

    def close(self):
        self._connected = False
