"""Typed records shared along the data flow: procfs → snapshot → waits → graph → render."""

from __future__ import annotations

from .records import Names, field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

# Access modes of a file description, from fdinfo `flags & O_ACCMODE`.
READ, WRITE, READ_WRITE = "r", "w", "rw"


class Named(str, Names):
    """A closed set of names: each member is its JSON string, and prints as it."""

    def __str__(self) -> str:
        return self.value


class EdgeKind(Named):
    """What a waits-for edge goes through. The values are the waitchain/1 JSON names."""

    PIPE = "pipe"
    FIFO = "fifo"
    UNIX = "unix"
    TCP = "tcp"
    CHILD = "child"  # wait4/waitid for a child to exit
    SIGCHLD = "sigchld"  # a wait that SIGCHLD ends: any live child may send it by exiting
    FLOCK = "flock"
    POSIX_LOCK = "posix-lock"
    OFD_LOCK = "ofd-lock"
    LOCK = "lock"  # a file lock of a class the kernel did not name
    MUTEX = "mutex"
    JOIN = "join"
    PTY = "pty"
    EVENTFD = "eventfd"
    MQUEUE = "mqueue"
    FUSE = "fuse"
    REAP = "reap"  # a zombie waits for its parent to reap it (wait4/waitid)
    PTRACE = "ptrace"  # a thread in a ptrace stop waits for its tracer to resume it
    FUTEX = "futex"  # a private futex that records no owner: only a thread of its process can wake it
    PG_LOCK = "pg-lock"  # a PostgreSQL backend waits for a lock another backend holds (--db: pg_blocking_pids)
    MMAP_LOCK = "mmap-lock"  # a memory-map call (or a fault) queued on a process's mmap lock, behind its holder thread


class EndKind(Named):
    """Where a wait (or a chain) ends: nothing further to follow. CYCLE is only a chain's."""

    RUNNING = "running"
    DISK = "disk"
    KERNEL = "kernel"
    STOPPED = "stopped"
    TERMINAL = "terminal"
    REMOTE = "remote"
    SLEEPING = "sleeping"
    SIGNAL = "signal"
    IDLE = "idle"
    UNKNOWN = "unknown"
    CYCLE = "cycle"


class Reason(Named):
    """Why a wait ends where it does, finer than its EndKind: what advice is chosen from."""

    BUSY = "busy"  # running on a CPU
    STOPPED = "stopped"  # SIGSTOP or a debugger
    EXITED = "exited"  # a zombie, or gone during the scan
    THREAD_EXITED = "thread-exited"  # a process's main thread exited (pthread_exit); others go on
    ACCEPT = "accept"  # a server waiting for clients (accept, a listening socket)
    CONNECTING = "connecting"
    SLEEP = "sleep"  # nanosleep and friends
    TIMEOUT = "timeout"  # a poll/select/epoll/futex timeout: the clock ends it
    SIGNAL_WAIT = "signal-wait"  # pause, sigsuspend, sigwaitinfo, signalfd
    SIGNAL_FROM_OUTSIDE = "signal-from-outside"  # caught signals (SIGTERM...) only others send
    SIGNAL_HANDLER = "signal-handler"  # a private futex wait a signal handler could end (posting, setting)
    FIFO_OPEN = "fifo-open"  # open() of a FIFO whose other side nobody opened
    FILE_EVENTS = "file-events"  # inotify
    TIMER = "timer"  # timerfd
    EVENT = "event"  # eventfd, mqueue, SysV IPC with no other holder
    FUSE_DAEMON = "fuse-daemon"  # a FUSE daemon thread waiting for requests
    TERMINAL_INPUT = "terminal-input"
    REMOTE_PEER = "remote-peer"  # a TCP peer on another host
    IO = "io"  # block I/O, a page fault, NFS
    KERNEL_WAIT = "kernel-wait"
    KERNEL_THREAD = "kernel-thread"  # a kernel thread: no user process to follow
    FUSE_GONE = "fuse-gone"  # the FUSE mount's daemon is gone
    NOT_READABLE = "not-readable"  # what we needed could not be read (permission, vanished)
    NO_HOLDER = "no-holder"  # no process holds the other end (all fds were read)
    OWNER_EXITED = "owner-exited"  # a mutex names an owner that is not a live thread
    NO_OWNER = "no-owner"  # a futex that records no owner (condition variable, semaphore, Python lock)
    NO_CHILD = "no-child"  # wait4 for a child that does not exist
    NOT_FOLLOWED = "not-followed"  # a call waitchain does not follow
    RULE_FAILED = "rule-failed"  # a wait rule raised: a bug, reported as unknown
    CUT = "cut"  # a chain longer than waitchain follows
    OTHER = "other"
    DB_LOCK = "db-lock"  # a database backend waits for a lock another session holds (End.db; who: --db)


