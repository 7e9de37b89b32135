#!/usr/bin/env python3
"""One report table (issue 14): the whole waitchain command at several machine shapes against
lsof, lsfd, ss and a C readlink floor, measured in the same run.

    python3 bench/bench_table.py [--repeat R] [--rows idle,+1000,...] [--src OLD/src ...]

Rows (each a machine shape, set up before its tools are timed and torn down after):

  idle          the machine as it is
  +1000         1,000 extra processes x ~50 fds (bench_snapshot.py's: pipes and socketpairs)
  +2000         2,000 of them
  chain 2000    2,000 processes, each blocked reading a pipe only the next one writes
  fan-in 500    500 processes, each blocked reading its own pipe, all write ends in one holder
  2000 threads  one process with 2,000 Python threads blocked on a lock its main thread holds

Tools (each in its own child process; R runs interleaved, best wall and CPU, largest peak RSS):

  waitchain PID            the CLI end to end (`--json`, stacks included) on the row's target
  waitchain PID --no-stacks   the same without stacks
  waitchain --all          `--all --json --no-stacks`: every process's threads and waits
  lsof -n -P, lsfd, ss -anp   output to /dev/null
  C floor                  a C program that lists /proc, every /proc/PID/fd and readlinks each
                           fd once: what any tool that maps fds to processes must do

The targets: at idle and +N, the first extra process (blocked in read on a pipe its spawner
holds); the chain's first process; one fan-in waiter; the threaded process. An untimed run of
each waitchain column first checks that it ran (exit 0 or 1, JSON with a chain from the target)
and, for the chain, that the chain has all its links. ÷ floor: the row's wall time divided by
the floor's (lower is better); ÷ lsof: lsof's wall divided by the row's (higher is better).

Needs lsof, lsfd (util-linux), ss (iproute2), a C compiler (cc) and py-spy for the stacks
column; a missing one is left out with a note. Run as root (as bench_snapshot.py). Every
helper process is killed and reaped on every way out (end, error, Ctrl-C, SIGTERM; if this
script is SIGKILLed its spawner sees EOF and does it). No sleeps: readiness pipes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from common import (Result, beside_python, collect, forked, kill_and_reap, load, process_count,
                    raise_nofile, run_bench, run_child, sigterm_exit, spawner, wait_for_eof)
import bench_snapshot

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLI_OK = (0, 1)  # 1: a deadlock was found
ROWS = ("idle", "+1000", "+2000", "chain 2000", "fan-in 500", "2000 threads")
FLOOR_C = r"""
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    DIR *proc = opendir("/proc");
    struct dirent *p, *f;
    char path[64], target[4096];
    long procs = 0, fds = 0;
    if (!proc) return 1;
    while ((p = readdir(proc))) {
        if (!isdigit((unsigned char)p->d_name[0])) continue;
        snprintf(path, sizeof path, "/proc/%s/fd", p->d_name);
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) continue;
        DIR *d = fdopendir(dfd);
        if (!d) { close(dfd); continue; }
        procs++;
        while ((f = readdir(d)))
            if (f->d_name[0] != '.' && readlinkat(dfd, f->d_name, target, sizeof target) >= 0) fds++;
        closedir(d);
    }
    closedir(proc);
    printf("%ld %ld\n", procs, fds);
    return 0;
}
"""


# --- the machine shapes (spawners run as `bench_table.py --_spawn KIND N`) -------------------


def spawn_chain(count: int) -> None:
    """count processes, all children of this spawner: process i blocks reading pipe i, whose
    only writer is process i+1; the last reads a pipe only this spawner holds. Prints the
    first pid. (Not a chain of forks, each by the one before: the kernel's fork cost grows
    with the depth of such a chain, anon_vma links: 2,000 deep took minutes.)"""
    ready_r, ready_w = os.pipe()
    kids: List[int] = []
    upstream_w = -1  # the write end of the pipe the previous process reads

    def link(r: int, w: int) -> Callable[[], None]:
        def body() -> None:
            os.close(w)  # the next process's to hold
            os.close(ready_r)
            os.write(ready_w, b"x")
            os.close(ready_w)
            os.read(r, 1)  # EOF when the next one (or this spawner) goes
        return body

    try:
        for _ in range(count):
            r, w = os.pipe()
            kids.append(forked(link(r, w)))
            os.close(r)
            if upstream_w >= 0:
                os.close(upstream_w)  # now held by the process just forked only
            upstream_w = w
        os.close(ready_w)
        got = collect(ready_r, count)
        _serve(f"{len(got)} {kids[0]}", kids)
    finally:
        kill_and_reap(kids)


def spawn_fanin(count: int) -> None:
    """One holder with the write ends of `count` pipes (blocked reading the hold pipe) and
    `count` waiters, each blocked reading its own pipe. Prints the holder and one waiter."""
    hold_r, hold_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pipes = [os.pipe() for _ in range(count)]
    raise_nofile(2 * count + 64)
    kids: List[int] = []

    def waiter(i: int) -> Callable[[], None]:
        def body() -> None:
            for j, (r, w) in enumerate(pipes):
                os.close(w)
                if j != i:
                    os.close(r)
            os.close(hold_w)
            os.close(ready_r)
            os.write(ready_w, b"x")
            os.close(ready_w)
            os.read(pipes[i][0], 1)
        return body

    def holder() -> None:
        for r, _w in pipes:
            os.close(r)
        os.close(hold_w)
        os.close(ready_r)
        os.write(ready_w, b"x")
        os.close(ready_w)
        os.read(hold_r, 1)

    try:
        kids.append(forked(holder))
        for i in range(count):
            kids.append(forked(waiter(i)))
        for r, w in pipes:
            os.close(r)
            os.close(w)
        os.close(ready_w)
        got = collect(ready_r, count + 1)
        _serve(f"{len(got) - 1} {kids[1]} {kids[0]}", kids)
    finally:
        kill_and_reap(kids)


def spawn_threads(count: int) -> None:
    """One process with `count` threads blocked on a lock its main thread holds while it
    reads the hold pipe. Prints its pid."""
    hold_r, hold_w = os.pipe()
    ready_r, ready_w = os.pipe()

    def body() -> None:
        os.close(hold_w)
        os.close(ready_r)
        lock = threading.Lock()
        lock.acquire()
        arrived = threading.Barrier(count + 1)

        def blocked() -> None:
            arrived.wait()
            lock.acquire()

        threading.stack_size(256 * 1024)
        for _ in range(count):
            threading.Thread(target=blocked, daemon=True).start()
        arrived.wait()  # every thread is at its acquire()
        os.write(ready_w, b"x")
        os.close(ready_w)
        os.read(hold_r, 1)

    kids = [forked(body)]
    try:
        os.close(hold_r)
        os.close(ready_w)
        got = collect(ready_r, 1)
        _serve(f"{count if got == b'x' else 0} {kids[0]}", kids)
    finally:
        kill_and_reap(kids)


def _serve(line: str, kids: List[int]) -> None:
    """Report readiness, then wait for the bench to close our stdin; then end the helpers."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    try:
        wait_for_eof()
    finally:
        kill_and_reap(kids)


