# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place podnet's modules run external commands (ip, bridge, sysctl, ethtool,
iptables, iptables-restore, ping, ...).

``Runner`` finds each binary with ``get_bin_path``, runs argv lists (never a shell) with
``LC_ALL=C`` and puts the module's network namespace in front of every command:
``-n NETNS`` for ``ip`` and ``bridge``, ``ip netns exec NETNS`` for every other tool.

- reads (``read_json``, ``read``, ``try_read``) always run, also in check mode;
- writes (``run``, ``try_run``, ``run_ip_netns``) are recorded in ``commands`` and, in check
  mode, not run, so the module reports what would run.

A command that fails raises ``CommandError`` (a ``PodnetError`` carrying cmd, rc, stdout and
stderr), which podnet's module skeleton turns into ``fail_json``.
"""

from __future__ import annotations

import json
import os

from ansible_collections.podnet.fabric.plugins.module_utils import validate
from ansible_collections.podnet.fabric.plugins.module_utils.netns import NETNS_DIR, outer_mount_ns
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

# What iproute2 prints when the object read does not exist.
MISSING_MARKERS = ("does not exist", "Cannot find device", "Cannot open network namespace",
                   "Network is unreachable")
# Tools that take ``-n NETNS`` themselves; every other tool runs under ``ip netns exec``.
_NETNS_OPTION_TOOLS = ("ip", "bridge")


class CommandError(PodnetError):
    """A command that failed: ``details`` (cmd, rc, stdout, stderr, commands) go to fail_json."""

    def __init__(self, msg, cmd, rc=None, stdout="", stderr="", commands=None):
        PodnetError.__init__(self, msg)
        self.details = dict(cmd=cmd, rc=rc, stdout=stdout, stderr=stderr)
        if commands is not None:
            self.details["commands"] = list(commands)


class Runner(object):
    """Runs the external commands of one module invocation, in its network namespace ``netns``."""

    def __init__(self, module, netns=None):
        self.module = module
        self.netns = netns
        self.commands = []
        self._bins = {}
        self._outer = None
        if netns is not None:
            validate.netns_name(netns, "netns")
            if not os.path.exists(os.path.join(NETNS_DIR, netns)):
                raise PodnetError("netns: network namespace %r does not exist" % netns)

    def bin(self, name):
        """The path of a binary (``get_bin_path``, looked up once)."""
        if name not in self._bins:
            self._bins[name] = self.module.get_bin_path(name, required=True)
        return self._bins[name]

    def argv(self, tool, args, netns=None):
        """The argv that runs ``tool args`` in ``netns`` (default: the runner's namespace)."""
        netns = self.netns if netns is None else netns
        if tool in _NETNS_OPTION_TOOLS:
            return [self.bin(tool)] + (["-n", netns] if netns else []) + list(args)
        argv = [self.bin(tool)] + list(args)
        if netns:
            argv = [self.bin("ip"), "netns", "exec", netns] + argv
        return argv

    def _call(self, argv, data=None):
        return self.module.run_command(argv, data=data, environ_update={"LC_ALL": "C"}, check_rc=False)

    def _failed(self, argv, rc, out, err):
        return CommandError("%s failed: %s" % (" ".join(argv), (err or out).strip()),
                            argv, rc, out, err, self.commands)

    # -- reads (always run, also in check mode) -----------------------------

    def read_json(self, tool, args, netns=None, missing_ok=False):
        """``tool -json args``, parsed; empty objects (iproute2 quirk) dropped.

        With ``missing_ok``, a read of something that does not exist (a device, a
        routing table, a namespace) returns None instead of failing.
        """
        argv = self.argv(tool, ["-json"] + list(args), netns)
        rc, out, err = self._call(argv)
        if rc != 0:
            if missing_ok and any(text in err for text in MISSING_MARKERS):
                return None
            raise self._failed(argv, rc, out, err)
        text = out.strip()
        if not text:
            return []
        try:
            data = json.loads(text)
        except ValueError:
            raise CommandError("could not parse the output of %s" % " ".join(argv), argv, rc, out, err)
        return [item for item in data if item]

    def read(self, tool, args, netns=None):
        """The text a read command prints (``sysctl -n``, ``iptables -S``, ``ethtool -k``)."""
        argv = self.argv(tool, args, netns)
        rc, out, err = self._call(argv)
        if rc != 0:
            raise self._failed(argv, rc, out, err)
        return out

    def try_read(self, tool, args, netns=None):
        """Like ``read``, but return ``(rc, stdout, stderr)`` instead of failing (a probe)."""
        return self._call(self.argv(tool, args, netns))

    def links(self, netns=None, missing_ok=False):
        """All links with details (``ip -d -json link show``), in one read."""
        return self.read_json("ip", ["-details", "link", "show"], netns, missing_ok)

    # -- writes (recorded; skipped in check mode) ---------------------------

    def _write(self, argv, data):
        self.commands.append(argv)
        if self.module.check_mode:
            return 0, "", ""
        return self._call(argv, data)

    def run(self, tool, args, netns=None, data=None):
        """Run a write, ``data`` on its stdin; raises ``CommandError`` when it fails."""
        argv = self.argv(tool, args, netns)
        rc, out, err = self._write(argv, data)
        if rc != 0:
            raise self._failed(argv, rc, out, err)
        return argv

    def try_run(self, tool, args, netns=None, data=None):
        """Like ``run``, but return ``(rc, stdout, stderr)`` instead of failing, so the
        caller can turn a known error into a clear message.  ``(0, "", "")`` in check mode."""
        return self._write(self.argv(tool, args, netns), data)

    def run_ip_netns(self, args):
        """``ip netns add|del NAME`` (``args`` = ``["netns", "add", NAME]``), made to outlive the module.

        Never prefixed with ``-n``.  When the module runs in a mount namespace other than the
        outermost one it can see (as under ``ip netns exec``), the command runs there with
        ``nsenter --mount=...``, so the namespace's bind mount under /run/netns propagates back
        (see ``netns.outer_mount_ns``).
        """
        if self._outer is None:
            self._outer = outer_mount_ns() or ""
        argv = [self.bin("ip")] + list(args)
        if self._outer:
            argv = [self.bin("nsenter"), "--mount=" + self._outer] + argv
        rc, out, err = self._write(argv, None)
        if rc != 0:
            raise self._failed(argv, rc, out, err)
        return argv
