# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet.fabric.plan: this node's plan, on the controller (the module's page: plugins/modules/plan.py).

Why an action plugin rather than ``set_fact`` with the ``node_plan`` filter: the strategy imports
each task's action plugin in the controller's main process (to read ``BYPASS_HOST_LOOP``) before
it forks the task's workers. Importing this one imports the planner and podnet's filters with it,
so every worker forked afterwards (a fork per host and task) finds them imported. A worker that
meets a podnet filter nobody imported before the fork compiles the filters and the planner from
source (the collection loader keeps no bytecode): ~25 ms per host and task (docs/benchmarks.md).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.plugins.action import ActionBase

from ansible_collections.podnet.fabric.plugins.filter import cluster


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("cluster", "underlay", "path_mtu"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=dict(
            cluster=dict(type="str", required=True), underlay=dict(type="dict", required=True),
            path_mtu=dict(type="dict", default={})))
        host = (task_vars or {}).get("inventory_hostname")
        try:
            plan = cluster.node_plan(args["cluster"], host, args["underlay"], args["path_mtu"])
        except AnsibleFilterError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        # The rp_filter warnings (rp_filter.py) are the run's own warnings: shown, and in the recap,
        # with no task of their own (a debug task was a worker fork per host on every run).
        warnings = plan.pop("warnings", [])
        if warnings:
            result["warnings"] = warnings
        result.update(changed=False, ansible_facts=dict(podnet_plan=plan))
        return result
