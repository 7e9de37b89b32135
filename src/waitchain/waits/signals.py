"""Signals and time: pause, rt_sigsuspend, rt_sigtimedwait (sigwaitinfo), signalfd reads
(end kind `signal`, with the signals that can end the wait) and nanosleep/clock_nanosleep
(end kind `sleeping`, with the time left when the timespec argument can be read).

And signals as wake sources (`wake_sources`, called by the poll and pipe rules). A
caught signal that is not blocked during the wait ends it; but Python catches SIGINT in
every process, so that alone must not count as a way out of every wait. It counts only
where the program shows it waits for signals: a call given a signal mask (pselect6, ppoll,
epoll_pwait: GNU make unblocks SIGCHLD only there) or an OR wait that watches a wake-up fd
(a non-blocking pipe or socketpair only its own process holds: asyncio's and a selectors
loop's self-pipe, which the signal handler writes; see is_wakeup_fd), or a plain read of
one (the pipe rule). Then SIGCHLD is
sent by the live children (edges to each), and the other caught signals by someone
outside: the process is idle, waiting for them, when nothing else it waits for is another
process (with a stuck process to wait for, a knot stays a deadlock that only a signal from
outside could break)."""

from __future__ import annotations

import signal
import struct
import time

from ..errors import WaitchainError
from ..model import Edge, EdgeKind, End, EndKind, Reason, Syscall, Task, Wait
from ..procfs.status import mask, signal_names
from ..records import replace
from ..snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Sequence, Tuple

SIGNAL_WAITS = {"pause", "rt_sigsuspend", "rt_sigtimedwait"}
SLEEPS = {"nanosleep", "clock_nanosleep"}
SYSCALLS = SIGNAL_WAITS | SLEEPS
TIMER_ABSTIME = 1
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 7: "CLOCK_BOOTTIME", 11: "CLOCK_TAI"}
SIGCHLD_BIT = 1 << (signal.SIGCHLD - 1)
SIGINT_BIT = 1 << (signal.SIGINT - 1)
GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # signals 32 and 33: glibc's cancellation and setxid
# The argument that is a sigset_t pointer (pselect6's points at {sigset_t *ss; size_t len}).
SIGMASK_ARG = {"ppoll": 3, "pselect6": 5, "epoll_pwait": 4, "epoll_pwait2": 4}
POINTER = struct.Struct("=Q")
O_NONBLOCK = 0o4000  # in fdinfo `flags`
MAX_INTERVAL = 1.0  # seconds: a longer sleep is a pause, not a lock retry (retry.py)


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    if call.name in SLEEPS:
        return _sleep(snap, pid, task)
    if call.name == "rt_sigtimedwait":
        return _sigwait(snap, pid, task)
    return Wait(pid, task.tid, f"{call.name}()", end=suspend_end(snap, pid, task.tid, call.name),
                syscall=call.name)


# --- signals as wake sources of an OR wait -----------------------------------------------


def wake_sources(snap: Snapshot, pid: int, tid: int, syscall: str, masked: bool, wakeup_fd: bool,
                 others: bool) -> Tuple[List[Edge], List[End]]:
    """Edges to the live children when SIGCHLD ends the wait, and a live end when other
    caught signals do, for a wait that is woken by signals (see the module docstring).
    `masked`: the call was given a signal mask (has_sigmask); `wakeup_fd`: it waits on a
    wake-up fd (is_wakeup_fd); `others`: it also waits for other processes (then a signal
    from outside is no reason to call it idle)."""
    if not (wakeup_fd or masked):
        return [], []
    try:
        ending = unblocked_handlers(snap, pid, tid)
    except WaitchainError:
        return [], []
    edges = sigchld_edges(snap, pid, tid, syscall) if ending & SIGCHLD_BIT else []
    outside = ending & ~SIGCHLD_BIT
    if not outside or others or edges:
        return edges, []
    # not masked: it waits on a wake-up fd only it holds (self_held)
    end = End(EndKind.SIGNAL, reason=Reason.SIGNAL_FROM_OUTSIDE, signals=tuple(signal_names(outside)),
              call=syscall, self_held=not masked, source=f"/proc/{pid}/task/{tid}/status")
    return edges, [end]


