"""The readers of the system when things go wrong: memory that cannot be read (bad
addresses, gone processes, a reader that does not answer), a pipe measured through a fd
that is no pipe any more, /proc text longer than the read limit, files this kernel lacks,
sock_diag failing, and a source-line read that fails inside its deadline thread."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import socket
import threading
import time
import warnings
from pathlib import Path

import pytest

from waitchain import children as waitchain_children
from waitchain.demo.harness import children, wait_blocked
from waitchain.errors import ProcessGone, Timeout, WaitchainError
from waitchain.model import Syscall, Task
from waitchain.procfs import memory, pidfd, sockdiag
from waitchain.procfs.reader import ProcFS, _read_all
from waitchain.snapshot import Snapshot
from waitchain.stacks import with_deadline
from waitchain.waits import wait_of

DATA = Path(__file__).resolve().parent.parent / "data"
READER, WRITER = 23569, 23570


# --- target memory ------------------------------------------------------------------------


@pytest.fixture
def reader():
    with memory.MemoryReader() as one:
        yield one


@pytest.mark.parametrize("address,size", [(0, 8), (-8, 8), (1 << 64, 8), ((1 << 64) + 5, 8),
                                          (0x1000, 0), (0x1000, -1), (0x1000, memory.MAX_READ + 1)])
def test_addresses_and_sizes_refused(reader, address: int, size: int) -> None:
    with pytest.raises(WaitchainError):
        reader.read(os.getpid(), address, size)


def test_unmapped_memory_and_gone_processes(reader) -> None:
    with pytest.raises(WaitchainError):
        reader.read(os.getpid(), 0x10, 8)  # the first page is never mapped
    with pytest.raises(ProcessGone):
        reader.read(_gone_pid(), 0x10000, 8)
    buf = ctypes.create_string_buffer(b"abc\0")
    assert reader.cstring(os.getpid(), ctypes.addressof(buf)) == b"abc"


def _gone_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_a_reader_that_does_not_answer_is_kept_not_replaced(monkeypatch, reader) -> None:
    """The helper stands for one stuck in process_vm_readv on a held mmap lock: the read
    times out and the pid is not tried again; no second helper is started in the run
    (each would be stuck too): reads fail at once while the one helper has not answered,
    and it is killed when the run ends."""
    buf = ctypes.create_string_buffer(b"still readable")
    monkeypatch.setattr(memory, "_serve", lambda requests, answers: time.sleep(60))  # in the child
    monkeypatch.setattr(memory, "DEADLINE", 0.2)
    reader._contention[12345] = None  # as if the check before the read had seen nothing
    with pytest.raises(Timeout, match="not read"):
        reader.read(12345, 0x1000, 8)
    late = reader._slot.helper
    assert late is not None and late.late == 8 and reader.stuck(12345)
    assert memory.memory_stuck(12345)  # what the stacks stage asks, while the reader is open
    with pytest.raises(Timeout):  # at once: the pid is not tried again
        reader.read(12345, 0x1000, 8)
    with pytest.raises(Timeout, match="held up"):  # another pid: no second helper either
        reader.read(os.getpid(), ctypes.addressof(buf), 5)
    assert reader._slot.helper is late and not reader._slot.abandoned
    with memory.MemoryReader() as another:  # the next run's reader tries again
        assert not another.stuck(12345)
    reader.close()
    late.proc.wait(5)  # the late helper was killed at the end of the run
    assert not memory.memory_stuck(12345)


def test_a_contended_mmap_lock_is_seen_before_the_read(monkeypatch, reader) -> None:
    """A thread queued on the target's mmap lock: its memory is not read at all, no
    helper is started, and the error says which thread holds the lock."""
    found = memory.Contention(4242, (memory.Contender(4243, "queued", "mmap", "vm_mmap_pgoff"),))
    monkeypatch.setattr(memory, "contention", lambda fs, pid: found if pid == 4242 else None)
    with pytest.raises(memory.MemoryLocked, match=r"^memory of process 4242 not read: its memory-map "
                                                   r"lock is held \(thread 4243 waits for it in mmap\(\)\)$"):
        reader.read(4242, 0x1000, 8)
    assert reader._slot.helper is None and reader.stuck(4242)
    reader.holder_of = lambda contention: (4250, 4251)
    another = memory.MemoryReader()
    another.holder_of = reader.holder_of
    with pytest.raises(memory.MemoryLocked, match="held by thread 4251 of process 4250$"):
        another.read(4242, 0x1000, 8)
    another.close()


def test_a_reader_killed_by_someone_else_is_replaced(reader) -> None:
    buf = ctypes.create_string_buffer(b"hello")
    assert reader.read(os.getpid(), ctypes.addressof(buf), 5) == b"hello"
    helper = reader._slot.helper
    assert helper is not None
    helper.proc.kill()
    helper.proc.wait(5)
    assert reader.read(os.getpid(), ctypes.addressof(buf), 5) == b"hello"  # a new helper
    assert reader._slot.helper is not None and reader._slot.helper is not helper
    os.kill(reader._slot.helper.proc.pid, 9)  # killed, and not yet known to be: the read fails over
    assert reader.read(os.getpid(), ctypes.addressof(buf), 5) == b"hello"


def _no_fork() -> int:
    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


def test_without_a_helper_memory_is_read_here(monkeypatch, reader) -> None:
    buf = ctypes.create_string_buffer(b"hello")
    monkeypatch.setattr(memory, "_fork", _no_fork)  # no process can be started
    assert reader.read(os.getpid(), ctypes.addressof(buf), 5) == b"hello"
    assert reader._slot.helper is None


def test_a_closed_reader_ends_its_helper_and_reads_no_more() -> None:
    buf = ctypes.create_string_buffer(b"hello")
    snap = Snapshot.scan(pids=[os.getpid()])
    with snap:
        assert snap.memory.read(os.getpid(), ctypes.addressof(buf), 5) == b"hello"
        helper = snap.memory.reader._slot.helper
        assert helper is not None and helper.proc.poll() is None
    assert helper.proc.wait(5) == 0  # EOF on its stdin: it exited
    with pytest.raises(WaitchainError):
        snap.memory.read(os.getpid(), ctypes.addressof(buf), 5)
    assert memory.read_partial(os.getpid(), ctypes.addressof(buf), 5) == b"hello"  # a short-lived reader


def test_the_helper_keeps_only_its_pipes_and_ignores_ctrl_c(reader, tmp_path: Path) -> None:
    """The helper is forked from us: of every fd we hold (here a file, a pipe, stdio), it
    keeps its two pipe ends only; it is named so in ps; SIGINT is blocked in it (Ctrl-C
    is waitchain's: EOF or SIGKILL ends it), and our own signal mask is as it was."""
    buf = ctypes.create_string_buffer(b"hello")
    held = open(tmp_path / "held", "w")
    r, w = os.pipe()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        assert reader.read(os.getpid(), ctypes.addressof(buf), 5) == b"hello"
        helper = reader._slot.helper
        assert helper is not None and helper.proc.pid in children(os.getpid())
        fds = os.listdir(f"/proc/{helper.proc.pid}/fd")
        theirs = sorted(os.readlink(f"/proc/{helper.proc.pid}/fd/{fd}") for fd in fds)
        ours = sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in (helper.to, helper.frm))
        assert theirs == ours and all(name.startswith("pipe:") for name in ours)
        assert _is_memory_reader(helper.proc.pid)
        assert _signal_mask(helper.proc.pid) & 1 << (signal.SIGINT - 1)
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
    finally:
        held.close()
        os.close(r)
        os.close(w)


