"""Lock retry loops (waits/retry.py through the sleep rule): a short sleep with a file open
that another process holds a conflicting lock on gets an inferred edge to the holder; the
look-alikes (a long sleep, a compatible shared lock, the holder itself, another file) keep
their sleep end. On snapshots built in code, with no process started."""

from __future__ import annotations

import struct
import time
from typing import Dict, List, Optional, Tuple

from rule_fakes import RDWR, FakeSnapshot, task

from waitchain.graph.explore import node_of
from waitchain.graph.waitfor import Node, WaitFor
from waitchain.model import EdgeKind, EndKind, FdInfo, LockType, Mode, Reason
from waitchain.procfs.locks import parse_locks
from waitchain.procfs.timers import PosixTimer, parse_timers
from waitchain.render.ends import detail
from waitchain.render.labels import label
from waitchain.waits import filelock, poll, signals

DB, INO = "/srv/app.db", 4242
SLEEP_AT = 0x7000
TIMER_ABSTIME = 1
CLOCK_MONOTONIC = 1
# sqlite's locks: PENDING 1073741824, RESERVED 1073741825, SHARED 1073741826-1073742335
EXCLUSIVE = f"POSIX  ADVISORY  WRITE {{pid}} fe:00:{INO} 1073741824 1073742335"
SHARED = f"POSIX  ADVISORY  READ  {{pid}} fe:00:{INO} 1073741826 1073742335"
PENDING = f"POSIX  ADVISORY  WRITE {{pid}} fe:00:{INO} 1073741824 1073741825"
FLOCK_EX = f"FLOCK  ADVISORY  WRITE {{pid}} fe:00:{INO} 0 EOF"
FLOCK_SH = f"FLOCK  ADVISORY  READ  {{pid}} fe:00:{INO} 0 EOF"


def snapshot(held: Dict[int, List[str]], seconds: float = 0.1, absolute: bool = False,
             files: Optional[Dict[int, Tuple[str, int]]] = None) -> FakeSnapshot:
    """Sleeper 10 (fd 3 on DB, unless `files`) sleeps `seconds`; `held`: pid → its locks on
    DB (lines of /proc/locks with {pid}); every pid but 10 has DB open at fd 3."""
    snap = FakeSnapshot()
    files = files if files is not None else {3: (DB, INO)}
    snap.add_process(10, {fd: path for fd, (path, _) in files.items()})
    lines: List[str] = []
    for pid in sorted(set(held) | {10}):
        if pid != 10:
            snap.add_process(pid, {3: DB})
        mine = [line.format(pid=pid) for line in held.get(pid, [])]
        lines += mine
        numbered = tuple(("lock", f"{i + 1}: {line}") for i, line in enumerate(mine))
        for fd, (path, ino) in (files.items() if pid == 10 else [(3, (DB, INO))]):
            extra = numbered if ino == INO else ()
            snap._fdinfo[(pid, fd)] = FdInfo(pos=0, flags=RDWR, mnt_id=0, ino=ino, extra=extra)
    snap._locks = parse_locks("\n".join(f"{i + 1}: {line}" for i, line in enumerate(lines)))
    value = time.clock_gettime(CLOCK_MONOTONIC) + seconds if absolute else seconds
    snap.memory.put(10, SLEEP_AT, struct.pack("=qq", int(value), int(value % 1 * 1e9)))
    return snap


def sleep(snap: FakeSnapshot, absolute: bool = False):
    flags = TIMER_ABSTIME if absolute else 0
    return signals.rule(snap, 10, task(10, "clock_nanosleep", CLOCK_MONOTONIC, flags, SLEEP_AT))


def test_a_short_sleep_next_to_a_write_lock_retries_it() -> None:
    wait = sleep(snapshot({20: [EXCLUSIVE]}))
    (edge,) = wait.edges
    assert (edge.from_pid, edge.from_tid, edge.to_pid, edge.to_tid) == (10, 10, 20, None)
    assert (edge.kind, edge.object, edge.fd, edge.holder_fds, edge.inode) == (EdgeKind.POSIX_LOCK, DB, 3, (3,), INO)
    assert edge.syscall == "clock_nanosleep" and edge.lock is not None and edge.lock.type == LockType.WRITE
    assert edge.retry is not None and (edge.retry.call, edge.retry.interval, edge.retry.holds) == (
        "clock_nanosleep", 0.1, None)
    assert wait.end is None and wait.mode == Mode.ANY
    assert edge.evidence.startswith("inferred: it sleeps 0.1 s in clock_nanosleep with fd 3 open")
    assert label(edge) == ("retrying a lock held by 20, a WRITE POSIX lock (inferred: it sleeps 0.1 s "
                           "between tries with the file open)")


