"""Python-level waits: a thread blocked in futex is inside lock.acquire, queue.get, Thread.join,
Event.wait, Condition.wait, Future.result… The library frame the application called names it."""

from __future__ import annotations

import functools
import re

from ..model import Frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence

# Where a module's dotted name starts in its path: installed packages first (they sit
# inside lib/pythonX.Y/ too), then the standard library.
# (Compiled by re on first use: Python frames only.)
MODULE_ROOTS = [r"/(?:site|dist)-packages/(?P<rel>.+?)\.py[cwo]?$",
                r"(?:/lib(?:64)?/python\d(?:\.\d+)?[a-z]*/|/python\d+\.zip/|/lib-python/[\d.]*/?)(?P<rel>.+?)\.py[cwo]?$"]
# Private modules whose names people know by their public home.
PUBLIC = {"Queue": "queue", "concurrent.futures._base": "concurrent.futures",
          "multiprocessing.synchronize": "multiprocessing", "asyncio.base_events": "asyncio"}
# Python < 3.11 frames carry the bare function name; these are unambiguous without the class.
CLASS_OF = {("threading", "join"): "Thread", ("threading", "wait_for"): "Condition",
            ("queue", "get"): "Queue", ("queue", "put"): "Queue",
            ("concurrent.futures", "result"): "Future", ("concurrent.futures", "exception"): "Future"}


@functools.lru_cache(maxsize=4096)
def module_name(path: str) -> str:
    """`/usr/lib/python3.11/concurrent/futures/_base.py` → `concurrent.futures._base`.
    Cached: the threads of a process run the same few files, frame after frame."""
    match = next((m for m in (re.search(r, path) for r in MODULE_ROOTS) if m), None)
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
    entry = entry_index(frames, app)
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


def entry_index(frames: Sequence[Frame], app: Optional[int]) -> int:
    """The library frame the application called; with no application frame, a library frame
    known to name the wait (a multiprocessing child joining its queue's feeder at exit), else
    the innermost one."""
    if app is not None:
        return app - 1
    known = [i for i, f in enumerate(frames) if (module_name(f.file), _bare(f.function)) in ENTRIES]
    return known[0] if known else 0


def library_wait(frames: Sequence[Frame]) -> str:
    """A library's wait the frames show: see model.Stack.library_wait."""
    names = {(module_name(f.file), _bare(f.function)) for f in frames}
    if names & MP_QUEUE:
        return "multiprocessing-queue"
    if names & MP_JOIN:
        return "multiprocessing-join"
    return ""


def _bare(function: str) -> str:
    return function.rsplit(".", 1)[-1]


ENTRIES = {("multiprocessing.queues", "_finalize_join")}
MP_QUEUE = {("multiprocessing.queues", "put"), ("multiprocessing.queues", "_feed"),
            ("multiprocessing.queues", "_finalize_join")}
MP_JOIN = {("multiprocessing.process", "join"), ("multiprocessing.popen_fork", "wait"),
           ("multiprocessing.popen_spawn_posix", "wait"), ("multiprocessing.popen_forkserver", "wait")}


def fork_boundary(frames: Sequence[Frame]) -> int:
    """How many frames are the thread's own: in a child forked by multiprocessing, the frames
    outside BaseProcess._bootstrap were copied from its parent (the parent's p.start() line)."""
    for i, frame in enumerate(frames):
        if module_name(frame.file) == "multiprocessing.process" and _bare(frame.function) == "_bootstrap":
            return i + 1
    return len(frames)


LOCK_WAITS = ("waits in lock.acquire", "waits for a lock (with statement)")


def _c_call(code: str) -> str:
    """No library frame: the application's own line called into C (a lock's acquire)."""
    if re.search(r"\.acquire\s*\(", code):
        return "waits in lock.acquire"
    if re.match(r"(?:async\s+)?with\b", code):
        return "waits for a lock (with statement)"
    return ""
