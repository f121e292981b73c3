"""The lab against a real kernel: playbooks/lab.yml, podnet.fabric.lab_topology and the netns connection.

Every lab here is built from a temporary inventory whose node, pod, switch and router namespaces
carry this run's prefix (the ``namespaces`` fixture), so the real lab (host1, podnet-sw-..., podnet-rt)
is never touched, and everything is removed afterwards, also when a test fails.  Traffic only flows
between the lab's own namespaces.
"""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import ROOT, RUN_ID, VENV_BIN, ipj, sh

PLAYBOOK = os.path.join(ROOT, "playbooks", "lab.yml")
# Two nodes share 10.57.4.0/24 (one switch); a third sits in 10.57.5.0/24 behind the router.
NODES = (("n1", "10.57.4.20"), ("n2", "10.57.4.21"), ("n3", "10.57.5.20"))


def _env():
    return dict(os.environ,
                ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                ANSIBLE_STDOUT_CALLBACK="result_json",
                ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "tests", "integration", "callback_plugins"),
                ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                ANSIBLE_NOCOLOR="1",
                PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))


def _results(proc, argv):
    results = []
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            host, text = line.split(" ", 2)[1:]
            results.append((host, json.loads(text)))
    if not results:
        raise AssertionError("no result from %s\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), proc.stdout, proc.stderr))
    return results


class Lab(object):
    """A lab of three nodes (and one pod on n1) described by a temporary inventory."""

    def __init__(self, namespaces, tmp_path):
        self.prefix = "pnt%s%s" % (RUN_ID, namespaces.tag)
        self.ns = dict((host, namespaces.name(host)) for host, ip in NODES)
        self.ip = dict(NODES)
        self.pod = namespaces.name("pod")
        self.switch_prefix = namespaces.name("sw")
        self.router = namespaces.name("rt")
        self.switches = ["%s-10.57.4.0-24" % self.switch_prefix, "%s-10.57.5.0-24" % self.switch_prefix]
        self.tmp_path = tmp_path
        self.inventory = self.write(NODES)

    def write(self, nodes, name="hosts.yml"):
        hosts = {}
        for host, ip in nodes:
            hosts[host] = dict(ansible_host=self.ns[host], node_ip=ip)
        hosts["n1"]["pods"] = [dict(name=self.pod, ip="192.168.10.10")]
        inventory = dict(nodes=dict(hosts=hosts, vars=dict(
            ansible_connection="podnet.fabric.netns",
            ansible_python_interpreter="{{ ansible_playbook_python }}",
            podnet_lab_prefixlen=24)))
        path = self.tmp_path / name
        path.write_text(json.dumps(inventory, indent=2))   # JSON is YAML
        return str(path)

    def names(self):
        return sorted(list(self.ns.values()) + self.switches + [self.router])

    def playbook(self, state="present", check=False, diff=False, inventory=None):
        """Run playbooks/lab.yml; return the lab_topology task's result."""
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory or self.inventory, PLAYBOOK,
                "-e", "lab_state=%s" % state, "-e", "lab_switch_prefix=%s" % self.switch_prefix,
                "-e", "lab_router=%s" % self.router]
        argv += ["--check"] if check else []
        argv += ["--diff"] if diff else []
        proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=ROOT, check=False)
        result = [r for host, r in _results(proc, argv) if "commands" in r or r.get("failed")][-1]
        assert proc.returncode == (2 if result.get("failed") else 0), proc.stdout + proc.stderr
        return result

    def adhoc(self, host, module, args="", inventory=None, extra=()):
        """``ansible HOST -m MODULE`` through the inventory (the netns connection)."""
        argv = [os.path.join(VENV_BIN, "ansible"), "-i", inventory or self.inventory, host, "-m", module]
        argv += (["-a", args] if args else []) + list(extra)
        proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=ROOT, check=False)
        return _results(proc, argv)[-1][1]

    def ping(self, src, dst_ip, deadline=5):
        """Ping from node ``src``'s namespace to a node IP until one reply or ``deadline`` seconds.

        Returns the reply's TTL or None.  Right after a repair the path may need a moment: a veth
        made again turns its carrier on through linkwatch (up to a second later), and a peer whose
        neighbour entry went FAILED while the link was gone answers "Destination Host Unreachable"
        at once until it probes again.  One packet is not a fair test of reachability.
        """
        end = time.monotonic() + deadline
        while True:
            proc = subprocess.run(["ip", "netns", "exec", self.ns[src], "ping", "-n", "-c", "1", "-W", "1", dst_ip],
                                  capture_output=True, text=True, check=False)
            found = re.search(r"ttl=(\d+)", proc.stdout)
            if proc.returncode == 0 and found:
                return int(found.group(1))
            if time.monotonic() >= end:
                return None
            time.sleep(0.2)


