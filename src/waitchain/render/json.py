"""--json: the versioned machine-readable form (schema waitchain/1, described by the JSON
Schema in waitchain/data/waitchain-1.schema.json).

Every field is named and converted here on purpose (enums become their values), so a change
to the model never changes the output by accident. New fields may be added to waitchain/1;
existing ones keep their names and meaning. The verdicts' sentences are the ones every other
format shows (render/verdicts.py)."""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as _quote  # the C function where there is one

from ..model import (Advice, Alternative, Chain, ChainEnd, Cycle, DbLock, DbSession, Diagnosis, Edge, End, FileLock, Named,
                     Frame, Fuse, Location, LockHold, PipeFill, Pty, Retry, Stack, Task, Verdict, VerdictClass)
from . import Options, hosts
from .common import cycle_detail, end_detail
from .labels import label
from .ends import detail as end_sentence
from .verdicts import Summary, summaries

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    Json = Dict[str, Any]

SCHEMA = "waitchain/1"
NOTHING = Verdict(VerdictClass.NOTHING, Advice.NOTHING, members=())  # what the text says when no verdict is


def render(diag: Diagnosis, options: Options = Options()) -> str:
    out = to_dict(diag)
    if options.explain:
        out["explain"] = explain(diag)
    return dumps(out) + "\n"


def dumps(obj: Any) -> str:
    """json.dumps(obj, indent=2, ensure_ascii=True), the same text: with an indent the standard
    library runs its pure-Python encoder, a generator per nesting level that every piece of
    text passes up through (~1/3 of `--all --json` at 1,000 processes). This one appends to a
    list, each scalar member in one piece with its key; strings are quoted by the same C
    function. Types as json.dumps takes them (str, int, float, bool, None, list, tuple,
    dict; their subclasses too); anything else is a TypeError, as there."""
    out: List[str] = []
    _value("", obj, 0, out.append)
    return "".join(out)


_INDENT = ["\n" + "  " * level for level in range(32)]


def _indent(level: int) -> str:
    return _INDENT[level] if level < len(_INDENT) else "\n" + "  " * level


def _scalar(obj: Any, level: int, put: Any) -> str:
    """The text of a scalar, in json.encoder's order of checks; "" after putting a
    container (a subclass of dict, list or tuple) itself."""
    if isinstance(obj, str):
        return _quote(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, (list, tuple)):
        _array(obj, level, put)
        return ""
    if isinstance(obj, dict):
        _object(obj, level, put)
        return ""
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == float("-inf"):
        return "-Infinity"
    return float.__repr__(value)


def _object(obj: Dict[Any, Any], level: int, put: Any) -> None:
    if not obj:
        put("{}")
        return
    inner = _indent(level + 1)
    sep = "{" + inner
    for key, value in obj.items():
        _value(sep + (_quote(key) if type(key) is str else _key(key)) + ": ", value, level + 1, put)
        sep = "," + inner
    put(_indent(level) + "}")


def _array(obj: Any, level: int, put: Any) -> None:
    if not obj:
        put("[]")
        return
    inner = _indent(level + 1)
    sep = "[" + inner
    for value in obj:
        _value(sep, value, level + 1, put)
        sep = "," + inner
    put(_indent(level) + "]")


def _value(head: str, value: Any, level: int, put: Any) -> None:
    """`head` (the separator, and the key in an object) and the value: a string or an int
    in one piece with it (most values are)."""
    kind = type(value)
    if kind is str:
        put(head + _quote(value))
    elif kind is int:
        put(head + int.__repr__(value))
    else:
        put(head)
        if kind is dict:
            _object(value, level, put)
        elif kind is list or kind is tuple:
            _array(value, level, put)
        else:
            put(_scalar(value, level, put))


def _key(key: Any) -> str:
    """A dict key that is not a str, as json.dumps writes it (skipkeys off)."""
    if isinstance(key, str):
        text = key
    elif isinstance(key, float):
        text = _float(key)
    elif key is True:
        text = "true"
    elif key is False:
        text = "false"
    elif key is None:
        text = "null"
    elif isinstance(key, int):
        text = int.__repr__(key)
    else:
        raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")
    return _quote(text)


def explain(diag: Diagnosis) -> List[Json]:
    """--json --explain: the commands that check each edge (by its index in "edges") and
    each chain's end (by its index in "chains") by hand, as --explain prints them."""
    from .explain import edge_checks, end_checks

    out: List[Json] = []
    for number, e in enumerate(diag.edges):
        out.append({"edge": number, "chain": None, "checks": _checks(edge_checks(diag, e))})
    for number, chain in enumerate(diag.chains):
        checks = end_checks(diag, chain)
        if checks:
            out.append({"edge": None, "chain": number, "checks": _checks(checks)})
    return out


