"""The verdict layer on waits built in code (no live processes): one verdict per knot, a
root cause that does not depend on the start pid, advice chosen from the edges' facts, the
second look that withdraws a verdict, and healthy look-alikes that are not deadlocks."""

from __future__ import annotations

import random
from typing import List, Optional, Sequence, Set, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph_fakes import WaitsSnapshot

from waitchain.engine import diagnose, diagnose_all
from waitchain.graph import MAX_DEPTH
from waitchain.model import (Advice, Edge, EdgeKind, End, EndKind, Mode, Reason, VerdictClass, Wait)

Key = Tuple[int, int]


def edge(a: Key, to: int, kind: EdgeKind = EdgeKind.PIPE, to_tid: Optional[int] = None,
         writing: bool = False) -> Edge:
    return Edge(a[0], a[1], to, to_tid, kind, "obj", "evidence", writing=writing)


def wait(key: Key, *edges: Edge, syscall: str = "read", end: Optional[End] = None,
         live: Tuple[End, ...] = (), mode: Mode = Mode.ANY) -> Wait:
    return Wait(key[0], key[1], f"{syscall}()", tuple(edges), end, any_of=len(live) and len(edges),
                live=live, syscall=syscall, mode=mode)


SLEEP = End(EndKind.SLEEPING, "sleeps", Reason.SLEEP)


def run(waits: List[Wait], start: int, moved: Sequence[Key] = ()):
    snap = WaitsSnapshot(waits, moved, starttime=lambda pid: 1)
    return diagnose(snap, [start], rules=snap.rules)  # type: ignore[arg-type]


def run_all(waits: List[Wait]):
    snap = WaitsSnapshot(waits, starttime=lambda pid: 1)
    return diagnose_all(snap, rules=snap.rules)  # type: ignore[arg-type]


def deadlocks(diag) -> List:
    return [v for v in diag.verdicts if v.cls == VerdictClass.DEADLOCK]


# --- the demo ------------------------------------------------------------------------------

W, C, S, D = 10, 20, 30, 40


def demo() -> List[Wait]:
    return [wait((W, W), edge((W, W), C)),
            wait((C, C), edge((C, C), S, EdgeKind.TCP), syscall="recvfrom"),
            wait((S, S), edge((S, S), D, EdgeKind.CHILD), syscall="wait4"),
            wait((D, D), edge((D, D), S, writing=True), syscall="write")]


@pytest.mark.parametrize("start", [W, C, S, D])
def test_demo_root_cause_is_the_servers_wait_from_every_start(start: int) -> None:
    diag = run(demo(), start)
    (v,) = deadlocks(diag)
    assert v.members == (S, D)
    assert v.cause == (S, S)
    assert v.advice == Advice.READ_BEFORE_WAIT and v.culprit == D
    assert [(e.from_pid, e.to_pid) for e in v.ring] == [(S, D), (D, S)]
    assert diag.root_cause is not None and (diag.root_cause.pid, diag.root_cause.tid) == (S, S)
    assert diag.root_cause.syscall == "wait4"
    assert diag.deadlocked


def test_demo_victims_are_the_processes_stuck_behind_it() -> None:
    (v,) = deadlocks(run(demo(), W))
    assert v.victims == (W, C)


def test_a_deadlock_whose_thread_moved_is_withdrawn() -> None:
    diag = run(demo(), W, moved=[(D, D)])
    assert not deadlocks(diag) and not diag.deadlocked
    v = diag.verdicts[0]
    assert v.cls == VerdictClass.CYCLE and not v.confirmed and v.moved == ((D, D),)
    assert v.culprit is None and [c.deadlock for c in diag.cycles] == [False]  # no "DEADLOCK" drawn


def test_the_demo_with_a_drainer_thread_asleep_is_no_deadlock() -> None:
    waits = demo() + [wait((S, S + 1), end=SLEEP, syscall="clock_nanosleep")]
    diag = run(waits, W)
    assert not deadlocks(diag) and not diag.deadlocked
    assert all(not c.deadlock for c in diag.cycles)


# --- knots, self-waits, locks -----------------------------------------------------------------

B, C1, C2 = 100, 200, 300


def broker() -> List[Wait]:
    return [wait((B, B), edge((B, B), C1, EdgeKind.UNIX), edge((B, B), C2, EdgeKind.UNIX), syscall="poll"),
            wait((C1, C1), edge((C1, C1), B, EdgeKind.UNIX), syscall="recvfrom"),
            wait((C2, C2), edge((C2, C2), B, EdgeKind.UNIX), syscall="recvfrom")]