def existing(prefix):
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix)) if os.path.isdir("/run/netns") else []


@pytest.fixture
def lab(namespaces, tmp_path):
    # Everything the lab creates is named with the namespaces fixture's prefix, so its cleanup
    # removes the whole lab (pods, nodes, switches, router), also when the test fails.
    return Lab(namespaces, tmp_path)


def test_lab_up_reachable_idempotent_down(lab):
    prefix = lab.prefix
    check = lab.playbook(check=True, diff=True)
    assert check["changed"] and check["diff"]["before"] == {"namespaces": {}}
    assert existing(prefix) == [], "check mode created namespaces"

    started = time.monotonic()
    first = lab.playbook(diff=True)
    up = time.monotonic() - started
    assert first["changed"], first
    assert existing(prefix) == lab.names()
    # Nothing ran in the namespace the module ran in (the root one): every ip command names a lab
    # namespace, sysctl runs inside one, and only `ip netns add` stands alone.
    for argv in first["commands"]:
        assert ("-n" in argv[1:3]) or argv[1:3] == ["netns", "add"] or argv[1:3] == ["netns", "exec"], argv

    # One switch: direct (TTL 64). Between subnets: through the router (one hop, TTL 63).
    assert lab.ping("n1", "10.57.4.21") == 64
    assert lab.ping("n2", "10.57.4.20") == 64
    assert lab.ping("n1", "10.57.5.20") == 63
    assert lab.ping("n3", "10.57.4.21") == 63
    # Host-gw style routing to a node of the other subnet cannot work: it is not on n1's link.
    sh("ip", "-n", lab.ns["n1"], "route", "add", "10.99.0.1/32", "via", "10.57.5.20", "dev", "eth0", "onlink")
    assert lab.ping("n1", "10.99.0.1", deadline=2) is None

    sw4 = lab.switches[0]
    bridge = [link for link in ipj(sw4, "-details", "link", "show") if link["ifname"] == "br0"][0]
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert sorted(link["ifname"] for link in ipj(sw4, "link", "show", "master", "br0")) == ["p-20", "p-21", "p-254"]
    assert ipj(lab.ns["n3"], "route", "show", "default")[0]["gateway"] == "10.57.5.254"
    assert sh("sysctl", "-n", "net.ipv4.ip_forward", ns=lab.router).strip() == "1"
    for name in lab.names():
        assert sh("sysctl", "-n", "net.ipv6.conf.all.disable_ipv6", ns=name).strip() == "1"

    again = lab.playbook(diff=True)
    assert not again["changed"] and again["commands"] == [], again
    assert again["diff"]["before"] == again["diff"]["after"] == first["diff"]["after"]
    assert not lab.playbook(check=True)["changed"]

    # A pod namespace podnet made in the lab goes with the lab.
    sh("ip", "netns", "add", lab.pod)
    started = time.monotonic()
    gone = lab.playbook("absent", diff=True)
    down = time.monotonic() - started
    assert gone["changed"] and lab.pod in gone["diff"]["before"]["namespaces"]
    assert existing(prefix) == []
    assert not lab.playbook("absent")["changed"]
    print("\nlab up %.1f s, lab down %.1f s (3 nodes, 2 switches, 1 router)" % (up, down))


