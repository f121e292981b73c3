"""podnet's per-node lock (podnet.fabric.node_lock, roles/lock) on a lab of three nodes.

* the module itself: taken once per run (idempotent), check mode, diff, given back, another run's
  lock left alone, force;
* a lock held by a run of another controller stops site.yml at once with one message naming the
  node and the holder, changing nothing; a lock whose lease ran out or whose holder (on this
  controller) is gone is taken over, with a warning;
* acceptance (issue 11): two site.yml runs at once (vxlan and host-gw) and a teardown, while another
  writer inserts and deletes its own rules at the top of INPUT and FORWARD in every node and a
  user's FORWARD rule was set beforehand: every rule of the other writer it did not remove itself
  is still there, each run succeeds or stops with the lock message, and a final converge verifies
  and a rerun changes nothing.

One lab (three nodes in one subnet, so host-gw works between all) for the whole file.
"""

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import ROOT, VENV_BIN, sh
from test_site import PLAYBOOK, Lab, assert_same, changed_per_host

SLOW = pytest.mark.timeout(2400)
NODES = [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24"), ("10.57.4.22", "192.168.12.0/24")]
USER_RULE = "-A FORWARD -s 172.30.0.0/24 -j ACCEPT"
LOCK_MESSAGE = "is locked by another podnet run"


def env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lock"), "lk", NODES)
    try:
        lab.up()
        lab.pristine = lab.state()
        yield lab
    finally:
        lab.down()


def lock_file(lab, host):
    return os.path.join(lab.state_dir, "%s.lock" % host)


def foreign(lab, node, expires, **holder):
    """Write the lock of a run on another controller into ``node``'s lock file."""
    data = dict(run="ops-box/other/4242/1.0", host="ops-box", user="alice", pid=4242, started=time.time() - 60,
                playbook="ansible-playbook site.yml", controller="another-controller", acquired=time.time() - 60,
                expires=expires, lease=3600)
    data.update(holder)
    os.makedirs(lab.state_dir, exist_ok=True)
    with open(lock_file(lab, node), "w") as handle:
        json.dump(data, handle)
    return data


def no_locks(lab):
    return not [n for n in os.listdir(lab.state_dir) if n.endswith(".lock")] if os.path.isdir(lab.state_dir) else True


def clean(lab):
    """The lab as built: no podnet, no lock."""
    for host in lab.hosts:
        if os.path.exists(lock_file(lab, host)):
            os.unlink(lock_file(lab, host))
    if lab.state() != lab.pristine:
        lab.play("playbooks/teardown.yml")
    assert_same(lab.state(), lab.pristine)


# -- the module ------------------------------------------------------------------------------

MODULE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: check mode takes nothing
      podnet.fabric.node_lock: {path: "%(path)s"}
      check_mode: true
      diff: true
      register: checked
    - ansible.builtin.stat: {path: "%(path)s"}
      register: after_check
    - name: take
      podnet.fabric.node_lock: {path: "%(path)s"}
      diff: true
      register: taken
    - name: again, in the same run
      podnet.fabric.node_lock: {path: "%(path)s"}
      register: again
    - name: give back in check mode
      podnet.fabric.node_lock: {path: "%(path)s", state: absent}
      check_mode: true
      register: give_checked
    - ansible.builtin.stat: {path: "%(path)s"}
      register: after_give_check
    - name: give back
      podnet.fabric.node_lock: {path: "%(path)s", state: absent}
      register: given
    - name: give back again
      podnet.fabric.node_lock: {path: "%(path)s", state: absent}
      register: given_again
    - ansible.builtin.copy:
        dest: "%(path)s"
        content: '{"run": "elsewhere", "user": "alice", "host": "ops-box", "pid": 4242, "expires": 9999999999}'
        mode: "0644"
    - name: another run's lock is left alone
      podnet.fabric.node_lock: {path: "%(path)s", state: absent}
      register: left
    - name: another run's lock, not waited for (timeout 0)
      podnet.fabric.node_lock: {path: "%(path)s"}
      register: refused
      ignore_errors: true
    - name: force
      podnet.fabric.node_lock: {path: "%(path)s", state: absent, force: true}
      register: forced
    - name: a relative path is refused
      podnet.fabric.node_lock: {path: "relative.lock"}
      register: relative
      ignore_errors: true
    - ansible.builtin.copy:
        dest: "%(out)s"
        content: "{{ dict(checked=checked, after_check=after_check.stat.exists, taken=taken, again=again,
                  give_checked=give_checked, after_give_check=after_give_check.stat.exists, given=given,
                  given_again=given_again, left=left, refused=refused, forced=forced,
                  relative=relative) | to_json }}"
        mode: "0644"
