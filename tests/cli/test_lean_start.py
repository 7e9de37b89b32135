"""A run imports only what it needs (issue 14, start-up): `--json --no-stacks` loads neither
rich (the text renderer's), nor the stacks code, pyelftools, urllib/http (--debuginfod), nor
the watchdog; the text output loads neither rich nor the JSON renderer; neither imports typing
(waitchain's typing names are type-check-only: ~5-6 ms of a run). Each case runs the real
command line in a fresh interpreter and reads its sys.modules after the run, so a top-level
import that pulls one of them back in fails here, not in a benchmark weeks later."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List

import pytest
from scenario_helpers import libc_of

from waitchain.demo.harness import wait_blocked, wait_until
from waitchain.errors import EXIT_OK
from waitchain.procfs.process import read_stat
from waitchain.procfs.reader import ProcFS
from waitchain.stacks.elf import build_id_of

# Run main() with stdout captured, then report the exit code, the output and the modules loaded
# (and those the interpreter had loaded before: a site .pth may import shutil, say). typing, if
# the start imported it (a .pth here does), is forgotten first: whether the run imports it again
# is what the typing checks look at.
CHILD = """\
import sys
for name in [n for n in sys.modules if n == "typing" or n.startswith("typing.")]:
    del sys.modules[name]
startup = sorted(sys.modules)
import contextlib, io
from waitchain.entry import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
modules = sorted(sys.modules)
import json
print(json.dumps({"code": code, "out": out.getvalue(), "modules": modules, "startup": startup}))
"""
NEVER_FOR_JSON = ["rich", "elftools", "urllib.request", "http.client", "waitchain.stacks",
                  "waitchain.stacks.unwind", "waitchain.stacks.elf", "waitchain.stacks.debuginfod",
                  "waitchain.watch", "waitchain.metrics", "waitchain.merge", "waitchain.render.text",
                  "waitchain.render.html", "waitchain.render.svg", "waitchain.demo"]
# Not for a run without stacks: spawning (man, psql, ssh), a rule's traceback, ctypes.util (and
# its tempfile), argparse's terminal width (shutil)
NEVER_WITHOUT_STACKS = ["subprocess", "shutil", "traceback", "ctypes.util", "tempfile"]
# A sleep's wait needs the signals rule only (ends and describe come with waits/__init__.py);
# sockets are read through netlink only when a socket is followed: socket (with selectors) and
# string are imported then, not for a sleep
RULES = ["waitchain.waits." + name for name in (
    "child", "fifo", "filelock", "futex", "io", "kernel", "objects", "pipe", "poll", "postgres", "retry",
    "socket", "tty")]
NEVER_FOR_A_SLEEP = ["socket", "selectors", "string", "pwd", "termios", "bisect", "shlex"]


@pytest.fixture
def sleeper(procs) -> int:
    proc = procs.spawn(["sleep", "1000"])
    wait_blocked(proc.pid, "clock_nanosleep", "nanosleep")
    return proc.pid


def _run(*argv: str) -> Dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: Dict[str, Any] = json.loads(done.stdout)
    assert result["code"] == EXIT_OK, done.stderr
    return result


def _loaded(result: Dict[str, Any], names: List[str]) -> List[str]:
    return [name for name in names if name in result["modules"]]


def _run_loaded(result: Dict[str, Any], names: List[str]) -> List[str]:
    """Those of `names` the run itself imported (not the interpreter's start)."""
    return [name for name in _loaded(result, names) if name not in result["startup"]]


def test_json_without_stacks_imports_no_renderer_stacks_or_network_code(sleeper: int) -> None:
    result = _run(str(sleeper), "--json", "--no-stacks")
    assert json.loads(result["out"])["starts"] == [sleeper]
    assert _loaded(result, NEVER_FOR_JSON) == []
    assert _run_loaded(result, NEVER_WITHOUT_STACKS + ["dataclasses", "inspect"]) == []  # records.py, not dataclasses
    assert _run_loaded(result, ["typing"]) == []  # its names are type-check-only; records.NamedTuple at run time
    assert "waitchain.render.json" in result["modules"]  # the check sees what a run imports


def test_text_without_stacks_imports_neither_rich_nor_the_json_renderer(sleeper: int) -> None:
    result = _run(str(sleeper), "--no-stacks")
    assert f"{sleeper}" in result["out"] and "SLEEPING" in result["out"]
    assert "waitchain.render.text" in result["modules"]
    assert _loaded(result, ["rich", "waitchain.render.json", "waitchain.stacks", "elftools", "urllib.request",
                            "waitchain.watch"]) == []
    assert _run_loaded(result, NEVER_WITHOUT_STACKS + ["json"]) == []


def test_a_sleep_imports_only_the_sleep_rule(sleeper: int) -> None:
    """waits/__init__.py imports a rule module when a thread is first seen in one of its
    calls: a sleep's run loads the signals rule and none of the others, nor the socket code."""
    result = _run(str(sleeper), "--json", "--no-stacks")
    assert json.loads(result["out"])["starts"] == [sleeper]
    assert "waitchain.waits.signals" in result["modules"]
    assert _loaded(result, RULES) == []
    assert _run_loaded(result, NEVER_FOR_A_SLEEP) == []
    tables = {"waitchain.procfs.syscalls.x86_64", "waitchain.procfs.syscalls.aarch64"}
    assert len(tables & set(result["modules"])) == 1  # this machine's system call names only


def test_stacks_are_imported_when_they_are_read(sleeper: int) -> None:
    """The other side: without --no-stacks the stacks code runs (and, for a native process,
    the unwinder); urllib only comes with --debuginfod."""
    result = _run(str(sleeper), "--json")
    assert "waitchain.stacks" in result["modules"]
    assert _loaded(result, ["urllib.request", "http.client", "waitchain.stacks.debuginfod", "rich"]) == []


def test_a_native_stack_is_unwound_without_pyelftools(sleeper: int) -> None:
    """`waitchain PID` on a sleep unwinds its native stack (stacks/cfi.py decodes the CFI)
    without importing pyelftools: only a .debug_line needs it, and the text output looks up
    no line of libc (nor of sleep: skipped where its debug file is installed)."""
    build_id = build_id_of(shutil.which("sleep") or "/bin/sleep")
    if build_id and os.path.exists(f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"):
        pytest.skip("sleep's debug file is installed: its line is looked up through pyelftools")
    result = _run(str(sleeper))
    assert "waitchain.stacks.unwind" in result["modules"]
    assert _loaded(result, ["elftools"]) == []
    # nor what only py-spy, a debugger, c++filt or another libstdc++ needs
    assert _run_loaded(result, ["subprocess", "json", "ctypes.util", "tempfile", "platform", "ipaddress"]) == []
    assert _loaded(result, ["waitchain.stacks.native"]) == []  # gdb's and eu-stack's runner (--native)


def test_json_lines_of_a_sleep_are_read_without_pyelftools(sleeper: int) -> None:
    """`waitchain PID --json` asks for the file:line of every frame: libc's come from its
    debug file (libc6-dbg), read by stacks/dwarfline.py, not pyelftools (its import and the
    decompression of every debug section: ~0.2 s). Skipped without libc's debug file."""
    libc = libc_of(str(sleeper))
    build_id = build_id_of(f"/proc/{sleeper}/root{libc}") if libc else ""
    if not build_id or not os.path.exists(f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"):
        pytest.skip("libc's debug file is not installed (libc6-dbg): no line of libc is looked up")
    result = _run(str(sleeper), "--json")
    files = [frame["file"] for thread in json.loads(result["out"])["processes"][0]["threads"]
             for frame in thread["stack"] or []]
    assert any(name.endswith("nanosleep.c") for name in files)  # libc's lines were read
    assert _loaded(result, ["elftools"]) == []


def test_a_sleep_with_stacks_does_not_import_typing(sleeper: int) -> None:
    """`waitchain PID` (the text output, the native unwinder) imports no typing: waitchain's
    typing names are type-check-only (`TYPE_CHECKING = False` / `if TYPE_CHECKING:`) and its
    NamedTuples are records.NamedTuple at run time. (pyelftools imports typing: with --json a
    line looked up in a debug file brings both.)"""
    result = _run(str(sleeper))
    assert "waitchain.stacks.unwind" in result["modules"]
    assert _run_loaded(result, ["typing"]) == []


def test_a_chain_that_reads_no_memory_imports_no_ctypes(procs) -> None:
    """procfs/memory.py resolves process_vm_readv through ctypes (~2 ms to import) on the
    first read of a target's memory: `cat` reading a pipe a busy shell holds reads none."""
    r, w = os.pipe()
    try:
        cat = procs.spawn(["cat"], stdin=r, stdout=subprocess.DEVNULL)
        busy = procs.spawn(["sh", "-c", "while :; do :; done"], stdout=w)
    finally:
        os.close(r)
        os.close(w)
    wait_blocked(cat.pid, "read")
    wait_until(lambda: read_stat(ProcFS(), busy.pid).state == "R", "the shell loops")
    result = _run(str(cat.pid), "--json", "--no-stacks")
    (chain,) = json.loads(result["out"])["chains"]
    assert (chain["path"], chain["end"]["kind"]) == ([cat.pid, busy.pid], "running")
    assert _run_loaded(result, ["ctypes"]) == []
