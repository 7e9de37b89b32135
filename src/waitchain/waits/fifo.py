"""open() of a FIFO: it blocks until the other end is opened too (a reader waits for a
writer to open, a writer for a reader). The path is read from the target's memory at the
pathname argument and made absolute (textually) against /proc/PID/cwd or the dirfd. A blocked open means nobody has the
other end open (an opener of the other end would complete it), so the chain ends there.
Reads and writes on an open FIFO are the pipe rule's (io → pipe, kind "fifo")."""

from __future__ import annotations

import os

from ..errors import WaitchainError
from ..model import End, EndKind, Reason, Task, Wait
from ..snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

SYSCALLS = {"open", "openat", "openat2"}
AT_FDCWD = -100
O_ACCMODE, O_WRONLY, O_RDWR = 3, 1, 2
FIFO_WCHANS = ("wait_for_partner", "fifo_open")


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    dirfd, path_arg = (AT_FDCWD, call.args[0]) if call.name == "open" else (call.arg_int(0), call.args[1])
    path = _path(snap, pid, dirfd, path_arg)
    flags = _flags(snap, pid, call.name, call.args)
    what = f"{call.name}({_quote(path)}, {_flags_text(flags)})"
    if task.wchan not in FIFO_WCHANS:
        detail = f"blocked opening {path or 'a file'} ({task.wchan or 'no wchan'}; not a FIFO open)"
        return Wait(pid, task.tid, what, end=End(EndKind.UNKNOWN, detail, reason=Reason.NOT_FOLLOWED,
                                                 subject=path or ""))
    return Wait(pid, task.tid, what, end=_fifo_end(path, flags))


def _path(snap: Snapshot, pid: int, dirfd: int, address: int) -> Optional[str]:
    """Absolute path named by the call, or None if its memory is unreadable."""
    try:
        raw = os.fsdecode(snap.memory.cstring(pid, address))
    except WaitchainError:
        return None
    if raw.startswith("/"):
        return os.path.normpath(raw)
    base = _base(snap, pid, dirfd)
    return os.path.normpath(os.path.join(base, raw)) if base else raw


def _base(snap: Snapshot, pid: int, dirfd: int) -> Optional[str]:
    return snap.target(pid, dirfd) if dirfd != AT_FDCWD else snap.cwd(pid)


def _flags(snap: Snapshot, pid: int, name: str, args) -> Optional[int]:
    """open/openat pass flags as an argument; openat2 in struct open_how (first u64)."""
    if name == "open":
        return args[1] & 0xFFFFFFFF
    if name == "openat":
        return args[2] & 0xFFFFFFFF
    try:
        return snap.memory.u32(pid, args[2])
    except WaitchainError:
        return None


def _flags_text(flags: Optional[int]) -> str:
    if flags is None:
        return "?"
    return {0: "O_RDONLY", O_WRONLY: "O_WRONLY", O_RDWR: "O_RDWR"}.get(flags & O_ACCMODE, hex(flags))


def _quote(path: Optional[str]) -> str:
    return f'"{path}"' if path is not None else "?"


def _fifo_end(path: Optional[str], flags: Optional[int]) -> End:
    writing = None if flags is None else flags & O_ACCMODE == O_WRONLY
    return End(EndKind.IDLE, reason=Reason.FIFO_OPEN, subject=path or "", writing=writing,
               unread="" if path else "path unreadable")
