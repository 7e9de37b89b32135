"""The facade: a snapshot and start processes in, a Diagnosis out (the graph explored,
its cycles, chains and verdicts). The CLI, the demo and the tests call this."""

from __future__ import annotations

import os

from . import verdict as verdicts
from .graph import Explored, blocked_writers, cycle_index, find_cycles, sources
from .graph.chains import Walker
from .model import Chain, Cycle, CycleShape, Diagnosis, RootCause, Verdict, VerdictClass
from .records import replace
from .snapshot import Snapshot
from .waits import wait_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterable, List, Optional, Tuple

    from .graph.explore import Rules

__all__ = ["diagnose", "diagnose_all", "explore_all", "diagnose_explored", "Walks"]


def diagnose(snap: Snapshot, starts: List[int], rules: Rules = wait_of) -> Diagnosis:
    """The chains from `starts` and the verdict on them (`rules`: the wait rules, replaceable
    by tests that build waits in code)."""
    ex = Explored(snap, rules).explore(starts)
    return _diagnosis(ex, starts, find_cycles(ex))


def diagnose_all(snap: Snapshot, rules: Rules = wait_of) -> Diagnosis:
    """Every chain on the machine that ends in a deadlock or passes a blocked write (not
    waitchain's own process: it is busy looking)."""
    ex, cycles = explore_all(snap, rules)
    trouble = {p for c in cycles if c.deadlock for p in c.members or c.pids} | blocked_writers(ex)
    return _diagnosis(ex, sources(ex, trouble, cycles), cycles)


def explore_all(snap: Snapshot, rules: Rules = wait_of,
                pids: Optional[Iterable[int]] = None) -> Tuple[Explored, List[Cycle]]:
    """The graph explored from every process (or from `pids`), not waitchain's own, and its
    cycles: what incidents.py picks the machine's incidents from."""
    starts = snap.processes if pids is None else pids
    ex = Explored(snap, rules).explore(sorted(p for p in starts if p != os.getpid()))
    return ex, find_cycles(ex)


class Walks:
    """Each start's chains, and the verdict on where they end, worked out once for one
    explored graph and its cycles: `incidents.scan` diagnoses twice (every head, then the
    heads that lead into an incident), and the walks and end verdicts were ~40% of its time
    at +1,000 processes. One Walker for all starts: a hub's branches are worked out once."""

    def __init__(self, ex: Explored, cycles: List[Cycle]) -> None:
        self.ex = ex
        self.cycles = cycles
        self.index = cycle_index(cycles)
        self.walker = Walker(ex, self.index)
        self._chains: Dict[int, List[Chain]] = {}
        self._ends: Dict[int, Tuple[Tuple[Chain, ...], Optional[Verdict]]] = {}

    def chains(self, start: int) -> List[Chain]:
        found = self._chains.get(start)
        if found is None:
            found = self._chains[start] = self.walker.walk(start)
        return found

    def end(self, start: int, chains: List[Chain]) -> Optional[Verdict]:
        """chain_verdict of these chains of start's (all of them, or those not into a
        deadlock: the same list again is the same verdict)."""
        key = tuple(chains)
        known = self._ends.get(start)
        if known is not None and known[0] == key:
            return known[1]
        found = verdicts.chain_verdict(self.ex, chains, self.index)
        self._ends[start] = (key, found)
        return found


def diagnose_explored(ex: Explored, starts: List[int], cycles: List[Cycle],
                      select: Optional[Callable[[List[Verdict]], List[Verdict]]] = None,
                      walks: Optional[Walks] = None) -> Diagnosis:
    """The diagnosis of `starts` in a graph already explored; `select` keeps and orders the
    verdicts (worst first) before the root cause is taken from the first. `walks`: those
    of an earlier diagnosis of the same graph and cycles, to reuse."""
    return _diagnosis(ex, starts, cycles, select, walks)


