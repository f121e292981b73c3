"""The collection as users install it: build the tarball, install it into an empty collections
path outside the checkout, and from another folder build a lab, converge it with
``ansible-playbook -i INVENTORY podnet.fabric.site -e mode=vxlan``, verify and tear it down, with
nothing of the checkout on Ansible's paths.  Plus what the tarball holds, and bindep.txt.
"""

import json
import os
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml

from conftest import RUN_ID, ROOT, VENV_BIN, sh

# Nothing of these may be in the tarball: virtualenvs, caches, artefacts of the lab and the tests.
NOT_FOR_USERS = re.compile(r"(^|/)(\.venv[^/]*|\.collections|\.cache|\.build|\.ci|\.ansible|\.pytest_cache|"
                           r"__pycache__|captures|graphs|tests/output)(/|$)|^bench/results(/|$)|\.pyc$|\.tar\.gz$")
FOR_USERS = ["playbooks/site.yml", "playbooks/plan.yml", "playbooks/verify.yml", "playbooks/teardown.yml", "playbooks/lab.yml",
             "playbooks/capture.yml", "playbooks/graph.yml", "meta/runtime.yml", "meta/execution-environment.yml",
             "bindep.txt", "plugins/connection/netns.py", "plugins/modules/pod_netns.py", "README.md"]


