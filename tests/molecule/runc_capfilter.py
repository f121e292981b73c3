# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# A copy of ../shared/tools/runc-capfilter (the machine's shared tools), used by
# tests/molecule/dockerd when that one is not beside the checkout; run through ./runc-capfilter.
"""runc wrapper: drop capabilities the calling process cannot grant.

This VM's root lacks CAP_SYS_RESOURCE in its bounding set, so runc fails
with "unable to apply caps: operation not permitted" for --privileged
containers (docker 20.10 requests every known cap).  Before exec'ing the
real runc, strip such caps from the OCI bundle config (create/run) or the
process spec (exec --process FILE).
"""

from __future__ import annotations

import json
import os
import sys

REAL_RUNC = "/usr/sbin/runc"
NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
    "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
    "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]


def allowed_caps():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return {"CAP_" + n for i, n in enumerate(NAMES) if mask >> i & 1}
    return None


def filter_process(proc, allowed):
    caps = proc.get("capabilities")
    if not caps:
        return False
    changed = False
    for key, lst in caps.items():
        if isinstance(lst, list):
            new = [c for c in lst if c in allowed]
            if len(new) != len(lst):
                caps[key] = new
                changed = True
    return changed


def rewrite(path, is_config, allowed):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return
    proc = data.get("process", {}) if is_config else data
    if filter_process(proc, allowed):
        tmp = path + ".capfilter.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)


def main():
    args = sys.argv[1:]
    allowed = allowed_caps()
    if allowed:
        cmd = None
        for a in args:
            if not a.startswith("-") and a in ("create", "run", "exec"):
                cmd = a
                break
        if cmd in ("create", "run"):
            bundle = "."
            for i, a in enumerate(args):
                if a in ("--bundle", "-b") and i + 1 < len(args):
                    bundle = args[i + 1]
                elif a.startswith("--bundle="):
                    bundle = a.split("=", 1)[1]
            rewrite(os.path.join(bundle, "config.json"), True, allowed)
        elif cmd == "exec":
            for i, a in enumerate(args):
                if a in ("--process", "-p") and i + 1 < len(args):
                    rewrite(args[i + 1], False, allowed)
                elif a.startswith("--process="):
                    rewrite(a.split("=", 1)[1], False, allowed)
    os.execv(REAL_RUNC, [REAL_RUNC] + args)


if __name__ == "__main__":
    main()
