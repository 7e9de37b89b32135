"""The watchdog's wait cache: a thread that has not run since the last scan keeps the wait
worked out then, if that wait led to no other process; a thread that ran, and every wait with
edges, is worked out again."""

from __future__ import annotations

import os

from scenario_helpers import READER, SLEEPER, close, spawn_with

from waitchain.demo.harness import wait_blocked
from waitchain.snapshot import Snapshot
from waitchain.watch import WaitCache

ECHO_READER = """
fd = int(sys.argv[1])
while True:
    ready("reading")
    os.read(fd, 1)
"""


def _wait(cache: WaitCache, pid: int, *others: int):
    with Snapshot.scan(pids=[pid, *others]) as snap:
        (task,) = snap.tasks(pid)
        wait = cache.rules(snap, pid, task)
    cache.next_scan()
    return wait


def test_a_sleeper_that_has_not_run_keeps_its_wait(run_py, wait_sleeping) -> None:
    sleeper = run_py(SLEEPER)
    sleeper.ready()
    wait_sleeping(sleeper.pid)
    cache = WaitCache()
    first = _wait(cache, sleeper.pid)
    assert not first.edges and first.end is not None
    assert _wait(cache, sleeper.pid) is first and cache.hits == 1
    assert _wait(cache, sleeper.pid) is first and cache.hits == 2


def test_a_thread_that_ran_is_read_again(run_py) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, ECHO_READER, [r])
    try:
        close(r)
        reader.ready()
        wait_blocked(reader.pid, "read")
        cache = WaitCache()
        first = _wait(cache, reader.pid)
        os.write(w, b"x")  # it reads, and blocks in the same read again
        reader.ready()
        wait_blocked(reader.pid, "read")
        second = _wait(cache, reader.pid)
        assert second is not first and cache.hits == 0
    finally:
        close(w)


def test_a_wait_on_another_process_is_never_kept(run_py, wait_sleeping) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, READER, [r])
    writer = run_py(SLEEPER, pass_fds=[w])
    close(r, w)
    reader.ready(), writer.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(writer.pid)
    cache = WaitCache()
    first = _wait(cache, reader.pid, writer.pid)
    assert [e.to_pid for e in first.edges] == [writer.pid]
    second = _wait(cache, reader.pid, writer.pid)
    assert second is not first and second == first and cache.hits == 0
