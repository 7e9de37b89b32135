"""The linear-time graph work gives the same answers as the plain algorithms it replaced
(issue 14), on random graphs built in code: the chain walk, kill_to_break, the cycles
stuck behind a knot, the incidents' folding, and the per-pid indexes of Explored. The
plain versions are kept here as the reference. WAITCHAIN_GRAPH_CASES=3000 runs more graphs.

Also: a chain of 3,000 processes ends where it really ends, and a ring of 3,000 is one
deadlock with a culprit."""

from __future__ import annotations

import os
import random
import re
from typing import List, Optional, Tuple

import pytest
from graph_fakes import WaitsSnapshot

from waitchain import incidents, verdict
from waitchain.engine import diagnose, diagnose_all
from waitchain.graph import chains as chains_mod
from waitchain.graph import cycle_index, find_cycles
from waitchain.graph.explore import Explored
from waitchain.incidents import Incident, _fold
from waitchain.model import (Advice, Alternative, Chain, ChainEnd, CycleShape, Edge, EdgeKind, End, EndKind, Mode,
                             Pty, PtySide, Reason, Verdict, VerdictClass, Wait)
from waitchain.verdict import _Breaker, _knot_without, kill_to_break

Key = Tuple[int, int]
CASES = int(os.environ.get("WAITCHAIN_GRAPH_CASES", "300"))
KINDS = [EdgeKind.PIPE, EdgeKind.PIPE, EdgeKind.UNIX, EdgeKind.TCP, EdgeKind.CHILD, EdgeKind.FLOCK,
         EdgeKind.POSIX_LOCK, EdgeKind.SIGCHLD, EdgeKind.FIFO, EdgeKind.JOIN]
ENDS = [End(EndKind.SLEEPING, "s", Reason.SLEEP), End(EndKind.RUNNING, "r"), End(EndKind.IDLE, "i", Reason.ACCEPT),
        End(EndKind.SIGNAL, "sig"), End(EndKind.IDLE, "f", Reason.FIFO_OPEN), End(EndKind.TERMINAL, "t"),
        End(EndKind.SLEEPING, "to", Reason.TIMEOUT)]


def snap_of(waits: List[Wait]) -> WaitsSnapshot:
    return WaitsSnapshot(waits, idle=lambda pid, tid: float((pid * 7 + tid) % 30))


def random_waits(rng: random.Random, n: int) -> List[Wait]:
    """n processes of one to three threads: pipes, sockets, children, file locks (AND waits
    on every holder), mutexes on a thread, terminals both ways, OR waits with a live
    alternative, private futexes on the process's own threads, ends of every kind, exited
    threads; edges mostly to the next few pids (chains, rings), some anywhere."""
    pids = list(range(1, n + 1))
    tids = {p: [p] + [p * 100 + i for i in range(1, 3) if rng.random() < 0.25] for p in pids}
    far = rng.choice([0.05, 0.3, 1.0])
    out = []
    for p in pids:
        for t in tids[p]:
            r = rng.random()
            if r < 0.12:
                out.append(Wait(p, t, "x", end=rng.choice(ENDS), syscall="nanosleep"))
                continue
            if r < 0.14:
                out.append(Wait(p, t, "x", end=End(EndKind.UNKNOWN, "gone", Reason.THREAD_EXITED)))
                continue
            if r < 0.18:
                out.append(Wait(p, t, "futex()", (Edge(p, t, p, None, EdgeKind.FUTEX, "f", "e"),), syscall="futex"))
                continue
            edges = []
            for _ in range(1 + (rng.random() < 0.35) + (rng.random() < 0.15)):
                to = rng.choice(pids) if rng.random() < far else min(n, p + rng.randint(1, 3))
                x = rng.random()
                if x < 0.12:
                    edges.append(Edge(p, t, to, rng.choice(tids[to]), EdgeKind.MUTEX, "m", "e"))
                elif x < 0.2:
                    side = rng.choice([PtySide.SLAVE, PtySide.MASTER])
                    edges.append(Edge(p, t, to, None, EdgeKind.PTY, "pty", "e", pty=Pty(side, 1)))
                else:
                    alt = Alternative(2, "POLLIN", "pipe:[1]") if rng.random() < 0.2 else None
                    edges.append(Edge(p, t, to, None, rng.choice(KINDS), "o", "e", writing=rng.random() < 0.2,
                                      alternative=alt))
            live = (rng.choice(ENDS),) if rng.random() < 0.12 else ()
            any_of = len(edges) + len(live) if (live or rng.random() < 0.2) else 0
            mode = Mode.ALL if rng.random() < 0.1 else Mode.ANY
            out.append(Wait(p, t, "x", tuple(edges), any_of=any_of, live=live, syscall="read", mode=mode))
    return out