class Missing(Named):
    """The other side of a wait that no scanned process holds (End.missing), its object the
    End's subject."""

    WRITE_END = "write-end"  # of a pipe or FIFO
    READ_END = "read-end"
    TCP_PEER = "tcp-peer"  # a loopback connection no socket on this host matches (End.connection)
    UNIX_PEER = "unix-peer"  # passed over a socket, or closing
    PTY_MASTER = "pty-master"
    PTY_SLAVE = "pty-slave"  # held by a process other than the waiter's
    EVENTFD = "eventfd"
    MQUEUE_READER = "mqueue-reader"  # the queue open for reading
    MQUEUE_WRITER = "mqueue-writer"


class Ownerless(Named):
    """Why a futex wait names no owner (End.ownerless)."""

    RELEASED = "released"  # a PI futex whose word records no owner now
    UNPROVED = "unproved"  # a lock word with value 2 whose memory is no mutex naming a live thread
    NONE_RECORDED = "none-recorded"  # a condition variable, a semaphore, a lock that records none
    PYTHON = "python"  # the same, in a Python process (threading.Lock is one)


class Mode(Named):
    """How a wait's edges combine: ANY one target acting ends it (a pipe with several
    writers, a poll set), or it needs ALL of them (a write lock behind several readers)."""

    ANY = "any"
    ALL = "all"


@record(frozen=True)
class Syscall:
    """What /proc/PID/task/TID/syscall says a blocked task is inside."""

    nr: int
    name: str
    args: Tuple[int, ...]

    def arg_int(self, i: int) -> int:
        """Argument i as a signed C int (pid_t, fd): low 32 bits, sign-extended."""
        value = self.args[i] & 0xFFFFFFFF
        return value - (1 << 32) if value & 0x80000000 else value


@record(frozen=True)
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
    switches: Optional[int] = None  # times it was scheduled in (schedstat), to see it move
    kthread: bool = False  # a kernel thread (PF_KTHREAD): no fds, no system calls of its own


@record(frozen=True)
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
    flags: int = 0  # the kernel's PF_* flags: PF_KTHREAD for a kernel thread


@record
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
    pidns: str = ""  # readlink of /proc/PID/ns/pid, e.g. "pid:[4026531836]"
    fds: Dict[int, str] = field(default_factory=dict)  # fd → readlink target
    note: str = ""  # what could not be read, and why


@record(frozen=True)
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


@record(frozen=True)
class Holder:
    """A process that has an object open at fd `fd`, with its access mode if known."""

    pid: int
    fd: int
    access: str = ""  # READ, WRITE, READ_WRITE, or "" when fdinfo was unreadable


@record(frozen=True)
class TcpSocket:
    """One line of /proc/PID/net/tcp{,6}. Addresses are (ip text, port)."""

    local: Tuple[str, int]
    remote: Tuple[str, int]
    state: str  # e.g. "ESTABLISHED", "LISTEN"
    tx_queue: int
    rx_queue: int
    inode: int


