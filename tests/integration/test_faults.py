"""Faults: site.yml must converge again after each of them.

* a run killed half way (SIGKILL of the whole ansible-playbook process group);
* one node unreachable (its ansible_host names a namespace that does not exist): the others
  converge, still planning it as a peer from the inventory, and the run names it; bad input
  still stops every node before any change;
* drift (someone deletes a route, an FDB or neighbour entry, the tunnel device, a pod's veth...):
  a rerun repairs exactly that and reports changed, the run after reports nothing;
* a node leaving the inventory (the others purge everything that pointed at it) and joining it;
* a node whose vxlan device is recreated keeps its VTEP MAC: a rerun on that node alone
  (``--limit``) is enough, the peers work on without one.

Labs are built from temporary inventories with unique names (see ``Lab`` in test_site.py) and
shared by the tests of one module; every test starts from the state it needs.
"""

import contextlib
import os
import re
import signal
import subprocess

import pytest
import yaml

from conftest import ROOT, VENV_BIN, ipj, sh
from test_site import PLAYBOOK, Lab, assert_same, changed_per_host

from ansible_collections.podnet.fabric.plugins.module_utils import validate

TWO = [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24")]
# Tests here chain several site.yml runs (each 10-60 s on a loaded 2-core machine).
SLOW = pytest.mark.timeout(1800)
# The third node sits in another subnet, behind the lab's router.
THREE = TWO + [("10.57.5.30", "192.168.12.0/24")]


class FaultLab(Lab):
    """A Lab whose inventory can lose nodes or point them elsewhere, and that can be killed."""

    def __init__(self, tmp_path, tag, nodes):
        super(FaultLab, self).__init__(tmp_path, tag, nodes)
        self.tmp = tmp_path
        self.nodes = dict(("h%d" % (i + 1), node) for i, node in enumerate(nodes))

    def rewrite(self, drop=(), **changes):
        """Write the inventory again: without the hosts in ``drop``, host vars updated by ``changes``."""
        with open(self.inventory) as handle:
            inventory = yaml.safe_load(handle)
        inventory["nodes"]["hosts"] = dict((name, dict(data, **changes.get(name, {})))
                                           for name, data in self.hosts.items() if name not in drop)
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(inventory, handle)

    def down(self):
        self.rewrite()
        super(FaultLab, self).down()

    def ns(self, host):
        return self.hosts[host]["ansible_host"]

    def pod(self, host):
        return self.hosts[host]["pods"][0]

    def node_state(self, *hosts):
        state = self.state()
        return dict((self.ns(h), state[self.ns(h)]) for h in hosts)

    def reach(self, src, dst):
        """True when src's pod gets an answer from dst's pod."""
        proc = subprocess.run(["ip", "netns", "exec", self.pod(src)["name"], "ping", "-n", "-q", "-c", "3",
                               "-i", "0.3", "-W", "2", self.pod(dst)["ip"]], capture_output=True, check=False)
        return proc.returncode == 0

    def assert_reach(self, *hosts):
        hosts = hosts or sorted(self.hosts)
        missing = [(a, b) for a in hosts for b in hosts if a != b and not self.reach(a, b)]
        assert not missing, "pods that do not reach each other: %s" % missing

    def killed(self, mode, marker, *extra):
        """Run site.yml and SIGKILL its whole process group as soon as ``marker`` is printed."""
        temp = self.tmp / "killed"
        temp.mkdir(exist_ok=True)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
                   PYTHONUNBUFFERED="1", ANSIBLE_LOCAL_TEMP=str(temp), ANSIBLE_REMOTE_TMP=str(temp))
        proc = subprocess.Popen([PLAYBOOK, "-i", self.inventory, os.path.join(ROOT, "site.yml"),
                                 "-e", "mode=%s" % mode] + list(extra),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                                start_new_session=True)
        seen = []
        try:
            for line in proc.stdout:
                seen.append(line)
                if marker in line:
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.stdout.close()
            proc.wait()
        text = "".join(seen)
        assert marker in text, "the run ended before %r:\n%s" % (marker, text[-3000:])
        assert proc.returncode == -signal.SIGKILL
        assert "PLAY RECAP" not in text
        return text

    def pointing_at(self, host, *others):
        """Every route, FDB, permanent neighbour entry and iptables rule on ``others`` that names ``host``."""
        node_ip, pod_cidr = self.nodes[host]
        tunnel_ip = pod_cidr.rsplit(".", 1)[0] + ".1"
        marks = (node_ip, pod_cidr, tunnel_ip, validate.vtep_mac(node_ip), self.pod(host)["ip"])
        words = re.compile(r"(^|\s)(%s)(/32)?(\s|$)" % "|".join(re.escape(m) for m in marks))
        found = []
        for ns, state in self.node_state(*others).items():
            for key in ("routes", "neigh", "fdb"):
                found += [(ns, key, item) for item in state[key] if any(m in item for m in marks)]
            found += [(ns, "iptables", rule) for rule in state["iptables"] if words.search(rule)]
        return found


