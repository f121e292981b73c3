"""Unit tests for the runner, the module skeleton and Plan: argv built, writes recorded and skipped
in check mode, a failed command as one PodnetError with its details (a stand-in module answers
run_command from a table, as community.general's cmd_runner tests do)."""

import pytest

from ansible_collections.podnet.fabric.plugins.module_utils import skeleton
from ansible_collections.podnet.fabric.plugins.module_utils.plan import Plan
from ansible_collections.podnet.fabric.plugins.module_utils.runner import CommandError, Runner
from ansible_collections.podnet.fabric.plugins.module_utils.validate import PodnetError


class Module(object):
    """What Runner uses of AnsibleModule: get_bin_path, run_command, check_mode, _diff."""

    def __init__(self, answers=None, check_mode=False, diff=False):
        self.answers = answers or {}
        self.check_mode = check_mode
        self._diff = diff
        self.ran = []

    def get_bin_path(self, name, required=False):
        return "/bin/" + name

    def run_command(self, argv, data=None, environ_update=None, check_rc=False):
        assert environ_update == {"LC_ALL": "C"} and check_rc is False
        self.ran.append((argv, data))
        return self.answers.get(" ".join(argv), (0, "", ""))


def test_netns_prefix_is_option_for_ip_and_bridge_and_netns_exec_for_other_tools():
    runner = Runner(Module())
    runner.netns = "host1"        # the constructor checks /run/netns; the prefix is what is tested
    assert runner.argv("ip", ["link", "show"]) == ["/bin/ip", "-n", "host1", "link", "show"]
    assert runner.argv("bridge", ["fdb", "show"]) == ["/bin/bridge", "-n", "host1", "fdb", "show"]
    assert runner.argv("sysctl", ["-n", "x"]) == ["/bin/ip", "netns", "exec", "host1", "/bin/sysctl", "-n", "x"]
    assert runner.argv("ip", ["addr", "show"], netns="pod-a") == ["/bin/ip", "-n", "pod-a", "addr", "show"]
    assert Runner(Module()).argv("ethtool", ["-k", "vxlan0"]) == ["/bin/ethtool", "-k", "vxlan0"]


def test_bad_or_missing_netns_is_refused_naming_the_option():
    with pytest.raises(PodnetError, match=r"^netns: namespace name '-x'"):
        Runner(Module(), "-x")
    with pytest.raises(PodnetError, match=r"^netns: network namespace 'podnet-no-such-ns' does not exist"):
        Runner(Module(), "podnet-no-such-ns")


def test_read_json_drops_empty_objects_and_a_missing_object_can_be_none():
    module = Module({"/bin/ip -json route show table 7": (0, '[{}, {"dst": "10.0.0.0/8"}]', ""),
                     "/bin/ip -json route show table 9": (2, "", "Error: ipv4: FIB table does not exist.\n")})
    runner = Runner(module)
    assert runner.read_json("ip", ["route", "show", "table", "7"]) == [{"dst": "10.0.0.0/8"}]
    assert runner.read_json("ip", ["route", "show", "table", "9"], missing_ok=True) is None
    with pytest.raises(CommandError) as err:
        runner.read_json("ip", ["route", "show", "table", "9"])
    assert str(err.value) == "/bin/ip -json route show table 9 failed: Error: ipv4: FIB table does not exist."
    assert err.value.details["rc"] == 2 and err.value.details["cmd"][-1] == "9"
    assert runner.commands == []


def test_writes_are_recorded_and_skipped_in_check_mode_reads_still_run():
    module = Module({"/bin/sysctl -n net.ipv4.ip_forward": (0, "1\n", "")}, check_mode=True)
    runner = Runner(module)
    assert runner.read("sysctl", ["-n", "net.ipv4.ip_forward"]) == "1\n"
    runner.run("iptables-restore", ["-w", "--noflush"], data="*filter\nCOMMIT")
    assert runner.try_run("ip", ["link", "add", "x", "type", "ipip"]) == (0, "", "")
    assert runner.commands == [["/bin/iptables-restore", "-w", "--noflush"], ["/bin/ip", "link", "add", "x", "type", "ipip"]]
    assert [argv for argv, data in module.ran] == [["/bin/sysctl", "-n", "net.ipv4.ip_forward"]]


def test_a_failed_write_raises_with_cmd_rc_stderr_and_the_commands_so_far():
    module = Module({"/bin/ip link set x up": (1, "", 'Cannot find device "x"\n')})
    runner = Runner(module)
    runner.run("ip", ["link", "set", "lo", "up"])
    with pytest.raises(CommandError) as err:
        runner.run("ip", ["link", "set", "x", "up"], data="in")
    assert module.ran[-1] == (["/bin/ip", "link", "set", "x", "up"], "in")
    failure = skeleton.failure(err.value)
    assert failure["msg"] == '/bin/ip link set x up failed: Cannot find device "x"'
    assert failure["rc"] == 1 and failure["stderr"] == 'Cannot find device "x"\n'
    assert failure["cmd"] == ["/bin/ip", "link", "set", "x", "up"]
    assert failure["commands"] == [["/bin/ip", "link", "set", "lo", "up"], ["/bin/ip", "link", "set", "x", "up"]]
    assert runner.try_run("ip", ["link", "set", "x", "up"]) == (1, "", 'Cannot find device "x"\n')


def test_ip_netns_is_never_prefixed_and_runs_in_the_outer_mount_namespace():
    runner = Runner(Module())
    runner.netns = "host1"
    runner._outer = "/proc/1/ns/mnt"      # what netns.outer_mount_ns() finds under ip netns exec
    runner.run_ip_netns(["netns", "add", "pod-a"])
    runner._outer = ""                    # the module already runs in the outermost one
    runner.run_ip_netns(["netns", "del", "pod-a"])
    assert runner.commands == [["/bin/nsenter", "--mount=/proc/1/ns/mnt", "/bin/ip", "netns", "add", "pod-a"],
                               ["/bin/ip", "netns", "del", "pod-a"]]


def test_a_refused_value_fails_with_its_message_only():
    assert skeleton.failure(PodnetError("mtu: MTU 10 is out of range 68..65535")) == dict(
        msg="mtu: MTU 10 is out of range 68..65535")


@pytest.mark.parametrize("diff", [False, True])
def test_result_has_changed_commands_extras_and_the_diff_only_in_diff_mode(diff):
    runner = Runner(Module(diff=diff))
    runner.run("ip", ["link", "set", "lo", "up"])
    result = skeleton.result(runner, True, {"routes": []}, {"routes": [1]}, routes=[1])
    assert result["changed"] is True and result["routes"] == [1]
    assert result["commands"] == [["/bin/ip", "link", "set", "lo", "up"]]
    assert ("diff" in result) is diff
    if diff:
        assert result["diff"] == dict(before={"routes": []}, after={"routes": [1]})
    assert "diff" not in skeleton.result(runner, False, None, None)


def test_plan_unpacks_as_commands_before_after_and_carries_warnings_and_facts():
    plan = Plan([["route", "del", "x"]], [1], [], ["left alone"], action="delete")
    commands, before, after = plan
    assert (commands, before, after) == ([["route", "del", "x"]], [1], [])
    assert plan.commands is commands and plan[0] is commands
    assert plan.warnings == ["left alone"] and plan.facts == {"action": "delete"}
    empty = Plan([], None, None)
    assert empty.warnings == [] and empty.facts == {}
    assert "warnings=['left alone']" in repr(plan)
