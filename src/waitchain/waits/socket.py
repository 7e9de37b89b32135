"""Sockets. A reader or writer on a connected socket waits for the holders of the peer
socket: found through sock_diag for unix sockets, the reversed 4-tuple for TCP. The waiter's
own process may be one of them (a socketpair between its threads, a client and a server
thread over loopback): that edge goes back to its own process. A TCP peer that is not on
this host ends the chain as `remote`."""

from __future__ import annotations

import ipaddress

from ..model import Edge, EdgeKind, End, EndKind, Missing, Mode, Reason, TcpSocket, UnixSocket, Wait
from ..procfs.fds import inode_of
from ..records import record
from ..snapshot import Snapshot
from .describe import endpoint, nobody_end, tcp_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

CONNECTED = ("stream", "seqpacket")  # unix socket types that connect through a listener


@record(frozen=True)
class Side:
    """The waiter: its thread, fd and call, and whether it writes."""

    pid: int
    tid: int
    fd: int
    writing: bool
    syscall: str
    what: str

    def wait(self, edges: Tuple[Edge, ...] = (), end: Optional[End] = None) -> Wait:
        return Wait(self.pid, self.tid, self.what, edges, end, syscall=self.syscall, mode=Mode.ANY)


def wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool, what: str,
         syscall: str = "") -> Wait:
    side = Side(pid, tid, fd, writing, syscall, what)
    inode = inode_of(target) or 0
    tcp = snap.tcp_socket(pid, inode)
    if tcp is not None:
        return _tcp(snap, side, tcp)
    unix = snap.unix_socket(inode, pid)
    if unix is None:
        detail = f"{target} is neither TCP nor a unix socket (not followed)"
        return side.wait(end=End(EndKind.UNKNOWN, detail, reason=Reason.NOT_FOLLOWED, subject=target))
    if not unix.peer and unix.state == "established" and unix.type in CONNECTED:
        listener = snap.unix_listener(unix.inode, pid)
        if listener is not None:
            return _unix_not_accepted(snap, side, unix, listener, target)
    if not unix.peer:
        return side.wait(end=_unpaired(unix, target))
    peer_target = f"socket:[{unix.peer}]"
    evidence = f"sock_diag: {target} has peer {peer_target}; held by " + _holders_text(snap, peer_target)
    queued = unix.wqueue if writing else unix.rqueue
    holders = snap.holders.get(peer_target, ())
    peer = snap.unix_socket(unix.peer, holders[0][0] if holders else pid)
    if peer is not None:
        evidence += f"; {peer_target} holds {peer.rqueue} B unread"
    edges = _edges(snap, side, peer_target, EdgeKind.UNIX, evidence, queued=queued, inode=unix.peer,
                   peer_unread=peer.rqueue if peer is not None else None)
    return side.wait(edges, None if edges else _orphan(snap, peer_target))


def _unix_not_accepted(snap: Snapshot, side: Side, unix: UnixSocket, listener: UnixSocket,
                       target: str) -> Wait:
    """A connected unix socket whose peer has no inode yet: the connection waits in the
    accept queue of `listener` (sock_diag UDIAG_SHOW_ICONS lists it there)."""
    where = f"socket:[{listener.inode}]"
    evidence = (f"sock_diag: {target} is connected, its peer not accepted yet: it is in the accept queue "
                f"of the listening {where}" + (f" {listener.path}" if listener.path else "")
                + f" ({listener.rqueue} queued); held by " + _holders_text(snap, where))
    queued = unix.wqueue if side.writing else unix.rqueue
    edges = _edges(snap, side, where, EdgeKind.UNIX, evidence, queued=queued, inode=listener.inode,
                   unaccepted=True)
    return side.wait(edges, None if edges else _orphan(snap, where))


def _unpaired(unix: UnixSocket, target: str) -> End:
    """A unix socket with no peer: a bound datagram socket receives from anyone (a server
    waiting for clients); anything else is not understood."""
    if unix.type == "dgram" and unix.path and unix.state != "established":
        detail = f"receives datagrams on {unix.path}: waits for a client to send one"
        return End(EndKind.IDLE, detail, reason=Reason.ACCEPT, subject=unix.path)
    detail = f"unix {unix.type} socket {target} has no peer"
    return End(EndKind.UNKNOWN, detail, reason=Reason.OTHER, subject=target)


