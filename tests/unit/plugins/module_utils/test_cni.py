"""Unit tests for the CNI plugin's pure parts: names, ranges, environment, config, CHECK, results."""

import io
import json

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import cni

DEFAULTS = cni.node_defaults("192.168.10.0/24", ["192.168.10.10"], mtu=1450, data_dir="/var/lib/podnet/h1-cni/networks")
ENV = dict(CNI_COMMAND="ADD", CNI_CONTAINERID="abc", CNI_NETNS="/run/netns/c1", CNI_IFNAME="eth0")
MINIMAL = dict(cniVersion="1.0.0", name="podnet", type="podnet", ipam=dict(type="host-local"))


def test_host_ifname_is_short_stable_and_per_attachment():
    name = cni.host_ifname("abc", "eth0")
    assert name.startswith("pnc") and len(name) == 15 and name == cni.host_ifname("abc", "eth0")
    assert name != cni.host_ifname("abc", "eth1") and name != cni.host_ifname("abd", "eth0")


def test_ranges_skip_the_tunnel_address_and_the_inventory_pods():
    assert cni.ipam_ranges("192.168.10.0/24", ["192.168.10.10", "192.168.10.11", "10.0.0.1"]) == [[
        dict(subnet="192.168.10.0/24", rangeStart="192.168.10.2", rangeEnd="192.168.10.9"),
        dict(subnet="192.168.10.0/24", rangeStart="192.168.10.12", rangeEnd="192.168.10.254")]]
    assert cni.ipam_ranges("10.1.0.0/30") == [[dict(subnet="10.1.0.0/30", rangeStart="10.1.0.2", rangeEnd="10.1.0.2")]]
    with pytest.raises(ValueError):
        cni.ipam_ranges("10.1.0.0/30", ["10.1.0.2"])


def test_network_config_spells_everything_out_and_chains_portmap():
    conf = cni.network_config("podnet", DEFAULTS)
    assert conf["cniVersion"] == "1.0.0" and [p["type"] for p in conf["plugins"]] == ["podnet", "portmap"]
    assert conf["plugins"][0]["mtu"] == 1450 and conf["plugins"][0]["ipam"]["dataDir"].endswith("networks")
    assert [p["type"] for p in cni.network_config("podnet", DEFAULTS, portmap=False)["plugins"]] == ["podnet"]


def test_executable_is_the_source_with_the_node_defaults():
    text = cni.executable("import sys\n", DEFAULTS, "/usr/bin/python3")
    assert text.splitlines()[:2] == ["#!/usr/bin/python3", cni.MARKER]
    trailer = "sys.exit(main(%s, execute=_execute))\n" % json.dumps(DEFAULTS, sort_keys=True)
    assert text.endswith(trailer) and "import sys\n" in text


@pytest.mark.parametrize("change, word", [
    (dict(CNI_COMMAND="NOPE"), "CNI_COMMAND"),
    (dict(CNI_CONTAINERID=""), "CNI_CONTAINERID"),
    (dict(CNI_CONTAINERID="-x"), "CNI_CONTAINERID"),
    (dict(CNI_IFNAME=""), "CNI_IFNAME"),
    (dict(CNI_IFNAME="eth0-is-too-long"), "CNI_IFNAME"),
    (dict(CNI_IFNAME="a/b"), "CNI_IFNAME"),
    (dict(CNI_NETNS=""), "CNI_NETNS"),
    (dict(CNI_NETNS="relative"), "CNI_NETNS"),
])
def test_a_bad_environment_is_error_4_naming_the_variable(change, word):
    with pytest.raises(cni.CniError) as exc:
        cni.parse_env(dict(ENV, **change))
    assert exc.value.code == cni.INVALID_ENVIRONMENT and word in exc.value.msg


def test_del_needs_no_netns_and_cni_path_has_a_default():
    env = cni.parse_env(dict(ENV, CNI_COMMAND="DEL", CNI_NETNS=""))
    assert env["netns"] == "" and env["path"] == list(cni.DEFAULT_CNI_PATH)
    assert cni.parse_env(dict(ENV, CNI_PATH="/a::/b"))["path"] == ["/a", "/b"]


