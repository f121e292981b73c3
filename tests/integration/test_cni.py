"""podnet's CNI plugin on a lab of throwaway namespaces: driven as a runtime drives it, and by podman.

One lab for the whole file (the tests run in order and share it): two nodes converged with
podnet_cni=true, each with its own CNI directories under the lab's state directory (the lab's
nodes share one file system). The plugin is executed exactly as a runtime executes it: inside
the node's namespace, with the CNI_* environment and the network config on stdin. The last
test tears down and compares every node with the state before the first converge.
"""

import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import ROOT, RUN_ID, ipj, sh
from test_site import Lab, assert_same, changed_per_host

CIDRS = {"h1": "192.168.10.0/24", "h2": "192.168.11.0/24"}
INVENTORY_POD = {"h1": "192.168.10.10", "h2": "192.168.11.10"}
CNI_VARS = dict(
    podnet_cni=True,
    podnet_cni_bin_dir="{{ podnet_state_dir }}/{{ inventory_hostname }}-cni/bin",
    podnet_cni_conf_dir="{{ podnet_state_dir }}/{{ inventory_hostname }}-cni/net.d",
    podnet_cni_data_dir="{{ podnet_state_dir }}/{{ inventory_hostname }}-cni/networks")


class Node(object):
    """One lab node as a container runtime sees it: its CNI directories and its namespace."""

    def __init__(self, lab, host):
        self.lab, self.host = lab, host
        self.ns = lab.hosts[host]["ansible_host"]
        base = os.path.join(lab.state_dir, host + "-cni")
        self.bin_dir, self.conf_dir = os.path.join(base, "bin"), os.path.join(base, "net.d")
        self.reservations = os.path.join(base, "networks", "podnet")

    @property
    def conflist(self):
        with open(os.path.join(self.conf_dir, "10-podnet.conflist")) as handle:
            return json.load(handle)

    def plugin_config(self):
        """What a runtime hands the first plugin of the conflist (SPEC section 3)."""
        conflist = self.conflist
        return dict(conflist["plugins"][0], cniVersion=conflist["cniVersion"], name=conflist["name"])

    def call(self, command, cid="", netns="", ifname="eth0", conf=None, raw=None, drop=()):
        """Execute the plugin in the node's namespace as a runtime does; (exit status, parsed stdout)."""
        env = dict(CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=netns, CNI_IFNAME=ifname,
                   CNI_PATH="%s:/usr/lib/cni" % self.bin_dir, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        for key in drop:
            env.pop(key)
        argv = ["ip", "netns", "exec", self.ns, "env", "-i"] + ["%s=%s" % kv for kv in sorted(env.items())]
        stdin = raw if raw is not None else json.dumps(conf if conf is not None else self.plugin_config())
        proc = subprocess.run(argv + [os.path.join(self.bin_dir, "podnet")], input=stdin, capture_output=True,
                              text=True, check=False)
        return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None)

    def reserved(self):
        """The addresses host-local holds for the node's network."""
        if not os.path.isdir(self.reservations):
            return []
        return sorted(f for f in os.listdir(self.reservations) if f[0].isdigit())

    def runtime_links(self):
        return sorted(l["ifname"] for l in ipj(self.ns, "link", "show") if l["ifname"].startswith("pnc"))

    def runtime_routes(self):
        return ipj(self.ns, "route", "show", "proto", "151")


def ping(ns, address):
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W2", address],
                          capture_output=True, text=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("cni"), "k", [("10.57.4.20", CIDRS["h1"]), ("10.57.4.21", CIDRS["h2"])])
    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    inventory["nodes"]["vars"].update(CNI_VARS)
    with open(lab.inventory, "w") as handle:
        yaml.safe_dump(inventory, handle)
    lab.nodes = dict((h, Node(lab, h)) for h in ("h1", "h2"))
    lab.containers = {}
    try:
        lab.up()
        lab.pristine = lab.state()
        lab.converge("vxlan")
        yield lab
    finally:
        for node in lab.nodes.values():
            podman_dir = getattr(node, "podman_dir", None)
            if podman_dir:
                podman(node, "rm", "-af", check=False)
                shutil.rmtree(podman_dir, ignore_errors=True)
        lab.down()


