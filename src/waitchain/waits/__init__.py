"""What a blocked thread waits for. One rule module per kind of wait; this module only
dispatches on the thread's state and system call, runs each rule isolated (a rule that
raises is a bug: that thread's wait becomes unknown, with a note, and the report goes on)
and sets what every wait has: the name of the call it is in."""

from __future__ import annotations

from typing import Callable, Dict

from ..model import End, EndKind, Reason, Task, Wait
from ..records import replace
from ..snapshot import Snapshot
from . import child, ends, fifo, filelock, futex, io, kernel, objects, poll, postgres, signals
from .describe import call_text

Rule = Callable[[Snapshot, int, Task], Wait]

RULES: Dict[str, Rule] = {}
for _module in (io, child, ends, filelock, futex, fifo, signals, objects, poll):
    RULES.update({name: _module.rule for name in _module.SYSCALLS})


def wait_of(snap: Snapshot, pid: int, task: Task) -> Wait:
    """The wait of one thread: edges to the processes it waits for, or where it ends."""
    rule = choose(task)
    try:
        wait = postgres.refine(snap, pid, task, rule(snap, pid, task))  # a database backend's title
    except Exception as exc:  # a bug in one rule must not cost the report
        wait = _failed(snap, pid, task, rule, exc)
    return _with_call(wait, task)


def choose(task: Task) -> Rule:
    """The rule for the thread: the kernel's for D state and FUSE requests, the state's
    for running, stopped, exited or unreadable threads, else the system call's."""
    if task.kthread:
        return ends.state_rule
    if kernel.in_kernel_wait(task):
        return kernel.rule
    if ends.by_state(task) is not None:
        return ends.state_rule
    rule = RULES.get(task.syscall.name) if task.syscall else None
    return rule if rule is not None else _unfollowed_rule


def _unfollowed_rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    return Wait(pid, task.tid, call_text(snap, pid, task), end=ends.unfollowed(task))


def _with_call(wait: Wait, task: Task) -> Wait:
    """The wait (and each of its edges) names the call the thread is in."""
    name = task.syscall.name if task.syscall else ""
    edges = tuple(e if e.syscall else replace(e, syscall=name) for e in wait.edges)
    return replace(wait, syscall=name, edges=edges)


# --- a rule that raised -------------------------------------------------------------------


def _failed(snap: Snapshot, pid: int, task: Task, rule: Rule, exc: Exception) -> Wait:
    name, where = rule_name(rule), _where(exc)
    detail = (f"the {name} rule failed on this wait ({type(exc).__name__} at {where}): "
              "a bug in waitchain, so what it waits for is not known")
    snap.note(f"internal error in waitchain's {name} wait rule ({type(exc).__name__} at {where}) "
              f"on thread {task.tid} of process {pid}: that wait is shown as unknown")
    end = End(EndKind.UNKNOWN, detail, reason=Reason.RULE_FAILED, subject=name)
    return Wait(pid, task.tid, _safe_call_text(snap, pid, task), end=end)


def rule_name(rule: Rule) -> str:
    """The rule's module, "futex" for waitchain.waits.futex, or the function's name."""
    module = getattr(rule, "__module__", "") or ""
    if rule is ends.state_rule or rule is _unfollowed_rule:
        return "ends"
    return module.rsplit(".", 1)[-1] or getattr(rule, "__name__", "?")


def _where(exc: Exception) -> str:
    """file:line where the exception was raised (its innermost frame)."""
    import traceback  # only for a rule that failed: ~4.5 ms to import (linecache, tokenize)

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


def _safe_call_text(snap: Snapshot, pid: int, task: Task) -> str:
    try:
        return call_text(snap, pid, task)
    except Exception:  # the text is a nicety; the report is not
        return f"{task.syscall.name}()" if task.syscall else (task.note or "?")


__all__ = ["wait_of", "choose", "rule_name", "End", "RULES"]

