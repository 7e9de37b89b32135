"""What every human-facing format says the same way: program names, durations, sizes, the
steps of a cycle, what the graph formats draw, and the verdict (headline, root cause, what to
do now, what to fix). Every string returned here is cleaned of control characters."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from ..model import Chain, ChainEnd, Cycle, Diagnosis, Edge, Task, Wait
from ..names import program, short_cmdline
from ..sanitize import clean

PROGRAM_WIDTH = 40
CALL_WIDTH = 64  # the call in a node of the graph formats

HEADLINES = {
    "cycle": "CYCLE (not a deadlock)",
    "self": "DEADLOCK (the process waits for itself)",
    "running": "BUSY: the chain ends in a running process",
    "sleeping": "SLEEPING: the chain ends in a deliberate sleep",
    "idle": "IDLE SERVER: the chain ends at a server waiting for clients",
    "remote": "REMOTE: the chain leaves this host",
    "disk": "KERNEL WAIT: the chain ends in uninterruptible sleep (disk, NFS, FUSE)",
    "kernel": "KERNEL WAIT: the chain ends inside the kernel (a kernel lock, or a FUSE mount whose daemon is gone)",
    "terminal": "WAITING FOR INPUT: the chain ends at a terminal",
    "signal": "WAITING FOR A SIGNAL: the chain ends in a process that waits to be signalled",
    "stopped": "STOPPED: the chain ends in a stopped process",
    "unknown": "UNFOLLOWED: the chain ends in a wait waitchain cannot follow",
}


# --- names, durations, sizes -----------------------------------------------------------


def program_text(diag: Diagnosis, pid: int, width: int = PROGRAM_WIDTH) -> str:
    """`command-server.py --port 1` for `/usr/bin/python3 /srv/command-server.py --port 1`:
    the interpreter is dropped when the script names the program."""
    cmdline = diag.cmdlines.get(pid)
    if cmdline is None:
        proc = diag.processes.get(pid)
        return clean(proc.comm) if proc else "(gone)"
    words = short_cmdline(cmdline, 10_000).split(" ")
    if len(words) > 1 and words[1] == program(cmdline):
        words = words[1:]
    return ellipsize(" ".join(words), width)


def name(diag: Diagnosis, pid: int) -> str:
    """`9506 command-server.py`: a pid and the program a person would name."""
    return f"{pid} {program_name(diag, pid)}"


def program_name(diag: Diagnosis, pid: int) -> str:
    """`command-server.py`: the program a person would name."""
    cmdline = diag.cmdlines.get(pid)
    if cmdline is None:
        proc = diag.processes.get(pid)
        return clean(proc.comm) if proc else "(gone)"
    return ellipsize(program(cmdline), PROGRAM_WIDTH)


def ellipsize(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def duration(seconds: Optional[float]) -> str:
    """0.2s, 12s, 3m05s, 2h07m, 3d04h."""
    if seconds is None:
        return ""
    if seconds < 0.1:
        return "<0.1s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count / 1024:.1f} KiB"


_FILL = re.compile(r"\b(\d+)/(\d+) B\b")


def label(edge: Edge) -> str:
    """The edge's label for people: byte counts in KiB ("pipe full 64 KiB/64 KiB")."""
    return clean(_FILL.sub(lambda m: f"{size(int(m[1]))}/{size(int(m[2]))}", edge.label))


# --- waits, blocked-for ------------------------------------------------------------------


def waits_of(diag: Diagnosis, pid: int) -> List[Wait]:
    """The waits of every thread of pid."""
    return [w for (p, _), w in diag.waits.items() if p == pid]


def call_name(wait: Optional[Wait]) -> str:
    return clean(wait.what.split("(")[0]) if wait else "?"


def blocked_for(diag: Diagnosis, pid: int, tid: int) -> str:
    """How long the thread has not run, or `running`."""
    wait = diag.waits.get((pid, tid))
    if wait is not None and wait.end is not None and wait.end.kind == "running":
        return "running"
    return duration(diag.blocked_for.get((pid, tid)))


