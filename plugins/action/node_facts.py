# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of podnet.fabric.node_facts: the module runs on the node as any module does.

Why it exists: the strategy imports each task's action plugin in the controller's main process
(to read ``BYPASS_HOST_LOOP``) before it forks the task's workers (a fork per host and task).
Importing this one imports podnet's filters with it, so the workers of the underlay read (whose
arguments call ``podnet.fabric.node_files``) and of every later task find them imported,
instead of each compiling the filters and the planner from source (the collection loader keeps
no bytecode; ~25 ms per host, docs/benchmarks.md). The plan action (plugins/action/plan.py) does
the same, later in playbooks/plan.yml.
"""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.podnet.fabric.plugins.filter import bgp, cluster


class ActionModule(NormalAction):
    # The filter plugins this import brings into the main process, for the forked workers.
    FILTERS = (bgp.FilterModule, cluster.FilterModule)
