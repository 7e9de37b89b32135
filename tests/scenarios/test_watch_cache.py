"""What keeps the watchdog's scans cheap. The scan cache: a process that has not run since the
last scan keeps its fd table (one that ran, opening a pipe, is read again); the memory reader's
helper is kept. The wait cache: a thread that has not run since the
last scan keeps the wait worked out then, if that wait led to no other process; a thread that
ran, and every wait with edges, is worked out again. Quiet processes: a one-thread process
whose waits led nowhere and that has not run since is no start of the next exploration."""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from scenario_helpers import READER, SLEEPER, close, spawn_with

from waitchain.demo.harness import wait_blocked, wait_until
from waitchain.graph import Explored
from waitchain.procfs.activity import one_thread_activity
from waitchain.procfs.reader import ProcFS
from waitchain.snapshot import ScanCache, Snapshot
from waitchain.watch import QuietProcesses, WaitCache

ECHO_READER = """
fd = int(sys.argv[1])
while True:
    ready("reading")
    os.read(fd, 1)
"""


@contextlib.contextmanager
def blocked_reader(run_py, code: str) -> Iterator[Tuple[object, int]]:
    """`code` run with a pipe's read end (argv[1]), once it blocks in read; (the program,
    the write end, ours). The write end is closed on the way out."""
    r, w = os.pipe()
    try:
        proc = spawn_with(run_py, code, [r])
        close(r)
        proc.ready()
        wait_blocked(proc.pid, "read")
        yield proc, w
    finally:
        close(w)


def wake(proc, w: int) -> List[List[str]]:
    """Write a byte for it; its next readiness line, once it blocks in read again."""
    os.write(w, b"x")
    lines = proc.ready()
    wait_blocked(proc.pid, "read")
    return lines


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
    with blocked_reader(run_py, ECHO_READER) as (reader, w):
        cache = WaitCache()
        first = _wait(cache, reader.pid)
        wake(reader, w)  # it reads, and blocks in the same read again
        second = _wait(cache, reader.pid)
        assert second is not first and cache.hits == 0


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


def _learn(quiet: QuietProcesses, pids, *others: int):
    """One scan's exploration from quiet.starts(pids); the starts."""
    with Snapshot.scan(pids=[*pids, *others]) as snap:
        starts = quiet.starts(snap, list(pids))
        quiet.learn(Explored(snap).explore(starts))
    return starts


THREADED_SLEEPER = """
threading.Thread(target=sleep_forever, daemon=True).start()
ready("sleeping")
sleep_forever()
"""


def test_quiet_processes_are_no_starts_until_they_run(run_py, wait_sleeping) -> None:
    r, w = os.pipe()
    echo = spawn_with(run_py, ECHO_READER, [r])  # its pipe's writer is us: not scanned, no edge
    try:
        close(r)
        sleeper = run_py(SLEEPER)
        threaded = run_py(THREADED_SLEEPER)
        for p in (echo, sleeper, threaded):
            p.ready()
        wait_blocked(echo.pid, "read")
        wait_sleeping(sleeper.pid)
        wait_sleeping(threaded.pid, threads=2)
        everyone = [echo.pid, sleeper.pid, threaded.pid]
        quiet = QuietProcesses()
        assert _learn(quiet, everyone) == everyone
        assert _learn(quiet, everyone) == [threaded.pid]  # two threads: always looked at
        wake(echo, w)  # echo runs, and blocks in its read again
        assert _learn(quiet, everyone) == [echo.pid, threaded.pid]
        assert _learn(quiet, everyone) == [threaded.pid]
    finally:
        close(w)


def test_a_process_waiting_for_another_is_always_a_start(run_py, wait_sleeping) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, READER, [r])
    writer = run_py(SLEEPER, pass_fds=[w])
    close(r, w)
    reader.ready(), writer.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(writer.pid)
    quiet = QuietProcesses()
    _learn(quiet, [reader.pid], writer.pid)
    assert _learn(quiet, [reader.pid], writer.pid) == [reader.pid]


# --- fd tables carried across scans (snapshot.ScanCache) --------------------------------------


class CountingProcFS(ProcFS):
    """A /proc whose fd table reads are counted, per pid."""

    def __init__(self) -> None:
        super().__init__()
        self.fd_reads: Dict[int, int] = {}

    def fd_links(self, pid: int, piddir: Optional[int] = None) -> dict:
        self.fd_reads[pid] = self.fd_reads.get(pid, 0) + 1
        return super().fd_links(pid, piddir)