def waited_for(diag: Diagnosis, pid: int, tid: int) -> str:
    """How long the blocked thread has not run; "" when it is running or nobody knows."""
    waited = blocked_for(diag, pid, tid)
    return waited if waited != "running" else ""


def end_pid(chain: Chain) -> int:
    """The process where the chain ends."""
    return chain.end.pid if chain.end.pid is not None else chain.path[-1]


def edge_between(diag: Diagnosis, a: int, b: int, cycle: Optional[Cycle] = None) -> Optional[Edge]:
    """The edge a → b, preferring one from a thread the cycle names."""
    edges = [e for e in diag.edges if e.from_pid == a and e.to_pid == b]
    if cycle is not None:
        edges.sort(key=lambda e: (e.from_pid, e.from_tid) not in cycle.threads)
    return edges[0] if edges else None


def step_text(diag: Diagnosis, edge: Edge) -> str:
    """`9506 command-server.py waits in wait4() for its child 9509 dmesg.py`."""
    wait = diag.waits.get((edge.from_pid, edge.from_tid))
    who = f"{name(diag, edge.from_pid)} waits in {call_name(wait)}()"
    if edge.kind == "child":
        return f"{who} for its child {name(diag, edge.to_pid)}"
    return f"{who} for {name(diag, edge.to_pid)} ({clean(edge.object)}: {label(edge).split(';')[0]})"


def cycle_ring(diag: Diagnosis, cycle: Cycle) -> List[int]:
    """The cycle's pids starting at the root cause when it is a member."""
    ring = list(cycle.pids)
    cause = diag.root_cause.pid if diag.root_cause else None
    if cause in ring:
        ring = ring[ring.index(cause):] + ring[: ring.index(cause)]
    return ring


def cycle_edges(diag: Diagnosis, cycle: Cycle) -> List[Edge]:
    ring = cycle_ring(diag, cycle)
    pairs = zip(ring, ring[1:] + ring[:1])
    return [e for e in (edge_between(diag, a, b, cycle) for a, b in pairs) if e is not None]


def on_cycle(diag: Diagnosis, edge: Edge) -> bool:
    """The edge joins two members of a deadlocked cycle."""
    return any(c.deadlock and edge.from_pid in c.pids and edge.to_pid in c.pids
               for c in diag.cycles)


# --- the graph formats (DOT, Mermaid): what to draw ----------------------------------------


def by_netns(diag: Diagnosis) -> Dict[str, List[int]]:
    """The processes grouped by network namespace ("" when unknown)."""
    groups: Dict[str, List[int]] = {}
    for pid, proc in diag.processes.items():
        groups.setdefault(proc.netns or "", []).append(pid)
    return groups


def netns_id(netns: str) -> str:
    """`4026532291` for `net:[4026532291]`: a namespace as part of an identifier."""
    return "".join(ch for ch in netns if ch.isdigit()) or "unknown"


def unexamined(diag: Diagnosis) -> List[int]:
    """Processes an edge points at that the diagnosis did not examine."""
    return sorted({e.to_pid for e in diag.edges} - set(diag.processes))


def unique_edges(diag: Diagnosis) -> Iterator[Edge]:
    """The edges, each (from thread, to process and thread, object) once."""
    seen = set()
    for edge in diag.edges:
        key = (edge.from_pid, edge.from_tid, edge.to_pid, edge.to_tid, edge.object)
        if key not in seen:
            seen.add(key)
            yield edge


def chain_ends(diag: Diagnosis) -> List[Tuple[int, ChainEnd]]:
    """(pid, end) where the chains end, each (pid, thread, kind) once; cycles are left out
    (they are drawn as edges)."""
    ends: Dict[Tuple[int, Optional[int], str], Tuple[int, ChainEnd]] = {}
    for chain in diag.chains:
        if chain.end.kind != "cycle":
            pid = end_pid(chain)
            ends.setdefault((pid, chain.end.tid, chain.end.kind), (pid, chain.end))
    return list(ends.values())


