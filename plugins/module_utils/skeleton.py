# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The skeleton every podnet module's ``main()`` is.

::

    def converge(module):
        want = route.wanted(module.params["routes"])      # may raise PodnetError
        runner = Runner(module, module.params["netns"])
        plan = route.plan(want, runner.read_json(...))
        for args in plan.commands:
            runner.run("ip", args)
        return skeleton.result(runner, bool(plan.commands), plan.before, plan.after, routes=plan.after)

    def main():
        skeleton.main(converge, dict(skeleton.COMMON_ARGS, routes=...), mutually_exclusive=...)

``main`` builds the ``AnsibleModule`` (check mode supported), runs ``converge`` and exits with
what it returns.  A ``PodnetError`` raised anywhere (a refused value, a plan that cannot be
carried out, a command that failed) becomes one ``fail_json``: its message, and for a failed
command (``runner.CommandError``) its cmd, rc, stdout, stderr and the commands run so far.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

# Options every podnet module that changes something shares (see the podnet.fabric.common
# doc fragment).
COMMON_ARGS = dict(
    state=dict(type="str", default="present", choices=["present", "absent"]),
    netns=dict(type="str"),
)


def failure(exc):
    """The ``fail_json`` arguments for a ``PodnetError``."""
    return dict(getattr(exc, "details", None) or {}, msg=str(exc))


def result(runner, changed, before=None, after=None, **extra):
    """podnet's standard result: changed, the commands that ran (or would run in check mode),
    ``extra`` keys, and in diff mode ``diff`` with ``before``/``after``."""
    out = dict(extra, changed=changed, commands=runner.commands)
    if runner.module._diff and before is not None:
        out["diff"] = dict(before=before, after=after)
    return out


def main(converge, argument_spec, **constraints):
    """Run a module: ``AnsibleModule(argument_spec, **constraints)``, then ``converge(module)``,
    whose returned dict is the result; a ``PodnetError`` becomes ``fail_json``."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **constraints)
    try:
        outcome = converge(module)
    except PodnetError as exc:
        module.fail_json(**failure(exc))
    module.exit_json(**outcome)