def run(argv, cwd, env, check=True):
    proc = subprocess.run([str(a) for a in argv], cwd=str(cwd), env=env, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(map(str, argv)), proc.returncode,
                                                                  proc.stdout[-6000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The built tarball's member names, and a user's folder whose Ansible sees only the installed copy."""
    tmp = tmp_path_factory.mktemp("install")
    dist, collections, user = tmp / "dist", tmp / "collections", tmp / "user"
    for path in (dist, collections, user):
        path.mkdir()
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("ANSIBLE_"))
    env.update(PATH=VENV_BIN + os.pathsep + env.get("PATH", ""), ANSIBLE_CONFIG=str(user / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", HOME=str(tmp))
    (user / "ansible.cfg").write_text("[defaults]\ncollections_path = %s\ncollections_scan_sys_path = False\n"
                                      "host_key_checking = False\n" % collections)
    run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", dist, ROOT], user, env)
    tarball = [p for p in dist.iterdir() if p.name.endswith(".tar.gz")]
    assert len(tarball) == 1, list(dist.iterdir())
    with tarfile.open(str(tarball[0])) as archive:
        members = archive.getnames()
    run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", collections,
         tarball[0]], user, env)
    return dict(members=members, collections=collections, user=user, env=env, tmp=tmp)


def test_the_tarball_holds_what_users_need_and_nothing_else(installed):
    members = installed["members"]
    assert [m for m in members if NOT_FOR_USERS.search(m)] == []
    assert [m for m in FOR_USERS if m not in members] == []


def test_installed_collection_converges_and_verifies_a_lab_from_another_folder(installed):
    user, env = installed["user"], installed["env"]
    coll = installed["collections"] / "ansible_collections" / "podnet" / "fabric"
    # Ansible finds podnet.fabric in the installed copy only, not in the checkout.
    doc = json.loads(run([os.path.join(VENV_BIN, "ansible-doc"), "--json", "podnet.fabric.pod_netns"], user, env).stdout)
    assert doc["podnet.fabric.pod_netns"]["doc"]["filename"].startswith(str(coll) + "/"), doc
    prefix = "pnt%si" % RUN_ID
    hosts = {}
    seed = [("10.57.4.20", "192.168.10.0/24", "192.168.10.10"), ("10.57.4.21", "192.168.11.0/24", "192.168.11.10")]
    for number, (node_ip, cidr, pod_ip) in enumerate(seed, 1):
        pod = dict(name="%sp%d" % (prefix, number), ip=pod_ip, host_ifname="veth-p%d" % number)
        hosts["h%d" % number] = dict(ansible_host="%sh%d" % (prefix, number), node_ip=node_ip, pod_cidr=cidr, pods=[pod])
    inventory = user / "inventory.yml"
    inventory.write_text(yaml.safe_dump(dict(nodes=dict(hosts=hosts, vars=dict(
        ansible_connection="podnet.fabric.netns", ansible_python_interpreter=os.path.join(VENV_BIN, "python"),
        node_iface="eth0", podnet_state_dir=str(installed["tmp"] / "state"),
        podnet_record_dir=str(installed["tmp"] / "state"))))))
    lab = ["-e", "lab_switch_prefix=%ssw" % prefix, "-e", "lab_router=%srt" % prefix]
    playbook = os.path.join(VENV_BIN, "ansible-playbook")
    try:
        run([playbook, "-i", inventory, "podnet.fabric.lab"] + lab, user, env)
        run([playbook, "-i", inventory, "podnet.fabric.site", "-e", "mode=vxlan"], user, env)
        verify = run([playbook, "-i", inventory, "podnet.fabric.verify", "-e", "mode=vxlan"], user, env)
        assert "vxlan on the wire" in verify.stdout, verify.stdout[-3000:]
        run([playbook, "-i", inventory, "podnet.fabric.teardown"], user, env)
        assert os.listdir(str(installed["tmp"] / "state")) == []
    finally:
        run([playbook, "-i", inventory, "podnet.fabric.lab", "-e", "lab_state=absent"] + lab, user, env, check=False)
        for ns in os.listdir("/run/netns"):
            if ns.startswith(prefix):
                sh("ip", "netns", "del", ns, check=False)
    # Nothing was written into the checkout's collections path or next to the user's files.
    assert sorted(p.name for p in user.iterdir()) == ["ansible.cfg", "inventory.yml"]


def bindep_packages(platform):
    """Package names bindep.txt lists for a platform (``name [platform:dpkg ...]`` lines)."""
    names = []
    with open(os.path.join(ROOT, "bindep.txt")) as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            match = re.match(r"^([A-Za-z0-9.+_-]+)(?:\s+\[([^\]]*)\])?$", line)
            assert match, "bindep.txt: cannot read %r" % line
            profiles = (match.group(2) or "").split()
            if not profiles or "platform:" + platform in profiles:
                names.append(match.group(1))
    return names


def test_bindep_lists_the_debian_package_of_every_binary_the_modules_call():
    with open(os.path.join(ROOT, "meta", "execution-environment.yml")) as handle:
        assert yaml.safe_load(handle)["dependencies"] == {"system": "bindep.txt"}
    tools = set()
    pattern = re.compile(r"""(?:get_bin_path|\.bin|\.read_json|\.read|\.run|\.try_run)\(\s*["']([a-z][a-z0-9_-]*)["']""")
    for folder in ("modules", "module_utils"):
        for name in os.listdir(os.path.join(ROOT, "plugins", folder)):
            if name.endswith(".py"):
                with open(os.path.join(ROOT, "plugins", folder, name)) as handle:
                    tools.update(pattern.findall(handle.read()))
    assert {"ip", "bridge", "iptables-restore", "sysctl", "ping", "tcpdump", "dot"} <= tools, tools
    listed = set(bindep_packages("dpkg"))
    missing = {}
    for tool in sorted(tools):
        path = shutil.which(tool)
        assert path, "%s is not installed (tests/tools/install-deps)" % tool
        packages = set()
        # The file as found and where its links lead (alternatives), in both spellings of merged /usr.
        for candidate in (path, os.path.realpath(path)):
            for spelling in (candidate, candidate.replace("/usr/", "/", 1)):
                owner = subprocess.run(["dpkg", "-S", spelling], capture_output=True, text=True, check=False)
                if owner.returncode == 0:
                    packages.update(p.strip() for p in owner.stdout.split(":", 1)[0].split(","))
        if not packages & listed:
            missing[tool] = sorted(packages)
    assert missing == {}, "bindep.txt lacks the package of %s" % missing
