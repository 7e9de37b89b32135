"""stacks/dwarfline.py, the reader of .debug_line that `--json` uses instead of pyelftools: on
real files (libc's debug file when libc6-dbg is installed and the other debug files installed,
C programs compiled here in each DWARF version, compressed, in two CUs, Python's extension
modules) every address sampled (each
FDE start, each function's start, middle and last byte) gets the (file, line) pyelftools
gives, and each CU decoded has the very rows pyelftools' path builds; 64-bit DWARF and split
units are NOT_HANDLED and answered by the pyelftools fallback, the same as before; cut or
random bytes give None or NOT_HANDLED, never an exception; a made-up line program covers what
compilers here seldom emit (DW_LNE_define_file, a standard opcode of a later version,
fixed_advance_pc, a minimum instruction length of 4)."""

from __future__ import annotations

import glob
import os
import random
import shutil
import struct
import subprocess
from bisect import bisect_right
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from scenario_helpers import libc_of

from waitchain.stacks import dwarfline, elf

CC = shutil.which("gcc") or shutil.which("cc")
MAIN_C = r"""
#include <stdio.h>
#include <unistd.h>
#include "util.h"
static int table[64];
__attribute__((noinline)) int fill(int n) {
    int s = 0;
    for (int i = 0; i < n; i++) {
        table[i & 63] = square(i);
        s += table[(i * 7) & 63];
    }
    return s;
}
int main(int argc, char **argv) {
    char b;
    int r = fill(argc * 10);
    if (argc > 1)
        r += (int)read(0, &b, 1);
    printf("%d %s\n", r + twice(argc), argv[0]);
    return 0;
}
"""
UTIL_H = r"""
static inline int square(int x) { return x * x; }
int twice(int x);
"""
UTIL_C = r"""
#include "util.h"
int twice(int x) {
    int s = 0;
    for (int i = 0; i < x; i++)
        s += square(i) + i;
    return s * 2;
}
"""
VARIANTS = {  # name: gcc flags (each a two-CU program: main.c, util.c)
    "O2": ["-g", "-O2"],  # DWARF 5, gcc's default
    "dwarf4": ["-gdwarf-4", "-O2"],
    "dwarf3": ["-gdwarf-3", "-O1"],
    "dwarf2": ["-gdwarf-2", "-O2"],
    "gz": ["-g", "-gz", "-O2"],  # SHF_COMPRESSED (zlib) debug sections
    "O0": ["-g", "-O0"],
}
NOT_HANDLED_VARIANTS = {
    "dwarf64": ["-g", "-gdwarf64", "-O2"],  # 64-bit DWARF
    "split": ["-g", "-gsplit-dwarf", "-O2"],  # skeleton units (DW_UT_skeleton)
}


def _libc() -> str:
    path = libc_of()
    if not path:
        pytest.skip("no C library mapped (static interpreter)")
    return path


