"""User-space stacks of the threads that matter: every blocked thread of every process on a
chain, and the root cause's thread always. Python through py-spy's non-blocking dump; native
unwound without stopping it (stacks/unwind.py), or through gdb/eu-stack with --native.
Whatever cannot be read becomes a note, never an error."""

from __future__ import annotations

import functools
import gc
import mmap
import os
import re
import stat
import threading
import time

from ..errors import AccessDenied, WaitchainError
from ..model import Diagnosis, Frame, Location, LockHold, Stack
from ..procfs import memory
from ..procfs.maps import read_maps
from ..procfs.process import read_stat
from ..procfs.reader import ProcFS
from ..procfs.reader import with_deadline as reader_deadline
from ..records import field, record, replace
from . import python, rlock
from .extensions import extension_mapped
from .frames import application_index
from .labels import LOCK_WAITS, entry_index, fork_boundary, library_wait, module_name, python_wait
from .python import PyThread, StackError
from .sources import Sources

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where they run: the unwinder, the network
    from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

    from .debuginfod import Client

    T = TypeVar("T")


PARALLEL = 8  # helpers running at once
SOURCE_SECONDS = 1.0  # to read an RLock's owner from its memory
PYTHON_EXE = re.compile(r"^(?:python|pypy)[\d.]*[a-z]*$")
# In the read-only data of every CPython (2.7 to 3.13), stripped or not, linked in or a library:
# an executable without it, named otherwise and mapping no libpython, has no interpreter.
PYTHON_MARK = b"Fatal Python error"
MARK_SCAN_MAX = 256 << 20  # an executable larger than this is not searched (py-spy is asked)
THREAD_ENTRY = {"run", "_bootstrap", "_bootstrap_inner", "__bootstrap", "__bootstrap_inner"}
INVASIVE = "invasive: it stops the process briefly"
# Kinds of trouble (_Result.kind) → one note naming every process it cost a stack, in this order.
GROUP_NOTES = {
    "denied": "no stack for {whos}: permission denied (run as root)",
    "no-py-spy": "py-spy is not installed (pip install py-spy): no Python stack for {whos}",
    "unmatched": "some Python threads of {whos} could not be matched to their kernel threads",
    "timeout": "no stack for {whos}: no answer within {seconds:g} s",
    "mm-locked": "no stack for {whos}: its memory could not be read (its memory map lock is held)",
    "native-available": "native stack not read for {whos}: {how}",
    "native": "--native: {tool} stopped {whos} briefly to read its native stack",
    "unwound-incomplete": "native stack of {whos} read in part (no unwind rule past its last frame): {how}",
    "no-native-tool": "--native: neither gdb nor eu-stack is installed: no native stack for {whos}",
}
TOOL_NOTES = ("native", "native-available", "unwound-incomplete")  # the notes naming gdb or eu-stack


@record
class _Result:
    """What one process gave: stacks by TID, or why not (`kind` groups the notes)."""

    kind: str  # python, native, no-py-spy, py-spy-failed, unmatched, native-available,
    #            no-native-tool, native-failed, denied, skipped, failed, timeout, mm-locked
    stacks: Dict[int, Stack] = field(default_factory=dict)
    reason: str = ""
    names: Dict[int, str] = field(default_factory=dict)  # TID → the thread's own name (py-spy)


def attach_stacks(diag: Diagnosis, native: bool = False, debuginfod: bool = False,
                  every_frame: bool = True) -> None:
    """Fill diag.stacks and diag.root_cause.location for the blocked threads on the chains.
    debuginfod: fetch missing debug files from the servers in DEBUGINFOD_URLS (the network).
    every_frame=False when the output shows no whole stack (text without --stacks: the
    application frame, its label, whether a stack was read): a native stack is then
    symbolised only up to its application frame, and the native frames above a Python
    stack (shown with whole stacks only) are not unwound."""
    wanted = wanted_threads(diag)
    if not wanted:
        return
    collecting = gc.isenabled()
    gc.disable()  # thousands of threads' dumps make objects by the 100,000, next to none in a
    try:  # cycle: collections walking the whole heap again and again were half the time
        _attach_stacks(diag, wanted, native, debuginfod, every_frame)
    finally:
        if collecting:
            gc.enable()


