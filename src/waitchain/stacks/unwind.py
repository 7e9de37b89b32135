"""Native stacks of blocked threads without stopping them: no ptrace, the target never notices.

A thread blocked in a system call shows its stack pointer and program counter in
/proc/PID/task/TID/syscall. /proc/PID/maps says which ELF file (and offset) each address
belongs to; the file's .eh_frame call frame information (CFI, present in stripped release
builds) says where each frame's return address and saved registers are, relative to the
stack pointer; the stack is read with process_vm_readv (procfs/memory.py: a helper under a
deadline, bounded reads). From the innermost frame outwards, each caller is found by:

  cfi   the CFI rule of the frame's address (the registers it needs are known);
  fp    else the frame-pointer chain ([rbp] = caller's rbp, [rbp+8] = return address), when
        rbp is known and points into the stack at a return address right after a call;
  scan  else the first word above the stack pointer that is an address right after a call
        instruction in an executable file mapping (bounded: SCAN_WORDS words).

The innermost frame's program counter is the kernel's (how "syscall"). The walk ends,
complete, where the CFI says the return address is undefined (_start, a thread's start) or
it is 0; it stops, marked incomplete, where no rule applies, at MAX_FRAMES, or at the
deadline. Only x86-64 is unwound (elsewhere: no stacks, the --native opt-in stays)."""

from __future__ import annotations

import functools
import os
import time
from bisect import bisect_right

from ..errors import WaitchainError
from ..model import Frame
from ..procfs import memory
from ..procfs.maps import read_maps
from ..procfs.reader import ProcFS
from ..records import NamedTuple, record
from . import elf
from .demangle import demangle
from .extensions import may_hold_extension
from .frames import SYSTEM_FUNCTION, SYSTEM_OBJECT, application_index, in_stdlib, is_system

TYPE_CHECKING = False
if TYPE_CHECKING:  # a client is given with --debuginfod only: urllib is not imported otherwise
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

    from .debuginfod import Client

    Reader = Callable[[int, int], bytes]  # (address, size) → up to size bytes, or raises

SUPPORTED = os.uname().machine in ("x86_64", "amd64")
RBP, RSP, RA = 6, 7, 16  # DWARF register numbers on x86-64 (16: the return address column)
CALLEE_SAVED = (3, 6, 12, 13, 14, 15)  # rbx, rbp, r12-r15: kept across calls
MAX_FRAMES = 128
STACK_BUDGET = 1 << 20  # bytes of stack read per thread at most
CHUNK = 16 << 10  # stack read in aligned chunks of this size
SCAN_WORDS = 2048  # words above the stack pointer looked at by a scan
THREAD_SECONDS = 1.0  # to unwind one thread
PROCESS_SECONDS = 5.0  # for all the threads of one process: the others are left out
WORD = 8
# Where a program's or a thread's stack begins (glibc marks them in their CFI, musl does not).
ENTRY_POINTS = frozenset({"_start", "__clone", "clone", "clone3", "__clone3"})


