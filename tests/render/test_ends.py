"""End details: the sentence on where a wait ends, worded from its facts (render/ends.py),
the sentences the wait rules used to write."""

from __future__ import annotations

from typing import Any

import pytest

from render_fixtures import sleeping_twice
from waitchain.model import ChainEnd, End, EndKind, Missing, Ownerless, Pty, PtySide, Reason
from waitchain.render.common import end_detail
from waitchain.render.ends import MISSING, chain_detail, detail
from waitchain.render.json import render as render_json
from waitchain.render.text import render as render_text


def end(reason: Reason, kind: EndKind = EndKind.IDLE, **facts: Any) -> End:
    return End(kind, reason=reason, **facts)


@pytest.mark.parametrize("built,said", [
    (end(Reason.BUSY, EndKind.RUNNING, cpu=12.34), "busy (on CPU), 12.3 s of CPU time so far"),
    (end(Reason.STOPPED, EndKind.STOPPED), "stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU) or a debugger"),
    (end(Reason.STOPPED, EndKind.STOPPED, source="/proc/5/task/5/status"),
     "stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU): the kernel does not record who sent it, and no "
     "tracer holds it (TracerPid 0 in /proc/5/task/5/status)"),
    (end(Reason.STOPPED, EndKind.STOPPED, tracer=9, source="/proc/5/task/5/status"),
     "stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU), and traced by 9 (TracerPid in "
     "/proc/5/task/5/status): SIGCONT or the tracer resumes it"),
    (end(Reason.EXITED, EndKind.UNKNOWN), "exited (zombie)"),
    (end(Reason.STOPPED, EndKind.STOPPED, source="/proc/5/task/5/status", subject="/dev/pts/2", group=40),
     "stopped: a background job of the terminal /dev/pts/2, whose foreground is process group 40 (a shell's "
     "Ctrl-Z, or SIGTTIN/SIGTTOU for reading or writing the terminal from the background; the kernel does not "
     "record which)"),
    (end(Reason.EXITED, EndKind.UNKNOWN, parent=7), "exited, not reaped by its parent 7 (not scanned)"),
    (end(Reason.EXITED, EndKind.UNKNOWN, parent=7, reaping=True),
     "exited; its parent 7 is in wait4/waitid for it: it is being reaped"),
    (end(Reason.THREAD_EXITED, EndKind.UNKNOWN),
     "this thread exited (the main thread called pthread_exit); the process goes on in its other threads"),
    (end(Reason.KERNEL_THREAD, EndKind.KERNEL, subject="kthreadd"),
     "a kernel thread, not a user process: no fds, no system calls to follow; it waits in the kernel at "
     "kthreadd (wchan)"),
    (end(Reason.EXITED, EndKind.UNKNOWN), "exited (zombie)"),
    (end(Reason.ACCEPT, subject="3<TCP 0.0.0.0:80 (LISTEN)>"), "waits for a client on 3<TCP 0.0.0.0:80 (LISTEN)>"),
    (end(Reason.ACCEPT, subject="3<x>", through="3<x>"), "fd 3<x>: a listening socket, waits for a client"),
    (end(Reason.CONNECTING, EndKind.REMOTE), "waits for the remote host to answer"),
    (end(Reason.REMOTE_PEER, EndKind.REMOTE, subject="10.0.0.1:22"), "peer 10.0.0.1:22 is on another host"),
    (end(Reason.TIMEOUT, EndKind.SLEEPING, call="futex"), "its timeout"),
    (end(Reason.TIMEOUT, EndKind.SLEEPING, call="poll", timeout=0.5), "its timeout (0.5 s at most)"),
    (end(Reason.TIMEOUT, EndKind.SLEEPING, call="select", timeout=2.5), "its timeout (2.5 s at most)"),
    (end(Reason.TIMEOUT, EndKind.SLEEPING, call="ppoll", unread="timeout unreadable"),
     "its timeout (how long is unreadable)"),
    (end(Reason.SLEEP, EndKind.SLEEPING, call="select", timeout=1.0),
     "select watches no fd: it waits for time (its timeout (1 s at most)) or a signal"),
    (end(Reason.FIFO_OPEN, subject="/tmp/f", writing=True), "nobody has opened the FIFO /tmp/f for reading"),
    (end(Reason.FIFO_OPEN, subject="/tmp/f", writing=False), "nobody has opened the FIFO /tmp/f for writing"),
    (end(Reason.FIFO_OPEN, unread="path unreadable"), "nobody has opened the FIFO (path unreadable) for writing"),
    (end(Reason.FIFO_OPEN, subject="/tmp/f", self_held=True),
     "any process may open the FIFO /tmp/f and write: this process keeps a write end open itself so "
     "that writers can come and go"),
    (end(Reason.TIMER, EndKind.SLEEPING, fd=5),
     "waits on timerfd 5, which is disarmed: only timerfd_settime can wake it"),
    (end(Reason.TIMER, EndKind.SLEEPING, fd=5, timer=("(1, 0)", "(0, 0)"), timeout=1.0),
     "waits for timerfd 5 to expire (it_value (1, 0), it_interval (0, 0) in (s, ns))"),
    (end(Reason.FILE_EVENTS, fd=4, count=1), "waits for file-system events (inotify fd 4, 1 watch)"),
    (end(Reason.FILE_EVENTS, fd=4, count=3), "waits for file-system events (inotify fd 4, 3 watches)"),
])
def test_an_end_is_worded_from_its_facts(built: End, said: str) -> None:
    assert detail(built) == said


