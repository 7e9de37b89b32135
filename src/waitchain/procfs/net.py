"""Parsers of /proc/net/tcp, /proc/net/tcp6 and /proc/net/unix text. They never open files."""

from __future__ import annotations

import ipaddress
import struct

from ..model import TcpSocket, UnixSocket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

TCP_STATES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "NEW_SYN_RECV",
}
UNIX_TYPES = {1: "stream", 2: "dgram", 5: "seqpacket"}
UNIX_STATES = {1: "unconnected", 2: "connecting", 3: "established", 4: "disconnecting"}
UNIX_LISTENING = 0x00010000  # __SO_ACCEPTCON in the Flags column

_WORD = struct.Struct("=I")  # the kernel prints each in-memory 32-bit word of an address
_HEX = frozenset("0123456789abcdefABCDEF")  # string.hexdigits (not imported: start-up, issue 14)


def _hex(text: str) -> int:
    """Strict hexadecimal (no sign, prefix, underscore or non-ASCII digit)."""
    if not text or not _HEX.issuperset(text):
        raise ValueError(f"not hex: {text!r}")
    return int(text, 16)


def _dec(text: str) -> int:
    """Strict decimal."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not decimal: {text!r}")
    return int(text)


def _ip(hexaddr: str) -> str:
    """Address text from 8 (IPv4) or 32 (IPv6) hex digits; ::ffff:a.b.c.d becomes a.b.c.d."""
    if len(hexaddr) not in (8, 32):
        raise ValueError(f"bad address length: {hexaddr!r}")
    raw = b"".join(_WORD.pack(_hex(hexaddr[i : i + 8])) for i in range(0, len(hexaddr), 8))
    addr = ipaddress.ip_address(raw)
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped if mapped is not None else addr)


def _endpoint(text: str) -> Tuple[str, int]:
    """("ip", port) from "ADDR:PORT"; the port is big-endian hex."""
    addr, port = text.split(":")
    number = _hex(port)
    if number > 0xFFFF:
        raise ValueError(f"bad port: {port!r}")
    return _ip(addr), number


def _tcp_line(line: str) -> Optional[TcpSocket]:
    """One socket line of /proc/net/tcp{,6}, or None for the header or garbage."""
    fields = line.split()
    if len(fields) < 10 or not fields[0].endswith(":"):
        return None
    try:
        tx, rx = (_hex(q) for q in fields[4].split(":"))
        local, remote = _endpoint(fields[1]), _endpoint(fields[2])
        state = TCP_STATES.get(_hex(fields[3]), f"UNKNOWN_{fields[3]}")
        return TcpSocket(local, remote, state, tx, rx, _dec(fields[9]))
    except ValueError:
        return None


def parse_tcp(text: str) -> List[TcpSocket]:
    """Sockets of /proc/net/tcp or /proc/net/tcp6 text; malformed lines are skipped."""
    parsed = (_tcp_line(line) for line in text.split("\n"))
    return [sock for sock in parsed if sock is not None]


def _unix_state(flags: int, state: int) -> str:
    """"listen" for a listener, else the St column's name."""
    if flags & UNIX_LISTENING:
        return "listen"
    return UNIX_STATES.get(state, f"state_{state}")


def _unix_line(line: str) -> Optional[UnixSocket]:
    """One socket line of /proc/net/unix, or None for the header or garbage."""
    fields = line.split(None, 7)
    if len(fields) < 7 or not fields[0].endswith(":"):
        return None
    try:
        flags, kind, state = _hex(fields[3]), _hex(fields[4]), _hex(fields[5])
        inode = _dec(fields[6])
    except ValueError:
        return None
    path = fields[7] if len(fields) > 7 else ""
    return UnixSocket(inode, UNIX_TYPES.get(kind, f"type_{kind}"), _unix_state(flags, state), path=path)


def parse_unix(text: str) -> Dict[int, UnixSocket]:
    """inode → socket from /proc/net/unix text (no peers, no queues); garbage is skipped."""
    parsed = (_unix_line(line) for line in text.split("\n"))
    return {sock.inode: sock for sock in parsed if sock is not None}
