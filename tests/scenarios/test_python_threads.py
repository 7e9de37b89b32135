"""Python threads of real processes, read by py-spy after the diagnosis: each thread's own
name and line, the likely holder of an ownerless lock inferred from the stacks and the
source (ABBA, a lock taken twice), joins followed thread by thread, a multiprocessing child
stuck on its queue while its parent joins it, and the healthy look-alikes (a holder that
sleeps, waiters on a Condition or a queue with a live producer, a lock of another object)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List

from scenario_helpers import thread_of, threads_in, threads_of
from test_stacks import diagnose, line_of, location, skip_unless_py_spy_reads, start, wait_thread_in, write

from waitchain.demo.harness import Processes, wait_until

PYTHON = sys.executable  # the venv's python: py-spy reads it

ABBA = """\
import os, sys, threading

READY = int(sys.argv[1])
a = threading.Lock()
b = threading.Lock()
both = threading.Barrier(3)


def say(word):
    os.write(READY, ("%s %d\\n" % (word, threading.get_native_id())).encode())


def one():
    with a:  # ONE HOLDS
        say("one")
        both.wait()
        with b:  # ONE WAITS
            pass


def two():
    with b:  # TWO HOLDS
        say("two")
        both.wait()
        with a:  # TWO WAITS
            pass


x = threading.Thread(target=one, name="worker-a")
y = threading.Thread(target=two, name="worker-b")
x.start()
y.start()
both.wait()
say("main")
x.join()  # MAIN JOINS
"""

# Two RLocks taken in opposite orders, passed as arguments: the lock objects record their owner.
RLOCKS = """\
import os, sys, threading

READY = int(sys.argv[1])
both = threading.Barrier(2)


def say(word):
    os.write(READY, ("%s %d\\n" % (word, threading.get_native_id())).encode())


def forward(first, second):
    with first:  # FORWARD HOLDS
        say("forward")
        both.wait()
        with second:  # FORWARD WAITS
            pass


def backward(one, two):
    with two:  # BACKWARD HOLDS
        say("backward")
        both.wait()
        with one:  # BACKWARD WAITS
            pass


r, s = threading.RLock(), threading.RLock()
x = threading.Thread(target=forward, args=(r, s), name="forward")
y = threading.Thread(target=backward, args=(r, s), name="backward")
x.start()
y.start()
say("main")
x.join()
"""

TWICE = """\
import os, sys, threading

lock = threading.Lock()


def save():
    with lock:  # HOLDS
        flush()  # CALLS


def flush():
    os.write(int(sys.argv[1]), b"ready\\n")
    with lock:  # AGAIN
        pass


save()
"""

JOINS = """\
import os, sys, threading

READY = int(sys.argv[1])
r, w = os.pipe()


def say(word):
    os.write(READY, ("%s %d\\n" % (word, threading.get_native_id())).encode())


def reader():
    say("reader")
    os.read(r, 1)  # READS


def middle():
    inner = threading.Thread(target=reader, name="reader")
    inner.start()
    say("middle")
    inner.join()  # MIDDLE JOINS


outer = threading.Thread(target=middle, name="middle")
outer.start()
say("main")
outer.join()  # MAIN JOINS
"""

MP_QUEUE = """\
import multiprocessing
import os
import sys


def produce(q):
    q.put(b"x" * 1000000)  # PUT


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=produce, args=(q,), name="producer")
    p.start()
    os.write(int(sys.argv[1]), ("child %d\\n" % p.pid).encode())
    p.join()  # JOIN
    q.get()
"""

# Healthy: a holder that sleeps inside `with lock:` (it will release it), waiters on a
# Condition and on a queue.Queue whose producer is alive, and a thread blocked on the lock of
# one object while a thread holds the lock of another object of the same class.
HEALTHY = """\
import os, queue, sys, threading, time

READY = int(sys.argv[1])
lock = threading.Lock()
cond = threading.Condition()
jobs = queue.Queue()
started = threading.Barrier(8)


def say(word):
    os.write(READY, ("%s %d\\n" % (word, threading.get_native_id())).encode())


