#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight
short_description: Probe the underlay between nodes before podnet wires pods (ICMP, IPIP, VXLAN's UDP, path MTU)
version_added: 0.1.0
description:
  - Three steps, each run on every node before the next starts (C(playbooks/plan.yml) runs them
    with the linear strategy), find out what the underlay carries from each node to each peer.
  - O(state=listen) opens raw sockets (ICMP, and IP protocol 4 or UDP as O(kinds) says) on the
    node and leaves a listener process behind that records every marked probe of this run
    (O(run)) arriving from anywhere, for at most O(lifetime) seconds. The sockets are open
    before the module returns, so no probe sent afterwards is missed.
  - Raw sockets receive a copy of every incoming packet of their protocol, whatever else handles
    it, so the probe works on a kernel without the ipip module and while podnet's own VXLAN
    device already owns the UDP port (a rerun).
  - O(state=send) sends every probe of O(probes) to every address of O(peers), from O(local),
    with don't-fragment set (C(IP_PMTUDISC_PROBE)), so a packet larger than a link on the path is
    dropped there instead of being fragmented.
  - O(state=collect) stops the listener and returns what arrived, by sender address.
  - The probes are an ICMP echo request (C(icmp)); an IPv4 packet in IP protocol 4 (C(ipip)), the
    inner one of protocol 253 (experimental) from O(local) to the peer; a UDP datagram to O(port)
    (C(udp)) with a VXLAN header whose I flag is clear, so no VXLAN device takes it. Each carries
    the marker C(PODNETPF) and O(run). C(size) is the whole IP packet, headers included.
  - Nothing on the node changes (the listener's two files in the temporary directory are removed
    by O(state=collect)); never reports a change.
author:
  - podnet developers (@podnet)
options:
  state:
    description: The step.
    type: str
    choices: [listen, send, collect]
    required: true
  run:
    description: This run's marker (up to 16 letters or digits); a probe carrying another one is ignored.
    type: str
    required: true
  local:
    description: The node's underlay address (probes are sent from it; the listener's files are named after it).
    type: str
    required: true
  kinds:
    description: O(state=listen) - the probe kinds to listen for.
    type: list
    elements: str
    choices: [icmp, ipip, udp]
    default: [icmp]
  port:
    description: The UDP port of C(udp) probes (the VXLAN port).
    type: int
    default: 4789
  lifetime:
    description: O(state=listen) - seconds after which the listener stops on its own (a run that never collects).
    type: int
    default: 120
  peers:
    description: O(state=send) - the peers' underlay addresses. Only these are ever sent to.
    type: list
    elements: str
    default: []
  probes:
    description: O(state=send) - C([kind, size]) pairs, each sent to every peer.
    type: list
    elements: list
    default: []
  expect:
    description:
      - O(state=collect) - per sender address, the C([kind, size]) probes it sent here; those that did
        not arrive are returned as RV(missing).
    type: dict
    default: {}
  wait:
    description: O(state=collect) - seconds to wait for the listener's result.
    type: int
    default: 10
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It changes nothing, so it probes in check mode too.
  diff_mode:
    support: none
  platform:
    support: N/A
    platforms: posix
notes:
  - Needs root (raw sockets). Linux only (the raw socket semantics above).
  - The listener is a child process of the module, in the node's network namespace; it stops at
    O(state=collect) or after O(lifetime) seconds.
"""

EXAMPLES = r"""
- name: Listen for probes (every node)
  podnet.fabric.preflight:
    state: listen
    run: 3f2a9c81d0e4b7a5
    local: 10.57.4.20
    kinds: [icmp, udp]

- name: Probe the peers (every node, after all listen)
  podnet.fabric.preflight:
    state: send
    run: 3f2a9c81d0e4b7a5
    local: 10.57.4.20
    peers: [10.57.4.21]
    probes: [[icmp, 100], [udp, 100], [udp, 1500], [udp, 1400]]

