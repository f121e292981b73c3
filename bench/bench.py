# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet's benchmark: control-plane converge cost and data-plane throughput per mode.

Run it with ``bench/run`` (``make bench``); ``bench/run --help`` lists the options.

Control plane: for each N, a lab of N node namespaces (playbooks/lab.yml, a generated inventory,
names prefixed ``bn<run id>``) and, per mode and repetition, on the same lab:

* podnet: site.yml first converge, an idempotent rerun, then playbooks/teardown.yml;
* naive: bench/naive.yml (the seed's commands, one command task each, looped per pod and per
  peer), first run and rerun, then a reset;
* shell: bench/seed.sh (the seed's commands as a shell script) on every node, first run and
  rerun, then a reset;
* floor: bench/floor.yml (site.yml's shape, every module a ping).

Each run records wall time, CPU time (user+sys of the process tree, much less sensitive than wall
time to other jobs on the machine) and, for playbooks, module invocations per host counted by
bench/callback_plugins/bench_count.py.  Between measured runs the lab is checked against its
pristine state, so every first converge starts clean.

Scale (``--scale-n``, ``--scale-only``): controller cost alone, at N up to 1000 without a lab:
site.yml (vxlan, one pod per node) on a generated inventory and a do-nothing playbook of the same
shape (per play as many module tasks, each a ping, and controller-only tasks, each a set_fact),
every module run answered at once by bench/connection_plugins/bench_stub.py; wall and CPU per N.

Data plane: a 2-node lab per mode: iperf3 TCP throughput and ping latency pod to pod across the
nodes and node to node over the underlay (the reference), and the path MTU (largest DF ping).
In the qemu VM (``--in-vm``) the same runs for ipip; the results go to the console.

Results: one JSON file (``--out``); bench/report.py turns it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import ipaddress
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

# The tree whose playbooks run. main() points it at a snapshot of the working tree, so that a
# long run measures one state of the code even while the checkout changes under it.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
VENV_BIN = os.path.join(os.environ.get("PODNET_BENCH_VENV") or os.path.join(ROOT, ".venv"), "bin")
PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")
CHECKOUT = ROOT
POD_NET = "10.244.0.0/16"
UNDERLAY = "10.58.1"
CONSOLE_MARK = "PODNET-BENCH-JSON "


def log(*parts):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def sh(*argv, check=True, ns=None, timeout=None):
    argv = [str(a) for a in argv]
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
    return proc


def timed(argv, env=None, out=None, cwd=ROOT):
    """Run argv; return (rc, wall seconds, CPU seconds of its whole process tree)."""
    with open(out or os.devnull, "ab") as handle:
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_utime + usage.ru_stime


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- the lab ----------------------------------------------------------------------------------


class Lab(object):
    """N node namespaces on one switch (one /24), ``pods`` pods per node, from a generated inventory."""

    def __init__(self, workdir, prefix, nodes, pods, forks=None):
        self.workdir = workdir
        self.prefix = prefix
        self.logdir = os.path.join(workdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.state_dir = os.path.join(workdir, "state")
        if not 1 <= nodes <= 244 or not 1 <= pods <= 200:
            # node_ip .10 to .253 of one /24 (the lab router takes .254); pod IPs .10 up in each /24.
            raise ValueError("the lab takes 1 to 244 nodes and 1 to 200 pods per node, not %d and %d" % (nodes, pods))
        self.hosts = {}
        for i in range(1, nodes + 1):
            name = "n%d" % i
            self.hosts[name] = dict(
                ansible_host=prefix + name, node_ip="%s.%d" % (UNDERLAY, 9 + i), pod_cidr="10.244.%d.0/24" % i,
                pods=[dict(name="%sn%dp%d" % (prefix, i, j), ip="10.244.%d.%d" % (i, 9 + j), host_ifname="veth-p%d" % j)
                      for j in range(1, pods + 1)])
        inventory = dict(nodes=dict(hosts=self.hosts, vars=dict(
            ansible_connection="podnet.fabric.netns",
            ansible_python_interpreter=os.path.join(VENV_BIN, "python"),
            node_iface="eth0", podnet_lab_prefixlen=24, podnet_state_dir=self.state_dir,
            podnet_record_dir=self.state_dir)))
        self.inventory = os.path.join(workdir, "inventory-%s.json" % prefix)
        with open(self.inventory, "w") as handle:
            json.dump(inventory, handle, indent=1)
        self.lab_vars = ["-e", "lab_switch_prefix=%ssw" % prefix, "-e", "lab_router=%srt" % prefix]
        self.forks = forks
        self.runs = 0

    @property
    def names(self):
        return sorted(self.hosts, key=lambda n: int(n[1:]))

    def ns(self, host):
        return self.hosts[host]["ansible_host"]

    @property
    def pod_names(self):
        return [p["name"] for h in self.hosts.values() for p in h["pods"]]

    def env(self, count_file=None, forks=None, strategy=None):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(BENCH, "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="bench_count", ANSIBLE_RETRY_FILES_ENABLED="0")
        env.pop("PODNET_BENCH_COUNT_FILE", None)
        if count_file:
            env["PODNET_BENCH_COUNT_FILE"] = count_file
        if forks or self.forks:
            env["ANSIBLE_FORKS"] = str(forks or self.forks)
        if strategy:
            env["ANSIBLE_STRATEGY"] = strategy
        return env

    def play(self, playbook, *extra, label="run", forks=None, strategy=None, check=True):
        """Run a playbook on this lab; return a measurement dict."""
        self.runs += 1
        tag = "%03d-%s" % (self.runs, label)
        out = os.path.join(self.logdir, tag + ".log")
        count_file = os.path.join(self.logdir, tag + ".count.json")
        argv = [PLAYBOOK, "-i", self.inventory, os.path.join(ROOT, playbook)] + list(extra)
        rc, wall, cpu = timed(argv, env=self.env(count_file, forks, strategy), out=out)
        counts = {}
        if os.path.exists(count_file):
            with open(count_file) as handle:
                counts = json.load(handle)
        if check and rc != 0:
            with open(out) as handle:
                tail = handle.read()[-5000:]
            raise RuntimeError("%s %s failed (rc %d), log %s:\n%s" % (playbook, " ".join(extra), rc, out, tail))
        result = dict(wall=round(wall, 3), cpu=round(cpu, 3), rc=rc)
        if counts:
            per_host = [c["modules"] for c in counts.values()]
            result.update(modules_per_host=dict((h, c["modules"]) for h, c in sorted(counts.items())),
                          modules_max=max(per_host), modules_total=sum(per_host),
                          controller_per_host=max(c["controller"] for c in counts.values()),
                          changed_total=sum(c["changed"] for c in counts.values()),
                          failed_total=sum(c["failed"] for c in counts.values()),
                          by_action=_merge_actions(counts))
        return result

    def failure(self, run):
        """The first failure message in the log of run number ``run``."""
        for name in os.listdir(self.logdir):
            if name.startswith("%03d-" % run) and name.endswith(".log"):
                with open(os.path.join(self.logdir, name)) as handle:
                    text = handle.read()
                match = re.search(r"^fatal: \[(\S+)\]: FAILED! =>.*?msg: (.*?)(?=\n\S|\Z)", text, re.M | re.S)
                if match:
                    return "%s: %s" % (match.group(1), " ".join(match.group(2).split()))
                return text[-500:]
        return None

    def up(self):
        self.play("playbooks/lab.yml", *self.lab_vars, label="lab-up")
        self.settle()
        self.pristine = self.fingerprint()

    def down(self):
        self.play("playbooks/lab.yml", "-e", "lab_state=absent", *self.lab_vars, label="lab-down", check=False)
        for name in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
            if name.startswith(self.prefix):
                sh("ip", "netns", "del", name, check=False)

    def settle(self):
        """Wait until every node's eth0 has its carrier (veth carrier comes up asynchronously)."""
        for _attempt in range(100):
            ready = True
            for host in self.names:
                links = json.loads(sh("ip", "-n", self.ns(host), "-json", "link", "show", "eth0").stdout or "[]")
                if not links or "NO-CARRIER" in links[0].get("flags", []):
                    ready = False
                    break
            if ready:
                return
            time.sleep(0.1)

    # -- state checks and reset --------------------------------------------------------------

    def fingerprint(self):
        """What podnet or a baseline may change, per node: links, addresses, routes, iptables, ip_forward."""
        result = dict(pods=sorted(n for n in os.listdir("/run/netns") if n in set(self.pod_names)))
        for host in self.names:
            ns = self.ns(host)
            links = sorted((l["ifname"], l.get("linkinfo", {}).get("info_kind"))
                           for l in json.loads(sh("ip", "-n", ns, "-json", "-details", "link", "show").stdout or "[]") if l)
            addrs = sorted((a["ifname"], i["local"], i["prefixlen"])
                           for a in json.loads(sh("ip", "-n", ns, "-json", "addr", "show").stdout or "[]") if a
                           for i in a.get("addr_info", []))
            routes = sorted((r.get("table", "main"), r.get("dst"), r.get("gateway"), r.get("dev"), r.get("protocol"))
                            for r in json.loads(sh("ip", "-n", ns, "-json", "route", "show", "table", "all").stdout or "[]")
                            if r and r.get("table") != "local")
            rules = sorted(l for l in (" ".join(l.split()[:2]) if l.startswith(":") else l
                                       for l in sh("iptables-save", ns=ns).stdout.splitlines())
                           if l and not l.startswith(("#", "*", "COMMIT"))
                           and l not in (":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT"))
            forward = sh("sysctl", "-n", "net.ipv4.ip_forward", ns=ns).stdout.strip()
            result[host] = dict(links=links, addrs=addrs, routes=routes, iptables=rules, ip_forward=forward)
        return result

    def differences(self):
        now = self.fingerprint()
        return ["%s %s: %s (pristine: %s)" % (k, f, now[k][f], self.pristine[k][f]) if isinstance(now[k], dict)
                else "%s: %s (pristine: %s)" % (k, now[k], self.pristine[k])
                for k in self.pristine for f in (self.pristine[k] if isinstance(self.pristine[k], dict) else [None])
                if (now[k][f] if f else now[k]) != (self.pristine[k][f] if f else self.pristine[k])]

    def reset(self):
        """Remove what the baselines made (the seed's objects), then check the lab is pristine."""
        for name in self.pod_names:
            if os.path.exists(os.path.join("/run/netns", name)):
                sh("ip", "netns", "del", name, check=False)
        for host in self.names:
            ns = self.ns(host)
            for dev in ("vxlan0", "mustang.tun0"):
                sh("ip", "-n", ns, "link", "del", dev, check=False)
            sh("ip", "-n", ns, "route", "flush", "proto", "boot", check=False)
            for _attempt in range(10):
                if sh("iptables", "-w", "-D", "FORWARD", "-s", POD_NET, "-d", POD_NET, "-j", "ACCEPT",
                      ns=ns, check=False).returncode != 0:
                    break
            sh("sysctl", "-qw", "net.ipv4.ip_forward=%s" % self.pristine[host]["ip_forward"], ns=ns)
        return self.clean_or_rebuild("reset")

    def clean_or_rebuild(self, what):
        diff = self.differences()
        if not diff:
            return True
        log("%s left %d differences; rebuilding the lab: %s" % (what, len(diff), "; ".join(diff[:4])))
        self.down()
        self.play("playbooks/lab.yml", *self.lab_vars, label="lab-rebuild")
        self.settle()
        return False

    # -- baselines ------------------------------------------------------------------------------

    def floor_playbook(self, mode, podnet):
        """Baseline (c), Ansible's floor: as many tasks per host as podnet's run had results per host,
        each module task an ansible.builtin.ping, each controller-only one a set_fact.

        ping is the smallest module there is: the same per-invocation path as podnet's modules
        (task queue, worker fork, the netns connection, AnsiballZ, importing
        ansible.module_utils.basic, exit_json) without reading or changing anything;
        ``command: true`` would add a fork/exec and the command module's own work.  The counts
        come from podnet's first run of this mode on this lab, so the floor follows site.yml
        as it changes.
        """
        modules, controller = podnet["modules_max"], podnet["controller_per_host"]
        path = os.path.join(self.workdir, "floor-%s-%d-%d.yml" % (mode, modules, controller))
        tasks = [dict(name="Controller-only task %d (podnet: set_fact, assert, argument specs)" % (i + 1),
                      **{"ansible.builtin.set_fact": {"floor_%d" % i: i}}) for i in range(controller)]
        tasks += [dict(name="Module invocation %d (podnet: one of its modules)" % (i + 1),
                       **{"ansible.builtin.ping": None}) for i in range(modules)]
        play = [dict(name="Ansible's floor for site.yml in %s mode: %d module tasks, %d controller-only tasks per host"
                     % (mode, modules, controller), hosts="nodes", gather_facts=False, tasks=tasks)]
        with open(path, "w") as handle:
            handle.write("---\n# Generated by bench/bench.py (Lab.floor_playbook).\n")
            json.dump(play, handle, indent=1)
        return path

    def shell(self, mode, label="shell", forks=8):
        """bench/seed.sh on every node, ``forks`` at a time (as Ansible would)."""
        self.runs += 1
        script = os.path.join(BENCH, "seed.sh")

        def one(host):
            hv = self.hosts[host]
            peers = " ".join("%s,%s,%s" % (self.hosts[p]["node_ip"], self.hosts[p]["pod_cidr"],
                                           tunnel_ip(self.hosts[p]["pod_cidr"]))
                             for p in self.names if p != host)
            pods = " ".join("%s,%s,%s" % (p["name"], p["ip"], p["host_ifname"]) for p in hv["pods"])
            argv = ["nsenter", "--net=/run/netns/%s" % self.ns(host), "env", "MODE=" + mode, "NODE_IP=" + hv["node_ip"],
                    "IFACE=eth0", "TUNNEL_IP=" + tunnel_ip(hv["pod_cidr"]), "PODS=" + pods, "PEERS=" + peers,
                    "POD_NET=" + POD_NET, "sh", script]
            return timed(argv, out=os.path.join(self.logdir, "%03d-%s-%s.log" % (self.runs, label, host)))

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=forks) as pool:
            results = list(pool.map(one, self.names))
        wall = time.monotonic() - start
        failed = [h for h, r in zip(self.names, results) if r[0] != 0]
        if failed:
            raise RuntimeError("bench/seed.sh failed on %s (logs in %s)" % (", ".join(failed), self.logdir))
        return dict(wall=round(wall, 3), cpu=round(sum(r[2] for r in results), 3), rc=0)


def tunnel_ip(pod_cidr):
    return pod_cidr.rsplit(".", 1)[0] + ".1"


def _merge_actions(counts):
    total = {}
    for entry in counts.values():
        for action, n in entry.get("by_action", {}).items():
            total[action] = total.get(action, 0) + n
    return total


# -- control plane ----------------------------------------------------------------------------


KINDS = ("podnet", "naive", "shell", "floor")


def control_plane(args, workdir, run_id):
    results = []
    for n in args.sizes:
        prefix = "bn%s%02d" % (run_id, n)
        lab = Lab(os.path.join(workdir, "n%d" % n), prefix, n, args.pods)
        log("N=%d: building the lab (%s*)" % (n, prefix))
        try:
            lab.up()
            entry = dict(n=n, pods_per_node=args.pods, modes={})
            for mode in args.modes:
                entry["modes"][mode] = dict(podnet_first=[], podnet_rerun=[], podnet_teardown=[], naive_first=[],
                                            naive_rerun=[], shell_first=[], shell_rerun=[], floor=[], clean=[])
            order = [k for k in KINDS if k in args.kinds]
            for rep in range(args.reps):
                for mode in args.modes:
                    m = entry["modes"][mode]
                    # Rotate the order per repetition so that no kind always runs first (or last).
                    for kind in order[rep % len(order):] + order[:rep % len(order)]:
                        log("N=%d %s rep %d: %s" % (n, mode, rep + 1, kind))
                        try:
                            measure(lab, mode, kind, m)
                        except (RuntimeError, subprocess.SubprocessError) as exc:
                            # One failed run (e.g. the code changed under a long run) costs that sample only.
                            log("N=%d %s %s failed: %s" % (n, mode, kind, str(exc)[-1500:]))
                            m.setdefault("errors", []).append(dict(kind=kind, rep=rep + 1, error=str(exc)[-3000:]))
                            lab.play("playbooks/teardown.yml", label="teardown-after-error", check=False)
                            lab.reset()
                    rerun = m["podnet_rerun"][-1] if m["podnet_rerun"] else {}
                    if rerun.get("changed_total"):
                        log("WARNING: podnet's rerun changed %d things (not idempotent?)" % rerun["changed_total"])
            results.append(entry)
            save_partial(args, dict(control=results))
            if args.forks_experiment and n == max(args.sizes):
                try:
                    entry["forks"] = forks_experiment(args, lab, entry)
                except (RuntimeError, subprocess.SubprocessError, IndexError) as exc:
                    log("forks experiment failed: %s" % str(exc)[-1500:])
                    entry["forks_error"] = str(exc)[-3000:]
                save_partial(args, dict(control=results))
        finally:
            lab.down()
    return results


# The baselines that have no version of a mode: the seed's commands (naive.yml, seed.sh) know host-gw,
# vxlan and ipip; bgp needs a routing daemon, which they do not run. Its rows compare podnet with its
# floor only (and sit beside host-gw's, measured in the same run).
NO_BASELINE = dict(bgp=("naive", "shell"))


def measure(lab, mode, kind, m):
    """One measured sample of ``kind`` in ``mode``, appended to ``m``; the lab is clean afterwards."""
    if kind in NO_BASELINE.get(mode, ()):
        return
    if kind == "podnet":
        first = lab.play("site.yml", "-e", "mode=" + mode, label="podnet-" + mode)
        m["podnet_first"].append(first)
        m["podnet_rerun"].append(lab.play("site.yml", "-e", "mode=" + mode, label="podnet-rerun"))
        m["podnet_teardown"].append(lab.play("playbooks/teardown.yml", label="teardown"))
        m["clean"].append(dict(after="podnet teardown", clean=lab.clean_or_rebuild("teardown")))
    elif kind == "naive":
        m["naive_first"].append(lab.play("bench/naive.yml", "-e", "mode=" + mode, label="naive-" + mode))
        m["naive_rerun"].append(lab.play("bench/naive.yml", "-e", "mode=" + mode, label="naive-rerun"))
        m["clean"].append(dict(after="naive", clean=lab.reset()))
    elif kind == "shell":
        m["shell_first"].append(lab.shell(mode))
        m["shell_rerun"].append(lab.shell(mode, label="shell-rerun"))
        m["clean"].append(dict(after="shell", clean=lab.reset()))
    else:
        if not m["podnet_first"]:
            raise RuntimeError("no podnet run to take the floor's task counts from")
        floor = lab.floor_playbook(mode, m["podnet_first"][0])
        m["floor"].append(lab.play(floor, "-e", "mode=" + mode, label="floor-" + mode))


def forks_experiment(args, lab, entry):
    """podnet's first converge and its floor at the largest N with other forks and strategies (vxlan).

    One run per setting, side by side (the default forks=8 included), each followed by teardown.
    A setting that fails is recorded with its error, and the next one runs.
    """
    mode = "vxlan" if "vxlan" in args.modes else args.modes[0]
    out = dict(mode=mode, configs={})
    for name, forks, strategy in (("forks=8 linear", 8, None), ("forks=16 linear", 16, None),
                                  ("forks=16 free", 16, "free"), ("forks=2 linear", 2, None)):
        log("N=%d forks experiment: %s" % (lab_size(lab), name))
        config = out["configs"][name] = dict(forks=forks, strategy=strategy or "linear")
        first = lab.play("site.yml", "-e", "mode=" + mode, label="forks", forks=forks, strategy=strategy, check=False)
        config["first"] = first
        if first["rc"] != 0:
            config["error"] = lab.failure(lab.runs)
            log("forks experiment %s: site.yml failed: %s" % (name, config["error"]))
        lab.play("playbooks/teardown.yml", label="teardown", forks=8, check=False)
        lab.clean_or_rebuild("teardown")
        if first["rc"] == 0:
            config["floor"] = lab.play(lab.floor_playbook(mode, first), "-e", "mode=" + mode, label="floor",
                                       forks=forks, strategy=strategy)
    return out


def lab_size(lab):
    return len(lab.hosts)


# -- scale: controller cost with module execution stubbed ---------------------------------------

SCALE_UNDERLAY = "10.96.0.0/16"   # every node's node_ip, one subnet (host-gw's on-link check passes)
SCALE_POD_BASE = "10.244.0.0"     # node i's pod_cidr: the i-th /24 from here (10.244.0.0/24 ... 10.247.231.0/24 at 1000)


def scale_inventory(path, n, prefix, state_dir):
    """N nodes reached through the bench_stub connection, one pod each; returns the host names."""
    underlay = ipaddress.IPv4Network(SCALE_UNDERLAY)
    base = int(ipaddress.IPv4Address(SCALE_POD_BASE))
    if n > underlay.num_addresses - 20 or base + 256 * n > int(ipaddress.IPv4Address("10.255.255.0")):
        raise ValueError("--scale-n %d: too many nodes for the address plan" % n)
    hosts = {}
    for i in range(n):
        cidr = ipaddress.IPv4Network((base + 256 * i, 24))
        hosts["%s%d" % (prefix, i + 1)] = dict(
            node_ip=str(underlay.network_address + 10 + i), pod_cidr=str(cidr),
            pods=[dict(name="%s%dp1" % (prefix, i + 1), ip=str(cidr.network_address + 10), host_ifname="veth-p1")])
    inventory = dict(nodes=dict(hosts=hosts, vars=dict(
        ansible_connection="bench_stub", ansible_python_interpreter="/usr/bin/python3",
        node_iface="eth0", podnet_state_dir=state_dir, podnet_record_dir=state_dir)))
    with open(path, "w") as handle:
        json.dump(inventory, handle)
    return sorted(hosts)


def stub_env(count_file):
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
                ANSIBLE_CALLBACK_PLUGINS=os.path.join(BENCH, "callback_plugins"),
                ANSIBLE_CALLBACKS_ENABLED="bench_count", ANSIBLE_RETRY_FILES_ENABLED="0",
                ANSIBLE_CONNECTION_PLUGINS=os.path.join(BENCH, "connection_plugins"),
                PODNET_BENCH_STUB_PREFIXLEN=SCALE_UNDERLAY.split("/")[1], PODNET_BENCH_COUNT_FILE=count_file)


def stub_play(workdir, inventory, playbook, label, *extra):
    """One stubbed run: wall, CPU (user+sys of the process tree), rc, and the per-host counts."""
    out = os.path.join(workdir, label + ".log")
    count_file = os.path.join(workdir, label + ".count.json")
    argv = [PLAYBOOK, "-i", inventory, playbook] + list(extra)
    rc, wall, cpu = timed(argv, env=stub_env(count_file), out=out)
    result = dict(wall=round(wall, 3), cpu=round(cpu, 3), rc=rc)
    counts = {}
    if os.path.exists(count_file):
        with open(count_file) as handle:
            counts = json.load(handle)
    if counts:
        result.update(hosts=len(counts), modules_max=max(c["modules"] for c in counts.values()),
                      controller_max=max(c["controller"] for c in counts.values()),
                      failed_total=sum(c["failed"] for c in counts.values()), by_action=_merge_actions(counts),
                      plays=play_shape(counts))
    if rc != 0 or result.get("failed_total"):
        with open(out) as handle:
            result["error"] = handle.read()[-3000:]
    return result


def play_shape(counts):
    """Per play: its host pattern and the most module and controller-only results any host had in it."""
    shape = []
    for i in range(max(len(c.get("plays", [])) for c in counts.values())):
        mine = [c["plays"][i] for c in counts.values() if len(c["plays"]) > i]
        shape.append(dict(hosts=next((p["hosts"] for p in mine if p.get("hosts")), "nodes"),
                          modules=max(p["modules"] for p in mine), controller=max(p["controller"] for p in mine)))
    return shape


def do_nothing_playbook(path, shape):
    """site.yml's shape, play by play (as many module and controller-only tasks per host, most over
    the hosts), every module task an ansible.builtin.ping, every controller-only task a set_fact."""
    plays = []
    for index, play in enumerate(shape):
        tasks = [dict(name="Controller-only task %d" % (i + 1), **{"ansible.builtin.set_fact": {"nothing_%d" % i: i}})
                 for i in range(play["controller"])]
        tasks += [dict(name="Module task %d" % (i + 1), **{"ansible.builtin.ping": None}) for i in range(play["modules"])]
        plays.append(dict(name="Play %d of site.yml's shape: %d module, %d controller-only tasks per host"
                          % (index + 1, play["modules"], play["controller"]),
                          hosts=play.get("hosts") or "nodes", gather_facts=False,
                          tasks=tasks or [dict(name="Nothing", **{"ansible.builtin.meta": "noop"})]))
    with open(path, "w") as handle:
        handle.write("---\n# Generated by bench/bench.py (do_nothing_playbook).\n")
        json.dump(plays, handle, indent=1)
    return path


def scale(args, workdir):
    """site.yml (vxlan, one pod per node) and its do-nothing twin at each N, modules stubbed."""
    results = dict(mode=args.scale_mode, pods_per_node=1, forks=os.environ.get("ANSIBLE_FORKS") or "ansible.cfg",
                   connection="bench_stub", runs=[])
    for n in args.scale_n:
        work = os.path.join(workdir, "scale-%d" % n)
        os.makedirs(work, exist_ok=True)
        inventory = os.path.join(work, "inventory.json")
        scale_inventory(inventory, n, "s", os.path.join(work, "state"))
        entry = dict(n=n, loadavg_start=round(os.getloadavg()[0], 2))
        log("scale N=%d: site.yml, modules stubbed" % n)
        entry["site"] = site = stub_play(work, inventory, os.path.join(ROOT, "site.yml"), "site",
                                         "-e", "mode=" + args.scale_mode)
        if site.get("error") or not site.get("plays"):
            log("scale N=%d: site.yml failed (rc %d): %s" % (n, site["rc"], (site.get("error") or "")[-1500:]))
        else:
            playbook = do_nothing_playbook(os.path.join(work, "do-nothing.yml"), site["plays"])
            log("scale N=%d: the do-nothing playbook (%s)" % (n, ", ".join(
                "%d+%d" % (p["modules"], p["controller"]) for p in site["plays"])))
            entry["nothing"] = stub_play(work, inventory, playbook, "do-nothing")
        for key in ("site", "nothing"):
            if entry.get(key):
                entry[key]["cpu_per_node"] = round(entry[key]["cpu"] / n, 4)
        log("scale N=%d: site.yml %.1f s wall, %.0f ms CPU per node; do-nothing %s" % (
            n, site["wall"], 1000 * site["cpu"] / n, "%.1f s wall, %.0f ms CPU per node" % (
                entry["nothing"]["wall"], 1000 * entry["nothing"]["cpu"] / n) if entry.get("nothing") else "not run"))
        results["runs"].append(entry)
        save_partial(args, dict(scale=results))
    return results


# -- data plane -----------------------------------------------------------------------------


def ping_stats(ns, addr, count):
    sh("ping", "-n", "-q", "-c", "2", "-W", "2", addr, ns=ns, check=False)   # ARP, proxy ARP
    proc = sh("ping", "-n", "-q", "-c", str(count), "-i", "0.01", "-W", "2", addr, ns=ns, check=False)
    match = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", proc.stdout)
    loss = re.search(r"([\d.]+)% packet loss", proc.stdout)
    if not match:
        raise RuntimeError("ping %s from %s: %s %s" % (addr, ns, proc.stdout, proc.stderr))
    return dict(min=float(match.group(1)), avg=float(match.group(2)), max=float(match.group(3)),
                mdev=float(match.group(4)), loss=float(loss.group(1)) if loss else None, count=count)


def iperf(client_ns, server_ns, addr, seconds, port=5201):
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(100):
            proc = sh("iperf3", "-c", addr, "-p", str(port), "-t", str(seconds), "-J", ns=client_ns, check=False,
                      timeout=seconds + 60)
            try:
                data = json.loads(proc.stdout)
            except ValueError:
                data = dict(error=proc.stdout[-2000:] + proc.stderr)
            end = data.get("end") or {}
            if not data.get("error") and "sum_received" in end:
                return dict(bps=end["sum_received"]["bits_per_second"],
                            retransmits=end.get("sum_sent", {}).get("retransmits"), seconds=seconds)
            # iperf3 -J (3.12) exits 0 even when it could not connect: the error is in the JSON.
            if "refused" not in str(data.get("error")):
                raise RuntimeError("iperf3 %s from %s: %s %s" % (addr, client_ns, proc.stdout[-2000:], proc.stderr))
            time.sleep(0.1)
        raise RuntimeError("iperf3 server in %s never listened" % server_ns)
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def df_ping(ns, addr, size):
    return sh("ping", "-n", "-q", "-c", "1", "-W", "1", "-M", "do", "-s", str(size), addr, ns=ns,
              check=False).returncode == 0


def pmtu(ns, addr, mtu):
    """Largest DF ping payload that passes (binary search), and the checks at MTU-28 / MTU-27."""
    lo, hi = 0, 9000
    if not df_ping(ns, addr, lo):
        raise RuntimeError("no ping at all from %s to %s" % (ns, addr))
    if df_ping(ns, addr, hi):
        return dict(largest=None, mtu=mtu)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if df_ping(ns, addr, mid):
            lo = mid
        else:
            hi = mid
    at, above = df_ping(ns, addr, mtu - 28), df_ping(ns, addr, mtu - 27)
    return dict(largest=lo, mtu=mtu, expected=mtu - 28, passes_mtu_minus_28=at, fails_mtu_minus_27=not above,
                ok=lo == mtu - 28 and at and not above)


def link_mtu(ns, ifname):
    return json.loads(sh("ip", "-n", ns, "-json", "link", "show", ifname).stdout)[0]["mtu"]


def measure_paths(paths, args):
    """iperf3 on each path in turn, ``dp_reps`` rounds after one discarded warm-up round (in the
    VM, code that TCG has not translated yet makes a first run several times slower); then ping
    and the path MTU.  ``paths``: {name: (src_ns, dst_ns, addr, mtu_ns, mtu_if)}."""
    tcp = dict((name, []) for name in paths)
    for rnd in range(args.dp_reps + 1):
        for name, (src_ns, dst_ns, addr, _mtu_ns, _mtu_if) in paths.items():
            result = iperf(src_ns, dst_ns, addr, 1 if rnd == 0 else args.iperf_seconds)
            if rnd:
                tcp[name].append(result)
    out = {}
    for name, (src_ns, dst_ns, addr, mtu_ns, mtu_if) in paths.items():
        out[name] = dict(tcp=tcp[name], tcp_bps=median([r["bps"] for r in tcp[name]]),
                         ping=ping_stats(src_ns, addr, args.ping_count),
                         pmtu=pmtu(src_ns, addr, link_mtu(mtu_ns, mtu_if)))
    return out


def wait_for_route(ns, dst, bound=120):
    """Until ``ns`` has a route to ``dst`` (BIRD's, in bgp mode); the bound only stops a broken run."""
    deadline = time.monotonic() + bound
    while not json.loads(sh("ip", "-n", ns, "-json", "route", "show", dst).stdout or "[]"):
        if time.monotonic() > deadline:
            raise RuntimeError("%s never got a route to %s" % (ns, dst))
        time.sleep(0.5)


def data_plane(args, workdir, run_id, modes, where="host"):
    prefix = "bn%sd" % run_id
    lab = Lab(os.path.join(workdir, "dp"), prefix, 2, 1)
    results = dict(where=where, modes={})
    log("data plane (%s): building a 2-node lab" % where)
    try:
        lab.up()
        n1, n2 = lab.names[:2]
        node1, node2 = lab.ns(n1), lab.ns(n2)
        pod1, pod2 = lab.hosts[n1]["pods"][0], lab.hosts[n2]["pods"][0]
        for mode in modes:
            log("data plane (%s): %s" % (where, mode))
            try:
                converge = lab.play("site.yml", "-e", "mode=" + mode, label="dp-" + mode)
                entry = dict(converge=converge)
                if mode == "bgp":
                    # site.yml returns once BIRD runs; the sessions come up and the routes arrive after.
                    wait_for_route(node1, lab.hosts[n2]["pod_cidr"])
                    wait_for_route(node2, lab.hosts[n1]["pod_cidr"])
                # Underlay and pods alternate, so that both see about the same machine load.
                entry.update(measure_paths(dict(
                    underlay=(node1, node2, lab.hosts[n2]["node_ip"], node1, "eth0"),
                    pod=(pod1["name"], pod2["name"], pod2["ip"], pod1["name"], "eth0")), args))
                entry["fraction_tcp"] = entry["pod"]["tcp_bps"] / entry["underlay"]["tcp_bps"]
                entry["latency_ratio"] = entry["pod"]["ping"]["avg"] / entry["underlay"]["ping"]["avg"]
                results["modes"][mode] = entry
            except (RuntimeError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                log("data plane %s failed: %s" % (mode, str(exc)[-1500:]))
                results.setdefault("errors", {})[mode] = str(exc)[-3000:]
            if not args.in_vm:
                lab.play("playbooks/teardown.yml", label="dp-teardown", check=False)
    finally:
        if not args.in_vm:
            lab.down()
    return results


# -- the run ----------------------------------------------------------------------------------


def snapshot(dest):
    """Copy the working tree (tracked and untracked, not ignored) to ``dest``; point ROOT at it."""
    global ROOT, BENCH
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in files:
        source = os.path.join(ROOT, name)
        if name and os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(dest, name))
    link = os.path.join(dest, ".collections", "ansible_collections", "podnet")
    os.makedirs(link, exist_ok=True)
    os.symlink("../../..", os.path.join(link, "fabric"))
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True, text=True,
                           check=False).stdout.splitlines()
    ROOT, BENCH = dest, os.path.join(dest, "bench")
    return dict(commit=head, uncommitted_files=len(dirty), uncommitted=[line[3:] for line in dirty])


def versions():
    def out(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return None
    cpu = None
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((l.split(":", 1)[1].strip() for l in handle if l.startswith("model name")), None)
    except OSError:
        pass
    ansible = out(os.path.join(VENV_BIN, "ansible"), "--version").splitlines()
    return dict(kernel=platform.release(), cpu=cpu, cpus=os.cpu_count(), python=platform.python_version(),
                ansible_core=ansible[0] if ansible else None, iproute2=out("ip", "-V"),
                iperf3=(out("iperf3", "--version") or "").splitlines()[0] if out("iperf3", "--version") else None,
                os=_os_release(), loadavg_start=os.getloadavg())


def _os_release():
    try:
        with open("/etc/os-release") as handle:
            return dict(l.strip().split("=", 1) for l in handle if "=" in l).get("PRETTY_NAME", "").strip('"')
    except OSError:
        return None


def save_partial(args, data):
    if args.out and not args.in_vm:
        with open(args.out + ".partial", "w") as handle:
            json.dump(data, handle, indent=1)


def vm_data_plane(args):
    """Run the data plane for args.vm_modes inside the qemu VM; parse its console output."""
    # Each converge in the emulated VM takes minutes (Ansible ~10x slower): a generous watchdog.
    argv = [os.path.join(ROOT, "tests", "qemu", "run"), "--timeout", str(1800 + 1800 * len(args.vm_modes)), "--",
            os.path.join(VENV_BIN, "python"),
            os.path.join(BENCH, "bench.py"), "--in-vm", "--modes", ",".join(args.vm_modes),
            "--dp-reps", str(args.dp_reps), "--iperf-seconds", str(args.iperf_seconds),
            "--ping-count", str(args.ping_count)]
    log("data plane in the qemu VM (%s): %s" % (",".join(args.vm_modes), " ".join(argv)))
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT,
                          env=dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=os.path.join(VENV_BIN, "python"),
                                   PODNET_BENCH_VENV=os.path.dirname(VENV_BIN),
                                   PODNET_QEMU_CACHE=os.environ.get("PODNET_QEMU_CACHE") or
                                   os.path.join(CHECKOUT, ".cache", "qemu")))
    wall = time.monotonic() - start
    line = [l for l in proc.stdout.splitlines() if l.startswith(CONSOLE_MARK)]
    if proc.returncode == 77:
        return dict(skipped="qemu cannot run on this machine", wall=wall)
    if not line:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        log("the VM run gave no result (rc %d):\n%s" % (proc.returncode, tail))
        return dict(failed="rc %d, no result on the console" % proc.returncode, wall=wall, tail=tail)
    result = json.loads(line[-1][len(CONSOLE_MARK):])
    result["wall"] = round(wall, 1)
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--smoke", action="store_true",
                        help="CI smoke run: N=2, one repetition, vxlan only, a short data plane, no VM, no report")
    parser.add_argument("--sizes", "--n", default="2,4,8,16", help="node counts of the lab (default 2,4,8,16)")
    parser.add_argument("--modes", default="host-gw,vxlan,bgp",
                        help="modes on this machine (default host-gw,vxlan,bgp; bgp has no naive "
                             "or shell baseline, so its rows compare podnet with its floor)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per N and mode (default 3; medians reported)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="what the control plane measures (default %s; floor needs podnet)" % ",".join(KINDS))
    parser.add_argument("--pods", type=int, default=2, help="pods per node (default 2)")
    parser.add_argument("--no-control", action="store_true", help="skip the control plane")
    parser.add_argument("--no-data", action="store_true", help="skip the data plane")
    parser.add_argument("--vm-modes", default="ipip,vxlan",
                        help="modes measured in the qemu VM (default ipip,vxlan; '' skips the VM)")
    parser.add_argument("--no-forks-experiment", dest="forks_experiment", action="store_false",
                        help="skip timing podnet and the floor at the largest N with forks 2/8/16 and strategy free "
                             "(vxlan, once each)")
    parser.add_argument("--dp-reps", type=int, default=3, help="iperf3 runs per path (default 3)")
    parser.add_argument("--iperf-seconds", type=int, default=3, help="seconds per iperf3 run (default 3)")
    parser.add_argument("--ping-count", type=int, default=100, help="pings per latency sample (default 100)")
    parser.add_argument("--out", help="results JSON (default bench/results/bench.json, smoke: bench/results/smoke.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, inventories)")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="run the checkout's playbooks in place (default: a snapshot copy taken at the start)")
    parser.add_argument("--scale-n", default="16,64,256,1000",
                        help="node counts of the scale section: site.yml and a do-nothing playbook of the same shape "
                             "with every module's execution stubbed (bench/connection_plugins/bench_stub.py; no "
                             "namespaces; default 16,64,256,1000; '' skips it)")
    parser.add_argument("--scale-mode", default="vxlan", help="mode of the scale section (default vxlan)")
    parser.add_argument("--scale-only", action="store_true",
                        help="the scale section alone (no lab, no root needed; default --out bench/results/scale.json)")
    parser.add_argument("--label", help="a label stored with the results (e.g. 'before': the code before a change)")
    parser.add_argument("--in-vm", action="store_true", help=argparse.SUPPRESS)
    if "--smoke" in argv:
        # Smoke (CI): the whole machinery once, as cheaply as it goes; explicit options still win.
        parser.set_defaults(sizes="2", reps=1, modes="vxlan", vm_modes="", dp_reps=1, iperf_seconds=1,
                            ping_count=20, forks_experiment=False, scale_n="")
    if "--scale-only" in argv:
        parser.set_defaults(no_control=True, no_data=True, vm_modes="")
    args = parser.parse_args(argv)
    args.scale_n = [int(s) for s in str(args.scale_n).split(",") if s]
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    args.modes = [m for m in args.modes.split(",") if m]
    if [n for n in args.sizes if not 1 <= n <= 244] or not 1 <= args.pods <= 200:
        parser.error("the lab takes 1 to 244 nodes (--n) and 1 to 200 pods per node (--pods)")
    args.kinds = [k for k in args.kinds.split(",") if k]
    if not args.kinds or set(args.kinds) - set(KINDS) or ("floor" in args.kinds and "podnet" not in args.kinds):
        parser.error("--kinds: a comma-separated subset of %s (floor needs podnet)" % ",".join(KINDS))
    args.vm_modes = [m for m in args.vm_modes.split(",") if m]
    if args.out is None and not args.in_vm:
        args.out = os.path.join(BENCH, "results", "smoke.json" if args.smoke else
                                "scale.json" if args.scale_only else "bench.json")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0 and not (args.no_control and args.no_data and not args.vm_modes):
        sys.exit("bench/run needs root (network namespaces); --scale-only does not")
    run_id = uuid.uuid4().hex[:4]
    # Under the checkout's .cache (git-ignored): the qemu VM sees it, unlike /tmp, which it covers.
    cache = None
    if not args.in_vm:
        cache = os.path.join(ROOT, ".cache")
        os.makedirs(cache, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="bench-", dir=cache)
    checkout = ROOT
    started = time.monotonic()
    data = dict(started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                prefix="bn" + run_id, label=args.label,
                args=dict((k, v) for k, v in vars(args).items() if k not in ("out", "keep")),
                machine=versions())
    try:
        if not args.in_vm and not args.no_snapshot:
            data["code"] = snapshot(os.path.join(workdir, "src"))
            log("measuring a snapshot of %s (HEAD %s + %d uncommitted files) in %s" % (
                checkout, data["code"]["commit"], data["code"]["uncommitted_files"], ROOT))
        if args.in_vm:
            data["data"] = data_plane(args, workdir, run_id, args.modes, where="qemu VM")
            data["wall"] = round(time.monotonic() - started, 1)
            print(CONSOLE_MARK + json.dumps(data), flush=True)
            return 0
        if args.scale_n:
            data["scale"] = scale(args, workdir)
            save_partial(args, data)
        if not args.no_control:
            data["control"] = control_plane(args, workdir, run_id)
        if not args.no_data:
            data["data"] = data_plane(args, workdir, run_id, args.modes)
            save_partial(args, data)
        if args.vm_modes:
            data["vm"] = vm_data_plane(args)
        data["machine"]["loadavg_end"] = os.getloadavg()
        data["wall"] = round(time.monotonic() - started, 1)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as handle:
            json.dump(data, handle, indent=1)
        if os.path.exists(args.out + ".partial"):
            os.unlink(args.out + ".partial")
        log("done in %.0f s: %s" % (data["wall"], args.out))
        return 0
    finally:
        if args.keep:
            log("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
