"""Parsers of /proc text, on files recorded on this machine (x86_64, kernel 6.18) from
processes made for the purpose: a reader blocked in read() on a pipe whose comm is
"x) (y z) 1" with a second thread in clock_nanosleep, a writer holding the pipe's write end,
a socket and an epoll fd, a busy loop (running, then SIGSTOPped in user space), and a C
program that wrote its title over argv (setproctitle style). tests/data/proc/ holds the
reader's and writer's files as a mini /proc; fd symlinks are made at test time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from waitchain.engine import diagnose
from waitchain.model import READ, READ_WRITE, WRITE, Holder, Syscall
from waitchain.procfs.fds import inode_of, parse_fdinfo, target_kind
from waitchain.procfs.process import parse_cmdline, parse_stat
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.tasks import parse_syscall
from waitchain.snapshot import Snapshot

DATA = Path(__file__).resolve().parent.parent / "data"
READER, NAPPER, WRITER, PARENT = 23569, 23571, 23570, 23528
PIPE, SOCK = "pipe:[708542]", "socket:[708547]"
x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="recorded on x86_64")


def text(name: str) -> str:
    return (DATA / name).read_text()


# --- /proc/PID/stat ------------------------------------------------------------------------


def test_stat_with_parens_and_spaces_in_comm() -> None:
    stat = parse_stat(text("stat_comm_paren.txt"))
    assert stat.pid == READER
    assert stat.comm == "x) (y z) 1"
    assert (stat.state, stat.ppid, stat.pgrp) == ("S", PARENT, READER)
    assert (stat.utime, stat.stime) == (3, 0)
    assert stat.starttime == 77470


@pytest.mark.parametrize("line", [
    "",
    "garbage",
    "123 (x) S 1 2 3",  # truncated
    "abc (x) S " + " ".join(["0"] * 40),  # pid not a number
    "123 x S " + " ".join(["0"] * 40),  # no parentheses
])
def test_stat_garbage(line: str) -> None:
    with pytest.raises(ValueError):
        parse_stat(line)


# --- /proc/PID/task/TID/syscall --------------------------------------------------------------


def test_syscall_blocked_read() -> None:
    call, note = parse_syscall(text("syscall_read.txt"), "x86_64")
    assert note == ""
    assert call == Syscall(0, "read", (3, 0x7F5FF1512870, 1, 0x7F5FF1043720, 0, 0))
    assert call.arg_int(0) == 3


def test_syscall_nanosleep() -> None:
    call, note = parse_syscall(text("syscall_nanosleep.txt"), "x86_64")
    assert (call.name, call.nr, note) == ("clock_nanosleep", 230, "")


def test_syscall_aarch64_numbering() -> None:
    call, _ = parse_syscall("63 0x3 0x1000 0x1 0x0 0x0 0x0 0xffff0000 0xaaaa0000", "aarch64")
    assert (call.name, call.args[0]) == ("read", 3)


def test_syscall_running() -> None:
    assert parse_syscall(text("syscall_running.txt")) == (None, "running")


def test_syscall_outside_a_call() -> None:
    """`-1 SP PC`: stopped in user space (recorded), or blocked in a page fault."""
    call, note = parse_syscall(text("syscall_stopped.txt"))
    assert call is None
    assert note.startswith("not in a system call")


def test_syscall_negative_fd_argument() -> None:
    call, _ = parse_syscall("61 0xffffffffffffffff 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", "x86_64")
    assert (call.name, call.arg_int(0)) == ("wait4", -1)


@pytest.mark.parametrize("line", [
    "zz 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8",
    "0 0xZZ 0x2 0x3 0x4 0x5 0x6 0x7 0x8",
    "0 0x3",  # truncated: fewer than six arguments
    "\x00\x01binary",
])
def test_syscall_garbage(line: str) -> None:
    assert parse_syscall(line, "x86_64") == (None, "unreadable syscall line")


def test_syscall_empty() -> None:
    assert parse_syscall("")[0] is None


# --- /proc/PID/fdinfo/FD -----------------------------------------------------------------


def test_fdinfo_pipe_read_end() -> None:
    info = parse_fdinfo(text("fdinfo_pipe_read.txt"))
    assert (info.pos, info.flags, info.mnt_id, info.ino) == (0, 0, 16, 708542)
    assert info.access == READ
    assert info.extra == ()


def test_fdinfo_pipe_write_end() -> None:
    info = parse_fdinfo(text("fdinfo_pipe_write.txt"))
    assert (info.flags, info.ino) == (0o1, 708542)
    assert info.access == WRITE


def test_fdinfo_socket() -> None:
    info = parse_fdinfo(text("fdinfo_socket.txt"))
    assert info.flags == 0o2000002  # O_CLOEXEC | O_RDWR
    assert (info.access, info.ino, info.mnt_id) == (READ_WRITE, 708547, 10)
    assert info.extra == (("scm_fds", "0"),)


def test_fdinfo_epoll_keeps_tfd_lines() -> None:
    info = parse_fdinfo(text("fdinfo_epoll.txt"))
    assert (info.access, info.ino) == (READ_WRITE, 1038)
    tfds = [value.split() for key, value in info.extra if key == "tfd"]
    assert [words[0] for words in tfds] == ["4", "3"]
    assert [words[2] for words in tfds] == ["1c", "19"]  # events: EPOLLOUT|..., EPOLLIN|...
    assert "ino:acfbe" in tfds[0]


def test_fdinfo_garbage() -> None:
    info = parse_fdinfo("garbage\nflags:\tnot-octal\npos: -\n: empty key\nlock:\t1: FLOCK\n")
    assert (info.pos, info.flags, info.ino) == (0, 0, 0)
    assert ("lock", "1: FLOCK") in info.extra


@pytest.mark.parametrize("target,kind,inode", [
    (PIPE, "pipe", 708542),
    (SOCK, "socket", 708547),
    ("anon_inode:[eventpoll]", "anon", None),
    ("/tmp/fifo (deleted)", "path", None),
    ("net:[4026531840]", "other", None),
    ("pipe:[12x]", "pipe", None),
])
def test_fd_targets(target: str, kind: str, inode) -> None:
    assert (target_kind(target), inode_of(target)) == (kind, inode)


# --- /proc/PID/cmdline ---------------------------------------------------------------------


def test_cmdline_with_nuls() -> None:
    line = parse_cmdline((DATA / "cmdline_nuls.bin").read_bytes())
    assert line.startswith("/root/.pyenv/versions/3.11.7/bin/python3 -c \nimport ctypes")
    assert line.endswith("os.read(r, 1)\n 3")
    assert "\0" not in line


def test_cmdline_rewritten_title_without_nuls() -> None:
    raw = (DATA / "cmdline_title.bin").read_bytes()
    assert raw.count(b"\0") == 1  # only the terminator: the kernel reads on into environ
    line = parse_cmdline(raw)
    assert line == raw[:-1].decode()
    assert line.startswith("nginx: worker process   ") and line.endswith("   LANG=C")


@pytest.mark.parametrize("raw,expected", [
    (b"a\0b c\0", "a b c"),
    (b"a\0\0b\0", "a  b"),
    (b"no-terminator", "no-terminator"),
    (b"\xff\xfe\0x\0", "\\xff\\xfe x"),
    (b"", ""),
])
def test_cmdline_edge_cases(raw: bytes, expected: str) -> None:
    assert parse_cmdline(raw) == expected


# --- a recorded mini /proc through ProcFS(root) ----------------------------------------------


@pytest.fixture
def mini_proc(tmp_path: Path) -> ProcFS:
    """tests/data/proc copied, with fd/N symlinks made from each fd.links file."""
    root = tmp_path / "proc"
    shutil.copytree(DATA / "proc", root)
    for links in root.glob("*/fd.links"):
        fd_dir = links.parent / "fd"
        fd_dir.mkdir()
        for line in links.read_text().splitlines():
            fd, target = line.split(" ", 1)
            os.symlink(target, fd_dir / fd)
    return ProcFS(str(root))


def test_mini_proc_processes(mini_proc: ProcFS) -> None:
    snap = Snapshot.scan(mini_proc)
    assert sorted(snap.processes) == [READER, WRITER]
    reader = snap.processes[READER]
    assert (reader.comm, reader.state, reader.ppid, reader.starttime) == ("x) (y z) 1", "S", PARENT, 77470)
    assert reader.fds == {3: PIPE}
    assert snap.processes[WRITER].fds == {4: PIPE, 3: SOCK, 6: "anon_inode:[eventpoll]"}
    assert sorted(snap.children[PARENT]) == [READER, WRITER]
    assert snap.notes == []


def test_mini_proc_holders_index(mini_proc: ProcFS) -> None:
    snap = Snapshot.scan(mini_proc)
    index = {target: sorted(holders) for target, holders in snap.holders.items()}
    assert index == {
        PIPE: [(READER, 3), (WRITER, 4)],
        SOCK: [(WRITER, 3)],
        "anon_inode:[eventpoll]": [(WRITER, 6)],
    }
    holders = sorted(snap.holders_of(PIPE), key=lambda h: h.pid)
    assert holders == [Holder(READER, 3, READ), Holder(WRITER, 4, WRITE)]
    assert snap.holders_of(SOCK) == [Holder(WRITER, 3, READ_WRITE)]


@x86_64
def test_mini_proc_tasks(mini_proc: ProcFS) -> None:
    snap = Snapshot.scan(mini_proc)
    main, napper = snap.tasks(READER)
    assert (main.tid, main.comm, main.state, main.wchan) == (READER, "x) (y z) 1", "S", "anon_pipe_read")
    assert main.syscall == Syscall(0, "read", (3, 0x7F5FF1512870, 1, 0x7F5FF1043720, 0, 0))
    assert (napper.tid, napper.syscall.name, napper.wchan) == (NAPPER, "clock_nanosleep", "hrtimer_nanosleep")
    (writer,) = snap.tasks(WRITER)
    assert (writer.tid, writer.syscall.name) == (WRITER, "clock_nanosleep")
    assert snap.tasks(4242) == []
    assert snap.cmdline(WRITER).endswith("time.sleep(3600)\n 4")


@x86_64
def test_mini_proc_diagnosis(mini_proc: ProcFS) -> None:
    """The whole pipeline on recorded text: the reader waits for the sleeping writer."""
    diag = diagnose(Snapshot.scan(mini_proc), [READER])
    (chain,) = diag.chains
    assert chain.path == (READER, WRITER)
    assert (chain.end.kind, chain.end.pid, chain.end.tid) == ("sleeping", WRITER, WRITER)
    (edge,) = diag.edges
    assert (edge.from_pid, edge.from_tid, edge.to_pid, edge.kind, edge.object) == (
        READER, READER, WRITER, "pipe", PIPE)
    assert diag.cycles == [] and not diag.deadlocked
