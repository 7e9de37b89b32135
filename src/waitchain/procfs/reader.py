"""The one place that opens files under /proc. The root is injectable so parser tests
can run on recorded text (ProcFS("tests/data/proc"))."""

from __future__ import annotations

import errno
import os
import queue
import stat
import threading
import time

from ..errors import Timeout, Unsupported, WaitchainError, from_oserror

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

    T = TypeVar("T")
    _Worker = Tuple["queue.SimpleQueue[Callable[[], object]]", "queue.SimpleQueue[Tuple[bool, object]]"]

MAX_READ = 1 << 20  # no per-process /proc text we parse is larger than this
TABLE_READ = 1 << 26  # system tables (/proc/net/tcp, /proc/locks, mountinfo) grow with the host
SMALL_READ = 4096  # /proc/PID/stat and the like fit in one read of this
_PATH_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


class ProcFS:
    """Reads /proc (or a recorded copy of it). Errors become exceptions carrying the pid."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def path(self, pid: Optional[int], *parts: str) -> str:
        base = self.root if pid is None else f"{self.root}/{pid}"  # os.path.join is slow
        return "/".join((base,) + parts) if parts else base

    def read(self, pid: Optional[int], *parts: str, limit: int = MAX_READ) -> str:
        """Text of /proc/PID/parts... (or /proc/parts... when pid is None). Past `limit`
        bytes the text is cut after its last whole line."""
        return self._read(pid, parts, limit).decode("utf-8", "surrogateescape")

    def read_bytes(self, pid: Optional[int], *parts: str, limit: int = MAX_READ) -> bytes:
        return self._read(pid, parts, limit)

    def _read(self, pid: Optional[int], parts: tuple, limit: int = MAX_READ) -> bytes:
        path = self.path(pid, *parts)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None
        try:
            return _read_all(fd, limit)
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None
        finally:
            os.close(fd)

    def read_one(self, pid: Optional[int], *parts: str) -> str:
        """Text of a single-record file (a thread's stat, syscall, wchan, schedstat): one
        read() of SMALL_READ bytes, no second read for EOF (a short read of a /proc seq_file
        that shows one record is all of it; so it is of a regular file, a recorded /proc)."""
        path = self.path(pid, *parts)
        try:
            fd = os.open(path, _FILE_FLAGS)
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None
        try:
            data = os.read(fd, SMALL_READ)
            if len(data) == SMALL_READ:
                data += _read_all(fd, MAX_READ)
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None
        finally:
            os.close(fd)
        return data.decode("utf-8", "surrogateescape")

    def read_with_deadline(self, pid: int, name: str, seconds: float, limit: int = MAX_READ) -> bytes:
        """For files that block while the target's mmap lock is held (cmdline, environ;
        maps on older kernels) or a kernel lock is (mountinfo)."""
        return with_deadline(lambda: self.read_bytes(pid, name, limit=limit), seconds, pid, name)

    def readlink(self, pid: Optional[int], *parts: str) -> str:
        try:
            return os.readlink(self.path(pid, *parts))
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None

    def listdir(self, pid: Optional[int], *parts: str) -> List[str]:
        try:
            return os.listdir(self.path(pid, *parts))
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None

    def link_mode(self, pid: int, fd: int) -> Optional[int]:
        """st_mode of the /proc/PID/fd/N link itself (lstat: nothing is opened or followed);
        None if the fd is gone or this /proc is a recorded copy."""
        if self.root != "/proc":
            return None
        try:
            return os.lstat(f"/proc/{pid}/fd/{fd}").st_mode
        except OSError:
            return None

    def owner(self, pid: int) -> int:
        try:
            return os.stat(self.path(pid)).st_uid
        except OSError as exc:
            raise self._error(exc, pid, "") from None

    def pids(self) -> Iterator[int]:
        """Every process id, in no particular order."""
        return iter([int(name) for name in self.listdir(None) if name.isdigit() and name.isascii()])

    def fd_links(self, pid: int, piddir: Optional[int] = None) -> dict:
        """fd → readlink target, read relative to one open directory fd (fast, never opens
        the fds themselves). Fds closed during the scan are skipped. `piddir`: an fd from
        open_pid(pid), to read through it instead of by path."""
        where = "fd" if piddir is not None else self.path(pid, "fd")
        try:
            dirfd = os.open(where, _DIR_FLAGS, dir_fd=piddir)
        except OSError as exc:
            raise self._error(exc, pid, "fd") from None
        try:
            return _links(dirfd)
        except OSError as exc:  # listing failed: the process exited after the open
            raise self._error(exc, pid, "fd") from None
        finally:
            os.close(dirfd)

    # --- relative to an open /proc/PID: fewer path walks, and every read is of the same
    # --- process even if its pid is reused meanwhile (the old directory just goes empty)

    def open_pid(self, pid: int) -> int:
        """An O_PATH fd of /proc/PID for the *_at methods; the caller closes it."""
        try:
            return os.open(self.path(pid), _PATH_FLAGS)
        except OSError as exc:
            raise self._error(exc, pid, "") from None

    def read_at(self, piddir: int, pid: int, name: str) -> str:
        """Text of /proc/PID/name, for a small file (stat, status: one read suffices)."""
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=piddir)
        except OSError as exc:
            raise self._error(exc, pid, name) from None
        try:
            data = os.read(fd, SMALL_READ)
            if len(data) == SMALL_READ:  # a short read of a /proc seq_file is all of it
                data += _read_all(fd, MAX_READ)
        except OSError as exc:
            raise self._error(exc, pid, name) from None
        finally:
            os.close(fd)
        return data.decode("utf-8", "surrogateescape")

    def readlink_at(self, piddir: int, pid: int, name: str) -> str:
        try:
            return os.readlink(name, dir_fd=piddir)
        except OSError as exc:
            raise self._error(exc, pid, name) from None

    def owner_at(self, piddir: int, pid: int) -> int:
        try:
            return os.fstat(piddir).st_uid
        except OSError as exc:
            raise self._error(exc, pid, "") from None

    def _error(self, exc: OSError, pid: Optional[int], what: str) -> WaitchainError:
        """ENOENT on a file of a process that still exists means the kernel lacks it."""
        if exc.errno == errno.ENOENT and pid is not None and self._file_missing(pid, what):
            return Unsupported(f"/proc/PID/{what}", pid)
        return from_oserror(exc, pid, what or "the process directory")

    def _file_missing(self, pid: int, what: str) -> bool:
        parts = what.split("/")
        if parts[0] in ("", "fd", "fdinfo") or (parts[0] == "task" and len(parts) <= 2):
            return False  # these name objects that come and go, not kernel features
        owner = parts[:2] if parts[0] == "task" else []
        return os.path.isdir(self.path(pid, *owner))


def _read_all(fd: int, limit: int = MAX_READ) -> bytes:
    """Up to `limit` bytes; text cut at the limit ends after its last whole line (a cut
    line could parse as a different, wrong record)."""
    chunks: List[bytes] = []
    total = 0
    while total < limit:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    data = b"".join(chunks)[:limit]
    return data[: data.rfind(b"\n") + 1] if b"\n" in data else data


def _links(dirfd: int) -> dict:
    """fd → target, with each target text kept once: both ends of a pipe, dup'ed fds name the
    same string object (~64 B saved per such fd; a host's tables are most of a scan's memory)."""
    names = os.listdir(dirfd)
    readlink = os.readlink
    seen: Dict[str, str] = {}
    keep = seen.setdefault
    try:  # the common case in one comprehension; it is most of a snapshot's time
        return {int(name): keep(target, target) for name in names for target in (readlink(name, dir_fd=dirfd),)}
    except (OSError, ValueError):
        pass  # an fd closed meanwhile: go again, skipping what fails
    links = {}
    for name in names:
        try:
            target = readlink(name, dir_fd=dirfd)
            links[int(name)] = keep(target, target)
        except (OSError, ValueError):
            continue
    return links


def with_deadline(func: Callable[[], T], seconds: float, pid: Optional[int], what: str) -> T:
    """func() in a daemon thread; Timeout if it has not answered within `seconds` (the
    thread is left behind, blocked; it does not keep the program from exiting).

    The threads are reused: one that answered in time waits for the next call (starting a
    thread per call cost ~0.1-0.3 ms here, 2,000 of them in one `--all`; a handoff ~20 us).
    One that overran is never given work again: it may stay blocked for good. A forked
    child starts with no idle threads (they do not exist in it)."""
    worker = _take()
    jobs, answers = worker
    jobs.put(func)
    try:
        ok, value = answers.get(timeout=seconds)
    except queue.Empty:
        raise Timeout(pid, what) from None
    _give_back(worker)
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def each_with_deadline(funcs: Sequence[Callable[[], T]], seconds: float) -> List[Tuple[bool, object]]:
    """Each func() in turn in one deadline thread, each given `seconds` from its start:
    one hand-off for them all (a hand-off per call was ~20 of its ~36 us for a command
    line). (True, value) or (False, exception) per func that answered, in order; a shorter
    list when funcs[len(list)] did not answer in time (left behind with its thread, as in
    with_deadline; the thread runs none of the funcs after it)."""
    done: List[Tuple[bool, object]] = []
    if not funcs:
        return done
    running = [(0, time.monotonic())]  # (index, start) of the func running
    stop = [False]
    lock = threading.Lock()  # the caller's verdict on a func and the start of the next exclude each other

    def run() -> None:
        for i, func in enumerate(funcs):
            with lock:
                if stop[0]:
                    return
                running[0] = (i, time.monotonic())
            try:
                done.append((True, func()))
            except BaseException as exc:  # handed to the caller's thread
                done.append((False, exc))

    worker = _take()
    jobs, answers = worker
    jobs.put(run)
    wait = seconds
    while True:
        try:
            answers.get(timeout=wait)
        except queue.Empty:
            with lock:
                i, start = running[0]
                wait = start + seconds - time.monotonic()
                if wait > 0:  # a later func, started within the deadline: wait for the rest of it
                    continue
                stop[0] = True
            return done[:i]
        _give_back(worker)
        return done


def _take() -> "_Worker":
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = (queue.SimpleQueue(), queue.SimpleQueue())
        threading.Thread(target=_serve, args=worker, name="waitchain-deadline", daemon=True).start()
    return worker


def _give_back(worker: "_Worker") -> None:
    """A thread that answered in time takes the next call."""
    with _idle_lock:
        _idle.append(worker)


_idle: List[_Worker] = []  # threads that answered their last call in time
_idle_lock = threading.Lock()


def _serve(jobs: "queue.SimpleQueue[Callable[[], object]]", answers: "queue.SimpleQueue[Tuple[bool, object]]") -> None:
    while True:
        func = jobs.get()
        try:
            answer: Tuple[bool, object] = (True, func())
        except BaseException as exc:  # handed to the caller's thread
            answer = (False, exc)
        answers.put(answer)
        del func, answer  # hold nothing of a finished call while idle


def _forget_idle() -> None:
    _idle.clear()
    global _idle_lock
    _idle_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_idle)


STAT_DEADLINE = 0.2  # seconds


def fd_is_fifo(fs: ProcFS, pid: int, fd: int) -> bool:
    """stat() through the fd's magic link: follows it without opening the file. The
    file system may still be asked for attributes, so the call has a deadline."""
    path = fs.path(pid, "fd", str(fd))
    try:
        mode = with_deadline(lambda: os.stat(path).st_mode, STAT_DEADLINE, pid, f"fd/{fd}")
    except (OSError, Timeout):
        return False
    return stat.S_ISFIFO(mode)
