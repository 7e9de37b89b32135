"""PostgreSQL lock waits (issue 10) on a real server the test starts: initdb once into a
temporary directory, then per test a copy of it started as the `postgres` OS user on a private
unix socket directory with no TCP (listen_addresses='') and deadlock_timeout=10min, so the
server's own detector never ends a deadlock during a test; stopped with pg_ctl stop -m
immediate even when the test fails (and its processes killed and reaped by `procs`).

Clients are real psql processes reading their commands from a pipe whose other write end a
`sleep` holds: once the test closes its own, the client's chain ends at that sleep.

- a row lock: the waiter's psql -> its backend (UPDATE waiting) -> with --db, the holder's
  backend (idle in transaction, pg-lock edge) -> the holder's psql -> the sleep; without --db
  the chain ends at the waiting backend with the pg_blocking_pids query;
- --db when the server cannot be reached (its socket removed): a clear end naming psql's
  error and the command, no hang;
- two sessions updating two rows in opposite orders: a deadlock, exit 1, both statements named;
- an idle backend (no transaction) is a server waiting for its client, not a lock wait."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from typing import Dict, Iterator, List, NamedTuple, Optional

import jsonschema
import pytest
from scenario_helpers import edges_from, only_chain

import waitchain

from waitchain.demo.harness import blocked_in, wait_until
from waitchain.procfs.postgres import parse_title

USER = "postgres"
LATCH_CALLS = ("epoll_wait", "epoll_pwait", "poll")


def _bin_dir() -> Optional[str]:
    """The newest /usr/lib/postgresql/NN/bin (Debian), else the directory of `postgres` on PATH."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.isfile(os.path.join(d, "initdb"))]
    found.sort(key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    if found:
        return found[-1]
    server = shutil.which("postgres")
    return os.path.dirname(os.path.realpath(server)) if server else None


def _user_exists() -> bool:
    try:
        pwd.getpwnam(USER)
        return True
    except KeyError:
        return False


BIN = _bin_dir()
pytestmark = pytest.mark.skipif(BIN is None or os.geteuid() != 0 or not _user_exists(),
                                reason="needs root, a postgres OS user and the PostgreSQL server binaries")


def _tool(name: str) -> str:
    assert BIN is not None
    return os.path.join(BIN, name)


def _as_postgres(argv: List[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, user=USER, group=pwd.getpwnam(USER).pw_gid, extra_groups=[], cwd="/",
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, **kwargs)
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def template() -> Iterator[str]:
    """A data directory made once by initdb (trust authentication: the sockets are private)."""
    top = tempfile.mkdtemp(prefix="waitchain-pg-")
    os.chmod(top, 0o755)
    shutil.chown(top, USER)
    data = os.path.join(top, "template")
    try:
        _as_postgres([_tool("initdb"), "-D", data, "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8",
                      "--locale=C"])
        yield data
    finally:
        shutil.rmtree(top, ignore_errors=True)


class Cluster(NamedTuple):
    postmaster: int
    data: str
    sockets: str


@pytest.fixture
def cluster(template: str, procs) -> Iterator[Cluster]:
    """A server started from a copy of the template, stopped (immediate) when the test ends."""
    top = os.path.dirname(template)
    run = tempfile.mkdtemp(prefix="run-", dir=top)
    os.chmod(run, 0o755)
    shutil.chown(run, USER)
    data, sockets = os.path.join(run, "data"), os.path.join(run, "sockets")
    _as_postgres(["cp", "-a", template, data])
    _as_postgres(["mkdir", sockets])
    server = procs.spawn([_tool("postgres"), "-D", data, "-k", sockets, "-c", "listen_addresses=",
                          "-c", "deadlock_timeout=10min", "-c", "fsync=off", "-c", "autovacuum=off"],
                         user=USER, group=pwd.getpwnam(USER).pw_gid, extra_groups=[], cwd="/",
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _ready(data, server.pid), "the server accepts connections")
        _sql(sockets, "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0);")
        yield Cluster(server.pid, data, sockets)
    finally:
        subprocess.run([_tool("pg_ctl"), "stop", "-D", data, "-m", "immediate", "-w", "-t", "20"], user=USER,
                       cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        server.wait(timeout=30)
        shutil.rmtree(run, ignore_errors=True)


def _ready(data: str, pid: int) -> bool:
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            lines = f.read().split("\n")
    except OSError:
        return False
    return len(lines) > 7 and lines[0] == str(pid) and lines[7].strip() == "ready"


def _sql(sockets: str, statement: str) -> None:
    subprocess.run([_tool("psql"), "-X", "-q", "-h", sockets, "-U", USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                    "-c", statement], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=True)


class Session:
    """A psql client reading commands from a pipe; a sleep holds the pipe's other write end."""

    def __init__(self, procs, sockets: str) -> None:
        r, self.w = os.pipe()
        out_r, out_w = os.pipe()
        self.psql = procs.spawn([_tool("psql"), "-X", "-q", "-A", "-t", "-h", sockets, "-U", USER, "-d", "postgres"],
                                stdin=r, stdout=out_w, stderr=subprocess.DEVNULL)
        self.writer = procs.spawn(["sleep", "600"], pass_fds=(self.w,))
        os.close(r)
        os.close(out_w)
        self.out = out_r
        self.send("SELECT pg_backend_pid();")
        self.backend = int(self._line())

    def send(self, commands: str) -> None:
        os.write(self.w, (commands + "\n").encode())

    def done(self) -> None:
        """The test writes no more: the sleep is the pipe's only writer left."""
        if self.w >= 0:
            os.close(self.w)
            self.w = -1
        if self.out >= 0:
            os.close(self.out)
            self.out = -1

    def _line(self) -> str:
        buf = b""
        deadline = time.monotonic() + 20
        while not buf.endswith(b"\n"):
            import select
            if not select.select([self.out], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("psql did not answer")
            chunk = os.read(self.out, 1)
            if not chunk:
                raise RuntimeError("psql exited")
            buf += chunk
        return buf.decode().strip()


@pytest.fixture
def sessions(procs) -> Iterator[List[Session]]:
    opened: List[Session] = []
    yield opened
    for s in opened:
        s.done()


def _open(procs, cluster: Cluster, opened: List[Session]) -> Session:
    session = Session(procs, cluster.sockets)
    opened.append(session)
    return session


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def wait_state(backend: int, activity: str, waiting: bool = False) -> None:
    """The backend's title shows `activity` (and " waiting") and it sleeps in its latch wait."""
    def there() -> bool:
        title = parse_title(_title(backend))
        return (title is not None and title.activity == activity and title.waiting == waiting
                and blocked_in(backend, LATCH_CALLS))
    wait_until(there, f"backend {backend} is {activity}{' waiting' if waiting else ''}")


SCHEMA = os.path.join(os.path.dirname(waitchain.__file__), "data", "waitchain-1.schema.json")


def _diagnose(run_cli, pid: int, *flags: str) -> tuple:
    """The CLI's JSON, valid against the waitchain/1 schema, and its exit code."""
    result = run_cli(str(pid), "--json", "--no-stacks", *flags)
    assert result.out, result.err
    data = json.loads(result.out)
    with open(SCHEMA, encoding="utf-8") as f:
        jsonschema.validate(data, json.load(f))
    return data, result.code


def _edge(data: Dict, a: int, b: int) -> Dict:
    return next(e for e in edges_from(data, a) if e["to"]["pid"] == b)


def _row_lock(procs, cluster: Cluster, opened: List[Session]) -> tuple:
    holder = _open(procs, cluster, opened)
    holder.send("BEGIN; UPDATE t SET v = 1 WHERE id = 1;")
    wait_state(holder.backend, "idle in transaction")
    waiter = _open(procs, cluster, opened)
    waiter.send("UPDATE t SET v = 2 WHERE id = 1;")
    wait_state(waiter.backend, "UPDATE", waiting=True)
    for s in (holder, waiter):
        s.done()
    wait_until(lambda: blocked_in(waiter.psql.pid, ("poll", "ppoll")), "the waiter's psql polls its backend")
    wait_until(lambda: blocked_in(holder.psql.pid, ("read",)), "the holder's psql reads its input")
    return holder, waiter


# --- a row lock -------------------------------------------------------------------------------


def test_row_lock_with_db_follows_to_the_holders_client(procs, cluster, sessions, run_cli) -> None:
    holder, waiter = _row_lock(procs, cluster, sessions)
    data, code = _diagnose(run_cli, waiter.psql.pid, "--db")
    chain = only_chain(data)
    assert chain["path"] == [waiter.psql.pid, waiter.backend, holder.backend, holder.psql.pid, holder.writer.pid]
    assert _edge(data, waiter.psql.pid, waiter.backend)["kind"] == "unix"
    lock = _edge(data, waiter.backend, holder.backend)
    assert lock["kind"] == "pg-lock"
    assert "ShareLock" in lock["label"] and "UPDATE t SET v = 2 WHERE id = 1;" in lock["label"]
    assert "idle in transaction" in lock["label"] and "UPDATE t SET v = 1 WHERE id = 1;" in lock["label"]
    assert f"pg_blocking_pids({waiter.backend}) names {holder.backend}" in lock["evidence"]
    facts = lock["db_lock"]
    assert (facts["locktype"], facts["mode"], facts["held_mode"], facts["relation"]) == (
        "transactionid", "ShareLock", "ExclusiveLock", "t")
    assert facts["tuple"] is not None and facts["holder_state"] == "idle in transaction"
    assert facts["waiter_query"] == "UPDATE t SET v = 2 WHERE id = 1;"
    assert facts["holder_query"] == "UPDATE t SET v = 1 WHERE id = 1;"
    assert lock["db"]["activity"] == "UPDATE" and lock["db"]["waiting"] is True
    assert lock["db"]["server"] == cluster.postmaster and lock["db"]["datadir"] == cluster.data
    client = _edge(data, holder.backend, holder.psql.pid)
    assert client["kind"] == "unix" and "idle in transaction" in client["label"]
    assert _edge(data, holder.psql.pid, holder.writer.pid)["kind"] == "pipe"
    assert chain["end"]["kind"] == "sleeping" and chain["end"]["pid"] == holder.writer.pid
    verdict = data["verdicts"][0]
    assert verdict["advice"] == "sleeping" and verdict["cause"]["pid"] == holder.writer.pid
    assert any(f"held by the session of backend {holder.backend}" in step and "idle in transaction" in step
               for step in verdict["steps"])
    assert verdict["now"][0].startswith(f"to release the PostgreSQL lock at once: SELECT "
                                        f"pg_terminate_backend({holder.backend})")
    assert data["deadlock"] is False and code == 0


def test_row_lock_without_db_ends_with_the_query(procs, cluster, sessions, run_cli) -> None:
    holder, waiter = _row_lock(procs, cluster, sessions)
    data, code = _diagnose(run_cli, waiter.psql.pid)
    chain = only_chain(data)
    assert chain["path"] == [waiter.psql.pid, waiter.backend]
    assert chain["end"]["reason"] == "db-lock"
    assert "waits for a PostgreSQL lock (UPDATE by postgres on database postgres from [local])" in chain["end"]["detail"]
    verdict = data["verdicts"][0]
    assert verdict["advice"] == "db-lock" and verdict["cause"]["pid"] == waiter.backend
    assert f"SELECT pg_blocking_pids({waiter.backend})" in verdict["now"][0]
    assert not any("signal" in line for line in verdict["now"])
    assert code == 0
    text = run_cli(str(waiter.psql.pid), "--no-stacks")
    assert "DATABASE LOCK" in text.out and f"pg_blocking_pids({waiter.backend})" in text.out


def test_db_unreachable_says_why(procs, cluster, sessions, run_cli) -> None:
    holder, waiter = _row_lock(procs, cluster, sessions)
    for path in glob.glob(os.path.join(cluster.sockets, ".s.PGSQL.*")):
        if not path.endswith(".lock"):
            os.unlink(path)  # new connections fail; the sessions' own go on
    started = time.monotonic()
    data, code = _diagnose(run_cli, waiter.psql.pid, "--db")
    assert time.monotonic() - started < 15
    chain = only_chain(data)
    assert chain["path"] == [waiter.psql.pid, waiter.backend]
    detail = chain["end"]["detail"]
    assert "--db could not ask the server: psql (as postgres) exited with status 2" in detail
    assert "No such file or directory" in detail and "psql -X -A -t -q -w" in detail
    (thread,) = next(p for p in data["processes"] if p["pid"] == waiter.backend)["threads"]
    assert thread["end"]["command"][:2] == ["env", "PGOPTIONS=-c default_transaction_read_only=on -c "
                                            "statement_timeout=5000 -c lock_timeout=1000"]
    assert thread["end"]["db"]["activity"] == "UPDATE"
    assert data["verdicts"][0]["advice"] == "db-lock" and code == 0


# --- a deadlock the server's detector has not seen yet ------------------------------------------


def test_two_sessions_deadlock(procs, cluster, sessions, run_cli) -> None:
    a, b = _open(procs, cluster, sessions), _open(procs, cluster, sessions)
    a.send("BEGIN; UPDATE t SET v = 10 WHERE id = 1;")
    b.send("BEGIN; UPDATE t SET v = 20 WHERE id = 2;")
    wait_state(a.backend, "idle in transaction")
    wait_state(b.backend, "idle in transaction")
    a.send("UPDATE t SET v = 11 WHERE id = 2;")
    wait_state(a.backend, "UPDATE", waiting=True)
    b.send("UPDATE t SET v = 21 WHERE id = 1;")
    wait_state(b.backend, "UPDATE", waiting=True)
    for s in (a, b):
        s.done()
    data, code = _diagnose(run_cli, a.psql.pid, "--db")
    assert code == 1 and data["deadlock"] is True
    verdict = data["verdicts"][0]
    assert verdict["class"] == "deadlock" and sorted(verdict["members"]) == sorted([a.backend, b.backend])
    assert verdict["advice"] == "lock-order"
    assert a.psql.pid in verdict["victims"]
    steps = " ".join(verdict["steps"])
    assert "UPDATE t SET v = 11 WHERE id = 2;" in steps and "UPDATE t SET v = 21 WHERE id = 1;" in steps
    assert "pg_cancel_backend(" in verdict["now"][0]
    assert {e["kind"] for e in data["edges"] if e["from"]["pid"] in (a.backend, b.backend)} == {"pg-lock"}


# --- healthy look-alike ----------------------------------------------------------------------


def test_idle_backend_is_no_lock_wait(procs, cluster, sessions, run_cli) -> None:
    idle = _open(procs, cluster, sessions)
    wait_state(idle.backend, "idle")
    idle.done()
    wait_until(lambda: blocked_in(idle.psql.pid, ("read",)), "psql reads its input")
    data, code = _diagnose(run_cli, idle.backend, "--db")
    chain = only_chain(data)
    assert chain["path"] == [idle.backend, idle.psql.pid, idle.writer.pid]
    client = _edge(data, idle.backend, idle.psql.pid)
    assert client["kind"] == "unix" and "PostgreSQL backend idle" in client["label"]
    assert "in transaction" not in client["label"]
    assert not [e for e in data["edges"] if e["kind"] == "pg-lock"]
    assert data["verdicts"][0]["advice"] == "sleeping" and code == 0


# --- every format ------------------------------------------------------------------------------


def test_every_format_shows_the_lock(procs, cluster, sessions, run_cli, tmp_path) -> None:
    holder, waiter = _row_lock(procs, cluster, sessions)
    start = str(waiter.psql.pid)
    explained = run_cli(start, "--db", "--no-stacks", "--explain")
    assert explained.code == 0, explained.err
    assert f"SELECT pg_blocking_pids({waiter.backend})" in explained.out and "PostgreSQL lock" in explained.out
    for fmt in ("dot", "mermaid"):
        drawn = run_cli(start, "--db", "--no-stacks", "--format", fmt)
        assert drawn.code == 0 and str(holder.backend) in drawn.out and "pg-lock" in drawn.out, (fmt, drawn.err)
    report = tmp_path / "incident.html"
    written = run_cli(start, "--db", "--no-stacks", "--report", str(report))
    assert written.code == 0, written.err
    page = report.read_text()
    assert "PostgreSQL lock" in page and f"pg_terminate_backend({holder.backend})" in page
    plain = run_cli(start, "--no-stacks", "--explain", "--ascii")
    assert plain.code == 0 and "DATABASE LOCK" in plain.out
