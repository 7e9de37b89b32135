"""Numbers that cannot be right are not shown (issue 15, item 3): a thread's se.exec_start
of 0 (a task that migrated while asleep) or older than the thread itself made "blocked for"
the machine's uptime; a pid argument written inside a pid namespace (wait4's) was shown as
if it were a host pid."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import pytest

from waitchain.demo.harness import wait_blocked, wait_child, wait_until
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.sched import age_at, plausible_idle, read_cpu_and_start, read_sched_now, read_uptime
from waitchain.snapshot import Snapshot

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a pid namespace needs root")
needs_unshare = pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) missing")


def test_plausible_idle_rules() -> None:
    assert plausible_idle(1_000.0, 61_000.0, 120.0) == 60.0
    assert plausible_idle(0.0, 61_000.0, 120.0) is None  # exec_start 0: the kernel lost it
    assert plausible_idle(1_000.0, 601_000.0, 120.0) is None  # idle 600 s in a 120 s life
    assert plausible_idle(1_000.0, 121_500.0, 120.0) == 120.5  # within the clocks' slack
    assert plausible_idle(63_000.0, 61_000.0, 120.0) is None  # ran two seconds in the future
    assert plausible_idle(61_000.5, 61_000.0, 120.0) == 0.0  # the two reads' jitter
    assert plausible_idle(1_000.0, 61_000.0, None) == 60.0  # age unknown: not checked
    assert plausible_idle(None, 61_000.0, 120.0) is None


def _age(pid: int) -> Optional[float]:
    """Seconds since pid's main thread started, as idle_seconds works it out."""
    return age_at(read_uptime(ProcFS()), read_cpu_and_start(ProcFS(), pid, pid)[1])


def _recorded(pid: int, root: Path, exec_start: str = "") -> ProcFS:
    """A copy of what idle_seconds reads for pid's main thread (and our scheduler clock),
    exec_start replaced when given: the kernel's numbers, as on the machine of the report."""
    task = root / str(pid) / "task" / str(pid)
    task.mkdir(parents=True)
    (task / "stat").write_text(Path(f"/proc/{pid}/task/{pid}/stat").read_text())
    sched = Path(f"/proc/{pid}/task/{pid}/sched").read_text()
    if exec_start:
        sched = "\n".join(f"se.exec_start                                :{exec_start:>20}"
                          if line.startswith("se.exec_start") else line for line in sched.splitlines())
    (task / "sched").write_text(sched)
    now = read_sched_now(ProcFS(), read_cpu_and_start(ProcFS(), pid, pid)[0])  # on the clock of its CPU
    (root / "thread-self").mkdir()
    (root / "thread-self" / "sched").write_text(f"se.exec_start                                :{now:20.6f}\n")
    (root / "uptime").write_text(Path("/proc/uptime").read_text())
    return ProcFS(str(root))


def test_exec_start_zero_or_older_than_the_thread_is_unknown(procs, tmp_path) -> None:
    if not os.path.exists(f"/proc/{os.getpid()}/sched"):
        pytest.skip("no /proc/PID/sched (CONFIG_SCHED_DEBUG)")
    sleeper = procs.spawn(["sleep", "1000"])
    wait_blocked(sleeper.pid, "clock_nanosleep", "nanosleep")
    time.sleep(0.3)
    age = _age(sleeper.pid)
    assert age is not None and 0.2 < age < 60

    healthy = Snapshot(_recorded(sleeper.pid, tmp_path / "a"), {}, [])
    idle = healthy.idle_seconds(sleeper.pid, sleeper.pid)
    assert idle is not None and 0.2 < idle <= age + 1  # the look-alike: a real, plausible value
    zero = Snapshot(_recorded(sleeper.pid, tmp_path / "b", "0.000000"), {}, [])
    assert zero.idle_seconds(sleeper.pid, sleeper.pid) is None  # was the machine's uptime
    older = Snapshot(_recorded(sleeper.pid, tmp_path / "c", "1.000000"), {}, [])  # 1 ms after boot
    assert older.idle_seconds(sleeper.pid, sleeper.pid) is None  # before the thread existed


