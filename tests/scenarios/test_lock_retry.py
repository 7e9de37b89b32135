"""Lock retry loops with real programs (issue 9, item 4): a thread that sleeps briefly
between tries of a non-blocking lock is blocked in clock_nanosleep, not in a lock call.

- The sqlite3 shell with `.timeout` (its busy handler: fcntl(F_SETLK) tries, 100 ms sleeps in
  clock_nanosleep, measured with strace) behind another sqlite3 shell holding a write
  transaction: an inferred POSIX-lock edge to the holder, followed; "HELD", kill the holder.
- A Python loop of flock(LOCK_EX|LOCK_NB) and 0.1 s sleeps behind `flock FILE sleep`.
- The look-alikes get no edge: a sleeper with the database open next to a read
  transaction (shared locks are compatible), the lock's own holder sleeping, and a long
  sleep next to a write transaction.

util-linux `flock -w N` is no retry loop: it blocks in flock(LOCK_EX) with a POSIX timer
(timer_create(CLOCK_MONOTONIC, SIGALRM), timer_settime N s) that ends the wait; it is the
flock rule's, with an edge to the holder."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Dict, List

import pytest
from scenario_helpers import assert_schema_valid, diagnose_json, edges_from, read_lines

from waitchain.demo.harness import blocked_in, wait_blocked, wait_until

SLEEPS = ("clock_nanosleep", "nanosleep", "select", "pselect6")  # time.sleep on 3.9/3.10: select, no fd


def _sqlite() -> str:
    found = shutil.which("sqlite3")
    if found is None:
        pytest.skip("the sqlite3 shell is not installed (.ci/run installs it)")
    return found


def _locked(path: str, kind: str) -> bool:
    """/proc/locks has a held lock of `kind` (READ or WRITE) on the file."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        return any(f":{ino} " in line and "->" not in line and f" {kind} " in line for line in f)


class Shell:
    """A sqlite3 shell fed from a FIFO it holds read-write (a session kept open: EOF never
    comes), its output on a pipe the test reads."""

    def __init__(self, procs, tmp_path, db: str, name: str) -> None:
        self.fifo = str(tmp_path / f"{name}.in")
        os.mkfifo(self.fifo)
        out_r, out_w = os.pipe()
        try:
            self.proc = procs.spawn(["/bin/sh", "-c", 'exec "$1" "$2" 0<>"$3"', "sh", _sqlite(), db, self.fifo],
                                    stdout=out_w, stderr=subprocess.DEVNULL)
        finally:
            os.close(out_w)
        self.out = out_r
        self.pid = self.proc.pid

    def run(self, sql: str, mark: str, output: int = 0) -> None:
        """Feed `sql`, then wait until the shell printed its `output` lines and `mark` (it
        ran everything before)."""
        fd = os.open(self.fifo, os.O_WRONLY)  # the shell holds it open: this does not block
        try:
            os.write(fd, f"{sql}\n.print {mark}\n".encode())
        finally:
            os.close(fd)
        assert read_lines(self.out, output + 1, 15.0)[-1] == [mark]

    def close(self) -> None:
        os.close(self.out)


def database(tmp_path, wal: bool = False) -> str:
    db = str(tmp_path / "app.db")
    pragma = "PRAGMA journal_mode=WAL; " if wal else ""
    subprocess.run([_sqlite(), db, pragma + "create table t(x);"], check=True, stdout=subprocess.DEVNULL)
    return db


def diagnose_asleep(run_cli, pid: int) -> Dict[str, Any]:
    """diagnose(), looked at while the retrier is inside its sleep: it wakes every 100 ms to
    try again, and a scan may catch it between two sleeps (running, or in fcntl), or waking
    between its state and its system call being read (state R beside a sleep's call)."""
    for _ in range(20):
        data = diagnose_json(run_cli, pid)
        threads = [t for p in data["processes"] if p["pid"] == pid for t in p["threads"]]
        if threads and threads[0]["wait_syscall"] in SLEEPS and threads[0]["state"] == "S":
            return data
    raise AssertionError(f"{pid} was never seen asleep in 20 looks")


def retry_edges(data: Dict[str, Any], pid: int) -> List[Dict[str, Any]]:
    return [e for e in edges_from(data, pid) if e["retry"] is not None]


# --- sqlite3 .timeout behind a write transaction ----------------------------------------------


# journal mode → how the holder opens its write transaction, the file its WRITE lock is on
JOURNALS = {"rollback": ("BEGIN EXCLUSIVE;", ""),  # the PENDING..SHARED bytes of the database
            "wal": ("BEGIN IMMEDIATE; insert into t values(0);", "-shm")}  # byte 120 of the -shm file


