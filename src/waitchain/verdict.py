"""The verdict layer: one verdict per incident, chosen from structured facts.

A deadlock is a knot of stuck threads (graph/waitfor.py). Its root cause is the member
whose wait is the bug, by a rule that does not depend on where the diagnosis started: a
wait for a child, then a join, then a lock, then a SIGCHLD wait, then a read, and a blocked
write or a wait on the process's own threads last (a writer on a full buffer is the victim of
whoever does not read); among equals the member most others wait for, then a thread that
is not its process's main thread (a main thread waiting for its own threads usually joins
them), then the lowest pid and tid. Where no knot is reached, the verdict is where the
start's chain ends. Advice is an `Advice` code with the process it acts on; render/ words it.
A deadlock is confirmed by a second look at its threads' system calls and context-switch
counts: one that moved withdraws it."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from .graph import Explored, end_of, end_rank
from .graph.waitfor import Key, Knot, Node, WaitFor
from .model import (Advice, Chain, Cycle, Edge, EdgeKind, EndKind, Mode, Reason, Verdict,
                    VerdictClass, Wait)
from .snapshot import Snapshot

LOCKS = {EdgeKind.MUTEX, EdgeKind.FLOCK, EdgeKind.POSIX_LOCK, EdgeKind.OFD_LOCK, EdgeKind.LOCK, EdgeKind.PG_LOCK}
READ_RANK, WRITE_RANK = 4, 5
# a thread on its own process's futex waits for its siblings: like a writer, their victim
KIND_RANK = {EdgeKind.CHILD: 0, EdgeKind.JOIN: 1, **{k: 2 for k in LOCKS}, EdgeKind.SIGCHLD: 3,
             EdgeKind.FUTEX: WRITE_RANK}
PIPES = {EdgeKind.PIPE, EdgeKind.FIFO}
END_ADVICE = {
    EndKind.RUNNING: Advice.BUSY, EndKind.SLEEPING: Advice.SLEEPING, EndKind.SIGNAL: Advice.SIGNAL,
    EndKind.REMOTE: Advice.REMOTE, EndKind.DISK: Advice.DISK, EndKind.KERNEL: Advice.DISK,
    EndKind.TERMINAL: Advice.TERMINAL, EndKind.STOPPED: Advice.STOPPED, EndKind.IDLE: Advice.IDLE,
    EndKind.UNKNOWN: Advice.UNKNOWN,
}
IDLE_ADVICE = {Reason.ACCEPT: Advice.IDLE_SERVER, Reason.FIFO_OPEN: Advice.FIFO,
               Reason.FILE_EVENTS: Advice.FILE_EVENTS}
HOLDER_ENDS = {EndKind.SLEEPING, EndKind.IDLE, EndKind.SIGNAL, EndKind.TERMINAL, EndKind.STOPPED}
MAKES = {"make", "gmake"}  # GNU make's comm


# --- deadlocks ---------------------------------------------------------------------------


def deadlocks(ex: Explored, knots: Sequence[Knot]) -> List[Verdict]:
    """One verdict per knot, with the processes stuck behind it."""
    victims = _victims(ex, knots)
    return [_deadlock(ex, knot, victims.get(i, set())) for i, knot in enumerate(knots)]


def _deadlock(ex: Explored, knot: Knot, victims: Set[int]) -> Verdict:
    cause = root_cause(ex, knot)
    keys = ex.graph.thread_ring(knot, cause)
    ring = tuple(_edge(ex.waits[a], b) for a, b in zip(keys, keys[1:] + keys[:1]))
    advice, preferred = _deadlock_advice(ring, cause)
    culprit = kill_to_break(ex, knot, preferred + [e.from_pid for e in ring] + list(knot.pids))
    return Verdict(VerdictClass.DEADLOCK, advice, knot.pids, knot.threads, ring, cause, culprit,
                   victims=tuple(sorted(victims - set(knot.pids))))


def root_cause(ex: Explored, knot: Knot) -> Key:
    """The knot's member whose wait is the bug (see the module's docstring)."""
    members = set(knot.threads)
    incoming: Dict[Key, int] = defaultdict(int)
    stuck = ex.graph.stuck()
    for key in knot.threads:
        for target in ex.graph.stuck_successors(key, stuck):
            if target in members:
                incoming[target] += 1

    def rank(key: Key) -> Tuple[int, int, bool, int, int]:
        inside = [e for e in ex.waits[key].edges if _hits(e, members)]
        return (min((_edge_rank(e) for e in inside), default=WRITE_RANK), -incoming[key], key[0] == key[1]) + key

    return min(knot.threads, key=rank)


def _edge_rank(edge: Edge) -> int:
    return KIND_RANK.get(edge.kind, WRITE_RANK if edge.writing else READ_RANK)


def _hits(edge: Edge, members: Set[Key]) -> bool:
    if edge.to_tid is not None:
        return (edge.to_pid, edge.to_tid) in members
    return any(pid == edge.to_pid for pid, _ in members)


def _edge(wait: Wait, target: Key) -> Edge:
    """The edge of `wait` that leads to the thread `target` (it exists: the ring is made of them)."""
    pid, tid = target
    return next(e for e in wait.edges if e.to_pid == pid and e.to_tid in (None, tid))


def _deadlock_advice(ring: Tuple[Edge, ...], cause: Key) -> Tuple[Advice, List[int]]:
    """The advice, and the processes whose kill it would rather suggest, in order."""
    child = next((e for e in ring if e.kind == EdgeKind.CHILD), None)
    back = next((e for e in ring if child is not None and e.kind in PIPES
                 and (e.from_pid, e.to_pid) == (child.to_pid, child.from_pid)), None)
    if child is not None and back is not None:  # the child waits on a pipe to its parent
        advice = Advice.READ_BEFORE_WAIT if back.writing else Advice.CLOSE_BEFORE_WAIT
        return advice, [child.to_pid, child.from_pid]
    if all(e.to_pid == e.from_pid == cause[0] and e.to_tid is None for e in ring) and ring[0].kind in PIPES:
        return (Advice.DRAIN_OWN_PIPE if ring[0].writing else Advice.CLOSE_OWN_WRITE_END), [cause[0]]
    if all(e.kind in LOCKS for e in ring):
        return Advice.LOCK_ORDER, [cause[0]]
    if all(e.kind == EdgeKind.FUTEX for e in ring):  # threads of one process on its own futexes
        return Advice.OWN_THREADS, [cause[0]]
    return Advice.BREAK_CYCLE, [cause[0]]


def kill_to_break(ex: Explored, knot: Knot, candidates: Sequence[int]) -> Optional[int]:
    """The first candidate whose exit ends the deadlock, None if no single one does. A
    process's exit ends the waits on it (its pipe and socket ends close, its locks are
    released, a parent's wait4 returns), except a process-shared mutex it owns, which
    stays locked; the rest of the knot is then worked out again."""
    for pid in dict.fromkeys(candidates):
        left = _knot_without(ex, knot, pid)
        if left is not None and not left:
            return pid
    return None


def _knot_without(ex: Explored, knot: Knot, gone: int) -> Optional[frozenset]:
    """The knot's threads still stuck once `gone` has exited; None when a mutex it owns
    would stay locked for good."""
    nodes = []
    for key in knot.threads:
        if key[0] == gone:
            continue
        wait = ex.waits[key]
        if any(e.to_pid == gone and e.kind == EdgeKind.MUTEX for e in wait.edges):
            return None
        targets = tuple((e.to_pid, e.to_tid) for e in wait.edges if e.to_pid != gone)
        # a file lock goes with its last holder (a child may have inherited it), whoever
        # else could unlock it
        mode = Mode.ALL if all(e.kind in LOCKS for e in wait.edges) else wait.mode
        if targets:  # with none left, what it waited for has gone: its wait ends
            nodes.append(Node(key, targets, mode, bool(wait.live)))
    return WaitFor(nodes).stuck()


def _victims(ex: Explored, knots: Sequence[Knot]) -> Dict[int, Set[int]]:
    """Knot index → processes with a stuck thread that waits, directly or not, on it."""
    stuck = ex.graph.stuck()
    back: Dict[Key, List[Key]] = defaultdict(list)
    for key in stuck:
        for target in ex.graph.stuck_successors(key, stuck):
            back[target].append(key)
    found: Dict[int, Set[int]] = {}
    for i, knot in enumerate(knots):
        seen = set(knot.threads)
        queue = deque(knot.threads)
        while queue:
            for waiter in back.get(queue.popleft(), ()):
                if waiter not in seen:
                    seen.add(waiter)
                    queue.append(waiter)
        found[i] = {pid for pid, _ in seen}
    return found


# --- confirmation ------------------------------------------------------------------------


def confirm(snap: Snapshot, verdict: Verdict) -> Verdict:
    """A second look at the deadlock's threads: the same call with the same arguments and
    no context switch since the scan, or the verdict is withdrawn (a cycle that moves)."""
    if verdict.cls != VerdictClass.DEADLOCK:
        return verdict
    moved = tuple(key for key in verdict.threads if snap.moved(*key))
    if not moved:
        return verdict
    return Verdict(VerdictClass.CYCLE, Advice.WAIT_AND_SEE, verdict.members, verdict.threads,
                   verdict.ring, verdict.cause, None, victims=verdict.victims, confirmed=False,
                   moved=moved)


# --- where a chain ends --------------------------------------------------------------------


def chain_verdict(ex: Explored, chains: Sequence[Chain], cycle_of: Dict[int, Cycle]) -> Optional[Verdict]:
    """The verdict of the chain that matters most among a start's chains."""
    if not chains:
        return None
    chain = min(chains, key=lambda c: end_rank(c.end.kind))
    end = chain.end
    last = chain.path[-1]
    into = _edge_into(ex, chain)
    if end.kind == EndKind.CYCLE:
        return _open_cycle(ex, chain, cycle_of, into)
    tid = end.tid if end.tid is not None else last
    advice, culprit = _end_advice(ex, chain, into)
    waiter_is_cause = advice in (Advice.APP_WAIT, Advice.PTY_INPUT) and into is not None
    cause = (into.from_pid, into.from_tid) if waiter_is_cause and into else (last, tid)
    ring: Tuple[Edge, ...] = (into,) if into else ()
    slot = job_slot_wait(ex, chain.path[:-1]) if advice == Advice.FIFO else None
    if slot is not None:  # the FIFO's other side may be a recipe make cannot start
        advice, culprit, ring = Advice.JOB_SLOTS, None, ring + (slot,)
    return Verdict(VerdictClass.CHAIN_END, advice, chain.path, cause=cause, culprit=culprit, end=end,
                   ring=ring)