class TaskCountingProcFS(CountingProcFS):
    """... and its thread reads (each begins with its main thread's stat)."""

    def __init__(self) -> None:
        super().__init__()
        self.task_reads: Dict[int, int] = {}

    def read_one(self, pid: Optional[int], *parts: str) -> str:
        if pid is not None and parts == ("task", str(pid), "stat"):  # how a read of its threads begins
            self.task_reads[pid] = self.task_reads.get(pid, 0) + 1
        return super().read_one(pid, *parts)


def _threads(cache: ScanCache, fs: ProcFS, pid: int) -> list:
    with Snapshot.scan(fs, pids=[pid], cache=cache) as snap:
        return snap.tasks(pid)


def test_a_process_that_has_not_run_keeps_its_threads(run_py) -> None:
    """Carried with its fd table: its threads as first read (one read of the thread list in
    four scans, the same Task each time); once it runs, read again."""
    with blocked_reader(run_py, ECHO_READER) as (proc, w):
        fs, cache = TaskCountingProcFS(), ScanCache()
        wait_until(lambda: _carried(cache, fs, proc.pid), f"a scan carries {proc.pid}")
        reads = fs.task_reads.get(proc.pid, 0)
        first = _threads(cache, fs, proc.pid)
        assert [_threads(cache, fs, proc.pid) for _ in range(3)] == [first] * 3
        assert fs.task_reads[proc.pid] == reads + 1
        with Snapshot.scan(pids=[proc.pid]) as fresh:
            assert fresh.tasks(proc.pid) == first
        wake(proc, w)  # it reads, and blocks in the same read again: it has run
        again = _threads(cache, fs, proc.pid)
        assert fs.task_reads[proc.pid] == reads + 2 and again[0].switches != first[0].switches
        cache.close()


def _fds(cache: ScanCache, fs: ProcFS, pid: int) -> Dict[int, str]:
    with Snapshot.scan(fs, pids=[pid], cache=cache) as snap:
        return snap.processes[pid].fds


def test_a_process_that_has_not_run_keeps_its_fd_table(run_py, wait_sleeping) -> None:
    sleeper = run_py(SLEEPER)
    sleeper.ready()
    wait_sleeping(sleeper.pid)
    fs, cache = CountingProcFS(), ScanCache(most=3)
    with Snapshot.scan(pids=[sleeper.pid]) as fresh:
        expected = fresh.processes[sleeper.pid].fds
    assert [_fds(cache, fs, sleeper.pid) for _ in range(4)] == [expected] * 4
    assert fs.fd_reads == {sleeper.pid: 1} and (cache.fd_reads, cache.carried) == (1, 3)
    _fds(cache, fs, sleeper.pid)  # carried `most` scans: read again, then carried again
    _fds(cache, fs, sleeper.pid)
    assert fs.fd_reads == {sleeper.pid: 2} and (cache.fd_reads, cache.carried) == (2, 4)
    with Snapshot.scan(pids=[sleeper.pid], cache=cache) as snap:  # what the watchdog's QuietProcesses asks
        assert snap.one_thread_activity(sleeper.pid) == one_thread_activity(ProcFS(), sleeper.pid)
    cache.close()


OPENS_A_PIPE = """
fd = int(sys.argv[1])
ready("reading")
os.read(fd, 1)
r, w = os.pipe()
ready("reading", r)
os.read(r, 1)
"""


def test_a_process_that_opened_a_pipe_is_read_again(run_py) -> None:
    with blocked_reader(run_py, OPENS_A_PIPE) as (proc, w):
        fs, cache = CountingProcFS(), ScanCache()
        before = _fds(cache, fs, proc.pid)
        assert _fds(cache, fs, proc.pid) == before and fs.fd_reads == {proc.pid: 1}  # the cache is in use
        (_pid, _word, new_fd), = wake(proc, w)  # it runs: opens a new pipe and blocks reading it
        after = _fds(cache, fs, proc.pid)
        assert fs.fd_reads == {proc.pid: 2}
        assert int(new_fd) not in before and after[int(new_fd)].startswith("pipe:[")
        with Snapshot.scan(pids=[proc.pid]) as fresh:
            assert after == fresh.processes[proc.pid].fds
        cache.close()


