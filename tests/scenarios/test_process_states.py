"""Processes in states that are no system call: a kernel thread ("a kernel thread, not a user
process": no fds, no call decoded), a zombie ("exited, not reaped by its parent PID": the chain
goes on to the parent and the parent's own wait), a main thread that exited while the others
go on (no zombie), a running process ("busy (on CPU)", never `running()`), a process stopped
by a signal (whose sender the kernel does not record: said so) and one stopped under ptrace
(it waits for its tracer: gdb at a prompt nobody types into)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from typing import Any, Dict, Optional, Tuple

import pytest
from scenario_helpers import edges_from, only_chain, only_thread, threads_of
from test_terminals import person  # noqa: F401  (a fixture: a terminal nobody types into)

from waitchain.demo.harness import children, wait_blocked, wait_until
from waitchain.errors import WaitchainError
from waitchain.procfs import syscalls
from waitchain.procfs.process import parse_stat
from waitchain.procfs.reader import ProcFS

PF_KTHREAD = 0x00200000
WORDING_BUGS = ("running()", "not in a system call ()", "?()", "entrys", " in ()")


def diagnose(run_cli, pid: int) -> Tuple[Dict[str, Any], int, str]:
    """JSON, exit code, and the text output (checked for wording bugs)."""
    result = run_cli(str(pid), "--json", "--no-stacks")
    text = run_cli(str(pid), "--no-stacks")
    assert text.code == result.code
    for bug in WORDING_BUGS:
        assert bug not in text.out and bug not in result.out, (bug, text.out)
    return json.loads(result.out), result.code, text.out


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return parse_stat(f.read()).state


def state_now(pid: int) -> str:
    try:
        return state(pid)
    except OSError:
        return "gone"


def kernel_thread() -> Optional[int]:
    for pid in ProcFS().pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = parse_stat(f.read())
        except (OSError, ValueError, WaitchainError):
            continue
        if stat.flags & PF_KTHREAD and stat.state in ("S", "I"):
            return pid
    return None


def test_a_kernel_thread_is_not_a_user_process(run_cli) -> None:
    pid = kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread is visible here (a pid namespace without them)")
    data, code, text = diagnose(run_cli, pid)
    assert code == 0, data
    thread = only_thread(data, pid)
    assert (thread["waits"], thread["syscall"], thread["wait_syscall"]) == ("kernel thread", None, "")
    assert (thread["end"]["kind"], thread["end"]["reason"]) == ("kernel", "kernel-thread")
    assert thread["end"]["detail"].startswith("a kernel thread, not a user process: no fds, no system calls")
    assert data["edges"] == [] and only_chain(data)["path"] == [pid]
    assert data["verdicts"][0]["advice"] == "kernel-thread" and data["deadlock"] is False
    assert "KERNEL THREAD: not a user process" in text


ZOMBIE_PARENT = """
child = os.fork()
if child == 0:
    os._exit(3)
ready("forked", child)
sleep_forever()  # never waits for it
"""


def test_a_zombie_waits_for_its_parent_which_sleeps(run_py, run_cli, wait_sleeping) -> None:
    parent = run_py(ZOMBIE_PARENT)
    (line,) = parent.ready()
    zombie = int(line[2])
    wait_until(lambda: state(zombie) == "Z", f"{zombie} is a zombie")
    wait_sleeping(parent.pid)
    data, code, text = diagnose(run_cli, zombie)
    assert code == 0, data
    thread = only_thread(data, zombie)
    assert (thread["waits"], thread["syscall"], thread["end"]) == ("exited", None, None)
    (edge,) = edges_from(data, zombie)
    assert (edge["kind"], edge["to"]["pid"], edge["label"]) == ("reap", parent.pid,
                                                               f"exited, not reaped by its parent {parent.pid}")
    chain = only_chain(data)
    assert chain["path"] == [zombie, parent.pid] and chain["end"]["kind"] == "sleeping"
    (verdict,) = data["verdicts"]
    assert (verdict["class"], verdict["advice"], verdict["cause"]["pid"]) == ("chain-end", "reap", parent.pid)
    assert data["root_cause"]["pid"] == parent.pid and data["deadlock"] is False
    python = os.path.basename(sys.executable)  # comm and program name: "python" in a venv, else "python3"...
    assert f"ZOMBIE: {zombie} [{python}] exited, and its parent {parent.pid} {python} does not reap it" in text, text


ZOMBIE_PARENT_READING = """
r = int(sys.argv[1])
child = os.fork()
if child == 0:
    os._exit(0)
