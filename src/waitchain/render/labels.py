"""An edge's label: the sentence for people on a waits-for edge, made from its facts ("waits
for the writer", "pipe full 64 KiB/64 KiB; reader is 23270", "waits for thread 5, the mutex
owner"). Every format words an edge here, and only here; the JSON carries it as `label`."""

from __future__ import annotations


from ..model import Edge, EdgeKind, Ownerless, PtySide
from ..sanitize import clean
from . import db

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Tuple

PIPES = (EdgeKind.PIPE, EdgeKind.FIFO)
LOCK_NOUNS = {EdgeKind.FLOCK: "flock", EdgeKind.POSIX_LOCK: "POSIX lock", EdgeKind.OFD_LOCK: "OFD lock",
              EdgeKind.LOCK: "file lock"}
PTS = "/dev/pts/"


def label(edge: Edge) -> str:
    """The edge's label, control characters escaped (paths and fd texts are untrusted)."""
    return clean("; ".join(_parts(edge)))


def label_head(edge: Edge) -> str:
    """The label without who is at the other end ("pipe full 64 KiB/64 KiB"), for a
    sentence that names that process already."""
    return clean(_parts(edge)[0])


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count / 1024:.1f} KiB"


def _parts(edge: Edge) -> Tuple[str, ...]:
    """The sentence, and for a write to a pipe who reads it apart (a step leaves it out);
    an alternative of an OR wait says first which of the watched fds it is."""
    parts = _pipe_write(edge) if edge.kind in PIPES and edge.writing else (_sentence(edge),)
    alt = edge.alternative
    if alt is None:
        return parts
    which = f"waits for any of {alt.count} fd{'' if alt.count == 1 else 's'}, here fd {edge.fd}<{alt.watched}>"
    return (f"{which} ({alt.events}): {parts[0]}",) + parts[1:]


def _pipe_write(edge: Edge) -> Tuple[str, str]:
    reader = f"reader is {edge.to_pid}" + (" (itself)" if edge.to_pid == edge.from_pid else "")
    fill = edge.fill
    if fill is None:
        return "pipe full", reader
    used = f"{size(fill.used)}/{size(fill.size)}"
    if not fill.full:
        return f"pipe holds {used}, no room for this write", reader
    return f"pipe full {used}", reader


def _sentence(edge: Edge) -> str:
    return SENTENCES[edge.kind](edge)


def _fds(fds: Tuple[int, ...]) -> str:
    """`fd 4`, `fds 4, 5`."""
    return f"fd{'s' if len(fds) > 1 else ''} {', '.join(map(str, fds))}"


def _own(edge: Edge) -> bool:
    """The waiter's own process holds the other end: another of its threads must act."""
    return edge.to_pid == edge.from_pid


def _pipe_read(edge: Edge) -> str:
    if _own(edge) and edge.kind == EdgeKind.FIFO:
        return (f"it holds the write end itself ({_fds(edge.holder_fds)}): another of its threads, "
                "or a process that opens the FIFO, may write")
    if _own(edge):
        return (f"it holds the write end itself ({_fds(edge.holder_fds)}): EOF cannot come; "
                "only another of its threads can write")
    return "waits for the writer"


def _socket(edge: Edge) -> str:
    if edge.unaccepted:
        said = "waits for the server to accept the connection"
    elif edge.writing:
        said = "waits for the peer to read" + (f" ({edge.queued} B unsent)" if edge.queued is not None else "")
    else:
        said = "waits for the peer"
    if _own(edge):
        return f"{said}: it holds the peer itself ({_fds(edge.holder_fds)}); another of its threads must act"
    return db.client_edge(edge, said) if edge.db is not None else said