def process_head(diag: Diagnosis, pid: int) -> str:
    """`23270 command-server.py`: the first line of a process's node."""
    return f"{pid} {program_text(diag, pid)}"


def thread_head(task: Task) -> str:
    """`thread 23271 worker [S]`: the first line of a thread's node."""
    return f"thread {task.tid} {clean(task.comm)} [{task.state}]"


def node_lines(diag: Diagnosis, pid: int, tid: int, head: str, idle: str = "") -> Tuple[str, str, str]:
    """The lines of a node: its head, the call (`idle` when the thread waits for nothing),
    and how long it has been blocked ("" for the lines to leave out)."""
    wait = diag.waits.get((pid, tid))
    waited = waited_for(diag, pid, tid)
    return (head, ellipsize(clean(wait.what if wait else idle), CALL_WIDTH),
            f"blocked {waited}" if waited else "")


def edge_lines(edge: Edge) -> Tuple[str, str]:
    """The lines of an edge: its kind and object, and its label."""
    what = edge.object if edge.object.startswith(edge.kind) else f"{edge.kind} {edge.object}"
    return clean(what), ellipsize(label(edge), 48)


def end_lines(end: ChainEnd) -> Tuple[str, str]:
    """The lines of the note where a chain ends: its kind and detail."""
    return end.kind.upper(), ellipsize(clean(end.detail), 60)


# --- the verdict ---------------------------------------------------------------------------


@dataclass
class Verdict:
    severity: str  # "bad" (deadlock), "warn" (a chain ends somewhere), "ok" (nothing blocked)
    headline: str
    steps: List[str] = field(default_factory=list)  # the cycle, one line per member
    cause: str = ""  # "9506 command-server.py in wait4(), blocked for 12s"
    location: str = ""  # "command-server.py:16 in run_command_for_client: p.wait()"
    now: List[str] = field(default_factory=list)  # to unstick it now
    fix: List[str] = field(default_factory=list)  # to stop it happening again
    others: List[str] = field(default_factory=list)  # other chains' ends
    thread: Optional[Tuple[int, int]] = None  # the thread to name as the cause, if not the root cause's


def verdict(diag: Diagnosis) -> Verdict:
    cause = diag.root_cause
    if cause is None and not diag.starts:
        return Verdict("ok", "NOTHING FOUND: no chain on this machine ends in a deadlock or a blocked write",
                       now=["nothing to do here; to look at one process, give its pid: waitchain PID"])
    if cause is None:
        return Verdict("ok", "NOTHING BLOCKED: no wait chain found from here",
                       now=["nothing to do: the process is not waiting for another process"])
    cycle = deadlock_of(diag, cause.pid)
    chain = _chain_of(diag, cause.pid)
    if cycle is not None:
        result = _deadlock_verdict(diag, cycle)
    else:
        result = _end_verdict(diag, chain)
    pid, tid = result.thread or (cause.pid, cause.tid)
    syscall = cause.syscall if result.thread is None else call_name(diag.waits.get((pid, tid)))
    result.cause = _cause_text(diag, pid, tid, syscall)
    result.location = location_text(diag, pid, tid)
    result.others = _other_ends(diag, chain)
    return result


def deadlock_of(diag: Diagnosis, pid: int) -> Optional[Cycle]:
    """The deadlocked cycle pid belongs to, if any."""
    return next((c for c in diag.cycles if c.deadlock and pid in c.pids), None)


def _chain_of(diag: Diagnosis, pid: int) -> Optional[Chain]:
    ranked = sorted(diag.chains, key=lambda c: (c.path[-1] != pid, c.end.kind != "self"))
    return ranked[0] if ranked else None


def _cause_text(diag: Diagnosis, pid: int, tid: int, syscall: str) -> str:
    text = name(diag, pid)
    if tid != pid:
        text += f" thread {tid}"
    if syscall:
        text += f" in {clean(syscall)}()"
    waited = waited_for(diag, pid, tid)
    if waited:
        text += f", blocked for {waited}"
    return text


