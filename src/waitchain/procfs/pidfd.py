"""A pipe's fill level, and whether a /dev/fuse fd serves a live connection, read through
a duplicate of the target's fd (pidfd_getfd).

The duplicate shares the file description without opening a new end, but while it lives
the pipe's EOF/EPIPE wait for it too, so it is closed before this function returns."""

from __future__ import annotations

import fcntl
import os
import select
import stat
import struct

from ..model import PipeFill

TYPE_CHECKING = False
if TYPE_CHECKING:  # ctypes and termios are imported when first needed: start-up (issue 14)
    import ctypes
    from typing import Callable, Optional

SYS_PIDFD_OPEN = 434  # same number on every architecture (unified table from 5.x)
SYS_PIDFD_GETFD = 438
F_GETPIPE_SZ = 1032

_libc: Optional[ctypes.CDLL] = None


def _syscall(nr: int, *args: int) -> int:
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    result = _libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def pipe_fill(pid: int, fd: int, same_process: Callable[[], bool] = lambda: True) -> Optional[PipeFill]:
    """Bytes queued / capacity of the pipe at the target's fd, or None if not permitted.
    `same_process` is asked once the pidfd pins the process: False (the pid now names
    another process) means no fd is touched."""
    dup = _duplicate(pid, fd, same_process)
    if dup is None:
        return None
    try:
        return _measure(dup)
    except OSError:
        return None
    finally:
        os.close(dup)


def _duplicate(pid: int, fd: int, same_process: Callable[[], bool]) -> Optional[int]:
    """A duplicate of the target's fd (pidfd_getfd; the caller closes it), or None if not
    permitted, gone, or the pid names another process once the pidfd pins it."""
    try:
        pidfd = _syscall(SYS_PIDFD_OPEN, pid, 0)
    except OSError:
        return None
    try:
        return _syscall(SYS_PIDFD_GETFD, pidfd, fd, 0) if same_process() else None
    except OSError:
        return None
    finally:
        os.close(pidfd)


def _measure(fd: int) -> Optional[PipeFill]:
    """None when the fd is no longer a pipe (closed and reused since the scan): no ioctl
    is made on anything else."""
    import termios

    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return None
    used = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    size = fcntl.fcntl(fd, F_GETPIPE_SZ)
    return PipeFill(used, size)


FUSE_DEV = (10, 229)  # /dev/fuse: misc character device 10:229


def fuse_fd_alive(pid: int, fd: int, same_process: Callable[[], bool] = lambda: True) -> Optional[bool]:
    """Whether the target's /dev/fuse fd serves a live FUSE connection: poll on a duplicate
    (pidfd_getfd) says EPOLLERR once its connection is aborted or unmounted; a stale daemon
    of a dead mount still shows the same fuse_connection number in fdinfo, which a new
    mount may have been given. None when it cannot be checked (not permitted, gone, not
    /dev/fuse). The poll does not wait and takes no request."""
    dup = _duplicate(pid, fd, same_process)
    if dup is None:
        return None
    try:
        st = os.fstat(dup)
        if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != FUSE_DEV:
            return None
        poller = select.poll()
        poller.register(dup, select.POLLIN | select.POLLOUT)
        events = dict(poller.poll(0)).get(dup, 0)
        return not events & (select.POLLERR | select.POLLHUP | select.POLLNVAL)
    except OSError:
        return None
    finally:
        os.close(dup)
