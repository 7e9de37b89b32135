"""C values in a target's memory: the arguments of a blocked call that point at user
memory (a timespec, a sigset, a struct flock, a sembuf array, a futex word, a glibc
pthread_mutex_t). Layouts are those of 64-bit Linux (x86_64, aarch64). The decoders take
the bytes (read through snap.memory, which knows each struct's size from here) and
raise nothing for bytes of the right size."""

from __future__ import annotations

import struct

from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple

TIMESPEC = struct.Struct("=qq")  # tv_sec, tv_nsec
FLOCK = struct.Struct("=hh4xqq")  # l_type, l_whence, (pad), l_start, l_len (then l_pid)
SEMBUF = struct.Struct("=Hhh")  # sem_num, sem_op, sem_flg
U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
MUTEX = struct.Struct("=iIiIi")  # glibc __pthread_mutex_s: __lock, __count, __owner, __nusers, __kind
MAX_SEMBUFS = 64


@record(frozen=True)
class MutexWords:
    """The first words of a glibc pthread_mutex_t, as read: nothing proves yet that the
    memory is one (see waits/futex.py)."""

    lock: int
    count: int
    owner: int
    nusers: int
    kind: int


def timespec(data: bytes) -> float:
    """A struct timespec as seconds."""
    sec, nsec = TIMESPEC.unpack(data)
    return sec + nsec / 1e9


def u32(data: bytes) -> int:
    return U32.unpack(data)[0]


def sigset(data: bytes) -> int:
    """The first 64 signals of a sigset_t as a bit mask (bit n-1 is signal n)."""
    return U64.unpack(data)[0]


def flock(data: bytes) -> Tuple[int, int, int, int]:
    """struct flock: (l_type, l_whence, l_start, l_len)."""
    return FLOCK.unpack(data)


def sembuf_count(count: int) -> int:
    """How many struct sembuf of an array of `count` are read (at most MAX_SEMBUFS)."""
    return max(0, min(count, MAX_SEMBUFS))


def sembufs(data: bytes) -> List[Tuple[int, int, int]]:
    """An array of struct sembuf: (sem_num, sem_op, sem_flg) each."""
    return [SEMBUF.unpack_from(data, i * SEMBUF.size) for i in range(len(data) // SEMBUF.size)]


def mutex(data: bytes) -> MutexWords:
    return MutexWords(*MUTEX.unpack(data))