class Box:
    def __init__(self):
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)

    def await_ready(self):
        with self.lock:  # RELEASED BY WAIT
            say("awaiter")
            started.wait()
            self.ready.wait()  # AWAITS

    def keep(self):
        with self.lock:  # KEEPS
            say("keeper")
            started.wait()
            time.sleep(3600)

    def take(self):
        with self.lock:  # TAKES
            pass


def sleeper():
    with lock:  # SLEEPS HOLDING
        say("sleeper")
        started.wait()
        time.sleep(3600)


def locker():
    say("locker")
    started.wait()
    with lock:  # LOCKER WAITS
        pass


def consumer():
    say("consumer")
    started.wait()
    with cond:
        cond.wait()  # CONSUMER WAITS


def getter():
    say("getter")
    started.wait()
    jobs.get()  # GETTER WAITS


def producer():
    say("producer")
    started.wait()
    while True:
        time.sleep(0.05)
        with cond:  # PRODUCER
            pass


mine, other = Box(), Box()
other_holder = threading.Thread(target=other.keep, name="keeper")
taker = threading.Thread(target=mine.take, name="taker")
threading.Thread(target=mine.await_ready, name="awaiter", daemon=True).start()
for target, name in ((sleeper, "sleeper"), (locker, "locker"), (consumer, "consumer"),
                     (getter, "getter"), (producer, "producer")):
    threading.Thread(target=target, name=name, daemon=True).start()
