#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bird
short_description: Run podnet's own BIRD 2 routing daemon with a given configuration
version_added: 0.1.0
description:
  - Writes O(config) to O(config_file) (mode 0600, it may hold TCP-MD5 passwords) after C(bird -p)
    accepted it, and keeps one BIRD process running on it; a BIRD already running is told to
    C(configure) only when the file changed.
  - On a host run by systemd (O(service=systemd), or V(auto) in the host's own network namespace),
    BIRD runs as podnet's own unit O(unit), checked with C(systemd-analyze verify). The Debian
    package's C(bird.service) and C(/etc/bird/bird.conf) are never touched.
  - Elsewhere (O(service=process), for example a lab node, a network namespace without systemd), BIRD is
    started in the namespace the module runs in (or O(netns)) with its own control socket
    O(socket) and pid file O(pidfile), so several nodes on one machine each have their own.
  - With O(state=absent), BIRD is shut down (it withdraws its routes from the kernel and its peers),
    and its unit, config, socket and pid file are removed. Routes tagged C(proto bird) to the
    destinations in O(flush_routes) that a BIRD killed without shutting down left are removed too.
  - Every run returns the BGP sessions (C(birdc show protocols all)).
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  config:
    description: The BIRD 2 configuration text (for podnet's BGP mode, the node plan's C(bgp.config)).
    type: str
  config_file:
    description: Where the configuration is written. One per node (lab nodes share a file system).
    type: path
    required: true
  socket:
    description: BIRD's control socket (C(bird -s)); at most 107 characters.
    type: path
    required: true
  pidfile:
    description: BIRD's pid file (C(bird -P)).
    type: path
    required: true
  service:
    description:
      - How BIRD runs. V(auto) is V(systemd) when C(/run/systemd/system) exists and the module runs in
        PID 1's network namespace without O(netns), else V(process).
    type: str
    choices: [auto, process, systemd]
    default: auto
  unit:
    description: The systemd unit (O(service=systemd)).
    type: str
    default: podnet-bird.service
  unit_dir:
    description: Where the unit file goes (O(service=systemd)).
    type: path
    default: /etc/systemd/system
  flush_routes:
    description: With O(state=absent), destinations (CIDRs) whose leftover C(proto bird) routes are removed.
    type: list
    elements: str
    default: []
requirements:
  - BIRD 2 (C(bird), C(birdc); Debian package C(bird2)); systemd for O(service=systemd).
"""

EXAMPLES = r"""
- name: Run BIRD with this node's BGP plan
  podnet.fabric.bird:
    config: "{{ podnet_plan.bgp.config }}"
    config_file: "{{ podnet_plan.bgp.config_file }}"
    socket: "{{ podnet_plan.bgp.socket }}"
    pidfile: "{{ podnet_plan.bgp.pidfile }}"
  register: bird

- name: Stop it and remove its files
  podnet.fabric.bird:
    state: absent
    config_file: /var/lib/podnet/host1-bird.conf
    socket: /var/lib/podnet/host1-bird.ctl
    pidfile: /var/lib/podnet/host1-bird.pid
    flush_routes: [192.168.11.0/24]
"""

RETURN = r"""
commands:
  description: The commands that ran (or would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/bird", "-c", "/var/lib/podnet/host1-bird.conf", "-s", "/var/lib/podnet/host1-bird.ctl",
            "-P", "/var/lib/podnet/host1-bird.pid"]]
filtered:
  description: Routes BIRD's import filters refused (C(birdc show route filtered)), with the session they came from.
  returned: always
  type: list
  elements: dict
  sample: [{"prefix": "0.0.0.0/0", "protocol": "peer_10_57_4_254"}]
service:
  description: How BIRD runs (process or systemd).
  returned: always
  type: str
  sample: process
sessions:
  description: BIRD's BGP protocols (empty when BIRD is not running).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "mesh_10_57_4_21", "state": "up", "info": "Established", "neighbor": "10.57.4.21",
            "as": 64512, "imported": 1, "filtered": 0, "exported": 1, "proto": "BGP", "since": "10:00:01.123"}]
