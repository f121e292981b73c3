"""Unit tests for kmod: which kernel modules a teardown unloads again, and why tunl0 stays otherwise."""

from ansible_collections.podnet.fabric.plugins.module_utils import kmod

LOADED = {"ipip": 0, "tunnel4": 0, "ip_tunnel": 0}


def test_what_a_creation_loaded():
    assert kmod.loaded_by_creation("ipip", {"ip_tunnel"}, {"ipip", "tunnel4", "ip_tunnel"}) == ["ipip", "tunnel4"]
    assert kmod.loaded_by_creation("ipip", {"ipip", "tunnel4"}, {"ipip", "tunnel4"}) == []
    assert kmod.loaded_by_creation("vxlan", set(), {"vxlan"}) == []


def test_unloaded_in_order_when_podnet_loaded_them_on_a_host_and_nothing_uses_them():
    assert kmod.unload("ipip", ["ipip", "tunnel4"], True, LOADED, [], False) == (["ipip", "tunnel4"], None)
    # ip_tunnel built in (no refcnt): only the loadable ones.
    assert kmod.unload("ipip", ["ipip", "ip_tunnel"], True, dict(LOADED, ip_tunnel=None), [], False) == (["ipip"], None)


def stays(*args):
    modules, why = kmod.unload("ipip", *args)
    assert modules == [] and why.startswith("tunl0 stays: it is the ipip kernel module's fallback device")
    return why


def test_tunl0_stays_and_the_warning_says_why():
    assert "did not load" in stays([], True, LOADED, [], False)
    assert "network namespace (a lab node or a container)" in stays(["ipip"], False, LOADED, [], False)
    assert "other ipip devices use the module: pod-x/tun9, this namespace/calico" in stays(
        ["ipip"], True, LOADED, ["this namespace/calico", "pod-x/tun9"], False)
    assert "tunl0 is configured" in stays(["ipip"], True, LOADED, [], True)
    assert "in use (refcnt 2)" in stays(["ipip"], True, dict(LOADED, ipip=2), [], False)


def test_nothing_to_say_when_the_module_is_not_loaded_or_the_kind_has_none():
    assert kmod.unload("ipip", ["ipip"], True, dict(ipip=None, tunnel4=None, ip_tunnel=None), [], False) == ([], None)
    assert kmod.unload("vxlan", ["vxlan"], True, {"vxlan": 0}, [], False) == ([], None)
