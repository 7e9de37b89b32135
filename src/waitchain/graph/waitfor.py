"""The wait-for graph as plain data, and what can be known from its shape alone: which
threads are stuck for good, the knots they form, process-level cycles, a ring through a
knot. No I/O and no knowledge of system calls: built from `Node`s and unit-tested on graphs
made in code.

A thread waits for targets: a thread (pid, tid), or a process (pid, None) when any of its
threads could act (the holders of a pipe's other end, a child). A process can act unless
every one of its threads is stuck: a sleeping or running sibling is a way out. A node with
`exit` has a way out that is no target (it is running, a timeout, a signal others may send).
Mode ANY: one target acting ends the wait; Mode ALL: it needs every target."""

from __future__ import annotations

from collections import defaultdict, deque

from ..model import Mode
from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, FrozenSet, Hashable, Iterable, List, Optional, Set, Tuple, TypeVar

    Key = Tuple[int, int]  # (pid, tid)
    Target = Tuple[int, Optional[int]]  # (pid, tid) or (pid, None): any thread of pid
    N = TypeVar("N", bound=Hashable)


@record(frozen=True)
class Node:
    """One thread's wait as the graph sees it."""

    key: Key
    targets: Tuple[Target, ...] = ()
    mode: Mode = Mode.ANY
    exit: bool = False


@record(frozen=True)
class Knot:
    """A terminal strongly connected set of stuck threads: every way out of each member
    leads back into the set, so none can ever proceed."""

    threads: Tuple[Key, ...]  # sorted

    @property
    def pids(self) -> Tuple[int, ...]:
        return tuple(sorted({pid for pid, _ in self.threads}))


