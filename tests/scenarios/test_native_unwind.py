"""Native stacks of real blocked programs, unwound without stopping them (stacks/unwind.py):
C built -O2 -g without frame pointers, the same stripped with its debug info in a separate
file (debuglink, build-id directory), C++ blocked in std::mutex::lock, Rust reading stdin.
Each is checked against `gdb -batch -ex bt` run afterwards (its frames must agree with ours),
and waitchain is run under strace to show that nothing is ptrace-attached."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from scenario_helpers import read_lines, thread_of, threads_in, threads_of

from waitchain.demo.harness import Processes, wait_blocked, wait_until
from waitchain.model import Frame
from waitchain.procfs.memory import MemoryReader
from waitchain.stacks import elf, unwind
from waitchain.stacks.frames import application_index

CC = shutil.which("gcc") or shutil.which("cc")
CXX = shutil.which("g++") or shutil.which("c++")
RUSTC = shutil.which("rustc") or (os.path.expanduser("~/.cargo/bin/rustc")
                                  if os.access(os.path.expanduser("~/.cargo/bin/rustc"), os.X_OK) else None)
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler")
needs_rustc = pytest.mark.skipif(RUSTC is None, reason="no rustc")
needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
needs_x86_64 = pytest.mark.skipif(not unwind.SUPPORTED, reason="native unwinding is x86-64 only")
pytestmark = needs_x86_64

C_PROGRAM = r"""
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) int level3(int fd, char *buf) {
    int n = (int)read(fd, buf, 1); /* LEVEL3 */
    return n + 1;
}

__attribute__((noinline)) int level2(int fd, char *buf) {
    int r = level3(fd, buf); /* LEVEL2 */
    return r * 2;
}

__attribute__((noinline)) int level1(int fd) {
    char buf[4];
    int r = level2(fd, buf); /* LEVEL1 */
    return r + 3;
}

int main(int argc, char **argv) {
    int p[2];
    if (argc < 2 || pipe(p) != 0)
        return 2;
    if (write(atoi(argv[1]), "ready\n", 6) != 6)
        return 3;
    return level1(p[0]) == 99; /* MAIN */
}
"""

CXX_PROGRAM = r"""
#include <cstdlib>
#include <mutex>
#include <unistd.h>

namespace shop {
class Till {
public:
    void settle(int ready) {
        m_.lock();
        if (write(ready, "ready\n", 6) != 6)
            std::exit(3);
        m_.lock(); /* RELOCK */
    }
private:
    std::mutex m_;
};
}

int main(int argc, char **argv) {
    shop::Till till;
    till.settle(std::atoi(argv[1])); /* MAIN */
    return 0;
}
"""

RUST_PROGRAM = r"""
use std::io::Write;

fn wait_for_line() -> usize {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap() // READLINE
}

fn main() {
    println!("ready");
    std::io::stdout().flush().unwrap();
    let n = wait_for_line(); // MAIN
    std::process::exit(n as i32);
}
"""

GDB_FRAME = re.compile(r"^#(\d+)\s+(0x[0-9a-fA-F]+ in )?(.+?) \(.*?\)(?: at (\S+):(\d+)| from (\S+))?\s*$")


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def build(argv: List[str]) -> None:
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"{argv[0]} failed: {done.stderr[-2000:]}")


def compiled(tmp_path: Path, name: str, text: str, *flags: str) -> Tuple[Path, Path]:
    """`text` written to tmp_path/NAME.c and built with -O2 -g and no frame pointers (and
    `flags`) into tmp_path/NAME: (source, binary)."""
    source, binary = tmp_path / f"{name}.c", tmp_path / name
    source.write_text(text)
    build([CC, "-O2", "-g", "-fomit-frame-pointer", *flags, "-o", str(binary), str(source)])
    return source, binary


def start_with_ready_fd(procs: Processes, argv: List[str]) -> int:
    """Start argv with a readiness pipe's write end as its last argument; its pid once ready."""
    r, w = os.pipe()
    try:
        proc = procs.spawn(argv + [str(w)], pass_fds=(w,))
    finally:
        os.close(w)
    try:
        read_lines(r, 1, 20.0)
    finally:
        os.close(r)
    return proc.pid


