"""C values in a target's memory, read with process_vm_readv (memory.read_memory): the
arguments of a blocked call that point at user memory (a path, a timespec, a sigset, a
struct flock, a sembuf array, a futex word). Layouts are those of 64-bit Linux (x86_64,
aarch64). Every function raises WaitchainError (ProcessGone, AccessDenied) when the memory
cannot be read."""

from __future__ import annotations

import struct
from typing import List, Tuple

from .memory import read_memory

_TIMESPEC = struct.Struct("=qq")  # tv_sec, tv_nsec
_FLOCK = struct.Struct("=hh4xqq")  # l_type, l_whence, (pad), l_start, l_len (then l_pid)
_SEMBUF = struct.Struct("=Hhh")  # sem_num, sem_op, sem_flg
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_MUTEX = struct.Struct("=iIi")  # glibc __pthread_mutex_s: __lock, __count, __owner


def read_timespec(pid: int, address: int) -> float:
    """A struct timespec as seconds."""
    sec, nsec = _TIMESPEC.unpack(read_memory(pid, address, _TIMESPEC.size))
    return sec + nsec / 1e9


def read_u32(pid: int, address: int) -> int:
    return _U32.unpack(read_memory(pid, address, 4))[0]


def read_sigset(pid: int, address: int) -> int:
    """The first 64 signals of a sigset_t as a bit mask (bit n-1 is signal n)."""
    return _U64.unpack(read_memory(pid, address, 8))[0]


def read_flock(pid: int, address: int) -> Tuple[int, int, int, int]:
    """struct flock: (l_type, l_whence, l_start, l_len)."""
    return _FLOCK.unpack(read_memory(pid, address, _FLOCK.size))


def read_sembufs(pid: int, address: int, count: int) -> List[Tuple[int, int, int]]:
    """An array of struct sembuf: (sem_num, sem_op, sem_flg) each (at most 64 read)."""
    count = max(0, min(count, 64))
    raw = read_memory(pid, address, _SEMBUF.size * count) if count else b""
    return [_SEMBUF.unpack_from(raw, i * _SEMBUF.size) for i in range(count)]


def read_mutex(pid: int, address: int) -> Tuple[int, int, int]:
    """The first words of a glibc pthread_mutex_t: (lock, count, owner TID)."""
    return _MUTEX.unpack(read_memory(pid, address, _MUTEX.size))