"""


def local_play(tmp_path, text, out):
    """Run the playbook ``text`` on localhost; what it wrote to ``out`` (JSON)."""
    (tmp_path / "play.yml").write_text(text)
    proc = subprocess.run([PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                           "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"), str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env(), cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    with open(out) as handle:
        return json.load(handle)


def test_the_module_takes_once_per_run_gives_back_and_leaves_others_alone(tmp_path):
    path, out = str(tmp_path / "state" / "n1.lock"), str(tmp_path / "out.json")
    r = local_play(tmp_path, MODULE_PLAY % dict(path=path, out=out), out)
    assert r["checked"]["changed"] and not r["after_check"]
    assert r["checked"]["diff"]["before"] == {} and r["checked"]["diff"]["after"]["user"]
    assert r["taken"]["changed"] and r["taken"]["lock"]["pid"] > 0 and r["taken"]["lock"]["playbook"].endswith("play.yml")
    assert r["taken"]["diff"]["after"] == r["taken"]["lock"]
    assert not r["again"]["changed"] and r["again"]["lock"] == r["taken"]["lock"]
    assert r["give_checked"]["changed"] and r["after_give_check"]
    assert r["given"]["changed"] and r["given"]["lock"] == {}
    assert not r["given_again"]["changed"]
    assert not r["left"]["changed"] and r["left"]["lock_holder"]["user"] == "alice"
    assert any("held by another run" in w for w in r["left"]["warnings"])
    assert r["refused"]["failed"] and LOCK_MESSAGE in r["refused"]["msg"] and "alice" in r["refused"]["msg"]
    assert "node localhost" in r["refused"]["msg"] and "ops-box" in r["refused"]["msg"]
    assert r["forced"]["changed"] and not os.path.exists(path)
    assert r["relative"]["failed"] and "not an absolute file path" in r["relative"]["msg"]


RECORD_PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    rec: {version: 1, node: n1, devices: [], chains: [], pods: [], sysctls: {file: "%(dir)s/n1-sysctl.json", keys: []}}
  tasks:
    - name: take
      podnet.fabric.node_lock: {path: "%(path)s"}
    - name: record, and give the lock back, in check mode
      podnet.fabric.node_record: {path: "%(dir)s/n1-record.json", record: "{{ rec }}", lock: {path: "%(path)s"}}
      check_mode: true
      register: checked
    - ansible.builtin.stat: {path: "%(path)s"}
      register: after_check
    - name: record, and give the lock back
      podnet.fabric.node_record: {path: "%(dir)s/n1-record.json", record: "{{ rec }}", lock: {path: "%(path)s"}}
      register: recorded
    - ansible.builtin.stat: {path: "%(path)s"}
      register: after_record
    - name: again, no lock left
      podnet.fabric.node_record: {path: "%(dir)s/n1-record.json", record: "{{ rec }}", lock: {path: "%(path)s"}}
      register: again
    - ansible.builtin.copy:
        dest: "%(path)s"
        content: '{"run": "elsewhere", "user": "alice", "host": "ops-box", "pid": 4242, "expires": 9999999999}'
        mode: "0644"
    - name: another run's lock is left alone (the record forgotten)
      podnet.fabric.node_record: {path: "%(dir)s/n1-record.json", state: absent, lock: {path: "%(path)s"}}
      register: left
    - ansible.builtin.copy:
        dest: "%(out)s"
        content: "{{ dict(checked=checked, after_check=after_check.stat.exists, recorded=recorded,
                  after_record=after_record.stat.exists, again=again, left=left) | to_json }}"
        mode: "0644"
"""


def test_the_record_gives_this_runs_lock_back_and_leaves_another_runs(tmp_path):
    state = tmp_path / "state"
    path, out = str(state / "n1.lock"), str(tmp_path / "out.json")
    r = local_play(tmp_path, RECORD_PLAY % dict(path=path, dir=str(state), out=out), out)
    assert r["checked"]["changed"] and r["checked"]["lock_released"] and r["after_check"]   # check mode: kept
    assert r["recorded"]["changed"] and r["recorded"]["lock_released"] and not r["after_record"]
    assert not r["again"]["changed"] and not r["again"]["lock_released"]               # lock bookkeeping is no change
    assert r["left"]["changed"] and not r["left"]["lock_released"] and r["left"]["lock_holder"]["user"] == "alice"
    assert any("held by another run" in w for w in r["left"]["warnings"]) and os.path.exists(path)
    assert not os.path.exists(str(state / "n1-record.json"))


