"""poll, select and epoll: OR waits over real processes. A thread proceeds when any watched
fd is ready, so it is stuck only when every alternative is (a knot); an event loop's report
follows only the branch that leads to trouble."""

from __future__ import annotations

import fcntl
import os
import socket

from scenario_helpers import (F_GETPIPE_SZ, POLLER, READER, SLEEPER, close, edges_from, only_thread,
                              spawn_with)

from waitchain.demo.harness import wait_blocked
from waitchain.procfs.fds import parse_fdinfo
from waitchain.render import labels
from waitchain.waits import poll

EPOLL_CALLS = ("epoll_wait", "epoll_pwait", "epoll_pwait2")
POLL_CALLS = ("poll", "ppoll")
SELECT_CALLS = ("select", "pselect6")

EPOLL_SERVER = """
import selectors
listener = socket.socket(fileno=int(sys.argv[1]))
sel = selectors.EpollSelector()
sel.register(listener, selectors.EVENT_READ)
conns = []
while True:
    if len(conns) == 2 and not getattr(sys, "told", False):
        sys.told = True
        ready("serving", *[c.fileno() for c in conns])
    for key, _ in sel.select():
        if key.fileobj is listener:
            conn, _ = listener.accept()
            conns.append(conn)
            sel.register(conn, selectors.EVENT_READ)
        else:
            data = key.fileobj.recv(100)
            key.fileobj.sendall(data)
"""

RECEIVER = """
sock = socket.socket(fileno=int(sys.argv[1]))
ready("receiving")
sock.recv(1)
"""

FILLER = """
fd = int(sys.argv[1])
ready("writing", fd)
os.write(fd, b"x" * (1 << 20))
"""

SELECTOR = """
import select
reads = [int(fd) for fd in sys.argv[1].split(",") if fd]
writes = [int(fd) for fd in sys.argv[2].split(",") if fd]
ready("selecting")
select.select(reads, writes, [])
"""


# --- an event loop: only the stuck branch ------------------------------------------------


