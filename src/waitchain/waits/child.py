"""wait4/waitid: the thread waits for the child or children its arguments name. The pid
and process-group arguments are numbers in the waiter's pid namespace: children are matched
by their ids as the waiter sees them (NSpid, NSpgid), never by host pids."""

from __future__ import annotations


from ..model import Edge, EdgeKind, End, EndKind, Mode, Reason, Task, Wait
from ..snapshot import Snapshot
from .describe import call_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

    Named = Dict[str, int]  # the End facts naming the wanted child: child, group (0: its own), fd (a pidfd)
    Found = Tuple[List[int], str, Named]  # the children, the argument in words (for evidence), the facts

SYSCALLS = {"wait4", "waitid"}
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    kids, wanted, named = _wanted(snap, pid, task)
    what = call_text(snap, pid, task)
    if not kids:
        return _tracees(snap, pid, task, what, named)
    edges = tuple(Edge(pid, task.tid, kid, None, EdgeKind.CHILD, f"pid {kid}",
                       _evidence(snap, pid, kid, call.name, wanted), syscall=call.name)
                  for kid in kids)
    return Wait(pid, task.tid, what, edges, syscall=call.name, mode=Mode.ANY)


def _tracees(snap: Snapshot, pid: int, task: Task, what: str, named: Named) -> Wait:
    """No child to wait for: a tracer (strace, gdb) waits for its tracees' stops and exits,
    which it need not have forked (TracerPid in their status: read only in this rare case)."""
    call = task.syscall
    assert call is not None
    traced = [p for p in sorted(snap.processes) if p != pid and snap.tracer(p) == pid]
    if not traced:
        end = End(EndKind.UNKNOWN, reason=Reason.NO_CHILD, child=named.get("child"), group=named.get("group"),
                  fd=named.get("fd"))
        return Wait(pid, task.tid, what, end=end, syscall=call.name)
    edges = tuple(Edge(pid, task.tid, p, None, EdgeKind.CHILD, f"pid {p}",
                       f"/proc/{p}/status TracerPid: {pid}: a tracer's {call.name} waits for its "
                       "tracees to stop or exit", syscall=call.name) for p in traced)
    return Wait(pid, task.tid, what, edges, syscall=call.name, mode=Mode.ANY)


def _evidence(snap: Snapshot, pid: int, kid: int, name: str, wanted: str) -> str:
    text = f"{name} argument names {wanted}; /proc/{kid}/stat ppid is {pid}"
    local = snap.local_id(kid, observer=pid)
    if local is not None and local != kid:
        text += f"; /proc/{kid}/status NSpid: it is {local} in {pid}'s pid namespace"
    return text


def wanted_children(snap: Snapshot, pid: int, task: Task) -> List[int]:
    """The children the thread's wait4/waitid would reap (a zombie among them is reaped now)."""
    return _wanted(snap, pid, task)[0]


def _wanted(snap: Snapshot, pid: int, task: Task) -> Found:
    call = task.syscall
    assert call is not None
    children = sorted(snap.children.get(pid, []))
    if call.name == "wait4":
        which = call.arg_int(0)
        if which > 0:
            return _with_pid(snap, pid, children, which), f"child {which}", {"child": which}
        if which == -1:
            return children, "any child", {}
        if which == 0:
            return _in_own_group(snap, pid, children), "any child in its process group", {"group": 0}
        return _in_group(snap, pid, children, -which), f"any child in process group {-which}", {"group": -which}
    return _waitid(snap, pid, children, call.arg_int(0), call.arg_int(1))


def _waitid(snap: Snapshot, pid: int, children: List[int], idtype: int, ident: int) -> Found:
    if idtype == P_PID:
        return _with_pid(snap, pid, children, ident), f"child {ident}", {"child": ident}
    if idtype == P_PGID:
        if not ident:
            return _in_own_group(snap, pid, children), "any child in its process group", {"group": 0}
        return _in_group(snap, pid, children, ident), f"any child in process group {ident}", {"group": ident}
    if idtype == P_PIDFD:
        return _pidfd_child(snap, pid, children, ident)
    return children, "any child", {}


def _with_pid(snap: Snapshot, pid: int, children: List[int], local: int) -> List[int]:
    """The child whose id in the waiter's pid namespace is `local`."""
    return [c for c in children if snap.local_id(c, observer=pid) == local]


def _pidfd_child(snap: Snapshot, pid: int, children: List[int], fd: int) -> Found:
    """fdinfo `Pid:` of a pidfd is in the namespace of the /proc we read: a host pid."""
    info = snap.fdinfo(pid, fd)
    pids = [int(v) for k, v in (info.extra if info else ()) if k == "Pid" and v.isdigit() and v.isascii()]
    if not pids:
        return [], f"the child behind pidfd {fd}", {"fd": fd}
    return [c for c in children if c == pids[0]], f"child {pids[0]} (pidfd {fd})", {"child": pids[0], "fd": fd}


def _in_own_group(snap: Snapshot, pid: int, children: List[int]) -> List[int]:
    """Children in the waiter's own process group (both host ids: no translation)."""
    group = _pgrp(snap, pid)
    return [c for c in children if group is not None and _pgrp(snap, c) == group]


def _in_group(snap: Snapshot, pid: int, children: List[int], local_group: int) -> List[int]:
    """Children whose process group, as the waiter sees it, is `local_group`."""
    return [c for c in children if snap.local_pgrp(c, observer=pid) == local_group]


def _pgrp(snap: Snapshot, pid: int) -> Optional[int]:
    proc = snap.processes.get(pid)
    return proc.pgrp if proc is not None else None
