"""A snapshot built in code, for unit tests of the wait rules (which are pure functions of
the snapshot): processes with their fds, fdinfo flags, status fields (signal masks, NSpid),
target memory, sockets and pipe fills, all given by the test; nothing is read from /proc."""

from __future__ import annotations

import struct
from typing import Dict, Iterable, List, Optional, Tuple

from waitchain.errors import WaitchainError
from waitchain.model import FdInfo, PipeFill, Process, Syscall, Task, TcpSocket, UnixSocket
from waitchain.procfs.inetdiag import TcpInfo
from waitchain.procfs.reader import ProcFS
from waitchain.snapshot import Snapshot

OUR_PIDNS = "pid:[4026531836]"
RDONLY, WRONLY, RDWR, NONBLOCK = 0o0, 0o1, 0o2, 0o4000


class FakeMemory:
    """Target memory as {(pid, address): bytes}; anything else is unreadable."""

    def __init__(self) -> None:
        self.data: Dict[Tuple[int, int], bytes] = {}

    def put(self, pid: int, address: int, data: bytes) -> None:
        self.data[(pid, address)] = data

    def read(self, pid: int, address: int, size: int) -> bytes:
        found = self.data.get((pid, address))
        if found is None or len(found) < size:
            raise WaitchainError(f"process {pid}: nothing at {address:#x}")
        return found[:size]

    def timespec(self, pid: int, address: int) -> float:
        sec, nsec = struct.unpack("=qq", self.read(pid, address, 16))
        return sec + nsec / 1e9

    def sigset(self, pid: int, address: int) -> int:
        return int(struct.unpack("=Q", self.read(pid, address, 8))[0])


class FakeSnapshot(Snapshot):
    """Build with add_process, then set fdinfo/status/sockets as the test needs."""

    def __init__(self) -> None:
        super().__init__(ProcFS("/nonexistent-proc"), {}, [])
        self.memory = FakeMemory()  # type: ignore[assignment]
        self._own_pidns = OUR_PIDNS
        self.fills: Dict[Tuple[int, int], PipeFill] = {}
        self.unix: Dict[int, UnixSocket] = {}
        self.tcp: Dict[int, TcpSocket] = {}
        self.tcp_peers: Dict[int, TcpSocket] = {}
        self.tcp_infos: Dict[int, TcpInfo] = {}  # by the socket's inode
        self.threads: Dict[int, List[Task]] = {}

    def add_process(self, pid: int, fds: Optional[Dict[int, str]] = None, ppid: int = 1,
                    pgrp: int = 0, state: str = "S", pidns: str = OUR_PIDNS, note: str = "") -> Process:
        proc = Process(pid, starttime=pid, comm=f"p{pid}", state=state, ppid=ppid, pgrp=pgrp or pid,
                       uid=0, pidns=pidns, fds=dict(fds or {}), note=note)
        self.processes[pid] = proc
        self._index(proc)
        if note.startswith("fds unreadable"):
            self._fds_unreadable = tuple(sorted(self._fds_unreadable + (pid,)))
        self._status.setdefault((pid, None), {"NSpid": str(pid)})
        return proc

    def set_flags(self, pid: int, fd: int, flags: int, ino: int = 0) -> None:
        self._fdinfo[(pid, fd)] = FdInfo(pos=0, flags=flags, ino=ino)

    def set_status(self, pid: int, tid: Optional[int] = None, **fields: str) -> None:
        self._status.setdefault((pid, tid), {}).update(fields)

    def set_masks(self, pid: int, tid: int, caught: Iterable[int], blocked: Iterable[int] = ()) -> None:
        self.set_status(pid, tid, SigCgt=f"{_bits(caught):016x}", SigBlk=f"{_bits(blocked):016x}")

    # --- what the rules ask, answered from the fields above ---------------------------

    def fdinfo(self, pid: int, fd: int) -> Optional[FdInfo]:
        return self._fdinfo.get((pid, fd))

    def status(self, pid: int, tid: Optional[int] = None) -> Dict[str, str]:
        found = self._status.get((pid, tid))
        if found is None:
            raise WaitchainError(f"no status for {pid}/{tid}")
        return found

    def tasks(self, pid: int) -> List[Task]:
        return self.threads.get(pid, [])

    def pipe_fill(self, pid: int, fd: int) -> Optional[PipeFill]:
        return self.fills.get((pid, fd))

    def is_fifo(self, pid: int, fd: int) -> bool:
        return False

    def unix_socket(self, inode: int, pid: Optional[int] = None) -> Optional[UnixSocket]:
        return self.unix.get(inode)

    def unix_listener(self, client: int, pid: int) -> Optional[UnixSocket]:
        return next((s for s in self.unix.values() if client in s.pending), None)

    def tcp_info(self, netns: str, sock: TcpSocket) -> Optional[TcpInfo]:
        return self.tcp_infos.get(sock.inode)

    def tcp_socket(self, pid: int, inode: int) -> Optional[TcpSocket]:
        return self.tcp.get(inode)

    def tcp_peer(self, pid: int, sock: TcpSocket) -> Tuple[Optional[TcpSocket], str]:
        peer = self.tcp_peers.get(sock.inode)
        return peer, "net:[1]" if peer is not None else ""

    def tcp_listener(self, netns: str, local: Tuple[str, int]) -> Optional[TcpSocket]:
        return None

    def idle_seconds(self, pid: int, tid: int) -> Optional[float]:
        return None


def task(tid: int, name: str, *args: int, state: str = "S") -> Task:
    """A thread blocked in `name` with these arguments (the rest 0)."""
    padded = tuple(args) + (0,) * (6 - len(args))
    return Task(tid, f"t{tid}", state, Syscall(0, name, padded))


def _bits(signals: Iterable[int]) -> int:
    bits = 0
    for number in signals:
        bits |= 1 << (number - 1)
    return bits
