"""The application-frame rule and the source line of that frame.

From the innermost frame outwards, frames in the language's standard library, in installed
packages (site-packages, dist-packages) and in the interpreter's own shims (frozen importlib,
runpy) are skipped; the first frame left is the application's: the line that issued the call.
For native stacks the same walk skips the C library, the dynamic loader and the C++ runtime."""

from __future__ import annotations

import functools
import os
import re
import stat

from ..model import Frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence

# The patterns of Python paths are compiled by re on first use (and kept there): a run whose
# stacks are native only needs none of them (compiling them at import cost ~2 ms).
# Installed third-party code, in a venv, a distribution or a user site.
PACKAGES = r"/(?:site|dist)-packages/"
# The standard library: <prefix>/lib[64]/pythonX.Y[t]/, a zipped stdlib, PyPy's lib-python.
STDLIB = r"/lib(?:64)?/python\d(?:\.\d+)?[a-z]*/|/python\d+\.zip/|/lib-python/|/lib_pypy/"
# Code the interpreter runs on its own behalf: frozen importlib and runpy (3.11+), py-spy shims.
SHIM = r"^<(?:frozen [^>]*|shim)>$"
# Native system libraries: a blocking call goes through them on its way to the kernel.
SYSTEM_OBJECT = re.compile(r"(?:^|/)(?:libc|ld-linux[\w.-]*|ld-musl[\w.-]*|libpthread|libdl|librt|"
                           r"libm|libstdc\+\+|libgcc_s|libc\+\+|libc\+\+abi)(?:[.-][\w.-]*)?$")
# Source paths of glibc's own build tree, when it has debug info.
SYSTEM_SOURCE = re.compile(r"(?:^|/)\.\./sysdeps/|^(?:\.\.?/)?(?:sysdeps|nptl|csu)/")
# Native functions of the language runtimes compiled into the program itself: Rust's std,
# core and alloc, the C++ standard library's templates and gthread shims, the C start code.
SYSTEM_FUNCTION = re.compile(r"^<?(?:std|core|alloc|__gnu_cxx|__cxxabiv1)::|^(?:__gthread_|__rust_)|"
                             r"^(?:_start|__libc_start_main|__libc_start_call_main|start_thread|clone3?)$")
MAX_SOURCE = 8 << 20  # a source file larger than this is not read


@functools.lru_cache(maxsize=4096)
def is_library(path: str) -> bool:
    """Python code that is not the application's: stdlib, installed packages, shims (cached:
    the same few files, frame after frame of every thread)."""
    return bool(re.match(SHIM, path) or re.search(PACKAGES, path)) or in_stdlib(path)


def in_stdlib(path: str) -> bool:
    """A file of a Python standard library (its native modules in lib-dynload too)."""
    return bool(re.search(STDLIB, path))


def is_system(frame: Frame) -> bool:
    """A native frame in libc, ld.so or the C++ runtime, or of a runtime's own functions
    (Rust's std, C++ std templates) compiled into the program."""
    return bool(SYSTEM_OBJECT.search(frame.module) or SYSTEM_SOURCE.search(frame.file)
                or SYSTEM_FUNCTION.search(frame.function))


def application_index(frames: Sequence[Frame]) -> Optional[int]:
    """Index of the first application frame, innermost first; None when every frame is
    library code (e.g. a worker thread of a pool waiting for work)."""
    for i, frame in enumerate(frames):
        skip = is_system(frame) if frame.native else is_library(frame.file)
        if not skip and frame.function != "??":
            return i
    return None


def source_line(pid: int, path: str, line: int, proc: str = "/proc") -> str:
    """Line `line` of `path` as the target process sees its file system (/proc/PID/root,
    or /proc/PID/cwd for a relative path), stripped; "" when it cannot be read.
    Only regular files are opened, and without blocking: a FIFO or a device is never opened."""
    if line <= 0:
        return ""
    lines = source_text(pid, path, proc).splitlines()
    return lines[line - 1].strip() if line <= len(lines) else ""


def source_text(pid: int, path: str, proc: str = "/proc") -> str:
    """The whole of `path` (up to MAX_SOURCE bytes) as source_line reads it, or ""."""
    if not path or path.startswith("<"):
        return ""
    base = "root" if path.startswith("/") else "cwd"
    full = os.path.join(proc, str(pid), base, path.lstrip("/"))
    try:
        if not stat.S_ISREG(os.stat(full).st_mode):
            return ""
        return _read_regular(full).decode("utf-8", "replace")
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return ""


def _read_regular(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, MAX_SOURCE)
    finally:
        os.close(fd)
