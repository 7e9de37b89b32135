"""PostgreSQL from the outside: a backend's process title, the postmaster.pid file of its
server, and (with --db only) the server's own psql asked who blocks whom.

A backend is a child of the postmaster whose command line PostgreSQL rewrites to a title:
"postgres: [CLUSTER: ]USER DATABASE CLIENT ACTIVITY", CLIENT "[local]" or "HOST(PORT)",
ACTIVITY "idle", "idle in transaction", "UPDATE", with " waiting" appended while it waits
for a heavyweight lock. postmaster.pid, in the data directory (the postmaster's cwd), names
the port and the first unix socket directory.

`ask_blockers` runs psql as the postmaster's OS user over that unix socket, read-only:
no shell, no password, no psqlrc, a read-only transaction with statement and lock timeouts
and an overall deadline. It reads pg_blocking_pids, pg_locks and pg_stat_activity, which
take no locks beyond the catalog views' own."""

from __future__ import annotations

import os
import re
import signal

from ..model import DbLock
from ..records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:  # json and subprocess are imported when psql is run (--db): not on every run
    import subprocess
    from typing import Dict, List, Optional, Sequence, Tuple

PREFIX = "postgres: "
COMMS = ("postgres", "postmaster")  # comm of a postmaster and its backends (the title changes only cmdline)
CLIENT = re.compile(r"^(\[local\]|\S+\(\d+\))$")
STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 1000
CONNECT_TIMEOUT_S = 5
DEADLINE_S = 10.0  # the whole psql run, connection included
MAX_OUTPUT = 1 << 20


@record(frozen=True)
class Title:
    """A client backend's process title."""

    user: str
    database: str
    client: str
    activity: str  # without " waiting"
    waiting: bool


def parse_title(cmdline: str) -> Optional[Title]:
    """The facts of a client backend's title; None for the postmaster, a background process
    (checkpointer, autovacuum, walsender...) or anything else."""
    text = cmdline.replace("\0", " ").strip()
    if not text.startswith(PREFIX):
        return None
    words = text[len(PREFIX):].split()
    if words and words[0].endswith(":"):  # cluster_name, e.g. "15/main:"
        words = words[1:]
    if len(words) < 4 or not CLIENT.match(words[2]):
        return None
    activity = " ".join(words[3:])
    waiting = activity.endswith(" waiting")
    if waiting:
        activity = activity[: -len(" waiting")]
    return Title(words[0], words[1], words[2], activity, waiting)


@record(frozen=True)
class PidFile:
    """postmaster.pid: the server's pid (in its own pid namespace), data directory, port and
    first unix socket directory ("" when it listens on none)."""

    pid: int
    datadir: str
    port: int
    socket_dir: str


def parse_pid_file(text: str) -> Optional[PidFile]:
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    sockets = lines[4].strip() if len(lines) > 4 else ""
    return PidFile(int(lines[0]), lines[1].strip(), int(lines[3]), sockets.split(",")[0].strip())


# --- --db: psql ------------------------------------------------------------------------------


@record(frozen=True)
class Blocker:
    """One row of the answer: `waiter` is blocked by `blocker` (pids as the server sees them;
    0 is a prepared transaction)."""

    waiter: int
    blocker: int
    lock: DbLock


@record
class Answer:
    """What psql said: blocker rows, or why it could not say (`error`, with `command`)."""

    blockers: List[Blocker] = field(default_factory=list)
    error: str = ""
    command: Tuple[str, ...] = ()
    asked: Tuple[int, ...] = ()  # the waiters asked about

    def of(self, waiter: int) -> List[Blocker]:
        return [b for b in self.blockers if b.waiter == waiter]


def query(waiters: Sequence[int]) -> str:
    """One statement: for each waiter, each blocking pid with the waiter's ungranted lock,
    the row it waits for (its granted tuple lock), the blocker's granted mode on the same
    object, both statements and the blocker's state. JSON, so that statements with newlines
    or separators survive."""
    pids = ",".join(str(int(p)) for p in waiters)
    same = " AND ".join(f"h.{c} IS NOT DISTINCT FROM wl.{c}" for c in (
        "locktype", "database", "relation", "page", "tuple", "virtualxid", "transactionid",
        "classid", "objid", "objsubid"))
    return (
        "SELECT coalesce(json_agg(row_to_json(r)), '[]') FROM ("
        "SELECT w.pid AS waiter, b.pid AS blocker, wl.locktype, wl.mode, "
        "coalesce(wl.relation, tl.relation)::regclass::text AS relation, "
        "coalesce(wl.page, tl.page) AS page, coalesce(wl.tuple, tl.tuple) AS tuple, "
        f"(SELECT string_agg(DISTINCT h.mode, ',') FROM pg_locks h WHERE h.pid = b.pid AND h.granted AND {same}) "
        "AS held_mode, wa.query AS waiter_query, ba.state AS holder_state, ba.query AS holder_query, "
        "extract(epoch FROM clock_timestamp() - ba.xact_start)::float8 AS holder_xact "
        f"FROM unnest(ARRAY[{pids}]::int[]) AS w(pid) "
        "CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid) "
        "LEFT JOIN pg_locks wl ON wl.pid = w.pid AND NOT wl.granted "
        "LEFT JOIN LATERAL (SELECT t.relation, t.page, t.tuple FROM pg_locks t WHERE t.pid = w.pid "
        "AND t.granted AND t.locktype = 'tuple' LIMIT 1) tl ON true "
        "LEFT JOIN pg_stat_activity wa ON wa.pid = w.pid "
        "LEFT JOIN pg_stat_activity ba ON ba.pid = b.pid) r")