- name: What arrived (every node, after all sent)
  podnet.fabric.preflight:
    state: collect
    run: 3f2a9c81d0e4b7a5
    local: 10.57.4.20
  register: heard
"""

RETURN = r"""
pid:
  description: O(state=listen) - the listener's process id.
  returned: when state is listen
  type: int
  sample: 4242
sent:
  description: O(state=send) - how many probes were sent.
  returned: when state is send
  type: int
  sample: 12
errors:
  description: O(state=send) - probes the node itself refused to send, each C([peer, kind, size, error]).
  returned: when state is send
  type: list
  elements: list
  sample: []
received:
  description: O(state=collect) - per sender address, the C([kind, size]) probes that arrived.
  returned: when state is collect
  type: dict
  sample: {"10.57.4.21": [["icmp", 100], ["udp", 100], ["udp", 1500]]}
missing:
  description: O(state=collect) - per sender address in O(expect), the probes that did not arrive (none, not listed).
  returned: when state is collect
  type: dict
  sample: {"10.57.4.21": [["udp", 1500]]}
"""

import ctypes
import errno
import json
import os
import re
import select
import signal
import socket
import struct
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

MAGIC = b"PODNETPF"
PROTO = {"icmp": socket.IPPROTO_ICMP, "ipip": 4, "udp": socket.IPPROTO_UDP}
KIND_BYTE = {"icmp": b"I", "ipip": b"4", "udp": b"U"}
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_PROBE = 3
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
# After collect's signal, the listener reads on this long for probes still on the wire.
GRACE = 0.3
SO_ATTACH_FILTER = 26
_LDX_MSH = 0xB1   # X = 4 * (P[k] & 0xf)
_LD_H_IND = 0x48  # A = P[X + k : 2]
_LD_B_IND = 0x50  # A = P[X + k]
_JEQ = 0x15
_RET = 0x06
# Classic BPF on the raw sockets, so the kernel hands the listener only what could be a probe, not
# every packet of the protocol (on a rerun, all of the cluster's tunnel traffic): X = the IP header
# length, then ICMP type 8 (echo request), IP-in-IP whose inner protocol is 253, UDP to the port
# whose VXLAN flags byte is 0 (the I flag clear: never real VXLAN traffic).
_ACCEPT = [(_RET, 0, 0, 0xFFFF), (_RET, 0, 0, 0)]
FILTERS = {
    "icmp": lambda port: [(_LDX_MSH, 0, 0, 0), (_LD_B_IND, 0, 0, 0), (_JEQ, 0, 1, 8)] + _ACCEPT,
    "ipip": lambda port: [(_LDX_MSH, 0, 0, 0), (_LD_B_IND, 0, 0, 9), (_JEQ, 0, 1, 253)] + _ACCEPT,
    "udp": lambda port: [(_LDX_MSH, 0, 0, 0), (_LD_H_IND, 0, 0, 2), (_JEQ, 0, 3, port),
                         (_LD_B_IND, 0, 0, 8), (_JEQ, 0, 1, 0)] + _ACCEPT,
}


def _attach_filter(sock, program):
    """Attach a classic BPF program (``[(code, jt, jf, k)]``); without it the listener filters alone."""
    blob = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(blob)))
    except OSError:
        pass


def _paths(token, local):
    base = os.path.join(tempfile.gettempdir(), "podnet-preflight-%s-%s" % (token, local))
    return base + ".pid", base + ".json"


def _marker(token, kind):
    return MAGIC + token.encode().ljust(16, b"\0") + KIND_BYTE[kind]


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def packet(kind, size, token, local, peer):
    """What the socket of ``kind`` is given to send, so that the IP packet is ``size`` bytes."""
    mark = _marker(token, kind)
    if kind == "icmp":
        body = mark.ljust(size - 28, b"\0")
        head = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, 1)
        return struct.pack("!BBHHH", 8, 0, _checksum(head + body), os.getpid() & 0xFFFF, 1) + body
    if kind == "ipip":
        body = mark.ljust(size - 40, b"\0")
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size - 20, 0, 0x4000, 1, 253, 0,
                           socket.inet_aton(local), socket.inet_aton(peer))
        return head[:10] + struct.pack("!H", _checksum(head)) + head[12:] + body
    # udp: a VXLAN header with the I flag clear (no VXLAN device takes it), then the marker.
    return (b"\0" * 8 + mark).ljust(size - 28, b"\0")


def parse(data, token, port):
    """``(source address, kind, IP total length)`` of a marked probe of this run, else None."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    total, proto, src = struct.unpack("!H", data[2:4])[0], data[9], socket.inet_ntoa(data[12:16])
    if proto == PROTO["icmp"] and len(data) >= ihl + 8 and data[ihl] == 8:
        kind, start = "icmp", ihl + 8
    elif proto == PROTO["ipip"] and len(data) >= ihl + 20:
        kind, start = "ipip", ihl + (data[ihl] & 0x0F) * 4
    elif proto == PROTO["udp"] and len(data) >= ihl + 16 and struct.unpack("!H", data[ihl + 2:ihl + 4])[0] == port:
        kind, start = "udp", ihl + 16
    else:
        return None
    mark = _marker(token, kind)
    return (src, kind, total) if data[start:start + len(mark)] == mark else None


