"""Processes that vanish, or whose pid is reused, between any two reads. A real two-process
deadlock (a flock holder reading a pipe; the pipe's writer, whose threads all wait in flock
for the holder or in poll and recv on ends only it holds) is diagnosed while a hook kills and reaps one of them just
before its k-th read of /proc, memory, pidfd or sock_diag, for every k. The CLI must
answer every time (exit 0, 1 or 3), never with an internal error (70)."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable, Dict, List, Optional

import pytest

from waitchain import snapshot
from waitchain.demo.harness import wait_until
from waitchain.procfs import memory, pidfd, split
from waitchain.procfs.reader import ProcFS

HOLDER = """
import fcntl
lockfile, r = sys.argv[1], int(sys.argv[2])
f = open(lockfile, "w")
fcntl.flock(f, fcntl.LOCK_EX)
ready("locked")
os.read(r, 1)  # waits for the writer, which waits for the lock
"""

WRITER = """
import fcntl, select
lockfile = sys.argv[1]
a, b = socket.socketpair()
pr, pw = os.pipe()

def poller():
    p = select.poll()
    p.register(pr, select.POLLIN)
    p.poll()

for target in (lambda: fcntl.flock(open(lockfile, "w"), fcntl.LOCK_EX), poller,
               lambda: a.recv(1)):
    threading.Thread(target=target, daemon=True).start()
