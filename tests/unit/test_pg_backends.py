"""PostgreSQL backends without a server (issue 10): process titles and postmaster.pid parsed,
the --db psql run (a fake psql: an answer, an error, one that never answers and is killed at
its deadline, none at all), the backend rule on a stub snapshot, and the verdicts and
sentences on waits built in code. The real server is tests/scenarios/test_postgres.py's."""

from __future__ import annotations

import os
import stat
import time
from typing import Dict, List, Optional

import pytest
from test_verdict_layer import edge, run, wait

from waitchain import records
from waitchain.model import (Advice, DbLock, DbSession, EdgeKind, End, EndKind, Mode, Reason, Syscall, Task,
                             VerdictClass, Wait)
from waitchain.procfs import postgres
from waitchain.render import db as words
from waitchain.render.ends import detail
from waitchain.render.labels import label
from waitchain.render.verdicts import summary
from waitchain.waits import postgres as rule

# --- titles and postmaster.pid -----------------------------------------------------------------


@pytest.mark.parametrize("cmdline,expected", [
    ("postgres: app shop [local] UPDATE waiting\0\0\0", ("app", "shop", "[local]", "UPDATE", True)),
    ("postgres: 15/main: app shop 10.0.0.5(53422) idle in transaction",
     ("app", "shop", "10.0.0.5(53422)", "idle in transaction", False)),
    ("postgres: app shop [local] idle in transaction (aborted)",
     ("app", "shop", "[local]", "idle in transaction (aborted)", False)),
    ("postgres: app shop [::1](5000) SELECT", ("app", "shop", "[::1](5000)", "SELECT", False)),
])
def test_a_client_backends_title(cmdline: str, expected: tuple) -> None:
    title = postgres.parse_title(cmdline)
    assert title is not None
    assert (title.user, title.database, title.client, title.activity, title.waiting) == expected


@pytest.mark.parametrize("cmdline", [
    "postgres: checkpointer", "postgres: 15/main: autovacuum launcher", "postgres: logical replication launcher",
    "postgres: background writer   ", "/usr/lib/postgresql/15/bin/postgres -D /x", "python3 postgres: a b [local] x",
    "postgres: walsender rep 10.0.0.1 streaming 0/3000148", "",
])
def test_other_processes_are_no_client_backend(cmdline: str) -> None:
    assert postgres.parse_title(cmdline) is None


def test_postmaster_pid_file() -> None:
    text = "321\n/var/lib/pg/data\n1796215528\n5433\n/run/postgresql,/tmp\n\n  2267034        14\nready   \n"
    found = postgres.parse_pid_file(text)
    assert found == postgres.PidFile(321, "/var/lib/pg/data", 5433, "/run/postgresql")
    assert postgres.parse_pid_file("junk\n") is None
    assert postgres.parse_pid_file("12\n/d\n1\n5432\n\n").socket_dir == ""  # type: ignore[union-attr]


def test_connection_string_quotes_what_needs_it() -> None:
    info = postgres.conninfo("/tmp/it's here", 5432, "shop db")
    assert info.startswith("host='/tmp/it\\'s here' port=5432 dbname='shop db' ")
    argv = postgres.psql_argv("/usr/lib/postgresql/15/bin/psql", "/run/postgresql", 5432, "app", [7, 8])
    assert argv[:4] == ["env", f"PGOPTIONS={postgres.OPTIONS}", "/usr/lib/postgresql/15/bin/psql", "-X"]
    assert "-w" in argv and "default_transaction_read_only=on" in postgres.OPTIONS
    assert "statement_timeout=" in postgres.OPTIONS and "lock_timeout=" in postgres.OPTIONS
    assert "ARRAY[7,8]" in argv[-1]


# --- the psql run --------------------------------------------------------------------------------

ROWS = ('[{"waiter":7,"blocker":9,"locktype":"transactionid","mode":"ShareLock","relation":"t","page":0,'
        '"tuple":1,"held_mode":"ExclusiveLock","waiter_query":"UPDATE t SET v = 2","holder_state":'
        '"idle in transaction","holder_query":"UPDATE t SET v = 1","holder_xact":12.5}]')


def _fake_psql(tmp_path, body: str) -> str:
    path = tmp_path / "psql"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_an_answer_is_read(tmp_path) -> None:
    psql = _fake_psql(tmp_path, f"echo '{ROWS}'")
    answer = postgres.ask_blockers(psql, "/nowhere", 5432, "app", [7])
    assert not answer.error
    (row,) = answer.of(7)
    assert row.blocker == 9 and row.lock.mode == "ShareLock" and row.lock.held_mode == "ExclusiveLock"
    assert row.lock.holder_xact == 12.5 and row.lock.tuple == 1


