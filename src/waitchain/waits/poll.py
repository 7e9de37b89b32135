"""poll, ppoll, select, pselect6, epoll_wait, epoll_pwait, epoll_pwait2: an OR wait. The
thread proceeds when any watched fd is ready, so every watched fd is an alternative: the
edges a read (or a write) on that fd would give, or a live end (an idle listener, a remote
peer, a terminal, a timeout) that means the thread is not stuck whatever the edges lead to.
An fd whose other end only this process holds (a self-pipe) is an edge back to the process:
another of its threads may write it. Signals can end the wait too (signals.wake_sources).

The watch set is read without stopping the thread: the pollfd array and the fd_sets from its
memory with process_vm_readv (the kernel copied them in and writes results back only on
return), the epoll set from the `tfd:` lines of /proc/PID/fdinfo/EPFD."""

from __future__ import annotations

import re
import struct

from ..errors import WaitchainError
from ..model import (READ_WRITE, WRITE, Alternative, Edge, End, EndKind, Mode, Reason, Syscall, TcpSocket, Task,
                     Wait)
from ..procfs.fds import inode_of
from ..records import field, record, replace
from ..snapshot import Snapshot
from . import io, signals
from .describe import call_text, fd_text, object_text, plural, socket_of
from .ends import live_end

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Set, Tuple

SYSCALLS = {"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"}
EPOLLS = {"epoll_wait", "epoll_pwait", "epoll_pwait2"}

# poll(2) and epoll(7) share these bit values.
POLLIN, POLLPRI, POLLOUT, POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLMSG, POLLRDHUP = (
    0x1, 0x2, 0x4, 0x40, 0x80, 0x100, 0x200, 0x400, 0x2000)
READ_EVENTS = POLLIN | POLLPRI | POLLRDNORM | POLLRDBAND | POLLRDHUP
WRITE_EVENTS = POLLOUT | POLLWRNORM | POLLWRBAND
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
EP_PRIVATE = EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLONESHOT | EPOLLET
NAMES = ((POLLIN, "IN"), (POLLPRI, "PRI"), (POLLOUT, "OUT"), (POLLRDNORM, "RDNORM"),
         (POLLRDBAND, "RDBAND"), (POLLWRNORM, "WRNORM"), (POLLWRBAND, "WRBAND"),
         (POLLMSG, "MSG"), (POLLRDHUP, "RDHUP"), (EPOLLET, "ET"), (EPOLLONESHOT, "ONESHOT"),
         (EPOLLEXCLUSIVE, "EXCLUSIVE"))
SET_NAMES = ((POLLIN, "read"), (POLLOUT, "write"), (POLLPRI, "except"))

MAX_FDS = 4096  # watched fds read per call; more are not followed (each counts as live)
MAX_NESTING = 4  # epoll sets inside epoll sets
SHOWN = 4  # fds named in the call text
EVENTPOLL = "anon_inode:[eventpoll]"
_TFD = re.compile(r"^\s*(\d+)\s+events:\s*([0-9a-fA-F]+)(?:.*?\bino:\s*([0-9a-fA-F]+))?")


