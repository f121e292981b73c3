"""tunl0 after ipip (issue 11, point 10), in the qemu VM only: podnet.fabric.ip_tunnel with
``kernel_module_file`` records that creating podnet's ipip device loaded the ipip module, and its
removal unloads the module again, which takes ``tunl0`` away from every namespace, when the node
is the machine's initial network namespace and nothing else uses the module; a node that is a
network namespace (a lab node), or another ipip device, keeps it, with a warning saying why.

This test loads and unloads kernel modules and, for the real-host case, creates an ipip device in
the initial network namespace: it runs only inside the throwaway VM of tests/qemu (whose
kernel command line carries ``podnet.job=``), never on the machine itself.
"""

import json
import os
import subprocess

import pytest

from conftest import RUN_ID, ROOT, VENV_BIN, Namespaces, ipj, requires_ipip, sh


def in_vm():
    with open("/proc/cmdline") as handle:
        return "podnet.job=" in handle.read()


def loaded(name="ipip"):
    return os.path.exists("/sys/module/%s/initstate" % name)


def unload_all():
    """Start without ipip (the VM's kernel loaded it on demand for earlier tests, or for the probe)."""
    for name in ("ipip", "tunnel4", "ip_tunnel"):
        if loaded(name):
            subprocess.run(["rmmod", name], capture_output=True, check=False)
    assert not loaded(), "ipip cannot be unloaded here: %s" % sh("lsmod")


def tunnel(tmp_path, *args, check_mode=False):
    """podnet.fabric.ip_tunnel ARGS on this machine (ad hoc); its result, with ``warned``: the run's
    warnings (as printed) in one line."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="result_json",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "tests", "integration", "callback_plugins"),
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-c", "local", "-e",
            "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"),
            "-m", "podnet.fabric.ip_tunnel", "-a", " ".join(args + ("kernel_module_file=%s" % (tmp_path / "kmod.json"),))]
    proc = subprocess.run(argv + (["--check"] if check_mode else []), capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT localhost "))
    result = json.loads(line.split(" ", 2)[2])
    result["warned"] = " ".join(" ".join(result.get("warnings", []) + [proc.stdout, proc.stderr]).split())
    return result


def names(ns=None):
    return [link["ifname"] for link in (ipj(ns, "link", "show") if ns else
                                        json.loads(sh("ip", "-json", "link", "show")))]


def record(tmp_path):
    path = tmp_path / "kmod.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.mark.ipip
@pytest.mark.timeout(1800)
def test_tunl0_goes_with_the_ipip_module_podnet_loaded(tmp_path):
    requires_ipip()
    if not in_vm():
        pytest.skip("loads and unloads kernel modules: runs only inside the qemu VM of tests/qemu")
    spaces = Namespaces("tl")
    node = spaces.add()
    mine = "pnt%st0" % RUN_ID
    try:
        # A lab node (a network namespace): the module is the machine's, so tunl0 stays, and podnet says why.
        unload_all()
        made = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "local=10.99.0.1", "netns=" + node)
        assert made["changed"] and "ipip" in record(tmp_path)["ipip"]
        assert "tunl0" in names(node)
        gone = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "state=absent", "netns=" + node)
        assert gone["changed"] and mine not in names(node)
        assert "tunl0 stays" in gone["warned"] and "a lab node or a container" in gone["warned"], gone
        assert loaded() and "tunl0" in names(node) and record(tmp_path) is None

        # The machine's own namespace (a real host): podnet loaded ipip, nothing else uses it -> unloaded.
        unload_all()
        made = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "local=10.99.0.1")
        assert made["changed"] and "ipip" in record(tmp_path)["ipip"] and "tunl0" in names()
        checked = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "state=absent", check_mode=True)
        assert checked["changed"] and ["rmmod", "ipip"] in [[os.path.basename(c[0])] + c[1:] for c in checked["commands"]]
        assert loaded() and mine in names() and record(tmp_path)
        gone = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "state=absent")
        assert gone["changed"] and "tunl0 stays" not in gone["warned"], gone
        assert not loaded(), "ipip is still loaded"
        assert "tunl0" not in names() and "tunl0" not in names(node) and mine not in names()
        assert record(tmp_path) is None
        again = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "state=absent")
        assert not again["changed"] and "tunl0 stays" not in again["warned"], again

        # Someone else's ipip device (in another namespace) keeps the module, and podnet names it.
        made = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "local=10.99.0.1")
        assert "ipip" in record(tmp_path)["ipip"]
        sh("ip", "-n", node, "link", "add", "tunfx", "type", "ipip", "local", "10.99.0.2")
        gone = tunnel(tmp_path, "name=%s" % mine, "kind=ipip", "state=absent")
        assert "other ipip devices use the module: %s/tunfx" % node in gone["warned"], gone
        assert loaded() and "tunfx" in names(node) and mine not in names()
    finally:
        subprocess.run(["ip", "link", "del", mine], capture_output=True, check=False)
        spaces.cleanup()
