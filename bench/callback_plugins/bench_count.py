# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench-only callback: count task results and module invocations per host.

Enabled by ``bench/run`` with ``ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins`` and
``ANSIBLE_CALLBACKS_ENABLED=bench_count``; writes JSON to ``$PODNET_BENCH_COUNT_FILE`` at the
end of the run.

A *module invocation* is one execution of a module on a host: one per task, or one per loop
item (a loop's final per-task result is not counted again). Actions that run on the controller
only (set_fact, assert, debug, meta, includes) are counted apart as *controller* results. Skipped
tasks and items invoke nothing and are counted apart too. ``plays`` splits the module and
controller counts by play (in playbook order, with the play's host pattern), the shape the scale section's do-nothing playbook copies.
"""

from __future__ import annotations

import json
import os
from collections import Counter

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_count
type: aggregate
short_description: count module invocations per host (podnet's benchmark)
description:
  - Writes, per host, the number of module invocations (tasks or loop items that ran a module),
    controller-only results, skipped results and failures to C($PODNET_BENCH_COUNT_FILE).
requirements:
  - enable in the configuration (callbacks_enabled) or with ANSIBLE_CALLBACKS_ENABLED
"""

# Action plugins that never execute a module on the host.
CONTROLLER_ACTIONS = frozenset(
    "%s%s" % (prefix, name) for prefix in ("", "ansible.builtin.", "ansible.legacy.")
    for name in ("set_fact", "assert", "debug", "fail", "meta", "include_role", "import_role",
                 "include_tasks", "import_tasks", "include_vars", "add_host", "group_by", "set_stats",
                 "validate_argument_spec")) | frozenset(("podnet.fabric.plan",))  # an action plugin only


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.hosts = {}
        self.play = -1
        self.play_hosts = None

    def v2_playbook_on_play_start(self, play):
        self.play += 1
        hosts = play.hosts
        self.play_hosts = ",".join(hosts) if isinstance(hosts, list) else str(hosts)

    def _host(self, result):
        name = result._host.get_name()
        if name not in self.hosts:
            self.hosts[name] = dict(modules=0, controller=0, skipped=0, failed=0, changed=0,
                                    by_action=Counter(), plays=[])
        entry = self.hosts[name]
        while len(entry["plays"]) <= self.play:
            entry["plays"].append(dict(modules=0, controller=0, hosts=None))
        entry["plays"][self.play]["hosts"] = self.play_hosts
        return entry

    def _count(self, result, failed=False):
        if "results" in result._result and isinstance(result._result["results"], list):
            return  # the loop's summary: its items were counted one by one
        entry = self._host(result)
        action = result._task.action
        kind = "controller" if action in CONTROLLER_ACTIONS else "modules"
        entry[kind] += 1
        entry["plays"][self.play][kind] += 1
        if kind == "modules":
            entry["by_action"][action] += 1
        if failed:
            entry["failed"] += 1
        if result._result.get("changed"):
            entry["changed"] += 1

    def _skip(self, result):
        if "results" in result._result and isinstance(result._result["results"], list):
            return
        self._host(result)["skipped"] += 1

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._count(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._skip(result)

    def v2_runner_item_on_ok(self, result):
        self._count(result)

    def v2_runner_item_on_failed(self, result):
        self._count(result, failed=True)

    def v2_runner_item_on_skipped(self, result):
        self._skip(result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("PODNET_BENCH_COUNT_FILE")
        if not path:
            return
        data = dict((host, dict(entry, by_action=dict(entry["by_action"]))) for host, entry in self.hosts.items())
        with open(path, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