ready("forked", child)
os.read(r, 1)  # not wait(): it reads a pipe whose writer sleeps
"""


def test_a_zombies_parent_blocked_elsewhere_is_followed(run_py, run_cli, wait_sleeping) -> None:
    r, w = os.pipe()
    try:
        writer = run_py("ready('sleeping')\nsleep_forever()", pass_fds=(w,))
        parent = run_py(ZOMBIE_PARENT_READING, str(r), pass_fds=(r,))
    finally:
        os.close(r)
        os.close(w)
    writer.ready()
    zombie = int(parent.ready()[0][2])
    wait_until(lambda: state(zombie) == "Z", f"{zombie} is a zombie")
    wait_blocked(parent.pid, "read")
    wait_sleeping(writer.pid)
    data, code, _ = diagnose(run_cli, zombie)
    assert code == 0, data
    chain = only_chain(data)
    assert chain["path"] == [zombie, parent.pid, writer.pid], data["chains"]
    assert [e["kind"] for e in edges_from(data, zombie)] == ["reap"]
    assert [e["kind"] for e in edges_from(data, parent.pid)] == ["pipe"]
    assert chain["end"]["kind"] == "sleeping" and data["verdicts"][0]["advice"] == "sleeping"


PARENT_WAITING_FOR_ANOTHER = """
sleeper = os.fork()
if sleeper == 0:
    sleep_forever()
quick = os.fork()
if quick == 0:
    os._exit(0)
ready("forked", sleeper, quick)
os.waitpid(sleeper, 0)  # names the sleeper only: the one that exited stays a zombie
"""


def test_a_zombie_whose_parent_waits_for_another_child(run_py, run_cli, wait_sleeping) -> None:
    parent = run_py(PARENT_WAITING_FOR_ANOTHER)
    (line,) = parent.ready()
    sleeper, zombie = int(line[2]), int(line[3])
    wait_until(lambda: state(zombie) == "Z", f"{zombie} is a zombie")
    wait_blocked(parent.pid, "wait4")
    wait_sleeping(sleeper)
    data, code, _ = diagnose(run_cli, zombie)
    assert code == 0, data
    assert only_chain(data)["path"] == [zombie, parent.pid, sleeper], data["chains"]
    assert [(e["kind"], e["to"]["pid"]) for e in edges_from(data, zombie)] == [("reap", parent.pid)]
    assert [(e["kind"], e["to"]["pid"]) for e in edges_from(data, parent.pid)] == [("child", sleeper)]
    assert data["verdicts"][0]["advice"] == "sleeping" and data["deadlock"] is False


MAIN_THREAD_EXITS = """
import threading
def worker():
    ready("worker")
    sleep_forever()
threading.Thread(target=worker).start()
libc.pthread_exit(None)  # the main thread exits; the process goes on in its worker
"""


def test_a_process_whose_main_thread_exited_is_no_zombie(run_py, run_cli) -> None:
    """Its /proc/PID/stat says Z, but a thread lives: no edge to the parent, not 'exited'."""
    proc = run_py(MAIN_THREAD_EXITS)
    proc.ready()
    wait_until(lambda: state(proc.pid) == "Z", "the main thread exited")
    wait_until(lambda: len(os.listdir(f"/proc/{proc.pid}/task")) == 2, "two threads")
    worker = next(int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid)
    wait_until(lambda: state_of_task(proc.pid, worker) == "S", "the worker sleeps")
    data, code, _ = diagnose(run_cli, proc.pid)
    assert code == 0, data
    assert edges_from(data, proc.pid) == []
    main = next(t for t in threads_of(data, proc.pid) if t["tid"] == proc.pid)
    assert (main["waits"], main["end"]["reason"]) == ("exited", "thread-exited")
    chain = only_chain(data)
    assert chain["path"] == [proc.pid] and chain["end"]["kind"] == "sleeping" and chain["end"]["tid"] == worker
    assert data["verdicts"][0]["advice"] == "sleeping"
    # its memory and command line are read through the live thread (none under the exited one's id)
    assert "unreadable" not in chain["end"]["detail"], chain
    process = next(p for p in data["processes"] if p["pid"] == proc.pid)
    assert process["cmdline"].split()[1] == "-c", process["cmdline"]


MAIN_THREAD_EXITS_ABBA = """
import threading
a, b = threading.Lock(), threading.Lock()
both = threading.Barrier(2)
def worker(first, second):
    with first:
        both.wait()
        with second:
            pass