@record(frozen=True)
class Watched:
    """One watched fd: its event bits, how a person reads them, where they were read."""

    fd: int
    events: int
    how: str  # "POLLIN", "EPOLLIN|EPOLLOUT", "read set"
    source: str  # evidence: where the watch set came from
    stale: str = ""  # why the epoll entry is not this process's fd any more


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    call = task.syscall
    assert call is not None
    try:
        watched = watch_set(snap, pid, call)
    except WaitchainError as exc:
        detail = f"waits in {call.name} for any of several fds, but the set is unreadable: {exc}"
        unreadable = End(EndKind.UNKNOWN, detail, reason=Reason.NOT_READABLE)
        return Wait(pid, task.tid, call_text(snap, pid, task), end=unreadable, syscall=call.name)
    unread = _unread(call, len(watched))
    watched = watched[:MAX_FDS]
    what = _what(snap, pid, task, watched)
    timeout = _timeout(snap, pid, call)
    if not watched and not unread:  # a sleep (Python's time.sleep on 3.9/3.10) may be a lock retry loop
        wait = Wait(pid, task.tid, what, end=_no_fds(snap, pid, task.tid, call, timeout), syscall=call.name)
        return signals.retrying(snap, wait, timeout.timeout) if timeout is not None and timeout.timeout else wait
    found = _alternatives(snap, pid, task.tid, call.name, watched)
    if unread:  # not followed: any of them may be ready, so the thread is not known stuck
        detail = f"{unread} more watched fds not followed (at most {MAX_FDS} are)"
        found.live.append(End(EndKind.UNKNOWN, detail, reason=Reason.NOT_FOLLOWED))
    if timeout is not None:
        found.live.append(timeout)
    _add_signals(snap, pid, task.tid, call, found)
    end = None if found.edges else live_end(len(watched), found.live)
    return Wait(pid, task.tid, what, tuple(found.edges), end, any_of=len(watched),
                live=tuple(found.live), syscall=call.name, mode=Mode.ANY)


def _add_signals(snap: Snapshot, pid: int, tid: int, call: Syscall, found: "Alternatives") -> None:
    """Signals that end the wait: SIGCHLD edges to the children, a signal from outside."""
    others = any(e.to_pid != pid for e in found.edges)
    masked = signals.has_sigmask(snap, pid, call)
    woken, outside = signals.wake_sources(snap, pid, tid, call.name, masked, found.wakeup, others)
    found.edges.extend(woken)
    found.live.extend(outside)


def _unread(call: Syscall, count: int) -> str:
    """How many watched fds past MAX_FDS were not read ("" if none)."""
    if call.name in ("poll", "ppoll") and call.args[1] > MAX_FDS:
        return f"{call.args[1] - MAX_FDS:,}"
    if call.name in ("select", "pselect6") and call.arg_int(0) > MAX_FDS:
        return f"up to {call.arg_int(0) - MAX_FDS:,}"
    return f"{count - MAX_FDS:,}" if count > MAX_FDS else ""


def _no_fds(snap: Snapshot, pid: int, tid: int, call: Syscall, timeout: Optional[End]) -> End:
    """A call that watches no fd is a sleep (Python's time.sleep on 3.9/3.10 is select
    with no fds), or, with no timeout, a wait for a signal."""
    if timeout is not None:
        return End(EndKind.SLEEPING, reason=Reason.SLEEP, timeout=timeout.timeout, call=call.name,
                   unread=timeout.unread)
    return signals.suspend_end(snap, pid, tid, call.name)  # call.name says it watches no fd


@record
class Alternatives:
    """What the watched fds lead to: edges (to other processes, or back to this one when
    only it holds the other end), live ends, and whether one of them is a wake-up fd (read,
    and only this process holds the other end: a self-pipe a signal handler writes)."""

    edges: List[Edge] = field(default_factory=list)
    live: List[End] = field(default_factory=list)
    wakeup: bool = False


def _alternatives(snap: Snapshot, pid: int, tid: int, syscall: str, watched: List[Watched]) -> Alternatives:
    found = Alternatives()
    for w in watched:
        edges, end = alternative(snap, pid, tid, w, len(watched), syscall)
        found.edges.extend(edges)
        if end is not None:
            found.live.append(end)
        found.wakeup = found.wakeup or signals.is_wakeup_fd(snap, pid, edges)
    return found


