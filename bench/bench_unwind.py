"""Native stacks of blocked threads: waitchain's unwinder (no ptrace: /proc, .eh_frame and
process_vm_readv) against `gdb -batch` and `eu-stack` (both ptrace-attach and stop the target),
on the same targets: time per thread, and whether the frames agree with gdb's.

    python3 bench/bench_unwind.py              # every target whose compiler is installed
    python3 bench/bench_unwind.py --threads 64 --repeat 5
    python3 bench/bench_unwind.py --src /tmp/before/src --src src   # start-up, before/after

Targets, compiled into a temporary directory: C -O2 -g without frame pointers (one thread,
and N threads) blocked in read() three calls deep, the same without unwind tables (scan),
C++ -O0 in std::mutex::lock, Rust reading stdin (when rustc is installed). Each is killed
and reaped on every way out.

Rows: `cold` is the first unwind of the target in a fresh process (ELF files opened and
their tables parsed), `warm` the best of --repeat further ones (cache hot); both include
reading /proc/PID/maps and the syscall files. gdb runs `thread apply all bt`, eu-stack
`-p PID`; their time includes their start (they read symbols every time). `agree` counts
the threads whose frames gdb confirms (same line where both have one, same function in the
program's own module), inline frames folded as in tests/scenarios/test_native_unwind.py.

Then the start-up cost `waitchain PID` pays in its stacks stage, per target and --src tree
(default: this checkout's; bytecode compiled first), interleaved, best of --repeat: a fresh
interpreter with the memory reader open imports the unwinder and unwinds the target's
threads up to their application frame (what the text output shows): wall and CPU time, and
whether pyelftools got imported (it decodes .debug_line only)."""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
sys.path.insert(0, SRC)

from waitchain.model import Frame  # noqa: E402
from waitchain.procfs.memory import MemoryReader  # noqa: E402
from waitchain.stacks import elf, unwind  # noqa: E402

C_THREADS = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) int level3(int fd, char *buf) { int n = (int)read(fd, buf, 1); return n + 1; }
__attribute__((noinline)) int level2(int fd, char *buf) { int r = level3(fd, buf); return r * 2; }
__attribute__((noinline)) int level1(int fd) { char buf[4]; int r = level2(fd, buf); return r + 3; }