@contextlib.contextmanager
def built(tmp_path_factory, name, tag, nodes):
    """A FaultLab built for the tests of one module (its pristine state taken), removed after."""
    lab = FaultLab(tmp_path_factory.mktemp(name), tag, nodes)
    try:
        lab.up()
        lab.pristine = lab.state()
        yield lab
    finally:
        lab.down()


def converged(lab, mode, *extra):
    """Converge; return the run after it, which must change nothing."""
    lab.converge(mode, *extra)
    again = lab.converge(mode, *extra)
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    return again


def recap(proc, host):
    line = next(l for l in proc.stdout.splitlines() if l.startswith(host + " ") and ": ok=" in l)
    return dict(item.split("=") for item in line.split(":", 1)[1].split())


# -- two nodes, vxlan: killed runs, drift, a recreated device ------------------------------------


@pytest.fixture(scope="module")
def vx2(tmp_path_factory):
    with built(tmp_path_factory, "faults-vx2", "fa", TWO) as lab:
        lab.ref = None
        yield lab


def at_ref(lab, mode="vxlan"):
    """Bring the lab to its converged reference state (the first time: converge and take it)."""
    if lab.ref is None or lab.state() != lab.ref:
        converged(lab, mode)
    if lab.ref is None:
        lab.ref = lab.state()
    assert_same(lab.state(), lab.ref, "the converged lab")


def changed_tasks(proc):
    """{(task, host)} for every task that reported changed (items included) in a run's output."""
    result, task = set(), None
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rindex("]")]
        elif line.startswith("changed: ["):
            result.add((task, line[len("changed: ["):line.index("]")]))
    return result


# Kill points: while the pods are being wired; after they are, while the peers' FDB and
# neighbour entries are being written (the VXLAN device exists, the routes not yet).
KILL_POINTS = ["TASK [podnet.fabric.pods : Wire each pod",
               "TASK [podnet.fabric.vxlan : Write the peers' neighbour and FDB entries"]


@SLOW
@pytest.mark.parametrize("marker", KILL_POINTS, ids=["pods", "fdb"])
def test_a_run_killed_half_way_converges_next_time(vx2, marker):
    if vx2.state() != vx2.pristine:
        vx2.play("playbooks/teardown.yml")
    assert_same(vx2.state(), vx2.pristine, "teardown")
    vx2.killed("vxlan", marker)
    assert vx2.state() != vx2.pristine, "the killed run changed nothing"
    vx2.converge("vxlan")
    verify = vx2.verify("vxlan")
    assert "vxlan on the wire" in verify.stdout
    again = vx2.converge("vxlan")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    if vx2.ref is None:
        vx2.ref = vx2.state()
    assert_same(vx2.state(), vx2.ref, "converging after a killed run")


def _fdb_entry(lab):
    mac = validate.vtep_mac(lab.nodes["h2"][0])
    return ["bridge", "-n", lab.ns("h1"), "fdb", "del", mac, "dev", "vxlan0", "dst", lab.nodes["h2"][0], "self"]


# What an operator (or a restart of one part) might do by hand, in two rounds of drifts that do
# not hide each other (deleting or downing a device also takes its routes and entries with it).
# Each: (host, argv, words from the name of a task that must report the repair as changed there).
DRIFTS = {
    "devices": {
        "pod-veth": lambda lab: ("h1", ["ip", "-n", lab.ns("h1"), "link", "del", "veth-p1"], "Wire each pod"),
        "tunnel-down": lambda lab: ("h1", ["ip", "-n", lab.ns("h1"), "link", "set", "vxlan0", "down"],
                                    "Create the VXLAN device"),
        "tunnel-deleted": lambda lab: ("h2", ["ip", "-n", lab.ns("h2"), "link", "del", "vxlan0"],
                                       "Create the VXLAN device"),
    },
    "entries": {
        "peer-route": lambda lab: ("h1", ["ip", "-n", lab.ns("h1"), "route", "del", lab.nodes["h2"][1]],
                                   "through the VXLAN device"),
        "fdb-entry": lambda lab: ("h1", _fdb_entry(lab), "neighbour and FDB entries"),
        "ip-forward": lambda lab: ("h1", ["ip", "netns", "exec", lab.ns("h1"), "sysctl", "-qw",
                                          "net.ipv4.ip_forward=0"], "Forward packets"),
        "neighbour": lambda lab: ("h2", ["ip", "-n", lab.ns("h2"), "neigh", "del", "192.168.10.1", "dev", "vxlan0"],
                                  "neighbour and FDB entries"),
        "pod-route": lambda lab: ("h2", ["ip", "-n", lab.ns("h2"), "route", "del", lab.pod("h2")["ip"] + "/32"],
                                  "Wire each pod"),
        "pod-default-route": lambda lab: ("h2", ["ip", "-n", lab.pod("h2")["name"], "route", "del", "default"],
                                          "Wire each pod"),
        "iptables-chain-flushed": lambda lab: ("h2", ["ip", "netns", "exec", lab.ns("h2"), "iptables", "-w", "-F",
                                                      "PODNET-FORWARD"], "forward, policy and encapsulation-guard chains"),
    },
}