other_holder.start()
started.wait()
mine.lock.acquire()  # MAIN HOLDS MINE (the awaiter released it in wait())
taker.start()
say("main")
time.sleep(3600)  # MAIN SLEEPS
"""


def tids_of(lines: List[List[str]]) -> Dict[str, int]:
    return {word: int(tid) for word, tid in lines}


def lock_wait(path: Path, text: str, expression: str, holder: int, marker: str) -> Dict[str, Any]:
    return {"expression": expression, "likely_holder": {
        "tid": holder, "expression": expression, "file": str(path), "line": line_of(text, marker),
        "statement": "with", "code": text.splitlines()[line_of(text, marker) - 1].strip(),
        "inferred_from": "source"}, "owner": None}  # a threading.Lock records no owner


# --- ABBA -----------------------------------------------------------------------------------


def test_python_abba_names_both_holders_and_each_threads_own_line(procs: Processes, tmp_path, run_cli) -> None:
    path = write(tmp_path / "abba.py", ABBA)
    pid, lines = start(procs, [PYTHON, str(path)], lines=3)
    tids = tids_of(lines)
    for tid in tids.values():
        wait_thread_in(pid, tid, "futex")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)
    result = run_cli(str(pid), "--width", "250")
    out = result.out

    assert result.code == 1, out  # every thread waits for another: a deadlock of its own threads
    one, two, main = (thread_of(data, pid, tids[w]) for w in ("one", "two", "main"))
    assert (one["name"], two["name"], main["name"]) == ("worker-a", "worker-b", "MainThread"), data["notes"]
    assert one["location"] == location(path, ABBA, "one", "# ONE WAITS")
    assert two["location"] == location(path, ABBA, "two", "# TWO WAITS")
    assert main["location"] == location(path, ABBA, "<module>", "# MAIN JOINS")
    assert one["lock_wait"] == lock_wait(path, ABBA, "b", tids["two"], "# TWO HOLDS")
    assert two["lock_wait"] == lock_wait(path, ABBA, "a", tids["one"], "# ONE HOLDS")
    assert [h["expression"] for h in one["lock_holds"]] == ["a"]
    assert [h["expression"] for h in two["lock_holds"]] == ["b"]
    assert main["joined_tid"] == tids["one"] and main["lock_wait"] is None
    a_line, b_line = line_of(ABBA, "# ONE HOLDS"), line_of(ABBA, "# TWO HOLDS")
    assert f"· {tids['one']}  thread worker-a [S]" in out
    assert f"holds `a` (with a: at abba.py:{a_line}, inferred from source)" in out
    assert (f"waits for `b`, held by thread {tids['two']} 'worker-b' (with b: at abba.py:{b_line}, "
            "inferred from source)") in out
    assert (f"thread {tids['one']} 'worker-a' and thread {tids['two']} 'worker-b' wait for each other (ABBA)"
            in out)
    for tid, name, marker in ((tids["one"], "worker-a", "# ONE WAITS"), (tids["two"], "worker-b", "# TWO WAITS")):
        assert f"thread {tid} '{name}' waits in futex() at abba.py:{line_of(ABBA, marker)}" in out  # the verdict's steps
    rows = out.splitlines()
    for tid, own in ((tids["one"], f"at abba.py:{line_of(ABBA, '# ONE WAITS')} in one: with b:"),
                     (tids["two"], f"at abba.py:{line_of(ABBA, '# TWO WAITS')} in two: with a:"),
                     (pid, f"at abba.py:{line_of(ABBA, '# MAIN JOINS')} in <module>: x.join()")):
        row = next(i for i, r in enumerate(rows) if f"· {tid}  thread " in r)
        assert own in rows[row + 1], (tid, rows[row:row + 2])  # under its own row, its own frame


def test_a_thread_that_takes_a_lock_it_holds_is_told_so(procs: Processes, tmp_path, run_cli) -> None:
    path = write(tmp_path / "twice.py", TWICE)
    pid, _ = start(procs, [PYTHON, str(path)])
    wait_thread_in(pid, pid, "futex")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)
    result = run_cli(str(pid), "--width", "250")
    out = " ".join(result.out.split())

    assert result.code == 1, result.out
    main = thread_of(data, pid, pid)
    assert main["name"] == "MainThread"
    assert main["location"] == location(path, TWICE, "flush", "# AGAIN")
    assert main["lock_wait"] == lock_wait(path, TWICE, "lock", pid, "# HOLDS")
    assert (f"takes a lock it already holds: `lock` (with lock: at twice.py:{line_of(TWICE, '# HOLDS')}, "
            "inferred from source); threading.Lock is not re-entrant") in out


def test_rlocks_name_their_owners_read_from_the_lock(procs: Processes, tmp_path, run_cli) -> None:
    path = write(tmp_path / "rlocks.py", RLOCKS)
    pid, lines = start(procs, [PYTHON, str(path)], lines=3)
    tids = tids_of(lines)
    for tid in tids.values():
        wait_thread_in(pid, tid, "futex")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)
    result = run_cli(str(pid), "--width", "250")

    assert result.code == 1, result.out
    forward, backward = thread_of(data, pid, tids["forward"]), thread_of(data, pid, tids["backward"])
    assert forward["lock_wait"]["owner"] == tids["backward"], data["notes"]
    assert backward["lock_wait"]["owner"] == tids["forward"]
    # the same objects under other names in another function: py-spy showed their addresses
    assert forward["lock_wait"]["likely_holder"]["line"] == line_of(RLOCKS, "# BACKWARD HOLDS")
    assert backward["lock_wait"]["likely_holder"]["line"] == line_of(RLOCKS, "# FORWARD HOLDS")
    assert (f"waits for `second`, held by thread {tids['backward']} 'backward' (the RLock's owner, read from "
            f"the lock; with two: at rlocks.py:{line_of(RLOCKS, '# BACKWARD HOLDS')})") in result.out
    assert "wait for each other (ABBA)" in result.out


# --- joins ------------------------------------------------------------------------------------


def test_joins_name_the_joined_thread_one_after_the_other(procs: Processes, tmp_path, run_cli) -> None:
    path = write(tmp_path / "joins.py", JOINS)
    pid, lines = start(procs, [PYTHON, str(path)], lines=3)
    tids = tids_of(lines)
    wait_thread_in(pid, tids["reader"], "read")
    wait_thread_in(pid, tids["middle"], "futex")
    wait_thread_in(pid, tids["main"], "futex")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)

    main, middle, reader = (thread_of(data, pid, tids[w]) for w in ("main", "middle", "reader"))
    assert (main["joined_tid"], middle["joined_tid"], reader["joined_tid"]) == (tids["middle"], tids["reader"], None)
    assert main["python_wait"] == f"waits in threading.Thread.join for thread 'middle' ({tids['middle']})"
    assert middle["python_wait"] == f"waits in threading.Thread.join for thread 'reader' ({tids['reader']})"
    assert middle["location"] == location(path, JOINS, "middle", "# MIDDLE JOINS")
    assert reader["location"] == location(path, JOINS, "reader", "# READS")
    assert (main["name"], middle["name"], reader["name"]) == ("MainThread", "middle", "reader")


# --- multiprocessing ----------------------------------------------------------------------------


def test_a_parent_joining_a_child_stuck_on_its_queue_is_told_get_before_join(procs: Processes, tmp_path,
                                                                             run_cli) -> None:
    path = write(tmp_path / "mpqueue.py", MP_QUEUE)
    pid, lines = start(procs, [PYTHON, str(path)])
    child = int(lines[0][1])
    wait_thread_in(pid, pid, "wait4")
    wait_thread_in(child, child, "futex")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)
    result = run_cli(str(pid), "--width", "250")

    assert result.code == 1, result.out
    (verdict,) = data["verdicts"]
    assert verdict["class"] == "deadlock" and sorted(verdict["members"]) == sorted([pid, child])
    fix = " ".join(verdict["fix"])
    assert "get() before join()" in fix and "communicate()" not in fix, fix
    assert "get() before join()" in " ".join(result.out.split())
    feeder = next(t for t in threads_of(data, child) if t["tid"] != child)
    assert feeder["name"] == "QueueFeederThread"
    main = thread_of(data, child, child)
    assert main["location"] is None  # the parent's p.start() line is not the child's
    assert main["joined_tid"] == feeder["tid"]
    assert thread_of(data, pid, pid)["location"] == location(path, MP_QUEUE, "<module>", "# JOIN")


# --- healthy look-alikes -----------------------------------------------------------------------


def test_healthy_threads_get_no_invented_holder(procs: Processes, tmp_path, run_cli) -> None:
    path = write(tmp_path / "healthy.py", HEALTHY)
    pid, lines = start(procs, [PYTHON, str(path)], lines=8)
    tids = tids_of(lines)
    wait_thread_in(pid, tids["locker"], "futex")
    wait_thread_in(pid, tids["consumer"], "futex")
    wait_thread_in(pid, tids["getter"], "futex")
    wait_thread_in(pid, tids["awaiter"], "futex")
    sleeps = ("clock_nanosleep", "nanosleep", "select", "pselect6")  # time.sleep: select() before 3.11
    wait_until(lambda: tids["keeper"] in threads_in(pid, sleeps), "the keeper sleeps holding its lock")
    taker = _taker(pid, set(tids.values()))
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)
    result = run_cli(str(pid), "--width", "250")

    assert result.code == 0, result.out
    assert all(v["class"] != "deadlock" for v in data["verdicts"])
    locker = thread_of(data, pid, tids["locker"])
    assert locker["lock_wait"] == lock_wait(path, HEALTHY, "lock", tids["sleeper"], "# SLEEPS HOLDING")
    for word in ("consumer", "getter"):
        assert thread_of(data, pid, tids[word])["lock_wait"] is None, word
    stuck = thread_of(data, pid, taker)
    # the keeper is inside `with self.lock:` of the same class, but of another Box: py-spy's
    # addresses of `self` tell them apart; the awaiter is inside `with self.lock:` of the same
    # Box, but in Condition.wait, which released it; the real holder (main's acquire) is
    # another expression
    assert stuck["location"] == location(path, HEALTHY, "Box.take" if sys.version_info >= (3, 11) else "take",
                                         "# TAKES")
    assert stuck["lock_wait"] == {"expression": "self.lock", "likely_holder": None, "owner": None}
    assert thread_of(data, pid, tids["keeper"])["lock_holds"] == []
    assert thread_of(data, pid, tids["awaiter"])["lock_holds"] == []


def _taker(pid: int, known: set) -> int:
    """The one thread started after the others: blocked on the lock of `mine`."""
    from waitchain.procfs.reader import ProcFS
    from waitchain.procfs.tasks import read_tasks

    found: List[int] = []

    def check() -> bool:
        tasks = read_tasks(ProcFS(), pid)
        found[:] = [t.tid for t in tasks if t.tid not in known and t.state == "S"
                    and t.syscall is not None and t.syscall.name == "futex"]
        return len(found) == 1

    wait_until(check, "the taker blocks on its lock")
    return found[0]
