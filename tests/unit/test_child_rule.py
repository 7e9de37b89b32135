"""wait4/waitid on snapshots built in code: the children a call's arguments name, with pids
and process groups read in the waiter's pid namespace."""

from __future__ import annotations

from rule_fakes import FakeSnapshot, task

from waitchain.model import EdgeKind, EndKind, Mode, Reason
from waitchain.waits import child
from waitchain.render.ends import detail

INNER = "pid:[4026532999]"
P_PID, P_PGID = 1, 2


def namespaced() -> FakeSnapshot:
    """Host 500 is pid 1 of a pid namespace; its children 501 and 502 are 2 and 3 there,
    502 in process group 7 (host 480, whose leader has exited)."""
    snap = FakeSnapshot()
    snap.add_process(500, pidns=INNER)
    snap.add_process(501, ppid=500, pgrp=500, pidns=INNER)
    snap.add_process(502, ppid=500, pgrp=480, pidns=INNER)
    snap.set_status(500, NSpid="500\t1", NSpgid="500\t1")
    snap.set_status(501, NSpid="501\t2", NSpgid="500\t1")
    snap.set_status(502, NSpid="502\t3", NSpgid="480\t7")
    return snap


def test_wait4_pid_is_the_waiters_number() -> None:
    wait = child.rule(namespaced(), 500, task(500, "wait4", 2))
    (edge,) = wait.edges
    assert (edge.to_pid, edge.kind, edge.syscall, edge.object) == (501, EdgeKind.CHILD, "wait4", "pid 501")
    assert "it is 2 in 500's pid namespace" in edge.evidence
    assert wait.mode == Mode.ANY and wait.syscall == "wait4" and wait.end is None


def test_wait4_host_pid_inside_a_namespace_names_no_child() -> None:
    wait = child.rule(namespaced(), 500, task(500, "wait4", 501))
    assert wait.edges == ()
    assert wait.end is not None
    assert (wait.end.kind, wait.end.reason) == (EndKind.UNKNOWN, Reason.NO_CHILD)
    assert wait.end.child == 501 and detail(wait.end) == "waits for child 501, but there is none"


def test_wait4_process_group_is_the_waiters_number() -> None:
    snap = namespaced()
    assert [e.to_pid for e in child.rule(snap, 500, task(500, "wait4", -7 & 0xFFFFFFFF)).edges] == [502]
    assert [e.to_pid for e in child.rule(snap, 500, task(500, "wait4", 0)).edges] == [501]
    assert [e.to_pid for e in child.rule(snap, 500, task(500, "wait4", -1 & 0xFFFFFFFF)).edges] == [501, 502]


def test_waitid_pid_and_group_in_the_waiters_namespace() -> None:
    snap = namespaced()
    assert [e.to_pid for e in child.rule(snap, 500, task(500, "waitid", P_PID, 3)).edges] == [502]
    assert [e.to_pid for e in child.rule(snap, 500, task(500, "waitid", P_PGID, 7)).edges] == [502]
    assert [e.to_pid for e in child.rule(snap, 500, task(500, "waitid", P_PGID, 0)).edges] == [501]


def test_in_our_namespace_the_numbers_are_host_pids() -> None:
    snap = FakeSnapshot()
    snap.add_process(100)
    snap.add_process(101, ppid=100, pgrp=101)
    assert [e.to_pid for e in child.rule(snap, 100, task(100, "wait4", 101)).edges] == [101]
    assert [e.to_pid for e in child.rule(snap, 100, task(100, "wait4", -101 & 0xFFFFFFFF)).edges] == [101]


def test_a_tracer_waits_for_its_tracees_not_for_children() -> None:
    """strace -p: wait4(-1) with no child returns on the tracee's stops (TracerPid)."""
    snap = FakeSnapshot()
    snap.add_process(600)
    snap.add_process(601, ppid=1)
    snap.set_status(600, TracerPid="0")
    snap.set_status(601, TracerPid="600")
    wait = child.rule(snap, 600, task(600, "wait4", -1 & 0xFFFFFFFF))
    (edge,) = wait.edges
    assert (edge.to_pid, edge.kind) == (601, EdgeKind.CHILD) and "TracerPid" in edge.evidence


def test_no_child_and_no_tracee_is_said() -> None:
    snap = FakeSnapshot()
    snap.add_process(600)
    snap.set_status(600, TracerPid="0")
    wait = child.rule(snap, 600, task(600, "wait4", -1 & 0xFFFFFFFF))
    assert wait.edges == () and wait.end is not None and wait.end.reason == Reason.NO_CHILD
