"""TCP counters through NETLINK_SOCK_DIAG (sock_diag(7), linux/inet_diag.h): the tcp_info
of one connection, found by its addresses. /proc/net/tcp shows the queues; only tcp_info
says how many bytes a socket has received in all (the request came and was read) and how
long ago the last data came.

Only sockets of the netlink socket's network namespace are visible (see sockdiag._open)."""

from __future__ import annotations

import errno
import ipaddress
import struct

from .. import errors
from .sockdiag import (NLMSG_ERROR, NOCOOKIE, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, _attrs_at, _errno,
                       _messages, _open, _recv, _send)
from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

INET_DIAG_INFO = 2
_REQ = struct.Struct("=BBBxI")  # family, protocol, ext, pad, states
_SOCKID = struct.Struct(">HH16s16s")  # sport, dport, src, dst: network order
_TAIL = struct.Struct("=III")  # if, cookie[2]
_NLMSGHDR = struct.Struct("=IHHII")
_MSG_SIZE = 72  # struct inet_diag_msg
# struct tcp_info offsets (linux/tcp.h): since Linux 4.1/4.2
_LAST_DATA_RECV = struct.Struct("=I")  # tcpi_last_data_recv, ms
_LAST_DATA_RECV_AT = 52
_BYTES = struct.Struct("=QQ")  # tcpi_bytes_acked, tcpi_bytes_received
_BYTES_AT = 120


@record(frozen=True)
class TcpInfo:
    """The counters of one TCP socket that say whether data came and was sent."""

    bytes_acked: int  # bytes it sent that the other side acknowledged
    bytes_received: int  # bytes it received in all
    last_data_recv: float  # seconds since data last came


def _addr(host: str) -> Tuple[int, bytes]:
    """The family and the 16-byte network-order address of an IP text."""
    import socket  # imported when first needed: start-up (issue 14)

    ip = ipaddress.ip_address(host)
    if ip.version == 4:
        return socket.AF_INET, ip.packed + bytes(12)
    return socket.AF_INET6, ip.packed


def _request(local: Tuple[str, int], remote: Tuple[str, int], seq: int) -> bytes:
    family, src = _addr(local[0])
    _, dst = _addr(remote[0])
    import socket

    body = (_REQ.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0xFFFFFFFF)
            + _SOCKID.pack(local[1], remote[1], src, dst) + _TAIL.pack(0, NOCOOKIE, NOCOOKIE))
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0) + body


def parse_info(data: bytes) -> Optional[TcpInfo]:
    """The counters of a tcp_info attribute; None when it is too short (an old kernel)."""
    if len(data) < _BYTES_AT + _BYTES.size:
        return None
    acked, received = _BYTES.unpack_from(data, _BYTES_AT)
    (last,) = _LAST_DATA_RECV.unpack_from(data, _LAST_DATA_RECV_AT)
    return TcpInfo(acked, received, last / 1000.0)


def tcp_info(local: Tuple[str, int], remote: Tuple[str, int], netns: Optional[int] = None) -> Optional[TcpInfo]:
    """tcp_info of the connection from `local` to `remote` in our network namespace (or in
    that of the open /proc/PID/ns/net `netns`); None when there is no such connection."""
    try:
        request = _request(local, remote, 1)
    except ValueError:
        return None
    with _open(netns) as sock:
        _send(sock, request)
        while True:
            for kind, seq, payload in _messages(_recv(sock)):
                if seq != 1:
                    continue
                if kind == NLMSG_ERROR:
                    code = _errno(payload)
                    if code not in (0, errno.ENOENT):
                        raise errors.WaitchainError(f"NETLINK_SOCK_DIAG for TCP: errno {code}")
                    return None
                attrs: Dict[int, bytes] = _attrs_at(payload, _MSG_SIZE)
                info = attrs.get(INET_DIAG_INFO)
                return parse_info(info) if info is not None else None