def _attach_stacks(diag: Diagnosis, wanted: Dict[int, List[int]], native: bool, debuginfod: bool,
                   every_frame: bool) -> None:
    py_spy = python.find_py_spy()
    tool = _find_tool() if native else None  # which(): shutil, ~3 ms to import
    fetch: Optional[Client] = None
    if debuginfod:
        from .debuginfod import Client  # urllib and http: only with --debuginfod

        fetch = Client.from_env()
    sources = Sources()  # each source file read once in this run, for every thread of every process
    jobs = {pid: _job(diag, pid, tids, py_spy, tool, native, fetch, sources, every_frame)
            for pid, tids in wanted.items()}
    seconds = 2 * python.TIMEOUT + (_native_seconds() + 3 if native else 0) + 2
    seconds += fetch.total + fetch.request if fetch is not None else 0
    results = run_parallel(jobs, seconds)
    for pid in wanted:
        result = results.get(pid, _Result("timeout"))
        for tid, stack in result.stacks.items():
            diag.stacks[(pid, tid)] = stack
        for tid, thread_name in result.names.items():
            diag.thread_names[(pid, tid)] = thread_name
    if not native and any(r.kind in TOOL_NOTES for r in results.values()):
        tool = _find_tool()  # the notes say how --native would read the stack
    diag.notes.extend(notes(diag, wanted, results, tool, seconds))
    if debuginfod and fetch is None:
        diag.notes.append("--debuginfod: DEBUGINFOD_URLS names no server: no debug info fetched")
    diag.notes.extend(fetch.notes if fetch is not None else [])
    _locate_root_cause(diag)


def wanted_threads(diag: Diagnosis) -> Dict[int, List[int]]:
    """pid → TIDs: blocked threads (S, D) of processes on chains, ends, the root cause."""
    wanted: Dict[int, Set[int]] = {}
    for chain in diag.chains:
        for pid in chain.path:
            blocked = {t.tid for t in diag.tasks.get(pid, []) if t.state in ("S", "D")}
            wanted.setdefault(pid, set()).update(blocked)
        if chain.end.pid is not None and chain.end.tid is not None:
            wanted.setdefault(chain.end.pid, set()).add(chain.end.tid)
    cause = diag.root_cause
    if cause is not None:
        wanted.setdefault(cause.pid, set()).add(cause.tid)
    return {pid: sorted(tids) for pid, tids in wanted.items() if tids}


def _locate_root_cause(diag: Diagnosis) -> None:
    cause = diag.root_cause
    stack = diag.stacks.get((cause.pid, cause.tid)) if cause else None
    if cause is not None and stack is not None and stack.location is not None:
        diag.root_cause = replace(cause, location=stack.location)


# --- one process ------------------------------------------------------------------------


def _job(diag: Diagnosis, pid: int, tids: List[int], py_spy: Optional[str],
         tool: Optional[Tuple[str, str]], native: bool, fetch: Optional[Client] = None,
         sources: Optional[Sources] = None, every_frame: bool = True) -> Callable[[], _Result]:
    return lambda: stacks_of(diag, pid, tids, py_spy, tool, native, fetch, sources, every_frame)


def stacks_of(diag: Diagnosis, pid: int, tids: List[int], py_spy: Optional[str],
              tool: Optional[Tuple[str, str]], native: bool, fetch: Optional[Client] = None,
              sources: Optional[Sources] = None, every_frame: bool = True) -> _Result:
    """Python stacks if py-spy reads the process, else native ones when asked; nothing if
    the pid now names another process than the one scanned. `fetch`: --debuginfod's client;
    `sources`: the run's source files (shared by the processes of one run); every_frame:
    see attach_stacks."""
    sources = sources if sources is not None else Sources()
    result = _stacks_of(diag, pid, tids, py_spy, tool, native, fetch, sources, every_frame)
    return result if _same_process(diag, pid) else _Result("skipped")


def _stacks_of(diag: Diagnosis, pid: int, tids: List[int], py_spy: Optional[str],
               tool: Optional[Tuple[str, str]], native: bool, fetch: Optional[Client],
               sources: Sources, every_frame: bool = True) -> _Result:
    if not _same_process(diag, pid):
        return _Result("skipped")
    exe = _exe(pid)
    if exe is None:
        return _Result("skipped")  # a kernel thread, or gone
    if not exe:
        return _Result("denied")
    if memory.memory_stuck(pid):  # py-spy would hang in process_vm_readv, unkillable
        return _Result("mm-locked")
    if surely_not_python(pid, exe):  # py-spy would only fail to find a Python in it
        return _try_native(diag, pid, tids, tool, native, fetch, sources, every_frame)
    result, reason = _try_python(diag, pid, tids, py_spy, fetch, sources, every_frame)
    if result is not None:
        return result
    if is_python(pid, exe):
        return _Result("py-spy-failed" if py_spy else "no-py-spy", reason=reason)
    return _try_native(diag, pid, tids, tool, native, fetch, sources, every_frame)


