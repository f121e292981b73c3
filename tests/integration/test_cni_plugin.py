"""podnet.fabric.cni_plugin through Ansible in a scratch node namespace: present, again (no change),
check mode, diff, a foreign file refused, a runtime pod's host side and absent."""

import json
import os

from conftest import ipj, sh


def args(tmp_path, **extra):
    base = dict(pod_cidr="192.168.10.0/24", exclude=["192.168.10.10"], mtu=1450,
                bin_dir=str(tmp_path / "n" / "bin"), conf_dir=str(tmp_path / "n" / "net.d"),
                data_dir=str(tmp_path / "n" / "networks"), record=str(tmp_path / "state" / "n-cni.json"))
    base.update(extra)
    return base


def test_present_again_check_diff_absent(module, node, tmp_path):
    plugin, conflist = tmp_path / "n" / "bin" / "podnet", tmp_path / "n" / "net.d" / "10-podnet.conflist"
    checked = module("cni_plugin", args(tmp_path), ns=node, check=True, diff=True)
    assert checked.changed and not checked.failed and not (tmp_path / "n").exists()
    assert checked["diff"]["after"]["config"]["plugins"][0]["mtu"] == 1450
    made = module("cni_plugin", args(tmp_path), ns=node)
    assert made.changed and os.access(str(plugin), os.X_OK)
    assert json.loads(conflist.read_text())["plugins"][0]["ipam"]["ranges"][0][0]["rangeStart"] == "192.168.10.2"
    assert not module("cni_plugin", args(tmp_path), ns=node).changed
    changed = module("cni_plugin", args(tmp_path, mtu=1500), ns=node, diff=True)
    assert changed.changed and changed["diff"]["before"]["config"]["plugins"][0]["mtu"] == 1450

    # A runtime pod (the plugin as a runtime runs it), then absent takes its host side away.
    sh("ip", "netns", "add", node + "c")
    try:
        env = ["env", "-i", "CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/run/netns/%sc" % node,
               "CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", str(plugin)]
        conf = json.loads(conflist.read_text())
        stdin = json.dumps(dict(conf["plugins"][0], cniVersion="1.0.0", name="podnet"))
        result = json.loads(sh(*env, ns=node, input=stdin))
        host = result["interfaces"][0]["name"]
        check = module("cni_plugin", args(tmp_path, state="absent"), ns=node, check=True)
        assert check.changed and check["runtime_pods"] == [host] and plugin.exists()
        gone = module("cni_plugin", args(tmp_path, state="absent"), ns=node)
        assert gone.changed and [l["ifname"] for l in ipj(node, "link", "show") if l["ifname"] == host] == []
        assert not (tmp_path / "n").exists() and os.listdir(str(tmp_path / "state")) == []
        assert not module("cni_plugin", args(tmp_path, state="absent"), ns=node).changed
    finally:
        sh("ip", "netns", "del", node + "c", check=False)


def test_a_foreign_file_is_never_overwritten(module, node, tmp_path):
    (tmp_path / "n" / "bin").mkdir(parents=True)
    (tmp_path / "n" / "bin" / "podnet").write_text("#!/bin/sh\necho someone else's\n")
    refused = module("cni_plugin", args(tmp_path), ns=node)
    assert refused.failed and "not podnet's" in refused["msg"]
    assert (tmp_path / "n" / "bin" / "podnet").read_text().endswith("someone else's\n")
    assert not module("cni_plugin", args(tmp_path, state="absent"), ns=node).changed
    assert (tmp_path / "n" / "bin" / "podnet").exists()