@pytest.mark.parametrize("start", [B, C1, C2])
def test_broker_knot_is_one_deadlock_caused_by_the_broker(start: int) -> None:
    diag = run(broker(), start)
    (v,) = deadlocks(diag)
    assert v.members == (B, C1, C2)
    assert v.cause == (B, B)
    assert len(v.ring) == 2 and v.ring[0].from_pid == B


def test_broker_with_a_client_that_can_still_send_is_no_deadlock() -> None:
    waits = broker()[:2] + [wait((C2, C2), end=SLEEP, syscall="clock_nanosleep")]
    diag = run(waits, B)
    assert not deadlocks(diag) and not diag.deadlocked


def test_single_thread_reading_its_own_pipe_is_a_self_deadlock() -> None:
    diag = run([wait((7, 7), edge((7, 7), 7))], 7)
    (v,) = deadlocks(diag)
    assert v.members == (7,) and v.advice == Advice.CLOSE_OWN_WRITE_END and v.culprit == 7


def test_reading_its_own_pipe_while_a_sibling_sleeps_is_no_deadlock() -> None:
    diag = run([wait((7, 7), edge((7, 7), 7)), wait((7, 8), end=SLEEP)], 7)
    assert not diag.deadlocked


def test_abba_mutexes_blame_the_lower_thread_and_say_lock_order() -> None:
    p = 50
    waits = [wait((p, p), edge((p, p), p, EdgeKind.JOIN, to_tid=51), syscall="futex"),
             wait((p, 51), edge((p, 51), p, EdgeKind.MUTEX, to_tid=52), syscall="futex"),
             wait((p, 52), edge((p, 52), p, EdgeKind.MUTEX, to_tid=51), syscall="futex")]
    (v,) = deadlocks(run(waits, p))
    assert v.threads == ((p, 51), (p, 52)) and v.cause == (p, 51)
    assert v.advice == Advice.LOCK_ORDER


def futex_wait(key: Key, *extra: Edge, live: Tuple[End, ...] = ()) -> Wait:
    """A private futex that records no owner: only another thread of its process wakes it."""
    return wait(key, edge(key, key[0], EdgeKind.FUTEX), *extra, syscall="futex", live=live)


def test_threads_all_on_their_own_private_futexes_are_a_deadlock() -> None:
    """Python ABBA: two workers on locks, the main thread joining one of them."""
    p = 60
    diag = run([futex_wait((p, p)), futex_wait((p, 61)), futex_wait((p, 62))], p)
    (v,) = deadlocks(diag)
    assert v.members == (p,) and v.threads == ((p, p), (p, 61), (p, 62))
    assert v.advice == Advice.OWN_THREADS and v.culprit == p
    assert v.cause == (p, 61)  # not the main thread: a main thread waiting on its threads joins them
    assert diag.deadlocked


def test_a_single_thread_on_a_private_futex_no_thread_can_wake_is_a_deadlock() -> None:
    """A child that inherited across fork() a lock a parent thread held."""
    (v,) = deadlocks(run([futex_wait((70, 70))], 70))
    assert (v.members, v.threads, v.advice) == ((70,), ((70, 70),), Advice.OWN_THREADS)


@pytest.mark.parametrize("other", [
    wait((60, 63), syscall="epoll_wait", live=(End(EndKind.IDLE, "waits for a client", Reason.ACCEPT),)),
    wait((60, 63), end=End(EndKind.RUNNING, "on CPU", Reason.BUSY), syscall=""),
    futex_wait((60, 63), live=(End(EndKind.SLEEPING, reason=Reason.TIMEOUT),)),  # a GIL wait, a timed get()
    futex_wait((60, 63), live=(End(EndKind.SIGNAL, reason=Reason.SIGNAL_HANDLER, signals=("SIGTERM",)),)),
])
def test_a_pool_with_one_thread_that_can_act_is_no_deadlock(other: Wait) -> None:
    """Idle workers on a condition variable, and a thread that can still wake them: one
    in an event loop, one running, one whose wait times out, a signal handler."""
    p = 60
    diag = run([futex_wait((p, p)), futex_wait((p, 61)), futex_wait((p, 62)), other], p)
    assert not deadlocks(diag) and not diag.deadlocked and diag.cycles == []


def test_a_thread_on_its_own_futex_behind_another_process_is_no_own_threads_deadlock() -> None:
    """The main thread waits on a condition its reader thread signals; the reader waits
    for a pipe a stuck peer should write: the knot runs through the peer, locks or not."""
    a, b = 80, 90
    waits = [futex_wait((a, a)), wait((a, 81), edge((a, 81), b)), wait((b, b), edge((b, b), a, writing=True))]
    (v,) = deadlocks(run(waits, a))
    assert v.members == (a, b) and v.advice != Advice.OWN_THREADS and v.cause == (a, 81)


