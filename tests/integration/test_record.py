"""The node's record of what podnet made, end to end on one two-node lab (vxlan).

* A pod dropped from the inventory is gone after the next converge (namespace, veth with its proxy
  ARP, host route), and teardown finds one too; a namespace and veths of a user, named like podnet's,
  stay: they are not in the record.
* A pod whose only change is its host_ifname is wired again under the new name in its same
  namespace; the old veth is gone.
* Renaming the vxlan device, the chain prefix and the state directory between runs: after the rerun
  nothing of the old names is left (device, chains and their jumps, the saved sysctls, the replay
  script, the CNI record and the kernel-module note in the old directory), and teardown then gives
  the nodes back exactly as they were; in bgp mode, BIRD moves to the new directory.

The record lives in its own directory (podnet_record_dir) beside the state directories here, so
"the old state directory is empty" is checked as such.
"""

import json
import os
import signal

import pytest
import yaml

from conftest import ipj, run_module, sh
from test_bgp import bird_processes, until
from test_site import Lab, assert_same, changed_per_host


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("record")
    lab = Lab(tmp, "r", [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24")])
    lab.records = str(tmp / "records")
    lab.pod = dict(lab.hosts["h1"]["pods"][0])
    try:
        lab.up()
        for ns in lab.namespaces:
            # A value for podnet to change and give back (new namespaces may inherit 1 from the root).
            sh("sysctl", "-qw", "net.ipv4.ip_forward=0", ns=ns)
        lab.pristine = lab.state()
        lab.pristine_netns = netns(lab)
        yield lab
    finally:
        lab.down()
        # A BIRD a failed bgp test left (its state directories all start with the lab's).
        for pid, _argv in bird_processes(lab.state_dir):
            os.kill(pid, signal.SIGTERM)


def netns(lab):
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(lab.prefix))


def write_inventory(lab, h1_pods, **settings):
    """The lab's inventory with node h1's pods and these cluster settings (podnet_record_dir fixed)."""
    with open(lab.inventory) as handle:
        inventory = yaml.safe_load(handle)
    inventory["nodes"]["hosts"]["h1"]["pods"] = h1_pods
    inventory["nodes"]["vars"].update(dict(podnet_record_dir=lab.records), **settings)
    with open(lab.inventory, "w") as handle:
        yaml.safe_dump(inventory, handle)


def links(ns):
    return dict((link["ifname"], link.get("linkinfo", {}).get("info_kind")) for link in ipj(ns, "-details", "link", "show"))


def routes(ns):
    return [r["dst"] for r in ipj(ns, "route", "show")]


def chains(ns):
    return sorted(line.split()[0][1:] for line in sh("iptables-save", "-t", "filter", ns=ns).splitlines()
                  if line.startswith(":"))


def test_a_pod_dropped_or_with_a_new_host_ifname_leaves_nothing_and_a_users_lookalikes_stay(lab):
    h1 = lab.hosts["h1"]["ansible_host"]
    extra = dict(name=lab.prefix + "p3", ip="192.168.10.11", host_ifname="veth-p3")
    write_inventory(lab, [lab.pod, extra])
    lab.converge("vxlan")
    assert extra["name"] in netns(lab) and links(h1).get("veth-p3") == "veth"
    assert "192.168.10.11" in routes(h1)

    # A user's look-alikes on h1: a namespace named like a pod, wired by a veth named like a pod's
    # (proxy ARP on, a host route), and a veth pair of podnet-like names. Not in the record.
    user = lab.prefix + "p9"
    sh("ip", "netns", "add", user)
    sh("ip", "-n", h1, "link", "add", "veth-p9", "type", "veth", "peer", "name", "eth0", "netns", user)
    sh("ip", "-n", h1, "link", "add", "veth-p8", "type", "veth", "peer", "name", "veth-p8b")
    for dev in ("veth-p9", "veth-p8", "veth-p8b"):
        sh("ip", "-n", h1, "link", "set", dev, "up")
    sh("sysctl", "-qw", "net.ipv4.conf.veth-p9.proxy_arp=1", ns=h1)
    sh("ip", "-n", h1, "route", "add", "192.168.10.99/32", "dev", "veth-p9", "scope", "link")

    write_inventory(lab, [lab.pod])
    run = lab.converge("vxlan")
    assert extra["name"] not in netns(lab), run.stdout[-3000:]
    assert "veth-p3" not in links(h1) and "192.168.10.11" not in routes(h1)
    assert user in netns(lab) and "eth0" in links(user)
    assert links(h1).get("veth-p9") == "veth" and links(h1).get("veth-p8") == "veth"
    assert sh("sysctl", "-n", "net.ipv4.conf.veth-p9.proxy_arp", ns=h1).strip() == "1"
    assert "192.168.10.99" in routes(h1)
    record = json.load(open(os.path.join(lab.records, "h1-record.json")))
    assert [p["name"] for p in record["pods"]] == [lab.pod["name"]]

    # The pod's only change is its host_ifname: wired again under the new name in its same
    # namespace; the old veth, its proxy ARP and host route go (pod_netns replaces, from the record).
    old, new = lab.pod["host_ifname"], "veth-new1"
    ns_inode = os.stat("/run/netns/" + lab.pod["name"]).st_ino
    write_inventory(lab, [dict(lab.pod, host_ifname=new)])
    run = lab.converge("vxlan")
    have = links(h1)
    assert old not in have and have.get(new) == "veth", run.stdout[-3000:]
    assert os.stat("/run/netns/" + lab.pod["name"]).st_ino == ns_inode, "the pod's namespace was made again"
    assert [r.get("dev") for r in ipj(h1, "route", "show", lab.pod["ip"])] == [new]
    assert sh("sysctl", "-n", "net.ipv4.conf.%s.proxy_arp" % new, ns=h1).strip() == "1"
    assert [link["ifname"] for link in ipj(lab.pod["name"], "link", "show")] == ["lo", "eth0"]
    p2 = lab.hosts["h2"]["pods"][0]
    sh("ping", "-c1", "-W3", lab.pod["ip"], ns=p2["name"])
    sh("ping", "-c1", "-W3", p2["ip"], ns=lab.pod["name"])
    record = json.load(open(os.path.join(lab.records, "h1-record.json")))
    assert record["pods"] == [dict(name=lab.pod["name"], host_ifname=new)]
    assert links(h1).get("veth-p9") == "veth" and links(h1).get("veth-p8") == "veth"
    again = lab.converge("vxlan")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]

    # Teardown finds a pod that left the inventory since the last converge, by the record (and
    # h1's pod gets its first host_ifname back on the way).
    write_inventory(lab, [lab.pod, extra])
    lab.converge("vxlan")
    write_inventory(lab, [lab.pod])
    lab.play("playbooks/teardown.yml")
    assert extra["name"] not in netns(lab) and "veth-p3" not in links(h1) and "veth-new1" not in links(h1)
    assert user in netns(lab) and "veth-p9" in links(h1) and "veth-p8" in links(h1)

    sh("ip", "netns", "del", user)
    sh("ip", "-n", h1, "link", "del", "veth-p8")
    assert_same(lab.state(), lab.pristine)
    assert netns(lab) == lab.pristine_netns
    assert os.listdir(lab.records) == [] and os.listdir(lab.state_dir) == []


