"""Has a process run since it was last looked at? For a process with one thread, /proc/PID/stat
(start time, thread count) and /proc/PID/task/PID/schedstat (context switches) say so in two
reads: what the watchdog checks before it looks at a process's waits again."""

from __future__ import annotations

from typing import Optional, Tuple

from ..errors import WaitchainError
from .reader import ProcFS
from .tasks import read_switches

NUM_THREADS, STARTTIME = 17, 19  # fields 20 and 22 of /proc/PID/stat, counted after the comm


def parse_one_thread(text: str) -> Optional[int]:
    """The start time in /proc/PID/stat of a process with one thread; None for more threads
    or a line that does not parse."""
    _, sep, tail = text.rpartition(")")
    fields = tail.split()
    if not sep or len(fields) <= STARTTIME or fields[NUM_THREADS] != "1" or not fields[STARTTIME].isdigit():
        return None
    return int(fields[STARTTIME])


def one_thread_activity(fs: ProcFS, pid: int) -> Optional[Tuple[int, int]]:
    """(start time, context switches of its thread) of a one-thread process; None when it has
    more threads, has gone, or the kernel does not count switches."""
    try:
        starttime = parse_one_thread(fs.read(pid, "stat"))
    except WaitchainError:
        return None
    switches = read_switches(fs, pid, pid) if starttime is not None else None
    return None if starttime is None or switches is None else (starttime, switches)
