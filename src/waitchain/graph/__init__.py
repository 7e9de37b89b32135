"""The wait-for graph: explore from the start processes, find chains, cycles, the verdict."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import replace
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ..model import Chain, ChainEnd, Cycle, Diagnosis, Edge, End, RootCause, Wait
from ..names import program
from ..snapshot import Snapshot
from ..waits import wait_of
from ..waits.poll import live_end

MAX_CHAINS = 64  # per start process
MAX_DEPTH = 64
END_PRIORITY = ["running", "self", "disk", "kernel", "stopped", "terminal", "remote", "sleeping",
                "signal", "idle", "unknown"]
# A branch of an OR wait (poll, epoll) that ends at once in one of these is an idle alternative.
IDLE_ENDS = {"idle", "sleeping", "running", "signal"}
GONE = End("unknown", "the process exited during the scan")


class Graph:
    """Waits of every thread of every explored process, and edges between processes."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.waits: Dict[Tuple[int, int], Wait] = {}
        self.out: Dict[int, List[Edge]] = defaultdict(list)
        self.by_pid: Dict[int, List[Wait]] = defaultdict(list)
        self.explored: List[int] = []

    def explore(self, starts: Iterable[int]) -> None:
        queue = deque(starts)
        seen = set(self.explored)
        while queue:
            pid = queue.popleft()
            if pid in seen:
                continue
            seen.add(pid)
            self.explored.append(pid)
            queue.extend(self._examine(pid))

    def _examine(self, pid: int) -> List[int]:
        tasks = self.snap.tasks(pid)
        waits = [wait_of(self.snap, pid, task) for task in tasks]
        if waits and not self.snap.alive(pid):  # gone, or the pid reused: the reads may be another's
            waits = [Wait(pid, w.tid, w.what, end=GONE) for w in waits]
        for task, wait in zip(tasks, waits):
            self.waits[(pid, task.tid)] = wait
            self.by_pid[pid].append(wait)
            self.out[pid].extend(wait.edges)
        return [e.to_pid for e in self.out[pid]]

    def successors(self, pid: int) -> List[int]:
        return list(dict.fromkeys(e.to_pid for e in self.out.get(pid, ())))

    def thread_waits(self, pid: int) -> List[Wait]:
        return self.by_pid.get(pid, [])

    def end_of(self, pid: int) -> Tuple[End, Optional[int]]:
        """Why a process with no outgoing edge waits for nothing further, and which thread."""
        waits = self.thread_waits(pid)
        ends = [(w.end, w.tid) for w in waits if w.end is not None]
        ends += [(live_end(w.any_of, list(w.live), []), w.tid) for w in waits if w.end is None and w.live]
        if not ends:
            return GONE, None
        return min(ends, key=lambda e: _end_rank(e[0].kind))


def diagnose(snap: Snapshot, starts: List[int]) -> Diagnosis:
    graph = Graph(snap)
    graph.explore(starts)
    return _verdict(graph, starts)


def diagnose_all(snap: Snapshot) -> Diagnosis:
    """Every chain on the machine that ends in a deadlock or passes a blocked write."""
    graph = Graph(snap)
    graph.explore(sorted(snap.processes))
    cycles = find_cycles(graph)
    trouble = {p for c in cycles if c.deadlock for p in c.pids} | _blocked_writers(graph)
    return _verdict(graph, _sources(graph, trouble, cycles), cycles)


def _verdict(graph: Graph, starts: List[int], cycles: Optional[List[Cycle]] = None) -> Diagnosis:
    cycles = find_cycles(graph) if cycles is None else cycles
    chains = [c for s in starts for c in walk_chains(graph, s, cycles)]
    on_chains = list(dict.fromkeys(p for c in chains for p in c.path))
    members = set(on_chains)
    snap = graph.snap
    return Diagnosis(
        starts=starts,
        processes={p: snap.processes[p] for p in on_chains if p in snap.processes},
        tasks={p: snap.tasks(p) for p in on_chains},
        cmdlines={p: snap.cmdline(p) for p in on_chains if p in snap.processes},
        waits={k: w for k, w in graph.waits.items() if k[0] in members},
        edges=[e for p in on_chains for e in graph.out.get(p, ())],
        chains=chains,
        cycles=[c for c in cycles if set(c.members or c.pids) & members],
        root_cause=root_cause(graph, chains, cycles),
        notes=list(snap.notes),
    )


# --- cycles ------------------------------------------------------------------------------


