"""File locks (flock, POSIX, OFD) and thread waits (pthread mutexes, pthread_join) between
real processes and threads: the exact edge kind, holder pid/tid and verdict."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict

import pytest
from scenario_helpers import close, only_chain, read_lines, thread_of, threads_in

from waitchain.demo.harness import wait_blocked, wait_until
from waitchain.engine import diagnose
from waitchain.snapshot import Snapshot

F_OFD_SETLK, F_OFD_SETLKW = 37, 38

TAKE_FLOCK = """
import fcntl
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
"""

HOLD_FLOCK = TAKE_FLOCK + """
ready("locked")
sleep_forever()
"""

FORK_CHILD = """
if os.fork() == 0:
    ready("child")
    sleep_forever()
"""

WAIT_FLOCK = """
import fcntl
f = open(sys.argv[1], "a+")
ready("locking")
fcntl.flock(f, fcntl.LOCK_SH)
"""


def lock_waiter(run_py, code: str, path: str, call: str):
    """Start `code`, which blocks in `call` on a lock of path; return once it does."""
    waiter = run_py(code, path)
    waiter.ready()
    wait_blocked(waiter.pid, call)
    return waiter


def holder_and_waiter(run_py, wait_sleeping, hold: str, wait: str, path: str, call: str):
    """Start `hold`, which takes a lock of path and sleeps, then lock_waiter(`wait`)."""
    holder = run_py(hold, path)
    holder.ready()
    waiter = lock_waiter(run_py, wait, path, call)
    wait_sleeping(holder.pid)
    return holder, waiter


# --- flock -----------------------------------------------------------------------------------


def test_flock_waits_for_the_holder(run_py, diagnose_pid, wait_sleeping, tmp_path) -> None:
    path = str(tmp_path / "lock")
    holder, waiter = holder_and_waiter(run_py, wait_sleeping, HOLD_FLOCK, WAIT_FLOCK, path, "flock")

    data, code = diagnose_pid(waiter.pid)

    assert code == 0
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["to"]["tid"], edge["kind"], edge["object"]) == (holder.pid, None, "flock", path)
    assert edge["evidence"].startswith("/proc/locks: '")
    assert f"FLOCK  ADVISORY  WRITE {holder.pid} " in edge["evidence"]
    assert f"/proc/{holder.pid}/fdinfo/" in edge["evidence"]
    assert edge["lock"] == {"type": "write", "start": 0, "end": None}
    assert edge["label"] == "waits for the holder of a WRITE flock"
    assert thread_of(data, waiter.pid, waiter.pid)["waits"].startswith("flock(3<")
    chain = only_chain(data)
    assert chain["path"] == [waiter.pid, holder.pid] and chain["end"]["kind"] == "sleeping"


def test_flock_on_an_inherited_fd_lists_parent_and_child(run_py, diagnose_pid, wait_sleeping,
                                                         tmp_path) -> None:
    path = str(tmp_path / "lock")
    holder = run_py(TAKE_FLOCK + FORK_CHILD + """
