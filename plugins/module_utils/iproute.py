# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place podnet's modules run iproute2.

``IpRoute`` finds the binaries with ``get_bin_path``, prefixes ``-n NETNS`` when the
module targets a namespace, reads with ``-json`` and runs writes as argv lists
(never a shell).  Every write is recorded in ``commands``; in check mode writes are
recorded and not run, so the module reports what would run.
"""

from __future__ import annotations

import json
import os

from ansible_collections.podnet.fabric.plugins.module_utils import validate

# What iproute2 prints when the object read does not exist.
MISSING_MARKERS = ("does not exist", "Cannot find device", "Cannot open network namespace",
                   "Network is unreachable")

# Options every podnet module shares (see the podnet.fabric.common doc fragment).
COMMON_ARGS = dict(
    state=dict(type="str", default="present", choices=["present", "absent"]),
    netns=dict(type="str"),
)


class IpRoute(object):
    """Runs ``ip``/``bridge``/``sysctl`` for one module invocation."""

    def __init__(self, module, netns=None):
        self.module = module
        self.netns = netns
        self.commands = []
        self._bins = {}
        if netns is not None:
            validate.netns_name(netns, "netns")
            if not os.path.exists(os.path.join("/run/netns", netns)):
                module.fail_json(msg="netns: network namespace %r does not exist" % netns)

    def bin(self, name):
        if name not in self._bins:
            self._bins[name] = self.module.get_bin_path(name, required=True)
        return self._bins[name]

    def _argv(self, tool, args, netns=None):
        netns = self.netns if netns is None else netns
        if tool in ("ip", "bridge"):
            prefix = [self.bin(tool)] + (["-n", netns] if netns else [])
            return prefix + list(args)
        # Tools without -n run under `ip netns exec`.
        argv = [self.bin(tool)] + list(args)
        if netns:
            argv = [self.bin("ip"), "netns", "exec", netns] + argv
        return argv

    def _call(self, argv, check_rc=True, data=None):
        rc, out, err = self.module.run_command(
            argv, data=data, environ_update={"LC_ALL": "C"}, check_rc=False)
        if rc != 0 and check_rc:
            self.module.fail_json(
                msg="%s failed: %s" % (" ".join(argv), (err or out).strip()),
                cmd=argv, rc=rc, stdout=out, stderr=err, commands=self.commands)
        return rc, out, err

    # -- reads (always run, also in check mode) -----------------------------

    def read_json(self, tool, args, netns=None, missing_ok=False):
        """``tool -json args``, parsed; empty objects (iproute2 quirk) dropped.

        With ``missing_ok``, a read of something that does not exist (a device, a
        routing table, a namespace) returns None instead of failing.
        """
        argv = self._argv(tool, ["-json"] + list(args), netns)
        rc, out, err = self._call(argv, check_rc=False)
        if rc != 0:
            missing = any(text in err for text in MISSING_MARKERS)
            if missing_ok and missing:
                return None
            self.module.fail_json(msg="%s failed: %s" % (" ".join(argv), (err or out).strip()),
                                  cmd=argv, rc=rc, stdout=out, stderr=err, commands=self.commands)
        text = out.strip()
        if not text:
            return []
        try:
            data = json.loads(text)
        except ValueError:
            self.module.fail_json(msg="could not parse the output of %s" % " ".join(argv),
                                  cmd=argv, stdout=out)
        return [item for item in data if item]

    def read(self, tool, args, netns=None):
        """Plain text output of a read command (for sysctl -n)."""
        rc, out, err = self._call(self._argv(tool, args, netns))
        return out

    def links(self, netns=None, missing_ok=False):
        """All links with details (``ip -d -json link show``), in one read."""
        return self.read_json("ip", ["-details", "link", "show"], netns, missing_ok)

    # -- writes (recorded; skipped in check mode) ---------------------------

    def run(self, tool, args, netns=None, data=None):
        """Run a write (recorded in ``commands``; skipped in check mode), ``data`` on its stdin."""
        argv = self._argv(tool, args, netns)
        self.commands.append(argv)
        if not self.module.check_mode:
            self._call(argv, data=data)
        return argv

    def try_run(self, tool, args, netns=None):
        """Like ``run``, but return ``(rc, stdout, stderr)`` instead of failing, so the
        caller can turn a known error into a clear message.  ``(0, "", "")`` in check mode."""
        argv = self._argv(tool, args, netns)
        self.commands.append(argv)
        if self.module.check_mode:
            return 0, "", ""
        return self._call(argv, check_rc=False)

    def result(self, changed, before=None, after=None, **extra):
        """Exit with podnet's standard result: changed, commands, diff."""
        result = dict(changed=changed, commands=self.commands, **extra)
        if self.module._diff and before is not None:
            result["diff"] = dict(before=before, after=after)
        self.module.exit_json(**result)


def fail_on_invalid(module, func, *args):
    """Run a validator and turn ``PodnetError`` into ``fail_json`` (before any change)."""
    try:
        return func(*args)
    except validate.PodnetError as exc:
        module.fail_json(msg=str(exc))
