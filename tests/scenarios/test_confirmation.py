"""The second look before "it will not clear by itself": Snapshot.moved re-reads a thread's
system call and its schedstat switch count. A thread still blocked where the scan saw it has
not moved; one that woke up and blocked again, or exited, has."""

from __future__ import annotations

import os

from scenario_helpers import close, spawn_with

from waitchain.demo.harness import wait_blocked
from waitchain.snapshot import Snapshot

ECHO_READER = """
fd = int(sys.argv[1])
while True:
    ready("reading")
    os.read(fd, 1)
"""


def test_a_blocked_thread_has_not_moved(run_py) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, ECHO_READER, [r])
    close(r)
    try:
        reader.ready()
        wait_blocked(reader.pid, "read")
        with Snapshot.scan(pids=[reader.pid]) as snap:
            assert [t.syscall.name for t in snap.tasks(reader.pid) if t.syscall] == ["read"]
            assert snap.moved(reader.pid, reader.pid) is False
    finally:
        close(w)


def test_a_thread_that_woke_and_blocked_again_has_moved(run_py) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, ECHO_READER, [r])
    close(r)
    try:
        reader.ready()
        wait_blocked(reader.pid, "read")
        with Snapshot.scan(pids=[reader.pid]) as snap:
            snap.tasks(reader.pid)  # what the scan saw
            os.write(w, b"x")  # it reads, reports, and blocks in the same read again
            reader.ready()
            wait_blocked(reader.pid, "read")
            assert snap.moved(reader.pid, reader.pid) is True
    finally:
        close(w)


def test_a_thread_that_exited_has_moved(run_py) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, ECHO_READER, [r])
    close(r)
    reader.ready()
    wait_blocked(reader.pid, "read")
    with Snapshot.scan(pids=[reader.pid]) as snap:
        snap.tasks(reader.pid)
        reader.popen.kill()
        reader.popen.wait()
        close(w)
        assert snap.moved(reader.pid, reader.pid) is True
