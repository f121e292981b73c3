# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every podnet planner returns (``route.plan``, ``fdb.plan``, ``tunnel.plan``,
``chain.plan``/``plan_many``, ``pod.plan``, ``lab.plan``).

A ``Plan`` is a named tuple ``(commands, before, after)`` (so ``commands, before, after =
route.plan(...)`` reads as it always did) with two extras:

- ``warnings``: messages for ``module.warn`` (a device left alone, ...);
- ``facts``: what else the planner worked out for the module's result (``tunnel.plan``: its
  ``action`` and ``reasons``; ``pod.plan``: the MACs, ``host_mac`` and ``mac``).

``commands`` are in the planner's own terms (argv tails, ``(tool, args)`` pairs, or an
``iptables-restore`` script); each planner's docstring says which, and its module runs them.
"""

from __future__ import annotations

from collections import namedtuple


class Plan(namedtuple("Plan", ("commands", "before", "after"))):
    """``(commands, before, after)`` plus ``warnings`` (list) and ``facts`` (dict)."""

    def __new__(cls, commands, before, after, warnings=(), **facts):
        plan = super(Plan, cls).__new__(cls, commands, before, after)
        plan.warnings = list(warnings)
        plan.facts = facts
        return plan

    def __repr__(self):
        return "Plan(commands=%r, before=%r, after=%r, warnings=%r, facts=%r)" % (
            self.commands, self.before, self.after, self.warnings, self.facts)
