# -*- coding: utf-8 -*-
# Copyright: podnet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet's CNI plugin: container runtimes wire their containers the way podnet wires its pods.

This file is the plugin's one source. It needs nothing but the Python standard library, so
it is unit-tested without Ansible, and ``podnet.fabric.cni_plugin`` installs it on a node as
the executable ``podnet``: a shebang, this text, and ``ENTRY``, the entry point that holds the
node's defaults (``node_defaults()``) and the one function that starts programs (``ip``,
``nsenter``, the IPAM plugin), handed to ``main()`` as ``execute``.

The runtime executes the plugin as the CNI SPEC (1.0.0) says: ``CNI_COMMAND`` (ADD, DEL,
CHECK, VERSION), ``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS`` and
``CNI_PATH`` in the environment, the network configuration on stdin; a result, or an error
``{cniVersion, code, msg, details}``, on stdout.

ADD wires the seed's shape (calico's): a veth pair whose container end is ``CNI_IFNAME`` in
``CNI_NETNS`` with the address IPAM (``host-local``, delegated through ``CNI_PATH``) hands
out and the only default route ``via GATEWAY dev IFNAME onlink``; the host end
(``host_ifname()``) is up, has proxy ARP with ``proxy_delay`` 0 and forwarding on, and the
host route ``IP/32 dev HOST scope link proto 151``.

Ownership: podnet's own routes carry protocol 150 and podnet's purge touches nothing else,
so the host routes of runtime pods carry their own protocol, ``ROUTE_PROTOCOL`` (151); the
host veth of a runtime pod is a veth named ``pnc`` + 12 hex digits whose link alias is
``podnet-cni CONTAINERID/IFNAME``. DEL removes only a link with exactly that name, kind and
alias; the inventory's pods (``pod_netns``) never look at these links.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import sys

SPEC_VERSIONS = ("1.0.0",)
PLUGIN_TYPE = "podnet"
ROUTE_PROTOCOL = 151
HOST_PREFIX = "pnc"
ALIAS_PREFIX = "podnet-cni "
DEFAULT_GATEWAY = "169.254.10.24"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
DEFAULT_CNI_PATH = ("/opt/cni/bin", "/usr/lib/cni")
MARKER = "# podnet CNI plugin, installed by podnet.fabric.cni_plugin"
IFNAMSIZ = 15
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")

# Error codes of the SPEC; 100 and up are podnet's own.
INCOMPATIBLE_VERSION = 1
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_CONFIG = 7
KERNEL_FAILURE = 100
CHECK_FAILED = 101

_CONTAINER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class CniError(Exception):
    """A CNI error result: ``code`` (SPEC section 5), ``msg``, ``details``."""

    def __init__(self, code, msg, details=""):
        Exception.__init__(self, msg)
        self.code = code
        self.msg = msg
        self.details = details

    def result(self, version):
        out = dict(cniVersion=version, code=self.code, msg=self.msg)
        if self.details:
            out["details"] = self.details
        return out


# -- pure parts ------------------------------------------------------------------------


def host_ifname(container_id, ifname):
    """The host end of a container's veth: ``pnc`` + 12 hex digits of the attachment (15 characters)."""
    digest = hashlib.sha256(("%s/%s" % (container_id, ifname)).encode("utf-8")).hexdigest()
    return HOST_PREFIX + digest[:12]


def link_alias(container_id, ifname):
    """The alias that marks a host veth as this attachment's (IFALIASZ: at most 255 bytes)."""
    return ("%s%s/%s" % (ALIAS_PREFIX, container_id, ifname))[:255]


def is_runtime_link(link):
    """True for an ``ip -json -details link`` entry that is a runtime pod's host veth made by this plugin."""
    return (str(link.get("ifname", "")).startswith(HOST_PREFIX) and len(link.get("ifname", "")) == IFNAMSIZ
            and link.get("linkinfo", {}).get("info_kind") == "veth"
            and str(link.get("ifalias", "")).startswith(ALIAS_PREFIX))


def tunnel_ip(pod_cidr):
    """The node's own address in its pod CIDR (first host): podnet's tunnel device holds it."""
    return str(ipaddress.IPv4Network(pod_cidr).network_address + 1)


