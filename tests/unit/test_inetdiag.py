"""NETLINK_SOCK_DIAG for TCP (inet_diag): tcp_info of one connection, on real sockets."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import pytest

from waitchain import errors
from waitchain.procfs import inetdiag


@pytest.fixture(autouse=True)
def _needs_inet_diag() -> None:
    try:
        inetdiag.tcp_info(("127.0.0.1", 1), ("127.0.0.1", 2))
    except errors.Unsupported:
        pytest.skip("this kernel has no inet_diag")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_bytes_received_and_read(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as listener, \
            socket.create_connection(listener.getsockname()[:2]) as client:
        server, _ = listener.accept()
        with server:
            here, there = server.getsockname()[:2], server.getpeername()[:2]
            assert inetdiag.tcp_info(here, there).bytes_received == 0
            client.sendall(b"x" * 100)
            deadline = time.monotonic() + 5
            while inetdiag.tcp_info(here, there).bytes_received < 100 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert inetdiag.tcp_info(here, there).bytes_received == 100
            assert server.recv(200) == b"x" * 100  # read: the count stays
            info = inetdiag.tcp_info(here, there)
            assert info.bytes_received == 100 and info.bytes_acked <= 1  # sent nothing (a SYN-ACK at most)
            assert inetdiag.tcp_info(client.getsockname()[:2], client.getpeername()[:2]).bytes_acked >= 100


def test_no_such_connection() -> None:
    assert inetdiag.tcp_info(("127.0.0.1", 1), ("127.0.0.1", 2)) is None
    assert inetdiag.tcp_info(("not an address", 1), ("127.0.0.1", 2)) is None


def test_tcp_info_in_a_namespace_asked_from_inside() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client, \
            open(f"/proc/{os.getpid()}/ns/net", "rb") as ns:
        client.sendall(b"abc")
        server, _ = listener.accept()
        with server:
            server.recv(10)
            info = inetdiag.tcp_info(server.getsockname(), server.getpeername(), ns.fileno())
            assert info is not None and info.bytes_received == 3


def test_parse_info_offsets_and_short_data() -> None:
    data = bytearray(232)
    struct.pack_into("=I", data, 52, 1500)
    struct.pack_into("=QQ", data, 120, 7, 42)
    assert inetdiag.parse_info(bytes(data)) == inetdiag.TcpInfo(7, 42, 1.5)
    assert inetdiag.parse_info(bytes(data[:135])) is None  # a kernel older than 4.2
    rng = random.Random(9)
    for _ in range(200):
        inetdiag.parse_info(bytes(rng.getrandbits(8) for _ in range(rng.randrange(300))))
