"""The second look before "it will not clear by itself": Snapshot.moved re-reads a thread's
system call and its schedstat switch count. A thread still blocked where the scan saw it has
not moved; one that woke up and blocked again, or exited, has."""

from __future__ import annotations

import os
from typing import Iterator, Tuple

import pytest
from scenario_helpers import close, spawn_with

from waitchain.demo.harness import wait_blocked
from waitchain.snapshot import Snapshot

ECHO_READER = """
fd = int(sys.argv[1])
while True:
    ready("reading")
    os.read(fd, 1)
"""


@pytest.fixture
def reader(run_py) -> Iterator[Tuple[object, int]]:
    """A program blocked reading a pipe, and the pipe's write end (closed afterwards)."""
    r, w = os.pipe()
    program = spawn_with(run_py, ECHO_READER, [r])
    close(r)
    try:
        program.ready()
        wait_blocked(program.pid, "read")
        yield program, w
    finally:
        close(w)


def test_a_blocked_thread_has_not_moved(reader) -> None:
    program, _ = reader
    with Snapshot.scan(pids=[program.pid]) as snap:
        assert [t.syscall.name for t in snap.tasks(program.pid) if t.syscall] == ["read"]
        assert snap.moved(program.pid, program.pid) is False


def test_a_thread_that_woke_and_blocked_again_has_moved(reader) -> None:
    program, w = reader
    with Snapshot.scan(pids=[program.pid]) as snap:
        snap.tasks(program.pid)  # what the scan saw
        os.write(w, b"x")  # it reads, reports, and blocks in the same read again
        program.ready()
        wait_blocked(program.pid, "read")
        assert snap.moved(program.pid, program.pid) is True


def test_a_thread_that_exited_has_moved(reader) -> None:
    program, _ = reader
    with Snapshot.scan(pids=[program.pid]) as snap:
        snap.tasks(program.pid)
        program.popen.kill()
        program.popen.wait()
        assert snap.moved(program.pid, program.pid) is True
