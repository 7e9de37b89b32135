"""The verdicts in words: a headline, the steps of the cycle, the root cause and its line of
code, what to do now and what to fix, made from the verdict layer's structured verdicts
(model.Verdict: a class, an Advice code, the processes it concerns). Every format shows these
same sentences; every string is cleaned of control characters."""

from __future__ import annotations


from ..model import Advice, Chain, Diagnosis, Edge, EdgeKind, EndKind, Reason, Verdict, VerdictClass
from ..records import field, record
from ..sanitize import clean
from . import db
from .labels import LOCK_NOUNS
from .pylocks import get_before_join, lock_steps, multiprocessing_queue, thread_text
from .ends import chain_detail
from .common import (call_name, cycle_detail, cycle_of, location_text, name, program_name, step_text,
                     waited_for)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

HEADLINES = {
    EndKind.RUNNING: "BUSY: the chain ends in a running process",
    EndKind.SLEEPING: "SLEEPING: the chain ends in a deliberate sleep",
    EndKind.IDLE: "IDLE: the chain ends at a process that waits for an event no other process is about to cause",
    EndKind.REMOTE: "REMOTE: the chain leaves this host",
    EndKind.DISK: "KERNEL WAIT: the chain ends waiting for a disk or a file system (block I/O, NFS, FUSE)",
    EndKind.KERNEL: "KERNEL WAIT: the chain ends inside the kernel (a kernel lock, or a FUSE mount whose daemon is gone)",
    EndKind.TERMINAL: "WAITING FOR INPUT: the chain ends at a terminal",
    EndKind.SIGNAL: "WAITING FOR A SIGNAL: the chain ends in a process that waits to be signalled",
    EndKind.STOPPED: "STOPPED: the chain ends in a stopped process",
    EndKind.UNKNOWN: "UNFOLLOWED: the chain ends in a wait waitchain cannot follow",
}
IDLE_SERVER = "IDLE SERVER: the chain ends at a server waiting for clients"
KTHREAD = "KERNEL THREAD: not a user process: it has no fds and makes no system calls to follow"
NOT_READABLE = "UNKNOWN: the chain ends at something waitchain may not read (run as root)"
HELD_REQUEST = ("the server read the request and is holding it (an application-level blocking call: BLPOP, "
                "a long poll, a lock)")
INHERITED_PIPE = "INHERITED PIPE: the only writer left is a server that inherited the pipe and never writes it"


@record
class Summary:
    """One verdict as sentences."""

    severity: str  # "bad" (deadlock), "warn" (a chain ends somewhere), "ok" (nothing blocked)
    headline: str
    steps: List[str] = field(default_factory=list)  # the cycle, one line per member
    cause: str = ""  # "9506 command-server.py in wait4(), blocked for 12s"
    thread: Optional[Tuple[int, int]] = None  # (pid, tid) of the thread `cause` names
    location: str = ""  # "command-server.py:16 in run_command_for_client: p.wait()"
    now: List[str] = field(default_factory=list)  # to unstick it now
    fix: List[str] = field(default_factory=list)  # to stop it happening again
    others: List[str] = field(default_factory=list)  # other chains' ends


def summaries(diag: Diagnosis) -> List[Summary]:
    """Every verdict in words, worst first; one "nothing" summary when there is none."""
    if not diag.verdicts:
        return [_nothing(diag)]
    found = [summary_of(diag, v) for v in diag.verdicts]
    if len(diag.starts) == 1:  # with --all, the other chains are other incidents
        found[0].others = _other_ends(diag, diag.verdicts[0])
    return found


def summary(diag: Diagnosis) -> Summary:
    """The first (worst) verdict in words."""
    return summaries(diag)[0]


def summary_of(diag: Diagnosis, verdict: Verdict) -> Summary:
    if verdict.cls == VerdictClass.DEADLOCK:
        result = _deadlock(diag, verdict)
        result.steps += [s for p in verdict.members for s in lock_steps(diag, p)]  # Python locks
    elif verdict.moved:
        result = _withdrawn(diag, verdict)
    elif verdict.cls == VerdictClass.CYCLE:
        result = _cycle(diag, verdict)
    else:
        result = _python_locks(diag, verdict) or _chain_end(diag, verdict)
    if verdict.cause is not None and not result.cause:
        pid, tid = verdict.cause
        result.cause = cause_text(diag, pid, tid)
        result.thread = (pid, tid)
        result.location = location_text(diag, pid, tid)
    return result