def test_netns_connection_runs_inside_the_node(lab):
    lab.playbook()
    result = lab.adhoc("n1", "ansible.builtin.command", "ip -br addr")
    lines = dict((line.split()[0].split("@")[0], line.split()[1:]) for line in result["stdout"].splitlines())
    assert sorted(lines) == ["eth0", "lo"], result
    assert lines["eth0"][-1] == "10.57.4.20/24"

    facts = lab.adhoc("n3", "ansible.builtin.setup",
                      "filter=ansible_interfaces,ansible_default_ipv4,ansible_all_ipv4_addresses")["ansible_facts"]
    assert sorted(facts["ansible_interfaces"]) == ["eth0", "lo"]
    assert facts["ansible_all_ipv4_addresses"] == ["10.57.5.20"]
    assert facts["ansible_default_ipv4"]["gateway"] == "10.57.5.254"

    # ansible_netns_name wins over ansible_host; a namespace that does not exist is unreachable.
    other = lab.adhoc("n1", "ansible.builtin.command", "ip -br addr show dev eth0",
                      extra=["-e", "ansible_netns_name=%s" % lab.ns["n2"]])
    assert "10.57.4.21/24" in other["stdout"], other
    missing = lab.adhoc("all", "ansible.builtin.ping", inventory="%s-missing," % lab.ns["n1"],
                        extra=["-c", "podnet.fabric.netns"])
    assert missing.get("unreachable") and "does not exist" in missing["msg"], missing


def test_repair_and_nodes_leaving(lab):
    lab.playbook()
    n1 = lab.ns["n1"]
    sh("ip", "-n", n1, "link", "del", "eth0")
    sh("ip", "-n", lab.switches[0], "link", "set", "p-21", "nomaster")
    assert lab.ping("n2", "10.57.4.20", deadline=2) is None
    fixed = lab.playbook()
    assert fixed["changed"]
    assert lab.ping("n2", "10.57.4.20") == 64 and lab.ping("n1", "10.57.5.20") == 63
    assert not lab.playbook()["changed"]

    # n3 leaves the inventory and n2 moves to .30: the second switch and its router leg go,
    # n2's port becomes p-30; n3's namespace is no longer the lab's and stays.
    moved = lab.write([("n1", "10.57.4.20"), ("n2", "10.57.4.30")], "moved.yml")
    result = lab.playbook(inventory=moved)
    assert result["changed"]
    prefix = lab.prefix
    assert lab.switches[1] not in existing(prefix) and lab.ns["n3"] in existing(prefix)
    assert sorted(link["ifname"] for link in ipj(lab.switches[0], "link", "show", "master", "br0")) == \
        ["p-20", "p-254", "p-30"]
    assert [link["ifname"] for link in ipj(lab.router, "link", "show") if link["ifname"] != "lo"] == ["sw-0a390400"]
    assert lab.ping("n1", "10.57.4.30") == 64
    assert not lab.playbook(inventory=moved)["changed"]


def test_bad_input_is_refused_before_anything_changes(module, lab):
    prefix = lab.prefix
    base = {"switch_prefix": lab.switch_prefix, "router": lab.router}
    cases = [
        ({"nodes": [{"name": lab.ns["n1"], "address": "10.57.4.20/24"},
                    {"name": lab.ns["n2"], "address": "10.57.4.20/24"}]}, "nodes[1].address: 10.57.4.20 is also"),
        ({"nodes": [{"name": lab.ns["n1"], "address": "10.57.4.254/24"}]}, "nodes[0].address: 10.57.4.254 is the lab router"),
        ({"nodes": [{"name": lab.ns["n1"], "iface": "x" * 16, "address": "10.57.4.20/24"}]}, "nodes[0].iface"),
        ({"nodes": [{"name": lab.ns["n1"], "address": "10.57.4.20/24"}], "netns": lab.ns["n2"]}, "netns: not supported"),
    ]
    for args, message in cases:
        result = module("lab_topology", dict(base, **args))
        assert result.failed and message in result["msg"], result
    assert existing(prefix) == []


def test_namespaces_survive_a_private_mount_namespace(module, namespaces, lab):
    # Under `ip netns exec` the module runs in a private mount namespace; the lab's namespaces
    # must still be usable from the root one afterwards (they are made in PID 1's).
    runner = namespaces.add("x")
    args = {"nodes": [{"name": lab.ns["n1"], "address": "10.57.4.20/24"},
                      {"name": lab.ns["n2"], "address": "10.57.4.21/24"}],
            "switch_prefix": lab.switch_prefix, "router": lab.router}
    result = module("lab_topology", args, ns=runner)
    assert result.changed, result
    assert any(argv[1].startswith("--mount=/proc/") for argv in result["commands"]), result["commands"]
    assert lab.ping("n1", "10.57.4.21") == 64
    assert not module("lab_topology", args, ns=runner).changed
    assert module("lab_topology", dict(args, state="absent"), ns=runner).changed
    assert [n for n in existing(lab.prefix) if n != runner] == []
