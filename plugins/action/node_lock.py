# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of podnet.fabric.node_lock.

It names the run that takes the lock (the ansible-playbook process: the same on every node
and in every play of the run), and waits for a lock another run holds: the module waits on
the node in slices of up to ``SLICE`` seconds (so a free lock is taken within half a second
and a waiting run costs one module call per slice); between slices the controller checks
whether the holder is a run of this very controller that is gone, and if so takes it over.
When ``timeout`` has passed, the task fails with one message naming the node and the holder.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import time

from ansible import context
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.podnet.fabric.plugins.module_utils import files, lock

SLICE = 15


def _boot_time():
    for line in (files.read_text("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    return None


def started(pid):
    """The start time (epoch seconds) of process ``pid`` on this machine, None if unknown or gone."""
    stat = files.read_text("/proc/%d/stat" % pid)
    boot = _boot_time()
    if not stat or boot is None:
        return None
    # Field 22 (starttime, clock ticks after boot); the command name (field 2) may hold spaces.
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return round(boot + ticks / float(os.sysconf("SC_CLK_TCK")), 2)


def controller():
    """This controller's identity: kernel boot and PID namespace (None where /proc does not tell)."""
    boot_id = (files.read_text("/proc/sys/kernel/random/boot_id") or "").strip()
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return "%s %s" % (boot_id, pid_ns) if boot_id else None


def alive(pid, since):
    """True when process ``pid`` started at ``since`` still runs on this controller."""
    now = started(pid)
    return now is not None and (since is None or now == since)


def holder():
    """Who takes the lock: this run's ansible-playbook process (the workers are its children)."""
    pid = os.getppid()
    since = started(pid)
    ident = controller()
    args = context.CLIARGS.get("args") or ()
    if isinstance(args, str):
        args = (args,)
    return dict(run="%s/%s/%d/%s" % (socket.gethostname(), ident or "", pid, since or ""),
                host=socket.gethostname(), user=getpass.getuser(), pid=pid,
                started=since if since is not None else round(time.time(), 2),
                playbook=" ".join([os.path.basename(sys.argv[0])] + [str(a) for a in args]),
                controller=ident)


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if not args.get("holder"):
            args["holder"] = holder()
        if args.get("state", "present") != "present":
            return merge_hash(result, self._execute_module(module_name=self._task.action, module_args=args,
                                                           task_vars=task_vars))
        try:
            timeout = int(args.get("timeout") or 0)
        except (TypeError, ValueError):
            timeout = 0  # the module refuses it, with its own message
        deadline = time.monotonic() + max(timeout, 0)
        me = controller()
        wait = 0
        while True:
            out = self._execute_module(module_name=self._task.action, module_args=dict(args, timeout=wait),
                                       task_vars=task_vars)
            current = out.get("lock_holder")
            if not out.get("failed") or not current:
                break
            if lock.gone(current, me, alive):
                args["take_over"] = current.get("run")
                wait = 0
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                out["msg"] = lock.held_message(task_vars.get("inventory_hostname"), current, timeout, args["path"])
                break
            wait = int(min(SLICE, max(1, remaining)))
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return merge_hash(result, out)