def _file_lock(edge: Edge) -> str:
    noun = LOCK_NOUNS.get(edge.kind, "file lock")
    what = f"{edge.lock.type.name} {noun}" if edge.lock is not None else noun
    article = 'an' if what[0] in 'AEIOU' else 'a'
    if edge.retry is not None:
        return (f"retrying a lock held by {edge.to_pid}, {article} {what} (inferred: it sleeps "
                f"{edge.retry.interval:g} s between tries with the file open)")
    return f"waits for the holder of {article} {what}"


def _mutex(edge: Edge) -> str:
    if edge.to_tid == edge.from_tid:
        return "waits for itself: it relocks a mutex it holds"
    if edge.to_pid != edge.from_pid:
        return f"waits for thread {edge.to_tid} of process {edge.to_pid}, the mutex owner"
    return f"waits for thread {edge.to_tid}, the mutex owner"


def _futex(edge: Edge) -> str:
    what = {Ownerless.UNPROVED: "a lock word whose owner cannot be proved",
            Ownerless.PYTHON: "a Python lock, condition or semaphore: none records its owner"}.get(
        edge.ownerless, "a lock, condition variable or semaphore that records no owner")  # type: ignore[arg-type]
    return f"waits for another thread of its process ({what})"


def _pty(edge: Edge) -> str:
    pty = edge.pty
    if pty is None:
        return "waits for the other end of the terminal"
    if pty.side == PtySide.MASTER:
        slave = f"{PTS}{pty.index}"
        if edge.writing:
            return f"waits for the programs on {slave} to read their input"
        return f"waits for output from the programs on {slave}"
    if edge.writing:
        return "waits for the terminal (the pty master's holder) to read its output"
    return "waits for input from the terminal (the pty master's holder)"


def _fuse(edge: Edge) -> str:
    fuse = edge.fuse
    if fuse is None:
        return "waits for the FUSE daemon to answer"
    return f"{'probably ' if fuse.inferred else ''}waits for the FUSE daemon of {fuse.mountpoint} to answer"


def _mmap_lock(edge: Edge) -> str:
    """A memory-map call queued on its process's mmap lock, behind the holder thread."""
    held = f"waits for the memory-map lock, held by thread {edge.to_tid}"
    if edge.to_pid != edge.from_pid:
        held += f" of process {edge.to_pid}"
    if edge.fault_file:
        on = "FUSE file " if edge.fuse is not None else ""
        held += f" (page fault on {on}{edge.fault_file})"
    return held


SENTENCES: Dict[EdgeKind, Callable[[Edge], str]] = {
    EdgeKind.PIPE: _pipe_read,
    EdgeKind.FIFO: _pipe_read,
    EdgeKind.UNIX: _socket,
    EdgeKind.TCP: _socket,
    EdgeKind.CHILD: lambda e: "waits for its child",
    EdgeKind.SIGCHLD: lambda e: "its exit sends SIGCHLD, which ends the wait",
    EdgeKind.FLOCK: _file_lock,
    EdgeKind.POSIX_LOCK: _file_lock,
    EdgeKind.OFD_LOCK: _file_lock,
    EdgeKind.LOCK: _file_lock,
    EdgeKind.MUTEX: _mutex,
    EdgeKind.JOIN: lambda e: f"waits for thread {e.to_tid} to exit",
    EdgeKind.PTY: _pty,
    EdgeKind.EVENTFD: lambda e: ("waits for a reader to drain the counter" if e.writing
                                 else "waits for a write to the eventfd"),
    EdgeKind.MQUEUE: lambda e: "waits for a receiver to make room" if e.writing else "waits for a message",
    EdgeKind.FUSE: _fuse,
    EdgeKind.REAP: lambda e: f"exited, not reaped by its parent {e.to_pid}",
    EdgeKind.PTRACE: lambda e: f"stopped under ptrace: waits for its tracer {e.to_pid} to resume it",
    EdgeKind.FUTEX: _futex,
    EdgeKind.PG_LOCK: db.lock_edge,
    EdgeKind.MMAP_LOCK: _mmap_lock,
}