threading.Thread(target=worker, args=(a, b)).start()
threading.Thread(target=worker, args=(b, a)).start()
ready("started")
libc.pthread_exit(None)
"""


def test_a_deadlock_of_the_threads_left_after_the_main_thread_exited(run_py, run_cli) -> None:
    """The exited main thread can act no more: it must not count as a thread that can (it hid
    the deadlock of the two others: 'UNFOLLOWED', exit 0)."""
    proc = run_py(MAIN_THREAD_EXITS_ABBA)
    proc.ready()
    wait_until(lambda: state(proc.pid) == "Z", "the main thread exited")
    workers = sorted(int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid)
    assert len(workers) == 2
    for tid in workers:
        wait_until(lambda: state_of_task(proc.pid, tid) == "S" and task_call(proc.pid, tid) == "futex",
                   f"thread {tid} waits on a lock")
    result = run_cli(str(proc.pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 1 and data["deadlock"] is True, result.out
    (verdict,) = [v for v in data["verdicts"] if v["class"] == "deadlock"]
    assert sorted(t["tid"] for t in verdict["threads"]) == workers, verdict
    main = next(t for t in threads_of(data, proc.pid) if t["tid"] == proc.pid)
    assert main["end"]["reason"] == "thread-exited"


def task_call(pid: int, tid: int) -> str:
    with open(f"/proc/{pid}/task/{tid}/syscall") as f:
        fields = f.read().split()
    return syscalls.name(int(fields[0])) if fields and fields[0].isdigit() else ""


def state_of_task(pid: int, tid: int) -> str:
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        return parse_stat(f.read()).state


def test_a_running_process_is_busy_on_cpu(run_py, run_cli) -> None:
    proc = run_py("ready('spinning')\nwhile True: pass")
    proc.ready()
    wait_until(lambda: state(proc.pid) == "R", "it runs")
    data, code, text = diagnose(run_cli, proc.pid)
    assert code == 0, data
    thread = only_thread(data, proc.pid)
    assert (thread["waits"], thread["syscall"], thread["wait_syscall"]) == ("running", None, "")
    assert (thread["end"]["kind"], thread["end"]["reason"]) == ("running", "busy")
    assert thread["end"]["detail"].startswith("busy (on CPU), ") and thread["end"]["detail"].endswith(
        " s of CPU time so far")
    assert data["verdicts"][0]["advice"] == "busy" and data["root_cause"]["syscall"] == ""
    assert f"root cause: {proc.pid} {os.path.basename(sys.executable)}\n" in text, text


def test_a_process_stopped_by_a_signal_says_the_sender_is_not_recorded(run_py, run_cli, wait_sleeping) -> None:
    proc = run_py("ready('sleeping')\nsleep_forever()")
    proc.ready()
    wait_sleeping(proc.pid)
    os.kill(proc.pid, signal.SIGSTOP)
    wait_until(lambda: state(proc.pid) == "T", "it is stopped")
    data, code, text = diagnose(run_cli, proc.pid)
    assert code == 0, data
    end = only_thread(data, proc.pid)["end"]
    assert (end["kind"], end["reason"]) == ("stopped", "stopped")
    assert end["detail"] == ("stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU): the kernel does not "
                             f"record who sent it, and no tracer holds it (TracerPid 0 in "
                             f"/proc/{proc.pid}/task/{proc.pid}/status)")
    assert data["edges"] == [] and data["verdicts"][0]["advice"] == "stopped"
    assert f"do now:     kill -CONT {proc.pid} resumes it" in text


JOB_CONTROL = """
import fcntl, os, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the terminal becomes its session's controlling terminal
os.execvp("bash", ["bash", "-c", "set -m; cat & while :; do sleep 3600; done"])  # cat reads it from behind
"""


def test_a_background_job_stopped_by_its_terminal_is_named_as_one(procs, person, run_cli) -> None:  # noqa: F811
    """bash with job control runs cat in the background: cat reads the terminal and the kernel
    stops it (SIGTTIN). The kernel records no sender, but its group is not the terminal's
    foreground group: a stopped job of that terminal, which fg resumes."""
    shell = procs.spawn([sys.executable, "-c", JOB_CONTROL], stdin=person.slave, stdout=person.slave,
                        stderr=subprocess.DEVNULL)
    os.close(person.slave)
    wait_until(lambda: any(comm(k) == "cat" for k in children(shell.pid)), "bash started cat")
    cat = next(k for k in children(shell.pid) if comm(k) == "cat")
    wait_until(lambda: state(cat) == "T", "the terminal stopped cat")
    data, code, text = diagnose(run_cli, cat)
    assert code == 0, data
    foreground = foreground_group(cat)  # the shell's sleep, in the foreground
    assert foreground not in (-1, cat)
    thread = only_thread(data, cat)
    end = thread["end"]
    assert end is not None and (end["kind"], end["reason"], end["subject"]) == ("stopped", "stopped", person.path), \
        (thread, data["edges"], state_now(cat), state_now(shell.pid))
    assert end["detail"] == (f"stopped: a background job of the terminal {person.path}, whose foreground is "
                             f"process group {foreground} (a shell's Ctrl-Z, or SIGTTIN/SIGTTOU for reading or "
                             "writing the terminal from the background; the kernel does not record which)")
    assert data["verdicts"][0]["advice"] == "stopped"
    assert f"do now:     fg in the shell on {person.path} brings it back to the foreground" in text, text


def foreground_group(pid: int) -> int:
    """The foreground process group of pid's controlling terminal (stat's tpgid)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[5])


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def test_a_process_stopped_under_ptrace_waits_for_its_tracer(procs, person, run_py, run_cli,  # noqa: F811
                                                             wait_sleeping) -> None:
    """gdb attached to a sleeping process sits at its prompt: the tracee waits for gdb, and gdb
    for someone to type at its terminal."""
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb is not installed (.ci/run installs it)")
    tracee = run_py("ready('sleeping')\nsleep_forever()")
    tracee.ready()
    wait_sleeping(tracee.pid)
    debugger = procs.spawn([gdb, "-q", "-nx", "-p", str(tracee.pid)], stdin=person.slave, stdout=person.slave,
                           stderr=person.slave, env=dict(os.environ, TERM="dumb"))
    os.close(person.slave)
    wait_until(lambda: state(tracee.pid) == "t", "gdb stops it", timeout=60)
    wait_until(lambda: main_thread_in(debugger.pid, ("poll", "ppoll", "pselect6", "select", "read")),
               "gdb waits at its prompt", timeout=60)
    data, code, text = diagnose(run_cli, tracee.pid)
    assert code == 0, data
    (edge,) = edges_from(data, tracee.pid)
    assert (edge["kind"], edge["to"]["pid"]) == ("ptrace", debugger.pid)
    assert edge["label"] == f"stopped under ptrace: waits for its tracer {debugger.pid} to resume it"
    chain = only_chain(data)
    assert chain["path"] == [tracee.pid, debugger.pid], data["chains"]
    assert (chain["end"]["kind"], chain["end"]["subject"]) == ("terminal", person.path), chain
    assert data["verdicts"][0]["advice"] == "terminal" and data["root_cause"]["pid"] == debugger.pid
    assert f"stopped under ptrace: waits for its tracer {debugger.pid} to resume it" in text, text
    assert f"do now:     it waits for someone to type at {person.path}: answer it there, or kill {debugger.pid}" \
        in text, text


