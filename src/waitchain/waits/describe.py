"""Text for people: a call with its fds decoded, strace -y style: read(3<pipe:[123]>)."""

from __future__ import annotations


from ..model import End, EndKind, Missing, Reason, TcpSocket, Task, UnixSocket
from ..procfs.fds import inode_of
from ..snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

# Which argument of a call is an fd (only the first argument in the calls we decode).
FD_FIRST = {
    "read", "readv", "pread64", "preadv", "preadv2", "recvfrom", "recvmsg", "recvmmsg",
    "write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg", "sendmmsg",
    "accept", "accept4", "connect", "flock", "fcntl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "ioctl", "fsync", "fdatasync",
}


def call_text(snap: Snapshot, pid: int, task: Task) -> str:
    """read(3<pipe:[123]>), wait4(32084), or the task's state when not in a call."""
    call = task.syscall
    if call is None:
        return task.note or "?"
    if call.name in FD_FIRST:
        return f"{call.name}({fd_text(snap, pid, call.arg_int(0))})"
    if call.name == "wait4":
        return f"wait4({pid_arg(snap, pid, call.arg_int(0))})"
    if call.name == "waitid" and call.arg_int(0) == P_PID:
        return f"waitid(P_PID, {pid_arg(snap, pid, call.arg_int(1))})"
    return f"{call.name}()"


P_PID = 1  # waitid's idtype for one pid


def pid_arg(snap: Snapshot, pid: int, local: int) -> str:
    """A pid argument of pid's call as written (a number in pid's own pid namespace), and
    the host pid of the child it names when that is another number: `2 [host pid 31337]`."""
    if local <= 0:
        return str(local)
    for child in snap.children.get(pid, ()):
        if child != local and snap.local_id(child, observer=pid) == local:
            return f"{local} [host pid {child}]"
    return str(local)


def fd_text(snap: Snapshot, pid: int, fd: int) -> str:
    target = snap.target(pid, fd)
    if target is None:
        return str(fd)
    return f"{fd}<{object_text(snap, pid, target)}>"


def object_text(snap: Snapshot, pid: int, target: str) -> str:
    """pipe:[N], TCP a:p→b:p, UNIX:[N] path, or the link target as it is."""
    sock = socket_of(snap, pid, target)
    if isinstance(sock, TcpSocket):
        return tcp_text(sock)
    if isinstance(sock, UnixSocket):
        return f"UNIX:[{inode_of(target)}]" + (f" {sock.path}" if sock.path else "")
    return target


def socket_of(snap: Snapshot, pid: int, target: str) -> Optional[Union[TcpSocket, UnixSocket]]:
    """The TCP or unix socket behind an fd's link target `socket:[N]`, if it is one."""
    inode = inode_of(target)
    if inode is None or not target.startswith("socket:"):
        return None
    tcp = snap.tcp_socket(pid, inode)
    return tcp if tcp is not None else snap.unix_socket(inode, pid)


def tcp_text(sock: TcpSocket) -> str:
    local, remote = endpoint(sock.local), endpoint(sock.remote)
    if sock.state == "LISTEN":
        return f"TCP {local} (LISTEN)"
    return f"TCP {local}→{remote}"


def endpoint(addr: tuple) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def plural(count: int, noun: str) -> str:
    """`1 fd`, `3 fds`, `2 entries`."""
    if count == 1:
        return f"{count} {noun}"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return f"{count} {noun[:-1]}ies"
    return f"{count} {noun}" + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def nobody_end(snap: Snapshot, missing: Missing, subject: str, connection: str = "") -> End:
    """The end of a wait whose other end (`missing` of `subject`: the write end of pipe:[5])
    no scanned process holds. When some processes' fds could not be read, the holder may be
    one of them: unknown, never "nobody"."""
    hidden = len(snap.fds_unreadable())
    if hidden:
        return End(EndKind.UNKNOWN, reason=Reason.NOT_READABLE, subject=subject, missing=missing,
                   connection=connection, count=hidden)
    return End(EndKind.UNKNOWN, reason=Reason.NO_HOLDER, subject=subject, missing=missing, connection=connection)