@record(frozen=True)
class UnixSocket:
    """A unix socket as sock_diag and /proc/net/unix describe it."""

    inode: int
    type: str  # "stream", "dgram", "seqpacket"
    state: str  # "listen", "established", "unconnected", ...
    peer: int = 0  # peer socket's inode, 0 if none
    path: str = ""
    rqueue: int = 0
    wqueue: int = 0
    pending: Tuple[int, ...] = ()  # a listener: inodes of the client sockets queued on it, not accepted yet


@record(frozen=True)
class PipeFill:
    """Bytes queued in a pipe and its capacity."""

    used: int
    size: int

    @property
    def full(self) -> bool:
        return self.used >= self.size


class LockType(Named):
    """A file lock's type, as /proc/locks names it (READ, WRITE)."""

    READ = "read"
    WRITE = "write"


@record(frozen=True)
class FileLock:
    """The held file lock an edge waits behind; its class (flock, POSIX, OFD) is the edge's kind."""

    type: LockType
    start: int  # its first byte
    end: Optional[int]  # its last byte, None: to the end of the file


class PtySide(Named):
    """The end of a pseudo-terminal a waiter holds."""

    MASTER = "master"  # a terminal emulator, tmux, sshd: it waits for the programs on the slave
    SLAVE = "slave"  # a program on /dev/pts/N: it waits for the master's holder


@record(frozen=True)
class Pty:
    """A pty edge's terminal: the end the waiter holds and the N of /dev/pts/N."""

    side: PtySide
    index: int


@record(frozen=True)
class Fuse:
    """A FUSE edge's mount: the daemon of `mountpoint` must answer the waiter's request."""

    mountpoint: str
    inferred: bool = False  # the mount is inferred from the files the process maps, not from its call


@record(frozen=True)
class Alternative:
    """An edge that is one alternative of an OR wait (poll, select, epoll): one fd it watches."""

    count: int  # how many fds the call watches
    events: str  # what this fd is watched for, in the call's names: "EPOLLIN", "POLLIN|POLLOUT", "read set"
    watched: str  # the watched fd's file as a call shows it: "pipe:[7]", "TCP 127.0.0.1:5→127.0.0.1:80"


@record(frozen=True)
class Retry:
    """A lock edge inferred from a short sleep, not from a blocked lock call: the waiter
    sleeps briefly (a busy timeout, a lock-file retry loop) with a file open on which the
    target holds a lock that may conflict with the one it retries. What it asks for is not
    known: the edge is inferred."""

    call: str  # the sleep: "clock_nanosleep", "nanosleep"
    interval: float  # seconds one sleep lasts (asked, or estimated for an absolute sleep)
    holds: Optional[LockType] = None  # the strongest lock the waiter holds on the file itself


@record(frozen=True)
class DbSession:
    """A database server's backend process as /proc shows it: its process title's facts
    ("postgres: USER DATABASE CLIENT ACTIVITY") and its server (the postmaster)."""

    engine: str  # "postgresql"
    server: int  # the postmaster's pid
    user: str = ""
    database: str = ""
    client: str = ""  # "[local]", "10.0.0.5(53422)"
    activity: str = ""  # the title's state without " waiting": "UPDATE", "idle in transaction", "idle"
    waiting: bool = False  # the title ends in " waiting": it waits for a heavyweight lock
    datadir: str = ""  # the server's data directory


@record(frozen=True)
class DbLock:
    """The lock a pg-lock edge waits behind, as the server's views tell it (--db): pg_locks
    and pg_stat_activity of the waiter and the blocking session."""

    locktype: str  # the waiter's ungranted lock: "transactionid", "tuple", "relation"...
    mode: str  # the mode it asks for: "ShareLock"
    relation: str = ""  # the table ("public.t"), also for a row wait (the tuple lock it took)
    page: Optional[int] = None
    tuple: Optional[int] = None
    held_mode: str = ""  # the blocker's granted mode on the same object ("" when it only queues ahead)
    waiter_query: str = ""
    holder_state: str = ""  # pg_stat_activity.state: "idle in transaction", "active"
    holder_query: str = ""  # its current or last statement
    holder_xact: Optional[float] = None  # seconds since the blocker's transaction began