def _try_python(diag: Diagnosis, pid: int, tids: List[int], py_spy: Optional[str],
                fetch: Optional[Client], sources: Sources, every_frame: bool = True) -> Tuple[Optional[_Result], str]:
    """Python stacks through py-spy, or (None, why not)."""
    if py_spy is None:
        return None, ""
    local = diag.ns_tids.get(pid, {})  # py-spy and the target's memory use its own ids
    inside = {host: own for own, host in local.items()}
    try:
        threads = python.dump(py_spy, pid, {inside.get(t, t) for t in _all_tids(diag, pid)})
    except StackError as exc:
        return None, str(exc)
    if local:
        threads = [python.with_tid(t, local.get(t.tid) if t.tid is not None else None) for t in threads]
    result = _python(diag, pid, tids, threads, sources)
    return (_with_native_frames(pid, result, fetch) if every_frame else result), ""


def _try_native(diag: Diagnosis, pid: int, tids: List[int], tool: Optional[Tuple[str, str]],
                native: bool, fetch: Optional[Client], sources: Sources, every_frame: bool = True) -> _Result:
    """Native stacks: unwound from /proc and memory without stopping the process
    (stacks/unwind.py); through gdb or eu-stack only when asked for (--native)."""
    if not native:
        return _unwound(pid, tids, fetch, sources, every_frame) or _Result("native-available")
    if tool is None:
        return _Result("no-native-tool")
    try:
        from .native import native_stacks

        return _native_result(pid, tids, native_stacks(tool, pid, _state(diag, pid)), tool[0], sources)
    except StackError as exc:
        return _Result("native-failed", reason=str(exc))


# stacks/native.py (gdb, eu-stack) is imported only for --native or the notes that name
# them: a run that unwinds by itself needs neither it nor its output patterns (~1.5 ms).


def _find_tool() -> Optional[Tuple[str, str]]:
    from .native import find_tool

    return find_tool()


def _native_seconds() -> float:
    from .native import TIMEOUT

    return TIMEOUT


def _same_process(diag: Diagnosis, pid: int) -> bool:
    """(pid, starttime) is a process's identity: a pid may have been reused since the scan."""
    proc = diag.processes.get(pid)
    try:
        return proc is None or read_stat(ProcFS(), pid).starttime == proc.starttime
    except WaitchainError:
        return False


def _exe(pid: int) -> Optional[str]:
    try:
        return ProcFS().readlink(pid, "exe")
    except AccessDenied:
        return ""
    except WaitchainError:
        return None


def is_python(pid: int, exe: str) -> bool:
    """The executable is a python/pypy, or libpython is mapped (an embedding program)."""
    if PYTHON_EXE.match(exe.rsplit("/", 1)[-1].replace(" (deleted)", "")):
        return True
    try:
        return "/libpython" in read_maps(ProcFS(), pid)
    except WaitchainError:
        return False


def surely_not_python(pid: int, exe: str) -> bool:
    """A cheap proof that py-spy would find no Python interpreter in pid (so it is not run):
    not named like one, no libpython mapped, and the executable lacks PYTHON_MARK (a program
    with the interpreter linked in, under its own name, has it). False when not sure."""
    if is_python(pid, exe):
        return False
    try:
        fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MARK_SCAN_MAX:
            return False
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as data:
            return data.find(PYTHON_MARK) < 0
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)


def _all_tids(diag: Diagnosis, pid: int) -> Set[int]:
    """Every thread of pid now (threads may have started since the snapshot)."""
    try:
        return {int(t) for t in ProcFS().listdir(pid, "task")}
    except (WaitchainError, ValueError):
        return {t.tid for t in diag.tasks.get(pid, [])}


def _state(diag: Diagnosis, pid: int) -> str:
    proc = diag.processes.get(pid)
    return proc.state if proc is not None else ""


def _python(diag: Diagnosis, pid: int, tids: List[int], threads: List[PyThread], sources: Sources) -> _Result:
    proc = _Process(diag, pid, threads, sources)
    sources.prefetch(pid, dict.fromkeys(f.file for f in map(proc.application_frame, tids) if f is not None))
    stacks = {tid: python_stack(proc, tid) for tid in tids if tid in proc.by_tid}
    lock_holders(proc, stacks)
    names = {tid: t.name for tid, t in proc.by_tid.items() if t.name}
    unmatched = [t for t in threads if t.tid is None]
    if unmatched and len(stacks) < len(tids):
        return _Result("unmatched", stacks, names=names)
    return _Result("python", stacks, names=names)


