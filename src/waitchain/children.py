"""The child processes waitchain starts (the memory reader, py-spy, debuggers): recorded
while they run, so that an interrupt (Ctrl-C at any moment) ends every one of them before
waitchain exits. Nothing else is here: this module is imported by the light entry point."""

from __future__ import annotations

import os
import signal
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict

_live: Dict[int, bool] = {}  # pid → started in its own process group (signal the group)
_lock = threading.Lock()


def track(pid: int, group: bool = False) -> None:
    """A child has started (group: it leads its own process group, e.g. start_new_session)."""
    with _lock:
        _live[pid] = group


def untrack(pid: int) -> None:
    """The child has exited and been reaped (or is no longer ours to end)."""
    with _lock:
        _live.pop(pid, None)


def live() -> Dict[int, bool]:
    with _lock:
        return dict(_live)


def kill_all() -> None:
    """SIGKILL every child still recorded (its process group if it leads one). Called on
    the way out after an interrupt; safe from a signal handler (no allocation-heavy work,
    errors ignored). One stuck in an uninterruptible sleep goes once it wakes."""
    for pid, group in live().items():
        try:
            if group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def close_inherited(*keep: int) -> None:
    """In a forked child: close every fd it has open but `keep` (listed from /proc/self/fd:
    not every number below the limit, which Python 3.9's os.closerange closes one by one)."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            try:
                os.close(int(name))
            except OSError:
                pass  # the listing's own fd, already closed
