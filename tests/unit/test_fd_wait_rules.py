"""The pipe, socket and poll rules and signals as wake sources, on snapshots built in code:
the edges and ends they produce (kinds, reasons, structured facts), with no process started."""

from __future__ import annotations

import signal
import struct

from rule_fakes import NONBLOCK, RDONLY, RDWR, WRONLY, FakeSnapshot, task

from waitchain.model import Alternative, EdgeKind, EndKind, Mode, PipeFill, Reason, TcpSocket, UnixSocket
from waitchain.render.labels import label
from waitchain.render.ends import detail
from waitchain.waits import io, poll, signals

PIPE = "pipe:[100]"
POLLIN = 0x1


def reader_of_own_pipe(extra_writer: bool = False) -> FakeSnapshot:
    """10 reads fd 3 of a pipe whose write end it holds itself (fd 4); maybe 20 writes too."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE, 4: PIPE})
    snap.set_flags(10, 3, RDONLY)
    snap.set_flags(10, 4, WRONLY)
    if extra_writer:
        snap.add_process(20, {5: PIPE})
        snap.set_flags(20, 5, WRONLY)
    return snap


# --- pipes -----------------------------------------------------------------------------------


def test_reader_holding_the_write_end_waits_for_its_own_process() -> None:
    wait = io.rule(reader_of_own_pipe(), 10, task(10, "read", 3))
    (edge,) = wait.edges
    assert (edge.from_pid, edge.from_tid, edge.to_pid, edge.to_tid) == (10, 10, 10, None)
    assert (edge.kind, edge.syscall, edge.fd, edge.writing, edge.holder_fds) == (EdgeKind.PIPE, "read", 3, False, (4,))
    assert edge.inode == 100 and not edge.unsure
    assert label(edge) == "it holds the write end itself (fd 4): EOF cannot come; only another of its threads can write"
    assert wait.end is None and wait.syscall == "read" and wait.mode == Mode.ANY


def test_reader_with_another_writer_waits_for_both() -> None:
    wait = io.rule(reader_of_own_pipe(extra_writer=True), 10, task(11, "read", 3))
    assert sorted((e.to_pid, e.to_tid, e.from_tid, e.holder_fds) for e in wait.edges) == [
        (10, None, 11, (4,)), (20, None, 11, (5,))]
    assert wait.end is None


def test_writer_on_a_full_pipe_has_its_fill() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {1: PIPE})
    snap.add_process(20, {0: PIPE, 7: PIPE})
    snap.set_flags(10, 1, WRONLY)
    snap.set_flags(20, 0, RDONLY)
    snap.set_flags(20, 7, RDWR)
    snap.fills[(10, 1)] = PipeFill(65536, 65536)
    (edge,) = io.rule(snap, 10, task(10, "write", 1)).edges
    assert (edge.to_pid, edge.writing, edge.fill, edge.holder_fds) == (20, True, PipeFill(65536, 65536), (0, 7))
    assert label(edge) == "pipe full 64 KiB/64 KiB; reader is 20"
    assert edge.evidence == f"/proc/20/fd/0,7 → {PIPE}; open for reading: the read end"


def test_writer_that_only_it_reads_waits_for_its_own_process() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE, 4: PIPE})
    snap.set_flags(10, 3, RDONLY)
    snap.set_flags(10, 4, WRONLY)
    (edge,) = io.rule(snap, 10, task(10, "write", 4)).edges
    assert (edge.to_pid, edge.to_tid, edge.writing, edge.holder_fds) == (10, None, True, (3,))


def test_holder_with_unreadable_fdinfo_is_unsure() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE})
    snap.add_process(20, {5: PIPE})
    snap.set_flags(10, 3, RDONLY)  # 20's fdinfo: unreadable (not set)
    (edge,) = io.rule(snap, 10, task(10, "read", 3)).edges
    assert (edge.to_pid, edge.unsure) == (20, True)
    assert edge.evidence == (f"/proc/20/fd/5 → {PIPE}; its access mode unreadable (exited since the scan, or not "
                             "permitted): may hold the write end")


def test_no_holder_when_every_process_was_read() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE})
    snap.set_flags(10, 3, RDONLY)
    wait = io.rule(snap, 10, task(10, "read", 3))
    assert wait.edges == ()
    assert wait.end is not None
    assert (wait.end.kind, wait.end.reason, wait.end.subject) == (EndKind.UNKNOWN, Reason.NO_HOLDER, PIPE)


def test_a_holder_that_could_not_be_read_is_not_nobody() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE})
    snap.set_flags(10, 3, RDONLY)
    snap.add_process(30, note="fds unreadable: permission denied")
    end = io.rule(snap, 10, task(10, "read", 3)).end
    assert end is not None
    assert (end.kind, end.reason) == (EndKind.UNKNOWN, Reason.NOT_READABLE)
    assert detail(end).startswith("unknown: not readable (run as root)")
    assert "no process holds" not in detail(end)


# --- sockets ---------------------------------------------------------------------------------


def test_socketpair_between_threads_waits_for_its_own_process() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[1]", 4: "socket:[2]"})
    snap.unix[1] = UnixSocket(1, "stream", "established", peer=2, rqueue=0, wqueue=0)
    snap.unix[2] = UnixSocket(2, "stream", "established", peer=1)
    (edge,) = io.rule(snap, 10, task(12, "recvfrom", 3)).edges
    assert (edge.from_tid, edge.to_pid, edge.to_tid, edge.kind) == (12, 10, None, EdgeKind.UNIX)
    assert (edge.holder_fds, edge.queued, edge.inode, edge.syscall) == ((4,), 0, 2, "recvfrom")


def test_tcp_peer_on_another_host_is_remote_with_its_address() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[5]"})
    snap.tcp[5] = TcpSocket(("10.1.2.3", 40000), ("10.9.9.9", 5432), "ESTABLISHED", 0, 0, 5)
    end = io.rule(snap, 10, task(10, "recvfrom", 3)).end
    assert end is not None
    assert (end.kind, end.reason, end.subject) == (EndKind.REMOTE, Reason.REMOTE_PEER, "10.9.9.9:5432")


def test_tcp_peer_on_this_host_gives_addresses_and_queue() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[5]"})
    snap.add_process(20, {4: "socket:[6]"})
    mine = TcpSocket(("127.0.0.1", 40000), ("127.0.0.1", 80), "ESTABLISHED", 300, 0, 5)
    snap.tcp[5] = mine
    snap.tcp_peers[5] = TcpSocket(("127.0.0.1", 80), ("127.0.0.1", 40000), "ESTABLISHED", 0, 0, 6)
    (edge,) = io.rule(snap, 10, task(10, "sendto", 3)).edges
    assert (edge.to_pid, edge.kind, edge.writing, edge.queued) == (20, EdgeKind.TCP, True, 300)
    assert (edge.local, edge.remote, edge.inode, edge.holder_fds) == (mine.local, mine.remote, 6, (4,))


# --- poll and signals ------------------------------------------------------------------------


def poller(snap: FakeSnapshot, pid: int, fds: dict, name: str = "poll", sigmask: int = 0):
    """pid polls fds {fd: events} through a pollfd array in its (fake) memory."""
    address = 0x1000
    snap.memory.put(pid, address, b"".join(struct.pack("=iHH", fd, ev, 0) for fd, ev in fds.items()))
    args = (address, len(fds), 0xFFFFFFFF) if name == "poll" else (address, len(fds), 0, sigmask)
    return task(pid, name, *args)


def self_pipe(snap: FakeSnapshot, pid: int, nonblocking: bool = True) -> None:
    """fd 3 reads a pipe whose write end (fd 4) only pid holds."""
    snap.set_flags(pid, 3, RDONLY)
    snap.set_flags(pid, 4, WRONLY | (NONBLOCK if nonblocking else 0))


def test_poll_on_a_self_pipe_with_caught_signals_is_idle() -> None:
    """asyncio or a selectors loop idle until SIGTERM: its self-pipe is an edge back to it,
    and the signals it catches are a way out that someone outside may take."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE, 4: PIPE})
    self_pipe(snap, 10)
    snap.set_masks(10, 10, caught=[signal.SIGINT, signal.SIGTERM])
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN}))
    assert [(e.to_pid, e.to_tid, e.fd, e.syscall) for e in wait.edges] == [(10, None, 3, "poll")]
    (live,) = wait.live
    assert (live.kind, live.reason, live.signals) == (EndKind.SIGNAL, Reason.SIGNAL_FROM_OUTSIDE, ("SIGINT", "SIGTERM"))
    assert wait.any_of == 1 and wait.end is None


