"""Stacks of Python processes with many threads: `waitchain PID --json` against a bare
`py-spy dump --pid PID` measured in the same run, interleaved, and waitchain's own time per
process beyond py-spy (issue 14, goal 4).

    python3 bench/bench_stacks.py                          # 2,000 threads + 3 processes of 20
    python3 bench/bench_stacks.py --threads 500 --others 5 --repeat 5
    python3 bench/bench_stacks.py --src /path/to/older/checkout/src   # before/after, same run

The targets: a chain of Python processes (this interpreter). The first has --threads threads
blocked on one threading.Lock its main thread holds; each main thread reads a pipe whose
write end the next process holds; every other process has --other-threads threads on its own
lock, the last reads a pipe it holds itself (a deadlock: waitchain follows the whole chain
and reads every process's stacks). Started before the first measurement and waited for until
every thread sleeps in futex or read; killed and reaped on every way out (end, error, Ctrl-C,
SIGTERM), and by the kernel (PR_SET_PDEATHSIG) if the bench is SIGKILLed.

Rows, each tool in its own child process, R times (--repeat) interleaved:
  waitchain PID --json              the whole command, stacks read
  waitchain PID --json --no-stacks  the same without stacks: the difference is the stacks stage
  py-spy dump --pid PID             the bare dump of the first process (what a person would run)
  py-spy dump --nonblocking --json --locals --pid PID   the dump waitchain runs, per process
and, measured inside a child that imports waitchain (--src: that tree), the stacks stage
alone (stacks.attach_stacks after a scan and a diagnosis): its wall and CPU time, and per
process the py-spy run (the helper's wall time) and our own time beyond it (the process's
stacks job, wall and thread CPU, less the py-spy run: parsing its JSON included)."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Result, beside_python, load, run_bench, run_child  # noqa: E402

PR_SET_PDEATHSIG = 1
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

TARGET = r"""
import os, sys, threading
count, read_fd, ready_fd = (int(a) for a in sys.argv[1:4])
lock = threading.Lock()
started = threading.Barrier(count + 1)


def worker():
    started.wait()
    with lock:  # WORKERS WAIT
        pass


lock.acquire()
threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
for thread in threads:
    thread.start()