static void *worker(void *arg) { level1((int)(long)arg); return NULL; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0, p[2];
    for (int i = 1; i < n; i++) {
        pthread_t t;
        if (pipe(p) != 0 || pthread_create(&t, NULL, worker, (void *)(long)p[0]) != 0)
            return 2;
    }
    if (pipe(p) != 0 || write(1, "ready\n", 6) != 6)
        return 3;
    return level1(p[0]) == 99;
}
"""

CXX_MUTEX = r"""
#include <mutex>
#include <unistd.h>
namespace shop { struct Till { std::mutex m; void settle() { m.lock(); if (write(1, "ready\n", 6) != 6) return; m.lock(); } }; }
int main() { shop::Till t; t.settle(); return 0; }
"""

RUST_STDIN = r"""
use std::io::Write;
fn wait_for_line() -> usize { let mut s = String::new(); std::io::stdin().read_line(&mut s).unwrap() }
fn main() { println!("ready"); std::io::stdout().flush().unwrap(); std::process::exit(wait_for_line() as i32); }
"""

# A fresh interpreter: argv = src, pid, tids; prints wall and CPU seconds and 1 if pyelftools got imported.
FRESH = """
import sys, time
sys.path.insert(0, sys.argv[1])
from waitchain.procfs.memory import MemoryReader
pid, tids = int(sys.argv[2]), [int(t) for t in sys.argv[3].split(",")]
with MemoryReader() as reader:
    wall, cpu = time.perf_counter(), time.process_time()
    from waitchain.stacks import unwind
    unwind.process_stacks(pid, tids, reader.read_partial, every_frame=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(wall, cpu, int("elftools" in sys.modules))
"""

GDB_FRAME = re.compile(r"^#(\d+)\s+(0x[0-9a-fA-F]+ in )?(.+?) \(.*?\)(?: at (\S+):(\d+)| from (\S+))?\s*$")
GDB_THREAD = re.compile(r"^Thread \d+ \(.*?\bLWP (\d+)\)")


class Target:
    def __init__(self, name: str, argv: List[str], threads: int, module: str) -> None:
        self.name, self.argv, self.threads, self.module = name, argv, threads, module
        self.proc: Optional[subprocess.Popen] = None
        self.pipe_w: Optional[int] = None

    def start(self) -> int:
        r, w = os.pipe()  # stdin never written: a reader of stdin blocks
        self.pipe_w = w
        self.proc = subprocess.Popen(self.argv, stdin=r, stdout=subprocess.PIPE, start_new_session=True)
        os.close(r)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline() != b"ready\n":
            raise RuntimeError(f"{self.name} did not start")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(self.blocked()) < self.threads:
            time.sleep(0.01)
        return self.proc.pid

    def blocked(self) -> List[int]:
        assert self.proc is not None
        out = []
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/syscall") as f:
                    if not f.read().startswith("running"):
                        out.append(int(tid))
            except OSError:
                pass
        return sorted(out)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
        if self.pipe_w is not None:
            os.close(self.pipe_w)
            self.pipe_w = None


def build(tmp: str, threads: int) -> List[Target]:
    cc, cxx = shutil.which("gcc") or shutil.which("cc"), shutil.which("g++")
    rustc = shutil.which("rustc") or os.path.expanduser("~/.cargo/bin/rustc")
    targets: List[Target] = []
    if cc:
        src = os.path.join(tmp, "deep.c")
        with open(src, "w") as f:
            f.write(C_THREADS)
        for name, flags in (("C -O2 no-fp", []),
                            ("C -O2 no unwind tables", ["-fno-asynchronous-unwind-tables", "-fno-unwind-tables"])):
            out = os.path.join(tmp, re.sub(r"\W+", "_", name))
            subprocess.run([cc, "-O2", "-g", "-fomit-frame-pointer", "-pthread", *flags, "-o", out, src], check=True)
            targets.append(Target(f"{name}, 1 thread", [out, "1"], 1, out))
            if name == "C -O2 no-fp" and threads > 1:
                targets.append(Target(f"{name}, {threads} threads", [out, str(threads)], threads, out))
    if cxx:
        src, out = os.path.join(tmp, "till.cpp"), os.path.join(tmp, "till")
        with open(src, "w") as f:
            f.write(CXX_MUTEX)
        subprocess.run([cxx, "-O0", "-g", "-pthread", "-o", out, src], check=True)
        targets.append(Target("C++ std::mutex::lock", [out], 1, out))
    if rustc and os.access(rustc, os.X_OK):
        src, out = os.path.join(tmp, "waiter.rs"), os.path.join(tmp, "waiter")
        with open(src, "w") as f:
            f.write(RUST_STDIN)
        subprocess.run([rustc, "-g", "-C", "opt-level=0", "-o", out, src], check=True)
        targets.append(Target("Rust stdin", [out], 1, out))
    return targets


def system_targets() -> List[Target]:
    """Programs of the system without debug info, as `waitchain PID` meets them most: a sleep,
    a bash reading its stdin."""
    sleep, bash = shutil.which("sleep"), shutil.which("bash")
    out = []
    if sleep:
        out.append(Target("sleep (no debug info)", ["sh", "-c", f"echo ready; exec {sleep} 1000"], 1, sleep))
    if bash:
        out.append(Target("bash in read (no debug info)", [bash, "-c", "echo ready; read x"], 1, bash))
    return out


def ours(pid: int, tids: Sequence[int], reader: MemoryReader) -> Tuple[float, Dict[int, Tuple[Tuple[Frame, ...], bool]]]:
    start = time.perf_counter()
    stacks = unwind.process_stacks(pid, tids, reader.read_partial)
    return time.perf_counter() - start, stacks


def gdb(pid: int) -> Tuple[float, Dict[int, List[Tuple[str, str, int]]]]:
    start = time.perf_counter()
    done = subprocess.run(["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off", "-ex", "set pagination off",
                           "-ex", "thread apply all bt", "-p", str(pid)],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=120)
    took = time.perf_counter() - start
    stacks: Dict[int, List[Tuple[str, str, int]]] = {}
    current: Optional[List[Tuple[str, str, int]]] = None
    for line in done.stdout.splitlines():
        thread = GDB_THREAD.match(line)
        if thread:
            current = stacks.setdefault(int(thread.group(1)), [])
            continue
        m = GDB_FRAME.match(line)
        if m and current is not None:
            if current and not m.group(2):  # inlined into the function that follows
                current[-1] = (m.group(3), current[-1][1], current[-1][2])
            else:
                current.append((m.group(3), os.path.basename(m.group(4) or ""), int(m.group(5) or 0)))
    return took, stacks


def fresh(src: str, pid: int, tids: Sequence[int]) -> Tuple[float, float, bool]:
    done = subprocess.run([sys.executable, "-c", FRESH, src, str(pid), ",".join(map(str, tids))],
                          stdout=subprocess.PIPE, text=True, timeout=120, check=True)
    wall, cpu, loaded = done.stdout.split()
    return float(wall), float(cpu), loaded == "1"


def start_up(targets: List[Target], srcs: List[str], repeat: int) -> None:
    """The stacks stage's cost in a fresh interpreter, per target and tree (interleaved)."""
    print(f"\nfresh interpreter: import the unwinder + unwind up to the application frame, best of {repeat}")
    print(f"{'target':34} {'src':28} {'wall':>8} {'cpu':>8} {'pyelftools':>10}")
    for src in srcs:
        compileall.compile_dir(os.path.join(src, "waitchain"), quiet=1)  # as an install has it
    for target in targets:
        pid = target.start()
        tids = target.blocked()
        best: Dict[str, Tuple[float, float, bool]] = {}
        try:
            for _ in range(repeat):
                for src in srcs:
                    wall, cpu, loaded = fresh(src, pid, tids)
                    old = best.get(src, (wall, cpu, loaded))
                    best[src] = (min(old[0], wall), min(old[1], cpu), loaded)
        finally:
            target.stop()
        for src in srcs:
            wall, cpu, loaded = best[src]
            print(f"{target.name:34} {_short(src):28} {1000 * wall:>6.1f}ms {1000 * cpu:>6.1f}ms "
                  f"{'yes' if loaded else 'no':>10}", flush=True)


def _short(src: str) -> str:
    path = os.path.abspath(src)
    return path if len(path) <= 28 else "…" + path[-27:]


def eu_stack(pid: int) -> Optional[float]:
    tool = shutil.which("eu-stack")
    if tool is None:
        return None
    start = time.perf_counter()
    subprocess.run([tool, "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - start


def bare(name: str) -> str:
    return re.sub(r"[<>:\s]", "", name.split("(")[0])


def agrees(frames: Tuple[Frame, ...], incomplete: bool, theirs: List[Tuple[str, str, int]], module: str) -> bool:
    if incomplete:
        theirs = theirs[:len(frames)]
    if len(frames) < len(theirs):
        return False
    for mine, (function, file, line) in zip(frames, theirs):
        if file and mine.line and (os.path.basename(mine.file), mine.line) != (file, line):
            return False
        if mine.module == module and bare(mine.function) != bare(function):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16, help="threads of the multi-threaded target")
    parser.add_argument("--repeat", type=int, default=5, help="warm runs (the best is shown)")
    parser.add_argument("--src", action="append", default=[], metavar="DIR",
                        help="a tree's src directory for the start-up rows (repeatable; default: this one's)")
    args = parser.parse_args()
    if not unwind.SUPPORTED:
        sys.exit("native unwinding is x86-64 only")
    has_gdb = shutil.which("gdb") is not None
    print(f"{'target':34} {'thr':>4} {'cold/thr':>10} {'warm/thr':>10} {'gdb/thr':>10} "
          f"{'eu-stack/thr':>12} {'how':>16} {'agree':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-unwind-") as tmp, MemoryReader() as reader:
        targets = build(tmp, args.threads)
        try:
            for target in targets:
                pid = target.start()
                tids = target.blocked()
                elf.clear_cache()
                cold, stacks = ours(pid, tids, reader)
                warm = min(ours(pid, tids, reader)[0] for _ in range(args.repeat))
                hows: Dict[str, int] = {}
                for frames, _ in stacks.values():
                    for f in frames[1:]:
                        hows[f.how] = hows.get(f.how, 0) + 1
                how = " ".join(f"{k}:{v}" for k, v in sorted(hows.items()))
                gdb_time, agree = None, "-"
                if has_gdb:
                    gdb_time, theirs = gdb(pid)
                    ok = sum(1 for tid, (frames, incomplete) in stacks.items()
                             if tid in theirs and agrees(frames, incomplete, theirs[tid], target.module))
                    agree = f"{ok}/{len(tids)}"
                eu = eu_stack(pid)
                n = max(1, len(tids))
                print(f"{target.name:34} {len(tids):>4} {1000 * cold / n:>8.1f}ms {1000 * warm / n:>8.2f}ms "
                      f"{_ms(gdb_time, n):>10} {_ms(eu, n):>12} {how:>16} {agree:>7}", flush=True)
                target.stop()
            start_up(targets + system_targets(), args.src or [SRC], args.repeat)
        finally:
            for target in targets:
                target.stop()


def _ms(seconds: Optional[float], n: int) -> str:
    return "-" if seconds is None else f"{1000 * seconds / n:.1f}ms"


if __name__ == "__main__":
    main()
