"""The scan of many processes on two CPUs: a forked child reads the second part of the pid
list (stat, owner, namespaces, every fd's readlink) and hands its Processes back through a
pipe (marshal), while this process reads the first part. Threads would not help: the GIL
is handed over at every readlink.

Never a hang: the child has a deadline (then it is killed and its part read here), it is
killed and reaped on every way out (an error, Ctrl-C), SIGINT/SIGTERM/SIGHUP kill it
outright, and it keeps no fd but its end of the pipe. Forked only from a process with one
thread (no DeprecationWarning, no lock held by a thread that does not exist in the child)."""

from __future__ import annotations

import marshal
import os
import select
import signal
import threading
import warnings

from ..children import close_inherited
from ..model import Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Sequence, Tuple

    ScanOne = Callable[[int, List[str]], Optional[Process]]

SPLIT_AT = 256  # processes from which a second CPU reads a part of them
CHILD_PART = 0.5  # of the pids, the child's (the last ones); this process also merges (the holders index is built later, on need)
MIN_DEADLINE = 2.0  # seconds the child may take at least; else 3x what this process took
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return 1


def worth_splitting(count: int) -> bool:
    return count >= SPLIT_AT and threading.active_count() == 1 and cpus() > 1


def scan_split(pids: Sequence[int], scan_one: ScanOne, notes: List[str]) -> List[Optional[Process]]:
    """scan_one(pid, notes) of every pid, in order: the same Processes and notes as a loop
    over them, read by this process and a forked child. This process itself is read here,
    after the child is gone (its fd table then shows no pipe to the child)."""
    me = os.getpid()
    others = [pid for pid in pids if pid != me]
    cut = len(others) - int(len(others) * CHILD_PART)
    child = _Child()
    try:
        child.start(others[cut:], scan_one)
        started = os.times().elapsed
        found = [scan_one(pid, notes) for pid in others[:cut]]
        got = child.result(max(MIN_DEADLINE, 3 * (os.times().elapsed - started)))
    finally:
        child.end()
    if got is None:  # no answer in time, or none at all: read their part here
        found += [scan_one(pid, notes) for pid in others[cut:]]
    else:
        kids, their_notes = got
        found += [None if kid is None else Process(**kid) for kid in kids]
        notes += their_notes
    if len(others) == len(pids):
        return found
    where = list(pids).index(me)
    return found[:where] + [scan_one(me, notes)] + found[where:]


class _Child:
    """A forked child reading pids; end() always kills and reaps it."""

    def __init__(self) -> None:
        self.pid = self.pipe = -1

    def start(self, pids: List[int], scan_one: ScanOne) -> None:
        """Fork the child (none if fork fails: result() is then None)."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # until each side is ready for them
        write_end = -1
        try:
            self.pipe, write_end = os.pipe()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.pid = os.fork()
        except OSError:
            pass  # out of fds or processes: no child
        finally:
            if self.pid == 0:
                _child(pids, scan_one, write_end, mask)  # never returns
            if write_end >= 0:
                os.close(write_end)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C pending is raised here

    def result(self, seconds: float) -> Optional[Tuple[list, List[str]]]:
        """The child's Processes (their fields as dicts) and notes; None if not whole within `seconds`."""
        if self.pid < 0:
            return None
        chunks: List[bytes] = []
        poller = select.poll()
        poller.register(self.pipe, select.POLLIN)
        deadline = os.times().elapsed + seconds
        while True:
            left = deadline - os.times().elapsed
            if left <= 0 or not poller.poll(left * 1000):
                return None
            chunk = os.read(self.pipe, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        try:
            kids, their_notes = marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            return None  # cut short: the child failed
        return kids, their_notes

    def end(self) -> None:
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1
        if self.pid > 0:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass  # reaped by someone else
            self.pid = -1


def _child(pids: List[int], scan_one: ScanOne, out: int, mask: object) -> None:
    try:
        for signum in _SIGNALS:
            signal.signal(signum, signal.SIG_DFL)  # a Ctrl-C ends it at once
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # type: ignore[arg-type]
        close_inherited(out)  # keep only the pipe (a parent's files, helpers' pipes)
        notes: List[str] = []
        found = []
        for pid in pids:
            proc = scan_one(pid, notes)
            found.append(None if proc is None else vars(proc))
        data = memoryview(marshal.dumps((found, notes)))
        while data:
            data = data[os.write(out, data):]
    finally:
        os._exit(0)
