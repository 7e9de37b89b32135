"""Python stacks through `py-spy dump --nonblocking --json`: it reads the target's memory with
process_vm_readv and never ptrace-stops it (py-spy's default mode would, and a stopped `poll`
comes back as `restart_syscall`: the evidence changes). Also runs the helper programs
(py-spy here, gdb and eu-stack for native.py) under a deadline."""

from __future__ import annotations

import os
import sys
import re
import signal

from .. import children
from ..model import Frame
from ..records import record
from .tidmap import map_threads

# json, subprocess, shutil and sysconfig are imported where py-spy or a debugger is found and
# run: a native target's stacks need none of them (~6 ms of start-up, issue 14).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

TIMEOUT = 5.0  # seconds for one dump; a blocked target answers in well under 0.1 s
SELF_REPR = r"^<([\w.]+) at 0x[0-9a-f]+>$"  # compiled on first use (by re): Python targets only


class StackError(Exception):
    """A stack could not be read; the message says why, for a note."""


class StackTimeout(StackError):
    """The helper did not answer in time (and was stopped)."""


@record(frozen=True)
class PyThread:
    """One thread of a py-spy dump. `selves[i]` is (address, type name) of `self` in
    frames[i], or None: it tells a Thread.join which Thread it waits for."""

    ident: int
    tid: Optional[int]
    name: str
    frames: Tuple[Frame, ...]
    selves: Tuple[Optional[Tuple[int, str]], ...]
    local_addrs: Tuple[Dict[str, int], ...] = ()  # per frame: local name → object address
    local_types: Tuple[Dict[str, str], ...] = ()  # per frame: local name → its type ("_thread.RLock")


def find_py_spy() -> Optional[str]:
    """py-spy installed beside this interpreter (our pinned dependency: found even when its
    directory is not on PATH, as under sudo), else the one on PATH."""
    for where in scripts_dirs():
        beside = os.path.join(where, "py-spy")
        if os.access(beside, os.X_OK) and os.path.isfile(beside):
            return beside
    import shutil

    return shutil.which("py-spy")


def scripts_dirs() -> Iterator[str]:
    """Where this interpreter's packages put their commands: a virtualenv's are in its
    interpreter's directory, looked at first; sysconfig (~1 ms to import) only after."""
    yield os.path.dirname(sys.executable)
    import sysconfig

    yield sysconfig.get_path("scripts")


def dump(py_spy: str, pid: int, tids: Set[int], timeout: Optional[float] = None) -> List[PyThread]:
    """Every Python thread of pid, each matched to its TID (None if it cannot be)."""
    timeout = TIMEOUT if timeout is None else timeout
    argv = [py_spy, "dump", "--nonblocking", "--json", "--pid", str(pid)]
    try:
        out = run(argv + ["--locals"], timeout)  # locals: `self` and the addresses are kept
    except StackTimeout:
        raise
    except StackError:
        out = run(argv, timeout)  # a local py-spy cannot render must not cost the stack
    threads = parse(out)
    return match_tids(pid, threads, tids)


def run(argv: List[str], timeout: float) -> str:
    """stdout of argv, or StackError with the first line of its complaint."""
    status, out, err = run_helper(argv, timeout)
    if status != 0:
        raise failed(argv, status, err)
    return out


def run_helper(argv: List[str], timeout: float, grace: float = 0.0) -> Tuple[int, str, bytes]:
    """Run a helper (py-spy, gdb, eu-stack) in its own session: its exit status, stdout and
    stderr. StackError if it cannot start; StackTimeout once it is stopped (see stop) when
    it has not finished within `timeout` seconds."""
    import subprocess

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        raise StackError(f"{os.path.basename(argv[0])} could not run: {exc.strerror}") from None
    children.track(proc.pid, group=True)  # ended by an interrupt (entry.py)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace)
        raise StackTimeout(f"{os.path.basename(argv[0])} did not answer within {timeout:g} s") from None
    finally:
        if proc.returncode is not None:
            children.untrack(proc.pid)
    return proc.returncode, out.decode("utf-8", "replace"), err


