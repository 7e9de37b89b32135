"""Read a few bytes of a target's memory with process_vm_readv: no ptrace stop, no
/proc/PID/mem open; the target never notices.

process_vm_readv takes the target's mmap lock *uninterruptibly*: while that lock is
contended (a thread stuck in a page fault or a GUP on a hung FUSE or NFS file, and another
thread waiting to mmap or munmap), the reader sleeps in D state, and not even SIGKILL ends
it. Done in our own thread, it would hang waitchain, and keep it from ever exiting. So the
reads are made by a small helper process under a deadline; a helper that does not answer
in time is abandoned (it exits once the lock is released), and the target's memory is
not read again by that reader.

Better still, the read is not made when it would wait: before the first read of a
process's memory, its threads are looked at (procfs/mmaplock.py); one queued on its mmap
lock, or asleep in a page fault, means its memory is not read at all (MemoryLocked says
by whom the lock is held). A run has at most one helper: one that overran its deadline is
kept, not replaced, and used again once its late answer comes (until then, reads fail at
once); it is killed at the end of the run.

The helper is a child forked from waitchain itself (a millisecond or two, where starting a
new interpreter took ~30 ms): it runs _serve, already loaded, and nothing else. It closes
every fd it inherited but its two pipe ends, ignores Ctrl-C (SIGINT stays blocked, set
before the fork), runs no Python-level cleanup (os._exit) and takes no lock another thread
may have held at the fork (no print, no logging, no import: os.read/os.write, struct and
ctypes functions resolved before the fork: _libc()). EOF on its pipe ends it; a helper inherited
through a fork of ours is never used (its owner's pid is checked).

A MemoryReader holds that state for one run: the snapshot owns one (snap.memory) and its
owner closes it. Nothing here is a module global but the compatibility functions' list
of the readers still open (for the stacks stage, which has no snapshot at hand)."""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import struct
import sys
import threading
import time
import warnings

from .. import children
from ..errors import Timeout, WaitchainError, from_oserror
from .mmaplock import Contender, Contention, contention  # noqa: F401  (Contender: for callers)
from .reader import ProcFS, with_deadline

TYPE_CHECKING = False
if TYPE_CHECKING:  # weakref is imported when a reader is made: start-up (issue 14)
    import weakref
    from typing import Any, Callable, Dict, List, Optional, Set, Tuple

DEADLINE = 1.0  # seconds for one read; it takes microseconds unless the mmap lock is held
MAX_READ = 1 << 20
PAGE = 4096
_REQ = struct.Struct("=iQQ")  # pid, address, size
_REP = struct.Struct("=iq")  # errno, bytes read (-1: error)
STUCK = "memory (its memory map lock is held)"
SETTLE = 0.05  # seconds a late helper's answer is waited for before a new read


class MemoryLocked(Timeout):
    """The memory of pid is not read: its mmap lock is held or wanted (a read would wait
    for it, uninterruptibly). `by`: ' by thread T', or how the contention was seen."""

    def __init__(self, pid: int, by: str) -> None:
        WaitchainError.__init__(self, f"memory of process {pid} not read: its memory-map lock is held{by}")
        self.pid = pid
        self.what = "memory"
        self.by = by


_LIBC: Optional[Tuple[Any, Any, Any, Any]] = None  # _libc()'s answer, once made


