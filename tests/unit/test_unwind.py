"""The native unwinder's pieces on made-up stacks and code: the call-instruction check of a
scan, where a walk ends complete and where it stops incomplete, demangling, bounded reads."""

from __future__ import annotations

import shutil
import time
from typing import Dict, List, Optional, Tuple

import pytest

from waitchain.errors import WaitchainError
from waitchain.stacks import unwind
from waitchain.stacks.demangle import demangle
from waitchain.stacks.unwind import RA, RBP, RSP, Mapping, Maps, StackMemory, is_after_call

CODE = 0x400000  # a made-up executable mapping of /bin/prog, bias 0
STACK = 0x7FF000000000


@pytest.mark.parametrize("code", [
    b"\x90\x90" + b"\xe8\x10\x20\x00\x00",  # call rel32
    b"\x90" * 5 + b"\xff\xd0",  # call *%rax
    b"\x90" * 4 + b"\x41\xff\xd4",  # call *%r12
    b"\x90" + b"\xff\x15\x00\x10\x00\x00",  # call *0x1000(%rip)
    b"\x90" * 4 + b"\xff\x50\x08",  # call *0x8(%rax)
    b"\x90" * 4 + b"\xff\x14\x24",  # call *(%rsp)
    b"\x90" * 3 + b"\xff\x54\x24\x08",  # call *0x8(%rsp)
    b"\x90" + b"\xff\x90\x00\x01\x00\x00",  # call *0x100(%rax)
])
def test_return_addresses_after_a_call(code):
    assert is_after_call(code)


@pytest.mark.parametrize("code", [
    b"\x90" * 7,
    b"\x90" * 5 + b"\xff\xe0",  # jmp *%rax: no return address follows it
    b"\x90" * 4 + b"\x48\x89\xc7",  # mov %rax,%rdi
    b"\x90" * 3 + b"\xff\x50\x08\x90",  # a call, but not right before
])
def test_other_code_is_no_return_address(code):
    assert not is_after_call(code)


class Rule:
    def __init__(self, type: str, arg: int = 0) -> None:
        self.type, self.arg = type, arg


class CFA:
    def __init__(self, reg: int, offset: int) -> None:
        self.reg, self.offset, self.expr = reg, offset, None


class FakeModule:
    """Functions at CODE + 0x100 * n; each has a CFI row (or none); the byte before each
    return address is the end of a call rel32."""

    def __init__(self, rows: Dict[int, Optional[dict]], calls: List[int]) -> None:
        self.rows, self.calls = rows, calls

    def cfi_row(self, vaddr: int):
        row = self.rows.get(vaddr - vaddr % 0x100)
        return None if row is None else (row, True)

    def code(self, vaddr: int, size: int) -> bytes:
        return b"\x90\x90\xe8\x00\x00\x00\x00" if vaddr + size in self.calls else b"\x90" * size

    def symbol(self, vaddr: int):
        return f"f{(vaddr - CODE) // 0x100}", vaddr - vaddr % 0x100

    def line(self, vaddr: int, large: bool = True):
        return None


def fake(rows: Dict[int, Optional[dict]], calls: List[int], words: Dict[int, int]) -> Tuple[Maps, StackMemory]:
    maps = Maps(1, [Mapping(CODE, CODE + 0x10000, "r-xp", 0, 1, "/bin/prog"),
                    Mapping(STACK, STACK + 0x10000, "rw-p", 0, 0, "[stack]")])
    module = FakeModule(rows, calls)
    maps.module = lambda address: (module, 0) if CODE <= address < CODE + 0x10000 else None  # type: ignore

    def read(address: int, size: int) -> bytes:
        return b"".join(words.get(a, 0).to_bytes(8, "little") for a in range(address, address + size, 8))

    return maps, StackMemory(read, STACK, STACK + 0x10000, time.monotonic() + 5)


def walk(maps: Maps, stack: StackMemory, sp: int, pc: int) -> unwind.Unwound:
    return unwind.unwind(sp, pc, maps, stack, time.monotonic() + 5)


SIMPLE = {"cfa": CFA(RSP, 8), RA: Rule("OFFSET", -8)}  # a function that pushed nothing
OUTERMOST = {"cfa": CFA(RSP, 8), RA: Rule("UNDEFINED")}  # _start


def test_cfi_to_the_outermost_frame_is_complete():
    f1, f2 = CODE + 0x100, CODE + 0x200
    maps, stack = fake({CODE: SIMPLE, CODE + 0x100: SIMPLE, CODE + 0x200: OUTERMOST}, [],
                       {STACK + 0x100: f1 + 5, STACK + 0x108: f2 + 5})
    got = walk(maps, stack, STACK + 0x100, CODE + 0x10)
    assert [(f.pc, f.how) for f in got.frames] == [(CODE + 0x10, "syscall"), (f1 + 5, "cfi"), (f2 + 5, "cfi")]
    assert not got.incomplete