def _addresses(module: elf.Module) -> List[int]:
    """Every FDE's start and each function symbol's start, middle and last byte."""
    found = set()
    index = module._fde_index()
    if index is not None:
        found.update(start for start, _ in index.entries())
    for start, size, _ in module._load_symbols()[1]:
        found.update((start, start + size // 2, start + max(size - 1, 0)))
    return sorted(found)


def _not_in_aranges(module: elf.Module, addresses: List[int]) -> List[int]:
    elf_file = module._line_elf()
    assert elf_file is not None
    found = module._read_aranges(elf_file)
    assert found is not None
    starts, entries = found
    outside = []
    for address in addresses:
        i = bisect_right(starts, address) - 1
        if i < 0 or address >= entries[i][0] + entries[i][1]:
            outside.append(address)
    return outside


def _modules(path: str) -> Tuple[elf.Module, elf.Module]:
    ours = elf._load(path, path)
    theirs = elf._load(path, path)
    assert ours is not None and theirs is not None
    return ours, theirs


def _pyelftools_lines(module: elf.Module, addresses: List[int], monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """module.line of each address with dwarfline reading nothing (NOT_HANDLED): pyelftools
    throughout, .debug_aranges and the CUs' own ranges included, a reference that shares
    none of dwarfline's code."""
    with monkeypatch.context() as patched:
        for name in ("aranges", "line_table", "unit_offsets"):
            patched.setattr(dwarfline, name, lambda *args: dwarfline.NOT_HANDLED)
        return [module.line(address) for address in addresses]


def _compare(path: str, monkeypatch: pytest.MonkeyPatch, handled: bool = True, step: int = 1,
             outside: bool = False) -> Tuple[int, int]:
    """Both paths on every `step`-th sampled address of the file (and, with `outside`, on every
    one .debug_aranges does not cover: the pyelftools path then reads every CU's top DIE): the
    same answers, and the same rows for every CU decoded. handled: dwarfline read every CU
    itself (no fallback). Returns the number of addresses and of those with a line."""
    pytest.importorskip("elftools")
    ours, theirs = _modules(path)
    fallbacks: List[int] = []
    real_rows = elf._pyelftools_rows

    def counting(dwarf: Any, cu_offset: int, large: bool) -> Any:
        fallbacks.append(cu_offset)
        return real_rows(dwarf, cu_offset, large)

    try:
        every = _addresses(ours)
        addresses = every[::step] + (_not_in_aranges(ours, every) if outside else [])
        monkeypatch.setattr(elf, "_pyelftools_rows", counting)
        mine = [ours.line(a) for a in addresses]
        monkeypatch.setattr(elf, "_pyelftools_rows", real_rows)
        if handled:
            assert fallbacks == [] and ours._dwarf_info is None  # pyelftools never read this file
        else:
            assert fallbacks
        reference = _pyelftools_lines(theirs, addresses, monkeypatch)
        assert theirs._dwarf_info or not any(reference)  # the reference came from pyelftools
        assert [(hex(a), m) for a, m in zip(addresses, mine)] == [(hex(a), r) for a, r in zip(addresses, reference)]
        assert ours._lines.keys() == theirs._lines.keys()
        for cu_offset, rows in ours._lines.items():
            assert rows == theirs._lines[cu_offset], f"CU at {cu_offset:#x}"
        with_line = sum(m is not None for m in mine)
        print(f"{path}: {len(addresses)} addresses, {with_line} with a line, {len(ours._lines)} CUs")
        return len(addresses), with_line
    finally:
        ours.close()
        theirs.close()


def _compare_files(paths: List[str], monkeypatch: pytest.MonkeyPatch, most: int = 0) -> Tuple[int, int]:
    """_compare on each of the files that have lines (at most `most` of them, 0: all): how
    many files, and how many addresses in all."""
    total = checked = 0
    for path in paths:
        module = elf._load(path, path)
        if module is None:
            continue
        try:
            if module._line_elf() is None:
                continue
        finally:
            module.close()
        total += _compare(path, monkeypatch)[0]
        checked += 1
        if checked == most:
            break
    return checked, total


def test_libc_debug_file_gives_pyelftools_lines(monkeypatch):
    path = _libc()
    module = elf._load(path, path)
    assert module is not None
    try:
        if module._debug_elf() is None:
            pytest.skip("libc's debug file is not installed (libc6-dbg)")
    finally:
        module.close()
    count, with_line = _compare(path, monkeypatch, step=16, outside=True)  # all: 1,937 CUs decoded twice, ~25 s
    assert count > 500 and with_line > count // 2


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    if CC is None:
        pytest.skip("no C compiler")
    here = tmp_path_factory.mktemp("dwarfline")
    for name, text in (("main.c", MAIN_C), ("util.h", UTIL_H), ("util.c", UTIL_C)):
        (here / name).write_text(text)
    built: Dict[str, str] = {}
    for name, flags in {**VARIANTS, **NOT_HANDLED_VARIANTS}.items():
        out = here / name
        done = subprocess.run([CC, *flags, "main.c", "util.c", "-o", str(out)], cwd=here, capture_output=True)
        if done.returncode == 0:
            built[name] = str(out)
    return built


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_compiled_programs_give_pyelftools_lines(programs, variant, monkeypatch):
    if variant not in programs:
        pytest.skip(f"this compiler does not build {VARIANTS[variant]}")
    count, with_line = _compare(programs[variant], monkeypatch)
    assert with_line >= 3  # main, fill, twice at least
    ours = elf._load(programs[variant], programs[variant])
    assert ours is not None
    try:
        files = {ours.line(start)[0] for start, _, name in ours._load_symbols()[1]
                 if name in ("main", "fill", "twice") and ours.line(start)}
        assert {os.path.basename(f) for f in files} == {"main.c", "util.c"}  # two CUs, by file
        assert all(os.path.isabs(f) for f in files)  # joined to the compilation directory
    finally:
        ours.close()


@pytest.mark.parametrize("variant", sorted(NOT_HANDLED_VARIANTS))
def test_layouts_not_read_fall_back_to_pyelftools(programs, variant, monkeypatch, tmp_path):
    """Units dwarfline does not read go to pyelftools, which answers as before. The 64-bit
    program loses its .debug_aranges first: pyelftools' get_aranges() fails on 64-bit ones
    (the file had no line before either), and the CUs are then found by their own ranges;
    pyelftools then fails on its 64-bit line programs too: no line, before and after."""
    if variant not in programs:
        pytest.skip(f"this compiler does not build {NOT_HANDLED_VARIANTS[variant]}")
    path = programs[variant]
    if variant == "dwarf64":
        objcopy = shutil.which("objcopy")
        if objcopy is None:
            pytest.skip("no objcopy to remove .debug_aranges")
        path = str(tmp_path / "no-aranges")
        subprocess.run([objcopy, "--remove-section", ".debug_aranges", programs[variant], path], check=True)
    count, with_line = _compare(path, monkeypatch, handled=False)
    assert with_line >= (0 if variant == "dwarf64" else 3)


def test_python_extension_modules_give_pyelftools_lines(monkeypatch):
    """Python's extension modules (built -g by pyenv) and postgres when installed with a
    .debug_line of its own or in a debug file."""
    candidates = sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "lib-dynload", "*.so")))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    checked, total = _compare_files(candidates, monkeypatch, most=25)
    if not checked:
        pytest.skip("no extension module or postgres with .debug_line here")
    print(f"{checked} files, {total} addresses")


