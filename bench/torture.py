"""Torture: waitchain on a sick machine (issue 15). Not a unit test: it prints figures.

    sudo python3 bench/torture.py            # full: 10,000 runs under a 1,000 forks/s churn
    sudo python3 bench/torture.py --short    # CI: 1,000 runs, 20 under the held mmap lock
    python3 bench/torture.py --runs 500 --rate 300 --no-fuse

What it does, all with real processes:

1. churn: a process (own session) forks short-lived children at --rate per second for the
   whole run; the rate reached is measured and printed.
2. targets with known answers: the demo's deadlock (wrapper → client → server ⇄ child; the
   verdict must be DEADLOCK with members {server, child}, root cause the server's wait4)
   and a healthy chain (sh waits for its sleep: no deadlock, the chain sh → sleep).
3. runs: `waitchain --all` (one run in four) and `waitchain PID` (on every target in turn),
   each in a child forked from this process (waitchain imported once; --json; stacks off
   but one run in twenty with stacks). A run is a crash if it exits 70, dies of a signal
   or prints a traceback; a hang if it has not finished within --hang seconds (killed);
   a wrong chain if its verdict, members, root cause or chain differ from the known answer,
   or if a deadlock verdict names a churn process. --all on this machine may find real
   deadlocks of other programs: those are counted apart, not as wrong.
4. D-state leftovers: this process is the subreaper of every orphan of the runs (memory
   reader, py-spy); any of ours in D state at the end is a leftover.
5. the FUSE mmap-lock scenario (root, fusepy + libfuse2): a process whose mmap lock is held
   by a /proc/PID/mem reader faulting a page of a FUSE file whose daemon never answers,
   with a thread queued in mmap(); --fuse-runs `waitchain --all` runs, then the D-state
   count; the connection is aborted through fusectl at the end, whatever happens.
6. no harm: a sample of runs under strace -f (no ptrace, no signal to a target, no open of
   a /proc/PID/fd/N link, no process_vm_writev) and the targets' context-switch counters
   and system calls, unchanged from the start to the end of the whole torture.

Exit status 0 when nothing failed; 1 when anything did (a crash, a hang, a wrong chain, a
D-state leftover, a harmful call, a target's thread that moved, the queued mmap() not named):
tests/run.sh runs --short once, so CI fails on any of them.

Standard library only (and waitchain itself, from the checkout's src/ unless installed)."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Set, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from waitchain import cli  # noqa: E402
from waitchain.demo import scenario  # noqa: E402
from waitchain.demo.harness import Processes, become_subreaper, wait_blocked, wait_child, wait_until  # noqa: E402

EXIT_INTERNAL = 70
MNT_DETACH = 2
FUSECTL = "/sys/fs/fuse/connections"

CHURN = """
import os, sys, time
rate = float(sys.argv[1])
count = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
done, began = 0, time.monotonic()
def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
while True:
    due = int((time.monotonic() - began) * rate)
    if due - done > rate / 10:  # starved of CPU: no burst of thousands of zombies to catch up
        began += (due - done - rate / 10) / rate
        due = done + int(rate / 10)
    while done < due:
        try:
            if os.fork() == 0:
                os._exit(0)
        except BlockingIOError:  # the machine's pid table is full: reap, try again later
            break
        done += 1
        if done % 100 == 0:
            os.pwrite(count, b"%12d" % done, 0)
            reap()
    reap()
    time.sleep(0.001)
"""


# --- the runs ------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.runs = 0
        self.all_runs = 0
        self.pid_runs = 0
        self.crashes: List[str] = []
        self.hangs: List[str] = []
        self.wrong: List[str] = []
        self.elsewhere = 0  # --all runs that found deadlocks of other programs too
        self.seconds: List[float] = []

    def failures(self) -> List[str]:
        return ([f"crash: {c}" for c in self.crashes] + [f"hang: {h}" for h in self.hangs]
                + [f"wrong chain: {w}" for w in self.wrong])

    def line(self) -> str:
        took = sorted(self.seconds) or [0.0]
        return (f"{self.runs} runs ({self.all_runs} --all, {self.pid_runs} PID): {len(self.crashes)} crashes, "
                f"{len(self.hangs)} hangs, {len(self.wrong)} wrong chains; run time median "
                f"{took[len(took) // 2]:.2f} s, max {took[-1]:.2f} s")


def run_forked(argv: List[str], hang: float) -> Tuple[Optional[int], str, str, float]:
    """cli.main(argv) in a forked child: (exit code or -signal, stdout, stderr, seconds);
    code None for a hang (the child is killed)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    began = time.monotonic()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        code = EXIT_INTERNAL
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            code = cli.main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: B902 - anything that escapes main is a crash
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        os._exit(code)
    os.close(out_w)
    os.close(err_w)
    chunks: Dict[int, List[bytes]] = {out_r: [], err_r: []}
    open_fds = {out_r, err_r}
    deadline = began + hang
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)
    code: Optional[int]
    if open_fds:  # a hang
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        code = None
    else:
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
    os.close(out_r)
    os.close(err_r)
    took = time.monotonic() - began
    return code, b"".join(chunks[out_r]).decode("utf-8", "replace"), b"".join(chunks[err_r]).decode("utf-8", "replace"), took


