"""Stacks of a Python process with many threads in one file: each thread keeps its own line
and its lock's holder, the source is read once per run, and a source file whose reads hang
(a FUSE daemon that stops answering) is asked for once, not once per thread."""

from __future__ import annotations

import ctypes
import os
import select
import sys
import time
from pathlib import Path
from typing import List

import pytest
from scenario_helpers import thread_of
from test_kernel_waits import _fuse_unavailable, _minor, _quiet_kill, abort_fuse
from test_python_threads import lock_wait
from test_stacks import diagnose, line_of, skip_unless_py_spy_reads, start

from waitchain.demo.harness import wait_until
from waitchain.errors import WaitchainError
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.tasks import read_tasks

MNT_DETACH = 2
PYTHON = sys.executable  # the venv's python: py-spy reads it

# Imported as a module (its source file may later stop answering); `ready` is the test's.
APP = """\
import os, threading

lock = threading.Lock()


def worker(started):
    started.wait()
    with lock:  # WORKERS WAIT
        pass


def main(count, ready):
    started = threading.Barrier(count + 1)
    with lock:  # MAIN HOLDS
        threads = [threading.Thread(target=worker, args=(started,)) for _ in range(count)]
        for thread in threads:
            thread.start()
        started.wait()
        r, w = os.pipe()
        ready("holding", *[thread.native_id for thread in threads])
        os.read(r, 1)  # MAIN READS
"""

RUN_APP = """
sys.path.insert(0, sys.argv[1])
import app
app.main(int(sys.argv[2]), ready)
"""


def _start(run_py, directory: Path, count: int):
    program = run_py(RUN_APP, str(directory), str(count))
    (words,) = program.ready()
    pid, workers = int(words[0]), [int(w) for w in words[2:]]
    assert len(workers) == count

    def all_blocked() -> bool:
        try:
            tasks = {t.tid: t for t in read_tasks(ProcFS(), pid)}
        except WaitchainError:
            return False
        calls = {tid: t.syscall.name if t.state == "S" and t.syscall is not None else "" for tid, t in tasks.items()}
        return calls.get(pid) == "read" and all(calls.get(tid) == "futex" for tid in workers)

    wait_until(all_blocked, f"the {count} workers of {pid} wait for the lock, its main thread reads")
    return program, pid, workers


def test_three_hundred_threads_of_one_file_each_get_their_line_and_holder(run_py, tmp_path, run_cli) -> None:
    (tmp_path / "app.py").write_text(APP)
    _, pid, workers = _start(run_py, tmp_path, 300)
    skip_unless_py_spy_reads(pid)

    data = diagnose(run_cli, pid)

    path = str(tmp_path / "app.py")
    reads = {"file": path, "line": line_of(APP, "# MAIN READS"), "function": "main",
             "code": "os.read(r, 1)  # MAIN READS"}
    assert data["root_cause"]["location"] == reads, data["notes"]
    assert thread_of(data, pid, pid)["location"] == reads
    for tid in workers:
        worker = thread_of(data, pid, tid)
        assert worker["location"] == {"file": path, "line": line_of(APP, "# WORKERS WAIT"), "function": "worker",
                                      "code": "with lock:  # WORKERS WAIT"}
        assert worker["lock_wait"] == lock_wait(tmp_path / "app.py", APP, "lock", pid, "# MAIN HOLDS")
    assert [h["expression"] for h in thread_of(data, pid, pid)["lock_holds"]] == ["lock"]


# --- a source file whose reads never answer ---------------------------------------------------

# Serves /app.py; once the flag file exists, a read never answers (and says so). direct_io:
# every read reaches the daemon (readers do not wait on one another's page).
FUSE_SOURCE = """
import errno, stat
from fuse import FUSE, Operations, FuseOSError

TEXT = open(sys.argv[2], "rb").read()
FLAG = sys.argv[3]


class Source(Operations):
    def init(self, path):
        ready("mounted")

    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        if path == "/app.py":
            return dict(st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=len(TEXT))
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "app.py"]

    def open(self, path, fi):
        fi.direct_io = 1
        return 0

    def read(self, path, size, offset, fh):
        if os.path.exists(FLAG):
            ready("read")
            sleep_forever()
        return TEXT[offset:offset + size]


FUSE(Source(), sys.argv[1], foreground=True, ro=True, raw_fi=True)
"""


def _lines_now(program) -> List[List[str]]:
    """The readiness lines the program has written so far (no waiting)."""
    while select.select([program.fd], [], [], 0)[0]:
        chunk = os.read(program.fd, 4096)
        if not chunk:
            break
        program.buf += chunk
    lines = [line.decode().split() for line in program.buf.split(b"\n") if line]
    program.buf = b""
    return lines