ready("started")
fcntl.flock(open(lockfile, "w"), fcntl.LOCK_EX)  # every thread now waits for the holder or itself
"""

# ProcFS methods and their argument holding the pid (read_at(piddir, pid, name): 2).
PROCFS_PID_ARG = {"_read": 1, "read_at": 2, "readlink": 1, "readlink_at": 2, "listdir": 1,
                  "owner": 1, "owner_at": 2, "open_pid": 1, "fd_links": 1, "link_mode": 1}


class Chaos:
    """Counts the reads concerning `victim`; kills and reaps it before read number `at`."""

    def __init__(self, popen: Any, at: Optional[int]) -> None:
        self.popen, self.victim, self.at, self.count = popen, popen.pid, at, 0
        self.lock = threading.Lock()

    def before(self, pid: Any) -> None:
        if pid != self.victim:
            return
        with self.lock:
            self.count += 1
            if self.count == self.at:
                self.popen.kill()
                self.popen.wait()  # reaped: /proc/PID is gone


def install(monkeypatch: pytest.MonkeyPatch, chaos: Chaos) -> None:
    monkeypatch.setattr(split, "SPLIT_AT", 1 << 30)  # every read in this process, where it is counted
    for name, index in PROCFS_PID_ARG.items():
        monkeypatch.setattr(ProcFS, name, _hooked(getattr(ProcFS, name), index, chaos))
    reader = memory.MemoryReader
    monkeypatch.setattr(reader, "read_partial", _hooked(reader.read_partial, 1, chaos))
    monkeypatch.setattr(pidfd, "pipe_fill", _hooked(pidfd.pipe_fill, 0, chaos))
    monkeypatch.setattr(snapshot, "fd_is_fifo", _hooked(snapshot.fd_is_fifo, 1, chaos))


def _hooked(func: Callable, index: int, chaos: Chaos) -> Callable:
    def hooked(*args: Any, **kwargs: Any) -> Any:
        chaos.before(args[index] if index < len(args) else None)
        return func(*args, **kwargs)
    return hooked


@pytest.fixture
def deadlock(run_py, tmp_path):
    """start() -> (holder, writer): a fresh pair of deadlocked programs."""
    lockfile = str(tmp_path / "lock")

    def start():
        r, w = os.pipe()
        try:
            holder = run_py(HOLDER, lockfile, str(r), pass_fds=[r])
            holder.ready()
            writer = run_py(WRITER, lockfile, pass_fds=[w])
            writer.ready()
        finally:
            os.close(r)
            os.close(w)
        wait_until(lambda: _threads_asleep(writer.pid) >= 4, "the writer's threads block")
        return holder, writer

    return start


def _threads_asleep(pid: int) -> int:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return sum(_state(pid, int(t)) == "S" for t in tasks)
    except OSError:
        return 0


def _state(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return ""


def _diagnose(monkeypatch, run_cli, start: int, chaos: Chaos) -> Dict[str, Any]:
    with monkeypatch.context() as patched:
        install(patched, chaos)
        result = run_cli(str(start), "--json", "--no-stacks")
    assert result.code in (0, 1, 3), (chaos.at, result.err)
    assert "internal error" not in result.err and "Traceback" not in result.err, result.err
    return json.loads(result.out) if result.code in (0, 1) else {}


@pytest.mark.parametrize("who", ["holder", "writer"])
def test_a_process_vanishes_before_any_of_its_reads(deadlock, monkeypatch, run_cli, who) -> None:
    holder, writer = deadlock()
    victim = holder if who == "holder" else writer
    counting = Chaos(victim.popen, None)
    data = _diagnose(monkeypatch, run_cli, holder.pid, counting)
    assert data["deadlock"] is True  # undisturbed, the pair deadlocks
    total = counting.count
    assert total > 10, total
    for at in range(1, total + 1):
        if at > 1:
            holder, writer = deadlock()
            victim = holder if who == "holder" else writer
        _diagnose(monkeypatch, run_cli, holder.pid, Chaos(victim.popen, at))
        holder.popen.kill()
        writer.popen.kill()
        holder.popen.wait()
        writer.popen.wait()


# --- pid reuse -----------------------------------------------------------------------------

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"

IMPOSTOR = """
libc.prctl(15, b"impostor", 0, 0, 0)  # PR_SET_NAME
ready("impostor")
sleep_forever()
"""


def _start_with_pid(run_py, pid: int):
    """A program that gets `pid` (ns_last_pid, as root); None when another fork took it."""
    for _ in range(20):
        with open(NS_LAST_PID, "w") as f:
            f.write(str(pid - 1))
        program = run_py(IMPOSTOR)
        if program.pid == pid:
            program.ready()
            return program
        program.popen.kill()
        program.popen.wait()
    return None


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(NS_LAST_PID), reason="needs root")
def test_a_reused_pid_is_not_taken_for_the_scanned_process(deadlock, monkeypatch, run_cli, run_py) -> None:
    """The writer dies after the scan and an impostor gets its pid: nothing of the
    impostor (its threads, its command line) is shown as the writer's."""
    holder, writer = deadlock()
    impostors: List[Any] = []

    class Reuse(Chaos):
        def before(self, pid: Any) -> None:
            super().before(pid)
            if self.count == self.at and not impostors:
                impostors.append(_start_with_pid(run_py, self.victim))

    dry = Chaos(writer.popen, None)  # counts the writer's reads of a whole run, kills nothing
    _diagnose(monkeypatch, run_cli, holder.pid, dry)
    assert dry.count >= 10, dry.count
    # 3, 6, 10: after the scan, while the waits, the command line and the memory are read:
    # the verdict's second look then finds the impostor, and no deadlock is claimed. The last
    # read comes after that look (the process was deadlocked when the verdict was checked).
    for at in (3, 6, 10, dry.count):
        chaos = Reuse(writer.popen, at)
        data = _diagnose(monkeypatch, run_cli, holder.pid, chaos)
        assert chaos.count >= at, (at, chaos.count)  # the kill happened
        impostor = impostors.pop() if impostors else None
        if impostor is None:
            pytest.skip("another process took the pid first")
        text = json.dumps(data)
        assert "impostor" not in text, at
        assert data["deadlock"] is (at == dry.count), at
        impostor.popen.kill()
        impostor.popen.wait()
        holder.popen.kill()
        holder.popen.wait()
        holder, writer = deadlock()


def test_a_process_vanishes_while_its_stack_is_read(deadlock, monkeypatch, run_cli) -> None:
    """The writer dies just before py-spy reads it: the chain still prints, without its stack."""
    from waitchain.stacks import python as py_stacks

    holder, writer = deadlock()
    real_dump = py_stacks.dump

    def dump(py_spy, pid, tids, timeout=None):
        if pid == writer.pid:
            writer.popen.kill()
            writer.popen.wait()
        return real_dump(py_spy, pid, tids, timeout)

    monkeypatch.setattr(py_stacks, "dump", dump)
    result = run_cli(str(holder.pid), "--json")
    assert result.code in (0, 1), result.err
    data = json.loads(result.out)
    assert writer.popen.returncode is not None  # it did vanish
    writers = [p for p in data["processes"] if p["pid"] == writer.pid]
    assert all(t["stack"] is None for p in writers for t in p["threads"])