def _nothing(diag: Diagnosis) -> Summary:
    if not diag.starts:
        return Summary("ok", "NOTHING FOUND: no chain on this machine ends in a deadlock or a blocked write",
                       now=["nothing to do here; to look at one process, give its pid: waitchain PID"])
    return Summary("ok", "NOTHING BLOCKED: no wait chain found from here",
                   now=["nothing to do: the process is not waiting for another process"])


def cause_text(diag: Diagnosis, pid: int, tid: int) -> str:
    """`9506 command-server.py in wait4(), blocked for 12s`."""
    text = name(diag, pid)
    if tid != pid:
        text += f" {thread_text(diag, pid, tid)}"
    call = call_name(diag.waits.get((pid, tid)))
    if call and call != "?":
        text += f" in {call}()"
    waited = waited_for(diag, pid, tid)
    return text + (f", blocked for {waited}" if waited else "")


# --- deadlocks ---------------------------------------------------------------------------


def _deadlock(diag: Diagnosis, v: Verdict) -> Summary:
    steps = _thread_steps(diag, v.threads) if v.advice == Advice.OWN_THREADS else [step_text(diag, e) for e in v.ring]
    if v.victims:
        steps.append("stuck behind it: " + ", ".join(name(diag, p) for p in v.victims[:6])
                     + (f" and {len(v.victims) - 6} more" if len(v.victims) > 6 else ""))
    now, fix = DEADLOCK_ADVICE.get(v.advice, _break_cycle)(diag, v)
    return Summary("bad", _deadlock_headline(diag, v), steps, now=now, fix=fix)


def _deadlock_headline(diag: Diagnosis, v: Verdict) -> str:
    if len(v.members) == 1 and len(v.threads) > 1:
        threads = ", ".join(str(t) for _, t in v.threads)
        return f"DEADLOCK: threads {threads} of {name(diag, v.members[0])} wait for each other; it will not clear by itself"
    if len(v.members) == 1:
        return f"DEADLOCK: {name(diag, v.members[0])} waits for itself; it will not clear by itself"
    ring = [e.from_pid for e in v.ring] or list(v.members)
    order = list(dict.fromkeys(ring + list(v.members)))
    members = " and ".join(name(diag, p) for p in order) if len(order) <= 3 else f"{len(order)} processes"
    return f"DEADLOCK: {members} wait for each other; it will not clear by itself"


def _kill(diag: Diagnosis, v: Verdict, effect: str) -> List[str]:
    """Do now: the process whose exit ends the deadlock (the verdict layer worked it out)."""
    if v.culprit is None:
        members = ", ".join(name(diag, p) for p in v.members)
        return [f"no single process's exit ends it (each lock or pipe has another holder in the "
                f"cycle): restart them together ({members})"]
    return [f"kill {v.culprit} ({program_name(diag, v.culprit)}): {effect}"]


def _read_before_wait(diag: Diagnosis, v: Verdict) -> Tuple[List[str], List[str]]:
    child = next(e for e in v.ring if e.kind == EdgeKind.CHILD)
    parent = name(diag, child.from_pid)
    effect = (f"{parent} stops waiting and the chain unwinds; the child's unread output is lost"
              if v.culprit == child.to_pid else "that ends the deadlock")
    if multiprocessing_queue(diag, child.from_pid, child.from_tid, child.to_pid):
        return (_kill(diag, v, effect), [get_before_join(diag, child.from_pid, child.to_pid)])
    return (_kill(diag, v, effect),
            [f"{parent} waits for a child whose output pipe it does not read: read the output "
             "until EOF first, then wait (Python: out, _ = p.communicate() instead of p.wait())"])


def _close_before_wait(diag: Diagnosis, v: Verdict) -> Tuple[List[str], List[str]]:
    child = next(e for e in v.ring if e.kind == EdgeKind.CHILD)
    parent = name(diag, child.from_pid)
    effect = (f"{parent} stops waiting; the child never reads the end of its input"
              if v.culprit == child.to_pid else "that ends the deadlock")
    return (_kill(diag, v, effect),
            [f"{parent} waits for a child that reads a pipe {parent} still holds open (its stdin), "
             "so the child never sees EOF: close it before waiting (Python: p.stdin.close(), or "
             "p.communicate(input) instead of p.wait())"])


def _own_write_end(diag: Diagnosis, v: Verdict) -> Tuple[List[str], List[str]]:
    return (_kill(diag, v, "nothing else can wake it"),
            ["the process reads a pipe whose write end only it holds, so EOF never comes: close "
             "the write end after fork (Python: close_fds=True; C: O_CLOEXEC / close() in the "
             "child and the parent), or have another thread write it"])


