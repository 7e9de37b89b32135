"""An end's detail: the sentence for people on where a wait ends, made from its facts
("sleeps in clock_nanosleep for 16.7 min", "waits for a client on 5<TCP ...>"). Every
format words an end here, and only here; the JSON carries it as `detail`. Ends whose
sentence a rule still writes itself carry it in `End.detail`, shown as it is: kernel waits
(a kernel stack summary), calls and devices not followed, rule failures, a thread with no
syscall information (its note), unreadable futex words, SysV IPC, eventfd and mqueue events,
datagram servers, unpaired sockets, stale epoll fds, a process gone during the scan."""

from __future__ import annotations


from ..model import ChainEnd, End, Missing, Ownerless, Reason
from . import db

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Tuple

SHOWN = 4  # live alternatives named in an OR wait's detail


def detail(end: End) -> str:
    """The end's sentence (not escaped: callers clean it like any untrusted text)."""
    text = _sentence(end)
    return f"fd {end.through}: {text}" if end.through else text


def chain_detail(end: ChainEnd) -> str:
    """The sentence of the wait a chain ends at (a cycle's or a cut's is common.end_detail's)."""
    return detail(end.ending) if end.ending is not None else end.detail


def _sentence(end: End) -> str:
    if end.alternatives:
        return _any_of(end)
    if end.detail:
        return end.detail
    worded = SENTENCES.get(end.reason)
    return worded(end) if worded is not None else ""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _any_of(end: End) -> str:
    live = end.alternatives
    typed = [e for e in live if e.reason == Reason.TERMINAL_INPUT] if end.reason == Reason.TERMINAL_INPUT else []
    if typed:  # a relay (script, ssh) whose input is a person's terminal: that first
        others = [e for e in live if e is not typed[0]]
        also = "; ".join(detail(e) for e in others[:SHOWN])
        more = f"; … {len(others) - SHOWN} more" if len(others) > SHOWN else ""
        return detail(typed[0]) + (f"; it also watches {also}{more}" if others else "")
    details = "; ".join(detail(e) for e in live[:SHOWN])
    more = f"; … {len(live) - SHOWN} more" if len(live) > SHOWN else ""
    if not end.any_of:  # the ways out of a wait that is no OR wait (a timeout and a handler)
        return f"it can still end: {details}{more}"
    return (f"waits for any of {_plural(end.any_of, 'fd')}; none leads to a blocked process: "
            f"{details}{more}")


def _busy(end: End) -> str:
    return "busy (on CPU)" + (f", {end.cpu:.1f} s of CPU time so far" if end.cpu is not None else "")


def _stopped(end: End) -> str:
    """T or t: the tracer when TracerPid names one; a signal's sender is not recorded."""
    where = f" in {end.source}" if end.source else ""
    if end.tracer is not None:
        return (f"stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU), and traced by {end.tracer} "
                f"(TracerPid{where}): SIGCONT or the tracer resumes it")
    if end.subject and end.group is not None:
        return (f"stopped: a background job of the terminal {end.subject}, whose foreground is process group "
                f"{end.group} (a shell's Ctrl-Z, or SIGTTIN/SIGTTOU for reading or writing the terminal from "
                "the background; the kernel does not record which)")
    return (f"stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU): the kernel does not record who "
            f"sent it, and no tracer holds it (TracerPid 0{where})" if end.source else
            "stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU) or a debugger")


def _exited(end: End) -> str:
    """A zombie whose parent no edge leads to (reaping now, or not scanned)."""
    if end.parent is not None and end.reaping:
        return f"exited; its parent {end.parent} is in wait4/waitid for it: it is being reaped"
    if end.parent is not None:
        return f"exited, not reaped by its parent {end.parent} (not scanned)"
    return "exited (zombie)"


def _kernel_thread(end: End) -> str:
    text = "a kernel thread, not a user process: no fds, no system calls to follow"
    return text + (f"; it waits in the kernel at {end.subject} (wchan)" if end.subject else "")


def _accept(end: End) -> str:
    if end.through:
        return "a listening socket, waits for a client"
    return f"waits for a client on {end.subject}"


def _timeout(end: End) -> str:
    """An OR wait's or a timed futex's timeout, as an alternative: the clock ends it."""
    if end.unread:
        return "its timeout (how long is unreadable)"
    if end.timeout is None and end.signals:  # a POSIX timer's signal (flock -w): /proc/PID/timers
        return f"its timer: a POSIX timer sends {', '.join(end.signals)}, whose handler ends the wait (when is not shown)"
    if end.timeout is None:
        return "its timeout"
    return f"its timeout ({end.timeout:g} s at most)"  # seconds, as in the JSON, whatever the call's unit


