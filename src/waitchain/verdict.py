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

from .graph import Explored, end_of, end_rank
from .graph.waitfor import Knot, Node, WaitFor, components
from .model import (Advice, Chain, Cycle, Edge, EdgeKind, EndKind, Mode, Reason, Verdict,
                    VerdictClass, Wait)
from .snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

    from .graph.waitfor import Key

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

    member_pids = {pid for pid, _ in knot.threads}

    def rank(key: Key) -> Tuple[int, int, bool, int, int]:
        inside = [e for e in ex.waits[key].edges if _hits(e, members, member_pids)]
        return (min((_edge_rank(e) for e in inside), default=WRITE_RANK), -incoming[key], key[0] == key[1]) + key

    return min(knot.threads, key=rank)


def _edge_rank(edge: Edge) -> int:
    return KIND_RANK.get(edge.kind, WRITE_RANK if edge.writing else READ_RANK)


def _hits(edge: Edge, members: Set[Key], member_pids: Set[int]) -> bool:
    if edge.to_tid is not None:
        return (edge.to_pid, edge.to_tid) in members
    return edge.to_pid in member_pids


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


WITNESS_WORK = 32  # a candidate whose exit freed this many of the knot's threads, not all
MAX_WITNESSES = 4  # parts that stay stuck kept per knot (see _Breaker._witness)


def kill_to_break(ex: Explored, knot: Knot, candidates: Sequence[int]) -> Optional[int]:
    """The first candidate whose exit ends the deadlock, None if no single one does. A
    process's exit ends the waits on it (its pipe and socket ends close, its locks are
    released, a parent's wait4 returns), except a process-shared mutex it owns, which
    stays locked; the rest of the knot is then worked out again."""
    breaker = _Breaker(ex, knot)
    for pid in dict.fromkeys(candidates):
        if breaker.breaks(pid):
            return pid
    return None


