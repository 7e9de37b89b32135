"""Futex owners read from real C programs, in the host pid namespace and inside
`unshare --pid --fork --mount-proc`: robust and process-shared mutexes in an ABBA between
threads or between processes, and a PI mutex held by a sleeping thread or process. Every
owner TID the program's memory holds is a number in its own pid namespace; the edges must
name the host threads."""

from __future__ import annotations

import os
import subprocess
from typing import Dict, List, Set, Tuple

import pytest
from test_locks_mutex import compile_c, needs_gcc, thread_ids

from waitchain.demo.harness import children, wait_child, wait_until

UNSHARE_PID = ("unshare", "--pid", "--fork", "--mount-proc")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a pid namespace needs root")

# ABBA between two threads (or, with -DPROCESSES, between a process and its child) on two
# mutexes in shared memory; with -DHOLD, "one" takes a and sleeps while "two" waits for a.
LOCKS = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
struct shared { pthread_mutex_t a, b; pthread_barrier_t both; };
static struct shared *s;
static void say(const char *who) {
    printf("%s %ld\n", who, (long)syscall(SYS_gettid));
    fflush(stdout);
}
static void init(void) {
    pthread_mutexattr_t ma;
    pthread_barrierattr_t ba;
    s = mmap(0, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_init(&ma);
    pthread_barrierattr_init(&ba);
#ifdef PI
    pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
#endif
#ifdef ROBUST
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
#endif
#ifdef PROCESSES
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
#endif
    pthread_mutex_init(&s->a, &ma);
    pthread_mutex_init(&s->b, &ma);
    pthread_barrier_init(&s->both, &ba, 2);
}
static void *one(void *unused) {
    pthread_mutex_lock(&s->a);
    pthread_barrier_wait(&s->both);
    say("one");
#ifdef HOLD
    for (;;) sleep(3600);
#endif
    pthread_mutex_lock(&s->b);
    return unused;
}
static void *two(void *unused) {
#ifndef HOLD
    pthread_mutex_lock(&s->b);
#endif
    pthread_barrier_wait(&s->both);
    say("two");
    pthread_mutex_lock(&s->a);
    return unused;
}
int main(void) {
    init();
#ifdef PROCESSES
    if (fork() == 0)
        return two(0) != 0;
    one(0);
    wait(0);
#else
    pthread_t t1, t2;
    pthread_create(&t1, 0, one, 0);
    pthread_create(&t2, 0, two, 0);
    pthread_join(t1, 0);
    pthread_join(t2, 0);
#endif
    return 0;
}
"""

# (name, -D flags): the ABBA variants; a PI ABBA is not one (the kernel's FUTEX_LOCK_PI
# finds the cycle and glibc parks the second thread on a dummy futex), so PI is tested held.
ABBAS = [("robust", ["ROBUST"]), ("shared", ["PROCESSES"]), ("shared-robust", ["PROCESSES", "ROBUST"])]
HELD = [("pi", ["PI", "HOLD"]), ("shared-pi", ["PROCESSES", "PI", "HOLD"]), ("plain", ["HOLD"])]
WHERE = [pytest.param(False, id="host"),
         pytest.param(True, id="pidns", marks=needs_root)]


def start(procs, tmp_path, name: str, flags: List[str], in_pidns: bool) -> Tuple[int, Dict[str, Tuple[int, int]]]:
    """Compile and start the variant; (its host pid, {"one"/"two": (host pid, host tid)})."""
    src = tmp_path / f"{name}.c"
    src.write_text("".join(f"#define {flag}\n" for flag in flags) + LOCKS)
    exe = compile_c(tmp_path, name, src.read_text())
    prefix = UNSHARE_PID if in_pidns else ()
    proc = procs.spawn([*prefix, exe], stdout=subprocess.PIPE)
    said = thread_ids(proc, 2)
    pid = wait_child(proc.pid) if in_pidns else proc.pid
    to_host = host_threads(pid)
    return pid, {who: to_host[local] for who, local in said.items()}


def host_threads(pid: int) -> Dict[int, Tuple[int, int]]:
    """Thread ids in the program's own pid namespace → (host pid, host tid), for pid and
    its children (the last NSpid field is the innermost namespace's id)."""
    found = {}
    for proc in [pid] + children(pid):
        for tid in os.listdir(f"/proc/{proc}/task"):
            with open(f"/proc/{proc}/task/{tid}/status") as f:
                nspid = next(line for line in f if line.startswith("NSpid:")).split()[1:]
            found[int(nspid[-1])] = (proc, int(tid))
    return found


def blocked_in_futex(threads: List[Tuple[int, int]]) -> bool:
    return all(_syscall(pid, tid) == "202" for pid, tid in threads)  # futex on x86_64


def _syscall(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return ""


def mutex_edges(data) -> Set[Tuple[Tuple[int, int], Tuple[int, int]]]:
    return {((e["from"]["pid"], e["from"]["tid"]), (e["to"]["pid"], e["to"]["tid"]))
            for e in data["edges"] if e["kind"] == "mutex"}


@needs_gcc
@pytest.mark.parametrize("in_pidns", WHERE)
@pytest.mark.parametrize("name,flags", ABBAS, ids=[a[0] for a in ABBAS])
def test_abba_owners_are_host_threads(procs, diagnose_pid, tmp_path, name, flags, in_pidns) -> None:
    pid, who = start(procs, tmp_path, name, flags, in_pidns)
    one, two = who["one"], who["two"]
    wait_until(lambda: blocked_in_futex([one, two]), "both lockers block")

    data, code = diagnose_pid(pid)

    assert mutex_edges(data) == {(one, two), (two, one)}
    assert all("owner TID" in e["evidence"] for e in data["edges"] if e["kind"] == "mutex")
    if in_pidns:
        assert all("NSpid" in e["evidence"] for e in data["edges"] if e["kind"] == "mutex")
    assert code == 1 and data["deadlock"] is True


@needs_gcc
@pytest.mark.parametrize("in_pidns", WHERE)
@pytest.mark.parametrize("name,flags", HELD, ids=[h[0] for h in HELD])
def test_held_mutex_names_its_sleeping_owner(procs, diagnose_pid, tmp_path, name, flags, in_pidns) -> None:
    _, who = start(procs, tmp_path, name, flags, in_pidns)
    holder, waiter = who["one"], who["two"]
    wait_until(lambda: blocked_in_futex([waiter]), "the waiter blocks")

    data, code = diagnose_pid(waiter[0])

    assert mutex_edges(data) == {(waiter, holder)}
    (edge,) = [e for e in data["edges"] if e["kind"] == "mutex"]
    assert ("PI futex word" in edge["evidence"]) == ("PI" in flags)
    assert code == 0 and data["deadlock"] is False