def _listen_loop(socks, token, port, lifetime, result_path, pid_path):
    """The listener process: record marked probes until signalled (then GRACE more) or lifetime."""
    got = {}
    deadline = [time.monotonic() + lifetime]

    def stop(_signum, _frame):
        deadline[0] = min(deadline[0], time.monotonic() + GRACE)

    signal.signal(signal.SIGTERM, stop)
    while True:
        left = deadline[0] - time.monotonic()
        if left <= 0:
            break
        try:
            # Short waits: select resumes after a signal with its first timeout (PEP 475).
            ready = select.select(socks, [], [], min(left, 0.1))[0]
        except (OSError, InterruptedError):
            continue
        for sock in ready:
            try:
                data = sock.recv(65535)
            except OSError:
                continue
            found = parse(data, token, port)
            if found:
                got.setdefault(found[0], set()).add((found[1], found[2]))
    # What queued while the listener was not scheduled (a loaded node) still counts.
    for sock in socks:
        sock.setblocking(False)
        while True:
            try:
                found = parse(sock.recv(65535), token, port)
            except OSError:
                break
            if found:
                got.setdefault(found[0], set()).add((found[1], found[2]))
    tmp = result_path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(dict((src, sorted([k, s] for k, s in items)) for src, items in got.items()), handle)
    os.rename(tmp, result_path)
    try:
        os.unlink(pid_path)
    except OSError:
        pass


def listen(module, token, local):
    params = module.params
    pid_path, result_path = _paths(token, local)
    for path in (pid_path, result_path):
        if os.path.lexists(path):
            module.fail_json(msg="a listener of this run already exists on %s (%s)" % (local, path))
    socks = []
    for kind in sorted(set(params["kinds"])):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO[kind])
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        _attach_filter(sock, FILTERS[kind](params["port"]))
        socks.append(sock)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        # First child: a new session, then the listener as a grandchild that nothing waits for.
        os.close(read_end)
        os.setsid()
        grandchild = os.fork()
        if grandchild:
            os.write(write_end, str(grandchild).encode())
            os._exit(0)
        os.close(write_end)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        code = 0
        try:
            _listen_loop(socks, token, params["port"], params["lifetime"], result_path, pid_path)
        except Exception:  # pylint: disable=broad-except
            code = 1
        os._exit(code)
    os.close(write_end)
    os.waitpid(child, 0)
    pid = int(os.read(read_end, 32) or b"0")
    os.close(read_end)
    for sock in socks:
        sock.close()
    with open(pid_path, "w") as handle:
        handle.write("%d %s\n" % (pid, token))
    return dict(changed=False, pid=pid)