# -- site.yml and a lock it finds ------------------------------------------------------------


@SLOW
def test_a_lock_of_another_controller_stops_the_run_with_one_message(lab):
    clean(lab)
    held = foreign(lab, "h1", expires=time.time() + 3600)
    run = lab.play("site.yml", "-e", "mode=vxlan", "-e", "podnet_lock_timeout=2", check=False)
    assert run.returncode != 0
    messages = [line for line in run.stdout.splitlines() if "fatal:" in line or LOCK_MESSAGE in line]
    fatal = [line for line in run.stdout.splitlines() if line.startswith("fatal:")]
    assert len(fatal) == 1 and fatal[0].startswith("fatal: [h1]"), "\n".join(messages) + run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    for part in ("node h1 " + LOCK_MESSAGE, "ansible-playbook site.yml by alice on ops-box", "pid 4242",
                 "Waited 2 s"):
        assert part in text, (part, run.stdout[-3000:])
    # The run stopped before reading any node: nothing changed, h1 still alice's, no other lock taken.
    assert_same(lab.state(), lab.pristine, "a run that found a node locked")
    with open(lock_file(lab, "h1")) as handle:
        assert json.load(handle) == held
    os.unlink(lock_file(lab, "h1"))
    assert no_locks(lab)


@SLOW
def test_a_stale_lock_is_taken_over_with_a_warning(lab):
    clean(lab)
    # h1: a run of another controller whose lease ran out; h2: a run of this controller that is gone.
    foreign(lab, "h1", expires=time.time() - 1)
    proc = subprocess.Popen(["true"])
    proc.wait()
    boot_id = open("/proc/sys/kernel/random/boot_id").read().strip()
    here = "%s %s" % (boot_id, os.readlink("/proc/self/ns/pid"))
    foreign(lab, "h2", expires=time.time() + 3600, controller=here, pid=proc.pid, user="bob", host="this-box")
    run = lab.converge("vxlan")
    text = " ".join((run.stdout + run.stderr).split())   # warnings go to stderr
    assert "took over the stale lock %s: its lease ran out" % lock_file(lab, "h1") in text, text[-3000:]
    assert "took over the stale lock %s: its holder" % lock_file(lab, "h2") in text
    assert "by bob on this-box (pid %d" % proc.pid in text
    assert no_locks(lab)


# -- acceptance: two runs at once and a teardown, with another iptables writer ------------------


