"""The graph work's growth: the pure pipeline (explore on a snapshot made in code → wait-for
graph → cycles → chains → verdicts → incidents → the text of --all) on synthetic graphs of
10k nodes and more,
and the same work on real processes (a chain of processes each reading a pipe only the next
one writes, a fan-in of waiters on one holder) against the time of the /proc scan.

    python3 bench/bench_graph.py                        # every shape at 2,500 .. 20,000 nodes
    python3 bench/bench_graph.py --shapes chain,ring --sizes 5000,10000,20000,40000
    python3 bench/bench_graph.py --profile ring:10000   # cProfile of one case (stderr)
    python3 bench/bench_graph.py --src /older/checkout/src   # the same on another code tree
    python3 bench/bench_graph.py --real                 # real processes: chain 2,000, fan-in 500

Each (shape, stage, size) is timed best of --repeat; the ratio is against the size before
(linear in nodes + edges: ≈ 2x when N doubles). A case that took longer than --budget
seconds stops its shape and stage from growing further ("skipped"). Python ≥ 3.9,
standard library only."""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import io
import os
import pstats
import random
import signal
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from common import kill_and_reap

Key = Tuple[int, int]


def _import(src: Optional[str]) -> None:
    """waitchain from `src` (another checkout's src/), or from this tree."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    sys.path.insert(0, os.path.abspath(src or here))
    global model, engine, incidents, Explored, find_cycles, WaitFor, node_of, text
    from waitchain import engine, incidents, model  # noqa: F401
    from waitchain.render import text  # noqa: F401
    from waitchain.graph import Explored, find_cycles  # noqa: F401
    from waitchain.graph.explore import node_of  # noqa: F401
    from waitchain.graph.waitfor import WaitFor  # noqa: F401


# --- a snapshot made in code ---------------------------------------------------------------


class FakeSnapshot:
    """What the engine and the incidents ask of a snapshot, for waits made in code (like
    tests/unit/test_verdict_layer.py's): every thread blocked, nothing moved, long idle."""

    def __init__(self, waits: Sequence["model.Wait"]) -> None:
        self.waits = {(w.pid, w.tid): w for w in waits}
        self.notes: List[str] = []
        self.threads: Dict[int, list] = {}
        for (pid, tid), w in sorted(self.waits.items()):
            call = model.Syscall(0, w.syscall or "read", (0,) * 6)
            self.threads.setdefault(pid, []).append(model.Task(tid, f"t{tid}", "S", call))
        self.processes = {p: model.Process(p, p, f"p{p}", "S", 1, p, 0) for p in self.threads}

    def tasks(self, pid: int) -> list:
        return self.threads.get(pid, [])

    def alive(self, pid: int) -> bool:
        return pid in self.processes

    def cmdline(self, pid: int) -> str:
        return f"prog{pid}"

    def moved(self, pid: int, tid: int) -> bool:
        return False

    def ns_thread_ids(self, pid: int) -> Dict[int, int]:
        return {}

    def idle_seconds(self, pid: int, tid: int) -> Optional[float]:
        return 100.0

    def rules(self, snap: object, pid: int, task: "model.Task") -> "model.Wait":
        return self.waits[(pid, task.tid)]


def edge(a: Key, to: int, kind: str = "pipe", to_tid: Optional[int] = None, writing: bool = False) -> "model.Edge":
    return model.Edge(a[0], a[1], to, to_tid, model.EdgeKind(kind), "obj", "evidence", writing=writing)


def wait(key: Key, *edges: "model.Edge", end: Optional["model.End"] = None, live: tuple = (),
         mode: str = "any", syscall: str = "read") -> "model.Wait":
    return model.Wait(key[0], key[1], f"{syscall}()", tuple(edges), end, any_of=bool(live) and len(edges),
                      live=live, syscall=syscall, mode=model.Mode(mode))


def sleeping() -> "model.End":
    return model.End(model.EndKind.SLEEPING, "sleeps", model.Reason.SLEEP)


# --- shapes: (waits, start) of about n threads ---------------------------------------------------


def chain(n: int) -> Tuple[list, int]:
    """n processes, each reading a pipe only the next one writes; the last sleeps."""
    ws = [wait((p, p), edge((p, p), p + 1)) for p in range(1, n)]
    return ws + [wait((n, n), end=sleeping())], 1


def fanin(n: int) -> Tuple[list, int]:
    """n waiters reading one pipe only a sleeping holder (pid 1) writes."""
    ws = [wait((p, p), edge((p, p), 1)) for p in range(2, n + 1)]
    return ws + [wait((1, 1), end=sleeping())], 2


def pairs(n: int) -> Tuple[list, int]:
    """n/2 two-process deadlocks (each reads a pipe only the other writes)."""
    ws = []
    for a in range(1, n, 2):
        ws += [wait((a, a), edge((a, a), a + 1)), wait((a + 1, a + 1), edge((a + 1, a + 1), a))]
    return ws, 1


def ring(n: int) -> Tuple[list, int]:
    """One knot: a ring of n processes."""
    return [wait((p, p), edge((p, p), p % n + 1)) for p in range(1, n + 1)], 1


def twoway(n: int) -> Tuple[list, int]:
    """One knot no single exit breaks: each process has two threads, waiting for the next
    process and the one after (kill_to_break tries every member)."""
    ws = []
    for p in range(1, n // 2 + 1):
        m = n // 2
        ws += [wait((p, p), edge((p, p), p % m + 1)), wait((p, p + 10**6), edge((p, p + 10**6), (p + 1) % m + 1))]
    return ws, 1


def locks(n: int) -> Tuple[list, int]:
    """A ring of n - 2 processes that waits (file locks: every holder) on a two-process lock
    deadlock, which waits back on the ring: a knot that no member's exit breaks, and whose
    ring's exits each free most of it (kill_to_break's worst case)."""
    m = n - 2
    a, b = m + 1, m + 2
    ws = [wait((p, p), edge((p, p), p + 1, "flock")) for p in range(1, m)]
    ws.append(wait((m, m), edge((m, m), 1, "flock"), edge((m, m), a, "flock")))
    ws.append(wait((a, a), edge((a, a), b, "flock"), edge((a, a), 1, "flock"), mode="all"))
    ws.append(wait((b, b), edge((b, b), a, "flock")))
    return ws, 1


def server(n: int) -> Tuple[list, int]:
    """An event loop (pid 1, a live listener) watching n clients that each wait for its reply:
    n open cycles, each client a start of its own under --all and watch."""
    clients = range(2, n + 1)
    loop = wait((1, 1), *(edge((1, 1), c, "unix") for c in clients),
                live=(model.End(model.EndKind.IDLE, "listens", model.Reason.ACCEPT),), syscall="epoll_wait")
    return [loop] + [wait((c, c), edge((c, c), 1, "unix")) for c in clients], 2


def behind(n: int) -> Tuple[list, int]:
    """n/3 process cycles stuck behind a knot elsewhere (ALL waits: each also needs the
    knot), and the knot."""
    ws = [wait((1, 1), edge((1, 1), 2)), wait((2, 2), edge((2, 2), 1))]
    for a in range(3, n - 2, 3):
        ws += [wait((a, a), edge((a, a), a + 1), edge((a, a), 1), mode="all"),
               wait((a + 1, a + 1), edge((a + 1, a + 1), a)), wait((a + 2, a + 2), edge((a + 2, a + 2), a))]
    return ws, 3


def rand(n: int, seed: int = 1) -> Tuple[list, int]:
    return random_graph(random.Random(seed), n), 1


KINDS = ["pipe", "pipe", "unix", "tcp", "child", "flock", "sigchld"]


def random_graph(rng: random.Random, n: int, far: float = 0.1, threads: float = 0.2) -> list:
    """About n threads in processes of one to three threads: most wait for a process a few
    pids on (long chains, rings), some anywhere (knots, fan-ins), some for a thread, some
    sleep, have a way out, wait for all their targets, or write; a few processes wait on
    their own threads (a private futex)."""
    pids = list(range(1, max(2, int(n / (1 + threads))) + 1))
    tids = {p: [p] + [p * 100 + i for i in range(1, 3) if rng.random() < threads] for p in pids}
    ws = []
    for p in pids:
        for t in tids[p]:
            r = rng.random()
            if r < 0.08:
                ws.append(wait((p, t), end=sleeping()))
                continue
            if r < 0.11:
                ws.append(wait((p, t), edge((p, t), p, "futex"), syscall="futex"))
                continue
            edges = []
            for _ in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
                to = rng.choice(pids) if rng.random() < far else min(pids[-1], p + rng.randint(1, 4))
                if rng.random() < 0.05:
                    to = rng.choice(pids[:3])  # hubs
                if rng.random() < 0.15:
                    edges.append(edge((p, t), to, "mutex", rng.choice(tids[to])))
                else:
                    edges.append(edge((p, t), to, rng.choice(KINDS), writing=rng.random() < 0.15))
            live = (sleeping(),) if rng.random() < 0.06 else ()
            ws.append(wait((p, t), *edges, live=live, mode="all" if rng.random() < 0.08 else "any"))
    return ws


SHAPES: Dict[str, Callable[[int], Tuple[list, int]]] = {
    "chain": chain, "fanin": fanin, "pairs": pairs, "ring": ring, "twoway": twoway, "locks": locks,
    "server": server, "behind": behind, "random": rand}


# --- stages ----------------------------------------------------------------------------------


def stage_waitfor(ws: list, start: int) -> None:
    """The plain graph alone: stuck set, knots, process cycles."""
    graph = WaitFor(node_of(w) for w in ws)
    graph.stuck()
    graph.knots()
    graph.cycles()


def stage_pid(ws: list, start: int) -> None:
    """`waitchain PID`: explore from one start, cycles, chains, verdicts."""
    snap = FakeSnapshot(ws)
    engine.diagnose(snap, [start], rules=snap.rules)


def stage_all(ws: list, start: int) -> None:
    """`waitchain --all`: explore from every process, every incident's chains and verdicts."""
    snap = FakeSnapshot(ws)
    engine.diagnose_all(snap, rules=snap.rules)


def stage_watch(ws: list, start: int) -> None:
    """watch's scan: every process, the incidents (blocked chains too), ranked and folded."""
    snap = FakeSnapshot(ws)
    incidents.scan(snap, min_blocked=0.0, rules=snap.rules)


def stage_text(ws: list, start: int) -> None:
    """`waitchain --all` in text: watch's scan, then its diagnosis rendered (trees, verdicts)."""
    snap = FakeSnapshot(ws)
    text.lines(incidents.scan(snap, min_blocked=0.0, rules=snap.rules).diagnosis)


STAGES = {"waitfor": stage_waitfor, "pid": stage_pid, "all": stage_all, "watch": stage_watch, "text": stage_text}


GC_OFF = False  # --gc-off: the cyclic collector's passes over every live object are not timed


def best_of(fn: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()  # the last case's garbage is not this one's to collect
        if GC_OFF:
            gc.disable()
        t0 = time.perf_counter()
        try:
            fn()
        finally:
            best = min(best, time.perf_counter() - t0)
            gc.enable()
    return best


def synthetic(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'shape':<8} {'stage':<8} " + " ".join(f"{n:>15,}" for n in sizes))
    print(f"{'':<8} {'':<8} " + " ".join(f"{'s (xprev)':>15}" for _ in sizes))
    for shape in args.shapes.split(","):
        for stage in args.stages.split(","):
            cells, prev, stop = [], None, False
            for n in sizes:
                if stop:
                    cells.append(f"{'skipped':>15}")
                    continue
                ws, start = SHAPES[shape](n)
                t = best_of(functools.partial(STAGES[stage], ws, start), args.repeat)
                ratio = f"({t / prev:.1f}x)" if prev else ""
                cells.append(f"{t:>8.3f} {ratio:>6}")
                prev, stop = t, t > args.budget
            print(f"{shape:<8} {stage:<8} " + " ".join(cells), flush=True)


def profile(case: str, stage: str) -> None:
    shape, n = case.split(":")
    ws, start = SHAPES[shape](int(n))
    prof = cProfile.Profile()
    prof.runcall(STAGES[stage], ws, start)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
    print(out.getvalue(), file=sys.stderr)


# --- real processes -------------------------------------------------------------------------------


@contextlib.contextmanager
def real_chain(n: int) -> Iterator[List[int]]:
    """n processes: process i blocks reading a pipe whose write end only process i + 1
    holds; the last sleeps. Yields their pids, first to last; kills and reaps them all."""
    kids: List[int] = []
    ready_r, ready_w = os.pipe()
    prev_w: Optional[int] = None
    try:
        for i in range(n):
            last = i == n - 1
            r, w = os.pipe() if not last else (-1, -1)
            pid = os.fork()
            if pid == 0:  # child: keep its read end and the previous process's write end
                with contextlib.suppress(BaseException):
                    os.close(ready_r)
                    if w >= 0:
                        os.close(w)
                    os.write(ready_w, b"x")
                    os.close(ready_w)
                    if last:
                        time.sleep(3600)
                    else:
                        os.read(r, 1)
                os._exit(0)
            kids.append(pid)
            if prev_w is not None:
                os.close(prev_w)
            if r >= 0:
                os.close(r)
            prev_w = w if w >= 0 else None
        if prev_w is not None:
            os.close(prev_w)
        os.close(ready_w)
        ready_w = -1
        _collect(ready_r, n)
        yield kids
    finally:
        kill_and_reap(kids)
        for fd in (ready_r, ready_w):
            with contextlib.suppress(OSError):
                if fd >= 0:
                    os.close(fd)


@contextlib.contextmanager
def real_fanin(n: int) -> Iterator[List[int]]:
    """n processes blocked reading one pipe whose write end only a sleeping holder holds.
    Yields [holder, waiters...]; kills and reaps them all."""
    kids: List[int] = []
    ready_r, ready_w = os.pipe()
    r, w = os.pipe()
    try:
        holder = os.fork()
        if holder == 0:
            with contextlib.suppress(BaseException):
                os.close(r)
                os.close(ready_r)
                os.write(ready_w, b"x")
                os.close(ready_w)
                time.sleep(3600)
            os._exit(0)
        kids.append(holder)
        os.close(w)
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                with contextlib.suppress(BaseException):
                    os.close(ready_r)
                    os.write(ready_w, b"x")
                    os.close(ready_w)
                    os.read(r, 1)
                os._exit(0)
            kids.append(pid)
        os.close(ready_w)
        ready_w = -1
        _collect(ready_r, n + 1)
        yield kids
    finally:
        kill_and_reap(kids)
        for fd in (ready_r, ready_w, r):
            with contextlib.suppress(OSError):
                if fd >= 0:
                    os.close(fd)


def _collect(ready_r: int, count: int) -> None:
    got = 0
    while got < count:
        chunk = os.read(ready_r, count - got)
        if not chunk:
            raise RuntimeError(f"only {got} of {count} processes started")
        got += len(chunk)


class Timed:
    """Time spent in the snapshot's methods (the only I/O gateway) and in the wait rules,
    outermost calls only, while the engine runs."""

    def __init__(self) -> None:
        self.io = self.rules = 0.0
        self._depth = 0

    @contextlib.contextmanager
    def patched(self, snapshot_cls: type) -> Iterator[None]:
        saved = {}
        for name, fn in list(vars(snapshot_cls).items()):
            if callable(fn) and not name.startswith("__") and not isinstance(fn, (staticmethod, classmethod)):
                saved[name] = fn
                setattr(snapshot_cls, name, self._wrap(fn))
        try:
            yield
        finally:
            for name, fn in saved.items():
                setattr(snapshot_cls, name, fn)

    def _wrap(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*a, **k):
            if self._depth:
                return fn(*a, **k)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.io += time.perf_counter() - t0
                self._depth -= 1
        return timed

    def rules_of(self, rules: Callable) -> Callable:
        def timed(snap, pid, task):
            io0, t0 = self.io, time.perf_counter()
            try:
                return rules(snap, pid, task)
            finally:
                self.rules += time.perf_counter() - t0 - (self.io - io0)
        return timed


def real(args: argparse.Namespace) -> None:
    """Diagnose the real processes twice: on the live snapshot (the scan, then the reads
    and the rules during the diagnosis, timed at the snapshot's methods), and again on the
    waits the rules found, replayed from memory: that second run is the graph work alone
    (explore, graph, cycles, chains, verdicts, incidents), with no I/O and no rule."""
    import json
    import subprocess

    from waitchain import snapshot
    from waitchain.waits import wait_of

    def measure(what: str, pids: List[int], starts: List[int], how: str, expect_end: int) -> None:
        gc.collect()
        t0 = time.perf_counter()
        snap = snapshot.Snapshot.scan()
        scan = time.perf_counter() - t0
        timed, found = Timed(), []

        def rules(s, pid, task):
            wait = timed.rules_of(wait_of)(s, pid, task)
            found.append(wait)
            return wait

        def run(snap: object, rules: Callable) -> object:
            if how == "pid":
                return engine.diagnose(snap, starts, rules=rules)  # type: ignore[arg-type]
            return incidents.scan(snap, min_blocked=0.0, pids=pids, rules=rules).diagnosis  # type: ignore[arg-type]

        with timed.patched(snapshot.Snapshot):
            diag = run(snap, rules)
        replay = FakeSnapshot(found)
        gc.collect()
        prof = cProfile.Profile() if args.profile_real else None
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        again = run(replay, replay.rules)
        if prof is not None:
            prof.disable()
        graph = time.perf_counter() - t0
        chain = diag.chains[0] if diag.chains else None
        end = (f"ends at {'the' if chain.end.pid == expect_end else 'NOT the'} end "
               f"({chain.end.kind.value}/{chain.end.reason.value if chain.end.reason else '-'}), "
               f"{len(chain.path)} long") if chain else "no chain"
        same = len(again.chains) == len(diag.chains) and [c.path for c in again.chains] == [c.path for c in diag.chains]
        print(f"{what:<10} {how:<6} scan {scan:6.3f} s  reads {timed.io:6.3f} s  rules {timed.rules:6.3f} s  "
              f"graph {graph:6.3f} s = {100 * graph / (scan + timed.io):4.1f}% of scan + reads; "
              f"{len(diag.chains)} chains, the first {end}{'' if same else '; REPLAY DIFFERS'}", flush=True)
        if prof is not None:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
            print(out.getvalue(), file=sys.stderr)

    def cli(what: str, start: int, expect_end: int) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "waitchain", str(start), "--json", "--no-stacks"],
                             capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        try:
            doc = json.loads(out.stdout)
            chain = doc["chains"][0]
            end = chain["end"]
            said = (f"the chain is {len(chain['path'])} long and ends at "
                    f"{'the' if end.get('pid') == expect_end else 'NOT the'} end ({end.get('kind')}/{end.get('reason')}: {end.get('detail')!r})")
        except (ValueError, KeyError, IndexError) as exc:
            said = f"no chain read ({exc!r}; exit {out.returncode}; {out.stderr.strip()[-200:]})"
        print(f"{what:<10} cli    `waitchain PID --json --no-stacks` {wall:6.3f} s wall: {said}", flush=True)

    for spec in args.real_cases.split(","):
        shape, n = spec.split(":")
        if shape == "chain":
            with real_chain(int(n)) as pids:
                measure(spec, pids, [pids[0]], "pid", pids[-1])
                measure(spec, pids, [pids[0]], "watch", pids[-1])
                cli(spec, pids[0], pids[-1])
        else:
            with real_fanin(int(n)) as pids:
                measure(spec, pids, [pids[1]], "pid", pids[0])
                measure(spec, pids, [pids[1]], "watch", pids[0])
                cli(spec, pids[1], pids[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--stages", default="waitfor,pid,all,watch,text")
    ap.add_argument("--sizes", default="2500,5000,10000,20000")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--budget", type=float, default=5.0, help="seconds: stop growing a row past this")
    ap.add_argument("--profile", metavar="SHAPE:N", help="cProfile one case of --stages' first stage")
    ap.add_argument("--src", help="waitchain's src directory to measure (another checkout)")
    ap.add_argument("--real", action="store_true", help="real processes instead of synthetic graphs")
    ap.add_argument("--real-cases", default="chain:2000,fanin:500")
    ap.add_argument("--profile-real", action="store_true", help="cProfile each real diagnosis (stderr)")
    ap.add_argument("--gc-off", action="store_true", help="time with the cyclic garbage collector off")
    args = ap.parse_args()
    global GC_OFF
    GC_OFF = args.gc_off
    _import(args.src)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    if args.real:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        real(args)
    elif args.profile:
        profile(args.profile, args.stages.split(",")[0])
    else:
        synthetic(args)


if __name__ == "__main__":
    main()