def test_a_minimal_config_gets_the_node_defaults():
    conf = cni.parse_config(json.dumps(MINIMAL), DEFAULTS)
    assert conf["gateway"] == "169.254.10.24" and conf["mtu"] == 1450
    assert conf["ipam"]["ranges"] == DEFAULTS["ranges"] and conf["ipam"]["dataDir"] == DEFAULTS["data_dir"]
    explicit = dict(MINIMAL, mtu=1400, gateway="169.254.1.1", ipam=dict(type="host-local", subnet="10.9.0.0/24"))
    conf = cni.parse_config(json.dumps(explicit), DEFAULTS)
    assert conf["mtu"] == 1400 and conf["gateway"] == "169.254.1.1" and "ranges" not in conf["ipam"]


@pytest.mark.parametrize("raw, code", [
    ("{nope", cni.DECODING_FAILURE),
    ("[]", cni.DECODING_FAILURE),
    (json.dumps(dict(MINIMAL, cniVersion="0.4.0")), cni.INCOMPATIBLE_VERSION),
    (json.dumps(dict(MINIMAL, name="")), cni.INVALID_CONFIG),
    (json.dumps(dict(MINIMAL, ipam={})), cni.INVALID_CONFIG),
    (json.dumps(dict(MINIMAL, ipam=dict(type="../host-local"))), cni.INVALID_CONFIG),
    (json.dumps(dict(MINIMAL, mtu=10)), cni.INVALID_CONFIG),
    (json.dumps(dict(MINIMAL, gateway="nope")), cni.INVALID_CONFIG),
])
def test_a_bad_config_is_refused_with_its_code(raw, code):
    with pytest.raises(cni.CniError) as exc:
        cni.parse_config(raw, DEFAULTS)
    assert exc.value.code == code


def test_check_needs_a_previous_result_and_ranges_need_defaults():
    with pytest.raises(cni.CniError) as exc:
        cni.parse_config(json.dumps(MINIMAL), DEFAULTS, "CHECK")
    assert "prevResult" in exc.value.msg
    with pytest.raises(cni.CniError) as exc:
        cni.parse_config(json.dumps(MINIMAL), {})
    assert exc.value.code == cni.INVALID_CONFIG


def _state(env, result):
    host = cni.host_ifname(env["container_id"], env["ifname"])
    pod_link = dict(ifname="eth0", address=result["interfaces"][1]["mac"], flags=["UP"], linkinfo=dict(info_kind="veth"))
    host_link = dict(ifname=host, flags=["UP"], linkinfo=dict(info_kind="veth"),
                     ifalias=cni.link_alias(env["container_id"], env["ifname"]))
    return dict(pod_link=pod_link, pod_addrs=[dict(family="inet", local="192.168.10.2", prefixlen=24)],
                pod_routes=[dict(dst="default", gateway="169.254.10.24", dev="eth0", flags=["onlink"])],
                host_link=host_link, host_routes=[dict(dst="192.168.10.2", dev=host)],
                sysctls=dict(proxy_arp="1", proxy_delay="0", forwarding="1"))


def test_check_compares_the_previous_result_with_what_was_read():
    env = cni.parse_env(ENV)
    conf = cni.parse_config(json.dumps(MINIMAL), DEFAULTS)
    result = cni.add_result(conf, env, cni.ipv4_of(dict(ips=[dict(address="192.168.10.2/24")])),
                            cni.host_ifname("abc", "eth0"), "02:00:00:00:00:01", "02:00:00:00:00:02", {})
    conf["prevResult"] = result
    assert result["ips"] == [dict(address="192.168.10.2/24", gateway="169.254.10.24", interface=1)]
    assert cni.check_problems(conf, env, **_state(env, result)) == []
    state = _state(env, result)
    state["sysctls"]["proxy_delay"] = "80"
    state["pod_routes"] = []
    state["pod_addrs"] = []
    problems = cni.check_problems(conf, env, **state)
    assert len(problems) == 3 and any("proxy_delay" in p for p in problems)
    state = _state(env, result)
    state["host_link"]["ifalias"] = "someone else's"
    assert "host veth" in cni.check_problems(conf, env, **state)[-1]
    state = _state(env, result)
    state["pod_link"] = None
    assert cni.check_problems(conf, env, **state) == ["eth0 is missing in /run/netns/c1"]