class Mapping(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str


class RawFrame(NamedTuple):
    pc: int
    how: str  # syscall, cfi, fp, scan
    sp: int


@record
class Unwound:
    frames: List[RawFrame]
    incomplete: bool
    why: str = ""  # why it stopped, when incomplete


class Maps:
    """A process's mappings, sorted, and the ELF module of each executable one."""

    def __init__(self, pid: int, mappings: Sequence[Mapping]) -> None:
        self.pid = pid
        self.mappings = sorted(mappings)
        self._starts = [m.start for m in self.mappings]
        self._modules: Dict[int, Optional[Tuple[elf.Module, int]]] = {}
        self.debuginfod: Optional[Client] = None  # --debuginfod: fetches missing debug files
        self.every_frame = True  # False: a complete walk is symbolised up to its application frame

    def at(self, address: int) -> Optional[Mapping]:
        i = bisect_right(self._starts, address) - 1
        if i >= 0 and self.mappings[i].start <= address < self.mappings[i].end:
            return self.mappings[i]
        return None

    def module(self, address: int) -> Optional[Tuple[elf.Module, int]]:
        """(module, load bias) of the executable file mapping holding `address`."""
        m = self.at(address)
        if m is None or "x" not in m.perms or not m.path.startswith("/"):
            return None
        if m.start not in self._modules:
            module = elf.module_for(self.pid, m.start, m.end, m.path.replace(" (deleted)", ""), m.inode)
            bias = module.bias(m.start, m.offset, "x" in m.perms) if module is not None else None
            self._modules[m.start] = (module, bias) if module is not None and bias is not None else None
        return self._modules[m.start]


def parse_maps(text: str) -> List[Mapping]:
    out: List[Mapping] = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        try:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append(Mapping(start, end, parts[1], int(parts[2], 16), int(parts[4]),
                               parts[5].strip() if len(parts) == 6 else ""))
        except ValueError:
            continue
    return out


class StackMemory:
    """Words of one thread's stack, read in aligned chunks on demand, within a budget."""

    def __init__(self, read: Reader, low: int, high: int, deadline: float) -> None:
        self._read = read
        self.low, self.high = low, high  # the stack mapping (or what is allowed of it)
        self._chunks: Dict[int, bytes] = {}
        self._spent = 0
        self._deadline = deadline
        self.failed = ""

    def word(self, address: int) -> Optional[int]:
        if address % WORD or not self.low <= address <= self.high - WORD:
            return None
        base = address - address % CHUNK
        data = self._chunks.get(base)
        if data is None:
            data = self._fetch(base)
        at = address - base
        if at + WORD > len(data):
            return None
        return int.from_bytes(data[at:at + WORD], "little")

    def _fetch(self, base: int) -> bytes:
        data = b""
        if self._spent < STACK_BUDGET and time.monotonic() < self._deadline and not self.failed:
            start = max(base, self.low)
            try:
                data = b"\0" * (start - base) + self._read(start, min(base + CHUNK, self.high) - start)
            except WaitchainError as exc:
                self.failed = str(exc)
            self._spent += CHUNK
        self._chunks[base] = data
        return data


def unwind(sp: int, pc: int, maps: Maps, stack: StackMemory, deadline: float,
           stop: Optional[Callable[[int], bool]] = None) -> Unwound:
    """The raw frames from (sp, pc) of a thread in a system call, innermost first; the walk
    ends (incomplete) after the first frame whose pc `stop` accepts."""
    frames = [RawFrame(pc, "syscall", sp)]
    regs: Dict[int, int] = {RSP: sp, RA: pc}
    while True:
        if stop is not None and stop(frames[-1].pc):
            return Unwound(frames, True, "stopped")
        if len(frames) >= MAX_FRAMES:
            return Unwound(frames, True, f"more than {MAX_FRAMES} frames")
        if time.monotonic() > deadline:
            return Unwound(frames, True, "out of time")
        here = frames[-1]
        lookup = here.pc if len(frames) == 1 else here.pc - 1
        step, why = _cfi(maps, stack, lookup, regs)
        if step == "end":
            return Unwound(frames, False)
        how = "cfi"
        if not isinstance(step, dict) or not _sane(maps, regs, step, checked_call=False):
            step, how = _fp(maps, stack, regs, lookup), "fp"
        if step is None:
            step, how = _scan(maps, stack, regs), "scan"
        if step is None:
            return Unwound(frames, True, why or stack.failed or "no rule for the caller")
        if step[RA] == 0:  # the outermost frame, if the CFI says so; else the chain broke
            return Unwound(frames, how != "cfi", "" if how == "cfi" else "a return address of 0")
        frames.append(RawFrame(step[RA], how, step[RSP]))
        regs = step


def _cfi(maps: Maps, stack: StackMemory, lookup: int, regs: Dict[int, int]):
    """The caller's registers by the CFI row at `lookup`; "end" when the return address is
    undefined (the outermost frame); (None, why) when no rule applies."""
    found = maps.module(lookup)
    if found is None:
        return None, "not in an ELF file"
    module, bias = found
    got = module.cfi_row(lookup - bias)
    if got is None:
        return None, "no CFI"
    row, _ = got
    cfa_rule = row.get("cfa")
    if cfa_rule is None or cfa_rule.expr is not None or cfa_rule.reg not in regs:
        return None, "a register the CFI needs is unknown"
    cfa = regs[cfa_rule.reg] + cfa_rule.offset
    new: Dict[int, int] = {RSP: cfa}
    for reg in CALLEE_SAVED + (RA,):
        rule = row.get(reg)
        kind = getattr(rule, "type", None)
        if rule is None or kind == "SAME_VALUE":
            value = regs.get(reg) if reg != RA else None
        elif kind == "UNDEFINED":
            if reg == RA:
                return "end", ""
            value = None
        elif kind == "OFFSET":
            value = stack.word(cfa + rule.arg)
        elif kind == "VAL_OFFSET":
            value = cfa + rule.arg
        elif kind == "REGISTER":
            value = regs.get(rule.arg)
        else:
            value = None
        if value is not None:
            new[reg] = value
    if RA not in new:
        return None, "the return address is not where the CFI says"
    return new, ""


def _fp(maps: Maps, stack: StackMemory, regs: Dict[int, int], lookup: int) -> Optional[Dict[int, int]]:
    """The caller by the frame-pointer record at rbp ([rbp] the caller's rbp, [rbp+8] the
    return address). rbp is not in /proc/PID/task/TID/syscall: until a frame's CFI restores
    it, the record is looked for above the stack pointer (one whose return address follows a
    call and whose saved rbp leads to another such record); a frame whose
    CFI computes its CFA from rbp (code built with frame pointers) then follows its CFI."""
    rbp, sp = regs.get(RBP), regs[RSP]
    if rbp is None:
        rbp = _find_record(maps, stack, sp)
        if rbp is None:
            return None
        step, _ = _cfi(maps, stack, lookup, {**regs, RBP: rbp})
        if isinstance(step, dict) and _sane(maps, regs, step, checked_call=True):
            return step
    if not sp <= rbp < sp + STACK_BUDGET:
        return None
    ra, saved = stack.word(rbp + WORD), stack.word(rbp)
    if ra is None or saved is None:
        return None
    step = {RSP: rbp + 2 * WORD, RBP: saved, RA: ra}
    return step if _sane(maps, regs, step, checked_call=True) else None


def _find_record(maps: Maps, stack: StackMemory, sp: int) -> Optional[int]:
    """The lowest address above sp holding a plausible frame-pointer record, checked one
    record further up the chain."""
    for address in range(sp, sp + SCAN_WORDS * WORD, WORD):
        saved, ra = stack.word(address), stack.word(address + WORD)
        if saved is None or ra is None:
            return None
        if not _after_call(maps, ra):
            continue
        if address + 2 * WORD <= saved < stack.high and saved % WORD == 0:
            up, further = stack.word(saved + WORD), stack.word(saved)
            if up is not None and further is not None and _after_call(maps, up) and \
                    (further == 0 or saved + 2 * WORD <= further < stack.high):
                return address
    return None


def _scan(maps: Maps, stack: StackMemory, regs: Dict[int, int]) -> Optional[Dict[int, int]]:
    sp = regs[RSP]
    for address in range(sp, sp + SCAN_WORDS * WORD, WORD):
        value = stack.word(address)
        if value is None:
            return None
        if _after_call(maps, value):
            step = {RSP: address + WORD, RA: value}
            saved = stack.word(address - WORD)  # a frame pointer pushed below it, maybe
            if saved is not None and address < saved < stack.high:
                step[RBP] = saved
            return step
    return None


def _sane(maps: Maps, regs: Dict[int, int], step: Dict[int, int], checked_call: bool) -> bool:
    """The caller's frame is above ours and its return address is code (after a call)."""
    ra = step.get(RA)
    if ra is None or step[RSP] <= regs[RSP]:
        return False
    if ra == 0:
        return not checked_call  # the CFI's outermost frame; a frame-pointer chain broken
    if checked_call:
        return _after_call(maps, ra)
    m = maps.at(ra)
    return m is not None and "x" in m.perms


def _after_call(maps: Maps, address: int) -> bool:
    """`address` is in an executable file mapping, right after a call instruction."""
    found = maps.module(address)
    if found is None:
        return False
    module, bias = found
    code = module.code(address - bias - 7, 7)
    return len(code) == 7 and is_after_call(code)


def is_after_call(code: bytes) -> bool:
    """The bytes end with an x86-64 call: E8 rel32, or FF /2 (an indirect call) of the
    length its ModRM byte gives."""
    if code[-5] == 0xE8:
        return True
    for k in range(2, 8):
        if code[-k] != 0xFF:
            continue
        modrm = code[-k + 1]
        if (modrm >> 3) & 7 != 2:
            continue
        mod, rm = modrm >> 6, modrm & 7
        length = 2
        if mod != 3 and rm == 4:
            length += 1
            if k >= 3 and mod == 0 and code[-k + 2] & 7 == 5:
                length += 4
        if mod == 0 and rm == 5:
            length += 4
        elif mod == 1:
            length += 1
        elif mod == 2:
            length += 4
        if length == k:
            return True
    return False


# --- one process --------------------------------------------------------------------------


def read_syscall_regs(pid: int, tid: int, proc: str = "/proc") -> Optional[Tuple[int, int]]:
    """(sp, pc) of a thread blocked in a system call (or blocked outside one: -1), or None."""
    try:
        with open(f"{proc}/{pid}/task/{tid}/syscall", "rb") as f:
            parts = f.read(512).split()
    except OSError:
        return None
    if len(parts) < 3 or parts[0] == b"running":
        return None
    try:
        sp, pc = int(parts[-2], 16), int(parts[-1], 16)
    except ValueError:
        return None
    return (sp, pc) if sp and pc else None


def process_stacks(pid: int, tids: Sequence[int], read: Optional[Callable[[int, int, int], bytes]] = None,
                   proc: str = "/proc", debuginfod: Optional[Client] = None, every_frame: bool = True
                   ) -> Dict[int, Tuple[Tuple[Frame, ...], bool]]:
    """TID → (symbolised frames innermost first, incomplete) for each blocked thread of pid
    that could be unwound. `read(tid, address, size)` reads memory (procfs/memory by default);
    `debuginfod` fetches the debug files missing here (--debuginfod); every_frame=False: a
    complete stack only as far as its application frame (symbolise's upto_application)."""
    if not SUPPORTED:
        return {}
    try:
        maps = Maps(pid, parse_maps(read_maps(ProcFS(proc), pid)))
    except WaitchainError:
        return {}
    maps.debuginfod = debuginfod
    maps.every_frame = every_frame
    if read is not None:
        return _each_thread(pid, tids, maps, read, proc)
    if memory._open_readers():  # the run's reader (the snapshot's): its helper is running
        return _each_thread(pid, tids, maps, memory.read_partial, proc)
    with memory.MemoryReader() as own:  # called on its own (a test, a bench): one helper
        return _each_thread(pid, tids, maps, own.read_partial, proc)


def _each_thread(pid: int, tids: Sequence[int], maps: Maps, read: Callable[[int, int, int], bytes],
                 proc: str) -> Dict[int, Tuple[Tuple[Frame, ...], bool]]:
    out: Dict[int, Tuple[Tuple[Frame, ...], bool]] = {}
    deadline = time.monotonic() + PROCESS_SECONDS
    through = memory_id(pid, proc)
    for tid in tids:
        if time.monotonic() > deadline:
            break
        got = thread_stack(pid, tid, maps, read, proc, through)
        if got is not None:
            out[tid] = got
    return out


def thread_stack(pid: int, tid: int, maps: Maps, read: Callable[[int, int, int], bytes],
                 proc: str = "/proc", through: Optional[int] = None) -> Optional[Tuple[Tuple[Frame, ...], bool]]:
    """One thread's stack; None when it is not blocked (its registers moved while read).
    `through`: the id its memory is read through (memory_id), the thread's own by default."""
    through = tid if through is None else through
    for _attempt in range(2):
        regs = read_syscall_regs(pid, tid, proc)
        if regs is None:
            return None
        sp, pc = regs
        deadline = time.monotonic() + THREAD_SECONDS
        area = maps.at(sp)
        high = area.end if area is not None else sp + STACK_BUDGET
        stack = StackMemory(functools.partial(read, through), sp, high, deadline)
        unwound = unwind(sp, pc, maps, stack, deadline)
        if read_syscall_regs(pid, tid, proc) == regs:  # it did not run meanwhile
            upto = not maps.every_frame and not unwound.incomplete  # (outermost needs every name)
            return outermost(symbolise(maps, unwound.frames, upto), unwound.incomplete)
    return None


def memory_id(pid: int, proc: str = "/proc") -> int:
    """The id to read the memory of pid's threads through: pid itself, for all of them (the
    memory reader looks at a process's threads once per id it reads through: once per thread
    read through its own id, 2,000 threads cost 2,000 looks at 2,000 threads), unless its main
    thread has exited (a zombie leader has no memory: process_vm_readv says ESRCH), then its
    first live thread."""
    if _state(f"{proc}/{pid}/stat") not in ("Z", "X"):
        return pid
    try:
        names = sorted(int(n) for n in os.listdir(f"{proc}/{pid}/task") if n.isdigit())
    except OSError:
        return pid
    return next((tid for tid in names if _state(f"{proc}/{pid}/task/{tid}/stat") not in ("", "Z", "X")), pid)


def _state(path: str) -> str:
    try:
        with open(path, "rb") as f:
            fields = f.read(4096).rpartition(b")")[2].split()
    except OSError:
        return ""
    return fields[0].decode("ascii", "replace") if fields else ""


def under_interpreter(pid: int, tids: Sequence[int], interpreter: str,
                      read: Optional[Callable[[int, int, int], bytes]] = None,
                      proc: str = "/proc", debuginfod: Optional[Client] = None) -> Dict[int, Tuple[Frame, ...]]:
    """TID → the native frames of a Python thread above its interpreter's (innermost first,
    up to the first frame in `interpreter`, the executable, or in a libpython), for the
    threads where a C extension's (or a library's it calls) frames are among them: what a
    Python stack does not show. Only those frames are symbolised."""
    if not SUPPORTED:
        return {}
    try:
        maps = Maps(pid, parse_maps(read_maps(ProcFS(proc), pid)))
    except WaitchainError:
        return {}
    maps.debuginfod = debuginfod
    if not any(may_hold_extension(m.perms, m.path, interpreter) for m in maps.mappings):
        return {}  # nothing mapped that _extension could accept: no thread needs unwinding
    if read is None and not memory._open_readers():
        with memory.MemoryReader() as own:
            return under_interpreter(pid, tids, interpreter, own.read_partial, proc, debuginfod)
    reader = functools.partial(read or memory.read_partial, memory_id(pid, proc))
    out: Dict[int, Tuple[Frame, ...]] = {}
    deadline = time.monotonic() + PROCESS_SECONDS
    for tid in tids:
        if time.monotonic() > deadline:
            break
        regs = read_syscall_regs(pid, tid, proc)
        if regs is None:
            continue
        sp, pc = regs
        area = maps.at(sp)
        stack = StackMemory(reader, sp,
                            area.end if area is not None else sp + STACK_BUDGET, time.monotonic() + THREAD_SECONDS)
        raw = unwind(sp, pc, maps, stack, time.monotonic() + THREAD_SECONDS,
                     functools.partial(_in_interpreter, maps, interpreter=interpreter)).frames
        at = next((i for i, f in enumerate(raw) if _in_interpreter(maps, f.pc, interpreter)), None)
        if not at or read_syscall_regs(pid, tid, proc) != regs:
            continue  # never reached the interpreter, or the thread ran meanwhile
        frames = symbolise(maps, raw[:at])
        if any(_extension(f) for f in frames):
            out[tid] = frames
    return out


def _in_interpreter(maps: Maps, pc: int, interpreter: str) -> bool:
    m = maps.at(pc - 1)  # (the innermost pc is in libc's read: never the interpreter's)
    if m is None:
        return False
    path = m.path.replace(" (deleted)", "")
    return path == interpreter or path.rsplit("/", 1)[-1].startswith("libpython")


def _extension(frame: Frame) -> bool:
    """A frame of an extension module or a library it calls: not the C library, the loader,
    the C++ runtime, nor one of Python's own standard modules (lib-dynload), nor the kernel's
    [vdso] (no file: no extension's code)."""
    return bool(frame.module) and not frame.module.startswith("[") and not is_system(frame) \
        and not in_stdlib(frame.module)


def outermost(frames: Tuple[Frame, ...], incomplete: bool) -> Tuple[Tuple[Frame, ...], bool]:
    """A walk that went past a program's or a thread's entry point (whose CFI does not mark
    the end: musl, hand-written assembly) is complete there; what lies beyond is not a frame."""
    if incomplete:
        for i, frame in enumerate(frames):
            if i and frame.function in ENTRY_POINTS:
                return frames[:i + 1], False
    return frames, incomplete


def symbolise(maps: Maps, raw: Sequence[RawFrame], upto_application: bool = False) -> Tuple[Frame, ...]:
    """Function (demangled), file:line when debug info has it, module, and how it was found.
    A caller's line is that of its call (the return address minus one). upto_application:
    only the frames up to the application frame (the one frames.application_index finds in
    the whole stack), and a frame in a system library (libc, ld.so: is_system by its file
    alone) is not looked up: what the output does not show is not read (libc's symbols and
    lines, from its debug file when one is installed, are most of a cold unwind)."""
    frames: List[Frame] = []
    for i, f in enumerate(raw):
        lookup = f.pc if i == 0 else f.pc - 1
        mapping = maps.at(lookup)
        module_path = mapping.path if mapping is not None else ""
        function, file, line = "??", module_path, 0
        if upto_application and SYSTEM_OBJECT.search(module_path):
            frames.append(Frame(function, file, line, module_path, native=True, how=f.how))
            continue
        found = maps.module(lookup)
        if found is not None:
            module, bias = found
            symbol = module.symbol(lookup - bias, fetch=maps.debuginfod)
            if symbol is not None:
                function = demangle(symbol[0].split("@", 1)[0])  # memcpy@GLIBC_2.2.5
            where = module.line(lookup - bias, large=not SYSTEM_FUNCTION.search(function),
                                fetch=maps.debuginfod)
            if where is not None:
                file, line = where
        frames.append(Frame(function, file, line, module_path, native=True, how=f.how))
        if upto_application and application_index(frames[-1:]) == 0:
            break
    return tuple(frames)
