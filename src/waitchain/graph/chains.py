"""Chains: every path from a start process along the wait-for edges, each to where it
ends (a process that waits for nothing further, or back into the path: a cycle)."""

from __future__ import annotations


from ..model import Chain, ChainEnd, Cycle, EdgeKind, End, EndKind, PtySide, Reason
from ..waits.ends import live_end
from .explore import GONE, Explored

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Collection, Dict, List, Optional, Set, Tuple

MAX_CHAINS = 64  # per start process
MAX_DEPTH = 4096  # processes on one chain
# Which end explains a wait best, first: busy or in the kernel, then the waits that never end
# by themselves (stopped, a person, another host, a signal, an idle peer), then a sleep or a
# timeout, which will (a sibling's sleep with time left is not why a prompt hangs).
END_PRIORITY = [EndKind.RUNNING, EndKind.DISK, EndKind.KERNEL, EndKind.STOPPED,
                EndKind.TERMINAL, EndKind.REMOTE, EndKind.SIGNAL, EndKind.IDLE, EndKind.SLEEPING,
                EndKind.UNKNOWN]
# Which thread's end speaks for its process: a sleeping thread works, with pauses; its
# siblings' signal waits and idle loops are the process's plumbing (fusepy's handler sleeps
# while its main thread waits for signals).
THREAD_PRIORITY = [EndKind.RUNNING, EndKind.DISK, EndKind.KERNEL, EndKind.STOPPED,
                   EndKind.TERMINAL, EndKind.REMOTE, EndKind.SLEEPING, EndKind.SIGNAL, EndKind.IDLE,
                   EndKind.UNKNOWN]
# A branch of an OR wait (poll, epoll) that ends at once in one of these is an idle alternative;
# of idle alternatives only, those that rest (wait for signals or clients) say least.
RESTING = {EndKind.SIGNAL, EndKind.IDLE}
IDLE_ENDS = {EndKind.IDLE, EndKind.SLEEPING, EndKind.RUNNING, EndKind.SIGNAL}


def end_rank(kind: str) -> int:
    return END_PRIORITY.index(kind) if kind in END_PRIORITY else len(END_PRIORITY)  # type: ignore[arg-type]


def end_of(ex: Explored, pid: int) -> Tuple[End, Optional[int]]:
    """Why a process with no outgoing edge waits for nothing further, and which thread."""
    waits = ex.thread_waits(pid)
    ends = [(w.end, w.tid) for w in waits if w.end is not None]
    ends += [(live_end(w.any_of, w.live), w.tid) for w in waits if w.end is None and w.live]
    if not ends:
        return GONE, None
    return min(ends, key=lambda e: _thread_end_rank(e[0]))


def _thread_end_rank(end: End) -> float:
    """THREAD_PRIORITY, except that a thread waiting for clients says more about a server
    than its helper threads' sleeps and signal waits."""
    rank = THREAD_PRIORITY.index
    if end.kind == EndKind.IDLE and end.reason == Reason.ACCEPT:
        return rank(EndKind.SLEEPING) - 0.5
    return rank(end.kind) if end.kind in THREAD_PRIORITY else len(THREAD_PRIORITY)


def walk_chains(ex: Explored, start: int, cycle_of: Dict[int, Cycle]) -> List[Chain]:
    """Every path from start along the edges, each to where it ends (depth-first)."""
    return Walker(ex, cycle_of).walk(start)


class Walker:
    """Walks the chains of start processes over one explored graph, depth-first, in time
    linear in what it walks: the path is one list (with a set of its processes) that the
    walk grows and cuts back, a chain's path is copied only when the chain ends, and each
    process's branches are worked out once for all starts (they depend on the way in only
    through a terminal: see _successors), so that many starts through one hub (an event
    loop's clients) do not each pay for its edges."""

    def __init__(self, ex: Explored, cycle_of: Dict[int, Cycle]) -> None:
        self.ex = ex
        self.cycle_of = cycle_of
        self._branches: Dict[Tuple[int, bool], Tuple[List[int], Dict[int, int]]] = {}

    def branches(self, pid: int, prev: Optional[int]) -> Tuple[List[int], Dict[int, int]]:
        """_branches(pid) reached from prev, and each branch's index in it."""
        key = (pid, prev is not None and pid in self.ex.pty_masters(prev))
        found = self._branches.get(key)
        if found is None:
            nexts = _branches(self.ex, pid, self.cycle_of, prev)
            found = self._branches[key] = (nexts, {n: i for i, n in enumerate(nexts)})
        return found

    def walk(self, start: int) -> List[Chain]:
        """The chains in the order of a stack of (process, path) entries: a process's
        successors pushed last first (so walked first first), a successor already on the
        path ending a chain as a cycle at once; at most MAX_CHAINS, checked before each
        step; a path of MAX_DEPTH processes that goes on is cut."""
        chains: List[Chain] = []
        path, on_path = [start], {start}
        frames: List[List] = []  # [depth, successors, index of the next one to walk]
        self._expand(start, path, on_path, chains, frames)
        while frames and len(chains) < MAX_CHAINS:
            frame = frames[-1]
            depth, nexts, i = frame
            for gone in path[depth:]:
                on_path.discard(gone)
            del path[depth:]
            while i < len(nexts) and nexts[i] in on_path:
                i += 1
            if i == len(nexts):
                frames.pop()
                continue
            frame[2] = i + 1
            path.append(nexts[i])
            on_path.add(nexts[i])
            self._expand(start, path, on_path, chains, frames)
        return chains

    def _expand(self, start: int, path: List[int], on_path: Set[int], chains: List[Chain],
                frames: List[List]) -> None:
        pid = path[-1]
        nexts, index = self.branches(pid, path[-2] if len(path) > 1 else None)
        if not nexts:
            chains.append(Chain(start, tuple(path), _chain_end(self.ex, pid)))
            return
        if len(path) >= MAX_DEPTH:
            chains.append(Chain(start, tuple(path), ChainEnd(EndKind.UNKNOWN, "", pid, reason=Reason.CUT)))
            return
        if len(path) < len(nexts):  # the successors back on the path, last first
            back = sorted((index[p] for p in path if p in index), reverse=True)
        else:
            back = [i for i in range(len(nexts) - 1, -1, -1) if nexts[i] in on_path]
        if back:
            here = tuple(path)
            chains += [Chain(start, here, ChainEnd(EndKind.CYCLE, "", nexts[i])) for i in back]
        frames.append([len(path), nexts, 0])


