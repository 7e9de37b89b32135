"""What a first review on real hangs found (flock, tail -f, a FIFO, redis BLPOP, an asyncio
server, a program in tmux, a Python ABBA): names that keep argument paths, the verdict for
chains that end where nothing is stuck for good, --explain commands that run as printed,
each thread's code line, and a tree that does not repeat itself."""

from __future__ import annotations

import re
import subprocess
from typing import Dict, List, Tuple

from waitchain.model import (Chain, ChainEnd, Cycle, Diagnosis, Edge, End, Frame, Location,
                             Process, RootCause, Stack, Syscall, Task, Wait)
from waitchain.names import program, short_cmdline
from waitchain.render import Options, text
from waitchain.render.common import verdict
from waitchain.render.explain import edge_checks, end_checks


def _proc(pid: int, comm: str, ppid: int = 1, fds: Dict[int, str] = None) -> Process:
    return Process(pid=pid, starttime=pid, comm=comm, state="S", ppid=ppid, pgrp=ppid, uid=0,
                   netns="net:[1]", fds=fds or {})


def _task(tid: int, comm: str, name: str, nr: int, args: Tuple[int, ...] = ()) -> Task:
    return Task(tid, comm, "S", Syscall(nr, name, args + (0,) * (6 - len(args))), "x")


def _diag(procs: List[Process], tasks, cmdlines, waits, edges, chains, cycles=(), cause=None,
          stacks=None) -> Diagnosis:
    return Diagnosis(starts=[chains[0].start], processes={p.pid: p for p in procs}, tasks=tasks,
                     cmdlines=cmdlines, waits=waits, edges=list(edges), chains=chains,
                     cycles=list(cycles), root_cause=cause, stacks=stacks or {},
                     blocked_for={k: 60.0 for k in waits})


# --- names ----------------------------------------------------------------------------------


def test_names_keep_the_paths_of_arguments() -> None:
    assert short_cmdline("flock /tmp/l sleep 1000") == "flock /tmp/l sleep 1000"
    assert short_cmdline("/usr/bin/cat /tmp/wc/bigfile") == "cat /tmp/wc/bigfile"
    assert short_cmdline("postgres: 15/main: postgres [local] UPDATE waiting", 80) \
        == "postgres: 15/main: postgres [local] UPDATE waiting"
    assert short_cmdline("sshd: root@pts/0") == "sshd: root@pts/0"


def test_names_drop_the_directory_of_a_script() -> None:
    assert short_cmdline("/usr/bin/python3 /srv/app/server.py -v") == "python3 server.py -v"
    assert program("/usr/bin/python3 /srv/app/server.py -v") == "server.py"
    assert program("/bin/bash /opt/x/run.sh") == "run.sh"


def test_a_process_title_is_named_without_its_colon() -> None:
    assert program("nginx: worker process") == "nginx"
    assert program("postgres: 15/main: postgres postgres [local] UPDATE waiting") == "postgres"


def test_a_script_read_from_an_fd_is_named_by_its_interpreter() -> None:
    assert short_cmdline("bash /dev/fd/3") == "bash /dev/fd/3"
    assert program("bash /dev/fd/3") == "bash"


# --- the verdict ------------------------------------------------------------------------------


def _sleeping_twice() -> Diagnosis:
    """flock waiter → holder (flock) → child sleep, and → the child directly: one end, twice."""
    w, h, s = 100, 200, 300
    e1 = Edge(w, w, h, None, "flock", "flock /tmp/l", "/proc/locks: '1: FLOCK  ADVISORY  WRITE 200 "
              "fe:00:2146326 0 EOF' conflicts with this LOCK_EX on fe:00:2146326", "waits for the holder")
    e2 = Edge(w, w, s, None, "flock", "flock /tmp/l", "the same lock, inherited", "waits for the holder")
    e3 = Edge(h, h, s, None, "child", "pid 300", "wait4 names 300", "waits for its child")
    end = End("sleeping", "sleeps in clock_nanosleep for 16.7 min")
    waits = {(w, w): Wait(w, w, "flock(3</tmp/l>, LOCK_EX)", (e1, e2)),
             (h, h): Wait(h, h, "wait4(300)", (e3,)),
             (s, s): Wait(s, s, "clock_nanosleep(1000 s)", (), end)}
    chain_end = ChainEnd("sleeping", end.detail, s, s)
    return _diag([_proc(w, "flock", fds={3: "/tmp/l"}), _proc(h, "flock"), _proc(s, "sleep", h)],
                 {w: [_task(w, "flock", "flock", 73, (3, 2))], h: [_task(h, "flock", "wait4", 61)],
                  s: [_task(s, "sleep", "clock_nanosleep", 230)]},
                 {w: "flock /tmp/l true", h: "flock /tmp/l sleep 1000", s: "sleep 1000"},
                 waits, [e1, e2, e3],
                 [Chain(w, (w, h, s), chain_end), Chain(w, (w, s), chain_end)],
                 cause=RootCause(s, s, "clock_nanosleep", "sleeps"))