def test_a_sentence_a_rule_wrote_is_shown_as_it_is() -> None:
    assert detail(End(EndKind.KERNEL, "in the kernel: x", reason=Reason.KERNEL_WAIT)) == "in the kernel: x"


def test_an_or_wait_names_its_live_alternatives() -> None:
    alts = tuple(end(Reason.TIMEOUT, EndKind.SLEEPING, call="poll", timeout=n / 1000) for n in range(1, 7))
    said = detail(End(EndKind.SLEEPING, reason=Reason.TIMEOUT, any_of=7, alternatives=alts))
    assert said == ("waits for any of 7 fds; none leads to a blocked process: its timeout (0.001 s at most); "
                    "its timeout (0.002 s at most); its timeout (0.003 s at most); its timeout (0.004 s at most); "
                    "… 2 more")


def test_a_chain_end_is_worded_from_the_end_it_copies() -> None:
    ending = end(Reason.REMOTE_PEER, EndKind.REMOTE, subject="10.0.0.1:22")
    assert chain_detail(ChainEnd(EndKind.REMOTE, "", 5, 5, ending.reason, ending.subject, ending)) == \
        "peer 10.0.0.1:22 is on another host"


@pytest.mark.parametrize("built,said", [
    (end(Reason.SLEEP, EndKind.SLEEPING, call="nanosleep", duration=1000.0, timeout=1000.0),
     "sleeps in nanosleep for 16.7 min"),
    (end(Reason.SLEEP, EndKind.SLEEPING, call="clock_nanosleep", duration=1000.0, timeout=994.0, idle=6.0,
         source="/proc/5/task/5/sched"),
     "sleeps in clock_nanosleep for 16.7 min, about 16.6 min left (it last ran 6.0 s ago: /proc/5/task/5/sched)"),
    (end(Reason.SLEEP, EndKind.SLEEPING, call="clock_nanosleep", until=123.5, clock="CLOCK_MONOTONIC",
         timeout=7200.0), "sleeps until 123.500 on CLOCK_MONOTONIC: 2.0 h left"),
    (end(Reason.SLEEP, EndKind.SLEEPING, call="clock_nanosleep", until=123.5, clock="CLOCK_TAI"),
     "sleeps until 123.500 on CLOCK_TAI"),
    (end(Reason.SLEEP, EndKind.SLEEPING, call="nanosleep", unread="EFAULT"),
     "sleeps in nanosleep (duration unreadable: EFAULT)"),
    (end(Reason.SLEEP, EndKind.SLEEPING, call="nanosleep", duration=2e9, timeout=2e9),
     "sleeps in nanosleep for ever (more than 30 years)"),
])
def test_a_sleep_is_worded_from_its_facts(built: End, said: str) -> None:
    assert detail(built) == said