def alternative(snap: Snapshot, pid: int, tid: int, w: Watched, count: int = 1,
                syscall: str = "") -> Tuple[List[Edge], Optional[End]]:
    """What one watched fd (of `count`) leads to: edges to the other end's holders (this
    process among them, if it holds it), or an end."""
    text = fd_text(snap, pid, w.fd)
    if w.stale:
        return [], End(EndKind.UNKNOWN, f"fd {w.fd} in the epoll set: {w.stale}", reason=Reason.OTHER)
    target = snap.target(pid, w.fd)
    if target is None:
        return [], End(EndKind.UNKNOWN, f"fd {w.fd} is not open", reason=Reason.OTHER)
    if _listening(snap, pid, target):
        return [], End(EndKind.IDLE, reason=Reason.ACCEPT, subject=text, through=text)
    inner = io.fd_wait(snap, pid, tid, w.fd, _writing(snap, pid, w), syscall=syscall)
    if not inner.edges and (not w.events & (READ_EVENTS | WRITE_EVENTS) or
                            inner.end is not None and inner.end.reason == Reason.IO):
        # watched for no event (nc polls /dev/null for errors only), or a file poll would
        # report at once: it ends nothing, it is no alternative
        return [], None
    if inner.edges:
        alternative = Alternative(count, w.how, object_text(snap, pid, target))
        return [_as_alternative(e, w, alternative, syscall) for e in inner.edges], None
    end = inner.end or End(EndKind.UNKNOWN, "nothing found at the other end", reason=Reason.OTHER)
    return [], replace(end, through=text)


def _as_alternative(edge: Edge, w: Watched, alternative: Alternative, syscall: str) -> Edge:
    """The edge a read (or write) on the watched fd gives, as one alternative of the call."""
    return replace(edge, evidence=f"{w.source}: fd {w.fd} {w.how}; {edge.evidence}", syscall=syscall,
                   fd=w.fd, alternative=alternative)


def _writing(snap: Snapshot, pid: int, w: Watched) -> bool:
    """The alternative is a write: the fd is a write end, or only write events are watched."""
    info = snap.fdinfo(pid, w.fd)
    access = info.access if info is not None else READ_WRITE
    if access != READ_WRITE:
        return access == WRITE
    return bool(w.events & WRITE_EVENTS) and not w.events & READ_EVENTS


def _listening(snap: Snapshot, pid: int, target: str) -> bool:
    sock = socket_of(snap, pid, target)
    if isinstance(sock, TcpSocket):
        return sock.state == "LISTEN"
    return sock is not None and sock.state == "listen"


# --- the watch set ---------------------------------------------------------------------


def watch_set(snap: Snapshot, pid: int, call: Syscall) -> List[Watched]:
    """The fds the call watches, each once, with the events it waits for."""
    if call.name in ("poll", "ppoll"):
        return _pollfds(snap, pid, call.args[0], call.args[1])
    if call.name in ("select", "pselect6"):
        return _fd_sets(snap, pid, call.arg_int(0), call.args[1:4])
    return _epoll(snap, pid, call.arg_int(0), 0, set())


def _pollfds(snap: Snapshot, pid: int, address: int, nfds: int) -> List[Watched]:
    """struct pollfd { int fd; short events; short revents; }[nfds]."""
    nfds = min(nfds, MAX_FDS)
    if nfds == 0:
        return []
    data = snap.memory.read(pid, address, 8 * nfds)
    merged: Dict[int, int] = {}
    for fd, events, _ in struct.iter_unpack("=iHH", data):
        if fd >= 0:
            merged[fd] = merged.get(fd, 0) | events
    source = f"pollfd array at {address:#x} ({plural(nfds, 'entry')}, read with process_vm_readv)"
    return [Watched(fd, ev, _names(ev, "POLL"), source) for fd, ev in merged.items()]


def _fd_sets(snap: Snapshot, pid: int, nfds: int, addresses: Sequence[int]) -> List[Watched]:
    """Three bitmaps of unsigned longs (read, write, except), nfds bits each."""
    nfds = min(nfds, MAX_FDS)
    if nfds <= 0:
        return []
    size = (nfds + 63) // 64 * 8
    merged: Dict[int, int] = {}
    for address, (bit, _) in zip(addresses, SET_NAMES):
        if address:
            for fd in _bits(snap.memory.read(pid, address, size), nfds):
                merged[fd] = merged.get(fd, 0) | bit
    source = f"fd_sets at {', '.join(f'{a:#x}' for a in addresses if a)} (read with process_vm_readv)"
    return [Watched(fd, ev, _set_names(ev), source) for fd, ev in sorted(merged.items())]


def _bits(data: bytes, nfds: int) -> List[int]:
    fds = []
    for i, (word,) in enumerate(struct.iter_unpack("=Q", data)):
        fds += [i * 64 + b for b in range(64) if word >> b & 1 and i * 64 + b < nfds]
    return fds


