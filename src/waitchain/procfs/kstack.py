"""/proc/PID/task/TID/stack: the kernel functions a sleeping thread is in, innermost first.
Readable by root only; elsewhere it is empty or EACCES, and wchan alone must do."""

from __future__ import annotations


from ..errors import AccessDenied, WaitchainError
from .reader import ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Tuple


def parse_stack(text: str) -> List[str]:
    """`[<0>] folio_wait_bit_common+0x110/0x310` lines → ["folio_wait_bit_common", ...]."""
    frames = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[<"):
            line = line.partition("]")[2].strip()
        name = line.partition("+")[0].strip()
        if name and not name.startswith("0x"):
            frames.append(name)
    return frames


def read_stack(fs: ProcFS, pid: int, tid: int) -> Tuple[List[str], str]:
    """(frames, note): the note says why there are none."""
    try:
        frames = parse_stack(fs.read_one(pid, "task", str(tid), "stack"))
    except AccessDenied:
        return [], "the kernel stack needs root"
    except WaitchainError as exc:
        return [], f"kernel stack unreadable: {exc}"
    return frames, "" if frames else "the kernel stack is empty (not root, or not sleeping)"
