# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet's per-node run lock (podnet.fabric.node_lock), the pure part: who holds it, when a
lock is stale, and the one message a run that could not take it stops with.

A lock is a small JSON file in the node's state directory::

    {"run": "<controller>/<pid>/<start ticks>", "host": "box", "user": "alice", "pid": 4242,
     "started": 1796212805.0, "playbook": "site.yml", "controller": "<boot id> <pid ns>",
     "acquired": 1796212806.1, "expires": 1796216406.1, "lease": 3600}

``run`` identifies the ansible-playbook process that holds it (the same on every node of that run);
``acquired`` and ``expires`` are the node's own clock, so a lease never depends on clocks agreeing.

The stale rule (one of):

* its lease has run out on the node's clock (``podnet_lock_lease`` seconds after it was taken),
* its holder ran on the same controller (same kernel boot and PID namespace) as the run that
  finds it, and that ansible-playbook process is gone (killed, interrupted, crashed).

A stale lock is taken over, with a warning naming the old holder.
"""

from __future__ import annotations

import time

HOLDER_KEYS = ("run", "host", "user", "pid", "started", "playbook", "controller")


def when(epoch):
    """``2026-12-01 12:00:05 UTC`` for an epoch (None: "unknown")."""
    if epoch is None:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def describe(holder):
    """The holder in words: ``site.yml by alice on box (pid 4242, started ...)``."""
    holder = holder or {}
    return "%s by %s on %s (pid %s, started %s)" % (
        holder.get("playbook") or "an unknown playbook", holder.get("user") or "an unknown user",
        holder.get("host") or "an unknown controller", holder.get("pid") or "unknown",
        when(holder.get("started")))


def record(holder, now, lease):
    """The lock file's content for ``holder`` taking it at ``now`` (node clock) for ``lease`` seconds."""
    data = dict((k, holder.get(k)) for k in HOLDER_KEYS)
    data.update(acquired=round(now, 3), expires=round(now + lease, 3), lease=lease)
    return data


def expired(current, now):
    """True when the lock's lease has run out on the node's clock."""
    expires = current.get("expires")
    return not isinstance(expires, (int, float)) or now >= expires


def decide(current, holder, now, take_over=None):
    """What a run (``holder``) does with the lock file's content ``current`` (None: no lock).

    Returns ``(action, reason)``: ``("take", None)`` the lock is free; ``("ours", None)`` this run
    holds it already; ``("take", reason)`` it is stale (``reason`` says why, for the warning);
    ``("held", None)`` another run holds it. ``take_over`` is the run id of a holder the
    controller found gone (same controller, process no longer there).
    """
    if current is None:
        return "take", None
    if current.get("run") == holder.get("run"):
        return "ours", None
    if take_over and current.get("run") == take_over:
        return "take", "its holder, %s, is gone" % describe(current)
    if expired(current, now):
        return "take", "its lease ran out at %s (%s)" % (when(current.get("expires")), describe(current))
    return "held", None


def gone(holder, controller, alive):
    """True when ``holder`` ran on this very ``controller`` and its process is gone.

    ``alive(pid, started)`` answers on the controller whether that process still runs.
    """
    if not controller or holder.get("controller") != controller:
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    return not alive(pid, holder.get("started"))


def held_message(node, current, waited, path):
    """The one message a run stops with when ``node``'s lock (``path``) stayed held for ``waited``
    seconds (``node`` None: the message names the path only)."""
    where = "node %s is" % node if node else "%s is" % path
    return ("podnet: %s locked by another podnet run: %s. Waited %s s for it "
            "(podnet_lock_timeout). Its lock is stale, and taken over, once that ansible-playbook "
            "process is gone (seen from the same controller) or when its lease ends at %s (node clock, "
            "podnet_lock_lease). Only if you know that run is over: remove %s%s."
            % (where, describe(current), waited, when(current.get("expires")), path,
               " on %s" % node if node else ""))
