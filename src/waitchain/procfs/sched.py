"""How long a thread has not run: /proc/PID/task/TID/sched `se.exec_start`.

`se.exec_start` is in milliseconds of the scheduler's clock (rq clock_task: it excludes
steal and IRQ time, so it drifts from CLOCK_MONOTONIC). The same clock's "now" is our own
thread's `se.exec_start` right after we have been scheduled in (sched_yield)."""

from __future__ import annotations

import os
from typing import Optional

from ..errors import WaitchainError
from .reader import ProcFS


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
        return parse_exec_start(fs.read(pid, "task", str(tid), "sched"))
    except WaitchainError:
        return None


def read_sched_now(fs: ProcFS) -> Optional[float]:
    """The scheduler clock now (ms): our own exec_start just after a reschedule."""
    os.sched_yield()
    try:
        return parse_exec_start(fs.read(None, "thread-self", "sched"))
    except WaitchainError:
        return None
