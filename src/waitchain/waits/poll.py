"""poll, ppoll, select, pselect6, epoll_wait, epoll_pwait, epoll_pwait2: an OR wait. The
thread proceeds when any watched fd is ready, so every watched fd is an alternative: the
edges a read (or a write) on that fd would give, or a live end (an idle listener, a remote
peer, a terminal, a timeout) that means the thread is not stuck whatever the edges lead to.

The watch set is read without stopping the thread: the pollfd array and the fd_sets from its
memory with process_vm_readv (the kernel copied them in and writes results back only on
return), the epoll set from the `tfd:` lines of /proc/PID/fdinfo/EPFD."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..errors import WaitchainError
from ..model import READ_WRITE, WRITE, Edge, End, Syscall, TcpSocket, Task, Wait
from ..procfs.fds import inode_of
from ..procfs.memory import read_memory
from ..snapshot import Snapshot
from . import io
from .describe import call_text, fd_text, plural, socket_of

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


@dataclass(frozen=True)
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
        return Wait(pid, task.tid, call_text(snap, pid, task), end=End("unknown", detail))
    unread = _unread(call, len(watched))
    watched = watched[:MAX_FDS]
    what = _what(snap, pid, task, watched)
    if not watched and not unread:
        end = End("sleeping", f"{call.name} watches no fd: it waits for time or a signal")
        return Wait(pid, task.tid, what, end=end)
    edges, live, stuck = _alternatives(snap, pid, task.tid, watched)
    if unread:  # not followed: any of them may be ready, so the thread is not known stuck
        live.append(End("unknown", f"{unread} more watched fds not followed (at most {MAX_FDS} are)"))
    timeout = _timeout(pid, call)
    if timeout:
        live.append(End("sleeping", timeout))
    # with edges, a wake-up fd only this process holds stays as a remark (it is no way out)
    end = (stuck[0] if stuck else None) if edges else live_end(len(watched), live, stuck)
    return Wait(pid, task.tid, what, tuple(edges), end, any_of=len(watched), live=tuple(live))


def _unread(call: Syscall, count: int) -> str:
    """How many watched fds past MAX_FDS were not read ("" if none)."""
    if call.name in ("poll", "ppoll") and call.args[1] > MAX_FDS:
        return f"{call.args[1] - MAX_FDS:,}"
    if call.name in ("select", "pselect6") and call.arg_int(0) > MAX_FDS:
        return f"up to {call.arg_int(0) - MAX_FDS:,}"
    return f"{count - MAX_FDS:,}" if count > MAX_FDS else ""


def _alternatives(snap: Snapshot, pid: int, tid: int, watched: List[Watched]):
    """Edges of every alternative, the live ends, and the ends that are stuck ("self")."""
    edges: List[Edge] = []
    live: List[End] = []
    stuck: List[End] = []
    single = len(snap.tasks(pid)) <= 1
    for w in watched:
        found, end = alternative(snap, pid, tid, w, single, len(watched))
        edges.extend(found)
        if end is not None:
            (stuck if end.kind == "self" else live).append(end)
    return edges, live, stuck


def alternative(snap: Snapshot, pid: int, tid: int, w: Watched, single: bool,
                count: int = 1) -> Tuple[List[Edge], Optional[End]]:
    """What one watched fd (of `count`) leads to: edges to the other end's holders, or an end."""
    text = fd_text(snap, pid, w.fd)
    if w.stale:
        return [], End("unknown", f"fd {w.fd} in the epoll set: {w.stale}")
    target = snap.target(pid, w.fd)
    if target is None:
        return [], End("unknown", f"fd {w.fd} is not open")
    if _listening(snap, pid, target):
        return [], End("idle", f"fd {text}: a listening socket, waits for a client")
    inner = io.fd_wait(snap, pid, tid, w.fd, _writing(snap, pid, w))
    edges = [_relabel(e, w, text, count) for e in inner.edges if e.to_pid != pid]
    if edges:
        return edges, None
    if inner.edges or (inner.end is not None and inner.end.kind == "self"):
        return [], _own(text, single)
    end = inner.end or End("unknown", "nothing found at the other end")
    return [], End(end.kind, f"fd {text}: {end.detail}")


