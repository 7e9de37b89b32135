"""Sockets. A reader or writer on a connected socket waits for the holders of the peer
socket: found through sock_diag for unix sockets, the reversed 4-tuple for TCP. A TCP peer
that is not on this host ends the chain as `remote`."""

from __future__ import annotations

import ipaddress
from typing import List, Optional

from ..model import Edge, End, TcpSocket, Wait
from ..procfs.fds import inode_of
from ..snapshot import Snapshot
from .describe import endpoint, tcp_text


def wait(snap: Snapshot, pid: int, tid: int, fd: int, target: str, writing: bool, what: str) -> Wait:
    inode = inode_of(target) or 0
    tcp = snap.tcp_socket(pid, inode)
    if tcp is not None:
        return _tcp(snap, pid, tid, tcp, writing, what)
    unix = snap.unix_socket(inode)
    if unix is None:
        return Wait(pid, tid, what, end=End("unknown", f"{target} is neither TCP nor a unix socket"))
    if not unix.peer:
        return Wait(pid, tid, what, end=End("unknown", f"unix {unix.type} socket {target} has no peer"))
    peer_target = f"socket:[{unix.peer}]"
    label = _label(writing, unix.wqueue if writing else unix.rqueue)
    evidence = f"sock_diag: {target} has peer {peer_target}; held by " + _holders_text(snap, peer_target)
    edges = _edges(snap, pid, tid, peer_target, "unix", label, evidence)
    return Wait(pid, tid, what, edges, None if edges else _orphan(peer_target))


def _tcp(snap: Snapshot, pid: int, tid: int, sock: TcpSocket, writing: bool, what: str) -> Wait:
    peer, netns = snap.tcp_peer(pid, sock)
    label = _label(writing, sock.tx_queue if writing else sock.rx_queue)
    if peer is None:
        return Wait(pid, tid, what, end=_remote(sock))
    if peer.inode == 0:
        return _not_accepted(snap, pid, tid, sock, peer, netns, what)
    peer_target = f"socket:[{peer.inode}]"
    evidence = (f"/proc/{pid}/net/tcp: {tcp_text(sock)}; reversed 4-tuple is {peer_target}, "
                f"held by " + _holders_text(snap, peer_target))
    edges = _edges(snap, pid, tid, peer_target, "tcp", label, evidence)
    return Wait(pid, tid, what, edges, None if edges else _orphan(peer_target))


def _not_accepted(snap: Snapshot, pid: int, tid: int, sock: TcpSocket, peer: TcpSocket,
                  netns: str, what: str) -> Wait:
    listener = snap.tcp_listener(netns, peer.local)
    if listener is None:
        return Wait(pid, tid, what, end=End("unknown", f"peer of {tcp_text(sock)} not accepted"))
    target = f"socket:[{listener.inode}]"
    label = "waits for the server to accept the connection"
    evidence = f"peer {tcp_text(peer)} is in the accept queue of {tcp_text(listener)}"
    edges = _edges(snap, pid, tid, target, "tcp", label, evidence)
    return Wait(pid, tid, what, edges, None if edges else _orphan(target))


def _edges(snap: Snapshot, pid: int, tid: int, target: str, kind: str, label: str,
           evidence: str) -> tuple:
    holders = sorted({h.pid for h in snap.holders_of(target)})
    return tuple(Edge(pid, tid, other, None, kind, target, evidence, label) for other in holders)


def _holders_text(snap: Snapshot, target: str) -> str:
    holders: List[str] = [f"/proc/{pid}/fd/{fd}" for pid, fd in snap.holders.get(target, ())]
    return ", ".join(holders) or "no process"


def _label(writing: bool, queued: int) -> str:
    if writing:
        return f"waits for the peer to read ({queued} B unsent)"
    return "waits for the peer"


def _remote(sock: TcpSocket) -> End:
    host = sock.remote[0]
    if _is_local(host):
        return End("unknown", f"no socket on this host matches {tcp_text(sock)}")
    return End("remote", f"peer {endpoint(sock.remote)} is on another host")


def _is_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _orphan(target: str) -> Optional[End]:
    return End("unknown", f"no process holds the peer {target} (passed over a socket, or closing)")