OR_WAITS = ("poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2")


def _sleep(end: End) -> str:
    if end.call in OR_WAITS:  # a poll or select with no fd: time.sleep on Python 3.9/3.10
        return f"{end.call} watches no fd: it waits for time ({_timeout(end)}) or a signal"
    if end.unread:
        return f"sleeps in {end.call} (duration unreadable: {end.unread})"
    if end.until is not None:  # TIMER_ABSTIME
        text = f"sleeps until {end.until:.3f} on {end.clock}"
        return text if end.timeout is None else f"{text}: {_duration(end.timeout)} left"
    text = f"sleeps in {end.call} for {_duration(end.duration or 0.0)}"
    if end.idle is None or end.timeout is None:
        return text
    return (f"{text}, about {_duration(end.timeout)} left (it last ran {_duration(end.idle)} ago: "
            f"{end.source})")


def _duration(seconds: float) -> str:
    if abs(seconds) >= 1e9:
        return "ever (more than 30 years)"
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f} h"
    if abs(seconds) >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _names(signals: Tuple[str, ...]) -> str:
    return ", ".join(signals) if signals else "no signal"


def _signal_wait(end: End) -> str:
    """pause, sigsuspend, a poll with no fd and no timeout; sigwaitinfo/sigtimedwait; signalfd."""
    if end.fd is not None:
        if not end.source:
            return f"waits for a signal through signalfd {end.fd}"
        return f"waits for {_names(end.signals)} through signalfd {end.fd} ({end.source})"
    if end.call == "rt_sigtimedwait":
        if end.unread:
            return f"waits for a signal (set unreadable: {end.unread})"
        timeout = (f", timeout {end.timeout:.3f} s" if end.timeout is not None else
                   ", no timeout" if end.untimed else "")
        return f"waits for {_names(end.signals)} (sigwaitinfo/sigtimedwait set){timeout}"
    head = f"{end.call} watches no fd and has no timeout: " if end.call in OR_WAITS else ""
    if end.unread:
        return f"{head}waits in {end.call} for a signal (mask unreadable: {end.unread})"
    text = f"{head}waits in {end.call} for a signal not blocked"
    text += f"; blocked: {_names(end.blocked)}" if end.blocked else "; no signal blocked"
    text += f"; handlers for {_names(end.signals)}" if end.signals else "; no signal handlers"
    text += f"; ignored: {_names(end.ignored)}" if end.ignored else ""
    return f"{text} ({end.source})"


def _signal_from_outside(end: End) -> str:
    how = "it waits on a wake-up fd only it holds" if end.self_held else f"the signal mask given to {end.call}"
    return (f"a signal from outside ({', '.join(end.signals)}): it has handlers for them, not blocked "
            f"during the wait ({how}; {end.source} SigCgt, SigBlk)")


def _signal_handler(end: End) -> str:
    return (f"a handler of {', '.join(end.signals)} may wake it (a handler can post a semaphore or "
            f"set a flag): {end.source} SigCgt, with a thread not blocking it in SigBlk")


def _terminal(end: End) -> str:
    """tty.py's ends; io.py's plain reads of a terminal carry their own detail."""
    if end.unread:
        return f"{end.subject} without tty-index in its fdinfo"
    if end.pty is not None:
        return (f"waits for someone to type at {end.subject} (no scanned process holds its master: "
                f"no /dev/ptmx fd with tty-index: {end.pty.index})")
    if end.writing:
        return f"writes to a person at the terminal {end.subject}"
    return f"waits for someone to type at {end.subject}"


def _no_child(end: End) -> str:
    """wait4/waitid naming no child it has (fd: a pidfd)."""
    if end.fd is not None:
        wanted = f"child {end.child} (pidfd {end.fd})" if end.child is not None else f"the child behind pidfd {end.fd}"
    elif end.child is not None:
        wanted = f"child {end.child}"
    elif end.group == 0:
        wanted = "any child in its process group"
    elif end.group is not None:
        wanted = f"any child in process group {end.group}"
    else:
        wanted = "any child"
    return f"waits for {wanted}, but there is none"


