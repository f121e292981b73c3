"""`bench/run --smoke`: the benchmark's machinery end to end, once (N=2, one repetition, vxlan).

Checks that the results JSON is produced and complete; never how fast anything was.
The bench builds its own lab of namespaces named bn<run id>..., and removes it.
"""

import json
import os
import subprocess

import pytest

from conftest import ROOT


@pytest.mark.timeout(1800)
def test_bench_smoke_writes_results(tmp_path):
    out = tmp_path / "smoke.json"
    proc = subprocess.run([os.path.join(ROOT, "bench", "run"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, "bench/run --smoke failed (%d):\n%s\n%s" % (
        proc.returncode, proc.stdout[-4000:], proc.stderr[-6000:])
    data = json.loads(out.read_text())

    assert data["machine"]["kernel"] and data["machine"]["ansible_core"]
    [entry] = data["control"]
    assert entry["n"] == 2
    m = entry["modes"]["vxlan"]
    for kind in ("podnet_first", "podnet_rerun", "podnet_teardown", "naive_first", "naive_rerun",
                 "shell_first", "shell_rerun", "floor"):
        assert len(m[kind]) == 1 and m[kind][0]["rc"] == 0, kind
        assert m[kind][0]["wall"] > 0 and m[kind][0]["cpu"] >= 0, kind
    podnet, rerun, floor = m["podnet_first"][0], m["podnet_rerun"][0], m["floor"][0]
    # Counted per host by the callback; the floor mirrors podnet's count; the rerun changes nothing.
    assert set(podnet["modules_per_host"]) == {"n1", "n2"}
    assert podnet["modules_max"] == rerun["modules_max"] == floor["modules_max"] > 0
    assert rerun["changed_total"] == 0
    assert m["naive_first"][0]["modules_max"] > 0
    # Every teardown/reset left the lab as it was.
    assert m["clean"] and all(c["clean"] for c in m["clean"]), m["clean"]

    dp = data["data"]["modes"]["vxlan"]
    assert dp["underlay"]["tcp_bps"] > 0 and dp["pod"]["tcp_bps"] > 0 and dp["fraction_tcp"] > 0
    assert dp["pod"]["ping"]["loss"] == 0.0
    assert dp["pod"]["pmtu"]["ok"] and dp["pod"]["pmtu"]["largest"] == dp["pod"]["pmtu"]["mtu"] - 28
    assert dp["underlay"]["pmtu"]["ok"]

    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert not [n for n in netns if n.startswith(data["prefix"])], "the bench left namespaces behind"


@pytest.mark.timeout(600)
def test_bench_scale_smoke_writes_results(tmp_path):
    """The scale section (modules stubbed, no namespaces) at N=4: both playbooks ran on every node."""
    out = tmp_path / "scale.json"
    proc = subprocess.run([os.path.join(ROOT, "bench", "run"), "--scale-only", "--scale-n", "4", "--no-report",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, "bench/run --scale-only failed (%d):\n%s\n%s" % (
        proc.returncode, proc.stdout[-4000:], proc.stderr[-6000:])
    data = json.loads(out.read_text())

    assert "control" not in data and "data" not in data
    [run] = data["scale"]["runs"]
    assert run["n"] == 4
    site, nothing = run["site"], run["nothing"]
    for result in (site, nothing):
        assert result["rc"] == 0 and result["failed_total"] == 0 and "error" not in result, result
        assert result["hosts"] == 4 and result["wall"] > 0 and result["cpu"] > 0
    # site.yml got past validation and planning (node_facts answered by the stub) and ran every
    # module of vxlan mode once per node; the do-nothing playbook copies its shape play by play.
    assert site["by_action"]["podnet.fabric.node_facts"] == 4
    assert site["by_action"]["podnet.fabric.vxlan_fdb"] == 4
    assert nothing["plays"] == site["plays"] and nothing["by_action"] == {"ansible.builtin.ping": 4 * site["modules_max"]}
