#!/usr/bin/env python3
"""How long a whole `waitchain PID` takes at the machine's size, against `lsof -n -P` and
`lsfd` in the same run (issue 14, goal 2: start-up no slower than lsof at the idle size).

    python3 bench/bench_startup.py [--repeat R] [--src DIR ...] [--waitchain PATH] [--importtime]

The target is a `sleep` started here (a native process: the default run unwinds its stack);
the PY-PID rows target a Python program asleep in time.sleep, started here with this
interpreter (its stack is read by py-spy, when installed). Every command runs in its own
child process, interleaved (one of each per round), R rounds; output goes to /dev/null. Each row is the best wall time (what a person waits for), the
median wall, and the best CPU time (user + system, children included: py-spy, the memory
helper), and the ratio of the row's best wall time to lsof's and lsfd's.

  waitchain PID                      the installed command (--waitchain, else the console
  waitchain PID --json               script beside this interpreter, else on PATH): what a
  waitchain PID --no-stacks          user starts, launcher and `site` included
  waitchain PID --json --no-stacks
  waitchain PY-PID, PY-PID --json    the Python target, stacks read (py-spy)
  SRC: ...                           the same six with `python -m waitchain` from a source
                                     tree (--src, repeatable: before/after in one run); the
                                     tree's bytecode is compiled first, as an install has it
  python3 -c pass                    the interpreter's own start, for scale
  python3 + its stdlib (N modules)   the interpreter importing exactly the standard-library
                                     modules that `waitchain PID` loads beyond a bare start
                                     (listed from a run of the installed command, or of the
                                     last --src tree): no Python program that needs them
                                     starts faster; the rest of a row is waitchain's own
  lsof -n -P, lsfd                   the peers (skipped when not installed)

--importtime prints, for `waitchain PID` and `--json --no-stacks` of the last --src tree (or
the installed command), the modules that took longest to import (`python -X importtime`, self
time, the best of 5 runs). A benchmark, not a test: the numbers depend on the machine."""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from common import Result, beside_python, load, process_count, run_bench, run_child

