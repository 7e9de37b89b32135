"""Signals and time: pause, rt_sigsuspend, rt_sigtimedwait (sigwaitinfo), signalfd reads
(end kind `signal`, with the signals that can end the wait) and nanosleep/clock_nanosleep
(end kind `sleeping`, with the time left when the timespec argument can be read)."""

from __future__ import annotations

import time
from typing import Optional

from ..errors import WaitchainError
from ..model import End, Task, Wait
from ..procfs.cstructs import read_sigset, read_timespec
from ..procfs.status import mask, read_status, signal_names
from ..snapshot import Snapshot

SIGNAL_WAITS = {"pause", "rt_sigsuspend", "rt_sigtimedwait"}
SLEEPS = {"nanosleep", "clock_nanosleep"}
SYSCALLS = SIGNAL_WAITS | SLEEPS
TIMER_ABSTIME = 1
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 7: "CLOCK_BOOTTIME", 11: "CLOCK_TAI"}


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    if call.name in SLEEPS:
        return _sleep(snap, pid, task)
    if call.name == "rt_sigtimedwait":
        return _sigwait(snap, pid, task)
    detail = _suspend_text(snap, pid, task.tid, call.name)
    return Wait(pid, task.tid, f"{call.name}()", end=End("signal", detail))


# --- signals ----------------------------------------------------------------------------


def _suspend_text(snap: Snapshot, pid: int, tid: int, name: str) -> str:
    """pause/sigsuspend end on any signal not blocked (SigBlk holds sigsuspend's mask)."""
    try:
        status = read_status(snap.fs, pid, tid)
    except WaitchainError as exc:
        return f"waits in {name} for a signal (mask unreadable: {exc})"
    blocked, caught = mask(status, "SigBlk"), mask(status, "SigCgt")
    ignored = mask(status, "SigIgn")
    text = f"waits in {name} for a signal not blocked"
    text += f"; blocked: {_names(blocked)}" if blocked else "; no signal blocked"
    handled = caught & ~blocked
    text += f"; handlers for {_names(handled)}" if handled else "; no signal handlers"
    text += f"; ignored: {_names(ignored)}" if ignored else ""
    return text + f" (/proc/{pid}/task/{tid}/status)"


def _sigwait(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    try:
        wanted = read_sigset(pid, call.args[0])
    except WaitchainError as exc:
        return Wait(pid, task.tid, "rt_sigtimedwait()", end=End("signal", f"waits for a signal (set unreadable: {exc})"))
    timeout = _timeout_text(pid, call.args[2])
    what = f"rt_sigtimedwait([{' '.join(signal_names(wanted))}])"
    detail = f"waits for {_names(wanted)} (sigwaitinfo/sigtimedwait set){timeout}"
    return Wait(pid, task.tid, what, end=End("signal", detail))


def _timeout_text(pid: int, address: int) -> str:
    if not address:
        return ", no timeout"
    try:
        return f", timeout {read_timespec(pid, address):.3f} s"
    except WaitchainError:
        return ""


def fd_wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool,
            what: str) -> Optional[Wait]:
    """A read on a signalfd waits for the signals of its `sigmask:` fdinfo line."""
    if target != "anon_inode:[signalfd]":
        return None
    text = snap.fdinfo_field(pid, fd, "sigmask")
    bits = _hex(text) if text is not None else None
    if bits is None:
        return Wait(pid, tid, what, end=End("signal", f"waits for a signal through signalfd {fd}"))
    detail = f"waits for {_names(bits)} through signalfd {fd} (/proc/{pid}/fdinfo/{fd} sigmask: {text})"
    return Wait(pid, tid, what, end=End("signal", detail))


def _hex(text: str) -> Optional[int]:
    try:
        return int(text, 16)
    except ValueError:
        return None


def _names(bits: int) -> str:
    names = signal_names(bits)
    return ", ".join(names) if names else "no signal"


# --- sleeps -----------------------------------------------------------------------------


def _sleep(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    clock, flags, address = (1, 0, call.args[0]) if call.name == "nanosleep" else (
        call.arg_int(0), call.arg_int(1), call.args[2])
    try:
        value = read_timespec(pid, address)
    except WaitchainError as exc:
        detail = f"sleeps in {call.name} (duration unreadable: {exc})"
        return Wait(pid, task.tid, f"{call.name}()", end=End("sleeping", detail))
    if flags & TIMER_ABSTIME:
        return _absolute(pid, task.tid, call.name, clock, value)
    what = f"{call.name}({value:g} s)"
    return Wait(pid, task.tid, what, end=End("sleeping", _relative_text(snap, pid, task.tid, call.name, value)))


def _absolute(pid: int, tid: int, name: str, clock: int, value: float) -> Wait:
    clock_name = CLOCKS.get(clock, f"clock {clock}")
    what = f"{name}({clock_name}, TIMER_ABSTIME, {value:.3f})"
    try:
        left = value - time.clock_gettime(clock)
    except (OSError, OverflowError):
        return Wait(pid, tid, what, end=End("sleeping", f"sleeps until {value:.3f} on {clock_name}"))
    return Wait(pid, tid, what, end=End("sleeping", f"sleeps until {value:.3f} on {clock_name}: {_duration(left)} left"))


def _relative_text(snap: Snapshot, pid: int, tid: int, name: str, value: float) -> str:
    """The requested time; the time left estimated from when the thread last ran."""
    text = f"sleeps in {name} for {_duration(value)}"
    slept = snap.idle_seconds(pid, tid)
    if slept is None:
        return text
    left = max(value - slept, 0.0)
    return text + f", about {_duration(left)} left (it last ran {_duration(slept)} ago: /proc/{pid}/task/{tid}/sched)"


def _duration(seconds: float) -> str:
    if abs(seconds) >= 1e9:
        return "ever (more than 30 years)"
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f} h"
    if abs(seconds) >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"
