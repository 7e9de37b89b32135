"""Blocked opens of FIFOs (a FIFO reader is in test_core_chains.py), terminals, signals and
time, eventfd and other local objects: real processes, the exact edge kind, holder and end."""

from __future__ import annotations

import ctypes
import os
from typing import Any, Dict

import pytest
from scenario_helpers import only_chain, thread_of

from waitchain.demo.harness import wait_blocked

libc = ctypes.CDLL(None, use_errno=True)
IPC_RMID = 0


def end_of(data: Dict[str, Any], pid: int) -> Dict[str, Any]:
    end = thread_of(data, pid, pid)["end"]
    assert end is not None, thread_of(data, pid, pid)
    return end


# --- FIFOs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, missing", [("O_RDONLY", "for writing"), ("O_WRONLY", "for reading")])
def test_open_of_a_fifo_nobody_opened(run_py, diagnose_pid, tmp_path, mode, missing) -> None:
    (tmp_path / "sub").mkdir()
    os.mkfifo(str(tmp_path / "sub" / "fifo"))
    opener = run_py(f"""
        os.chdir(sys.argv[1])
        ready("opening")
        os.open("sub/./fifo", os.{mode})
        """, str(tmp_path))
    opener.ready()
    wait_blocked(opener.pid, "openat", "open")

    data, code = diagnose_pid(opener.pid)

    assert code == 0 and data["edges"] == []
    end = end_of(data, opener.pid)
    path = str(tmp_path / "sub" / "fifo")
    assert end["kind"] == "idle"
    assert end["detail"] == f"nobody has opened the FIFO {path} {missing}"
    assert f'"{path}", {mode}' in thread_of(data, opener.pid, opener.pid)["waits"]


# --- terminals -------------------------------------------------------------------------------


def test_pty_slave_reader_waits_for_the_master_holder(run_py, diagnose_pid, wait_sleeping) -> None:
    parent = run_py("""
        master, slave = os.openpty()
        if os.fork() == 0:
            os.close(master)
            ready("child", os.ttyname(slave))
            os.read(slave, 1)
            os._exit(0)
        os.close(slave)
        ready("parent")
        sleep_forever()
        """)
    lines = {words[1]: words for words in parent.ready(2)}
    child, slave = int(lines["child"][0]), lines["child"][2]
    wait_blocked(child, "read")
    wait_sleeping(parent.pid)

    data, code = diagnose_pid(child)

    assert code == 0
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["kind"], edge["object"]) == (parent.pid, "pty", slave)
    assert f"tty-index: {slave.rsplit('/', 1)[1]}" in edge["evidence"]
    assert edge["pty"] == {"side": "slave", "index": int(slave.rsplit('/', 1)[1])}
    assert edge["label"] == "waits for input from the terminal (the pty master's holder)"
    assert only_chain(data)["path"] == [child, parent.pid]


# --- signals and time -------------------------------------------------------------------------


def test_pause_ends_in_signal(run_py, diagnose_pid) -> None:
    program = run_py("""
        signal.signal(signal.SIGUSR1, lambda *a: None)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
        ready("pausing")
        signal.pause()
        """)
    program.ready()
    wait_blocked(program.pid, "pause", "rt_sigsuspend", "ppoll")

    data, code = diagnose_pid(program.pid)

    assert code == 0 and data["edges"] == []
    end = end_of(data, program.pid)
    if thread_of(data, program.pid, program.pid)["syscall"]["name"] == "ppoll":
        pytest.skip("pause() is ppoll on this architecture (the poll rule's)")
    assert end["kind"] == "signal"
    assert "blocked: SIGUSR2" in end["detail"] and "SIGUSR1" in end["detail"]
    assert only_chain(data)["end"]["kind"] == "signal"


def test_sigwait_names_the_awaited_signals(run_py, diagnose_pid) -> None:
    program = run_py("""
        wanted = [signal.SIGUSR1, signal.SIGTERM]
        signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
        ready("waiting")
        signal.sigwait(wanted)
        """)
    program.ready()
    wait_blocked(program.pid, "rt_sigtimedwait")

    data, _ = diagnose_pid(program.pid)

    end = end_of(data, program.pid)
    assert end["kind"] == "signal"
    assert end["detail"].startswith("waits for SIGUSR1, SIGTERM") and "no timeout" in end["detail"]


def test_nanosleep_shows_the_time_left(run_py, diagnose_pid) -> None:
    program = run_py("""
        class Timespec(ctypes.Structure):
            _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
        ready("sleeping")
        libc.nanosleep(ctypes.byref(Timespec(1000, 0)), None)
        """)
    program.ready()
    wait_blocked(program.pid, "nanosleep", "clock_nanosleep")

    data, _ = diagnose_pid(program.pid)

    end = end_of(data, program.pid)
    assert end["kind"] == "sleeping"
    assert "for 16.7 min" in end["detail"] and "left" in end["detail"]


# --- eventfd and other objects ---------------------------------------------------------------


