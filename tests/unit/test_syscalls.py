"""Syscall number ↔ name tables."""

from __future__ import annotations

import os

import pytest

from waitchain.procfs import syscalls
from waitchain.procfs.syscalls import aarch64, x86_64

X86_64 = {0: "read", 1: "write", 7: "poll", 61: "wait4", 43: "accept", 232: "epoll_wait",
          202: "futex", 247: "waitid", 45: "recvfrom"}
AARCH64 = {63: "read", 64: "write", 260: "wait4", 98: "futex", 202: "accept", 207: "recvfrom",
           22: "epoll_pwait"}
# asm-generic __NR3264_* slots as a 64-bit kernel names them.
AARCH64_3264 = {25: "fcntl", 43: "statfs", 44: "fstatfs", 45: "truncate", 46: "ftruncate",
                62: "lseek", 71: "sendfile", 79: "newfstatat", 80: "fstat", 222: "mmap",
                223: "fadvise64"}


@pytest.mark.parametrize("nr,expected", sorted(X86_64.items()))
def test_x86_64_known(nr: int, expected: str) -> None:
    assert syscalls.name(nr, "x86_64") == expected


@pytest.mark.parametrize("nr,expected", sorted({**AARCH64, **AARCH64_3264}.items()))
def test_aarch64_known(nr: int, expected: str) -> None:
    assert syscalls.name(nr, "aarch64") == expected
    assert syscalls.name(nr, "arm64") == expected


def test_unknown_number() -> None:
    assert syscalls.name(999, "x86_64") == "syscall_999"
    assert syscalls.name(300, "aarch64") == "syscall_300"
    assert syscalls.name(-1, "x86_64") == "syscall_-1"


def test_unknown_machine() -> None:
    assert syscalls.name(0, "riscv64") == "syscall_0"
    assert syscalls.number("read", "riscv64") is None


def test_default_machine_is_this_one() -> None:
    machine = os.uname().machine
    assert syscalls.name(1) == syscalls.name(1, machine)
    assert syscalls.number("write") == syscalls.number("write", machine)


def test_number() -> None:
    assert syscalls.number("wait4", "x86_64") == 61
    assert syscalls.number("wait4", "aarch64") == 260
    assert syscalls.number("no_such_call", "x86_64") is None
    assert syscalls.number("open", "aarch64") is None  # only openat there


@pytest.mark.parametrize("machine,table", [("x86_64", x86_64.NAMES), ("aarch64", aarch64.NAMES)])
def test_round_trip(machine: str, table: dict) -> None:
    assert len(set(table.values())) == len(table)
    for nr, call in table.items():
        assert syscalls.number(call, machine) == nr
        assert syscalls.name(nr, machine) == call
