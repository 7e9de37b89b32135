"""Syscall number ↔ name, per machine (x86_64 64-bit ABI, aarch64)."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional

# machine -> the module of its table, imported when first asked: a run needs only its own
# machine's (start-up, issue 14)
_MODULES = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_TABLES: Dict[str, Dict[int, str]] = {}
MACHINE = os.uname().machine  # read once: uname(2) costs ~3 us, and a name is asked per thread
_REVERSE: Dict[str, Dict[str, int]] = {}


def _table(machine: Optional[str]) -> Dict[int, str]:
    """The number → name table for `machine` (default: this one); empty if unknown."""
    key = machine or MACHINE
    table = _TABLES.get(key)
    if table is None:
        module = _MODULES.get(key)
        table = _TABLES[key] = __import__(f"{__name__}.{module}", fromlist=["NAMES"]).NAMES if module else {}
    return table


def name(nr: int, machine: Optional[str] = None) -> str:
    """Name of syscall `nr`, or "syscall_NR" when unknown."""
    return _table(machine).get(nr, f"syscall_{nr}")


def number(name: str, machine: Optional[str] = None) -> Optional[int]:
    """Number of syscall `name`, or None when unknown."""
    key = machine or MACHINE
    if key not in _REVERSE:
        _REVERSE[key] = {v: k for k, v in _table(key).items()}
    return _REVERSE[key].get(name)
