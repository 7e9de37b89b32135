"""Threads: /proc/PID/task/TID/{stat,syscall,wchan}."""

from __future__ import annotations


from ..errors import AccessDenied, ProcessGone, WaitchainError
from ..model import Stat, Syscall, Task
from . import syscalls
from .process import parse_stat
from .reader import ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple


DENIED = "unreadable: permission denied (run as root)"  # Task.note when syscall is denied
KTHREAD = "kernel thread"  # Task.note of a kernel thread: it makes no system calls of its own
EXITED = "exited"  # Task.note of a zombie (Z) or dead (X) thread
PF_KTHREAD = 0x00200000  # /proc/PID/stat flags (include/linux/sched.h)
NUM_THREADS = 17  # field 20 of /proc/PID/stat, counted after the comm

def parse_syscall(text: str, machine: Optional[str] = None) -> Tuple[Optional[Syscall], str]:
    """Parse `NR a0..a5 SP PC`. Returns (syscall, note); note explains a None."""
    fields = text.split()
    if not fields:
        return None, "no syscall information"
    if fields[0] == "running":
        return None, "running"
    try:
        nr = int(fields[0])
        args = tuple(int(a, 16) for a in fields[1:7])
    except ValueError:
        return None, "unreadable syscall line"
    if nr == -1:
        return None, "not in a system call (page fault or user space)"
    if len(args) < 6:  # the kernel always prints six; rules index them freely
        return None, "unreadable syscall line"
    return Syscall(nr, syscalls.name(nr, machine), args), ""


def read_task(fs: ProcFS, pid: int, tid: int) -> Task:
    """One thread. A thread that exits mid-read raises ProcessGone (the caller skips it)."""
    return _task(fs, pid, tid, parse_stat(fs.read_one(pid, "task", str(tid), "stat")))


def _task(fs: ProcFS, pid: int, tid: int, stat: Stat) -> Task:
    kthread = bool(stat.flags & PF_KTHREAD)
    if kthread:  # its syscall file reads "0 0x0 ...": read(0), which it is not in
        syscall, note = None, KTHREAD
    elif stat.state in ("Z", "X"):
        syscall, note = None, EXITED
    else:
        syscall, note = _syscall(fs, pid, tid)
    return Task(
        tid=tid,
        comm=stat.comm,
        state=stat.state,
        syscall=syscall,
        wchan=_wchan(fs, pid, tid),
        note=note,
        utime=stat.utime,
        stime=stat.stime,
        switches=read_switches(fs, pid, tid),
        kthread=kthread,
    )


def read_switches(fs: ProcFS, pid: int, tid: int) -> Optional[int]:
    """How many times the thread was scheduled in (schedstat's third field); None if the
    kernel does not say. A blocked thread's count does not move."""
    try:
        fields = fs.read_one(pid, "task", str(tid), "schedstat").split()
        return int(fields[2])
    except (WaitchainError, IndexError, ValueError):
        return None


def read_tasks(fs: ProcFS, pid: int) -> List[Task]:
    """Every thread of the process that still exists, main thread first. A process whose
    main thread's stat counts one thread is read without listing task/ (most processes: the
    listing cost more than the thread's files)."""
    try:
        text = fs.read_one(pid, "task", str(pid), "stat")
        alone = _one_thread(text)
    except WaitchainError:
        alone = False  # gone, or its main thread exited: the listing says
    if alone:
        try:
            return [_task(fs, pid, pid, parse_stat(text))]
        except (WaitchainError, ValueError):
            pass  # gone meanwhile: the listing says how
    tids = sorted(int(t) for t in fs.listdir(pid, "task") if t.isdigit() and t.isascii())
    tids.sort(key=lambda t: t != pid)
    tasks = []
    for tid in tids:
        try:
            tasks.append(read_task(fs, pid, tid))
        except (WaitchainError, ValueError):  # the thread exited, or its stat is unreadable
            continue
    if not tasks:
        raise ProcessGone(pid, "task")
    return tasks


def _one_thread(stat: str) -> bool:
    """A thread's stat counts the threads of its whole process (field 20)."""
    fields = stat.rpartition(")")[2].split()
    return len(fields) > NUM_THREADS and fields[NUM_THREADS] == "1"


def _syscall(fs: ProcFS, pid: int, tid: int) -> Tuple[Optional[Syscall], str]:
    try:
        return parse_syscall(fs.read_one(pid, "task", str(tid), "syscall"))
    except ProcessGone:
        raise
    except AccessDenied:
        return None, DENIED
    except WaitchainError as exc:
        return None, f"unreadable: {exc}"


def _wchan(fs: ProcFS, pid: int, tid: int) -> str:
    try:
        text = fs.read_one(pid, "task", str(tid), "wchan").strip()
    except WaitchainError:
        return ""
    return "" if text == "0" else text