OPTIONS = (f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS} "
           f"-c lock_timeout={LOCK_TIMEOUT_MS}")  # the session's settings (PGOPTIONS): read-only, timeouts


def conninfo(socket_dir: str, port: int, database: str) -> str:
    """A libpq connection string (an argument, never through a shell): the unix socket and
    the database."""
    parts = {"host": socket_dir, "port": str(port), "dbname": database or "postgres",
             "connect_timeout": str(CONNECT_TIMEOUT_S), "application_name": "waitchain"}
    return " ".join(f"{k}={_quote(v)}" for k, v in parts.items())


def _quote(value: str) -> str:
    """A conninfo value: as it is when plain, else in single quotes with ' and \\ escaped."""
    if value and re.fullmatch(r"[\w./:@+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def psql_argv(psql: str, socket_dir: str, port: int, database: str, waiters: Sequence[int]) -> List[str]:
    """env PGOPTIONS=... psql ...: no psqlrc (-X), unaligned tuples only, never a password prompt (-w)."""
    return ["env", f"PGOPTIONS={OPTIONS}", psql, "-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1",
            "-d", conninfo(socket_dir, port, database), "-c", query(waiters)]


def ask_blockers(psql: str, socket_dir: str, port: int, database: str, waiters: Sequence[int],
                 uid: Optional[int] = None, gid: Optional[int] = None,
                 deadline: float = DEADLINE_S) -> Answer:
    """Run the server's psql (as uid/gid when we may switch to them) and parse its answer."""
    import subprocess

    argv = psql_argv(psql, socket_dir, port, database, waiters)
    shown = tuple(argv)
    answer = Answer(command=shown, asked=tuple(waiters))
    if not os.path.isfile(psql) or not os.access(psql, os.X_OK):
        answer.error = f"no psql next to the server's binary ({psql})"
        return answer
    answer.error = _refused(psql, uid)
    if answer.error:
        return answer
    try:
        out, err, code = _run(argv, uid, gid, deadline)
    except subprocess.TimeoutExpired:
        answer.error = f"psql did not answer within {deadline:g} s (killed)"
        return answer
    except OSError as exc:
        answer.error = f"psql could not be started: {exc.strerror or exc}"
        return answer
    if code != 0:
        answer.error = f"psql{_as(uid)} exited with status {code}" + (f": {_first_error(err)}" if err.strip() else "")
        return answer
    try:
        answer.blockers = parse_answer(out)
    except ValueError as exc:
        answer.error = f"psql's answer could not be read: {exc}"
    return answer


def _refused(psql: str, uid: Optional[int]) -> str:
    """Why this psql is not run: we would run it as ourselves for a server of another user
    (without root we cannot switch), or anyone else could have replaced it."""
    euid = os.geteuid()
    if uid is not None and euid != 0 and uid != euid:
        return (f"the server runs as uid {uid}, not as waitchain's user: run waitchain --db as root "
                "or as the server's user")
    info = os.stat(psql)
    if info.st_mode & 0o002 or info.st_uid not in (0, euid, uid):
        return f"{psql} is writable by anyone or owned by another user: not run"
    return ""


def _run(argv: List[str], uid: Optional[int], gid: Optional[int], deadline: float) -> Tuple[str, str, int]:
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PGCLIENTENCODING": "UTF8", "PGOPTIONS": OPTIONS,
           "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}
    argv = argv[2:] if argv[:1] == ["env"] else argv  # the same, without a process in between
    switch: Dict[str, object] = {}
    if uid is not None and os.geteuid() == 0 and uid != 0:
        switch = {"user": uid, "group": gid if gid is not None else uid, "extra_groups": []}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd="/", start_new_session=True, **switch)  # type: ignore[call-overload]
    try:
        out, err = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise
    return (out[:MAX_OUTPUT].decode("utf-8", "replace"), err[:MAX_OUTPUT].decode("utf-8", "replace"),
            proc.returncode)


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.communicate()


def _as(uid: Optional[int]) -> str:
    """` (as postgres)` when psql runs as another user."""
    if uid is None or uid == os.geteuid() or os.geteuid() != 0:
        return ""
    try:
        import pwd  # imported when first needed: start-up (issue 14)

        return f" (as {pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f" (as uid {uid})"


def _first_error(err: str) -> str:
    """psql's error line ("psql: error: connection to server ... failed: ..."), not a warning."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower() or "FATAL" in line), lines[0] if lines else "")


def parse_answer(text: str) -> List[Blocker]:
    """The JSON rows of `query` (raises ValueError when it is not that)."""
    import json

    rows = json.loads(text.strip() or "[]")
    if not isinstance(rows, list):
        raise ValueError("not a list of rows")
    return [_blocker(row) for row in rows if isinstance(row, dict)]


def _blocker(row: Dict[str, object]) -> Blocker:
    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value)

    def number(key: str) -> Optional[int]:
        value = row.get(key)
        return int(value) if isinstance(value, (int, float)) else None

    xact = row.get("holder_xact")
    lock = DbLock(text("locktype"), text("mode"), text("relation"), number("page"), number("tuple"),
                  text("held_mode"), text("waiter_query"), text("holder_state"), text("holder_query"),
                  float(xact) if isinstance(xact, (int, float)) else None)
    waiter, blocker = number("waiter"), number("blocker")
    if waiter is None or blocker is None:
        raise ValueError("a row without waiter or blocker pid")
    return Blocker(waiter, blocker, lock)