def job_slot_wait(ex: Explored, path: Sequence[int]) -> Optional[Edge]:
    """A GNU make on the path that waits for a free job slot that none of its running
    recipes will free: make -j waits in pselect6 for a token on its jobserver pipe (a read
    alternative) and for SIGCHLD from its recipes, and does so only when it has another
    recipe to start; every recipe it runs ends in a FIFO open nobody answers. Its jobserver
    pipe edge, or None (a recipe that sleeps or works will end and free a slot)."""
    for pid in path:
        proc = ex.snap.processes.get(pid)
        if proc is None or proc.comm not in MAKES:
            continue
        for wait in ex.thread_waits(pid):
            pipe = next((e for e in wait.edges if e.kind == EdgeKind.PIPE and e.alternative is not None
                         and not e.writing), None)
            recipes = [e.to_pid for e in wait.edges if e.kind == EdgeKind.SIGCHLD]
            if pipe is not None and recipes and all(_ends_in_fifo_opens(ex, r) for r in recipes):
                return pipe
    return None


def _ends_in_fifo_opens(ex: Explored, start: int) -> bool:
    """Every way from start (along the edges, depth-first, each process once) ends in an
    open() of a FIFO whose other side nobody has opened."""
    seen: Set[int] = set()
    todo = [start]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        nexts = [n for n in ex.successors(pid) if n != pid]
        if not nexts and end_of(ex, pid)[0].reason != Reason.FIFO_OPEN:
            return False
        todo.extend(nexts)
    return True


