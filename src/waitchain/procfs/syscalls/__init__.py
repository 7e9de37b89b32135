"""Syscall number ↔ name, per machine (x86_64 64-bit ABI, aarch64)."""

from __future__ import annotations

import os
from typing import Dict, Optional

from . import aarch64, x86_64

_TABLES: Dict[str, Dict[int, str]] = {
    "x86_64": x86_64.NAMES,
    "aarch64": aarch64.NAMES,
    "arm64": aarch64.NAMES,
}
_REVERSE: Dict[str, Dict[str, int]] = {}


def _table(machine: Optional[str]) -> Dict[int, str]:
    """The number → name table for `machine` (default: this one); empty if unknown."""
    return _TABLES.get(machine or os.uname().machine, {})


def name(nr: int, machine: Optional[str] = None) -> str:
    """Name of syscall `nr`, or "syscall_NR" when unknown."""
    return _table(machine).get(nr, f"syscall_{nr}")


def number(name: str, machine: Optional[str] = None) -> Optional[int]:
    """Number of syscall `name`, or None when unknown."""
    key = machine or os.uname().machine
    if key not in _REVERSE:
        _REVERSE[key] = {v: k for k, v in _table(key).items()}
    return _REVERSE[key].get(name)
