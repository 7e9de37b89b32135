"""One pass over the system: processes and their fds, with indexes from object to holders.
Details that cost more (threads, fdinfo, socket tables, pipe fill) are read on first use
and cached, so `waitchain PID` reads them only along the chain."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Tuple

from .errors import ProcessGone, Timeout, Unsupported, WaitchainError
from .model import FdInfo, Holder, PipeFill, Process, Task, TcpSocket, UnixSocket
from .procfs import net, pidfd, sockdiag
from .procfs.fds import read_fdinfo
from .procfs.process import read_cmdline, read_process
from .procfs.reader import ProcFS, fd_is_fifo
from .procfs.tasks import read_tasks

Endpoint = Tuple[str, int]


class Snapshot:
    """Processes, fds and the object → holders index. Build with Snapshot.scan()."""

    def __init__(self, fs: ProcFS, processes: Dict[int, Process], notes: List[str]) -> None:
        self.fs = fs
        self.processes = processes
        self.notes = notes
        self.holders: Dict[str, List[Tuple[int, int]]] = defaultdict(list)
        self.children: Dict[int, List[int]] = defaultdict(list)
        for proc in processes.values():
            self._index(proc)
        self._tasks: Dict[int, List[Task]] = {}
        self._fdinfo: Dict[Tuple[int, int], Optional[FdInfo]] = {}
        self._tcp: Dict[str, List[TcpSocket]] = {}
        self._tcp_indexes: Dict[str, tuple] = {}
        self._unix: Dict[int, Optional[UnixSocket]] = {}
        self._unix_paths: Optional[Dict[int, UnixSocket]] = None
        self._cmdlines: Dict[int, str] = {}

    @classmethod
    def scan(cls, fs: Optional[ProcFS] = None, pids: Optional[Iterable[int]] = None) -> "Snapshot":
        """Read every process (or just `pids`). Processes that vanish are skipped."""
        fs = fs or ProcFS()
        processes: Dict[int, Process] = {}
        notes: List[str] = []
        for pid in pids if pids is not None else fs.pids():
            proc = _scan_process(fs, pid, notes)
            if proc is not None:
                processes[pid] = proc
        return cls(fs, processes, notes)

    def _index(self, proc: Process) -> None:
        self.children[proc.ppid].append(proc.pid)
        for fd, target in proc.fds.items():
            self.holders[target].append((proc.pid, fd))

    # --- processes and threads -------------------------------------------------------

    def tasks(self, pid: int) -> List[Task]:
        """Threads of pid ([] if it has gone or its pid was reused since the scan)."""
        if pid not in self._tasks:
            self._tasks[pid] = self._read_tasks(pid)
        return self._tasks[pid]

    def _read_tasks(self, pid: int) -> List[Task]:
        if pid not in self.processes or not self.alive(pid):
            return []
        try:
            return read_tasks(self.fs, pid)
        except WaitchainError as exc:
            self.processes[pid].note = str(exc)
            return []

    def alive(self, pid: int) -> bool:
        """The process scanned as pid still exists and is the same one (same starttime)."""
        try:
            return read_process(self.fs, pid).starttime == self.processes[pid].starttime
        except (WaitchainError, KeyError):
            return False

    def cmdline(self, pid: int) -> str:
        """Command line, `[comm]` for kernel threads, `comm` if unreadable in time."""
        if pid not in self._cmdlines:
            self._cmdlines[pid] = self._read_cmdline(pid)
        return self._cmdlines[pid]

    def _read_cmdline(self, pid: int) -> str:
        comm = self.processes[pid].comm if pid in self.processes else "?"
        try:
            line = read_cmdline(self.fs, pid)
        except Timeout:
            return f"{comm} (command line unreadable: it blocks)"
        except WaitchainError:
            return comm
        return f"[{comm}]" if line is None else line

    # --- fds and the objects behind them ----------------------------------------------

    def fdinfo(self, pid: int, fd: int) -> Optional[FdInfo]:
        key = (pid, fd)
        if key not in self._fdinfo:
            self._fdinfo[key] = read_fdinfo(self.fs, pid, fd)
        return self._fdinfo[key]

    def target(self, pid: int, fd: int) -> Optional[str]:
        proc = self.processes.get(pid)
        return proc.fds.get(fd) if proc else None

    def holders_of(self, target: str) -> List[Holder]:
        """Every (pid, fd) holding `target`, with its access mode read from fdinfo."""
        holders = []
        for pid, fd in self.holders.get(target, ()):
            info = self.fdinfo(pid, fd)
            holders.append(Holder(pid, fd, info.access if info else ""))
        return holders

    def is_fifo(self, pid: int, fd: int) -> bool:
        return fd_is_fifo(self.fs, pid, fd)

    def pipe_fill(self, pid: int, fd: int) -> Optional[PipeFill]:
        return pidfd.pipe_fill(pid, fd) if self.fs.root == "/proc" else None

    # --- sockets ----------------------------------------------------------------------

    def unix_socket(self, inode: int) -> Optional[UnixSocket]:
        """Peer and queues from sock_diag; None if not a unix socket in our namespace."""
        if inode not in self._unix:
            self._unix[inode] = self._lookup_unix(inode)
        return self._unix[inode]

    def _lookup_unix(self, inode: int) -> Optional[UnixSocket]:
        try:
            found = sockdiag.unix_lookup([inode]).get(inode)
        except WaitchainError as exc:
            self._note(f"unix socket peers unavailable: {exc}")
            return self._unix_from_proc(inode)
        return found

    def _unix_from_proc(self, inode: int) -> Optional[UnixSocket]:
        if self._unix_paths is None:
            try:
                self._unix_paths = net.parse_unix(self.fs.read(None, "net", "unix"))
            except WaitchainError:
                self._unix_paths = {}
        return self._unix_paths.get(inode)

    def tcp_table(self, netns: str) -> List[TcpSocket]:
        """TCP sockets of one network namespace, read through any process inside it."""
        if netns not in self._tcp:
            self._tcp[netns] = self._read_tcp(netns)
        return self._tcp[netns]

    def _read_tcp(self, netns: str) -> List[TcpSocket]:
        for pid in (p.pid for p in self.processes.values() if p.netns == netns):
            try:
                return self._tcp_of(pid)
            except WaitchainError:
                continue
        return []

    def _tcp_of(self, pid: int) -> List[TcpSocket]:
        sockets = net.parse_tcp(self.fs.read(pid, "net", "tcp"))
        try:
            sockets += net.parse_tcp(self.fs.read(pid, "net", "tcp6"))
        except (Unsupported, ProcessGone):
            pass  # a kernel without IPv6
        return sockets

    def tcp_socket(self, pid: int, inode: int) -> Optional[TcpSocket]:
        proc = self.processes.get(pid)
        if proc is None or not inode:
            return None
        return self._tcp_index(proc.netns)[0].get(inode)

    def tcp_peer(self, pid: int, sock: TcpSocket) -> Tuple[Optional[TcpSocket], str]:
        """The socket at the other end on this host (any namespace), and its namespace."""
        own = self.processes[pid].netns
        for netns in [own] + sorted(self.netns_list() - {own}):
            peer = self._tcp_index(netns)[1].get((sock.remote, sock.local))
            if peer is not None:
                return peer, netns
        return None, ""

    def _tcp_index(self, netns: str) -> Tuple[Dict[int, TcpSocket], Dict[tuple, TcpSocket]]:
        """By inode, and by (local, remote) for connected sockets; built once per netns."""
        if netns not in self._tcp_indexes:
            table = self.tcp_table(netns)
            by_inode = {s.inode: s for s in table if s.inode}
            by_pair = {(s.local, s.remote): s for s in table if s.state != "LISTEN"}
            self._tcp_indexes[netns] = (by_inode, by_pair)
        return self._tcp_indexes[netns]

    def tcp_listener(self, netns: str, local: Endpoint) -> Optional[TcpSocket]:
        """The listening socket that a not-yet-accepted connection to `local` sits behind."""
        for sock in self.tcp_table(netns):
            if sock.state == "LISTEN" and sock.local[1] == local[1] and _covers(sock.local[0], local[0]):
                return sock
        return None

    def netns_list(self) -> set:
        return {p.netns for p in self.processes.values() if p.netns}

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _scan_process(fs: ProcFS, pid: int, notes: List[str]) -> Optional[Process]:
    try:
        proc = read_process(fs, pid)
    except ProcessGone:
        return None
    except WaitchainError as exc:
        notes.append(str(exc))
        return None
    try:
        proc.fds = fs.fd_links(pid)
    except ProcessGone:
        return None
    except WaitchainError as exc:
        proc.note = f"fds unreadable: {exc}"
    return proc


def _covers(bound: str, addr: str) -> bool:
    """A listener bound to `bound` accepts connections to `addr`."""
    return bound == addr or ipaddress.ip_address(bound).is_unspecified