def _libc() -> Tuple[Any, Any, Any, Any]:
    """(ctypes, its iovec structure, process_vm_readv, prctl), resolved on first use: a run
    that reads no memory does not import ctypes (~2 ms). The helper is forked only after
    it (it imports and looks up nothing). Two threads making it at once make two equal ones."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        class IOVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

        libc = ctypes.CDLL(None, use_errno=True)
        libc.process_vm_readv.restype = ctypes.c_ssize_t
        libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(IOVec), ctypes.c_ulong,
                                          ctypes.POINTER(IOVec), ctypes.c_ulong, ctypes.c_ulong]
        _LIBC = (ctypes, IOVec, libc.process_vm_readv, libc.prctl)
    return _LIBC


PR_SET_NAME = 15
NAME = b"waitchain-mem"  # the helper's name (ps, /proc/PID/comm): its command line is ours


class MemoryReader:
    """One run's reader of target memory: the helper process, and the pids whose memory
    did not answer in time (their mmap lock is held: not tried again by this reader).
    The snapshot owns one (snap.memory); close() ends its helper (a stuck helper is
    killed and left to exit once the lock is released). Safe to share between threads."""

    def __init__(self, fs: Optional[ProcFS] = None) -> None:
        self._lock = threading.Lock()
        self._stuck: Set[int] = set()
        self._fs = fs or ProcFS()
        self._contention: Dict[int, Optional[Contention]] = {}
        self._by: Dict[int, str] = {}
        # set by the snapshot: the thread (pid, tid) that holds a contended lock, if it can tell
        self.holder_of: Optional[Callable[[Contention], Optional[Tuple[int, int]]]] = None
        import weakref

        self._slot = _HelperSlot()
        self._finalizer = weakref.finalize(self, self._slot.close)  # also at exit
        _register(self)

    def read(self, pid: int, address: int, size: int) -> bytes:
        """`size` bytes at `address` in pid; raises ProcessGone/AccessDenied/Timeout/WaitchainError."""
        data = self.read_partial(pid, address, size)
        if len(data) != size:
            raise WaitchainError(f"process {pid}: short read of memory at {address:#x}")
        return data

    def read_partial(self, pid: int, address: int, size: int) -> bytes:
        """Up to `size` bytes at `address`: fewer when the mapping ends before (an error
        when nothing at `address` is mapped)."""
        if size <= 0 or size > MAX_READ or not 0 < address < 1 << 64:
            raise WaitchainError(f"process {pid}: refusing to read {size} bytes at {address:#x}")
        if pid in self._stuck:
            raise self.locked(pid)
        if self.contention(pid) is not None:
            self._stuck.add(pid)
            raise self.locked(pid)
        err, data = self._through_helper(pid, address, size)
        if err:
            raise from_oserror(OSError(err, os.strerror(err)), pid, f"memory at {address:#x}")
        return data

    def cstring(self, pid: int, address: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string at `address` (a path argument), read a page at a time so
        that a string ending just before an unmapped page is still read; at most `limit` bytes."""
        out = b""
        while len(out) < limit:
            chunk = min(PAGE - (address + len(out)) % PAGE, limit - len(out))
            data = self.read(pid, address + len(out), chunk)
            end = data.find(b"\0")
            if end >= 0:
                return out + data[:end]
            out += data
        return out

    def stuck(self, pid: int) -> bool:
        """A read of pid's memory already overran its deadline: its mmap lock is held."""
        return pid in self._stuck

    def contention(self, pid: int) -> Optional[Contention]:
        """The threads of pid that make a read of its memory wait (looked at once a run)."""
        if pid not in self._contention:
            self._contention[pid] = contention(self._fs, pid)
        return self._contention[pid]

    def locked(self, pid: int) -> MemoryLocked:
        """The error for a read of pid's memory that is not made, saying by whom."""
        if pid not in self._by:
            self._by[pid] = self._holder_text(pid)
        return MemoryLocked(pid, self._by[pid])

    def _holder_text(self, pid: int) -> str:
        found = self._contention.get(pid)
        if found is None:
            return " (a read of it did not answer in time)"
        try:
            holder = self.holder_of(found) if self.holder_of is not None else None
        except WaitchainError:
            holder = None
        if holder is not None:
            other = f" of process {holder[0]}" if holder[0] != pid else ""
            return f" by thread {holder[1]}{other}"
        if found.faulting:
            return f" by thread {found.faulting[0].tid} (asleep in a page fault)"
        queued = found.queued[0]
        return f" (thread {queued.tid} waits for it in {queued.call or queued.where}())"

    def next_run(self) -> None:
        """Forget what this reader learnt of processes (stuck pids, lock contention), keeping
        its helper process: for the watchdog's next scan. A helper still held up by a lock
        stays the one helper (reads fail at once until it answers)."""
        with self._lock:
            self._stuck.clear()
            self._contention.clear()
            self._by.clear()

    def mark_stuck(self, pid: int) -> None:
        """pid's mmap lock is known to be held (its cmdline did not answer): do not try."""
        self._stuck.add(pid)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """End the helper; later reads raise WaitchainError. Idempotent."""
        self._finalizer()

    def __enter__(self) -> "MemoryReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _through_helper(self, pid: int, address: int, size: int) -> Tuple[int, bytes]:
        """(errno, data) from the helper; Timeout (and the pid marked stuck) if it overruns."""
        with self._lock:
            if self.closed:
                raise WaitchainError(f"process {pid}: the memory reader of this run is closed")
            for _attempt in range(2):  # a helper killed by someone else is replaced once
                if self._slot.waiting():  # the one helper of this run is held up by a lock
                    raise Timeout(pid, "memory (the memory reader is held up by another "
                                       "process's memory-map lock)")
                helper = self._slot.current()
                if helper is None:
                    break
                try:
                    return helper.ask(pid, address, size)
                except _Overrun:
                    if helper.late is None:  # part of an answer: its pipe is out of step
                        self._slot.abandon()
                    self._stuck.add(pid)
                    raise self.locked(pid) from None
                except OSError:  # it died (killed by someone): reaped, then replaced
                    self._slot.abandon(reap=0.5)
        if self._slot.alive_abandoned():  # one stuck helper already: never a thread that could hang too
            raise Timeout(pid, "memory (no memory reader left in this run)")
        return self._direct_with_deadline(pid, address, size)

    def _direct_with_deadline(self, pid: int, address: int, size: int) -> Tuple[int, bytes]:
        """No helper can run (fork failed: no processes or memory left): read here, in a
        thread, so that the diagnosis goes on if it blocks (the exit may then wait for it)."""
        try:
            return with_deadline(lambda: _direct(pid, address, size), DEADLINE, pid, "memory")
        except Timeout:
            self._stuck.add(pid)
            raise Timeout(pid, STUCK) from None


