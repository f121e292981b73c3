# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where ``ip netns add|del`` must run so that a namespace outlives the module.

``ip netns add NAME`` makes /run/netns/NAME a bind mount.  Made in a private mount
namespace (as under ``ip netns exec NODE``, which is how the netns connection and the
tests run modules), the mount vanishes with that namespace and the pod with it.  So podnet
runs ``ip netns add|del`` in the outermost mount namespace it can see: PID 1's when it
differs from the module's own; when PID 1's cannot be read (a sandbox supervisor), the
outermost readable ancestor's.  Mounts made there propagate into the module's namespace.
"""

from __future__ import annotations

import os

NETNS_DIR = "/run/netns"


def _parent(pid):
    with open("/proc/%d/stat" % pid) as handle:
        # Field 2 (the command name) may hold spaces and parentheses: split after the last ")".
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def outer_mount_ns():
    """The ``/proc/PID/ns/mnt`` to run ``ip netns add|del`` in, or None for the module's own."""
    own = os.readlink("/proc/self/ns/mnt")
    try:
        return "/proc/1/ns/mnt" if os.readlink("/proc/1/ns/mnt") != own else None
    except OSError:
        pass
    outermost = None
    try:
        pid = os.getppid()
        while pid > 1:
            try:
                outermost = (pid, os.readlink("/proc/%d/ns/mnt" % pid))
            except OSError:
                pass
            pid = _parent(pid)
    except (OSError, ValueError, IndexError):
        pass
    if outermost is None or outermost[1] == own:
        return None
    return "/proc/%d/ns/mnt" % outermost[0]