def _relabel(edge: Edge, w: Watched, text: str, count: int) -> Edge:
    """`waits for any of 3 fds, here fd 6<TCP …> (EPOLLIN): waits for the peer`."""
    label = f"waits for any of {plural(count, 'fd')}, here fd {text} ({w.how}): {edge.label}"
    return replace(edge, label=label, evidence=f"{w.source}: fd {w.fd} {w.how}; {edge.evidence}")


def _own(text: str, single: bool) -> End:
    """The other end is held only by this process (a wake-up pipe or socketpair)."""
    if single:
        return End("self", f"fd {text}: only this process holds the other end "
                           "(a signal handler could still write it)")
    return End("idle", f"fd {text}: only this process holds the other end; "
                       "another of its threads may write it")


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


def live_end(count: int, live: List[End], stuck: List[End]) -> End:
    """The end of a thread none of whose alternatives leads to a blocked process."""
    fds = plural(count, "fd")
    if not live:
        details = "; ".join(e.detail for e in stuck[:SHOWN])
        return End("self", f"waits for any of {fds}, and this process holds the other end of each: {details}")
    kinds = {e.kind for e in live}
    kind = kinds.pop() if len(kinds) == 1 else "idle"
    details = "; ".join(e.detail for e in live[:SHOWN])
    more = f"; … {len(live) - SHOWN} more" if len(live) > SHOWN else ""
    return End(kind, f"waits for any of {fds}; none leads to a blocked process: {details}{more}")


# --- the watch set ---------------------------------------------------------------------


def watch_set(snap: Snapshot, pid: int, call: Syscall) -> List[Watched]:
    """The fds the call watches, each once, with the events it waits for."""
    if call.name in ("poll", "ppoll"):
        return _pollfds(pid, call.args[0], call.args[1])
    if call.name in ("select", "pselect6"):
        return _fd_sets(pid, call.arg_int(0), call.args[1:4])
    return _epoll(snap, pid, call.arg_int(0), 0, set())


def _pollfds(pid: int, address: int, nfds: int) -> List[Watched]:
    """struct pollfd { int fd; short events; short revents; }[nfds]."""
    nfds = min(nfds, MAX_FDS)
    if nfds == 0:
        return []
    data = read_memory(pid, address, 8 * nfds)
    merged: Dict[int, int] = {}
    for fd, events, _ in struct.iter_unpack("=iHH", data):
        if fd >= 0:
            merged[fd] = merged.get(fd, 0) | events
    source = f"pollfd array at {address:#x} ({plural(nfds, 'entry')}, read with process_vm_readv)"
    return [Watched(fd, ev, _names(ev, "POLL"), source) for fd, ev in merged.items()]


def _fd_sets(pid: int, nfds: int, addresses: Sequence[int]) -> List[Watched]:
    """Three bitmaps of unsigned longs (read, write, except), nfds bits each."""
    nfds = min(nfds, MAX_FDS)
    if nfds <= 0:
        return []
    size = (nfds + 63) // 64 * 8
    merged: Dict[int, int] = {}
    for address, (bit, _) in zip(addresses, SET_NAMES):
        if address:
            for fd in _bits(read_memory(pid, address, size), nfds):
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


def _timeout(pid: int, call: Syscall) -> str:
    """'' for an infinite wait, else how the timeout is given (it is a live alternative)."""
    if call.name in ("poll", "epoll_wait", "epoll_pwait"):
        ms = call.arg_int(2 if call.name == "poll" else 3)
        return "" if ms < 0 else f"its timeout ({ms} ms at most)"
    index = {"ppoll": 2, "select": 4, "pselect6": 4, "epoll_pwait2": 3}[call.name]
    address = call.args[index]
    if not address:
        return ""
    return f"its timeout ({_timespec(pid, address, call.name == 'select')} at most)"


def _timespec(pid: int, address: int, timeval: bool) -> str:
    try:
        sec, frac = struct.unpack("=qq", read_memory(pid, address, 16))
    except WaitchainError:
        return "a timeout it gives (unreadable)"
    return f"{sec + frac / (1e6 if timeval else 1e9):g} s"
