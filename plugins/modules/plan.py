#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: plan
short_description: Plan one podnet node (on the controller)
version_added: 0.1.0
description:
  - Computes what this node must hold from the validated cluster and the node's own underlay facts
    (plugins/module_utils/node_plan.py), and sets it as the fact C(podnet_plan) - its pods, tunnel
    device, MTU, the devices and chains of other modes to remove.
  - Warns (the run's own warnings, no task of their own) where reverse-path filtering on the underlay,
    the tunnel device or a pod's veth can drop pod traffic, or lets pods spoof each other's addresses.
  - The lists that grow with the cluster (routes, FDB and neighbour entries, the chains with the
    guard's rule per peer) are left out (C(routes) and C(iptables) are null, C(fdb) keeps its
    device, C(iptables_switch) is a boolean); the task that hands one to a module plans it with
    the P(podnet.fabric.peer_list#filter) filter, so the controller never holds every node's list.
  - Runs on the controller only (an action plugin; nothing runs on the node). Its import brings the
    planner into the controller's main process before the task's workers fork, so no worker
    compiles it again.
author:
  - podnet developers (@podnet)
options:
  cluster:
    description: The validated cluster, as the P(podnet.fabric.cluster#filter) filter returns it (C(validate_cluster)).
    type: str
    required: true
  underlay:
    description: This node's underlay, as M(podnet.fabric.node_facts) reads it (C(podnet_underlay)).
    type: dict
    required: true
  path_mtu:
    description:
      - The narrower path MTUs the pre-flight probe found, by host (C(preflight_verdict.path_mtu), roles/preflight).
      - When this node has one, the plan's MTU comes from it.
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    support: N/A
    platforms: all
"""

EXAMPLES = r"""
- name: Plan this node
  podnet.fabric.plan:
    cluster: "{{ validate_cluster }}"
    underlay: "{{ podnet_underlay }}"
"""

RETURN = r"""
ansible_facts:
  description: The fact C(podnet_plan).
  returned: success
  type: dict
  contains:
    podnet_plan:
      description: This node's plan without its per-peer lists (see the description).
      type: dict
"""
