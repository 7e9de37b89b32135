"""--explain: for every edge and every chain end, the commands a person would type to check
it by hand (the method waitchain automates), each with what it should show here.

Commands only contain numbers that waitchain produced (pids, fds, inodes, ports) and
shell-quoted, cleaned paths, so they are safe to copy and paste."""

from __future__ import annotations

import shlex

from ..model import Chain, Diagnosis, Edge, EdgeKind, End, EndKind, Reason, Task
from ..procfs.fds import inode_of
from ..records import record
from ..sanitize import clean
from .common import end_pid, name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

    EdgeChecks = Callable[[Diagnosis, Edge], List["Check"]]  # "Check": the class is defined below
    EndChecks = Callable[[Diagnosis, int, int], List["Check"]]

# Calls whose first argument is the fd they block on.
FD_CALLS = {
    "read", "readv", "pread64", "preadv", "preadv2", "recvfrom", "recvmsg", "recvmmsg",
    "write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg", "sendmmsg",
    "accept", "accept4", "connect", "flock", "fcntl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "ioctl", "fsync", "fdatasync",
}


@record(frozen=True)
class Check:
    command: str  # what to type (a shell command)
    expect: str  # what it shows for this diagnosis


def edge_checks(diag: Diagnosis, edge: Edge) -> List[Check]:
    """How to see, by hand, that edge.from waits for edge.to."""
    checks = _call_checks(diag, edge.from_pid, edge.from_tid)
    known = _edge_kind(edge)
    kind = EDGE_KINDS.get(known) if known is not None else None
    return checks + (kind(diag, edge) if kind else [_evidence_only(edge)])


def end_checks(diag: Diagnosis, chain: Chain) -> List[Check]:
    """How to see, by hand, why the chain ends where it does."""
    kind = _end_kind(chain.end.kind)
    if kind == EndKind.CYCLE:
        return []
    pid = end_pid(chain)
    tid = chain.end.tid if chain.end.tid is not None else pid
    checks = _call_checks(diag, pid, tid) if kind != EndKind.RUNNING else []
    return checks + END_KINDS.get(kind, _wchan)(diag, pid, tid)


def _edge_kind(edge: Edge) -> Optional[EdgeKind]:
    try:
        return EdgeKind(edge.kind)
    except ValueError:
        return None


def _end_kind(kind: object) -> Optional[EndKind]:
    try:
        return EndKind(kind)
    except ValueError:
        return None


# --- the waiting thread -----------------------------------------------------------------


def _task(diag: Diagnosis, pid: int, tid: int) -> Optional[Task]:
    return next((t for t in diag.tasks.get(pid, []) if t.tid == tid), None)