def test_other_ends_leave_out_the_main_end() -> None:
    v = verdict(_sleeping_twice())
    assert v.others == []
    assert "other chains end at" not in text.render(_sleeping_twice(), Options())


def test_a_process_reached_twice_is_expanded_once() -> None:
    """100 waits for 200 or 250 (two readers of a pipe); both wait for 300, which waits for
    400: the second time 300 comes up, its own chain is not drawn again."""
    edges = [Edge(a, a, b, None, "pipe", "pipe:[1]", "e", "waits for the writer")
             for a, b in ((100, 200), (100, 250), (200, 300), (250, 300), (300, 400))]
    end = End("sleeping", "sleeps")
    waits = {(p, p): Wait(p, p, "read(0<pipe:[1]>)", tuple(e for e in edges if e.from_pid == p))
             for p in (100, 200, 250, 300)}
    waits[(400, 400)] = Wait(400, 400, "clock_nanosleep(9 s)", (), end)
    pids = (100, 200, 250, 300, 400)
    diag = _diag([_proc(p, "cat") for p in pids], {p: [_task(p, "cat", "read", 0)] for p in pids},
                 {p: f"cat{p}" for p in pids}, waits, edges,
                 [Chain(100, (100, 200, 300, 400), ChainEnd("sleeping", "sleeps", 400, 400)),
                  Chain(100, (100, 250, 300, 400), ChainEnd("sleeping", "sleeps", 400, 400))],
                 cause=RootCause(400, 400, "clock_nanosleep", "sleeps"))
    out = text.render(diag, Options()).split("\n\n")[0]
    assert out.count("cat300") == 2 and out.count("cat400") == 1
    assert re.search(r"└─ 300 +cat300 .*shown above$", out.splitlines()[-1])


def test_explain_lock_greps_proc_locks_for_the_inode() -> None:
    diag = _sleeping_twice()
    commands = [c.command for c in edge_checks(diag, diag.edges[0])]
    assert "grep ':2146326 ' /proc/locks" in commands
    commands = [c.command for c in edge_checks(diag, diag.edges[1])]  # no inode in the evidence
    grep = next(c for c in commands if "/proc/locks" in c)
    assert grep == 'grep ":$(stat -Lc %i /proc/100/fd/3) " /proc/locks'  # $(...) must expand
    assert subprocess.run(["bash", "-n", "-c", grep]).returncode == 0


def _idle_at(detail: str, what: str = "poll([4<anon_inode:inotify>])") -> Diagnosis:
    p = 400
    waits = {(p, p): Wait(p, p, what, (), End("idle", detail))}
    return _diag([_proc(p, "tail")], {p: [_task(p, "tail", "poll", 7, (1, 1))]}, {p: "tail -f /var/log/x"},
                 waits, [], [Chain(p, (p,), ChainEnd("idle", detail, p, p))],
                 cause=RootCause(p, p, "poll", detail))


def test_idle_that_is_not_a_server_is_not_called_one() -> None:
    for detail in ("waits for file-system events (inotify fd 4, 1 watch)",
                   "nobody has opened the FIFO /tmp/ff for writing"):
        v = verdict(_idle_at(detail))
        assert "SERVER" not in v.headline and "address and port" not in " ".join(v.now)
    assert "FIFO" in " ".join(verdict(_idle_at("nobody has opened the FIFO /tmp/ff for writing")).now)
    diag = _idle_at("waits for file-system events (inotify fd 4, 1 watch)")
    assert [c.command for c in end_checks(diag, diag.chains[0])][-1] == "grep -h inotify /proc/400/fdinfo/*"
    server = verdict(_idle_at("fd 5<TCP 0.0.0.0:80 (LISTEN)>: a listening socket, waits for a client"))
    assert server.headline.startswith("IDLE SERVER")