class Targets:
    """The processes with known answers, and how to check a run's JSON against them."""

    def __init__(self, demo: scenario.DemoPids, sh: int, sleeper: int) -> None:
        self.demo = demo
        self.sh = sh
        self.sleeper = sleeper
        self.deadlocked = {demo.server, demo.child}
        self.pids = [demo.wrapper, demo.client, demo.server, demo.child, sh, sleeper]

    def check_pid(self, pid: int, code: int, data: dict) -> str:
        """'' when right, else what is wrong."""
        if pid in (self.sh, self.sleeper):
            if code != 0 or data.get("deadlock"):
                return f"healthy chain from {pid}: exit {code}, deadlock {data.get('deadlock')}"
            paths = [c["path"] for c in data.get("chains", [])]
            if [self.sh, self.sleeper] not in paths and pid == self.sh:
                return f"chain from sh {self.sh}: {paths}"
            return ""
        deadlocks = [v for v in data.get("verdicts", []) if v.get("class") == "deadlock"]
        if code != 1 or len(deadlocks) != 1 or set(deadlocks[0].get("members", [])) != self.deadlocked:
            return f"demo from {pid}: exit {code}, deadlocks {[v.get('members') for v in deadlocks]}"
        root = (data.get("root_cause") or {}).get("pid")
        if root != self.demo.server:
            return f"demo from {pid}: root cause {root}, not the server {self.demo.server}"
        return ""

    def check_all(self, code: int, data: dict, churn: int, tally: Tally) -> str:
        deadlocks = [v for v in data.get("verdicts", []) if v.get("class") == "deadlock"]
        ours = [v for v in deadlocks if set(v.get("members", [])) == self.deadlocked]
        if code != 1 or len(ours) != 1:
            return f"--all: exit {code}, deadlocks {[v.get('members') for v in deadlocks]}"
        parents = {p["pid"]: p.get("ppid") for p in data.get("processes", [])}
        for verdict in deadlocks:
            if any(parents.get(m) == churn or m == churn for m in verdict.get("members", [])):
                return f"--all: a deadlock names a churn process: {verdict.get('members')}"
        if len(deadlocks) > 1:
            tally.elsewhere += 1
        return ""


def one_run(i: int, targets: Targets, churn: int, tally: Tally, hang: float) -> None:
    stacks = [] if i % 20 == 7 else ["--no-stacks"]
    if i % 4 == 0:
        argv, pid = ["--all", "--json"] + stacks, None
        tally.all_runs += 1
    else:
        pid = targets.pids[i % len(targets.pids)]
        argv = [str(pid), "--json"] + stacks
        tally.pid_runs += 1
    tally.runs += 1
    code, out, err, took = run_forked(argv, hang)
    tally.seconds.append(took)
    what = f"run {i}: waitchain {' '.join(argv)}"
    if code is None:
        tally.hangs.append(f"{what}: no answer in {hang:g} s")
        return
    if code == EXIT_INTERNAL or code < 0 or "Traceback" in err:
        tally.crashes.append(f"{what}: exit {code}: {err.strip()[-300:]}")
        return
    try:
        data = json.loads(out)
    except ValueError:
        tally.crashes.append(f"{what}: exit {code}, no JSON: {err.strip()[-300:]}")
        return
    wrong = targets.check_all(code, data, churn, tally) if pid is None else targets.check_pid(pid, code, data)
    if wrong:
        tally.wrong.append(f"{what}: {wrong}")


# --- leftovers, counters, harm ---------------------------------------------------------------------


def state_of(pid: int, tid: Optional[int] = None) -> str:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        with open(path) as f:
            return f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