def _call_checks(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    task = _task(diag, pid, tid)
    call = task.syscall if task else None
    syscall_file = f"cat /proc/{pid}/task/{tid}/syscall"
    if task is not None and task.kthread:
        return [Check(f"grep Kthread /proc/{pid}/status", "Kthread: 1 (older kernels: PF_KTHREAD, 0x200000, "
                      "in the flags field of /proc/PID/stat)")]
    if task is not None and task.state in ("Z", "X"):
        return [Check(f"grep State /proc/{pid}/task/{tid}/status", "State: Z (zombie): the thread exited")]
    if call is None:
        return [Check(syscall_file, clean(task.note) if task and task.note else "the thread's system call")]
    args = " ".join(hex(a) for a in call.args[:3])
    checks = [Check(syscall_file, f"{call.nr} {args} …: {clean(call.name)}() is syscall {call.nr}")]
    fd = _fd_of(diag, pid, tid)
    if fd is not None:
        target = _target(diag, pid, fd)
        wait = diag.waits.get((pid, tid))
        retry = wait is not None and any(e.retry is not None for e in wait.edges)
        where = f": a sleep; fd {fd} is the locked file it has open" if retry else f" on fd {fd}"
        checks[0] = Check(syscall_file, f"{call.nr} {args} …: {clean(call.name)}(){where}")
        checks.append(Check(f"ls -l /proc/{pid}/fd/{fd}", f"→ {target}" if target else "what the fd is"))
    return checks


def _fd_of(diag: Diagnosis, pid: int, tid: int) -> Optional[int]:
    """The fd the thread's call blocks on: its edges' fd, or the call's first argument for a
    call that takes one (an OR wait over several fds has none: its epoll fd, at most)."""
    wait = diag.waits.get((pid, tid))
    if wait is not None and not wait.any_of:
        fd = next((e.fd for e in wait.edges if e.fd is not None), None)
        if fd is not None:
            return fd
    task = _task(diag, pid, tid)
    call = task.syscall if task else None
    return call.arg_int(0) if call is not None and call.name in FD_CALLS else None


def _target(diag: Diagnosis, pid: int, fd: int) -> str:
    """What the fd is (its link target, as scanned), cleaned; "" if not known."""
    proc = diag.processes.get(pid)
    return clean(proc.fds.get(fd, "")) if proc else ""


def _inode(edge: Edge) -> Optional[int]:
    """The inode of the object the edge goes through (a pipe's, a peer socket's)."""
    return edge.inode if edge.inode is not None else inode_of(edge.object)


def _ends_at(diag: Diagnosis, pid: int, tid: int) -> List[End]:
    """The thread's end and, for an OR wait, its alternatives that lead nowhere blocked."""
    wait = diag.waits.get((pid, tid))
    if wait is None:
        return []
    return ([wait.end] if wait.end is not None else []) + list(wait.live)


# --- per edge kind -----------------------------------------------------------------------


def _pipe(diag: Diagnosis, edge: Edge) -> List[Check]:
    inode = _inode(edge) if edge.kind == EdgeKind.PIPE else None
    end = "read" if edge.writing else "write"
    first = str(edge.holder_fds[0]) if edge.holder_fds else ""
    checks = []
    if inode is not None:
        mode = "r--" if edge.writing else "-w-"
        checks.append(Check(f"lsfd -Q 'INODE == {inode}'",
                            f"every holder of the pipe; {edge.to_pid} has MODE {mode} (the {end} end)"))
        other = f"{edge.to_pid},…,{first or 'FD'}{end[0]}"
        checks.append(Check(f"lsof -n -P +E -p {edge.from_pid} -a -d {_from_fd(diag, edge)}",
                            f"the pipe; +E adds its other end: {other}"))
    else:
        path = shlex.quote(clean(edge.object))
        checks.append(Check(f"lsof -n -P -- {path}", f"{edge.to_pid} holds the {end} end of the FIFO"))
    if first:
        mode = "0 (O_RDONLY) or 2 (O_RDWR)" if edge.writing else "1 (O_WRONLY) or 2 (O_RDWR)"
        checks.append(Check(f"grep flags /proc/{edge.to_pid}/fdinfo/{first}",
                            f"the last octal digit is {mode}: the {end} end"))
    return checks


def _from_fd(diag: Diagnosis, edge: Edge) -> str:
    fd = edge.fd if edge.fd is not None else _fd_of(diag, edge.from_pid, edge.from_tid)
    return str(fd) if fd is not None else "FD"


def _unix(diag: Diagnosis, edge: Edge) -> List[Check]:
    peer = _inode(edge)
    if peer is None:
        return [_evidence_only(edge)]
    if edge.unaccepted:  # the listener, whose queue holds the connection
        return [Check(f"{_netns_prefix(diag, edge.to_pid)}ss -xlp | grep -w {peer}",
                      f"the listening socket, held by {name(diag, edge.to_pid)}; Recv-Q counts the "
                      "connections it has not accepted yet"),
                Check(f"lsfd -Q 'INODE == {peer}'", f"{name(diag, edge.to_pid)} holds the listening socket")]
    return [Check(f"ss -xp | grep -w {peer}",
                  f"the connection; the side with inode {peer} names {edge.to_pid} in users:(...)"),
            Check(f"lsfd -Q 'INODE == {peer}'", f"{name(diag, edge.to_pid)} holds the peer socket")]


def _tcp(diag: Diagnosis, edge: Edge) -> List[Check]:
    if edge.local is None or edge.remote is None:
        return [_evidence_only(edge)]
    here, there, port = _address(edge.local), _address(edge.remote), edge.local[1]
    expect = (f"this end {here}→{there} and its peer, held by {name(diag, edge.to_pid)}; "
              "Recv-Q/Send-Q are the queued bytes")
    ns = _netns_prefix(diag, edge.from_pid)
    return [Check(f"{ns}ss -tnp '( sport = :{port} or dport = :{port} )'", expect),
            Check(f"lsof -n -P -iTCP:{port}", "both ends, if they are in this network namespace")]


def _address(addr: Tuple[str, int]) -> str:
    host, port = addr
    return clean(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def _netns_prefix(diag: Diagnosis, pid: int) -> str:
    """`nsenter -t PID -n ` when the processes are in several network namespaces (ss sees
    only its own)."""
    spaces = {p.netns for p in diag.processes.values() if p.netns}
    return f"nsenter -t {pid} -n " if len(spaces) > 1 else ""


def _child(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"cat /proc/{edge.from_pid}/task/*/children", f"lists {edge.to_pid}"),
            Check(f"grep PPid /proc/{edge.to_pid}/status", f"PPid: {edge.from_pid}")]


def _reap(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"grep -E 'State|PPid' /proc/{edge.from_pid}/status", f"State: Z (zombie), PPid: {edge.to_pid}"),
            Check(f"cat /proc/{edge.to_pid}/task/*/syscall", "no thread is in wait4 or waitid (their numbers)")]