def _edge_into(ex: Explored, chain: Chain) -> Optional[Edge]:
    """The edge from the chain's last-but-one process to its last."""
    if len(chain.path) < 2:
        return None
    a, b = chain.path[-2], chain.path[-1]
    return next((e for w in ex.thread_waits(a) for e in w.edges if e.to_pid == b), None)


def _end_advice(ex: Explored, chain: Chain, into: Optional[Edge]) -> Tuple[Advice, Optional[int]]:
    end, last = chain.end, chain.path[-1]
    reason = _end_reason(ex, last)
    if reason == Reason.DB_LOCK:  # a database backend waits for a lock: its server knows who holds it
        return Advice.DB_LOCK, None
    if reason == Reason.KERNEL_THREAD:
        return Advice.KERNEL_THREAD, None
    if into is not None and into.kind == EdgeKind.REAP:  # a zombie; its parent's own wait ends the chain
        return Advice.REAP, last
    if into is not None and into.kind in LOCKS and end.kind in HOLDER_ENDS:
        return Advice.RELEASE_HOLDER, last
    if end.kind == EndKind.IDLE:
        if reason == Reason.ACCEPT and into is not None and into.kind in PIPES:
            if into.alternative is not None:  # one of an event loop's fds (a latch's pipe)
                return Advice.APP_WAIT, None
            return Advice.INHERITED_PIPE, last  # out=$(server &): the server kept the pipe
        if reason == Reason.ACCEPT and into is not None and into.kind == EdgeKind.PTY:
            return Advice.PTY_INPUT, last  # a terminal's idle holder (screen, tmux): nobody types
        if reason == Reason.ACCEPT and into is not None and _watches(ex, last, into.from_pid):
            # it holds the waiter's connection: it has the request (read, if its socket says so)
            return (Advice.HELD_REQUEST if read_request(into) else Advice.NO_REPLY), last
        if reason == Reason.ACCEPT and into is not None and into.kind == EdgeKind.TCP and read_request(into):
            return Advice.HELD_REQUEST, last  # not watched, but read: held elsewhere in it
        return IDLE_ADVICE.get(reason, Advice.IDLE), None
    if end.reason == Reason.SIGNAL_HANDLER:  # its threads wait on each other, or a handler
        return Advice.SIGNAL_HANDLER, last
    if end.kind == EndKind.UNKNOWN and reason == Reason.NOT_READABLE:
        return Advice.NOT_READABLE, None
    return END_ADVICE.get(end.kind, Advice.UNKNOWN), last


