"""`--confirm SECONDS`: a timed second look that tells a hang from a slow but live exchange.

The first snapshot's diagnosis names the waits on the chains. SECONDS later each of their
threads is read again (Snapshot.moved: the same system call with the same arguments, the same
state, no context switch since), and the same waits are worked out again from a second
snapshot to compare what they wait on: a pipe's fill, a socket's queued and unread bytes, the
processes waited for. A thread where anything changed has moved: the verdicts it is part of
are withdrawn (a deadlock becomes a cycle that moves, a chain end is marked as moving, as the
immediate second look of verdict.confirm does); the others are confirmed over SECONDS."""

from __future__ import annotations

import time

from .model import Advice, CycleShape, Diagnosis, Edge, EndKind, Verdict, VerdictClass, Wait
from .records import replace
from .snapshot import Snapshot
from .waits import wait_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Set, Tuple

    from .graph.explore import Rules

    Key = Tuple[int, int]

__all__ = ["confirm_over", "moved_threads"]


def confirm_over(diag: Diagnosis, snap: Snapshot, seconds: float, rules: Rules = wait_of,
                 sleep: Callable[[float], None] = time.sleep) -> Diagnosis:
    """The diagnosis with every verdict whose threads moved within `seconds` withdrawn,
    and a note saying what the second look saw."""
    threads = [k for k, w in diag.waits.items() if _blocked(w)]
    sleep(max(0.0, seconds))
    moved = moved_threads(diag, snap, threads, rules)
    verdicts = [_withdrawn(v, moved, diag) for v in diag.verdicts]
    withdrawn = {k for v in verdicts for k in v.moved}
    diag.verdicts = sorted(verdicts, key=lambda v: bool(v.moved))  # stable: the rank stays
    diag.cycles = [replace(c, deadlock=False, shape=CycleShape.OPEN)
                   if c.deadlock and set(c.threads) & withdrawn else c for c in diag.cycles]
    diag.notes.append(_note(seconds, moved, len(threads)))
    return diag


def moved_threads(diag: Diagnosis, snap: Snapshot, threads: List[Key], rules: Rules = wait_of) -> Set[Key]:
    """The threads that moved since `snap`: another call or arguments, a context switch,
    gone; or what their wait is on changed (fill, queues, the processes waited for)."""
    moved = {k for k in threads if snap.moved(*k)}
    still = [k for k in threads if k not in moved]
    if not still:
        return moved
    with Snapshot.scan(snap.fs) as again:
        for key in still:
            now = _wait_again(again, key, rules)
            if now is None or _facts(now) != _facts(diag.waits[key]):
                moved.add(key)
    return moved


def _wait_again(snap: Snapshot, key: Key, rules: Rules) -> Optional[Wait]:
    pid, tid = key
    task = next((t for t in snap.tasks(pid) if t.tid == tid), None)
    return rules(snap, pid, task) if task is not None else None


def _facts(wait: Wait) -> Tuple[object, ...]:
    """What a wait is on, as far as a live exchange changes it."""
    return (wait.syscall, tuple(sorted(_edge_facts(e) for e in wait.edges)))


def _edge_facts(e: Edge) -> Tuple[object, ...]:
    used = e.fill.used if e.fill is not None else None
    return (e.to_pid, e.to_tid or 0, str(e.kind), e.object, -1 if used is None else used,
            -1 if e.queued is None else e.queued, -1 if e.peer_unread is None else e.peer_unread)


def _withdrawn(v: Verdict, moved: Set[Key], diag: Diagnosis) -> Verdict:
    threads = _threads(v, diag)
    seen = tuple(k for k in threads if k in moved)
    if not seen:
        return v
    if v.cls == VerdictClass.DEADLOCK:
        return Verdict(VerdictClass.CYCLE, Advice.WAIT_AND_SEE, v.members, v.threads, v.ring, v.cause,
                       None, victims=v.victims, confirmed=False, moved=seen)
    return replace(v, confirmed=False, moved=seen)


def _threads(v: Verdict, diag: Diagnosis) -> Tuple[Key, ...]:
    """The threads a verdict stands on: a deadlock's knot, or the waits along its chain."""
    if v.cls == VerdictClass.DEADLOCK:
        return v.threads
    path = v.members
    found: List[Key] = [k for a, b in zip(path, path[1:]) for k, w in diag.waits.items()
                        if k[0] == a and any(e.to_pid == b for e in w.edges)]
    if v.cause is not None and v.cause in diag.waits and _blocked(diag.waits[v.cause]):
        found.append(v.cause)
    return tuple(dict.fromkeys(found))


def _blocked(wait: Wait) -> bool:
    """A wait to look at again: a running thread is not waiting (it moves by itself)."""
    return bool(wait.edges) or (wait.end is not None and wait.end.kind != EndKind.RUNNING)


def _note(seconds: float, moved: Set[Key], looked: int) -> str:
    if not moved:
        return f"confirmed: none of the {looked} waits on the chains moved in {seconds:g} s"
    names = ", ".join(f"{p}" if p == t else f"{p}/{t}" for p, t in sorted(moved))
    return (f"second look after {seconds:g} s: {len(moved)} of the {looked} waits moved "
            f"(threads {names}): a live exchange there, not a hang")