def _ptrace(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"grep -E 'State|TracerPid' /proc/{edge.from_pid}/status",
                  f"State: t (tracing stop), TracerPid: {edge.to_pid}")]


def _lock(diag: Diagnosis, edge: Edge) -> List[Check]:
    fd = _from_fd(diag, edge)
    if edge.inode is not None:  # the inode column of /proc/locks is MAJ:MIN:INODE
        pattern = f"':{edge.inode} '"
    elif fd != "FD":  # double quotes: the shell must expand $(...)
        pattern = f'":$(stat -Lc %i /proc/{edge.from_pid}/fd/{fd}) "'
    else:
        pattern = "':INODE '"
    holder = Check(f"lslocks -p {edge.to_pid}", f"{name(diag, edge.to_pid)} holds a lock on the same file")
    if edge.retry is not None:  # inferred: no blocked request to see, the tries fail between sleeps
        return [Check(f"grep {pattern} /proc/locks", "the granted lock; no request is marked -> (it does not block)"),
                holder,
                Check(f"strace -p {edge.from_pid} -e trace=fcntl,flock",
                      "its tries failing with EAGAIN (strace attaches: it stops the process briefly)")]
    return [Check(f"grep {pattern} /proc/locks",
                  "the granted lock, and this request marked -> (blocked)"), holder]


def _futex(diag: Diagnosis, edge: Edge) -> List[Check]:
    owner = edge.to_tid if edge.to_tid is not None else edge.to_pid
    role = "mutex owner" if edge.kind == EdgeKind.MUTEX else "joined thread"
    return [Check(f"cat /proc/{edge.to_pid}/task/{owner}/syscall",
                  f"what thread {owner} (the {role}) is doing instead of releasing it")]


def _fuse(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"cat /proc/{edge.from_pid}/task/{edge.from_tid}/stack", "request_wait_answer: a FUSE "
                  "request (root only)"),
            Check(f"grep -l fuse_connection /proc/{edge.to_pid}/fdinfo/*",
                  f"{name(diag, edge.to_pid)} holds /dev/fuse: it is the daemon that must answer")]


def _eventfd(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"grep -l eventfd-id /proc/{edge.to_pid}/fdinfo/*",
                  f"{name(diag, edge.to_pid)} holds the same eventfd")]


def _mqueue(diag: Diagnosis, edge: Edge) -> List[Check]:
    fd = _from_fd(diag, edge)
    path = _target(diag, edge.from_pid, int(fd)) if fd != "FD" else ""
    if not path:
        return [_evidence_only(edge)]
    return [Check(f"cat {shlex.quote('/dev/mqueue/' + path.lstrip('/'))}", "QSIZE: the bytes queued"),
            Check(f"ls -l /proc/{edge.to_pid}/fd | grep -F {shlex.quote(path)}",
                  f"{name(diag, edge.to_pid)} has the queue open")]


