"""--json: the versioned machine-readable form (schema waitchain/1)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Dict, Optional

from ..model import Diagnosis, Edge, Task
from . import Options

SCHEMA = "waitchain/1"


def render(diag: Diagnosis, options: Options = Options()) -> str:
    return json.dumps(to_dict(diag), indent=2, ensure_ascii=True) + "\n"


def to_dict(diag: Diagnosis) -> Dict[str, Any]:
    return {
        "schema": SCHEMA,
        "starts": diag.starts,
        "processes": [_process(diag, pid) for pid in diag.processes],
        "edges": [_edge(e) for e in diag.edges],
        "chains": [
            {"start": c.start, "path": list(c.path), "end": asdict(c.end)} for c in diag.chains
        ],
        "cycles": [{"pids": list(c.pids), "deadlock": c.deadlock, "detail": c.detail,
                    "members": list(c.members or c.pids),
                    "threads": [{"pid": p, "tid": t} for p, t in c.threads]} for c in diag.cycles],
        "root_cause": asdict(diag.root_cause) if diag.root_cause else None,
        "deadlock": diag.deadlocked,
        "notes": diag.notes,
    }


def _process(diag: Diagnosis, pid: int) -> Dict[str, Any]:
    proc = diag.processes[pid]
    return {
        "pid": pid,
        "starttime": proc.starttime,
        "comm": proc.comm,
        "cmdline": diag.cmdlines.get(pid, proc.comm),
        "state": proc.state,
        "ppid": proc.ppid,
        "uid": proc.uid,
        "threads": [_thread(diag, pid, t) for t in diag.tasks.get(pid, [])],
    }


def _thread(diag: Diagnosis, pid: int, task: Task) -> Dict[str, Any]:
    wait = diag.waits.get((pid, task.tid))
    call = task.syscall
    return {
        "tid": task.tid,
        "comm": task.comm,
        "state": task.state,
        "wchan": task.wchan,
        "syscall": {"name": call.name, "nr": call.nr, "args": list(call.args)} if call else None,
        "waits": wait.what if wait else None,
        "end": asdict(wait.end) if wait and wait.end else None,
        "blocked_for": _seconds(diag.blocked_for.get((pid, task.tid))),  # since it last ran
        "any_of": wait.any_of if wait else 0,  # an OR wait (poll, select, epoll) over this many fds
        "live": [asdict(e) for e in wait.live] if wait else [],  # its alternatives that are not blocked
        **_stack(diag, pid, task.tid),
    }


def _stack(diag: Diagnosis, pid: int, tid: int) -> Dict[str, Any]:
    """The user-space stack (innermost frame first) and its application frame, if read."""
    stack = diag.stacks.get((pid, tid))
    return {
        "stack": [asdict(f) for f in stack.frames] if stack else None,
        "stack_source": stack.source if stack else None,  # "py-spy", "gdb", "eu-stack"
        "location": asdict(stack.location) if stack and stack.location else None,
        "python_wait": stack.label if stack and stack.label else None,  # e.g. "waits in queue.Queue.get"
    }


def _seconds(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


def _edge(edge: Edge) -> Dict[str, Any]:
    return {
        "from": {"pid": edge.from_pid, "tid": edge.from_tid},
        "to": {"pid": edge.to_pid, "tid": edge.to_tid},
        "kind": edge.kind,
        "object": edge.object,
        "evidence": edge.evidence,
        "label": edge.label,
    }
