"""Exceptions. Each carries the pid it concerns and inherits the matching built-in
exception, so callers may catch either. Classified by errno, never by message text. Each
knows its exit code and what the person should do about it (`fixes()`): the CLI prints them."""

from __future__ import annotations

import errno
import os

from .names import short_cmdline
from .sanitize import clean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional

# Exit codes, documented in --help, the man page and the README. Stable: a script may test
# them. 1 is a finding, not a failure; 70 is only ever a bug.
EXIT_OK = 0  # diagnosis printed, no deadlock
EXIT_DEADLOCK = 1  # diagnosis printed, a deadlock found (kept when only the output failed after it)
EXIT_USAGE = 2  # bad arguments, conflicting options, a --report path refused before any work
EXIT_NO_PROCESS = 3  # no such process, or a pattern matched none or several
EXIT_DENIED = 4  # permission denied, or a scan (--all) that could not read every process
EXIT_UNSUPPORTED = 5  # the kernel or the machine lacks something (a /proc file, Graphviz, man)
EXIT_OUTPUT = 6  # the output could not be written (stdout or --report: disk full, I/O error)
EXIT_SYSTEM = 7  # the system failed a read waitchain needed (it did not answer in time, EIO)
EXIT_INTERNAL = 70  # a bug in waitchain (EX_SOFTWARE): please report it with the message
EXIT_INTERRUPTED = 130  # Ctrl-C
MAX_CANDIDATES = 10  # processes listed when a pattern matches several


class WaitchainError(Exception):
    """Base of every error waitchain raises on purpose: a condition of the system, never a
    bug (an unexpected exception is the CLI's EXIT_INTERNAL)."""

    exit_code = EXIT_SYSTEM

    def fixes(self) -> List[str]:
        """What the person should do about it, one line each."""
        return []


class ProcessGone(WaitchainError, ProcessLookupError):
    """The process does not exist (any more), or its pid was reused."""

    exit_code = EXIT_NO_PROCESS

    def __init__(self, pid: int, what: str = "") -> None:
        self.pid = pid
        self.what = what
        super().__init__(f"process {pid} does not exist (or has exited)")

    def fixes(self) -> List[str]:
        return [f"fix: check the pid with `ps -p {self.pid}` (it may have exited); "
                "`pgrep -af NAME` finds a process by name"] + container_hint()


class AccessDenied(WaitchainError, PermissionError):
    """We may not read something of this process."""

    exit_code = EXIT_DENIED

    def __init__(self, pid: Optional[int], what: str) -> None:
        self.pid = pid
        self.what = what
        who = f"process {pid}" if pid is not None else "the system"
        super().__init__(f"permission denied reading {what} of {who}")

    def fixes(self) -> List[str]:
        if os.geteuid() != 0:
            return ["fix: run it as root: sudo waitchain ... (reading another user's fds and "
                    "system calls needs it)"]
        return ["you are root, but reading a process's fds and system call also needs CAP_SYS_PTRACE:",
                "fix: in a container, add it (docker run --cap-add SYS_PTRACE; Kubernetes: "
                "securityContext.capabilities.add: [SYS_PTRACE]); on a host, check the "
                "SELinux/AppArmor policy and kernel.yama.ptrace_scope"]


class Unsupported(WaitchainError, FileNotFoundError):
    """The kernel lacks a /proc file or facility we need."""

    exit_code = EXIT_UNSUPPORTED

    def __init__(self, what: str, pid: Optional[int] = None) -> None:
        self.pid = pid
        self.what = what
        super().__init__(f"this kernel does not provide {what}")

    def fixes(self) -> List[str]:
        if "syscall" in self.what:
            return ["waitchain reads /proc/PID/syscall to see which call a thread is blocked in; "
                    "this kernel was built without it (CONFIG_HAVE_ARCH_TRACEHOOK)",
                    "fix: use a distribution kernel (every x86_64 and aarch64 one has it), or fall "
                    "back to `strace -p PID -y` (which briefly stops the process)"]
        return [f"fix: waitchain needs {self.what}: is /proc mounted (mount -t proc proc /proc), "
                "and is this Linux 4.x or newer?"]


class Timeout(WaitchainError, TimeoutError):
    """A read that can block did not answer within its deadline."""

    def __init__(self, pid: Optional[int], what: str) -> None:
        self.pid = pid
        self.what = what
        super().__init__(f"reading {what} of process {pid} did not answer in time")


class NoMatch(WaitchainError, LookupError):
    """A pattern matched no process."""

    exit_code = EXIT_NO_PROCESS

    def __init__(self, pattern: str, reason: str = "") -> None:
        self.pattern = pattern
        self.reason = reason  # e.g. "not a valid regular expression: ..."
        super().__init__(f"no process matches {pattern!r}" + (f" ({reason})" if reason else ""))

    def fixes(self) -> List[str]:
        if self.reason:
            return ["fix: put a backslash before characters that mean something in a regular "
                    "expression ([ ] ( ) . * + ?), or give a pid"]
        import shlex  # imported when first needed: start-up (issue 14)

        return [f"fix: `pgrep -af {shlex.quote(clean(self.pattern))}` shows what matches; the "
                "pattern is a regular expression searched in full command lines"] + container_hint()