def find_cycles(graph: Graph) -> List[Cycle]:
    """Strongly connected components that contain a cycle, each marked a deadlock when
    every member is stuck for good (see stuck_threads)."""
    stuck = stuck_threads(graph)
    cycles = []
    for component in _components(graph):
        looped = len(component) > 1 or component[0] in graph.successors(component[0])
        if looped:
            order = _cycle_order(graph, min(component), set(component))
            cycles.append(_cycle(graph, order, stuck, component))
    return cycles


def stuck_threads(graph: Graph) -> Set[Tuple[int, int]]:
    """Threads that can never proceed: the greatest set in which every thread's wait has
    only stuck alternatives. Each wait's edges are alternatives (any writer may write, any
    watched fd may become ready): a thread with one live alternative is not stuck. A
    process is a stuck target when it has no running thread and a stuck thread. An OR wait
    with a live alternative that is no edge (an idle listener, a timeout: Wait.live) is
    never stuck. So a deadlock among OR waits is a knot: every alternative of every member
    leads back into the stuck set."""
    stuck = {k for k, w in graph.waits.items() if w.edges and not w.live}
    changed = True
    while changed:
        live = {k for k in stuck if not all(_target_stuck(graph, e, stuck) for e in graph.waits[k].edges)}
        stuck -= live
        changed = bool(live)
    return stuck


def _target_stuck(graph: Graph, edge: Edge, stuck: Set[Tuple[int, int]]) -> bool:
    if edge.to_tid is not None:
        return (edge.to_pid, edge.to_tid) in stuck
    waits = graph.thread_waits(edge.to_pid)
    if any(w.end is not None and w.end.kind == "running" for w in waits):
        return False
    return any((w.pid, w.tid) in stuck for w in waits)


def _cycle(graph: Graph, pids: List[int], stuck: Set[Tuple[int, int]],
           component: Optional[List[int]] = None) -> Cycle:
    every = tuple(sorted(component or pids))
    members = set(every)
    threads = tuple(k for k in sorted(stuck) if k[0] in members
                    and any(e.to_pid in members for e in graph.waits[k].edges))
    free = [p for p in pids if not any(k[0] == p for k in threads)]
    if free:
        detail = f"{free[0]} can still make progress ({_why_free(graph, free[0], stuck)})"
        return Cycle(tuple(pids), False, detail, threads, every)
    if len(every) > len(pids):
        detail = f"a knot: every alternative of {', '.join(map(str, every))} leads back into the set"
        return Cycle(tuple(pids), True, detail, threads, every)
    return Cycle(tuple(pids), True, "every member waits for the next", threads, every)


def _why_free(graph: Graph, pid: int, stuck: Optional[Set[Tuple[int, int]]] = None) -> str:
    waits = graph.thread_waits(pid)
    busy = next((w for w in waits if w.end is not None and w.end.kind == "running"), None)
    if busy is not None:
        return f"thread {busy.tid} is running"
    for wait in waits:
        if wait.live:
            return f"its {_call_name(wait)}() also waits for {wait.live[0].detail}"
        free = next((e for e in wait.edges if stuck is not None
                     and not _target_stuck(graph, e, stuck)), None)
        if free is not None:
            return f"its {_call_name(wait)}() may also be woken by {free.to_pid}, which is not blocked"
    return "one of the calls it waits in has an alternative that is not blocked"


def _cycle_order(graph: Graph, first: int, members: Set[int]) -> List[int]:
    """A ring through every member when one is found quickly (the whole of a knot of OR
    waits), else the first simple cycle from `first`."""
    return _ring_through_all(graph, [first], members, [2000]) or _first_ring(graph, first, members)


def _ring_through_all(graph: Graph, path: List[int], members: Set[int], budget: List[int]):
    budget[0] -= 1
    if budget[0] < 0 or len(members) > 16:
        return None
    if len(path) == len(members):
        return path if path[0] in graph.successors(path[-1]) else None
    for nxt in graph.successors(path[-1]):
        if nxt in members and nxt not in path:
            found = _ring_through_all(graph, path + [nxt], members, budget)
            if found:
                return found
    return None


def _first_ring(graph: Graph, first: int, members: Set[int]) -> List[int]:
    order, pid = [first], first
    while True:
        nxt = next((s for s in graph.successors(pid) if s in members and s not in order[1:]), first)
        if nxt == first or nxt in order:
            return order
        order.append(nxt)
        pid = nxt


def _components(graph: Graph) -> List[List[int]]:
    index: Dict[int, int] = {}
    low: Dict[int, int] = {}
    stack: List[int] = []
    on_stack: Set[int] = set()
    result: List[List[int]] = []
    for root in graph.explored:
        if root not in index:
            _strongconnect(graph, root, index, low, stack, on_stack, result)
    return result


