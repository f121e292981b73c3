"""site.yml over SSH, as on real hosts: ``ansible.builtin.ssh`` as an unprivileged user, ``become`` via sudo.

The lab's node namespaces (playbooks/lab.yml, names with this run's prefix) each run an sshd of
their own, listening on the node IP only, with host keys, an authorized key and a log in a temporary
directory. Ansible runs in a controller namespace of its own, attached to the lab's switch with an
unused address, so every SSH connection crosses the lab's underlay. A throwaway user with
passwordless sudo logs in; podnet's tasks run as root through become.

sshd is started the way machine.md ("Netns lab pitfalls") shows, so that the pod namespaces podnet
makes over SSH survive the session and are visible from the root mount namespace::

    nsenter --net=/run/netns/NODE unshare --mount --propagation unchanged \
        sh -c 'mount --make-rprivate /sys && umount -l /sys && mount -t sysfs none /sys && exec sshd ...'

Everything (sshd, the controller's SSH masters, the user, its sudoers file, keys, namespaces) is
removed afterwards, also when the test fails. The root network namespace is never touched.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import yaml

from conftest import RUN_ID, ROOT, VENV_BIN, ipj, settle, sh
from test_site import Lab, assert_same, changed_per_host

PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")
ANSIBLE = os.path.join(VENV_BIN, "ansible")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# The controller's leg on the lab's switch: in the nodes' subnet, used by nothing else
# (nodes .20/.21, the lab router .254).
CONTROLLER_IP = "10.57.4.99"
SSHD_CONFIG = """\
# podnet test sshd: one node namespace, one user, key only.
ListenAddress {listen}:22
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
# No PAM: Debian's session stack (pam_loginuid, pam_systemd) expects a full host.
UsePAM no
# The key and config live in a temporary directory, not in the user's home.
StrictModes no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""


def _kill(pid, sig=signal.SIGTERM):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _netns_pids(ns):
    """PIDs of the processes in network namespace ``ns`` (all of them this test's)."""
    if not os.path.exists(os.path.join("/run/netns", ns)):
        return []
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split()]


