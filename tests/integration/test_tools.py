"""The test tools: tests/tools/kernel-has agrees with conftest's kernel_has, and `make ipip-vm`
never turns "the IPIP suite did not run" into success under CI.

kernel-has runs in its own scratch namespace; the make runs use a stand-in for tests/qemu/run
(QEMU_RUN) that exits 77, as the harness does when qemu cannot run on the machine.
"""

import os
import subprocess

import pytest

from conftest import ROOT, kernel_has, requires_ipip

KERNEL_HAS = os.path.join(ROOT, "tests", "tools", "kernel-has")


def tool_says(kind):
    return subprocess.run([KERNEL_HAS, kind], capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("kind", ["dummy", "veth", "vxlan", "ipip", "no-such-kind"])
def test_kernel_has_agrees_with_the_test_suite(kind):
    assert tool_says(kind) == kernel_has(kind)
    if kind == "no-such-kind":
        assert not tool_says(kind)


@pytest.mark.ipip
def test_kernel_has_ipip_on_a_kernel_with_ipip():
    # Loading ipip creates tunl0; a probe device without endpoints collides with it (EEXIST).
    requires_ipip()
    assert tool_says("ipip")


@pytest.fixture
def qemu_cannot_run(tmp_path):
    fake = tmp_path / "qemu-run"
    fake.write_text("#!/bin/sh\necho 'qemu-run: SKIP: qemu cannot run on this machine (stand-in)'\nexit 77\n")
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.parametrize("ci, ok", [("true", False), ("", True)])
def test_make_ipip_vm_fails_under_ci_when_the_ipip_suite_did_not_run(qemu_cannot_run, ci, ok):
    env = dict(os.environ, CI=ci)
    proc = subprocess.run(["make", "--no-print-directory", "-s", "ipip-vm", "QEMU_RUN=" + qemu_cannot_run],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0 and "SKIPPED: ipip tests" in output, output
    else:
        assert proc.returncode != 0 and "ipip tests did not run" in output and "CI=true" in output, output
