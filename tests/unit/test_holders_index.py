"""snapshot.Holders, the compact object → holders index, gives what a list of (pid, fd) per
target gave: every holder, in scan order (processes as scanned, each one's fds in its table's
order), for small and big fd tables (BIG_TABLE), shared targets and targets held twice by one
process; and holders_of keeps its answer per target without letting a caller change it."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Dict, List, Tuple

from waitchain.model import FdInfo, Process
from waitchain.procfs.reader import ProcFS
from waitchain.snapshot import BIG_TABLE, LINEAR_LOOKUPS, Snapshot


def naive(processes: Dict[int, Process]) -> Dict[str, List[Tuple[int, int]]]:
    index: Dict[str, List[Tuple[int, int]]] = defaultdict(list)
    for proc in processes.values():
        for fd, target in proc.fds.items():
            index[target].append((proc.pid, fd))
    return index


def random_processes(rng: random.Random) -> Dict[int, Process]:
    targets = [f"pipe:[{i}]" for i in range(40)] + [f"socket:[{i}]" for i in range(40)] + ["/dev/null", "/tmp/x"]
    processes = {}
    for pid in rng.sample(range(2, 5000), rng.randint(1, 30)):
        count = rng.choice([0, 1, 3, BIG_TABLE, BIG_TABLE + 1, 3 * BIG_TABLE])
        fds = {fd: rng.choice(targets) for fd in rng.sample(range(0, 10 * BIG_TABLE), count)}
        processes[pid] = Process(pid, pid, "p", "S", 1, pid, 0, fds=fds)
    return processes


def test_the_index_agrees_with_a_list_per_target_on_random_tables() -> None:
    rng = random.Random(14)
    for _ in range(300):
        processes = random_processes(rng)
        snap = Snapshot(ProcFS("/nonexistent-proc"), processes, [])
        want = naive(processes)
        assert {t: list(v) for t, v in snap.holders.items()} == dict(want)
        assert len(snap.holders) == len(want) and list(snap.holders) == list(want)  # in order
        for target in list(want) + ["pipe:[999]"]:  # asked twice: the kept answer is the same
            assert list(snap.holders.get(target, ())) == want.get(target, [])
            assert list(snap.holders.get(target, ())) == want.get(target, [])
            assert (target in snap.holders) == (target in want)


def test_lookups_before_the_index_is_built_give_what_it_gives() -> None:
    """The first LINEAR_LOOKUPS lookups walk the fd tables; later ones (and len, iter, in)
    build the index: the same holders, in the same order, either way."""
    rng = random.Random(8)
    for _ in range(300):
        processes = random_processes(rng)
        want = naive(processes)
        snap = Snapshot(ProcFS("/nonexistent-proc"), processes, [])
        asked = rng.sample(list(want) + ["pipe:[999]"], min(len(want) + 1, LINEAR_LOOKUPS + 4))
        for number, target in enumerate(asked):
            assert (snap.holders._index is None) == (number <= LINEAR_LOOKUPS)
            assert list(snap.holders.get(target, ())) == want.get(target, [])
        late = Process(1, 1, "late", "S", 1, 1, 0, fds={5: "pipe:[0]", 6: "/tmp/x"})
        processes[1] = late  # a process added after the scan, as tests add them
        snap.holders.add(late)
        want = naive(processes)
        assert list(snap.holders.get("pipe:[0]", ())) == want.get("pipe:[0]", [])
        assert list(snap.holders) == list(want)


def test_holders_of_is_kept_per_target_and_a_caller_cannot_change_it() -> None:
    processes = {7: Process(7, 7, "w", "S", 1, 7, 0, fds={3: "pipe:[5]", 4: "pipe:[5]"}),
                 9: Process(9, 9, "r", "S", 1, 9, 0, fds={0: "pipe:[5]"})}
    snap = Snapshot(ProcFS("/nonexistent-proc"), processes, [])
    snap._fdinfo.update({(7, 3): FdInfo(0, 0), (7, 4): FdInfo(0, 1), (9, 0): FdInfo(0, 0)})
    first = snap.holders_of("pipe:[5]")
    assert [(h.pid, h.fd, h.access) for h in first] == [(7, 3, "r"), (7, 4, "w"), (9, 0, "r")]
    first.clear()
    assert [(h.pid, h.fd) for h in snap.holders_of("pipe:[5]")] == [(7, 3), (7, 4), (9, 0)]
    assert snap.holders_of("pipe:[6]") == []


def test_holders_with_a_mode_are_those_of_holders_of_with_that_mode_or_unknown() -> None:
    rng = random.Random(3)
    for _ in range(100):
        processes = random_processes(rng)
        snap = Snapshot(ProcFS("/nonexistent-proc"), processes, [])
        modes = {(pid, fd): rng.choice(["r", "w", "rw", None]) for pid, p in processes.items() for fd in p.fds}
        snap._fdinfo.update({key: None if m is None else FdInfo(0, {"r": 0, "w": 1, "rw": 2}[m])
                             for key, m in modes.items()})
        for target in list(snap.holders)[:5]:
            for wanted in (("w", "rw"), ("r", "rw")):
                want = [h for h in snap.holders_of(target) if h.access in wanted or not h.access]
                got = snap.holders_with(target, wanted)
                assert got == want and snap.holders_with(target, wanted) == want
                got.clear()  # a caller's copy
                assert snap.holders_with(target, wanted) == want


def test_an_fd_table_keeps_each_target_text_once() -> None:
    """Both ends of a pipe (and a dup) name one string object in the table: a host's fd
    tables are most of a scan's memory."""
    import os

    read_end, write_end = os.pipe()
    copy = os.dup(write_end)
    try:
        table = ProcFS().fd_links(os.getpid())
        assert table[read_end] == table[write_end] == table[copy] and table[read_end].startswith("pipe:[")
        assert table[read_end] is table[write_end] is table[copy]
    finally:
        for fd in (read_end, write_end, copy):
            os.close(fd)