STATUS = "/proc/5/task/5/status"


@pytest.mark.parametrize("built,said", [
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="pause", signals=("SIGTERM",), blocked=("SIGINT",),
         ignored=("SIGPIPE",), source=STATUS),
     f"waits in pause for a signal not blocked; blocked: SIGINT; handlers for SIGTERM; ignored: SIGPIPE ({STATUS})"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="rt_sigsuspend", source=STATUS),
     f"waits in rt_sigsuspend for a signal not blocked; no signal blocked; no signal handlers ({STATUS})"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="pause", unread="EACCES"),
     "waits in pause for a signal (mask unreadable: EACCES)"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="select", source=STATUS),
     f"select watches no fd and has no timeout: waits in select for a signal not blocked; no signal blocked; "
     f"no signal handlers ({STATUS})"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="rt_sigtimedwait", signals=("SIGUSR1", "SIGUSR2"), untimed=True),
     "waits for SIGUSR1, SIGUSR2 (sigwaitinfo/sigtimedwait set), no timeout"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="rt_sigtimedwait", signals=("SIGUSR1",), timeout=2.0),
     "waits for SIGUSR1 (sigwaitinfo/sigtimedwait set), timeout 2.000 s"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="rt_sigtimedwait", signals=("SIGUSR1",)),
     "waits for SIGUSR1 (sigwaitinfo/sigtimedwait set)"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, call="rt_sigtimedwait", unread="EFAULT"),
     "waits for a signal (set unreadable: EFAULT)"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, fd=6), "waits for a signal through signalfd 6"),
    (end(Reason.SIGNAL_WAIT, EndKind.SIGNAL, fd=6, signals=("SIGCHLD",),
         source="/proc/5/fdinfo/6 sigmask: 0000000000010000"),
     "waits for SIGCHLD through signalfd 6 (/proc/5/fdinfo/6 sigmask: 0000000000010000)"),
    (end(Reason.SIGNAL_FROM_OUTSIDE, EndKind.SIGNAL, signals=("SIGINT", "SIGTERM"), call="epoll_pwait",
         source=STATUS),
     "a signal from outside (SIGINT, SIGTERM): it has handlers for them, not blocked during the wait (the "
     f"signal mask given to epoll_pwait; {STATUS} SigCgt, SigBlk)"),
    (end(Reason.SIGNAL_FROM_OUTSIDE, EndKind.SIGNAL, signals=("SIGTERM",), call="epoll_wait", self_held=True,
         source=STATUS),
     "a signal from outside (SIGTERM): it has handlers for them, not blocked during the wait (it waits on a "
     f"wake-up fd only it holds; {STATUS} SigCgt, SigBlk)"),
])
def test_a_signal_wait_is_worded_from_its_facts(built: End, said: str) -> None:
    assert detail(built) == said


def test_a_chain_ends_where_its_last_wait_ends_in_every_format() -> None:
    diag = sleeping_twice()
    said = "sleeps in clock_nanosleep for 16.7 min"
    assert end_detail(diag, diag.chains[0].end) == said
    assert said in render_text(diag) and said in render_json(diag)