def _own_pipe(diag: Diagnosis, v: Verdict) -> Tuple[List[str], List[str]]:
    return (_kill(diag, v, "nothing else can wake it"),
            ["the process writes to a full pipe that only it reads: read it in another thread, "
             "or before writing more"])


def _lock_order(diag: Diagnosis, v: Verdict) -> Tuple[List[str], List[str]]:
    if v.ring and all(e.kind == EdgeKind.PG_LOCK for e in v.ring):  # database sessions
        return db.deadlock_advice(v.culprit)
    return (_kill(diag, v, "its locks are released when it exits and the others go on"),
            ["the threads take the same locks in opposite orders: take them in one order "
             "everywhere (or use one lock); a timed lock turns a silent hang into an error you can log"])


def _thread_steps(diag: Diagnosis, threads: Sequence[Tuple[int, int]]) -> List[str]:
    """A process's threads that wait for each other: each thread, its call and its line."""
    steps = []
    for pid, tid in threads:
        at = location_text(diag, pid, tid)
        stack = diag.stacks.get((pid, tid))
        what = f" ({clean(stack.label)})" if stack is not None and stack.label else ""
        steps.append(f"{thread_text(diag, pid, tid)} waits in {call_name(diag.waits.get((pid, tid)))}()"
                     + (f" at {at}" if at else "") + what)
    return steps


def _own_threads(diag: Diagnosis, v: Verdict) -> Tuple[List[str], List[str]]:
    return (_kill(diag, v, "no thread of it can go on: a restart is the only way out"),
            _own_threads_fix(diag, v.members[0], len(v.threads)))


def _own_threads_fix(diag: Diagnosis, pid: int, threads: int) -> List[str]:
    python = any(s.source == "py-spy" for (p, _), s in diag.stacks.items() if p == pid)
    if threads == 1:
        why = ("its only thread waits on a lock, condition or semaphore that no thread of it can "
               "release or signal: a lock it already holds, one a thread that has exited still "
               "holds, or one held at fork() by a thread of its parent (a child has only the "
               "thread that forked)")
    else:
        why = ("every thread waits on a lock, condition or semaphore that only another of its "
               "threads could release or signal, and none of them runs")
    if python:
        look = (f"py-spy dump --pid {pid} shows each thread's line: locks taken in opposite orders "
                "(take them in one order, or lock.acquire(timeout=...)); a future or queue only a "
                "busy worker of the same pool would serve (do not wait on a pool from inside it); a "
                "lock held at fork (fork before starting threads, or use the 'spawn' start method)")
    else:
        look = (f"gdb -p {pid} -batch -ex 'thread apply all bt' shows what each thread waits for (it "
                "stops the process for a moment): locks taken in opposite orders, a condition "
                "variable nobody signals, a lock held at fork() by a thread the child does not have")
    return [why + "; " + look]


def _break_cycle(diag: Diagnosis, v: Verdict) -> Tuple[List[str], List[str]]:
    return (_kill(diag, v, "that ends the deadlock; or restart the service it belongs to"),
            ["every member waits for the next: make one side stop blocking (read and write "
             "concurrently, add a timeout, or take locks in one order)"])


DEADLOCK_ADVICE: Dict[Advice, Callable[[Diagnosis, Verdict], Tuple[List[str], List[str]]]] = {
    Advice.READ_BEFORE_WAIT: _read_before_wait, Advice.CLOSE_BEFORE_WAIT: _close_before_wait,
    Advice.CLOSE_OWN_WRITE_END: _own_write_end, Advice.DRAIN_OWN_PIPE: _own_pipe,
    Advice.LOCK_ORDER: _lock_order, Advice.BREAK_CYCLE: _break_cycle, Advice.OWN_THREADS: _own_threads,
}


def _withdrawn(diag: Diagnosis, v: Verdict) -> Summary:
    moved = ", ".join(f"thread {t} of {p}" if t != p else str(p) for p, t in v.moved)
    if v.cls != VerdictClass.CYCLE:  # a chain's waits looked at again (--confirm): they moved
        return Summary("ok", f"MOVING (not stuck): a second look saw {moved} move: a slow but live "
                       "exchange, not a hang", [step_text(diag, e) for e in v.ring],
                       now=["nothing to do if it finishes; if it seems slow, look again with a longer --confirm"],
                       fix=["if it is too slow: see what the end of the chain spends its time on"])
    return Summary("warn", "CYCLE (not a deadlock): the members looked stuck, but a second look saw "
                   f"{moved} move", [step_text(diag, e) for e in v.ring],
                   now=["it is moving, perhaps slowly: run waitchain again in a minute and compare"],
                   fix=["if it keeps coming back: a slow exchange between these processes"])


