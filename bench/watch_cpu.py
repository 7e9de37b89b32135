#!/usr/bin/env python3
"""What `waitchain watch` costs: its CPU share (user + system time of the watchdog and the
children it waited for, over wall time) at several intervals, on this machine as it is, or
with --processes N extra idle processes started first (a host with ~1,000 processes).

    sudo python3 bench/watch_cpu.py                       intervals 1, 2, 5 s, 30 s each
    sudo python3 bench/watch_cpu.py --processes 900 --seconds 60 --intervals 5
    python3 bench/watch_cpu.py --processes 900 --intervals 5 --src /tmp/before/src --src src

--src DIR (repeatable) runs the watchdog from that source tree (PYTHONPATH), one after the
other at each interval against the same processes: a before/after comparison in one run.

It prints one line per interval: the share of one core, the scans done and the mean scan time
(from the watchdog's own metrics). A benchmark, not a test: the numbers depend on the machine."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def metrics(path: str) -> Dict[str, float]:
    found: Dict[str, float] = {}
    try:
        with open(path) as f:
            for line in f:
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    found[name] = float(value)
    except OSError:
        pass
    return found


def idle_processes(count: int) -> List[subprocess.Popen]:
    """`count` processes asleep, holding no pipe anyone reads: what a busy host has many of."""
    return [subprocess.Popen(["sleep", "100000"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(count)]


def measure(interval: float, seconds: float, src: str = "") -> str:
    where = tempfile.mkdtemp(prefix="waitchain-bench-")
    prom = os.path.join(where, "waitchain.prom")
    argv = [sys.executable, "-m", "waitchain", "watch", "--interval", str(interval), "--threshold", "3600",
            "--out", os.path.join(where, "reports"), "--metrics", prom, "--no-stacks"]
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src)) if src else None
    watch = subprocess.Popen(argv, stderr=subprocess.DEVNULL, env=env)
    try:
        while not metrics(prom):  # started: its first scan is done
            time.sleep(0.05)
        start_cpu, start = cpu_seconds(watch.pid), time.monotonic()
        start_scans = metrics(prom).get("waitchain_scans_total", 0)
        time.sleep(seconds)
        used, wall = cpu_seconds(watch.pid) - start_cpu, time.monotonic() - start
        m = metrics(prom)
        scans = m.get("waitchain_scans_total", 0) - start_scans
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=60)
    processes = len([p for p in os.listdir("/proc") if p.isdigit()])
    return ((f"{src}: " if src else "") + f"interval {interval:g} s: {100 * used / wall:.2f}% of one core over {wall:.0f} s, "
            f"{scans:.0f} scans, last scan {m.get('waitchain_scan_seconds', 0):.3f} s, "
            f"{processes} processes on the machine")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--intervals", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    p.add_argument("--seconds", type=float, default=30.0, help="how long to measure each interval")
    p.add_argument("--processes", type=int, default=0, help="start this many idle processes first")
    p.add_argument("--src", action="append", default=[], metavar="DIR",
                   help="run waitchain from this source tree (repeatable: each is measured in turn)")
    args = p.parse_args()
    extra = idle_processes(args.processes)
    try:
        for interval in args.intervals:
            for src in args.src or [""]:
                print(measure(interval, args.seconds, src), flush=True)
    finally:
        for proc in extra:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