def _signal_mask(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)


def test_the_helper_is_killed_and_reaped_when_the_reader_closes(reader) -> None:
    """Closing the reader ends its helper and reaps it there: no zombie, no child left,
    nothing left for an interrupt to kill; a stuck one (SIGKILL) is reaped as well."""
    buf = ctypes.create_string_buffer(b"hello")
    assert reader.read(os.getpid(), ctypes.addressof(buf), 5) == b"hello"
    pid = reader._slot.helper.proc.pid
    assert pid in waitchain_children.live()
    reader.close()
    assert pid not in children(os.getpid()) and pid not in waitchain_children.live()
    with pytest.raises(ChildProcessError):  # reaped already
        os.waitpid(pid, os.WNOHANG)


def test_a_helper_forked_from_a_worker_thread_reads(reader) -> None:
    """The stacks stage reads memory from worker threads while other threads run: the
    helper forked in one works (it takes no lock another thread may hold: here the
    readers' registry is held all along), and the warning of Python 3.12+ about fork() in
    a process with threads does not reach the user, even with every warning shown."""
    buf = ctypes.create_string_buffer(b"from a thread")
    got: list = []
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with memory._sessions_lock:
            held.set()
            release.wait(30)

    other = threading.Thread(target=holder)
    other.start()
    try:
        assert held.wait(30)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            worker = threading.Thread(
                target=lambda: got.append(reader.read(os.getpid(), ctypes.addressof(buf), 13)))
            worker.start()
            worker.join(30)
        assert got == [b"from a thread"] and reader._slot.helper is not None
        assert [str(w.message) for w in caught] == []
    finally:
        release.set()
        other.join(30)


