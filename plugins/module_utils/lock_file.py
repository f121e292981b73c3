# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet's per-node run lock, the node's side: the lock file (lock.py says what is in it), read
and changed only under an exclusive flock of its directory. podnet.fabric.node_lock takes and gives
it back; podnet.fabric.node_record gives it back as a run's last step (its ``lock`` option)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from contextlib import contextmanager


@contextmanager
def guarded(directory):
    """An exclusive flock of the lock's directory: every read-decide-write of the lock is in one."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read(path):
    """The lock file's content (None: no lock; an unreadable file counts as held since its mtime)."""
    try:
        with open(path) as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    mtime = os.stat(path).st_mtime
    return dict(run=None, playbook="unreadable lock file", expires=mtime + 3600)


def write(path, data, replace):
    """Write ``data`` as the lock: a complete temporary file linked into place (fails if a lock
    exists), or renamed over a stale one."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    try:
        if replace:
            os.rename(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def give_back(path, holder, force=False, check_mode=False):
    """Remove the lock at ``path`` when run ``holder`` holds it (or with ``force``, whoever does).

    Returns ``(changed, before, other)``: ``before`` the lock found (None: none), ``other`` that
    lock when another run holds it (left alone), else None.
    """
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        return False, None, None
    with guarded(directory):
        current = read(path)
        if current is None:
            return False, None, None
        if not force and current.get("run") != (holder or {}).get("run"):
            return False, current, current
        if not check_mode:
            os.unlink(path)
    return True, current, None