# --- cycles that are not deadlocks ----------------------------------------------------------


def _cycle(diag: Diagnosis, v: Verdict) -> Summary:
    into = v.ring[0] if v.ring else None
    if v.advice == Advice.WAIT_AND_SEE or into is None:
        return _open_cycle(diag, v)
    if v.advice == Advice.PTY_INPUT:
        return _pty_input(diag, into, _loop_steps(diag, into))
    if v.advice == Advice.HELD_REQUEST:
        return _held_request(diag, into)
    return _no_reply(diag, into)


def _loop_steps(diag: Diagnosis, into: Edge) -> List[str]:
    """The waiter's edge, and the server idle in an event loop that watches the waiter."""
    waiter, server = name(diag, into.from_pid), name(diag, into.to_pid)
    loop = next((w for w in diag.waits_of(into.to_pid) if w.any_of and w.edges), None)
    return [step_text(diag, into),
            f"{server} waits in {call_name(loop)}() for any of {loop.any_of if loop else 0} fds "
            f"(an event loop), one of them from {waiter}: it is idle, not stuck"]


def _no_reply(diag: Diagnosis, into: Edge) -> Summary:
    waiter, server = name(diag, into.from_pid), name(diag, into.to_pid)
    loop = next((w for w in diag.waits_of(into.to_pid) if w.any_of and w.edges), None)
    call = call_name(loop)
    return Summary("warn", f"NO REPLY: {waiter} waits for {server}, which is idle in its event loop "
                   f"({call}()): not a deadlock, but nothing is working on the answer",
                   _loop_steps(diag, into),
                   now=[f"{server} is not busy and not blocked on another process: the answer waits on "
                        f"something inside it (a blocking command such as Redis BLPOP, an asyncio task "
                        f"awaiting an event, a queue or lock in its memory, a timer); check its logs "
                        f"and its own list of clients or requests (Python: py-spy dump --pid "
                        f"{into.to_pid}; asyncio on Python >= 3.14: python3 -m asyncio pstree "
                        f"{into.to_pid})"],
                   fix=[f"give {waiter} a timeout on the request, and make {server} answer or fail "
                        "when what it waits for does not come"])


def _held_request(diag: Diagnosis, into: Edge, detail: str = "") -> Summary:
    """An idle server whose socket shows it read the waiter's request (nothing unread, and
    for TCP bytes received): it holds the request on purpose until something happens."""
    waiter, server = name(diag, into.from_pid), name(diag, into.to_pid)
    loop = next((w for w in diag.waits_of(into.to_pid) if w.any_of and w.edges), None)
    steps = _loop_steps(diag, into) if loop is not None else [
        step_text(diag, into), f"the chain ends at {server}: {detail}"]
    got = f" ({into.peer_received} B received on the connection)" if into.peer_received else ""
    steps.append(f"{server} read the request: its socket holds nothing unread{got}")
    return Summary("warn", f"HELD REQUEST: {waiter} waits for {server}: {HELD_REQUEST}; not a deadlock",
                   steps,
                   now=[f"{server} answers when what the request waits for happens: find the request "
                        f"in its own list of blocked clients or requests (Redis: CLIENT LIST, cmd=blpop; "
                        f"a lock or queue in its memory: its logs; Python: py-spy dump --pid {into.to_pid}) "
                        f"and make that happen (Redis: push to the key), or kill {into.from_pid} if it "
                        "should not wait"],
                   fix=[f"if {waiter} should not wait forever, give the request a timeout (BLPOP key "
                        "SECONDS, a long poll's deadline, a lock timeout)"])


def _pty_input(diag: Diagnosis, into: Edge, steps: List[str]) -> Summary:
    waiter, server = name(diag, into.from_pid), name(diag, into.to_pid)
    typed = list(dict.fromkeys(e.subject for w in diag.waits_of(into.to_pid) for e in w.live
                               if e.reason == Reason.TERMINAL_INPUT and e.subject and not e.writing))
    if typed:  # tmux with an attached client: the server reads the client's terminal itself
        at = ", ".join(clean(t) for t in typed)
        return Summary("warn", f"WAITING FOR INPUT: {waiter} reads a terminal whose input {server} relays "
                       f"from {at}: nobody is typing there", steps,
                       now=[f"type at {at} (the terminal {server} reads its input from), or kill {into.from_pid}"],
                       fix=["for unattended runs, give it no terminal: stdin from /dev/null, or a "
                            "non-interactive flag"])
    return Summary("warn", f"WAITING FOR INPUT: {waiter} reads a terminal whose other side, "
                   f"{server}, is idle: nobody is typing", steps,
                   now=[f"answer it where it runs: {server} holds its terminal (tmux: tmux ls, or "
                        f"tmux -S SOCKET ls for a server on its own socket, then attach; screen: "
                        f"screen -r), or kill {into.from_pid}"],
                   fix=["for unattended runs, give it no terminal: stdin from /dev/null, or a "
                        "non-interactive flag"])