def test_poll_on_a_blocking_own_pipe_is_no_wakeup_fd() -> None:
    """A blocking pipe only it holds shows no signal handler writes it: Python's SIGINT
    handler is no way out (else every deadlocked Python process would look idle)."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE, 4: PIPE})
    self_pipe(snap, 10, nonblocking=False)
    snap.set_masks(10, 10, caught=[signal.SIGINT])
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN}))
    assert [e.to_pid for e in wait.edges] == [10] and wait.live == ()


def test_broker_polling_clients_is_not_woken_by_sigint() -> None:
    """No sigmask argument, no wake-up fd: caught signals change nothing."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[1]"})
    snap.add_process(20, {4: "socket:[2]"})
    snap.unix[1] = UnixSocket(1, "stream", "established", peer=2)
    snap.set_masks(10, 10, caught=[signal.SIGINT])
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN}))
    assert [(e.to_pid, e.kind) for e in wait.edges] == [(20, EdgeKind.UNIX)] and wait.live == ()


def test_a_watched_fd_is_an_alternative_of_the_call() -> None:
    """What the poll rule adds to the edge a read on the fd gives: how many fds the call
    watches, what this one is watched for, and what it is."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[1]", 5: PIPE})
    snap.add_process(20, {4: "socket:[2]", 6: PIPE})
    snap.unix[1] = UnixSocket(1, "stream", "established", peer=2, path="/run/x.sock")
    snap.set_flags(10, 5, RDONLY)
    snap.set_flags(20, 6, WRONLY)
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN, 5: POLLIN}))
    unix, pipe = sorted(wait.edges, key=lambda e: e.fd or 0)
    assert (unix.fd, unix.syscall, unix.alternative) == (3, "poll", Alternative(2, "POLLIN", "UNIX:[1] /run/x.sock"))
    assert label(unix) == "waits for any of 2 fds, here fd 3<UNIX:[1] /run/x.sock> (POLLIN): waits for the peer"
    assert (pipe.fd, pipe.alternative) == (5, Alternative(2, "POLLIN", PIPE))


def test_wakeup_fd_with_another_process_to_wait_for_is_not_idle() -> None:
    """A loop that also waits for another process: a signal from outside would end the
    wait, but does not make it idle (the asyncio knot stays a deadlock)."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE, 4: PIPE, 5: "pipe:[200]"})
    snap.add_process(20, {6: "pipe:[200]"})
    self_pipe(snap, 10)
    snap.set_flags(10, 5, RDONLY)
    snap.set_flags(20, 6, WRONLY)
    snap.set_masks(10, 10, caught=[signal.SIGINT, signal.SIGTERM])
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN, 5: POLLIN}))
    assert sorted(e.to_pid for e in wait.edges) == [10, 20] and wait.live == ()


