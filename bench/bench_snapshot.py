#!/usr/bin/env python3
"""Time waitchain's snapshot of /proc against `lsof -n -P` and `lsfd`, in the same run.

    python3 bench/bench_snapshot.py [--extra N] [--fds M] [--repeat R] [--profile] [--src DIR]

Measures, best of R runs each (interleaved), at the machine's current size and then again
with N extra processes holding ~M fds each (pipes and unix socketpairs, half and half):

  waitchain scan   Snapshot.scan(): every process, every fd's readlink, the holder index
  waitchain full   the scan plus snap.tasks(pid) for every pid (threads, syscall, wchan)
  lsof -n -P       output to /dev/null
  lsfd             output to /dev/null

Every tool runs in its own child process, started through GNU time (`%M %U %S`: peak RSS,
CPU) when /usr/bin/time exists, else measured with os.wait4(). For waitchain both the
in-process time of the work and the whole process (interpreter start, import, work) are
shown: the first is what the scan costs, the second what a user waits for.

The extra processes come from one spawner (its own session) that forks them; each makes its
fds, reports over a pipe and blocks in read() on a pipe only the spawner can write. They are
killed and reaped on every way out: normal end, error, Ctrl-C, SIGTERM; if this script is
SIGKILLed the spawner sees EOF on its stdin and does it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, Iterator, List, Optional

from common import (Result, collect, forked, kill_and_reap, load, raise_nofile, run_bench, run_child,
                    sigterm_exit, spawner, wait_for_eof)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
WIDTH = 34  # first column of the table


# --- the extra processes ------------------------------------------------------------------


def make_fds(count: int) -> list:
    """~count fds: alternately a pipe and a unix socketpair (2 fds each). Keep the returned
    list referenced: socket objects close their fds when collected."""
    held: list = []
    while 2 * len(held) + 2 <= count:
        held.append(os.pipe() if len(held) % 2 == 0 else socket.socketpair())
    return held


def child_main(hold_r: int, ready_w: int, fds: int) -> None:
    """Runs in each forked child: make fds, say ready, block in read until the holder goes."""
    held = None
    try:
        held = make_fds(fds)
    except OSError:
        pass
    os.write(ready_w, b"x" if held is not None else b"e")
    os.close(ready_w)
    os.read(hold_r, 1)  # EOF when the spawner closes or dies: then exit


def fork_child(hold_r: int, hold_w: int, ready_r: int, ready_w: int, fds: int) -> int:
    def body() -> None:
        os.close(hold_w)
        os.close(ready_r)
        child_main(hold_r, ready_w, fds)

    return forked(body)


def spawner_main(count: int, fds: int) -> None:
    """One parent forks `count` children; prints how many are ready, then waits for stdin EOF."""
    signal.signal(signal.SIGTERM, sigterm_exit)
    raise_nofile(fds + 64)
    hold_r, hold_w = os.pipe()
    ready_r, ready_w = os.pipe()
    kids: List[int] = []
    try:
        for _ in range(count):
            kids.append(fork_child(hold_r, hold_w, ready_r, ready_w, fds))
        os.close(ready_w)
        status = collect(ready_r, count)
        sys.stdout.write(f"{status.count(b'x')} {status.count(b'e')}\n")
        sys.stdout.flush()
        wait_for_eof()
    finally:
        kill_and_reap(kids)


@contextlib.contextmanager
def extra_processes(count: int, fds: int) -> Iterator[None]:
    """count processes with ~fds fds each, all killed and reaped on the way out."""
    argv = [sys.executable, os.path.abspath(__file__), "--_spawn", str(count), str(fds)]
    with spawner(argv) as line:
        if len(line) != 2 or int(line[0]) != count:
            raise SystemExit(f"spawner: only {line[0] if line else 0} of {count} processes ready")
        yield


# --- measuring ------------------------------------------------------------------------------


def measure_argv(src: str, mode: str, profile: bool = False) -> List[str]:
    argv = [sys.executable, os.path.abspath(__file__), "--src", src, "--_measure", mode]
    return argv + ["--_prof"] if profile else argv


def measure_main(src: str, mode: str, profile: bool) -> None:
    """In a child process: time the scan (and threads, for `full`); print a JSON line."""
    sys.path.insert(0, src)  # this checkout by default; the editable install points here anyway
    from waitchain.snapshot import Snapshot

    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    start, cpu = time.perf_counter(), time.process_time()
    snap = Snapshot.scan()
    threads = 0
    if mode == "full":
        for pid in list(snap.processes):
            threads += len(snap.tasks(pid))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if profiler is not None:
        import pstats
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    fds = sum(len(p.fds) for p in snap.processes.values())
    print(json.dumps({"seconds": seconds, "cpu": cpu, "procs": len(snap.processes), "fds": fds,
                      "objects": len(snap.holders), "threads": threads}))


def measure_size(src: str, repeat: int, peers: Dict[str, List[str]]) -> Dict[str, Result]:
    """Best of `repeat` for each tool, interleaved so that drift hits all of them alike."""
    results = {name: Result(name) for name in ["scan", "full", *peers]}
    for _ in range(repeat):
        for mode in ("scan", "full"):
            wall, cpu, rss, out, _ = run_child(measure_argv(src, mode))
            info = json.loads(out.decode().strip().splitlines()[-1])
            res = results[mode]
            res.walls.append(wall)
            res.cpus.append(cpu)
            res.inner.append(info.pop("seconds"))
            res.inner_cpus.append(info.pop("cpu"))
            res.rss.append(rss)
            res.info = info
        for name, argv in peers.items():
            wall, cpu, rss, _, _ = run_child(argv)
            results[name].walls.append(wall)
            results[name].cpus.append(cpu)
            results[name].rss.append(rss)
    return results


def find_peers() -> Dict[str, List[str]]:
    peers = {}
    for name, argv in (("lsof -n -P", ["lsof", "-n", "-P"]), ("lsfd", ["lsfd"])):
        if shutil.which(argv[0]):
            peers[name] = argv
        else:
            print(f"note: {argv[0]} not found; skipped", file=sys.stderr)
    return peers


# --- output ---------------------------------------------------------------------------------


def ratio(peer: Optional[Result], own: float) -> str:
    return f"{peer.best_wall() / own:7.1f}x" if peer else "       -"


def print_table(title: str, results: Dict[str, Result], peers: Dict[str, List[str]]) -> None:
    info = results["full"].info
    print(f"\n== {title}: {info['procs']:,} processes, {info['fds']:,} fds "
          f"({info['objects']:,} distinct targets), {info['threads']:,} threads ==")
    names = list(peers)
    head = "".join(f"{n.split()[0] + ' ÷':>9}" for n in names)
    print(f"{'tool':<{WIDTH}}{'wall s':>9}{'CPU s':>9}{'peak RSS MiB':>14}{head}")
    rows = []
    for mode in ("scan", "full"):
        res = results[mode]
        rows.append((f"waitchain {mode} (in-process)", res.best(), min(res.inner_cpus), None, True))
        rows.append((f"waitchain {mode} (whole process)", res.best_wall(), min(res.cpus), max(res.rss), True))
    for name in names:
        res = results[name]
        rows.append((name, res.best_wall(), min(res.cpus), max(res.rss), False))
    for label, secs, cpu, rss, ours in rows:
        mib = f"{rss / 1024:14.1f}" if rss is not None else f"{'':>14}"
        cells = "".join(f"{ratio(results[n], secs):>9}" if ours else f"{'':>9}" for n in names)
        print(f"{label:<{WIDTH}}{secs:9.3f}{cpu:9.3f}{mib}{cells}".rstrip())


def summary(results: Dict[str, Result], peers: Dict[str, List[str]]) -> str:
    own = results["scan"].best()
    parts = [f"snapshot: {own:.2f} s", f"with threads: {results['full'].best():.2f} s"]
    for name in peers:
        wall = results[name].best_wall()
        parts.append(f"{name.split()[0]}: {wall:.2f} s ({wall / own:.0f}x)")
    return ", ".join(parts)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", type=int, default=1000, help="extra processes (0: skip)")
    parser.add_argument("--fds", type=int, default=50, help="pipes/socket fds per extra process")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the best counts")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one scan at the largest size (to stderr)")
    parser.add_argument("--src", default=SRC,
                        help="waitchain source tree to measure (default: this checkout's src/), "
                             "e.g. an older checkout for a before/after comparison")
    parser.add_argument("--_spawn", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_measure", choices=["scan", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--_prof", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def profile(src: str) -> None:
    sys.stdout.flush()
    subprocess.run(measure_argv(src, "scan", True), stdout=subprocess.DEVNULL, check=True)


def bench(args: argparse.Namespace) -> None:
    peers = find_peers()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, best of {args.repeat} runs, "
          f"waitchain from {args.src}")
    print("full = scan + threads of every process; ÷ = the peer's wall time / this row's;")
    print("wall and CPU: the best of the runs; peak RSS: the largest")
    print(f"load average before: {load()}")
    results = measure_size(args.src, args.repeat, peers)
    print_table("current size", results, peers)
    if args.extra > 0:
        start = time.perf_counter()
        with extra_processes(args.extra, args.fds):
            took = time.perf_counter() - start
            print(f"\n(started {args.extra} processes with ~{args.fds} fds each in {took:.1f} s)")
            results = measure_size(args.src, args.repeat, peers)
            print_table(f"+{args.extra} processes x ~{args.fds} fds", results, peers)
            if args.profile:
                profile(args.src)
    elif args.profile:
        profile(args.src)
    print(f"\nload average after: {load()}")
    print(summary(results, peers))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args._spawn:
        spawner_main(*args._spawn)
    elif args._measure:
        measure_main(os.path.abspath(args.src), args._measure, args._prof)
    else:
        run_bench(bench, args, "extra processes")


if __name__ == "__main__":
    main()
