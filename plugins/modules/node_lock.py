#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_lock
short_description: Take or give back podnet's per-node run lock, so that one run at a time changes a node
version_added: 0.1.0
description:
  - With O(state=present), takes the lock file O(path) for this ansible-playbook run, waiting up to
    O(timeout) seconds while another run holds it; then fails with one message naming the holder
    (playbook, user, controller, pid, start time). Taking a lock this run already holds changes nothing.
  - With O(state=absent), gives the lock back when this run holds it (a lock of another run is
    left alone, with a warning), or whoever holds it with O(force=true).
  - The lock is created atomically (a complete file C(link)ed into place, which fails if one
    exists) under an exclusive C(flock) of its directory, so two runs never both take it.
  - "A lock is stale, and taken over with a warning naming the old holder, when its lease has run
    out on the node's clock (O(lease) seconds after it was taken), or when its holder ran on the
    same controller (same kernel boot and PID namespace) and that ansible-playbook process is gone.
    The second rule is checked on the controller by the module's action plugin."
  - The action plugin fills in O(holder) from the controller. A run's identity is its
    ansible-playbook process, the same on every node, so the lock taken in one play is given
    back in another.
author:
  - podnet developers (@podnet)
options:
  path:
    description: The lock file (its directory is made if missing). podnet's roles use C(<podnet_state_dir>/<node>.lock).
    type: path
    required: true
  state:
    description: V(present) takes the lock, V(absent) gives it back.
    type: str
    choices: [present, absent]
    default: present
  timeout:
    description: Seconds to wait for a lock another run holds before failing (0, do not wait).
    type: int
    default: 0
  lease:
    description:
      - Seconds after which a lock taken now counts as stale, on the node's clock. Make it longer
        than your longest run.
    type: int
    default: 3600
  force:
    description: With O(state=absent), remove the lock whoever holds it.
    type: bool
    default: false
  take_over:
    description:
      - The run id of a holder the controller found gone; the lock is taken over if that run
        still holds it. Set by the action plugin.
    type: str
  holder:
    description:
      - Who takes the lock (keys C(run), C(host), C(user), C(pid), C(started), C(playbook),
        C(controller)). Filled in by the action plugin from the controller; leave it unset.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
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
    details: The lock file is neither written nor removed; a held lock is still waited for.
  diff_mode:
    support: full
    details: The lock file's content before and after.
  platform:
    support: N/A
    platforms: posix
notes:
  - Runs no command; Linux C(flock) semantics on the lock's directory.
"""

EXAMPLES = r"""
- name: Take this run's lock on the node (wait up to 10 minutes for another run)
  podnet.fabric.node_lock:
    path: /var/lib/podnet/host1.lock
    timeout: 600

- name: Give it back
  podnet.fabric.node_lock:
    path: /var/lib/podnet/host1.lock
    state: absent

- name: Remove a lock left by a run you know is over
  podnet.fabric.node_lock:
    path: /var/lib/podnet/host1.lock
    state: absent
    force: true
"""

RETURN = r"""
lock:
  description: What the lock file holds after the task (empty when there is none).
  returned: always
  type: dict
  sample: {"run": "0b5c.../4026531836/4242/1234567", "host": "box", "user": "alice", "pid": 4242,
           "started": 1796212805.0, "playbook": "site.yml", "controller": "0b5c... pid:[4026531836]",
           "acquired": 1796212806.1, "expires": 1796216406.1, "lease": 3600}
lock_holder:
  description: The other run's lock, when it is held by another run (the task failed, or with O(state=absent) left it alone).
  returned: when held by another run
  type: dict
taken_over:
  description: Why a stale lock was taken over (also given as a warning).
  returned: when a stale lock was taken over
  type: str
"""

import os
import time
from contextlib import contextmanager

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podnet.fabric.plugins.module_utils import lock, lock_file

POLL = 0.5


def take(module, path, holder):
    params = module.params
    if params["lease"] < 1:
        module.fail_json(msg="lease: %d is not a number of seconds above 0" % params["lease"])
    if params["timeout"] < 0:
        module.fail_json(msg="timeout: %d is below 0" % params["timeout"])
    directory = os.path.dirname(path)
    if not module.check_mode and not os.path.isdir(directory):
        # exist_ok: the nodes of a lab share one machine and may make it at the same time.
        os.makedirs(directory, 0o755, exist_ok=True)
    deadline = time.monotonic() + params["timeout"]
    while True:
        with lock_file.guarded(directory) if os.path.isdir(directory) else _nothing():
            current = lock_file.read(path)
            action, reason = lock.decide(current, holder, time.time(), params["take_over"])
            if action == "ours":
                return dict(changed=False, lock=current)
            if action == "take":
                after = lock.record(holder, time.time(), params["lease"])
                if not module.check_mode:
                    lock_file.write(path, after, replace=current is not None)
                result = dict(changed=True, lock=after)
                if reason:
                    module.warn("podnet: took over the stale lock %s: %s" % (path, reason))
                    result["taken_over"] = reason
                if module._diff:
                    result["diff"] = dict(before=current or {}, after=after)
                return result
        if time.monotonic() >= deadline:
            module.fail_json(msg=lock.held_message(None, current, params["timeout"], path), lock_holder=current)
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))


@contextmanager
def _nothing():
    yield


def give_back(module, path, holder):
    changed, current, other = lock_file.give_back(path, holder, module.params["force"], module.check_mode)
    if other:
        module.warn("podnet: %s is held by another run (%s): left alone" % (path, lock.describe(other)))
        return dict(changed=False, lock=other, lock_holder=other)
    result = dict(changed=changed, lock={})
    if changed and module._diff:
        result["diff"] = dict(before=current, after={})
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            timeout=dict(type="int", default=0),
            lease=dict(type="int", default=3600),
            force=dict(type="bool", default=False),
            take_over=dict(type="str"),
            holder=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    holder = module.params["holder"] or {}
    if not os.path.isabs(path) or os.path.basename(path) in ("", ".", ".."):
        module.fail_json(msg="path: %r is not an absolute file path" % path)
    if not holder.get("run") and not (module.params["state"] == "absent" and module.params["force"]):
        module.fail_json(msg="holder: no run id (call the module as podnet.fabric.node_lock, whose action "
                             "plugin fills it in)")
    if module.params["state"] == "present":
        module.exit_json(**take(module, path, holder))
    module.exit_json(**give_back(module, path, holder))


if __name__ == "__main__":
    main()
