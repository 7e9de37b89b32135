"""The machine's incidents, ranked: what `waitchain --all` reports and `waitchain watch` watches.

One snapshot of the machine (or of target processes): every deadlock (a knot of stuck threads,
a process waiting for itself among them), and every chain of two or more processes that passes
a full buffer (a blocked write) or whose waits have all been blocked longer than
`min_blocked` seconds (a sleeping pipeline past it, a client behind a server holding its
request). A chain that ends in a running process is moving; an idle server nobody waits for
makes no chain. Each incident is one verdict (engine and verdict.py fold the chains that
run into the same place); they are ranked by severity (deadlock, cycle, full buffer,
blocked), then by how long they have been blocked, longest first.

An incident has a key that names it across scans (the watchdog reports it once until it
clears): a deadlock by its members, anything else by its class, advice and the thread it
ends at, each process named by (pid, starttime) so a reused pid is another incident."""

from __future__ import annotations


from .engine import Walks, diagnose_explored, explore_all
from .graph import Explored, blocked_writers, sources
from .model import Advice, Cycle, Diagnosis, EndKind, Reason, Verdict, VerdictClass
from .records import record
from .snapshot import Snapshot
from .waits import wait_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

    from .graph.explore import Rules

    Key = Tuple[int, int]

__all__ = ["DEFAULT_MIN_BLOCKED", "Incident", "Kind", "Scan", "scan", "rank", "incident_of", "verdict_threads"]

DEFAULT_MIN_BLOCKED = 10.0  # seconds


class Kind:
    """An incident's kind, worst first (its severity is its index in ORDER)."""

    DEADLOCK = "deadlock"
    CYCLE = "cycle"  # processes wait for each other, one of them idle (a request nobody serves)
    FULL_BUFFER = "full-buffer"  # the chain passes a write blocked on a full pipe or socket
    BLOCKED = "blocked"  # every wait on the chain has been blocked longer than min_blocked
    ORDER = (DEADLOCK, CYCLE, FULL_BUFFER, BLOCKED)


@record(frozen=True)
class Incident:
    """One verdict of the machine's, with what ranks it and names it across scans."""

    verdict: Verdict
    kind: str  # a Kind
    threads: Tuple[Key, ...]  # the threads whose waits make it (the knot, or the chain's waiters)
    blocked: Optional[float]  # seconds since the most recent of them last ran; None: unknown
    key: Tuple[object, ...]

    @property
    def severity(self) -> int:
        return Kind.ORDER.index(self.kind)

    @property
    def pids(self) -> Tuple[int, ...]:
        return tuple(dict.fromkeys(self.verdict.members + self.verdict.victims))


@record
class Scan:
    """One look at the machine: the diagnosis of all its incidents, the incidents worst
    first, and what it takes to diagnose one of them alone (a watchdog's report)."""

    diagnosis: Diagnosis
    incidents: List[Incident]
    explored: Explored
    cycles: List[Cycle]
    heads: List[int]

    def diagnosis_of(self, incident: Incident) -> Diagnosis:
        """The diagnosis of this incident alone: its chains and its verdict."""
        pids = set(incident.pids)
        starts = [c.start for c in self.diagnosis.chains if set(c.path) & pids]
        starts = list(dict.fromkeys(starts)) or [incident.verdict.members[0]]
        return diagnose_explored(self.explored, starts, self.cycles, lambda _: [incident.verdict])


def scan(snap: Snapshot, min_blocked: float = DEFAULT_MIN_BLOCKED,
         pids: Optional[Iterable[int]] = None, rules: Rules = wait_of) -> Scan:
    """The machine's incidents (or those reached from `pids`), worst first."""
    ex, cycles = explore_all(snap, rules, pids)
    trouble = {p for c in cycles if c.deadlock for p in c.members or c.pids}
    trouble |= blocked_writers(ex) | _waiting(ex)
    heads = sources(ex, trouble, cycles)
    found: Dict[Tuple[object, ...], Incident] = {}

    def select(verdicts: List[Verdict]) -> List[Verdict]:
        kept = _fold(_keep(ex, verdicts, min_blocked))
        found.clear()
        found.update((i.key, i) for i in kept)
        return [i.verdict for i in kept]

    walks = Walks(ex, cycles)  # the second diagnosis walks a subset of the first's starts
    first = diagnose_explored(ex, heads, cycles, select, walks)  # which heads have an incident
    leading = _heads_of(first, found.values())
    starts = [h for h in heads if h in leading]
    diag = diagnose_explored(ex, starts, cycles, select, walks)
    return Scan(diag, list(found.values()), ex, cycles, starts)


def _waiting(ex: Explored) -> Set[int]:
    """Processes with a thread that waits for another process with no way out of its own (or
    for a TCP peer on another host: the other host's document goes on, `waitchain merge`)."""
    return {w.pid for w in ex.waits.values() if not w.live and (any(e.to_pid != w.pid for e in w.edges) or (
        not w.edges and w.end is not None and w.end.reason == Reason.REMOTE_PEER))}


