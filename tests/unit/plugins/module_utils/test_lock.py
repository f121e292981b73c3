"""Unit tests for the node lock's pure part: who holds it, when it is stale, the message."""

from ansible_collections.podnet.fabric.plugins.module_utils import lock

ME = dict(run="box/c1/100/5.0", host="box", user="bob", pid=100, started=5.0, playbook="ansible-playbook site.yml",
          controller="c1")
OTHER = dict(run="ops/c2/4242/7.0", host="ops", user="alice", pid=4242, started=1796212805.0,
             playbook="ansible-playbook teardown.yml", controller="c2")


def held_by(holder, now=1000.0, lease=3600):
    return lock.record(holder, now, lease)


def test_a_free_lock_is_taken():
    assert lock.decide(None, ME, 1000.0) == ("take", None)


def test_a_lock_this_run_holds_is_ours():
    assert lock.decide(held_by(ME), ME, 1001.0) == ("ours", None)


def test_another_runs_lock_is_held_until_its_lease_ends():
    current = held_by(OTHER, now=1000.0, lease=60)
    assert lock.decide(current, ME, 1059.9) == ("held", None)
    action, reason = lock.decide(current, ME, 1060.0)
    assert action == "take" and "lease ran out" in reason and "alice" in reason


def test_a_lock_whose_holder_the_controller_found_gone_is_taken_over():
    current = held_by(OTHER)
    action, reason = lock.decide(current, ME, 1001.0, take_over=OTHER["run"])
    assert action == "take" and "is gone" in reason and "pid 4242" in reason
    # take_over names a run: a lock another run took meanwhile stays held.
    assert lock.decide(current, ME, 1001.0, take_over="someone/else") == ("held", None)


def test_a_lock_without_a_lease_is_stale():
    assert lock.decide(dict(run="x"), ME, 1.0)[0] == "take"


def test_record_keeps_the_holder_and_the_lease_on_the_node_clock():
    data = lock.record(dict(OTHER, extra="dropped"), 1000.0, 60)
    assert data == dict(OTHER, acquired=1000.0, expires=1060.0, lease=60)


def test_gone_only_for_a_holder_of_this_very_controller():
    assert lock.gone(OTHER, "c2", lambda pid, since: False)
    assert not lock.gone(OTHER, "c2", lambda pid, since: True)
    assert not lock.gone(OTHER, "c1", lambda pid, since: False)   # another controller: its lease decides
    assert not lock.gone(OTHER, None, lambda pid, since: False)   # this controller does not know itself
    assert not lock.gone(dict(OTHER, pid=None), "c2", lambda pid, since: False)


def test_the_message_names_the_node_and_the_holder():
    msg = lock.held_message("h1", held_by(OTHER, now=1796212806.0), 600, "/var/lib/podnet/h1.lock")
    for part in ("node h1 is locked", "ansible-playbook teardown.yml", "alice", "on ops", "pid 4242",
                 "started 2026-12-02 12:00:05 UTC", "Waited 600 s", "podnet_lock_timeout", "podnet_lock_lease",
                 "/var/lib/podnet/h1.lock on h1"):
        assert part in msg, (part, msg)


def test_describe_an_unreadable_holder():
    assert lock.describe({}) == ("an unknown playbook by an unknown user on an unknown controller "
                                 "(pid unknown, started unknown)")