def _strongconnect(graph, root, index, low, stack, on_stack, result) -> None:
    work = [(root, iter(graph.successors(root)))]
    index[root] = low[root] = len(index)
    stack.append(root)
    on_stack.add(root)
    while work:
        node, children = work[-1]
        child = next(children, None)
        if child is not None:
            if child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph.successors(child))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
            continue
        work.pop()
        if work:
            low[work[-1][0]] = min(low[work[-1][0]], low[node])
        if low[node] == index[node]:
            result.append(_pop_component(node, stack, on_stack))


def _pop_component(node: int, stack: List[int], on_stack: Set[int]) -> List[int]:
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
            return component


# --- chains -----------------------------------------------------------------------------


def walk_chains(graph: Graph, start: int, cycles: List[Cycle]) -> List[Chain]:
    """Every path from start along the edges, each to where it ends (depth-first)."""
    chains: List[Chain] = []
    todo = [(start, (start,))]
    while todo and len(chains) < MAX_CHAINS:
        pid, path = todo.pop()
        nexts = _branches(graph, pid, cycles)
        if not nexts or len(path) >= MAX_DEPTH:
            chains.append(Chain(start, path, _chain_end(graph, pid)))
            continue
        for nxt in reversed(nexts):
            if nxt in path:
                chains.append(Chain(start, path, _cycle_end(graph, nxt, cycles)))
            else:
                todo.append((nxt, path + (nxt,)))
    return chains


def _branches(graph: Graph, pid: int, cycles: List[Cycle]) -> List[int]:
    """Successors to follow. Of an OR wait's alternatives (an event loop's connections),
    the idle ones are left out when another leads to trouble: a peer that ends at once in
    an idle, sleeping or running state, or only waits for this process in a cycle that is
    not a deadlock (a client waiting for the server's answer), says nothing new."""
    nexts = graph.successors(pid)
    if nexts and _wakes_up_alone(graph, pid, nexts, cycles):
        return []
    if len(nexts) < 2:
        return nexts
    waits = graph.thread_waits(pid)
    plain = {e.to_pid for w in waits if not w.any_of for e in w.edges}
    idle = [n for n in nexts if n not in plain and _idle_branch(graph, pid, n, cycles)]
    return [n for n in nexts if n not in idle] if len(idle) < len(nexts) else nexts


def _wakes_up_alone(graph: Graph, pid: int, nexts: List[int], cycles: List[Cycle]) -> bool:
    """Every waiting thread is an OR wait with a live alternative (a latch, a timeout, a
    listener) and every edge leads only to idle processes (a PostgreSQL backend watching its
    latch and the postmaster's pipe): nothing down those edges explains the wait, stop here."""
    waits = [w for w in graph.thread_waits(pid) if w.edges]
    return all(w.live for w in waits) and all(_idle_branch(graph, pid, n, cycles) for n in nexts)


def _idle_branch(graph: Graph, pid: int, nxt: int, cycles: List[Cycle]) -> bool:
    after = graph.successors(nxt)
    if not after:
        return graph.end_of(nxt)[0].kind in IDLE_ENDS
    if after == [pid]:
        cycle = _cycle_of(cycles, pid)
        return cycle is None or not cycle.deadlock
    return False


def _cycle_of(cycles: List[Cycle], pid: int) -> Optional[Cycle]:
    return next((c for c in cycles if pid in (c.members or c.pids)), None)


def _chain_end(graph: Graph, pid: int) -> ChainEnd:
    end, tid = graph.end_of(pid)
    return ChainEnd(end.kind, end.detail, pid, tid)


def _cycle_end(graph: Graph, pid: int, cycles: List[Cycle]) -> ChainEnd:
    cycle = _cycle_of(cycles, pid)
    if cycle is None or not cycle.deadlock:
        why = cycle.detail if cycle else ""
        return ChainEnd("cycle", f"back to {pid}: a cycle, but not a deadlock: {why}", pid)
    return ChainEnd("cycle", f"back to {pid}: DEADLOCK", pid)


def _blocked_writers(graph: Graph) -> Set[int]:
    writes = ("write", "writev", "pwrite64", "sendto", "sendmsg", "sendmmsg", "pwritev", "pwritev2")
    return {w.pid for w in graph.waits.values() if w.edges and w.what.startswith(writes)}


def _sources(graph: Graph, trouble: Set[int], cycles: List[Cycle]) -> List[int]:
    """Processes from which trouble is reachable and that nobody in that set waits for,
    then one member of each cycle that no such process reaches."""
    incoming: Dict[int, Set[int]] = defaultdict(set)
    for pid in graph.explored:
        for nxt in graph.successors(pid):
            incoming[nxt].add(pid)
    reach = _reach(lambda p: incoming[p], trouble)
    sources = sorted(p for p in reach if not incoming[p] & reach)
    covered = _reach(graph.successors, set(sources))
    return sources + sorted(min(c.pids) for c in cycles if c.deadlock and not set(c.pids) & covered)


