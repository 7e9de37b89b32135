"""Which socket edges say the server read the request (issue 9, item 5): from the queue and
counter facts the socket rule puts on the edge, never from words."""

from __future__ import annotations

import pytest
from rule_fakes import FakeSnapshot, task

from waitchain.model import Edge, EdgeKind, EndKind, TcpSocket, UnixSocket
from waitchain.procfs.inetdiag import TcpInfo
from waitchain.render.labels import label
from waitchain.verdict import read_request
from waitchain.waits import io


def _edge(kind: EdgeKind, **facts) -> Edge:
    return Edge(1, 1, 2, None, kind, "socket:[9]", "evidence", **facts)


@pytest.mark.parametrize("edge, read", [
    (_edge(EdgeKind.TCP, peer_unread=0, peer_received=35), True),  # BLPOP over TCP
    (_edge(EdgeKind.UNIX, peer_unread=0), True),  # unix sockets count no bytes
    (_edge(EdgeKind.TCP, peer_unread=18, peer_received=18), False),  # still unread
    (_edge(EdgeKind.UNIX, peer_unread=5), False),
    (_edge(EdgeKind.TCP, peer_unread=0, peer_received=0), False),  # nothing was sent
    (_edge(EdgeKind.TCP, peer_unread=0), False),  # tcp_info unknown: not said
    (_edge(EdgeKind.UNIX), False),  # the peer's queue unknown
    (_edge(EdgeKind.UNIX, peer_unread=0, unaccepted=True), False),  # not even accepted
    (_edge(EdgeKind.TCP, peer_unread=0, peer_received=9, writing=True), False),  # a blocked writer
    (_edge(EdgeKind.PIPE, peer_unread=0), False),
])
def test_read_request(edge: Edge, read: bool) -> None:
    assert read_request(edge) is read


# --- the socket rule puts the facts on the edge ------------------------------------------------


def test_unix_edge_carries_the_peer_queue() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[1]"})
    snap.add_process(20, {4: "socket:[2]"})
    snap.unix[1] = UnixSocket(1, "stream", "established", peer=2)
    snap.unix[2] = UnixSocket(2, "stream", "established", peer=1, rqueue=7)
    (edge,) = io.rule(snap, 10, task(10, "recvfrom", 3)).edges
    assert (edge.to_pid, edge.peer_unread, edge.peer_received, edge.unaccepted) == (20, 7, None, False)
    assert "socket:[2] holds 7 B unread" in edge.evidence


def test_tcp_edge_carries_the_peer_queue_and_tcp_info() -> None:
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[5]"})
    snap.add_process(20, {4: "socket:[6]"})
    snap.tcp[5] = TcpSocket(("127.0.0.1", 40000), ("127.0.0.1", 6379), "ESTABLISHED", 0, 0, 5)
    snap.tcp_peers[5] = TcpSocket(("127.0.0.1", 6379), ("127.0.0.1", 40000), "ESTABLISHED", 0, 0, 6)
    snap.tcp_infos[6] = TcpInfo(bytes_acked=0, bytes_received=35, last_data_recv=2.0)
    (edge,) = io.rule(snap, 10, task(10, "recvfrom", 3)).edges
    assert (edge.to_pid, edge.peer_unread, edge.peer_received) == (20, 0, 35)
    assert read_request(edge)


def test_a_unix_client_in_a_listeners_queue_waits_for_its_holders_to_accept() -> None:
    """Peer inode 0 and listed by a listener (UDIAG_SHOW_ICONS): an unaccepted edge to the
    listener's holders; not listed by any: no peer, as before."""
    snap = FakeSnapshot()
    snap.add_process(10, {3: "socket:[1]", 5: "socket:[3]"})
    snap.add_process(20, {7: "socket:[9]"})
    snap.unix[1] = UnixSocket(1, "stream", "established", peer=0)
    snap.unix[3] = UnixSocket(3, "stream", "established", peer=0)
    snap.unix[9] = UnixSocket(9, "stream", "listen", path="/run/app.sock", rqueue=1, pending=(1,))
    (edge,) = io.rule(snap, 10, task(10, "recvfrom", 3)).edges
    assert (edge.to_pid, edge.kind, edge.unaccepted, edge.holder_fds, edge.inode) == (20, EdgeKind.UNIX, True, (7,), 9)
    assert label(edge) == "waits for the server to accept the connection"
    assert "/run/app.sock" in edge.evidence and not read_request(edge)
    wait = io.rule(snap, 10, task(10, "recvfrom", 5))
    assert wait.edges == () and wait.end is not None and wait.end.kind == EndKind.UNKNOWN