started.wait()
os.write(ready_fd, ("%d %s\n" % (os.getpid(), " ".join(str(t.native_id) for t in threads))).encode())
os.read(read_fd, 1)  # MAIN READS
"""


# --- the targets ------------------------------------------------------------------------------


def start_chain(script: str, threads: int, others: int, other_threads: int) -> Tuple[List[subprocess.Popen], List[int]]:
    """The chain of targets (each runs `script`): their Popens and pids."""
    ready_r, ready_w = os.pipe()
    pipes = [os.pipe() for _ in range(1 + others)]
    procs: List[subprocess.Popen] = []
    try:
        for i, (read_end, _) in enumerate(pipes):
            # the writer of the previous one's pipe; the last also holds its own pipe's
            held = ([pipes[i - 1][1]] if i else []) + ([pipes[i][1]] if i == len(pipes) - 1 else [])
            count = threads if i == 0 else other_threads
            procs.append(subprocess.Popen(
                [sys.executable, script, str(count), str(read_end), str(ready_w)],
                pass_fds=(read_end, *held, ready_w), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent))
    except BaseException:
        stop(procs)
        raise
    finally:
        for fd in [ready_w] + [fd for pair in pipes for fd in pair]:
            os.close(fd)
    try:
        tids: Dict[int, List[int]] = {}
        buf = b""
        while len(tids) < len(procs):
            chunk = os.read(ready_r, 1 << 16)
            if not chunk:
                raise SystemExit("a target exited before it was ready")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                words = [int(w) for w in line.split()]
                tids[words[0]] = words[1:]
        for pid, workers in tids.items():
            wait_blocked(pid, workers)
    except BaseException:
        stop(procs)
        raise
    finally:
        os.close(ready_r)
    return procs, [p.pid for p in procs]


def _die_with_parent() -> None:
    """In a target, before exec: SIGKILL when the bench dies (even SIGKILLed). No thread or fd
    of the target waits for the bench: the chain is the targets' alone."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def wait_blocked(pid: int, workers: List[int], seconds: float = 120.0) -> None:
    """Until every worker sleeps in futex and the main thread in read (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        calls = {tid: _call(pid, tid) for tid in workers + [pid]}
        if calls[pid] == "0" and all(calls[t] == "202" for t in workers):  # read, futex (x86-64)
            return
        time.sleep(0.05)
    raise SystemExit(f"the threads of {pid} did not all block in {seconds:g} s")


def _call(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
            if f.read().rpartition(b")")[2].split()[0] != b"S":
                return ""
        with open(f"/proc/{pid}/task/{tid}/syscall", "rb") as f:
            return f.read().split()[0].decode()
    except (OSError, IndexError):
        return ""


def stop(procs: List[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    for proc in procs:
        proc.wait()


# --- the stacks stage, inside a child ---------------------------------------------------------


def inner(src: str, pid: int) -> None:
    """In a child: scan, diagnose, then time attach_stacks; print the timings as JSON."""
    sys.path.insert(0, src)
    from waitchain import stacks
    from waitchain.engine import diagnose
    from waitchain.snapshot import Snapshot
    from waitchain.stacks import python

    helper: Dict[int, float] = {}  # thread ident → seconds in py-spy runs
    jobs: Dict[int, Dict[str, float]] = {}
    run_helper, stacks_of = python.run_helper, stacks.stacks_of

    def timed_helper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return run_helper(*args, **kwargs)
        finally:
            me = threading.get_ident()
            helper[me] = helper.get(me, 0.0) + time.perf_counter() - start

    def timed_job(diag: Any, pid: int, *args: Any, **kwargs: Any) -> Any:
        me = threading.get_ident()
        helper[me] = 0.0
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return stacks_of(diag, pid, *args, **kwargs)
        finally:
            jobs[pid] = {"wall": time.perf_counter() - wall, "cpu": time.thread_time() - cpu,
                         "py_spy": helper[me]}

    python.run_helper, stacks.stacks_of = timed_helper, timed_job
    with Snapshot.scan() as snap:
        diag = diagnose(snap, [pid])
        wall, cpu = time.perf_counter(), time.process_time()
        stacks.attach_stacks(diag)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cause = diag.root_cause.location if diag.root_cause is not None else None
    print(json.dumps({"wall": wall, "cpu": cpu, "jobs": jobs, "stacks": len(diag.stacks),
                      "cause": f"{cause.line} {cause.code}" if cause is not None else "",
                      "notes": diag.notes}))


# --- the bench ----------------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> None:
    waitchain = [sys.executable, "-m", "waitchain"]
    py_spy = beside_python("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    trees = [("", SRC)] + [(f" ({src})", os.path.abspath(src)) for src in args.src]
    tmp = tempfile.mkdtemp(prefix="bench_stacks.")
    script = os.path.join(tmp, "target.py")  # a file: waitchain reads its lines
    with open(script, "w") as f:
        f.write(TARGET)
    try:
        procs, pids = start_chain(script, args.threads, args.others, args.other_threads)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        first = str(pids[0])
        rows: Dict[str, Result] = {}
        inners: Dict[str, List[Dict[str, Any]]] = {}
        for _ in range(args.repeat):
            for label, src in trees:
                env = dict(os.environ, PYTHONPATH=src)
                _add(rows, f"waitchain PID --json{label}",
                     run_child(waitchain + [first, "--json"], capture=False, ok=(0, 1), env=env))
                _add(rows, f"waitchain PID --json --no-stacks{label}",
                     run_child(waitchain + [first, "--json", "--no-stacks"], capture=False, ok=(0, 1), env=env))
                out = run_child([sys.executable, __file__, "--_inner", src, first]).out
                inners.setdefault(label, []).append(json.loads(out.decode().splitlines()[-1]))
            _add(rows, "py-spy dump --pid PID", run_child([py_spy, "dump", "--pid", first], ok=(0,)))
            for i, pid in enumerate(pids):
                _add(rows, f"py-spy dump --nonblocking --json --locals (process {i + 1})",
                     run_child([py_spy, "dump", "--nonblocking", "--json", "--locals", "--pid", str(pid)], ok=(0,)))
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, rows, inners, trees)


def _add(rows: Dict[str, Result], name: str, run: Any) -> None:
    rows.setdefault(name, Result(name)).add(run)


def report(args: argparse.Namespace, rows: Dict[str, Result], inners: Dict[str, List[Dict[str, Any]]],
           trees: List[Tuple[str, str]]) -> None:
    bare = rows["py-spy dump --pid PID"]
    print(f"\n{args.threads} threads on one lock + {args.others} processes of {args.other_threads} "
          f"threads, best of {args.repeat}; load {load()}\n")
    print("| command | wall s | CPU s | ÷ py-spy dump (wall) | ÷ py-spy dump (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for name, result in rows.items():
        wall, cpu = min(result.walls), min(result.cpus)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {wall / min(bare.walls):.1f}x | {cpu / max(min(bare.cpus), 1e-3):.1f}x |")
    print("\nThe stacks stage alone (attach_stacks, in-process), best of the runs:\n")
    print("| tree | stacks | wall s | CPU s | per process: py-spy s | ours beyond py-spy: wall ms | CPU ms |")
    print("|---|---:|---:|---:|---|---|---|")
    for label, _src in trees:
        runs = inners[label]
        best = min(runs, key=lambda r: r["wall"])
        jobs = [best["jobs"][k] for k in sorted(best["jobs"], key=int)]
        spy = " / ".join(f"{j['py_spy']:.3f}" for j in jobs)
        own = " / ".join(f"{1000 * (j['wall'] - j['py_spy']):.0f}" for j in jobs)
        cpu = " / ".join(f"{1000 * j['cpu']:.0f}" for j in jobs)
        print(f"| this tree{label} | {best['stacks']} | {best['wall']:.3f} | {best['cpu']:.3f} | {spy} | {own} | {cpu} |")
        causes = {r["cause"] for r in runs}
        notes = {n for r in runs for n in r["notes"]}
        print(f"\n  root cause line{label}: {' | '.join(sorted(causes))}; notes: {sorted(notes) or 'none'}\n")
    print("Processes in chain order (the first has the many threads). `ours` is the process's stacks "
          "job less its py-spy run (JSON parsing included); CPU is the job thread's.")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--_inner":
        inner(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2000, help="threads of the first process (2000)")
    parser.add_argument("--others", type=int, default=3, help="further processes on the chain (3)")
    parser.add_argument("--other-threads", type=int, default=20, help="threads of each further process (20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool, interleaved (3)")
    parser.add_argument("--src", action="append", default=[], metavar="DIR",
                        help="also measure the waitchain package under DIR (an older checkout's src)")
    run_bench(bench, parser.parse_args(), "the targets")


if __name__ == "__main__":
    main()
