"""waits/ends.py's state rule on threads built in code: a zombie whose parent's wait4 names it
is being reaped (no edge, or a parent and its child would make a ring for an instant); one
whose parent waits for another child waits for the parent; a main thread that exited in a
live process waits for nothing; a ptrace stop waits for its tracer; a kernel thread is one."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List

from waitchain.model import EdgeKind, EndKind, Process, Reason, Syscall, Task
from waitchain.waits import wait_of

WAIT4 = 61  # x86_64; the rule reads the name, not the number


class Snap:
    """The parts of a Snapshot the state rule and wait4's children use."""

    def __init__(self, tasks: Dict[int, List[Task]], ppid: Dict[int, int], tracer: int = 0) -> None:
        self._tasks = tasks
        self.processes = {p: Process(p, 1, "x", ts[0].state, ppid.get(p, 1), p, 0) for p, ts in tasks.items()}
        self.children: Dict[int, List[int]] = defaultdict(list)
        for pid, parent in ppid.items():
            self.children[parent].append(pid)
        self.tracer = tracer

    def tasks(self, pid: int) -> List[Task]:
        return self._tasks.get(pid, [])

    def status(self, pid: int, tid: int = 0) -> Dict[str, str]:
        return {"TracerPid": str(self.tracer)}

    def local_id(self, pid: int, observer: int, tid: int = 0) -> int:
        return pid

    def controlling_tty(self, pid: int) -> int:
        return 0

    def foreground_group(self, pid: int) -> int:
        return -1


def task(tid: int, state: str, call: str = "", arg0: int = 0, kthread: bool = False) -> Task:
    syscall = Syscall(WAIT4, call, (arg0 & 0xFFFFFFFFFFFFFFFF, 0, 0, 0, 0, 0)) if call else None
    return Task(tid, "x", state, syscall, note="" if call else "exited" if state == "Z" else "", kthread=kthread)


def test_a_zombie_named_by_its_parents_wait4_is_being_reaped() -> None:
    snap = Snap({10: [task(10, "S", "wait4", -1)], 11: [task(11, "Z")]}, {11: 10})
    wait = wait_of(snap, 11, snap.tasks(11)[0])  # type: ignore[arg-type]
    assert wait.edges == () and wait.end is not None
    assert (wait.end.reason, wait.end.parent, wait.end.reaping) == (Reason.EXITED, 10, True)


def test_a_zombie_whose_parent_waits_for_another_child_waits_for_the_parent() -> None:
    snap = Snap({10: [task(10, "S", "wait4", 12)], 11: [task(11, "Z")], 12: [task(12, "S", "pause")]},
                {11: 10, 12: 10})
    wait = wait_of(snap, 11, snap.tasks(11)[0])  # type: ignore[arg-type]
    assert [(e.kind, e.to_pid) for e in wait.edges] == [(EdgeKind.REAP, 10)] and wait.end is None


def test_a_zombie_whose_parent_is_not_scanned_ends_there() -> None:
    snap = Snap({11: [task(11, "Z")]}, {11: 10})
    wait = wait_of(snap, 11, snap.tasks(11)[0])  # type: ignore[arg-type]
    assert wait.end is not None and (wait.end.reason, wait.end.parent, wait.end.reaping) == (Reason.EXITED, 10, False)


def test_an_exited_main_thread_of_a_live_process_waits_for_nothing() -> None:
    snap = Snap({11: [task(11, "Z"), task(12, "S", "pause")]}, {11: 10})
    wait = wait_of(snap, 11, snap.tasks(11)[0])  # type: ignore[arg-type]
    assert wait.edges == () and wait.end is not None and wait.end.reason == Reason.THREAD_EXITED


def test_a_ptrace_stop_waits_for_its_tracer_and_a_signal_stop_ends() -> None:
    snap = Snap({10: [task(10, "S", "pause")], 11: [task(11, "t", "pause")]}, {11: 1}, tracer=10)
    wait = wait_of(snap, 11, snap.tasks(11)[0])  # type: ignore[arg-type]
    assert [(e.kind, e.to_pid) for e in wait.edges] == [(EdgeKind.PTRACE, 10)]
    stopped = Snap({11: [task(11, "T", "pause")]}, {11: 1})
    wait = wait_of(stopped, 11, stopped.tasks(11)[0])  # type: ignore[arg-type]
    assert wait.end is not None and (wait.end.kind, wait.end.tracer) == (EndKind.STOPPED, None)


def test_a_kernel_thread_is_one_whatever_its_state() -> None:
    snap = Snap({2: [task(2, "D", kthread=True)]}, {2: 0})
    wait = wait_of(snap, 2, snap.tasks(2)[0])  # type: ignore[arg-type]
    assert wait.end is not None and (wait.end.kind, wait.end.reason) == (EndKind.KERNEL, Reason.KERNEL_THREAD)