def _open_cycle(diag: Diagnosis, v: Verdict) -> Summary:
    end = v.end
    back = f"the chain ends back at {name(diag, end.pid)}" if end is not None and end.pid else ""
    cycle = cycle_of(diag, end.pid) if end is not None else None
    why = cycle_detail(diag, cycle) if cycle is not None else "a member can still make progress"
    return Summary("warn", "CYCLE (not a deadlock)", [f"{back}: {why}" if back else why],
                   now=["a member can still make progress, so the cycle may resolve: run "
                        "waitchain again in a minute and compare"],
                   fix=[f"if it does not clear: {why}"])


# --- where a chain ends ------------------------------------------------------------------------


def _chain_end(diag: Diagnosis, v: Verdict) -> Summary:
    end = v.end
    assert end is not None
    pid = v.members[-1]
    tid = end.tid if end.tid is not None else pid
    detail = clean(chain_detail(end))
    if v.advice == Advice.APP_WAIT and v.ring:
        return _app_wait(diag, v.ring[0], detail)
    if v.advice == Advice.DB_LOCK:
        headline, steps, now, fix = db.lock_advice(pid, end.ending)
        return Summary("warn", headline, [clean(s) for s in steps], now=[clean(s) for s in now], fix=fix)
    if v.advice == Advice.PTY_INPUT and v.ring:
        return _pty_input(diag, v.ring[0], [step_text(diag, v.ring[0]),
                                            f"the chain ends at {name(diag, pid)}: {detail}"])
    if v.advice == Advice.NO_REPLY and v.ring:
        return _no_reply(diag, v.ring[0])
    if v.advice == Advice.HELD_REQUEST and v.ring:
        return _held_request(diag, v.ring[0], detail)
    if v.advice == Advice.SIGNAL_HANDLER:
        return _signal_handler(diag, pid, end.ending.signals if end.ending is not None else ())
    headline = {Advice.IDLE_SERVER: IDLE_SERVER, Advice.NOT_READABLE: NOT_READABLE, Advice.KERNEL_THREAD: KTHREAD,
                Advice.INHERITED_PIPE: INHERITED_PIPE}.get(
        v.advice, HEADLINES.get(end.kind, clean(str(end.kind)).upper()))
    if v.advice == Advice.REAP and v.ring:
        return _reap(diag, v.ring[0], detail)
    if v.advice == Advice.RELEASE_HOLDER and v.ring:
        return _release_holder(diag, v.ring[0], pid, detail)
    if v.advice == Advice.JOB_SLOTS and v.ring:
        return _job_slots(diag, v.ring[-1], pid, detail)
    steps = [clean(s) for s in db.chain_steps(diag, v.members)] + [f"the chain ends at {name(diag, pid)}: {detail}"]
    now, fix = END_ADVICE.get(v.advice, _unknown_advice)(diag, pid, tid, v)
    return Summary("warn", headline, steps, now=db.chain_now(diag, v.members) + now, fix=fix)


def _signal_handler(diag: Diagnosis, pid: int, signals: Tuple[str, ...]) -> Summary:
    """Every thread waits on the process's own futexes; a handler could still wake one."""
    who, which = name(diag, pid), ", ".join(signals) or "a signal"
    threads = tuple((pid, w.tid) for w in diag.waits_of(pid)
                    if any(e.kind == EdgeKind.FUTEX for e in w.edges))
    steps = _thread_steps(diag, threads)
    what = ("its only thread waits on a lock, condition or semaphore no thread of it can release"
            if len(threads) == 1 else "its threads wait for each other")
    return Summary("warn", f"STUCK UNLESS SIGNALLED: {what} ({who}); only a handler of {which} could "
                   "still wake it", steps,
                   now=[f"if nothing is meant to send {which} to {pid}, this is a deadlock: "
                        f"restart it (kill {pid}); a handler that only exits would end it too"],
                   fix=_own_threads_fix(diag, pid, len(threads)))