def send(module, token, local):
    params = module.params
    sockets, sent, errors = {}, 0, []
    try:
        for peer in params["peers"]:
            for kind, size in params["probes"]:
                if kind not in sockets:
                    if kind == "udp":
                        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    else:
                        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO[kind])
                    sock.bind((local, 0))
                    sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
                    sockets[kind] = sock
                try:
                    sockets[kind].sendto(packet(kind, size, token, local, peer),
                                         (peer, params["port"] if kind == "udp" else 0))
                    sent += 1
                except OSError as exc:
                    errors.append([peer, kind, size, errno.errorcode.get(exc.errno, str(exc))])
    finally:
        for sock in sockets.values():
            sock.close()
    return dict(changed=False, sent=sent, errors=errors)


def collect(module, token, local):
    pid_path, result_path = _paths(token, local)
    if not os.path.exists(result_path):
        try:
            with open(pid_path) as handle:
                pid, mine = handle.read().split()
        except (OSError, ValueError):
            module.fail_json(msg="no listener of this run on %s (state=listen did not run, or it stopped)" % local)
        if mine == token:
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + module.params["wait"]
        while not os.path.exists(result_path) and time.monotonic() < deadline:
            time.sleep(0.05)
    try:
        with open(result_path) as handle:
            received = json.load(handle)
    except (OSError, ValueError) as exc:
        module.fail_json(msg="the listener on %s left no result within %d s: %s" % (local, module.params["wait"], exc))
    for path in (pid_path, result_path):
        try:
            os.unlink(path)
        except OSError:
            pass
    missing = {}
    for src, sent in sorted(module.params["expect"].items()):
        heard = set(tuple(probe) for probe in received.get(src, []))
        lost = [list(probe) for probe in sent if (probe[0], int(probe[1])) not in heard]
        if lost:
            missing[src] = lost
    return dict(changed=False, received=received, missing=missing)


def main():
    module = AnsibleModule(argument_spec=dict(
        state=dict(type="str", required=True, choices=["listen", "send", "collect"]),
        run=dict(type="str", required=True),
        local=dict(type="str", required=True),
        kinds=dict(type="list", elements="str", choices=["icmp", "ipip", "udp"], default=["icmp"]),
        port=dict(type="int", default=4789),
        lifetime=dict(type="int", default=120),
        peers=dict(type="list", elements="str", default=[]),
        probes=dict(type="list", elements="list", default=[]),
        expect=dict(type="dict", default={}),
        wait=dict(type="int", default=10),
    ), supports_check_mode=True)
    params = module.params
    token, local = params["run"], params["local"]
    if not re.match(r"^[A-Za-z0-9]{1,16}$", token):
        module.fail_json(msg="run: %r is not 1 to 16 letters or digits" % token)
    for where, address in [("local", local)] + [("peers[%d]" % i, p) for i, p in enumerate(params["peers"])]:
        try:
            socket.inet_aton(address)
            if address.count(".") != 3:
                raise OSError
        except OSError:
            module.fail_json(msg="%s: %r is not an IPv4 address" % (where, address))
    for index, probe in enumerate(params["probes"]):
        if len(probe) != 2 or probe[0] not in PROTO or not str(probe[1]).isdigit() or not 100 <= int(probe[1]) <= 65535:
            module.fail_json(msg="probes[%d]: %r is not [kind, size] with kind icmp, ipip or udp and size "
                                 "100 to 65535" % (index, probe))
    params["probes"] = [[kind, int(size)] for kind, size in params["probes"]]
    if not 1 <= params["port"] <= 65535:
        module.fail_json(msg="port: %d is not 1 to 65535" % params["port"])
    step = dict(listen=listen, send=send, collect=collect)[params["state"]]
    module.exit_json(**step(module, token, local))


if __name__ == "__main__":
    main()