ready("parent")
sleep_forever()
""", path)
    pids = {int(words[0]) for words in holder.ready(2)}
    waiter = lock_waiter(run_py, WAIT_FLOCK, path, "flock")
    for pid in pids:
        wait_sleeping(pid)

    data, code = diagnose_pid(waiter.pid)

    assert code == 0
    assert pids == {holder.pid, next(iter(pids - {holder.pid}))}
    assert {(e["to"]["pid"], e["kind"]) for e in data["edges"]} == {(p, "flock") for p in pids}
    child = next(iter(pids - {holder.pid}))
    child_edge = next(e for e in data["edges"] if e["to"]["pid"] == child)
    assert f"the pid column names {holder.pid}" in child_edge["evidence"]
    assert {c["end"]["pid"] for c in data["chains"]} == pids


def test_flock_taker_exited_the_child_still_holds_it(run_py, diagnose_pid, wait_sleeping,
                                                     tmp_path) -> None:
    """/proc/locks still names the process that took the lock; the holder is its child."""
    path = str(tmp_path / "lock")
    holder = run_py(TAKE_FLOCK + FORK_CHILD, path)
    child = int(holder.ready()[0][0])
    holder.popen.wait()
    waiter = lock_waiter(run_py, WAIT_FLOCK, path, "flock")
    wait_sleeping(child)

    data, code = diagnose_pid(waiter.pid)

    assert code == 0
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["kind"]) == (child, "flock")
    assert f"the pid column names {holder.pid}" in edge["evidence"]


HOLD_SHARED_FLOCK = """
import fcntl
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_SH)
ready("locked")
sleep_forever()
"""

WAIT_EXCLUSIVE_FLOCK = """
import fcntl
f = open(sys.argv[1], "a+")
ready("locking")
fcntl.flock(f, fcntl.LOCK_EX)
"""


def test_write_lock_behind_two_readers_waits_for_all(run_py, diagnose_pid, wait_sleeping,
                                                     tmp_path) -> None:
    """LOCK_EX behind two LOCK_SH holders: both must release (an ALL wait)."""
    path = str(tmp_path / "lock")
    readers = [run_py(HOLD_SHARED_FLOCK, path) for _ in range(2)]
    for reader in readers:
        reader.ready()
    waiter = lock_waiter(run_py, WAIT_EXCLUSIVE_FLOCK, path, "flock")
    for reader in readers:
        wait_sleeping(reader.pid)

    data, code = diagnose_pid(waiter.pid)

    assert code == 0
    assert {(e["to"]["pid"], e["kind"]) for e in data["edges"]} == {(r.pid, "flock") for r in readers}
    assert all(e["syscall"] == "flock" and e["fd"] == 3 and e["holder_fds"] for e in data["edges"])
    thread = thread_of(data, waiter.pid, waiter.pid)
    assert (thread["mode"], thread["wait_syscall"]) == ("all", "flock")


# --- POSIX and OFD byte-range locks ---------------------------------------------------------


def test_fcntl_setlkw_waits_for_the_posix_lock_holder(run_py, diagnose_pid, wait_sleeping,
                                                      tmp_path) -> None:
    path = str(tmp_path / "lock")
    holder, waiter = holder_and_waiter(run_py, wait_sleeping, """
        import fcntl
        f = open(sys.argv[1], "a+")
        fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)
        ready("locked")
        sleep_forever()
        """, """
        import fcntl
        f = open(sys.argv[1], "a+")
        ready("locking")
        fcntl.lockf(f, fcntl.LOCK_EX, 5, 5)
        """, path, "fcntl")

    data, code = diagnose_pid(waiter.pid)

    assert code == 0
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["kind"], edge["object"]) == (holder.pid, "posix-lock", path)
    assert f"POSIX  ADVISORY  WRITE {holder.pid} " in edge["evidence"] and " 0 9'" in edge["evidence"]
    assert edge["lock"] == {"type": "write", "start": 0, "end": 9}
    assert edge["label"] == "waits for the holder of a WRITE POSIX lock"
    what = thread_of(data, waiter.pid, waiter.pid)["waits"]
    assert "F_SETLKW" in what and "F_WRLCK" in what and "bytes 5-9" in what


OFD = """
import fcntl, struct
f = open(sys.argv[1], "a+")
lock = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
"""


def test_ofd_lock_waits_for_the_holder(run_py, diagnose_pid, wait_sleeping, tmp_path) -> None:
    path = str(tmp_path / "lock")
    holder, waiter = holder_and_waiter(run_py, wait_sleeping, OFD + f"""
fcntl.fcntl(f, {F_OFD_SETLK}, lock)
ready("locked")
sleep_forever()
""", OFD + f"""
ready("locking")
fcntl.fcntl(f, {F_OFD_SETLKW}, lock)
""", path, "fcntl")

    data, code = diagnose_pid(waiter.pid)

    assert code == 0
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["kind"], edge["object"]) == (holder.pid, "ofd-lock", path)
    assert "OFDLCK ADVISORY  WRITE -1 " in edge["evidence"]
    assert "F_OFD_SETLKW" in thread_of(data, waiter.pid, waiter.pid)["waits"]


def test_flock_and_pipes_deadlock_of_three(run_py, diagnose_pid, tmp_path) -> None:
    """A holds the flock and reads a pipe only C writes; C reads a pipe only B writes;
    B waits for the flock."""
    path = str(tmp_path / "lock")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    a = run_py(TAKE_FLOCK + """
ready("locked")
os.read(int(sys.argv[2]), 1)
""", path, str(r1), pass_fds=[r1])
    a.ready()
    b = run_py(WAIT_FLOCK, path, pass_fds=[w2])
    c = run_py("""
        ready("reading")
        os.read(int(sys.argv[1]), 1)
        """, str(r2), pass_fds=[w1, r2])
    close(r1, w1, r2, w2)
    b.ready(), c.ready()
    wait_blocked(a.pid, "read")
    wait_blocked(b.pid, "flock")
    wait_blocked(c.pid, "read")

    data, code = diagnose_pid(a.pid)

    assert code == 1 and data["deadlock"] is True
    assert {(e["from"]["pid"], e["to"]["pid"], e["kind"]) for e in data["edges"]} == {
        (a.pid, c.pid, "pipe"), (c.pid, b.pid, "pipe"), (b.pid, a.pid, "flock")}
    (cycle,) = data["cycles"]
    assert set(cycle["pids"]) == {a.pid, b.pid, c.pid} and cycle["deadlock"] is True


# --- pthread mutexes and pthread_join (C programs) ---------------------------------------------

ABBA = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;
static void say(const char *who) {
    printf("%s %ld\n", who, (long)syscall(SYS_gettid));
    fflush(stdout);
}
static void *one(void *unused) {
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&both_hold_one);
    say("one");
    pthread_mutex_lock(&b);
    return unused;
}
static void *two(void *unused) {
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&both_hold_one);
    say("two");
    pthread_mutex_lock(&a);
    return unused;
}
int main(void) {
    pthread_t t1, t2;
    pthread_barrier_init(&both_hold_one, 0, 2);
    pthread_create(&t1, 0, one, 0);
    pthread_create(&t2, 0, two, 0);
    pthread_join(t1, 0);
    pthread_join(t2, 0);
    return 0;
}
"""