class Writer(object):
    """Another iptables writer (as docker, kube-proxy, firewalld): in every node namespace it keeps
    inserting its own rules at the top of INPUT and FORWARD and deleting some of them (by spec),
    and remembers which of its rules must still be there."""

    def __init__(self, namespaces):
        self.namespaces = namespaces
        self.kept = dict((ns, []) for ns in namespaces)
        self.removed = 0
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def iptables(self, ns, *args):
        proc = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-w"] + list(args),
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            self.errors.append("%s: iptables %s: %s" % (ns, " ".join(args), proc.stderr.strip()))
        return proc.returncode == 0

    def run(self):
        count = 0
        while not self.stop.is_set():
            count += 1
            for ns in self.namespaces:
                for chain in ("INPUT", "FORWARD"):
                    spec = ["-s", "172.31.%d.%d/32" % (count // 250, count % 250 + 1), "-m", "comment",
                            "--comment", "other-writer", "-j", "ACCEPT"]
                    if self.iptables(ns, "-I", chain, "1", *spec):
                        self.kept[ns].append((chain, spec))
                # Every third round, one of its own older rules goes again (by its spec).
                if count % 3 == 0 and len(self.kept[ns]) > 4:
                    chain, spec = self.kept[ns].pop(1)
                    if self.iptables(ns, "-D", chain, *spec):
                        self.removed += 1
                    else:
                        self.kept[ns].insert(1, (chain, spec))
            self.stop.wait(0.3)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def missing(self):
        """The writer's rules that are no longer there (it did not remove them itself)."""
        lost = []
        for ns, rules in self.kept.items():
            live = sh("iptables", "-S", ns=ns).splitlines()
            for chain, spec in rules:
                address = spec[1]
                if not any(l.startswith("-A %s -s %s " % (chain, address)) and "other-writer" in l for l in live):
                    lost.append((ns, chain, address))
        return lost


class Run(object):
    """An ansible-playbook run in the background; its output lines go, in the order they come, into
    ``events`` shared by the runs started together (so the test can tell which came first)."""

    def __init__(self, lab, events, name, playbook, *extra):
        self.name, self.events, self.lines = name, events, []
        self.proc = subprocess.Popen([PLAYBOOK, "-i", lab.inventory, os.path.join(ROOT, playbook)] + list(extra),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=dict(env(), PYTHONUNBUFFERED="1"), cwd=ROOT)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            with self.events["lock"]:
                self.events["log"].append((self.name, line))

    def output(self):
        """Wait for the run to end; everything it printed."""
        self.reader.join()
        self.proc.wait()
        return "".join(self.lines)

    @property
    def returncode(self):
        return self.proc.returncode


# The part of a run that changes nodes: from the node role's first task to the task that gives the
# lock back (printed before it runs; on code without the lock, the run's recap).
CHANGES_FROM = "TASK [podnet.fabric.node :"
CHANGES_TO = ("TASK [podnet.fabric.lock : Give this run's lock on the node back]", "PLAY RECAP")


def changing(events, name):
    """(first, last) positions in the shared log of run ``name``'s node-changing part, or None."""
    lines = [(i, line) for i, (run, line) in enumerate(events["log"]) if run == name]
    first = next((i for i, line in lines if line.startswith(CHANGES_FROM)), None)
    if first is None:
        return None
    last = next((i for i, line in lines if i > first and line.startswith(CHANGES_TO)), None)
    return first, last


def outcome(proc, other, what):
    """Wait for ``proc``; it succeeded, or stopped with the lock message naming a node and ``other``."""
    out = proc.output()
    if proc.returncode == 0:
        return "ok", out
    text = " ".join(out.split())
    fatal = [l for l in out.splitlines() if l.startswith("fatal:")]
    assert LOCK_MESSAGE in text, "%s failed otherwise than with the lock message:\n%s" % (what, out[-5000:])
    assert len(fatal) >= 1 and all("[h" in f for f in fatal), out[-3000:]
    node = fatal[0].split("[", 1)[1].split("]", 1)[0]
    assert "node %s %s" % (node, LOCK_MESSAGE) in text, out[-3000:]
    assert "(pid %d, started" % other.pid in text, "the message does not name the holder:\n" + out[-3000:]
    assert "ansible-playbook" in text and "site.yml" in text
    return "locked", out


@SLOW
def test_two_runs_at_once_and_a_teardown_with_another_writer(lab):
    clean(lab)
    for ns in lab.namespaces:
        sh("iptables", "-w", *USER_RULE.split(), ns=ns)
    try:
        with Writer(lab.namespaces) as writer:
            # One run waits long enough for the other, the other hardly at all: each either succeeds
            # (after waiting its turn) or stops with the lock message naming the node and the holder.
            events = dict(lock=threading.Lock(), log=[])
            vxlan = Run(lab, events, "vxlan", "site.yml", "-e", "mode=vxlan", "-e", "podnet_lock_timeout=1800")
            host_gw = Run(lab, events, "host-gw", "site.yml", "-e", "mode=host-gw", "-e", "podnet_lock_timeout=3")
            results = [outcome(vxlan, host_gw, "the vxlan run"), outcome(host_gw, vxlan, "the host-gw run")]
            assert "ok" in [r[0] for r in results], "neither run succeeded"
            # One run at a time changed the nodes: the parts of the two runs that change nodes follow
            # each other in the output, they never interleave.
            parts = [p for p in (changing(events, "vxlan"), changing(events, "host-gw")) if p]
            if len(parts) == 2:
                (a, b), (c, d) = sorted(parts)
                assert b is not None and b < c, "the two runs changed the nodes at the same time: %s" % parts
            assert no_locks(lab)
            # A teardown while the writer goes on.
            lab.play("playbooks/teardown.yml")
            assert no_locks(lab)
            while writer.removed < 3:   # the writer removed some of its own rules during all that
                time.sleep(0.3)
        assert not writer.errors, writer.errors[:5]
        assert not writer.missing(), "rules of the other writer lost: %s" % writer.missing()
        for ns in lab.namespaces:
            assert USER_RULE in sh("iptables", "-S", "FORWARD", ns=ns).splitlines(), ns
        # The final converge verifies; a rerun changes nothing; the writer's and the user's rules stay.
        lab.converge("vxlan")
        assert "vxlan on the wire" in lab.verify("vxlan").stdout
        again = lab.converge("vxlan")
        assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
        assert not writer.missing(), "rules of the other writer lost: %s" % writer.missing()
        for ns in lab.namespaces:
            assert USER_RULE in sh("iptables", "-S", "FORWARD", ns=ns).splitlines(), ns
    finally:
        for ns in lab.namespaces:
            sh("iptables", "-w", "-F", "INPUT", ns=ns)
            sh("iptables", "-w", "-F", "FORWARD", ns=ns)