def test_renamed_device_chains_and_state_dir_leave_nothing_behind(lab):
    """Also what else podnet keeps in the state directory moves with it: the CNI plugin's record of
    the directories it made (podnet_cni, its directories outside the state directory) and the note
    of the kernel modules an ipip device loaded. This kernel has no loadable ipip module (machine.md),
    so that note is put there as ip_tunnel writes it (the VM's ipip tests make real ones); teardown's
    ip_tunnel then reads it in the new directory (a lab node unloads nothing) and removes it."""
    p1, p2 = lab.pod["name"], lab.hosts["h2"]["pods"][0]["name"]
    policy = [{"from": p1, "to": p2, "action": "deny"}]
    old_dir, new_dir = lab.state_dir, lab.state_dir + "-renamed"
    cni = os.path.join(os.path.dirname(lab.records), "cni")
    cni_dirs = dict(("podnet_cni_%s_dir" % d, "%s/{{ inventory_hostname }}/%s" % (cni, d)) for d in ("bin", "conf", "data"))
    cni_settings = dict(podnet_cni=True, **cni_dirs)
    write_inventory(lab, [lab.pod], podnet_policy=policy, **cni_settings)
    lab.converge("vxlan")
    for ns in lab.namespaces:
        assert links(ns).get("vxlan0") == "vxlan"
        assert {"PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT"} <= set(chains(ns))
    kept = ["h1-cni.json", "h1-replay.sh", "h1-sysctl.json", "h2-cni.json", "h2-replay.sh", "h2-sysctl.json"]
    assert sorted(os.listdir(old_dir)) == kept
    kmod = {"ipip": ["ip_tunnel", "ipip", "tunnel4"]}
    with open(os.path.join(old_dir, "h1-kmod.json"), "w") as handle:
        json.dump(kmod, handle)

    write_inventory(lab, [lab.pod], podnet_policy=policy, podnet_vxlan_device="vxnew0",
                    podnet_iptables_chain="PNTR-FORWARD", podnet_state_dir=new_dir, **cni_settings)
    run = lab.converge("vxlan")
    for ns in lab.namespaces:
        assert "vxlan0" not in links(ns) and links(ns).get("vxnew0") == "vxlan", run.stdout[-3000:]
        saved = sh("iptables-save", ns=ns)
        assert "PODNET-" not in saved, saved
        assert {"PNTR-FORWARD", "PNTR-POLICY", "PNTR-INPUT"} <= set(chains(ns))
    assert os.listdir(old_dir) == []
    assert sorted(os.listdir(new_dir)) == sorted(kept + ["h1-kmod.json"])
    with open(os.path.join(new_dir, "h1-kmod.json")) as handle:
        assert json.load(handle) == kmod
    for host in ("h1", "h2"):
        with open(os.path.join(new_dir, host + "-sysctl.json")) as handle:
            assert json.load(handle) == {"net.ipv4.ip_forward": "0"}
    # The renamed cluster works (pod 2 may still reach pod 1: the policy only denies 1 -> 2).
    sh("ping", "-c1", "-W3", lab.pod["ip"], ns=p2)
    again = lab.converge("vxlan")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]

    lab.play("playbooks/teardown.yml")
    assert_same(lab.state(), lab.pristine)
    assert netns(lab) == lab.pristine_netns
    assert os.listdir(new_dir) == [] and os.listdir(old_dir) == [] and os.listdir(lab.records) == []
    # The CNI directories each node's plugin made went too: teardown found their record in the new
    # directory (cni itself is made by whichever node came first, and goes with the last one's record).
    assert [h for h in ("h1", "h2") if os.path.exists(os.path.join(cni, h))] == []


