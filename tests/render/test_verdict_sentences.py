"""The verdicts in words (render/verdicts.py): each verdict the verdict layer gives a real
hang (a flock holder asleep, tail -f, a FIFO, an idle server, redis BLPOP, a program in
tmux, a Python ABBA, a PostgreSQL row lock) says what it is, names the thread to look at,
and advises from the verdict's facts."""

from __future__ import annotations

from render_fixtures import (backend_and_postmaster, client_and_loop, idle_at, python_abba,
                             sleeping_twice)

from waitchain.model import Advice, EdgeKind, Reason
from waitchain.render import Options, json, text
from waitchain.render.verdicts import summary

INOTIFY = "waits for file-system events (inotify fd 4, 1 watch)"
FIFO = "nobody has opened the FIFO /tmp/ff for writing"
LISTENER = "fd 5<TCP 0.0.0.0:80 (LISTEN)>: a listening socket, waits for a client"


def test_other_ends_leave_out_the_main_end() -> None:
    v = summary(sleeping_twice())
    assert v.others == []
    assert "other chains end at" not in text.render(sleeping_twice(), Options())


def test_idle_that_is_not_a_server_is_not_called_one() -> None:
    for detail, reason, advice in ((INOTIFY, Reason.FILE_EVENTS, Advice.FILE_EVENTS),
                                   (FIFO, Reason.FIFO_OPEN, Advice.FIFO)):
        v = summary(idle_at(detail, reason, advice))
        assert "SERVER" not in v.headline and "address and port" not in " ".join(v.now)
    assert "FIFO" in " ".join(summary(idle_at(FIFO, Reason.FIFO_OPEN, Advice.FIFO)).now)
    server = summary(idle_at(LISTENER, Reason.ACCEPT, Advice.IDLE_SERVER))
    assert server.headline.startswith("IDLE SERVER")


def test_a_server_idle_in_its_event_loop_is_no_reply_not_a_cycle_to_wait_out() -> None:
    v = summary(client_and_loop())
    assert v.headline.startswith("NO REPLY: 500 client.py waits for 600 server.py")
    assert "run waitchain again" not in " ".join(v.now)
    assert "600 server.py in epoll_wait()" in v.cause


def test_a_program_reading_an_idle_terminal_waits_for_input() -> None:
    v = summary(client_and_loop(EdgeKind.PTY))
    assert v.headline.startswith("WAITING FOR INPUT: 500 client.py")
    assert v.cause.startswith("500 client.py in recvfrom()")  # the reader, not the multiplexer


def test_a_plain_open_cycle_says_why_once() -> None:
    v = summary(client_and_loop(loop=False))
    assert v.headline.startswith("CYCLE")
    assert "back to 500: a cycle, but not a deadlock" not in " ".join(v.steps + v.fix)


def test_threads_stuck_on_python_locks_are_named_with_their_lines() -> None:
    v = summary(python_abba())
    assert v.headline.startswith("STUCK ON PYTHON LOCKS: 2 threads of 700 abba.py")
    assert any("abba.py:7 in transfer: with audit_lock:" in s for s in v.steps)
    assert any("abba.py:12 in audit: with accounts_lock:" in s for s in v.steps)
    assert v.cause.startswith("700 abba.py thread 701 'transfer' in futex()")
    assert v.thread == (700, 701)
    assert v.location == "abba.py:7 in transfer: with audit_lock:"
    assert ("thread 701 'transfer' and thread 702 'audit' wait for each other (ABBA): 701 holds "
            "`accounts_lock` (with accounts_lock: at abba.py:6) and waits for `audit_lock`; 702 holds "
            "`audit_lock` (with audit_lock: at abba.py:11) and waits for `accounts_lock` "
            "(inferred from source)") in v.steps


def test_python_threads_are_named_with_the_locks_they_hold_and_wait_for() -> None:
    out = text.render(python_abba(), Options(width=200, color=False))
    assert "· 701  thread transfer [S]" in out and "· 700  thread MainThread [S]" in out
    assert "holds `accounts_lock` (with accounts_lock: at abba.py:6, inferred from source)" in out
    assert ("waits for `audit_lock`, held by thread 702 'audit' (with audit_lock: at abba.py:11, "
            "inferred from source)") in out
    thread = next(t for t in json.to_dict(python_abba())["processes"][0]["threads"] if t["tid"] == 701)
    assert thread["name"] == "transfer"
    assert thread["lock_wait"] == {"expression": "audit_lock", "likely_holder": {
        "tid": 702, "expression": "audit_lock", "file": "/srv/abba.py", "line": 11, "statement": "with",
        "code": "with audit_lock:", "inferred_from": "source"}, "owner": None}
    assert [h["expression"] for h in thread["lock_holds"]] == ["accounts_lock"]


def test_an_idle_server_reached_through_a_pipe_is_not_where_the_request_got_lost() -> None:
    v = summary(backend_and_postmaster())
    assert v.headline.startswith("APPLICATION WAIT: 900 postgres")
    assert "never reached" not in " ".join(v.now + v.fix)
    assert "UPDATE waiting" in v.now[0]
    assert "pg_blocking_pids(pid)" in v.now[1] and "pid = 900" in v.now[1]
    assert v.cause.startswith("900 postgres in epoll_wait()")


def _multiprocessing(parent: str, child: str):
    """The demo's parent-waits-for-a-child-writing-to-it deadlock, with the stacks' facts of
    a multiprocessing parent and child (Stack.library_wait)."""
    from render_fixtures import demo

    from waitchain.model import Frame, Stack
    from waitchain.records import replace

    diag = demo()
    s, d = 23270, 32084
    diag.stacks = {(s, s): Stack(s, s, (Frame("join", "/usr/lib/python3.11/multiprocessing/process.py", 149),),
                                 source="py-spy", library_wait=parent),
                   (d, d): Stack(d, d, (Frame("_feed", "/usr/lib/python3.11/multiprocessing/queues.py", 250),),
                                 source="py-spy", library_wait=child)}
    return replace(diag)


def test_a_parent_joining_a_child_stuck_on_a_multiprocessing_queue_is_told_get_before_join() -> None:
    v = summary(_multiprocessing("multiprocessing-join", "multiprocessing-queue"))
    fix = " ".join(v.fix)
    assert "get() before join(): call queue.get() until you have every result (or a sentinel), then p.join()" in fix
    assert "23270 command-server.py joins its multiprocessing child 32084" in fix
    assert "communicate" not in fix


def test_without_both_multiprocessing_sides_the_advice_is_communicate() -> None:
    for parent, child in (("multiprocessing-join", ""), ("", "multiprocessing-queue"), ("", "")):
        fix = " ".join(summary(_multiprocessing(parent, child)).fix)
        assert "p.communicate()" in fix and "get() before join()" not in fix, (parent, child)