def ipam_ranges(pod_cidr, exclude=()):
    """host-local ``ranges`` (one range set) covering ``pod_cidr``'s hosts except the tunnel address
    and ``exclude`` (the inventory's pods): the range set is split around each excluded address."""
    net = ipaddress.IPv4Network(pod_cidr)
    first, last = net.network_address + 1, net.broadcast_address - 1
    skip = set([ipaddress.IPv4Address(tunnel_ip(pod_cidr))])
    skip.update(ipaddress.IPv4Address(ip) for ip in exclude)
    ranges, start = [], first
    for address in sorted(a for a in skip if first <= a <= last) + [last + 1]:
        if start < address:
            ranges.append(dict(subnet=str(net), rangeStart=str(start), rangeEnd=str(address - 1)))
        start = address + 1
    if not ranges:
        raise ValueError("pod_cidr %s has no address left for runtime pods" % pod_cidr)
    return [ranges]


def node_defaults(pod_cidr, exclude=(), gateway=DEFAULT_GATEWAY, mtu=None, data_dir=DEFAULT_DATA_DIR):
    """What the plugin fills in when a network config leaves it out: the node's podnet settings."""
    return dict(pod_cidr=str(ipaddress.IPv4Network(pod_cidr)), gateway=gateway, mtu=mtu, data_dir=data_dir,
                ranges=ipam_ranges(pod_cidr, exclude))


def network_config(name, defaults, portmap=True):
    """The node's ``.conflist``: podnet (everything spelled out) then, for hostPort, portmap."""
    ipam = dict(type="host-local", ranges=defaults["ranges"], dataDir=defaults["data_dir"])
    plugin = dict(type=PLUGIN_TYPE, gateway=defaults["gateway"], ipam=ipam)
    if defaults.get("mtu"):
        plugin["mtu"] = defaults["mtu"]
    plugins = [plugin]
    if portmap:
        plugins.append(dict(type="portmap", capabilities=dict(portMappings=True), snat=True))
    return dict(cniVersion=SPEC_VERSIONS[-1], name=name, plugins=plugins)


# The installed plugin's entry point: the one place that starts programs (ip, nsenter, the IPAM
# plugin). The logic above gets it as ``execute``, so it stays testable with a fake one.
ENTRY = '''

def _execute(argv, data=None, env=None):
    """Run argv (a list, never a shell); (exit status, stdout text, stderr text). With env (a
    delegated plugin's environment) its stderr goes to the plugin's own, as the SPEC asks."""
    import subprocess
    proc = subprocess.run(argv, input=data, env=env, stdout=subprocess.PIPE, check=False,
                          stderr=None if env is not None else subprocess.PIPE)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), (proc.stderr or b"").decode("utf-8", "replace")


if __name__ == "__main__":
    sys.exit(main(%s, execute=_execute))
'''


def executable(source, defaults, python="/usr/bin/python3"):
    """The installed plugin: a shebang, podnet's marker, this module's ``source``, the entry point
    with the node's defaults."""
    return "#!%s\n%s\n%s\n%s" % (python, MARKER, source.rstrip("\n"), ENTRY % json.dumps(defaults, sort_keys=True))