def _release_holder(diag: Diagnosis, into: Edge, pid: int, detail: str) -> Summary:
    what = f"the {LOCK_NOUNS.get(into.kind, 'lock')} on {clean(into.object)}"
    return Summary("warn", f"HELD: {name(diag, pid)} holds {what} that the chain waits for, and "
                   "does not release it while it waits",
                   [step_text(diag, into), f"the chain ends at {name(diag, pid)}: {detail}"],
                   now=[f"kill {pid} ({program_name(diag, pid)}): that releases {what}; or make it "
                        "finish what it waits for"],
                   fix=_release_fix(into))


def _release_fix(into: Edge) -> List[str]:
    if into.retry is not None:  # a retry loop (a busy timeout) has its timeout already
        return ["do not hold a lock (an open transaction) while sleeping or waiting for something "
                "else; the waiter retries until its own timeout (sqlite's busy timeout), then fails"]
    return ["do not hold a lock while sleeping or waiting for something else; give the waiter a "
            "timeout (flock -w, pthread_mutex_timedlock)"]


def _job_slots(diag: Diagnosis, slot: Edge, pid: int, detail: str) -> Summary:
    """A make -j recipe waits on a FIFO open while make waits for a free job slot: the FIFO's
    other side may be a recipe make cannot start until a running one ends."""
    make = name(diag, slot.from_pid)
    return Summary("warn", f"JOB SLOTS: {make} waits for a free job slot to start more recipes, and the "
                   f"chain ends at {name(diag, pid)}, which waits on a FIFO nobody has opened",
                   [f"{make} waits in {call_name(diag.waits.get((slot.from_pid, slot.from_tid)))}() for a "
                    "token on its jobserver pipe (a free job slot) or for a running recipe to exit",
                    f"the chain ends at {name(diag, pid)}: {detail}",
                    "if the FIFO's other side is a recipe make has not started, neither can go on: the "
                    "build is deadlocked"],
                   now=[f"run make with more jobs (a larger -j) so that both sides of the FIFO run at "
                        f"once, or kill {pid} ({program_name(diag, pid)}): its recipe fails and frees a slot"],
                   fix=["a recipe that waits on a FIFO must not hold the job slot its other side needs: run "
                        "both sides in one recipe (writer > fifo & reader < fifo; wait), or use a pipe or a file"])


def _app_wait(diag: Diagnosis, into: Edge, detail: str) -> Summary:
    """The chain reached an idle server through a pipe, not a connection: a pipe its children
    inherited and that it never writes (a "parent is alive" or wake-up pipe, such as
    PostgreSQL's postmaster pipe). The waiter's real wait is inside the application."""
    waiter, server = name(diag, into.from_pid), name(diag, into.to_pid)
    title = clean(diag.cmdlines.get(into.from_pid, "")).strip()
    steps = [step_text(diag, into), f"the chain ends at {server}: {detail}",
             f"{server} only accepts new clients; a pipe it never writes is usually a wake-up or "
             f"'parent is alive' pipe: {waiter} really waits for something inside the application "
             "(a lock, a latch, a signal)"]
    now = [f"ask the application what {into.from_pid} waits for" + (f" (its process title: {title})" if title else "")]
    if title.startswith("postgres:"):
        now.append(f"PostgreSQL: SELECT pid, pg_blocking_pids(pid), wait_event_type, wait_event, state, "
                   f"query FROM pg_stat_activity WHERE pid = {into.from_pid}; then waitchain each "
                   "blocking pid (a blocker 'idle in transaction' waits for its client)")
    return Summary("warn", f"APPLICATION WAIT: {waiter} waits for something waitchain cannot see "
                   f"(it also watches a pipe of the idle {server})", steps, now=now,
                   fix=["find the holder of what it waits for (a row or table lock, an in-memory "
                        "queue); give the waiter a timeout (PostgreSQL: lock_timeout)"])


def _python_locks(diag: Diagnosis, v: Verdict) -> Optional[Summary]:
    """Threads blocked on Python locks (threading.Lock/RLock record no owner, so no edge)."""
    if v.end is None or v.end.kind != EndKind.UNKNOWN:
        return None
    pid = v.members[-1]
    waiting = sorted(tid for (p, tid), stack in diag.stacks.items() if p == pid and stack.on_lock)
    if not waiting:
        return None
    where = []
    for tid in waiting:
        at = location_text(diag, pid, tid)
        waited = waited_for(diag, pid, tid)
        where.append(f"{thread_text(diag, pid, tid)} waits for a lock" + (f" at {at}" if at else "")
                     + (f" (blocked {waited})" if waited else ""))
    where += lock_steps(diag, pid)
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
    return Summary("warn", headline, where, cause=cause_text(diag, pid, waiting[0]),
                   thread=(pid, waiting[0]), location=location_text(diag, pid, waiting[0]),
                   now=[f"py-spy dump --pid {pid} shows every thread: the holder is the one that took "
                        f"the lock and is now waiting elsewhere; if the threads wait for each other, "
                        f"only a restart of {who} clears it"], fix=fix)