@pytest.mark.parametrize("never", [
    End(EndKind.SIGNAL, "pause()", Reason.SIGNAL_WAIT),
    End(EndKind.IDLE, "waits for a client", Reason.ACCEPT),
    End(EndKind.TERMINAL, "waits for input from a person at /dev/pts/3", Reason.TERMINAL_INPUT),
])
def test_a_wait_that_never_ends_by_itself_outranks_a_sibling_sleep(never: End) -> None:
    """make -j: one recipe sleeps (it will go on), the other's chain ends where nothing
    will happen by itself: that one is why make waits."""
    waits = [wait((1, 1), edge((1, 1), 2, EdgeKind.CHILD), edge((1, 1), 3, EdgeKind.CHILD), syscall="wait4"),
             wait((2, 2), end=SLEEP, syscall="clock_nanosleep"),
             wait((3, 3), edge((3, 3), 4)), wait((4, 4), end=never, syscall="pause")]
    (v,) = run(waits, 1).verdicts
    assert (v.cls, v.members, v.end.kind) == (VerdictClass.CHAIN_END, (1, 3, 4), never.kind)


def test_of_an_event_loops_idle_alternatives_the_peer_at_work_speaks_for_it() -> None:
    """nginx proxying: the worker's epoll watches its master's channel (the master waits for
    signals) and the upstream's connection (the upstream sleeps, working on the answer)."""
    waits = [wait((1, 1), edge((1, 1), 2, EdgeKind.TCP)),
             wait((2, 2), edge((2, 2), 3, EdgeKind.UNIX), edge((2, 2), 4, EdgeKind.TCP), syscall="epoll_wait",
                  live=(End(EndKind.IDLE, "waits for a client", Reason.ACCEPT),)),
             wait((3, 3), end=End(EndKind.SIGNAL, "sigsuspend", Reason.SIGNAL_WAIT), syscall="rt_sigsuspend"),
             wait((4, 4), end=SLEEP, syscall="clock_nanosleep")]
    (v,) = run(waits, 1).verdicts
    assert (v.members, v.end.kind) == ((1, 2, 4), EndKind.SLEEPING)


def test_inside_a_process_a_sleeping_thread_speaks_for_it_over_a_signal_wait() -> None:
    """fusepy: the handler sleeps while the main thread waits for signals: the handler's
    sleep says what the daemon does."""
    waits = [wait((1, 1), edge((1, 1), 2, EdgeKind.FUSE)),
             wait((2, 2), end=End(EndKind.SIGNAL, "sigwait", Reason.SIGNAL_WAIT), syscall="rt_sigtimedwait"),
             wait((2, 3), end=SLEEP, syscall="clock_nanosleep")]
    (v,) = run(waits, 1).verdicts
    assert (v.members, v.end.kind, v.end.tid) == ((1, 2), EndKind.SLEEPING, 3)


def test_flock_abba_through_shells_names_a_kill_that_breaks_it() -> None:
    """`flock A -c 'flock B ...'` against `flock B -c 'flock A ...'`: each outer flock's shell
    child inherited the lock, so killing an outer flock releases nothing (found on real
    software); the kill named must be one whose exit ends the deadlock."""
    waits = [wait((1, 1), edge((1, 1), 2, EdgeKind.CHILD), syscall="wait4"),
             wait((2, 2), edge((2, 2), 3, EdgeKind.CHILD), syscall="wait4"),
             wait((3, 3), edge((3, 3), 4, EdgeKind.FLOCK), edge((3, 3), 5, EdgeKind.FLOCK), syscall="flock"),
             wait((4, 4), edge((4, 4), 5, EdgeKind.CHILD), syscall="wait4"),
             wait((5, 5), edge((5, 5), 6, EdgeKind.CHILD), syscall="wait4"),
             wait((6, 6), edge((6, 6), 1, EdgeKind.FLOCK), edge((6, 6), 2, EdgeKind.FLOCK), syscall="flock")]
    (v,) = deadlocks(run(waits, 1))
    assert v.members == (1, 2, 3, 4, 5, 6)
    assert v.culprit not in (None, 1, 4)  # an outer flock's exit leaves its shell holding the lock


