"""Exceptions. Each carries the pid it concerns and inherits the matching built-in
exception, so callers may catch either. Classified by errno, never by message text."""

from __future__ import annotations

import errno
from typing import Optional


class WaitchainError(Exception):
    """Base of every error waitchain raises on purpose."""


class ProcessGone(WaitchainError, ProcessLookupError):
    """The process does not exist (any more), or its pid was reused."""

    def __init__(self, pid: int, what: str = "") -> None:
        self.pid = pid
        self.what = what
        super().__init__(f"process {pid} does not exist (or has exited)")


class AccessDenied(WaitchainError, PermissionError):
    """We may not read something of this process."""

    def __init__(self, pid: Optional[int], what: str) -> None:
        self.pid = pid
        self.what = what
        who = f"process {pid}" if pid is not None else "the system"
        super().__init__(f"permission denied reading {what} of {who}")


class Unsupported(WaitchainError, FileNotFoundError):
    """The kernel lacks a /proc file or facility we need."""

    def __init__(self, what: str, pid: Optional[int] = None) -> None:
        self.pid = pid
        self.what = what
        super().__init__(f"this kernel does not provide {what}")


class Timeout(WaitchainError, TimeoutError):
    """A read that can block did not answer within its deadline."""

    def __init__(self, pid: Optional[int], what: str) -> None:
        self.pid = pid
        self.what = what
        super().__init__(f"reading {what} of process {pid} did not answer in time")


class NoMatch(WaitchainError, LookupError):
    """A pattern matched no process."""

    def __init__(self, pattern: str, reason: str = "") -> None:
        self.pattern = pattern
        self.reason = reason  # e.g. "not a valid regular expression: ..."
        super().__init__(f"no process matches {pattern!r}" + (f" ({reason})" if reason else ""))


class Ambiguous(WaitchainError, LookupError):
    """A pattern matched several processes."""

    def __init__(self, pattern: str, pids: list, cmdlines: Optional[dict] = None) -> None:
        self.pattern = pattern
        self.pids = pids
        self.cmdlines = cmdlines or {}  # pid → command line, for the message
        super().__init__(f"{pattern!r} matches {len(pids)} processes")


def from_oserror(exc: OSError, pid: Optional[int], what: str) -> WaitchainError:
    """Map an OSError raised while reading /proc to our exception, by errno."""
    if exc.errno in (errno.ENOENT, errno.ESRCH):
        if pid is None:
            return Unsupported(what)
        return ProcessGone(pid, what)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return AccessDenied(pid, what)
    return WaitchainError(f"reading {what} of process {pid}: {exc.strerror}")


class MissingTool(WaitchainError, FileNotFoundError):
    """An optional program waitchain runs (Graphviz's dot, ...) is not installed."""

    def __init__(self, tool: str, package: str, purpose: str) -> None:
        self.tool = tool
        self.package = package
        super().__init__(f"{purpose} needs the `{tool}` program, which is not installed")


class ReportError(WaitchainError, OSError):
    """The report file could not be written."""

    def __init__(self, path: str, exc: OSError) -> None:
        self.path = path
        super().__init__(f"cannot write the report to {path}: {exc.strerror or exc}")