def _reach(step, starts: Set[int]) -> Set[int]:
    seen, todo = set(starts), list(starts)
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# --- verdict ----------------------------------------------------------------------------


def root_cause(graph: Graph, chains: List[Chain], cycles: List[Cycle]) -> Optional[RootCause]:
    """The first process along a chain that belongs to a deadlock; else a self-deadlock;
    else where the first chain ends."""
    for chain in chains:
        if chain.end.kind == "cycle" and chain.end.pid is not None:
            cycle = _cycle_of(cycles, chain.end.pid)
            if cycle is not None and cycle.deadlock:
                return _cycle_cause(graph, chain, cycle)
    ranked = sorted(chains, key=lambda c: (c.end.kind != "self", _end_rank(c.end.kind)))
    return _end_cause(graph, ranked[0]) if ranked else None


def _end_rank(kind: str) -> int:
    return END_PRIORITY.index(kind) if kind in END_PRIORITY else len(END_PRIORITY)


def _cycle_cause(graph: Graph, chain: Chain, cycle: Cycle) -> RootCause:
    pid = next((p for p in chain.path if p in cycle.pids), None)
    if pid is None:  # the chain loops through knot members outside the ring: use its loop
        loop = chain.path[chain.path.index(chain.end.pid):] if chain.end.pid in chain.path else ()
        cycle = replace(cycle, pids=tuple(loop) or cycle.pids)
        pid = cycle.pids[0]
    ring = list(cycle.pids)
    ring = ring[ring.index(pid):] + ring[: ring.index(pid)]
    steps = _thread_ring(graph, cycle) if len(ring) == 1 else []
    steps = steps or [_step(graph, a, b) for a, b in zip(ring, ring[1:] + ring[:1])]
    summary = "deadlock: " + "; ".join(_step_text(graph, e) for e in steps)
    wait = graph.waits[(pid, steps[0].from_tid)]
    return RootCause(pid, steps[0].from_tid, _call_name(wait), summary)


def _thread_ring(graph: Graph, cycle: Cycle) -> List[Edge]:
    """In a cycle inside one process, the edges from thread to thread around the loop (a
    thread waiting on the loop from outside it, such as a pthread_join, is left out)."""
    members = set(cycle.threads)
    nxt = {}
    for key in cycle.threads:
        edge = next((e for e in graph.waits[key].edges if (e.to_pid, e.to_tid) in members), None)
        if edge is not None:
            nxt[key] = edge
    order: List[Tuple[int, int]] = []
    key = min(nxt) if nxt else None
    while key in nxt and key not in order:
        order.append(key)
        key = (nxt[key].to_pid, nxt[key].to_tid)
    return [nxt[k] for k in order[order.index(key):]] if key in order else []


def _step(graph: Graph, a: int, b: int) -> Edge:
    return next(e for e in graph.out[a] if e.to_pid == b)


def _step_text(graph: Graph, edge: Edge) -> str:
    """`6531 command-server.py waits in wait4() for its child 6541`."""
    wait = graph.waits[(edge.from_pid, edge.from_tid)]
    who = f"{edge.from_pid} {_name(graph, edge.from_pid)} waits in {_call_name(wait)}()"
    if edge.kind == "child":
        return f"{who} for its child {edge.to_pid}"
    if edge.to_pid == edge.from_pid and edge.to_tid is not None:
        who = f"thread {edge.from_tid} of {edge.from_pid} {_name(graph, edge.from_pid)} waits in {_call_name(wait)}()"
        return f"{who} for thread {edge.to_tid} ({edge.object}: {edge.label.split(';')[0]})"
    return f"{who} for {edge.to_pid} ({edge.object}: {edge.label.split(';')[0]})"


def _call_name(wait: Wait) -> str:
    return wait.what.split("(")[0]


def _end_cause(graph: Graph, chain: Chain) -> RootCause:
    pid = chain.path[-1]
    tid = chain.end.tid if chain.end.tid is not None else pid
    wait = graph.waits.get((pid, tid))
    summary = f"the chain ends at {pid} {_name(graph, pid)}: {chain.end.kind}: {chain.end.detail}"
    return RootCause(pid, tid, _call_name(wait) if wait else "", summary)


def _name(graph: Graph, pid: int) -> str:
    return program(graph.snap.cmdline(pid)) if pid in graph.snap.processes else "(gone)"
