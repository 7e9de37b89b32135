"""wait4/waitid: the thread waits for the child or children its arguments name."""

from __future__ import annotations

from typing import List, Tuple

from ..model import Edge, End, Task, Wait
from ..snapshot import Snapshot
from .describe import call_text

SYSCALLS = {"wait4", "waitid"}
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    assert task.syscall is not None
    kids, wanted = _wanted(snap, pid, task)
    what = call_text(snap, pid, task)
    if not kids:
        return Wait(pid, task.tid, what, end=End("unknown", f"waits for {wanted}, but there is none"))
    evidence = f"{task.syscall.name} argument names {wanted}; /proc/CHILD/stat ppid is {pid}"
    label = "waits for its child"
    edges = tuple(Edge(pid, task.tid, kid, None, "child", f"pid {kid}", evidence, label) for kid in kids)
    return Wait(pid, task.tid, what, edges)


def _wanted(snap: Snapshot, pid: int, task: Task) -> Tuple[List[int], str]:
    call = task.syscall
    assert call is not None
    children = sorted(snap.children.get(pid, []))
    if call.name == "wait4":
        which = call.arg_int(0)
        if which > 0:
            return [c for c in children if c == which], f"child {which}"
        if which == -1:
            return children, "any child"
        group = -which if which < -1 else snap.processes[pid].pgrp
        return _in_group(snap, children, group), f"any child in process group {group}"
    return _waitid(snap, pid, children, call.arg_int(0), call.arg_int(1))


def _waitid(snap: Snapshot, pid: int, children: List[int], idtype: int, ident: int):
    if idtype == P_PID:
        return [c for c in children if c == ident], f"child {ident}"
    if idtype == P_PGID:
        group = ident or snap.processes[pid].pgrp
        return _in_group(snap, children, group), f"any child in process group {group}"
    if idtype == P_PIDFD:
        return _pidfd_child(snap, pid, children, ident)
    return children, "any child"


def _pidfd_child(snap: Snapshot, pid: int, children: List[int], fd: int):
    info = snap.fdinfo(pid, fd)
    pids = [int(v) for k, v in (info.extra if info else ()) if k == "Pid" and v.isdigit() and v.isascii()]
    if not pids:
        return [], f"the child behind pidfd {fd}"
    return [c for c in children if c == pids[0]], f"child {pids[0]} (pidfd {fd})"


def _in_group(snap: Snapshot, children: List[int], group: int) -> List[int]:
    return [c for c in children if snap.processes[c].pgrp == group]
