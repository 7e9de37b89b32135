"""Typed records shared along the data flow: procfs → snapshot → waits → graph → render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# Access modes of a file description, from fdinfo `flags & O_ACCMODE`.
READ, WRITE, READ_WRITE = "r", "w", "rw"


@dataclass(frozen=True)
class Syscall:
    """What /proc/PID/task/TID/syscall says a blocked task is inside."""

    nr: int
    name: str
    args: Tuple[int, ...]

    def arg_int(self, i: int) -> int:
        """Argument i as a signed C int (pid_t, fd): low 32 bits, sign-extended."""
        value = self.args[i] & 0xFFFFFFFF
        return value - (1 << 32) if value & 0x80000000 else value


@dataclass(frozen=True)
class Task:
    """One thread. `syscall` is None when running or unreadable; `note` says why."""

    tid: int
    comm: str
    state: str  # one letter from stat: R S D T t Z X I
    syscall: Optional[Syscall]
    wchan: str = ""
    note: str = ""  # e.g. "running", "in a page fault", "unreadable: permission denied"
    utime: int = 0
    stime: int = 0


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/PID/stat (or task/TID/stat) that waitchain uses."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    utime: int
    stime: int
    starttime: int
    session: int = 0


@dataclass
class Process:
    """A process as scanned. Identity is (pid, starttime): a pid can be reused."""

    pid: int
    starttime: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    uid: int
    netns: str = ""  # readlink of /proc/PID/ns/net, e.g. "net:[4026531840]"
    fds: Dict[int, str] = field(default_factory=dict)  # fd → readlink target
    note: str = ""  # what could not be read, and why


@dataclass(frozen=True)
class FdInfo:
    """Parsed /proc/PID/fdinfo/FD. `extra` keeps every other `key: value` line."""

    pos: int
    flags: int
    mnt_id: int = 0
    ino: int = 0
    extra: Tuple[Tuple[str, str], ...] = ()

    @property
    def access(self) -> str:
        mode = self.flags & 3
        return {0: READ, 1: WRITE}.get(mode, READ_WRITE)


@dataclass(frozen=True)
class Holder:
    """A process that has an object open at fd `fd`, with its access mode if known."""

    pid: int
    fd: int
    access: str = ""  # READ, WRITE, READ_WRITE, or "" when fdinfo was unreadable


@dataclass(frozen=True)
class TcpSocket:
    """One line of /proc/PID/net/tcp{,6}. Addresses are (ip text, port)."""

    local: Tuple[str, int]
    remote: Tuple[str, int]
    state: str  # e.g. "ESTABLISHED", "LISTEN"
    tx_queue: int
    rx_queue: int
    inode: int


@dataclass(frozen=True)
class UnixSocket:
    """A unix socket as sock_diag and /proc/net/unix describe it."""

    inode: int
    type: str  # "stream", "dgram", "seqpacket"
    state: str  # "listen", "established", "unconnected", ...
    peer: int = 0  # peer socket's inode, 0 if none
    path: str = ""
    rqueue: int = 0
    wqueue: int = 0


@dataclass(frozen=True)
class PipeFill:
    """Bytes queued in a pipe and its capacity."""

    used: int
    size: int

    @property
    def full(self) -> bool:
        return self.used >= self.size


@dataclass(frozen=True)
class Edge:
    """A waits-for edge: thread (pid, tid) waits for process `to_pid` (thread `to_tid` if known)."""

    from_pid: int
    from_tid: int
    to_pid: int
    to_tid: Optional[int]
    kind: str  # "pipe", "fifo", "unix", "tcp", "child", ...
    object: str  # e.g. "pipe:[123]"
    evidence: str  # how it was established, checkable by hand
    label: str  # for people: "waits for the writer", "pipe full 65536/65536 B"


@dataclass(frozen=True)
class End:
    """Where a chain ends: the thread waits for nothing we can follow."""

    kind: str  # "running", "sleeping", "idle", "remote", "disk", "terminal", "self", "unknown"
    detail: str


@dataclass(frozen=True)
class Wait:
    """What one thread waits for: edges to other processes, or an end, or both (an end with
    edges means a remark that stands even though the edges are followed)."""

    pid: int
    tid: int
    what: str  # the call as a person reads it: "read(3<pipe:[123]>)"
    edges: Tuple[Edge, ...] = ()
    end: Optional[End] = None
    # An OR wait (poll, select, epoll): how many fds it watches, and the alternatives that
    # lead to no blocked process (an idle listener, a remote peer, a terminal, a timeout).
    # A thread with a live alternative is never stuck, whatever its edges lead to.
    any_of: int = 0
    live: Tuple[End, ...] = ()


@dataclass(frozen=True)
class Location:
    """A line of application code (filled by the stacks stage)."""

    file: str
    line: int
    function: str
    code: str = ""


@dataclass(frozen=True)
class Frame:
    """One frame of a user-space stack, innermost first in a list."""

    function: str
    file: str
    line: int
    module: str = ""
    native: bool = False  # a C frame (gdb/eu-stack) rather than a Python one


@dataclass(frozen=True)
class Stack:
    """The user-space stack of one thread and its application frame."""

    pid: int
    tid: int
    frames: Tuple[Frame, ...]
    location: Optional[Location] = None  # the first application frame
    label: str = ""  # a language-level wait, e.g. "waits in threading.Thread.join"
    source: str = ""  # "py-spy", "gdb", "eu-stack"


@dataclass(frozen=True)
class ChainEnd:
    kind: str  # End kinds plus "cycle"
    detail: str
    pid: Optional[int] = None  # the process where the chain ends (re-entered, for a cycle)
    tid: Optional[int] = None  # the thread whose wait ends it, when one does


@dataclass(frozen=True)
class Chain:
    start: int
    path: Tuple[int, ...]
    end: ChainEnd


@dataclass(frozen=True)
class Cycle:
    pids: Tuple[int, ...]
    deadlock: bool  # False when a member still has a thread that can make progress
    detail: str = ""
    threads: Tuple[Tuple[int, int], ...] = ()  # (pid, tid) of the members' blocked threads
    members: Tuple[int, ...] = ()  # the whole strongly connected set (a knot may be larger than `pids`)


@dataclass(frozen=True)
class RootCause:
    pid: int
    tid: int
    syscall: str
    summary: str
    location: Optional[Location] = None


@dataclass
class Diagnosis:
    """Everything a renderer needs."""

    starts: List[int]
    processes: Dict[int, Process]
    tasks: Dict[int, List[Task]]
    cmdlines: Dict[int, str]
    waits: Dict[Tuple[int, int], Wait]
    edges: List[Edge]
    chains: List[Chain]
    cycles: List[Cycle]
    root_cause: Optional[RootCause]
    notes: List[str] = field(default_factory=list)
    stacks: Dict[Tuple[int, int], Stack] = field(default_factory=dict)  # (pid, tid) → stack
    blocked_for: Dict[Tuple[int, int], float] = field(default_factory=dict)  # seconds not run

    @property
    def deadlocked(self) -> bool:
        return any(c.deadlock for c in self.cycles) or any(
            ch.end.kind == "self" for ch in self.chains
        )