def _pty(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"ls -l /proc/{edge.to_pid}/fd | grep -E 'ptmx|pts'",
                  f"{name(diag, edge.to_pid)} holds the other side of the terminal")]


def _pg_lock(diag: Diagnosis, edge: Edge) -> List[Check]:
    """A PostgreSQL lock wait, asked of the server as waitchain --db did (its OS user, read-only)."""
    database = edge.db.database if edge.db is not None and edge.db.database else "postgres"
    query = f"SELECT pg_blocking_pids({edge.from_pid})"
    return [Check(f"psql -X -d {shlex.quote(database)} -c {shlex.quote(query)}",
                  f"{{{edge.to_pid}}} among the blocking pids (run as the server's OS user, e.g. sudo -u postgres)")]


def _evidence_only(edge: Edge) -> Check:
    return Check(f"# {clean(str(edge.kind))} {clean(edge.object)}", clean(edge.evidence))


EDGE_KINDS: Dict[EdgeKind, EdgeChecks] = {
    EdgeKind.PIPE: _pipe, EdgeKind.FIFO: _pipe, EdgeKind.UNIX: _unix, EdgeKind.TCP: _tcp,
    EdgeKind.CHILD: _child, EdgeKind.FLOCK: _lock, EdgeKind.POSIX_LOCK: _lock,
    EdgeKind.OFD_LOCK: _lock, EdgeKind.LOCK: _lock, EdgeKind.MUTEX: _futex, EdgeKind.JOIN: _futex,
    EdgeKind.FUSE: _fuse, EdgeKind.PTY: _pty, EdgeKind.EVENTFD: _eventfd, EdgeKind.MQUEUE: _mqueue,
    EdgeKind.REAP: _reap, EdgeKind.PTRACE: _ptrace, EdgeKind.PG_LOCK: _pg_lock,
}


# --- per end kind -----------------------------------------------------------------------


def _running(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"top -H -p {pid}", f"thread {tid} uses CPU"),
            Check(f"py-spy dump --nonblocking --pid {pid}", "where it computes (Python only)")]


def _wchan(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"cat /proc/{pid}/task/{tid}/wchan", "the kernel function it sleeps in")]


def _disk(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"cat /proc/{pid}/task/{tid}/stack", "the kernel stack of the wait (root only)"),
            Check("dmesg | tail", "I/O errors or hung-task warnings")]


def _stopped(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"grep -E 'State|TracerPid' /proc/{pid}/status",
                  "State: T (stopped); TracerPid is a debugger's pid, or 0")]


def _idle(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    reasons = {e.reason for e in _ends_at(diag, pid, tid)}
    if Reason.ACCEPT in reasons:
        return [Check(f"{_netns_prefix(diag, pid)}ss -ltnp | grep pid={pid},",
                      "Recv-Q: connections waiting to be accepted")]
    if Reason.FILE_EVENTS in reasons:
        return [Check(f"grep -h inotify /proc/{pid}/fdinfo/*",
                      "the watches: ino (hex) and sdev name the watched files")]
    return [Check(f"ls -l /proc/{pid}/fd", "the files, pipes and sockets it has open"),
            Check(f"cat /proc/{pid}/task/{tid}/wchan", "the kernel function it sleeps in")]


def _remote(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    peer = next((e.subject for e in _ends_at(diag, pid, tid)
                 if e.reason == Reason.REMOTE_PEER and e.subject), "")
    if not peer:
        return []
    return [Check(f"{_netns_prefix(diag, pid)}ss -tnpi dst {shlex.quote(clean(peer))}",
                  f"the connection of {pid} to {clean(peer)}; rtt and retransmits show a slow peer")]


def _signal(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"grep -E 'SigBlk|SigCgt' /proc/{pid}/task/{tid}/status",
                  "the signals it blocks and catches (hex masks)")]


END_KINDS: Dict[Optional[EndKind], EndChecks] = {
    EndKind.RUNNING: _running, EndKind.DISK: _disk, EndKind.KERNEL: _disk, EndKind.SIGNAL: _signal,
    EndKind.STOPPED: _stopped, EndKind.IDLE: _idle, EndKind.REMOTE: _remote,
    EndKind.SLEEPING: _wchan, EndKind.TERMINAL: _wchan, EndKind.UNKNOWN: _wchan,
}