def _client_and_loop(kind: str = "tcp") -> Diagnosis:
    """A client waits for a server (or a program reads a terminal) whose event loop waits for
    it among other fds: a cycle that is not a deadlock."""
    c, s = 500, 600
    e1 = Edge(c, c, s, None, kind, "socket:[2]", "peer", "waits for the peer")
    e2 = Edge(s, s, c, None, kind, "socket:[1]", "peer", "waits for the peer")
    live = (End("idle", "fd 6<TCP 127.0.0.1:80 (LISTEN)>: a listening socket, waits for a client"),)
    waits = {(c, c): Wait(c, c, "recvfrom(3<TCP 127.0.0.1:5→127.0.0.1:80>)", (e1,)),
             (s, s): Wait(s, s, "epoll_wait(3<anon_inode:[eventpoll]>)", (e2,), any_of=3, live=live)}
    detail = f"back to {c}: a cycle, but not a deadlock: {s} can still make progress (its epoll_wait() ...)"
    return _diag([_proc(c, "python3"), _proc(s, "python3")],
                 {c: [_task(c, "python3", "recvfrom", 45)], s: [_task(s, "python3", "epoll_wait", 232)]},
                 {c: "python3 client.py", s: "python3 server.py"}, waits, [e1, e2],
                 [Chain(c, (c, s), ChainEnd("cycle", detail, c))],
                 [Cycle((c, s), False, f"{c} can still make progress", ())],  # as graph.py says it
                 RootCause(s, s, "epoll_wait", detail))


def test_a_server_idle_in_its_event_loop_is_no_reply_not_a_cycle_to_wait_out() -> None:
    v = verdict(_client_and_loop())
    assert v.headline.startswith("NO REPLY: 500 client.py waits for 600 server.py")
    assert "run waitchain again" not in " ".join(v.now)
    assert "600 server.py in epoll_wait()" in v.cause


def test_a_program_reading_an_idle_terminal_waits_for_input() -> None:
    v = verdict(_client_and_loop("pty"))
    assert v.headline.startswith("WAITING FOR INPUT: 500 client.py")
    assert v.cause.startswith("500 client.py in recvfrom()")  # the reader, not the multiplexer


def test_a_plain_open_cycle_says_why_once() -> None:
    diag = _client_and_loop()
    waits = dict(diag.waits)
    waits[(600, 600)] = Wait(600, 600, "read(4<pipe:[9]>)", diag.waits[(600, 600)].edges)  # no OR wait
    diag.waits = waits
    v = verdict(diag)
    assert v.headline.startswith("CYCLE")
    assert "back to 500: a cycle, but not a deadlock" not in " ".join(v.steps + v.fix)


def _python_abba() -> Diagnosis:
    p, a, b = 700, 701, 702
    futex = End("unknown", "waits on a futex; no owner can be known")
    waits = {(p, t): Wait(p, t, "futex(0x1, FUTEX_WAIT_BITSET_PRIVATE, 0)", (), futex) for t in (p, a, b)}
    tasks = [_task(t, "python3", "futex", 202, (1,)) for t in (p, a, b)]

    def stack(tid: int, line: int, func: str, code: str, label: str) -> Stack:
        loc = Location("/srv/abba.py", line, func, code)
        return Stack(p, tid, (Frame(func, "/srv/abba.py", line),), loc, label, "py-spy")

    stacks = {(p, p): stack(p, 15, "<module>", "a.join()", "waits in threading.Thread.join"),
              (p, a): stack(a, 7, "transfer", "with audit_lock:", "waits for a lock (with statement)"),
              (p, b): stack(b, 12, "audit", "with accounts_lock:", "waits for a lock (with statement)")}
    return _diag([_proc(p, "python3")], {p: tasks}, {p: "python3 /srv/abba.py"}, waits, [],
                 [Chain(p, (p,), ChainEnd("unknown", futex.detail, p, p))],
                 cause=RootCause(p, p, "futex", futex.detail), stacks=stacks)


def test_threads_stuck_on_python_locks_are_named_with_their_lines() -> None:
    v = verdict(_python_abba())
    assert v.headline.startswith("STUCK ON PYTHON LOCKS: 2 threads of 700 abba.py")
    assert any("abba.py:7 in transfer: with audit_lock:" in s for s in v.steps)
    assert any("abba.py:12 in audit: with accounts_lock:" in s for s in v.steps)
    assert v.cause.startswith("700 abba.py thread 701 in futex()")
    assert v.location == "abba.py:7 in transfer: with audit_lock:"


def test_every_thread_shows_the_line_it_waits_at() -> None:
    tree = text.render(_python_abba(), Options()).split("\n\n")[0]
    for line in ("at abba.py:7 in transfer: with audit_lock:", "at abba.py:12 in audit: with accounts_lock:",
                 "at abba.py:15 in <module>: a.join()"):
        assert tree.count(line) == 1, tree