def test_a_cfa_on_an_unknown_register_falls_back_to_a_scan_then_stops_incomplete():
    """f1's CFA is rbp-based and rbp is unknown (not in /proc/PID/task/TID/syscall), no
    frame-pointer record is on the stack: a scan finds f2's return address (after a call),
    and past f2 (no CFI, nothing after a call above) the walk stops, incomplete."""
    f1, f2 = CODE + 0x100, CODE + 0x200
    needs_rbp = {"cfa": CFA(RBP, 16), RA: Rule("OFFSET", -8)}
    maps, stack = fake({CODE: SIMPLE, CODE + 0x100: needs_rbp}, [f2 + 5],
                       {STACK + 0x100: f1 + 5, STACK + 0x130: f2 + 5, STACK + 0x138: 0x1234})
    got = walk(maps, stack, STACK + 0x100, CODE + 0x10)
    assert [(f.pc, f.how) for f in got.frames] == [(CODE + 0x10, "syscall"), (f1 + 5, "cfi"), (f2 + 5, "scan")]
    assert got.incomplete and got.why


def test_a_frame_pointer_record_is_found_and_followed():
    """rbp unknown, f1 built with frame pointers: the record [saved rbp, return address] above
    the stack pointer, checked one record further, gives f2; f2's record gives f3."""
    f1, f2, f3 = CODE + 0x100, CODE + 0x200, CODE + 0x300
    needs_rbp = {"cfa": CFA(RBP, 16), RA: Rule("OFFSET", -8), RBP: Rule("OFFSET", -16)}
    r1, r2 = STACK + 0x140, STACK + 0x180
    maps, stack = fake({CODE: SIMPLE, CODE + 0x100: needs_rbp, CODE + 0x200: needs_rbp},
                       [f2 + 5, f3 + 5],
                       {STACK + 0x100: f1 + 5, r1: r2, r1 + 8: f2 + 5, r2: STACK + 0x1c0, r2 + 8: f3 + 5})
    got = walk(maps, stack, STACK + 0x100, CODE + 0x10)
    assert [(f.pc, f.how) for f in got.frames][:4] == [
        (CODE + 0x10, "syscall"), (f1 + 5, "cfi"), (f2 + 5, "fp"), (f3 + 5, "cfi")]


def test_a_return_address_of_zero_ends_only_by_cfi():
    maps, stack = fake({CODE: SIMPLE}, [], {STACK + 0x100: 0})
    assert not walk(maps, stack, STACK + 0x100, CODE + 0x10).incomplete
    maps, stack = fake({}, [], {STACK + 0x100: 0})
    got = walk(maps, stack, STACK + 0x100, CODE + 0x10)
    assert got.incomplete and len(got.frames) == 1


def test_the_walk_is_bounded():
    """A CFI loop that never ends (each frame returns into the same function) stops at
    MAX_FRAMES, incomplete."""
    words = {STACK + 0x100 + 8 * i: CODE + 0x105 for i in range(unwind.MAX_FRAMES + 5)}
    maps, stack = fake({CODE: SIMPLE, CODE + 0x100: SIMPLE}, [], words)
    got = walk(maps, stack, STACK + 0x100, CODE + 0x10)
    assert got.incomplete and len(got.frames) == unwind.MAX_FRAMES


def test_stack_reads_are_bounded_and_a_failed_read_stops_them():
    calls: List[Tuple[int, int]] = []

    def read(address: int, size: int) -> bytes:
        calls.append((address, size))
        raise WaitchainError("process 1: memory unreadable")

    stack = StackMemory(read, STACK, STACK + 0x100000, time.monotonic() + 5)
    assert stack.word(STACK + 8) is None and stack.word(STACK + 0x8000) is None
    assert len(calls) == 1 and calls[0][1] <= unwind.CHUNK and stack.failed


def test_demangled_names():
    assert demangle("_ZN4shop4Till6settleEi") == "shop::Till::settle(int)"
    assert demangle("_ZNSt5mutex4lockEv") == "std::mutex::lock()"
    assert demangle("_ZN6waiter13wait_for_line17hb96b2fa5d2397414E") == "waiter::wait_for_line"
    assert demangle("_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h0123456789abcdefE") == \
        "std::rt::lang_start::{{closure}}"
    assert demangle("main") == "main" and demangle("_Zgarbage") == "_Zgarbage"


@pytest.mark.skipif(shutil.which("c++filt") is None, reason="no c++filt")
def test_rust_v0_names_through_cxxfilt():
    assert demangle("_RNvNtCs1234_7mycrate3foo3bar") == "mycrate::foo::bar"


