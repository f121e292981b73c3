#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: topology_graph
short_description: Draw a podnet cluster (nodes, underlay, tunnels, pods, routes) with graphviz
version_added: 0.1.0
description:
  - Writes O(dest)/O(name)C(.dot), the picture's graphviz source, and renders it with C(dot) to
    every format in O(formats) (C(O(name).svg), C(O(name).png)).
  - The picture shows one box per underlay subnet (a switch in the lab) and a router between
    subnets, one frame per node with its underlay address, tunnel device and pods, and one arrow
    per route the node holds to a peer's pods (route protocol 150, podnet's), coloured by how it
    carries the packet (host-gw, ipip, vxlan).
  - Usually run on the controller with what every node read, as C(playbooks/graph.yml) does.
  - Idempotent. The files are written only when the source differs from the existing C(.dot) or
    a rendered file is missing.
author:
  - podnet developers (@podnet)
options:
  dest:
    description: The folder to write to; it is created when missing.
    type: path
    required: true
  name:
    description: The files' name without extension, e.g. C(alice-vxlan).
    type: str
    required: true
  title:
    description: The picture's title.
    type: str
    default: podnet
  mode:
    description: The cluster's mode, shown in the title and colouring the node frames.
    type: str
    choices: [host-gw, ipip, vxlan]
  nodes:
    description:
      - The nodes, each a dict with C(name), C(node_ip), C(pod_cidr) (required), C(prefixlen),
        C(iface), C(netns) (shown when the node is a lab namespace), C(pods) (a list of C(name),
        C(ip) or C(address) (C(ip/prefixlen)), C(host_ifname)), C(links) (the node's C(ip -json -details addr show)) and
        C(routes) (its C(ip -json route show table main)).
    type: list
    elements: dict
    required: true
  switch_prefix:
    description: In the lab, the prefix of the switch namespaces, to name each subnet's switch.
    type: str
  router:
    description: In the lab, the router's namespace, to name the router between subnets.
    type: str
  formats:
    description: The formats to render with C(dot -T).
    type: list
    elements: str
    choices: [svg, png]
    default: [svg, png]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Nothing is written; the result's C(commands) lists what would run.
  diff_mode:
    support: full
    details: Before and after are the graphviz source.
  platform:
    support: N/A
    platforms: posix
requirements:
  - graphviz (C(dot)).
"""

EXAMPLES = r"""
- name: Draw the lab
  podnet.fabric.topology_graph:
    dest: graphs
    name: lab-vxlan
    mode: vxlan
    switch_prefix: podnet-sw
    router: podnet-rt
    nodes:
      - {name: host1, node_ip: 10.57.4.20, prefixlen: 24, pod_cidr: 192.168.10.0/24,
         pods: [{name: pod-a, ip: 192.168.10.10}]}
      - {name: host2, node_ip: 10.57.4.21, prefixlen: 24, pod_cidr: 192.168.11.0/24,
         pods: [{name: pod-b, ip: 192.168.11.10}]}
"""

RETURN = r"""
files:
  description: The files the picture is in (written or already up to date).
  returned: always
  type: list
  elements: str
  sample: ["graphs/lab-vxlan.dot", "graphs/lab-vxlan.svg", "graphs/lab-vxlan.png"]
commands:
  description: The renderings that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/dot", "-Tsvg", "-o", "graphs/.lab-vxlan.svg.tmp", "graphs/lab-vxlan.dot"]]
dot:
  description: The graphviz source.
  returned: always
  type: str
"""

import os

from ansible_collections.podnet.fabric.plugins.module_utils import graph, skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def converge(module):
    params = module.params
    name = params["name"]
    if not name or "/" in name or name.startswith("."):
        raise PodnetError("name: %r is not a file name (no '/', not starting with '.')" % name)
    source = graph.dot(dict(title=params["title"], mode=params["mode"], nodes=params["nodes"],
                            switch_prefix=params["switch_prefix"], router=params["router"]))

    dest = params["dest"]
    dot_path = os.path.join(dest, name + ".dot")
    outputs = [(fmt, os.path.join(dest, "%s.%s" % (name, fmt))) for fmt in params["formats"]]
    before = ""
    if os.path.exists(dot_path):
        with open(dot_path) as handle:
            before = handle.read()
    stale = before != source
    todo = [(fmt, path) for fmt, path in outputs if stale or not os.path.exists(path)]
    runner = Runner(module)
    changed = stale or bool(todo)
    if changed and not module.check_mode:
        if not os.path.isdir(dest):
            try:
                os.makedirs(dest)
            except OSError as exc:
                raise PodnetError("dest: cannot create %s: %s" % (dest, exc))
        if stale:
            tmp = os.path.join(dest, ".%s.dot.tmp" % name)
            with open(tmp, "w") as handle:
                handle.write(source)
            module.atomic_move(tmp, dot_path)
    for fmt, path in todo:
        tmp = os.path.join(dest, ".%s.%s.tmp" % (name, fmt))
        runner.run("dot", ["-T" + fmt, "-o", tmp, dot_path])
        if not module.check_mode:
            module.atomic_move(tmp, path)
    result = skeleton.result(runner, changed, before, source, files=[dot_path] + [path for _fmt, path in outputs],
                             dot=source)
    return result


def main():
    skeleton.main(converge, dict(
        dest=dict(type="path", required=True),
        name=dict(type="str", required=True),
        title=dict(type="str", default="podnet"),
        mode=dict(type="str", choices=["host-gw", "ipip", "vxlan"]),
        nodes=dict(type="list", elements="dict", required=True),
        switch_prefix=dict(type="str"),
        router=dict(type="str"),
        formats=dict(type="list", elements="str", choices=["svg", "png"], default=["svg", "png"]),
    ))


if __name__ == "__main__":
    main()