def parse_env(env):
    """The CNI_* environment -> dict; a missing or malformed variable is error 4, naming it."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, "CNI_COMMAND: %r is not one of %s" % (command, ", ".join(COMMANDS)))
    out = dict(command=command, path=[p for p in env.get("CNI_PATH", "").split(":") if p] or list(DEFAULT_CNI_PATH))
    if command == "VERSION":
        return out
    cid = env.get("CNI_CONTAINERID", "")
    if not _CONTAINER_ID_RE.match(cid):
        raise CniError(INVALID_ENVIRONMENT, "CNI_CONTAINERID: %r is missing or not a container ID (letters, digits, "
                       "_ . -, starting with a letter or digit)" % cid)
    ifname = env.get("CNI_IFNAME", "")
    if not ifname:
        raise CniError(INVALID_ENVIRONMENT, "CNI_IFNAME: is missing")
    if len(ifname) > IFNAMSIZ:
        raise CniError(INVALID_ENVIRONMENT, "CNI_IFNAME: %r is %d characters, the kernel allows at most %d"
                       % (ifname, len(ifname), IFNAMSIZ))
    if not _IFNAME_RE.match(ifname) or ifname in (".", ".."):
        raise CniError(INVALID_ENVIRONMENT, "CNI_IFNAME: %r is not an interface name (letters, digits, _ . @ -)" % ifname)
    netns = env.get("CNI_NETNS", "")
    if command in ("ADD", "CHECK") and not netns:
        raise CniError(INVALID_ENVIRONMENT, "CNI_NETNS: is missing (%s needs the container's network namespace)" % command)
    if netns and not netns.startswith("/"):
        raise CniError(INVALID_ENVIRONMENT, "CNI_NETNS: %r is not an absolute path" % netns)
    out.update(container_id=cid, ifname=ifname, netns=netns, args=env.get("CNI_ARGS", ""))
    return out


def config_version(raw):
    """The cniVersion of a config, for error results (the newest supported one when unreadable)."""
    try:
        version = json.loads(raw).get("cniVersion")
    except (ValueError, AttributeError):
        version = None
    return version if version in SPEC_VERSIONS else SPEC_VERSIONS[-1]


def parse_config(raw, defaults=None, command="ADD"):
    """The network config on stdin -> dict with podnet's defaults filled in (gateway, mtu, and for a
    ``host-local`` ipam section without ranges, the node's ranges and data directory)."""
    defaults = defaults or {}
    try:
        conf = json.loads(raw)
    except ValueError as exc:
        raise CniError(DECODING_FAILURE, "the network config on stdin is not JSON: %s" % exc)
    if not isinstance(conf, dict):
        raise CniError(DECODING_FAILURE, "the network config on stdin is not a JSON object")
    version = conf.get("cniVersion")
    if version not in SPEC_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, "cniVersion: %r is not supported; podnet speaks %s"
                       % (version, ", ".join(SPEC_VERSIONS)))
    if command == "VERSION":
        return conf
    if not isinstance(conf.get("name"), str) or not _NETWORK_RE.match(conf["name"]):
        raise CniError(INVALID_CONFIG, "name: %r is missing or not a network name" % (conf.get("name"),))
    if not isinstance(conf.get("type"), str) or not conf["type"]:
        raise CniError(INVALID_CONFIG, "type: is missing")
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str) or not ipam["type"]:
        raise CniError(INVALID_CONFIG, "ipam: podnet delegates addresses to an IPAM plugin; ipam.type is required")
    if "/" in ipam["type"]:
        raise CniError(INVALID_CONFIG, "ipam.type: %r must be a plugin name, not a path" % ipam["type"])
    gateway = conf.get("gateway", defaults.get("gateway", DEFAULT_GATEWAY))
    try:
        conf["gateway"] = str(ipaddress.IPv4Address(gateway))
    except ValueError:
        raise CniError(INVALID_CONFIG, "gateway: %r is not an IPv4 address" % (gateway,))
    mtu = conf.get("mtu", defaults.get("mtu"))
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        raise CniError(INVALID_CONFIG, "mtu: %r is not an MTU (68..65535)" % (mtu,))
    conf["mtu"] = mtu
    if ipam["type"] == "host-local" and "ranges" not in ipam and "subnet" not in ipam:
        if not defaults.get("ranges"):
            raise CniError(INVALID_CONFIG, "ipam: no ranges and no subnet, and this node has no podnet defaults")
        conf["ipam"] = dict(ipam, ranges=defaults["ranges"])
    if conf["ipam"]["type"] == "host-local" and "dataDir" not in conf["ipam"] and defaults.get("data_dir"):
        conf["ipam"] = dict(conf["ipam"], dataDir=defaults["data_dir"])
    if command == "CHECK" and not isinstance(conf.get("prevResult"), dict):
        raise CniError(INVALID_CONFIG, "prevResult: CHECK needs the result of the ADD")
    return conf


def ipv4_of(ipam_result):
    """The first IPv4 address of an IPAM result, as an IPv4Interface."""
    for item in (ipam_result or {}).get("ips", []):
        try:
            address = ipaddress.ip_interface(item.get("address", ""))
        except ValueError:
            continue
        if address.version == 4:
            return address
    raise CniError(INVALID_CONFIG, "ipam: the IPAM plugin returned no IPv4 address: %s" % json.dumps(ipam_result))