def test_memory_of_a_recorded_proc_is_not_read(mini_proc: Path) -> None:
    buf = ctypes.create_string_buffer(b"hello")
    with Snapshot.scan(ProcFS(str(mini_proc))) as snap, pytest.raises(WaitchainError):
        snap.memory.read(os.getpid(), ctypes.addressof(buf), 5)


def test_the_cli_leaves_no_memory_reader_behind(run_py, run_cli) -> None:
    """The sleep's timespec is read through the snapshot's helper, which ends with the run
    (the CLI closes the snapshot)."""
    program = run_py("""
        ready("sleeping")
        time.sleep(3600)
        """)
    program.ready()
    wait_blocked(program.pid, "clock_nanosleep", "nanosleep", "pselect6")
    result = run_cli(str(program.pid), "--json", "--no-stacks")
    assert result.code == 0, result.err
    assert not [pid for pid in children(os.getpid()) if _is_memory_reader(pid)]


def _is_memory_reader(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip() == memory.NAME
    except OSError:
        return False


def test_own_memory_past_the_end_of_a_mapping_does_not_crash() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    region = ctypes.CDLL(None).mmap
    region.restype = ctypes.c_void_p
    region.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    base = region(None, 2 * page, 3, 0x22, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
    ctypes.CDLL(None).munmap(ctypes.c_void_p(base + page), page)
    assert len(memory.read_own(base + page - 16, 2048)) == 16


# --- pidfd_getfd --------------------------------------------------------------------------


def test_pipe_fill_touches_nothing_of_another_process_or_a_non_pipe() -> None:
    r, w = os.pipe()
    a, b = socket.socketpair()
    try:
        os.write(w, b"x" * 10)
        fill = pidfd.pipe_fill(os.getpid(), w)
        assert fill is not None and fill.used == 10
        assert pidfd.pipe_fill(os.getpid(), w, lambda: False) is None  # the pid was reused
        assert pidfd.pipe_fill(os.getpid(), a.fileno()) is None  # no ioctl on a socket
        assert pidfd.pipe_fill(_gone_pid(), w) is None
        before = set(os.listdir("/proc/self/fd"))
        pidfd.pipe_fill(os.getpid(), w)
        assert set(os.listdir("/proc/self/fd")) == before  # the duplicate is closed
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


# --- /proc text and files this kernel lacks -------------------------------------------------


def test_text_past_the_limit_ends_with_a_whole_line(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"".join(b"line %06d\n" % i for i in range(20000)))
    fd = os.open(big, os.O_RDONLY)
    try:
        text = _read_all(fd, 100_000)
    finally:
        os.close(fd)
    assert len(text) <= 100_000 and text.endswith(b"\n")
    assert text.splitlines()[-1] == b"line %06d" % (len(text.splitlines()) - 1)


@pytest.fixture
def mini_proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    shutil.copytree(DATA / "proc", root)
    for links in root.glob("*/fd.links"):
        (links.parent / "fd").mkdir()
        for line in links.read_text().splitlines():
            fd, target = line.split(" ", 1)
            os.symlink(target, links.parent / "fd" / fd)
    return root


def test_a_kernel_without_the_syscall_file(mini_proc: Path) -> None:
    for syscall in mini_proc.glob("*/task/*/syscall"):
        syscall.unlink()
    snap = Snapshot.scan(ProcFS(str(mini_proc)))
    tasks = snap.tasks(READER)
    assert tasks and all(t.syscall is None for t in tasks)
    assert all("does not provide /proc/PID/task/" in t.note for t in tasks)
    wait = wait_of(snap, READER, tasks[0])
    assert wait.end is not None and wait.end.kind == "unknown"


def test_a_thread_with_garbage_stat_is_skipped(mini_proc: Path) -> None:
    (mini_proc / str(READER) / "task" / "23571" / "stat").write_text("23571 (x) S 1 2")
    snap = Snapshot.scan(ProcFS(str(mini_proc)))
    assert [t.tid for t in snap.tasks(READER)] == [READER]


def test_sock_diag_that_fails_is_asked_once(monkeypatch, mini_proc: Path) -> None:
    calls = []

    def refuse(inodes):
        calls.append(inodes)
        raise Timeout(None, "NETLINK_SOCK_DIAG for unix sockets")

    monkeypatch.setattr(sockdiag, "unix_lookup", refuse)
    snap = Snapshot.scan(ProcFS(str(mini_proc)))
    assert [snap.unix_socket(i) for i in (11, 12, 13)] == [None, None, None]
    assert len(calls) == 1
    assert sum("unix socket peers unavailable" in n for n in snap.notes) == 1


def test_signalfd_with_a_garbage_mask(mini_proc: Path) -> None:
    from waitchain.waits import signals

    snap = Snapshot.scan(ProcFS(str(mini_proc)))
    snap._fdinfo[(READER, 3)] = snap.fdinfo(READER, 3).__class__(0, 0, 0, 0, (("sigmask", "zz"),))
    wait = signals.fd_wait(snap, READER, READER, 3, "anon_inode:[signalfd]", False, "read(3)")
    assert wait is not None and wait.end.kind == "signal"


def test_sysvipc_rows_without_the_expected_columns(monkeypatch, mini_proc: Path) -> None:
    from waitchain.waits import objects

    snap = Snapshot.scan(ProcFS(str(mini_proc)))
    monkeypatch.setattr(snap, "sysvipc", lambda kind: [{"msqid": 3, "semid": 3}])
    task = Task(READER, "x", "S", Syscall(70, "msgrcv", (3, 0, 0, 0, 0, 0)))
    assert "holds ? messages" in objects.rule(snap, READER, task).end.detail
    task = Task(READER, "x", "S", Syscall(65, "semop", (3, 0, 0, 0, 0, 0)))
    assert "? semaphores" in objects.rule(snap, READER, task).end.detail


# --- stacks -------------------------------------------------------------------------------


def test_a_failing_read_in_a_deadline_thread_is_the_default(capsys) -> None:
    def boom() -> str:
        raise ValueError("embedded null byte")

    before = threading.active_count()
    assert with_deadline(boom, 2.0, "default") == "default"
    assert "Traceback" not in capsys.readouterr().err
    assert threading.active_count() <= before + 1