def test_eventfd_reader_waits_for_the_other_holder(run_py, diagnose_pid, wait_sleeping) -> None:
    program = run_py("""
        efd = libc.eventfd(0, 0)
        if os.fork() == 0:
            ready("child")
            sleep_forever()
        ready("parent")
        os.read(efd, 8)
        """)
    lines = {words[1]: int(words[0]) for words in program.ready(2)}
    child = lines["child"]
    wait_blocked(program.pid, "read")
    wait_sleeping(child)

    data, code = diagnose_pid(program.pid)

    assert code == 0
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["kind"]) == (child, "eventfd")
    assert edge["object"].startswith("eventfd-id ") and "eventfd-id:" in edge["evidence"]
    assert edge["label"] == "waits for a write to the eventfd"
    assert only_chain(data)["path"] == [program.pid, child]


def test_eventfd_of_another_process_is_not_followed(run_py, diagnose_pid, wait_sleeping) -> None:
    """Two unrelated eventfds share the link target anon_inode:[eventfd]: no edge between."""
    other = run_py("""
        efd = libc.eventfd(0, 0)
        ready("holding")
        sleep_forever()
        """)
    reader = run_py("""
        efd = libc.eventfd(0, 0)
        ready("reading")
        os.read(efd, 8)
        """)
    other.ready(), reader.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(other.pid)

    data, _ = diagnose_pid(reader.pid)

    assert data["edges"] == []
    assert "no other process holds eventfd-id" in end_of(data, reader.pid)["detail"]


def test_disarmed_timerfd_and_inotify_end_the_chain(run_py, diagnose_pid, tmp_path) -> None:
    timer = run_py("""
        fd = libc.timerfd_create(1, 0)
        ready("reading")
        os.read(fd, 8)
        """)
    watcher = run_py("""
        fd = libc.inotify_init1(0)
        libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x100)
        ready("reading")
        os.read(fd, 4096)
        """, str(tmp_path))
    timer.ready(), watcher.ready()
    wait_blocked(timer.pid, "read")
    wait_blocked(watcher.pid, "read")

    timer_end = end_of(diagnose_pid(timer.pid)[0], timer.pid)
    watcher_end = end_of(diagnose_pid(watcher.pid)[0], watcher.pid)

    assert timer_end["kind"] == "sleeping" and "disarmed" in timer_end["detail"]
    assert watcher_end["kind"] == "idle" and "file-system events" in watcher_end["detail"]
    assert "1 watch)" in watcher_end["detail"]


def test_mqueue_receiver_waits_for_the_other_holder(run_py, diagnose_pid, wait_sleeping) -> None:
    name = f"/waitchain-test-{os.getpid()}"
    program = run_py("""
        libc.mq_open.restype = ctypes.c_int
        mq = libc.mq_open(sys.argv[1].encode(), os.O_CREAT | os.O_RDWR, 0o600, None)
        libc.mq_unlink(sys.argv[1].encode())
        if os.fork() == 0:
            ready("child")
            sleep_forever()
        buf = ctypes.create_string_buffer(1 << 16)
        ready("parent", mq)
        libc.mq_receive(mq, buf, len(buf), None)
        """, name)
    lines = {words[1]: int(words[0]) for words in program.ready(2)}
    wait_blocked(program.pid, "mq_timedreceive")
    wait_sleeping(lines["child"])

    data, code = diagnose_pid(program.pid)

    assert code == 0
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["kind"], edge["object"]) == (lines["child"], "mqueue", f"mqueue {name} (deleted)")
    assert edge["label"] == "waits for a message"


def _sysv(request: str, run_py, diagnose_pid) -> Dict[str, Any]:
    """Run `request` (which creates a SysV object `ident` and blocks on it); remove it after."""
    program = run_py(request)
    words = program.ready()[0]
    ident, remove = int(words[2]), {"msg": libc.msgctl, "sem": libc.semctl}[words[1]]
    try:
        wait_blocked(program.pid, "msgrcv", "semop", "semtimedop")
        return end_of(diagnose_pid(program.pid)[0], program.pid)
    finally:
        if words[1] == "sem":
            remove(ident, 0, IPC_RMID)
        else:
            remove(ident, IPC_RMID, None)


def test_sysv_msgrcv_and_semop_end_with_the_object(run_py, diagnose_pid) -> None:
    msg = _sysv("""
        qid = libc.msgget(0, 0o600)  # IPC_PRIVATE
        buf = ctypes.create_string_buffer(64)
        ready("msg", qid)
        libc.msgrcv(qid, buf, 56, 0, 0)
        """, run_py, diagnose_pid)
    sem = _sysv("""
        sid = libc.semget(0, 1, 0o600)
        op = (ctypes.c_short * 3)(0, -1, 0)
        ready("sem", sid)
        libc.semop(sid, op, 1)
        """, run_py, diagnose_pid)

    assert msg["kind"] == "idle" and "holds 0 messages" in msg["detail"]
    assert "/proc/sysvipc/msg" in msg["detail"]
    assert sem["kind"] == "unknown" and "semaphore #0 to be ≥ 1" in sem["detail"]
    assert "no owner" in sem["detail"]


def test_signalfd_read_ends_in_signal(run_py, diagnose_pid) -> None:
    program = run_py("""
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
        mask = ctypes.c_uint64(1 << (signal.SIGUSR2 - 1))
        fd = libc.signalfd(-1, ctypes.byref(mask), 0)
        ready("reading")
        os.read(fd, 128)
        """)
    program.ready()
    wait_blocked(program.pid, "read")

    end = end_of(diagnose_pid(program.pid)[0], program.pid)

    assert end["kind"] == "signal" and end["detail"].startswith("waits for SIGUSR2 through signalfd")