@SLOW
@pytest.mark.parametrize("round_", sorted(DRIFTS))
def test_drift_is_repaired_and_reported(vx2, round_):
    at_ref(vx2)
    saved = dict((name, open(os.path.join(vx2.state_dir, name)).read()) for name in sorted(os.listdir(vx2.state_dir)))
    drifts = dict((name, make(vx2)) for name, make in DRIFTS[round_].items())
    for name, (host, argv, _task) in sorted(drifts.items()):
        sh(*argv)
    assert vx2.state() != vx2.ref, "the drift is not visible"
    repair = vx2.converge("vxlan")
    changed = changed_tasks(repair)
    report = "changed: %s\n%s" % (sorted(changed), repair.stdout[-4000:])
    for name, (host, argv, words) in sorted(drifts.items()):
        assert any(h == host and words in task for task, h in changed), "%s not reported: %s" % (name, report)
    assert set(h for task, h in changed) == set(host for host, argv, words in drifts.values()), report
    assert_same(vx2.state(), vx2.ref, "repairing " + round_)
    # What teardown will restore is still the value from before podnet, not the drift's.
    assert dict((name, open(os.path.join(vx2.state_dir, name)).read())
                for name in sorted(os.listdir(vx2.state_dir))) == saved
    vx2.assert_reach()
    again = vx2.converge("vxlan")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]


def _recreate(lab, mac):
    node_ip = lab.nodes["h1"][0]
    argv = ["ip", "-n", lab.ns("h1"), "link", "add", "vxlan0"]
    if mac:
        argv += ["address", validate.vtep_mac(node_ip)]
    sh(*(argv + ["type", "vxlan", "id", "100", "dstport", "4789", "local", node_ip, "dev", "eth0", "nolearning"]))
    sh("ip", "-n", lab.ns("h1"), "link", "set", "vxlan0", "up")


RECREATE = {
    "deleted": lambda lab: None,
    "recreated-with-podnet-mac": lambda lab: _recreate(lab, True),
    "recreated-with-a-new-mac": lambda lab: _recreate(lab, False),
}


@SLOW
@pytest.mark.parametrize("how", sorted(RECREATE))
def test_a_recreated_vxlan_device_keeps_its_vtep_mac(vx2, how):
    at_ref(vx2)
    sh("ip", "-n", vx2.ns("h1"), "link", "del", "vxlan0")
    RECREATE[how](vx2)
    peer = vx2.node_state("h2")
    rerun = vx2.converge("vxlan", "--limit", "h1")
    assert list(changed_per_host(rerun)) == ["h1"] and changed_per_host(rerun)["h1"] > 0
    link = next(l for l in ipj(vx2.ns("h1"), "link", "show") if l["ifname"] == "vxlan0")
    assert link["address"] == validate.vtep_mac(vx2.nodes["h1"][0])
    assert vx2.node_state("h2") == peer  # nothing ran on the peer...
    assert_same(vx2.state(), vx2.ref, "rerunning on the node with the recreated device")
    vx2.assert_reach()  # ...and its permanent ARP and FDB entries still hold


# -- three nodes across two subnets: unreachable, leaving and joining ---------------------------


@pytest.fixture(scope="module")
def vx3(tmp_path_factory):
    with built(tmp_path_factory, "faults-vx3", "fb", THREE) as lab:
        yield lab


def fresh(lab):
    """Back to the lab as built, every node in the inventory."""
    lab.rewrite()
    if lab.state() != lab.pristine:
        lab.play("playbooks/teardown.yml")
    assert_same(lab.state(), lab.pristine, "teardown")