class _HelperSlot:
    """A reader's helper process, and the ones it abandoned (stuck in D state: kept so that
    nothing waits for them). Apart from the reader so that its finalizer can close it."""

    def __init__(self) -> None:
        self.helper: Optional[_Helper] = None
        self.abandoned: List[_Helper] = []
        self.closed = False

    def current(self) -> Optional["_Helper"]:
        if self.helper is not None and not self.helper.usable():
            self.abandon(reap=0.5)
        if self.helper is None and not self.closed and not self.alive_abandoned():
            self.helper = _Helper.start()  # at most one helper alive in a run
        return self.helper

    def waiting(self) -> bool:
        """The helper still waits for a lock on an earlier request (its answer is late):
        True if it has not answered within SETTLE seconds; a late answer is read and dropped."""
        if self.helper is None or self.helper.late is None:
            return False
        try:
            if self.helper.settle(SETTLE):
                return False
        except (OSError, _Overrun):
            self.abandon()
            return False
        return True

    def alive_abandoned(self) -> bool:
        return any(h.proc.poll() is None for h in self.abandoned if h.owner == os.getpid())

    def abandon(self, reap: float = 0.0) -> None:
        """Kill the helper and keep it apart; wait up to `reap` seconds for it to go."""
        if self.helper is not None:
            self.helper.kill()
            if reap > 0 and self.helper.owner == os.getpid():
                self.helper.proc.wait(reap)
            self.abandoned.append(self.helper)
            self.helper = None

    def close(self) -> None:
        """EOF ends a helper that is not stuck; a stuck one is killed, not waited for."""
        self.closed = True
        if self.helper is not None and self.helper.owner == os.getpid():
            if self.helper.late is not None:
                self.helper.kill()
            else:
                self.helper.close()
        self.helper = None


# --- compatibility: module functions for code that has no snapshot at hand ----------------
# The stacks stage runs after the diagnosis, with only the Diagnosis: it reads memory and
# asks whether a pid's memory is stuck through these. They use the run's open readers
# (the snapshot's, until its owner closes it); new code takes snap.memory instead.

_sessions: List["weakref.ref[MemoryReader]"] = []  # readers created, oldest first
_sessions_lock = threading.Lock()  # the stacks stage reads from several threads


def _register(reader: MemoryReader) -> None:
    import weakref

    with _sessions_lock:
        _sessions.append(weakref.ref(reader))


def _open_readers() -> List[MemoryReader]:
    with _sessions_lock:
        _sessions[:] = [ref for ref in _sessions if _is_open(ref())]
        return [r for r in (ref() for ref in _sessions) if r is not None]