def add(lab, host, index, conf=None):
    """A container: its own namespace, then ADD; returns (netns path, result)."""
    node = lab.nodes[host]
    name = "%sc%s%d" % (lab.prefix, host, index)
    sh("ip", "netns", "add", name)
    netns = "/run/netns/" + name
    rc, result = node.call("ADD", "ctr-%s-%d" % (host, index), netns, conf=conf)
    assert rc == 0, result
    lab.containers[(host, index)] = (name, netns, result)
    return netns, result


def address(result):
    return result["ips"][0]["address"].split("/")[0]


def test_plugin_as_a_runtime_drives_it(lab):
    h1, h2 = lab.nodes["h1"], lab.nodes["h2"]
    conflist = h1.conflist
    assert [p["type"] for p in conflist["plugins"]] == ["podnet", "portmap"]
    assert conflist["plugins"][0]["mtu"] == 1450 and conflist["plugins"][0]["gateway"] == "169.254.10.24"
    rc, version = h1.call("VERSION", raw='{"cniVersion": "1.0.0"}')
    assert rc == 0 and "1.0.0" in version["supportedVersions"]

    # 10 in parallel with only the standard fields (podnet's defaults fill in the rest), 10 one by one
    # with the conflist's config, and two on the other node.
    minimal = dict(cniVersion="1.0.0", name="podnet", type="podnet", ipam=dict(type="host-local"))
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda i: add(lab, "h1", i, conf=minimal), range(10)))
    for index in range(10, 20):
        add(lab, "h1", index)
    for index in range(2):
        add(lab, "h2", index)
    mine = [lab.containers[("h1", i)] for i in range(20)]
    addresses = [address(result) for _name, _netns, result in mine]
    assert len(set(addresses)) == 20, addresses
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(CIDRS["h1"]) for a in addresses)
    assert "192.168.10.1" not in addresses and INVENTORY_POD["h1"] not in addresses
    assert sorted(addresses) == h1.reserved()

    # The seed's wiring, as the result says.
    name, netns, result = mine[0]
    host = result["interfaces"][0]["name"]
    assert [r for r in ipj(name, "route", "show") if r["dst"] == "default"] == [
        {"dst": "default", "gateway": "169.254.10.24", "dev": "eth0", "flags": ["onlink"]}]
    assert ipj(name, "link", "show", "eth0")[0]["mtu"] == 1450
    assert sh("sysctl", "-n", "net.ipv4.conf.%s.proxy_arp" % host, "net.ipv4.neigh.%s.proxy_delay" % host,
              ns=h1.ns).split() == ["1", "0"]
    assert {"dst": addresses[0], "dev": host, "scope": "link", "flags": []} in h1.runtime_routes()  # proto 151

    def check_all():
        for (host_name, _index), (_name, netns_path, res) in sorted(lab.containers.items()):
            node = lab.nodes[host_name]
            conf = dict(minimal if host_name == "h1" and _index < 10 else node.plugin_config(), prevResult=res)
            rc, out = node.call("CHECK", "ctr-%s-%d" % (host_name, _index), netns_path, conf=conf)
            assert rc == 0, out

    def reach_all():
        remote = [INVENTORY_POD["h2"]] + [address(lab.containers[("h2", i)][2]) for i in range(2)]
        failed = [(n, dst) for n, _netns, _res in mine for dst in remote if not ping(n, dst)]
        for index in range(2):
            n = lab.containers[("h2", index)][0]
            failed += [(n, dst) for dst in (INVENTORY_POD["h1"], addresses[index]) if not ping(n, dst)]
        assert not failed, failed

    check_all()
    reach_all()

    # CHECK notices drift.
    sh("sysctl", "-qw", "net.ipv4.conf.%s.proxy_arp=0" % host, ns=h1.ns)
    rc, out = h1.call("CHECK", "ctr-h1-0", netns, conf=dict(minimal, prevResult=result))
    assert rc != 0 and out["code"] == 101 and "proxy_arp" in out["msg"]
    sh("sysctl", "-qw", "net.ipv4.conf.%s.proxy_arp=1" % host, ns=h1.ns)

    # A mode switch and a rerun leave the runtime pods connected, their routes in place.
    routes = dict((h, sorted(r["dst"] for r in lab.nodes[h].runtime_routes())) for h in ("h1", "h2"))
    lab.converge("host-gw")
    again = lab.converge("host-gw")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]
    assert dict((h, sorted(r["dst"] for r in lab.nodes[h].runtime_routes())) for h in ("h1", "h2")) == routes
    check_all()
    reach_all()

    # DEL, DEL again, and DEL after the namespace is gone; h2's two stay for the teardown test.
    for index in range(20):
        name, netns, result = lab.containers.pop(("h1", index))
        conf = dict(h1.plugin_config(), prevResult=result)
        if index >= 18:
            sh("ip", "netns", "del", name)
        for _attempt in range(2):
            rc, out = h1.call("DEL", "ctr-h1-%d" % index, netns, conf=conf)
            assert rc == 0 and out is None, out
        if index < 18:
            assert [l["ifname"] for l in ipj(name, "link", "show")] == ["lo"]
            sh("ip", "netns", "del", name)
    assert h1.runtime_links() == [] and h1.runtime_routes() == [] and h1.reserved() == []