@pytest.mark.parametrize("journal", sorted(JOURNALS))
def test_sqlite_busy_timeout_retries_the_lock_of_the_shell_holding_a_write_transaction(
        procs, tmp_path, run_cli, journal) -> None:
    begin, suffix = JOURNALS[journal]
    db = database(tmp_path, wal=journal == "wal")
    locked = db + suffix
    holder = Shell(procs, tmp_path, db, "holder")
    try:
        holder.run(begin, "locked")
        wait_until(lambda: _locked(locked, "WRITE"), "the holder's write lock is in /proc/locks")
        wait_blocked(holder.pid, "read")
        writer = procs.spawn([_sqlite(), "-cmd", ".timeout 600000", db, "insert into t values(1);"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_blocked(writer.pid, *SLEEPS)
        data = diagnose_asleep(run_cli, writer.pid)
        assert data["_code"] == 0 and data["deadlock"] is False, data
        (chain,) = data["chains"]
        assert chain["path"] == [writer.pid, holder.pid], chain
        (edge,) = edges_from(data, writer.pid)
        assert edge["kind"] == "posix-lock" and edge["to"]["pid"] == holder.pid and edge["object"] == locked
        assert edge["syscall"] in ("clock_nanosleep", "nanosleep") and edge["lock"]["type"] == "write"
        retry = edge["retry"]
        # a WAL writer keeps READ locks of its own on the -shm file (its connection's)
        holds = "read" if journal == "wal" else None
        assert retry is not None and 0 < retry["interval"] <= 0.1 and retry["holds"] == holds, edge
        assert edge["evidence"].startswith("inferred:") and "retrying a lock held by" in edge["label"]
        (verdict,) = data["verdicts"]
        assert (verdict["class"], verdict["advice"], verdict["culprit"]) == ("chain-end", "release-holder", holder.pid)
        held = f"HELD: {holder.pid} sqlite3 holds the POSIX lock on {locked}"
        texts = (run_cli(str(writer.pid), "--no-stacks").out for _ in range(20))  # asleep in one
        text = next((t for t in texts if "BUSY:" not in t), "")  # of them, not between tries
        assert held in text, text
        assert_schema_valid(data)
        explained = run_cli(str(writer.pid), "--no-stacks", "--explain").out
        assert "clock_nanosleep(): a sleep; fd" in explained and "no request is marked ->" in explained, explained
        assert writer.poll() is None  # still retrying: it was never disturbed
    finally:
        holder.close()


def test_a_sleeper_next_to_a_read_transaction_is_no_retry(run_py, procs, tmp_path, run_cli) -> None:
    """The database open, short sleeps, but the other shell holds only a shared lock."""
    db = database(tmp_path)
    reader = Shell(procs, tmp_path, db, "reader")
    try:
        reader.run("BEGIN; SELECT count(*) FROM t;", "reading", output=1)
        wait_until(lambda: _locked(db, "READ"), "the reader's shared lock is in /proc/locks")
        prog = run_py(RETRY_SLEEPER, db, "0.1", "none")
        prog.ready()
        wait_blocked(prog.pid, *SLEEPS)
        data = diagnose_asleep(run_cli, prog.pid)
        assert data["_code"] == 0 and retry_edges(data, prog.pid) == [], data["edges"]
        (chain,) = data["chains"]
        assert chain["path"] == [prog.pid] and chain["end"]["kind"] == "sleeping", chain
    finally:
        reader.close()


# A program with the file open that sleeps in a loop (libc usleep: nanosleep, as sqlite's;
# or time.sleep: clock_nanosleep TIMER_ABSTIME on 3.11+, select with no fd on 3.9/3.10).
# argv: path, seconds per sleep, what it does first: "none", "lock" (takes an exclusive
# POSIX lock itself), "try-flock" (retries flock(LOCK_EX|LOCK_NB) between the sleeps, as
# the filelock package does), and how it sleeps: "usleep" (default) or "time.sleep".
RETRY_SLEEPER = """
import fcntl
path, seconds, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
how = sys.argv[4] if len(sys.argv) > 4 else "usleep"
fd = os.open(path, os.O_RDWR)
if mode == "lock":
    fcntl.lockf(fd, fcntl.LOCK_EX)
ready("sleeping")
while True:
    if mode == "try-flock":
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pass
    if how == "time.sleep":
        time.sleep(seconds)
    else:
        libc.usleep(int(seconds * 1e6))
"""


def test_the_lock_holder_sleeping_is_no_retry(run_py, tmp_path, run_cli) -> None:
    path = str(tmp_path / "lock")
    open(path, "w").close()
    prog = run_py(RETRY_SLEEPER, path, "0.1", "lock")
    prog.ready()
    wait_until(lambda: _locked(path, "WRITE"), "its own lock is in /proc/locks")
    wait_blocked(prog.pid, *SLEEPS)
    data = diagnose_asleep(run_cli, prog.pid)
    assert data["_code"] == 0 and edges_from(data, prog.pid) == [], data["edges"]
    assert data["chains"][0]["end"]["kind"] == "sleeping"


def test_a_long_sleep_next_to_a_write_transaction_is_no_retry(run_py, procs, tmp_path, run_cli) -> None:
    db = database(tmp_path)
    holder = Shell(procs, tmp_path, db, "holder")
    try:
        holder.run("BEGIN EXCLUSIVE;", "locked")
        wait_until(lambda: _locked(db, "WRITE"), "the holder's exclusive lock is in /proc/locks")
        prog = run_py(RETRY_SLEEPER, db, "5", "none")
        prog.ready()
        wait_blocked(prog.pid, *SLEEPS)
        data = diagnose_json(run_cli, prog.pid)
        assert data["_code"] == 0 and edges_from(data, prog.pid) == [], data["edges"]
        assert data["chains"][0]["end"]["kind"] == "sleeping"
    finally:
        holder.close()


# --- a Python flock retry loop behind `flock FILE sleep` ------------------------------------


@pytest.mark.parametrize("how", ["usleep", "time.sleep"])
def test_a_python_flock_retry_loop_waits_for_the_flock_holder(run_py, procs, tmp_path, run_cli, how) -> None:
    flock = shutil.which("flock")
    if flock is None:
        pytest.skip("flock(1) is not installed (util-linux)")
    path = str(tmp_path / "lock")
    open(path, "w").close()
    holder = procs.spawn([flock, path, "sleep", "3600"])
    wait_until(lambda: _locked(path, "WRITE"), "flock(1) holds the lock")
    wait_until(lambda: any(blocked_in(p, SLEEPS) for p in procs.descendants() if p != holder.pid),
               "its sleep runs")
    (sleeper,) = [p for p in procs.descendants() if p != holder.pid]
    prog = run_py(RETRY_SLEEPER, path, "0.1", "try-flock", how)
    prog.ready()
    wait_blocked(prog.pid, *SLEEPS)
    data = diagnose_asleep(run_cli, prog.pid)
    assert data["_code"] == 0 and data["deadlock"] is False
    edges = retry_edges(data, prog.pid)
    # flock(1) and its child share the locked file description: both hold the lock
    assert sorted(e["to"]["pid"] for e in edges) == sorted([holder.pid, sleeper]), data["edges"]
    assert {e["kind"] for e in edges} == {"flock"}
    # through flock(1)'s wait for its child or straight to it, the chain ends at the sleep
    assert data["root_cause"]["pid"] == sleeper, data["verdicts"]
    assert prog.popen.poll() is None



# --- flock -w: a lock wait with a timer ------------------------------------------------------

# Each side takes its first lock, says so, waits for "go", then asks for the other's lock with
# `flock -w` (ABBA): both inner flocks block in flock(LOCK_EX), each with a POSIX timer armed.
TIMED_SIDE = 'exec flock "$1" sh -c \'echo locked; read _; flock -w 600 "$2" true; true\' sh "$@"'
PLAIN_SIDE = TIMED_SIDE.replace("flock -w 600 ", "flock ")


def abba(procs, tmp_path, side: str) -> List[int]:
    """The two sides of an ABBA on two flocks; returns the two blocked inner flocks."""
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed (util-linux)")
    a, b = str(tmp_path / "A"), str(tmp_path / "B")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        for first, second in ((a, b), (b, a)):
            procs.spawn(["/bin/sh", "-c", side, "sh", first, second], stdin=go_r, stdout=ready_w)
    finally:
        os.close(ready_w)
        os.close(go_r)
    try:
        read_lines(ready_r, 2, 15.0)
    finally:
        os.close(ready_r)
        os.close(go_w)
    inner = lambda: [p for p in procs.descendants() if _argv(p)[-1:] == ["true"]]  # noqa: E731
    wait_until(lambda: len(inner()) == 2 and all(blocked_in(p, ("flock",)) for p in inner()),
               "both inner flocks block")
    return sorted(inner())


def _argv(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.fsdecode(f.read()).split("\0")[:-1]
    except OSError:
        return []


def test_flock_w_abba_is_no_deadlock_its_timers_end_it(procs, tmp_path, run_cli) -> None:
    """util-linux flock -w blocks in flock(LOCK_EX) with a POSIX timer (SIGALRM, caught):
    the waits end when the timers fire, so the cycle is not a deadlock."""
    inner = abba(procs, tmp_path, TIMED_SIDE)
    with open(f"/proc/{inner[0]}/timers") as f:
        assert "signal: 14/" in f.read()  # the timer flock -w armed (SIGALRM)
    data = diagnose_json(run_cli, inner[0])
    assert data["_code"] == 0 and data["deadlock"] is False, data["verdicts"]
    for pid in inner:  # each waits for the other side's holders, its timer kept as a remark
        (thread,) = [t for p in data["processes"] if p["pid"] == pid for t in p["threads"]]
        end = thread["end"]
        assert end is not None and (end["reason"], end["signals"]) == ("timeout", ["SIGALRM"]), thread
        assert {e["kind"] for e in edges_from(data, pid)} == {"flock"}
    (verdict,) = data["verdicts"]
    assert verdict["class"] == "cycle" and verdict["advice"] == "wait-and-see", verdict
    assert inner[1] in verdict["members"], verdict  # the chain reaches the other side


def test_plain_flock_abba_is_still_a_deadlock(procs, tmp_path, run_cli) -> None:
    inner = abba(procs, tmp_path, PLAIN_SIDE)
    data = diagnose_json(run_cli, inner[0])
    assert data["_code"] == 1 and data["deadlock"] is True, data["verdicts"]
    for pid in inner:
        (thread,) = [t for p in data["processes"] if p["pid"] == pid for t in p["threads"]]
        assert thread["end"] is None and thread["live"] == [], thread
