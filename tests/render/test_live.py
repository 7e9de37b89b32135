"""Live: the real demo deadlock drawn by Graphviz, and blocked-for read from /proc."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from waitchain.procfs.reader import ProcFS
from waitchain.procfs.sched import parse_exec_start, read_sched_now
from waitchain.snapshot import Snapshot


def test_demo_dot_has_the_red_cycle() -> None:
    done = subprocess.run([sys.executable, "-m", "waitchain", "demo", "--format", "dot", "--no-stacks"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 1, done.stderr.decode()
    out = done.stdout.decode()
    assert out.startswith("digraph waitchain {")
    red = [l for l in out.splitlines() if " -> " in l and 'color="#c62828"' in l]
    assert len(red) == 2, out  # server -> dmesg (wait4) and dmesg -> server (full pipe)
    kinds = sorted(re.search(r'label="(\w+)', l).group(1) for l in red)
    assert kinds == ["child", "pipe"]


def test_demo_text_shows_blocked_for_and_verdict() -> None:
    done = subprocess.run([sys.executable, "-m", "waitchain", "demo", "--no-stacks", "--width", "200"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = done.stdout.decode()
    assert done.returncode == 1, done.stderr.decode()
    assert "BLOCKED" in out and re.search(r"\d(\.\d)?s\s+waits for the writer", out)
    assert "root cause:" in out and "do now:" in out and "p.communicate()" in out


def test_parse_exec_start() -> None:
    text = "python3 (1234, #threads: 1)\n---\nse.exec_start                                :        725713.608879\n"
    assert parse_exec_start(text) == pytest.approx(725713.608879)
    assert parse_exec_start("nothing here\n") is None


def test_idle_seconds_of_a_sleeper(run_py, wait_sleeping) -> None:
    program = run_py("""
        ready("sleeping")
        sleep_forever()
        """)
    program.ready()
    wait_sleeping(program.pid)
    if read_sched_now(ProcFS()) is None:
        pytest.skip("this kernel has no /proc/PID/sched (CONFIG_SCHED_DEBUG)")
    idle = Snapshot.scan(pids=[program.pid]).idle_seconds(program.pid, program.pid)
    assert idle is not None and 0 <= idle < 60
