"""What a blocked thread waits for. One rule module per kind of wait; this module only
dispatches on the thread's state and system call, runs each rule isolated (a rule that
raises is a bug: that thread's wait becomes unknown, with a note, and the report goes on)
and sets what every wait has: the name of the call it is in."""

from __future__ import annotations


from ..model import End, EndKind, Reason, Task, Wait
from ..records import replace
from ..snapshot import Snapshot
from . import ends
from .describe import call_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict

    Rule = Callable[[Snapshot, int, Task], Wait]


# The rule module of each system call it follows (its SYSCALLS, which test_wait_dispatch checks
# this against): a module is imported when a thread is first seen in one of its calls, so that
# a run imports only the rules its threads need (start-up, issue 14).
RULE_MODULES: Dict[str, str] = {
    **dict.fromkeys(("read", "readv", "pread64", "preadv", "preadv2", "recvfrom", "recvmsg", "recvmmsg",
                     "write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg", "sendmmsg"), "io"),
    **dict.fromkeys(("wait4", "waitid"), "child"),
    **dict.fromkeys(("accept", "accept4", "connect"), "ends"),
    **dict.fromkeys(("flock", "fcntl"), "filelock"),
    **dict.fromkeys(("futex",), "futex"),
    **dict.fromkeys(("open", "openat", "openat2"), "fifo"),
    **dict.fromkeys(("pause", "rt_sigsuspend", "rt_sigtimedwait", "nanosleep", "clock_nanosleep"), "signals"),
    **dict.fromkeys(("mq_timedreceive", "mq_timedsend", "msgrcv", "msgsnd", "semop", "semtimedop"), "objects"),
    **dict.fromkeys(("poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"), "poll"),
}
# The calls a PostgreSQL backend waits in (postgres.LATCH_CALLS, checked by the same test): only
# a thread in one of them is given to postgres.refine, and the module is imported then.
REFINED = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6", "semop",
           "semtimedop", "futex"}
RULES: Dict[str, Rule] = {}  # system call -> its rule, filled as the rules are first used


def wait_of(snap: Snapshot, pid: int, task: Task) -> Wait:
    """The wait of one thread: edges to the processes it waits for, or where it ends."""
    rule = choose(task)
    try:
        wait = rule(snap, pid, task)
        if task.syscall is not None and task.syscall.name in REFINED:  # a database backend's title
            from . import postgres

            wait = postgres.refine(snap, pid, task, wait)
    except Exception as exc:  # a bug in one rule must not cost the report
        wait = _failed(snap, pid, task, rule, exc)
    return _with_call(wait, task)


def choose(task: Task) -> Rule:
    """The rule for the thread: the kernel's for D state and FUSE requests, the state's
    for running, stopped, exited or unreadable threads, else the system call's."""
    if task.kthread:
        return ends.state_rule
    if ends.in_kernel_wait(task):
        from . import kernel

        return kernel.rule
    if ends.by_state(task) is not None:
        return ends.state_rule
    name = task.syscall.name if task.syscall else ""
    rule = RULES.get(name)
    if rule is None and name in RULE_MODULES:
        # __import__ with a fromlist gives the submodule; importlib.import_module would too, but
        # `python -X importtime` does not see its imports
        rule = RULES[name] = __import__(f"{__name__}.{RULE_MODULES[name]}", fromlist=["rule"]).rule
    return rule if rule is not None else _unfollowed_rule


def _unfollowed_rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    return Wait(pid, task.tid, call_text(snap, pid, task), end=ends.unfollowed(task))


def _with_call(wait: Wait, task: Task) -> Wait:
    """The wait (and each of its edges) names the call the thread is in."""
    name = task.syscall.name if task.syscall else ""
    if wait.syscall == name and all(e.syscall for e in wait.edges):
        return wait  # the rule named it (a pipe's, most of --all's waits): no copy (~4 us)
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

