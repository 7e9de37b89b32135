"""User-space stacks of real blocked processes: the application line of each blocked call,
on every CPython the machine has, in a virtualenv, per thread; py-spy never ptrace-attaches,
--native does; without py-spy the chain still prints."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from scenario_helpers import read_lines, thread_of

from waitchain.demo import scenario, script
from waitchain.demo.harness import Processes, wait_blocked, wait_until
from waitchain.errors import WaitchainError
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.tasks import read_tasks
from waitchain.stacks import python as py_stacks

READY_TIMEOUT = 20.0


def _version(path: str) -> Tuple[int, ...]:
    name = path.split(os.sep)[-3]
    return tuple(int(p) for p in re.findall(r"\d+", name)[:3])


def interpreters() -> List[Any]:
    """Every CPython under ~/.pyenv/versions, oldest first, and the one running the tests."""
    found = glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python"))
    found = [p for p in found if re.match(r"^\d+\.\d+", p.split(os.sep)[-3])]
    params = [pytest.param(p, id=p.split(os.sep)[-3]) for p in sorted(found, key=_version)]
    return params + [pytest.param(sys.executable, id="default")]


INTERPRETERS = interpreters()

# Python 2.7-compatible: each target reports on the fd in argv[1], then blocks.
READER = """\
import os, sys


def block_here(ready_fd):
    r, w = os.pipe()
    os.write(ready_fd, b"ready\\n")
    os.read(r, 1)  # BLOCK


block_here(int(sys.argv[1]))
"""

LIBRARY = """\
import os


def fetch(ready_fd):
    r, w = os.pipe()
    os.write(ready_fd, b"ready\\n")
    return os.read(r, 1)
"""

USES_LIBRARY = """\
import sys

import slowlib


def main():
    return slowlib.fetch(int(sys.argv[1]))  # BLOCK


main()
"""

THREADS = """\
import os, socket, sys, threading

READY = int(sys.argv[1])


def say(word):
    tid = os.readlink("/proc/thread-self").split("/")[-1]
    os.write(READY, ("%s %s\\n" % (word, tid)).encode())


def read_pipe():
    r, w = os.pipe()
    say("reader")
    os.read(r, 1)  # READ


def receive():
    a, b = socket.socketpair()
    say("receiver")
    a.recv(1)  # RECV


reader = threading.Thread(target=read_pipe, name="reader")
receiver = threading.Thread(target=receive, name="receiver")
reader.start()
receiver.start()
os.write(READY, ("major %d\\n" % sys.version_info[0]).encode())
say("main")
reader.join()  # JOIN
"""

NATIVE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int wait_for_input(int fd) {
    char c;
    return (int)read(fd, &c, 1); /* BLOCK */
}

int main(int argc, char **argv) {
    int p[2];
    if (argc < 2 || pipe(p) != 0)
        return 2;
    if (write(atoi(argv[1]), "ready\n", 6) != 6)
        return 3;
    return wait_for_input(p[0]);
}
"""


# --- helpers ------------------------------------------------------------------------------


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def code_of(text: str, marker: str) -> str:
    return text.splitlines()[line_of(text, marker) - 1].strip()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def start(procs: Processes, argv: List[str], lines: int = 1) -> Tuple[int, List[List[str]]]:
    """Start argv with a readiness pipe's write end as its last argument; return its pid
    once it has written `lines` lines (each split in words)."""
    r, w = os.pipe()
    try:
        proc = procs.spawn(argv + [str(w)], pass_fds=(w,))
    finally:
        os.close(w)
    try:
        return proc.pid, read_lines(r, lines, READY_TIMEOUT)
    finally:
        os.close(r)


def wait_thread_in(pid: int, tid: int, call: str) -> None:
    def check() -> bool:
        try:
            tasks = read_tasks(ProcFS(), pid)
        except WaitchainError:
            return False
        return any(t.tid == tid and t.state in ("S", "D") and t.syscall is not None
                   and t.syscall.name == call for t in tasks)

    wait_until(check, f"thread {tid} of {pid} blocks in {call}")