def knotty_waits(rng: random.Random, n: int) -> List[Wait]:
    """Every thread waits, for one to three of the n processes (or a thread of one): pipes,
    file locks (AND waits), mutexes, AND waits; big knots, some with parts that stay stuck."""
    tids = {p: [p] + [p * 100 + 1] * (rng.random() < 0.3) for p in range(1, n + 1)}
    out = []
    for p, mine in tids.items():
        for t in mine:
            edges = []
            for _ in range(rng.randint(1, 3)):
                to = rng.randint(1, n) if rng.random() < 0.3 else p % n + 1
                kind = rng.choice([EdgeKind.PIPE, EdgeKind.PIPE, EdgeKind.FLOCK, EdgeKind.MUTEX])
                to_tid = rng.choice(tids[to]) if kind == EdgeKind.MUTEX and rng.random() < 0.5 else None
                edges.append(Edge(p, t, to, to_tid, EdgeKind.MUTEX if to_tid else kind if kind != EdgeKind.MUTEX
                                  else EdgeKind.PIPE, "o", "e"))
            out.append(Wait(p, t, "x", tuple(edges), syscall="read", mode=Mode.ALL if rng.random() < 0.3 else Mode.ANY))
    return out


def explored(waits: List[Wait]) -> Explored:
    snap = snap_of(waits)
    return Explored(snap, snap.rules).explore(sorted(snap.threads))  # type: ignore[arg-type]


def graphs(count: int = CASES):
    for seed in range(count):
        rng = random.Random(seed)
        yield seed, rng, random_waits(rng, rng.randint(2, 18))


# --- the plain algorithms, as they were -----------------------------------------------------


def plain_walk(ex: Explored, start: int, cycle_of: dict) -> List[Chain]:
    found: List[Chain] = []
    todo: List[Tuple[int, Tuple[int, ...]]] = [(start, (start,))]
    while todo and len(found) < chains_mod.MAX_CHAINS:
        pid, path = todo.pop()
        nexts = chains_mod._branches(ex, pid, cycle_of, path[-2] if len(path) > 1 else None)
        if not nexts:
            found.append(Chain(start, path, chains_mod._chain_end(ex, pid)))
            continue
        if len(path) >= chains_mod.MAX_DEPTH:
            found.append(Chain(start, path, ChainEnd(EndKind.UNKNOWN, "", pid, reason=Reason.CUT)))
            continue
        for nxt in reversed(nexts):
            if nxt in path:
                found.append(Chain(start, path, ChainEnd(EndKind.CYCLE, "", nxt)))
            else:
                todo.append((nxt, path + (nxt,)))
    return found


def plain_breaks(ex: Explored, knot, gone: int) -> bool:
    left = _knot_without(ex, knot, gone)
    return left is not None and not left


def plain_fold(found: List[Incident]) -> List[Incident]:
    kept: List[Incident] = []
    for inc in found:
        path = inc.verdict.members
        if any(inc.key == k.key or (len(path) < len(k.verdict.members)
                                    and k.verdict.members[len(k.verdict.members) - len(path):] == path) for k in kept):
            continue
        kept.append(inc)
    return kept