def test_a_retry_loop_is_a_way_out_so_never_a_deadlock() -> None:
    wait = sleep(snapshot({20: [EXCLUSIVE]}))
    node = node_of(wait)
    assert node.exit and node.targets == ((20, None),)
    plain = node_of(signals.rule(snapshot({20: [EXCLUSIVE]}, seconds=5), 10,
                                 task(10, "clock_nanosleep", CLOCK_MONOTONIC, 0, SLEEP_AT)))
    assert not plain.exit and not plain.targets
    # two retriers each holding what the other retries: no knot (each runs between tries)
    graph = WaitFor([node, Node((20, 20), ((10, None),), Mode.ANY)])  # the holder waits for the retrier
    assert not graph.knots()


def test_a_long_sleep_is_no_retry() -> None:
    wait = sleep(snapshot({20: [EXCLUSIVE]}, seconds=1.5))
    assert not wait.edges and wait.end is not None
    assert (wait.end.kind, wait.end.reason, wait.end.duration) == (EndKind.SLEEPING, Reason.SLEEP, 1.5)


def test_one_second_is_still_a_retry() -> None:
    assert [e.to_pid for e in sleep(snapshot({20: [EXCLUSIVE]}, seconds=1.0)).edges] == [20]


def test_a_reader_next_to_readers_is_no_retry() -> None:
    wait = sleep(snapshot({10: [SHARED], 20: [SHARED]}))
    assert not wait.edges and wait.end is not None and wait.end.kind == EndKind.SLEEPING


def test_a_sleeper_with_no_lock_next_to_readers_is_no_retry() -> None:
    """It may want a shared lock too: nothing shows a conflict."""
    assert not sleep(snapshot({20: [SHARED], 30: [SHARED]})).edges


def test_a_writer_waiting_for_readers_retries_them_all() -> None:
    """sqlite's writer holds PENDING and retries EXCLUSIVE until the readers' SHARED go."""
    wait = sleep(snapshot({10: [PENDING], 20: [SHARED], 30: [SHARED]}))
    assert sorted(e.to_pid for e in wait.edges) == [20, 30] and wait.mode == Mode.ALL
    assert all(e.retry is not None and e.retry.holds == LockType.WRITE for e in wait.edges)
    assert all(e.lock is not None and e.lock.type == LockType.READ for e in wait.edges)


def test_the_holder_itself_is_no_retry() -> None:
    wait = sleep(snapshot({10: [EXCLUSIVE]}))
    assert not wait.edges and wait.end is not None and wait.end.kind == EndKind.SLEEPING


def test_a_reader_next_to_a_writer_retries_it() -> None:
    (edge,) = sleep(snapshot({10: [SHARED], 20: [PENDING]})).edges
    assert edge.to_pid == 20 and edge.retry is not None and edge.retry.holds == LockType.READ


def test_an_flock_held_by_another_is_retried_as_an_flock() -> None:
    (edge,) = sleep(snapshot({20: [FLOCK_EX]})).edges
    assert edge.kind == EdgeKind.FLOCK and edge.to_pid == 20
    assert not sleep(snapshot({10: [FLOCK_SH], 20: [FLOCK_SH]})).edges


def test_a_lock_on_another_file_is_no_retry() -> None:
    snap = snapshot({20: [EXCLUSIVE]}, files={3: ("/srv/other.db", INO + 1)})
    assert not sleep(snap).edges


def test_an_absolute_sleep_counts_by_its_length() -> None:
    assert [e.to_pid for e in sleep(snapshot({20: [EXCLUSIVE]}, seconds=0.2, absolute=True), absolute=True).edges] == [20]
    long = sleep(snapshot({20: [EXCLUSIVE]}, seconds=3600, absolute=True), absolute=True)
    assert not long.edges and long.end is not None and long.end.kind == EndKind.SLEEPING


def test_an_unreadable_sleep_is_no_retry() -> None:
    snap = snapshot({20: [EXCLUSIVE]})
    snap.memory.data.clear()
    wait = sleep(snap)
    assert not wait.edges and wait.end is not None and wait.end.unread


# --- flock -w: /proc/PID/timers, and a timer as the way out of a blocked lock call ------------