def add_result(conf, env, address, host, host_mac, mac, ipam_result):
    """The ADD result: both veth ends, the address on the container end, the default route."""
    result = dict(
        cniVersion=conf["cniVersion"],
        interfaces=[dict(name=host, mac=host_mac), dict(name=env["ifname"], mac=mac, sandbox=env["netns"])],
        ips=[dict(address=str(address), gateway=conf["gateway"], interface=1)],
        routes=[dict(dst="0.0.0.0/0", gw=conf["gateway"])],
        dns=conf.get("dns") or (ipam_result or {}).get("dns") or {})
    return result


def check_problems(conf, env, pod_link, pod_addrs, pod_routes, host_link, host_routes, sysctls):
    """CHECK: what differs between the previous result and what was read; [] when all is well."""
    prev = conf["prevResult"]
    problems = []
    interfaces = prev.get("interfaces") or []
    index = next((i for i, item in enumerate(interfaces)
                  if item.get("name") == env["ifname"] and item.get("sandbox") == env["netns"]), None)
    if index is None:
        return ["prevResult has no interface %s in %s" % (env["ifname"], env["netns"])]
    want = interfaces[index]
    host = host_ifname(env["container_id"], env["ifname"])
    if pod_link is None:
        return ["%s is missing in %s" % (env["ifname"], env["netns"])]
    if pod_link.get("linkinfo", {}).get("info_kind") != "veth":
        problems.append("%s in %s is not a veth" % (env["ifname"], env["netns"]))
    if want.get("mac") and pod_link.get("address") != want["mac"]:
        problems.append("%s has MAC %s, the ADD gave %s" % (env["ifname"], pod_link.get("address"), want["mac"]))
    if "UP" not in pod_link.get("flags", []):
        problems.append("%s is down" % env["ifname"])
    have = set("%s/%s" % (a["local"], a["prefixlen"]) for a in pod_addrs if a.get("family") == "inet")
    for item in prev.get("ips") or []:
        if item.get("interface", index) == index and item.get("address") not in have:
            problems.append("%s lacks its address %s (has %s)"
                            % (env["ifname"], item.get("address"), ", ".join(sorted(have)) or "none"))
    for item in prev.get("routes") or []:
        dst = "default" if item.get("dst") in ("0.0.0.0/0", "default") else item.get("dst")
        gw = item.get("gw") or conf["gateway"]
        if not any(r.get("dst") == dst and r.get("gateway") == gw and r.get("dev") == env["ifname"] for r in pod_routes):
            problems.append("the route %s via %s dev %s is missing in %s" % (item.get("dst"), gw, env["ifname"], env["netns"]))
    if host_link is None or not is_runtime_link(host_link) or \
            host_link.get("ifalias") != link_alias(env["container_id"], env["ifname"]):
        return problems + ["the host veth %s of %s/%s is missing" % (host, env["container_id"], env["ifname"])]
    if "UP" not in host_link.get("flags", []):
        problems.append("the host veth %s is down" % host)
    for item in prev.get("ips") or []:
        ip = item.get("address", "").split("/")[0]
        if not any(r.get("dst") == ip and r.get("dev") == host for r in host_routes):
            problems.append("the host route %s/32 dev %s proto %d is missing" % (ip, host, ROUTE_PROTOCOL))
    for key, value in (("proxy_arp", "1"), ("proxy_delay", "0"), ("forwarding", "1")):
        if sysctls.get(key) != value:
            problems.append("%s is %s on %s, podnet sets %s" % (key, sysctls.get(key), host, value))
    return problems


# -- the kernel and the delegated plugin ------------------------------------------------------


def _which(name):
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", "")] + list(_SEARCH_PATH)))
    if not found:
        raise CniError(KERNEL_FAILURE, "podnet needs %s on the node" % name)
    return found


def _random_mac():
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join("%02x" % b for b in octets)