class _Process:
    """One process's Python threads (one py-spy dump) while their stacks are made: what a
    thread's stack looks up in the others (its kernel task, the thread it joins, an RLock's
    owner) is indexed once, not searched once per thread; `sources`: the run's source files."""

    def __init__(self, diag: Diagnosis, pid: int, threads: Sequence[PyThread], sources: Sources) -> None:
        self.diag = diag
        self.pid = pid
        self.threads = threads
        self.sources = sources
        self.by_tid = {t.tid: t for t in threads if t.tid is not None}
        self.in_futex = {t.tid for t in diag.tasks.get(pid, [])
                         if t.syscall is not None and t.syscall.name.startswith("futex")}
        self._running: Optional[Dict[int, List[PyThread]]] = None  # a Thread's address → who runs it
        self._by_ident: Optional[Dict[int, List[PyThread]]] = None  # pthread ident → threads
        self._owners: Dict[int, Optional[int]] = {}  # an RLock's address → its owner's ident
        self._own: Dict[int, Tuple[Tuple[Frame, ...], Optional[int]]] = {}

    def own(self, tid: int) -> Tuple[Tuple[Frame, ...], Optional[int]]:
        """The thread's own frames (a multiprocessing child's, not its parent's) and the index
        of its application frame: worked out once per thread."""
        if tid not in self._own:
            frames = self.by_tid[tid].frames
            own = frames[:fork_boundary(frames)]
            self._own[tid] = (own, application_index(own))
        return self._own[tid]

    def application_frame(self, tid: int) -> Optional[Frame]:
        if tid not in self.by_tid:
            return None
        own, app = self.own(tid)
        return own[app] if app is not None else None

    def joined(self, thread: PyThread, own: Sequence[Frame]) -> Optional[PyThread]:
        """The thread the innermost threading Thread.join of the stack waits for: the one
        whose run() has the joined Thread (the join's self) as self."""
        at = next((i for i, f in enumerate(own) if f.function.rsplit(".", 1)[-1] == "join"
                   and module_name(f.file) == "threading" and i < len(thread.selves) and thread.selves[i]), None)
        if at is None:
            return None
        joined = thread.selves[at][0]  # type: ignore[index]
        if self._running is None:
            self._running = {}
            for other in self.threads:
                for frame, self_ in zip(other.frames, other.selves):
                    if self_ and frame.function.rsplit(".", 1)[-1] in THREAD_ENTRY:
                        runs = self._running.setdefault(self_[0], [])
                        if not runs or runs[-1] is not other:
                            runs.append(other)
        return next((other for other in self._running.get(joined, []) if other is not thread), None)

    def rlock_owner(self, thread: PyThread, index: int, expression: str) -> Optional[int]:
        """The owner thread of the RLock the waiter acquires, when the lock is a local of its
        frame (py-spy showed its address and type) and its memory names one of our threads
        (read once per lock, however many threads wait for it)."""
        types = thread.local_types[index] if index < len(thread.local_types) else {}
        address = _addrs(thread, index).get(expression)
        if types.get(expression) != "_thread.RLock" or address is None:
            return None
        if address not in self._owners:
            self._owners[address] = with_deadline(functools.partial(rlock.owner_ident, self.pid, address),
                                                  SOURCE_SECONDS, None)
        ident = self._owners[address]
        if not ident:
            return None
        if self._by_ident is None:
            self._by_ident = {}
            for t in self.threads:
                self._by_ident.setdefault(t.ident, []).append(t)
        return next((t.tid for t in self._by_ident.get(ident, []) if t.tid is not None and t is not thread), None)


def python_stack(proc: _Process, tid: int) -> Stack:
    thread = proc.by_tid[tid]
    frames = thread.frames
    own, app = proc.own(tid)  # a multiprocessing child's own frames, not its parent's
    location = _location(proc.pid, own[app], proc.sources) if app is not None else None
    label = ""
    joined_tid: Optional[int] = None
    if tid in proc.in_futex:
        entry = None if app == 0 else entry_index(own, app)  # the library frame called
        self_ = thread.selves[entry] if entry is not None and entry < len(thread.selves) else None
        label = python_wait(own, app, location.code if location else "", self_[1] if self_ else "")
        joined = proc.joined(thread, own)
        if joined is not None:
            label += _thread_name(joined)
            joined_tid = joined.tid
    return Stack(proc.pid, tid, frames, location, label, "py-spy", on_lock=label in LOCK_WAITS,
                 name=thread.name, joined_tid=joined_tid, library_wait=library_wait(own))