WIDTH = 50  # first column of the table
VARIANTS: List[Tuple[str, ...]] = [(), ("--json",), ("--no-stacks",), ("--json", "--no-stacks")]
PY_VARIANTS: List[Tuple[str, ...]] = [(), ("--json",)]  # the Python target: its stacks are the point
ASLEEP = ("230", "35", "23", "270")  # clock_nanosleep, nanosleep, select, pselect6 (x86-64)
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def start_target(argv: List[str]) -> subprocess.Popen:
    """A process asleep (checked: its system call), in its own session."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/syscall") as f:
                if f.read().split()[0] in ASLEEP:
                    break
        except (OSError, IndexError):
            pass
        time.sleep(0.01)
    return proc


def commands(args: argparse.Namespace, pid: int, py_pid: int) -> Dict[str, Tuple[List[str], Optional[Dict[str, str]]]]:
    """Row label → (argv, environment or None)."""
    rows: Dict[str, Tuple[List[str], Optional[Dict[str, str]]]] = {}
    targets = [("PID", pid, VARIANTS), ("PY-PID", py_pid, PY_VARIANTS)]
    installed = args.waitchain or beside_python("waitchain")
    if installed and not args.src_only:
        for name, target, variants in targets:
            for extra in variants:
                rows[" ".join([f"waitchain {name}", *extra])] = ([installed, str(target), *extra], None)
    for src in args.src:
        env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
        for name, target, variants in targets:
            for extra in variants:
                rows[" ".join([f"{short(src)}: {name}", *extra])] = (
                    [sys.executable, "-m", "waitchain", str(target), *extra], env)
    rows["python3 -c pass"] = ([sys.executable, "-c", "pass"], None)
    stdlib = stdlib_modules(installed if installed and not args.src_only else None,
                            args.src[-1] if args.src else None, pid)
    if stdlib:
        rows[f"python3 + its stdlib ({len(stdlib)} modules)"] = (
            [sys.executable, "-c", "import " + ", ".join(stdlib)], None)
    for name, argv in (("lsof -n -P", ["lsof", "-n", "-P"]), ("lsfd", ["lsfd"])):
        path = shutil.which(argv[0])
        if path:
            rows[name] = ([path, *argv[1:]], None)
        else:
            print(f"note: {argv[0]} not found; skipped", file=sys.stderr)
    return rows


def stdlib_modules(installed: Optional[str], src: Optional[str], pid: int) -> List[str]:
    """The standard-library modules a `waitchain PID` run loads that a bare interpreter does
    not: run in-process once (output to /dev/null), by the installed command's interpreter
    or with the source tree on the path; [] when neither is given or the run fails."""
    if installed:
        with open(installed) as f:
            python, env = f.readline()[2:].strip(), None
    elif src:
        python, env = sys.executable, dict(os.environ, PYTHONPATH=os.path.abspath(src))
    else:
        return []
    code = ("import sys, os; base = set(sys.modules); sys.stdout = open(os.devnull, 'w')\n"
            "from waitchain.entry import main\n"
            f"main([{str(pid)!r}])\n"
            "sys.stderr.write(' '.join(sorted(m for m in set(sys.modules) - base if m != '__main__' "
            "and m.split('.')[0] != 'waitchain')))\n")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode not in (0, 1):
        print(f"note: the stdlib row is left out (the run exited {done.returncode})", file=sys.stderr)
        return []
    return done.stderr.split()


def short(src: str) -> str:
    path = os.path.abspath(src)
    return path if len(path) <= 24 else "…" + path[-23:]


def measure(rows: Dict[str, Tuple[List[str], Optional[Dict[str, str]]]], repeat: int) -> Dict[str, Result]:
    results = {label: Result(label) for label in rows}
    for _ in range(repeat):
        for label, (argv, env) in rows.items():  # interleaved: a busy moment costs every row
            results[label].add(run_child(argv, capture=False, ok=(0, 1), env=env))
    return results


def table(results: Dict[str, Result]) -> str:
    peers = {name: results[name].best_wall() for name in ("lsof -n -P", "lsfd") if name in results}
    head = "".join(f"{'÷ ' + name:>14}" for name in peers)
    lines = [f"{'command':<{WIDTH}}{'best s':>9}{'median s':>10}{'CPU s':>9}{head}"]
    for label, result in results.items():
        wall = result.best_wall()
        cells = "".join(f"{wall / peer:>14.2f}" for peer in peers.values())
        lines.append(f"{label:<{WIDTH}}{wall:9.3f}{statistics.median(result.walls):10.3f}"
                     f"{min(result.cpus):9.3f}{cells}")
    lines.append("÷ lsof: this row's best wall time / lsof's (below 1.00: faster than lsof)")
    return "\n".join(lines)


def importtime(argv: List[str], env: Optional[Dict[str, str]], top: int = 12) -> str:
    """The modules with the largest self import time (best of 5 runs), and the total."""
    best: Dict[str, int] = {}
    totals = []
    for _ in range(5):
        done = subprocess.run(argv, capture_output=True, text=True,
                              env=dict(env or os.environ, PYTHONPROFILEIMPORTTIME="1"))
        seen: Dict[str, int] = {}
        for line in done.stderr.splitlines():
            m = IMPORT_LINE.match(line)
            if m:
                seen[m.group(4)] = int(m.group(1))
        totals.append(sum(seen.values()))
        for name, us in seen.items():
            best[name] = min(best.get(name, us), us)
    rows = sorted(best.items(), key=lambda item: -item[1])[:top]
    out = [f"  all imports: {min(totals) / 1000:.1f} ms (self times summed, best run); largest:"]
    out += [f"  {us / 1000:7.1f} ms  {name}" for name, us in rows]
    return "\n".join(out)


def bench(args: argparse.Namespace) -> None:
    for src in args.src:
        compileall.compile_dir(os.path.join(src, "waitchain"), quiet=1)  # as an install has it
    started: List[subprocess.Popen] = []
    try:
        for argv in (["sleep", "100000"], [sys.executable, "-c", "import time; time.sleep(1e6)"]):
            started.append(start_target(argv))
        target, py_target = started
        rows = commands(args, target.pid, py_target.pid)
        print(f"{os.cpu_count()} CPUs, {os.uname().release}, Python {sys.version.split()[0]}, "
              f"{process_count()} processes, targets: sleep ({target.pid}), python3 ({py_target.pid}), "
              f"best of {args.repeat} rounds (interleaved), load average before: {load()}")
        results = measure(rows, args.repeat)
        print(f"load average after: {load()}, {process_count()} processes\n")
        print(table(results))
        if args.importtime:
            waitchain = [label for label in rows if ": PID" in label or label.startswith("waitchain PID")]
            if waitchain:
                argv, env = rows[waitchain[-len(VARIANTS)]]  # the last tree's (or the installed command's)
                if argv[0] != sys.executable:  # the console script: its interpreter, by its #! line
                    with open(argv[0]) as f:
                        argv = [f.readline()[2:].strip(), *argv]
                for extra in ((), ("--json", "--no-stacks")):
                    print(f"\n-X importtime, {' '.join(['waitchain PID', *extra])}:")
                    print(importtime(argv + list(extra), env))
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=15, help="rounds (default 15)")
    p.add_argument("--src", action="append", default=[], metavar="DIR",
                   help="also run `python -m waitchain` from this source tree (repeatable)")
    p.add_argument("--src-only", action="store_true", help="leave the installed command out")
    p.add_argument("--waitchain", metavar="PATH", help="the installed command to time")
    p.add_argument("--importtime", action="store_true", help="also the slowest imports")
    run_bench(bench, p.parse_args(argv), "bench_startup")


if __name__ == "__main__":
    main()
