"""/proc/PID/task/TID/status (signal masks, thread group) and the controlling terminal
from /proc/PID/stat."""

from __future__ import annotations

import signal

from ..errors import WaitchainError
from .reader import ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional

SIGRTMIN_GLIBC = 34  # the kernel's SIGRTMIN is 32; glibc keeps 32 and 33 for itself


def parse_status(text: str) -> Dict[str, str]:
    """`Key:\\tvalue` lines as a dict."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def read_status(fs: ProcFS, pid: int, tid: Optional[int] = None) -> Dict[str, str]:
    """status of a thread (or of the process); raises WaitchainError."""
    parts = ("task", str(tid), "status") if tid is not None else ("status",)
    return parse_status(fs.read_one(pid, *parts))


def read_status_field(fs: ProcFS, pid: int, key: str) -> Optional[str]:
    """One field of the process's status, found in the text without parsing the other ~55
    lines (None if absent): a question asked of every process (TracerPid) costs ~22 us
    instead of ~63. Raises WaitchainError."""
    text = "\n" + fs.read_one(pid, "status")  # every line, the first too, after a newline
    start = text.find(f"\n{key}:")
    if start < 0:
        return None
    end = text.find("\n", start + 1)
    return text[start + len(key) + 2:end if end >= 0 else len(text)].strip()


def mask(fields: Dict[str, str], key: str) -> int:
    """A hex signal mask such as SigBlk; 0 if absent."""
    try:
        return int(fields.get(key, "0"), 16)
    except ValueError:
        return 0


def signal_name(number: int) -> str:
    """SIGUSR1, SIGRTMIN+3, or SIG32 for the signals glibc reserves."""
    if number >= SIGRTMIN_GLIBC:
        return f"SIGRTMIN+{number - SIGRTMIN_GLIBC}" if number > SIGRTMIN_GLIBC else "SIGRTMIN"
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def signal_names(bits: int) -> List[str]:
    """Names of the signals in a mask (bit n-1 is signal n)."""
    return [signal_name(n) for n in range(1, 65) if bits >> (n - 1) & 1]


def nspids(fields: Dict[str, str]) -> List[int]:
    """`NSpid:` of a status: the id in each pid namespace, outermost (ours) first."""
    try:
        return [int(v) for v in fields.get("NSpid", "").split()]
    except ValueError:
        return []


def thread_group(fs: ProcFS, tid: int) -> int:
    """The process (thread group) a thread id belongs to: /proc/TID/status `Tgid:`."""
    try:
        return int(read_status(fs, tid)["Tgid"])
    except (KeyError, ValueError):
        raise WaitchainError(f"process {tid}: no Tgid in /proc/{tid}/status") from None


def tty_nr(fs: ProcFS, pid: int) -> int:
    """The controlling terminal's device number from /proc/PID/stat (0: none)."""
    try:
        tail = fs.read_one(pid, "stat").rpartition(")")[2].split()
        return int(tail[4])
    except (WaitchainError, IndexError, ValueError):
        return 0


def tpgid(fs: ProcFS, pid: int) -> int:
    """The foreground process group of its controlling terminal, from /proc/PID/stat (-1: none)."""
    try:
        tail = fs.read_one(pid, "stat").rpartition(")")[2].split()
        return int(tail[5])
    except (WaitchainError, IndexError, ValueError):
        return -1