def location_text(diag: Diagnosis, pid: int, tid: int) -> str:
    """`command-server.py:16 in run_command_for_client: p.wait()` from the stacks stage."""
    loc = None
    stack = diag.stacks.get((pid, tid))
    if stack is not None and stack.location is not None:
        loc = stack.location
    elif diag.root_cause is not None and diag.root_cause.pid == pid:
        loc = diag.root_cause.location
    if loc is None:
        return ""
    text = f"{clean(os.path.basename(loc.file))}:{loc.line} in {clean(loc.function)}"
    return text + (f": {clean(loc.code.strip())}" if loc.code.strip() else "")


def _deadlock_verdict(diag: Diagnosis, cycle: Cycle) -> Verdict:
    edges = cycle_edges(diag, cycle)
    members = " and ".join(name(diag, p) for p in cycle_ring(diag, cycle)) if len(cycle.pids) <= 3 \
        else f"{len(cycle.pids)} processes"
    headline = f"DEADLOCK: {members} wait for each other; it will not clear by itself"
    if len(cycle.pids) == 1:
        headline = f"DEADLOCK: {members} waits for itself; it will not clear by itself"
    now, fix = _deadlock_advice(diag, edges)
    return Verdict("bad", headline, [step_text(diag, e) for e in edges], now=now, fix=fix)


def _deadlock_advice(diag: Diagnosis, edges: List[Edge]) -> Tuple[List[str], List[str]]:
    child = next((e for e in edges if e.kind == "child"), None)
    back = next((e for e in edges if child and e.from_pid == child.to_pid
                 and e.to_pid == child.from_pid and e.kind in ("pipe", "fifo")), None)
    if child is not None and back is not None:
        parent = name(diag, child.from_pid)
        return ([f"kill {child.to_pid} ({program_name(diag, child.to_pid)}): {parent} stops waiting and the chain unwinds; "
                 "the child's unread output is lost"],
                [f"{parent} waits for a child whose output pipe it does not read: read the output "
                 "until EOF first, then wait (Python: out, _ = p.communicate() instead of p.wait())"])
    cause = diag.root_cause.pid if diag.root_cause else edges[0].from_pid
    return ([f"kill {cause} ({program_name(diag, cause)}, the root cause) breaks the cycle; "
             "or restart the service it belongs to"],
            ["every member waits for the next: make one side stop blocking (read and write "
             "concurrently, add a timeout, or take locks in one order)"])


def _end_verdict(diag: Diagnosis, chain: Optional[Chain]) -> Verdict:
    if chain is None:
        return Verdict("warn", HEADLINES["unknown"])
    end = chain.end
    pid = end_pid(chain)
    if end.kind == "cycle":
        return _open_cycle_verdict(diag, chain)
    if end.kind == "unknown":
        locked = _python_lock_verdict(diag, chain.path[-1])
        if locked is not None:
            return locked
    severity = "bad" if end.kind == "self" else "warn"
    headline = HEADLINES.get(end.kind, f"{clean(end.kind).upper()}")
    if end.kind == "idle" and not _serves(end.detail):
        headline = IDLE_OTHER
    if end.kind == "idle" and _serves(end.detail) and len(chain.path) > 1:
        into = edge_between(diag, chain.path[-2], chain.path[-1])
        if into is not None and into.kind in ("pipe", "fifo"):
            return _idle_pipe_verdict(diag, chain, into)
    steps = [f"the chain ends at {name(diag, pid)}: {clean(end.detail)}"]
    now, fix = ADVICE.get(end.kind, _unknown_advice)(diag, pid, end.tid or pid, clean(end.detail))
    return Verdict(severity, headline, steps, now=now, fix=fix)


def _other_ends(diag: Diagnosis, main: Optional[Chain]) -> List[str]:
    """Where the other chains end, each place once, leaving out the main chain's end."""
    def key(chain: Chain) -> str:
        return f"{name(diag, chain.path[-1])}: {clean(chain.end.kind)}: {clean(chain.end.detail)}"

    seen = {key(main): False} if main is not None else {}
    for chain in diag.chains:
        if chain is main or chain.end.kind == "cycle":
            continue
        seen.setdefault(key(chain), True)
    return [text for text, other in seen.items() if other]