def test_the_memory_readers_helper_is_kept_across_scans(run_py, wait_sleeping) -> None:
    sleeper = run_py(SLEEPER)
    sleeper.ready()
    wait_sleeping(sleeper.pid)
    address = int(ProcFS().read(sleeper.pid, "maps").split("-", 1)[0], 16)
    cache, helpers = ScanCache(), []
    for _ in range(2):
        with Snapshot.scan(pids=[sleeper.pid], cache=cache) as snap:
            assert len(snap.memory.read(sleeper.pid, address, 8)) == 8
            helper = snap.memory.reader._slot.helper
            assert helper is not None
            helpers.append(helper.proc.pid)
        assert not snap.memory.reader.closed  # the snapshot's end does not end the cache's reader
    assert helpers[0] == helpers[1]
    cache.close()
    assert snap.memory.reader.closed


WORKER_OPENS_A_PIPE = """
import threading
fd, wake = int(sys.argv[1]), int(sys.argv[2])
def work():
    ready("worker", threading.get_native_id())
    os.read(wake, 1)
    r, w = os.pipe()
    ready("opened", r)
    os.read(r, 1)
threading.Thread(target=work, daemon=True).start()
os.read(fd, 1)
"""


@pytest.mark.parametrize("room", [8192, 0], ids=["held-schedstat", "by-path"])
def test_a_process_whose_other_thread_ran_is_read_again(run_py, room: int) -> None:
    """Only the second thread runs (the main thread stays blocked in read): the process is
    read again, with its schedstat files held open or read by path."""
    r, w = os.pipe()
    wake_r, wake_w = os.pipe()
    proc = spawn_with(run_py, WORKER_OPENS_A_PIPE, [r, wake_r])
    try:
        close(r, wake_r)
        (_pid, _word, worker), = proc.ready()
        wait_blocked(proc.pid, "read")
        wait_blocked(int(worker), "read")
        fs, cache = CountingProcFS(), ScanCache(room=room)
        before = _fds(cache, fs, proc.pid)
        wait_until(lambda: _carried(cache, fs, proc.pid), f"a scan carries {proc.pid} (its threads have settled)")
        reads = fs.fd_reads[proc.pid]
        assert cache.held == (2 if room else 0)  # one schedstat file per thread
        os.write(wake_w, b"x")  # the worker runs: opens a pipe and blocks reading it
        (_pid, _word, new_fd), = proc.ready()
        wait_blocked(int(worker), "read")
        after = _fds(cache, fs, proc.pid)
        assert fs.fd_reads[proc.pid] == reads + 1 and int(new_fd) not in before and int(new_fd) in after
        cache.close()
        assert cache.held == 0
    finally:
        close(w, wake_w)


def test_held_files_are_closed_when_their_process_goes(run_py, wait_sleeping) -> None:
    """A process gone since the last scan fails its held file's read (it stays bound to that
    process): it is dropped, its file closed; none of ours is left open after close()."""
    sleepers = [run_py(SLEEPER) for _ in range(2)]
    for s in sleepers:
        s.ready()
        wait_sleeping(s.pid)
    fs, cache = ProcFS(), ScanCache()
    pids = [s.pid for s in sleepers]
    for _ in range(2):
        with Snapshot.scan(fs, pids=pids, cache=cache) as snap:
            assert sorted(snap.processes) == sorted(pids)
    assert (cache.held, cache.carried) == (2, 2) and len(_schedstat_files()) == 2
    sleepers[0].popen.kill()
    sleepers[0].popen.wait()
    with Snapshot.scan(fs, pids=pids, cache=cache) as snap:  # asked for, gone
        assert sorted(snap.processes) == [pids[1]]
    assert cache.held == 1
    with Snapshot.scan(fs, pids=[], cache=cache) as snap:  # not asked for: let go
        assert not snap.processes
    assert cache.held == 0
    with Snapshot.scan(fs, pids=pids[1:], cache=cache):
        pass
    assert cache.held == 1
    cache.close()
    assert _schedstat_files() == []


def _carried(cache: ScanCache, fs: ProcFS, pid: int) -> bool:
    """Whether a scan now carries pid's fd table from the last one."""
    carried = cache.carried
    _fds(cache, fs, pid)
    return cache.carried > carried


def _schedstat_files() -> list:
    """Our fds open on a /proc/.../schedstat file."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").endswith("/schedstat"):
                found.append(fd)
        except OSError:  # the listing's own fd, closed by now
            pass
    return found


def test_the_scanner_itself_is_read_every_most_scans() -> None:
    """The scanning process runs every scan (never 'has not run'), and its fds are its own
    doing (held files, helpers' pipes): read once, then carried `most` scans."""
    me, fs, cache = os.getpid(), CountingProcFS(), ScanCache(most=3)
    for _ in range(5):
        assert _fds(cache, fs, me)
    assert fs.fd_reads == {me: 2} and cache.carried == 3
    cache.close()
