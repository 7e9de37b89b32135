"""waitchain watch, for real: started first, it watches a program (and its descendants) that
works for a few rounds with a child and then hangs (it waits for the child before reading the
child's output, which has filled the pipe). Exactly one report within threshold + interval,
with the chain and the root-cause line; not again while it lasts; a new one when it clears and
the program hangs again; none for an idle server the program runs all along. The report files
are 0600 in a 0700 directory; the metrics file parses as Prometheus text; --exec gets the
report's path; SIGTERM ends it with exit code 0."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from typing import Dict, List

import pytest

from waitchain.demo.harness import wait_blocked, wait_until
from waitchain.snapshot import Snapshot

parser = pytest.importorskip("prometheus_client.parser")

THRESHOLD, INTERVAL = 1.0, 0.2
SLACK = 5.0  # one scan and the report's stacks, on a loaded two-core machine

PROGRAM = """
import subprocess
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
listener = socket.socket(socket.AF_UNIX)
listener.bind(b"\\0waitchain-watch-test-%d" % os.getpid())
listener.listen()
idle = os.fork()
if idle == 0:
    listener.accept()  # an idle server, all along
    os._exit(0)
CHILD = "import sys\\nfor i in range(3):\\n    print(i, flush=True)\\nsys.stdout.write('x' * 200000)\\n"
ready("started", idle)
while True:
    signal.sigwait({signal.SIGUSR1})
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE)
    for i in range(3):
        p.stdout.readline()  # the rounds that work
    ready("hanging", p.pid)
    p.wait()  # HANG: its output fills the pipe first
    p.stdout.close()
    ready("cleared", p.pid)
"""

HOOK = """
import sys
with open(sys.argv[1], "a") as log:
    log.write(sys.argv[2] + "\\n")
"""


def _metrics(path: str) -> Dict[str, float]:
    """name{labels} → value, through prometheus_client's parser (it raises on bad syntax)."""
    with open(path) as f:
        text = f.read()
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            found[s.name + (f"{{{labels}}}" if labels else "")] = s.value
    return found


def _reports(out: str, kind: str = "*") -> List[str]:
    return sorted(glob.glob(os.path.join(out, f"waitchain-*-{kind}-*.json")))


def _scans(path: str) -> float:
    try:
        return _metrics(path).get("waitchain_scans_total", 0.0)
    except (OSError, ValueError):
        return 0.0


def _after_scans(path: str, count: int) -> None:
    """Until `count` more scans have ended (each rewrites the metrics file)."""
    target = _scans(path) + count
    wait_until(lambda: _scans(path) >= target, f"{count} more scans")


def _start(run_py, tmp_path):
    """PROGRAM from a file of its own, as an application runs (its lines can be read)."""
    path = tmp_path / "hangs.py"
    path.write_text(PROGRAM)
    return run_py(f"exec(compile(open({str(path)!r}).read(), {str(path)!r}, 'exec'))"), str(path)


