# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot replay's time per node (docs/benchmarks.md, "Boot replay"): bench/results/replay.json.

    sudo .venv/bin/python bench/replay.py [--sizes 2,8,16] [--pods 2] [--modes vxlan,host-gw]

Per size and mode, on a lab of bench/bench.py's kind (N node namespaces on one switch): site.yml
converges; the replay it left (podnet_state_dir/NODE-replay.sh) runs once on every converged node
(``again``: what a restart of a node that kept its state costs); then every node is wiped (its
namespace and its pods' namespaces deleted, the lab makes it again with only its underlay, as after
a reboot) and the replay runs on each bare node, one node at a time (``boot``). The lab must then
hold exactly what the converge made (else the run fails). Plain ``sh`` under ``nsenter --net``, as
a lab node runs it by hand; wall and CPU time per node.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import ROOT, Lab, log, sh, timed, versions  # noqa: E402  (bench/bench.py, beside this file)


def replay(lab, host, label):
    path = os.path.join(lab.state_dir, "%s-replay.sh" % host)
    rc, wall, cpu = timed(["nsenter", "--net=/run/netns/%s" % lab.ns(host), "sh", path],
                          out=os.path.join(lab.logdir, "replay-%s-%s.log" % (label, host)))
    if rc != 0:
        raise RuntimeError("the replay of %s failed (log in %s)" % (host, lab.logdir))
    return dict(wall=round(wall, 4), cpu=round(cpu, 4))


def wipe(lab):
    for host in lab.names:
        for pod in lab.hosts[host]["pods"]:
            sh("ip", "netns", "del", pod["name"])
        sh("ip", "netns", "del", lab.ns(host))
    lab.play("playbooks/lab.yml", *lab.lab_vars, label="lab-reboot")
    lab.settle()


def summary(samples):
    walls = [s["wall"] for s in samples]
    return dict(median_wall=round(statistics.median(walls), 4), max_wall=round(max(walls), 4),
                median_cpu=round(statistics.median([s["cpu"] for s in samples]), 4), samples=samples)


def measure(args, workdir):
    results = []
    run_id = uuid.uuid4().hex[:4]
    for n in args.sizes:
        lab = Lab(os.path.join(workdir, "n%d" % n), "br%s%02d" % (run_id, n), n, args.pods)
        log("replay N=%d: building the lab" % n)
        try:
            lab.up()
            for mode in args.modes:
                lab.play("site.yml", "-e", "mode=" + mode, label="converge-" + mode)
                converged = lab.fingerprint()
                again = [replay(lab, host, "again-" + mode) for host in lab.names]
                if lab.fingerprint() != converged:
                    raise RuntimeError("the replay changed a converged node")
                wipe(lab)
                boot = [replay(lab, host, "boot-" + mode) for host in lab.names]
                if lab.fingerprint() != converged:
                    raise RuntimeError("after the reboot the replay did not give back the converged state")
                entry = dict(n=n, mode=mode, pods_per_node=args.pods, again=summary(again), boot=summary(boot))
                log("replay N=%d %s: boot %.3f s median, %.3f s max per node; again %.3f s" % (
                    n, mode, entry["boot"]["median_wall"], entry["boot"]["max_wall"], entry["again"]["median_wall"]))
                results.append(entry)
                lab.play("playbooks/teardown.yml", label="teardown-" + mode)
        finally:
            lab.down()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="2,8,16", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--pods", default=2, type=int)
    parser.add_argument("--modes", default="vxlan,host-gw", type=lambda s: s.split(","))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "replay.json"))
    args = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="podnet-replay-") as workdir:
        runs = measure(args, workdir)
    with open(args.out, "w") as handle:
        json.dump(dict(started=started, replay=dict(runs=runs, versions=versions(), loadavg=os.getloadavg())),
                  handle, indent=1)
    log("wrote %s" % args.out)


if __name__ == "__main__":
    main()
