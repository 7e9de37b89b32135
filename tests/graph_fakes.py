"""A snapshot for waits built in code: what the engine, the verdicts and the incidents ask
of one, with no live process behind it (tests/unit: the graph and verdict layers)."""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from waitchain.model import Process, Syscall, Task, Wait

Key = Tuple[int, int]


class WaitsSnapshot:
    """Every thread of `waits` in state S in its wait's system call; `rules` hands each its
    wait. moved: threads a second look finds moved; starttime: of each pid; idle: seconds
    each thread has not run (None: the kernel does not say)."""

    def __init__(self, waits: Iterable[Wait], moved: Sequence[Key] = (),
                 starttime: Callable[[int], int] = lambda pid: pid,
                 idle: Callable[[int, int], Optional[float]] = lambda pid, tid: None) -> None:
        self.waits = {(w.pid, w.tid): w for w in waits}
        self.notes: List[str] = []
        self._moved = set(moved)
        self._idle = idle
        self.threads: Dict[int, List[Task]] = {}
        for (pid, tid), w in sorted(self.waits.items()):
            self.threads.setdefault(pid, []).append(Task(tid, f"t{tid}", "S", Syscall(0, w.syscall or "read", (0,) * 6)))
        self.processes = {p: Process(p, starttime(p), f"p{p}", "S", 1, p, 0) for p in self.threads}

    def tasks(self, pid: int) -> List[Task]:
        return self.threads.get(pid, [])

    def alive(self, pid: int) -> bool:
        return pid in self.processes

    def cmdline(self, pid: int) -> str:
        return f"prog{pid}"

    def moved(self, pid: int, tid: int) -> bool:
        return (pid, tid) in self._moved

    def ns_thread_ids(self, pid: int) -> Dict[int, int]:
        return {}

    def idle_seconds(self, pid: int, tid: int) -> Optional[float]:
        return self._idle(pid, tid)

    def rules(self, snap: object, pid: int, task: Task) -> Wait:
        return self.waits[(pid, task.tid)]