def failed(argv: List[str], status: int, err: bytes) -> StackError:
    """The error for a helper that failed: the first line of its complaint."""
    return StackError(f"{os.path.basename(argv[0])}: {first_line(err) or f'exit status {status}'}")


def stop(proc: subprocess.Popen, grace: float = 0.0) -> None:
    """End a helper that overran its deadline: SIGTERM with `grace` seconds to clean up (gdb
    detaches), then SIGKILL. One stuck in an uninterruptible read is left, not waited for."""
    if grace > 0 and _signal(proc, signal.SIGTERM, grace):
        return
    _signal(proc, signal.SIGKILL, 1.0)


def _signal(proc: subprocess.Popen, sig: int, wait: float) -> bool:
    """Signal the helper's process group (it was started in its own session): a debugger's
    forked children go with it."""
    import subprocess

    try:
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=wait)
        return True
    except (subprocess.TimeoutExpired, OSError, ValueError):
        return False


def first_line(err: bytes) -> str:
    for line in err.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            return line[len("Error: "):] if line.startswith("Error: ") else line
    return ""


def parse(text: str) -> List[PyThread]:
    """py-spy's JSON dump → threads; StackError if it is not what py-spy 0.3/0.4 prints."""
    import json

    try:
        data = json.loads(text)
        if not isinstance(data, list):
            raise TypeError("not a list of threads")
        return [_thread(t) for t in data]
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        raise StackError(f"py-spy printed something unexpected ({type(exc).__name__})") from None


def _thread(data: Dict[str, Any]) -> PyThread:
    frames = data.get("frames") or []
    tid = data.get("os_thread_id")
    found = [_locals_of(f.get("locals")) for f in frames]
    return PyThread(
        ident=int(data.get("thread_id") or 0),
        tid=None if tid is None else _positive(tid),
        name=str(data.get("thread_name") or ""),
        frames=tuple(Frame(function=str(f["name"]), file=str(f["filename"]), line=int(f["line"]),
                           module=str(f.get("module") or ""), how="py-spy") for f in frames),
        selves=tuple(self_ for self_, _, _ in found),
        local_addrs=tuple(addrs for _, addrs, _ in found),
        local_types=tuple(types for _, _, types in found),
    )


def _positive(value: Any) -> int:
    """A thread id: a positive int (TypeError otherwise: bool, float, text)."""
    if type(value) is not int or value <= 0:
        raise TypeError(f"not a thread id: {value!r}")
    return value


def _locals_of(local_vars: Any) -> Tuple[Optional[Tuple[int, str]], Dict[str, int], Dict[str, str]]:
    """One frame's locals (py-spy --locals), in one pass: `self` as (address, type name) or
    None; where each local's object is (the same address is the same object); the type py-spy
    names in each local's repr (`<_thread.RLock at 0x7f...>`)."""
    self_: Optional[Tuple[int, str]] = None
    addrs: Dict[str, int] = {}
    types: Dict[str, str] = {}
    for var in local_vars or []:
        name = var.get("name")
        match = re.match(SELF_REPR, str(var.get("repr") or ""))
        if self_ is None and name == "self" and var.get("arg"):
            self_ = int(var.get("addr") or 0), match.group(1) if match else ""
        addr = var.get("addr")
        if type(addr) is int and addr > 0:
            addrs[str(name)] = addr
        if match:
            types[str(name)] = match.group(1)
    return self_, addrs, types


def match_tids(pid: int, threads: Sequence[PyThread], tids: Set[int]) -> List[PyThread]:
    """Fill `tid` where py-spy left it out (CPython < 3.11) from the pthread_t."""
    missing = [t.ident for t in threads if t.tid is None]
    if not missing:
        return list(threads)
    known = {t.tid for t in threads if t.tid is not None}
    found = map_threads(pid, missing, tids - known)
    return [t if t.tid is not None else with_tid(t, found.get(t.ident)) for t in threads]


def with_tid(thread: PyThread, tid: Optional[int]) -> PyThread:
    return PyThread(thread.ident, tid, thread.name, thread.frames, thread.selves, thread.local_addrs,
                    thread.local_types)
