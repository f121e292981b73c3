#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_sysctl
short_description: Set kernel parameters podnet needs, and give them back on teardown
version_added: 0.1.0
description:
  - With O(state=present), sets each key in O(settings) (for example C(net.ipv4.ip_forward=1)) in the
    network namespace the module runs in, through C(sysctl -w). Nothing is written to
    C(/etc/sysctl.conf), which network namespaces on one machine share.
  - The first time a key is changed, its value before podnet is saved in O(save_file), once.
  - With O(state=absent), every saved key gets its value before podnet back and O(save_file) is removed,
    so a teardown leaves the node as podnet found it.
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  settings:
    description: Keys (dotted, under C(net.)) and the values podnet needs. Ignored with O(state=absent).
    type: dict
    default: {}
  save_file:
    description: Where the values before podnet are kept (JSON). One file per node.
    type: path
    required: true
  moved_from:
    description:
      - Save files of earlier runs elsewhere (a renamed C(podnet_state_dir); the node's record says
        where). Their values are taken over into O(save_file) (for a key in both, the earlier file's
        value, the older one) and the files are removed; with O(state=absent) they are given back too.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Forward packets for the pods
  podnet.fabric.node_sysctl:
    settings:
      net.ipv4.ip_forward: 1
    save_file: /var/lib/podnet/host1-sysctl.json

- name: Give the node its own values back
  podnet.fabric.node_sysctl:
    state: absent
    save_file: /var/lib/podnet/host1-sysctl.json

- name: The state directory was renamed - take the values before podnet along
  podnet.fabric.node_sysctl:
    settings:
      net.ipv4.ip_forward: 1
    save_file: /srv/podnet/host1-sysctl.json
    moved_from: [/var/lib/podnet/host1-sysctl.json]
"""

RETURN = r"""
commands:
  description: The commands that ran (or would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/sysctl", "-w", "net.ipv4.ip_forward=1"]]
saved:
  description: The values before podnet, as saved.
  returned: always
  type: dict
  sample: {"net.ipv4.ip_forward": "0"}
"""

import json
import os
import re

from ansible_collections.podnet.fabric.plugins.module_utils import skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

_KEY_RE = re.compile(r"^net\.[A-Za-z0-9_.@-]+$")
_VALUE_RE = re.compile(r"^[0-9]+$")


def wanted(settings):
    """The settings as ``{key: "number"}``; raises PodnetError naming a bad key or value."""
    result = {}
    for key, value in (settings or {}).items():
        if not _KEY_RE.match(key) or ".." in key:
            raise PodnetError("settings: %r is not a network sysctl key (net.…)" % key)
        text = str(int(value)) if isinstance(value, bool) else str(value)
        if not _VALUE_RE.match(text):
            raise PodnetError("settings.%s: %r is not a whole number" % (key, value))
        result[key] = text
    return result


def save(path, saved):
    """Write ``saved`` to ``path`` (atomically), or remove the file when there is nothing to keep."""
    if saved:
        directory = os.path.dirname(path)
        if directory:
            # exist_ok: nodes of the lab share one machine and may make it at the same time.
            os.makedirs(directory, 0o755, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(saved, handle, sort_keys=True)
        os.rename(tmp, path)
    elif os.path.exists(path):
        os.unlink(path)


def load(path):
    """The values saved in ``path`` ({} without the file)."""
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def converge(module):
    params = module.params
    settings = wanted(params["settings"])
    runner = Runner(module, params["netns"])
    path = params["save_file"]
    moved = [old for old in params["moved_from"] if old != path and os.path.exists(old)]
    saved = load(path)
    taken = dict(saved)
    for old in moved:
        taken.update(load(old))

    present = params["state"] == "present"
    target = settings if present else taken
    keys = sorted(target)
    current = dict(zip(keys, runner.read("sysctl", ["-n"] + keys).split())) if keys else {}
    changes = dict((k, target[k]) for k in keys if current.get(k) != target[k])
    for key in sorted(changes):
        runner.run("sysctl", ["-w", "%s=%s" % (key, changes[key])])
    new_saved = dict(taken) if present else {}
    if present:
        for key in changes:
            new_saved.setdefault(key, current[key])
    file_changed = new_saved != saved or (not present and os.path.exists(path)) or bool(moved)
    if file_changed and not module.check_mode:
        save(path, new_saved)
        for old in moved:
            os.unlink(old)
    after = dict(current)
    after.update(changes)
    return skeleton.result(runner, bool(changes) or file_changed, dict(sysctl=current), dict(sysctl=after),
                           saved=new_saved)


def main():
    skeleton.main(converge, dict(skeleton.COMMON_ARGS,
                                 settings=dict(type="dict", default={}),
                                 save_file=dict(type="path", required=True),
                                 moved_from=dict(type="list", elements="path", default=[])))


if __name__ == "__main__":
    main()