# --- chains that end where no process is stuck for good -------------------------------------

IDLE_OTHER = "IDLE: the chain ends at a process that waits for an event no other process is about to cause"
# Python-level waits on a lock (stacks/labels.py), which records no owner.
PYTHON_LOCK_WAITS = ("waits for a lock (with statement)", "waits in lock.acquire")


def _serves(detail: str) -> bool:
    """An idle end at a server waiting for clients (accept, a listening socket)."""
    return "listening socket" in detail or "waits for a client" in detail


def _open_cycle_verdict(diag: Diagnosis, chain: Chain) -> Verdict:
    """A cycle that is not a deadlock: a member can still go on. When that member is idle in
    an event loop (poll, epoll) and the one before it waits for its answer, say so."""
    ring = next((c for c in diag.cycles if chain.end.pid in (c.members or c.pids)), None)
    why = re.sub(r"^back to \d+: a cycle, but not a deadlock: ", "", clean(chain.end.detail))
    # The chain's last process closes the cycle. It is an idle event loop when it waits in
    # poll/epoll only for processes that themselves wait for it (its clients), and runs nothing.
    last = chain.path[-1]
    loop = next((w for w in waits_of(diag, last) if w.any_of and w.edges
                 and (w.pid, w.tid) not in (ring.threads if ring else ())), None)
    partners = loop is not None and all(
        any(e.from_pid == partner.to_pid and e.to_pid == last for e in diag.edges) for partner in loop.edges)
    busy = any(w.end is not None and w.end.kind == "running" for w in waits_of(diag, last))
    edge = edge_between(diag, chain.path[-2], last) if len(chain.path) > 1 else None
    if ring is None or edge is None or loop is None or not partners or busy:
        back = f"the chain ends back at {name(diag, chain.end.pid)}: " if chain.end.pid else ""
        return Verdict("warn", HEADLINES["cycle"], [back + why],
                       now=["a member can still make progress, so the cycle may resolve: run "
                            "waitchain again in a minute and compare"],
                       fix=[f"if it does not clear: {why}"])
    waiter, server = name(diag, edge.from_pid), name(diag, edge.to_pid)
    call = call_name(loop)
    steps = [step_text(diag, edge),
             f"{server} waits in {call}() for any of {loop.any_of} fds (an event loop), one of them "
             f"from {waiter}: it is idle, not stuck"]
    if edge.kind == "pty":
        return Verdict("warn", f"WAITING FOR INPUT: {waiter} reads a terminal whose other side, "
                       f"{server}, is idle: nobody is typing", steps, thread=(edge.from_pid, edge.from_tid),
                       now=[f"answer it where it runs: {server} holds its terminal (tmux: tmux ls, or "
                            f"tmux -S SOCKET ls for a server on its own socket, then attach; screen: "
                            f"screen -r), or kill {edge.from_pid}"],
                       fix=["for unattended runs, give it no terminal: stdin from /dev/null, or a "
                            "non-interactive flag"])
    return Verdict("warn", f"NO REPLY: {waiter} waits for {server}, which is idle in its event loop "
                   f"({call}()): not a deadlock, but nothing is working on the answer", steps,
                   now=[f"{server} is not busy and not blocked on another process: the answer waits on "
                        f"something inside it (a blocking command such as Redis BLPOP, an asyncio task "
                        f"awaiting an event, a queue or lock in its memory, a timer); check its logs "
                        f"and its own list of clients or requests (Python: py-spy dump --pid "
                        f"{edge.to_pid}; asyncio on Python >= 3.14: python3 -m asyncio pstree "
                        f"{edge.to_pid})"],
                   fix=[f"give {waiter} a timeout on the request, and make {server} answer or fail "
                        "when what it waits for does not come"])