def test_psqls_error_is_the_reason(tmp_path) -> None:
    psql = _fake_psql(tmp_path, "echo 'WARNING: noise' >&2; echo 'psql: error: connection refused' >&2; exit 2")
    answer = postgres.ask_blockers(psql, "/nowhere", 5432, "app", [7])
    assert answer.error == "psql exited with status 2: psql: error: connection refused"
    assert answer.command[2] == psql and not answer.blockers


def test_a_psql_that_never_answers_is_killed_at_the_deadline(tmp_path) -> None:
    psql = _fake_psql(tmp_path, "exec sleep 60")
    started = time.monotonic()
    answer = postgres.ask_blockers(psql, "/nowhere", 5432, "app", [7], deadline=0.5)
    assert time.monotonic() - started < 5
    assert answer.error == "psql did not answer within 0.5 s (killed)"


def test_no_psql_next_to_the_server(tmp_path) -> None:
    answer = postgres.ask_blockers(str(tmp_path / "psql"), "/nowhere", 5432, "app", [7])
    assert answer.error.startswith("no psql next to the server's binary")


def test_a_psql_anyone_may_replace_is_notrun(tmp_path) -> None:
    psql = _fake_psql(tmp_path, f"echo '{ROWS}'")
    os.chmod(psql, 0o777)
    answer = postgres.ask_blockers(psql, "/nowhere", 5432, "app", [7])
    assert answer.error == f"{psql} is writable by anyone or owned by another user: not run"


def test_without_root_another_users_server_is_not_asked(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 1000)
    answer = postgres.ask_blockers(_fake_psql(tmp_path, "exit 0"), "/nowhere", 5432, "app", [7], uid=101, gid=101)
    assert answer.error.startswith("the server runs as uid 101, not as waitchain's user")


def test_an_answer_that_is_no_json(tmp_path) -> None:
    answer = postgres.ask_blockers(_fake_psql(tmp_path, "echo 'not json'"), "/nowhere", 5432, "app", [7])
    assert answer.error.startswith("psql's answer could not be read")


# --- the rule ------------------------------------------------------------------------------------

PM, B, H, CLIENT = 100, 200, 300, 400
WAITING = DbSession("postgresql", PM, "app", "shop", "[local]", "UPDATE", True, "/d")
IDLE_TX = DbSession("postgresql", PM, "app", "shop", "[local]", "idle in transaction", False, "/d")
LOCK = DbLock("transactionid", "ShareLock", "t", 0, 1, "ExclusiveLock", "UPDATE t SET v = 2",
              "idle in transaction", "UPDATE t SET v = 1", 30.0)


class StubSnapshot:
    def __init__(self, sessions: Dict[int, DbSession], answer: Optional[postgres.Answer] = None) -> None:
        self.sessions = sessions
        self.ask_db = answer is not None
        self.answer = answer
        self.asked: List[int] = []

    def db_session(self, pid: int) -> Optional[DbSession]:
        return self.sessions.get(pid)

    def pg_blockers(self, pid: int) -> postgres.Answer:
        self.asked.append(pid)
        assert self.answer is not None
        return self.answer


def _task(pid: int, call: str = "epoll_wait") -> Task:
    return Task(pid, "postgres", "S", Syscall(232, call, (0,) * 6))


def _latch(pid: int) -> Wait:
    """What the generic rules make of a latch wait: the postmaster's pipe and a signal."""
    pipe = edge((pid, pid), PM)
    sig = End(EndKind.SIGNAL, reason=Reason.SIGNAL_WAIT, signals=("SIGURG",))
    return Wait(pid, pid, "epoll_wait(8)", (pipe,), any_of=2, live=(sig,), syscall="epoll_wait")


def test_a_lock_wait_without_db_ends_with_the_query() -> None:
    snap = StubSnapshot({B: WAITING})
    found = rule.refine(snap, B, _task(B), _latch(B))  # type: ignore[arg-type]
    assert not found.edges and not found.live and found.end is not None
    assert found.end.reason == Reason.DB_LOCK and found.end.db == WAITING
    assert found.end.subject == f"SELECT pg_blocking_pids({B})" and not snap.asked
    assert detail(found.end) == (f"waits for a PostgreSQL lock (UPDATE by app on database shop from [local]); who "
                                 f"holds it: SELECT pg_blocking_pids({B}) (waitchain --db asks the server)")


def test_a_lock_wait_with_db_is_an_edge_to_each_blocker() -> None:
    answer = postgres.Answer([postgres.Blocker(B, H, LOCK), postgres.Blocker(B, H + 1, LOCK)], command=("psql",))
    found = rule.refine(StubSnapshot({B: WAITING}, answer), B, _task(B), _latch(B))  # type: ignore[arg-type]
    assert [(e.to_pid, e.kind) for e in found.edges] == [(H, EdgeKind.PG_LOCK), (H + 1, EdgeKind.PG_LOCK)]
    assert found.mode == Mode.ALL and found.end is None and not found.live
    assert found.edges[0].db_lock == LOCK and found.edges[0].object == "row (0,1) of t"
    assert label(found.edges[0]) == (
        f"waits for a PostgreSQL lock: ShareLock on row (0,1) of t (transactionid); {H} holds ExclusiveLock, "
        "idle in transaction (transaction open 30 s); waiter's statement: \"UPDATE t SET v = 2\"; holder's last "
        "statement: \"UPDATE t SET v = 1\"")