def _other_ends(diag: Diagnosis, main: Verdict) -> List[str]:
    """Where the other chains end, each place once, leaving out the main verdict's end."""
    def key(chain: Chain) -> str:
        return f"{name(diag, chain.path[-1])}: {clean(str(chain.end.kind))}: {clean(chain_detail(chain.end))}"

    shown = {key(c) for c in diag.chains if main.end is not None and c.end == main.end}
    out: List[str] = []
    for chain in diag.chains:
        text = key(chain)
        if chain.end.kind != EndKind.CYCLE and text not in shown and text not in out:
            out.append(text)
    return out


# Advice for a chain's end: (diag, pid, tid, verdict) → (do now, fix).


def _busy(diag, pid, tid, v):
    return ([f"see what it computes: py-spy dump --nonblocking --pid {pid} (Python), top -H -p {pid}"],
            ["a busy process at the end of the chain is slow or looping, not blocked: "
             "profile it (py-spy top, perf top)"])


def _sleeping(diag, pid, tid, v):
    return (["it sleeps on purpose (a retry, backoff or poll interval): check its logs; "
             + _where(diag, pid, tid)],
            ["if the sleep is a retry loop, find what it retries; if it should not wait, signal it"])


def _where(diag, pid, tid):
    """Where the code waits, never a circle: --stacks only when there is a stack to show."""
    if (pid, tid) in diag.stacks:
        return f"waitchain {pid} --stacks shows where"
    return (f"its stack was not read (a Python program needs py-spy; a native one: waitchain {pid} "
            "--native, which stops it briefly)")


def _idle_server(diag, pid, tid, v):
    if len(v.members) == 1:  # the server itself was asked about
        return ([f"nothing to do: {name(diag, pid)} is a server waiting for clients; nothing here is stuck"],
                ["if a client of it hangs, run waitchain on the client"])
    if v.ring and v.ring[0].kind == EdgeKind.CHILD:  # a wrapper running its server as a child
        return ([f"nothing to do: {name(diag, v.ring[0].from_pid)} waits for its child "
                 f"{name(diag, pid)}, a server waiting for clients; nothing here is stuck"],
                ["if a client of it hangs, run waitchain on the client"])
    return ([f"the request never reached {name(diag, pid)}: check the address and port the "
             "client uses, and whether it sent anything (--explain shows the sockets)"],
            ["the server is idle: the waiting is on the client side of the chain"])


def _fifo(diag, pid, tid, v):
    return ([f"start the program that should open the other end of the FIFO, or kill {pid} "
             f"({program_name(diag, pid)})"],
            ["start the other side of a FIFO first, or open it with O_NONBLOCK (or O_RDWR) and a timeout"])


def _file_events(diag, pid, tid, v):
    return ([f"{name(diag, pid)} waits for a watched file to change (like tail -f): nothing is "
             "stuck unless that file should be written; check its writer"],
            ["if it should not wait forever, give it a timeout (tail --pid, timeout(1))"])


def _idle(diag, pid, tid, v):
    return ([f"{name(diag, pid)} waits for an event no other process is about to cause: "
             f"{clean(chain_detail(v.end)) if v.end else ''}"],
            ["find what should wake it (a writer, a sender, a timer) and why it does not; or add a timeout"])


def _remote(diag, pid, tid, v):
    subject = v.end.subject if v.end is not None else ""
    port = subject.rpartition(":")[2] if subject else ""
    where = f" (ss -tnp 'sport = :{port}' there names the process)" if port.isdigit() else ""
    return ([f"continue on the remote host: ssh to it and run sudo waitchain PID{where}"],
            ["the hang is on the other host, or in the network between (check with ss -ti here)"])


def _disk(diag, pid, tid, v):
    return ([f"cat /proc/{pid}/task/{tid}/stack (as root) names the kernel wait; check dmesg for "
             "I/O errors and mount for hung NFS or FUSE file systems"],
            ["a D-state process cannot be killed until the I/O returns: fix the storage, the "
             "network file system, or the FUSE daemon"])


