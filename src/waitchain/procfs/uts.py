"""The host name a process sees: the node name of its UTS namespace (what `hostname` prints
inside a container, or on a "host" made of namespaces)."""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

CLONE_NEWUTS = 0x04000000


def own_hostname() -> str:
    return os.uname().nodename  # socket.gethostname()'s answer on Linux, without importing socket (~7 ms)


def hostname_in(ns_path: str) -> Optional[str]:
    """The node name of the UTS namespace open at `ns_path` (/proc/PID/ns/uts), read by a
    throwaway thread that joins it (setns changes only the calling thread's UTS namespace,
    and the thread ends with it). None when it may not be joined (no CAP_SYS_ADMIN)."""
    import ctypes  # imported when first needed: start-up (issue 14)

    found: List[Optional[str]] = [None]

    def join_and_read() -> None:
        try:
            fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # libc, loaded: not ctypes.util (~8 ms to import)
            if libc.setns(fd, CLONE_NEWUTS) == 0:
                found[0] = os.uname().nodename
        except (OSError, AttributeError):
            return
        finally:
            os.close(fd)

    thread = threading.Thread(target=join_and_read, name="waitchain-uts", daemon=True)
    thread.start()
    thread.join(2.0)
    return found[0]