def read_request(into: Edge) -> bool:
    """The server at the end of a reader's socket edge has read what it was sent: its socket
    holds nothing unread, and (TCP, whose tcp_info counts them) it did receive bytes. A unix
    socket counts none: nothing unread is all it says (with the event loop watching it)."""
    if into.kind not in (EdgeKind.UNIX, EdgeKind.TCP) or into.writing or into.unaccepted:
        return False
    if into.peer_unread != 0:
        return False
    return into.kind == EdgeKind.UNIX or bool(into.peer_received)


def _watches(ex: Explored, server: int, client: int) -> bool:
    """The server's event loop has the client's connection among its alternatives."""
    return any(w.any_of and e.to_pid == client for w in ex.thread_waits(server) for e in w.edges)


def _end_reason(ex: Explored, pid: int) -> Reason:
    end, _ = end_of(ex, pid)
    return end.reason


def _open_cycle(ex: Explored, chain: Chain, cycle_of: Dict[int, Cycle], into: Optional[Edge]) -> Verdict:
    """A cycle that is not a deadlock. When its last process is idle in an event loop whose
    every alternative is a partner waiting for it, the partner waits for a reply that
    nothing is working on (or for a person, through a terminal)."""
    last = chain.path[-1]
    ring = cycle_of.get(chain.end.pid) if chain.end.pid is not None else None
    loop = next((w for w in ex.thread_waits(last) if w.any_of and w.edges
                 and (w.pid, w.tid) not in (ring.threads if ring else ())), None)
    busy = any(w.end is not None and w.end.kind == EndKind.RUNNING for w in ex.thread_waits(last))
    partners = loop is not None and all(
        any(e.to_pid == last for w in ex.thread_waits(p.to_pid) for e in w.edges) for p in loop.edges)
    terminal = into is not None and into.kind == EdgeKind.PTY and _watches(ex, last, into.from_pid)
    if ring is None or into is None or not (partners or terminal) or busy:
        return Verdict(VerdictClass.CYCLE, Advice.WAIT_AND_SEE, chain.path, cause=(last, last),
                       end=chain.end, ring=(into,) if into else ())
    advice = (Advice.PTY_INPUT if into.kind == EdgeKind.PTY
              else Advice.HELD_REQUEST if read_request(into) else Advice.NO_REPLY)
    cause = (into.from_pid, into.from_tid) if advice == Advice.PTY_INPUT else (last, loop.tid if loop else last)
    return Verdict(VerdictClass.CYCLE, advice, chain.path, cause=cause, culprit=into.to_pid,
                   end=chain.end, ring=(into,))


# --- all of them -----------------------------------------------------------------------------


def rank(verdicts: Iterable[Verdict]) -> List[Verdict]:
    """Worst first: confirmed deadlocks, then cycles, then chain ends by how they end."""
    order = {VerdictClass.DEADLOCK: 0, VerdictClass.CYCLE: 1, VerdictClass.CHAIN_END: 2,
             VerdictClass.NOTHING: 3}
    return sorted(verdicts, key=lambda v: (order[v.cls], end_rank(v.end.kind) if v.end else 0))


def covered(verdicts: Iterable[Verdict]) -> FrozenSet[int]:
    """Processes a deadlock verdict already explains (its members and its victims)."""
    return frozenset(p for v in verdicts if v.cls == VerdictClass.DEADLOCK for p in v.members + v.victims)