def _application_frame(pid: int, frames: Sequence[Frame],
                       sources: Sources) -> Tuple[Optional[int], Optional[Location]]:
    """The index of the first application frame, and its location with the source line."""
    app = application_index(frames)
    return app, (_location(pid, frames[app], sources) if app is not None else None)


def _location(pid: int, frame: Frame, sources: Sources) -> Location:
    return Location(frame.file, frame.line, frame.function, sources.line(pid, frame.file, frame.line))


def with_deadline(func: Callable[[], T], seconds: float, default: T) -> T:
    """func(), or `default` if it fails or has not answered in time (a source file on a hung
    FUSE or NFS mount blocks its reader in D state): reader.with_deadline's threads."""
    try:
        return reader_deadline(func, seconds, None, "a stack's read")
    except Exception:  # a failure is `default` too, not a traceback from the thread
        return default


def _thread_name(thread: PyThread) -> str:
    tid = f" ({thread.tid})" if thread.tid and thread.name else str(thread.tid or "")
    return f" for thread '{thread.name}'{tid}" if thread.name else (f" for thread {tid}" if tid else "")


# --- who holds a Python lock -------------------------------------------------------------


def lock_holders(proc: _Process, stacks: Dict[int, Stack]) -> None:
    """For each thread blocked acquiring a Python lock, the lock's expression and the thread
    that likely holds it (pylocks: inferred from the frames and the source); the holder's
    stack is added when it was not wanted (it may be running) and says what it holds."""
    from .pylocks import FrameAt, Holders  # ast: only for the stacks of a Python process

    by_tid = proc.by_tid
    by_file: Dict[str, List[FrameAt]] = {}  # every frame of every thread, by its file
    for t in by_tid.values():
        for i, f in enumerate(t.frames):
            if t.tid is not None and not (i > 0 and _in_condition_wait(t, i - 1)):
                by_file.setdefault(f.file, []).append(FrameAt(t.tid, i, f.file, f.line, _addrs(t, i)))
    indexes: Dict[str, Optional[Holders]] = {}  # file → what its frames hold, worked out once
    holds: Dict[int, List[LockHold]] = {}
    for tid, stack in sorted(stacks.items()):
        if not stack.on_lock or tid not in by_tid:
            continue
        _, app = proc.own(tid)  # stack.frames are the thread's
        if app is None:
            continue
        frame = stack.frames[app]
        if frame.file not in indexes:
            source = proc.sources.parsed(proc.pid, frame.file)  # read and parsed once in the run
            indexes[frame.file] = None if source is None else Holders(source, frame.file, by_file.get(frame.file, []))
        index = indexes[frame.file]
        if index is None:
            continue
        waiter = FrameAt(tid, app, frame.file, frame.line, _addrs(by_tid[tid], app))
        wanted, holder = index.likely_holder(waiter)
        if wanted is None:
            continue
        hold = None if holder is None else LockHold(holder.tid, holder.acquire.expression, frame.file,
                                                    holder.acquire.line, holder.acquire.statement, holder.code)
        owner = proc.rlock_owner(by_tid[tid], app, wanted.expression)
        if owner is not None and hold is not None and hold.tid != owner:
            hold = None  # the lock says who holds it: the inference was wrong
        stacks[tid] = replace(stack, lock_wait=wanted.expression, likely_holder=hold,
                              lock_owner=owner)
        if hold is not None:
            holds.setdefault(hold.tid, []).append(hold)
    for tid, held in holds.items():
        if tid not in stacks:
            stacks[tid] = python_stack(proc, tid)
        stacks[tid] = replace(stacks[tid], holds=tuple(dict.fromkeys(held)))


def _in_condition_wait(thread: PyThread, index: int) -> bool:
    """Frame `index` is a Condition.wait (or wait_for): the frame that called it has released
    the condition's lock, which may be the lock it holds by its text (Condition(self._lock))."""
    frame = thread.frames[index]
    if module_name(frame.file) != "threading" or frame.function.rsplit(".", 1)[-1] not in ("wait", "wait_for"):
        return False
    if "." in frame.function:  # 3.11+: Class.method
        return frame.function.split(".")[0] == "Condition"
    self_ = thread.selves[index] if index < len(thread.selves) else None
    return self_ is None or self_[1] in ("Condition", "_Condition", "")


