"""/proc/PID/timers: the POSIX timers of a process (timer_create), one block each:

    ID: 0
    signal: 14/0000000000000000
    notify: signal/pid.24044
    ClockID: 1

`notify` is signal/pid.N (the process), thread/tid.N (SIGEV_THREAD_ID: that thread) or
none/... (SIGEV_NONE: no signal). The file does not say whether a timer is armed nor when it
fires (util-linux `flock -w` arms one for its timeout and blocks in flock(LOCK_EX): measured
on 6.18)."""

from __future__ import annotations


from .reader import ProcFS
from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional


@record(frozen=True)
class PosixTimer:
    id: int
    signo: int  # 0 when it sends no signal
    notify: str  # "signal" (the process), "thread" (one thread), "none"
    target: Optional[int]  # the pid or tid it notifies, as the process sees it
    clock: int


def parse_timers(text: str) -> List[PosixTimer]:
    """Every well-formed block; a malformed one is skipped."""
    timers: List[PosixTimer] = []
    block: dict = {}
    for line in text.splitlines() + ["ID: end"]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "ID" and block:
            timer = _timer(block)
            if timer is not None:
                timers.append(timer)
            block = {}
        if key:
            block[key] = value
    return timers


def _timer(block: dict) -> Optional[PosixTimer]:
    try:
        signo = int(block.get("signal", "0").split("/")[0])
        how, _, whom = block.get("notify", "none/").partition("/")
        target = int(whom.split(".", 1)[1]) if "." in whom else None
        return PosixTimer(int(block["ID"]), signo, how, target, int(block.get("ClockID", "-1")))
    except (KeyError, ValueError, IndexError):
        return None


def read_timers(fs: ProcFS, pid: int) -> List[PosixTimer]:
    """The process's POSIX timers; raises WaitchainError when unreadable."""
    return parse_timers(fs.read(pid, "timers"))