JOIN = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
static void *nap(void *unused) {
    printf("napper %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    for (;;) sleep(3600);
    return unused;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, 0, nap, 0);
    pthread_join(t, 0);
    return 0;
}
"""


def compile_c(tmp_path: Path, name: str, source: str) -> str:
    src, exe = tmp_path / f"{name}.c", tmp_path / name
    src.write_text(source)
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(exe), str(src)], check=True)
    return str(exe)


def thread_ids(proc: subprocess.Popen, count: int) -> Dict[str, int]:
    """The program's `name TID` lines on stdout."""
    assert proc.stdout is not None
    return {name: int(tid) for name, tid in read_lines(proc.stdout.fileno(), count, 15.0)}


needs_gcc = pytest.mark.skipif(not any(os.access(os.path.join(d, "gcc"), os.X_OK)
                                       for d in os.environ.get("PATH", "").split(":")),
                               reason="gcc is not installed")


@needs_gcc
def test_abba_mutex_deadlock_between_threads(procs, diagnose_pid, tmp_path) -> None:
    exe = compile_c(tmp_path, "abba", ABBA)
    proc = procs.spawn([exe], stdout=subprocess.PIPE)
    tids = thread_ids(proc, 2)
    one, two = tids["one"], tids["two"]
    wait_until(lambda: threads_in(proc.pid, ("futex",)) >= {proc.pid, one, two}, "all three threads wait")

    data, code = diagnose_pid(proc.pid)

    assert code == 1 and data["deadlock"] is True
    mutex = {(e["from"]["tid"], e["to"]["tid"]) for e in data["edges"] if e["kind"] == "mutex"}
    assert mutex == {(one, two), (two, one)}
    assert all(e["to"]["pid"] == proc.pid for e in data["edges"])
    assert all("owner TID" in e["evidence"] for e in data["edges"] if e["kind"] == "mutex")
    join = [e for e in data["edges"] if e["kind"] == "join"]
    assert [(e["from"]["tid"], e["to"]["tid"]) for e in join] == [(proc.pid, one)]
    (cycle,) = data["cycles"]
    assert cycle["pids"] == [proc.pid] and cycle["deadlock"] is True

    diag = diagnose(Snapshot.scan(), [proc.pid])
    (found,) = diag.cycles
    assert {(proc.pid, one), (proc.pid, two)} <= set(found.threads)


@needs_gcc
def test_pthread_join_waits_for_the_joined_thread(procs, diagnose_pid, tmp_path) -> None:
    exe = compile_c(tmp_path, "join", JOIN)
    proc = procs.spawn([exe], stdout=subprocess.PIPE)
    napper = thread_ids(proc, 1)["napper"]
    wait_blocked(proc.pid, "futex")
    wait_blocked(proc.pid, "clock_nanosleep", "nanosleep")

    data, code = diagnose_pid(proc.pid)

    assert code == 0 and data["deadlock"] is False
    (edge,) = data["edges"]
    assert edge["kind"] == "join"
    assert edge["from"] == {"pid": proc.pid, "tid": proc.pid, "host": os.uname().nodename}
    assert edge["to"] == {"pid": proc.pid, "tid": napper, "host": os.uname().nodename}
    assert thread_of(data, proc.pid, napper)["end"]["kind"] == "sleeping"


def test_python_lock_taken_twice_by_its_only_thread_is_a_deadlock(run_py, diagnose_pid) -> None:
    """threading.Lock records no owner, but its futex is private: only a thread of this
    process could release it, and its only thread is the waiter."""
    program = run_py("""
        lock = threading.Lock()
        lock.acquire()
        ready("acquiring")
        lock.acquire()
        """)
    program.ready()
    wait_blocked(program.pid, "futex")

    data, code = diagnose_pid(program.pid)

    assert code == 1
    (edge,) = data["edges"]
    assert (edge["kind"], edge["to"], edge["ownerless"]) == ("futex", {"pid": program.pid, "tid": None, "host": os.uname().nodename}, "python")
    (verdict,) = data["verdicts"]
    assert (verdict["class"], verdict["advice"], verdict["threads"]) == (
        "deadlock", "own-threads", [{"pid": program.pid, "tid": program.pid}])