def skip_unless_py_spy_reads(pid: int) -> None:
    """Skip when py-spy itself cannot read this interpreter (not when waitchain fails)."""
    py_spy = py_stacks.find_py_spy()
    if py_spy is None:
        pytest.skip("py-spy is not installed")
    done = subprocess.run([py_spy, "dump", "--nonblocking", "--pid", str(pid)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"py-spy cannot read this interpreter: {py_stacks.first_line(done.stderr)}")


def diagnose(run_cli, pid: int, *extra: str) -> Dict[str, Any]:
    result = run_cli(str(pid), "--json", *extra)
    assert result.out, result.err
    return json.loads(result.out)


def location(path: Path, text: str, function: str, marker: str) -> Dict[str, Any]:
    return {"file": str(path), "line": line_of(text, marker), "function": function,
            "code": code_of(text, marker)}


def strace_run(tmp_path: Path, argv: List[str]) -> Tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "strace.log"
    done = subprocess.run(["strace", "-f", "-e", "trace=ptrace,execve", "-o", str(log)] + argv,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return done, log.read_text()


ATTACH = re.compile(r"ptrace\(PTRACE_(?:ATTACH|SEIZE)\b")
needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


# --- every CPython: the application frame -------------------------------------------------


@pytest.mark.parametrize("python", INTERPRETERS)
def test_application_frame_on_every_cpython(python, procs, tmp_path, run_cli):
    path = write(tmp_path / "reader.py", READER)
    pid, _ = start(procs, [python, str(path)])
    wait_blocked(pid, "read")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)

    expected = location(path, READER, "block_here", "# BLOCK")
    assert data["root_cause"]["location"] == expected, data["notes"]
    main = thread_of(data, pid, pid)
    assert main["location"] == expected
    assert main["stack_source"] == "py-spy"
    assert [f["function"] for f in main["stack"]] == ["block_here", "<module>"]
    assert main["stack"][0]["line"] == expected["line"]


@pytest.mark.parametrize("python", INTERPRETERS)
def test_each_thread_gets_its_own_stack(python, procs, tmp_path, run_cli):
    path = write(tmp_path / "threads.py", THREADS)
    pid, lines = start(procs, [python, str(path)], lines=4)
    tids = {word: int(tid) for word, tid in lines}
    wait_thread_in(pid, tids["reader"], "read")
    wait_thread_in(pid, tids["receiver"], "recvfrom")
    wait_thread_in(pid, tids["main"], "futex")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)

    assert tids["main"] == pid
    reader = thread_of(data, pid, tids["reader"])
    receiver = thread_of(data, pid, tids["receiver"])
    main = thread_of(data, pid, pid)
    assert reader["location"] == location(path, THREADS, "read_pipe", "# READ"), data["notes"]
    assert receiver["location"] == location(path, THREADS, "receive", "# RECV")
    assert main["location"] == location(path, THREADS, "<module>", "# JOIN")
    join = main["python_wait"]
    assert join.startswith("waits in threading.Thread.join for thread "), join
    assert str(tids["reader"]) in join
    if tids["major"] >= 3:  # Python 2 threads have no name py-spy can read
        assert "'reader'" in join


# --- the demo ------------------------------------------------------------------------------


def test_demo_root_cause_is_the_servers_p_wait(procs, run_cli):
    pids = scenario.start(procs)
    data = diagnose(run_cli, pids.wrapper)
    proc = next(p for p in data["processes"] if p["pid"] == pids.server)
    server = proc["cmdline"].split(" ")[1]
    # the demo runs copies of its scripts from a directory of their own, as a user's scripts
    # are: from site-packages (a non-editable install) the stack rule would skip them
    assert os.path.basename(server) == "command-server.py" and "-packages" not in server
    with open(script("command-server.py")) as f:
        text = f.read()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.strip() == "p.wait()")

    cause = data["root_cause"]
    assert cause["pid"] == pids.server
    assert cause["location"] == {"file": server, "line": line,
                                 "function": "run_command_for_client", "code": "p.wait()"}
    for pid in (pids.wrapper, pids.client, pids.server, pids.child):
        assert thread_of(data, pid, pid)["location"] is not None, (pid, data["notes"])
    out = run_cli(str(pids.wrapper)).out
    assert f"command-server.py:{line} in run_command_for_client: p.wait()" in out


# --- a virtualenv: the library frame is skipped --------------------------------------------