@record(frozen=True)
class Container:
    """What a process's cgroup path names: its container (runtime and id), Kubernetes pod,
    systemd unit. Empty strings for what the path does not name."""

    runtime: str = ""  # "docker", "containerd", "podman", "cri-o", "lxc"
    id: str = ""  # the container id's first 12 hex digits (lxc: its name)
    pod: str = ""  # a Kubernetes pod's uid
    unit: str = ""  # the innermost systemd unit: "docker-<id>.scope", "nginx.service"
    cgroup: str = ""  # the cgroup path it was read from


@record(frozen=True)
class Place:
    """Where a process runs: its host (as that host names itself: the hostname of the
    process's UTS namespace), its pid in its own pid namespace when that is not ours, its
    container or unit."""

    host: str = ""
    ns_pid: Optional[int] = None
    container: Optional[Container] = None
    tcp: Tuple[Tuple[Tuple[str, int], Tuple[str, int]], ...] = ()  # its connected TCP sockets: (local, remote)


@record(frozen=True)
class Edge:
    """A waits-for edge: thread (pid, tid) waits for process `to_pid` (thread `to_tid` if
    known). `to_pid == from_pid` with no `to_tid` is a wait on the process's other threads
    (it holds the other end itself). The structured facts are what later layers read, and
    what render/ words its label from; `evidence` is a sentence for people, never parsed."""

    from_pid: int
    from_tid: int
    to_pid: int
    to_tid: Optional[int]
    kind: EdgeKind
    object: str  # e.g. "pipe:[123]"
    evidence: str  # how it was established, checkable by hand
    syscall: str = ""  # the call the waiter is in: "read", "wait4"
    fd: Optional[int] = None  # the waiter's fd the wait is on
    writing: bool = False  # the waiter writes (a full pipe, a socket send)
    fill: Optional[PipeFill] = None  # a pipe's fill, when measured
    queued: Optional[int] = None  # bytes queued on the waiter's socket (unsent or unread)
    holder_fds: Tuple[int, ...] = ()  # the target's fds that hold the other end
    unsure: bool = False  # the target may hold it: its fdinfo was unreadable
    inode: Optional[int] = None  # the object's inode: a locked file's, a pipe's, the peer socket's
    local: Optional[Tuple[str, int]] = None  # TCP: the waiter's socket's address (host, port)
    remote: Optional[Tuple[str, int]] = None  # TCP: the address the waiter's socket is connected to
    unaccepted: bool = False  # TCP or unix: the connection waits in the accept queue of the target's listening socket
    peer_unread: Optional[int] = None  # a socket edge: bytes in the target's socket not read yet (its receive queue)
    peer_received: Optional[int] = None  # TCP: bytes the target's socket received in all (tcp_info), None: unknown
    lock: Optional[FileLock] = None  # a file lock edge: the held lock it waits behind
    pty: Optional[Pty] = None  # a pty edge: which end the waiter holds, which terminal
    fuse: Optional[Fuse] = None  # a FUSE edge: the mount whose daemon must answer
    alternative: Optional[Alternative] = None  # one of the fds of an OR wait (poll, select, epoll)
    retry: Optional[Retry] = None  # a lock edge inferred from a short sleep (a retry loop)
    address: Optional[int] = None  # a futex edge: the futex word's address in the waiter's memory
    ownerless: Optional[Ownerless] = None  # a futex edge: why no owner thread is named
    fault_file: str = ""  # an mmap-lock edge: the file of the page fault its holder sleeps in ("" if unknown)
    db: Optional[DbSession] = None  # the waiter is a database backend: its title's facts
    db_lock: Optional[DbLock] = None  # a pg-lock edge: the lock and the blocking session (--db)


