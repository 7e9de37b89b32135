"""procfs/split.py: the scan of many processes shared with a forked child gives what one
process reading them all gives (every Process, fd, note, in order), whatever the child does:
answers, fails, or never answers (killed at its deadline, its part read here); the child keeps
no fd but its pipe, is always reaped, and this process's own fd table shows no pipe to it."""

from __future__ import annotations

import os
import socket
from typing import Iterator, List, Optional

import pytest

from waitchain.demo.harness import wait_until
from waitchain.model import Process
from waitchain.procfs import split
from waitchain.procfs.reader import ProcFS
from waitchain.snapshot import Snapshot, _scan_process


@pytest.fixture
def holders() -> Iterator[List[int]]:
    """Eight children holding pipes and socketpairs (some shared with each other), each blocked
    reading a pipe this test holds once it said it is ready; killed and reaped after."""
    hold_r, hold_w = os.pipe()
    ready_r, ready_w = os.pipe()
    shared = os.pipe()
    kids: List[int] = []
    try:
        for i in range(8):
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(hold_w)
                    held = [os.pipe() for _ in range(i)] + [socket.socketpair() for _ in range(i % 3)]
                    os.write(ready_w, b"x")
                    os.read(hold_r, 1)
                    del held
                finally:
                    os._exit(0)
            kids.append(pid)
        os.close(ready_w)
        ready_w = -1
        got = b""
        while len(got) < len(kids):
            got += os.read(ready_r, 8)
        wait_until(lambda: all(state(pid) == "S" for pid in kids), "the children block")
        yield kids + [os.getpid(), 999999999]  # the last never exists
    finally:
        os.close(hold_w)
        for fd in (hold_r, ready_r, ready_w, *shared):
            if fd >= 0:
                os.close(fd)
        for pid in kids:
            os.waitpid(pid, 0)


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def scan_one(pid: int, notes: List[str]) -> Optional[Process]:
    return _scan_process(ProcFS(), pid, notes)


def serial(pids: List[int]) -> tuple:
    notes: List[str] = []
    return [scan_one(pid, notes) for pid in pids], notes


def children_now() -> List[int]:
    me = os.getpid()
    return [int(k) for t in os.listdir(f"/proc/{me}/task")
            for k in open(f"/proc/{me}/task/{t}/children").read().split()]


def test_the_split_scan_reads_what_one_process_reads(holders: List[int]) -> None:
    before = children_now()
    want, want_notes = serial(holders)
    notes: List[str] = []
    got = split.scan_split(holders, scan_one, notes)
    assert got == want and notes == want_notes
    assert got[-1] is None and got[holders.index(os.getpid())] is not None
    assert children_now() == before  # the child is reaped


def test_its_own_fd_table_shows_no_pipe_to_the_child(holders: List[int]) -> None:
    me = holders.index(os.getpid())
    got = split.scan_split(holders, scan_one, [])
    assert got[me] == scan_one(os.getpid(), [])


@pytest.mark.parametrize("how", ["raises", "exits", "hangs"])
def test_a_child_that_fails_or_hangs_has_its_part_read_here(holders: List[int], monkeypatch, how: str) -> None:
    parent = os.getpid()
    monkeypatch.setattr(split, "MIN_DEADLINE", 0.2)

    def broken(pid: int, notes: List[str]) -> Optional[Process]:
        if os.getpid() != parent:
            if how == "raises":
                raise RuntimeError("in the child")
            if how == "exits":
                os._exit(3)
            block_r, _ = os.pipe()
            os.read(block_r, 1)  # nobody writes: blocked until killed
        return scan_one(pid, notes)

    before = children_now()
    want, want_notes = serial(holders)
    notes: List[str] = []
    assert split.scan_split(holders, broken, notes) == want and notes == want_notes
    assert children_now() == before


def test_the_child_keeps_only_its_pipe(holders: List[int]) -> None:
    parent = os.getpid()

    def fds_of_the_child(pid: int, notes: List[str]) -> Optional[Process]:
        proc = scan_one(pid, notes)
        if proc is not None and os.getpid() != parent:
            proc.note = " ".join(sorted(os.listdir("/proc/self/fd")))  # its pipe and the listing's own fd
        return proc

    notes: List[str] = []
    got = split.scan_split(holders, fds_of_the_child, notes)
    in_child = [p.note for p in got if p is not None and p.note]
    assert in_child and all(len(note.split()) == 2 for note in in_child), in_child


def counted(func):
    def call(*args):
        call.calls += 1  # type: ignore[attr-defined]
        return func(*args)
    call.calls = 0  # type: ignore[attr-defined]
    return call


def test_the_snapshot_is_the_same_split_or_not(holders: List[int], monkeypatch) -> None:
    monkeypatch.setattr(split, "worth_splitting", lambda count: False)
    alone = Snapshot.scan(pids=holders)
    monkeypatch.setattr(split, "worth_splitting", lambda count: True)
    monkeypatch.setattr(split, "scan_split", counted(split.scan_split))
    shared = Snapshot.scan(pids=holders)
    assert split.scan_split.calls == 1  # type: ignore[attr-defined]
    me = os.getpid()
    for snap in (alone, shared):
        snap.close()
        snap.processes.pop(me)  # read at different times: its own fds differ
    assert list(alone.processes.items()) == list(shared.processes.items())
    assert alone.notes == shared.notes


def test_no_split_with_threads_running_or_one_cpu(monkeypatch) -> None:
    monkeypatch.setattr(split, "cpus", lambda: 2)
    monkeypatch.setattr(split.threading, "active_count", lambda: 1)
    assert split.worth_splitting(split.SPLIT_AT) and not split.worth_splitting(split.SPLIT_AT - 1)
    monkeypatch.setattr(split, "cpus", lambda: 1)
    assert not split.worth_splitting(10 * split.SPLIT_AT)
    monkeypatch.setattr(split, "cpus", lambda: 2)
    monkeypatch.setattr(split.threading, "active_count", lambda: 2)  # fork would copy one thread of two
    assert not split.worth_splitting(10 * split.SPLIT_AT)
