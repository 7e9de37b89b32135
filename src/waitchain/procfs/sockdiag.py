"""Unix sockets through NETLINK_SOCK_DIAG (sock_diag(7), linux/unix_diag.h): peer, queues, name,
and for a listener the client sockets queued on it (UDIAG_SHOW_ICONS).

Only sockets of the netlink socket's network namespace are visible: for another namespace
the netlink socket is made inside it (netns.py: setns in a short-lived thread)."""

from __future__ import annotations

import errno
import os
import struct

from .. import errors
from ..model import UnixSocket
from .net import UNIX_TYPES

TYPE_CHECKING = False
if TYPE_CHECKING:  # socket (with selectors, ~7 ms) is imported when a query is made: start-up (issue 14)
    import socket
    from typing import Dict, Iterable, Iterator, Optional, Tuple

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
UDIAG_SHOW_NAME, UDIAG_SHOW_PEER, UDIAG_SHOW_ICONS, UDIAG_SHOW_RQLEN = 0x01, 0x04, 0x08, 0x10
UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_ICONS, UNIX_DIAG_RQLEN = 0, 2, 3, 4
TCP_LISTEN = 10
NOCOOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE, both words
TIMEOUT = 1.0  # seconds per recv
# sk_state of a unix socket uses the TCP_* numbers.
STATES = {1: "established", 2: "connecting", 7: "unconnected", 10: "listen"}

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQ = struct.Struct("=BBHIIIII")  # family, protocol, pad, states, ino, show, cookie[2]
_MSG = struct.Struct("=BBBBIII")  # family, type, state, pad, ino, cookie[2]
_RTA = struct.Struct("=HH")  # len, type
_INT = struct.Struct("=i")
_WHAT = "NETLINK_SOCK_DIAG for unix sockets"
_BUFSIZE = 1 << 17


def _open(netns: Optional[int] = None) -> socket.socket:
    """A sock_diag netlink socket with a per-recv timeout, in the network namespace of the
    open /proc/PID/ns/net `netns` (ours when None)."""
    import socket

    try:
        if netns is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        else:
            from .netns import in_netns

            sock = in_netns(netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG))
    except errors.WaitchainError:
        raise
    except (OSError, AttributeError) as exc:
        if getattr(exc, "errno", None) in (errno.EPERM, errno.EACCES):
            raise errors.AccessDenied(None, _WHAT) from exc
        raise errors.Unsupported(_WHAT) from exc
    sock.settimeout(TIMEOUT)
    return sock


def _request(inode: int, seq: int, dump: bool, states: int = 0xFFFFFFFF, icons: bool = False) -> bytes:
    """A SOCK_DIAG_BY_FAMILY request for one inode, or for all in `states` with `dump`."""
    show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | (UDIAG_SHOW_ICONS if icons else 0)
    import socket

    body = _REQ.pack(socket.AF_UNIX, 0, 0, states, inode, show, NOCOOKIE, NOCOOKIE)
    flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


def _error(code: int) -> errors.WaitchainError:
    """Our exception for a positive errno from the kernel."""
    return errors.from_oserror(OSError(code, os.strerror(code)), None, _WHAT)


def _send(sock: socket.socket, data: bytes) -> None:
    """Send one request to the kernel."""
    try:
        sock.sendto(data, (0, 0))
    except OSError as exc:
        raise _error(exc.errno or errno.EIO) from exc


def _recv(sock: socket.socket) -> bytes:
    """One datagram of replies; Timeout if the kernel does not answer."""
    import socket

    try:
        data = sock.recv(_BUFSIZE)
    except socket.timeout as exc:
        raise errors.Timeout(None, _WHAT) from exc
    except OSError as exc:
        raise _error(exc.errno or errno.EIO) from exc
    if not data:
        raise errors.WaitchainError("empty reply from NETLINK_SOCK_DIAG")
    return data


def _messages(data: bytes) -> Iterator[Tuple[int, int, bytes]]:
    """(type, seq, payload) of each netlink message in a datagram."""
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size:
            return
        yield kind, seq, data[off + _NLMSGHDR.size : off + length]
        off += (length + 3) & ~3


def _errno(payload: bytes) -> int:
    """Positive errno of an NLMSG_ERROR (or NLMSG_DONE) payload; 0 for none."""
    if len(payload) < _INT.size:
        return 0
    return -min(_INT.unpack_from(payload)[0], 0)