@record(frozen=True)
class End:
    """Where a wait ends: nothing further to follow. `reason` is what advice is chosen
    from; the sentence for people is render/ends.py's, made from the facts. `detail` is a
    sentence a rule still writes itself (kernel waits, unfollowed calls), never parsed."""

    kind: EndKind
    detail: str = ""
    reason: Reason = Reason.OTHER
    subject: str = ""  # the object it concerns: a path, an address, a listening socket
    signals: Tuple[str, ...] = ()  # the signals that can end the wait, when that is the point
    timeout: Optional[float] = None  # seconds, when the clock ends it
    through: str = ""  # an alternative of an OR wait: the watched fd it is reached through, "5<pipe:[7]>"
    any_of: int = 0  # an OR wait none of whose fds leads to a blocked process: how many it watches
    alternatives: Tuple["End", ...] = ()  # ... and where its live alternatives end
    call: str = ""  # the call it waits in, when that is said: "clock_nanosleep", "pause", "poll"
    fd: Optional[int] = None  # the fd it waits on: a timerfd, an inotify fd, a signalfd
    writing: Optional[bool] = None  # a FIFO open: True when it opens for writing, None when unknown
    self_held: bool = False  # its own process holds the other side (a FIFO reader's own write end)
    count: Optional[int] = None  # how many: inotify watches
    cpu: Optional[float] = None  # a running thread's CPU seconds so far
    duration: Optional[float] = None  # a relative sleep's requested seconds
    idle: Optional[float] = None  # seconds since the thread last ran
    until: Optional[float] = None  # an absolute sleep's end, in seconds on `clock`
    clock: str = ""  # "CLOCK_MONOTONIC"
    timer: Tuple[str, ...] = ()  # a timerfd's fdinfo it_value and it_interval, "(s, ns)" as read
    blocked: Tuple[str, ...] = ()  # signals blocked during the wait
    ignored: Tuple[str, ...] = ()  # signals ignored
    untimed: bool = False  # it gives no timeout (timeout None and untimed False: unknown)
    pty: Optional[Pty] = None  # a pty slave whose master no scanned process holds
    child: Optional[int] = None  # the child a wait4/waitid names, as the waiter sees its pid
    group: Optional[int] = None  # the process group it names, as the waiter sees it (0: its own)
    missing: Optional[Missing] = None  # the other side no scanned process holds (count: fds unreadable)
    connection: str = ""  # a TCP connection, "TCP 127.0.0.1:5→127.0.0.1:6"
    address: Optional[int] = None  # a futex's address in the waiter's memory
    owner: Optional[int] = None  # the owner TID a mutex word names, in the waiter's pid namespace
    ownerless: Optional[Ownerless] = None  # a futex wait that names no owner: why
    tracer: Optional[int] = None  # a stopped thread's tracer (TracerPid), None when it has none
    parent: Optional[int] = None  # a zombie's parent, when no edge leads to it (see reaping)
    reaping: bool = False  # a zombie's parent is in wait4/waitid: it reaps it now
    unread: str = ""  # why a fact the wait needs could not be read ("" when all were)
    source: str = ""  # where the facts were read: "/proc/5/task/5/status"
    db: Optional[DbSession] = None  # a database backend's wait (reason DB_LOCK): its title's facts
    command: Tuple[str, ...] = ()  # --db: the command that could not ask the server (unread: why)
    local: Optional[Tuple[str, int]] = None  # a remote TCP peer: the waiter's socket's address (host, port)
    remote: Optional[Tuple[str, int]] = None  # ... and the peer's: the connection's 4-tuple (--remote, merge)


