"""A pipe's fill level, read through a duplicate of the target's fd (pidfd_getfd).

The duplicate shares the file description without opening a new end, but while it lives
the pipe's EOF/EPIPE wait for it too, so it is closed before this function returns."""

from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import struct
import termios
from typing import Callable, Optional

from ..model import PipeFill

SYS_PIDFD_OPEN = 434  # same number on every architecture (unified table from 5.x)
SYS_PIDFD_GETFD = 438
F_GETPIPE_SZ = 1032

_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(nr: int, *args: int) -> int:
    result = _libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def pipe_fill(pid: int, fd: int, same_process: Callable[[], bool] = lambda: True) -> Optional[PipeFill]:
    """Bytes queued / capacity of the pipe at the target's fd, or None if not permitted.
    `same_process` is asked once the pidfd pins the process: False (the pid now names
    another process) means no fd is touched."""
    try:
        pidfd = _syscall(SYS_PIDFD_OPEN, pid, 0)
    except OSError:
        return None
    try:
        if not same_process():
            return None
        dup = _syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    except OSError:
        return None
    finally:
        os.close(pidfd)
    try:
        return _measure(dup)
    except OSError:
        return None
    finally:
        os.close(dup)


def _measure(fd: int) -> Optional[PipeFill]:
    """None when the fd is no longer a pipe (closed and reused since the scan): no ioctl
    is made on anything else."""
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return None
    used = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    size = fcntl.fcntl(fd, F_GETPIPE_SZ)
    return PipeFill(used, size)
