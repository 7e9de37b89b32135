"""/proc/sysvipc/{msg,sem}: SysV message queues and semaphore sets of the reader's IPC
namespace. Each file is a header line of column names and one line of numbers per object."""

from __future__ import annotations


from ..errors import WaitchainError
from .reader import TABLE_READ, ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional


def parse_sysvipc(text: str) -> List[Dict[str, int]]:
    """Rows as {column: value}; `key` is a number printed in decimal by the kernel."""
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split()
    rows = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) != len(header):
            continue
        try:
            rows.append({name: int(value) for name, value in zip(header, fields)})
        except ValueError:
            continue
    return rows


def find(fs: ProcFS, kind: str, ident_column: str, ident: int) -> Optional[Dict[str, int]]:
    """The row of /proc/sysvipc/KIND whose IDENT_COLUMN is ident; None if absent or unreadable."""
    try:
        rows = parse_sysvipc(fs.read(None, "sysvipc", kind, limit=TABLE_READ))
    except WaitchainError:
        return None
    return next((row for row in rows if row.get(ident_column) == ident), None)