def our_stack(pid: int) -> Tuple[Tuple[Frame, ...], bool]:
    stacks = unwind.process_stacks(pid, [pid])
    assert pid in stacks, "no stack unwound"
    return stacks[pid]


def gdb_frames(pid: int) -> List[Tuple[str, str, int]]:
    """(function, file basename, line) of each real frame of `gdb -batch -ex bt` (it stops at
    main). gdb shows a function inlined into another as a frame of its own, with no address:
    such a group is one frame of ours, named by its outermost function, with the innermost
    line (futex_wait at futex-internal.h:146 inlined in __lll_lock_wait)."""
    done = subprocess.run(["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off",
                           "-ex", "set pagination off", "-ex", "bt", "-p", str(pid)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    frames = []
    for line in done.stdout.splitlines():
        m = GDB_FRAME.match(line)
        if not m:
            continue
        function = m.group(3)
        if frames and not m.group(2):  # inlined: the function holding the frames before
            frames[-1] = (function, frames[-1][1], frames[-1][2])
        else:
            frames.append((function, os.path.basename(m.group(4) or ""), int(m.group(5) or 0)))
    assert frames, done.stdout + done.stderr
    return frames


def agrees_with_gdb(ours: Tuple[Frame, ...], incomplete: bool, pid: int, app_module: str) -> None:
    """gdb's frames, frame by frame, up to where ours end when incomplete: the same source
    line where both have one, the same function name in the program's own module (gdb names
    libc's functions by other aliases: read is __GI___libc_read). gdb's inline frames (no
    address of their own) are not frames of ours: none of the programs inlines across calls."""
    theirs = gdb_frames(pid)
    if incomplete:
        theirs = theirs[:len(ours)]
    assert len(ours) >= len(theirs), (ours, theirs)
    for mine, (function, file, line) in zip(ours, theirs):
        if file and mine.line:
            assert (os.path.basename(mine.file), mine.line) == (file, line), (mine, function, file, line)
        if mine.module == app_module:
            assert same_name(mine.function, function), (mine, function)


def same_name(ours: str, gdbs: str) -> bool:
    """The same function, written as we demangle it (rustfilt's style for Rust: read_until::<T>,
    <std::io::stdio::Stdin>::read_line; C++ with its parameters) and as gdb names it from DWARF."""
    def bare(name: str) -> str:
        return re.sub(r"[<>:\s]", "", name.split("(")[0])
    return bare(ours) == bare(gdbs)


def names(frames: Tuple[Frame, ...]) -> List[str]:
    return [f.function for f in frames]


# --- C, -O2 -g, no frame pointers ---------------------------------------------------------


@needs_cc
@needs_gdb
def test_c_without_frame_pointers_three_calls_deep(tmp_path):
    source, binary = compiled(tmp_path, "deep", C_PROGRAM)
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")

        frames, incomplete = our_stack(pid)

        assert not incomplete, frames
        assert frames[0].how == "syscall" and frames[0].module.rsplit("/", 1)[-1].startswith("libc")
        app = [f for f in frames if f.module == str(binary)]
        assert [(f.function, f.file, f.line, f.how) for f in app[:4]] == [
            ("level3", str(source), line_of(C_PROGRAM, "LEVEL3"), "cfi"),
            ("level2", str(source), line_of(C_PROGRAM, "LEVEL2"), "cfi"),
            ("level1", str(source), line_of(C_PROGRAM, "LEVEL1"), "cfi"),
            ("main", str(source), line_of(C_PROGRAM, "MAIN"), "cfi")]
        assert frames[1] == app[0], "level3 is the caller of libc's read"
        assert names(frames)[-1] == "_start"
        agrees_with_gdb(frames, incomplete, pid, str(binary))


@needs_cc
def test_up_to_the_application_frame_only_when_no_more_is_shown(tmp_path):
    """every_frame=False (the text output without --stacks shows the application frame only):
    the same application frame and location, nothing past it, and no frame of libc looked up
    (its symbols and lines are not read: with libc's debug file installed they cost most)."""
    source, binary = compiled(tmp_path, "deep", C_PROGRAM)
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")
        elf.clear_cache()

        short, short_incomplete = unwind.process_stacks(pid, [pid], every_frame=False)[pid]
        libc = [m for m in elf._cache.values() if m is not None and "/libc" in m.path]
        libc_read = [m._symbols is not None for m in libc]  # before the full run reads them
        full, incomplete = our_stack(pid)

        app = application_index(full)
        assert app is not None and application_index(short) == app, short
        assert short[app] == full[app] and len(short) == app + 1 < len(full)
        assert [f.module for f in short[:app]] == [f.module for f in full[:app]]
        assert (full[app].function, full[app].line) == ("level3", line_of(C_PROGRAM, "LEVEL3"))
        assert short_incomplete is incomplete is False
        assert [f.function for f in short[:app]] == ["??"] * app  # libc's read, not looked up
        assert libc and not any(libc_read), "libc's symbols were read"


def _stripped_with_debug_file(tmp_path: Path, how: str) -> Tuple[Path, Path]:
    source, binary = compiled(tmp_path, "deep", C_PROGRAM, "-Wl,--build-id")
    debug = tmp_path / "deep.debug"
    build(["objcopy", "--only-keep-debug", str(binary), str(debug)])
    build(["strip", "--strip-all", str(binary)])
    if how == "debuglink":
        build(["objcopy", f"--add-gnu-debuglink={debug}", str(binary)])
    else:
        build_id = elf.build_id_of(str(binary))
        assert build_id
        target = tmp_path / "debugroot" / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
        target.parent.mkdir(parents=True)
        debug.rename(target)
    return source, binary


@needs_cc
@needs_gdb
@pytest.mark.skipif(shutil.which("objcopy") is None or shutil.which("strip") is None, reason="no binutils")
@pytest.mark.parametrize("how", ["debuglink", "build-id"])
def test_stripped_c_with_a_separate_debug_file(tmp_path, monkeypatch, how):
    source, binary = _stripped_with_debug_file(tmp_path, how)
    monkeypatch.setattr(elf, "DEBUG_ROOTS", [str(tmp_path / "debugroot")] + elf.DEBUG_ROOTS)
    out = subprocess.run(["readelf", "-S", str(binary)], stdout=subprocess.PIPE, text=True).stdout
    assert ".symtab" not in out and ".debug_line" not in out, "the binary is not stripped"
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")

        frames, incomplete = our_stack(pid)

        assert not incomplete, frames
        app = [(f.function, f.line) for f in frames if f.module == str(binary)][:4]
        assert app == [("level3", line_of(C_PROGRAM, "LEVEL3")), ("level2", line_of(C_PROGRAM, "LEVEL2")),
                       ("level1", line_of(C_PROGRAM, "LEVEL1")), ("main", line_of(C_PROGRAM, "MAIN"))]
        if how == "debuglink":  # gdb finds a debuglink beside the binary; not our build-id root
            agrees_with_gdb(frames, incomplete, pid, str(binary))


@needs_cc
def test_stripped_without_debug_info_still_unwinds_by_cfi(tmp_path):
    """No symbols, no lines: the frames are still found (.eh_frame survives strip), unnamed."""
    source, binary = _stripped_with_debug_file(tmp_path, "build-id")  # its debug file is not looked up
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")

        frames, incomplete = our_stack(pid)

        assert not incomplete
        app = [f for f in frames if f.module == str(binary)]
        assert len(app) == 5 and [f.how for f in app[:4]] == ["cfi"] * 4  # level3..main, _start
        assert {f.function for f in app} == {"??"} and {f.line for f in app} == {0}


@needs_cc
@needs_gdb
def test_c_without_unwind_tables_nor_frame_pointers_is_scanned(tmp_path):
    """No .eh_frame for the program's functions and no frame pointers: past libc's read (its
    own CFI) each caller is the first word above the stack pointer that follows a call."""
    source = tmp_path / "bare.c"
    source.write_text(C_PROGRAM)
    binary = tmp_path / "bare"
    build([CC, "-O2", "-g", "-fomit-frame-pointer", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
           "-o", str(binary), str(source)])
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")

        frames, incomplete = our_stack(pid)

        app = [(f.function, f.line, f.how) for f in frames if f.module == str(binary)][:4]
        assert app == [("level3", line_of(C_PROGRAM, "LEVEL3"), "cfi"),  # read's CFI finds it
                       ("level2", line_of(C_PROGRAM, "LEVEL2"), "scan"),
                       ("level1", line_of(C_PROGRAM, "LEVEL1"), "scan"),
                       ("main", line_of(C_PROGRAM, "MAIN"), "scan")], frames
        agrees_with_gdb(frames, incomplete, pid, str(binary))


ABBA = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both;

static void *first(void *arg) {
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(&b); /* FIRST */
    return arg;
}

static void *second(void *arg) {
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(&a); /* SECOND */
    return arg;
}

int main(int argc, char **argv) {
    pthread_t t1, t2;
    pthread_barrier_init(&both, NULL, 2);
    if (pthread_create(&t1, NULL, first, NULL) || pthread_create(&t2, NULL, second, NULL))
        return 2;
    if (write(atoi(argv[1]), "ready\n", 6) != 6)
        return 3;
    pthread_join(t1, NULL); /* JOIN */
    return 0;
}
"""


@needs_cc
def test_a_c_mutex_deadlock_names_each_threads_line(tmp_path, run_cli):
    """Two threads taking two pthread mutexes in opposite orders, -O2 without frame pointers:
    the deadlock's every thread is at its own line, unwound without stopping the process."""
    source, binary = compiled(tmp_path, "abba", ABBA, "-pthread")
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_until(lambda: len(threads_in(pid, ["futex"])) == 3, "the three threads block in futex")

        result = run_cli(str(pid), "--json")

        data = json.loads(result.out)
        assert result.code == 1 and data["deadlock"], result.out
        where = {}
        for thread in threads_of(data, pid):
            assert thread["stack_source"] == "unwind" and thread["stack_incomplete"] is False
            where[thread["location"]["function"]] = (thread["location"]["line"], thread["location"]["file"])
        assert where == {"main": (line_of(ABBA, "JOIN"), str(source)),
                         "first": (line_of(ABBA, "FIRST"), str(source)),
                         "second": (line_of(ABBA, "SECOND"), str(source))}
        assert data["root_cause"]["location"]["function"] in ("first", "second")


@needs_cc
def test_the_text_output_shows_the_same_lines_without_reading_libc(tmp_path, run_cli):
    """The text output (no --stacks) shows each thread's line and the root cause's as --json
    does, and its run reads no libc symbol (cli passes every_frame=False: nothing past the
    application frame is shown)."""
    source, binary = compiled(tmp_path, "abba", ABBA, "-pthread")
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_until(lambda: len(threads_in(pid, ["futex"])) == 3, "the three threads block in futex")
        elf.clear_cache()

        text = run_cli(str(pid), "--width", "400")
        libc = [m for m in elf._cache.values() if m is not None and "/libc" in m.path]
        libc_read = [m._symbols is not None for m in libc]
        data = json.loads(run_cli(str(pid), "--json").out)

        assert text.code == 1 and libc and not any(libc_read), text.out
        for thread in threads_of(data, pid):
            where = thread["location"]
            shown = f"at {os.path.basename(where['file'])}:{where['line']} in {where['function']}: "
            assert shown in text.out, text.out
        cause = data["root_cause"]["location"]
        assert cause["function"] in ("first", "second")
        assert f"{os.path.basename(cause['file'])}:{cause['line']} in {cause['function']}" in text.out.split("root cause:")[1]


# --- C++: std::mutex::lock in a namespaced method ----------------------------------------


@needs_cxx
@needs_gdb
def test_cxx_blocked_in_std_mutex_lock(tmp_path, run_cli):
    source = tmp_path / "till.cpp"
    source.write_text(CXX_PROGRAM)
    binary = tmp_path / "till"
    build([CXX, "-O0", "-g", "-fomit-frame-pointer", "-pthread", "-o", str(binary), str(source)])
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "futex")

        frames, incomplete = our_stack(pid)
        data = json.loads(run_cli(str(pid), "--json").out)

        assert not incomplete, frames
        functions = names(frames)
        lock = functions.index("std::mutex::lock()")
        assert functions[lock + 1] == "shop::Till::settle(int)", functions
        assert frames[lock + 1].line == line_of(CXX_PROGRAM, "RELOCK")
        assert functions[lock + 2] == "main"
        main = thread_of(data, pid, pid)
        assert main["stack_source"] == "unwind" and main["stack_incomplete"] is False
        assert main["location"] == {"file": str(source), "line": line_of(CXX_PROGRAM, "RELOCK"),
                                    "function": "shop::Till::settle(int)", "code": "m_.lock(); /* RELOCK */"}
        agrees_with_gdb(frames, incomplete, pid, str(binary))


# --- Rust: reading stdin ------------------------------------------------------------------


@needs_rustc
@needs_gdb
def test_rust_reading_stdin(tmp_path):
    source = tmp_path / "waiter.rs"
    source.write_text(RUST_PROGRAM)
    binary = tmp_path / "waiter"
    build([RUSTC, "-g", "-C", "opt-level=0", "-o", str(binary), str(source)])
    r, w = os.pipe()  # its stdin: never written
    with Processes() as procs:
        try:
            proc = procs.spawn([str(binary)], stdin=r, stdout=subprocess.PIPE)
        finally:
            os.close(r)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            wait_blocked(proc.pid, "read")

            frames, incomplete = our_stack(proc.pid)

            assert not incomplete, frames
            functions = names(frames)
            at = functions.index("waiter::wait_for_line")
            assert frames[at].line == line_of(RUST_PROGRAM, "READLINE")
            assert functions[at + 1] == "waiter::main" and frames[at + 1].line == line_of(RUST_PROGRAM, "MAIN")
            # std's names are v0-mangled (<std::io::stdio::Stdin>::read_line), the program's legacy
            assert any(re.match(r"^<?std::io::stdio::Stdin>?::read_line$", f) for f in functions[:at]), functions
            assert application_index(frames) == at
            agrees_with_gdb(frames, incomplete, proc.pid, str(binary))
        finally:
            os.close(w)


# --- Python: a C extension's frames above the interpreter ---------------------------------

EXTENSION_C = r"""
#include <unistd.h>

__attribute__((noinline)) int wait_in_c(int fd) {
    char c;
    int n = (int)read(fd, &c, 1); /* CREAD */
    return n + 1;
}
"""

PY_CALLER = """\
import ctypes, os, sys

lib = ctypes.CDLL(sys.argv[1])
r, w = os.pipe()
os.write(int(sys.argv[2]), b"ready\\n")
lib.wait_in_c(r)  # PYCALL
"""


@needs_cc
def test_a_python_call_into_c_shows_the_c_frames_above_it(tmp_path, run_cli):
    from waitchain.stacks import python as py_stacks
    if py_stacks.find_py_spy() is None:
        pytest.skip("py-spy is not installed")
    source = tmp_path / "waitlib.c"
    source.write_text(EXTENSION_C)
    library = tmp_path / "libwait.so"
    build([CC, "-O2", "-g", "-fomit-frame-pointer", "-shared", "-fPIC", "-o", str(library), str(source)])
    script = tmp_path / "caller.py"
    script.write_text(PY_CALLER)
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [sys.executable, str(script), str(library)])
        wait_blocked(pid, "read")

        data = json.loads(run_cli(str(pid), "--json").out)

        main = thread_of(data, pid, pid)
        assert main["stack_source"] == "py-spy", data["notes"]
        assert main["location"]["line"] == line_of(PY_CALLER, "PYCALL")  # still the Python line
        native = main["native_stack"]
        assert native[0]["how"] == "syscall"
        at = [f["function"] for f in native].index("wait_in_c")
        assert (native[at]["file"], native[at]["line"], native[at]["module"]) == \
            (str(source), line_of(EXTENSION_C, "CREAD"), str(library))