def spawner_main(kind: str, count: int) -> None:
    signal.signal(signal.SIGTERM, sigterm_exit)
    {"chain": spawn_chain, "fanin": spawn_fanin, "threads": spawn_threads}[kind](count)


@contextlib.contextmanager
def shape(row: str) -> Iterator[Tuple[int, str]]:
    """Set up a row's machine shape; yields (target pid, what it is)."""
    if row == "idle":
        yield os.getpid(), "this bench (blocked in wait4 for the tool)"
    elif row.startswith("+"):
        count = int(row[1:])
        with bench_snapshot.extra_processes(count, 50):
            yield _first_extra(), "an extra process (blocked in read on its spawner's pipe)"
    else:
        kind, count = {"chain 2000": ("chain", 2000), "fan-in 500": ("fanin", 500),
                       "2000 threads": ("threads", 2000)}[row]
        argv = [sys.executable, os.path.abspath(__file__), "--_spawn", kind, str(count)]
        with spawner(argv) as words:
            if len(words) < 2 or int(words[0]) != count:
                raise SystemExit(f"{row}: only {words[0] if words else 0} of {count} ready")
            what = {"chain": "the chain's first process", "fanin": "one of the waiters",
                    "threads": "the threaded process"}[kind]
            yield int(words[1]), what


