#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: reach
short_description: Ping from pods and nodes, and check what must and must not get through
version_added: 0.1.0
description:
  - Runs a list of ping probes, each from a pod's network namespace or from the node itself,
    optionally with a payload size and the don't-fragment bit (path MTU checks).
  - Fails when any probe's outcome differs from what it expects, and lists them all.
  - Read-only; never reports a change.
author:
  - podnet developers (@podnet)
options:
  probes:
    description: The probes.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: Network namespace to ping from (a pod). Empty means the node itself.
        type: str
        default: ''
      dst:
        description: Address to ping.
        type: str
        required: true
      size:
        description: ICMP payload size in bytes (C(ping -s)).
        type: int
      df:
        description: Set don't-fragment (C(ping -M do)), so a packet larger than the path MTU fails.
        type: bool
        default: false
      expect:
        description: Whether the probe must succeed (V(true)) or must fail (V(false)).
        type: bool
        default: true
  capture:
    description:
      - Capture one packet on an interface of this node while a pod pings, to show what the mode
        puts on the wire. C(tcpdump) starts first and listens; then the pod pings; the first packet
        matching O(capture.filter) is returned in C(capture.stdout).
    type: dict
    suboptions:
      iface:
        description: Interface to capture on (the node's underlay).
        type: str
        required: true
      filter:
        description: tcpdump filter expression (one argument, never a shell).
        type: str
        required: true
      src:
        description: Network namespace (pod) to ping from.
        type: str
        required: true
      dst:
        description: Address to ping.
        type: str
        required: true
      wait:
        description: Seconds to wait for the packet.
        type: int
        default: 10
  timeout:
    description: Seconds to wait for each reply.
    type: int
    default: 2
  attempts:
    description: Pings per probe; one reply is success.
    type: int
    default: 2
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: N/A
    platforms: posix
"""

EXAMPLES = r"""
- name: Show what vxlan puts on the wire when pod-a pings pod-b
  podnet.fabric.reach:
    capture:
      iface: eth0
      filter: udp port 4789 and src host 10.57.4.20
      src: pod-a
      dst: 192.168.11.10

- name: pod-a reaches pod-b, and a DF packet one byte over the MTU does not
  podnet.fabric.reach:
    probes:
      - {src: pod-a, dst: 192.168.11.10}
      - {src: pod-a, dst: 192.168.11.10, size: 1422, df: true}
      - {src: pod-a, dst: 192.168.11.10, size: 1423, df: true, expect: false}
"""

RETURN = r"""
capture:
  description: The captured packet, as tcpdump prints it.
  returned: when O(capture) is given
  type: dict
  contains:
    stdout:
      description: The captured packet, tcpdump's lines without timestamps.
      type: str
      returned: always
  sample: {"stdout": "IP 10.57.4.20.57780 > 10.57.4.21.4789: VXLAN, flags [I] (0x08), vni 100\nIP 192.168.10.10 > ..."}
results:
  description: One entry per probe.
  returned: always
  type: list
  elements: dict
  sample: [{"src": "pod-a", "dst": "192.168.11.10", "size": null, "df": false, "expect": true, "ok": true, "rtt_ms": 0.08}]
"""

import re
import threading
import time

from ansible_collections.podnet.fabric.plugins.module_utils import skeleton, validate
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner

_RTT_RE = re.compile(r"time=([0-9.]+) ms")


def check(probes, spec):
    """Refuse a bad probe or capture (PodnetError naming it) before anything is sent."""
    for index, probe in enumerate(probes):
        where = "probes[%d]" % index
        if probe["src"]:
            validate.netns_name(probe["src"], where + ".src")
        validate.ipv4(probe["dst"], where + ".dst")
        if probe["size"] is not None:
            validate.int_range(probe["size"], where + ".size", 0, 65507, "size")
    if spec:
        validate.ifname(spec["iface"], "capture.iface")
        validate.netns_name(spec["src"], "capture.src")
        validate.ipv4(spec["dst"], "capture.dst")


def converge(module):
    params = module.params
    probes = params["probes"]
    check(probes, params["capture"])
    runner = Runner(module)
    results, wrong = [], []
    for probe in probes:
        args = ["-n", "-c", str(params["attempts"]), "-i", "0.2", "-W", str(params["timeout"])]
        if probe["df"]:
            args += ["-M", "do"]
        if probe["size"] is not None:
            args += ["-s", str(probe["size"])]
        rc, out, err = runner.try_read("ping", args + [probe["dst"]], netns=probe["src"] or None)
        rtt = _RTT_RE.search(out)
        result = dict(probe, ok=rc == 0, rtt_ms=float(rtt.group(1)) if rtt else None)
        results.append(result)
        if result["ok"] != probe["expect"]:
            wrong.append("%s -> %s%s: %s" % (probe["src"] or "node", probe["dst"],
                                             " (%s bytes, DF)" % probe["size"] if probe["df"] else "",
                                             "no reply" if probe["expect"] else "got through, must not"))
    extra = {}
    if params["capture"]:
        extra["capture"] = capture(runner, params["capture"])
    if wrong:
        module.fail_json(msg="%d of %d probes failed: %s" % (len(wrong), len(probes), "; ".join(wrong)),
                         results=results, **extra)
    return dict(changed=False, results=results, **extra)


def capture(runner, spec):
    """tcpdump -c 1 on spec.iface while spec.src pings spec.dst; returns {stdout}."""
    # Every binary is found before the listener starts (a missing one fails the module, not the thread).
    runner.bin("timeout"), runner.bin("ping"), runner.bin("ip")
    listen_args = [str(spec["wait"]), runner.bin("tcpdump"), "-n", "-l", "-c", "1", "-i", spec["iface"], spec["filter"]]
    done = {}

    def listen():
        done["rc"], done["out"], done["err"] = runner.try_read("timeout", listen_args)

    listener = threading.Thread(target=listen)
    listener.start()
    # tcpdump needs a moment to open its socket: ping on for a few seconds, until it has its packet.
    time.sleep(1.0)
    deadline = time.time() + spec["wait"]
    while listener.is_alive() and time.time() < deadline:
        runner.try_read("ping", ["-n", "-c", "1", "-W", "1", spec["dst"]], netns=spec["src"])
        listener.join(0.3)
    listener.join()
    text, err = done.get("out", ""), done.get("err", "")
    if not text.strip():
        raise validate.PodnetError("capture: no packet matching %r on %s within %ds (tcpdump: %s)"
                                   % (spec["filter"], spec["iface"], spec["wait"], err.strip()))
    # Drop tcpdump's timestamps so the output reads the same every run.
    lines = [re.sub(r"^\d\d:\d\d:\d\d\.\d+ ", "", line) for line in text.strip().splitlines()]
    return dict(stdout="\n".join(lines))


def main():
    skeleton.main(converge, dict(
        capture=dict(type="dict", options=dict(
            iface=dict(type="str", required=True),
            filter=dict(type="str", required=True),
            src=dict(type="str", required=True),
            dst=dict(type="str", required=True),
            wait=dict(type="int", default=10),
        )),
        probes=dict(type="list", elements="dict", default=[], options=dict(
            src=dict(type="str", default=""),
            dst=dict(type="str", required=True),
            size=dict(type="int"),
            df=dict(type="bool", default=False),
            expect=dict(type="bool", default=True),
        )),
        timeout=dict(type="int", default=2),
        attempts=dict(type="int", default=2),
    ))


if __name__ == "__main__":
    main()
