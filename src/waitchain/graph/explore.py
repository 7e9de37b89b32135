"""Explore the wait-for graph from start processes: the wait of every thread of every
process reached, read through the snapshot by the wait rules, and the plain graph
(graph/waitfor.py) built from them."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import replace
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ..model import End, EndKind, Reason, Task, Wait
from ..snapshot import Snapshot
from ..waits import wait_of
from .waitfor import Node, WaitFor

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