def _attrs(payload: bytes) -> Dict[int, bytes]:
    """type → data of the rtattrs following a unix_diag_msg."""
    return _attrs_at(payload, _MSG.size)


def _attrs_at(payload: bytes, off: int) -> Dict[int, bytes]:
    """type → data of the rtattrs from offset `off` of a message (after its fixed part)."""
    attrs: Dict[int, bytes] = {}
    while off + _RTA.size <= len(payload):
        length, kind = _RTA.unpack_from(payload, off)
        if length < _RTA.size:
            break
        attrs[kind & 0x3FFF] = payload[off + _RTA.size : off + length]
        off += (length + 3) & ~3
    return attrs


def _u32s(data: Optional[bytes], count: int) -> Tuple[int, ...]:
    """`count` native u32 from an attribute, zeros when absent or short."""
    if data is None or len(data) < 4 * count:
        return (0,) * count
    return struct.unpack_from(f"={count}I", data)


def _name(raw: bytes) -> str:
    """A socket name as /proc/net/unix prints it: "@" for the NULs of an abstract name."""
    if raw.startswith(b"\0"):
        return "@" + os.fsdecode(raw[1:]).replace("\0", "@")
    return os.fsdecode(raw.split(b"\0", 1)[0])


def _parse(payload: bytes) -> Optional[UnixSocket]:
    """A unix_diag_msg and its attributes as a UnixSocket (None if truncated)."""
    if len(payload) < _MSG.size:
        return None
    _family, kind, state, _pad, inode, _c0, _c1 = _MSG.unpack_from(payload)
    attrs = _attrs(payload)
    (peer,) = _u32s(attrs.get(UNIX_DIAG_PEER), 1)
    rqueue, wqueue = _u32s(attrs.get(UNIX_DIAG_RQLEN), 2)
    path = _name(attrs.get(UNIX_DIAG_NAME, b""))
    kind_name = UNIX_TYPES.get(kind, f"type_{kind}")
    icons = attrs.get(UNIX_DIAG_ICONS, b"")
    pending = _u32s(icons, len(icons) // 4) if icons else ()
    return UnixSocket(inode, kind_name, STATES.get(state, f"state_{state}"), peer, path, rqueue, wqueue,
                      pending=tuple(i for i in pending if i))


def _lookup_one(sock: socket.socket, inode: int, seq: int) -> Optional[UnixSocket]:
    """Exact lookup of one inode; None when this namespace has no such unix socket."""
    _send(sock, _request(inode, seq, dump=False))
    while True:
        for kind, got, payload in _messages(_recv(sock)):
            if got != seq:
                continue  # a late reply to an earlier request
            if kind != NLMSG_ERROR:
                return _parse(payload)
            code = _errno(payload)
            if code not in (0, errno.ENOENT):
                raise _error(code)
            return None


def unix_lookup(inodes: Iterable[int], netns: Optional[int] = None) -> Dict[int, UnixSocket]:
    """inode → UnixSocket for those of `inodes` that are unix sockets in our network
    namespace (or in that of the open /proc/PID/ns/net `netns`)."""
    found: Dict[int, UnixSocket] = {}
    wanted = [i for i in dict.fromkeys(inodes) if 0 < i <= 0xFFFFFFFF]
    if not wanted:
        return found
    with _open(netns) as sock:
        for seq, inode in enumerate(wanted, start=1):
            record = _lookup_one(sock, inode, seq)
            if record is not None:
                found[record.inode] = record
    return found


def _collect(data: bytes, found: Dict[int, UnixSocket]) -> bool:
    """Add the sockets of one dump datagram to `found`; True once the dump is done."""
    for kind, _seq, payload in _messages(data):
        if kind in (NLMSG_ERROR, NLMSG_DONE):
            code = _errno(payload)
            if code:
                raise _error(code)
            return True
        record = _parse(payload)
        if record is not None:
            found[record.inode] = record
    return False


def unix_dump(netns: Optional[int] = None, listeners: bool = False) -> Dict[int, UnixSocket]:
    """inode → UnixSocket for every unix socket in our network namespace (or in that of
    the open /proc/PID/ns/net `netns`), in one dump. With `listeners`, only the listening
    sockets, each with the inodes of the client sockets queued on it (`pending`)."""
    found: Dict[int, UnixSocket] = {}
    states = 1 << TCP_LISTEN if listeners else 0xFFFFFFFF
    with _open(netns) as sock:
        _send(sock, _request(0, 1, dump=True, states=states, icons=listeners))
        while not _collect(_recv(sock), found):
            pass
    return found
