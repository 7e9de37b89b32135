"""Edge labels: every kind of edge worded from its facts (render/labels.py), the sentences the
wait rules used to write."""

from __future__ import annotations

from typing import Any

import pytest

from waitchain import records
from waitchain.model import Alternative, Edge, EdgeKind, FileLock, Fuse, LockType, PipeFill, Pty, PtySide
from waitchain.render.labels import SENTENCES, label, label_head

W, T = 10, 11  # the waiter: process 10, thread 11


def edge(kind: EdgeKind, to_pid: int = 20, **facts: Any) -> Edge:
    return Edge(W, T, to_pid, facts.pop("to_tid", None), kind, "obj", "evidence", **facts)


def test_every_kind_of_edge_has_a_sentence() -> None:
    assert set(SENTENCES) == set(EdgeKind)


@pytest.mark.parametrize("built,said", [
    (edge(EdgeKind.PIPE), "waits for the writer"),
    (edge(EdgeKind.FIFO, W, holder_fds=(4,)),
     "it holds the write end itself (fd 4): another of its threads, or a process that opens the "
     "FIFO, may write"),
    (edge(EdgeKind.PIPE, W, holder_fds=(4, 5)),
     "it holds the write end itself (fds 4, 5): EOF cannot come; only another of its threads can write"),
    (edge(EdgeKind.TCP, queued=0), "waits for the peer"),
    (edge(EdgeKind.UNIX, writing=True, queued=12), "waits for the peer to read (12 B unsent)"),
    (edge(EdgeKind.TCP, unaccepted=True, queued=0), "waits for the server to accept the connection"),
    (edge(EdgeKind.UNIX, W, holder_fds=(4,)),
     "waits for the peer: it holds the peer itself (fd 4); another of its threads must act"),
    (edge(EdgeKind.TCP, W, holder_fds=(4, 6)),
     "waits for the peer: it holds the peer itself (fds 4, 6); another of its threads must act"),
    (edge(EdgeKind.CHILD), "waits for its child"),
    (edge(EdgeKind.REAP), "exited, not reaped by its parent 20"),
    (edge(EdgeKind.PTRACE), "stopped under ptrace: waits for its tracer 20 to resume it"),
    (edge(EdgeKind.SIGCHLD), "its exit sends SIGCHLD, which ends the wait"),
    (edge(EdgeKind.FLOCK, lock=FileLock(LockType.WRITE, 0, None)), "waits for the holder of a WRITE flock"),
    (edge(EdgeKind.POSIX_LOCK, lock=FileLock(LockType.READ, 0, 99)), "waits for the holder of a READ POSIX lock"),
    (edge(EdgeKind.OFD_LOCK), "waits for the holder of an OFD lock"),
    (edge(EdgeKind.LOCK), "waits for the holder of a file lock"),
    (edge(EdgeKind.MUTEX, W, to_tid=12), "waits for thread 12, the mutex owner"),
    (edge(EdgeKind.MUTEX, 20, to_tid=21), "waits for thread 21 of process 20, the mutex owner"),
    (edge(EdgeKind.MUTEX, W, to_tid=T), "waits for itself: it relocks a mutex it holds"),
    (edge(EdgeKind.JOIN, W, to_tid=5), "waits for thread 5 to exit"),
    (edge(EdgeKind.PTY, pty=Pty(PtySide.SLAVE, 3)), "waits for input from the terminal (the pty master's holder)"),
    (edge(EdgeKind.PTY, writing=True, pty=Pty(PtySide.SLAVE, 3)),
     "waits for the terminal (the pty master's holder) to read its output"),
    (edge(EdgeKind.PTY, pty=Pty(PtySide.MASTER, 3)), "waits for output from the programs on /dev/pts/3"),
    (edge(EdgeKind.PTY, writing=True, pty=Pty(PtySide.MASTER, 3)),
     "waits for the programs on /dev/pts/3 to read their input"),
    (edge(EdgeKind.EVENTFD), "waits for a write to the eventfd"),
    (edge(EdgeKind.EVENTFD, writing=True), "waits for a reader to drain the counter"),
    (edge(EdgeKind.MQUEUE), "waits for a message"),
    (edge(EdgeKind.MQUEUE, writing=True), "waits for a receiver to make room"),
    (edge(EdgeKind.FUSE, fuse=Fuse("/mnt/x")), "waits for the FUSE daemon of /mnt/x to answer"),
    (edge(EdgeKind.FUSE, fuse=Fuse("/mnt/x", inferred=True)), "probably waits for the FUSE daemon of /mnt/x to answer"),
])
def test_each_kind_is_said_from_its_facts(built: Edge, said: str) -> None:
    assert label(built) == said == label_head(built)


@pytest.mark.parametrize("fill,said", [
    (PipeFill(65536, 65536), "pipe full 64 KiB/64 KiB; reader is 20"),
    (PipeFill(4096, 65536), "pipe holds 4 KiB/64 KiB, no room for this write; reader is 20"),
    (PipeFill(1000, 1000), "pipe full 1000 B/1000 B; reader is 20"),
    (PipeFill(1536, 1536), "pipe full 1.5 KiB/1.5 KiB; reader is 20"),
    (None, "pipe full; reader is 20"),
])
def test_a_blocked_pipe_write_is_said_from_its_fill(fill, said: str) -> None:
    write = edge(EdgeKind.PIPE, writing=True, fill=fill)
    assert label(write) == said
    assert label_head(write) == said.split("; ")[0]  # a step names the reader already


def test_a_pipe_only_its_writer_reads_says_so() -> None:
    assert label(edge(EdgeKind.FIFO, W, writing=True)) == "pipe full; reader is 10 (itself)"


def test_an_alternative_of_an_or_wait_says_which_fd_it_is() -> None:
    read = edge(EdgeKind.TCP, queued=0, fd=6, syscall="epoll_wait",
                alternative=Alternative(3, "EPOLLIN", "TCP 127.0.0.1:5000→127.0.0.1:40000"))
    assert label(read) == ("waits for any of 3 fds, here fd 6<TCP 127.0.0.1:5000→127.0.0.1:40000> (EPOLLIN): "
                           "waits for the peer")
    write = edge(EdgeKind.PIPE, writing=True, fill=PipeFill(65536, 65536), fd=4, syscall="select",
                 alternative=Alternative(1, "write set", "pipe:[7]"))
    assert label(write) == "waits for any of 1 fd, here fd 4<pipe:[7]> (write set): pipe full 64 KiB/64 KiB; reader is 20"
    assert label_head(write) == "waits for any of 1 fd, here fd 4<pipe:[7]> (write set): pipe full 64 KiB/64 KiB"


def test_untrusted_text_in_a_label_is_escaped() -> None:
    evil = "/mnt/\x1b[2Jx"
    assert label(edge(EdgeKind.FUSE, fuse=Fuse(evil))) == "waits for the FUSE daemon of /mnt/\\x1b[2Jx to answer"
    polled = edge(EdgeKind.FIFO, fd=3, alternative=Alternative(2, "POLLIN", evil))
    assert "\x1b" not in label(polled) and "\x1b" not in label_head(polled)


def test_a_label_does_not_depend_on_the_evidence() -> None:
    built = edge(EdgeKind.PIPE)
    assert label(records.replace(built, evidence="write end read end")) == label(built)
