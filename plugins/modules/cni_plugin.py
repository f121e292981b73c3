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

from ansible_collections.podnet.fabric.plugins.module_utils import cni, files, skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.runner import Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError

_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# What host-local keeps in a network's directory: a file per address, its lock, its cursors.
_RESERVATION_RE = re.compile(r"^([0-9.]+|[0-9a-fA-F:]+|lock|last_reserved_ip\.[0-9]+)$")


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


def present(module, runner, paths, texts, record, before):
    """The plugin and the config, as this node's defaults make them (unchanged files stay)."""
    p = module.params
    try:
        network = ipaddress.IPv4Network(p["pod_cidr"])
        gateway = str(ipaddress.IPv4Address(p["gateway"]))
        exclude = [str(ipaddress.IPv4Address(a)) for a in p["exclude"]]
        defaults = cni.node_defaults(str(network), exclude, gateway, p["mtu"], p["data_dir"])
    except ValueError as exc:
        raise PodnetError("pod_cidr, gateway, exclude: %s" % exc)
    if p["mtu"] is not None and not 68 <= p["mtu"] <= 65535:
        raise PodnetError("mtu: %d is not an MTU (68..65535)" % p["mtu"])
    for path, text, ours in zip(paths, texts, (_ours_plugin, _ours_conflist)):
        if text is not None and not ours(text):
            raise PodnetError("%s exists and is not podnet's; podnet will not overwrite it" % path)
    config = cni.network_config(p["network"], defaults, p["portmap"])
    wants = (cni.executable(inspect.getsource(cni), defaults, p["python"]),
             json.dumps(config, indent=2, sort_keys=True) + "\n")
    created = []
    for directory in (p["bin_dir"], p["conf_dir"], p["data_dir"]):
        _makedirs(directory, created, module.check_mode)
    changed = bool(created)
    for path, text, want, mode in zip(paths, texts, wants, (0o755, 0o644)):
        if text != want or not os.access(path, os.X_OK if mode == 0o755 else os.R_OK):
            changed = True
            if not module.check_mode:
                _write(module, path, want, mode)
    if created and p["record"] and not module.check_mode:
        record["created"] = record.get("created", []) + created
        _makedirs(os.path.dirname(p["record"]), [], False)
        _write(module, p["record"], json.dumps(record, indent=2) + "\n", 0o644)
    after = dict(before, plugin=True, config=config)
    return skeleton.result(runner, changed, before, after, plugin=paths[0], conflist=paths[1], config=config,
                           runtime_pods=before["runtime_pods"])


def absent(module, runner, paths, texts, record, before):
    """The runtime pods' host sides (each pair goes with its host end), stray routes of theirs, the
    reservations, the plugin and the config, then the directories this module made."""
    p = module.params
    names = before["runtime_pods"]
    for name in names:
        runner.run("ip", ["link", "del", "dev", name])
    for item in runner.read_json("ip", ["route", "show", "table", "all", "proto", str(cni.ROUTE_PROTOCOL)]):
        if module.check_mode and item.get("dev") in names:
            continue
        args = ["route", "del", item["dst"]] + (["dev", item["dev"]] if item.get("dev") else [])
        runner.run("ip", args + ["proto", str(cni.ROUTE_PROTOCOL), "table", str(item.get("table", "main"))])
    changed = bool(runner.commands)
    reservations = os.path.join(p["data_dir"], p["network"])
    if os.path.isdir(reservations) and all(_RESERVATION_RE.match(f) for f in os.listdir(reservations)):
        changed = True
        if not module.check_mode:
            for entry in os.listdir(reservations):
                os.unlink(os.path.join(reservations, entry))
            os.rmdir(reservations)
    for path, text, ours in zip(paths, texts, (_ours_plugin, _ours_conflist)):
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
    return skeleton.result(runner, changed, before, dict(plugin=False, config=None, runtime_pods=[]),
                           plugin=paths[0], conflist=paths[1], config=None, runtime_pods=names)


def converge(module):
    p = module.params
    if not _NETWORK_RE.match(p["network"]):
        raise PodnetError("network: %r is not a network name (letters, digits, _ . -)" % p["network"])
    for key in ("bin_dir", "conf_dir", "data_dir", "python"):
        if not p[key].startswith("/"):
            raise PodnetError("%s: %r is not an absolute path" % (key, p[key]))
    paths = (os.path.join(p["bin_dir"], cni.PLUGIN_TYPE), os.path.join(p["conf_dir"], "10-%s.conflist" % p["network"]))
    texts = tuple(files.read_text(path) for path in paths)
    record = json.loads(files.read_text(p["record"]) or "{}") if p["record"] else {}
    runner = Runner(module, p["netns"])
    names = [link["ifname"] for link in runner.links() if cni.is_runtime_link(link)]
    before = dict(plugin=texts[0] is not None, config=json.loads(texts[1]) if _ours_conflist(texts[1]) else None,
                  runtime_pods=names)
    return (present if p["state"] == "present" else absent)(module, runner, paths, texts, record, before)


def main():
    skeleton.main(converge, dict(
        skeleton.COMMON_ARGS,
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
    ), required_if=[("state", "present", ["pod_cidr"])])


if __name__ == "__main__":
    main()
