"""The wait-for graph of a snapshot: explore from the start processes (explore.py), decide
who is stuck and where the knots are (waitfor.py, pure), list the cycles and walk the chains
(chains.py). The verdicts are the verdict layer's (verdict.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, FrozenSet, List, Set

from ..model import Cycle, EndKind, Wait
from .chains import MAX_DEPTH, end_of, end_rank, walk_chains
from .explore import Explored
from .waitfor import Key, Knot

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
        ring = tuple(graph.process_ring(component, component[0]))
        if all(graph.process_stuck(p, stuck) for p in component):  # stuck behind a knot elsewhere
            threads = tuple(sorted(k for k in stuck if k[0] in set(component)))
            cycles.append(Cycle(ring, True, "stuck behind another deadlock", threads, tuple(component)))
        else:
            cycles.append(Cycle(ring, False, _why_free(ex, component, stuck), (), tuple(component)))
    return cycles


def _knot_cycle(ex: Explored, knot: Knot) -> Cycle:
    ring = ex.graph.thread_ring(knot, knot.threads[0])
    pids = tuple(p for i, (p, _) in enumerate(ring) if i == 0 or ring[i - 1][0] != p)
    if len(pids) > 1 and pids[0] == pids[-1]:
        pids = pids[:-1]
    if len(knot.pids) > len(set(pids)):
        detail = f"a knot: every alternative of {', '.join(map(str, knot.pids))} leads back into the set"
    else:
        detail = "every member waits for the next"
    return Cycle(pids, True, detail, knot.threads, knot.pids)


def _why_free(ex: Explored, component: List[int], stuck: FrozenSet[Key]) -> str:
    """Which member can still make progress, and how."""
    for pid in component:
        waits = ex.thread_waits(pid)
        busy = next((w for w in waits if w.end is not None and w.end.kind == EndKind.RUNNING), None)
        if busy is not None:
            return f"{pid} can still make progress (thread {busy.tid} is running)"
        free = next((w for w in waits if (w.pid, w.tid) not in stuck), None)
        if free is None:
            continue
        return f"{pid} can still make progress ({_how_free(ex, free, stuck)})"
    return "a member can still make progress"


def _how_free(ex: Explored, wait: Wait, stuck: FrozenSet[Key]) -> str:
    call = wait.syscall or "its call"
    if wait.live:
        return f"its {call}() also waits for {wait.live[0].detail}"
    if not wait.edges:
        return f"thread {wait.tid} is not blocked on another process"
    for edge in wait.edges:
        if edge.to_tid is not None and (edge.to_pid, edge.to_tid) not in stuck:
            return f"its {call}() may be ended by thread {edge.to_tid}, which is not blocked"
        if edge.to_tid is None and not ex.graph.process_stuck(edge.to_pid, stuck):
            who = "another of its threads" if edge.to_pid == wait.pid else str(edge.to_pid)
            return f"its {call}() may be ended by {who}, which is not blocked"
    return "one of the calls it waits in has an alternative that is not blocked"


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


