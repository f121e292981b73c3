"""Real-kernel test harness: throwaway network namespaces and modules run through Ansible.

Every namespace a test makes is named with this run's prefix and removed afterwards,
also when the test fails.  Tests never touch the root network namespace: modules run
under ``ip netns exec <scratch>`` (or with ``netns=``), as a user would run them.
"""

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
# Short, so that names built from it stay within limits; unique per test run.
RUN_ID = uuid.uuid4().hex[:5]
# Each run notes its pid here (RUN_ID -> pid), so a later run removes what a killed one left.
RUNS = "/run/podnet-test-runs"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_dead_runs():
    """The namespaces of earlier runs whose pytest is gone (killed with SIGKILL: no finaliser ran),
    with the processes still in them (BIRD, listeners); a run still going is left alone."""
    for run in os.listdir(RUNS):
        try:
            with open(os.path.join(RUNS, run)) as handle:
                pid = int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if _alive(pid):
            continue
        for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
            if name.startswith("pnt" + run):
                for proc in sh("ip", "netns", "pids", name, check=False).split():
                    try:
                        os.kill(int(proc), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                sh("ip", "netns", "del", name, check=False)
        os.unlink(os.path.join(RUNS, run))


def _stop_on_sigterm(signum, frame):
    # timeout(1), kill, a CI runner's cancel: like Ctrl-C, so pytest runs every finaliser
    # (namespaces, BIRD) before it exits.
    raise KeyboardInterrupt("SIGTERM")


def pytest_sessionstart(session):
    os.makedirs(RUNS, exist_ok=True)
    _sweep_dead_runs()
    with open(os.path.join(RUNS, RUN_ID), "w") as handle:
        handle.write("%d\n" % os.getpid())
    signal.signal(signal.SIGTERM, _stop_on_sigterm)


def pytest_sessionfinish(session, exitstatus):
    try:
        os.unlink(os.path.join(RUNS, RUN_ID))
    except OSError:
        pass


def sh(*argv, check=True, ns=None, input=None):
    """Run a command (argv), optionally inside namespace ``ns``; return stdout."""
    argv = [str(a) for a in argv]
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), proc.returncode, proc.stderr))
    return proc.stdout


def ipj(ns, *args):
    """``ip -json ARGS`` inside ``ns``, parsed, empty objects dropped."""
    out = sh("ip", "-n", ns, "-json", *args)
    return [o for o in json.loads(out or "[]") if o]


def snapshot(ns):
    """The state a podnet module could change in ``ns``, for before/after comparisons."""
    def links():
        result = []
        for link in ipj(ns, "-details", "link", "show"):
            # Counters and timers change on their own; keep identity and configuration.
            result.append({k: v for k, v in link.items() if k not in ("stats64", "operstate")})
        return result
    return dict(
        links=links(),
        addrs=ipj(ns, "addr", "show"),
        routes=ipj(ns, "route", "show", "table", "all"),
        neigh=[n for n in ipj(ns, "neigh", "show") if "PERMANENT" in n.get("state", [])],
        fdb=json.loads(sh("bridge", "-n", ns, "-json", "fdb", "show") or "[]"),
        netns=sorted(n for n in os.listdir("/run/netns") if n.startswith("pnt" + RUN_ID)),
    )


class Namespaces(object):
    """Creates uniquely named namespaces and removes them all at teardown."""

    def __init__(self, tag):
        self.tag = tag
        self.count = 0

    def name(self, label=""):
        self.count += 1
        return "pnt%s%s%d%s" % (RUN_ID, self.tag, self.count, label)

    def add(self, label=""):
        name = self.name(label)
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        # podnet is IPv4-only; IPv6 autoconfiguration (DAD) would make snapshots drift on their own.
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", ns=name)
        return name

    def cleanup(self):
        prefix = "pnt%s%s" % (RUN_ID, self.tag)
        for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
            if name.startswith(prefix):
                sh("ip", "netns", "del", name, check=False)
                if os.path.exists(os.path.join("/run/netns", name)):
                    os.unlink(os.path.join("/run/netns", name))


@pytest.fixture
def namespaces(request):
    spaces = Namespaces(uuid.uuid4().hex[:3])
    yield spaces
    spaces.cleanup()


@pytest.fixture
def node(namespaces):
    """A scratch 'node' namespace with an underlay veth (eth0, 10.57.4.20/24) up."""
    ns = namespaces.add("n")
    sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    sh("ip", "-n", ns, "addr", "add", "10.57.4.20/24", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "-n", ns, "link", "set", "peer0", "up")
    return settle(ns)


def settle(ns):
    """Wait until every up link has its carrier: the kernel's linkwatch sets a new veth's
    carrier (NO-CARRIER flag, operstate) asynchronously, which would make snapshots drift."""
    links = []
    for _attempt in range(100):
        links = ipj(ns, "link", "show")
        if all("NO-CARRIER" not in link["flags"] and link.get("operstate") in ("UP", "UNKNOWN")
               for link in links if "UP" in link["flags"]):
            return ns
        time.sleep(0.1)
    raise AssertionError("links in %s never got their carrier: %s" % (ns, links))


class ModuleResult(dict):
    @property
    def changed(self):
        return bool(self.get("changed"))

    @property
    def failed(self):
        return bool(self.get("failed"))


def run_module(module, args, ns=None, check=False, diff=False):
    """Run ``podnet.fabric.<module>`` through ``ansible`` (ad hoc), inside ``ns`` when given.

    Returns the module's result as a dict.
    """
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-c", "local", "-i", "localhost,",
            "-m", "podnet.fabric." + module, "-a", json.dumps(args)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    env = dict(os.environ,
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="result_json",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "tests", "integration", "callback_plugins"),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=os.path.join(VENV_BIN, "python"),
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    try:
        line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT localhost ")][-1]
        result = json.loads(line.split(" ", 2)[2])
    except (ValueError, IndexError):
        raise AssertionError("no JSON result from %s\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), proc.stdout, proc.stderr))
    return ModuleResult(result)


@pytest.fixture
def module():
    return run_module


def kernel_has(kind):
    """True when this kernel can create a link of ``kind`` (checked in a scratch namespace)."""
    name = "pntprobe%s%s" % (RUN_ID, kind)
    sh("ip", "netns", "add", name)
    try:
        proc = subprocess.run(["ip", "-n", name, "link", "add", "probe0", "type", kind],
                              capture_output=True, text=True, check=False)
        # An ipip/gre/sit device without endpoints has the key of the fallback device (tunl0, ...)
        # that loading the module creates in every namespace: EEXIST also means "has it".
        return proc.returncode == 0 or "File exists" in proc.stderr
    finally:
        sh("ip", "netns", "del", name, check=False)


def requires_ipip():
    """Skip (with the reason) when the kernel has no IPIP, unless PODNET_REQUIRE_IPIP=1.

    The qemu harness (tests/qemu) sets PODNET_REQUIRE_IPIP=1, so inside the VM a
    missing IPIP is a failure, never a skip.
    """
    if kernel_has("ipip"):
        return
    if os.environ.get("PODNET_REQUIRE_IPIP") == "1":
        pytest.fail("PODNET_REQUIRE_IPIP=1 but this kernel cannot create ipip links")
    pytest.skip("this kernel has no IPIP (CONFIG_NET_IPIP unset); `make test` runs these "
                "tests in the qemu VM of tests/qemu")