def test_a_server_that_could_not_be_asked_says_why_and_how() -> None:
    answer = postgres.Answer(error="psql exited with status 2: refused", command=("env", "PGOPTIONS=x", "psql", "-X"))
    found = rule.refine(StubSnapshot({B: WAITING}, answer), B, _task(B), _latch(B))  # type: ignore[arg-type]
    assert found.end is not None and found.end.unread == "psql exited with status 2: refused"
    assert detail(found.end).endswith("--db could not ask the server: psql exited with status 2: refused "
                                      "(command: env PGOPTIONS=x psql -X)")


def test_a_prepared_transaction_blocks_with_no_session() -> None:
    answer = postgres.Answer([postgres.Blocker(B, 0, LOCK)])
    found = rule.refine(StubSnapshot({B: WAITING}, answer), B, _task(B), _latch(B))  # type: ignore[arg-type]
    assert not found.edges and found.end is not None and "prepared transaction" in found.end.unread


def test_a_backend_idle_in_transaction_keeps_its_edges_with_its_title() -> None:
    client = edge((H, H), CLIENT, EdgeKind.UNIX)
    pipe = edge((H, H), PM)
    generic = Wait(H, H, "epoll_wait(4)", (pipe, client), any_of=3, syscall="epoll_wait")
    found = rule.refine(StubSnapshot({H: IDLE_TX}), H, _task(H), generic)  # type: ignore[arg-type]
    assert found.edges[0].db is None and found.edges[1].db == IDLE_TX  # the postmaster's pipe is plumbing
    assert label(found.edges[1]).startswith("PostgreSQL backend idle in transaction (user app database shop client "
                                            "[local]): waits for its client's next statement, holding")


@pytest.mark.parametrize("pid,call", [(B, "read"), (999, "epoll_wait")])
def test_other_waits_are_left_alone(pid: int, call: str) -> None:
    generic = _latch(pid)
    assert rule.refine(StubSnapshot({B: WAITING}), pid, _task(pid, call), generic) is generic  # type: ignore[arg-type]


# --- verdicts --------------------------------------------------------------------------------------


def test_the_verdict_on_a_lock_wait_is_the_query_not_a_signal() -> None:
    end = End(EndKind.UNKNOWN, reason=Reason.DB_LOCK, subject=f"SELECT pg_blocking_pids({B})", db=WAITING)
    diag = run([wait((CLIENT, CLIENT), edge((CLIENT, CLIENT), B, EdgeKind.UNIX), syscall="poll"),
                 Wait(B, B, "epoll_wait()", end=end, syscall="epoll_wait")], CLIENT)
    (v,) = diag.verdicts
    assert v.cls == VerdictClass.CHAIN_END and v.advice == Advice.DB_LOCK and v.cause == (B, B)
    words_ = summary(diag)
    assert words_.headline.startswith(f"DATABASE LOCK: {B} waits for a PostgreSQL lock")
    assert f"SELECT pg_blocking_pids({B})" in words_.now[0] and "signal" not in " ".join(words_.now)


def test_two_backends_waiting_for_each_other_are_a_deadlock() -> None:
    a = pg_edge(B, H)
    b = pg_edge(H, B)
    diag = run([wait((CLIENT, CLIENT), edge((CLIENT, CLIENT), B, EdgeKind.UNIX), syscall="poll"),
                 Wait(B, B, "epoll_wait()", (a,), syscall="epoll_wait", mode=Mode.ALL),
                 Wait(H, H, "epoll_wait()", (b,), syscall="epoll_wait", mode=Mode.ALL)], CLIENT)
    (v,) = diag.verdicts
    assert v.cls == VerdictClass.DEADLOCK and set(v.members) == {B, H} and v.victims == (CLIENT,)
    assert v.advice == Advice.LOCK_ORDER and diag.deadlocked
    now = summary(diag).now[0]
    assert now.startswith(f"cancel one statement: SELECT pg_cancel_backend({v.culprit})") and "kill -9" in now


def pg_edge(a: int, b: int):
    return records.replace(edge((a, a), b, EdgeKind.PG_LOCK), db=WAITING, db_lock=LOCK)


def test_a_failed_command_is_shown_short() -> None:
    text = words.command_text(("psql", "-c", "SELECT " + "x" * 200))
    assert text.startswith("psql -c 'SELECT xxx") and text.endswith("…'") and len(text) < 80
