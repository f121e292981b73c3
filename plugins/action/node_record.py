# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of podnet.fabric.node_record: with ``lock``, it names the run that gives the
lock back (its holder, as podnet.fabric.node_lock's action plugin names the run that takes it); the
module then writes the record and gives the lock back in one call on the node."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.podnet.fabric.plugins.action.node_lock import holder


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if isinstance(args.get("lock"), dict) and not args["lock"].get("holder"):
            args["lock"] = dict(args["lock"], holder=holder())
        out = self._execute_module(module_name=self._task.action, module_args=args, task_vars=task_vars)
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return merge_hash(result, out)
