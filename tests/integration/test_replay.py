"""Render and boot replay on the real kernel: the script a node gets (script.py) builds what
site.yml builds, and brings a rebooted node back with no Ansible run.

* acceptance 5: playbooks/render.yml's scripts (shellcheck finds nothing), run with plain ``sh``
  on the bare lab, give the same snapshot as site.yml, and are the very text site.yml leaves on
  the nodes for the replay;
* acceptance 1: converge (vxlan static with a policy; host-gw), snapshot; the replay on a
  converged node changes nothing (twice); wipe a node (its namespace and its pods' go, the lab
  makes it again bare, with only its underlay, as after a reboot), run the replay: the snapshot
  equals the converged one, every pod reaches every pod the policy allows, the denied pair
  stays denied;
* ipip (``-m ipip``, in the qemu VM of tests/qemu): the same after a reboot of one node;
* the systemd unit passes ``systemd-analyze verify``; podnet.fabric.replay installs and enables it
  (check mode: this machine runs no systemd) and removes it.

A lab node is a namespace without systemd: the replay runs there by hand, as
``nsenter --net=/run/netns/NODE sh NODE-replay.sh`` (``ip netns exec`` would make the pods'
namespaces in a private mount namespace, where they vanish with it: see docs). One 2-node lab
for the file.
"""

import json
import os
import subprocess
import time

import pytest

from conftest import ipj, requires_ipip, run_module, settle, sh
from test_faults import SLOW, TWO, built, changed_per_host

from ansible_collections.podnet.fabric.plugins.module_utils import script, tunnel

POLICY = ["-e", json.dumps({"podnet_policy": [{"from": "PODA", "to": "PODB", "action": "deny"}]})]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with built(tmp_path_factory, "replay", "rp", TWO) as lab:
        pods = [lab.pod(h)["name"] for h in ("h1", "h2")]
        lab.policy = [w.replace("PODA", pods[0]).replace("PODB", pods[1]) for w in POLICY]
        yield lab


def pod_state(lab):
    """What the pods hold (links without their random veth MACs, IPv4 addresses and routes: podnet is
    IPv4-only, a pod's IPv6 link-local address follows its random MAC) and the nodes' IPv4 sysctls
    (forwarding, proxy ARP, proxy delay, rp_filter ... of every interface)."""
    result = {}
    for host in sorted(lab.hosts):
        name = lab.pod(host)["name"]
        if not os.path.exists("/run/netns/" + name):
            result[name] = None
            continue
        links = sorted((l["ifname"], l["mtu"], "UP" in l["flags"]) for l in ipj(name, "link", "show"))
        addrs = sorted((a["ifname"], i["local"], i["prefixlen"]) for a in ipj(name, "-4", "addr", "show")
                       for i in a.get("addr_info", []))
        routes = sorted((r.get("table", "main"), r["dst"], r.get("gateway"), r.get("dev"),
                         tuple(r.get("flags", []))) for r in ipj(name, "-4", "route", "show", "table", "all"))
        result[name] = dict(links=links, addrs=addrs, routes=routes)
    for host in sorted(lab.hosts):
        ns = lab.ns(host)
        lines = sh("sysctl", "-a", ns=ns).splitlines()
        result[ns + " sysctl"] = sorted(l for l in lines if l.startswith(("net.ipv4.conf.", "net.ipv4.neigh.",
                                                                          "net.ipv4.ip_forward")))
    return result


def snapshot(lab):
    for ns in lab.namespaces + [lab.pod(h)["name"] for h in lab.hosts]:
        if os.path.exists("/run/netns/" + ns):
            settle(ns)
    return dict(nodes=lab.state(), pods=pod_state(lab))


def assert_equal(now, then, what):
    problems = []
    for part in then:
        for key in then[part]:
            if now[part].get(key) != then[part][key]:
                problems.append("%s %s:\n  now  %s\n  then %s" % (part, key, now[part].get(key), then[part][key]))
    assert not problems, "%s differs:\n%s" % (what, "\n".join(problems))