def _keep(ex: Explored, verdicts: Sequence[Verdict], min_blocked: float) -> List[Incident]:
    """The verdicts that are incidents, ranked."""
    return rank(i for i in (incident_of(ex, v) for v in verdicts) if i is not None and _counts(i, min_blocked))


def rank(incidents: Iterable[Incident]) -> List[Incident]:
    """Worst first: by severity (Kind.ORDER), then blocked longest first (unknown last)."""
    return sorted(incidents, key=lambda i: (i.severity, i.blocked is None, -(i.blocked or 0.0), i.verdict.members))


def _counts(incident: Incident, min_blocked: float) -> bool:
    if incident.kind in (Kind.DEADLOCK, Kind.FULL_BUFFER):
        return True
    return incident.blocked is not None and incident.blocked >= min_blocked


def _fold(incidents: List[Incident]) -> List[Incident]:
    """Each incident once; a chain that is the tail of another incident's chain is part of
    it (the first, the worse, is kept)."""
    kept: List[Incident] = []
    keys: Set[Tuple[object, ...]] = set()
    tails = _Tails()
    for inc in incidents:
        path = inc.verdict.members
        if inc.key in keys or tails.longer_has(path):
            continue
        kept.append(inc)
        keys.add(inc.key)
        tails.add(path)
    return kept


class _Tails:
    """The paths kept so far, read backwards into a trie: whether a path is the tail of a
    longer kept one costs its own length, not the number of paths kept."""

    def __init__(self) -> None:
        self.root: Dict[int, dict] = {}

    def add(self, path: Tuple[int, ...]) -> None:
        node = self.root
        for pid in reversed(path):
            node = node.setdefault(pid, {})

    def longer_has(self, path: Tuple[int, ...]) -> bool:
        """path is the last part of a longer path added (a node of the trie with more below)."""
        node = self.root
        for pid in reversed(path):
            found = node.get(pid)
            if found is None:
                return False
            node = found
        return bool(node)


def incident_of(ex: Explored, v: Verdict) -> Optional[Incident]:
    """The verdict as an incident, or None when it is none: withdrawn (a thread moved), a
    cycle one of whose members can still go on, a chain of one process, or a chain that ends
    in a running process without a full buffer."""
    if v.moved or v.cls == VerdictClass.NOTHING or v.advice == Advice.WAIT_AND_SEE:
        return None  # moving, or a cycle a member can still leave
    threads = verdict_threads(ex, v)
    blocked = _blocked(ex.snap, threads)
    if v.cls == VerdictClass.DEADLOCK:
        return Incident(v, Kind.DEADLOCK, threads, blocked, ("deadlock",) + _named(ex.snap, v.members))
    if len(set(v.members)) < 2 and not _on_remote_peer(v):
        return None
    full = any(ex.writes_out(*k) for k in threads)
    if v.end is not None and v.end.kind == EndKind.RUNNING and not full:
        return None
    kind = Kind.FULL_BUFFER if full else Kind.CYCLE if v.cls == VerdictClass.CYCLE else Kind.BLOCKED
    cause = v.cause or (v.members[-1], v.members[-1])
    key = (kind, str(v.advice)) + _named(ex.snap, (cause[0],)) + (cause[1],)
    return Incident(v, kind, threads, blocked, key)


def _on_remote_peer(v: Verdict) -> bool:
    """A chain that ends at a TCP peer on another host: one process is enough (the rest of the
    chain is on the other host: `waitchain merge` joins the hosts' --all documents)."""
    return v.end is not None and v.end.kind == EndKind.REMOTE and v.end.reason == Reason.REMOTE_PEER


def verdict_threads(ex: Explored, v: Verdict) -> Tuple[Key, ...]:
    """The threads whose waits make the verdict: a deadlock's knot; along a chain, each
    process's threads that wait for the next, and the thread it ends in (not a running one)."""
    if v.cls == VerdictClass.DEADLOCK:
        return v.threads
    found: List[Key] = []
    path = v.members
    for a, b in zip(path, path[1:]):
        found += [(w.pid, w.tid) for w, _ in ex.edges_to(a, b)]
    end = v.end
    if end is not None and end.kind not in (EndKind.RUNNING, EndKind.CYCLE) and path:
        found.append((path[-1], end.tid if end.tid is not None else path[-1]))
    return tuple(k for k in dict.fromkeys(found) if k in ex.waits)  # a thread gone has no wait


def _blocked(snap: Snapshot, threads: Sequence[Key]) -> Optional[float]:
    """How long all of the threads have been blocked: since the most recent of them ran."""
    known = [s for s in (snap.idle_seconds(*k) for k in threads) if s is not None]
    return min(known) if known else None


def _named(snap: Snapshot, pids: Iterable[int]) -> Tuple[Tuple[int, int], ...]:
    """(pid, starttime) of each: a pid reused by another process names another incident."""
    return tuple(sorted((p, snap.processes[p].starttime if p in snap.processes else 0) for p in set(pids)))


def _heads_of(diag: Diagnosis, incidents: Iterable[Incident]) -> Set[int]:
    """The start processes whose chains lead into one of the incidents."""
    pids = {p for i in incidents for p in i.pids}
    return {c.start for c in diag.chains if set(c.path) & pids}