class Kernel(object):
    """ip commands on the node (the plugin's own namespace) or in a container's (through nsenter),
    and the delegated IPAM plugin, all through ``execute`` (the entry point's ``_execute``)."""

    def __init__(self, execute):
        self.execute = execute
        self.ip = _which("ip")
        self.nsenter = None

    def _argv(self, args, netns=None):
        if netns:
            self.nsenter = self.nsenter or _which("nsenter")
            return [self.nsenter, "--net=" + netns, self.ip] + list(args)
        return [self.ip] + list(args)

    def run(self, args, netns=None, check=True):
        """(exit status, stdout, stderr) of ``ip ARGS``; a failure is error 100 unless not ``check``."""
        rc, out, err = self.execute(self._argv(args, netns))
        if check and rc != 0:
            raise CniError(KERNEL_FAILURE, "%s failed: %s" % (" ".join(self._argv(args, netns)), err.strip()))
        return rc, out, err

    def json(self, args, netns=None):
        """``ip -json ARGS``; [] when the object does not exist."""
        rc, out, err = self.run(["-json"] + list(args), netns, check=False)
        if rc != 0:
            if "does not exist" in err or "Cannot find device" in err:
                return []
            raise CniError(KERNEL_FAILURE, "ip -json %s failed: %s" % (" ".join(args), err.strip()))
        return [item for item in json.loads(out or "[]") if item]

    def link(self, name, netns=None):
        found = self.json(["-details", "link", "show", "dev", name], netns)
        return found[0] if found else None

    def usable(self, netns):
        """True when ``netns`` is a network namespace one can enter."""
        if not netns or not os.path.exists(netns):
            return False
        return self.run(["link", "show", "lo"], netns, check=False)[0] == 0

    def delegate(self, command, conf, env, environ):
        """Run the IPAM plugin ``ipam.type`` from CNI_PATH with the same environment and the config."""
        name = conf["ipam"]["type"]
        exe = next((os.path.join(d, name) for d in env["path"]
                    if os.path.isfile(os.path.join(d, name)) and os.access(os.path.join(d, name), os.X_OK)), None)
        if exe is None:
            raise CniError(INVALID_CONFIG, "ipam.type: no plugin %r in CNI_PATH %s" % (name, ":".join(env["path"])))
        rc, out, _err = self.execute([exe], json.dumps(conf).encode("utf-8"), dict(environ, CNI_COMMAND=command))
        if rc != 0:
            try:
                err = json.loads(out)
                raise CniError(int(err.get("code", KERNEL_FAILURE)),
                               "ipam %s %s: %s" % (name, command, err.get("msg", "")), err.get("details", ""))
            except (ValueError, AttributeError, TypeError):
                raise CniError(KERNEL_FAILURE, "ipam %s %s failed (exit %d)" % (name, command, rc), out)
        if command == "ADD":
            try:
                return json.loads(out)
            except ValueError:
                raise CniError(DECODING_FAILURE, "ipam %s ADD printed no JSON result" % name, out)
        return None


def _write_sysctl(path, value):
    with open(path, "w") as handle:
        handle.write(value)


def host_sysctls(host):
    return {"proxy_arp": "/proc/sys/net/ipv4/conf/%s/proxy_arp" % host,
            "forwarding": "/proc/sys/net/ipv4/conf/%s/forwarding" % host,
            "proxy_delay": "/proc/sys/net/ipv4/neigh/%s/proxy_delay" % host}


# -- the commands ------------------------------------------------------------------------------


