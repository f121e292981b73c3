"""The node's record of what podnet made, end to end on one two-node lab (vxlan).

* A pod dropped from the inventory is gone after the next converge (namespace, veth with its proxy
  ARP, host route), and teardown finds one too; a namespace and veths of a user, named like podnet's,
  stay: they are not in the record.
* Renaming the vxlan device, the chain prefix and the state directory between runs: after the rerun
  nothing of the old names is left (device, chains and their jumps, the saved sysctls in the old
  directory), and teardown then gives the nodes back exactly as they were.

The record lives in its own directory (podnet_record_dir) beside the state directories here, so
"the old state directory is empty" is checked as such.
"""

import json
import os

import pytest
import yaml

from conftest import ipj, sh
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
    return dict((l["ifname"], l.get("linkinfo", {}).get("info_kind")) for l in ipj(ns, "-details", "link", "show"))


def routes(ns):
    return [r["dst"] for r in ipj(ns, "route", "show")]


def chains(ns):
    return sorted(l.split()[0][1:] for l in sh("iptables-save", "-t", "filter", ns=ns).splitlines() if l.startswith(":"))


def test_a_pod_dropped_from_the_inventory_is_removed_and_a_users_lookalikes_stay(lab):
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
    again = lab.converge("vxlan")
    assert set(changed_per_host(again).values()) == {0}, again.stdout[-3000:]

    # Teardown finds a pod that left the inventory since the last converge, by the record.
    write_inventory(lab, [lab.pod, extra])
    lab.converge("vxlan")
    write_inventory(lab, [lab.pod])
    lab.play("playbooks/teardown.yml")
    assert extra["name"] not in netns(lab) and "veth-p3" not in links(h1)
    assert user in netns(lab) and "veth-p9" in links(h1) and "veth-p8" in links(h1)

    sh("ip", "netns", "del", user)
    sh("ip", "-n", h1, "link", "del", "veth-p8")
    assert_same(lab.state(), lab.pristine)
    assert netns(lab) == lab.pristine_netns
    assert os.listdir(lab.records) == [] and os.listdir(lab.state_dir) == []


def test_renamed_device_chains_and_state_dir_leave_nothing_behind(lab):
    p1, p2 = lab.pod["name"], lab.hosts["h2"]["pods"][0]["name"]
    policy = [{"from": p1, "to": p2, "action": "deny"}]
    old_dir, new_dir = lab.state_dir, lab.state_dir + "-renamed"
    write_inventory(lab, [lab.pod], podnet_policy=policy)
    lab.converge("vxlan")
    for ns in lab.namespaces:
        assert links(ns).get("vxlan0") == "vxlan"
        assert {"PODNET-FORWARD", "PODNET-POLICY", "PODNET-INPUT"} <= set(chains(ns))
    assert sorted(os.listdir(old_dir)) == ["h1-replay.sh", "h1-sysctl.json", "h2-replay.sh", "h2-sysctl.json"]

    write_inventory(lab, [lab.pod], podnet_policy=policy, podnet_vxlan_device="vxnew0",
                    podnet_iptables_chain="PNTR-FORWARD", podnet_state_dir=new_dir)
    run = lab.converge("vxlan")
    for ns in lab.namespaces:
        assert "vxlan0" not in links(ns) and links(ns).get("vxnew0") == "vxlan", run.stdout[-3000:]
        saved = sh("iptables-save", ns=ns)
        assert "PODNET-" not in saved, saved
        assert {"PNTR-FORWARD", "PNTR-POLICY", "PNTR-INPUT"} <= set(chains(ns))
    assert os.listdir(old_dir) == []
    assert sorted(os.listdir(new_dir)) == ["h1-replay.sh", "h1-sysctl.json", "h2-replay.sh", "h2-sysctl.json"]
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
