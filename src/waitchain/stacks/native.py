"""Native stacks, only with --native: `gdb -batch` (or `eu-stack`) ptrace-attaches to the
target, which stops it briefly and turns an interrupted call into a restart. Opt-in only."""

from __future__ import annotations

import os
import re
import signal
from bisect import bisect_right

from ..errors import WaitchainError
from ..model import Frame
from ..procfs import maps as procfs_maps
from ..procfs.process import read_stat
from ..procfs.reader import ProcFS
from .python import StackError, StackTimeout, failed, run_helper

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

    Maps = List[Tuple[int, int, str]]  # start, end, path

TIMEOUT = 20.0  # gdb reads symbols: large binaries take seconds
GDB_SETTINGS = ["set debuginfod enabled off", "set auto-load off"]  # no network, no scripts
GDB_COMMANDS = ["set pagination off", "set print frame-arguments none",
                "set print frame-info location-and-address", "set filename-display absolute",
                "thread apply all bt"]
GDB_THREAD = re.compile(r"^Thread \d+ \(.*?\b(?:LWP|process) (\d+)\)")
GDB_FRAME = re.compile(r"^#\d+\s+(?:(0x[0-9a-fA-F]+) in )?(.+?) \(.*?\)"
                       r"(?: at (.+):(\d+)| from (\S+))?\s*$")
EU_THREAD = re.compile(r"^TID (\d+):")
EU_FRAME = re.compile(r"^#\d+\s+(0x[0-9a-fA-F]+)\s+(\S+)?(?:\s+-\s+(\S+))?\s*$")
EU_SOURCE = re.compile(r"^\s+(\S+):(\d+)(?::\d+)?\s*$")


def find_tool() -> Optional[Tuple[str, str]]:
    """("gdb", path) or ("eu-stack", path), or None when neither is installed."""
    import shutil  # only to find a debugger: ~3 ms to import (bz2, lzma, fnmatch)

    for name in ("gdb", "eu-stack"):
        path = shutil.which(name)
        if path:
            return name, path
    return None


def native_stacks(tool: Tuple[str, str], pid: int, state: str = "",
                  timeout: Optional[float] = None) -> Dict[int, Tuple[Frame, ...]]:
    """TID → frames (innermost first). StackError when the tool fails or overruns."""
    timeout = TIMEOUT if timeout is None else timeout
    name, path = tool
    if name == "gdb":
        argv = [path, "-batch", "-nx"] + _each("-iex", GDB_SETTINGS) + _each("-ex", GDB_COMMANDS)
        argv += ["-p", str(pid)]
    else:
        argv = [path, "-p", str(pid), "-m", "-s"]
    text = _run(argv, pid, state, timeout)
    maps = read_maps(pid)
    stacks = parse_gdb(text, maps) if name == "gdb" else parse_eu_stack(text)
    if not stacks:
        raise StackError(f"{name} showed no stack")
    return stacks


def _each(flag: str, commands: List[str]) -> List[str]:
    return [part for command in commands for part in (flag, command)]


def _run(argv: List[str], pid: int, state: str, timeout: float) -> str:
    """The tool's output; a stack it printed counts even when it exits with an error."""
    try:
        status, text, err = run_helper(argv, timeout, grace=2.0)  # SIGTERM first: gdb detaches on it
    except StackTimeout:
        _resume_if_left_stopped(pid, state)
        raise
    if status != 0 and "#0" not in text:
        raise failed(argv, status, err)
    return text


def _resume_if_left_stopped(pid: int, state: str) -> None:
    """A debugger killed mid-attach can leave its SIGSTOP behind: undo that, and only that."""
    if state in ("T", "t"):
        return
    try:
        if read_stat(ProcFS(), pid).state == "T":
            os.kill(pid, signal.SIGCONT)
    except (WaitchainError, OSError):
        pass


def read_maps(pid: int, proc: str = "/proc") -> Maps:
    """Executable mappings of pid with a file, sorted: address → the object it belongs to."""
    try:
        text = procfs_maps.read_maps(ProcFS(proc), pid)  # under a deadline: it takes the mmap lock
    except WaitchainError:
        return []
    return parse_maps(text)


def parse_maps(text: str) -> Maps:
    maps: Maps = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
            try:
                start, end = (int(x, 16) for x in parts[0].split("-"))
            except ValueError:
                continue
            maps.append((start, end, parts[5].strip()))
    return sorted(maps)


def object_at(maps: Maps, address: int) -> str:
    i = bisect_right(maps, (address, float("inf"), "")) - 1
    return maps[i][2] if i >= 0 and maps[i][0] <= address < maps[i][1] else ""


def parse_gdb(text: str, maps: Maps) -> Dict[int, Tuple[Frame, ...]]:
    """`thread apply all bt` → TID → frames. The object of each frame comes from its address
    through /proc/PID/maps, or gdb's `from LIB` when it has no debug info."""
    stacks: Dict[int, List[Frame]] = {}
    current: Optional[List[Frame]] = None
    for line in text.splitlines():
        thread = GDB_THREAD.match(line)
        if thread:
            current = stacks.setdefault(int(thread.group(1)), [])
            continue
        frame = GDB_FRAME.match(line)
        if frame and current is not None:
            address, function, file, lineno, lib = frame.groups()
            module = lib or (object_at(maps, int(address, 16)) if address else "")
            current.append(Frame(function, file or module, int(lineno or 0), module, native=True, how="gdb"))
    return {tid: tuple(frames) for tid, frames in stacks.items() if frames}


def parse_eu_stack(text: str) -> Dict[int, Tuple[Frame, ...]]:
    """`eu-stack -p PID -m -s` → TID → frames."""
    stacks: Dict[int, List[Frame]] = {}
    current: Optional[List[Frame]] = None
    for line in text.splitlines():
        thread = EU_THREAD.match(line)
        frame = EU_FRAME.match(line)
        source = EU_SOURCE.match(line)
        if thread:
            current = stacks.setdefault(int(thread.group(1)), [])
        elif frame and current is not None:
            _, function, module = frame.groups()
            current.append(Frame(function or "??", module or "", 0, module or "", native=True, how="eu-stack"))
        elif source and current:
            last = current[-1]
            current[-1] = Frame(last.function, source.group(1), int(source.group(2)), last.module, True,
                                how="eu-stack")
    return {tid: tuple(frames) for tid, frames in stacks.items() if frames}
