"""site.yml, verify.yml and teardown.yml end to end on a lab of throwaway namespaces.

The lab is built from a temporary inventory whose node, pod, switch and router names carry
this run's prefix, so nothing here can collide with `make lab` or another run.
"""

import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import RUN_ID, ROOT, VENV_BIN, ipj, requires_ipip, sh

PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")


class Lab(object):
    def __init__(self, tmp_path, tag, nodes):
        self.prefix = "pnt%s%s" % (RUN_ID, tag)
        self.state_dir = str(tmp_path / "state")
        self.hosts = {}
        for index, (node_ip, pod_cidr) in enumerate(nodes):
            name = "h%d" % (index + 1)
            base = pod_cidr.rsplit(".", 2)[0]
            third = pod_cidr.split(".")[2]
            self.hosts[name] = dict(
                ansible_host=self.prefix + name, node_ip=node_ip, pod_cidr=pod_cidr,
                pods=[dict(name="%sp%d" % (self.prefix, index + 1), ip="%s.%s.10" % (base, third),
                           host_ifname="veth-p%d" % (index + 1))])
        inventory = dict(nodes=dict(hosts=self.hosts, vars=dict(
            ansible_connection="podnet.fabric.netns",
            ansible_python_interpreter=os.path.join(VENV_BIN, "python"),
            node_iface="eth0", podnet_lab_prefixlen=24, podnet_state_dir=self.state_dir,
            podnet_record_dir=self.state_dir)))
        self.lab_vars = ["-e", "lab_switch_prefix=%ssw" % self.prefix, "-e", "lab_router=%srt" % self.prefix]
        self.inventory = str(tmp_path / "inventory.yml")
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(inventory, handle)

    def play(self, playbook, *extra, check=True):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        argv = [PLAYBOOK, "-i", self.inventory, os.path.join(ROOT, playbook)] + list(extra)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s %s failed (%d):\n%s\n%s"
                                 % (playbook, " ".join(extra), proc.returncode, proc.stdout[-6000:], proc.stderr[-2000:]))
        return proc

    def up(self):
        self.play("playbooks/lab.yml", *self.lab_vars)

    def down(self):
        self.play("playbooks/lab.yml", "-e", "lab_state=absent", *self.lab_vars, check=False)
        for name in os.listdir("/run/netns"):
            if name.startswith(self.prefix):
                sh("ip", "netns", "del", name, check=False)

    @property
    def namespaces(self):
        return [h["ansible_host"] for h in self.hosts.values()]

    def converge(self, mode, *extra):
        return self.play("site.yml", "-e", "mode=%s" % mode, *extra)

    def verify(self, mode, *extra):
        return self.play("playbooks/verify.yml", "-e", "mode=%s" % mode, *extra)

    def state(self):
        """Everything podnet may change on every node, normalised (no ifindex, no random veth MACs)."""
        result = {}
        for ns in self.namespaces:
            links = []
            for link in ipj(ns, "-details", "link", "show"):
                kind = link.get("linkinfo", {}).get("info_kind")
                links.append((link["ifname"], kind, link["mtu"], "UP" in link["flags"],
                              link["address"] if kind != "veth" else None,
                              json.dumps(link.get("linkinfo", {}).get("info_data", {}), sort_keys=True)
                              if kind in ("vxlan", "ipip") else None))
            addrs = sorted((a["ifname"], i["local"], i["prefixlen"]) for a in ipj(ns, "addr", "show")
                           for i in a.get("addr_info", []))
            routes = sorted((r.get("table", "main"), r["dst"], r.get("gateway"), r.get("dev"), r.get("protocol"),
                             tuple(r.get("flags", []))) for r in ipj(ns, "route", "show", "table", "all"))
            neigh = sorted((n["dst"], n.get("dev"), n.get("lladdr")) for n in ipj(ns, "neigh", "show")
                           if "PERMANENT" in n.get("state", []))
            fdb = sorted((f["mac"], f.get("ifname"), f.get("dst"), f.get("state"))
                         for f in json.loads(sh("bridge", "-n", ns, "-json", "fdb", "show") or "[]")
                         if f.get("state") == "permanent" and "dst" in f)
            sysctl = sh("sysctl", "-n", "net.ipv4.ip_forward", ns=ns).strip()
            # Rules and chains with their policies, not counters. A table iptables-nft instantiated
            # empty (built-in chains at the default ACCEPT policy, no rule) is no state.
            iptables = sorted(l for l in (" ".join(l.split()[:2]) if l.startswith(":") else l
                                          for l in sh("iptables-save", ns=ns).splitlines())
                              if l and not l.startswith(("#", "*", "COMMIT"))
                              and l not in (":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT"))
            result[ns] = dict(links=sorted(links, key=str), addrs=addrs, routes=routes, neigh=neigh, fdb=fdb,
                              ip_forward=sysctl, iptables=iptables)
        return result


