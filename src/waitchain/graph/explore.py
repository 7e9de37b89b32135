"""Explore the wait-for graph from start processes: the wait of every thread of every
process reached, read through the snapshot by the wait rules, and the plain graph
(graph/waitfor.py) built from them."""

from __future__ import annotations

from collections import defaultdict, deque

from ..model import Edge, EdgeKind, End, EndKind, PtySide, Reason, Task, Wait
from ..records import replace
from ..snapshot import Snapshot
from ..waits import wait_of
from .waitfor import Node, WaitFor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

    Rules = Callable[[Snapshot, int, Task], Wait]  # a thread's wait, read from the snapshot

GONE = End(EndKind.UNKNOWN, "the process exited during the scan", Reason.EXITED)


class Explored:
    """The waits of every thread of every explored process, and the graph over them."""

    def __init__(self, snap: Snapshot, rules: Rules = wait_of) -> None:
        self.snap = snap
        self.rules = rules
        self.waits: Dict[Tuple[int, int], Wait] = {}
        self.by_pid: Dict[int, List[Wait]] = defaultdict(list)
        self.order: List[int] = []  # processes in the order they were explored
        self._graph: Optional[WaitFor] = None
        self._edges_to: Dict[int, Dict[int, List[Tuple[Wait, Edge]]]] = {}
        self._pty_masters: Dict[int, FrozenSet[int]] = {}
        self._waited_back: Dict[Tuple[int, int], bool] = {}
        self._writes_out: Dict[Tuple[int, int], bool] = {}

    def explore(self, starts: Iterable[int]) -> "Explored":
        queue = deque(starts)
        seen = set(self.order)
        while queue:
            pid = queue.popleft()
            if pid in seen:
                continue
            seen.add(pid)
            self.order.append(pid)
            queue.extend(e.to_pid for w in self._examine(pid) for e in w.edges)
        self._graph = None
        self._edges_to.clear()
        self._pty_masters.clear()
        self._waited_back.clear()
        self._writes_out.clear()
        return self

    def _examine(self, pid: int) -> List[Wait]:
        tasks = self.snap.tasks(pid)
        waits = [_named(self.rules(self.snap, pid, task), task) for task in tasks]
        if waits and not self.snap.alive(pid):  # gone, or the pid reused: the reads may be another's
            waits = [Wait(pid, w.tid, w.what, end=GONE, syscall=w.syscall) for w in waits]
        for wait in waits:
            self.waits[(pid, wait.tid)] = wait
            self.by_pid[pid].append(wait)
        return waits

    @property
    def graph(self) -> WaitFor:
        if self._graph is None:
            self._graph = WaitFor(node_of(w) for w in self.waits.values() if not _exited(w))
        return self._graph

    def thread_waits(self, pid: int) -> List[Wait]:
        return self.by_pid.get(pid, [])

    def successors(self, pid: int) -> List[int]:
        return self.graph.successors(pid)

    def edges_to(self, pid: int, to: int) -> List[Tuple[Wait, Edge]]:
        """The edges of pid's waits that lead to the process `to`, in order, each with its
        wait (indexed once per pid: a hub's many edges are not scanned per question)."""
        index = self._edges_to.get(pid)
        if index is None:
            index = self._edges_to[pid] = {}
            for wait in self.thread_waits(pid):
                for edge in wait.edges:
                    index.setdefault(edge.to_pid, []).append((wait, edge))
        return index.get(to, [])

    def waited_back(self, pid: int, tid: int) -> bool:
        """Every edge of the thread's wait leads to a process that waits for pid (an event
        loop whose every alternative is a partner waiting for it); once per thread."""
        key = (pid, tid)
        found = self._waited_back.get(key)
        if found is None:
            wait = self.waits.get(key)
            edges = wait.edges if wait is not None else ()
            found = self._waited_back[key] = all(self.edges_to(e.to_pid, pid) for e in edges)
        return found

    def writes_out(self, pid: int, tid: int) -> bool:
        """The thread is blocked writing to another process (a full pipe or socket); once
        per thread."""
        key = (pid, tid)
        found = self._writes_out.get(key)
        if found is None:
            wait = self.waits.get(key)
            found = self._writes_out[key] = wait is not None and any(
                e.writing and e.to_pid != pid for e in wait.edges)
        return found

    def pty_masters(self, pid: int) -> FrozenSet[int]:
        """The processes pid waits for as holders of the master of a terminal whose slave
        it reads or writes."""
        found = self._pty_masters.get(pid)
        if found is None:
            found = self._pty_masters[pid] = frozenset(
                e.to_pid for w in self.thread_waits(pid) for e in w.edges
                if e.kind == EdgeKind.PTY and e.pty is not None and e.pty.side == PtySide.SLAVE)
        return found


def _exited(wait: Wait) -> bool:
    """A thread that exited while its process goes on (a main thread's pthread_exit) ends no
    wait and can act no more: as a node it would count as a thread that can act (a free
    process), hiding a deadlock of the others."""
    return wait.end is not None and wait.end.reason == Reason.THREAD_EXITED and not wait.edges


def _named(wait: Wait, task: Task) -> Wait:
    """The wait with its call's name, whatever the rule filled in."""
    if wait.syscall or task.syscall is None:
        return wait
    return replace(wait, syscall=task.syscall.name)


def node_of(wait: Wait) -> Node:
    """The wait as the plain graph sees it: its targets, how they combine, a way out. A
    retry loop (a short sleep taken for a lock retry, inferred) is a way out of its own: it
    runs between tries and may give up (a busy timeout), so it never makes a deadlock; so is
    a lock wait's timer (flock -w), kept as its end next to its edges."""
    targets = tuple((e.to_pid, e.to_tid) for e in wait.edges)
    retrying = any(e.retry is not None for e in wait.edges)
    timed = bool(wait.edges) and wait.end is not None and wait.end.reason == Reason.TIMEOUT
    return Node((wait.pid, wait.tid), targets, wait.mode, exit=bool(wait.live) or retrying or timed)