def _addrs(thread: PyThread, index: int) -> Dict[str, int]:
    return thread.local_addrs[index] if index < len(thread.local_addrs) else {}


def _native_result(pid: int, tids: List[int], stacks: Dict[int, Tuple[Frame, ...]], source: str,
            sources: Sources) -> _Result:
    result = _Result("native")
    for tid in tids:
        frames = stacks.get(tid)
        if frames:
            _, location = _application_frame(pid, frames, sources)
            result.stacks[tid] = Stack(pid, tid, frames, location, "", source)
    return result


def _unwound(pid: int, tids: List[int], fetch: Optional[Client], sources: Sources,
             every_frame: bool = True) -> Optional[_Result]:
    """Stacks unwound without ptrace (CFI, frame pointers, a scan), or None when none was."""
    from . import unwind  # imported when a native stack is unwound

    stacks = unwind.process_stacks(pid, tids, debuginfod=fetch, every_frame=every_frame)
    if not stacks:
        return None
    result = _Result("unwound")
    for tid, (frames, incomplete) in stacks.items():
        _, location = _application_frame(pid, frames, sources)
        result.stacks[tid] = Stack(pid, tid, frames, location, "", "unwind", incomplete=incomplete)
        if incomplete and location is None:  # the note offers --native
            result.kind = "unwound-incomplete"
    return result


def _with_native_frames(pid: int, result: _Result, fetch: Optional[Client] = None) -> _Result:
    """Each Python stack with the native frames above its interpreter, where a C extension's
    are among them (a call into a library that blocks): read without stopping the process."""
    exe = _exe(pid)
    if not exe or not result.stacks:
        return result
    interpreter = exe.replace(" (deleted)", "")
    if not extension_mapped(pid, interpreter):  # nothing to add to any thread: none is unwound
        return result
    from . import unwind  # imported when a native stack is unwound

    found = unwind.under_interpreter(pid, sorted(result.stacks), interpreter, debuginfod=fetch)
    for tid, frames in found.items():
        result.stacks[tid] = replace(result.stacks[tid], native=frames)
    return result


# --- running the helpers ----------------------------------------------------------------


def run_parallel(jobs: Dict[int, Callable[[], _Result]], seconds: float) -> Dict[int, _Result]:
    """Run the jobs in daemon threads, at most PARALLEL at once; those not done within
    `seconds` are left out (a helper stuck on a hung mount must not hang waitchain)."""
    results: Dict[int, _Result] = {}
    gate = threading.BoundedSemaphore(PARALLEL)

    def work(pid: int, job: Callable[[], _Result]) -> None:
        with gate:
            try:
                results[pid] = job()
            except Exception as exc:  # one process's stack must not cost the diagnosis
                results[pid] = _Result("failed", reason=f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=work, args=item, daemon=True) for item in jobs.items()]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + seconds
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    return dict(results)


# --- notes ------------------------------------------------------------------------------


def notes(diag: Diagnosis, wanted: Dict[int, List[int]], results: Dict[int, _Result],
          tool: Optional[Tuple[str, str]], seconds: float) -> List[str]:
    """One note per kind of trouble, naming the processes."""
    groups: Dict[str, List[int]] = {}
    out: List[str] = []
    for pid in wanted:
        result = results.get(pid, _Result("timeout"))
        groups.setdefault(result.kind, []).append(pid)
        if result.kind in ("py-spy-failed", "native-failed", "failed"):
            out.append(f"no stack for {_who(diag, pid)}: {result.reason}")
    if tool is None:
        groups.pop("native", None)  # nothing was stopped
    how = (f"--native reads it with {tool[0]} ({INVASIVE})" if tool
           else f"install gdb, then --native reads it ({INVASIVE})")
    out += [note.format(whos=_whos(diag, groups[kind]), seconds=seconds, how=how,
                        tool=tool[0] if tool else "")
            for kind, note in GROUP_NOTES.items() if kind in groups]
    return out


def _who(diag: Diagnosis, pid: int) -> str:
    proc = diag.processes.get(pid)
    return f"{pid} ({proc.comm})" if proc is not None else str(pid)


def _whos(diag: Diagnosis, pids: List[int], most: int = 8) -> str:
    shown = ", ".join(_who(diag, pid) for pid in pids[:most])
    return shown + (f" and {len(pids) - most} more" if len(pids) > most else "")