def test_runtime_links_are_owned_by_name_kind_and_alias():
    link = dict(ifname=cni.host_ifname("abc", "eth0"), linkinfo=dict(info_kind="veth"), ifalias="podnet-cni abc/eth0")
    assert cni.is_runtime_link(link)
    assert not cni.is_runtime_link(dict(link, ifalias="mine"))
    assert not cni.is_runtime_link(dict(link, linkinfo=dict(info_kind="dummy")))
    assert not cni.is_runtime_link(dict(link, ifname="veth-pod-a"))


def test_main_prints_version_and_errors_as_json():
    out = io.StringIO()
    assert cni.main(DEFAULTS, dict(CNI_COMMAND="VERSION"), io.StringIO('{"cniVersion":"1.0.0"}'), out) == 0
    assert json.loads(out.getvalue()) == dict(cniVersion="1.0.0", supportedVersions=["1.0.0"])
    out = io.StringIO()
    assert cni.main(DEFAULTS, dict(ENV, CNI_IFNAME="x" * 16), io.StringIO(json.dumps(MINIMAL)), out) == 1
    err = json.loads(out.getvalue())
    assert err["cniVersion"] == "1.0.0" and err["code"] == 4 and "CNI_IFNAME" in err["msg"]


class FakeNode(object):
    """An ``execute`` that answers like ip and host-local, failing the first argv that contains ``fail``."""

    def __init__(self, fail=None):
        self.fail, self.calls = fail, []

    def __call__(self, argv, data=None, env=None):
        # The IPAM plugin's command, or the ip command's arguments (after nsenter's, if any).
        tail = argv[[i for i, a in enumerate(argv) if a.endswith("/ip")][-1] + 1:] if env is None else []
        self.calls.append(env["CNI_COMMAND"] if env is not None else " ".join(tail))
        if env is not None:
            if env["CNI_COMMAND"] == "ADD":
                return 0, json.dumps(dict(cniVersion="1.0.0", ips=[dict(address="192.168.10.2/24")])), ""
            return 0, "", ""
        if self.fail and self.fail in " ".join(argv):
            return 2, "", "RTNETLINK answers: File exists"
        if "-json" in argv and "lo" not in argv:
            return 1, "", 'Device "x" does not exist.'
        return 0, "[]", ""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    ipam = tmp_path / "host-local"
    ipam.write_text("")
    ipam.chmod(0o755)
    monkeypatch.setattr(cni.os.path, "exists", lambda path: True)
    monkeypatch.setattr(cni, "_write_sysctl", lambda path, value: None)
    return str(tmp_path)


def test_add_that_fails_half_way_takes_back_what_it_made(plugin_dir):
    fake = FakeNode(fail="route add default")
    out = io.StringIO()
    env = dict(ENV, CNI_PATH=plugin_dir)
    assert cni.main(DEFAULTS, env, io.StringIO(json.dumps(MINIMAL)), out, execute=fake) == 1
    assert json.loads(out.getvalue())["code"] == cni.KERNEL_FAILURE
    host = cni.host_ifname("abc", "eth0")
    assert fake.calls.index("ADD") < fake.calls.index("link del dev %s" % host) < len(fake.calls) - 1
    assert fake.calls[-1] == "DEL"


def test_add_prints_the_result(plugin_dir):
    out = io.StringIO()
    assert cni.main(DEFAULTS, dict(ENV, CNI_PATH=plugin_dir), io.StringIO(json.dumps(MINIMAL)), out,
                    execute=FakeNode()) == 0
    result = json.loads(out.getvalue())
    assert result["ips"][0]["address"] == "192.168.10.2/24" and result["interfaces"][1]["sandbox"] == "/run/netns/c1"
