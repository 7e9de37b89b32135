"""Python-level waits: a thread blocked in futex is inside lock.acquire, queue.get, Thread.join,
Event.wait, Condition.wait, Future.result… The library frame the application called names it."""

from __future__ import annotations

import re
from typing import Optional, Sequence

from ..model import Frame

# Where a module's dotted name starts in its path: installed packages first (they sit
# inside lib/pythonX.Y/ too), then the standard library.
MODULE_ROOTS = [re.compile(r"/(?:site|dist)-packages/(?P<rel>.+?)\.py[cwo]?$"),
                re.compile(r"(?:/lib(?:64)?/python\d(?:\.\d+)?[a-z]*/|/python\d+\.zip/|"
                           r"/lib-python/[\d.]*/?)(?P<rel>.+?)\.py[cwo]?$")]
# Private modules whose names people know by their public home.
PUBLIC = {"Queue": "queue", "concurrent.futures._base": "concurrent.futures",
          "multiprocessing.synchronize": "multiprocessing", "asyncio.base_events": "asyncio"}
# Python < 3.11 frames carry the bare function name; these are unambiguous without the class.
CLASS_OF = {("threading", "join"): "Thread", ("threading", "wait_for"): "Condition",
            ("queue", "get"): "Queue", ("queue", "put"): "Queue",
            ("concurrent.futures", "result"): "Future", ("concurrent.futures", "exception"): "Future"}


def module_name(path: str) -> str:
    """`/usr/lib/python3.11/concurrent/futures/_base.py` → `concurrent.futures._base`."""
    match = next((m for m in (r.search(path) for r in MODULE_ROOTS) if m), None)
    rel = match.group("rel") if match else path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    parts = [p for p in rel.split("/") if p]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_wait(frames: Sequence[Frame], app: Optional[int], code: str,
                self_type: str = "") -> str:
    """"waits in threading.Thread.join", or "" when the wait is not recognisable.
    `self_type` is the class of `self` in the entry library frame, when py-spy showed it."""
    if app == 0:
        return _c_call(code)
    if not frames:
        return ""
    entry = 0 if app is None else app - 1  # no application frame: the innermost one
    module = module_name(frames[entry].file)
    module = PUBLIC.get(module, module)
    return f"waits in {module}.{_qualname(frames, entry, module, self_type)}"


def _qualname(frames: Sequence[Frame], entry: int, module: str, self_type: str) -> str:
    name = frames[entry].function
    if "." in name or name.startswith("<"):
        return name  # 3.11+ gives Class.method
    if self_type and self_type != "instance":  # "instance": a Python 2 old-style object
        return f"{self_type[1:] if module == 'threading' else self_type}.{name}" \
            if self_type.startswith("_") else f"{self_type}.{name}"
    if (module, name) == ("threading", "wait"):
        inner = frames[entry - 1].function if entry > 0 else ""
        return {"wait": "Event.wait", "_wait": "Barrier.wait"}.get(inner, "Condition.wait")
    cls = CLASS_OF.get((module, name))
    return f"{cls}.{name}" if cls else name


LOCK_WAITS = ("waits in lock.acquire", "waits for a lock (with statement)")


def _c_call(code: str) -> str:
    """No library frame: the application's own line called into C (a lock's acquire)."""
    if re.search(r"\.acquire\s*\(", code):
        return "waits in lock.acquire"
    if re.match(r"(?:async\s+)?with\b", code):
        return "waits for a lock (with statement)"
    return ""