def changed_per_host(proc):
    return dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M))


def assert_same(now, before, what="teardown"):
    """Compare two Lab.state() results and name exactly what differs."""
    problems = []
    for ns in before:
        for key in before[ns]:
            if now[ns][key] != before[ns][key]:
                problems.append("%s %s: now %s, before %s" % (ns, key, now[ns][key], before[ns][key]))
    assert not problems, "%s left differences:\n%s" % (what, "\n".join(problems))


@pytest.fixture
def lab2(tmp_path):
    lab = Lab(tmp_path, "a", [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24")])
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


MODES = [("vxlan", []), ("vxlan", ["-e", "podnet_vxlan_fdb=flood"]), ("vxlan", ["-e", "podnet_vxlan_fdb=multicast"]),
         ("host-gw", [])]


# Each mode's state after a converge from scratch on lab2 (the same names and addresses every time
# lab2 is built): test_converge_verify_idempotent_teardown fills it, the mode switches compare with it.
FRESH = {}


def fresh_key(mode, extra):
    return mode + " ".join(extra)


@pytest.mark.parametrize("mode, extra", MODES, ids=["vxlan-static", "vxlan-flood", "vxlan-multicast", "host-gw"])
def test_converge_verify_idempotent_teardown(lab2, mode, extra):
    pristine = lab2.state()
    lab2.converge(mode, *extra)
    FRESH[fresh_key(mode, extra)] = lab2.state()
    verify = lab2.verify(mode, *extra)
    assert "on the wire" in verify.stdout
    again = lab2.converge(mode, *extra)
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    lab2.play("playbooks/teardown.yml")
    assert_same(lab2.state(), pristine)
    assert os.listdir(lab2.state_dir) == []


@pytest.mark.timeout(1800)   # up to 19 runs of site.yml, teardown.yml and verify.yml on a loaded 2-core machine
def test_mode_switches_leave_nothing_of_the_previous_mode(lab2):
    # Each mode fresh: from test_converge_verify_idempotent_teardown when it ran before (the whole
    # file), else converged and torn down here (this test alone).
    fresh = dict(FRESH)
    for mode, extra in MODES:
        if fresh_key(mode, extra) not in fresh:
            lab2.converge(mode, *extra)
            fresh[fresh_key(mode, extra)] = lab2.state()
            lab2.play("playbooks/teardown.yml")
    # Every order between the modes: each switch must look exactly like a fresh converge.
    order = [0, 3, 1, 3, 2, 0, 1, 2, 3, 0]
    for index in order:
        mode, extra = MODES[index]
        lab2.converge(mode, *extra)
        assert_same(lab2.state(), fresh[fresh_key(mode, extra)], "switching to %s %s" % (mode, extra))
    lab2.verify(*MODES[order[-1]][:1], *MODES[order[-1]][1])


def test_three_nodes_across_two_subnets(tmp_path):
    lab = Lab(tmp_path, "b", [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24"),
                              ("10.57.5.30", "192.168.12.0/24")])
    try:
        lab.up()
        pristine = lab.state()
        refused = lab.play("site.yml", "-e", "mode=host-gw", check=False)
        assert refused.returncode != 0
        assert "host-gw needs every node on one L2 segment" in refused.stdout
        assert_same(lab.state(), pristine, "a refused run")
        lab.converge("vxlan", "-e", "podnet_direct_routing=true")
        lab.verify("vxlan", "-e", "podnet_direct_routing=true")
        routes = ipj(lab.namespaces[0], "route", "show")
        via = dict((r["dst"], r.get("dev")) for r in routes)
        assert via["192.168.11.0/24"] == "eth0" and via["192.168.12.0/24"] == "vxlan0"
        lab.play("playbooks/teardown.yml")
        assert_same(lab.state(), pristine)
    finally:
        lab.down()


HYBRID = [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24"), ("10.57.5.30", "192.168.12.0/24")]


@pytest.mark.ipip
def test_ipip_hybrid_across_two_subnets(tmp_path):
    """3 nodes in 2 subnets, podnet_direct_routing: the peer on the node's own subnet is routed
    directly, the other through the tunnel; verify sees IP protocol 4 on the wire."""
    requires_ipip()
    lab = Lab(tmp_path, "c", HYBRID)
    try:
        lab.up()
        lab.converge("ipip", "-e", "podnet_direct_routing=true")
        verify = lab.verify("ipip", "-e", "podnet_direct_routing=true")
        assert "ipip on the wire" in verify.stdout and "ip proto 4" in verify.stdout, verify.stdout[-3000:]
        via = dict((r["dst"], r.get("dev")) for r in ipj(lab.namespaces[0], "route", "show"))
        assert via["192.168.11.0/24"] == "eth0" and via["192.168.12.0/24"] == "mustang.tun0"
    finally:
        lab.down()


@pytest.mark.vm_extra
@pytest.mark.ipip
def test_ipip_hybrid_rerun_changes_nothing(tmp_path):
    """The hybrid's second converge changes nothing (a rerun in ipip without direct routing is
    test_ipip.py's; `make ipip-vm-all`: three nodes' converge twice is too long for make test)."""
    requires_ipip()
    lab = Lab(tmp_path, "d", HYBRID)
    try:
        lab.up()
        lab.converge("ipip", "-e", "podnet_direct_routing=true")
        again = lab.converge("ipip", "-e", "podnet_direct_routing=true")
        assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    finally:
        lab.down()


def test_long_pod_name_converges_with_a_stable_derived_veth_name(tmp_path):
    """A real pod name (``frontend-7d9f8b6c4-x2k9p``) too long for ``veth-NAME``: no host_ifname
    given, podnet derives ``veth`` + a hash (pod.veth_name), the same on every run."""
    from ansible_collections.podnet.fabric.plugins.module_utils import pod

    lab = Lab(tmp_path, "l", [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24")])
    name = lab.prefix + "frontend-7d9f8b6c4-x2k9p"
    lab.hosts["h1"]["pods"] = [dict(name=name, ip="192.168.10.10")]
    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    inventory["nodes"]["hosts"]["h1"]["pods"] = lab.hosts["h1"]["pods"]
    with open(lab.inventory, "w") as handle:
        yaml.safe_dump(inventory, handle)
    veth = pod.veth_name(name)
    assert veth.startswith("veth") and len(veth) == 15 and veth != "veth-" + name
    try:
        lab.up()
        pristine = lab.state()
        lab.converge("host-gw")
        node = lab.hosts["h1"]["ansible_host"]

        def host_veth():
            links = [link for link in ipj(node, "-details", "link", "show")
                     if link.get("linkinfo", {}).get("info_kind") == "veth" and link["ifname"] == veth]
            assert links, "no veth %s on %s: %s" % (veth, node, [l["ifname"] for l in ipj(node, "link", "show")])
            return links[0]["ifindex"]

        first = host_veth()
        assert ipj(name, "addr", "show", "eth0")[0]["addr_info"][0]["local"] == "192.168.10.10"
        lab.verify("host-gw")
        again = lab.converge("host-gw")
        assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
        assert host_veth() == first
        lab.play("playbooks/teardown.yml")
        assert_same(lab.state(), pristine)
    finally:
        lab.down()


def test_switch_to_host_gw_keeps_the_guard_until_the_tunnel_device_is_gone(lab2):
    """vxlan -> host-gw: the guard (PODNET-INPUT) goes only after the cleanup role deleted vxlan0,
    never before: in between, the kernel would decapsulate anyone's VXLAN on the underlay."""
    from test_safety_input import play_json

    lab2.converge("vxlan")
    rc, results, output = play_json(lab2, lab2.inventory, "-e", "mode=host-gw")
    assert rc == 0, output
    for host in ("h1", "h2"):
        mine = [r for h, r in results if h == host]
        writes = [i for i, r in enumerate(mine) if isinstance(r.get("chains"), dict) and "PODNET-INPUT" in r["chains"]]
        deleted = [i for i, r in enumerate(mine) if r.get("changed") and "vxlan0" in json.dumps(r)
                   and '"del"' in json.dumps(r)]
        assert writes and deleted, (host, writes, deleted, output)
        # The first write of podnet's chains (node role) keeps the guard; the device goes; then the guard.
        assert mine[writes[0]]["chains"]["PODNET-INPUT"], (host, mine[writes[0]])
        assert writes[0] < deleted[0] < writes[-1], (host, writes, deleted)
        assert mine[writes[-1]]["chains"]["PODNET-INPUT"] == [], (host, mine[writes[-1]])
    assert "PODNET-INPUT" not in sh("ip", "netns", "exec", lab2.namespaces[0], "iptables", "-w", "-S")
    again = lab2.converge("host-gw")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
