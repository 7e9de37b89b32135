"""/proc/locks and the `lock:` lines of /proc/PID/fdinfo/FD.

Each line is `ID: [-> ]CLASS MODE TYPE PID MAJ:MIN:INO START END`. A line with `->` is a
request blocked under lock ID (more leading spaces: blocked under another blocked request).
The PID column is whoever *took* the lock (stale once it exits while a child keeps the fd)
and -1 for OFD locks, so the real holders are found through fdinfo `lock:` lines, which
the kernel prints for every fd whose file description owns the lock."""

from __future__ import annotations

import re

from .reader import TABLE_READ, ProcFS
from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

_LINE = re.compile(r"^\s*(\d+):\s(\s*)(->\s)?\s*(.*)$")
_DEVINO = re.compile(r"^([0-9a-fA-F]+:[0-9a-fA-F]+):(\d+)$")
# Classes whose locks conflict with each other: flock is separate from POSIX and OFD.
BYTE_RANGE = ("POSIX", "OFDLCK")


@record(frozen=True)
class LockEntry:
    """One line of /proc/locks (or of an fdinfo `lock:` line)."""

    id: int
    level: int  # 0: a lock that is held; 1, 2...: a request blocked (under id)
    cls: str  # FLOCK, POSIX, OFDLCK, LEASE, DELEG, ACCESS, UNKNOWN
    mode: str  # ADVISORY, MANDATORY, ACTIVE, BREAKING, BREAKER, ...
    type: str  # READ, WRITE, UNLCK
    pid: int
    dev: str  # "fe:00" as the kernel prints it (hex major:minor); "" for <none>
    ino: int
    start: int
    end: Optional[int]  # last byte, None for EOF
    line: str  # the line as read, for evidence

    @property
    def held(self) -> bool:
        return self.level == 0

    @property
    def key(self) -> tuple:
        """What identifies the lock in both /proc/locks and fdinfo (the id differs)."""
        return (self.cls, self.type, self.pid, self.dev, self.ino, self.start, self.end)

    def compatible_class(self, cls: str) -> bool:
        return self.cls == cls or (self.cls in BYTE_RANGE and cls in BYTE_RANGE)


def parse_lock_line(line: str) -> Optional[LockEntry]:
    """One line, or None if it is not a lock line."""
    match = _LINE.match(line)
    if not match:
        return None
    fields = match.group(4).split()
    if len(fields) != 7:
        return None
    level = len(match.group(2)) + 1 if match.group(3) else 0
    try:
        return _entry(int(match.group(1)), level, fields, line.strip())
    except ValueError:
        return None


def _entry(ident: int, level: int, fields: List[str], line: str) -> LockEntry:
    cls, mode, kind, pid, devino, start, end = fields
    dev, ino = _devino(devino)
    last = None if end == "EOF" else int(end)
    return LockEntry(ident, level, cls, mode, kind, int(pid), dev, ino, int(start), last, line)


def _devino(text: str):
    match = _DEVINO.match(text)
    if match:
        return match.group(1).lower(), int(match.group(2))
    if text.startswith("<none>"):
        return "", 0
    raise ValueError(f"bad device:inode {text!r}")


def parse_locks(text: str) -> List[LockEntry]:
    """Every lock and blocked request in /proc/locks text; other lines are skipped."""
    parsed = (parse_lock_line(line) for line in text.splitlines())
    return [entry for entry in parsed if entry is not None]


def read_locks(fs: ProcFS) -> List[LockEntry]:
    """/proc/locks of the system (of the pid namespace /proc was mounted for)."""
    return parse_locks(fs.read(None, "locks", limit=TABLE_READ))


def fdinfo_locks(extra: tuple) -> List[LockEntry]:
    """The `lock:` lines kept in FdInfo.extra."""
    lines = (parse_lock_line(value) for key, value in extra if key == "lock")
    return [entry for entry in lines if entry is not None]


def overlaps(a_start: int, a_end: Optional[int], b_start: int, b_end: Optional[int]) -> bool:
    """Byte ranges [start, end] (end None: to EOF and beyond) share a byte."""
    return (a_end is None or b_start <= a_end) and (b_end is None or a_start <= b_end)


def device_text(major: int, minor: int) -> str:
    """A device number as /proc/locks prints it: %02x:%02x."""
    return f"{major:02x}:{minor:02x}"

