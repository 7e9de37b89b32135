"""Processes whose threads wait for each other on their own private futexes (Python locks,
condition variables, semaphores, a lock inherited across fork()), and their healthy
look-alikes: thread pools with a thread that can still act, a handler that can still post.
A private futex records no owner, but only a thread of the same process (or one of its
signal handlers) can wake it: when every thread waits so, untimed, nothing ever will."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, Dict, List

from scenario_helpers import threads_in
from test_locks_mutex import compile_c, needs_gcc

from waitchain.demo.harness import wait_until

ABBA = """
a, b = threading.Lock(), threading.Lock()
both = threading.Barrier(3)
def take(first, second):
    with first:
        both.wait()
        with second:
            pass
x = threading.Thread(target=take, args=(a, b), name="worker-a")
y = threading.Thread(target=take, args=(b, a), name="worker-b")
if "--handler" in sys.argv:
    signal.signal(signal.SIGTERM, lambda *_: None)
x.start(); y.start()
both.wait()
ready("abba", x.native_id, y.native_id)
x.join()
"""

# A pool of one worker whose task waits for a task queued behind it.
NESTED_POOL = """
from concurrent.futures import ThreadPoolExecutor
pool = ThreadPoolExecutor(max_workers=1)
def outer():
    return pool.submit(int).result()
future = pool.submit(outer)
ready("submitted")
future.result()
"""

FORKED_LOCK = """
lock = threading.Lock()
held = threading.Event()
def hold():
    with lock:
        held.set()
        sleep_forever()
