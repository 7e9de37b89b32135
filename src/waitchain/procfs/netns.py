"""Run a short function inside another network namespace: setns(2) in a thread of its own,
which then ends. Only that thread changes namespace (a network namespace is per thread);
the rest of waitchain stays in its own. A socket made there stays in that namespace when the
thread has ended, so sock_diag queries through it see that namespace's sockets."""

from __future__ import annotations

import os
import threading

from .. import errors

TYPE_CHECKING = False
if TYPE_CHECKING:  # ctypes is imported when first needed (Python < 3.12): start-up (issue 14)
    import ctypes
    from typing import Callable, Dict, Optional, TypeVar

    T = TypeVar("T")

CLONE_NEWNET = 0x40000000
DEADLINE = 2.0  # seconds for the thread (setns and one socket(2) do not block)

_libc: Optional[ctypes.CDLL] = None


def _setns(fd: int, nstype: int) -> None:
    """setns(2); os.setns from Python 3.12, libc's through ctypes before."""
    native = getattr(os, "setns", None)
    if native is not None:
        native(fd, nstype)
        return
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # libc is loaded: not ctypes.util (~8 ms to import)
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def in_netns(netns: int, make: Callable[[], T]) -> T:
    """make() run in a new thread that first joins the network namespace of the open
    /proc/PID/ns/net fd `netns` (and goes back to ours before it ends). Raises OSError
    from setns (EPERM without CAP_SYS_ADMIN) or from make, Timeout past the deadline."""
    result: Dict[str, object] = {}

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(netns, CLONE_NEWNET)
            try:
                result["value"] = make()
            finally:
                try:
                    _setns(own, CLONE_NEWNET)
                except OSError:
                    pass  # the thread ends now: its namespace goes with it
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc
        finally:
            os.close(own)

    thread = threading.Thread(target=work, name="waitchain-netns", daemon=True)
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        raise errors.Timeout(None, "setns into another network namespace")
    error = result.get("error")
    if isinstance(error, BaseException):
        raise error
    return result["value"]  # type: ignore[return-value]
