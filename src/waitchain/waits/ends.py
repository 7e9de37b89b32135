"""Waits decided by a thread's state, and waits that end a chain: a kernel thread (no user
process: no fds, no system calls to decode), a running thread (busy on a CPU), a stopped one
(by a signal, or by its tracer: TracerPid names it; the kernel does not record who sent a
SIGSTOP), an exited one (a zombie waits for its parent to reap it: an edge to the parent,
whose own wait is followed; a main thread that exited while the others go on waits for
nothing), a server waiting for clients, a connect, and calls that later rules will follow.
Also what every run asks before any other rule is imported (waits/__init__.py): whether the
kernel's rule takes the thread (D state, a FUSE request), and the end of an OR wait none of
whose alternatives leads to another process (the poll rule's, and graph/chains.py's)."""

from __future__ import annotations

import os

from ..errors import WaitchainError
from ..model import Edge, EdgeKind, End, EndKind, Reason, Task, Wait
from ..records import replace
from ..snapshot import Snapshot
from .describe import call_text, fd_text, plural

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence, Tuple

SYSCALLS = {"accept", "accept4", "connect"}  # sleeps and signal waits: signals.py
OR_WAITS = {"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"}
EXITED = ("Z", "X")
FUSE_CALLS = ("request_wait_answer", "__fuse_simple_request", "fuse_simple_request")


def in_kernel_wait(task: Task) -> bool:
    """The threads kernel.py's rule handles: every D-state thread, and any thread inside a
    FUSE request (here, not in kernel.py, which is imported only for those threads)."""
    return task.state == "D" or is_fuse(task.wchan)


def is_fuse(name: str) -> bool:
    """A kernel function of a FUSE request (a wchan or a stack frame)."""
    return name.startswith(FUSE_CALLS) or (name.startswith("fuse_") and not name.startswith("fuse_dev_"))


def by_state(task: Task) -> Optional[End]:
    """Ends decided by the thread state alone, before looking at the system call
    (D state is kernel.py's: wait_of asks it first)."""
    if task.kthread:
        return End(EndKind.KERNEL, reason=Reason.KERNEL_THREAD, subject=task.wchan)
    if task.state == "R" or task.note == "running":
        return End(EndKind.RUNNING, reason=Reason.BUSY, cpu=_cpu(task))
    if task.state in ("T", "t"):
        return End(EndKind.STOPPED, reason=Reason.STOPPED)
    if task.state in EXITED:
        return End(EndKind.UNKNOWN, reason=Reason.EXITED)
    if task.syscall is None:
        return End(EndKind.UNKNOWN, task.note or "no system call information", reason=Reason.NOT_READABLE)
    return None


def state_rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    """The wait of a thread its state decides: by_state's end, with what the snapshot adds
    (a stopped thread's tracer, an exited process's parent)."""
    what = call_text(snap, pid, task)
    if task.kthread:
        return Wait(pid, task.tid, what, end=by_state(task))
    if task.state in ("T", "t"):
        return _stopped(snap, pid, task, what)
    if task.state in EXITED:
        return _exited(snap, pid, task, what)
    return Wait(pid, task.tid, what, end=by_state(task))


def _stopped(snap: Snapshot, pid: int, task: Task, what: str) -> Wait:
    """A ptrace stop (t) waits for its tracer to resume it: an edge to the tracer (a
    debugger at its prompt). A stop by a signal (T) ends the chain: the kernel does not
    record who sent it (a tracer, if it has one, is named)."""
    source = f"/proc/{pid}/task/{task.tid}/status"
    try:
        text = snap.status(pid, task.tid).get("TracerPid", "0")
    except WaitchainError:
        text = "0"
    tracer = int(text) if text.isdigit() and text.isascii() else 0
    if task.state == "t" and tracer in snap.processes and tracer != pid:
        edge = Edge(pid, task.tid, tracer, None, EdgeKind.PTRACE, f"pid {pid}",
                    f"/proc/{pid}/task/{task.tid}/stat: state t (tracing stop); {source}: TracerPid {tracer}")
        return Wait(pid, task.tid, what, (edge,))
    end = End(EndKind.STOPPED, reason=Reason.STOPPED, tracer=tracer or None, source=source)
    return Wait(pid, task.tid, what, end=_job(snap, pid, end))


def _job(snap: Snapshot, pid: int, end: End) -> End:
    """A stopped background job of a terminal (its group is not the terminal's foreground
    group: a shell's Ctrl-Z, or SIGTTIN/SIGTTOU for reading or writing it from behind): the
    terminal and its foreground group. Which signal it was is still not recorded."""
    from . import tty  # imported when first needed: start-up (issue 14)

    proc = snap.processes.get(pid)
    number, foreground = snap.controlling_tty(pid), snap.foreground_group(pid)
    if proc is None or not number or foreground <= 0 or foreground == proc.pgrp:
        return end
    return replace(end, subject=tty.device_name(number), group=foreground)