threading.Thread(target=hold, daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    ready("child")
    lock.acquire()
    os._exit(0)
ready("parent", pid)
sleep_forever()
"""

# Idle workers on queue.get() (untimed) and a main thread that can still feed them.
POOL_SERVING = """
import queue
jobs = queue.Queue()
def work():
    while True:
        jobs.get()()
workers = [threading.Thread(target=work, daemon=True) for _ in range(3)]
for w in workers:
    w.start()
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
ready("serving")
while True:
    conn, _ = listener.accept()
    jobs.put(conn.close)
"""

# The main thread waits on a semaphore only a signal handler posts (sem_post is
# async-signal-safe); with -DNO_HANDLER nothing ever posts it.
SEM_WAIT = r"""
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
static sem_t done;
static void post(int sig) { (void)sig; sem_post(&done); }
int main(void) {
    sem_init(&done, 0, 0);
#ifndef NO_HANDLER
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = post;
    sigaction(SIGTERM, &sa, 0);
#endif
    printf("waiting\n");
    fflush(stdout);
    while (sem_wait(&done) != 0) {}
    printf("posted\n");
    return 0;
}
"""


def verdicts(data: Dict[str, Any]) -> List[Dict[str, Any]]:
    return data["verdicts"]


def own_thread_deadlock(data: Dict[str, Any], pid: int) -> Dict[str, Any]:
    """The one verdict: a deadlock of pid's own threads, every edge a futex to pid."""
    (verdict,) = verdicts(data)
    assert (verdict["class"], verdict["advice"], verdict["members"]) == ("deadlock", "own-threads", [pid])
    futex_edges = [e for e in data["edges"] if e["from"]["pid"] == pid]
    assert futex_edges and all((e["kind"], e["to"]) == ("futex", {"pid": pid, "tid": None, "host": os.uname().nodename}) for e in futex_edges)
    return verdict


def test_python_abba_is_a_deadlock_of_its_threads(run_py, diagnose_pid) -> None:
    prog = run_py(ABBA)
    (line,) = prog.ready()
    pid, a, b = prog.pid, int(line[2]), int(line[3])
    wait_until(lambda: threads_in(pid, ("futex",)) == {pid, a, b}, "three threads in futex")
    data, code = diagnose_pid(pid)
    assert code == 1
    verdict = own_thread_deadlock(data, pid)
    assert verdict["threads"] == [{"pid": pid, "tid": t} for t in sorted((pid, a, b))]
    assert verdict["cause"] == {"pid": pid, "tid": min(a, b), "syscall": "futex"}  # a worker's lock wait, not the main thread's join


def test_python_abba_text_names_each_threads_line(run_py, run_cli) -> None:
    prog = run_py(ABBA)
    (line,) = prog.ready()
    pid, a, b = prog.pid, int(line[2]), int(line[3])
    wait_until(lambda: threads_in(pid, ("futex",)) == {pid, a, b}, "three threads in futex")
    result = run_cli(str(pid), "--width", "250")
    assert result.code == 1, result.out + result.err
    assert f"DEADLOCK: threads {pid}, {min(a, b)}, {max(a, b)} of {pid} " in result.out
    steps = [ln.strip() for ln in result.out.splitlines() if ln.strip().startswith("thread ")]
    assert [s.split()[1] for s in steps] == [str(pid), str(min(a, b)), str(max(a, b))]
    assert all(" in take" in s for s in steps[1:]) and " in <module>" in steps[0]  # each its own frame


def test_python_abba_with_a_sigterm_handler_is_not_called_a_deadlock(run_py, diagnose_pid) -> None:
    """A handler may release a lock or set an Event: say what could wake it, never DEADLOCK."""
    prog = run_py(ABBA, "--handler")
    (line,) = prog.ready()
    pid, a, b = prog.pid, int(line[2]), int(line[3])
    wait_until(lambda: threads_in(pid, ("futex",)) == {pid, a, b}, "three threads in futex")
    data, code = diagnose_pid(pid)
    assert code == 0 and data["cycles"] == []
    assert [(v["class"], v["advice"]) for v in verdicts(data)] == [("chain-end", "signal-handler")]
    python = os.path.basename(sys.executable)  # its program name: "python" in a venv, else "python3"...
    assert verdicts(data)[0]["headline"] == (f"STUCK UNLESS SIGNALLED: its threads wait for each other ({pid} "
                                             f"{python}); only a handler of SIGTERM could still wake it")
    live = [end for t in data["processes"][0]["threads"] for end in t["live"]]
    assert [(e["kind"], e["reason"], e["signals"]) for e in live] == [("signal", "signal-handler", ["SIGTERM"])] * 3


def test_a_pool_task_waiting_for_a_task_queued_behind_it_is_a_deadlock(run_py, diagnose_pid) -> None:
    prog = run_py(NESTED_POOL)
    prog.ready()
    pid = prog.pid
    wait_until(lambda: len(threads_in(pid, ("futex",))) == 2, "main and the worker in futex")
    data, code = diagnose_pid(pid)
    assert code == 1
    verdict = own_thread_deadlock(data, pid)
    (worker,) = threads_in(pid, ("futex",)) - {pid}
    assert verdict["cause"] == {"pid": pid, "tid": worker, "syscall": "futex"}


def test_a_child_forked_while_a_thread_held_a_lock_is_a_deadlock(run_py, diagnose_pid) -> None:
    prog = run_py(FORKED_LOCK)
    lines = prog.ready(2)
    child = int(next(words for words in lines if words[1] == "parent")[2])
    wait_until(lambda: threads_in(child, ("futex",)) == {child}, "the child in futex")
    data, code = diagnose_pid(child)
    assert code == 1
    verdict = own_thread_deadlock(data, child)
    assert verdict["threads"] == [{"pid": child, "tid": child}] and verdict["culprit"] == child
    parent, parent_code = diagnose_pid(prog.pid)  # the parent's holder thread sleeps: no deadlock
    assert parent_code == 0 and all(v["class"] != "deadlock" for v in verdicts(parent))


def test_idle_workers_behind_a_thread_that_accepts_are_healthy(run_py, diagnose_pid) -> None:
    prog = run_py(POOL_SERVING)
    prog.ready()
    pid = prog.pid
    wait_until(lambda: len(threads_in(pid, ("futex",))) == 3 and threads_in(pid, ("accept", "accept4")),
               "three workers in futex, the main thread in accept")
    data, code = diagnose_pid(pid)
    assert code == 0 and data["cycles"] == []
    assert [(v["class"], v["advice"]) for v in verdicts(data)] == [("chain-end", "idle-server")]


@needs_gcc
def test_a_semaphore_nothing_posts_is_a_deadlock_and_one_a_handler_posts_is_not(procs, tmp_path, diagnose_pid) -> None:
    stuck = procs.spawn([compile_c(tmp_path, "stuck", "#define NO_HANDLER\n" + SEM_WAIT)], stdout=subprocess.PIPE)
    posted = procs.spawn([compile_c(tmp_path, "posted", SEM_WAIT)], stdout=subprocess.PIPE)
    for proc in (stuck, posted):
        assert proc.stdout.readline() == b"waiting\n"
        wait_until(lambda: threads_in(proc.pid, ("futex",)) == {proc.pid}, f"{proc.pid} in sem_wait")
    data, code = diagnose_pid(stuck.pid)
    assert code == 1 and own_thread_deadlock(data, stuck.pid)["cause"] == {"pid": stuck.pid, "tid": stuck.pid, "syscall": "futex"}
    data, code = diagnose_pid(posted.pid)
    assert code == 0 and data["cycles"] == []
    (verdict,) = verdicts(data)
    assert (verdict["class"], verdict["advice"]) == ("chain-end", "signal-handler")
    os.kill(posted.pid, signal.SIGTERM)  # and the handler does wake it: the look-alike is healthy
    assert posted.stdout.readline() == b"posted\n" and posted.wait(timeout=10) == 0
