#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: capture
short_description: Write what a pod-to-pod ping looks like on a node's interfaces to pcap files
version_added: 0.1.0
description:
  - Starts one C(tcpdump -w FILE) per interface in O(interfaces) (for example the node's underlay
    and its tunnel device), each with its own capture filter, then pings O(dst) from the pod
    O(src) until every capture holds O(packets) packets or O(wait) seconds have passed.
  - The files are pcap, to read with C(tshark -r FILE) or to open in Wireshark.
  - Every run writes new files, so the module always reports a change. In check mode nothing
    runs; C(commands) lists what would.
  - Fails, naming the interface, when a capture holds no packet.
author:
  - podnet developers (@podnet)
options:
  src:
    description: The pod (network namespace) to ping from.
    type: str
    required: true
  dst:
    description: The address to ping, usually a pod on another node.
    type: str
    required: true
  interfaces:
    description: The captures, one per interface of the node the module runs on.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The interface to capture on.
        type: str
        required: true
      path:
        description: The pcap file to write (absolute; its folder must exist). An existing file is replaced.
        type: path
        required: true
      filter:
        description: The tcpdump capture filter (one argument, never a shell), e.g. C(udp port 4789).
        type: str
        default: ''
  packets:
    description: Packets to keep per interface; the capture of an interface ends when it has them.
    type: int
    default: 4
  wait:
    description: Seconds to wait at most for the packets.
    type: int
    default: 15
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Nothing runs; the result's C(commands) lists what would.
  diff_mode:
    support: none
  platform:
    support: N/A
    platforms: posix
requirements:
  - C(tcpdump), C(ping) (iputils), C(ip) (iproute2) and C(timeout) (coreutils).
"""

EXAMPLES = r"""
- name: A vxlan ping from pod-a to pod-b, on the underlay and on the tunnel device
  podnet.fabric.capture:
    src: pod-a
    dst: 192.168.11.10
    interfaces:
      - {name: eth0, path: /tmp/lab-vxlan-underlay.pcap, filter: udp port 4789 and host 10.57.4.21}
      - {name: vxlan0, path: /tmp/lab-vxlan-vxlan0.pcap, filter: icmp and host 192.168.11.10}
"""

RETURN = r"""
commands:
  description: The captures and the ping that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/timeout", "15", "/usr/bin/tcpdump", "-n", "-U", "-Z", "root", "-c", "4", "-i", "eth0",
            "-w", "/tmp/lab-vxlan-underlay.pcap", "udp port 4789"],
           ["/usr/sbin/ip", "netns", "exec", "pod-a", "/usr/bin/ping", "-n", "-c", "1", "-W", "1", "192.168.11.10"]]
files:
  description: One entry per interface, with the packets its file holds.
  returned: success
  type: list
  elements: dict
  sample: [{"iface": "eth0", "path": "/tmp/lab-vxlan-underlay.pcap", "filter": "udp port 4789", "packets": 4}]
"""

import os
import re
import threading
import time

from ansible_collections.podnet.fabric.plugins.module_utils import skeleton, validate
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

_CAPTURED_RE = re.compile(r"^(\d+) packets? captured", re.M)


def check(params):
    """Refuse bad options (PodnetError naming the option) before any capture starts."""
    validate.netns_name(params["src"], "src")
    validate.ipv4(params["dst"], "dst")
    validate.int_range(params["packets"], "packets", 1, 1000, "packets")
    validate.int_range(params["wait"], "wait", 1, 600, "seconds")
    if not params["interfaces"]:
        raise PodnetError("interfaces: at least one interface to capture on is needed")
    paths = set()
    for index, spec in enumerate(params["interfaces"]):
        where = "interfaces[%d]" % index
        validate.ifname(spec["name"], where + ".name")
        if not os.path.isabs(spec["path"]) or not os.path.isdir(os.path.dirname(spec["path"])):
            raise PodnetError("%s.path: %r is not an absolute path in an existing folder" % (where, spec["path"]))
        if spec["path"] in paths:
            raise PodnetError("%s.path: %s is also the file of another interface" % (where, spec["path"]))
        paths.add(spec["path"])


def converge(module):
    params = module.params
    check(params)
    runner = Runner(module)
    # -U: every packet reaches the file at once; -Z root: Debian's tcpdump would otherwise write
    # as the user tcpdump, who cannot write into a root-only folder.
    listeners = [[str(params["wait"]), runner.bin("tcpdump"), "-n", "-U", "-Z", "root", "-c", str(params["packets"]),
                  "-i", spec["name"], "-w", spec["path"]] + ([spec["filter"]] if spec["filter"] else [])
                 for spec in params["interfaces"]]
    ping = ["-n", "-c", "1", "-W", "1", params["dst"]]
    runner.commands.extend([runner.argv("timeout", args) for args in listeners]
                           + [runner.argv("ping", ping, netns=params["src"])])
    if module.check_mode:
        return skeleton.result(runner, True)

    results = [dict() for _listener in listeners]

    def listen(args, result):
        result["rc"], result["out"], result["err"] = runner.try_read("timeout", args)

    threads = [threading.Thread(target=listen, args=(args, result)) for args, result in zip(listeners, results)]
    for thread in threads:
        thread.start()
    # No sleep until tcpdump listens: the pod pings on until every capture has its packets.
    deadline = time.time() + params["wait"]
    while any(thread.is_alive() for thread in threads) and time.time() < deadline:
        runner.try_read("ping", ping, netns=params["src"])
        for thread in threads:
            thread.join(0.1)
    for thread in threads:
        thread.join()

    files, empty = [], []
    for spec, result in zip(params["interfaces"], results):
        match = _CAPTURED_RE.search(result.get("err", ""))
        packets = int(match.group(1)) if match else 0
        files.append(dict(iface=spec["name"], path=spec["path"], filter=spec["filter"], packets=packets))
        if not packets or not os.path.exists(spec["path"]):
            said = result.get("err", "").strip().splitlines()[-1:]
            empty.append("%s (%s; tcpdump: %s)" % (spec["name"], spec["filter"] or "no filter", said))
    if empty:
        error = PodnetError("capture: no packet within %ds on %s" % (params["wait"], ", ".join(empty)))
        error.details = dict(files=files, commands=runner.commands)
        raise error
    return skeleton.result(runner, True, files=files)


def main():
    skeleton.main(converge, dict(
        src=dict(type="str", required=True),
        dst=dict(type="str", required=True),
        interfaces=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            path=dict(type="path", required=True),
            filter=dict(type="str", default=""),
        )),
        packets=dict(type="int", default=4),
        wait=dict(type="int", default=15),
    ))


if __name__ == "__main__":
    main()
