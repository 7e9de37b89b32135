"""NETLINK_SOCK_DIAG for unix sockets, on real sockets."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from waitchain import errors
from waitchain.procfs import sockdiag


def _ino(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


@pytest.fixture(autouse=True)
def _needs_unix_diag() -> None:
    try:
        sockdiag.unix_dump()
    except errors.Unsupported:
        pytest.skip("this kernel has no unix_diag")


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def test_pair_peer(pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    found = sockdiag.unix_lookup([_ino(a)])
    assert list(found) == [_ino(a)]
    rec = found[_ino(a)]
    assert (rec.type, rec.state, rec.peer, rec.path) == ("stream", "established", _ino(b), "")


def test_receive_queue(pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(b"12345")
    found = sockdiag.unix_lookup([_ino(a), _ino(b)])
    assert found[_ino(b)].rqueue == 5
    assert found[_ino(a)].rqueue == 0


def test_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen(4)
        client.connect(path)  # pending: not accepted
        rec = sockdiag.unix_lookup([_ino(server)])[_ino(server)]
    assert (rec.state, rec.path, rec.type, rec.peer) == ("listen", path, "stream", 0)
    assert rec.rqueue == 1  # the accept backlog


def test_listeners_list_their_queued_clients(tmp_path: Path) -> None:
    """UDIAG_SHOW_ICONS: a listener names the client sockets in its accept queue, whose own
    peer has no inode yet; once accepted, the client has a peer and the queue is empty."""
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client, \
            socket.socket(socket.AF_UNIX) as other:
        server.bind(path)
        server.listen(4)
        client.connect(path)
        other.connect(path)
        queued = sockdiag.unix_dump(listeners=True)
        assert set(queued[_ino(server)].pending) == {_ino(client), _ino(other)}
        assert all(s.state == "listen" for s in queued.values())
        assert sockdiag.unix_lookup([_ino(client)])[_ino(client)].peer == 0
        with open(f"/proc/{os.getpid()}/ns/net", "rb") as ns:  # the same, asked from "inside"
            assert set(sockdiag.unix_dump(ns.fileno(), listeners=True)[_ino(server)].pending) == \
                {_ino(client), _ino(other)}
        accepted, _ = server.accept()
        with accepted:
            again = sockdiag.unix_dump(listeners=True)[_ino(server)]
            assert again.pending == (_ino(other),) and again.rqueue == 1  # accepted in order
            assert sockdiag.unix_lookup([_ino(client)])[_ino(client)].peer == _ino(accepted)


def test_abstract_dgram() -> None:
    name = f"waitchain-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        rec = sockdiag.unix_lookup([_ino(sock)])[_ino(sock)]
    assert (rec.type, rec.state, rec.path) == ("dgram", "unconnected", "@" + name)


def test_seqpacket_type() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        assert sockdiag.unix_lookup([_ino(a)])[_ino(a)].type == "seqpacket"


def test_bogus_inodes_omitted(tmp_path: Path, pair: Tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    regular = tmp_path / "f"
    regular.write_text("x")
    bogus = [0, regular.stat().st_ino, 0xFFFFFFFF, 1 << 40, -3]
    assert list(sockdiag.unix_lookup(bogus + [_ino(a)])) == [_ino(a)]
    assert sockdiag.unix_lookup([]) == {}


def test_dump_has_both_ends(pair: Tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    found = sockdiag.unix_dump()
    assert found[_ino(a)].peer == _ino(b)
    assert found[_ino(b)].peer == _ino(a)


def test_many_lookups_one_socket() -> None:
    pairs = [socket.socketpair() for _ in range(50)]
    try:
        inodes = [_ino(s) for p in pairs for s in p]
        found = sockdiag.unix_lookup(inodes)
        assert sorted(found) == sorted(inodes)
        assert all(found[_ino(a)].peer == _ino(b) for a, b in pairs)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


@pytest.mark.parametrize(
    "code,expected",
    [(errno.EPERM, errors.AccessDenied), (errno.EACCES, errors.AccessDenied),
     (errno.EAFNOSUPPORT, errors.Unsupported), (errno.EPROTONOSUPPORT, errors.Unsupported)],
)
def test_open_errors(monkeypatch: pytest.MonkeyPatch, code: int, expected: type) -> None:
    def refuse(*_args: object) -> socket.socket:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(socket, "socket", refuse)
    with pytest.raises(expected):
        sockdiag.unix_lookup([1234])
    with pytest.raises(expected):
        sockdiag.unix_dump()


def test_snapshot_switches_to_one_dump_and_agrees() -> None:
    """Past UNIX_DUMP_AFTER lookups the snapshot asks for one dump; peers stay exact."""
    from waitchain.snapshot import UNIX_DUMP_AFTER, Snapshot

    pairs = [socket.socketpair() for _ in range(UNIX_DUMP_AFTER)]
    try:
        snap = Snapshot.scan(pids=[os.getpid()])
        inodes = [(os.fstat(a.fileno()).st_ino, os.fstat(b.fileno()).st_ino) for a, b in pairs]
        for a, b in inodes:
            assert snap.unix_socket(a).peer == b
            assert snap.unix_socket(b).peer == a
        assert snap._unix_dump is not None  # the second half came from the dump
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_a_namespace_that_cannot_be_joined_is_an_error_not_a_crash() -> None:
    """setns refuses an fd that is not a network namespace: our error, and no thread of ours
    is left in another namespace."""
    before = os.readlink("/proc/thread-self/ns/net")
    with open("/proc/self/ns/uts", "rb") as uts:
        with pytest.raises(errors.WaitchainError):
            sockdiag.unix_dump(uts.fileno(), listeners=True)
    assert os.readlink("/proc/thread-self/ns/net") == before