def test_bad_input_gets_a_cni_error_and_changes_nothing(lab):
    h1 = lab.nodes["h1"]
    name = "%scbad" % lab.prefix
    sh("ip", "netns", "add", name)
    netns = "/run/netns/" + name

    def unchanged():
        return lab.state()[h1.ns], h1.reserved(), ipj(name, "link", "show")

    before = unchanged()
    bad = [
        (dict(drop=["CNI_NETNS"]), 4, "CNI_NETNS"),
        (dict(ifname="eth0-is-too-long"), 4, "CNI_IFNAME"),
        (dict(conf=dict(h1.plugin_config(), cniVersion="0.9.9")), 1, "cniVersion"),
        (dict(conf=dict(h1.plugin_config(), ipam={})), 7, "ipam"),
        (dict(raw="{not json"), 6, "JSON"),
        (dict(netns="/run/netns/%snosuch" % lab.prefix), 4, "CNI_NETNS"),
    ]
    for kwargs, code, word in bad:
        kwargs.setdefault("netns", netns)
        rc, out = h1.call("ADD", "ctr-bad", **kwargs)
        assert rc != 0 and out["code"] == code and word in out["msg"], (kwargs, out)
        assert unchanged() == before, kwargs
    rc, out = h1.call("NOPE", "ctr-bad", netns)
    assert rc != 0 and out["code"] == 4 and "CNI_COMMAND" in out["msg"]

    # An exhausted range: a network with one address; the second ADD fails and leaves nothing.
    tiny = dict(h1.plugin_config(), name="podnet-tiny")
    one = dict(subnet=CIDRS["h1"], rangeStart="192.168.10.200", rangeEnd="192.168.10.200")
    tiny["ipam"] = dict(tiny["ipam"], ranges=[[one]])
    first = "%scfull" % lab.prefix
    sh("ip", "netns", "add", first)
    rc, result = h1.call("ADD", "ctr-full", "/run/netns/" + first, conf=tiny)
    assert rc == 0 and address(result) == "192.168.10.200", result
    links = h1.runtime_links()
    rc, out = h1.call("ADD", "ctr-bad", netns, conf=tiny)
    assert rc != 0 and out["code"] and "no IP addresses available" in out["msg"] + out.get("details", ""), out
    assert h1.runtime_links() == links and ipj(name, "link", "show")[1:] == []
    rc, out = h1.call("DEL", "ctr-full", "/run/netns/" + first, conf=tiny)
    assert rc == 0, out
    shutil.rmtree(os.path.join(os.path.dirname(h1.reservations), "podnet-tiny"))
    assert unchanged() == before
    sh("ip", "netns", "del", first)
    sh("ip", "netns", "del", name)


# -- podman, with its CNI backend, on the lab nodes ---------------------------------------------

IMAGE = "localhost/podnet-pod:test"


def podman(node, *args, check=True):
    """podman in the node's network namespace (nsenter: no new mount namespace, so the container
    namespaces podman bind-mounts under /run/netns stay visible), its storage, state and config
    in a directory of its own."""
    root = node.podman_dir
    argv = ["nsenter", "--net=/run/netns/" + node.ns, "podman", "--root", root + "/root", "--runroot",
            root + "/runroot", "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
            "--events-backend", "file", "--cni-config-dir", node.conf_dir] + list(args)
    env = dict(os.environ, CONTAINERS_CONF=root + "/containers.conf", CONTAINERS_STORAGE_CONF=root + "/storage.conf",
               XDG_CONFIG_HOME=root + "/config", TMPDIR=root + "/tmp")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), proc.returncode, proc.stderr))
    return proc.stdout.strip()