def make_like(sigmask: bool = True) -> FakeSnapshot:
    """make -j: ppoll on its jobserver pipe (blocking) with SIGCHLD unblocked only during the
    call; two live children and a zombie."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: PIPE, 4: PIPE})
    self_pipe(snap, 10, nonblocking=False)
    for kid, state in ((11, "S"), (12, "R"), (13, "Z")):
        snap.add_process(kid, ppid=10, state=state)
    snap.set_masks(10, 10, caught=[signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP])
    if sigmask:
        snap.memory.put(10, 0x2000, struct.pack("=Q", 0))
    return snap


def test_sigchld_with_a_sigmask_argument_is_an_edge_to_each_live_child() -> None:
    snap = make_like()
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN}, name="ppoll", sigmask=0x2000))
    sigchld = [e for e in wait.edges if e.kind == EdgeKind.SIGCHLD]
    assert [(e.from_tid, e.to_pid, e.to_tid, e.syscall) for e in sigchld] == [(10, 11, None, "ppoll"), (10, 12, None, "ppoll")]
    assert [e.to_pid for e in wait.edges if e.kind == EdgeKind.PIPE] == [10]
    assert wait.live == ()  # it waits for its children: SIGTERM from outside does not make it idle


def test_blocked_sigchld_is_no_way_out() -> None:
    snap = make_like()
    snap.set_masks(10, 10, caught=[signal.SIGCHLD], blocked=[signal.SIGCHLD])
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN}, name="ppoll", sigmask=0x2000))
    assert [e.kind for e in wait.edges] == [EdgeKind.PIPE] and wait.live == ()


def test_no_sigmask_argument_no_sigchld_edges() -> None:
    snap = make_like(sigmask=False)
    wait = poll.rule(snap, 10, poller(snap, 10, {3: POLLIN}, name="ppoll", sigmask=0))
    assert [e.kind for e in wait.edges] == [EdgeKind.PIPE] and wait.live == ()


def test_pselect6_mask_argument_is_read_through_its_struct() -> None:
    """pselect6's sixth argument points at {sigset_t *ss, size_t len}: glibc's select()
    passes NULL there, pselect() a pointer, whose ss may still be NULL."""
    snap = FakeSnapshot()
    snap.add_process(10)
    call = task(10, "pselect6", 4, 0x1000, 0, 0, 0, 0x3000).syscall
    assert call is not None
    assert not signals.has_sigmask(snap, 10, call)  # unreadable: not assumed
    snap.memory.put(10, 0x3000, struct.pack("=QQ", 0, 8))
    assert not signals.has_sigmask(snap, 10, call)
    snap.memory.put(10, 0x3000, struct.pack("=QQ", 0x4000, 8))
    assert signals.has_sigmask(snap, 10, call)
    assert not signals.has_sigmask(snap, 10, task(10, "pselect6", 4, 0x1000).syscall)  # type: ignore[arg-type]


def test_listening_alternative_and_timeout_are_live() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[1]"})
    snap.unix[1] = UnixSocket(1, "stream", "listen", path="/run/x.sock")
    address = 0x1000
    snap.memory.put(10, address, struct.pack("=iHH", 3, POLLIN, 0))
    wait = poll.rule(snap, 10, task(10, "poll", address, 1, 500))
    assert [(e.kind, e.reason) for e in wait.live] == [(EndKind.IDLE, Reason.ACCEPT), (EndKind.SLEEPING, Reason.TIMEOUT)]
    assert wait.live[0].subject == "3<UNIX:[1] /run/x.sock>"  # as accept() names it
    assert wait.live[1].timeout == 0.5
    assert wait.end is not None and wait.end.kind == EndKind.IDLE and wait.end.timeout == 0.5


def test_poll_with_no_fds_is_a_sleep_or_a_signal_wait() -> None:
    snap = FakeSnapshot()
    snap.add_process(10)
    snap.memory.put(10, 0x5000, struct.pack("=qq", 2, 500_000_000))
    sleep = poll.rule(snap, 10, task(10, "ppoll", 0, 0, 0x5000)).end
    assert sleep is not None and (sleep.kind, sleep.reason, sleep.timeout) == (EndKind.SLEEPING, Reason.SLEEP, 2.5)
    snap.set_masks(10, 10, caught=[signal.SIGUSR1])
    pause = poll.rule(snap, 10, task(10, "ppoll", 0, 0, 0)).end
    assert pause is not None and (pause.kind, pause.reason, pause.signals) == (EndKind.SIGNAL, Reason.SIGNAL_WAIT, ("SIGUSR1",))