def _first_extra() -> int:
    """The first child of bench_snapshot's spawner (our child)."""
    kids = _children_of(os.getpid())
    spawners = [k for k in kids if b"--_spawn" in _cmdline(k)]
    grandkids = _children_of(spawners[0]) if spawners else []
    if not grandkids:
        raise SystemExit("no extra process found")
    return min(grandkids)


def _children_of(pid: int) -> List[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    if int(f.read().rpartition(b")")[2].split()[1]) == pid:
                        found.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


# --- the tools --------------------------------------------------------------------------------


ENVS: Dict[str, Dict[str, str]] = {}  # tool name → its environment, when not ours (--src)


def tools(floor: Optional[str], pyspy: bool, srcs: Sequence[str] = ()) -> Dict[str, List[str]]:
    """name → argv ("PID" replaced by the row's target)."""
    wc = beside_python("waitchain")
    cli = [wc] if wc else [sys.executable, "-m", "waitchain"]
    found: Dict[str, List[str]] = {}
    if pyspy:
        found["waitchain PID"] = cli + ["PID", "--json"]
    found["waitchain PID --no-stacks"] = cli + ["PID", "--json", "--no-stacks"]
    found["waitchain --all"] = cli + ["--all", "--json", "--no-stacks"]
    for src in srcs:  # the same two columns from another tree, for a before/after in one run
        label = os.path.basename(os.path.dirname(os.path.abspath(src))) or src
        for name, args in (("PID --no-stacks", ["PID", "--json", "--no-stacks"]),
                           ("--all", ["--all", "--json", "--no-stacks"])):
            found[f"waitchain {name} @{label}"] = [sys.executable, "-m", "waitchain"] + args
            ENVS[f"waitchain {name} @{label}"] = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    for name, argv in (("lsof -n -P", ["lsof", "-n", "-P"]), ("lsfd", ["lsfd"]), ("ss -anp", ["ss", "-anp"])):
        if shutil.which(argv[0]):
            found[name] = argv
        else:
            print(f"note: {argv[0]} not found; left out", file=sys.stderr)
    if floor:
        found["C floor"] = [floor]
    return found


def build_floor(where: str) -> Optional[str]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("note: no C compiler; the floor is left out", file=sys.stderr)
        return None
    src, exe = os.path.join(where, "floor.c"), os.path.join(where, "floor")
    with open(src, "w") as f:
        f.write(FLOOR_C)
    subprocess.run([cc, "-O2", "-o", exe, src], check=True)
    return exe


def check(name: str, argv: List[str], row: str, target: int) -> None:
    """An untimed run of a waitchain column: it ran and found the target's chain."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          env=ENVS.get(name))
    if proc.returncode not in CLI_OK:
        raise SystemExit(f"{row}: {name} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    doc = json.loads(proc.stdout)
    if "--all" in argv:
        return
    chains = [c for c in doc.get("chains", []) if c.get("start") == target]
    if not chains:
        raise SystemExit(f"{row}: {name} gave no chain from {target}")
    if row == "chain 2000":
        links = max(len(c.get("path", [])) for c in chains)
        if links < 2000:
            raise SystemExit(f"{row}: {name}'s chain has {links} processes, not 2000+")


def measure(row: str, repeat: int, argvs: Dict[str, List[str]]) -> Tuple[Dict[str, Result], dict]:
    with shape(row) as (target, what):
        info = {"processes": process_count(), "target": target, "what": what, "load": load()}
        runs = {name: [str(target) if a == "PID" else a for a in argv] for name, argv in argvs.items()}
        for name, argv in runs.items():
            if name.startswith("waitchain"):
                check(name, argv, row, target)
        results = {name: Result(name) for name in runs}
        for _ in range(repeat):
            for name, argv in runs.items():
                ok = CLI_OK if name.startswith("waitchain") else None
                results[name].add(run_child(argv, capture=False, ok=ok, env=ENVS.get(name)))
        info["fds"] = _fd_count()
    return results, info


def _fd_count() -> int:
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                total += len(os.listdir(f"/proc/{name}/fd"))
    return total


# --- output -------------------------------------------------------------------------------------


def cell(res: Optional[Result]) -> str:
    if res is None:
        return "-"
    return f"{res.best_wall():.3f} / {min(res.cpus):.3f} / {max(res.rss) / 1024:.0f}"


def print_tables(all_results: List[Tuple[str, Dict[str, Result], dict]], names: List[str]) -> None:
    print("\nwall s / CPU s / peak RSS MiB (best wall, best CPU, largest RSS):\n")
    print("| row | processes | fds | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for row, results, info in all_results:
        cells = " | ".join(cell(results.get(n)) for n in names)
        print(f"| {row} | {info['processes']:,} | {info['fds']:,} | {cells} |")
    ours = [n for n in names if n.startswith("waitchain")]
    print("\nratios (wall): ÷ floor = waitchain / C floor (lower is better); "
          "÷ lsof = lsof / waitchain (higher is better):\n")
    print("| row | " + " | ".join(f"{n} ÷ floor | {n} ÷ lsof" for n in ours) + " |")
    print("|---|" + "---:|---:|" * len(ours))
    for row, results, _ in all_results:
        floor, lsof = results.get("C floor"), results.get("lsof -n -P")
        parts = []
        for n in ours:
            wall = results[n].best_wall()
            parts.append(f"{wall / floor.best_wall():.2f}x" if floor else "-")
            parts.append(f"{lsof.best_wall() / wall:.1f}x" if lsof else "-")
        print(f"| {row} | " + " | ".join(parts) + " |")
    by_row = {row: (results, info) for row, results, info in all_results}
    for big in ("+1000", "+2000"):
        if "idle" in by_row and big in by_row:
            name = "waitchain PID --no-stacks"
            idle, extra = by_row["idle"], by_row[big]
            grew = (max(extra[0][name].rss) - max(idle[0][name].rss)) * 1024
            fds = extra[1]["fds"] - idle[1]["fds"]
            print(f"\n{name}: peak RSS {max(extra[0][name].rss) / 1024:.1f} MiB at {big}; "
                  f"{grew / max(fds, 1):.0f} B of RSS per extra fd ({fds:,} fds more than idle)")


def describe() -> str:
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}"
            f"{' + uncommitted changes in src/' if dirty else ''}; {platform.node()}, {os.cpu_count()} CPUs, "
            f"kernel {platform.release()}, Python {sys.version.split()[0]}")


def bench(args: argparse.Namespace) -> None:
    rows = [r.strip() for r in args.rows.split(",")] if args.rows else list(ROWS)
    for row in rows:
        if row not in ROWS:
            raise SystemExit(f"unknown row {row!r}; rows: {', '.join(ROWS)}")
    print(describe())
    print(f"best of {args.repeat} runs, interleaved; load average before: {load()}")
    with tempfile.TemporaryDirectory() as where:
        argvs = tools(build_floor(where), beside_python("py-spy") is not None, args.src or ())
        names = list(argvs)
        done = []
        for row in rows:
            began = time.perf_counter()
            results, info = measure(row, args.repeat, argvs)
            done.append((row, results, info))
            print(f"{row}: {info['processes']:,} processes, {info['fds']:,} fds, target {info['target']} "
                  f"({info['what']}); load {info['load']}; {time.perf_counter() - began:.0f} s", flush=True)
    print_tables(done, names)
    print(f"\nload average after: {load()}")


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and row; the best counts")
    parser.add_argument("--rows", help=f"comma-separated, of: {', '.join(ROWS)} (default: all)")
    parser.add_argument("--src", action="append", metavar="DIR",
                        help="also time `PID --no-stacks` and `--all` of the waitchain in DIR (a src/ "
                             "tree, e.g. of an older commit: git archive COMMIT src | tar -x -C /tmp/old), "
                             "columns labelled by DIR's parent; repeatable")
    parser.add_argument("--_spawn", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args._spawn:
        spawner_main(args._spawn[0], int(args._spawn[1]))
    else:
        run_bench(bench, args, "helper processes")


if __name__ == "__main__":
    main()