def _epoll(snap: Snapshot, pid: int, epfd: int, depth: int, seen: Set[int]) -> List[Watched]:
    """`tfd: FD events: HEX data: HEX pos:N ino:HEX sdev:HEX` lines; nested sets expanded."""
    info = snap.fdinfo(pid, epfd)
    if info is None:
        raise WaitchainError(f"/proc/{pid}/fdinfo/{epfd} is unreadable")
    seen.add(epfd)
    source = f"/proc/{pid}/fdinfo/{epfd} `tfd:` line"
    out: List[Watched] = []
    for key, value in info.extra:
        match = _TFD.match(value) if key == "tfd" else None
        if match is None or not int(match[2], 16) & ~EP_PRIVATE:
            continue  # not a tfd line, or disarmed (EPOLLONESHOT that fired)
        fd, events = int(match[1]), int(match[2], 16)
        target = snap.target(pid, fd) or ""
        if target == EVENTPOLL and depth < MAX_NESTING and fd not in seen:
            out += _epoll(snap, pid, fd, depth + 1, seen)
            continue
        stale = _stale(target, match[3])
        out.append(Watched(fd, events, _names(events, "EPOLL"), source, stale))
    return out


def _stale(target: str, ino: Optional[str]) -> str:
    """The epoll entry names a file that is not (any more) this process's fd of that number."""
    inode = inode_of(target)
    if ino is None or inode is None or inode == int(ino, 16):
        return ""
    return (f"registered for inode {int(ino, 16)}, but that fd is now {target} "
            "(closed and reused, or registered by another process sharing the set)")


def _names(events: int, prefix: str) -> str:
    names = [prefix + name for bit, name in NAMES if events & bit]
    return "|".join(names) or f"{prefix} events {events:#x}"


def _set_names(events: int) -> str:
    return "+".join(name for bit, name in SET_NAMES if events & bit) + " set"


# --- text and timeouts -----------------------------------------------------------------


def _what(snap: Snapshot, pid: int, task: Task, watched: List[Watched]) -> str:
    """epoll_wait(3<anon_inode:[eventpoll]>), poll([5<pipe:[1]>, 7<pipe:[2]>])."""
    call = task.syscall
    assert call is not None
    if call.name in EPOLLS:
        return call_text(snap, pid, task)
    shown = [fd_text(snap, pid, w.fd) for w in watched[:SHOWN]]
    if len(watched) > SHOWN:
        shown.append(f"… {len(watched) - SHOWN} more")
    return f"{call.name}([{', '.join(shown)}])"


def _timeout(snap: Snapshot, pid: int, call: Syscall) -> Optional[End]:
    """None for an infinite wait, else the timeout as a live alternative: the clock ends it."""
    if call.name in ("poll", "epoll_wait", "epoll_pwait"):
        ms = call.arg_int(2 if call.name == "poll" else 3)
        return None if ms < 0 else _timeout_end(call.name, ms / 1000)
    index = {"ppoll": 2, "select": 4, "pselect6": 4, "epoll_pwait2": 3}[call.name]
    address = call.args[index]
    if not address:
        return None
    try:
        seconds = _seconds(snap, pid, address, call.name == "select")
    except WaitchainError:
        return _timeout_end(call.name, None)
    return _timeout_end(call.name, seconds)


def _timeout_end(name: str, seconds: Optional[float]) -> End:
    """The clock ends the wait after `seconds` at most (None: a timeout it gives, unreadable)."""
    return End(EndKind.SLEEPING, reason=Reason.TIMEOUT, timeout=seconds, call=name,
               unread="" if seconds is not None else "timeout unreadable")


def _seconds(snap: Snapshot, pid: int, address: int, timeval: bool) -> float:
    """A struct timeval (select) or timespec (the others) as seconds."""
    if not timeval:
        return snap.memory.timespec(pid, address)
    sec, usec = struct.unpack("=qq", snap.memory.read(pid, address, 16))
    return sec + usec / 1e6