"""

import os
import signal
import tempfile
import time

from ansible_collections.podnet.fabric.plugins.module_utils import bird, boot, files, skeleton, validate
from ansible_collections.podnet.fabric.plugins.module_utils.netns import NETNS_DIR
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

SOCKET_MAX = 107
HOST = ""   # Runner's netns for a command that runs in the module's own namespace (birdc, systemctl)


class Bird(object):
    """BIRD's files and process; every command goes through one ``Runner`` (recorded, skipped in check mode)."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        netns = self.p["netns"]
        self.netns_gone = False
        if netns is not None:
            validate.netns_name(netns, "netns")
            # Stopping needs no namespace (BIRD answers on its socket): a namespace already gone is fine.
            if self.p["state"] == "absent" and not os.path.exists(os.path.join(NETNS_DIR, netns)):
                netns, self.netns_gone = None, True
        self.runner = Runner(module, netns)
        self.bird = self.runner.bin("bird")
        self.birdc = self.runner.bin("birdc")

    def run(self, tool, args, netns=None):
        return self.runner.run(tool, args, netns)

    # -- what is there ----------------------------------------------------------------

    def pid(self):
        """The pid in the pid file when it is a live BIRD running on our config file, or None."""
        try:
            with open(self.p["pidfile"]) as handle:
                pid = int(handle.read().strip())
            with open("/proc/%d/stat" % pid) as handle:
                # "PID (comm) STATE ...": a zombie has exited.
                comm, rest = handle.read().split("(", 1)[1].rsplit(")", 1)
            if comm != "bird" or rest.split()[0] in ("Z", "X"):
                return None
            with open("/proc/%d/cmdline" % pid) as handle:
                argv = handle.read().split("\0")
        except (OSError, ValueError, IndexError):
            return None
        return pid if self.p["config_file"] in argv else None

    def control(self, *args):
        """``birdc -s SOCKET ARGS`` (a read: also in check mode): (rc, stdout, stderr)."""
        return self.runner.try_read("birdc", ["-s", self.p["socket"]] + list(args), HOST)

    def sessions(self):
        rc, out, err = self.control("show", "protocols", "all")
        if rc != 0:
            return []
        return [p for p in bird.parse_protocols(out) if p["proto"] == "BGP"]

    def filtered(self):
        rc, out, err = self.control("show", "route", "filtered")
        return bird.parse_routes(out) if rc == 0 else []

    def wait(self, predicate, seconds=15.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return predicate()

    def fail(self, msg):
        raise _Failed(msg, self.runner.commands)

    # -- config ------------------------------------------------------------------------

    def current_config(self):
        try:
            with open(self.p["config_file"]) as handle:
                return handle.read()
        except OSError:
            return None

    def check_config(self, text):
        """``bird -p -c``: parse only; refuse a config BIRD would not load, before anything changes."""
        directory = os.path.dirname(self.p["config_file"]) or "."
        fd, path = tempfile.mkstemp(prefix=".podnet-bird-", suffix=".conf",
                                    dir=directory if os.path.isdir(directory) else None)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            rc, out, err = self.runner.try_read("bird", ["-p", "-c", path], HOST)
        finally:
            os.unlink(path)
        if rc != 0:
            raise PodnetError("config: bird -p refuses it: %s" % (err or out).strip().replace(path, "config"))

    def write(self, path, text, mode):
        files.write_atomic(path, text, mode)

    def remove(self, *paths):
        gone = False
        for path in paths:
            if os.path.lexists(path):
                gone = True
                if not self.module.check_mode:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass   # BIRD removes its own socket as it exits after `birdc down`: gone too
        return gone


class _Failed(PodnetError):
    """A failure after commands ran: fail_json reports them too."""

    def __init__(self, msg, commands):
        PodnetError.__init__(self, msg)
        self.details = dict(commands=list(commands))


def service_kind(module):
    kind = module.params["service"]
    if kind != "auto":
        return kind
    return "systemd" if module.params["netns"] is None and boot.under_systemd() else "process"


def process_present(b, config):
    before = b.current_config()
    pid = b.pid()
    changed = before != config
    if changed:
        b.check_config(config)
        if not b.module.check_mode:
            b.write(b.p["config_file"], config, 0o600)
    if pid is None:
        b.remove(b.p["socket"], b.p["pidfile"])
        b.run("bird", ["-c", b.p["config_file"], "-s", b.p["socket"], "-P", b.p["pidfile"]])
        if not b.module.check_mode and not b.wait(lambda: b.pid() is not None and b.control("show", "status")[0] == 0):
            b.fail("bird started but does not answer on %s" % b.p["socket"])
    elif changed:
        rc, out, err = b.runner.try_run("birdc", ["-s", b.p["socket"], "configure"], HOST)
        if not b.module.check_mode and "Reconfigur" not in out:
            b.fail("birdc configure: %s" % (out or err).strip())
    return changed or pid is None, dict(config=before or "", running=pid is not None), dict(config=config, running=True)


def process_absent(b):
    before = b.current_config()
    pid = b.pid()
    changed = False
    if pid is not None:
        changed = True
        # A shutdown, not a kill: BIRD withdraws its routes from the kernel and from its peers.
        b.run("birdc", ["-s", b.p["socket"], "down"], HOST)
        if not b.module.check_mode and not b.wait(lambda: b.pid() is None):
            b.runner.commands.append(["kill", "-TERM", str(pid)])
            os.kill(pid, signal.SIGTERM)
            if not b.wait(lambda: b.pid() is None):
                b.fail("bird (pid %d) did not stop" % pid)
    changed |= b.remove(b.p["config_file"], b.p["socket"], b.p["pidfile"])
    return changed, dict(config=before or "", running=pid is not None), dict(config="", running=False)


def systemd_present(b, config):
    m, p = b.module, b.p
    b.runner.bin("systemctl")
    unit_file = os.path.join(p["unit_dir"], p["unit"])
    unit = bird.unit_text(b.bird, b.birdc, p["config_file"], p["socket"], p["pidfile"])
    try:
        with open(unit_file) as handle:
            unit_before = handle.read()
    except OSError:
        unit_before = None
    before = b.current_config()
    active = b.runner.try_read("systemctl", ["is-active", "--quiet", p["unit"]], HOST)[0] == 0
    changed = False
    if before != config:
        b.check_config(config)
        if not m.check_mode:
            b.write(p["config_file"], config, 0o600)
        changed = True
    if unit_before != unit:
        scratch = tempfile.mkdtemp(prefix="podnet-unit-")
        try:
            path = os.path.join(scratch, p["unit"])
            b.write(path, unit, 0o644)
            rc, out, err = b.runner.try_read("systemd-analyze", ["verify", path], HOST)
        finally:
            for name in os.listdir(scratch):
                os.unlink(os.path.join(scratch, name))
            os.rmdir(scratch)
        if rc != 0:
            raise PodnetError("systemd-analyze verify refuses the unit: %s" % (err or out).strip())
        if not m.check_mode:
            b.write(unit_file, unit, 0o644)
        b.run("systemctl", ["daemon-reload"], HOST)
    if not active:
        b.run("systemctl", ["enable", "--now", p["unit"]], HOST)
    elif changed or unit_before != unit:
        b.run("systemctl", ["reload-or-restart", p["unit"]], HOST)
    changed = changed or unit_before != unit or not active
    return changed, dict(config=before or "", unit=unit_before or "", running=active), \
        dict(config=config, unit=unit, running=True)


def systemd_absent(b):
    p = b.p
    unit_file = os.path.join(p["unit_dir"], p["unit"])
    before = b.current_config()
    changed = False
    if os.path.exists(unit_file):
        b.run("systemctl", ["disable", "--now", p["unit"]], HOST)
        b.remove(unit_file)
        b.run("systemctl", ["daemon-reload"], HOST)
        changed = True
    changed |= b.remove(p["config_file"], p["socket"], p["pidfile"])
    return changed, dict(config=before or "", running=changed), dict(config="", running=False)


def flush(b, cidrs):
    """Leftover ``proto bird`` routes to exactly these destinations (BIRD killed without shutting down)."""
    if not cidrs or b.netns_gone:   # a namespace that is gone holds no routes
        return False
    routes = b.runner.read_json("ip", ["route", "show", "proto", "bird"]) or []
    left = [r["dst"] for r in routes if r.get("dst") in cidrs]
    for dst in left:
        b.run("ip", ["route", "del", dst, "proto", "bird"])
    return bool(left)


def converge(module):
    p = module.params
    for key in ("config_file", "socket", "pidfile"):
        if not p[key].startswith("/"):
            raise PodnetError("%s: %r is not an absolute path" % (key, p[key]))
    if len(p["socket"]) > SOCKET_MAX:
        raise PodnetError("socket: %s is %d characters; a unix socket path has at most %d"
                          % (p["socket"], len(p["socket"]), SOCKET_MAX))
    if not p["unit"].endswith(".service") or "/" in p["unit"] or p["unit"] in ("bird.service", "bird2.service"):
        raise PodnetError("unit: %r must be podnet's own NAME.service, not the package's bird.service" % p["unit"])
    cidrs = [validate.ipv4_network(c, "flush_routes") for c in p["flush_routes"]]
    kind = service_kind(module)
    if kind == "systemd" and p["netns"]:
        raise PodnetError("service: systemd runs BIRD in the host's namespace; netns needs service=process")
    b = Bird(module)
    if p["state"] == "present":
        changed, before, after = (systemd_present if kind == "systemd" else process_present)(b, p["config"])
    else:
        changed, before, after = (systemd_absent if kind == "systemd" else process_absent)(b)
        # Only where podnet's BIRD was (its config file): a BIRD killed without shutting down.
        if before["config"]:
            changed |= flush(b, cidrs)
    read = p["state"] == "present" and not (module.check_mode and not before["running"])
    return skeleton.result(b.runner, changed, before, after, service=kind,
                           sessions=b.sessions() if read else [], filtered=b.filtered() if read else [])


def main():
    skeleton.main(converge,
                  dict(skeleton.COMMON_ARGS,
                       config=dict(type="str"),
                       config_file=dict(type="path", required=True),
                       socket=dict(type="path", required=True),
                       pidfile=dict(type="path", required=True),
                       service=dict(type="str", default="auto", choices=["auto", "process", "systemd"]),
                       unit=dict(type="str", default=bird.UNIT),
                       unit_dir=dict(type="path", default="/etc/systemd/system"),
                       flush_routes=dict(type="list", elements="str", default=[])),
                  required_if=[("state", "present", ("config",))])


if __name__ == "__main__":
    main()