def _terminal(diag, pid, tid, v):
    where = v.end.subject if v.end is not None and v.end.subject.startswith("/dev/") else ""
    if where:
        return ([f"it waits for someone to type at {clean(where)}: answer it there, or kill {pid}"],
                ["for unattended runs, give it no terminal: stdin from /dev/null, or a non-interactive flag"])
    return ([f"it waits for someone to type: find its terminal (ls -l /proc/{pid}/fd/0) and answer it, or kill it"],
            ["for unattended runs, give it no terminal: stdin from /dev/null, or a non-interactive flag"])


def _stopped(diag, pid, tid, v):
    ending = v.end.ending if v.end is not None else None
    if ending is not None and ending.subject and ending.group is not None:
        return ([f"fg in the shell on {clean(ending.subject)} brings it back to the foreground (jobs lists it); "
                 f"kill -CONT {pid} resumes it in the background, where reading the terminal stops it again"],
                ["for unattended runs, give it no terminal: stdin from /dev/null, or run it in the foreground"])
    return ([f"kill -CONT {pid} resumes it; the kernel does not record who stopped it: a shell's Ctrl-Z "
             "(jobs, fg in that shell), a background job that read or wrote its terminal (SIGTTIN, "
             "SIGTTOU), or a SIGSTOP from a supervisor"],
            ["find who stopped it: a shell's Ctrl-Z, a debugger, or a SIGSTOP from a supervisor"])


def _kernel_thread(diag, pid, tid, v):
    return ([f"nothing to follow: {name(diag, pid)} is a kernel thread, not a user process; give the pid "
             f"of the program that hangs (cat /proc/{pid}/stack, as root, shows this thread's kernel wait)"],
            ["a kernel thread's wait is the kernel's: check dmesg if it stays in D state"])


def _reap(diag: Diagnosis, into: Edge, detail: str) -> Summary:
    zombie, parent = name(diag, into.from_pid), name(diag, into.to_pid)
    return Summary("warn", f"ZOMBIE: {zombie} exited, and its parent {parent} does not reap it",
                   [step_text(diag, into), f"the chain ends at {parent}: {detail}"],
                   now=[f"{parent} does not call wait() for it (where the chain ends says what it does instead); a "
                        f"zombie holds no memory, only its pid and exit status. Killing {into.to_pid} hands its "
                        "children to init (or a subreaper), which reaps them"],
                   fix=[f"make {parent} reap its children: wait()/waitpid() (in a SIGCHLD handler for an event "
                        "loop), Popen.wait() or communicate() in Python, or SIGCHLD set to SIG_IGN when no exit "
                        "status is needed"])


def _signal(diag, pid, tid, v):
    return ([f"find who should signal {name(diag, pid)} (a parent, a supervisor, a timer, or a process "
             f"it waits for inside the application, such as a database lock's holder); grep SigCgt "
             f"/proc/{pid}/status shows what it catches"],
            ["if nothing is meant to send it, the wait is a bug: check the sender, or add a timeout"])


def _inherited_pipe(diag, pid, tid, v):
    reader = name(diag, v.ring[0].from_pid) if v.ring else "the reader"
    return ([f"{reader} waits for EOF on a pipe whose write end {name(diag, pid)}, a server waiting "
             f"for clients, inherited: EOF comes only when {pid} exits or closes it"],
            ["start a background server with its output elsewhere (server >/dev/null 2>&1 &, as in "
             "out=$(...) or a pipe to a logger), or close inherited fds when it daemonizes"])


def _not_readable(diag, pid, tid, v):
    return (["run waitchain as root: the rest of the chain is in processes this user may not read"],
            ["nothing to fix yet: the chain is not known beyond this point"])


def _unknown_advice(diag, pid, tid, v):
    return ([f"check by hand: cat /proc/{pid}/task/{tid}/syscall and .../wchan "
             "(waitchain --explain prints the commands)"],
            ["waitchain cannot follow this wait yet; " + _where(diag, pid, tid)])


END_ADVICE = {
    Advice.BUSY: _busy, Advice.SLEEPING: _sleeping, Advice.IDLE_SERVER: _idle_server, Advice.FIFO: _fifo,
    Advice.FILE_EVENTS: _file_events, Advice.IDLE: _idle, Advice.REMOTE: _remote, Advice.DISK: _disk,
    Advice.TERMINAL: _terminal, Advice.STOPPED: _stopped, Advice.SIGNAL: _signal,
    Advice.NOT_READABLE: _not_readable, Advice.UNKNOWN: _unknown_advice,
    Advice.INHERITED_PIPE: _inherited_pipe, Advice.KERNEL_THREAD: _kernel_thread,
}