def _checks(checks: List[Any]) -> List[Json]:
    return [{"command": c.command, "expect": c.expect} for c in checks]


def to_dict(diag: Diagnosis) -> Json:
    verdicts = [_verdict(diag, v, s) for v, s in zip(diag.verdicts or [NOTHING], summaries(diag))]
    return {
        "schema": SCHEMA,
        "starts": list(diag.starts),
        "processes": [_process(diag, pid) for pid in diag.processes],
        "edges": [edge(e, diag) for e in diag.edges],
        "chains": [_chain(diag, c) for c in diag.chains],
        "cycles": [_cycle(diag, c) for c in diag.cycles],
        "root_cause": _root_cause(diag, verdicts),
        "deadlock": diag.deadlocked,
        "verdicts": verdicts,
        "notes": list(diag.notes),
        "explain": None,  # --explain: the commands that check each edge and end (render)
        "across": [hosts.across_json(a) for a in diag.across],  # --remote: chains followed onto other hosts
        "remote": [hosts.remote_json(r) for r in diag.remote_hosts],  # --remote: the hosts asked
    }


def _text(value: Any) -> str:
    """An enum as its value; any other value as text."""
    return str(value.value) if isinstance(value, Named) else str(value)


def _thread_id(key: Tuple[int, int]) -> Json:
    pid, tid = key
    return {"pid": pid, "tid": tid}


# --- processes and threads -------------------------------------------------------------------


def _process(diag: Diagnosis, pid: int) -> Json:
    proc = diag.processes[pid]
    return {
        "pid": pid,
        "starttime": proc.starttime,
        "comm": proc.comm,
        "cmdline": diag.cmdlines.get(pid, proc.comm),
        "state": proc.state,
        "ppid": proc.ppid,
        "uid": proc.uid,
        **_place(diag, pid),
        "threads": [_thread(diag, pid, t) for t in diag.tasks.get(pid, [])],
    }


def _place(diag: Diagnosis, pid: int) -> Json:
    """Where it runs: its host (pids are unique per host only), its pid in its own pid
    namespace (a container's) when that is not ours, the container, pod or unit its cgroup
    names."""
    place = diag.places.get(pid)
    box = place.container if place is not None else None
    return {
        "host": place.host or None if place is not None else None,
        "ns_pid": place.ns_pid if place is not None else None,
        "container": {"runtime": box.runtime or None, "id": box.id or None, "pod": box.pod or None,
                      "unit": box.unit or None, "cgroup": box.cgroup} if box is not None else None,
        "tcp": [{"local": _address(local), "remote": _address(remote)}  # its connections to other hosts
                for local, remote in (place.tcp if place is not None else ())],
    }


def _host(diag: Optional[Diagnosis], pid: int) -> Optional[str]:
    place = diag.places.get(pid) if diag is not None else None
    return place.host or None if place is not None else None


def _thread(diag: Diagnosis, pid: int, task: Task) -> Json:
    wait = diag.waits.get((pid, task.tid))
    call = task.syscall
    return {
        "tid": task.tid,
        "comm": task.comm,
        "state": task.state,
        "wchan": task.wchan,
        "syscall": {"name": call.name, "nr": call.nr, "args": list(call.args)} if call else None,
        "waits": wait.what if wait else None,  # the call as a person reads it
        "wait_syscall": wait.syscall if wait else None,  # "read", "wait4"; "" when not in a call
        "mode": _text(wait.mode) if wait else None,  # "any": one target acting ends it; "all"
        "end": end(wait.end) if wait and wait.end else None,
        "blocked_for": _seconds(diag.blocked_for.get((pid, task.tid))),  # since it last ran
        "any_of": wait.any_of if wait else 0,  # an OR wait (poll, select, epoll) over this many fds
        "live": [end(e) for e in wait.live] if wait else [],  # its alternatives that are not blocked
        **_stack(diag.stacks.get((pid, task.tid))),
        **_python_thread(diag, pid, task.tid),
    }


def _python_thread(diag: Diagnosis, pid: int, tid: int) -> Json:
    """What the stacks tell of a Python thread: its name, the thread it joins, the lock it
    waits for and the locks it holds (inferred from source, see stacks/pylocks.py)."""
    stack = diag.stacks.get((pid, tid))
    name = diag.thread_names.get((pid, tid)) or (stack.name if stack else "")
    return {
        "name": name or None,  # "MainThread", Thread(name=...)
        "joined_tid": stack.joined_tid if stack else None,  # a Thread.join: the thread joined
        "lock_wait": {"expression": stack.lock_wait,
                      "likely_holder": _hold(stack.likely_holder) if stack.likely_holder else None,
                      "owner": stack.lock_owner}  # an RLock's owner thread, read from the lock
        if stack and stack.lock_wait else None,
        "lock_holds": [_hold(h) for h in stack.holds] if stack else [],
    }


