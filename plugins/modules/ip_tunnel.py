#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ip_tunnel
short_description: Manage a node's ipip or vxlan tunnel device
version_added: 0.1.0
description:
  - Makes one ipip or vxlan tunnel device exist as described, set up (UP), with exactly the
    listed IPv4 addresses.
  - The device is podnet's when a link of that name exists and is of a tunnel kind podnet
    manages (ipip or vxlan). A same-named device of any other kind (a veth, a bridge, a
    physical interface) is never touched; the module fails and names it.
  - MTU, MAC, addresses and the UP flag are changed in place, and so are O(learning), O(ttl)
    and (vxlan) O(local), with C(ip link set NAME type KIND ...).
  - Any other differing attribute (the kind, O(vni), O(port), O(dev), O(group), ipip
    O(local) and O(remote)) cannot be changed in place, so the device is deleted and created
    again (its routes, FDB and neighbour entries go with it; the modules that own them put
    them back). With O(recreate=false) the module fails instead, naming the attributes.
  - On a kernel without IPIP, O(kind=ipip) fails with a message saying so, and nothing changes.
  - Links and addresses are read once with C(ip -details -json addr show).
author:
  - podnet developers (@podnet)
extends_documentation_fragment:
  - podnet.fabric.common
options:
  name:
    description: Device name (at most 15 characters; letters, digits and C(_ . @ -), not starting with C(-) or C(.)).
    type: str
    required: true
  kind:
    description:
      - Tunnel kind.
      - With O(state=absent), only a device of this kind is removed.
    type: str
    required: true
    choices: [ipip, vxlan]
  local:
    description:
      - Local (outer source) IPv4 address, normally the node IP.
      - Required for V(ipip) unless O(remote) is set (a tunnel with neither would be the
        kernel's own fallback device C(tunl0)).
    type: str
  remote:
    description:
      - ipip only. Remote endpoint for a point-to-point tunnel. Omit it for a one-to-many
        tunnel whose peers are chosen by routes (C(ip route ... via PEER dev NAME onlink)),
        as Calico's C(tunl0) and C(ip tunnel add mustang.tun0 mode ipip local 10.57.4.20 ttl 64) do.
    type: str
  ttl:
    description:
      - TTL of the outer header, 0..255 (0 means inherit / the kernel's choice).
      - Defaults to V(64) for ipip and V(0) for vxlan.
    type: int
  vni:
    description: vxlan only, and required for it. VXLAN network identifier, 1..16777215.
    type: int
  port:
    description: vxlan only. UDP destination port. Defaults to V(4789) (IANA; the Linux default 8472 is what flannel uses).
    type: int
  dev:
    description: vxlan only. Underlay interface the tunnel sends through (and joins O(group) on).
    type: str
  learning:
    description:
      - vxlan only. Learn remote MACs from received packets. Defaults to V(false) because podnet
        writes FDB entries itself (learning floods, as flannel notes).
    type: bool
  group:
    description: vxlan only. IPv4 multicast group for flooding and learning; needs O(dev).
    type: str
  mac:
    description:
      - vxlan only. Fixed MAC address of the device, e.g. the VTEP MAC podnet derives from the
        node IP, so that a recreated device keeps the MAC that peers' FDB and neighbour
        entries point to.
      - When omitted, the kernel picks a random MAC at creation and podnet leaves it alone.
    type: str
  mtu:
    description:
      - Device MTU (68..65535), e.g. underlay MTU - 20 for ipip, - 50 for vxlan.
      - When omitted, the kernel's choice at creation is kept.
    type: int
  addresses:
    description:
      - IPv4 addresses with prefix length (e.g. V(192.168.10.1/32)). The device is podnet's,
        so its IPv4 addresses are made exactly this list; others are removed.
      - When omitted, the device's addresses are left alone.
    type: list
    elements: str
  recreate:
    description:
      - Delete and recreate the device when an attribute that cannot change in place differs.
      - With V(false), the module fails and names those attributes instead.
    type: bool
    default: true
  replaces:
    description:
      - Devices this one replaces (podnet's device under an earlier name, from the node's record).
        Each that exists and is of kind O(kind) is deleted first (its routes, FDB and neighbour
        entries go with it); one of another kind is left alone. Ignored with O(state=absent).
    type: list
    elements: str
    default: []
  tx_checksum_offload:
    description:
      - Turn the device's C(tx-checksum-ip-generic) offload on or off with C(ethtool -K).
        V(false) is the known workaround for vxlan/ipip checksum-offload stalls
        (flannel and Calico troubleshooting guides).
      - When omitted, the offload is left alone. Needs C(ethtool) when set.
    type: bool
  kernel_module_file:
    description:
      - ipip only. Where to note (JSON) the kernel modules (C(ipip), C(tunnel4), C(ip_tunnel)) that
        creating this device made the kernel load. With O(state=absent), the modules noted there are
        unloaded (C(rmmod)) after the device is gone, which removes C(tunl0), when nothing else uses
        them; otherwise a warning says why C(tunl0) stays. The file is removed either way.
      - "Unloaded only when the node is the machine's initial network namespace (a real host, not a
        lab node or a container: the module belongs to the whole machine), no module holds them, no
        other ipip device exists in this namespace or in any under C(/run/netns), and C(tunl0) is down
        without an address."
      - Unset, kernel modules are left alone.
    type: path
notes:
  - A new device starts with the offload on; the device is set up (UP) last, after its addresses.
  - The first ipip device makes the kernel load its ipip module, which creates the fallback
    device C(tunl0) in every namespace. C(tunl0) is the kernel's, not podnet's, and cannot be deleted;
    only unloading the module removes it (see O(kernel_module_file)).
"""

EXAMPLES = r"""
- name: The seed's one-to-many ipip tunnel (ip tunnel add mustang.tun0 mode ipip local 10.57.4.20 ttl 64)
  podnet.fabric.ip_tunnel:
    name: mustang.tun0
    kind: ipip
    local: 10.57.4.20
    ttl: 64
    mtu: 1480
    addresses: [192.168.10.1/32]

- name: flannel-style vxlan device with a VTEP MAC derived from the node IP
  podnet.fabric.ip_tunnel:
    name: vxlan0
    kind: vxlan
    vni: 100
    port: 4789
    local: 10.57.4.20
    dev: eth0
    learning: false
    mac: 0e:50:0a:39:04:14
    mtu: 1450
    addresses: [192.168.10.1/32]
    tx_checksum_offload: false

- name: Remove the vxlan device
  podnet.fabric.ip_tunnel:
    name: vxlan0
    kind: vxlan
    state: absent
"""

RETURN = r"""
commands:
  description: The commands that ran (or, in check mode, would run), as argument lists.
  returned: always
  type: list
  elements: list
  sample: [["/usr/sbin/ip", "link", "add", "vxlan0", "address", "0e:50:0a:39:04:14", "type", "vxlan",
            "id", "100", "dstport", "4789", "local", "10.57.4.20", "dev", "eth0", "nolearning", "ttl", "0"],
           ["/usr/sbin/ip", "addr", "add", "192.168.10.1/32", "dev", "vxlan0"],
           ["/usr/sbin/ip", "link", "set", "vxlan0", "up"]]
device:
  description:
    - The device's normalised attributes after the run (as planned in check mode), null when absent.
    - Attributes the kernel chooses at creation (a random MAC, the MTU) are null in check mode.
  returned: always
  type: dict
  sample: {"name": "vxlan0", "kind": "vxlan", "local": "10.57.4.20", "vni": 100, "port": 4789,
           "dev": "eth0", "group": null, "learning": false, "ttl": 0, "mac": "0e:50:0a:39:04:14",
           "mtu": 1450, "addresses": ["192.168.10.1/32"], "up": true}
mac:
  description: The device's MAC address after the run (null for ipip, which has none, and when absent).
  returned: always
  type: str
  sample: 0e:50:0a:39:04:14
action:
  description: What was (or would be) done, one of V(create), V(recreate), V(update), V(delete), V(none).
  returned: always
  type: str
  sample: update
recreate_reasons:
  description: The attributes that forced a recreate, as C(name (old -> new)).
  returned: always
  type: list
  elements: str
  sample: ["vni (100 -> 200)"]
"""

import json
import os

from ansible_collections.podnet.fabric.plugins.module_utils import kmod, skeleton, tunnel
from ansible_collections.podnet.fabric.plugins.module_utils.netns import NETNS_DIR
from ansible_collections.podnet.fabric.plugins.module_utils.runner import CommandError, Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


def read_offload(runner, want, have):
    """The device's tx-checksum-ip-generic (True/False) when it is managed and can change, else None."""
    name = want["name"]
    if want["state"] != "present" or want["tx_checksum_offload"] is None or have is None \
            or have["kind"] != want["kind"]:
        return None
    offload, fixed = tunnel.parse_offload(runner.read("ethtool", ["-k", name]))
    if offload is None:
        raise PodnetError("tx_checksum_offload: ethtool -k %s shows no %s feature" % (name, tunnel.CSUM_FEATURE))
    if fixed and offload != want["tx_checksum_offload"]:
        raise PodnetError("tx_checksum_offload: %s is fixed %s on %s and cannot be changed"
                          % (tunnel.CSUM_FEATURE, "on" if offload else "off", name))
    return offload


def _sys(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def loaded_modules(kind):
    """The modules of ``kind`` (kmod.MODULES) loaded as loadable modules (built-in ones have no initstate)."""
    return set(m for m in kmod.MODULES.get(kind, ()) if _sys("/sys/module/%s/initstate" % m) == "live")


def refcounts(kind):
    counts = {}
    for m in kmod.MODULES.get(kind, ()):
        text = _sys("/sys/module/%s/refcnt" % m)
        counts[m] = int(text) if text is not None and text.isdigit() and _sys("/sys/module/%s/initstate" % m) else None
    return counts


def read_record(path):
    text = _sys(path)
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def write_record(path, data):
    directory = os.path.dirname(path)
    if directory:
        # exist_ok: nodes of the lab share one machine and may make it at the same time.
        os.makedirs(directory, 0o755, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    os.rename(tmp, path)


def in_init_netns(netns):
    """True when the module works in the machine's initial network namespace (a real host)."""
    if netns is not None:
        return False
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False


def other_devices(runner, kind, own, init_netns):
    """("namespace/name") of every device of ``kind`` but ``own`` and the fallback device, here and,
    on the initial namespace, in every namespace under /run/netns; and whether the fallback device
    here is configured (up, or with an address)."""
    fallback = kmod.FALLBACK[kind]
    used, others = False, []
    spaces = [None] + (sorted(os.listdir(NETNS_DIR)) if init_netns and os.path.isdir(NETNS_DIR) else [])
    for space in spaces:
        for link in runner.read_json("ip", ["-details", "addr", "show"], netns=space, missing_ok=space is not None) or []:
            if not link or link.get("linkinfo", {}).get("info_kind") != kind:
                continue
            if link.get("ifname") == fallback:
                if space is None and ("UP" in link.get("flags", []) or link.get("addr_info")):
                    used = True
            elif not (space is None and link.get("ifname") == own):
                others.append("%s/%s" % (space or "this namespace", link.get("ifname")))
    return others, used


def kernel_modules(module, runner, want, acted, before):
    """Record what creating the device loaded (``acted``: created now); after a removal (``acted``:
    removed now, or a record is left), unload them when nothing else uses them, or say why tunl0
    stays. True when something changed (the record or the modules)."""
    path, kind = module.params["kernel_module_file"], want["kind"]
    if not path or kind not in kmod.MODULES:
        return False
    if want["state"] == "present":
        if not acted or module.check_mode:
            return False
        newly = kmod.loaded_by_creation(kind, before, loaded_modules(kind))
        if not newly:
            return False
        record = read_record(path)
        record[kind] = sorted(set(record.get(kind, [])) | set(newly))
        write_record(path, record)
        return True
    record, had = read_record(path), os.path.exists(path)
    if not had and not acted:
        return False
    init = in_init_netns(module.params["netns"])
    others, used = other_devices(runner, kind, want["name"], init)
    modules, why = kmod.unload(kind, record.get(kind, []), init, refcounts(kind), others, used)
    if why:
        module.warn("podnet: %s" % why)
    for name in modules:
        rc, out, err = runner.try_run("rmmod", [name])
        if rc != 0:
            module.warn("podnet: could not unload %s (%s); %s stays" % (name, (err or out).strip(), kmod.FALLBACK[kind]))
            break
    if had and not module.check_mode:
        os.unlink(path)
    return bool(modules) or had


def converge(module):
    want = tunnel.wanted(module.params)
    name = want["name"]
    runner = Runner(module, module.params["netns"])
    have, names = tunnel.parse(runner.read_json("ip", ["-details", "addr", "show"]), name)
    plan = tunnel.plan(want, have, names, read_offload(runner, want, have))
    for warning in plan.warnings:
        module.warn(warning)
    creating = plan.facts["action"] in ("create", "recreate")
    before = loaded_modules(want["kind"]) if creating and module.params["kernel_module_file"] else set()

    for tool, args in plan.commands:
        if tool == "ip" and args[:2] == ["link", "add"]:
            rc, out, err = runner.try_run(tool, args)
            if rc != 0:
                raise CommandError(tunnel.create_failed(want["kind"], args, (err or out).strip()),
                                   runner.argv(tool, args), rc, out, err, runner.commands)
        else:
            runner.run(tool, args)

    removed = want["state"] == "absent" and bool(plan.commands)
    modules_changed = kernel_modules(module, runner, want, creating or removed, before)
    after = plan.after
    if creating and not module.check_mode:
        # Report what the kernel chose (a random MAC, the MTU) from the new device.
        device, _names = tunnel.parse(runner.read_json("ip", ["-details", "addr", "show", "dev", name]), name)
        after = tunnel.public(device)
    return skeleton.result(runner, bool(plan.commands) or modules_changed, {"device": plan.before}, {"device": after},
                           device=after, mac=after.get("mac") if after else None,
                           action=plan.facts["action"], recreate_reasons=plan.facts["reasons"])


def main():
    skeleton.main(converge, dict(
        skeleton.COMMON_ARGS,
        name=dict(type="str", required=True),
        kind=dict(type="str", required=True, choices=list(tunnel.KINDS)),
        local=dict(type="str"),
        remote=dict(type="str"),
        ttl=dict(type="int"),
        vni=dict(type="int"),
        port=dict(type="int"),
        dev=dict(type="str"),
        learning=dict(type="bool"),
        group=dict(type="str"),
        mac=dict(type="str"),
        mtu=dict(type="int"),
        addresses=dict(type="list", elements="str"),
        recreate=dict(type="bool", default=True),
        replaces=dict(type="list", elements="str", default=[]),
        tx_checksum_offload=dict(type="bool"),
        kernel_module_file=dict(type="path"),
    ))


if __name__ == "__main__":
    main()