@record(frozen=True)
class Wait:
    """What one thread waits for: edges to other processes, or an end, or both (an end with
    edges means a remark that stands even though the edges are followed)."""

    pid: int
    tid: int
    what: str  # the call as a person reads it: "read(3<pipe:[123]>)"
    edges: Tuple[Edge, ...] = ()
    end: Optional[End] = None
    # An OR wait (poll, select, epoll): how many fds it watches, and the alternatives that
    # lead to no blocked process (an idle listener, a remote peer, a terminal, a timeout,
    # a signal others may send). A thread with a live alternative is never stuck.
    any_of: int = 0
    live: Tuple[End, ...] = ()
    syscall: str = ""  # the call's name: "read", "wait4", "" when not in a call
    mode: Mode = Mode.ANY  # how the edges combine


@record(frozen=True)
class Location:
    """A line of application code (filled by the stacks stage)."""

    file: str
    line: int
    function: str
    code: str = ""


@record(frozen=True)
class Frame:
    """One frame of a user-space stack, innermost first in a list."""

    function: str
    file: str
    line: int
    module: str = ""
    native: bool = False  # a C frame (gdb/eu-stack) rather than a Python one
    # How the frame was found: "syscall" (the innermost native frame: the kernel's program
    # counter), "cfi", "fp", "scan" (stacks/unwind.py), "gdb", "eu-stack", "py-spy"; "" unknown.
    how: str = ""


@record(frozen=True)
class LockHold:
    """A Python lock a thread holds, inferred from its stack and source (Python's Lock records
    no owner): a frame of thread `tid` is inside `with EXPR:`, or after `EXPR.acquire()` with no
    release, for the expression a blocked thread acquires, in the same scope."""

    tid: int  # the holder
    expression: str  # "a", "self._lock"
    file: str
    line: int  # the with statement or the acquire() call
    statement: str  # "with" or "acquire"
    code: str = ""  # that line


@record(frozen=True)
class Stack:
    """The user-space stack of one thread and its application frame."""

    pid: int
    tid: int
    frames: Tuple[Frame, ...]
    location: Optional[Location] = None  # the first application frame
    label: str = ""  # a language-level wait, e.g. "waits in threading.Thread.join"
    source: str = ""  # "py-spy", "gdb", "eu-stack"
    on_lock: bool = False  # the label is a wait on a lock that records no owner (Python's Lock)
    name: str = ""  # the thread's own name (Python: "MainThread", Thread(name=...))
    joined_tid: Optional[int] = None  # a Thread.join: the thread it waits for
    lock_wait: str = ""  # on_lock: the expression of the lock it acquires ("self._lock")
    likely_holder: Optional[LockHold] = None  # on_lock: who holds it, inferred from source
    holds: Tuple[LockHold, ...] = ()  # locks some thread waits for that this one holds (inferred)
    # A library's wait recognised from the frames: "multiprocessing-join" (Process.join),
    # "multiprocessing-queue" (a multiprocessing.Queue's put, its feeder thread, or the join of
    # that feeder at exit); "" for none.
    library_wait: str = ""
    lock_owner: Optional[int] = None  # on_lock on an RLock: its owner thread, read from the lock
    incomplete: bool = False  # unwound natively and stopped where no unwind rule applied
    # Python: the native frames above the interpreter's (innermost first), when those of a C
    # extension or of a library it calls are among them (stacks/unwind.py); () otherwise.
    native: Tuple[Frame, ...] = ()


@record(frozen=True)
class ChainEnd:
    kind: EndKind  # the ending wait's kind, or CYCLE
    detail: str
    pid: Optional[int] = None  # the process where the chain ends (re-entered, for a cycle)
    tid: Optional[int] = None  # the thread whose wait ends it, when one does
    reason: Reason = Reason.OTHER  # the ending wait's End.reason
    subject: str = ""  # the ending wait's End.subject: a path, an address, a listening socket
    ending: Optional[End] = None  # the ending wait's End, whose facts render/ends.py words


@record(frozen=True)
class Chain:
    start: int
    path: Tuple[int, ...]
    end: ChainEnd