class _Breaker:
    """Whether one process's exit ends the whole knot: the same answer as working out the
    knot again without it (_knot_without: nothing left stuck), without rebuilding the graph
    per candidate. Every member is stuck and has no way out of its own, so once `gone` has
    exited a member's wait can only end through what that exit sets going: its waits that
    led only to `gone` end (those threads are no longer waiting), a file lock wait needing
    only `gone` ends, and from these the freeing spreads to the waits they (or their
    processes) can end, as in the fixpoint. The work per candidate is its waiters and
    what they free, not the whole knot (a member's indexes are built once); a part that
    stays stuck after a big failure answers later candidates at once (_witness). A knot
    made to defeat both still costs, at worst, candidates × what each one frees."""

    def __init__(self, ex: Explored, knot: Knot) -> None:
        self.ex, self.knot = ex, knot
        waits = [ex.waits[key] for key in knot.threads]
        of_pid: Dict[int, List[Key]] = defaultdict(list)
        for key in knot.threads:
            of_pid[key[0]].append(key)
        self.of_pid: Dict[int, List[Key]] = dict(of_pid)  # the knot's threads by process
        members = set(knot.threads)
        self.mutex_owners: Set[int] = set()  # processes whose exit leaves another member's mutex locked
        self.all_mode: Dict[Key, bool] = {}
        self.edge_pids: Dict[Key, Set[int]] = {}
        self.inside: Dict[Key, Dict[int, int]] = {}  # targets in the knot, by process
        self.by_thread: Dict[Key, List[Key]] = defaultdict(list)
        self.by_process: Dict[int, List[Key]] = defaultdict(list)
        self.to_pid: Dict[int, List[Key]] = defaultdict(list)
        self.slow = False
        self.gone = 0  # the candidate of the question being answered, and its state:
        self.absent: Set[Key] = set()  # members whose every edge led to gone: no longer waiting
        self.freed: Set[Key] = set()
        self.left: Dict[Key, int] = {}  # an AND wait's targets in the knot still stuck
        self.free_pids: Set[int] = set()
        self.queue: List[Key] = []
        self.witnesses: List[FrozenSet[int]] = []  # see _witness
        self.witnesses_made = 0
        for key, wait in zip(knot.threads, waits):
            self.mutex_owners.update(e.to_pid for e in wait.edges if e.kind == EdgeKind.MUTEX and e.to_pid != key[0])
            self.all_mode[key] = all(e.kind in LOCKS for e in wait.edges) or wait.mode == Mode.ALL
            targets = list(dict.fromkeys((e.to_pid, e.to_tid) for e in wait.edges))
            self.edge_pids[key] = {pid for pid, _ in targets}
            inside: Dict[int, int] = defaultdict(int)
            for pid, tid in targets:
                (self.by_process[pid] if tid is None else self.by_thread[(pid, tid)]).append(key)
                if ((pid, tid) in members) if tid is not None else (pid in self.of_pid):
                    inside[pid] += 1
            for pid in self.edge_pids[key]:
                self.to_pid[pid].append(key)
            self.inside[key] = inside
            # a member that could go on already (a way out, a target outside the knot that
            # frees an OR wait, an AND wait on nothing inside): not a stuck knot's member;
            # then the general recomputation answers
            outside = len(targets) > sum(inside.values())
            self.slow |= bool(wait.live) or not targets or (
                not sum(inside.values()) if self.all_mode[key] else outside)

    def breaks(self, gone: int) -> bool:
        if self.slow:
            left = _knot_without(self.ex, self.knot, gone)
            return left is not None and not left
        if gone in self.mutex_owners:
            return False
        if any(gone not in touches for touches in self.witnesses):
            return False  # a part of the knot that stays stuck whatever gone does
        self.gone = gone
        self.absent = {k for k in self.to_pid.get(gone, ()) if k[0] != gone and self.edge_pids[k] == {gone}}
        nodes = len(self.knot.threads) - len(self.of_pid.get(gone, ())) - len(self.absent)
        self.freed, self.left, self.free_pids, self.queue = set(), {}, set(), []
        present: Dict[int, int] = defaultdict(int)
        for key in self.absent:  # its wait ended: the thread is no longer waiting
            self._thread_free(key)
            present[key[0]] += 1
            if present[key[0]] == len(self.of_pid[key[0]]):  # no thread of it waits any more
                self._process_free(key[0])
        for key in self.to_pid.get(gone, ()):  # an AND wait on gone alone in the knot
            if self._node(key) and self.all_mode[key] and self._left(key) == 0:
                self._free(key)
        while self.queue:
            key = self.queue.pop()
            self._thread_free(key)
            self._process_free(key[0])
        if len(self.freed) == nodes:
            return True
        if len(self.freed) >= WITNESS_WORK and self.witnesses_made < MAX_WITNESSES:
            self.witnesses_made += 1
            self._witness()
        return False

    def _witness(self) -> None:
        """Keep a part of what stayed stuck that no other candidate can free either (a
        knot in the knot that neither has a thread of its own nor waits for it), with the
        processes that touch it: a candidate outside them answers at once. The knot of
        file-lock holders that a long ring waits on is no longer freed ring-long for each
        member of the ring."""
        stuck = set(self.knot.threads) - self.freed - self.absent - set(self.of_pid.get(self.gone, ()))

        def step(key: Key) -> List[Key]:
            out: List[Key] = []
            for pid, tid in dict.fromkeys((e.to_pid, e.to_tid) for e in self.ex.waits[key].edges):
                out += [(pid, tid)] if tid is not None else self.of_pid.get(pid, [])
            return [k for k in out if k in stuck]

        part = set(components([min(stuck)], step)[0])  # a sink: everything it reaches stays in it
        touches = {pid for pid, _ in part}
        for key in part:
            wait = self.ex.waits[key]
            touches |= self.edge_pids[key]
            inside = [self._in_part(e, part) for e in wait.edges]
            if not (any(inside) if self.all_mode[key] else all(inside)):
                return  # it stays stuck only while something outside it does: no witness
        self.witnesses.append(frozenset(touches))

    def _in_part(self, edge: Edge, part: Set[Key]) -> bool:
        """The edge's target is stuck as long as `part` is: a thread of it, or a process all of
        whose threads in the knot are in it."""
        if edge.to_tid is not None:
            return (edge.to_pid, edge.to_tid) in part
        threads = self.of_pid.get(edge.to_pid, ())
        return bool(threads) and all(k in part for k in threads)

    def _node(self, key: Key) -> bool:
        return key[0] != self.gone and key not in self.absent and key not in self.freed

    def _left(self, key: Key) -> int:
        left = self.left.get(key)
        if left is None:
            inside = self.inside[key]
            left = self.left[key] = sum(inside.values()) - inside.get(self.gone, 0)
        return left

    def _free(self, key: Key) -> None:
        self.freed.add(key)
        self.queue.append(key)

    def _thread_free(self, key: Key) -> None:
        self._hit(self.by_thread.get(key, ()))

    def _process_free(self, pid: int) -> None:
        if pid not in self.free_pids:
            self.free_pids.add(pid)
            self._hit(self.by_process.get(pid, ()))

    def _hit(self, waiters: Iterable[Key]) -> None:
        """A target of each waiter can act now: an OR wait ends, an AND wait needs one less."""
        for key in waiters:
            if not self._node(key):
                continue
            if self.all_mode[key]:
                self.left[key] = self._left(key) - 1
                if self.left[key]:
                    continue
            self._free(key)


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
    found = ex.edges_to(chain.path[-2], chain.path[-1])
    return found[0][1] if found else None


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
    return any(w.any_of for w, _ in ex.edges_to(server, client))


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
                 and not _sorted_has(ring.threads if ring else (), (w.pid, w.tid))), None)
    busy = any(w.end is not None and w.end.kind == EndKind.RUNNING for w in ex.thread_waits(last))
    partners = loop is not None and ex.waited_back(loop.pid, loop.tid)
    terminal = into is not None and into.kind == EdgeKind.PTY and _watches(ex, last, into.from_pid)
    if ring is None or into is None or not (partners or terminal) or busy:
        return Verdict(VerdictClass.CYCLE, Advice.WAIT_AND_SEE, chain.path, cause=(last, last),
                       end=chain.end, ring=(into,) if into else ())
    advice = (Advice.PTY_INPUT if into.kind == EdgeKind.PTY
              else Advice.HELD_REQUEST if read_request(into) else Advice.NO_REPLY)
    cause = (into.from_pid, into.from_tid) if advice == Advice.PTY_INPUT else (last, loop.tid if loop else last)
    return Verdict(VerdictClass.CYCLE, advice, chain.path, cause=cause, culprit=into.to_pid,
                   end=chain.end, ring=(into,))


def _sorted_has(keys: Sequence[Key], key: Key) -> bool:
    """key in keys, sorted (a cycle's threads are: graph.find_cycles), in log time."""
    from bisect import bisect_left  # imported when first needed: start-up (issue 14)

    i = bisect_left(keys, key)
    return i < len(keys) and keys[i] == key


# --- all of them -----------------------------------------------------------------------------


def rank(verdicts: Iterable[Verdict]) -> List[Verdict]:
    """Worst first: confirmed deadlocks, then cycles, then chain ends by how they end."""
    order = {VerdictClass.DEADLOCK: 0, VerdictClass.CYCLE: 1, VerdictClass.CHAIN_END: 2,
             VerdictClass.NOTHING: 3}
    return sorted(verdicts, key=lambda v: (order[v.cls], end_rank(v.end.kind) if v.end else 0))


def covered(verdicts: Iterable[Verdict]) -> FrozenSet[int]:
    """Processes a deadlock verdict already explains (its members and its victims)."""
    return frozenset(p for v in verdicts if v.cls == VerdictClass.DEADLOCK for p in v.members + v.victims)