def test_a_renamed_state_dir_moves_podnets_bird_too(lab):
    """bgp: each node's BIRD runs from the state directory (config, control socket, pid file). After
    a rename the rerun stops the one of the earlier directory and starts BIRD from the new one; the
    nodes learn each other's pod CIDRs again, nothing is left in the earlier directory, and teardown
    gives the nodes back as they were."""
    first, second = lab.state_dir + "-bgp1", lab.state_dir + "-bgp2"
    p2 = lab.hosts["h2"]["pods"][0]

    def learnt():
        return all(dict((r["dst"], r.get("protocol")) for r in ipj(lab.hosts[h]["ansible_host"], "route", "show")).get(
            lab.hosts[other]["pod_cidr"]) == "bird" for h, other in (("h1", "h2"), ("h2", "h1")))

    write_inventory(lab, [lab.pod], podnet_state_dir=first, podnet_policy=[], podnet_cni=False)
    lab.converge("bgp")
    assert len(bird_processes(first)) == 2
    until(learnt, "each node learns the other's pod CIDR from BIRD")

    write_inventory(lab, [lab.pod], podnet_state_dir=second)
    run = lab.converge("bgp")
    assert bird_processes(first) == [] and len(bird_processes(second)) == 2, run.stdout[-3000:]
    assert os.listdir(first) == []
    until(learnt, "each node learns the other's pod CIDR from the BIRD of the new directory")
    sh("ping", "-c1", "-W3", p2["ip"], ns=lab.pod["name"])
    sh("ping", "-c1", "-W3", lab.pod["ip"], ns=p2["name"])
    again = lab.converge("bgp")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]

    lab.play("playbooks/teardown.yml")
    assert bird_processes(first) == [] and bird_processes(second) == []
    assert_same(lab.state(), lab.pristine)
    assert netns(lab) == lab.pristine_netns
    assert os.listdir(first) == [] and os.listdir(second) == [] and os.listdir(lab.records) == []


def test_state_files_moves_checks_and_diffs(tmp_path):
    """podnet.fabric.state_files on its own (files only, no lab): check mode changes nothing and says
    what would move, a file already in the new directory stays (the earlier copy goes), a rerun
    changes nothing, a name with a directory is refused before anything moves."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "n1-kmod.json").write_text('{"ipip": ["ipip"]}\n')
    (old / "n1-cni.json").write_text('{"created": ["/a"]}\n')
    new.mkdir()
    (new / "n1-cni.json").write_text('{"created": ["/b"]}\n')
    args = dict(path=str(new), moved_from=[str(old)], files=["n1-kmod.json", "n1-cni.json", "n1-other"])
    check = run_module("state_files", args, check=True, diff=True)
    assert check.changed and sorted(os.listdir(old)) == ["n1-cni.json", "n1-kmod.json"], check
    assert check["moved"] == [[str(old / "n1-kmod.json"), str(new / "n1-kmod.json")], [str(old / "n1-cni.json"), None]]
    assert check["diff"]["before"]["files"] == sorted([str(old / "n1-kmod.json"), str(old / "n1-cni.json")])
    done = run_module("state_files", args)
    assert done.changed and done["moved"] == check["moved"] and os.listdir(old) == []
    assert (new / "n1-kmod.json").read_text() == '{"ipip": ["ipip"]}\n'
    assert (new / "n1-cni.json").read_text() == '{"created": ["/b"]}\n'
    assert not run_module("state_files", args).changed
    (old / "n1-kmod.json").write_text("{}\n")
    refused = run_module("state_files", dict(args, files=["n1-kmod.json", "../n1-cni.json"]))
    assert refused.failed and "files" in refused["msg"] and (old / "n1-kmod.json").exists()
