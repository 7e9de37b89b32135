"""Has a process run since it was last looked at? For a process with one thread, /proc/PID/stat
(start time, thread count) and /proc/PID/task/PID/schedstat (context switches) say so in two
reads: what the watchdog checks before it looks at a process's waits again."""

from __future__ import annotations

import os
from typing import NamedTuple, Optional, Tuple

from ..errors import WaitchainError
from .reader import ProcFS
from .tasks import read_switches

NUM_THREADS, STARTTIME = 17, 19  # fields 20 and 22 of /proc/PID/stat, counted after the comm
STATE = 0  # field 3
Activity = Tuple[Tuple[int, str], ...]  # (tid, its schedstat line) of every thread, by tid


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


class Seen(NamedTuple):
    """What read_activity read: the stat fields a scan needs, and the threads' activity."""

    starttime: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    activity: Activity


def read_activity(fs: ProcFS, pid: int) -> Optional[Seen]:
    """/proc/PID/stat (start time, state, parent, group), then what changes whenever any
    thread of the process runs: (tid, /proc/PID/task/TID/schedstat) of every thread (for one
    thread, /proc/PID/schedstat: the same line, a shorter path). schedstat is "run time (ns),
    run-queue wait (ns), times scheduled in": a thread switched in since counts one more, and
    one that stayed on a CPU all along has more run time (the scheduler tick, 1 Hz at least
    even on a nohz_full CPU, adds it). None when that cannot be told: the process is running
    now (state R), gone, unreadable, or its threads changed while they were read. Read by
    path with one read() each (the cheapest way to ask); the pid may name another process by
    the time its caller reads more (the start time tells)."""
    where = f"{fs.root}/{pid}"
    try:
        head, sep, tail = _small(f"{where}/stat").rpartition(")")
        fields = tail.split()
        if not sep or len(fields) <= STARTTIME or fields[STATE] == "R" or not fields[NUM_THREADS].isdigit():
            return None
        if fields[NUM_THREADS] == "1":  # the common case: /proc/PID/schedstat is its one thread's
            activity: Activity = ((pid, _small(f"{where}/schedstat")),)
        else:
            tids = sorted(int(t) for t in os.listdir(f"{where}/task") if t.isdigit() and t.isascii())
            activity = tuple((tid, _small(f"{where}/task/{tid}/schedstat")) for tid in tids)
        return Seen(int(fields[STARTTIME]), head.partition(" (")[2], fields[STATE], int(fields[1]),
                    int(fields[2]), activity)
    except (OSError, ValueError):
        return None


def _small(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    if len(data) == 4096:
        raise ValueError("longer than one read")
    return data.decode("utf-8", "surrogateescape")


def switches_of(activity: Activity) -> Optional[int]:
    """The context switches (times scheduled in) of a one-thread process's activity; None
    for more threads or a line that does not parse."""
    if len(activity) != 1:
        return None
    fields = activity[0][1].split()
    return int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
