"""How long a thread has not run: /proc/PID/task/TID/sched `se.exec_start`.

`se.exec_start` is in milliseconds of the scheduler's clock (rq clock_task: it excludes
steal and IRQ time, so it drifts from CLOCK_MONOTONIC). The same clock's "now" is our own
thread's `se.exec_start` right after we have been scheduled in (sched_yield)."""

from __future__ import annotations

import os

from ..errors import WaitchainError
from .reader import ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple


def parse_exec_start(text: str) -> Optional[float]:
    """`se.exec_start : 725713.608879` → 725713.608879 (ms), None if absent."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "se.exec_start":
            try:
                return float(value.strip())
            except ValueError:
                return None
    return None


def read_exec_start(fs: ProcFS, pid: int, tid: int) -> Optional[float]:
    """When the thread last ran (scheduler clock, ms); None if unreadable (no
    CONFIG_SCHED_DEBUG, gone, denied)."""
    try:
        return parse_exec_start(fs.read_one(pid, "task", str(tid), "sched"))
    except WaitchainError:
        return None


def read_sched_now(fs: ProcFS, cpu: Optional[int] = None) -> Optional[float]:
    """The scheduler clock now (ms): our own exec_start just after a reschedule. The clock
    is each CPU's own (it leaves out that CPU's IRQ and steal time: CPUs drift apart by
    seconds on a busy machine), so with `cpu` it is read on that CPU: the one a thread
    last ran on gives its idle time on one clock."""
    pinned = _pin(cpu) if cpu is not None and fs.root == "/proc" else None
    try:
        os.sched_yield()
        return parse_exec_start(fs.read_one(None, "thread-self", "sched"))
    except WaitchainError:
        return None
    finally:
        if pinned is not None:
            try:
                os.sched_setaffinity(0, pinned)
            except OSError:
                pass


def _pin(cpu: int) -> Optional[set]:
    """Move our thread to `cpu`; the affinity it had (None when it cannot move)."""
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        return before
    except (OSError, ValueError, AttributeError):
        return None


def read_cpu_and_start(fs: ProcFS, pid: int, tid: int) -> Tuple[Optional[int], Optional[float]]:
    """From one read of the thread's stat: the CPU it last ran on (field 39) and when it
    started (field 22, in seconds since boot); None for what is unreadable."""
    try:
        fields = fs.read_one(pid, "task", str(tid), "stat").rpartition(")")[2].split()
    except WaitchainError:
        return None, None
    return _field(fields, 36), _started(fields)


def _field(fields: List[str], index: int) -> Optional[int]:
    try:
        return int(fields[index])
    except (ValueError, IndexError):
        return None


def _started(fields: List[str]) -> Optional[float]:
    ticks = _field(fields, 19)
    try:
        return None if ticks is None else ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def read_uptime(fs: ProcFS) -> Optional[float]:
    """Seconds since boot (/proc/uptime), on the clock of a stat's start time."""
    try:
        return float(fs.read_one(None, "uptime").split()[0])
    except (WaitchainError, ValueError, IndexError):
        return None


# --- values the kernel can get wrong --------------------------------------------------------
# A task that migrated to another CPU while asleep can show se.exec_start 0 (measured: 4 of
# 200 sleeping children in one run): "blocked for" was then the machine's uptime. A thread
# cannot have been idle longer than it has existed, and se.exec_start's clock (rq
# clock_task, which leaves out IRQ and steal time) runs no faster than the boot-time clock
# its start time is on: an idle time longer than the thread's age is impossible.

SLACK = 1.0  # seconds of slack between the two clocks and the two reads


def plausible_idle(last: Optional[float], now: Optional[float], age: Optional[float]) -> Optional[float]:
    """Seconds the thread has not run, from its exec_start `last` and the scheduler clock
    `now` (ms), or None (unknown) when the kernel's numbers cannot be right: exec_start 0
    or ahead of now by more than the slack, or an idle time longer than the thread's `age`
    (seconds since it started; None: not checked)."""
    if last is None or now is None or last <= 0:
        return None
    idle = (now - last) / 1000.0
    if idle < -SLACK:
        return None
    if age is not None and idle > age * 1.01 + SLACK:
        return None
    return max(0.0, idle)


def age_at(uptime: Optional[float], started: Optional[float]) -> Optional[float]:
    """Seconds since `started` when the machine had been up `uptime`; None if either is."""
    return None if uptime is None or started is None else uptime - started
