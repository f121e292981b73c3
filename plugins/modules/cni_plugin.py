#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cni_plugin
short_description: Install podnet's CNI plugin and the node's network config, or take them and the runtime pods away
version_added: 0.2.0
description:
  - Makes podnet the node's CNI plugin, so container runtimes (containerd, CRI-O, podman) wire their
    containers as podnet wires its pods (CNI SPEC 1.0.0 C(ADD), C(DEL), C(CHECK), C(VERSION)).
  - With O(state=present), writes the executable C(BIN_DIR/podnet) (Python standard library only; the
    plugin's source is C(plugins/module_utils/cni.py), with the node's defaults appended) and the
    network config C(CONF_DIR/10-NETWORK.conflist) with podnet first (gateway, MTU, C(host-local)
    IPAM over O(pod_cidr) without the tunnel address and O(exclude)) and, with O(portmap), the standard
    C(portmap) plugin for hostPort. A config that names only C(cniVersion), C(name), C(type) and
    C(ipam) gets the same defaults from the executable.
  - A file at either path that is not podnet's is never overwritten; the module fails and names it.
  - With O(state=absent), removes every runtime pod's host side (veths named C(pnc...) of kind veth
    whose alias starts with C(podnet-cni ); the container end goes with the pair), any route left with
    the runtime pods' route protocol C(151), the network's C(host-local) reservations, the plugin, the
    config, and the directories O(record) says this module made.
  - Host routes of runtime pods carry protocol C(151), never podnet's C(150), so
    P(podnet.fabric.node_route#module)'s purge never removes them; the inventory's pods never look at
    C(pnc...) veths.
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  pod_cidr:
    description:
      - The node's pod CIDR; C(host-local) hands out its addresses except the first host (podnet's
        tunnel address) and O(exclude).
      - Required with O(state=present).
    type: str
  exclude:
    description: Addresses C(host-local) must never hand out (the inventory's pods on this node).
    type: list
    elements: str
    default: []
  gateway:
    description: The pods' default gateway, answered by proxy ARP on the host veth.
    type: str
    default: 169.254.10.24
  mtu:
    description: MTU of both veth ends (podnet's pod MTU); unset, the kernel's default.
    type: int
  network:
    description: The network's name (what C(podman run --network NAME) names); the config file is C(10-NETWORK.conflist).
    type: str
    default: podnet
  bin_dir:
    description: Where the runtime looks for CNI plugins (containerd C(bin_dir), podman C(cni_plugin_dirs)).
    type: path
    default: /opt/cni/bin
  conf_dir:
    description: Where the runtime reads network configs (containerd C(conf_dir), podman C(network_config_dir)).
    type: path
    default: /etc/cni/net.d
  data_dir:
    description: C(host-local)'s reservations (C(dataDir)); the network's own directory is C(DATA_DIR/NETWORK).
    type: path
    default: /var/lib/cni/networks
  portmap:
    description: Chain the standard C(portmap) plugin (hostPort) after podnet in the config.
    type: bool
    default: true
  python:
    description: The node's Python 3 for the plugin's shebang.
    type: path
    default: /usr/bin/python3
  record:
    description:
      - A JSON file where the module notes the directories it made, so O(state=absent) removes exactly
        those (when empty; in O(conf_dir) podman's own C(cni.lock) goes too). Unset, no directory is
        ever removed.
    type: path
notes:
  - In the lab, where the node namespaces share one file system, give each node its own O(bin_dir),
    O(conf_dir) and O(data_dir) (podnet.fabric.cni's defaults put them under C(podnet_state_dir)).
  - The C(host-local) and C(portmap) plugins come from the runtime's plugin path (Debian
    C(containernetworking-plugins), in C(/usr/lib/cni)); the plugin also searches C(/opt/cni/bin) and
    C(/usr/lib/cni) when the runtime passes no C(CNI_PATH).
requirements:
  - C(nsenter) (util-linux) and C(host-local) on the node, for the plugin.
"""

EXAMPLES = r"""
- name: Make podnet the node's CNI plugin (vxlan MTU; pod-a keeps 192.168.10.10)
  podnet.fabric.cni_plugin:
    pod_cidr: 192.168.10.0/24
    exclude: [192.168.10.10]
    mtu: 1450
    record: /var/lib/podnet/host1-cni.json

- name: Take it away with every runtime pod's host side
  podnet.fabric.cni_plugin:
    state: absent
    record: /var/lib/podnet/host1-cni.json
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/ip", "link", "del", "dev", "pnc51be1bb0c55f"]]
plugin:
  description: Path of the plugin executable.
  returned: always
  type: str
  sample: /opt/cni/bin/podnet
conflist:
  description: Path of the network config.
  returned: always
  type: str
  sample: /etc/cni/net.d/10-podnet.conflist
config:
  description: The network config written (null with O(state=absent)).
  returned: always
  type: dict
  sample: {"cniVersion": "1.0.0", "name": "podnet", "plugins": [{"type": "podnet", "gateway": "169.254.10.24"}]}
runtime_pods:
  description: Host veths of runtime pods found on the node (removed with O(state=absent)).
  returned: always
  type: list
  elements: str
  sample: [pnc51be1bb0c55f]
"""

import inspect
import ipaddress
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.podnet.fabric.plugins.module_utils import cni, iproute

_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# What host-local keeps in a network's directory: a file per address, its lock, its cursors.
_RESERVATION_RE = re.compile(r"^([0-9.]+|[0-9a-fA-F:]+|lock|last_reserved_ip\.[0-9]+)$")


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _ours_plugin(text):
    return text is not None and cni.MARKER in text.split("\n", 2)[:2]


def _ours_conflist(text):
    try:
        conf = json.loads(text)
        return conf["plugins"][0]["type"] == cni.PLUGIN_TYPE
    except (ValueError, TypeError, KeyError, IndexError):
        return False


def _makedirs(path, created, check_mode):
    """Make ``path`` and its missing parents; note each one made (outermost first)."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        if not check_mode:
            try:
                os.mkdir(directory, 0o755)
            except FileExistsError:
                # The lab's nodes share one file system: another node made it just now.
                continue
        created.append(directory)


def _write(module, path, text, mode):
    tmp = path + ".podnet-tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    module.atomic_move(tmp, path)
    # atomic_move gives a new file the umask's mode.
    os.chmod(path, mode)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            iproute.COMMON_ARGS,
            pod_cidr=dict(type="str"),
            exclude=dict(type="list", elements="str", default=[]),
            gateway=dict(type="str", default=cni.DEFAULT_GATEWAY),
            mtu=dict(type="int"),
            network=dict(type="str", default="podnet"),
            bin_dir=dict(type="path", default="/opt/cni/bin"),
            conf_dir=dict(type="path", default="/etc/cni/net.d"),
            data_dir=dict(type="path", default=cni.DEFAULT_DATA_DIR),
            portmap=dict(type="bool", default=True),
            python=dict(type="path", default="/usr/bin/python3"),
            record=dict(type="path"),
        ),
        required_if=[("state", "present", ["pod_cidr"])],
        supports_check_mode=True,
    )
    p = module.params
    if not _NETWORK_RE.match(p["network"]):
        module.fail_json(msg="network: %r is not a network name (letters, digits, _ . -)" % p["network"])
    for key in ("bin_dir", "conf_dir", "data_dir", "python"):
        if not p[key].startswith("/"):
            module.fail_json(msg="%s: %r is not an absolute path" % (key, p[key]))
    plugin_path = os.path.join(p["bin_dir"], cni.PLUGIN_TYPE)
    conf_path = os.path.join(p["conf_dir"], "10-%s.conflist" % p["network"])
    plugin_text, conf_text = _read(plugin_path), _read(conf_path)
    record = json.loads(_read(p["record"]) or "{}") if p["record"] else {}
    ip = iproute.IpRoute(module, p["netns"])
    runtime = [link for link in ip.links() if cni.is_runtime_link(link)]
    names = [link["ifname"] for link in runtime]
    before = dict(plugin=plugin_text is not None, config=json.loads(conf_text) if _ours_conflist(conf_text) else None,
                  runtime_pods=names)

    if p["state"] == "present":
        try:
            network = ipaddress.IPv4Network(p["pod_cidr"])
            gateway = str(ipaddress.IPv4Address(p["gateway"]))
            exclude = [str(ipaddress.IPv4Address(a)) for a in p["exclude"]]
            defaults = cni.node_defaults(str(network), exclude, gateway, p["mtu"], p["data_dir"])
        except ValueError as exc:
            module.fail_json(msg="pod_cidr, gateway, exclude: %s" % exc)
        if p["mtu"] is not None and not 68 <= p["mtu"] <= 65535:
            module.fail_json(msg="mtu: %d is not an MTU (68..65535)" % p["mtu"])
        for path, text, ours in ((plugin_path, plugin_text, _ours_plugin), (conf_path, conf_text, _ours_conflist)):
            if text is not None and not ours(text):
                module.fail_json(msg="%s exists and is not podnet's; podnet will not overwrite it" % path)
        config = cni.network_config(p["network"], defaults, p["portmap"])
        want_plugin = cni.executable(inspect.getsource(cni), defaults, p["python"])
        want_conf = json.dumps(config, indent=2, sort_keys=True) + "\n"
        created = []
        for directory in (p["bin_dir"], p["conf_dir"], p["data_dir"]):
            _makedirs(directory, created, module.check_mode)
        changed = bool(created)
        if plugin_text != want_plugin or not os.access(plugin_path, os.X_OK):
            changed = True
            if not module.check_mode:
                _write(module, plugin_path, want_plugin, 0o755)
        if conf_text != want_conf:
            changed = True
            if not module.check_mode:
                _write(module, conf_path, want_conf, 0o644)
        if created and p["record"] and not module.check_mode:
            record["created"] = record.get("created", []) + created
            _makedirs(os.path.dirname(p["record"]), [], False)
            _write(module, p["record"], json.dumps(record, indent=2) + "\n", 0o644)
        after = dict(plugin=True, config=config, runtime_pods=names)
        ip.result(changed, before=before, after=after, plugin=plugin_path, conflist=conf_path, config=config,
                  runtime_pods=names)

    # absent: the runtime pods' host sides (each pair goes with its host end), stray routes of theirs,
    # the reservations, the plugin and the config, then the directories this module made.
    for name in names:
        ip.run("ip", ["link", "del", "dev", name])
    gone = set(names)
    for item in ip.read_json("ip", ["route", "show", "table", "all", "proto", str(cni.ROUTE_PROTOCOL)]):
        if module.check_mode and item.get("dev") in gone:
            continue
        args = ["route", "del", item["dst"]] + (["dev", item["dev"]] if item.get("dev") else [])
        ip.run("ip", args + ["proto", str(cni.ROUTE_PROTOCOL), "table", str(item.get("table", "main"))])
    changed = bool(ip.commands)
    reservations = os.path.join(p["data_dir"], p["network"])
    if os.path.isdir(reservations) and all(_RESERVATION_RE.match(f) for f in os.listdir(reservations)):
        changed = True
        if not module.check_mode:
            for entry in os.listdir(reservations):
                os.unlink(os.path.join(reservations, entry))
            os.rmdir(reservations)
    for path, text, ours in ((plugin_path, plugin_text, _ours_plugin), (conf_path, conf_text, _ours_conflist)):
        if text is not None and ours(text):
            changed = True
            if not module.check_mode:
                os.unlink(path)
    if p["record"] and os.path.exists(p["record"]):
        changed = True
        if not module.check_mode:
            os.unlink(p["record"])
            for directory in reversed(record.get("created", [])):
                # podman's CNI backend leaves its lock file cni.lock in the config directory.
                if os.path.isdir(directory) and os.listdir(directory) == ["cni.lock"] and directory == p["conf_dir"]:
                    os.unlink(os.path.join(directory, "cni.lock"))
                if os.path.isdir(directory) and not os.listdir(directory):
                    os.rmdir(directory)
    ip.result(changed, before=before, after=dict(plugin=False, config=None, runtime_pods=[]),
              plugin=plugin_path, conflist=conf_path, config=None, runtime_pods=names)


if __name__ == "__main__":
    main()
