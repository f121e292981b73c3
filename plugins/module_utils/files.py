# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files podnet keeps on a node (its record, the boot replay, BIRD's config, the lock): read
whole or not at all, and replaced atomically, so a reader (a boot, another run) never sees half."""

from __future__ import annotations

import os


def read_text(path):
    """The file's text, or None when it cannot be read (absent, a directory, no permission)."""
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_atomic(path, text, mode=0o644):
    """Replace ``path`` with ``text``: a temporary file beside it with ``mode``, then a rename."""
    directory = os.path.dirname(path)
    if directory:
        # exist_ok: the lab's nodes share one machine and may make it at the same time.
        os.makedirs(directory, 0o755, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)