class Ambiguous(WaitchainError, LookupError):
    """A pattern matched several processes."""

    exit_code = EXIT_NO_PROCESS

    def __init__(self, pattern: str, pids: list, cmdlines: Optional[Dict[int, str]] = None) -> None:
        self.pattern = pattern
        self.pids = pids
        self.cmdlines = cmdlines or {}  # pid → command line, for the message
        super().__init__(f"{pattern!r} matches {len(pids)} processes")

    def fixes(self) -> List[str]:
        lines = ["candidates: " + ", ".join(str(p) for p in self.pids[:20])
                 + (", ..." if len(self.pids) > 20 else "")]
        lines += [f"{pid:>8}  {short_cmdline(self.cmdlines.get(pid, '?'), 80)}"
                  for pid in self.pids[:MAX_CANDIDATES] if pid in self.cmdlines]
        if len(self.pids) > MAX_CANDIDATES:
            lines.append(f"{'':>8}  … and {len(self.pids) - MAX_CANDIDATES} more")
        return lines + [f"fix: give one pid (waitchain {self.pids[0]}), or a pattern that matches "
                        "only one command line"]


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

    exit_code = EXIT_UNSUPPORTED

    def __init__(self, tool: str, package: str, purpose: str) -> None:
        self.tool = tool
        self.package = package
        super().__init__(f"{purpose} needs the `{tool}` program, which is not installed")

    def fixes(self) -> List[str]:
        return [f"fix: install it (Debian/Ubuntu: apt-get install {self.package}; Fedora/RHEL: "
                f"dnf install {self.package}; Alpine: apk add {self.package}), or use --format dot "
                "and render it elsewhere, or --format mermaid"]


class UsageError(WaitchainError, ValueError):
    """Arguments that cannot be used as given (argparse catches the rest)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, fix: str = "") -> None:
        self.fix = fix
        super().__init__(message)

    def fixes(self) -> List[str]:
        return [f"fix: {self.fix}"] if self.fix else ["see waitchain --help"]


class ReportError(WaitchainError, OSError):
    """The --report path was refused before the diagnosis (it exists, is a symlink, its
    directory is missing or not writable): a bad argument, nothing was diagnosed."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str, exc: Optional[OSError] = None, why: str = "") -> None:
        reason = why or (exc.strerror if exc is not None and exc.strerror else str(exc))
        super().__init__(f"cannot write the report to {clean(path)}: {reason}")
        self.path = path
        self.errno = exc.errno if exc is not None else None  # after OSError.__init__, which resets it

    def fixes(self) -> List[str]:
        if self.errno == errno.EEXIST:
            return ["fix: give a new file name, or add --force to replace it"]
        return ["fix: give --report a path in a directory you can write to, e.g. "
                "--report /tmp/incident.html"]


class OutputError(WaitchainError, OSError):
    """Writing the output failed (disk full, I/O error, read-only file system)."""

    exit_code = EXIT_OUTPUT

    def __init__(self, where: str, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, "")
        why = (exc.strerror or str(exc)) + (f" ({name})" if name else "")
        super().__init__(f"cannot write {where}: {why}")
        self.where = where
        self.errno = exc.errno  # after OSError.__init__, which resets it

    def fixes(self) -> List[str]:
        if self.errno in (errno.ENOSPC, errno.EDQUOT):
            return ["fix: free some space (df -h shows where), or write elsewhere"]
        return ["fix: write the output elsewhere (another file system or device)"]


class IncompleteScan(WaitchainError, PermissionError):
    """--all could not read every process: "nothing found" would not be true."""

    exit_code = EXIT_DENIED

    def __init__(self, skipped: int, total: int) -> None:
        self.skipped = skipped
        self.total = total
        super().__init__(f"the scan is incomplete: {skipped} of {total} processes could not be "
                         "read (permission denied), so a deadlock among them would not be seen; "
                         "nothing found among the processes that could be read")

    def fixes(self) -> List[str]:
        return AccessDenied(None, "").fixes()


def container_hint() -> List[str]:
    if not _in_container():
        return []
    return ["inside a container you only see the container's processes: run waitchain on the "
            "host, or give the container the host's pid namespace (docker run --pid=host; "
            "Kubernetes: hostPID: true)"]


def _in_container() -> bool:
    """Docker, Podman, systemd-nspawn and Kubernetes leave these marks (no /proc read needed)."""
    return (os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
            or bool(os.environ.get("container")) or "KUBERNETES_SERVICE_HOST" in os.environ)