def _hold(hold: LockHold) -> Json:
    return {"tid": hold.tid, "expression": hold.expression, "file": hold.file, "line": hold.line,
            "statement": hold.statement, "code": hold.code, "inferred_from": "source"}


def _stack(stack: Optional[Stack]) -> Json:
    """The user-space stack (innermost frame first) and its application frame, if read."""
    return {
        "stack": [_frame(f) for f in stack.frames] if stack else None,
        "stack_source": stack.source if stack else None,  # "py-spy", "gdb", "eu-stack", "unwind"
        "stack_incomplete": stack.incomplete if stack else None,  # unwound, stopped where no rule applied
        # Python: the native frames above the interpreter's, when a C extension's are among them
        "native_stack": [_frame(f) for f in stack.native] if stack and stack.native else None,
        "location": _location(stack.location) if stack and stack.location else None,
        "python_wait": stack.label if stack and stack.label else None,  # e.g. "waits in queue.Queue.get"
    }


def _frame(frame: Frame) -> Json:
    return {"function": frame.function, "file": frame.file, "line": frame.line,
            "module": frame.module, "native": frame.native, "how": frame.how or None}


def _location(loc: Location) -> Json:
    return {"file": loc.file, "line": loc.line, "function": loc.function, "code": loc.code}


def _seconds(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


# --- edges and ends ----------------------------------------------------------------------------


def edge(e: Edge, diag: Optional[Diagnosis] = None) -> Json:
    """One waits-for edge: who waits for whom through what, the facts it was built from, and
    the sentences for people (`label`, worded from the facts as every format words it, and
    `evidence`)."""
    return {
        "from": {"pid": e.from_pid, "tid": e.from_tid, "host": _host(diag, e.from_pid)},
        "to": {"pid": e.to_pid, "tid": e.to_tid, "host": _host(diag, e.to_pid)},
        "kind": _text(e.kind),
        "object": e.object,
        "evidence": e.evidence,
        "label": label(e),
        "syscall": e.syscall,
        "fd": e.fd,
        "writing": e.writing,
        "fill": _fill(e.fill),
        "queued": e.queued,
        "holder_fds": list(e.holder_fds),
        "unsure": e.unsure,
        "inode": e.inode,
        "local": _address(e.local),
        "remote": _address(e.remote),
        "unaccepted": e.unaccepted,  # TCP: the connection waits in the accept queue of the target's listener
        "lock": _lock(e.lock),
        "pty": _pty(e.pty),
        "fuse": _fuse(e.fuse),
        "alternative": _alternative(e.alternative),
        "retry": _retry(e.retry),  # a lock edge inferred from a short sleep (a retry loop)
        "address": e.address,  # a futex edge: the futex word's address in the waiter's memory
        "ownerless": _text(e.ownerless) if e.ownerless is not None else None,
        "db": _db(e.db),  # the waiter is a database backend: its title's facts
        "db_lock": _db_lock(e.db_lock),  # a pg-lock edge: the lock and the blocking session (--db)
    }


def _db(session: Optional[DbSession]) -> Optional[Json]:
    if session is None:
        return None
    return {"engine": session.engine, "server": session.server, "user": session.user, "database": session.database,
            "client": session.client, "activity": session.activity, "waiting": session.waiting,
            "datadir": session.datadir}


def _db_lock(lock: Optional[DbLock]) -> Optional[Json]:
    if lock is None:
        return None
    return {"locktype": lock.locktype, "mode": lock.mode, "relation": lock.relation, "page": lock.page,
            "tuple": lock.tuple, "held_mode": lock.held_mode, "waiter_query": lock.waiter_query,
            "holder_state": lock.holder_state, "holder_query": lock.holder_query, "holder_xact": lock.holder_xact}


def _fill(fill: Optional[PipeFill]) -> Optional[Json]:
    return {"used": fill.used, "size": fill.size} if fill is not None else None


def _address(addr: Optional[Tuple[str, int]]) -> Optional[Json]:
    return {"host": addr[0], "port": addr[1]} if addr is not None else None


def _lock(lock: Optional[FileLock]) -> Optional[Json]:
    return {"type": _text(lock.type), "start": lock.start, "end": lock.end} if lock is not None else None


def _pty(pty: Optional[Pty]) -> Optional[Json]:
    return {"side": _text(pty.side), "index": pty.index} if pty is not None else None


def _fuse(fuse: Optional[Fuse]) -> Optional[Json]:
    return {"mountpoint": fuse.mountpoint, "inferred": fuse.inferred} if fuse is not None else None


def _retry(retry: Optional[Retry]) -> Optional[Json]:
    if retry is None:
        return None
    return {"call": retry.call, "interval": retry.interval, "holds": _text(retry.holds) if retry.holds else None}


def _alternative(alt: Optional[Alternative]) -> Optional[Json]:
    if alt is None:
        return None
    return {"count": alt.count, "events": alt.events, "watched": alt.watched}


def end(e: End) -> Json:
    """Where a wait ends: its kind, the reason advice is chosen from, and the facts."""
    return {
        "kind": _text(e.kind),
        "detail": end_sentence(e),
        "reason": _text(e.reason),
        "subject": e.subject,
        "signals": list(e.signals),
        "timeout": e.timeout,
        "db": _db(e.db),  # a database backend's lock wait: its title's facts
        "command": list(e.command),  # --db: the command that could not ask the server
        "local": _address(e.local),  # a remote TCP peer: the waiter's end of the connection
        "remote": _address(e.remote),  # ... and the peer's (the 4-tuple --remote and merge follow)
    }


# --- chains, cycles, verdicts ------------------------------------------------------------------


def _chain(diag: Diagnosis, chain: Chain) -> Json:
    return {"start": chain.start, "path": list(chain.path),
            "end": _chain_end(diag, chain.end, len(chain.path))}


def _chain_end(diag: Diagnosis, e: ChainEnd, length: Optional[int] = None) -> Json:
    ending = e.ending
    return {"kind": _text(e.kind), "detail": end_detail(diag, e, length), "pid": e.pid, "tid": e.tid,
            "reason": _text(e.reason), "subject": e.subject,
            "host": _host(diag, e.pid) if e.pid is not None else None,
            "local": _address(ending.local) if ending is not None else None,
            "remote": _address(ending.remote) if ending is not None else None}


def _cycle(diag: Diagnosis, cycle: Cycle) -> Json:
    return {
        "pids": list(cycle.pids),
        "deadlock": cycle.deadlock,
        "shape": _text(cycle.shape),
        "detail": cycle_detail(diag, cycle),
        "members": list(cycle.members or cycle.pids),
        "threads": [_thread_id(k) for k in cycle.threads],
    }


def _verdict(diag: Diagnosis, v: Verdict, words: Summary) -> Json:
    """One verdict: the verdict layer's facts and the sentences every format shows. The
    cause is the thread the sentences name."""
    cause = words.thread if words.thread is not None else v.cause
    return {
        "class": _text(v.cls),
        "advice": _text(v.advice),
        "headline": words.headline,
        "steps": list(words.steps),
        "now": list(words.now),
        "fix": list(words.fix),
        "members": list(v.members),
        "threads": [_thread_id(k) for k in v.threads],
        "cause": _cause(diag, cause),
        "culprit": v.culprit,
        "victims": list(v.victims),
        "confirmed": v.confirmed,
        "moved": [_thread_id(k) for k in v.moved],
        "ring": [edge(e, diag) for e in v.ring],
        "end": _chain_end(diag, v.end) if v.end is not None else None,
        "location": words.location or None,
    }


def _cause(diag: Diagnosis, key: Optional[Tuple[int, int]]) -> Optional[Json]:
    if key is None:
        return None
    wait = diag.waits.get(key)
    return {**_thread_id(key), "syscall": wait.syscall if wait else ""}


def _root_cause(diag: Diagnosis, verdicts: List[Json]) -> Optional[Json]:
    """The first verdict's cause, with its headline as the summary (kept from the first
    waitchain/1: tools read it)."""
    cause = verdicts[0]["cause"] if verdicts else None
    if cause is None:
        return None
    pid, tid = cause["pid"], cause["tid"]
    return {"pid": pid, "tid": tid, "syscall": cause["syscall"], "summary": verdicts[0]["headline"],
            "location": _cause_location(diag, pid, tid)}


def _cause_location(diag: Diagnosis, pid: int, tid: int) -> Optional[Json]:
    """The cause's line of code, as the text shows it (location_text): its stack's
    application frame, or the one the diagnosis recorded for its root cause."""
    stack = diag.stacks.get((pid, tid))
    if stack is not None and stack.location is not None:
        return _location(stack.location)
    recorded = diag.root_cause
    if recorded is not None and (recorded.pid, recorded.tid) == (pid, tid) and recorded.location:
        return _location(recorded.location)
    return None

