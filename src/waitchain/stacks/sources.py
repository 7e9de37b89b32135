"""Source files of one run's stacks, each read once and parsed once, whatever the number
of threads (and processes) whose frames are in it.

A source file is read as its process sees it (/proc/PID/root or /proc/PID/cwd, see
frames.source_text). The read is made in a daemon thread under one deadline: a file on a
hung FUSE or NFS mount blocks its reader for good, and it must cost the run one deadline,
not one per thread that runs the file. Every thread that asks for the same file waits for
the same read, until that read's own deadline (from when it started); once the deadline has
passed, asking costs nothing. Files are the same when their path is resolved from the same
place: the same mount namespace and the same root directory (or working directory, for a
relative path), so the threads of several processes share a read too.

The cache lives for one run (one Sources per attach_stacks): within a run a path names one
file, so no stat is needed to look it up (a stat is exactly what hangs on a dead mount)."""

from __future__ import annotations

import os
import threading
import time

from .frames import source_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # ast: imported only when a lock's holder is looked for
    from typing import Dict, Iterable, List, Optional, Tuple

    from .pylocks import Source

    Key = Tuple[object, ...]

SECONDS = 1.0  # to read one source file
PARSE_MAX = 2 << 20  # a source file longer than this is not parsed (no lock holder inferred)


class _Read:
    """One file's read: started once; its text, lines and parse once it has answered."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.text = ""
        self.lines: List[str] = []
        self.parse_lock = threading.Lock()
        self.parsed: Optional[Tuple[Optional["Source"]]] = None  # (result,) once parsed


class Sources:
    """The source files of one run. Safe to share between the threads reading the stacks of
    several processes at once."""

    def __init__(self, seconds: float = SECONDS, proc: str = "/proc") -> None:
        self.seconds = seconds
        self.proc = proc
        self._lock = threading.Lock()
        self._reads: Dict[Key, _Read] = {}
        self._places: Dict[int, Optional[Tuple[str, str, str]]] = {}
        self.started = 0  # reads started (files read): for tests and the bench

    def prefetch(self, pid: int, paths: Iterable[str]) -> None:
        """Start reading these files now, all at once: a thread that then asks for one waits
        only for what is left of that read's deadline (several files on one hung mount cost
        one deadline together, not one each)."""
        for path in paths:
            self._read(pid, path)

    def text(self, pid: int, path: str) -> str:
        """The whole file (up to frames.MAX_SOURCE bytes) as pid sees it, or "" when it cannot
        be read, is not a regular file, or has not answered within its read's deadline."""
        read = self._read(pid, path)
        return read.text if read is not None and self._wait(read) else ""

    def line(self, pid: int, path: str, line: int) -> str:
        """Line `line` of the file, stripped, or ""."""
        if line <= 0:
            return ""
        read = self._read(pid, path)
        if read is None or not self._wait(read):
            return ""
        return read.lines[line - 1].strip() if line <= len(read.lines) else ""

    def parsed(self, pid: int, path: str) -> Optional["Source"]:
        """The file parsed (pylocks.Source), once per run; None when it cannot be read, is
        longer than PARSE_MAX, or does not parse."""
        read = self._read(pid, path)
        if read is None or not self._wait(read):
            return None
        with read.parse_lock:  # one thread parses; the others wait for it
            if read.parsed is None:
                read.parsed = (_parse(read.text),)
            return read.parsed[0]

    # --- one read per file -----------------------------------------------------------------

    def _read(self, pid: int, path: str) -> Optional[_Read]:
        if not path or path.startswith("<"):  # <frozen importlib._bootstrap>, <string>
            return None
        key = self._key(pid, path)
        with self._lock:
            read = self._reads.get(key)
            if read is not None:
                return read
            read = self._reads[key] = _Read()
            self.started += 1
        worker = threading.Thread(target=self._fill, args=(read, pid, path), daemon=True,
                                  name="waitchain-source")
        worker.start()
        return read

    def _fill(self, read: _Read, pid: int, path: str) -> None:
        try:
            read.text = source_text(pid, path, self.proc)
            read.lines = read.text.splitlines()
        except Exception:  # a failure is no source, not a traceback from the thread
            read.text, read.lines = "", []
        finally:
            read.done.set()

    def _wait(self, read: _Read) -> bool:
        """The read answered, waiting at most until its own deadline."""
        return read.done.wait(max(0.0, read.started + self.seconds - time.monotonic()))

    def _key(self, pid: int, path: str) -> Key:
        """Where the path is resolved from: (mount namespace, root or cwd, path); pid's own
        when the place cannot be read."""
        if pid not in self._places:
            self._places[pid] = self._place(pid)
        place = self._places[pid]
        if place is None:
            return ("pid", pid, path)
        namespace, root, cwd = place
        return (namespace, root, path) if path.startswith("/") else (namespace, cwd, path)

    def _place(self, pid: int) -> Optional[Tuple[str, str, str]]:
        try:  # links of /proc: the kernel answers them without asking any file system
            return tuple(os.readlink(f"{self.proc}/{pid}/{name}")  # type: ignore[return-value]
                         for name in ("ns/mnt", "root", "cwd"))
        except (OSError, ValueError):
            return None


def _parse(text: str) -> Optional["Source"]:
    if not text or len(text) > PARSE_MAX:
        return None
    from .pylocks import Source  # ast: only when a lock's holder is looked for

    source = Source(text)
    return source if source.ok else None