def main_thread_in(pid: int, calls: Tuple[str, ...]) -> bool:
    """The process's main thread sleeps in one of `calls`."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
        with open(f"/proc/{pid}/stat") as f:
            stat = parse_stat(f.read())
    except OSError:
        return False
    return stat.state == "S" and bool(fields) and fields[0].isdigit() and syscalls.name(int(fields[0])) in calls


def test_a_tracer_with_no_child_waits_for_its_tracee(procs, run_cli) -> None:
    """strace -p on a sleep: strace sits in wait4(-1) with no child of its own; what it waits
    for is its tracee (TracerPid in the tracee's status), which sleeps."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (.ci/run installs it)")
    sleeper = procs.spawn(["sleep", "1000"])
    wait_blocked(sleeper.pid, "clock_nanosleep", "nanosleep")
    tracer = procs.spawn([strace, "-q", "-o", "/dev/null", "-p", str(sleeper.pid)])
    wait_until(lambda: _tracer_of(sleeper.pid) == tracer.pid, "strace attaches", timeout=30)
    wait_until(lambda: main_thread_in(tracer.pid, ("wait4", "waitid")), "strace waits for its tracee", timeout=30)
    data, code, _ = diagnose(run_cli, tracer.pid)
    assert code == 0, data
    (edge,) = edges_from(data, tracer.pid)
    assert (edge["kind"], edge["to"]["pid"]) == ("child", sleeper.pid), edge
    assert f"TracerPid: {tracer.pid}" in edge["evidence"], edge
    assert only_chain(data)["path"] == [tracer.pid, sleeper.pid], data["chains"]


def _tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("TracerPid:")))