def test_a_lock_goes_with_its_last_holder_when_choosing_the_kill() -> None:
    """The same ABBA where each inner flock inherited the outer lock too (the shell runs it
    as a child): only an inner flock's exit ends it (QA round 2, checked by doing it)."""
    waits = [wait((1, 1), edge((1, 1), 2, EdgeKind.CHILD), syscall="wait4"),
             wait((2, 2), edge((2, 2), 3, EdgeKind.CHILD), syscall="wait4"),
             wait((3, 3), *(edge((3, 3), h, EdgeKind.FLOCK) for h in (4, 5, 6)), syscall="flock"),
             wait((4, 4), edge((4, 4), 5, EdgeKind.CHILD), syscall="wait4"),
             wait((5, 5), edge((5, 5), 6, EdgeKind.CHILD), syscall="wait4"),
             wait((6, 6), *(edge((6, 6), h, EdgeKind.FLOCK) for h in (1, 2, 3)), syscall="flock")]
    (v,) = deadlocks(run(waits, 1))
    assert v.culprit in (3, 6)


def test_a_process_shared_mutex_owner_is_not_the_kill() -> None:
    """A owns a process-shared mutex B waits for, and A waits for B's pipe: A's exit leaves
    the mutex locked for good; B's exit gives A its EOF."""
    a, b = 10, 20
    waits = [wait((a, a), edge((a, a), b), syscall="read"),
             wait((b, b), edge((b, b), a, EdgeKind.MUTEX, to_tid=a), syscall="futex")]
    (v,) = deadlocks(run(waits, a))
    assert v.culprit == b


def test_no_single_kill_when_every_pipe_has_two_writers() -> None:
    waits = [wait((1, 1), edge((1, 1), 2), edge((1, 1), 3)), wait((2, 2), edge((2, 2), 1), edge((2, 2), 3)),
             wait((3, 3), edge((3, 3), 1), edge((3, 3), 2))]
    (v,) = deadlocks(run(waits, 1))
    assert v.culprit is None


def test_a_child_reading_its_parents_pipe_says_close_before_wait() -> None:
    """Popen(["cat"], stdin=PIPE).wait(): the child reads a pipe its parent still holds."""
    p, c = 10, 11
    waits = [wait((p, p), edge((p, p), c, EdgeKind.CHILD), syscall="wait4"),
             wait((c, c), edge((c, c), p), syscall="read")]
    (v,) = deadlocks(run(waits, c))
    assert v.advice == Advice.CLOSE_BEFORE_WAIT and v.culprit == c


def test_write_lock_behind_two_readers_needs_both() -> None:
    """An ALL wait stays stuck while one of the holders it needs is stuck."""
    w, r1, r2 = 60, 61, 62
    waits = [wait((w, w), edge((w, w), r1, EdgeKind.FLOCK), edge((w, w), r2, EdgeKind.FLOCK),
                  syscall="flock", mode=Mode.ALL),
             wait((r1, r1), end=SLEEP), wait((r2, r2), edge((r2, r2), w))]
    (v,) = deadlocks(run(waits, w))
    assert v.members == (w, r2) and v.cause == (w, w)


def test_a_chain_ending_at_a_sleeping_lock_holder_says_release_it() -> None:
    waits = [wait((1, 1), edge((1, 1), 2, EdgeKind.FLOCK), syscall="flock"), wait((2, 2), end=SLEEP)]
    (v,) = run(waits, 1).verdicts
    assert v.cls == VerdictClass.CHAIN_END and v.advice == Advice.RELEASE_HOLDER and v.culprit == 2


def test_a_chain_ending_at_a_sleeping_writer_is_not_told_to_kill_it() -> None:
    """A writer that sleeps may write when it wakes (a pool worker in a long task): only a
    lock held while sleeping is worth a "kill it" (multiprocessing.Pool, found on real software)."""
    waits = [wait((1, 1), edge((1, 1), 2)), wait((2, 2), end=SLEEP)]
    (v,) = run(waits, 1).verdicts
    assert v.advice == Advice.SLEEPING


def test_a_chain_ending_at_a_sleeping_reader_is_no_holder() -> None:
    waits = [wait((1, 1), edge((1, 1), 2, writing=True), syscall="write"), wait((2, 2), end=SLEEP)]
    (v,) = run(waits, 1).verdicts
    assert v.advice == Advice.SLEEPING


def test_a_terminal_whose_holder_only_waits_for_clients_is_input_not_an_idle_server() -> None:
    """bash in screen: its pty's holder waits for clients on its socket; the request did not
    "never reach the server": nobody types (found on real software)."""
    accept = End(EndKind.IDLE, "waits for a client", Reason.ACCEPT)
    waits = [wait((1, 1), edge((1, 1), 2, EdgeKind.PTY)), wait((2, 2), end=accept, syscall="select")]
    (v,) = run(waits, 1).verdicts
    assert v.advice == Advice.PTY_INPUT and v.cause == (1, 1) and v.culprit == 2


