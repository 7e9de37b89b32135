"""File descriptors: readlink targets and /proc/PID/fdinfo/FD."""

from __future__ import annotations

import re

from ..errors import WaitchainError
from ..model import READ, READ_WRITE, WRITE, FdInfo
from .reader import TABLE_READ, ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

_INODE_TARGET = re.compile(r"^(pipe|socket):\[(\d+)\]$")


def parse_fdinfo(text: str) -> FdInfo:
    """`pos:`, `flags:` (octal), `mnt_id:`, `ino:`; every other line kept in `extra`."""
    known = {"pos": 0, "flags": 0, "mnt_id": 0, "ino": 0}
    extra = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in known:
            known[key] = _number(key, value)
        else:
            extra.append((key, value))
    return FdInfo(known["pos"], known["flags"], known["mnt_id"], known["ino"], tuple(extra))


def _number(key: str, value: str) -> int:
    try:
        return int(value, 8 if key == "flags" else 10)
    except ValueError:
        return 0


def read_fdinfo(fs: ProcFS, pid: int, fd: int) -> Optional[FdInfo]:
    """fdinfo of one fd, or None if it is gone or unreadable. An epoll or inotify fd's
    fdinfo has a line per watched file: it can be megabytes."""
    try:
        return parse_fdinfo(fs.read(pid, "fdinfo", str(fd), limit=TABLE_READ))
    except WaitchainError:
        return None


_LINK_ACCESS = {0o400: READ, 0o200: WRITE, 0o600: READ_WRITE}  # owner r/w bits of the fd's link


def link_access(fs: ProcFS, pid: int, fd: int) -> Optional[str]:
    """The fd's access mode from one lstat() of its /proc/PID/fd/N link, without opening
    fdinfo: the kernel gives the link S_IRUSR if the file is open for reading, S_IWUSR if
    for writing (fs/proc/fd.c, tid_fd_update_inode, from f_mode on every lookup). None when
    the link says neither (an O_PATH fd, open mode 3: fdinfo's flags tell those apart), the
    fd is gone, or this is a recorded /proc (its links are plain symlinks)."""
    mode = fs.link_mode(pid, fd)
    return None if mode is None else _LINK_ACCESS.get(mode & 0o600)


def inode_of(target: str) -> Optional[int]:
    """The inode in a `pipe:[N]` or `socket:[N]` link target."""
    match = _INODE_TARGET.match(target)
    return int(match.group(2)) if match else None


def target_kind(target: str) -> str:
    """pipe, socket, anon (anon_inode:...), path, or other."""
    if target.startswith("pipe:["):
        return "pipe"
    if target.startswith("socket:["):
        return "socket"
    if target.startswith("anon_inode:"):
        return "anon"
    if target.startswith("/"):
        return "path"
    return "other"