TIMERS = """ID: 0
signal: 14/0000000000000000
notify: signal/pid.24044
ClockID: 1
ID: 1
signal: 10/00007f0000001000
notify: thread/tid.24050
ClockID: 0
ID: 2
signal: 0/0000000000000000
notify: none/pid.24044
ClockID: 1
ID: x
"""


def test_proc_timers_are_parsed() -> None:
    assert parse_timers(TIMERS) == [PosixTimer(0, 14, "signal", 24044, 1), PosixTimer(1, 10, "thread", 24050, 0),
                                    PosixTimer(2, 0, "none", 24044, 1)]
    assert parse_timers("") == [] and parse_timers("garbage\n: :\n") == []


def blocked_flock(timers: List[PosixTimer], caught: Tuple[int, ...] = (14,), blocked: Tuple[int, ...] = (),
                  threads: int = 1):
    """10 blocks in flock(3, LOCK_EX) behind 20's flock on DB; 10 has these timers."""
    snap = snapshot({20: [FLOCK_EX]})
    snap._mounts[10] = {}
    snap.threads[10] = [task(10 + i, "flock", 3, 2) for i in range(threads)]
    snap.set_masks(10, 10, caught, blocked)
    snap._timers[10] = timers
    return filelock.rule(snap, 10, task(10, "flock", 3, 2))


def test_a_caught_timer_signal_is_a_way_out_of_a_blocked_flock() -> None:
    wait = blocked_flock([PosixTimer(0, 14, "signal", 10, 1)])
    assert [e.to_pid for e in wait.edges] == [20] and wait.live == ()
    timer = wait.end
    assert timer is not None
    assert (timer.kind, timer.reason, timer.call, timer.signals) == (
        EndKind.SLEEPING, Reason.TIMEOUT, "flock", ("SIGALRM",))
    assert node_of(wait).exit
    assert detail(timer).startswith("its timer: a POSIX timer sends SIGALRM")


def test_no_timer_or_one_that_cannot_end_the_wait_is_no_way_out() -> None:
    assert blocked_flock([]).end is None and not node_of(blocked_flock([])).exit
    assert blocked_flock([PosixTimer(0, 14, "signal", 10, 1)], caught=()).end is None  # default action: it dies
    assert blocked_flock([PosixTimer(0, 14, "signal", 10, 1)], blocked=(14,)).end is None
    assert blocked_flock([PosixTimer(0, 0, "none", 10, 1)]).end is None
    # process-directed, with another thread that may take the signal
    assert blocked_flock([PosixTimer(0, 14, "signal", 10, 1)], threads=2).end is None
    # directed at this very thread
    assert blocked_flock([PosixTimer(0, 14, "thread", 10, 1)], threads=2).end is not None


def test_a_select_with_no_fd_and_a_short_timeout_is_a_sleep_that_may_retry() -> None:
    """Python 3.9/3.10's time.sleep: select(0, NULL, NULL, NULL, &timeval)."""
    snap = snapshot({20: [EXCLUSIVE]})
    snap.memory.put(10, SLEEP_AT, struct.pack("=qq", 0, 50000))  # struct timeval: 0.05 s
    (edge,) = poll.rule(snap, 10, task(10, "select", 0, 0, 0, 0, SLEEP_AT)).edges
    assert edge.to_pid == 20 and edge.retry is not None and edge.retry.interval == 0.05
    assert edge.retry.call == "select" and edge.syscall == "select"
    snap.memory.put(10, SLEEP_AT, struct.pack("=qq", 30, 0))
    wait = poll.rule(snap, 10, task(10, "select", 0, 0, 0, 0, SLEEP_AT))
    assert not wait.edges and wait.end is not None and wait.end.reason == Reason.SLEEP


def test_an_absolute_sleep_whose_time_slept_is_implausible_counts_by_the_time_left() -> None:
    """se.exec_start can say a thread that sleeps 0.1 s at a time last ran seconds ago."""
    snap = snapshot({20: [EXCLUSIVE]}, seconds=0.05, absolute=True)
    snap.idle_seconds = lambda pid, tid: 2.1  # type: ignore[method-assign]
    assert [e.to_pid for e in sleep(snap, absolute=True).edges] == [20]
    snap = snapshot({20: [EXCLUSIVE]}, seconds=0.5, absolute=True)
    snap.idle_seconds = lambda pid, tid: 0.8  # type: ignore[method-assign]
    assert not sleep(snap, absolute=True).edges  # 0.5 s left after 0.8 s asleep: a 1.3 s sleep
