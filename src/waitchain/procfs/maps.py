"""/proc/PID/maps: the devices of the files a process has mapped (a page fault on a mapped
file waits for that file's file system). maps still answers while the mmap lock is held."""

from __future__ import annotations

from typing import Set, Tuple

from ..errors import WaitchainError
from .reader import ProcFS


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


def read_map_devices(fs: ProcFS, pid: int) -> Set[Tuple[int, int]]:
    try:
        return parse_map_devices(fs.read(pid, "maps"))
    except WaitchainError:
        return set()
