"""What every human-facing format says the same way: program names, durations, the steps of
a cycle, what the graph formats draw, the root cause's line of code. The verdicts' sentences
are in verdicts.py, the edges' labels in labels.py. Every string returned here is cleaned of
control characters."""

from __future__ import annotations

import os

from ..model import Chain, ChainEnd, Cycle, CycleShape, Diagnosis, Edge, EdgeKind, EndKind, Reason, Task, Wait
from ..names import program, short_cmdline
from ..sanitize import clean
from .labels import label, label_head
from .ends import chain_detail, detail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterator, List, Optional, Tuple

PROGRAM_WIDTH = 40
CALL_WIDTH = 64  # the call in a node of the graph formats


# --- names, durations -----------------------------------------------------------------


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
    where = place_text(diag, pid)  # kept whole: the program's words are cut first
    return ellipsize(" ".join(words), max(12, width - len(where))) + where


def place_text(diag: Diagnosis, pid: int) -> str:
    """` [on db1, docker 3f2a9c0d1b7e, pid 7 inside]`: where a process runs, when that is
    not plainly here: another host than the chain's start, a container, another pid
    namespace (a systemd unit only then: every process is in some unit)."""
    place = diag.places.get(pid)
    if place is None:
        return ""
    parts = []
    start = diag.places.get(diag.starts[0]) if diag.starts else None
    if place.host and start is not None and start.host and place.host != start.host:
        parts.append(f"on {clean(place.host)}")
    box = place.container
    if box is not None and (box.runtime or box.id):
        parts.append(clean(" ".join(w for w in (box.runtime or "container", box.id) if w)))
    elif box is not None and box.pod:
        parts.append(f"pod {clean(box.pod)}")
    elif box is not None and box.unit and place.ns_pid is not None:
        parts.append(clean(box.unit))
    if place.ns_pid is not None:
        parts.append(f"pid {place.ns_pid} inside")
    return f" [{', '.join(parts)}]" if parts else ""


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


def cut_words(text: str, width: int) -> str:
    """Like ellipsize, but at a word boundary when there is one in the second half (a
    picture's label reads "pipe holds 63.0 KiB/64 KiB, no room…", not "no roo…")."""
    if len(text) <= width:
        return text
    cut = text[: max(width - 1, 0)]
    space = cut.rfind(" ")
    if space >= width // 2 and text[len(cut)].isalnum() and cut[-1:].isalnum():
        cut = cut[:space]
    return cut.rstrip(" ,;:(-") + "…"


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


# --- waits, blocked-for ------------------------------------------------------------------


def call_name(wait: Optional[Wait]) -> str:
    return clean(wait.syscall or "?") if wait else "?"


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


def step_text(diag: Diagnosis, edge: Edge) -> str:
    """`9506 command-server.py waits in wait4() for its child 9509 dmesg.py`."""
    wait = diag.waits.get((edge.from_pid, edge.from_tid))
    if edge.kind == EdgeKind.REAP:
        return f"{name(diag, edge.from_pid)} exited, not reaped by its parent {name(diag, edge.to_pid)}"
    if edge.kind == EdgeKind.PTRACE:
        return f"{name(diag, edge.from_pid)} is stopped under ptrace by its tracer {name(diag, edge.to_pid)}"
    call = call_name(wait)
    who = f"{name(diag, edge.from_pid)} " + (f"waits in {call}()" if call != "?" else "waits")
    if edge.kind == "child":
        return f"{who} for its child {name(diag, edge.to_pid)}"
    return f"{who} for {name(diag, edge.to_pid)} ({clean(edge.object)}: {label_head(edge)})"


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
    return clean(what), cut_words(label(edge), 48)


def end_lines(end: ChainEnd) -> Tuple[str, str]:
    """The lines of the note where a chain ends: its kind and detail."""
    return end.kind.upper(), cut_words(clean(chain_detail(end)), 60)


# --- the root cause's place ---------------------------------------------------------------


def deadlock_of(diag: Diagnosis, pid: int) -> Optional[Cycle]:
    """The deadlocked cycle pid belongs to, if any."""
    return next((c for c in diag.cycles if c.deadlock and pid in c.pids), None)


def location_text(diag: Diagnosis, pid: int, tid: int) -> str:
    """`command-server.py:16 in run_command_for_client: p.wait()` from the stacks stage."""
    loc = None
    stack = diag.stacks.get((pid, tid))
    if stack is not None and stack.location is not None:
        loc = stack.location
    elif diag.root_cause is not None and (diag.root_cause.pid, diag.root_cause.tid) == (pid, tid):
        loc = diag.root_cause.location
    if loc is None:
        return ""
    text = f"{clean(os.path.basename(loc.file))}:{loc.line} in {clean(loc.function)}"
    return text + (f": {clean(loc.code.strip())}" if loc.code.strip() else "")


# --- cycles and chain ends in words ----------------------------------------------------------


def cycle_detail(diag: Diagnosis, cycle: Cycle) -> str:
    """Why the cycle is, or is not, a deadlock."""
    if cycle.shape == CycleShape.RING:
        return "every member waits for the next"
    if cycle.shape == CycleShape.KNOT:
        return f"a knot: every alternative of {', '.join(map(str, cycle.members))} leads back into the set"
    if cycle.shape == CycleShape.BEHIND:
        return "stuck behind another deadlock"
    if cycle.free is None:
        return "a member can still make progress"
    return f"{cycle.free[0]} can still make progress ({_how_free(diag, cycle)})"


def _how_free(diag: Diagnosis, cycle: Cycle) -> str:
    assert cycle.free is not None
    pid, tid = cycle.free
    wait = diag.waits.get((pid, tid))
    if wait is None:
        return f"thread {tid} is not stuck"
    if wait.end is not None and wait.end.kind == EndKind.RUNNING:
        return f"thread {tid} is running"
    call = f"its {call_name(wait)}()" if call_name(wait) != "?" else "its wait"
    if wait.live:
        return f"{call} also waits for {clean(detail(wait.live[0]))}"
    if cycle.free_via is None:
        return f"thread {tid} is not blocked on another process"
    to_pid, to_tid = cycle.free_via
    who = (f"thread {to_tid}" if to_tid is not None else
           "another of its threads" if to_pid == pid else str(to_pid))
    return f"{call} may be ended by {who}, which is not stuck"


def cycle_of(diag: Diagnosis, pid: Optional[int]) -> Optional[Cycle]:
    """The cycle pid is in, a deadlocked one first."""
    found = [c for c in diag.cycles if pid in (c.members or c.pids)]
    return min(found, key=lambda c: not c.deadlock) if found else None


def end_detail(diag: Diagnosis, end: ChainEnd, length: Optional[int] = None) -> str:
    """Where a chain ends, in words: back into a cycle (a deadlock or not), cut, or the
    ending wait's own description."""
    if end.kind == EndKind.CYCLE:
        cycle = cycle_of(diag, end.pid)
        if cycle is not None and cycle.deadlock:
            return f"back to {end.pid}: DEADLOCK"
        why = cycle_detail(diag, cycle) if cycle is not None else "a member can still make progress"
        return f"back to {end.pid}: a cycle, but not a deadlock: {why}"
    if end.reason == Reason.CUT:
        return "the chain goes on: cut" + (f" after {length} processes" if length else "")
    return clean(chain_detail(end))