def handler_wakes(snap: Snapshot, pid: int, tid: int, syscall: str, python: bool) -> Tuple[List[Edge], List[End]]:
    """For a wait only the process's own threads can end (a private futex): a signal
    handler is one of them, since a handler may post a semaphore or set a flag. Edges to
    the live children when a SIGCHLD handler can run, a live end when a handler for
    another signal can (some thread does not block it). Not glibc's internal signals, nor
    Python's SIGINT: it raises KeyboardInterrupt, which ends the program's wait, not its
    deadlock. Status unreadable: a live unknown end (no way out may be assumed)."""
    try:
        handled = snap.handled_signals(pid) & ~GLIBC_INTERNAL
    except WaitchainError:
        return [], [End(EndKind.UNKNOWN, reason=Reason.NOT_READABLE, call=syscall,
                        subject=f"/proc/{pid}/status")]
    if python:
        handled &= ~SIGINT_BIT
    edges = sigchld_edges(snap, pid, tid, syscall) if handled & SIGCHLD_BIT else []
    outside = handled & ~SIGCHLD_BIT
    if not outside:
        return edges, []
    end = End(EndKind.SIGNAL, reason=Reason.SIGNAL_HANDLER, signals=tuple(signal_names(outside)),
              call=syscall, source=f"/proc/{pid}/task/*/status")
    return edges, [end]


def is_wakeup_fd(snap: Snapshot, pid: int, edges: Sequence[Edge]) -> bool:
    """Edges of a read whose other end is a wake-up fd: only this process holds it, and
    holds it non-blocking (a signal handler must never block writing it: Python's
    set_wakeup_fd insists on it, and asyncio's and selector loops' self-pipes are so). A
    blocking pipe only this process holds is no wake-up fd: nothing shows a handler writes it."""
    if not edges or any(e.to_pid != pid or e.writing for e in edges):
        return False
    return any(_nonblocking(snap, pid, fd) for e in edges for fd in e.holder_fds)


def _nonblocking(snap: Snapshot, pid: int, fd: int) -> bool:
    info = snap.fdinfo(pid, fd)
    return info is not None and bool(info.flags & O_NONBLOCK)


def has_sigmask(snap: Snapshot, pid: int, call: Syscall) -> bool:
    """The call was given a signal mask for the wait (not NULL)."""
    index = SIGMASK_ARG.get(call.name)
    if index is None or not call.args[index]:
        return False
    if call.name != "pselect6":
        return True
    try:  # glibc's select() passes NULL here, pselect() a pointer to {mask or NULL, size}
        return POINTER.unpack(snap.memory.read(pid, call.args[index], POINTER.size))[0] != 0
    except WaitchainError:
        return False


def unblocked_handlers(snap: Snapshot, pid: int, tid: int) -> int:
    """Signals the process has handlers for (SigCgt) that the thread does not block now.
    During pselect6, ppoll and epoll_pwait the thread's SigBlk is the mask the call was
    given (measured on 6.18), so no memory needs reading. Raises WaitchainError."""
    status = snap.status(pid, tid)
    return mask(status, "SigCgt") & ~mask(status, "SigBlk")


def sigchld_edges(snap: Snapshot, pid: int, tid: int, syscall: str) -> List[Edge]:
    """A SIGCHLD edge to each child that can still exit (not a zombie)."""
    evidence = (f"/proc/{pid}/task/{tid}/status: a SIGCHLD handler (SigCgt), not blocked during "
                f"{syscall} (SigBlk); /proc/CHILD/stat ppid is {pid}")
    return [Edge(pid, tid, kid, None, EdgeKind.SIGCHLD, f"pid {kid}", evidence, syscall=syscall)
            for kid in live_children(snap, pid)]


def live_children(snap: Snapshot, pid: int) -> List[int]:
    procs = snap.processes
    return sorted(c for c in snap.children.get(pid, []) if c in procs and procs[c].state not in ("Z", "X"))


# --- pause, sigsuspend, sigtimedwait, signalfd ---------------------------------------------


def suspend_end(snap: Snapshot, pid: int, tid: int, name: str) -> End:
    """pause/sigsuspend end on any signal not blocked (SigBlk holds sigsuspend's mask)."""
    try:
        status = snap.status(pid, tid)
    except WaitchainError as exc:
        return _signal_end(call=name, unread=str(exc))
    blocked, caught = mask(status, "SigBlk"), mask(status, "SigCgt")
    return _signal_end(signal_names(caught & ~blocked), call=name, blocked=tuple(signal_names(blocked)),
                       ignored=tuple(signal_names(mask(status, "SigIgn"))), source=f"/proc/{pid}/task/{tid}/status")


def _signal_end(signals: Sequence[str] = (), **facts: Any) -> End:
    return End(EndKind.SIGNAL, reason=Reason.SIGNAL_WAIT, signals=tuple(signals), **facts)


