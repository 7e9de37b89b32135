"""Has a process run since it was last looked at? For a process with one thread, /proc/PID/stat
(start time, thread count) and /proc/PID/task/PID/schedstat (context switches) say so in two
reads, and, with those files held open from the last look, in one pread() per thread: what the
watchdog checks before it looks at a process's fds and waits again."""

from __future__ import annotations

import os

from ..errors import WaitchainError
from ..records import NamedTuple
from .reader import ProcFS
from .tasks import NUM_THREADS, read_switches

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple

    Activity = Tuple[Tuple[int, str], ...]  # (tid, its schedstat line) of every thread, by tid

STARTTIME = 19  # field 22 of /proc/PID/stat, counted after the comm
STATE = 0  # field 3


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
        starttime = parse_one_thread(fs.read_one(pid, "stat"))
    except WaitchainError:
        return None
    switches = read_switches(fs, pid, pid) if starttime is not None else None
    return None if starttime is None or switches is None else (starttime, switches)


class Seen(NamedTuple):
    """What read_activity read: the stat fields a scan needs, and the threads' activity;
    `held`: the schedstat files left open when asked to (one per thread, in the order of
    `activity`), for `activity_again`. Whoever asked closes them (`release`)."""

    starttime: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    activity: Activity
    held: Tuple[int, ...] = ()


def read_activity(fs: ProcFS, pid: int, hold: bool = False) -> Optional[Seen]:
    """/proc/PID/stat (start time, state, parent, group), then what changes whenever any
    thread of the process runs: (tid, /proc/PID/task/TID/schedstat) of every thread (for one
    thread, /proc/PID/schedstat: the same line, a shorter path). schedstat is "run time (ns),
    run-queue wait (ns), times scheduled in": a thread switched in since counts one more, and
    one that stayed on a CPU all along has more run time (the scheduler tick, 1 Hz at least
    even on a nohz_full CPU, adds it). None when that cannot be told: the process is running
    now (state R), gone, unreadable, or its threads changed while they were read. Read by
    path with one read() each (the cheapest way to ask); the pid may name another process by
    the time its caller reads more (the start time tells). hold: leave the schedstat files
    open (Seen.held) so that the next look is one pread() per thread."""
    where = f"{fs.root}/{pid}"
    held: List[int] = []
    try:
        head, sep, tail = _small(f"{where}/stat").rpartition(")")
        fields = tail.split()
        if not sep or len(fields) <= STARTTIME or fields[STATE] == "R" or not fields[NUM_THREADS].isdigit():
            return None
        if fields[NUM_THREADS] == "1":  # the common case: /proc/PID/schedstat is its one thread's
            activity: Activity = ((pid, _small(f"{where}/schedstat", held if hold else None)),)
        else:
            tids = sorted(int(t) for t in os.listdir(f"{where}/task") if t.isdigit() and t.isascii())
            activity = tuple((tid, _small(f"{where}/task/{tid}/schedstat", held if hold else None)) for tid in tids)
        seen = Seen(int(fields[STARTTIME]), head.partition(" (")[2], fields[STATE], int(fields[1]),
                    int(fields[2]), activity, tuple(held))
        held = []
        return seen
    except (OSError, ValueError):
        return None
    finally:
        release(held)


def activity_again(seen: Seen) -> Optional[Activity]:
    """The activity now, through the files read_activity held open: one pread() per thread,
    no path to walk. None when a thread has gone, or the process: a file of /proc/PID stays
    bound to the process it was opened for, so a pid reused since fails too (ESRCH), which is
    what makes the start time unnecessary here."""
    try:
        lines = [os.pread(fd, 4096, 0) for fd in seen.held]
    except OSError:
        return None
    if not seen.held or not all(lines):
        return None
    return tuple((tid, line.decode("utf-8", "surrogateescape")) for (tid, _), line in zip(seen.activity, lines))


def release(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _small(path: str, hold: Optional[List[int]] = None) -> str:
    """One read() of a small file; with `hold`, the file is left open and its fd appended."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        data = os.read(fd, 4096)
    finally:
        if hold is None:
            os.close(fd)
        else:
            hold.append(fd)
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