def cmd_add(conf, env, environ, kernel):
    netns, ifname = env["netns"], env["ifname"]
    if not kernel.usable(netns):
        raise CniError(INVALID_ENVIRONMENT, "CNI_NETNS: %s is not a network namespace" % netns)
    if kernel.link(ifname, netns) is not None:
        raise CniError(INVALID_ENVIRONMENT, "CNI_IFNAME: %s exists already in %s" % (ifname, netns))
    host = host_ifname(env["container_id"], ifname)
    if kernel.link(host) is not None:
        raise CniError(INVALID_ENVIRONMENT, "the host veth %s of %s/%s exists already (ADD twice without DEL?)"
                       % (host, env["container_id"], ifname))
    ipam_result = kernel.delegate("ADD", conf, env, environ)
    made = False
    try:
        address = ipv4_of(ipam_result)
        mac, host_mac = _random_mac(), _random_mac()
        mtu = ["mtu", str(conf["mtu"])] if conf["mtu"] else []
        # Made inside the container, the host end sent to this process's namespace (the node's).
        pod_end = ["link", "add", ifname, "address", mac] + mtu
        host_end = ["type", "veth", "peer", "name", host, "address", host_mac] + mtu
        kernel.run(pod_end + host_end + ["netns", str(os.getpid())], netns)
        made = True
        kernel.run(["link", "set", "dev", host, "alias", link_alias(env["container_id"], ifname)])
        paths = host_sysctls(host)
        for key, value in (("forwarding", "1"), ("proxy_arp", "1"), ("proxy_delay", "0")):
            _write_sysctl(paths[key], value)
        kernel.run(["link", "set", "dev", host, "up"])
        kernel.run(["route", "add", "%s/32" % address.ip, "dev", host, "scope", "link", "proto", str(ROUTE_PROTOCOL)])
        kernel.run(["link", "set", "dev", "lo", "up"], netns)
        kernel.run(["addr", "add", str(address), "dev", ifname], netns)
        kernel.run(["link", "set", "dev", ifname, "up"], netns)
        kernel.run(["route", "add", "default", "via", conf["gateway"], "dev", ifname, "onlink"], netns)
    except BaseException:
        # Nothing half-made: the pair (and its host route) goes, the address goes back.
        if made:
            kernel.run(["link", "del", "dev", host], check=False)
        try:
            kernel.delegate("DEL", conf, env, environ)
        except CniError:
            pass
        raise
    return add_result(conf, env, address, host, host_mac, mac, ipam_result)


def cmd_del(conf, env, environ, kernel):
    """Best effort and idempotent: the host veth (its pair and host route go with it), then the address."""
    host = host_ifname(env["container_id"], env["ifname"])
    link = kernel.link(host)
    if link is not None and is_runtime_link(link) and link.get("ifalias") == link_alias(env["container_id"], env["ifname"]):
        kernel.run(["link", "del", "dev", host], check=False)
    kernel.delegate("DEL", conf, env, environ)


def cmd_check(conf, env, environ, kernel):
    kernel.delegate("CHECK", conf, env, environ)
    netns, ifname = env["netns"], env["ifname"]
    if not kernel.usable(netns):
        raise CniError(CHECK_FAILED, "CNI_NETNS: %s is not a network namespace any more" % netns)
    host = host_ifname(env["container_id"], ifname)
    pod_addrs = kernel.json(["addr", "show", "dev", ifname], netns)
    host_link = kernel.link(host)
    sysctls = {}
    if host_link is not None:
        for key, path in host_sysctls(host).items():
            try:
                with open(path) as handle:
                    sysctls[key] = handle.read().strip()
            except OSError:
                sysctls[key] = None
    problems = check_problems(
        conf, env, kernel.link(ifname, netns), (pod_addrs[0].get("addr_info", []) if pod_addrs else []),
        kernel.json(["route", "show"], netns), host_link,
        kernel.json(["route", "show", "proto", str(ROUTE_PROTOCOL)]) if host_link else [], sysctls)
    if problems:
        raise CniError(CHECK_FAILED, "CHECK %s/%s: %s" % (env["container_id"], ifname, "; ".join(problems)))


def main(defaults=None, environ=None, stdin=None, stdout=None, execute=None):
    """The plugin's main: the exit status; ``execute`` runs a program (the entry point's ``_execute``)."""
    environ = dict(os.environ if environ is None else environ)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    raw = ""
    try:
        raw = stdin.read()
        env = parse_env(environ)
        if env["command"] == "VERSION":
            version = config_version(raw) if raw.strip() else SPEC_VERSIONS[-1]
            stdout.write(json.dumps(dict(cniVersion=version, supportedVersions=list(SPEC_VERSIONS))) + "\n")
            return 0
        conf = parse_config(raw, defaults, env["command"])
        if env["command"] == "ADD":
            stdout.write(json.dumps(cmd_add(conf, env, environ, Kernel(execute))) + "\n")
        elif env["command"] == "DEL":
            cmd_del(conf, env, environ, Kernel(execute))
        else:
            cmd_check(conf, env, environ, Kernel(execute))
        return 0
    except CniError as exc:
        stdout.write(json.dumps(exc.result(config_version(raw))) + "\n")
    except OSError as exc:
        stdout.write(json.dumps(CniError(IO_FAILURE, str(exc)).result(config_version(raw))) + "\n")
    return 1