def _is_open(reader: Optional[MemoryReader]) -> bool:
    return reader is not None and not reader.closed


def read_partial(pid: int, address: int, size: int) -> bytes:
    """MemoryReader.read_partial through the newest open reader (a short-lived one if none)."""
    readers = _open_readers()
    if readers:
        return readers[-1].read_partial(pid, address, size)
    with MemoryReader() as reader:
        return reader.read_partial(pid, address, size)


def memory_stuck(pid: int) -> bool:
    """Whether an open reader found pid's memory stuck (its mmap lock held), or would:
    a thread of pid is queued on its mmap lock or asleep in a page fault."""
    readers = _open_readers()
    if any(reader.stuck(pid) for reader in readers):
        return True
    if readers:
        return readers[-1].contention(pid) is not None
    return contention(ProcFS(), pid) is not None


def read_own(address: int, size: int) -> bytes:
    """Up to `size` bytes of our own memory (never faults: an unmapped page ends the read)."""
    err, data = _direct(os.getpid(), address, size)
    return b"" if err else data


# --- the helper process ---------------------------------------------------------------


class _Overrun(Exception):
    """The helper did not answer within the deadline."""


class _Helper:
    """The helper process of a reader, as seen from waitchain: its pipe ends, and the size of
    a request it has not answered in time."""

    def __init__(self, proc: "_Process", to: int, frm: int) -> None:
        self.proc = proc
        self.owner = os.getpid()
        self.to = to  # requests (our write end)
        self.frm = frm  # answers (our read end)
        self.poller = select.poll()
        self.poller.register(self.frm, select.POLLIN)
        self.late: Optional[int] = None  # the size asked by a request not answered in time

    @classmethod
    def start(cls) -> Optional["_Helper"]:
        """Fork the helper (None if it cannot be: no processes or memory left)."""
        _libc()  # resolved before the fork: the helper looks up no symbol
        requests, to = os.pipe()  # close-on-exec: a program we start never holds them
        frm, answers = os.pipe()
        # SIGINT blocked in this thread across the fork: the helper is born with it blocked
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = _fork()
        except OSError:
            pid = -1
        if pid == 0:
            _child(requests, answers)  # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(requests)
        os.close(answers)
        if pid < 0:
            os.close(to)
            os.close(frm)
            return None
        children.track(pid)  # ended by an interrupt (entry.py)
        return cls(_Process(pid), to, frm)

    def usable(self) -> bool:
        """Ours (not inherited through a fork) and still running (not killed by someone)."""
        return self.owner == os.getpid() and self.proc.poll() is None

    def ask(self, pid: int, address: int, size: int):
        if self.to < 0:
            raise OSError(errno.EPIPE, "the memory reader was closed")
        _write_all(self.to, _REQ.pack(pid, address, size))
        deadline = _now() + DEADLINE
        if not self.poller.poll(DEADLINE * 1000):
            self.late = size  # no byte of the answer yet: it may come later, whole
            raise _Overrun()
        reply = self._receive(_REP.size, _REP.size + size, deadline)
        err, got = _REP.unpack_from(reply)
        if got < 0:
            return err or errno.EIO, b""
        reply += self._receive(_REP.size + got - len(reply), 0, deadline)
        return 0, reply[_REP.size:]

    def _receive(self, count: int, most: int, deadline: float) -> bytes:
        """At least `count` bytes (and at most `most`, if larger), by the deadline."""
        data = b""
        while len(data) < count:
            left = deadline - _now()
            if left <= 0 or not self.poller.poll(left * 1000):
                raise _Overrun()
            chunk = os.read(self.frm, max(count, most) - len(data))
            if not chunk:
                raise OSError(errno.EPIPE, "the memory reader exited")
            data += chunk
        return data

    def settle(self, wait: float) -> bool:
        """Read and drop the late answer if it comes within `wait` seconds: True when the
        helper is free again. _Overrun/OSError if the answer comes in part only."""
        if self.late is None:
            return True
        if not self.poller.poll(wait * 1000):
            return False
        deadline = _now() + DEADLINE
        reply = self._receive(_REP.size, _REP.size + self.late, deadline)
        _err, got = _REP.unpack_from(reply)
        if got > 0:
            self._receive(_REP.size + got - len(reply), 0, deadline)
        self.late = None
        return True

    def kill(self) -> None:
        """SIGKILL (it takes effect once the lock is released) and close our pipe ends."""
        if self.owner == os.getpid():
            self.proc.kill()
            children.untrack(self.proc.pid)
        self._close_pipes()

    def close(self) -> None:
        """At exit: EOF ends a helper that is not stuck; one that does not go is killed."""
        self._close_pipes()
        if self.proc.wait(0.2) is None:
            self.proc.kill()
            self.proc.wait(0.2)
        children.untrack(self.proc.pid)

    def _close_pipes(self) -> None:
        """Once only: a number closed twice may by then be another file's."""
        to, frm, self.to, self.frm = self.to, self.frm, -1, -1
        for fd in (to, frm):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