def _tcp(snap: Snapshot, side: Side, sock: TcpSocket) -> Wait:
    peer, netns = snap.tcp_peer(side.pid, sock)
    if peer is None:
        return side.wait(end=_remote(snap, sock))
    if peer.inode == 0:
        return _not_accepted(snap, side, sock, peer, netns)
    peer_target = f"socket:[{peer.inode}]"
    nat = (peer.local, peer.remote) != (sock.remote, sock.local)  # found through conntrack
    evidence = (f"/proc/{side.pid}/net/tcp: {tcp_text(sock)}; " + (
        f"conntrack: NAT gives it the other end {tcp_text(peer)}, which is {peer_target}" if nat else
        f"reversed 4-tuple is {peer_target}") + ", held by " + _holders_text(snap, peer_target))
    queued = sock.tx_queue if side.writing else sock.rx_queue
    info = snap.tcp_info(netns, peer)
    evidence += f"; {peer_target} holds {peer.rx_queue} B unread" + (
        f", received {info.bytes_received} B in all (tcp_info)" if info is not None else "")
    edges = _edges(snap, side, peer_target, EdgeKind.TCP, evidence, queued=queued, inode=peer.inode,
                   tcp=sock, peer_unread=peer.rx_queue,
                   peer_received=info.bytes_received if info is not None else None)
    return side.wait(edges, None if edges else _orphan(snap, peer_target))


def _not_accepted(snap: Snapshot, side: Side, sock: TcpSocket, peer: TcpSocket, netns: str) -> Wait:
    listener = snap.tcp_listener(netns, peer.local)
    if listener is None:
        detail = f"peer of {tcp_text(sock)} not accepted, and no listener found for it"
        return side.wait(end=End(EndKind.UNKNOWN, detail, reason=Reason.OTHER, subject=endpoint(sock.remote)))
    target = f"socket:[{listener.inode}]"
    evidence = f"peer {tcp_text(peer)} is in the accept queue of {tcp_text(listener)}"
    queued = sock.tx_queue if side.writing else sock.rx_queue
    edges = _edges(snap, side, target, EdgeKind.TCP, evidence, queued=queued,
                   inode=listener.inode, tcp=sock, unaccepted=True)
    return side.wait(edges, None if edges else _orphan(snap, target))


def _edges(snap: Snapshot, side: Side, target: str, kind: EdgeKind, evidence: str, queued: int,
           inode: int, tcp: Optional[TcpSocket] = None, unaccepted: bool = False,
           peer_unread: Optional[int] = None, peer_received: Optional[int] = None) -> Tuple[Edge, ...]:
    """One edge per process holding the peer socket (the waiter's own process included)."""
    local, remote = (tcp.local, tcp.remote) if tcp is not None else (None, None)
    return tuple(
        Edge(side.pid, side.tid, holder, None, kind, target, evidence, syscall=side.syscall,
             fd=side.fd, writing=side.writing, queued=queued, holder_fds=fds, inode=inode,
             local=local, remote=remote, unaccepted=unaccepted, peer_unread=peer_unread,
             peer_received=peer_received)
        for holder, fds in _by_pid(snap, target).items())


def _by_pid(snap: Snapshot, target: str) -> Dict[int, Tuple[int, ...]]:
    found: Dict[int, List[int]] = {}
    for pid, fd in snap.holders.get(target, ()):
        found.setdefault(pid, []).append(fd)
    return {pid: tuple(fds) for pid, fds in sorted(found.items())}


def _holders_text(snap: Snapshot, target: str) -> str:
    holders: List[str] = [f"/proc/{pid}/fd/{fd}" for pid, fd in snap.holders.get(target, ())]
    return ", ".join(holders) or "no process"


def _remote(snap: Snapshot, sock: TcpSocket) -> End:
    where = endpoint(sock.remote)
    if _is_local(sock.remote[0]):
        return nobody_end(snap, Missing.TCP_PEER, where, connection=tcp_text(sock))
    return End(EndKind.REMOTE, reason=Reason.REMOTE_PEER, subject=where, local=sock.local, remote=sock.remote)


def _is_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _orphan(snap: Snapshot, target: str) -> End:
    return nobody_end(snap, Missing.UNIX_PEER, target)