class ReadsCounted(ProcFS):
    """Counts the single-record files read, by name (a thread's stat, sched; uptime)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter = Counter()

    def read_one(self, pid: Optional[int], *parts: str) -> str:
        self.reads[parts[-1]] += 1
        return super().read_one(pid, *parts)


def test_idle_seconds_read_each_thread_stat_once_and_the_clocks_once_per_cpu(procs) -> None:
    """At 1,000 blocked processes --all asked each thread's stat twice (CPU, then start time)
    and /proc/uptime once per thread: now one stat and one sched per thread, and each CPU's
    scheduler clock read with the boot clock, once."""
    sleepers = [procs.spawn(["sleep", "1000"]) for _ in range(3)]
    for sleeper in sleepers:
        wait_blocked(sleeper.pid, "clock_nanosleep", "nanosleep")
    fs = ReadsCounted()
    snap = Snapshot.scan(fs, pids=[s.pid for s in sleepers])
    idle = [snap.idle_seconds(s.pid, s.pid) for s in sleepers]
    assert all(i is not None and i >= 0 for i in idle)
    cpus = {read_cpu_and_start(ProcFS(), s.pid, s.pid)[0] for s in sleepers}
    assert fs.reads["uptime"] == len(cpus) and fs.reads["sched"] == len(sleepers) + len(cpus)
    assert fs.reads["stat"] == len(sleepers)  # the scan reads its own through /proc/PID (read_at)


def test_live_blocked_for_is_never_longer_than_the_process_has_lived(procs, run_cli) -> None:
    import json

    sleeper = procs.spawn(["sleep", "1000"])
    wait_blocked(sleeper.pid, "clock_nanosleep", "nanosleep")
    data = json.loads(run_cli(str(sleeper.pid), "--json", "--no-stacks").out)
    (thread,) = [t for p in data["processes"] if p["pid"] == sleeper.pid for t in p["threads"]]
    age = _age(sleeper.pid)
    assert thread["blocked_for"] is not None and age is not None and thread["blocked_for"] <= age + 1


NS_WAITER = """
import os, sys, time
child = os.fork()
if child == 0:
    time.sleep(1000)
    os._exit(0)
print(child, flush=True)
os.waitpid(child, 0)
"""


@needs_root
@needs_unshare
def test_a_wait4_pid_inside_a_pid_namespace_is_shown_with_its_host_pid(procs, run_cli) -> None:
    import json

    unshare = procs.spawn(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", NS_WAITER],
                          stdout=subprocess.PIPE)
    local = int(unshare.stdout.readline())  # the child's pid inside the namespace
    waiter = wait_child(unshare.pid)  # the namespace's init, as the host sees it
    wait_blocked(waiter, "wait4")
    child = wait_child(waiter)
    wait_until(lambda: child != local, "the namespace's pids differ from the host's")  # always: they start at 1

    data = json.loads(run_cli(str(waiter), "--json", "--no-stacks").out)
    (thread,) = [t for p in data["processes"] if p["pid"] == waiter for t in p["threads"]]
    assert thread["waits"] == f"wait4({local} [host pid {child}])"
    (edge,) = [e for e in data["edges"] if e["from"]["pid"] == waiter]
    assert edge["to"]["pid"] == child and edge["kind"] == "child"


def test_each_cpu_has_its_own_scheduler_clock() -> None:
    """Why the idle time is read against the clock of the thread's own CPU: the per-CPU
    clocks (rq clock_task) drift apart; measured 2.2 s between two CPUs of this machine."""
    cpus = sorted(os.sched_getaffinity(0))
    fs = ProcFS()
    for cpu in cpus[:4]:
        before = read_sched_now(fs, cpu)
        after = read_sched_now(fs, cpu)
        assert before is not None and after is not None and 0 <= after - before < 1000  # ms, one clock
    assert os.sched_getaffinity(0) == set(cpus)  # our affinity is given back
