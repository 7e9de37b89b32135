"""Which kernel thread (TID) runs a Python thread, without stopping anything.

py-spy's non-blocking dump gives `os_thread_id` only for CPython >= 3.11. Every version gives
`thread_id`, the pthread_t, which in glibc (and musl) is the address of the thread's
`struct pthread`; its `tid` field is read with process_vm_readv (read-only, no ptrace stop).
The field's offset is learnt from our own C library, checked against the target (every value
read must be a distinct TID of the target), and searched for when the check fails."""

from __future__ import annotations

import ctypes
import os
import struct
import threading

from ..errors import WaitchainError
from ..procfs import memory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Set

SCAN = 2048  # bytes of struct pthread searched for the tid field

_libc = ctypes.CDLL(None, use_errno=True)
_offset: List[Optional[int]] = []


def map_threads(pid: int, idents: Sequence[int], tids: Set[int]) -> Dict[int, int]:
    """pthread_t → TID for `idents`, or {} when it cannot be established with certainty."""
    idents = [i for i in idents if isinstance(i, int) and 0 < i < 1 << 64]
    if not idents or not tids:
        return {}
    if len(idents) == 1 and len(tids) == 1:
        return {idents[0]: next(iter(tids))}
    blocks: List[bytes] = [read_memory(pid, ident, SCAN) for ident in idents]  # type: ignore
    if any(b is None for b in blocks):
        return {}
    offset = _check(own_tid_offset(), blocks, tids) or _search(blocks, tids)
    if offset is None:
        return {}
    return {ident: _int_at(block, offset) for ident, block in zip(idents, blocks)}


def _check(offset: Optional[int], blocks: List[bytes], tids: Set[int]) -> Optional[int]:
    if offset is None or any(offset + 4 > len(b) for b in blocks):
        return None
    values = [_int_at(b, offset) for b in blocks]
    return offset if set(values) <= tids and len(set(values)) == len(values) else None


def _search(blocks: List[bytes], tids: Set[int]) -> Optional[int]:
    """The one offset where every block holds a distinct TID of the target (None if not one)."""
    found = [o for o in range(0, SCAN, 4) if _check(o, blocks, tids) is not None]
    return found[0] if len(found) == 1 else None


def _int_at(block: bytes, offset: int) -> int:
    return struct.unpack_from("=i", block, offset)[0]


def own_tid_offset() -> Optional[int]:
    """Offset of `tid` in our own C library's struct pthread, learnt in a helper thread
    (whose tid differs from the pid, unlike the main thread's)."""
    if not _offset:
        box: List[Optional[int]] = []
        helper = threading.Thread(target=lambda: box.append(_find_own_offset()), daemon=True)
        helper.start()
        helper.join(2.0)
        _offset.append(box[0] if box else None)
    return _offset[0]


def _find_own_offset() -> Optional[int]:
    try:
        pthread_self = _libc.pthread_self
        pthread_self.restype = ctypes.c_void_p
        base = pthread_self()
        tid = _gettid()
        block = memory.read_own(base, SCAN) if base else b""  # no segfault past the mapping's end
    except (AttributeError, OSError, ValueError):
        return None
    found = [o for o in range(0, len(block) - 3, 4) if _int_at(block, o) == tid]
    return found[0] if len(found) == 1 else None


def _gettid() -> int:
    native = getattr(threading, "get_native_id", None)
    if native is not None:
        return native()
    return int(os.readlink("/proc/thread-self").rsplit("/", 1)[1])


def read_memory(pid: int, address: int, size: int) -> Optional[bytes]:
    """Up to `size` bytes of the target's memory at `address` (process_vm_readv, through
    procfs.memory: under a deadline), or None."""
    try:
        return memory.read_partial(pid, address, size) or None
    except WaitchainError:
        return None