def our_children() -> List[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == me:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def reap_orphans(keep: Set[int]) -> None:
    """Reap exited children that are not ours to keep (adopted helpers of the runs)."""
    for pid in our_children():
        if pid not in keep and state_of(pid) in ("Z", "X"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def d_state_leftovers(keep: Set[int]) -> List[int]:
    return [pid for pid in our_children() if pid not in keep and state_of(pid) == "D"]


def counters(pids: List[int]) -> Dict[Tuple[int, int], Tuple[str, str]]:
    """Per thread: (voluntary+nonvoluntary context switches, the syscall line)."""
    found = {}
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    switches = "/".join(line.split()[1] for line in f if "ctxt_switches" in line)
                with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                    call = f.read().split()[0]
            except OSError:
                continue
            found[(pid, int(tid))] = (switches, call)
    return found


HARM = re.compile(r"^(\d+)\s+(ptrace|kill|tkill|tgkill|rt_sigqueueinfo|rt_tgsigqueueinfo|pidfd_send_signal|"
                  r"process_vm_writev|openat|open)\((.*)$")


TRACE_TIMEOUT = 60


def strace_sample(argvs: List[List[str]], targets: Set[int], work: str) -> Tuple[int, List[str]]:
    """Run each argv under strace -f; (runs traced, harms seen)."""
    strace = shutil.which("strace")
    if strace is None:
        return 0, ["strace is not installed: the no-harm trace was not made"]
    harms = []
    for n, argv in enumerate(argvs):
        log = os.path.join(work, f"trace-{n}.log")
        try:
            subprocess.run([strace, "-f", "-qq", "-o", log, "-e",
                            "trace=ptrace,kill,tkill,tgkill,rt_sigqueueinfo,rt_tgsigqueueinfo,pidfd_send_signal,"
                            "process_vm_writev,openat,open", sys.executable, "-m", "waitchain", *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TRACE_TIMEOUT, env=_env())
        except subprocess.TimeoutExpired:  # strace -f waits for every traced process: a helper in D too
            harms.append(f"{' '.join(argv)}: the traced run did not end within {TRACE_TIMEOUT} s")
        with open(log, errors="replace") as f:
            for line in f:
                m = HARM.match(line)
                if not m:
                    continue
                call, rest = m.group(2), m.group(3)
                if call in ("ptrace", "process_vm_writev"):
                    harms.append(f"{' '.join(argv)}: {line.strip()}")
                elif call in ("openat", "open") and re.search(r'"/proc/\d+/(task/\d+/)?fd/\d+"', rest):
                    harms.append(f"{' '.join(argv)}: {line.strip()}")
                elif call not in ("openat", "open"):
                    first = rest.split(",")[0].strip()
                    tgt = int(first) if first.lstrip("-").isdigit() else None
                    if call == "tgkill":
                        tgt = int(rest.split(",")[0])
                    if tgt is not None and abs(tgt) in targets:
                        harms.append(f"{' '.join(argv)}: a signal to a target: {line.strip()}")
    return len(argvs), harms


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# --- the FUSE mmap-lock scenario ---------------------------------------------------------------------

FUSE_DAEMON = """
import errno, os, stat, sys, time
from fuse import FUSE, Operations, FuseOSError
class Stuck(Operations):
    def init(self, path):
        print("mounted", flush=True)
    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        if path == "/stuck":
            return dict(st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=8192)
        raise FuseOSError(errno.ENOENT)
    def readdir(self, path, fh):
        return [".", "..", "stuck"]
    def open(self, path, flags):
        return 0
    def read(self, path, size, offset, fh):
        print("read", flush=True)
        while True:
            time.sleep(3600)
FUSE(Stuck(), sys.argv[1], foreground=True, ro=True)
"""
VICTIM = """
import ctypes, mmap, signal, sys, threading
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 8192, prot=mmap.PROT_READ)
with open("/proc/self/maps") as maps:
    start = next(l.split("-")[0] for l in maps if l.rstrip().endswith(sys.argv[1]))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
def mapper():
    signal.sigwait([signal.SIGUSR1])
    mmap.mmap(-1, 4096)
class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
def nap():  # nanosleep: its timespec is read from memory (process_vm_readv)
    while True:
        ctypes.CDLL(None).nanosleep(ctypes.byref(timespec(3600, 0)), None)
threading.Thread(target=mapper).start()
threading.Thread(target=nap).start()
print(start, flush=True)
threading.Event().wait()
"""
MEM_READER = """
import os, sys
fd = os.open("/proc/%s/mem" % sys.argv[1], os.O_RDONLY)
print("reading", flush=True)
os.pread(fd, 16, int(sys.argv[2], 16))
"""


def fuse_unavailable() -> str:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        return "needs root and /dev/fuse"
    try:
        import fuse  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"fusepy unusable: {exc}"
    return ""


def abort_fuse(connection: int) -> None:
    if not os.path.exists(f"{FUSECTL}/{connection}") and os.path.isdir(FUSECTL) and not os.path.ismount(FUSECTL):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with contextlib.suppress(OSError):
        with open(f"{FUSECTL}/{connection}/abort", "w") as f:
            f.write("1")


def fuse_scenario(procs: Processes, runs: int, hang: float, work: str) -> Tuple[List[str], List[str]]:
    """The held-mmap-lock scenario: (lines to print, failures)."""
    why = fuse_unavailable()
    if why:
        return [f"FUSE mmap-lock scenario: skipped ({why})"], []
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    daemon = procs.spawn([sys.executable, "-c", FUSE_DAEMON, mnt], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    connection = None
    try:
        assert daemon.stdout is not None
        if daemon.stdout.readline().strip() != b"mounted":
            return [], ["FUSE mmap-lock scenario: the FUSE daemon did not mount"]
        st = os.stat(mnt)
        connection = os.major(st.st_dev) << 20 | os.minor(st.st_dev)
        victim = procs.spawn([sys.executable, "-c", VICTIM, os.path.join(mnt, "stuck")], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        assert victim.stdout is not None
        start = victim.stdout.readline().decode().strip()
        reader = procs.spawn([sys.executable, "-c", MEM_READER, str(victim.pid), start], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        assert reader.stdout is not None
        reader.stdout.readline()
        daemon.stdout.readline()  # "read": the page's read reached the daemon
        wait_until(lambda: state_of(reader.pid) == "D", "the /proc/PID/mem reader holds the lock")
        os.kill(victim.pid, signal.SIGUSR1)
        wait_until(lambda: any(state_of(victim.pid, int(t)) == "D" for t in os.listdir(f"/proc/{victim.pid}/task")),
                   "a thread of the victim is queued in mmap")
        keep = {daemon.pid, victim.pid, reader.pid}
        tally = Tally()
        named = 0
        for n in range(runs):
            every = n % 2 == 0  # --all and `waitchain VICTIM` in turn
            code, out, err, took = run_forked(["--all", "--json"] if every else [str(victim.pid), "--json"], hang)
            tally.runs += 1
            tally.all_runs += every
            tally.pid_runs += not every
            tally.seconds.append(took)
            if code is None:
                tally.hangs.append("--all under the held lock")
            elif code == EXIT_INTERNAL or code < 0 or "Traceback" in err:
                tally.crashes.append(err.strip()[-300:])
            else:
                with contextlib.suppress(ValueError):
                    data = json.loads(out)
                    named += not every and any(e["kind"] == "mmap-lock" and e["from"]["pid"] == victim.pid
                                               and e["to"]["pid"] == reader.pid for e in data["edges"])
            reap_orphans(keep | set(procs_pids(procs)))
        time.sleep(0.3)
        reap_orphans(keep | set(procs_pids(procs)))
        left = d_state_leftovers(keep | set(procs_pids(procs)))
        still_held = any(state_of(victim.pid, int(t)) == "D" for t in os.listdir(f"/proc/{victim.pid}/task"))
        _, harms = strace_sample([[str(victim.pid), "--json", "--no-stacks"], ["--all", "--json", "--no-stacks"]],
                                 {victim.pid, reader.pid, daemon.pid}, work)
        failures = tally.failures() + [f"FUSE: {pid} of ours left in D state" for pid in left]
        failures += [f"FUSE: harmful call {h}" for h in harms]
        failures += [] if named == tally.pid_runs else [f"FUSE: the queued mmap() named in {named} of {tally.pid_runs} runs"]
        return [f"FUSE mmap-lock scenario: {tally.line()}",
                f"  the queued mmap() named waiting for the reader's mmap lock in {named} of {tally.pid_runs} "
                f"`waitchain {victim.pid}` runs; D-state processes of ours after the runs: "
                f"{len(left)}; the lock was held all along: {still_held}",
                f"  no-harm trace under the held lock: {len(harms)} harmful calls"] + [f"    {h}" for h in harms[:5]] + \
               [f"    {c}" for c in (tally.crashes + tally.hangs)[:5]], failures
    finally:
        if connection is not None:
            abort_fuse(connection)
        with contextlib.suppress(OSError):
            os.kill(daemon.pid, signal.SIGKILL)
        ctypes.CDLL(None, use_errno=True).umount2(mnt.encode(), MNT_DETACH)


def procs_pids(procs: Processes) -> List[int]:
    return [p.pid for p in procs.started] + procs.descendants()


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="the CI mode: 1,000 runs, 20 under the held mmap lock")
    p.add_argument("--runs", type=int, help="runs under churn (default 10,000; 1,000 with --short)")
    p.add_argument("--rate", type=float, default=1000.0, help="forks per second of the churn (default 1000)")
    p.add_argument("--fuse-runs", type=int, help="--all runs under the held mmap lock (default 200; 20 with --short)")
    p.add_argument("--no-fuse", action="store_true", help="leave out the FUSE mmap-lock scenario")
    p.add_argument("--hang", type=float, default=60.0, help="seconds after which a run is a hang (default 60)")
    p.add_argument("--traced", type=int, help="runs traced with strace for the no-harm check (default 50; 10 with --short)")
    args = p.parse_args()
    runs = args.runs if args.runs is not None else (1000 if args.short else 10000)
    fuse_runs = args.fuse_runs if args.fuse_runs is not None else (20 if args.short else 200)
    traced = args.traced if args.traced is not None else (10 if args.short else 50)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    become_subreaper()
    began = time.monotonic()
    work = tempfile.mkdtemp(prefix="waitchain-torture-")
    failures: List[str] = []
    lines = [f"waitchain torture ({'short' if args.short else 'full'}): {runs} runs under a "
             f"{args.rate:g} forks/s churn, {fuse_runs} under a held mmap lock; {os.cpu_count()} CPUs, "
             f"kernel {os.uname().release}, Python {sys.version.split()[0]}"]
    try:
        with Processes() as procs:
            demo = scenario.start(procs)
            sh = procs.spawn(["sh", "-c", "sleep 100000; exit 0"])
            sleeper = wait_child(sh.pid)
            wait_blocked(sleeper, "clock_nanosleep", "nanosleep")
            wait_blocked(sh.pid, "wait4")
            targets = Targets(demo, sh.pid, sleeper)
            before = counters(targets.pids)
            counted = os.path.join(work, "forks")
            churn = procs.spawn([sys.executable, "-c", CHURN, str(args.rate), counted])
            wait_until(lambda: _forks(counted) >= 100, "the churn has forked 100")
            churn_began, forks_before = time.monotonic(), _forks(counted)
            keep = set(procs_pids(procs))
            tally = Tally()
            for i in range(runs):
                one_run(i, targets, churn.pid, tally, args.hang)
                if i % 20 == 0:
                    reap_orphans(keep)
            forks = _forks(counted) - forks_before
            rate = forks / max(time.monotonic() - churn_began, 1e-9)
            time.sleep(0.3)
            reap_orphans(keep)
            left = d_state_leftovers(keep)
            lines.append(f"churn: {forks} forks in {time.monotonic() - churn_began:.0f} s, {rate:.0f} forks/s reached")
            lines.append(f"under churn: {tally.line()}")
            lines.append(f"  --all runs that also found deadlocks of other programs on this machine: {tally.elsewhere}")
            lines.append(f"  D-state processes of ours after the runs: {len(left)}")
            for what in (tally.crashes + tally.hangs + tally.wrong)[:10]:
                lines.append(f"    {what}")
            churn.kill()
            failures += tally.failures() + [f"{pid} of ours left in D state" for pid in left]
            sample = [[str(pid), "--json", "--no-stacks"] for pid in targets.pids]
            sample += [["--all", "--json"]] * max(0, traced - len(sample))
            count, harms = strace_sample(sample[:traced], set(targets.pids), work)
            after = counters(targets.pids)
            moved = sorted(k for k in before if after.get(k) != before[k])
            lines.append(f"no harm: {count} runs traced with strace -f: {len(harms)} ptrace calls, signals to a target, "
                         f"/proc/PID/fd/N opens or process_vm_writev; the targets' {len(before)} threads: "
                         f"{len(moved)} with a context switch or system call changed over the whole torture")
            lines += [f"    {h}" for h in harms[:5]] + [f"    moved: {k} {before[k]} -> {after.get(k)}" for k in moved[:5]]
            failures += [f"harmful call: {h}" for h in harms] + [f"target thread moved: {k}" for k in moved]
            if not args.no_fuse:
                fuse_lines, fuse_failures = fuse_scenario(procs, fuse_runs, args.hang, work)
                lines += fuse_lines
                failures += fuse_failures
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"took {time.monotonic() - began:.0f} s")
    lines.append(f"FAILED: {len(failures)} failures" if failures else "passed: no failure")
    print("\n".join(lines))
    return 1 if failures else 0


def _forks(path: str) -> int:
    """How many children the churn has forked (it writes the count every 100)."""
    try:
        with open(path, "rb") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
