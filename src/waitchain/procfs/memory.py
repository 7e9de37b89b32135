"""Read a few bytes of a target's memory with process_vm_readv: no ptrace stop, no
/proc/PID/mem open; the target never notices."""

from __future__ import annotations

import ctypes
import os

from ..errors import WaitchainError, from_oserror


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.process_vm_readv.restype = ctypes.c_ssize_t
_libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(_IOVec), ctypes.c_ulong,
                                   ctypes.POINTER(_IOVec), ctypes.c_ulong, ctypes.c_ulong]

MAX_READ = 1 << 20


def read_memory(pid: int, address: int, size: int) -> bytes:
    """`size` bytes at `address` in pid; raises ProcessGone/AccessDenied/WaitchainError."""
    if size <= 0 or size > MAX_READ or address <= 0:
        raise WaitchainError(f"process {pid}: refusing to read {size} bytes at {address:#x}")
    buf = ctypes.create_string_buffer(size)
    local = _IOVec(ctypes.cast(buf, ctypes.c_void_p), size)
    remote = _IOVec(address, size)
    got = _libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got < 0:
        err = ctypes.get_errno()
        raise from_oserror(OSError(err, os.strerror(err)), pid, f"memory at {address:#x}")
    if got != size:
        raise WaitchainError(f"process {pid}: short read of memory at {address:#x}")
    return buf.raw


PAGE = 4096


def read_cstring(pid: int, address: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string at `address` (a path argument), read a page at a time so that
    a string ending just before an unmapped page is still read; at most `limit` bytes."""
    out = b""
    while len(out) < limit:
        chunk = min(PAGE - (address + len(out)) % PAGE, limit - len(out))
        data = read_memory(pid, address + len(out), chunk)
        end = data.find(b"\0")
        if end >= 0:
            return out + data[:end]
        out += data
    return out