def test_installed_debug_files_give_pyelftools_lines(monkeypatch):
    """The separate debug files installed here (libc6-dbg's: the dynamic loader, libm,
    gconv modules...), each read as a file of its own: every function's start, middle and
    last byte (libc's own is the test above)."""
    libc = elf._load(_libc(), _libc())
    skip = libc.build_id if libc is not None else ""
    paths = [p for p in sorted(glob.glob("/usr/lib/debug/.build-id/*/*.debug"))[:60]
             if not (skip and p.endswith(f"{skip[:2]}/{skip[2:]}.debug"))]
    checked, total = _compare_files(paths, monkeypatch)
    if not checked:
        pytest.skip("no debug file with .debug_line installed")
    print(f"{checked} debug files, {total} addresses")


# --- a compressed section read in part -----------------------------------------------------------


def test_span_of_a_compressed_section_continues_where_it_stopped(programs):
    if "gz" not in programs:
        pytest.skip("no -gz build")
    with open(programs["gz"], "rb") as stream:
        parsed = elf.ElfFile(stream)
        section = parsed.section(".debug_info")
        assert section is not None and section.flags & elf.SHF_COMPRESSED
        whole = parsed.data(section)
        assert parsed.span(section, 0, 16) == whole[:16]
        inflater, out, at, _declared = parsed._inflating[section.offset]
        assert len(out) < len(whole) or at == section.offset + section.size
        assert parsed.span(section, 40, 100) == whole[40:140]
        assert parsed._inflating[section.offset][0] is inflater  # the same decompressor, continued
        assert parsed.span(section, len(whole) - 5, 100) == whole[-5:]
        assert parsed.span(section, len(whole) + 10, 4) == b""
        assert parsed._inflating[section.offset][1] == whole


