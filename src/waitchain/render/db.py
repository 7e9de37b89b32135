"""Database waits in words (PostgreSQL): a pg-lock edge's label, a client backend's edge to its
client, the end of a backend that waits for a lock nobody named (without --db, or when the
server could not be asked), and what to do about it. Made from model.DbSession/DbLock facts;
labels.py, ends.py and verdicts.py call these."""

from __future__ import annotations

from ..model import DbSession, Diagnosis, Edge, EdgeKind, End

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Sequence, Tuple

QUERY_SHOWN = 48  # characters of the --db query shown in a failed command


def who(session: Optional[DbSession]) -> str:
    """`UPDATE by postgres on database shop from [local]`."""
    if session is None:
        return ""
    parts = [session.activity or "a session"]
    if session.user:
        parts.append(f"by {session.user}")
    if session.database:
        parts.append(f"on database {session.database}")
    if session.client:
        parts.append(f"from {session.client}")
    return " ".join(parts)


def lock_edge(edge: Edge) -> str:
    """A pg-lock edge: the lock, its holder, and both statements."""
    lock = edge.db_lock
    if lock is None:
        return f"waits for a PostgreSQL lock held by session {edge.to_pid}"
    asked = f"{lock.mode} on {edge.object}" if lock.mode else edge.object
    held = f"{edge.to_pid} holds {lock.held_mode}" if lock.held_mode else f"{edge.to_pid} is ahead in the queue"
    text = f"waits for a PostgreSQL lock: {asked} ({lock.locktype}); {held}"
    if lock.holder_state:
        age = f" (transaction open {_age(lock.holder_xact)})" if lock.holder_xact is not None else ""
        text += f", {lock.holder_state}{age}"
    if lock.waiter_query:
        text += f'; waiter\'s statement: "{_one_line(lock.waiter_query)}"'
    if lock.holder_query:
        last = "last statement" if lock.holder_state.startswith("idle") else "statement"
        text += f'; holder\'s {last}: "{_one_line(lock.holder_query)}"'
    return text


def client_edge(edge: Edge, said: str) -> str:
    """A client backend's edge to its client: idle in transaction holds its locks."""
    session = edge.db
    assert session is not None
    if session.activity.startswith("idle in transaction"):
        return (f"PostgreSQL backend {session.activity} ({who_short(session)}): waits for its client's "
                f"next statement, holding its transaction's locks" + _unless_plain(said))
    if session.activity == "idle":
        return f"PostgreSQL backend idle ({who_short(session)}): waits for its client's next statement" + _unless_plain(said)
    return f"PostgreSQL backend, {who(session)}: {said}"


def _unless_plain(said: str) -> str:
    return "" if said == "waits for the peer" else f"; {said}"


def who_short(session: DbSession) -> str:
    return " ".join(p for p in (f"user {session.user}" if session.user else "",
                                f"database {session.database}" if session.database else "",
                                f"client {session.client}" if session.client else "") if p)


def lock_end(end: End) -> str:
    """A backend whose title says it waits for a lock, with no holder named."""
    text = f"waits for a PostgreSQL lock ({who(end.db)}); who holds it: {end.subject}"
    if end.unread and end.command:
        return f"{text}; --db could not ask the server: {end.unread} (command: {command_text(end.command)})"
    if end.unread:
        return f"{text}; --db: {end.unread}"
    return text + " (waitchain --db asks the server)"


def command_text(command: Tuple[str, ...]) -> str:
    """The psql command as a person would type it, its long query shortened."""
    shown = list(command)
    if len(shown) >= 2 and shown[-2] == "-c" and len(shown[-1]) > QUERY_SHOWN:
        shown[-1] = shown[-1][:QUERY_SHOWN] + "…"
    import shlex  # here, not at the top: every text run imports this module (~1.6 ms)

    return shlex.join(shown)


def lock_advice(pid: int, end: Optional[End]) -> Tuple[str, List[str], List[str], List[str]]:
    """Headline, steps, do now, to fix for a backend waiting for a lock nobody named."""
    import shlex

    session = end.db if end is not None else None
    db = f" -d {shlex.quote(session.database)}" if session is not None and session.database else ""
    query = f"SELECT pg_blocking_pids({pid})"
    steps = [f"{pid} is a PostgreSQL backend ({who(session)}) that waits for a lock another session holds"]
    if end is not None and end.unread:
        steps.append(f"--db did not name the holder: {end.unread}"
                     + (f" (command: {command_text(end.command)})" if end.command else ""))
    now = [f"ask the server who holds it, as its OS user: psql{db} -c '{query}' (or: waitchain --db {pid}); "
           f"then the holder's state and statement: SELECT pid, state, xact_start, query FROM pg_stat_activity "
           f"WHERE pid = ANY(pg_blocking_pids({pid})); a holder 'idle in transaction' waits for its client: "
           "waitchain its pid"]
    fix = ["keep transactions short (no waiting for people or other services inside one); give the waiter "
           "a lock_timeout (SET lock_timeout = '5s') and the holders an idle_in_transaction_session_timeout"]
    return f"DATABASE LOCK: {pid} waits for a PostgreSQL lock held by another session", steps, now, fix


def _locks_on(diag: Diagnosis, path: Sequence[int]) -> List[Edge]:
    pairs = set(zip(path, path[1:]))
    return [e for e in diag.edges if e.kind == EdgeKind.PG_LOCK and (e.from_pid, e.to_pid) in pairs]


def chain_steps(diag: Diagnosis, path: Sequence[int]) -> List[str]:
    """A chain through pg-lock edges: who holds each lock, and why it does not let go."""
    from .common import name  # here: common imports labels, which imports this module

    steps = []
    for edge in _locks_on(diag, path):
        state = edge.db_lock.holder_state if edge.db_lock is not None else ""
        text = (f"{name(diag, edge.from_pid)} waits for a PostgreSQL lock held by the session of backend "
                f"{name(diag, edge.to_pid)}" + (f", {state}" if state else ""))
        if state.startswith("idle in transaction"):
            text += (": its transaction keeps the lock until its client commits or rolls back, and the chain "
                     "follows that client")
        steps.append(text)
    return steps


def chain_now(diag: Diagnosis, path: Sequence[int]) -> List[str]:
    """Do now, first, on a chain through a pg-lock edge: how to release the lock at once."""
    holders = list(dict.fromkeys(e.to_pid for e in _locks_on(diag, path)))
    if not holders:
        return []
    calls = ", ".join(f"pg_terminate_backend({p})" for p in holders)
    return [f"to release the PostgreSQL lock at once: SELECT {calls} (the holder's transaction is rolled back "
            "and its client gets an error; never kill -9 a backend)"]


def deadlock_advice(culprit: Optional[int]) -> Tuple[List[str], List[str]]:
    """Backends that wait for each other's locks (the server's deadlock detector has not run
    yet: deadlock_timeout)."""
    if culprit is None:
        now = ["cancel one of the sessions' statements: SELECT pg_cancel_backend(PID) for a backend of the cycle"]
    else:
        now = [f"cancel one statement: SELECT pg_cancel_backend({culprit}) (its transaction fails and releases "
               f"its locks; pg_terminate_backend({culprit}) ends the session); never kill -9 a backend: "
               "the server restarts every session"]
    fix = ["the transactions lock the same rows or tables in opposite orders: take them in one order "
           "everywhere (ORDER BY the key with SELECT ... FOR UPDATE first); a lower deadlock_timeout lets "
           "the server's detector end such cycles itself"]
    return now, fix


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _one_line(text: str, width: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