@SLOW
@pytest.mark.parametrize("bad", ["host-gw-across-subnets", "wrong-node-iface"])
def test_bad_input_still_stops_every_node_when_one_is_unreachable(vx3, bad):
    """The unreachable node drops out, but what the others' underlay refuses stops them all."""
    fresh(vx3)
    changes = dict(h3=dict(ansible_host=vx3.prefix + "gone"))
    extra = ["-e", "mode=vxlan"]
    if bad == "host-gw-across-subnets":
        extra = ["-e", "mode=host-gw"]  # h3 (10.57.5.30) is not on-link for h1 and h2, facts or not
        message = "host-gw needs every node on one L2 segment, but peer(s) h3"
    else:
        changes["h2"] = dict(node_iface="eth9")
        message = "host h2: node_iface: eth9 does not hold node_ip 10.57.4.21"
    vx3.rewrite(**changes)
    run = vx3.play("site.yml", *extra, check=False)
    # 4: a host was unreachable (Ansible's status for that wins over 2, failed).
    assert run.returncode == 4 and message in run.stdout, run.stdout[-4000:]
    assert "fatal: [h3]: UNREACHABLE!" in run.stdout
    # The check runs once for the cluster: it fails on one node and the play stops for all.
    assert "TASK [podnet.fabric.node :" not in run.stdout, run.stdout[-4000:]
    assert [recap(run, host)["changed"] for host in ("h1", "h2")] == ["0", "0"]
    assert_same(vx3.state(), vx3.pristine, "a refused run")


@SLOW
def test_an_unreachable_node_is_named_and_the_others_converge(vx3):
    fresh(vx3)
    gone = vx3.prefix + "gone"
    vx3.rewrite(h3=dict(ansible_host=gone))
    run = vx3.play("site.yml", "-e", "mode=vxlan", check=False)
    assert run.returncode == 4, run.stdout[-4000:]  # 4: some host unreachable
    assert "fatal: [h3]: UNREACHABLE!" in run.stdout
    assert gone in run.stdout and "does not exist" in run.stdout
    assert recap(run, "h3")["unreachable"] == "1"
    for host in ("h1", "h2"):
        assert recap(run, host)["failed"] == "0" and int(recap(run, host)["changed"]) > 0, run.stdout[-4000:]
    assert vx3.node_state("h3") == dict([(vx3.ns("h3"), vx3.pristine[vx3.ns("h3")])])
    vx3.assert_reach("h1", "h2")
    # The others planned h3 from the inventory: route, FDB and neighbour entries for it are there.
    h1 = vx3.node_state("h1")[vx3.ns("h1")]
    mac = validate.vtep_mac("10.57.5.30")
    assert [r for r in h1["routes"] if r[1] == "192.168.12.0/24"] == [
        ("main", "192.168.12.0/24", "192.168.12.1", "vxlan0", "150", ("onlink",))]
    assert (mac, "vxlan0", "10.57.5.30", "permanent") in h1["fdb"]
    assert ("192.168.12.1", "vxlan0", mac) in h1["neigh"]
    others = vx3.node_state("h1", "h2")
    # h3 comes back: only h3 has anything to do, and every pod reaches every pod.
    vx3.rewrite()
    back = vx3.converge("vxlan")
    assert changed_per_host(back)["h1"] == 0 and changed_per_host(back)["h2"] == 0, back.stdout[-4000:]
    assert changed_per_host(back)["h3"] > 0
    assert vx3.node_state("h1", "h2") == others
    vx3.verify("vxlan")


@SLOW
def test_a_node_leaving_is_purged_from_the_others_and_a_node_joining_is_learnt(vx3):
    vx3.rewrite()
    converged(vx3, "vxlan")
    full = vx3.state()
    assert vx3.pointing_at("h3", "h1", "h2")
    # Retire h3: take podnet away from it (on it alone), then out of the inventory.
    vx3.play("playbooks/teardown.yml", "--limit", "h3")
    assert vx3.node_state("h3") == dict([(vx3.ns("h3"), vx3.pristine[vx3.ns("h3")])])
    vx3.rewrite(drop=["h3"])
    purge = vx3.converge("vxlan")
    assert sorted(changed_per_host(purge)) == ["h1", "h2"] and min(changed_per_host(purge).values()) > 0
    assert vx3.pointing_at("h3", "h1", "h2") == []
    again = vx3.converge("vxlan")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    vx3.assert_reach("h1", "h2")
    # h3 joins, as a new node: the others learn it, and it them.
    vx3.rewrite()
    join = vx3.converge("vxlan")
    assert min(changed_per_host(join).values()) > 0
    assert_same(vx3.state(), full, "h3 joining")
    vx3.verify("vxlan")
