# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything podnet may change on a node, as sorted lines of JSON (side_effect.yml compares two).

Run inside a node (``docker exec -i NODE python3 - < snapshot.py``; the image's Python, standard
library only). The same facts as tests/integration (test_site.py ``Lab.state``, test_replay.py
``pod_state``), normalised the same way: no ifindex, no counters, no random veth MACs (a pod's veth
gets new ones when it is made again), a pod's IPv4 only (its IPv6 link-local address follows its
random MAC), and not the ports of Docker's own DNS rules (drawn anew at every start). Per node:
links (name, kind, MTU, up, MAC unless veth, the tunnel's parameters), IPv4 addresses, every route
of every table, permanent neighbour and FDB entries, the IPv4 sysctls of forwarding, proxy ARP and
neighbours, iptables (rules and chain policies); per pod (/run/netns): links, addresses, routes.
Before it reads, it waits (10 s at most) until every link that is up has its carrier, which the
kernel sets asynchronously.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

NETNS = "/run/netns"
# Docker's embedded DNS (127.0.0.11) NATs to ports it draws anew at every start of the container.
DOCKER_DNS = ("-A DOCKER_OUTPUT ", "-A DOCKER_POSTROUTING ")
DNS_PORT = re.compile(r"(--sport |--to-destination 127\.0\.0\.11:)[0-9]+")


def run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def ipj(ns, *args):
    prefix = ["ip", "-n", ns] if ns else ["ip"]
    return [item for item in json.loads(run(*(prefix + ["-json"] + list(args))) or "[]") if item]


def pods():
    # A pod is a namespace ``ip`` can enter: a stale /run/netns entry (a restart leaves one) is not.
    names = sorted(os.listdir(NETNS)) if os.path.isdir(NETNS) else []
    return [n for n in names
            if subprocess.run(["ip", "-n", n, "link", "show", "lo"], capture_output=True, check=False).returncode == 0]


def settle(ns):
    for _attempt in range(100):
        links = ipj(ns, "link", "show")
        if all("NO-CARRIER" not in link["flags"] and link.get("operstate") in ("UP", "UNKNOWN")
               for link in links if "UP" in link["flags"]):
            return
        time.sleep(0.1)


def links(ns):
    for link in ipj(ns, "-details", "link", "show"):
        info = link.get("linkinfo", {})
        kind = info.get("info_kind")
        yield ("link", link["ifname"], kind, link["mtu"], "UP" in link["flags"],
               link["address"] if kind != "veth" and ns is None else None,
               info.get("info_data") if kind in ("vxlan", "ipip") else None)


def addresses(ns):
    for link in ipj(ns, "-4", "addr", "show"):
        for item in link.get("addr_info", []):
            yield ("addr", link["ifname"], item["local"], item["prefixlen"])


def routes(ns):
    for r in ipj(ns, "-4", "route", "show", "table", "all"):
        yield ("route", r.get("table", "main"), r.get("type"), r["dst"], r.get("gateway"), r.get("dev"),
               r.get("protocol"), r.get("scope"), r.get("metric"), sorted(r.get("flags", [])))


def node():
    yield from links(None)
    yield from addresses(None)
    yield from routes(None)
    for n in ipj(None, "neigh", "show"):
        if "PERMANENT" in n.get("state", []):
            yield ("neigh", n["dst"], n.get("dev"), n.get("lladdr"))
    for f in json.loads(run("bridge", "-json", "fdb", "show") or "[]"):
        if f.get("state") == "permanent" and "dst" in f:
            yield ("fdb", f["mac"], f.get("ifname"), f["dst"])
    for line in run("sysctl", "-a").splitlines():
        if line.startswith(("net.ipv4.conf.", "net.ipv4.neigh.", "net.ipv4.ip_forward")):
            yield ("sysctl", line)
    for line in run("iptables-save").splitlines():
        # Chains with their policies, not their counters; a table iptables-nft made empty is no state.
        line = " ".join(line.split()[:2]) if line.startswith(":") else line
        if line.startswith(DOCKER_DNS):
            line = DNS_PORT.sub(r"\1<port>", line)
        if line and not line.startswith(("#", "*", "COMMIT")) and line not in (
                ":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT"):
            yield ("iptables", line)


def main():
    settle(None)
    facts = [("node",) + fact for fact in node()]
    for name in pods():
        settle(name)
        for fact in list(links(name)) + list(addresses(name)) + list(routes(name)):
            facts.append(("pod", name) + fact)
    json.dump(sorted(json.dumps(fact) for fact in facts), sys.stdout, indent=0)


if __name__ == "__main__":
    main()