def setup_podman(node, tarball):
    # podman refuses a runroot path over 50 characters: a short directory of this run's own.
    node.podman_dir = tempfile.mkdtemp(prefix="pnt%s%s" % (RUN_ID, node.host), dir="/tmp")
    for sub in ("root", "runroot", "tmp", "config"):
        os.makedirs(os.path.join(node.podman_dir, sub))
    with open(os.path.join(node.podman_dir, "containers.conf"), "w") as handle:
        # This machine's root lacks CAP_SYS_RESOURCE: the OCI runtime may only lower rlimits, which
        # crun fails at (and at hybrid cgroups); runc with low container ulimits works.
        handle.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                     '[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["%s", "/usr/lib/cni"]\n'
                     'network_config_dir = "%s"\n[engine]\nruntime = "runc"\ntmp_dir = "%s/tmp"\n'
                     % (node.bin_dir, node.conf_dir, node.podman_dir))
    with open(os.path.join(node.podman_dir, "storage.conf"), "w") as handle:
        handle.write('[storage]\ndriver = "overlay"\nrunroot = "%s/runroot"\ngraphroot = "%s/root"\n'
                     % (node.podman_dir, node.podman_dir))
    podman(node, "import", "--change", 'CMD ["sleep", "infinity"]', tarball, IMAGE)


def test_podman_runs_containers_on_the_podnet_network(lab):
    tarball = subprocess.run([os.path.join(ROOT, "tests", "tools", "pod-rootfs")], capture_output=True, text=True,
                             check=True).stdout.strip()
    ips = {}
    kept = dict((host, node.runtime_links()) for host, node in lab.nodes.items())
    for host, node in sorted(lab.nodes.items()):
        setup_podman(node, tarball)
        assert "podnet" in podman(node, "network", "ls", "--format", "{{.Name}}").split()
        for index in range(2):
            podman(node, "run", "-d", "--name", "web%d" % index, "--network", "podnet", IMAGE)
            ips[(host, index)] = podman(node, "inspect", "-f", "{{.NetworkSettings.Networks.podnet.IPAddress}}",
                                        "web%d" % index)
    for (host, _index), ip in ips.items():
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(CIDRS[host])
        assert ip in lab.nodes[host].reserved()

    def reach():
        failed = []
        for (host, index), _ip in sorted(ips.items()):
            other = "h2" if host == "h1" else "h1"
            for dst in (ips[(other, 0)], ips[(other, 1)], INVENTORY_POD[other], INVENTORY_POD[host]):
                try:
                    podman(lab.nodes[host], "exec", "web%d" % index, "ping", "-c1", "-W2", dst)
                except AssertionError as exc:
                    failed.append((host, index, dst, str(exc)[-200:]))
        assert not failed, failed
        # and the inventory's pods reach the runtime's
        assert all(ping(lab.hosts[h]["pods"][0]["name"], ip) for (h, _i), ip in ips.items())

    reach()
    # A mode switch (host-gw -> vxlan) with podman's containers running: still connected.
    lab.converge("vxlan")
    reach()
    for (host, index), ip in sorted(ips.items()):
        node = lab.nodes[host]
        podman(node, "rm", "-f", "web%d" % index)
        assert ip not in node.reserved()
    # What is left is what was there before podman (test_plugin_as_a_runtime_drives_it's two on h2).
    assert dict((host, node.runtime_links()) for host, node in lab.nodes.items()) == kept


def test_teardown_gives_the_exact_prior_state(lab):
    # Runtime pods still running at teardown (besides any earlier tests left): their host sides go too.
    for host in ("h1", "h2"):
        add(lab, host, 90)
    lab.play("playbooks/teardown.yml")
    assert_same(lab.state(), lab.pristine)
    left = [os.path.join(d, f) for d, _dirs, files in os.walk(lab.state_dir) for f in files]
    assert left == [] and os.listdir(lab.state_dir) == [], (left, os.listdir(lab.state_dir))