def _diagnosis(ex: Explored, starts: List[int], cycles: List[Cycle],
               select: Optional[Callable[[List[Verdict]], List[Verdict]]] = None,
               walks: Optional[Walks] = None) -> Diagnosis:
    if walks is None or walks.ex is not ex or walks.cycles is not cycles:
        walks = Walks(ex, cycles)
    per_start = {s: walks.chains(s) for s in starts}
    chains = [c for s in starts for c in per_start[s]]
    found = _verdicts(ex, per_start, walks)
    cycles = _withdraw(cycles, found)
    if select is not None:
        found = select(found)
    shown = list(dict.fromkeys([p for c in chains for p in c.path] + _named(found)))
    members = set(shown)
    snap = ex.snap
    return Diagnosis(
        starts=starts,
        processes={p: snap.processes[p] for p in shown if p in snap.processes},
        tasks={p: snap.tasks(p) for p in shown},
        cmdlines=_cmdlines(snap, shown),
        waits={k: w for k, w in ex.waits.items() if k[0] in members},
        edges=[e for p in shown for w in ex.thread_waits(p) for e in w.edges],
        chains=chains,
        cycles=[c for c in cycles if set(c.members or c.pids) & members],
        root_cause=_root_cause(ex, found),
        notes=list(snap.notes),
        verdicts=found,
        ns_tids={p: m for p in shown for m in [snap.ns_thread_ids(p)] if m},
        places=_places(snap, shown),
    )


def _cmdlines(snap: Snapshot, shown: List[int]) -> dict:
    """The command line of each process shown, read in one batch (one deadline hand-off);
    a snapshot made in code (tests) may have only cmdline()."""
    pids = [p for p in shown if p in snap.processes]
    batch = getattr(snap, "cmdlines", None)
    return batch(pids) if batch is not None else {p: snap.cmdline(p) for p in pids}


def _places(snap: Snapshot, shown: List[int]) -> dict:
    """Where each process shown runs (host, pid in its namespace, container); a snapshot
    made in code (tests) may not say."""
    place = getattr(snap, "place", None)
    return {p: place(p) for p in shown if p in snap.processes} if place is not None else {}


def _withdraw(cycles: List[Cycle], found: List[Verdict]) -> List[Cycle]:
    """A knot whose second look saw a thread move is no deadlock cycle either."""
    moved = {k for v in found for k in v.threads if v.moved}
    return [replace(c, deadlock=False, shape=CycleShape.OPEN)
            if c.deadlock and set(c.threads) & moved else c for c in cycles]


def _named(found: List[Verdict]) -> List[int]:
    """The processes the verdicts name (a knot past where the chains were cut, say)."""
    pids: List[int] = []
    for v in found:
        pids += list(v.members if v.cls == VerdictClass.DEADLOCK else ())
        pids += [p for e in v.ring for p in (e.from_pid, e.to_pid)]
        pids += [p for p in (v.cause[0] if v.cause else None, v.culprit) if p is not None]
    return pids


def _verdicts(ex: Explored, per_start: Dict[int, List[Chain]], walks: Walks) -> List[Verdict]:
    """A deadlock verdict per knot explored (every knot the starts reach; with --all, every
    knot on the machine), confirmed by a second look; then, for each start no deadlock
    explains, where its chain ends."""
    found = [verdicts.confirm(ex.snap, v) for v in verdicts.deadlocks(ex, ex.graph.knots())]
    explained = verdicts.covered(found)
    for start, chains in per_start.items():
        if start not in explained:
            ends = walks.end(start, _unexplained(chains, explained))
            if ends is not None:
                found.append(ends)
    return verdicts.rank(_unique(found))


def _unexplained(chains: List[Chain], explained: frozenset) -> List[Chain]:
    """The chains that do not run into a deadlock already reported."""
    return [c for c in chains if not set(c.path) & explained] or chains


def _unique(found: List[Verdict]) -> List[Verdict]:
    """Each incident once: two starts whose chains end at the same place give one verdict."""
    seen, out = set(), []
    for v in found:
        key = (v.cls, v.members if v.cls == VerdictClass.DEADLOCK else (v.cause, v.advice))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _root_cause(ex: Explored, found: List[Verdict]) -> Optional[RootCause]:
    """The first verdict's cause (kept in waitchain/1 as `root_cause`)."""
    if not found or found[0].cause is None:
        return None
    pid, tid = found[0].cause
    wait = ex.waits.get((pid, tid))
    return RootCause(pid, tid, wait.syscall if wait else "", "")


def measure_blocked(diag: Diagnosis, snap: Snapshot) -> None:
    """How long each thread on the chains has not run (from /proc/PID/task/TID/sched)."""
    for pid, tasks in diag.tasks.items():
        for task in tasks:
            idle = snap.idle_seconds(pid, task.tid)
            if idle is not None:
                diag.blocked_for[(pid, task.tid)] = idle
