# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot replay on a node: the script (``script.render``'s text) and, on a host run by systemd,
the unit that runs it at boot. podnet.fabric.replay writes or removes it; podnet.fabric.node_record
writes it in the same call as the node's record (site.yml's last step, one module call a node).
``under_systemd()`` also tells podnet.fabric.bird whether to run BIRD as a unit.

``check(params)`` refuses bad options before anything changes; ``converge(runner, params, check)``
then writes (or removes) the script and the unit, and returns ``(changed, before, after, extra)``.
"""

from __future__ import annotations

import os
import tempfile

from ansible_collections.podnet.fabric.plugins.module_utils import files, validate
from ansible_collections.podnet.fabric.plugins.module_utils import script as renderer
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

# The options of podnet.fabric.replay, and of podnet.fabric.node_record's ``replay``.
OPTIONS = dict(path=dict(type="path", required=True),
               moved_from=dict(type="list", elements="path", default=[]),
               script=dict(type="str"),
               iface=dict(type="str"),
               service=dict(type="str", default="auto", choices=["auto", "none", "systemd"]),
               unit=dict(type="str", default=renderer.UNIT),
               unit_dir=dict(type="path", default="/etc/systemd/system"))


def under_systemd():
    """systemd runs this host and this process is in PID 1's network namespace (not a lab node)."""
    if not os.path.isdir("/run/systemd/system"):
        return False
    try:
        return os.readlink("/proc/self/ns/net") == os.readlink("/proc/1/ns/net")
    except OSError:
        return False


def service_kind(kind):
    """``auto``: ``systemd`` on a host run by systemd (``under_systemd``), else ``none``."""
    if kind != "auto":
        return kind
    return "systemd" if under_systemd() else "none"


def check(p, present, where=""):
    """Refuse bad options (``where``: their prefix in the message, e.g. ``replay.``); the service kind."""
    if not p["path"].startswith("/"):
        raise PodnetError("%spath: %r is not an absolute path" % (where, p["path"]))
    if not p["unit"].endswith(".service") or "/" in p["unit"] or len(p["unit"]) <= len(".service"):
        raise PodnetError("%sunit: %r must be a NAME.service" % (where, p["unit"]))
    if present and p["script"] is None:
        raise PodnetError("%sscript: the script's text is required with state=present" % where)
    kind = service_kind(p["service"])
    if present and kind == "systemd":
        validate.ifname(p["iface"], where + "iface")
    return kind


def _verify(runner, unit, text):
    """``systemd-analyze verify`` on a scratch copy: a unit systemd would refuse is never installed."""
    scratch = tempfile.mkdtemp(prefix="podnet-unit-")
    path = os.path.join(scratch, unit)
    try:
        files.write_atomic(path, text, 0o644)
        rc, out, err = runner.try_read("systemd-analyze", ["verify", path])
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(scratch)
    if rc != 0:
        raise PodnetError("systemd-analyze verify refuses the unit: %s" % (err or out).strip())


def converge(runner, p, present, kind, check_mode):
    """Write (``present``) or remove the script and, with ``kind`` systemd, the unit."""
    unit_file = os.path.join(p["unit_dir"], p["unit"]) if kind == "systemd" else None
    script_before = files.read_text(p["path"])
    unit_before = files.read_text(unit_file) if unit_file else None
    enabled_before = False
    if unit_file and unit_before is not None:
        enabled_before = runner.try_read("systemctl", ["is-enabled", "--quiet", p["unit"]])[0] == 0
    script_after = p["script"] if present else None
    unit_after = renderer.unit_text(p["path"], p["iface"]) if present and unit_file else None
    changed = False

    if present:
        if script_before != script_after:
            changed = True
            if not check_mode:
                files.write_atomic(p["path"], script_after, 0o755)
        if unit_file and unit_before != unit_after:
            changed = True
            _verify(runner, p["unit"], unit_after)
            if not check_mode:
                files.write_atomic(unit_file, unit_after, 0o644)
            runner.run("systemctl", ["daemon-reload"])
        if unit_file and (not enabled_before or unit_before != unit_after):
            # enable again after a rewrite: the [Install] section (the device's wants) may have changed.
            changed = True
            runner.run("systemctl", ["reenable" if enabled_before else "enable", p["unit"]])
    else:
        if unit_before is not None:
            changed = True
            runner.run("systemctl", ["disable", p["unit"]])
            if not check_mode:
                os.unlink(unit_file)
            runner.run("systemctl", ["daemon-reload"])
        if script_before is not None:
            changed = True
            if not check_mode:
                os.unlink(p["path"])

    for old in p["moved_from"]:
        if old != p["path"] and os.path.lexists(old):
            changed = True
            if not check_mode:
                os.unlink(old)

    before = dict(script=script_before or "", unit=unit_before or "", enabled=enabled_before)
    after = dict(script=script_after or "", unit=unit_after or "", enabled=bool(unit_after))
    return changed, before, after, dict(service=kind, unit_file=unit_file)