def test_an_idle_server_waiting_on_its_own_threads_is_no_cycle() -> None:
    """redis: the event loop watches its listener and a pipe its own threads write: an idle
    server, not "a cycle that may resolve: run again in a minute" (found on real software)."""
    accept = End(EndKind.IDLE, "fd 5: a listening socket, waits for a client", Reason.ACCEPT)
    timeout = End(EndKind.SLEEPING, "its timeout (100 ms at most)", Reason.TIMEOUT, timeout=0.1)
    waits = [wait((7, 7), edge((7, 7), 7), syscall="epoll_wait", live=(timeout, accept)),
             wait((7, 8), end=SLEEP, syscall="clock_nanosleep")]
    diag = run(waits, 7)
    assert diag.cycles == [] and [c.end.kind for c in diag.chains] == [EndKind.IDLE]
    (v,) = diag.verdicts
    assert v.cls == VerdictClass.CHAIN_END and v.advice == Advice.IDLE_SERVER


def test_an_or_wait_with_a_live_alternative_is_never_stuck() -> None:
    live = (End(EndKind.SIGNAL, "SIGTERM from outside", Reason.SIGNAL_FROM_OUTSIDE),)
    diag = run([wait((7, 7), edge((7, 7), 7), syscall="epoll_wait", live=live)], 7)
    assert not diag.deadlocked


# --- --all ----------------------------------------------------------------------------------


def test_all_gives_one_verdict_per_deadlock() -> None:
    waits: List[Wait] = []
    for base in (1000, 2000, 3000):
        a, b = base, base + 1
        waits += [wait((a, a), edge((a, a), b)), wait((b, b), edge((b, b), a))]
    waits += demo()
    diag = run_all(waits)
    assert sorted(v.members for v in deadlocks(diag)) == [(S, D), (1000, 1001), (2000, 2001), (3000, 3001)]


def test_a_long_chain_into_a_deadlock_is_not_cut_short() -> None:
    n = 3000
    waits = [wait((p, p), edge((p, p), p + 1)) for p in range(1, n)]
    waits += [wait((n, n), edge((n, n), n + 1)), wait((n + 1, n + 1), edge((n + 1, n + 1), n))]
    diag = run(waits, 1)
    (v,) = deadlocks(diag)
    assert v.members == (n, n + 1)
    assert len(diag.chains) == 1 and diag.chains[0].path[-1] == n + 1


def test_a_chain_past_the_depth_limit_is_cut_and_its_deadlock_still_found() -> None:
    n = MAX_DEPTH + 10
    waits = [wait((p, p), edge((p, p), p + 1)) for p in range(1, n)]
    waits += [wait((n, n), edge((n, n), n + 1)), wait((n + 1, n + 1), edge((n + 1, n + 1), n))]
    diag = run(waits, 1)
    (chain,) = diag.chains
    assert len(chain.path) == MAX_DEPTH and chain.end.reason == Reason.CUT
    (v,) = deadlocks(diag)
    assert v.members == (n, n + 1)


# --- the root cause does not depend on the start ----------------------------------------------

KINDS = [EdgeKind.PIPE, EdgeKind.UNIX, EdgeKind.TCP, EdgeKind.CHILD, EdgeKind.MUTEX, EdgeKind.FLOCK]


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 6), st.lists(st.tuples(st.sampled_from(KINDS), st.booleans()), min_size=6, max_size=6),
       st.integers(0, 1 << 30), st.integers(0, 3))
def test_root_cause_does_not_depend_on_the_start(size: int, kinds, seed: int, extra: int) -> None:
    rng = random.Random(seed)
    pids = rng.sample(range(2, 500), size + extra)
    ring, outside = pids[:size], pids[size:]
    waits = []
    for i, pid in enumerate(ring):
        kind, writing = kinds[i]
        nxt = ring[(i + 1) % size]
        extra_edges = [edge((pid, pid), ring[rng.randrange(size)], kind)] if rng.random() < 0.3 else []
        waits.append(wait((pid, pid), edge((pid, pid), nxt, kind, writing=writing), *extra_edges))
    for pid in outside:  # processes stuck behind the ring
        waits.append(wait((pid, pid), edge((pid, pid), rng.choice(ring))))
    causes: Set[Key] = set()
    for start in pids:
        found = deadlocks(run(waits, start))
        assert len(found) == 1 and set(found[0].members) == set(ring)
        causes.add(found[0].cause)
    assert len(causes) == 1