@needs_cc
def test_a_python_wait_with_no_extension_frames_gets_no_native_stack(tmp_path, run_cli):
    from waitchain.stacks import python as py_stacks
    if py_stacks.find_py_spy() is None:
        pytest.skip("py-spy is not installed")
    script = tmp_path / "reader.py"
    script.write_text("import os, sys\nr, w = os.pipe()\nos.write(int(sys.argv[1]), b'ready\\n')\nos.read(r, 1)\n")
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [sys.executable, str(script)])
        wait_blocked(pid, "read")

        data = json.loads(run_cli(str(pid), "--json").out)

        main = thread_of(data, pid, pid)
        assert main["stack_source"] == "py-spy" and main["location"]["line"] == 4
        assert main["native_stack"] is None  # libc's read under os.read: nothing to add


# --- never ptrace -------------------------------------------------------------------------


def _status(pid: int) -> Dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)


@needs_cc
@needs_strace
def test_unwinding_never_ptraces_nor_wakes_the_target(tmp_path):
    source, binary = compiled(tmp_path, "deep", C_PROGRAM)
    with Processes() as procs:
        pid = start_with_ready_fd(procs, [str(binary)])
        wait_blocked(pid, "read")
        before = _status(pid)
        log = tmp_path / "strace.log"

        done = subprocess.run(["strace", "-f", "-e", "trace=ptrace", "-o", str(log), sys.executable,
                               "-m", "waitchain", str(pid), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        after = _status(pid)

        data = json.loads(done.stdout)
        main = thread_of(data, pid, pid)
        assert main["stack_source"] == "unwind", data["notes"]
        assert main["location"]["function"] == "level3"
        assert [f["how"] for f in main["stack"][:2]] == ["syscall", "cfi"]
        assert not re.search(r"ptrace\(PTRACE_(?:ATTACH|SEIZE|INTERRUPT)\b", log.read_text()), log.read_text()
        assert after["TracerPid"].strip() == "0"
        assert after["voluntary_ctxt_switches"] == before["voluntary_ctxt_switches"], "the target was woken"
        assert after["nonvoluntary_ctxt_switches"] == before["nonvoluntary_ctxt_switches"]


# --- the cache ----------------------------------------------------------------------------


@needs_cc
def test_files_are_parsed_once_and_a_warm_thread_is_fast(tmp_path):
    source, binary = compiled(tmp_path, "deep", C_PROGRAM)
    with Processes() as procs:
        pids = [start_with_ready_fd(procs, [str(binary)]) for _ in range(2)]
        for pid in pids:
            wait_blocked(pid, "read")
        first = our_stack(pids[0])
        loaded = dict(elf._cache)

        second = our_stack(pids[1])

        assert [(f.function, f.line) for f in first[0]] == [(f.function, f.line) for f in second[0]]
        modules = {id(m) for m in elf._cache.values() if m is not None}
        assert modules == {id(m) for m in loaded.values() if m is not None}, "a file was parsed again"
        with MemoryReader() as reader:  # as in a run: the snapshot's reader is open
            best = min(_timed(lambda: unwind.process_stacks(pids[1], [pids[1]], reader.read_partial),
                              time.perf_counter) for _ in range(5))
        assert best < 0.03, f"{best * 1000:.1f} ms for one warm thread"


def _timed(func: Any, clock: Any) -> float:
    start = clock()
    func()
    return clock() - start