def _file_section(path: str, name: str) -> Tuple[bytearray, elf.Section, int, bytes]:
    """A file's bytes (to patch), its section `name`, that section's index and its bytes."""
    with open(path, "rb") as stream:
        parsed = elf.ElfFile(stream)
        section = parsed.section(name)
        assert section is not None
        return bytearray(Path(path).read_bytes()), section, parsed.sections.index(section), parsed.data(section)


def test_a_compressed_section_inflates_no_further_than_it_declares(programs, tmp_path, monkeypatch):
    """A file a target maps may declare a small section and inflate to gigabytes: span and
    data stop at the declared size (BadElf past it), a section declaring more than
    MAX_DEBUG_BYTES is not inflated at all, and such a file gives no line, never pyelftools."""
    if "gz" not in programs:
        pytest.skip("no -gz build")
    data, section, _index, whole = _file_section(programs["gz"], ".debug_info")
    lying = tmp_path / "lying"
    struct.pack_into("<Q", data, section.offset + 8, len(whole) // 2)  # Elf64_Chdr.ch_size: half
    lying.write_bytes(bytes(data))
    with open(lying, "rb") as stream:
        parsed = elf.ElfFile(stream)
        section = parsed.section(".debug_info")
        assert section is not None
        assert parsed.span(section, 0, 8) == whole[:8]  # within what it declares
        with pytest.raises(elf.BadElf):
            parsed.span(section, len(whole) // 2 - 4, 100)
        with pytest.raises(elf.BadElf):
            parsed.data(section)
        monkeypatch.setattr(elf, "MAX_DEBUG_BYTES", len(whole) // 4)
        with pytest.raises(elf.BadElf):
            elf.ElfFile(stream).span(section, 0, 8)
    monkeypatch.undo()
    module = elf._load(str(lying), str(lying))
    assert module is not None
    try:
        for start, size, _ in module._load_symbols()[1]:
            module.line(start + size // 2)  # answers (a line or None), raises nothing
        assert module._dwarf() is None  # pyelftools is not given the file
    finally:
        module.close()


def test_gnu_zdebug_sections_that_inflate_past_their_size_are_not_given_to_pyelftools(programs, tmp_path):
    """GNU's older compression (.zdebug_*, which dwarfline does not read: pyelftools does)
    is checked the same way before pyelftools inflates it."""
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.skip("no objcopy")
    gnu = tmp_path / "gnu"
    if subprocess.run([objcopy, "--compress-debug-sections=zlib-gnu", programs["O2"], str(gnu)],
                      capture_output=True).returncode:
        pytest.skip("this objcopy does not write .zdebug sections")
    with open(gnu, "rb") as stream:
        parsed = elf.ElfFile(stream)
        assert parsed.section(".zdebug_info") is not None
        assert elf._inflates_as_declared(parsed)  # the look-alike: honest sizes pass
        section = parsed.section(".zdebug_info")
        assert section is not None
    data = bytearray(gnu.read_bytes())
    size = int.from_bytes(data[section.offset + 4:section.offset + 12], "big")
    data[section.offset + 4:section.offset + 12] = (size // 2).to_bytes(8, "big")
    lying = tmp_path / "lying"
    lying.write_bytes(bytes(data))
    with open(lying, "rb") as stream:
        assert not elf._inflates_as_declared(elf.ElfFile(stream))


def test_span_of_a_plain_section_reads_the_range(programs):
    with open(programs["O2"], "rb") as stream:
        parsed = elf.ElfFile(stream)
        section = parsed.section(".debug_line")
        assert section is not None and not section.flags & elf.SHF_COMPRESSED
        whole = parsed.data(section)
        assert parsed.span(section, 3, 50) == whole[3:53]
        assert parsed.span(section, len(whole) - 2, 50) == whole[-2:]
        assert parsed._inflating == {}


# --- bad bytes ----------------------------------------------------------------------------------


def _sections(path: str) -> Dict[str, bytes]:
    with open(path, "rb") as stream:
        parsed = elf.ElfFile(stream)
        return {s.name: parsed.data(s) for s in parsed.sections if s.name.startswith(".debug_")}


def _reader(sections: Dict[str, bytes]) -> Any:
    return lambda name, start, size: sections.get(name, b"")[start:start + size] if start >= 0 else b""


def _cu_offsets(sections: Dict[str, bytes]) -> List[int]:
    found = dwarfline.aranges(sections[".debug_aranges"])
    assert isinstance(found, tuple)
    return sorted({cu for _, _, cu in found[1]})


def test_cut_and_random_bytes_give_none_or_not_handled(programs):
    sections = _sections(programs["O2"])
    offsets = _cu_offsets(sections)
    good = [dwarfline.line_table(_reader(sections), cu, True, 1 << 20) for cu in offsets]
    assert all(isinstance(rows, tuple) and rows[0] for rows in good)
    rng = random.Random(14)
    results = set()
    for name in (".debug_line", ".debug_info", ".debug_abbrev", ".debug_line_str", ".debug_str"):
        original = sections[name]
        for cut in sorted({0, 1, 5, 11, 20, len(original) // 3, len(original) // 2, len(original) - 1}):
            broken = dict(sections, **{name: original[:cut]})
            for cu in offsets:
                found = dwarfline.line_table(_reader(broken), cu, True, 1 << 20)
                results.add(type(found).__name__)
                assert found is None or isinstance(found, (tuple, dwarfline.NotHandled))
        for _ in range(40):
            noisy = bytearray(original)
            for _ in range(rng.randint(1, 8)):
                noisy[rng.randrange(len(noisy))] = rng.randrange(256)
            broken = dict(sections, **{name: bytes(noisy)})
            for cu in offsets:
                found = dwarfline.line_table(_reader(broken), cu, True, 1 << 20)
                assert found is None or isinstance(found, (tuple, dwarfline.NotHandled))
        for _ in range(20):
            garbage = dict(sections, **{name: rng.randbytes(rng.randrange(1, 400))})
            for cu in offsets + [rng.randrange(1000)]:
                found = dwarfline.line_table(_reader(garbage), cu, True, 1 << 20)
                assert found is None or isinstance(found, (tuple, dwarfline.NotHandled))
    assert "NotHandled" in results  # the cuts were seen
    for data in [sections[".debug_aranges"][:n] for n in range(0, 40, 3)] + [rng.randbytes(64) for _ in range(50)]:
        found = dwarfline.aranges(data)
        assert found is None or isinstance(found, (tuple, dwarfline.NotHandled))


def test_a_cut_debug_line_in_a_file_gives_the_old_answer(programs, tmp_path, monkeypatch):
    """A copy of a program whose .debug_line is cut short (its section header says it ends in
    the second line program): each address answers what the pyelftools path answers (None where that fails)."""
    pytest.importorskip("elftools")
    data, section, index, whole = _file_section(programs["O2"], ".debug_line")
    first = 4 + struct.unpack_from("<I", whole)[0]  # the first line program, whole
    assert first < section.size
    shoff = struct.unpack_from("<Q", data, 0x28)[0]  # e_shoff
    struct.pack_into("<Q", data, shoff + index * 64 + 32, (first + section.size) // 2)  # its Elf64_Shdr's sh_size
    path = tmp_path / "cut"
    path.write_bytes(bytes(data))
    ours, theirs = _modules(str(path))
    try:
        addresses = _addresses(ours)
        mine = [ours.line(address) for address in addresses]
        assert mine == _pyelftools_lines(theirs, addresses, monkeypatch)
        assert any(mine)  # the first CU's program is whole
    finally:
        ours.close()
        theirs.close()


# --- a made-up unit ------------------------------------------------------------------------------


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _made_up(version: int = 4) -> Dict[str, bytes]:
    """A DWARF 4 CU (comp_dir /build, in .debug_str) and its line program (opcode_base 14:
    one more standard opcode, of 2 ULEB operands; minimum instruction length 4)."""
    abbrev = (_uleb(1) + _uleb(0x11) + b"\x00"  # compile_unit, no children
              + _uleb(0x25) + _uleb(0x08)  # producer: string
              + _uleb(0x10) + _uleb(0x17)  # stmt_list: sec_offset
              + _uleb(0x1B) + _uleb(0x0E)  # comp_dir: strp
              + _uleb(0x11) + _uleb(0x01)  # low_pc: addr
              + b"\x00\x00" + b"\x00")
    strings = b"junk\0/build\0"
    die = _uleb(1) + b"cc\0" + struct.pack("<I", 5) + struct.pack("<I", 5) + struct.pack("<Q", 0x1000)
    info_body = struct.pack("<HIB", version, 0, 8) + die
    info = struct.pack("<I", len(info_body)) + info_body
    header_rest = (bytes([4, 1, 1, (-3) & 0xFF, 12, 14]) + bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 2])
                   + b"src\0/abs\0\0"
                   + b"a.c\0" + _uleb(1) + _uleb(0) + _uleb(0)
                   + b"b.h\0" + _uleb(2) + _uleb(0) + _uleb(0)
                   + b"\0")
    program = (b"\x00" + _uleb(9) + b"\x02" + struct.pack("<Q", 0x1000)  # set_address 0x1000
               + b"\x01"  # copy: 0x1000 a.c:1
               + bytes([14 + 3 + 12 * 2])  # special: address += 2*4, line += 0: 0x1008 a.c:1
               + b"\x03" + _uleb(9)  # advance_line +9
               + b"\x0d" + _uleb(300) + _uleb(7)  # opcode 13, unknown here: skipped (2 ULEBs)
               + b"\x09" + struct.pack("<H", 6)  # fixed_advance_pc 6 (not scaled): 0x100e
               + b"\x01"  # copy: 0x100e a.c:10
               + b"\x00" + _uleb(10) + b"\x03" + b"new.c\0" + _uleb(0) + _uleb(0) + _uleb(0)  # define_file 3
               + b"\x04" + _uleb(3)  # set_file 3
               + b"\x08"  # const_add_pc: (255-14)//12 = 20 → 80 bytes: 0x105e
               + b"\x00" + _uleb(2) + b"\x04" + _uleb(5)  # set_discriminator
               + b"\x00" + _uleb(3) + b"\x80" + b"\xaa\xbb"  # a vendor extended opcode: skipped
               + b"\x01"  # copy: 0x105e new.c:10
               + b"\x04" + _uleb(2) + b"\x02" + _uleb(1) + b"\x01"  # b.h, +4: 0x1062 /abs/b.h:10
               + b"\x02" + _uleb(2)  # advance_pc 2*4
               + b"\x00" + _uleb(1) + b"\x01")  # end_sequence at 0x106a
    line_body = struct.pack("<HI", 4, len(header_rest)) + header_rest + program
    line = struct.pack("<I", len(line_body)) + line_body
    return {".debug_info": info, ".debug_abbrev": abbrev, ".debug_str": strings,
            ".debug_line": b"\xee" * 5 + line}


def test_a_made_up_line_program():
    sections = _made_up()
    found = dwarfline.line_table(_reader(sections), 0, True, 1 << 20)
    assert found == ([0x1000, 0x1008, 0x100E, 0x105E, 0x1062, 0x106A], [
        (0x1000, "/build/src/a.c", 1),
        (0x1008, "/build/src/a.c", 1),
        (0x100E, "/build/src/a.c", 10),
        (0x105E, "/build/new.c", 10),  # directory 0: the compilation directory
        (0x1062, "/abs/b.h", 10),
        (0x106A, "", 0)])
    assert dwarfline.line_table(_reader(sections), 0, False, 20) is None  # large, not asked for
    assert dwarfline.line_table(_reader(sections), 1, True, 1 << 20) is dwarfline.NOT_HANDLED
    info = bytearray(sections[".debug_info"])
    info[0:4] = b"\xff\xff\xff\xff"  # 64-bit DWARF
    assert dwarfline.line_table(_reader(dict(sections, **{".debug_info": bytes(info)})), 0, True, 1 << 20) \
        is dwarfline.NOT_HANDLED
    assert dwarfline.line_table(_reader(_made_up(version=6)), 0, True, 1 << 20) is dwarfline.NOT_HANDLED


def test_units_are_found_by_their_headers_and_those_without_addresses_told_apart():
    """What Module reads of the CUs .debug_aranges does not list: every unit's offset (no DIE
    read), and whether its top DIE names addresses (a unit of data only has no code)."""
    sections = _made_up()
    two = sections[".debug_info"] * 2
    read = _reader(dict(sections, **{".debug_info": two}))
    assert dwarfline.unit_offsets(read, len(two)) == [0, len(two) // 2]
    assert dwarfline.unit_offsets(read, len(two) - 1) is dwarfline.NOT_HANDLED  # lengths do not add up
    assert dwarfline.has_addresses(read, 0) is True
    no_code = bytearray(sections[".debug_abbrev"])
    at = no_code.index(_uleb(0x11) + _uleb(0x01))  # low_pc: addr, made DW_AT_name (0x03): addr
    no_code[at] = 0x03
    assert dwarfline.has_addresses(_reader(dict(sections, **{".debug_abbrev": bytes(no_code)})), 0) is False
    assert dwarfline.has_addresses(read, 3) is dwarfline.NOT_HANDLED  # not a unit's start


def test_file_names_by_version():
    files = [("a.c", 0), ("b.h", 1), ("/abs/c.h", 2)]
    assert dwarfline.file_name(files, ["inc"], 1, 4, "/cd") == "/cd/a.c"
    assert dwarfline.file_name(files, ["inc"], 2, 4, "/cd") == "/cd/inc/b.h"
    assert dwarfline.file_name(files, ["inc"], 0, 4, "/cd") == ""
    assert dwarfline.file_name(files, ["/cd5", "inc"], 0, 5, "/ignored") == "/cd5/a.c"
    assert dwarfline.file_name(files, ["/cd5", "inc"], 1, 5, "/ignored") == "/cd5/inc/b.h"
    assert dwarfline.file_name(files, ["/cd5", "inc"], 2, 5, "") == "/abs/c.h"
    assert dwarfline.file_name(files, ["/cd5"], 3, 5, "") == ""


def test_zlib_prefix_state_is_per_section(tmp_path):
    """Two compressed sections read in turns each continue their own stream."""
    if CC is None:
        pytest.skip("no C compiler")
    src = tmp_path / "x.c"
    src.write_text("int main(void) { return 0; }\n")
    out = tmp_path / "x"
    if subprocess.run([CC, "-g", "-gz", str(src), "-o", str(out)], capture_output=True).returncode:
        pytest.skip("no -gz")
    with open(out, "rb") as stream:
        parsed = elf.ElfFile(stream)
        info, line = parsed.section(".debug_info"), parsed.section(".debug_line")
        assert info is not None and line is not None
        whole_info, whole_line = parsed.data(info), parsed.data(line)
        for start in range(0, max(len(whole_info), len(whole_line)), 7):
            assert parsed.span(info, start, 9) == whole_info[start:start + 9]
            assert parsed.span(line, start, 9) == whole_line[start:start + 9]