# --- the same answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [(64, 4096), (3, 5)])
def test_the_walk_gives_the_plain_walks_chains(monkeypatch, limits) -> None:
    monkeypatch.setattr(chains_mod, "MAX_CHAINS", limits[0])
    monkeypatch.setattr(chains_mod, "MAX_DEPTH", limits[1])
    walked = 0
    for seed, _, waits in graphs(CASES // 3):
        ex = explored(waits)
        index = cycle_index(find_cycles(ex))
        walker = chains_mod.Walker(ex, index)
        for start in ex.order:
            got = walker.walk(start)
            assert got == plain_walk(ex, start, index), seed
            walked += len(got)
    assert walked > CASES  # the graphs make chains worth comparing


@pytest.mark.parametrize("witness_work", [verdict.WITNESS_WORK, 1])
def test_kill_to_break_answers_as_the_knot_worked_out_again(monkeypatch, witness_work) -> None:
    """Each candidate's answer, with parts that stay stuck kept after big failures only (as
    run) or after every failure (each kept part then answers many candidates)."""
    monkeypatch.setattr(verdict, "WITNESS_WORK", witness_work)
    knots = unbroken = 0
    for seed, rng, waits in graphs(CASES // 2):
        if seed % 2:
            waits = knotty_waits(rng, rng.randint(2, 40))
        ex = explored(waits)
        for knot in ex.graph.knots():
            knots += 1
            breaker = _Breaker(ex, knot)
            for gone in list(knot.pids) + [max(knot.pids) + 1000]:
                assert breaker.breaks(gone) == plain_breaks(ex, knot, gone), (seed, knot, gone)
            order = list(knot.pids)
            rng.shuffle(order)
            want = next((p for p in order if plain_breaks(ex, knot, p)), None)
            assert kill_to_break(ex, knot, order) == want, seed
            unbroken += want is None
    assert knots > CASES // 4 and unbroken > 0  # knots with and without a single process to kill


def test_cycles_behind_a_knot_list_every_stuck_thread_of_theirs_sorted() -> None:
    behind = 0
    for _, _, waits in graphs():
        ex = explored(waits)
        stuck = ex.graph.stuck()
        for cycle in find_cycles(ex):
            assert list(cycle.threads) == sorted(cycle.threads)  # verdict._sorted_has relies on it
            if cycle.shape == CycleShape.BEHIND:
                behind += 1
                assert cycle.threads == tuple(sorted(k for k in stuck if k[0] in set(cycle.members)))
    assert behind > 0


def test_the_per_pid_indexes_say_what_scanning_the_waits_says() -> None:
    for _, _, waits in graphs(CASES // 3):
        ex = explored(waits)
        for a in ex.order:
            slaves = {e.to_pid for w in ex.thread_waits(a) for e in w.edges
                      if e.kind == EdgeKind.PTY and e.pty is not None and e.pty.side == PtySide.SLAVE}
            assert ex.pty_masters(a) == slaves
            for b in ex.order:
                assert ex.edges_to(a, b) == [(w, e) for w in ex.thread_waits(a) for e in w.edges if e.to_pid == b]
            for w in ex.thread_waits(a):
                assert ex.writes_out(w.pid, w.tid) == any(e.writing and e.to_pid != a for e in w.edges)
                assert ex.waited_back(w.pid, w.tid) == all(
                    any(f.to_pid == a for v in ex.thread_waits(e.to_pid) for f in v.edges) for e in w.edges)


def test_incidents_fold_as_before() -> None:
    rng = random.Random(7)
    for _ in range(CASES):
        found = []
        for _ in range(rng.randint(0, 12)):
            members = tuple(rng.randint(1, 4) for _ in range(rng.randint(0, 4)))
            verdict = Verdict(VerdictClass.CHAIN_END, Advice.SLEEPING, members)
            found.append(Incident(verdict, incidents.Kind.BLOCKED, (), None, (rng.randint(0, 6),)))
        assert _fold(found) == plain_fold(found)


def test_whole_diagnoses_are_the_same_from_every_start_and_for_all() -> None:
    """A weaker, end-to-end look: the engine's chains are the plain walk's."""
    for _, rng, waits in graphs(CASES // 10):
        snap = snap_of(waits)
        start = rng.choice(sorted(snap.threads))
        diag = diagnose(snap, [start], rules=snap.rules)  # type: ignore[arg-type]
        ex = explored(waits)
        assert diag.chains == plain_walk(ex, start, cycle_index(find_cycles(ex)))
        diagnose_all(snap, rules=snap.rules)  # type: ignore[arg-type]
        incidents.scan(snap, min_blocked=0.0, rules=snap.rules)  # type: ignore[arg-type]


# --- long chains ------------------------------------------------------------------------------------


def test_a_chain_of_3000_processes_ends_where_it_ends() -> None:
    """Not cut, not 'exited during the scan': the last process, sleeping."""
    n = 3000
    waits = [Wait(p, p, "read()", (Edge(p, p, p + 1, None, EdgeKind.PIPE, "pipe", "e"),), syscall="read")
             for p in range(1, n)]
    waits.append(Wait(n, n, "clock_nanosleep()", end=End(EndKind.SLEEPING, "sleeps", Reason.SLEEP)))
    snap = snap_of(waits)
    diag = diagnose(snap, [1], rules=snap.rules)  # type: ignore[arg-type]
    [chain] = diag.chains
    assert chain.path == tuple(range(1, n + 1))
    assert (chain.end.kind, chain.end.reason, chain.end.pid) == (EndKind.SLEEPING, Reason.SLEEP, n)
    [verdict] = diag.verdicts
    assert verdict.cls == VerdictClass.CHAIN_END and verdict.members == tuple(range(1, n + 1))


def test_a_ring_of_3000_is_one_deadlock_that_one_exit_ends() -> None:
    n = 3000
    waits = [Wait(p, p, "read()", (Edge(p, p, p % n + 1, None, EdgeKind.PIPE, "pipe", "e"),), syscall="read")
             for p in range(1, n + 1)]
    snap = snap_of(waits)
    diag = diagnose_all(snap, rules=snap.rules)  # type: ignore[arg-type]
    [verdict] = diag.verdicts
    assert verdict.cls == VerdictClass.DEADLOCK and verdict.members == tuple(range(1, n + 1))
    assert verdict.cause == (1, 1) and verdict.culprit == 1 and len(verdict.ring) == n


def test_a_knot_no_single_exit_ends_has_no_culprit() -> None:
    """Each process has two threads, one waiting for the next process and one for the one
    after: whoever exits, the others still wait for each other."""
    m = 400
    waits = []
    for p in range(1, m + 1):
        waits.append(Wait(p, p, "read()", (Edge(p, p, p % m + 1, None, EdgeKind.PIPE, "pipe", "e"),), syscall="read"))
        t = p + 10000
        waits.append(Wait(p, t, "read()", (Edge(p, t, (p + 1) % m + 1, None, EdgeKind.PIPE, "pipe", "e"),),
                          syscall="read"))
    snap = snap_of(waits)
    [verdict] = diagnose_all(snap, rules=snap.rules).verdicts  # type: ignore[arg-type]
    assert verdict.cls == VerdictClass.DEADLOCK and len(verdict.members) == m and verdict.culprit is None


def locks_knot(m: int) -> List[Wait]:
    """A ring of m file-lock waits (each on the next's holder) that also waits on a knot of
    two: a (every holder: b and the ring's first) and b (a). No single exit ends it; each
    ring member's frees the ring before it."""
    a, b = m + 1, m + 2

    def lock(p: int, *to: int, mode: Mode = Mode.ANY) -> Wait:
        return Wait(p, p, "flock()", tuple(Edge(p, p, t, None, EdgeKind.FLOCK, "lock", "e") for t in to),
                    syscall="flock", mode=mode)

    return ([lock(p, p + 1) for p in range(1, m)] + [lock(m, 1, a), lock(a, b, 1, mode=Mode.ALL), lock(b, a)])


@pytest.mark.parametrize("m", [3, 40, 100])
def test_a_ring_waiting_on_a_lock_knot_has_no_culprit_and_each_answer_is_the_plain_one(m) -> None:
    ex = explored(locks_knot(m))
    [knot] = ex.graph.knots()
    breaker = _Breaker(ex, knot)
    for gone in knot.pids:
        assert breaker.breaks(gone) == plain_breaks(ex, knot, gone) is False
    assert breaker.witnesses_made == (1 if m > verdict.WITNESS_WORK else 0)
    assert kill_to_break(ex, knot, knot.pids) is None
    ring = [w for w in locks_knot(m) if w.pid != m + 2] + [Wait(m + 2, m + 2, "read()")]  # b no longer waits
    ex = explored(ring)
    [knot] = ex.graph.knots()
    assert kill_to_break(ex, knot, knot.pids) == plain_kill(ex, knot)


def plain_kill(ex: Explored, knot) -> Optional[int]:
    return next((p for p in knot.pids if plain_breaks(ex, knot, p)), None)


def test_the_text_of_a_chain_deeper_than_the_recursion_limit_is_written() -> None:
    """render/text.py walked the tree recursively: `waitchain PID` on a chain of 2,000
    real processes ended in 'internal error: RecursionError' (exit 70)."""
    from waitchain.render import renderer

    n = 1500
    waits = [Wait(p, p, "read()", (Edge(p, p, p + 1, None, EdgeKind.PIPE, "pipe", "e"),), syscall="read")
             for p in range(1, n)]
    waits.append(Wait(n, n, "clock_nanosleep()", end=End(EndKind.SLEEPING, "sleeps", Reason.SLEEP)))
    snap = snap_of(waits)
    text = renderer("text")(diagnose(snap, [1], rules=snap.rules))  # type: ignore[arg-type]
    rows = [line for line in text.splitlines() if line.strip()]
    assert rows[1].lstrip().startswith("1 ") and any(line.lstrip("└─ ").startswith(f"{n} ") for line in rows)


@pytest.mark.parametrize("seed", range(40))
def test_the_waits_of_a_pid_are_the_plain_scans(seed: int) -> None:
    """Diagnosis.waits_of (an index by pid: the text of `--all` at +1,000 processes scanned
    every wait once per row, 0.8 s) answers as the scan it replaced, in the same order, and
    again after the waits change."""
    rng = random.Random(seed)
    snap = snap_of(random_waits(rng, rng.randint(1, 60)))
    diag = diagnose_all(snap, rules=snap.rules)  # type: ignore[arg-type]
    pids = {p for p, _ in diag.waits} | {0, -1}

    def plain(pid: int) -> List[Wait]:
        return [w for (p, _), w in diag.waits.items() if p == pid]

    assert all(diag.waits_of(p) == plain(p) for p in pids)
    if diag.waits:
        (pid, tid), wait = next(iter(diag.waits.items()))
        del diag.waits[(pid, tid)]  # one fewer: made again
        assert diag.waits_of(pid) == plain(pid)
        diag.waits = {(pid, tid): wait, **diag.waits}  # another dict: made again
        assert all(diag.waits_of(p) == plain(p) for p in pids)
        diag.waits_of(pid).append(wait)  # a copy: the index is not changed through it
        assert diag.waits_of(pid) == plain(pid)


def test_a_chain_deeper_than_the_indented_levels_goes_on_in_one_column() -> None:
    """Past DEEPEST levels the one process under a last child is drawn at that child's
    column (a chain of 2,000 drew ~6,000 columns of indent on each line: quadratic); what
    branches there is indented again, and so is a lone process under a non-last child."""
    from waitchain.render import renderer
    from waitchain.render.text import DEEPEST, INDENT

    def pipe(p: int, to: int) -> Edge:
        return Edge(p, p, to, None, EdgeKind.PIPE, "pipe", "e")

    asleep = End(EndKind.SLEEPING, "sleeps", Reason.SLEEP)
    waits = [Wait(p, p, "read()", (pipe(p, p + 1),), syscall="read") for p in range(1, 30)]
    waits.append(Wait(30, 30, "flock()", (pipe(30, 31), pipe(30, 41)), syscall="flock"))
    waits += [Wait(p, p, "read()", (pipe(p, p + 1),), syscall="read") for p in range(31, 40)]
    waits += [Wait(p, p, "nanosleep()", end=asleep, syscall="nanosleep") for p in (40, 41)]
    snap = snap_of(waits)
    text = renderer("text")(diagnose(snap, [1], rules=snap.rules))  # type: ignore[arg-type]
    column = {int(m.group(2)): len(m.group(1)) for m in
              (re.match(r"^([ │├└─]*)(\d+) ", line) for line in text.split("\n\n")[0].splitlines()) if m}
    deep = INDENT * (DEEPEST + 1)  # the column of the first process drawn flat, and of all after it
    expected = {p: min(INDENT * (p - 1), deep) for p in range(1, 31)}
    expected.update({31: deep + INDENT, 41: deep + INDENT})
    expected.update({p: deep + 2 * INDENT for p in range(32, 41)})
    assert column == expected