@record(frozen=True)
class Cycle:
    """Processes that wait for each other: a ring through them (`pids`), the whole strongly
    connected set (`members`), and why it is or is not a deadlock."""

    pids: Tuple[int, ...]
    deadlock: bool  # False when a member still has a thread that can make progress
    shape: "CycleShape"
    threads: Tuple[Tuple[int, int], ...] = ()  # (pid, tid) of the members' stuck threads
    members: Tuple[int, ...] = ()  # the whole strongly connected set (a knot may be larger than `pids`)
    free: Optional[Tuple[int, int]] = None  # OPEN: a thread that can still make progress
    free_via: Optional[Tuple[int, Optional[int]]] = None  # ... because this target can act


class CycleShape(Named):
    RING = "ring"  # a deadlock: every member waits for the next
    KNOT = "knot"  # a deadlock: every alternative of every member leads back into the set
    BEHIND = "behind"  # stuck, but behind a deadlock elsewhere
    OPEN = "open"  # not a deadlock: a member can still make progress


@record(frozen=True)
class RootCause:
    pid: int
    tid: int
    syscall: str
    summary: str
    location: Optional[Location] = None


class VerdictClass(Named):
    DEADLOCK = "deadlock"  # a knot of stuck threads: it will not clear by itself
    CYCLE = "cycle"  # processes wait for each other, but one can still go on
    CHAIN_END = "chain-end"  # the chain ends somewhere (busy, idle, remote, the kernel...)
    NOTHING = "nothing"  # nothing blocked on another process


class Advice(Named):
    """What to do, chosen by the verdict layer from facts; render/ words it."""

    READ_BEFORE_WAIT = "read-before-wait"  # waits for a child whose output pipe it does not read
    CLOSE_BEFORE_WAIT = "close-before-wait"  # waits for a child that reads a pipe it still holds open
    CLOSE_OWN_WRITE_END = "close-own-write-end"  # reads a pipe only it (still) writes
    DRAIN_OWN_PIPE = "drain-own-pipe"  # writes a full pipe only it reads
    LOCK_ORDER = "lock-order"  # locks taken in opposite orders
    BREAK_CYCLE = "break-cycle"  # any other deadlock
    RELEASE_HOLDER = "release-holder"  # the chain ends at a process that holds what it needs
    WAIT_AND_SEE = "wait-and-see"  # a cycle a member can still leave
    NO_REPLY = "no-reply"  # waits for an idle event loop
    HELD_REQUEST = "held-request"  # an idle server read the request and holds it (BLPOP, a long poll, a lock)
    PTY_INPUT = "pty-input"  # reads a terminal nobody types into
    APP_WAIT = "app-wait"  # waits on something inside the application (a latch, a DB lock)
    INHERITED_PIPE = "inherited-pipe"  # reads a pipe an idle server inherited (out=$(server &))
    PYTHON_LOCK = "python-lock"  # Python locks record no owner
    OWN_THREADS = "own-threads"  # every thread waits for another thread of the same process
    SIGNAL_HANDLER = "signal-handler"  # ... except that a signal handler could still wake one
    BUSY = "busy"
    SLEEPING = "sleeping"
    IDLE_SERVER = "idle-server"
    FIFO = "fifo"
    JOB_SLOTS = "job-slots"  # a recipe waits on a FIFO while make waits for a free job slot (make -j)
    FILE_EVENTS = "file-events"
    IDLE = "idle"
    SIGNAL = "signal"
    REMOTE = "remote"
    DISK = "disk"
    TERMINAL = "terminal"
    STOPPED = "stopped"
    REAP = "reap"  # a zombie whose parent does not wait() for it
    KERNEL_THREAD = "kernel-thread"  # a kernel thread was asked about
    NOT_READABLE = "not-readable"
    UNKNOWN = "unknown"
    NOTHING = "nothing"
    DB_LOCK = "db-lock"  # a database backend waits for a lock: ask the server who holds it (pg_blocking_pids)


