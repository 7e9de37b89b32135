"""/proc/PID/mountinfo: mount id → device number and file-system type (to name the device
of an fd from its fdinfo `mnt_id`, as /proc/locks prints it, and to recognise mqueue fds)."""

from __future__ import annotations

import re

from ..errors import WaitchainError
from ..records import record
from .reader import TABLE_READ, ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional

DEADLINE = 1.0  # seconds: mountinfo waits for the mount namespace's lock

_OCTAL = re.compile(r"\\([0-7]{3})")


@record(frozen=True)
class Mount:
    mnt_id: int
    major: int
    minor: int
    mountpoint: str
    fstype: str


def _mount_line(line: str) -> Optional[Mount]:
    """`ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER`."""
    head, sep, tail = line.partition(" - ")
    fields, rest = head.split(), tail.split()
    if not sep or len(fields) < 5 or not rest:
        return None
    major, _, minor = fields[2].partition(":")
    try:
        return Mount(int(fields[0]), int(major), int(minor), _unescape(fields[4]), rest[0])
    except ValueError:
        return None


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> Dict[int, Mount]:
    parsed = (_mount_line(line) for line in text.splitlines())
    return {m.mnt_id: m for m in parsed if m is not None}


def read_mounts(fs: ProcFS, pid: int) -> Dict[int, Mount]:
    """Mounts seen by pid, {} if unreadable or if it does not answer in time."""
    try:
        raw = fs.read_with_deadline(pid, "mountinfo", DEADLINE, limit=TABLE_READ)
    except WaitchainError:
        return {}
    return parse_mountinfo(raw.decode("utf-8", "surrogateescape"))