class SshLab(object):
    """A Lab plus: a controller namespace on its switch, an sshd per node, a sudo user, an SSH inventory."""

    def __init__(self, tmp_path, lab):
        self.lab = lab
        self.tmp_path = tmp_path
        self.user = "pnt%sssh" % RUN_ID
        self.controller = lab.prefix + "ctl"
        self.switch = "%ssw-10.57.4.0-24" % lab.prefix
        self.sudoers = "/etc/sudoers.d/%s" % self.user
        self.sshd = {}             # host -> Popen
        self.user_made = False
        # World-readable (sshd reads the authorized key as the user) and short (ssh's control
        # sockets must fit in sun_path): not under pytest's root-only tmp_path.
        self.dir = tempfile.mkdtemp(prefix="podnet-ssh-")
        os.chmod(self.dir, 0o755)
        self.home = os.path.join(self.dir, "home")
        self.key = os.path.join(self.dir, "id_ed25519")
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        self.inventory = str(tmp_path / "ssh-inventory.yml")

    # -- setup ---------------------------------------------------------------------------------
    def make_user(self):
        sh("useradd", "--no-create-home", "--home-dir", self.home, "--shell", "/bin/sh", "--user-group",
           # '*': no password that could ever match, but not locked ('!'), which sshd without PAM refuses.
           "--password", "*", self.user)
        self.user_made = True
        os.mkdir(self.home, 0o755)
        sh("chown", "%s:%s" % (self.user, self.user), self.home)
        rule = "%s ALL=(ALL:ALL) NOPASSWD: ALL\n" % self.user
        staged = os.path.join(self.dir, "sudoers")
        with open(staged, "w") as handle:
            handle.write(rule)
        sh("visudo", "-cqf", staged)
        with open(self.sudoers, "w") as handle:
            handle.write(rule)
        os.chmod(self.sudoers, 0o440)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.user, "-f", self.key)
        shutil.copy(self.key + ".pub", self.authorized_keys)
        os.chmod(self.authorized_keys, 0o644)

    def attach_controller(self):
        """The controller namespace, with a veth into the lab switch's bridge."""
        ns = self.controller
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", ns=ns)
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "ctl-port", "netns", self.switch)
        sh("ip", "-n", ns, "addr", "add", CONTROLLER_IP + "/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.switch, "link", "set", "ctl-port", "master", "br0", "up")
        settle(ns)

    def start_sshd(self, host):
        spec = self.lab.hosts[host]
        node_dir = os.path.join(self.dir, host)
        os.mkdir(node_dir)
        host_key = os.path.join(node_dir, "ssh_host_ed25519_key")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host, "-f", host_key)
        config = os.path.join(node_dir, "sshd_config")
        with open(config, "w") as handle:
            handle.write(SSHD_CONFIG.format(listen=spec["node_ip"], host_key=host_key,
                                            authorized_keys=self.authorized_keys, user=self.user))
        # sshd's privilege separation directory (what the openssh-server package makes at boot).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        sh(SSHD, "-t", "-f", config)
        log = open(str(self.tmp_path / ("sshd-%s.log" % host)), "w")
        script = ("mount --make-rprivate /sys && umount -l /sys && mount -t sysfs none /sys && "
                  'exec "$0" -D -e -f "$1"')
        self.sshd[host] = subprocess.Popen(
            ["nsenter", "--net=/run/netns/" + spec["ansible_host"], "unshare", "--mount", "--propagation",
             "unchanged", "sh", "-c", script, SSHD, config], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_for_ssh(self, host):
        """Until a plain ssh from the controller namespace gets in (sshd needs a moment to listen)."""
        node_ip = self.lab.hosts[host]["node_ip"]
        argv = ["ip", "netns", "exec", self.controller, "ssh"] + self.ssh_options() + [
            "-o", "ConnectTimeout=5", "%s@%s" % (self.user, node_ip), "true"]
        proc = None
        for _attempt in range(100):
            if self.sshd[host].poll() is not None:
                raise AssertionError("sshd on %s exited (%s): %s" % (host, self.sshd[host].returncode, self.log(host)))
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("no ssh into %s: %s\nsshd log: %s" % (host, proc.stderr, self.log(host)))

    def ssh_options(self):
        return ["-i", self.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]

    def write_inventory(self):
        hosts = {}
        for name, spec in self.lab.hosts.items():
            hosts[name] = dict(ansible_host=spec["node_ip"], node_ip=spec["node_ip"], pod_cidr=spec["pod_cidr"],
                               pods=spec["pods"])
        group_vars = dict(
            ansible_connection="ansible.builtin.ssh", ansible_user=self.user,
            ansible_ssh_private_key_file=self.key,
            ansible_ssh_common_args=" ".join(self.ssh_options()[2:]),
            ansible_control_path_dir=os.path.join(self.dir, "cp"),
            ansible_become=True, ansible_become_method="ansible.builtin.sudo",
            # The node's own Python, as on a real host (not the controller's venv).
            ansible_python_interpreter="/usr/bin/python3",
            node_iface="eth0", podnet_state_dir=self.lab.state_dir,
            podnet_record_dir=self.lab.state_dir)
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(dict(nodes=dict(hosts=hosts, vars=group_vars)), handle)

    def up(self):
        self.lab.up()
        self.make_user()
        self.attach_controller()
        for host in self.lab.hosts:
            self.start_sshd(host)
        for host in self.lab.hosts:
            self.wait_for_ssh(host)
        self.write_inventory()

    # -- running Ansible from the controller namespace -------------------------------------------
    def env(self):
        return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))

    def run(self, argv, what, check=True):
        argv = ["ip", "netns", "exec", self.controller] + argv
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env(), cwd=ROOT, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s\n%s\nsshd logs:\n%s" % (
                what, proc.returncode, proc.stdout[-6000:], proc.stderr[-2000:],
                "\n".join(self.log(h)[-1500:] for h in self.lab.hosts)))
        return proc

    def play(self, playbook, *extra, check=True):
        return self.run([PLAYBOOK, "-i", self.inventory, os.path.join(ROOT, playbook)] + list(extra),
                        "%s %s" % (playbook, " ".join(extra)), check=check)

    def adhoc(self, command, *extra):
        """``command`` on every node; ``{host: stdout}``."""
        proc = self.run([ANSIBLE, "nodes", "-i", self.inventory, "-o", "-m", "ansible.builtin.command",
                         "-a", command] + list(extra), "ansible -a %r %s" % (command, " ".join(extra)))
        result = {}
        for line in proc.stdout.splitlines():
            host, _sep, rest = line.partition(" | ")
            result[host] = rest.rsplit("(stdout) ", 1)[-1].strip()
        return result

    def log(self, host):
        path = str(self.tmp_path / ("sshd-%s.log" % host))
        if not os.path.exists(path):
            return ""
        with open(path) as handle:
            return handle.read()

    # -- teardown ----------------------------------------------------------------------------------
    def down(self):
        try:
            # The controller's SSH masters (ControlPersist) and the sshds, then any session left
            # in the node namespaces: every one of them this test's.
            for pid in _netns_pids(self.controller):
                _kill(pid)
            for popen in self.sshd.values():
                if popen.poll() is None:
                    popen.terminate()
                    try:
                        popen.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        popen.kill()
                        popen.wait()
            for spec in self.lab.hosts.values():
                for pid in _netns_pids(spec["ansible_host"]):
                    _kill(pid, signal.SIGKILL)
            if os.path.exists(os.path.join("/run/netns", self.switch)):
                sh("ip", "-n", self.switch, "link", "del", "ctl-port", check=False)
            sh("ip", "netns", "del", self.controller, check=False)
        finally:
            if os.path.exists(self.sudoers):
                os.unlink(self.sudoers)
            if self.user_made:
                sh("userdel", self.user, check=False)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.lab.down()