@record(frozen=True)
class Verdict:
    """One incident: a deadlock knot (with the processes stuck behind it), an open cycle,
    or where a chain ends. The same whichever member the diagnosis started from."""

    cls: VerdictClass
    advice: Advice
    members: Tuple[int, ...]  # deadlock: the knot's processes; else the chain's path
    threads: Tuple[Tuple[int, int], ...] = ()  # deadlock: the knot's stuck threads
    ring: Tuple[Edge, ...] = ()  # a cycle through the members, starting at the cause
    cause: Optional[Tuple[int, int]] = None  # the thread whose wait is the bug (or the chain's end)
    culprit: Optional[int] = None  # the process whose exit ends it ("do now"); None: no single one
    end: Optional["ChainEnd"] = None  # chain-end: where it ends
    victims: Tuple[int, ...] = ()  # processes stuck behind the knot, not in it
    confirmed: bool = True  # a second look saw none of the threads move
    moved: Tuple[Tuple[int, int], ...] = ()  # threads that did move (the verdict is withdrawn)


@record(frozen=True)
class Hop:
    """One process on a chain that crosses hosts (--remote, merge): pids are per host."""

    host: str
    pid: int
    tid: Optional[int] = None  # the thread that waits (None: not known, or it does not wait)
    cmdline: str = ""
    call: str = ""  # the wait as its host worded it: "recvfrom(3<socket:[7]>)"
    label: str = ""  # how its host worded the edge from the previous hop ("" for the first)
    local: Optional[Tuple[str, int]] = None  # reached over TCP: the previous hop's end of the connection
    remote: Optional[Tuple[str, int]] = None  # ... and this hop's end


@record(frozen=True)
class Across:
    """A chain followed onto other hosts: its hops, where it ends (the last host's chain end,
    as that host reported it in JSON), and whether it closes a ring of blocked waits."""

    path: Tuple[Hop, ...]
    end: Dict[str, object]
    deadlock: bool = False
    ring: Optional[int] = None  # a cycle: the index in path where the ring starts again


@record(frozen=True)
class RemoteHost:
    """A host asked to go on (--remote): the command run and what came of it."""

    address: str  # the peer's address the chain reached
    host: str  # the name it reports ("" if it did not answer)
    command: Tuple[str, ...]
    error: str = ""  # why it gave no chain ("" when it did)
    seconds: float = 0.0
    document: Optional[Dict[str, object]] = None  # its JSON, as it printed it


@record
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
    verdicts: List[Verdict] = field(default_factory=list)  # one per incident, worst first
    # Processes in another pid namespace: thread id there → host thread id (py-spy reports
    # the former).
    ns_tids: Dict[int, Dict[int, int]] = field(default_factory=dict)
    thread_names: Dict[Tuple[int, int], str] = field(default_factory=dict)  # (pid, tid) → py-spy's name
    places: Dict[int, Place] = field(default_factory=dict)  # pid → host, pid in its namespace, container
    across: List[Across] = field(default_factory=list)  # chains followed onto other hosts (--remote)
    remote_hosts: List[RemoteHost] = field(default_factory=list)  # the hosts asked, in order

    @property
    def deadlocked(self) -> bool:
        return any(v.cls == VerdictClass.DEADLOCK for v in self.verdicts) or any(a.deadlock for a in self.across)

    def waits_of(self, pid: int) -> List[Wait]:
        """The waits of every thread of pid, in the order of `waits`: from an index by pid,
        made again whenever `waits` is another dict or has another size (a renderer asks
        once per process: a scan of every wait each time made `--all` quadratic)."""
        key = (id(self.waits), len(self.waits))
        cached = self.__dict__.get("_by_pid")
        if cached is None or cached[0] != key:
            by_pid: Dict[int, List[Wait]] = {}
            for (p, _), wait in self.waits.items():
                by_pid.setdefault(p, []).append(wait)
            cached = self.__dict__["_by_pid"] = (key, by_pid)
        return list(cached[1].get(pid, ()))
