"""The one place that opens files under /proc. The root is injectable so parser tests
can run on recorded text (ProcFS("tests/data/proc"))."""

from __future__ import annotations

import errno
import os
import stat
import threading
from typing import Iterator, List, Optional

from ..errors import Timeout, Unsupported, WaitchainError, from_oserror

MAX_READ = 1 << 20  # no /proc text we parse is larger than this


class ProcFS:
    """Reads /proc (or a recorded copy of it). Errors become exceptions carrying the pid."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def path(self, pid: Optional[int], *parts: str) -> str:
        base = self.root if pid is None else os.path.join(self.root, str(pid))
        return os.path.join(base, *parts)

    def read(self, pid: Optional[int], *parts: str) -> str:
        """Text of /proc/PID/parts... (or /proc/parts... when pid is None)."""
        return self._read(pid, parts).decode("utf-8", "surrogateescape")

    def read_bytes(self, pid: Optional[int], *parts: str) -> bytes:
        return self._read(pid, parts)

    def _read(self, pid: Optional[int], parts: tuple) -> bytes:
        path = self.path(pid, *parts)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None
        try:
            return _read_all(fd)
        except OSError as exc:
            raise self._error(exc, pid, "/".join(parts)) from None
        finally:
            os.close(fd)

    def read_with_deadline(self, pid: int, name: str, seconds: float) -> bytes:
        """For files that block while the target's mmap lock is held (cmdline, environ)."""
        box: List[object] = []
        worker = threading.Thread(target=self._capture, args=(box, pid, name), daemon=True)
        worker.start()
        worker.join(seconds)
        if not box:
            raise Timeout(pid, name)
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]  # type: ignore[return-value]

    def _capture(self, box: list, pid: int, name: str) -> None:
        try:
            box.append(self.read_bytes(pid, name))
        except BaseException as exc:  # handed to the caller's thread
            box.append(exc)

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

    def owner(self, pid: int) -> int:
        try:
            return os.stat(self.path(pid)).st_uid
        except OSError as exc:
            raise self._error(exc, pid, "") from None

    def pids(self) -> Iterator[int]:
        """Every process id, in no particular order."""
        for name in self.listdir(None):
            if name.isdigit():
                yield int(name)

    def fd_links(self, pid: int) -> dict:
        """fd → readlink target, read relative to one open directory fd (fast, never opens
        the fds themselves). Fds closed during the scan are skipped."""
        try:
            dirfd = os.open(self.path(pid, "fd"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._error(exc, pid, "fd") from None
        try:
            return _links(dirfd)
        finally:
            os.close(dirfd)

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


def _read_all(fd: int) -> bytes:
    chunks = []
    total = 0
    while total < MAX_READ:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _links(dirfd: int) -> dict:
    links = {}
    for name in os.listdir(dirfd):
        try:
            links[int(name)] = os.readlink(name, dir_fd=dirfd)
        except (OSError, ValueError):
            continue
    return links



def fd_is_fifo(fs: ProcFS, pid: int, fd: int) -> bool:
    """stat() through the fd's magic link: follows it without opening the file."""
    try:
        return stat.S_ISFIFO(os.stat(fs.path(pid, "fd", str(fd))).st_mode)
    except OSError:
        return False