def test_a_proxy_waiting_for_its_upstream_is_not_called_idle() -> None:
    """curl → nginx (event loop) → upstream, which waits for nginx and for its own child:
    the chain closes at the upstream, which is not an idle server: no NO REPLY verdict that
    blames nginx."""
    c, n, u, kid = 500, 600, 700, 800
    edges = [Edge(c, c, n, None, "tcp", "socket:[1]", "e", "waits for the peer"),
             Edge(n, n, c, None, "tcp", "socket:[2]", "e", "waits for the peer"),
             Edge(n, n, u, None, "tcp", "socket:[3]", "e", "waits for the peer"),
             Edge(u, u, n, None, "tcp", "socket:[4]", "e", "waits for the peer"),
             Edge(u, u, kid, None, "unix", "socket:[5]", "e", "waits for the peer")]
    live = (End("idle", "fd 6<TCP 127.0.0.1:80 (LISTEN)>: a listening socket, waits for a client"),)
    waits = {(c, c): Wait(c, c, "poll([5<TCP>])", edges[:1], any_of=1),
             (n, n): Wait(n, n, "epoll_wait(7<anon_inode:[eventpoll]>)", tuple(edges[1:3]), any_of=5, live=live),
             (u, u): Wait(u, u, "pselect6([5<UNIX>, 6<TCP>])", tuple(edges[3:]), any_of=2)}
    detail = f"back to {n}: a cycle, but not a deadlock: {n} can still make progress (...)"
    diag = _diag([_proc(p, "x") for p in (c, n, u)], {p: [_task(p, "x", "poll", 7)] for p in (c, n, u)},
                 {c: "curl http://127.0.0.1/", n: "nginx: worker process", u: "socat TCP-LISTEN:8080"},
                 waits, edges, [Chain(c, (c, n, u), ChainEnd("cycle", detail, n))],
                 [Cycle((c, n, u), False, f"{n} can still make progress", ())],
                 RootCause(u, u, "pselect6", detail))
    v = verdict(diag)
    assert not v.headline.startswith("NO REPLY"), v.headline


def _backend_and_postmaster() -> Diagnosis:
    """A PostgreSQL backend waiting for a row lock sleeps in epoll_wait on its latch and on the
    postmaster's pipe; the chain follows the pipe to the postmaster, idle in its accept loop."""
    b, pm = 900, 800
    edge = Edge(b, b, pm, None, "pipe", "pipe:[7]", "/proc/800/fd/4 → pipe:[7]; the write end",
                "waits for any of 2 fds, here fd 3<pipe:[7]> (EPOLLIN): waits for the writer")
    detail = "waits for any of 2 fds; none leads to a blocked process: fd 5<TCP 127.0.0.1:5432 (LISTEN)>: " \
             "a listening socket, waits for a client"
    waits = {(b, b): Wait(b, b, "epoll_wait(9<anon_inode:[eventpoll]>)", (edge,), any_of=2,
                          live=(End("signal", "waits for SIGURG through signalfd 8"),)),
             (pm, pm): Wait(pm, pm, "pselect6([5<TCP 127.0.0.1:5432 (LISTEN)>])", (), End("idle", detail))}
    return _diag([_proc(b, "postgres", pm), _proc(pm, "postgres")],
                 {b: [_task(b, "postgres", "epoll_wait", 232)], pm: [_task(pm, "postgres", "pselect6", 270)]},
                 {b: "postgres: 15/main: app app [local] UPDATE waiting", pm: "/usr/lib/postgresql/15/bin/postgres -D /x"},
                 waits, [edge], [Chain(b, (b, pm), ChainEnd("idle", detail, pm, pm))],
                 cause=RootCause(pm, pm, "pselect6", detail))


def test_an_idle_server_reached_through_a_pipe_is_not_where_the_request_got_lost() -> None:
    v = verdict(_backend_and_postmaster())
    assert v.headline.startswith("APPLICATION WAIT: 900 postgres")
    assert "never reached" not in " ".join(v.now + v.fix)
    assert "UPDATE waiting" in v.now[0]
    assert "pg_blocking_pids(pid)" in v.now[1] and "pid = 900" in v.now[1]
    assert v.cause.startswith("900 postgres in epoll_wait()")


def test_a_second_line_of_advice_wraps_under_its_title() -> None:
    out = text.render(_backend_and_postmaster(), Options(width=80))
    advice = out[out.index("do now:"):out.index("to fix:")].splitlines()
    assert len(advice) > 2 and all(line.startswith(" " * 12) for line in advice[1:]), advice