MISSING: Dict[Missing, Callable[[End], str]] = {
    Missing.WRITE_END: lambda e: f"the write end of {e.subject}",
    Missing.READ_END: lambda e: f"the read end of {e.subject}",
    Missing.TCP_PEER: lambda e: f"the other end of {e.connection} (no socket on this host matches it)",
    Missing.UNIX_PEER: lambda e: f"the peer {e.subject} (passed over a socket, or closing)",
    Missing.PTY_MASTER: lambda e: f"the master of {e.subject}",
    Missing.PTY_SLAVE: lambda e: f"{e.subject} (other than this process)",
    Missing.EVENTFD: lambda e: e.subject,
    Missing.MQUEUE_READER: lambda e: f"the message queue {e.subject} open for reading",
    Missing.MQUEUE_WRITER: lambda e: f"the message queue {e.subject} open for writing",
}


def _no_holder(end: End) -> str:
    return f"no process holds {MISSING[end.missing](end)}" if end.missing is not None else ""


def _not_readable(end: End) -> str:
    """The other side may be held by a process whose fds could not be read (count of them)."""
    if end.missing is None:
        return f"unknown: not readable: {end.subject}" if end.subject else ""
    hidden = end.count or 0
    whose = "1 process" if hidden == 1 else f"{hidden} processes"
    return (f"unknown: not readable (run as root): {MISSING[end.missing](end)} may be held by one of "
            f"{whose} whose fds could not be read")


NO_OWNER = "no owner can be known: a condition variable, a semaphore, or a lock that records none"
OWNERLESS: Dict[Ownerless, str] = {
    Ownerless.RELEASED: "the PI futex at {a} records no owner now (released since?)",
    Ownerless.UNPROVED: ("waits on a futex at {a}: a lock word with value 2 whose owner cannot be proved (its "
                         "memory is not a glibc pthread_mutex_t naming a live thread; stdio's and other "
                         "libraries' locks wait the same way)"),
    Ownerless.NONE_RECORDED: "waits on a futex at {a}; " + NO_OWNER,
    Ownerless.PYTHON: "waits on a futex at {a}; " + NO_OWNER + " (Python's threading.Lock is one)",
}


def _no_owner(end: End) -> str:
    """A futex wait that names no owner (SysV semaphores carry their own detail)."""
    if end.ownerless is None:
        return ""
    return OWNERLESS[end.ownerless].format(a=f"{end.address or 0:#x}")


def _fifo_open(end: End) -> str:
    if end.self_held:
        return (f"any process may open the FIFO {end.subject} and write: this process keeps a write "
                "end open itself so that writers can come and go")
    where = f"FIFO {end.subject}" if end.subject else "FIFO (path unreadable)"
    return f"nobody has opened the {where} for {'reading' if end.writing else 'writing'}"


def _timer(end: End) -> str:
    if not end.timer:
        return f"waits on timerfd {end.fd}, which is disarmed: only timerfd_settime can wake it"
    value, interval = end.timer
    return f"waits for timerfd {end.fd} to expire (it_value {value}, it_interval {interval} in (s, ns))"


def _file_events(end: End) -> str:
    watches = end.count or 0
    return f"waits for file-system events (inotify fd {end.fd}, {watches} watch{'es' if watches != 1 else ''})"


SENTENCES: Dict[Reason, Callable[[End], str]] = {
    Reason.BUSY: _busy,
    Reason.STOPPED: _stopped,
    Reason.EXITED: _exited,  # one gone during the scan is graph.explore's GONE
    Reason.THREAD_EXITED: lambda e: ("this thread exited (the main thread called pthread_exit); the process "
                                     "goes on in its other threads"),
    Reason.KERNEL_THREAD: _kernel_thread,
    Reason.ACCEPT: _accept,
    Reason.CONNECTING: lambda e: "waits for the remote host to answer",
    Reason.REMOTE_PEER: lambda e: f"peer {e.subject} is on another host",
    Reason.TIMEOUT: _timeout,
    Reason.SLEEP: _sleep,
    Reason.SIGNAL_WAIT: _signal_wait,
    Reason.SIGNAL_FROM_OUTSIDE: _signal_from_outside,
    Reason.SIGNAL_HANDLER: _signal_handler,
    Reason.FIFO_OPEN: _fifo_open,
    Reason.TERMINAL_INPUT: _terminal,
    Reason.NO_CHILD: _no_child,
    Reason.NO_HOLDER: _no_holder,
    Reason.NOT_READABLE: _not_readable,
    Reason.NO_OWNER: _no_owner,
    Reason.OWNER_EXITED: lambda e: (f"the mutex at {e.address or 0:#x} names owner TID {e.owner}, which is not "
                                    "a live thread: it exited holding the lock"),
    Reason.TIMER: _timer,
    Reason.FILE_EVENTS: _file_events,
    Reason.DB_LOCK: db.lock_end,
}
