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

The answer is read from the payload itself (the module's name and arguments):

* ``podnet.fabric.node_facts``: a plausible ``podnet_underlay`` for the node_ip it was asked
  about: eth0 holds it (prefix length ``$PODNET_BENCH_STUB_PREFIXLEN``, default 16; MTU 1500), a
  route to the pod gateway, ip_forward 0, rp_filter 0 everywhere, no tunnel devices (a first
  converge on a clean node);
* ``ansible.builtin.ping``: ``{"ping": "pong"}``;
* every other module: ``{"changed": false}``.

Enabled with ``ANSIBLE_CONNECTION_PLUGINS=bench/connection_plugins`` and
``ansible_connection: bench_stub``.
"""

from __future__ import annotations

import ast
import json
import os
import re

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

# The AnsiballZ wrapper ends in ``_ansiballz_main(\nkey=repr(value),\n...)`` (ansible-core 2.19, 2.21).
_ARG_RE = re.compile(r"^(module_fqn|ansible_module|params)=(.*),$", re.M)


def _payload(in_data):
    """(module name, module args) from a pipelined AnsiballZ payload; (None, {}) otherwise."""
    if not in_data:
        return None, {}
    text = to_text(in_data, errors="surrogate_or_strict")
    # The arguments come last, after the module's zip data: search from the end.
    tail = text[text.rfind("_ansiballz_main("):] if "_ansiballz_main(" in text else ""
    found = dict((key, value) for key, value in _ARG_RE.findall(tail))
    name = None
    for key in ("module_fqn", "ansible_module"):
        if key in found:
            name = ast.literal_eval(found[key])
            break
    args = {}
    if "params" in found:
        args = json.loads(ast.literal_eval(found["params"])).get("ANSIBLE_MODULE_ARGS", {})
    return name, args


def answer(name, args):
    """The canned result of module ``name`` called with ``args``."""
    short = (name or "").rsplit(".", 1)[-1]
    if short == "node_facts":
        if not args.get("node_ip"):
            return dict(failed=True, msg="bench_stub: node_facts was called without node_ip")
        # What node_facts reads on a clean node whose eth0 holds node_ip in the bench's underlay.
        fact = dict(iface="eth0", prefixlen=int(os.environ.get("PODNET_BENCH_STUB_PREFIXLEN", "16")), mtu=1500,
                    gateway_route=True, ip_forward=0, rp_filter={"all": 0, "default": 0, "eth0": 0, "lo": 0},
                    tunnels={})
        return dict(changed=False, ansible_facts=dict(podnet_underlay=fact))
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
        name, args = _payload(in_data)
        if name is None:
            return 0, b"", b""
        return 0, json.dumps(answer(name, args)).encode(), b""

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)

    def close(self):
        self._connected = False