@pytest.fixture
def ssh_lab(tmp_path):
    nodes = [("10.57.4.20", "192.168.10.0/24"), ("10.57.4.21", "192.168.11.0/24")]
    lab = SshLab(tmp_path, Lab(tmp_path, "s", nodes))
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def test_site_over_ssh_with_become(ssh_lab):
    lab = ssh_lab.lab
    pristine = lab.state()

    # The login is the unprivileged user; become (sudo) makes the tasks root.
    assert ssh_lab.adhoc("id -un", "-e", "ansible_become=false") == dict((h, ssh_lab.user) for h in lab.hosts)
    assert ssh_lab.adhoc("id -un") == dict((h, "root") for h in lab.hosts)

    ssh_lab.play("site.yml", "-e", "mode=vxlan")
    # The pods made over SSH outlive the session and are usable from the root mount namespace.
    for spec in lab.hosts.values():
        pod = spec["pods"][0]
        addrs = [i["local"] for a in ipj(pod["name"], "addr", "show") for i in a.get("addr_info", [])]
        assert pod["ip"] in addrs, (pod["name"], addrs)
    verify = ssh_lab.play("playbooks/verify.yml", "-e", "mode=vxlan")
    assert "vxlan on the wire" in verify.stdout, verify.stdout[-3000:]
    again = ssh_lab.play("site.yml", "-e", "mode=vxlan")
    assert changed_per_host(again) == dict((h, 0) for h in lab.hosts), again.stdout[-3000:]
    ssh_lab.play("playbooks/teardown.yml")
    assert_same(lab.state(), pristine)
    assert os.listdir(lab.state_dir) == []
    assert not [n for n in os.listdir("/run/netns") if n in [s["pods"][0]["name"] for s in lab.hosts.values()]]

    # Every connection came over SSH from the controller's address, as the test user.
    for host in lab.hosts:
        assert "Accepted publickey for %s from %s" % (ssh_lab.user, CONTROLLER_IP) in ssh_lab.log(host)


EXAMPLES = os.path.join(ROOT, "examples")


def test_example_inventory_for_real_hosts():
    """examples/inventory.yml parses, passes podnet's inventory checks, and names real options."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    inventory = os.path.join(EXAMPLES, "inventory.yml")
    listed = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", inventory, "--list"],
                            capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    hosts = data["nodes"]["hosts"]
    assert len(hosts) >= 2
    for host in hosts:
        hv = data["_meta"]["hostvars"][host]
        assert hv["ansible_connection"] == "ansible.builtin.ssh"
        assert hv["ansible_become"] is True and hv["ansible_user"]
        assert all(hv.get(k) for k in ("ansible_host", "node_ip", "pod_cidr", "pods", "mode")), (host, hv)

    # podnet's own inventory checks (the validate role's first task), without reaching any node.
    checked = subprocess.run([ANSIBLE, "localhost", "-i", inventory, "-o", "-m", "ansible.builtin.debug", "-a",
                              "msg={{ groups['nodes'] | podnet.fabric.validate_inventory(hostvars) }}"],
                             capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert checked.returncode == 0 and '"msg": "vxlan"' in checked.stdout, checked.stdout + checked.stderr

    # Every setting named in the example's comments is an option of the validate role, and the
    # values shown as defaults are its defaults.
    with open(os.path.join(ROOT, "roles", "validate", "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    named = {}
    for name in os.listdir(os.path.join(EXAMPLES, "group_vars")):
        with open(os.path.join(EXAMPLES, "group_vars", name)) as handle:
            for line in handle:
                match = re.match(r"^#?\s*((?:podnet_|node_)\w+|mode):\s*(\S+)", line)
                if match:
                    named[match.group(1)] = yaml.safe_load(match.group(2))
    assert "mode" in named and "podnet_vxlan_vni" in named
    for name, value in named.items():
        assert name in options, "%s is not an option of roles/validate" % name
        if "default" in options[name] and name not in ("mode", "podnet_direct_routing"):
            assert value == options[name]["default"], (name, value, options[name]["default"])
