"""Source files of one run's stacks (stacks/sources.py): each file read once and parsed once
however many threads run it, a hung file costs one deadline for all of them, and the stacks
of many threads of one file (stacks._python) read it once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import List

import pytest

from waitchain import stacks
from waitchain.model import Frame, Syscall, Task
from waitchain.stacks import pylocks, sources
from waitchain.stacks.python import PyThread
from waitchain.stacks.sources import Sources


@pytest.fixture
def reads(monkeypatch) -> List[str]:
    """The paths frames.source_text was asked for, in order."""
    asked: List[str] = []
    real = sources.source_text

    def counted(pid: int, path: str, proc: str = "/proc") -> str:
        asked.append(path)
        return real(pid, path, proc)

    monkeypatch.setattr(sources, "source_text", counted)
    return asked


def test_threads_of_one_file_read_it_once(tmp_path: Path, reads: List[str]) -> None:
    path = tmp_path / "app.py"
    path.write_text("first\n  second  \nthird\n")
    run = Sources()
    got: List[str] = []

    def thread() -> None:
        got.extend(run.line(os.getpid(), str(path), n % 4) for n in range(250))

    workers = [threading.Thread(target=thread) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert reads == [str(path)]
    assert sorted(set(got)) == ["", "first", "second", "third"]
    assert run.text(os.getpid(), str(path)) == "first\n  second  \nthird\n"
    assert run.started == 1


def test_a_file_is_parsed_once(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "app.py"
    path.write_text("import threading\nlock = threading.Lock()\nwith lock:\n    pass\n")
    made: List[str] = []
    real = pylocks.Source

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, text: str) -> None:
            made.append(text)
            super().__init__(text)

    monkeypatch.setattr(pylocks, "Source", Counted)
    run = Sources()
    parsed = {id(run.parsed(os.getpid(), str(path))) for _ in range(100)}
    assert len(made) == 1 and len(parsed) == 1
    assert run.parsed(os.getpid(), str(path)).acquired_at(3).expression == "lock"
    assert run.parsed(os.getpid(), str(tmp_path / "missing.py")) is None


@pytest.fixture
def hung(monkeypatch):
    """source_text blocks (as on a hung FUSE mount) until the test ends; `started` is set
    by the first read, and `count` says how many reads were started."""
    state = SimpleNamespace(release=threading.Event(), started=threading.Event(), count=0)

    def blocked(pid: int, path: str, proc: str = "/proc") -> str:
        state.count += 1
        state.started.set()
        state.release.wait(30)
        return "never seen\n"

    monkeypatch.setattr(sources, "source_text", blocked)
    yield state
    state.release.set()


def test_a_hung_file_costs_one_deadline_for_all_its_threads(hung) -> None:
    run = Sources(seconds=0.3)
    start = time.monotonic()
    lines = [run.line(os.getpid(), "/hung/app.py", 7) for _ in range(200)]
    spent = time.monotonic() - start

    assert lines == [""] * 200
    assert hung.started.is_set() and hung.count == 1
    assert spent < 1.5  # one deadline (0.3 s), not 200 (60 s)
    again = time.monotonic()
    assert run.parsed(os.getpid(), "/hung/app.py") is None
    assert time.monotonic() - again < 0.1  # its deadline has passed: asking again costs nothing


def test_files_read_ahead_share_their_deadline(hung) -> None:
    run = Sources(seconds=0.3)
    paths = [f"/hung/m{i}.py" for i in range(6)]
    start = time.monotonic()
    run.prefetch(os.getpid(), paths)
    assert [run.line(os.getpid(), p, 1) for p in paths] == [""] * 6
    assert hung.count == 6
    assert time.monotonic() - start < 1.5  # together: not 6 × 0.3 s in a row


def test_processes_that_see_the_same_file_share_its_read(tmp_path: Path, reads: List[str]) -> None:
    path = tmp_path / "app.py"
    path.write_text("shared\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "app.py").write_text("other\n")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             cwd=str(tmp_path / "elsewhere"))
    try:
        run = Sources()
        assert run.line(os.getpid(), str(path), 1) == run.line(child.pid, str(path), 1) == "shared"
        assert reads == [str(path)]  # the same mount namespace and root: one file
        here = os.getcwd()
        os.chdir(tmp_path)
        try:
            mine = run.line(os.getpid(), "app.py", 1)
        finally:
            os.chdir(here)
        assert (mine, run.line(child.pid, "app.py", 1)) == ("shared", "other")  # relative: two cwds
        assert len(reads) == 3
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()


# --- the stacks of many threads of one file -------------------------------------------------

APP = """\
import threading
lock = threading.Lock()


def worker():
    with lock:  # WAITS
        pass


def main(r):
    with lock:
        read(r)  # HOLDS
"""


def test_two_thousand_threads_of_one_file_read_and_parse_it_once(tmp_path: Path, reads: List[str],
                                                                  monkeypatch) -> None:
    path = tmp_path / "app.py"
    path.write_text(APP)
    made: List[int] = []
    real = pylocks.Source

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, text: str) -> None:
            made.append(1)
            super().__init__(text)

    monkeypatch.setattr(pylocks, "Source", Counted)
    pid = os.getpid()
    boot = Frame("_bootstrap_inner", "/usr/lib/python3.11/threading.py", 1000)
    waiters = [PyThread(ident=tid, tid=tid, name=f"w{tid}", selves=(None, None),
                        frames=(Frame("worker", str(path), 6), boot)) for tid in range(2, 2002)]
    holder = PyThread(ident=1, tid=1, name="MainThread", selves=(None,),
                      frames=(Frame("main", str(path), 12),))
    futex = Syscall(202, "futex", ())
    diag = SimpleNamespace(tasks={pid: [Task(t.tid, "python", "S", futex) for t in waiters]
                                  + [Task(1, "python", "S", Syscall(0, "read", ()))]})
    tids = [t.tid for t in waiters] + [1]

    result = stacks._python(diag, pid, tids, waiters + [holder], Sources())  # type: ignore[arg-type]

    assert reads == [str(path)] and made == [1]
    assert result.kind == "python" and len(result.stacks) == 2001
    for tid in (2, 1000, 2001):
        stack = result.stacks[tid]
        assert stack.location.code == "with lock:  # WAITS"
        assert (stack.lock_wait, stack.likely_holder.tid, stack.likely_holder.line) == ("lock", 1, 11)
    assert result.stacks[1].location.code == "read(r)  # HOLDS"
    assert [h.expression for h in result.stacks[1].holds] == ["lock"]
