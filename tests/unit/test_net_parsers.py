"""Parsers of /proc/net/tcp{,6} and /proc/net/unix on text recorded on this machine
(x86_64, kernel 6.18) from sockets made for the purpose."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from waitchain.model import TcpSocket, UnixSocket
from waitchain.procfs.net import parse_tcp, parse_unix

DATA = Path(__file__).resolve().parent.parent / "data"
# Addresses are printed as in-memory words: the recording is little-endian.
little_endian = pytest.mark.skipif(sys.byteorder != "little", reason="recorded on little-endian")


def _read(name: str) -> str:
    return (DATA / name).read_text()


@little_endian
def test_tcp_v4() -> None:
    assert parse_tcp(_read("proc_net_tcp.txt")) == [
        TcpSocket(("127.0.0.1", 56991), ("0.0.0.0", 0), "LISTEN", 0, 0, 6174),
        TcpSocket(("127.0.0.1", 40518), ("127.0.0.1", 53193), "ESTABLISHED", 0, 0, 6176),
    ]


@little_endian
def test_tcp_v6_with_dual_stack() -> None:
    assert parse_tcp(_read("proc_net_tcp6.txt")) == [
        TcpSocket(("::", 53193), ("::", 0), "LISTEN", 0, 0, 6175),
        TcpSocket(("::1", 48299), ("::", 0), "LISTEN", 0, 0, 6178),
        TcpSocket(("127.0.0.1", 53193), ("127.0.0.1", 40518), "ESTABLISHED", 0, 5, 6177),
        TcpSocket(("::1", 48299), ("::1", 42606), "ESTABLISHED", 0, 0, 6180),
        TcpSocket(("::1", 42606), ("::1", 48299), "ESTABLISHED", 0, 0, 6179),
    ]


@little_endian
def test_dual_stack_pair_matches() -> None:
    client = {s.inode: s for s in parse_tcp(_read("proc_net_tcp.txt"))}[6176]
    server = {s.inode: s for s in parse_tcp(_read("proc_net_tcp6.txt"))}[6177]
    assert (client.local, client.remote) == (server.remote, server.local)


def test_tcp_states_and_unknown_state() -> None:
    line = "   0: 0100007F:0016 00000000:0000 {} 00000010:00000020 00:0 0 0 0 42 1 0"
    assert parse_tcp(line.format("0C"))[0].state == "NEW_SYN_RECV"
    assert parse_tcp(line.format("06"))[0].state == "TIME_WAIT"
    sock = parse_tcp(line.format("0D"))[0]
    assert (sock.state, sock.tx_queue, sock.rx_queue, sock.inode) == ("UNKNOWN_0D", 16, 32, 42)


def test_unix() -> None:
    assert parse_unix(_read("proc_net_unix.txt")) == {
        6184: UnixSocket(6184, "stream", "established"),
        6182: UnixSocket(6182, "stream", "established"),
        6183: UnixSocket(6183, "stream", "established", path="/tmp/waitchain-rec.sock"),
        6185: UnixSocket(6185, "stream", "established"),
        6187: UnixSocket(6187, "seqpacket", "unconnected"),
        6181: UnixSocket(6181, "stream", "listen", path="/tmp/waitchain-rec.sock"),
        6186: UnixSocket(6186, "dgram", "unconnected", path="@waitchain-abstract"),
    }


def test_unix_path_with_space() -> None:
    line = "0000000000000000: 00000002 00000000 00010000 0001 01  77 /tmp/a b"
    assert parse_unix(line)[77].path == "/tmp/a b"


def test_empty() -> None:
    assert parse_tcp("") == []
    assert parse_unix("") == {}


@pytest.mark.parametrize("name", ["proc_net_tcp.txt", "proc_net_tcp6.txt", "proc_net_unix.txt"])
def test_truncated_lines(name: str) -> None:
    for line in _read(name).split("\n"):
        for end in range(len(line)):
            parse_tcp(line[:end])
            parse_unix(line[:end])


@pytest.mark.parametrize(
    "line",
    [
        "   0: 0100007F:0016 00000000:0000 0A 00000000 00:0 0 0 0 1",  # no rx_queue
        "   0: 0100007F 00000000:0000 0A 0:0 00:0 0 0 0 1",  # no port
        "   0: 0100007:0016 00000000:0000 0A 0:0 00:0 0 0 0 1",  # 7 hex digits
        "   0: 0100007F:10000 00000000:0000 0A 0:0 00:0 0 0 0 1",  # port > 65535
        "   0: 0x00007F:0016 00000000:0000 0A 0:0 00:0 0 0 0 1",  # prefix
        "   0: 0100007F:0016 00000000:0000 0A 0:0 00:0 0 0 0 -1",  # negative inode
        "   0: 0100007F:0016 00000000:0000 0A 0:0 00:0 0 0 0 \u0661",  # non-ASCII digit
    ],
)
def test_malformed_tcp_lines_skipped(line: str) -> None:
    assert parse_tcp(line) == []


def test_malformed_unix_lines_skipped() -> None:
    assert parse_unix("0000: 00000002 00000000 0001000Z 0001 01 77") == {}
    assert parse_unix("0000: 00000002 00000000 00000000 0001 01") == {}
    assert parse_unix("0000: 00000002 00000000 00000000 0001 01 x7") == {}


def test_random_garbage() -> None:
    rng = random.Random(1234)
    samples = [_read(n) for n in ("proc_net_tcp.txt", "proc_net_tcp6.txt", "proc_net_unix.txt")]
    for _ in range(300):
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(400))).decode("latin-1")
        mixed = rng.choice(samples)
        cut = rng.randrange(len(mixed))
        for text in (noise, mixed[:cut] + noise + mixed[cut:]):
            assert all(isinstance(s, TcpSocket) for s in parse_tcp(text))
            assert all(isinstance(s, UnixSocket) for s in parse_unix(text).values())
