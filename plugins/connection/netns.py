# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a network namespace of the local machine
version_added: 0.1.0
description:
  - Runs every command of a task on the controller, inside the named network namespace, with
    C(ip netns exec NAMESPACE /bin/sh -c COMMAND). This is how podnet's lab reaches its nodes,
    each inventory host being a namespace made by P(podnet.fabric.lab_topology#module).
  - C(ip netns exec) also remounts C(/sys) for the namespace, so fact gathering
    (M(ansible.builtin.setup)) sees the namespace's interfaces only.
  - Files are copied locally, as with the P(ansible.builtin.local#connection) connection, because the
    namespace shares the controller's file system.
  - A namespace that does not exist under C(/run/netns) makes the host unreachable.
author:
  - podnet developers (@podnet)
options:
  remote_addr:
    description:
      - The network namespace to run in (a name under C(/run/netns)).
      - Defaults to the inventory hostname; C(ansible_netns_name) wins over C(ansible_host).
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_name
  become_success_timeout:
    description:
      - Number of seconds to wait for become to succeed when enabled (as for the local connection).
      - The default will be used if the configured value is less than 1.
    type: int
    default: 10
    vars:
      - name: ansible_local_become_success_timeout
  become_strip_preamble:
    description:
      - Strip internal become output preceding command execution (as for the local connection).
    type: bool
    default: true
    vars:
      - name: ansible_local_become_strip_preamble
  pipelining:
    description:
      - Hand the module to Python on its standard input, in one C(ip netns exec), instead of
        copying it to a temporary directory first (five C(ip netns exec) a module). The
        namespace has no tty and the connection no privilege escalation of its own, so this is
        on unless switched off.
    type: bool
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
notes:
  - Needs root (C(ip netns exec) enters the namespace and remounts C(/sys)).
  - The remote user is ignored, as with the local connection.
  - C(ip netns exec) runs the command in a private mount namespace. A module that makes a new
    named namespace (C(ip netns add)) from inside must do it in PID 1's mount namespace, or the
    namespace is lost when the command ends; podnet's modules do.
requirements:
  - iproute2 (C(ip netns exec)).
"""

EXAMPLES = r"""
# inventory/hosts.yml: host1 is the namespace "host1" on this machine.
# nodes:
#   hosts:
#     host1:
#   vars:
#     ansible_connection: podnet.fabric.netns
#     ansible_python_interpreter: "{{ ansible_playbook_python }}"

# Ad hoc:
#   ansible -i 'host1,' -c podnet.fabric.netns all -m ansible.builtin.command -a 'ip -br a'
"""

import os
import shlex
import shutil

import ansible.constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

from ansible_collections.podnet.fabric.plugins.module_utils import validate

display = Display()

NETNS_DIR = "/run/netns"


class Connection(LocalConnection):
    """The local connection, with every command run under ``ip netns exec NAMESPACE``."""

    transport = "podnet.fabric.netns"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._netns = None
        self._ip = None

    def _connect(self):
        if not self._connected:
            name = self.get_option("remote_addr")
            try:
                validate.netns_name(name, "ansible_host")
            except validate.PodnetError as exc:
                raise AnsibleConnectionFailure("podnet.fabric.netns: %s" % exc)
            if not os.path.exists(os.path.join(NETNS_DIR, name)):
                raise AnsibleConnectionFailure(
                    "podnet.fabric.netns: network namespace %r does not exist (no %s/%s); "
                    "build the lab first (ansible-playbook playbooks/lab.yml)" % (name, NETNS_DIR, name))
            self._ip = shutil.which("ip") or next(
                (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip") if os.path.exists(p)), None)
            if self._ip is None:
                raise AnsibleConnectionFailure("podnet.fabric.netns: the ip command (iproute2) was not found")
            self._netns = name
            display.vvv("ESTABLISH NETNS CONNECTION TO NAMESPACE %s" % name, host=name)
        return super(Connection, self)._connect()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run ``cmd`` (a shell command line) inside the namespace."""
        self._connect()
        if not isinstance(cmd, str):
            cmd = " ".join(shlex.quote(to_text(part)) for part in cmd)
        shell = C.DEFAULT_EXECUTABLE.split()[0] if C.DEFAULT_EXECUTABLE else "/bin/sh"
        wrapped = " ".join(shlex.quote(part) for part in
                           (self._ip, "netns", "exec", self._netns, shell, "-c", to_text(cmd)))
        return super(Connection, self).exec_command(wrapped, in_data=in_data, sudoable=sudoable)