@pytest.mark.parametrize("built,said", [
    (end(Reason.TERMINAL_INPUT, EndKind.TERMINAL, subject="/dev/tty1", writing=False),
     "waits for someone to type at /dev/tty1"),
    (end(Reason.TERMINAL_INPUT, EndKind.TERMINAL, subject="/dev/console", writing=True),
     "writes to a person at the terminal /dev/console"),
    (end(Reason.TERMINAL_INPUT, EndKind.TERMINAL, subject="/dev/pts/3", pty=Pty(PtySide.SLAVE, 3)),
     "waits for someone to type at /dev/pts/3 (no scanned process holds its master: no /dev/ptmx fd "
     "with tty-index: 3)"),
    (end(Reason.TERMINAL_INPUT, EndKind.TERMINAL, subject="/dev/ptmx", unread="no tty-index in its fdinfo"),
     "/dev/ptmx without tty-index in its fdinfo"),
])
def test_a_terminal_end_is_worded_from_its_facts(built: End, said: str) -> None:
    assert detail(built) == said


@pytest.mark.parametrize("built,said", [
    (end(Reason.NO_CHILD, EndKind.UNKNOWN), "waits for any child, but there is none"),
    (end(Reason.NO_CHILD, EndKind.UNKNOWN, child=2), "waits for child 2, but there is none"),
    (end(Reason.NO_CHILD, EndKind.UNKNOWN, group=0), "waits for any child in its process group, but there is none"),
    (end(Reason.NO_CHILD, EndKind.UNKNOWN, group=7), "waits for any child in process group 7, but there is none"),
    (end(Reason.NO_CHILD, EndKind.UNKNOWN, fd=4), "waits for the child behind pidfd 4, but there is none"),
    (end(Reason.NO_CHILD, EndKind.UNKNOWN, fd=4, child=9), "waits for child 9 (pidfd 4), but there is none"),
])
def test_a_wait_for_no_child_is_worded_from_its_facts(built: End, said: str) -> None:
    assert detail(built) == said


@pytest.mark.parametrize("missing,subject,said", [
    (Missing.WRITE_END, "pipe:[5]", "the write end of pipe:[5]"),
    (Missing.READ_END, "/tmp/f", "the read end of /tmp/f"),
    (Missing.UNIX_PEER, "socket:[9]", "the peer socket:[9] (passed over a socket, or closing)"),
    (Missing.PTY_MASTER, "/dev/pts/3", "the master of /dev/pts/3"),
    (Missing.PTY_SLAVE, "/dev/pts/3", "/dev/pts/3 (other than this process)"),
    (Missing.EVENTFD, "eventfd-id 12", "eventfd-id 12"),
    (Missing.MQUEUE_READER, "/mq", "the message queue /mq open for reading"),
    (Missing.MQUEUE_WRITER, "/mq", "the message queue /mq open for writing"),
])
def test_a_missing_other_side_is_worded_from_its_facts(missing: Missing, subject: str, said: str) -> None:
    assert detail(end(Reason.NO_HOLDER, EndKind.UNKNOWN, missing=missing, subject=subject)) == f"no process holds {said}"
    assert detail(end(Reason.NOT_READABLE, EndKind.UNKNOWN, missing=missing, subject=subject, count=2)) == (
        f"unknown: not readable (run as root): {said} may be held by one of 2 processes whose fds could not be read")


def test_every_missing_side_has_words_and_a_tcp_peer_names_its_connection() -> None:
    assert set(MISSING) == set(Missing)
    built = end(Reason.NO_HOLDER, EndKind.UNKNOWN, missing=Missing.TCP_PEER, subject="127.0.0.1:6",
                connection="TCP 127.0.0.1:5→127.0.0.1:6")
    assert detail(built) == "no process holds the other end of TCP 127.0.0.1:5→127.0.0.1:6 (no socket on this host matches it)"


def test_every_ownerless_futex_is_worded_at_its_address() -> None:
    said = {why: detail(end(Reason.NO_OWNER, EndKind.UNKNOWN, address=0x7F00, ownerless=why)) for why in Ownerless}
    assert all("0x7f00" in text for text in said.values())
    assert said[Ownerless.PYTHON].endswith("(Python's threading.Lock is one)")
    assert said[Ownerless.RELEASED] == "the PI futex at 0x7f00 records no owner now (released since?)"
