"""/proc/PID/maps: the devices of the files a process has mapped (a page fault on a mapped
file waits for that file's file system). maps still answers while the mmap lock is held on
recent kernels (measured on 6.18: it is read under per-VMA locks); older ones wait for that
lock, so it is read under a deadline."""

from __future__ import annotations


from ..errors import WaitchainError
from .reader import TABLE_READ, ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Set, Tuple

DEADLINE = 0.5  # seconds


def parse_map_devices(text: str) -> Set[Tuple[int, int]]:
    """(major, minor) of every file mapping: `addr perms offset MAJ:MIN inode path`, hex."""
    devices = set()
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or fields[4] == "0":
            continue
        major, _, minor = fields[3].partition(":")
        try:
            devices.add((int(major, 16), int(minor, 16)))
        except ValueError:
            continue
    return devices


def read_maps(fs: ProcFS, pid: int) -> str:
    """Text of /proc/PID/maps; raises WaitchainError (Timeout when it blocks)."""
    raw = fs.read_with_deadline(pid, "maps", DEADLINE, limit=TABLE_READ)
    return raw.decode("utf-8", "surrogateescape")


def read_map_devices(fs: ProcFS, pid: int) -> Set[Tuple[int, int]]:
    try:
        return parse_map_devices(read_maps(fs, pid))
    except WaitchainError:
        return set()


def parse_mapping_at(text: str, address: int) -> Optional[Tuple[int, int, int, str]]:
    """(major, minor, inode, path) of the file mapped at `address`; None if nothing or
    no file is mapped there (anonymous memory)."""
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or fields[4] == "0":
            continue
        start, _, end = fields[0].partition("-")
        major, _, minor = fields[3].partition(":")
        try:
            if int(start, 16) <= address < int(end, 16):
                return int(major, 16), int(minor, 16), int(fields[4]), fields[5].strip()
        except ValueError:
            continue
    return None


def read_mapping_at(fs: ProcFS, pid: int, address: int) -> Optional[Tuple[int, int, int, str]]:
    try:
        return parse_mapping_at(read_maps(fs, pid), address)
    except WaitchainError:
        return None