class WaitFor:
    """Nodes indexed by thread and by process; the process-level successor lists."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes: Dict[Key, Node] = {}
        self.threads: Dict[int, List[int]] = defaultdict(list)
        for node in nodes:
            unique = tuple(dict.fromkeys(node.targets))
            self.nodes[node.key] = Node(node.key, unique, node.mode, node.exit)
            self.threads[node.key[0]].append(node.key[1])
        self._succ: Dict[int, List[int]] = {}
        self._stuck: Optional[FrozenSet[Key]] = None
        self._knots: Optional[List[Knot]] = None

    def successors(self, pid: int) -> List[int]:
        """Processes any thread of pid waits for, each once, in order of appearance."""
        found = self._succ.get(pid)
        if found is None:
            targets = (t[0] for tid in self.threads.get(pid, ()) for t in self.nodes[(pid, tid)].targets)
            found = self._succ[pid] = list(dict.fromkeys(targets))
        return found

    # --- stuck threads --------------------------------------------------------------------

    def stuck(self) -> FrozenSet[Key]:
        """The greatest set of threads none of which can proceed (linear time): start from
        every thread that waits with no way out, and free each one whose wait a free thread
        or process can end, until nothing changes."""
        if self._stuck is None:
            self._stuck = frozenset(_Fixpoint(self).run())
        return self._stuck

    def process_stuck(self, pid: int, stuck: FrozenSet[Key]) -> bool:
        tids = self.threads.get(pid, ())
        return bool(tids) and all((pid, tid) in stuck for tid in tids)

    def stuck_successors(self, key: Key, stuck: FrozenSet[Key]) -> List[Key]:
        """The stuck threads a stuck thread waits for (a process target: all its threads)."""
        out: List[Key] = []
        for pid, tid in self.nodes[key].targets:
            if tid is not None:
                out += [(pid, tid)] if (pid, tid) in stuck else []
            else:
                out += [(pid, t) for t in self.threads.get(pid, ()) if (pid, t) in stuck]
        return list(dict.fromkeys(out))

    # --- knots, cycles, rings ---------------------------------------------------------------

    def knots(self) -> List[Knot]:
        """Terminal strongly connected sets of the stuck threads, sorted by first thread
        (worked out once: the cycles and the verdicts both ask)."""
        if self._knots is None:
            stuck = self.stuck()
            step = lambda k: self.stuck_successors(k, stuck)  # noqa: E731
            knots = []
            for component in components(sorted(stuck), step):
                members = set(component)
                if all(s in members for k in component for s in step(k)):
                    knots.append(Knot(tuple(sorted(component))))
            self._knots = sorted(knots, key=lambda k: k.threads)
        return list(self._knots)

    def cycles(self) -> List[List[int]]:
        """Process-level strongly connected sets that contain a cycle (a self-loop counts),
        each sorted, in order."""
        found = []
        for component in components(sorted(self.threads), self.successors):
            if len(component) > 1 or component[0] in self.successors(component[0]):
                found.append(sorted(component))
        return sorted(found)

    def thread_ring(self, knot: Knot, first: Key) -> List[Key]:
        """A shortest cycle of stuck threads through `first`, a member of the knot."""
        stuck = self.stuck()
        members = set(knot.threads)
        return shortest_ring(first, lambda k: [s for s in self.stuck_successors(k, stuck) if s in members])

    def process_ring(self, members: Iterable[int], first: int) -> List[int]:
        """A shortest cycle of processes through `first` inside `members`."""
        inside = set(members)
        return shortest_ring(first, lambda p: [s for s in self.successors(p) if s in inside])


class _Fixpoint:
    """The stuck set by counting: each waiting node counts its free targets (ANY) or its
    stuck targets (ALL); a process is free once one of its threads is."""

    def __init__(self, graph: WaitFor) -> None:
        self.g = graph
        self.stuck: Set[Key] = {k for k, n in graph.nodes.items() if n.targets and not n.exit}
        self.left = {p: sum((p, t) in self.stuck for t in tids) for p, tids in graph.threads.items()}
        self.by_thread: Dict[Key, List[Key]] = defaultdict(list)
        self.by_process: Dict[int, List[Key]] = defaultdict(list)
        self.count: Dict[Key, int] = {}

    def run(self) -> Set[Key]:
        queue = deque(k for k in sorted(self.stuck) if self._init(k))
        while queue:
            key = queue.popleft()
            if key in self.stuck:
                self.stuck.discard(key)
                queue.extend(self._freed(key))
        return self.stuck

    def _target_stuck(self, target: Target) -> bool:
        pid, tid = target
        if tid is not None:
            return (pid, tid) in self.stuck
        total = len(self.g.threads.get(pid, ()))
        return total > 0 and self.left[pid] == total

    def _init(self, key: Key) -> bool:
        """Count the node's targets, index them; True when it is free already."""
        node = self.g.nodes[key]
        for pid, tid in node.targets:
            (self.by_thread[(pid, tid)] if tid is not None else self.by_process[pid]).append(key)
        stuck = sum(self._target_stuck(t) for t in node.targets)
        free = len(node.targets) - stuck
        self.count[key] = free if node.mode == Mode.ANY else stuck
        return self._free(key)

    def _free(self, key: Key) -> bool:
        return self.count[key] > 0 if self.g.nodes[key].mode == Mode.ANY else self.count[key] == 0

    def _freed(self, key: Key) -> List[Key]:
        """A thread became free: the waits it (or its process, now free) can end."""
        pid = key[0]
        total = len(self.g.threads[pid])
        was_stuck = self.left[pid] == total
        self.left[pid] -= 1
        waiters = list(self.by_thread.get(key, ()))
        if was_stuck:
            waiters += self.by_process.get(pid, ())
        woken = []
        for waiter in waiters:
            if waiter not in self.stuck:
                continue
            self.count[waiter] += 1 if self.g.nodes[waiter].mode == Mode.ANY else -1
            if self._free(waiter):
                woken.append(waiter)
        return woken


def components(roots: Iterable[N], step: Callable[[N], Iterable[N]]) -> List[List[N]]:
    """Strongly connected components (iterative Tarjan), each listed once, sinks first."""
    index: Dict[N, int] = {}
    low: Dict[N, int] = {}
    stack: List[N] = []
    on_stack: Set[N] = set()
    result: List[List[N]] = []
    for root in roots:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(step(root)))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(step(child))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result


def shortest_ring(first: N, step: Callable[[N], Iterable[N]]) -> List[N]:
    """The shortest cycle first → … → first (breadth-first), [first] alone for a
    self-loop, [] when there is none."""
    parent: Dict[N, N] = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for nxt in step(node):
            if nxt == first:
                path = [node]
                while path[-1] != first:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return []