def test_a_source_file_that_stops_answering_is_asked_for_once(run_py, tmp_path, run_cli) -> None:
    why = _fuse_unavailable()
    if why:
        pytest.skip(why)
    (tmp_path / "app.txt").write_text(APP)
    mountpoint, flag = tmp_path / "mnt", tmp_path / "hang"
    mountpoint.mkdir()
    daemon = run_py(FUSE_SOURCE, str(mountpoint), str(tmp_path / "app.txt"), str(flag))
    minor = None
    try:
        daemon.ready()
        minor = _minor(str(mountpoint))
        _, pid, workers = _start(run_py, mountpoint, 40)  # imported through the daemon's reads
        skip_unless_py_spy_reads(pid)
        flag.touch()  # from now on a read of app.py never answers

        start = time.monotonic()
        data = diagnose(run_cli, pid)
        spent = time.monotonic() - start

        daemon.ready()  # the source read reached the daemon
        assert _lines_now(daemon) == []  # and it was the only one: not one per thread
        path = str(mountpoint / "app.py")
        assert data["root_cause"]["location"] == {"file": path, "line": line_of(APP, "# MAIN READS"),
                                                  "function": "main", "code": ""}, data["notes"]
        worker = thread_of(data, pid, workers[0])
        assert (worker["location"]["line"], worker["location"]["code"]) == (line_of(APP, "# WORKERS WAIT"), "")
        assert spent < 20  # one deadline (1 s) for the file, not 41
    finally:
        if minor is not None:
            abort_fuse(minor)  # the hung read fails at once (ENOTCONN): no thread of ours waits on
        _quiet_kill(daemon.pid)
        ctypes.CDLL(None, use_errno=True).umount2(str(mountpoint).encode(), MNT_DETACH)


# --- native frames: the memory of many threads, and processes with nothing to add -------------

# argv: thread count, a library to load ("": none), "exit-main" or "stays", the readiness fd.
# ctypes only when asked: its libffi would count as a library of the process's own.
READERS = """\
import os, sys, threading

count, library, main, ready_fd = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
if library or main == "exit-main":
    import ctypes
if library:
    ctypes.CDLL(library)


def read_forever(r):
    os.read(r, 1)


r, w = os.pipe()
threads = [threading.Thread(target=read_forever, args=(r,)) for _ in range(count)]
for thread in threads:
    thread.start()
os.write(ready_fd, (" ".join(str(t.native_id) for t in threads) + "\\n").encode())
if main == "exit-main":
    ctypes.CDLL(None).pthread_exit(None)  # the main thread goes; the process lives on in its threads
os.read(r, 1)
"""


def _readers(procs, tmp_path: Path, count: int, library: str = "", main: str = "stays"):
    script = tmp_path / "readers.py"
    script.write_text(READERS)
    pid, (words,) = start(procs, [PYTHON, str(script), str(count), library, main])
    tids = [int(w) for w in words]
    wanted = set(tids) | ({pid} if main == "stays" else set())
    wait_until(lambda: {t.tid for t in read_tasks(ProcFS(), pid) if t.state == "S" and t.syscall is not None
                        and t.syscall.name == "read"} >= wanted, f"the threads of {pid} read")
    return pid, tids


@pytest.fixture
def looks(monkeypatch) -> List[int]:
    """The ids whose threads the memory reader looked at before reading (procfs/mmaplock)."""
    from waitchain.procfs import memory

    seen: List[int] = []
    real = memory.contention

    def counted(fs, pid):
        seen.append(pid)
        return real(fs, pid)

    monkeypatch.setattr(memory, "contention", counted)
    return seen


def test_the_stacks_of_many_threads_are_read_through_their_process(procs, tmp_path, looks) -> None:
    from waitchain.stacks import unwind

    pid, tids = _readers(procs, tmp_path, 40)

    stacks = unwind.process_stacks(pid, tids)

    assert sorted(stacks) == sorted(tids)
    assert all(frames[0].how == "syscall" for frames, _ in stacks.values())
    assert looks == [pid]  # once for the process, not once per thread (40 × 41 stat reads)


def test_a_process_whose_main_thread_exited_is_read_through_a_live_thread(procs, tmp_path, looks) -> None:
    from waitchain.stacks import unwind

    pid, tids = _readers(procs, tmp_path, 3, main="exit-main")
    wait_until(lambda: unwind._state(f"/proc/{pid}/stat") == "Z", f"the main thread of {pid} has exited")

    assert unwind.memory_id(pid) == min(tids)
    stacks = unwind.process_stacks(pid, tids)
    assert sorted(stacks) == sorted(tids) and looks == [min(tids)]


def test_no_thread_is_unwound_in_a_python_that_maps_no_extension(procs, tmp_path, monkeypatch) -> None:
    from waitchain.stacks import extensions, unwind

    walks: List[int] = []
    real = unwind.unwind
    monkeypatch.setattr(unwind, "unwind", lambda *args, **kwargs: walks.append(1) or real(*args, **kwargs))
    plain, plain_tids = _readers(procs, tmp_path, 30)
    interpreter = os.path.realpath(f"/proc/{plain}/exe")

    assert not extensions.extension_mapped(plain, interpreter)
    assert unwind.under_interpreter(plain, plain_tids, interpreter) == {} and walks == []

    library = next((p for p in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1")
                    if os.path.exists(p)), None)
    if library is None:
        pytest.skip("no libz.so.1 to load as a library of its own")
    loaded, loaded_tids = _readers(procs, tmp_path, 30, library)
    assert extensions.extension_mapped(loaded, interpreter)
    assert unwind.under_interpreter(loaded, loaded_tids, interpreter) == {}  # only os.read under them
    assert len(walks) >= 30  # but each was looked at: a library of its own could have been there
