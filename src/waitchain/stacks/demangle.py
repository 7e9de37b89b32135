"""Readable names of native symbols: C++ (Itanium ABI) through the C++ runtime's own
__cxa_demangle (in-process, no tool to start), Rust legacy names (_ZN...17h<hash>E) the same
way with Rust's escapes undone and the hash dropped, Rust v0 names (_R...) through `c++filt`
under a deadline when it is installed. A name that cannot be demangled is shown as it is."""

from __future__ import annotations

import ctypes
import re
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

TOOL_SECONDS = 2.0
# Patterns as text, compiled by re on first use (re keeps them): only Rust names need them,
# and compiling at import cost a run ~0.3 ms.
RUST_HASH = r"::h[0-9a-f]{16}$"
RUST_ESCAPES = {"$SP$": "@", "$BP$": "*", "$RF$": "&", "$LT$": "<", "$GT$": ">", "$LP$": "(",
                "$RP$": ")", "$C$": ","}
RUST_UNICODE = r"\$u([0-9a-f]{1,6})\$"
RUST_CRATE_HASH = r"\[[0-9a-f]{1,16}\]"  # v0: std[e28293b1aa0f68bd]::io → std::io

_lock = threading.Lock()
_cache: Dict[str, str] = {}
_runtime: Optional[Any] = None
_runtime_tried = False


def demangle(name: str) -> str:
    """The readable form of a symbol name (the name itself when it is not mangled)."""
    if not name.startswith(("_Z", "_R", "__Z")):
        return name
    with _lock:
        if name in _cache:
            return _cache[name]
    if name.startswith("_R"):
        text = _tool(name) or name
    else:
        text = _itanium(name)
        text = _rust_legacy(text) if text and _is_rust_legacy(name, text) else text
        text = text or name
    with _lock:
        if len(_cache) > 100_000:
            _cache.clear()
        _cache[name] = text
    return text


def _is_rust_legacy(name: str, text: str) -> bool:
    return bool(re.search(RUST_HASH, text)) or "$LT$" in text or "$u" in text


def _rust_legacy(text: str) -> str:
    """std::io::stdio::Stdin::read_line::h0123456789abcdef → std::io::stdio::Stdin::read_line,
    with $LT$..$GT$ → <..>, .. → ::."""
    text = re.sub(RUST_HASH, "", text).replace("::_$", "::$")  # _$u7b$$u7b$closure → {{closure
    for escape, char in RUST_ESCAPES.items():
        text = text.replace(escape, char)
    text = re.sub(RUST_UNICODE, lambda m: chr(int(m.group(1), 16)), text)
    return text.replace("..", "::")


def _itanium(name: str) -> str:
    """__cxa_demangle's answer, "" when it has none (or no C++ runtime can be loaded)."""
    runtime = _load_runtime()
    if runtime is None:
        return ""
    demangler, free = runtime
    status = ctypes.c_int(0)
    out = demangler(name.encode("utf-8", "replace"), None, None, ctypes.byref(status))
    if not out:
        return ""
    try:
        return ctypes.string_at(out).decode("utf-8", "replace") if status.value == 0 else ""
    finally:
        free(out)


def _load_runtime() -> Optional[Any]:
    global _runtime, _runtime_tried
    with _lock:
        if not _runtime_tried:
            _runtime_tried = True
            for name in ("libstdc++.so.6", _find_library, "libc++abi.so.1"):
                lib = name() if callable(name) else name
                if not lib:
                    continue
                try:
                    cxx = ctypes.CDLL(lib)
                    demangler = cxx.__cxa_demangle
                except (OSError, AttributeError):
                    continue
                demangler.restype = ctypes.c_void_p
                demangler.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.POINTER(ctypes.c_int)]
                free = ctypes.CDLL(None).free
                free.argtypes = [ctypes.c_void_p]
                free.restype = None
                _runtime = (demangler, free)
                break
    return _runtime


def _find_library() -> Optional[str]:
    """libstdc++ by another soname, asked only when libstdc++.so.6 is not there: ctypes.util
    costs ~6 ms to import (tempfile, shutil), which every native stack paid."""
    import ctypes.util

    return ctypes.util.find_library("stdc++")


def _tool(name: str) -> str:
    """c++filt's answer (binutils ≥ 2.36 knows Rust v0), "" without one or in time."""
    import shutil  # only to run c++filt: shutil and subprocess cost ~5 ms to import
    import subprocess

    path = shutil.which("c++filt")
    if path is None:
        return ""
    try:
        done = subprocess.run([path], input=name + "\n", capture_output=True, text=True,
                              timeout=TOOL_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = done.stdout.strip()
    return "" if not text or text == name else re.sub(RUST_CRATE_HASH, "", re.sub(RUST_HASH, "", text))
