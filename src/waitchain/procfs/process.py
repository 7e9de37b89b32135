"""Processes: /proc/PID/stat, owner, network namespace, command line."""

from __future__ import annotations

import os

from ..errors import WaitchainError
from ..model import Process, Stat
from .reader import ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

CMDLINE_DEADLINE = 0.5  # seconds; cmdline blocks while the target's mmap lock is held


def parse_stat(text: str) -> Stat:
    """Parse /proc/PID/stat. comm may contain spaces and ')', so split at the last ')'."""
    head, sep, tail = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = tail.split()
    if not sep or len(fields) < 20 or not pid_text.strip().isdigit():
        raise ValueError("malformed stat line")
    return Stat(
        pid=int(pid_text),
        comm=comm,
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        starttime=int(fields[19]),
        session=int(fields[3]),
        flags=int(fields[6]),
    )


def read_stat(fs: ProcFS, pid: int) -> Stat:
    return stat_of(pid, fs.read_one(pid, "stat"))


def stat_of(pid: int, text: str) -> Stat:
    """parse_stat, failing with an error that names the process."""
    try:
        return parse_stat(text)
    except ValueError:
        raise WaitchainError(f"process {pid}: unreadable /proc/{pid}/stat") from None


def read_starttime(fs: ProcFS, pid: int) -> Optional[int]:
    """The start time field of /proc/PID/stat alone (None if malformed); raises WaitchainError
    if unreadable. For the pid-reuse check after each read of a process (`Snapshot.alive`,
    ~2,000 of them in `--all` at +1,000): a third of parse_stat's cost."""
    fields = fs.read_one(pid, "stat").rpartition(")")[2].split()
    try:
        return int(fields[19]) if len(fields) >= 20 else None
    except ValueError:
        return None


def read_process(fs: ProcFS, pid: int, piddir: Optional[int] = None) -> Process:
    """Identity and state of one process (fds are filled by the snapshot). `piddir`: an
    fd from fs.open_pid(pid) to read through (the snapshot reads the fds through it too)."""
    if piddir is None:
        piddir = fs.open_pid(pid)
        try:
            return read_process(fs, pid, piddir)
        finally:
            os.close(piddir)
    stat = stat_of(pid, fs.read_at(piddir, pid, "stat"))
    return Process(
        pid=pid,
        starttime=stat.starttime,
        comm=stat.comm,
        state=stat.state,
        ppid=stat.ppid,
        pgrp=stat.pgrp,
        uid=fs.owner_at(piddir, pid),
        netns=_namespace(fs, pid, piddir, "net"),
        pidns=_namespace(fs, pid, piddir, "pid"),
    )


def _namespace(fs: ProcFS, pid: int, piddir: int, kind: str) -> str:
    """`net:[4026531840]`: the namespace of the kind, "" if unreadable."""
    try:
        return fs.readlink_at(piddir, pid, f"ns/{kind}")
    except WaitchainError:
        return ""


def parse_cmdline(raw: bytes) -> str:
    """NUL-separated argv → one line; a process that rewrote its title may leave no NULs."""
    return " ".join(arg.decode("utf-8", "backslashreplace") for arg in raw.rstrip(b"\0").split(b"\0"))


def read_cmdline(fs: ProcFS, pid: int, seconds: Optional[float] = None) -> Optional[str]:
    """The command line, or None for a kernel thread; raises Timeout if it blocks."""
    raw = fs.read_with_deadline(pid, "cmdline", CMDLINE_DEADLINE if seconds is None else seconds)
    return parse_cmdline(raw) if raw else None


def read_children(fs: ProcFS, pid: int) -> List[int]:
    """Children of pid from /proc/PID/task/*/children ([] if it has gone)."""
    kids: List[int] = []
    try:
        for tid in fs.listdir(pid, "task"):
            kids += [int(k) for k in fs.read(pid, "task", tid, "children").split()]
    except (WaitchainError, ValueError):
        pass
    return kids
