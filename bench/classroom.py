# -*- coding: utf-8 -*-
# Copyright (c) podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A classroom on one machine: N labs side by side, what they cost.

    .venv/bin/python bench/classroom.py [--labs 20] [--mode vxlan] [--prefix room] [--out bench/results/classroom.json]

Brings up N labs of the lab inventory one after the other, exactly as `make lab LAB=<prefix>NN`
does (playbooks/lab.yml, site.yml, playbooks/verify.yml), timing each step; reads the kernel's
memory before, with all N up, and after removing them (`make lab-down` per lab); with all N up,
verifies the first lab again and checks that its pod-a reaches only its own pod-b. The labs hold
no process: what they cost is kernel memory (namespaces, devices, routes, iptables tables), read
from /proc/meminfo. Other work on the machine moves those figures too: the load average is
recorded with them. Writes the figures as JSON and prints a Markdown summary (docs/classroom.md
publishes one run).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
MEMINFO_KEYS = ("MemAvailable", "Slab", "SUnreclaim", "Percpu", "VmallocUsed")
# What namespaces, devices, routes and netfilter tables take: the kernel's own memory.
KERNEL_KEYS = ("SUnreclaim", "Percpu", "VmallocUsed")


def meminfo(samples=5):
    """/proc/meminfo's MEMINFO_KEYS in kB, each the median of a few readings a second apart,
    and ``kernel``, the sum of KERNEL_KEYS."""
    readings = []
    for index in range(samples):
        if index:
            time.sleep(1)
        values = {}
        with open("/proc/meminfo") as handle:
            for line in handle:
                key, _sep, rest = line.partition(":")
                if key in MEMINFO_KEYS:
                    values[key] = int(rest.split()[0])
        values["kernel"] = sum(values[k] for k in KERNEL_KEYS)
        readings.append(values)
    return dict((key, sorted(r[key] for r in readings)[samples // 2]) for key in readings[0])


def loadavg():
    with open("/proc/loadavg") as handle:
        return [float(x) for x in handle.read().split()[:3]]


def run(argv, env):
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("%s failed (%d):\n%s\n%s" % (" ".join(argv), proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    return took, proc.stdout


def rx_packets(ns):
    out = subprocess.run(["ip", "-n", ns, "-json", "-stats", "link", "show", "dev", "eth0"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["stats64"]["rx"]["packets"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--mode", default="vxlan", choices=["host-gw", "vxlan"])
    parser.add_argument("--prefix", default="room")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "classroom.json"))
    args = parser.parse_args()
    names = ["%s%02d" % (args.prefix, i + 1) for i in range(args.labs)]
    taken = [n for n in os.listdir("/run/netns") for lab in names if n.startswith(lab + "-")] \
        if os.path.isdir("/run/netns") else []
    if taken:
        sys.exit("namespaces of these labs exist already (%s): pick another --prefix" % ", ".join(sorted(taken)[:5]))

    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    playbook = os.path.join(VENV_BIN, "ansible-playbook")
    state = tempfile.mkdtemp(prefix="podnet-classroom-")
    result = dict(labs=args.labs, mode=args.mode, cpus=os.cpu_count(), kernel=platform.release(),
                  started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), steps=[])

    def lab_args(lab):
        return ["-e", "lab=" + lab, "-e", "podnet_state_dir=%s/%s" % (state, lab)]

    result["memory_before_kb"], result["load_before"] = meminfo(), loadavg()
    wall = time.monotonic()
    try:
        for lab in names:
            step = dict(lab=lab)
            step["lab_s"], _out = run([playbook, "playbooks/lab.yml"] + lab_args(lab), env)
            step["site_s"], _out = run([playbook, "site.yml", "-e", "mode=" + args.mode] + lab_args(lab), env)
            step["verify_s"], _out = run([playbook, "playbooks/verify.yml", "-e", "mode=" + args.mode] + lab_args(lab), env)
            step["up_s"] = step["lab_s"] + step["site_s"] + step["verify_s"]
            step["load"] = loadavg()
            result["steps"].append(step)
            print("%s up in %.1f s (lab %.1f, site %.1f, verify %.1f), load %.1f"
                  % (lab, step["up_s"], step["lab_s"], step["site_s"], step["verify_s"], step["load"][0]), flush=True)
        result["all_up_s"] = time.monotonic() - wall
        time.sleep(5)   # let RCU-freed objects of the last runs go before reading memory
        result["memory_up_kb"], result["load_up"] = meminfo(), loadavg()
        result["namespaces"] = sum(1 for n in os.listdir("/run/netns") for lab in names if n.startswith(lab + "-"))

        # With all of them up: the first lab still verifies, and reaches nothing of the others.
        first, last = names[0], names[-1]
        result["reverify_first_s"], _out = run([playbook, "playbooks/verify.yml", "-e", "mode=" + args.mode]
                                               + lab_args(first), env)
        before = rx_packets(last + "-pod-b")
        subprocess.run(["ip", "netns", "exec", first + "-pod-a", "ping", "-n", "-c", "5", "-i", "0.2", "-W", "2",
                        "192.168.11.10"], check=True, capture_output=True)
        result["isolated"] = rx_packets(last + "-pod-b") == before
    finally:
        down = time.monotonic()
        for lab in names:
            subprocess.run(["make", "--no-print-directory", "lab-down", "LAB=" + lab,
                            "LAB_ARGS=-e podnet_state_dir=%s/%s" % (state, lab)],
                           cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        result["all_down_s"] = time.monotonic() - down
    time.sleep(5)
    result["memory_after_kb"], result["load_after"] = meminfo(), loadavg()
    left = [n for n in os.listdir("/run/netns") for lab in names if n.startswith(lab + "-")]
    result["left_after_down"] = sorted(left)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
    print(summary(result))


def summary(r):
    ups = sorted(s["up_s"] for s in r["steps"])
    n = r["labs"]

    def delta(key, a="memory_before_kb", b="memory_up_kb"):
        return (r[b][key] - r[a][key]) / 1024.0

    lines = [
        "| %d labs (%s), %d CPUs, kernel %s | |" % (n, r["mode"], r["cpus"], r["kernel"]),
        "| --- | --- |",
        "| one lab up (lab.yml + site.yml + verify.yml): median, min, max | %.1f s, %.1f s, %.1f s |"
        % (ups[len(ups) // 2], ups[0], ups[-1]),
        "| all %d, one after the other | %.0f s (%.1f min) |" % (n, r["all_up_s"], r["all_up_s"] / 60),
        "| namespaces with all up | %d |" % r["namespaces"],
        "| kernel memory taken with all up (unreclaimable slab + per-CPU + vmalloc) | %.1f MiB (%.2f MiB per lab) |"
        % (delta("kernel"), delta("kernel") / n),
        "| of which slab, per-CPU, vmalloc | %.1f, %.1f, %.1f MiB |"
        % (delta("SUnreclaim"), delta("Percpu"), delta("VmallocUsed")),
        "| kernel memory given back by removing them | %.1f MiB |" % -delta("kernel", "memory_up_kb", "memory_after_kb"),
        "| MemAvailable before, with all up, after (whole machine, other work included) | %.0f, %.0f, %.0f MiB |"
        % (r["memory_before_kb"]["MemAvailable"] / 1024.0, r["memory_up_kb"]["MemAvailable"] / 1024.0,
           r["memory_after_kb"]["MemAvailable"] / 1024.0),
        "| first lab verified again with all up | %.1f s |" % r["reverify_first_s"],
        "| first lab's pod-a reaches the last lab's pod-b | %s |" % ("no" if r["isolated"] else "YES (not isolated)"),
        "| all %d removed (make lab-down each) | %.0f s; namespaces left: %d |"
        % (n, r["all_down_s"], len(r["left_after_down"])),
        "| load average (1 min) before, with all up, after | %.1f, %.1f, %.1f |"
        % (r["load_before"][0], r["load_up"][0], r["load_after"][0]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
