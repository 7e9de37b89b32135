"""The owner of a CPython threading.RLock, read from the lock object itself.

A `_thread.RLock` records the thread that holds it: after the object header (reference
count, type) comes the inner lock (a pointer in CPython 3.2-3.12, a one-byte PyMutex in
3.13), then the owner's thread ident (`rlock_owner`, `_PyRecursiveMutex.thread`): offset 24
on 64-bit builds in every version. Its address is known when py-spy --locals shows it as a
local (`<_thread.RLock at 0x7f...>`); the type's tp_name is read back before the owner is
believed, and the owner must be the ident (pthread_t) of one of the process's threads. Read
with process_vm_readv through procfs.memory (no ptrace stop)."""

from __future__ import annotations

import struct

from ..procfs import memory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional

    Read = Callable[[int, int], bytes]  # (address, size) → bytes

RLOCK = b"_thread.RLock"
TYPE_AT = 8  # PyObject_HEAD: ob_refcnt, then ob_type
OWNER_AT = 24  # after the header and the inner lock
TP_NAME_AT = 24  # PyTypeObject: ob_refcnt, ob_type, ob_size, then tp_name
WORD = struct.Struct("=Q")


def owner_ident(pid: int, address: int) -> Optional[int]:
    """The ident of the thread that holds the RLock at `address` in pid, 0 when none does,
    None when the object there is not a _thread.RLock (or cannot be read)."""
    return owner_from(lambda at, size: memory.read_partial(pid, at, size), address)


def owner_from(read: Read, address: int) -> Optional[int]:
    head = read(address, OWNER_AT + WORD.size)
    if len(head) < OWNER_AT + WORD.size:
        return None
    (type_ptr,) = WORD.unpack_from(head, TYPE_AT)
    name_ptr = read(type_ptr + TP_NAME_AT, WORD.size) if type_ptr else b""
    if len(name_ptr) != WORD.size or not WORD.unpack(name_ptr)[0]:
        return None
    name = read(WORD.unpack(name_ptr)[0], len(RLOCK) + 1)
    if name != RLOCK + b"\0":
        return None
    (owner,) = WORD.unpack_from(head, OWNER_AT)
    return owner