def test_a_walk_past_an_entry_point_ends_there_complete():
    def frame(name: str) -> unwind.Frame:
        return unwind.Frame(name, "", 0, "/bin/prog", native=True, how="scan")
    frames = (frame("read"), frame("main"), frame("_start"), frame("??"))
    assert unwind.outermost(frames, True) == (frames[:3], False)
    assert unwind.outermost(frames[:2], True) == (frames[:2], True)  # no entry point reached
    assert unwind.outermost(frames, False) == (frames, False)


def test_a_fifo_where_an_elf_file_was_expected_is_not_opened(tmp_path):
    """A container can put a FIFO where a library or a debug file is looked for: opening it
    would block until a writer comes. It is refused at once; a non-ELF file is no module."""
    import os

    from waitchain.stacks import elf
    fifo = tmp_path / "libc.so.6.debug"
    os.mkfifo(fifo)
    start = time.monotonic()
    assert elf._open_elf(str(fifo)) is None
    assert elf._crc_ok(str(fifo), 0) is False
    assert time.monotonic() - start < 1
    text = tmp_path / "not-elf"
    text.write_text("hello")
    assert elf._open_elf(str(text)) is None


def test_what_may_hold_an_extensions_frames() -> None:
    from waitchain.stacks.extensions import may_hold_extension

    python = "/usr/local/bin/python3.11"
    assert may_hold_extension("r-xp", "/opt/app/lib/_speedups.cpython-311-x86_64-linux-gnu.so", python)
    assert may_hold_extension("r-xp", "/usr/lib/x86_64-linux-gnu/libffi.so.8.1.2", python)
    assert may_hold_extension("r-xp", "/usr/lib/x86_64-linux-gnu/libz.so.1 (deleted)", python)
    assert not may_hold_extension("r--p", "/opt/app/lib/_speedups.so", python)  # not code
    for path in (python, python + " (deleted)", "/usr/lib/libpython3.11.so.1.0",
                 "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
                 "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30",
                 "/usr/local/lib/python3.11/lib-dynload/_ctypes.cpython-311-x86_64-linux-gnu.so",
                 "[vdso]", "[vsyscall]", ""):
        assert not may_hold_extension("r-xp", path, python), path


def test_a_damaged_elf_file_answers_nothing_and_raises_nothing(tmp_path):
    """ElfFile reads headers, sections and notes with struct (no pyelftools): a file cut short
    or with bytes overwritten anywhere in its headers, tables or CFI is no module, or a module
    that answers None or b"", never an exception out of the unwinder's calls."""
    import os
    import random

    from waitchain.stacks import elf
    original = open(shutil.which("sleep") or "/bin/sleep", "rb").read()
    rng = random.Random(14)
    cuts = [16, 63, 64, 500, len(original) // 2, len(original) - 100]
    for i in range(60):
        data = bytearray(original[:cuts[i]] if i < len(cuts) else original)
        if i >= len(cuts):
            for _ in range(rng.choice((1, 4, 32))):
                at = rng.choice((rng.randrange(64), rng.randrange(len(data)), len(data) - 1 - rng.randrange(4096)))
                data[at] = rng.randrange(256)
        path = tmp_path / f"damaged{i}"
        path.write_bytes(bytes(data))
        module = elf._load(str(path), str(path))
        if module is None:
            continue
        try:
            for vaddr in (0, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000):
                module.cfi_row(vaddr)
                module.symbol(vaddr)
                module.line(vaddr)
                module.code(vaddr, 7)
                module.bias(vaddr, vaddr)
        finally:
            module.close()
        os.unlink(path)


def test_aranges_read_with_struct_are_pyelftools_own():
    """dwarfline.aranges reads .debug_aranges itself (pyelftools' parser took ~45 ms for libc's):
    the same ranges, in the same order, as get_aranges() on the debug files installed here
    (libc's at least, when its debug package is), and on a section cut short: nothing."""
    import glob

    ELFFile = pytest.importorskip("elftools.elf.elffile").ELFFile
    from waitchain.stacks import dwarfline

    checked = 0
    for path in sorted(glob.glob("/usr/lib/debug/.build-id/*/*.debug"))[:60]:
        with open(path, "rb") as f:
            parsed = ELFFile(f)
            if not parsed.has_dwarf_info():
                continue
            dwarf = parsed.get_dwarf_info(relocate_dwarf_sections=False)
            if dwarf.debug_aranges_sec is None:
                continue
            theirs = dwarf.get_aranges()
            section = dwarf.debug_aranges_sec
            section.stream.seek(0)
            data = section.stream.read(section.size)
            assert dwarfline.aranges(data) == (theirs.keys, [(e.begin_addr, e.length, e.info_offset) for e in theirs.entries])
            assert dwarfline.aranges(data[:40]) is None
            checked += 1
    if not checked:
        pytest.skip("no debug file with .debug_aranges installed")
