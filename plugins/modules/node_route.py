#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_route
short_description: Manage the routes podnet owns on a node, tagged with podnet's route protocol
version_added: 0.1.0
description:
  - Makes a list of IPv4 routes exist in one routing table, each tagged with podnet's
    route protocol number C(150) (shown by C(ip route) as C(proto 150), or C(proto podnet)
    when C(/etc/iproute2/rt_protos.d/podnet.conf) maps the number to that name).
  - A podnet route to a listed destination with other attributes is replaced.
  - A route that podnet does not own and has a listed destination is never touched; the
    module fails and shows that route.
  - With O(purge=true), podnet routes in the table that are not listed are removed. Routes
    of any other protocol are never removed.
  - The table is read once with C(ip -json route show table TABLE).
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  routes:
    description:
      - The routes. With O(state=absent), only O(routes[].dst) matters.
    type: list
    elements: dict
    default: []
    suboptions:
      dst:
        description: Destination network in CIDR notation (a bare address means /32, V(default) means 0.0.0.0/0). Host bits must be zero.
        type: str
        required: true
      via:
        description: Next-hop gateway address.
        type: str
      dev:
        description: Output interface.
        type: str
      onlink:
        description: Pretend the next hop is directly attached (needs O(routes[].via) and O(routes[].dev)).
        type: bool
        default: false
      scope:
        description: Route scope. Defaults to V(global) with a gateway and V(link) without.
        type: str
        choices: [global, link, host]
      src:
        description: Preferred source address.
        type: str
      metric:
        description: Route metric (priority). A different metric is a different kernel route, so a change deletes and re-adds.
        type: int
        default: 0
  routes_json:
    description:
      - O(routes) as JSON text, validated on the node exactly as O(routes) is. Mutually exclusive with O(routes).
      - podnet's roles pass per-peer lists this way, which costs the controller nothing per entry.
    type: str
  table:
    description: Routing table, by name (V(main), V(local), V(default)) or number.
    type: str
    default: main
  purge:
    description:
      - With O(state=present), remove podnet-tagged routes in O(table) that are not listed.
      - With O(state=absent), remove every podnet-tagged route in O(table).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Route host2's pod CIDR via host2 (host-gw mode)
  podnet.fabric.node_route:
    routes:
      - dst: 192.168.11.0/24
        via: 10.57.4.21
        dev: eth0
        onlink: true

- name: Route a pod through the ipip tunnel, and drop podnet routes no longer listed
  podnet.fabric.node_route:
    routes:
      - {dst: 192.168.11.0/24, via: 10.57.4.21, dev: mustang.tun0, onlink: true}
    purge: true

- name: Remove every route podnet owns in the main table
  podnet.fabric.node_route:
    state: absent
    purge: true
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/ip", "route", "replace", "192.168.11.0/24", "via", "10.57.4.21", "dev", "eth0", "onlink",
            "scope", "global", "metric", "0", "proto", "150", "table", "main"]]
routes:
  description: The podnet routes in the table after the run (as planned in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{"dst": "192.168.11.0/24", "via": "10.57.4.21", "dev": "eth0", "onlink": true,
            "scope": "global", "src": null, "metric": 0}]
"""

from ansible_collections.podnet.fabric.plugins.module_utils import route, skeleton, validate
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner

ROUTE_OPTIONS = dict(
    dst=dict(type="str", required=True),
    via=dict(type="str"),
    dev=dict(type="str"),
    onlink=dict(type="bool", default=False),
    scope=dict(type="str", choices=list(route.SCOPES)),
    src=dict(type="str"),
    metric=dict(type="int", default=0),
)


def converge(module):
    params = module.params
    want = route.wanted(params["routes"])
    table = validate.route_table(params["table"], "table")
    runner = Runner(module, params["netns"])
    # A table that holds no route yet does not exist: iproute2 then fails with "Dump terminated".
    have = runner.read_json("ip", ["route", "show", "table", table], missing_ok=table not in ("main", "local"))
    plan = route.plan(want, have or [], table, params["state"], params["purge"])
    for args in plan.commands:
        runner.run("ip", args)
    return skeleton.result(runner, bool(plan.commands), {"routes": plan.before}, {"routes": plan.after},
                           routes=plan.after)


def main():
    skeleton.main(converge, dict(
        skeleton.COMMON_ARGS,
        routes=dict(type="list", elements="dict", default=[], options=ROUTE_OPTIONS),
        table=dict(type="str", default="main"),
        purge=dict(type="bool", default=False),
    ), json_options=("routes",))


if __name__ == "__main__":
    main()
