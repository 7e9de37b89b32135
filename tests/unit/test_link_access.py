"""procfs/fds.link_access: an fd's access mode from its /proc/PID/fd/N link's mode (lstat),
the same as fdinfo's flags say; None where the link cannot tell."""

import os
import socket

from waitchain.model import READ, READ_WRITE, WRITE
from waitchain.procfs.fds import link_access, read_fdinfo
from waitchain.procfs.reader import ProcFS


def test_link_mode_tells_the_access_fdinfo_tells() -> None:
    fs, me = ProcFS(), os.getpid()
    read_end, write_end = os.pipe()
    left, right = socket.socketpair()
    path = os.open("/", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        assert [link_access(fs, me, fd) for fd in (read_end, write_end, left.fileno())] == [READ, WRITE, READ_WRITE]
        for fd in (read_end, write_end, left.fileno()):
            info = read_fdinfo(fs, me, fd)
            assert info is not None and info.access == link_access(fs, me, fd)
        if hasattr(os, "O_PATH"):
            assert link_access(fs, me, path) is None  # neither bit: fdinfo's flags decide
    finally:
        for fd in (read_end, write_end, path):
            os.close(fd)
        left.close()
        right.close()


def test_gone_fd_and_recorded_proc_say_nothing() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    assert link_access(ProcFS(), os.getpid(), read_end) is None
    assert link_access(ProcFS("tests/data/proc"), 1, 0) is None