def test_watch_reports_a_hang_once_and_again_when_it_comes_back(run_py, procs, tmp_path) -> None:
    program, source = _start(run_py, tmp_path)
    (_, _, idle), = program.ready()
    wait_blocked(int(idle), "accept", "accept4")
    out = str(tmp_path / "reports")
    metrics = str(tmp_path / "waitchain.prom")
    hook_log = tmp_path / "hook.log"
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    log = open(tmp_path / "watch.log", "wb")
    watch = procs.spawn([sys.executable, "-m", "waitchain", "watch", "--pid", str(program.pid),
                         "--interval", str(INTERVAL), "--threshold", str(THRESHOLD), "--out", out,
                         "--metrics", metrics, "--exec", f"{sys.executable} {hook} {hook_log}"],
                        stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    _after_scans(metrics, 2)  # it watches before anything hangs
    assert _reports(out) == []

    first = _hang(program)
    started = time.monotonic()
    wait_until(lambda: bool(_reports(out, "deadlock")), "a deadlock report", timeout=THRESHOLD + INTERVAL + 30)
    assert time.monotonic() - started <= THRESHOLD + INTERVAL + SLACK

    (report,) = _reports(out, "deadlock")
    _check_report(report, program.pid, first, source)
    _check_files(out)
    wait_until(lambda: hook_log.exists() and hook_log.read_text().split() == [report], "the --exec hook ran")
    _after_scans(metrics, 3)
    assert _reports(out, "deadlock") == [report]  # not again while it lasts
    values = _metrics(metrics)
    assert values["waitchain_deadlocks"] == 1
    assert values['waitchain_blocked_threads{kind="deadlock"}'] >= 2
    assert values["waitchain_longest_blocked_seconds"] >= THRESHOLD
    assert values["waitchain_reports_total"] == len(_reports(out))
    assert values["waitchain_scan_seconds"] > 0

    os.kill(first, signal.SIGKILL)  # it clears
    assert program.ready()[0][:2] == [str(program.pid), "cleared"]
    _after_scans(metrics, 3)  # two scans in a row that do not find it: it cleared
    assert _metrics(metrics)["waitchain_deadlocks"] == 0
    second = _hang(program)
    wait_until(lambda: len(_reports(out, "deadlock")) == 2, "a second deadlock report", timeout=THRESHOLD + INTERVAL + 30)
    _check_report(_reports(out, "deadlock")[-1], program.pid, second, source)

    for path in _reports(out):  # the idle server is in no report
        data = json.load(open(path))
        assert not [v for v in data["verdicts"] if int(idle) in v["members"] + v.get("victims", [])]
    assert len(_reports(out)) == 2, _reports(out)

    watch.send_signal(signal.SIGTERM)
    assert watch.wait(timeout=30) == 0
    text = (tmp_path / "watch.log").read_text()
    assert "Traceback" not in text and text.rstrip().endswith("waitchain watch: stopped")
    assert sum("DEADLOCK" in line and "report " in line for line in text.splitlines()) == 2, text
    os.kill(second, signal.SIGKILL)


def _hang(program) -> int:
    """Let the program run its rounds and hang; the child's pid."""
    os.kill(program.pid, signal.SIGUSR1)
    (_, word, child), = program.ready()
    assert word == "hanging"
    wait_blocked(program.pid, "wait4")
    wait_blocked(int(child), "write")
    return int(child)


def _check_report(path: str, parent: int, child: int, source: str) -> None:
    data = json.load(open(path))
    assert data["schema"].startswith("waitchain/1")
    (verdict,) = data["verdicts"]
    assert verdict["class"] == "deadlock" and set(verdict["members"]) == {parent, child}
    assert [c["path"] for c in data["chains"]] == [[parent, child]]
    assert data["root_cause"]["pid"] == parent and data["root_cause"]["syscall"] == "wait4"
    if shutil.which("py-spy") or os.path.exists(os.path.join(os.path.dirname(sys.executable), "py-spy")):
        line = PROGRAM.splitlines().index("    p.wait()  # HANG: its output fills the pipe first") + 1
        location = data["root_cause"]["location"]
        assert (location["file"], location["line"]) == (source, line)
        assert location["code"].startswith("p.wait()")
    base = path[:-len(".json")]
    assert "DEADLOCK" in open(base + ".txt").read()
    assert "DEADLOCK" in open(base + ".html").read()


def _check_files(out: str) -> None:
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    names = os.listdir(out)
    assert names and all(stat.S_IMODE(os.lstat(os.path.join(out, n)).st_mode) == 0o600 for n in names)


def test_watch_once_reports_an_existing_hang_once_across_runs(run_py, procs, tmp_path) -> None:
    program, _ = _start(run_py, tmp_path)
    program.ready()
    child = _hang(program)
    wait_until(lambda: _blocked_for(program.pid, child) >= 2.0, "the hang is 2 s old")
    out = str(tmp_path / "reports")
    argv = [sys.executable, "-m", "waitchain", "watch", "--once", "--pid", str(program.pid),
            "--threshold", "0.5", "--out", out, "--no-stacks"]

    for _ in range(2):
        run = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert run.returncode == 0, run.stderr.decode()

    (report,) = _reports(out, "deadlock")
    _check_report_members(report, {program.pid, child})
    os.kill(child, signal.SIGKILL)


def _blocked_for(*pids: int) -> float:
    """How long the main threads of pids have all been blocked, as waitchain measures it."""
    with Snapshot.scan(pids=list(pids)) as snap:
        return min(snap.idle_seconds(p, p) or 0.0 for p in pids)


def _check_report_members(path: str, pids: set) -> None:
    (verdict,) = json.load(open(path))["verdicts"]
    assert set(verdict["members"]) == pids


def test_watch_refuses_a_symlinked_report_directory(tmp_path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    run = subprocess.run([sys.executable, "-m", "waitchain", "watch", "--once", "--out", str(link)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert run.returncode == 2 and b"symlink" in run.stderr
    assert os.listdir(real) == []


def test_sigint_stops_it_with_exit_0(procs, tmp_path) -> None:
    """Metrics only (no --out), a --unit no process is in: every scan finds nothing and fails
    nothing; SIGINT ends it with 0."""
    metrics = str(tmp_path / "waitchain.prom")
    log = open(tmp_path / "watch.log", "wb")
    watch = procs.spawn([sys.executable, "-m", "waitchain", "watch", "--unit", "no-such-unit-here",
                         "--interval", "0.1", "--metrics", metrics], stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    _after_scans(metrics, 2)
    values = _metrics(metrics)
    assert values["waitchain_deadlocks"] == 0 and values["waitchain_reports_total"] == 0
    assert values["waitchain_scan_errors_total"] == 0
    watch.send_signal(signal.SIGINT)
    assert watch.wait(timeout=30) == 0
    text = (tmp_path / "watch.log").read_text()
    assert "watching unit no-such-unit-here" in text and text.rstrip().endswith("stopped")
    assert "Traceback" not in text