class _Process:
    """A forked helper: its pid, and its exit code once reaped (what subprocess.Popen is to
    a program started, for a child that runs no program)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        """Its exit code if it has exited (reaped now), else None."""
        if self.returncode is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (SIGCHLD ignored, another thread)
                done, status = self.pid, 0
            if done == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> Optional[int]:
        """Its exit code once it exits within `timeout` seconds, else None. Woken by a pidfd
        the moment it exits (the helper takes ~0.3 ms to go after EOF; sleeps in steps cost
        ~2 ms of every run that read memory); without one, polled in growing steps."""
        if self.poll() is None and _exited_within(self.pid, timeout):
            self.poll()
        if self.returncode is not None:
            return self.returncode
        deadline, pause = _now() + timeout, 0.0002
        while self.poll() is None:
            left = deadline - _now()
            if left <= 0:
                return None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.02)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, unless reaped already (its pid may be another process's by now)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass


def _exited_within(pid: int, timeout: float) -> bool:
    """Whether our unreaped child `pid` exits within `timeout` s, watched through a pidfd;
    False also when no pidfd can be had (Linux < 5.3): the caller polls then."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return False
    try:
        watch = select.poll()
        watch.register(fd, select.POLLIN)
        return bool(watch.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


def _fork() -> int:
    """os.fork(), without the DeprecationWarning of Python 3.12+ about a process with threads
    (the helper only runs _serve: nothing that takes a lock another thread may hold). The
    filter is set once: each call compiles its two regular expressions again."""
    global _FORK_QUIET
    if sys.version_info >= (3, 12) and not _FORK_QUIET:
        warnings.filterwarnings("ignore", message=r"This process .* is multi-threaded, use of fork",
                                category=DeprecationWarning, module=__name__)
        _FORK_QUIET = True
    return os.fork()


_FORK_QUIET = False  # the filter above is in place


def _child(requests: int, answers: int) -> None:
    """The helper, in the forked child: only its two pipe ends kept, named, then _serve;
    os._exit whatever happens (no Python cleanup, no flush of buffers that are ours)."""
    try:
        gc.disable()  # no finalizer of an object of ours runs here
        prctl = _libc()[3]
        prctl(PR_SET_NAME, NAME, 0, 0, 0)
        children.close_inherited(requests, answers)
        _serve(requests, answers)
    finally:
        os._exit(0)


def _serve(requests: int, answers: int) -> None:
    """The helper's loop: a request (pid, address, size) in, (errno, bytes read or -1) and
    the bytes out; returns at EOF (waitchain closed its end, or exited)."""
    while True:
        head = _exactly(requests, _REQ.size)
        if head is None:
            return
        pid, address, size = _REQ.unpack(head)
        err, data = _direct(pid, address, size)
        _write_all(answers, _REP.pack(err, -1 if err else len(data)) + data)


def _exactly(fd: int, count: int) -> Optional[bytes]:
    """`count` bytes from fd, or None at EOF."""
    data = b""
    while len(data) < count:
        chunk = os.read(fd, count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _now() -> float:
    return time.monotonic()


def _direct(pid: int, address: int, size: int):
    """(errno, data) of process_vm_readv in this process."""
    ctypes, iovec, process_vm_readv, _ = _libc()
    buf = ctypes.create_string_buffer(size)
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), size)
    remote = iovec(address, size)
    got = process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got < 0:
        return ctypes.get_errno() or errno.EIO, b""
    return 0, buf.raw[:got]