def test_epoll_server_follows_only_the_stuck_client(run_py, diagnose_pid, run_cli, wait_sleeping) -> None:
    """An epoll server watching three fds: its listener (idle), a client that only waits for
    the server's answer (idle), and a client that is itself stuck reading from an upstream
    that is blocked writing to a full pipe that a sleeper never reads."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    idle_sock = socket.create_connection(listener.getsockname())
    stuck_sock = socket.create_connection(listener.getsockname())
    up_r, up_w = os.pipe()  # upstream → stuck client
    full_r, full_w = os.pipe()  # upstream → sleeper, filled

    server = spawn_with(run_py, EPOLL_SERVER, [listener.fileno()])
    idle = spawn_with(run_py, RECEIVER, [idle_sock.fileno()])
    client = spawn_with(run_py, READER, [up_r, stuck_sock.fileno()])
    upstream = spawn_with(run_py, FILLER, [full_w, up_w])
    sleeper = run_py(SLEEPER, pass_fds=[full_r])
    for sock in (listener, idle_sock, stuck_sock):
        sock.close()
    close(up_r, up_w, full_r, full_w)
    for prog in (server, idle, client, upstream, sleeper):
        prog.ready()
    wait_blocked(server.pid, *EPOLL_CALLS)
    wait_blocked(idle.pid, "recvfrom", "recv")
    wait_blocked(client.pid, "read")
    wait_blocked(upstream.pid, "write")
    wait_sleeping(sleeper.pid)

    data, code = diagnose_pid(server.pid)

    assert code == 0, data["chains"]
    assert [c["path"] for c in data["chains"]] == [[server.pid, client.pid, upstream.pid, sleeper.pid]]
    assert data["chains"][0]["end"]["kind"] == "sleeping"
    assert data["deadlock"] is False
    out = {(e["to"]["pid"], e["kind"]) for e in edges_from(data, server.pid)}
    assert out == {(idle.pid, "tcp"), (client.pid, "tcp")}
    to_client = next(e for e in edges_from(data, server.pid) if e["to"]["pid"] == client.pid)
    assert to_client["label"].startswith("waits for any of 3 fds, here fd ")
    assert "(EPOLLIN)" in to_client["label"] and to_client["label"].endswith("waits for the peer")
    assert (to_client["alternative"]["count"], to_client["alternative"]["events"]) == (3, "EPOLLIN")
    assert to_client["alternative"]["watched"].startswith("TCP 127.0.0.1:")
    assert "tfd:" in to_client["evidence"]
    waits = only_thread(data, server.pid)
    assert waits["any_of"] == 3
    assert [e["kind"] for e in waits["live"]] == ["idle"]
    assert "listening socket" in waits["live"][0]["detail"]
    # the idle client and the server wait for each other: a cycle, not a deadlock
    assert [(sorted(c["members"]), c["deadlock"]) for c in data["cycles"]] == [
        (sorted([server.pid, idle.pid]), False)]

    text = run_cli(str(server.pid), "--no-stacks")
    assert text.code == 0
    assert "waits for any of 3 fds" in text.out
    assert str(idle.pid) not in text.out.split("root cause")[0].replace(str(server.pid), "")


# --- poll: a live alternative means no deadlock -------------------------------------------


def test_poll_with_one_live_alternative_is_no_deadlock(run_py, diagnose_pid, wait_sleeping) -> None:
    """The poller and a reader wait for each other, but the poller also watches a pipe of
    a sleeper that may still write: not a deadlock."""
    back_r, back_w = os.pipe()  # poller → reader (the reader waits for the poller)
    q_r, q_w = os.pipe()  # reader → poller
    s_r, s_w = os.pipe()  # sleeper → poller
    poller = run_py(POLLER, str(q_r), str(s_r), pass_fds=[q_r, s_r, back_w])
    reader = spawn_with(run_py, READER, [back_r, q_w])  # holds q_w: the poller waits for it
    sleeper = run_py(SLEEPER, pass_fds=[s_w])
    close(back_r, back_w, q_r, q_w, s_r, s_w)
    for prog in (poller, reader, sleeper):
        prog.ready()
    wait_blocked(poller.pid, *POLL_CALLS)
    wait_blocked(reader.pid, "read")
    wait_sleeping(sleeper.pid)

    data, code = diagnose_pid(poller.pid)

    assert code == 0
    assert data["deadlock"] is False
    assert {(e["to"]["pid"], e["kind"]) for e in edges_from(data, poller.pid)} == {
        (reader.pid, "pipe"), (sleeper.pid, "pipe")}
    assert sorted(c["path"] for c in data["chains"]) == sorted(
        [[poller.pid, reader.pid], [poller.pid, sleeper.pid]])
    (cycle,) = data["cycles"]
    assert sorted(cycle["members"]) == sorted([poller.pid, reader.pid])
    assert cycle["deadlock"] is False
    assert only_thread(data, poller.pid)["any_of"] == 2
    assert "POLLIN" in edges_from(data, poller.pid)[0]["label"]


# --- a knot: every alternative leads back into the blocked set ------------------------------


def test_poll_select_knot_is_a_deadlock(run_py, diagnose_pid, run_cli) -> None:
    """A polls pipes from B and C; B reads a pipe from A; C selects on pipes from A and B.
    Every alternative of every one of them leads back into {A, B, C}: a knot."""
    ba_r, ba_w = os.pipe()
    ca_r, ca_w = os.pipe()
    ab_r, ab_w = os.pipe()
    ac_r, ac_w = os.pipe()
    bc_r, bc_w = os.pipe()
    a = run_py(POLLER, str(ba_r), str(ca_r), pass_fds=[ba_r, ca_r, ab_w, ac_w])
    b = run_py(READER, str(ab_r), pass_fds=[ab_r, ba_w, bc_w])
    c = run_py(SELECTOR, f"{ac_r},{bc_r}", "", pass_fds=[ac_r, bc_r, ca_w])
    close(ba_r, ba_w, ca_r, ca_w, ab_r, ab_w, ac_r, ac_w, bc_r, bc_w)
    for prog in (a, b, c):
        prog.ready()
    wait_blocked(a.pid, *POLL_CALLS)
    wait_blocked(b.pid, "read")
    wait_blocked(c.pid, *SELECT_CALLS)

    data, code = diagnose_pid(a.pid)

    assert code == 1
    assert data["deadlock"] is True
    edges = {(e["from"]["pid"], e["to"]["pid"]) for e in data["edges"]}
    assert edges == {(a.pid, b.pid), (a.pid, c.pid), (b.pid, a.pid), (c.pid, a.pid), (c.pid, b.pid)}
    (cycle,) = data["cycles"]
    assert cycle["deadlock"] is True
    assert sorted(cycle["members"]) == sorted([a.pid, b.pid, c.pid])
    assert set(cycle["pids"]) <= {a.pid, b.pid, c.pid} and len(cycle["pids"]) >= 2  # a ring in the knot
    assert all(ch["end"]["kind"] == "cycle" for ch in data["chains"])
    assert data["root_cause"]["summary"].startswith("DEADLOCK")
    assert only_thread(data, c.pid)["any_of"] == 2
    assert only_thread(data, a.pid)["live"] == [] and only_thread(data, c.pid)["live"] == []
    assert run_cli(str(b.pid), "--no-stacks").code == 1


def test_asyncio_loop_knot_despite_its_wakeup_socketpair(run_py, diagnose_pid) -> None:
    """A single-threaded asyncio loop also watches its own wake-up socketpair; only it holds
    the other end, so that is no way out: loop and reader wait for each other, a deadlock.
    Python's SIGINT handler is no way out either: with a stuck process to wait for, a signal
    from outside does not make the loop idle."""
    in_r, in_w = os.pipe()  # reader → loop
    out_r, out_w = os.pipe()  # loop → reader
    loop = run_py("""
        import asyncio
        async def main():
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            loop.add_reader(int(sys.argv[1]), done.set_result, None)
            ready("looping")
            await done
        asyncio.run(main())
        """, str(in_r), pass_fds=[in_r, out_w])
    reader = spawn_with(run_py, READER, [out_r, in_w])
    close(in_r, in_w, out_r, out_w)
    loop.ready(), reader.ready()
    wait_blocked(loop.pid, *EPOLL_CALLS)
    wait_blocked(reader.pid, "read")

    data, code = diagnose_pid(loop.pid)

    assert code == 1
    assert [(sorted(c["members"]), c["deadlock"]) for c in data["cycles"]] == [
        (sorted([loop.pid, reader.pid]), True)]
    waits = only_thread(data, loop.pid)
    assert waits["any_of"] == 2 and waits["live"] == [] and waits["end"] is None
    # the wake-up socketpair is an edge back to the loop's own process (its other threads)
    assert {(e["to"]["pid"], e["to"]["tid"], e["kind"]) for e in edges_from(data, loop.pid)} == {
        (reader.pid, None, "pipe"), (loop.pid, None, "unix")}


# --- select(): fd_sets for reading and writing ---------------------------------------------


def test_select_read_and_write_sets(run_py, diagnose_pid, wait_sleeping) -> None:
    """select() on a pipe from a sleeping writer (read set) and a full pipe to a sleeping
    reader (write set): both alternatives followed, the write one with the pipe's fill."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    size = fcntl.fcntl(out_w, F_GETPIPE_SZ)
    os.set_blocking(out_w, False)
    try:
        while True:
            os.write(out_w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(out_w, True)
    selector = run_py(SELECTOR, str(in_r), str(out_w), pass_fds=[in_r, out_w])
    writer = run_py(SLEEPER, pass_fds=[in_w])
    reader = run_py(SLEEPER, pass_fds=[out_r])
    close(in_r, in_w, out_r, out_w)
    for prog in (selector, writer, reader):
        prog.ready()
    wait_blocked(selector.pid, *SELECT_CALLS)
    wait_sleeping(writer.pid)
    wait_sleeping(reader.pid)

    data, code = diagnose_pid(selector.pid)

    assert code == 0
    by_target = {e["to"]["pid"]: e for e in edges_from(data, selector.pid)}
    assert set(by_target) == {writer.pid, reader.pid}
    assert "(read set)" in by_target[writer.pid]["label"]
    assert by_target[writer.pid]["label"].endswith("waits for the writer")
    assert "(write set)" in by_target[reader.pid]["label"]
    assert f"pipe full {labels.size(size)}/{labels.size(size)}; reader is {reader.pid}" in by_target[reader.pid]["label"]
    assert by_target[reader.pid]["alternative"]["events"] == "write set"
    assert "fd_sets at 0x" in by_target[reader.pid]["evidence"]
    sel = only_thread(data, selector.pid)
    assert sel["any_of"] == 2 and sel["live"] == []
    assert sel["waits"].startswith(sel["syscall"]["name"] + "([")
    assert sorted(c["path"] for c in data["chains"]) == sorted(
        [[selector.pid, writer.pid], [selector.pid, reader.pid]])


# --- parsing the epoll set -----------------------------------------------------------------


def test_epoll_tfd_lines_parse() -> None:
    info = parse_fdinfo("pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\n"
                        "tfd:        4 events:       1c data:                4  pos:0 ino:acfbe sdev:f\n"
                        "tfd:        3 events:  40000019 data:                3  pos:0 ino:acfc3 sdev:9\n"
                        "tfd:        5 events:  40000000 data:                5  pos:0 ino:acfc4 sdev:9\n")
    lines = [poll._TFD.match(v) for k, v in info.extra if k == "tfd"]
    assert [(int(m[1]), int(m[2], 16), m[3]) for m in lines] == [
        (4, 0x1C, "acfbe"), (3, 0x40000019, "acfc3"), (5, 0x40000000, "acfc4")]
    assert poll._names(0x40000019, "EPOLL") == "EPOLLIN|EPOLLONESHOT"
    assert not 0x40000000 & ~poll.EP_PRIVATE  # a disarmed one-shot entry watches nothing


HUGE_POLL = """
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
r, w = os.pipe()  # only this process can write it: alone, a self-deadlock

class pollfd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]

fds = (pollfd * 5000)(*[pollfd(r, 1, 0)] * 5000)
ready("polling")
libc.poll(fds, 5000, -1)
"""


def test_poll_over_more_fds_than_are_read_is_not_called_stuck(run_py, diagnose_pid) -> None:
    """poll(fds, 5000): 4096 entries are read; the 904 others might be ready, so the
    thread is not known to be stuck (no self-deadlock is claimed)."""
    program = run_py(HUGE_POLL)
    program.ready()
    wait_blocked(program.pid, *POLL_CALLS)
    data, code = diagnose_pid(program.pid)
    thread = only_thread(data, program.pid)
    assert code == 0 and data["deadlock"] is False
    assert thread["any_of"] == 1
    assert any("904 more watched fds not followed" in end["detail"] for end in thread["live"])


LATCH_WAITER = '''
import select
pipe_fd, latch_fd = int(sys.argv[1]), int(sys.argv[2])
ready("waiting")
select.select([pipe_fd, latch_fd], [], [])
'''

ACCEPTOR = '''
lfd = int(sys.argv[1])
s = socket.socket(fileno=lfd)
ready("accepting")
s.accept()
'''


def test_or_wait_whose_edges_lead_only_to_an_idle_parent_stops_there(run_py, diagnose_pid) -> None:
    """The PostgreSQL shape: a backend selects on its latch (here a listening socket: a live
    alternative) and on a pipe only the idle postmaster writes. The postmaster explains
    nothing: the chain ends at the backend, with its live alternative as the reason."""
    pipe_r, pipe_w = os.pipe()
    latch, parent_listener = socket.socket(), socket.socket()
    for s in (latch, parent_listener):
        s.bind(("127.0.0.1", 0))
        s.listen(1)
    parent = run_py(ACCEPTOR, str(parent_listener.fileno()), pass_fds=[parent_listener.fileno(), pipe_w])
    backend = run_py(LATCH_WAITER, str(pipe_r), str(latch.fileno()), pass_fds=[pipe_r, latch.fileno()])
    close(pipe_r, pipe_w)
    latch.close()
    parent_listener.close()
    parent.ready(), backend.ready()
    wait_blocked(parent.pid, "accept", "accept4")
    wait_blocked(backend.pid, "select", "pselect6")

    data, code = diagnose_pid(backend.pid)

    assert code == 0
    (chain,) = data["chains"]
    assert chain["path"] == [backend.pid]
    assert chain["end"]["kind"] == "idle", chain["end"]
    assert [e["to"]["pid"] for e in edges_from(data, backend.pid)] == [parent.pid]
