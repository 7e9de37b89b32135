"""The wait-for graph of a snapshot: explore from the start processes (explore.py), decide
who is stuck and where the knots are (waitfor.py, pure), list the cycles and walk the chains
(chains.py). The verdicts are the verdict layer's (verdict.py)."""

from __future__ import annotations

from collections import defaultdict

from ..model import Cycle, CycleShape
from .chains import MAX_DEPTH, end_of, end_rank, walk_chains
from .explore import Explored
from .waitfor import Knot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, FrozenSet, List, Optional, Set, Tuple

    from .waitfor import Key, Target

__all__ = ["Explored", "find_cycles", "walk_chains", "end_of", "end_rank", "sources", "MAX_DEPTH",
           "blocked_writers", "cycle_index"]

def find_cycles(ex: Explored) -> List[Cycle]:
    """One deadlocked cycle per knot, then the process-level cycles that are no knot (a
    member can still go on: not a deadlock)."""
    graph = ex.graph
    stuck = graph.stuck()
    cycles = [_knot_cycle(ex, knot) for knot in graph.knots()]
    in_knots = {p for c in cycles for p in c.members}
    for component in graph.cycles():
        if set(component) & in_knots:
            continue
        if len(component) == 1 and not graph.process_stuck(component[0], stuck):
            continue  # a process waiting on its own threads, one of which can act: no cycle
        ring = tuple(graph.process_ring(component, component[0]))
        if all(graph.process_stuck(p, stuck) for p in component):  # stuck behind a knot elsewhere
            threads = tuple(sorted({(p, t) for p in component for t in graph.threads.get(p, ())}))
            cycles.append(Cycle(ring, True, CycleShape.BEHIND, threads, tuple(component)))
        else:
            free, via = _free(ex, component, stuck)
            cycles.append(Cycle(ring, False, CycleShape.OPEN, (), tuple(component), free, via))
    return cycles


def _knot_cycle(ex: Explored, knot: Knot) -> Cycle:
    ring = ex.graph.thread_ring(knot, knot.threads[0])
    pids = tuple(p for i, (p, _) in enumerate(ring) if i == 0 or ring[i - 1][0] != p)
    if len(pids) > 1 and pids[0] == pids[-1]:
        pids = pids[:-1]
    shape = CycleShape.KNOT if len(knot.pids) > len(set(pids)) else CycleShape.RING
    return Cycle(pids, True, shape, knot.threads, knot.pids)


def _free(ex: Explored, component: List[int], stuck: FrozenSet[Key]) -> Tuple[Optional[Key], Optional[Target]]:
    """A member's thread that can still make progress, and the target through which (None:
    it is running, has a live alternative, or waits for no process)."""
    for pid in component:
        for wait in ex.thread_waits(pid):
            if (wait.pid, wait.tid) in stuck:
                continue
            via = next((t for t in ((e.to_pid, e.to_tid) for e in wait.edges) if _acts(ex, t, stuck)), None)
            return (wait.pid, wait.tid), via
    return None, None


def _acts(ex: Explored, target: Target, stuck: FrozenSet[Key]) -> bool:
    pid, tid = target
    return (pid, tid) not in stuck if tid is not None else not ex.graph.process_stuck(pid, stuck)


def cycle_index(cycles: List[Cycle]) -> Dict[int, Cycle]:
    """Each process's cycle, deadlocked ones first."""
    index: Dict[int, Cycle] = {}
    for cycle in sorted(cycles, key=lambda c: not c.deadlock):
        for pid in cycle.members or cycle.pids:
            index.setdefault(pid, cycle)
    return index


def blocked_writers(ex: Explored) -> Set[int]:
    """Processes with a thread blocked writing to another process (a full pipe or socket)."""
    return {w.pid for w in ex.waits.values() if any(e.writing and e.to_pid != w.pid for e in w.edges)}


def sources(ex: Explored, trouble: Set[int], cycles: List[Cycle]) -> List[int]:
    """Processes from which trouble is reachable and that nobody in that set waits for,
    then one member of each deadlocked cycle that no such process reaches."""
    incoming: Dict[int, Set[int]] = defaultdict(set)
    for pid in ex.order:
        for nxt in ex.successors(pid):
            incoming[nxt].add(pid)
    reach = _reach(lambda p: incoming[p], trouble)
    found = sorted(p for p in reach if not incoming[p] & reach)
    covered = _reach(ex.successors, set(found))
    return found + sorted(min(c.pids) for c in cycles if c.deadlock and not set(c.pids) & covered)


def _reach(step, starts: Set[int]) -> Set[int]:
    seen, todo = set(starts), list(starts)
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


