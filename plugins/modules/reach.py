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
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podnet.fabric.plugins.module_utils import iproute, validate

_RTT_RE = re.compile(r"time=([0-9.]+) ms")


def main():
    module = AnsibleModule(
        argument_spec=dict(
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
        ),
        supports_check_mode=True,
    )
    probes = module.params["probes"]
    for index, probe in enumerate(probes):
        where = "probes[%d]" % index
        if probe["src"]:
            iproute.fail_on_invalid(module, validate.netns_name, probe["src"], where + ".src")
        iproute.fail_on_invalid(module, validate.ipv4, probe["dst"], where + ".dst")
        if probe["size"] is not None:
            iproute.fail_on_invalid(module, validate.int_range, probe["size"], where + ".size", 0, 65507, "size")
    ping = module.get_bin_path("ping", required=True)
    ip = module.get_bin_path("ip", required=True)
    results, wrong = [], []
    for probe in probes:
        argv = [ping, "-n", "-c", str(module.params["attempts"]), "-i", "0.2", "-W", str(module.params["timeout"])]
        if probe["df"]:
            argv += ["-M", "do"]
        if probe["size"] is not None:
            argv += ["-s", str(probe["size"])]
        argv.append(probe["dst"])
        if probe["src"]:
            argv = [ip, "netns", "exec", probe["src"]] + argv
        rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
        rtt = _RTT_RE.search(out)
        result = dict(probe, ok=rc == 0, rtt_ms=float(rtt.group(1)) if rtt else None)
        results.append(result)
        if result["ok"] != probe["expect"]:
            wrong.append("%s -> %s%s: %s" % (probe["src"] or "node", probe["dst"],
                                             " (%s bytes, DF)" % probe["size"] if probe["df"] else "",
                                             "no reply" if probe["expect"] else "got through, must not"))
    extra = {}
    if module.params["capture"]:
        extra["capture"] = capture(module, module.params["capture"], ping, ip)
    if wrong:
        module.fail_json(msg="%d of %d probes failed: %s" % (len(wrong), len(probes), "; ".join(wrong)),
                         results=results, **extra)
    module.exit_json(changed=False, results=results, **extra)


def capture(module, spec, ping, ip):
    """tcpdump -c 1 on spec.iface while spec.src pings spec.dst; returns {stdout}."""
    iproute.fail_on_invalid(module, validate.ifname, spec["iface"], "capture.iface")
    iproute.fail_on_invalid(module, validate.netns_name, spec["src"], "capture.src")
    iproute.fail_on_invalid(module, validate.ipv4, spec["dst"], "capture.dst")
    tcpdump = module.get_bin_path("tcpdump", required=True)
    timeout = module.get_bin_path("timeout", required=True)
    argv = [timeout, str(spec["wait"]), tcpdump, "-n", "-l", "-c", "1", "-i", spec["iface"], spec["filter"]]
    done = {}

    def listen():
        done["rc"], done["out"], done["err"] = module.run_command(argv)

    listener = threading.Thread(target=listen)
    listener.start()
    # tcpdump needs a moment to open its socket: ping on for a few seconds, until it has its packet.
    time.sleep(1.0)
    pinger = [ip, "netns", "exec", spec["src"], ping, "-n", "-c", "1", "-W", "1", spec["dst"]]
    deadline = time.time() + spec["wait"]
    while listener.is_alive() and time.time() < deadline:
        module.run_command(pinger)
        listener.join(0.3)
    listener.join()
    text, err = done.get("out", ""), done.get("err", "")
    if not text.strip():
        module.fail_json(msg="capture: no packet matching %r on %s within %ds (tcpdump: %s)"
                         % (spec["filter"], spec["iface"], spec["wait"], err.strip()))
    # Drop tcpdump's timestamps so the output reads the same every run.
    lines = [re.sub(r"^\d\d:\d\d:\d\d\.\d+ ", "", line) for line in text.strip().splitlines()]
    return dict(stdout="\n".join(lines))


if __name__ == "__main__":
    main()