def _branches(ex: Explored, pid: int, cycle_of: Dict[int, Cycle], prev: Optional[int]) -> List[int]:
    """Successors to follow. Of an OR wait's alternatives (an event loop's connections),
    the idle ones are left out when another leads to trouble: a peer that ends at once in
    an idle, sleeping or running state, or only waits for this process in a cycle that is
    not a deadlock (a client waiting for the server's answer), says nothing new."""
    nexts = _successors(ex, pid, prev)
    cycle = cycle_of.get(pid)
    if pid in nexts and not (cycle is not None and cycle.deadlock):
        nexts = [n for n in nexts if n != pid]  # waits on its own threads, and one can act: no cycle
    if nexts and _wakes_up_alone(ex, pid, nexts, cycle_of):
        return []
    if len(nexts) < 2:
        return nexts
    plain = {e.to_pid for w in ex.thread_waits(pid) if not w.any_of for e in w.edges}
    idle = [n for n in nexts if n not in plain and _idle_branch(ex, pid, n, cycle_of)]
    if idle and len(idle) == len(nexts):  # all idle: leave out the peers that only wait for
        # signals (a master) or clients when others are at work (a proxy's upstream) or in a cycle
        rest = [n for n in idle if ex.successors(n) or end_of(ex, n)[0].kind not in RESTING]
        return rest or nexts
    return [n for n in nexts if n not in idle]


def _successors(ex: Explored, pid: int, prev: Optional[int]) -> List[int]:
    """pid's successors. Reached through a terminal (prev reads the slave of a pty whose
    master pid holds), only the input pid relays to it: its stdin, an ssh or tmux client
    socket, its own terminal. Not the output direction (pid reading a master waits for the
    programs on the slave, prev among them: `script` running a pager is no cycle), not its
    other terminals, not the children whose exit it also waits for (a tmux server's other
    windows are other business)."""
    nexts = ex.successors(pid)
    if prev is None or not _through_pty(ex, prev, pid):
        return nexts
    kept = (e.to_pid for w in ex.thread_waits(pid) for e in w.edges if e.kind != EdgeKind.SIGCHLD
            and not (e.kind == EdgeKind.PTY and e.pty is not None and e.pty.side == PtySide.MASTER))
    return list(dict.fromkeys(kept))


def _through_pty(ex: Explored, prev: int, pid: int) -> bool:
    """prev waits for pid as the holder of the master of a terminal prev reads or writes."""
    return pid in ex.pty_masters(prev)


def _wakes_up_alone(ex: Explored, pid: int, nexts: List[int], cycle_of: Dict[int, Cycle]) -> bool:
    """Every waiting thread is an OR wait with a live alternative (a latch, a timeout, a
    listener) and every edge leads only to idle processes (a PostgreSQL backend watching its
    latch and the postmaster's pipe) or back to a partner: nothing down those edges explains
    the wait, stop here. A sleeping or busy process down one (a proxy's upstream working on
    the answer) may explain it: then go on."""
    waits = [w for w in ex.thread_waits(pid) if w.edges]
    return all(w.live for w in waits) and all(_idle_branch(ex, pid, n, cycle_of, {EndKind.IDLE})
                                              for n in nexts)


def _idle_branch(ex: Explored, pid: int, nxt: int, cycle_of: Dict[int, Cycle],
                 idle: Collection[EndKind] = IDLE_ENDS) -> bool:
    """The branch to nxt ends at once in one of `idle`, or stays in a cycle with pid that
    is no deadlock (a client waiting for this server's answer, makes sharing a jobserver)."""
    after = [n for n in _successors(ex, nxt, pid) if n != nxt]  # its own threads are no way further
    if not after:
        return end_of(ex, nxt)[0].kind in idle
    cycle = cycle_of.get(nxt)
    if cycle is not None and not cycle.deadlock and pid in (cycle.members or cycle.pids):
        return True
    if after == [pid]:
        cycle = cycle_of.get(pid)
        return cycle is None or not cycle.deadlock
    return False


def _chain_end(ex: Explored, pid: int) -> ChainEnd:
    end, tid = end_of(ex, pid)
    return ChainEnd(end.kind, end.detail, pid, tid, end.reason, end.subject, end)