def test_site_packages_call_is_attributed_to_the_caller(procs, tmp_path, run_cli):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpython = str(venv / "bin" / "python")
    site = subprocess.run([vpython, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    assert site.startswith(str(venv)) and "site-packages" in site
    library = write(Path(site) / "slowlib.py", LIBRARY)
    path = write(tmp_path / "app.py", USES_LIBRARY)
    pid, _ = start(procs, [vpython, str(path)])
    wait_blocked(pid, "read")
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)

    main = thread_of(data, pid, pid)
    assert main["stack"][0]["file"] == str(library)
    assert main["stack"][0]["function"] == "fetch"
    assert main["location"] == location(path, USES_LIBRARY, "main", "# BLOCK")
    assert data["root_cause"]["location"] == main["location"]


# --- ptrace: never by default, only with --native ------------------------------------------


@needs_strace
def test_default_mode_makes_no_ptrace_attach(procs, tmp_path):
    path = write(tmp_path / "reader.py", READER)
    pid, _ = start(procs, [sys.executable, str(path)])
    wait_blocked(pid, "read")
    if py_stacks.find_py_spy() is None:
        pytest.skip("py-spy is not installed")

    done, log = strace_run(tmp_path, [sys.executable, "-m", "waitchain", str(pid), "--json"])

    data = json.loads(done.stdout)
    assert data["root_cause"]["location"]["function"] == "block_here", data["notes"]
    assert re.search(r"execve\(\"[^\"]*py-spy\"", log), "py-spy did not run under strace"
    assert not ATTACH.search(log), [line for line in log.splitlines() if ATTACH.search(line)]


NATIVE_UNDER_STRACE = ("import sys; from waitchain.stacks import native; native.TIMEOUT = 3.0; "
                       "from waitchain.cli import main; sys.exit(main(sys.argv[1:]))")


@needs_strace
@needs_gdb
def test_native_mode_is_the_one_that_attaches(procs, tmp_path):
    # gdb's own ptrace self-test fails under strace -f and it then hangs: the short timeout
    # bounds it; the attach is made (and logged) before that.
    sleeper = procs.spawn(["sleep", "3600"])
    wait_blocked(sleeper.pid, "clock_nanosleep", "nanosleep")

    done, log = strace_run(tmp_path, [sys.executable, "-c", NATIVE_UNDER_STRACE,
                                      str(sleeper.pid), "--native", "--json"])

    assert json.loads(done.stdout)["chains"], done.stderr
    assert ATTACH.search(log)
    with open(f"/proc/{sleeper.pid}/stat") as f:
        assert f.read().rpartition(")")[2].split()[0] != "T", "gdb left the target stopped"


@needs_gdb
@needs_cc
def test_native_application_frame(procs, tmp_path, run_cli):
    source = write(tmp_path / "prog.c", NATIVE)
    binary = tmp_path / "prog"
    subprocess.run(["cc", "-g", "-O0", "-o", str(binary), str(source)], check=True)
    pid, _ = start(procs, [str(binary)])
    wait_blocked(pid, "read")

    plain = diagnose(run_cli, pid)
    native = diagnose(run_cli, pid, "--native")

    unwound = thread_of(plain, pid, pid)  # by default: unwound without stopping it (unwind.py)
    assert unwound["stack_source"] == "unwind" and unwound["stack_incomplete"] is False, plain["notes"]
    assert unwound["location"] == location(source, NATIVE, "wait_for_input", "/* BLOCK */")
    assert not any("--native" in note for note in plain["notes"]), plain["notes"]
    main = thread_of(native, pid, pid)
    assert main["stack_source"] == "gdb", native["notes"]
    assert main["location"] == location(source, NATIVE, "wait_for_input", "/* BLOCK */")
    assert native["root_cause"]["location"] == main["location"]


# --- no py-spy -----------------------------------------------------------------------------


def test_without_py_spy_the_chain_still_prints(procs, tmp_path, run_cli, monkeypatch):
    path = write(tmp_path / "reader.py", READER)
    pid, _ = start(procs, [sys.executable, str(path)])
    wait_blocked(pid, "read")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(py_stacks, "scripts_dirs", lambda: iter([str(empty)]))

    result = run_cli(str(pid))
    data = diagnose(run_cli, pid)

    assert result.code == 1  # the reader holds its own write end: a self-deadlock
    assert f"{pid} " in result.out and "read(" in result.out
    assert "py-spy is not installed" in result.out
    assert data["root_cause"]["pid"] == pid and data["root_cause"]["location"] is None
    assert any("py-spy is not installed" in n for n in data["notes"])


# --- which processes py-spy is asked about -------------------------------------------------


def test_a_native_process_is_not_given_to_py_spy(procs, run_cli, monkeypatch):
    """sleep is not named like Python, maps no libpython and its file lacks the interpreter's
    mark: py-spy (which could only fail on it) is not run; the stack is unwound."""
    asked: List[int] = []
    dump = py_stacks.dump
    monkeypatch.setattr(py_stacks, "dump", lambda py_spy, pid, *a, **kw: asked.append(pid) or dump(py_spy, pid, *a, **kw))
    proc = procs.spawn(["sleep", "1000"])
    wait_blocked(proc.pid, "clock_nanosleep", "nanosleep")

    data = diagnose(run_cli, proc.pid)

    assert asked == []
    assert thread_of(data, proc.pid, proc.pid)["stack_source"] == "unwind", data["notes"]


def test_python_linked_into_a_program_of_another_name_is_given_to_py_spy(procs, tmp_path, run_cli):
    """An interpreter built into the executable (no libpython mapped) under a name that is not
    python's, like an embedding application: its file has the mark, so py-spy is asked."""
    linked = [p for p in sorted(glob.glob("/usr/bin/python3*")) + [os.path.realpath(sys.executable)]
              if os.path.isfile(p) and b"Fatal Python error" in Path(p).read_bytes()]
    if not linked:
        pytest.skip("no interpreter here has Python linked into its executable")
    program = tmp_path / "myapp"
    shutil.copy(linked[0], program)
    path = write(tmp_path / "reader.py", READER)
    pid, _ = start(procs, [str(program), str(path)])
    wait_blocked(pid, "read")
    with open(f"/proc/{pid}/maps") as f:
        assert "/libpython" not in f.read()  # only the executable's own bytes say it is Python
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)

    main = thread_of(data, pid, pid)
    assert main["stack_source"] == "py-spy", data["notes"]
    assert main["location"] == location(path, READER, "block_here", "# BLOCK")
