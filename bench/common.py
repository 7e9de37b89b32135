"""Helpers shared by the benchmarks: helper processes that are always killed and reaped,
timing a tool in a child process (wall, CPU, peak RSS), and small output helpers.

Standard library only; Python >= 3.9."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from typing import Callable, Collection, Dict, Iterator, List, NamedTuple, Optional

PR_SET_CHILD_SUBREAPER = 36


# --- helper processes -----------------------------------------------------------------------


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def sigterm_exit(signum, frame) -> None:
    """A SIGTERM handler that unwinds through the finally blocks (which clean up)."""
    raise SystemExit(1)


def run_bench(bench, args, what: str) -> None:
    """bench(args), cleaning up (finally blocks) on SIGTERM and Ctrl-C alike."""
    signal.signal(signal.SIGTERM, sigterm_exit)
    try:
        bench(args)
    except KeyboardInterrupt:
        print(f"\ninterrupted; {what} stopped", file=sys.stderr)
        sys.exit(130)


def become_subreaper() -> None:
    """Orphans of a crashed spawner then come to us, and we reap them."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def collect(ready_r: int, count: int) -> bytes:
    """Up to `count` readiness bytes; fewer if every writer has exited."""
    got = b""
    while len(got) < count:
        chunk = os.read(ready_r, count - len(got))
        if not chunk:
            break  # every child has said something or exited
        got += chunk
    return got


def kill_and_reap(kids: List[int]) -> None:
    for pid in kids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in kids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def detach_stdio() -> None:
    """In a forked holder: stdin/stdout to /dev/null, so it keeps no pipe to the bench open."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)


def forked(body: Callable[[], None]) -> int:
    """fork; the child runs body() with stdin/stdout on /dev/null (it keeps no pipe to the
    bench open) and SIGTERM at its default, and never returns: exit 0, or 1 if body raised."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        detach_stdio()
        body()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


@contextlib.contextmanager
def spawner(argv: List[str]) -> Iterator[List[str]]:
    """Start a spawner process (own session) and yield the words of its first stdout line,
    its readiness report. On the way out its stdin is closed: it kills and reaps what it
    started and exits; stragglers of its session are killed and orphans reaped."""
    become_subreaper()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        yield proc.stdout.readline().decode().split()  # type: ignore[union-attr]
    finally:
        stop_spawner(proc)


def stop_spawner(spawner: subprocess.Popen) -> None:
    spawner.stdin.close()  # type: ignore[union-attr]
    try:
        spawner.wait(timeout=60)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(spawner.pid, signal.SIGKILL)
        spawner.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(spawner.pid, signal.SIGKILL)  # stragglers, if the spawner crashed
    while True:  # reap orphans that came to us as subreaper
        try:
            os.waitpid(-spawner.pid, 0)
        except ChildProcessError:
            break
    if spawner.stdout:
        spawner.stdout.close()


def wait_for_eof() -> None:
    """In a spawner: block until the bench closes our stdin (or dies)."""
    sys.stdin.buffer.read()


# --- measuring ------------------------------------------------------------------------------


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds, reaped descendants included
    rss: int  # peak RSS, KiB: the largest single process of the tree
    out: bytes  # stdout when captured, else b""
    code: int  # exit code (negative: killed by that signal)


def gnu_time() -> Optional[str]:
    return shutil.which("time", path="/usr/bin:/bin")


def run_child(argv: List[str], capture: Optional[bool] = None,
              ok: Optional[Collection[int]] = None, env: Optional[Dict[str, str]] = None) -> Run:
    """Wall seconds, CPU seconds (user + system), peak RSS (KiB), stdout and exit code of one run.

    ru_maxrss of a child forked from this Python process starts at this process's own RSS
    (the high-water mark survives exec), so when GNU time is present the tool is started by
    it (a small C program) and its `%M` is used; otherwise os.wait4's ru_maxrss.

    By default a Python child (argv[0] is this interpreter) has its stdout captured and must
    exit 0; anything else writes to /dev/null and may exit as it likes. `ok`: the exit codes
    that do not stop the bench."""
    timer = gnu_time()
    ours = argv[0] == sys.executable
    capture = ours if capture is None else capture
    ok = ((0,) if ours else None) if ok is None else ok
    with tempfile.NamedTemporaryFile("r") as rssfile, open(os.devnull, "wb") as null:
        full = [timer, "-f", "%M %U %S", "-o", rssfile.name, *argv] if timer else argv
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE if capture else null, stderr=null,
                                stdin=subprocess.DEVNULL, env=env)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if proc.stdout:
            proc.stdout.close()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        rss, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        if timer:  # its last line; earlier ones say e.g. "Command exited with non-zero status"
            fields = rssfile.read().splitlines()[-1].split()
            rss, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
    if ok is not None and code not in ok:
        raise SystemExit(f"{' '.join(argv)} failed with wait status {status}")
    return Run(wall, cpu, rss, out, code)


class Result:
    """The runs of one tool: wall, CPU, in-process seconds (ours only), peak RSS."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.walls: List[float] = []
        self.cpus: List[float] = []
        self.inner: List[float] = []
        self.inner_cpus: List[float] = []
        self.rss: List[int] = []
        self.info: Dict[str, int] = {}
        self.infos: List[dict] = []  # what a measuring child reported, each run

    def add(self, run: Run) -> None:
        self.walls.append(run.wall)
        self.cpus.append(run.cpu)
        self.rss.append(run.rss)

    def best(self) -> float:
        return min(self.inner or self.walls)

    def best_wall(self) -> float:
        return min(self.walls)


# --- the environment --------------------------------------------------------------------------


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def beside_python(name: str) -> Optional[str]:
    """A console script installed beside this interpreter (not a pyenv shim, which costs a
    bash and a `pyenv exec` per run), else the one on PATH."""
    path = os.path.join(sysconfig.get_path("scripts"), name)
    if os.access(path, os.X_OK) and os.path.isfile(path):
        return path
    return shutil.which(name)


def process_count() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())