def _exited(snap: Snapshot, pid: int, task: Task, what: str) -> Wait:
    """An exited thread. Its process goes on when another thread lives (the main thread
    called pthread_exit); else the process is a zombie that waits for its parent to reap it."""
    if any(t.state not in EXITED for t in snap.tasks(pid)):
        return Wait(pid, task.tid, what, end=End(EndKind.UNKNOWN, reason=Reason.THREAD_EXITED))
    proc = snap.processes.get(pid)
    parent = proc.ppid if proc is not None else 0
    if parent not in snap.processes:
        return Wait(pid, task.tid, what, end=End(EndKind.UNKNOWN, reason=Reason.EXITED, parent=parent or None))
    from . import child  # imported when first needed: start-up (issue 14)

    if any(t.syscall is not None and t.syscall.name in child.SYSCALLS and t.state not in ("T", "t")
           and pid in child.wanted_children(snap, parent, t) for t in snap.tasks(parent)):
        # it has just exited, and the parent's wait names it: the parent reaps it now
        return Wait(pid, task.tid, what, end=End(EndKind.UNKNOWN, reason=Reason.EXITED, parent=parent,
                                                 reaping=True))
    evidence = (f"/proc/{pid}/stat: state {task.state} (exited), ppid {parent}; no thread of {parent} "
                "waits for it in wait4/waitid")
    edge = Edge(pid, task.tid, parent, None, EdgeKind.REAP, f"pid {pid}", evidence)
    return Wait(pid, task.tid, what, (edge,))


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    assert task.syscall is not None
    name = task.syscall.name
    what = call_text(snap, pid, task)
    if name in ("accept", "accept4"):
        fd = task.syscall.arg_int(0)
        where = fd_text(snap, pid, fd)
        end = End(EndKind.IDLE, reason=Reason.ACCEPT, subject=where)
        return Wait(pid, task.tid, what, end=end)
    end = End(EndKind.REMOTE, reason=Reason.CONNECTING)
    return Wait(pid, task.tid, what, end=end)


def unfollowed(task: Task) -> End:
    name = task.syscall.name if task.syscall else "?"
    if name in OR_WAITS:
        detail = f"waits in {name} for any of several fds (not followed yet)"
    elif name == "futex":
        detail = "waits on a futex (a lock or condition; not followed yet)"
    else:
        detail = f"blocked in {name} ({task.wchan or 'no wchan'}; not followed)"
    return End(EndKind.UNKNOWN, detail, reason=Reason.NOT_FOLLOWED)


def _cpu(task: Task) -> float:
    return (task.utime + task.stime) / os.sysconf("SC_CLK_TCK")


# --- an OR wait none of whose alternatives leads to another process -------------------------
# (here, not in poll.py: graph/chains.py asks it too, and need not import the poll rule)


def live_end(count: int, live: Sequence[End]) -> End:
    """The end of a thread none of whose alternatives leads to another process: what its
    live alternatives are. One that waits for clients makes it a server's idle wait,
    whatever else (a timeout, a signal) it also waits for."""
    fds = plural(count, "fd")
    if not count and len(live) == 1:  # no OR wait: a plain wait's one way out (a timeout, a handler)
        return live[0]
    if not live:
        return End(EndKind.UNKNOWN, f"waits for any of {fds}; none was followed", reason=Reason.OTHER)
    kinds = {e.kind for e in live}
    reasons = {e.reason for e in live}
    kind = kinds.pop() if len(kinds) == 1 else EndKind.IDLE
    reason = reasons.pop() if len(reasons) == 1 else Reason.OTHER
    subject = live[0].subject if len(live) == 1 else ""
    accept = next((e for e in live if e.reason == Reason.ACCEPT), None)
    typed = next((e for e in live if e.reason == Reason.TERMINAL_INPUT), None)
    if accept is not None:
        kind, reason, subject = EndKind.IDLE, Reason.ACCEPT, accept.subject
    elif typed is not None:  # a relay (script, ssh) whose input is a person's terminal
        kind, reason, subject = EndKind.TERMINAL, Reason.TERMINAL_INPUT, typed.subject
    return End(kind, reason=reason, subject=subject, signals=_signals(live), timeout=_soonest(live),
               any_of=count, alternatives=tuple(live))


def _signals(live: Sequence[End]) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(s for e in live for s in e.signals))


def _soonest(live: Sequence[End]) -> Optional[float]:
    times = [e.timeout for e in live if e.timeout is not None]
    return min(times) if times else None