def wipe(lab, *hosts):
    """A reboot, on the lab: the node's namespace and its pods' go; the lab makes the node again
    with only its underlay (switch port, address, default route), as the host's boot would."""
    for host in hosts:
        sh("ip", "netns", "del", lab.pod(host)["name"])
        sh("ip", "netns", "del", lab.ns(host))
    lab.up()
    for host in hosts:
        settle(lab.ns(host))
        # (the kernel's own fallback devices, tunl0 ..., appear in every namespace once ipip is loaded)
        assert not [l for l in ipj(lab.ns(host), "link", "show")
                    if l["ifname"] not in ("lo", "eth0") + tunnel.FALLBACK_DEVICES]
        assert not os.path.exists("/run/netns/" + lab.pod(host)["name"])


def run_script(lab, host, path):
    """Plain ``sh`` in the node's network namespace (no new mount namespace: see the docstring)."""
    start = time.monotonic()
    proc = subprocess.run(["nsenter", "--net=/run/netns/" + lab.ns(host), "sh", path],
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (path, proc.returncode, proc.stdout, proc.stderr)
    return elapsed


def replay_file(lab, host):
    return os.path.join(lab.state_dir, "%s-replay.sh" % host)


def assert_reach_with_policy(lab):
    """Every pod reaches every pod, except the pair podnet_policy denies (h1's pod -> h2's)."""
    assert lab.reach("h2", "h1")
    assert not lab.reach("h1", "h2"), "the policy's deny (h1 pod -> h2 pod) is gone"


def record(what, seconds):
    """The replay's wall time, printed for docs/benchmarks.md (``pytest -s``); never asserted."""
    print("replay %s: %.3f s" % (what, seconds))


@SLOW
def test_rendered_scripts_build_what_site_yml_builds(lab, tmp_path):
    """Acceptance 5: render, shellcheck, plain sh on the bare lab == site.yml on the bare lab."""
    out = tmp_path / "rendered"
    lab.play("playbooks/render.yml", "-e", "mode=vxlan", "-e", "render_dir=%s" % out, *lab.policy)
    scripts = dict((h, str(out / ("%s.sh" % h))) for h in sorted(lab.hosts))
    assert sorted(os.listdir(out)) == ["h1.sh", "h2.sh"]
    lint = subprocess.run(["shellcheck", "--shell=sh"] + list(scripts.values()), capture_output=True, text=True,
                          check=False)
    assert lint.returncode == 0, lint.stdout
    assert snapshot(lab)["nodes"] == lab.pristine, "render.yml changed a node"
    for host, path in scripts.items():
        run_script(lab, host, path)
    rendered = snapshot(lab)
    assert_reach_with_policy(lab)

    wipe(lab, "h1", "h2")
    assert snapshot(lab)["nodes"] == lab.pristine
    lab.converge("vxlan", *lab.policy)
    assert_equal(snapshot(lab), rendered, "site.yml against the rendered scripts")
    for host, path in scripts.items():
        with open(path) as rendered_text, open(replay_file(lab, host)) as kept:
            assert kept.read() == rendered_text.read(), "the replay of %s is not the rendered script" % host


def converge_and_replay(lab, mode, extra, hosts, rounds=2):
    """Converge (and, with two rounds, check the rerun changes nothing), snapshot; the replay on
    every converged node ``rounds`` times changes nothing; wipe ``hosts``, replay: the snapshot."""
    lab.converge(mode, *extra)
    if rounds > 1:
        again = lab.converge(mode, *extra)
        assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    converged = snapshot(lab)
    for _round in range(rounds):
        for host in sorted(lab.hosts):
            run_script(lab, host, replay_file(lab, host))
        assert_equal(snapshot(lab), converged, "%s: the replay on a converged node" % mode)
    wipe(lab, *hosts)
    assert snapshot(lab) != converged
    for host in hosts:
        record("%s %s" % (mode, host), run_script(lab, host, replay_file(lab, host)))
    assert_equal(snapshot(lab), converged, "%s: the replay after a reboot of %s" % (mode, ", ".join(hosts)))


@SLOW
def test_replay_after_reboot_vxlan_static_with_policy(lab):
    """Acceptance 1 (vxlan static, a policy): one node reboots; the replay alone brings it back."""
    converge_and_replay(lab, "vxlan", lab.policy, ["h1"])
    assert_reach_with_policy(lab)


@SLOW
def test_replay_after_reboot_host_gw(lab):
    """Acceptance 1 (host-gw): both nodes reboot; their replays alone bring the cluster back."""
    converge_and_replay(lab, "host-gw", [], ["h1", "h2"])
    lab.assert_reach()


@pytest.mark.vm_extra
@pytest.mark.ipip
@SLOW
def test_replay_after_reboot_ipip(lab):
    """Acceptance 1 (ipip, in the qemu VM where this kernel lacks IPIP): one node reboots; the
    replay alone brings it back. Lean: software emulation makes every Ansible run minutes."""
    requires_ipip()
    converge_and_replay(lab, "ipip", [], ["h1"], rounds=1)
    lab.assert_reach()


def test_unit_verifies_and_replay_installs_it(namespaces, tmp_path):
    """The unit passes systemd-analyze verify; podnet.fabric.replay writes the script, and on a
    systemd host (service=systemd; check mode, as this machine runs no systemd) verifies, installs
    and enables the unit; state=absent removes both."""
    path = str(tmp_path / "state" / "n1-replay.sh")
    unit = tmp_path / "podnet-replay.service"
    unit.write_text(script.unit_text(path, "eth0"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    ns = namespaces.add("u")
    args = dict(path=path, script="#!/bin/sh\n:\n", iface="eth0", unit_dir=str(tmp_path / "units"))
    plain = run_module("replay", args, ns=ns, diff=True)
    assert plain.changed and plain["service"] == "none" and plain["unit_file"] is None, plain
    assert open(path).read() == "#!/bin/sh\n:\n" and os.stat(path).st_mode & 0o777 == 0o755
    assert not run_module("replay", args, ns=ns).changed
    systemd = run_module("replay", dict(args, service="systemd"), ns=ns, check=True, diff=True)
    assert systemd.changed and systemd["service"] == "systemd", systemd
    assert [c[1:] for c in systemd["commands"]] == [["daemon-reload"], ["enable", "podnet-replay.service"]]
    assert "BindsTo=sys-subsystem-net-devices-eth0.device" in systemd["diff"]["after"]["unit"]
    assert not os.path.exists(tmp_path / "units")
    refused = run_module("replay", dict(args, service="systemd", iface="bad name"), ns=ns, check=True)
    assert refused.failed and "iface" in refused["msg"]
    gone = run_module("replay", dict(path=path, state="absent"), ns=ns)
    assert gone.changed and not os.path.exists(path)
    assert not run_module("replay", dict(path=path, state="absent"), ns=ns).changed


def test_node_record_writes_the_replay_with_the_record_in_one_call(namespaces, tmp_path):
    """site.yml's last step: node_record's ``replay`` writes the script (check mode: nothing
    written), then the record; a second call changes nothing; a bad replay option is refused before
    either file is written; ``replay`` with state=absent is refused."""
    ns = namespaces.add("w")
    script_path, record_path = str(tmp_path / "n1-replay.sh"), str(tmp_path / "n1-record.json")
    rec = dict(version=1, node="n1", devices=[], chains=[], pods=[], sysctls=dict(file="/x", keys=[]))
    args = dict(path=record_path, record=rec, replay=dict(path=script_path, script="#!/bin/sh\n:\n", iface="eth0"))
    bad = run_module("node_record", dict(args, replay=dict(args["replay"], path="relative.sh")), ns=ns)
    assert bad.failed and "replay.path" in bad["msg"] and not os.listdir(tmp_path), bad
    checked = run_module("node_record", args, ns=ns, check=True, diff=True)
    assert checked.changed and checked["replay"]["changed"] and not os.listdir(tmp_path), checked
    assert checked["diff"]["after"]["replay"]["script"] == "#!/bin/sh\n:\n"
    done = run_module("node_record", args, ns=ns)
    assert done.changed and done["replay"] == dict(changed=True, service="none", unit_file=None), done
    assert open(script_path).read() == "#!/bin/sh\n:\n" and os.stat(script_path).st_mode & 0o777 == 0o755
    assert json.load(open(record_path)) == rec
    again = run_module("node_record", args, ns=ns)
    assert not again.changed and not again["replay"]["changed"], again
    refused = run_module("node_record", dict(path=record_path, state="absent", replay=args["replay"]), ns=ns)
    assert refused.failed and "replay" in refused["msg"] and os.path.exists(record_path), refused