def _idle_pipe_verdict(diag: Diagnosis, chain: Chain, into: Edge) -> Verdict:
    """The chain reached an idle server through a pipe, not a connection: a pipe its children
    inherited and that it never writes (a "parent is alive" or wake-up pipe, such as
    PostgreSQL's postmaster pipe). The waiter's real wait is inside the application."""
    waiter, server = name(diag, into.from_pid), name(diag, into.to_pid)
    title = clean(diag.cmdlines.get(into.from_pid, "")).strip()
    steps = [step_text(diag, into),
             f"the chain ends at {server}: {clean(chain.end.detail)}",
             f"{server} only accepts new clients; a pipe it never writes is usually a wake-up or "
             f"'parent is alive' pipe: {waiter} really waits for something inside the application "
             "(a lock, a latch, a signal)"]
    now = [f"ask the application what {into.from_pid} waits for"
           + (f" (its process title: {title})" if title else "")]
    if title.startswith("postgres:"):
        now.append(f"PostgreSQL: SELECT pid, pg_blocking_pids(pid), wait_event_type, wait_event, state, "
                   f"query FROM pg_stat_activity WHERE pid = {into.from_pid}; then waitchain each "
                   "blocking pid (a blocker 'idle in transaction' waits for its client)")
    return Verdict("warn", f"APPLICATION WAIT: {waiter} waits for something waitchain cannot see "
                   f"(it also watches a pipe of the idle {server})", steps,
                   thread=(into.from_pid, into.from_tid), now=now,
                   fix=["find the holder of what it waits for (a row or table lock, an in-memory "
                        "queue); give the waiter a timeout (PostgreSQL: lock_timeout)"])


def _python_lock_verdict(diag: Diagnosis, pid: int) -> Optional[Verdict]:
    """Threads blocked on Python locks (threading.Lock/RLock record no owner, so no edge)."""
    waiting = sorted((tid, stack) for (p, tid), stack in diag.stacks.items()
                     if p == pid and stack.label.startswith(PYTHON_LOCK_WAITS))
    if not waiting:
        return None
    where = []
    for tid, _ in waiting:
        at = location_text(diag, pid, tid)
        waited = waited_for(diag, pid, tid)
        where.append(f"thread {tid} waits for a lock" + (f" at {at}" if at else "")
                     + (f" (blocked {waited})" if waited else ""))
    who = name(diag, pid)
    if len(waiting) > 1:
        headline = (f"STUCK ON PYTHON LOCKS: {len(waiting)} threads of {who} wait for locks that "
                    "record no owner; if each holds a lock another wants, it is a deadlock")
        fix = ["take the locks in one order everywhere (or use one lock for both); "
               "lock.acquire(timeout=...) turns a silent hang into an error you can log"]
    else:
        headline = f"WAITING FOR A PYTHON LOCK: a thread of {who} waits for a lock that records no owner"
        fix = ["find the code path that took the lock and did not release it (an exception "
               "without `with`, a callback that blocks while holding it)"]
    return Verdict("warn", headline, where, thread=(pid, waiting[0][0]),
                   now=[f"py-spy dump --pid {pid} shows every thread: the holder is the one that took "
                        f"the lock and is now waiting elsewhere; if the threads wait for each other, "
                        f"only a restart of {who} clears it"],
                   fix=fix)


# Advice per end kind: (diag, pid, tid, detail) → (do now, fix).


def _self_advice(diag, pid, tid, detail):
    if "write end" in detail:
        return ([f"kill {pid} ({program_name(diag, pid)}): nothing else can wake it"],
                ["the process reads a pipe whose write end it still holds itself, so EOF never "
                 "comes: close the write end after fork (Python: close_fds=True; C: O_CLOEXEC / "
                 "close() in the child and the parent)"])
    return ([f"kill {pid} ({program_name(diag, pid)}): nothing else can wake it"],
            ["the process writes to a full pipe that only it reads: read it in another thread, "
             "or before writing more"])


def _running_advice(diag, pid, tid, detail):
    return ([f"see what it computes: py-spy dump --nonblocking --pid {pid} (Python), "
             f"top -H -p {pid}"],
            ["a busy process at the end of the chain is slow or looping, not blocked: "
             "profile it (py-spy top, perf top)"])