def _sigwait(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    try:
        wanted = snap.memory.sigset(pid, call.args[0])
    except WaitchainError as exc:
        end = _signal_end(call=call.name, unread=str(exc))
        return Wait(pid, task.tid, "rt_sigtimedwait()", end=end, syscall=call.name)
    what = f"rt_sigtimedwait([{' '.join(signal_names(wanted))}])"
    address = call.args[2]
    end = _signal_end(signal_names(wanted), call=call.name, timeout=_timeout(snap, pid, address),
                      untimed=not address)
    return Wait(pid, task.tid, what, end=end, syscall=call.name)


def _timeout(snap: Snapshot, pid: int, address: int) -> Optional[float]:
    """The timeout in seconds (None for none, or unreadable)."""
    if not address:
        return None
    try:
        return snap.memory.timespec(pid, address)
    except WaitchainError:
        return None


def fd_wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool,
            what: str) -> Optional[Wait]:
    """A read on a signalfd waits for the signals of its `sigmask:` fdinfo line."""
    if target != "anon_inode:[signalfd]":
        return None
    text = snap.fdinfo_field(pid, fd, "sigmask")
    bits = _hex(text) if text is not None else None
    if bits is None:
        return Wait(pid, tid, what, end=_signal_end(fd=fd))
    return Wait(pid, tid, what, end=_signal_end(signal_names(bits), fd=fd,
                                                source=f"/proc/{pid}/fdinfo/{fd} sigmask: {text}"))


def _hex(text: str) -> Optional[int]:
    try:
        return int(text, 16)
    except ValueError:
        return None


# --- sleeps -----------------------------------------------------------------------------


def _sleep(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    clock, flags, address = (1, 0, call.args[0]) if call.name == "nanosleep" else (
        call.arg_int(0), call.arg_int(1), call.args[2])
    try:
        value = snap.memory.timespec(pid, address)
    except WaitchainError as exc:
        end = End(EndKind.SLEEPING, reason=Reason.SLEEP, call=call.name, unread=str(exc))
        return Wait(pid, task.tid, f"{call.name}()", end=end, syscall=call.name)
    if flags & TIMER_ABSTIME:
        return retrying(snap, _absolute(pid, task.tid, call.name, clock, value))
    end = _relative(snap, pid, task.tid, call.name, value)
    return retrying(snap, Wait(pid, task.tid, f"{call.name}({value:g} s)", end=end, syscall=call.name))


def retrying(snap: Snapshot, wait: Wait, interval: Optional[float] = None) -> Wait:
    """A short sleep with a file open that another process holds a conflicting lock on is
    taken for a lock retry loop: edges to the holders instead of the end (retry.py).
    `interval`: how long one sleep lasts, else the end's requested time, else (an absolute
    sleep) the time left and the time slept, or the time left alone when the time slept is
    not plausible (se.exec_start said 2.1 s for a thread that sleeps 0.1 s at a time, on a
    loaded machine: measured)."""
    end = wait.end
    assert end is not None
    interval = interval if interval is not None else end.duration
    if interval is None and end.timeout is not None:
        slept = snap.idle_seconds(wait.pid, wait.tid)
        interval = end.timeout + (slept if slept is not None and slept <= MAX_INTERVAL else 0.0)
    if interval is None or not 0 <= interval <= MAX_INTERVAL:
        return wait
    from .retry import retry_edges  # imported when first needed: start-up (issue 14)

    edges, mode = retry_edges(snap, wait.pid, wait.tid, end.call, interval)
    return replace(wait, edges=edges, end=None, mode=mode) if edges else wait


def _absolute(pid: int, tid: int, name: str, clock: int, value: float) -> Wait:
    clock_name = CLOCKS.get(clock, f"clock {clock}")
    what = f"{name}({clock_name}, TIMER_ABSTIME, {value:.3f})"
    try:
        left: Optional[float] = value - time.clock_gettime(clock)
    except (OSError, OverflowError):
        left = None
    end = End(EndKind.SLEEPING, reason=Reason.SLEEP, call=name, until=value, clock=clock_name,
              timeout=None if left is None else max(left, 0.0))
    return Wait(pid, tid, what, end=end, syscall=name)


def _relative(snap: Snapshot, pid: int, tid: int, name: str, value: float) -> End:
    """The requested time; the time left estimated from when the thread last ran."""
    slept = snap.idle_seconds(pid, tid)
    if slept is None:
        return End(EndKind.SLEEPING, reason=Reason.SLEEP, call=name, duration=value, timeout=value)
    return End(EndKind.SLEEPING, reason=Reason.SLEEP, call=name, duration=value, timeout=max(value - slept, 0.0),
               idle=slept, source=f"/proc/{pid}/task/{tid}/sched")