def _sleeping_advice(diag, pid, tid, detail):
    return ([f"it sleeps on purpose (a retry, backoff or poll interval): check its logs; "
             f"waitchain {pid} --stacks shows where"],
            ["if the sleep is a retry loop, find what it retries; if it should not wait, signal it"])


def _idle_advice(diag, pid, tid, detail):
    if _serves(detail):
        return ([f"the request never reached {name(diag, pid)}: check the address and port the "
                 "client uses, and whether it sent anything (--explain shows the sockets)"],
                ["the server is idle: the waiting is on the client side of the chain"])
    if "FIFO" in detail:
        return ([f"start the program that should open the other end of the FIFO, or kill {pid} "
                 f"({program_name(diag, pid)})"],
                ["start the other side of a FIFO first, or open it with O_NONBLOCK (or O_RDWR) "
                 "and a timeout"])
    if "inotify" in detail or "file-system events" in detail:
        return ([f"{name(diag, pid)} waits for a watched file to change (like tail -f): nothing is "
                 "stuck unless that file should be written; check its writer"],
                ["if it should not wait forever, give it a timeout (tail --pid, timeout(1))"])
    return ([f"{name(diag, pid)} waits for an event no other process is about to cause: {detail}"],
            ["find what should wake it (a writer, a sender, a timer) and why it does not; or add a "
             "timeout"])


def _remote_advice(diag, pid, tid, detail):
    port = re.search(r":(\d+) is on another host", detail)
    where = f" (ss -tnp 'sport = :{port[1]}' there names the process)" if port else ""
    return ([f"continue on the remote host: ssh to it and run sudo waitchain PID{where}"],
            ["the hang is on the other host, or in the network between (check with ss -ti here)"])


def _disk_advice(diag, pid, tid, detail):
    return ([f"cat /proc/{pid}/task/{tid}/stack (as root) names the kernel wait; check dmesg for "
             "I/O errors and mount for hung NFS or FUSE file systems"],
            ["a D-state process cannot be killed until the I/O returns: fix the storage, the "
             "network file system, or the FUSE daemon"])


def _terminal_advice(diag, pid, tid, detail):
    return ([f"it waits for someone to type: find its terminal (ls -l /proc/{pid}/fd/0) and "
             "answer it, or kill it"],
            ["for unattended runs, give it no terminal: stdin from /dev/null, or a non-interactive flag"])


def _stopped_advice(diag, pid, tid, detail):
    return ([f"kill -CONT {pid} resumes it; grep TracerPid /proc/{pid}/status names a debugger "
             "that holds it"],
            ["find who stopped it: a shell's Ctrl-Z, a debugger, or a SIGSTOP from a supervisor"])


def _signal_advice(diag, pid, tid, detail):
    return ([f"find who should signal {name(diag, pid)} (a parent, a supervisor, a timer); "
             f"grep SigCgt /proc/{pid}/status shows what it catches"],
            ["a process that waits for a signal nobody sends: check the sender, or add a timeout"])


def _unknown_advice(diag, pid, tid, detail):
    return ([f"check by hand: cat /proc/{pid}/task/{tid}/syscall and .../wchan "
             "(waitchain --explain prints the commands)"],
            ["waitchain cannot follow this wait yet; the stacks (--stacks) show where the code waits"])


def _cycle_advice(diag, pid, tid, detail):
    return (["a member can still make progress, so the cycle may resolve: run waitchain again "
             "in a minute and compare"],
            [f"if it does not clear: {detail}"])


ADVICE = {
    "cycle": _cycle_advice, "self": _self_advice, "running": _running_advice, "sleeping": _sleeping_advice,
    "idle": _idle_advice, "remote": _remote_advice, "disk": _disk_advice, "kernel": _disk_advice, "signal": _signal_advice,
    "terminal": _terminal_advice, "stopped": _stopped_advice, "unknown": _unknown_advice,
}
