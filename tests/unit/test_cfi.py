"""stacks/cfi.py, the CFI decoder the unwinder uses instead of pyelftools: on real files (the
C library this interpreter runs on, a C program compiled -O2), the FDE found through
.eh_frame_hdr's table is the one a walk over .eh_frame finds, and its decoded rows are those
of pyelftools' get_decoded(), FDE by FDE; on a made-up .eh_frame, what real files seldom
hold (a personality, an LSDA, a signal frame, remember/restore_state, expressions)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from scenario_helpers import libc_of

from waitchain.stacks import cfi, elf

CC = shutil.which("gcc") or shutil.which("cc")
C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((noinline)) static long work(int fd, char *buf, long n) {
    long total = 0;
    for (long i = 0; i < n; i++) { total += read(fd, buf + i % 7, 1); if (total > 100) break; }
    return total * 3;
}
__attribute__((noinline)) long outer(int fd, long n) { char buf[64]; memset(buf, 0, sizeof buf); return work(fd, buf, n) + buf[3]; }
int main(int argc, char **argv) { char *p = malloc(argc * 16); snprintf(p, 16, "%d", argc); return (int)outer(0, atol(p)); }
"""


def _libc() -> str:
    path = libc_of()
    if not path:
        pytest.skip("no C library mapped (static interpreter)")
    return path


def _theirs(path: str, offsets: List[int]) -> Dict[int, Optional[Tuple[int, int, List[Dict[Any, Any]]]]]:
    """pyelftools' decoding of the FDEs at these .eh_frame offsets (None where it fails)."""
    pytest.importorskip("elftools")
    from elftools.dwarf.callframe import CallFrameInfo
    from elftools.dwarf.structs import DWARFStructs
    from elftools.elf.elffile import ELFFile
    out: Dict[int, Optional[Tuple[int, int, List[Dict[Any, Any]]]]] = {}
    with open(path, "rb") as stream:
        parsed = ELFFile(stream)
        section = parsed.get_section_by_name(".eh_frame")
        data = section.data()
        structs = DWARFStructs(little_endian=True, dwarf_format=32, address_size=parsed.elfclass // 8)
        info = CallFrameInfo(io.BytesIO(data), len(data), section["sh_addr"], structs, for_eh_frame=True)
        for offset in offsets:
            try:
                entry = info._parse_entry_at(offset)
                start = entry.header["initial_location"]
                rows = [_plain(row) for row in entry.get_decoded().table]
                out[offset] = (start, start + entry.header["address_range"], rows)
            except Exception:  # an opcode it does not decode (DW_CFA_GNU_args_size)
                out[offset] = None
    return out


def _plain(row: Dict[Any, Any]) -> Dict[Any, Any]:
    out: Dict[Any, Any] = {}
    for key, rule in row.items():
        if key == "pc":
            out[key] = rule
        elif key == "cfa":
            out[key] = (rule.reg, rule.offset, None if rule.expr is None else bytes(rule.expr))
        else:
            out[key] = (rule.type, bytes(rule.arg) if isinstance(rule.arg, list) else rule.arg)
    return out


def _ours(path: str) -> Tuple[elf.ElfFile, bytes, int, cfi.FdeIndex]:
    opened = elf._open_elf(path)
    assert opened is not None, path
    eh_frame, hdr = opened.section(".eh_frame"), opened.section(".eh_frame_hdr")
    assert eh_frame is not None and hdr is not None
    data = opened.data(eh_frame)
    index = cfi.hdr_table(opened.data(hdr), hdr.addr, eh_frame.addr)
    assert index is not None and index.starts
    return opened, data, eh_frame.addr, index


def _agree(path: str, every: int = 1) -> None:
    opened, data, address, index = _ours(path)
    try:
        entries = list(index.entries())
        assert list(cfi.all_fdes(data, address, 8).entries()) == entries  # the table indexes every FDE, sorted
        assert index.find(entries[0][0] - 1) is None  # below the first FDE: none
        offsets = [offset for _, offset in entries[::every]]
        theirs = _theirs(path, offsets)
        cies: Dict[int, cfi.CIE] = {}
        compared = 0
        for start, offset in entries[::every]:
            first, end, rows = cfi.decode(data, address, 8, offset, cies)
            assert first == start
            assert index.find(start) == index.find(end - 1) == offset  # lookups inside it
            expected = theirs[offset]
            if expected is None:
                length = struct.unpack_from("<I", data, offset)[0]
                assert b"\x2e" in data[offset:offset + 4 + length], "pyelftools failed on an FDE without args_size"
                continue
            assert (first, end, [_plain(r) for r in rows]) == expected, hex(start)
            compared += 1
        assert compared >= 0.95 * len(offsets)
    finally:
        opened.stream.close()


def test_the_c_library_decodes_as_pyelftools_does():
    _agree(_libc(), every=3)


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_a_c_program_compiled_o2_decodes_as_pyelftools_does(tmp_path: Path):
    source, binary = tmp_path / "prog.c", tmp_path / "prog"
    source.write_text(C_PROGRAM)
    subprocess.run([str(CC), "-O2", "-g", "-fomit-frame-pointer", "-o", str(binary), str(source)], check=True)
    _agree(str(binary))


# --- a made-up .eh_frame ----------------------------------------------------------------------

BASE = 0x1000  # the section's address
CODE = 0x5000  # the function's


def _entry(body: bytes) -> bytes:
    body += b"\0" * (-(len(body) + 4) % 8)  # DW_CFA_nop padding
    return struct.pack("<I", len(body)) + body


def _made_up() -> Tuple[bytes, int, int]:
    """A "zPLR" CIE (indirect pcrel personality, pcrel LSDA and FDE pointers), its FDE, a
    "zRS" CIE (a signal frame) and its FDE: (section, offset of the first FDE, of the second)."""
    cie = _entry(struct.pack("<IB", 0, 1) + b"zPLR\0" + b"\x01\x78\x10"  # code 1, data -8, RA 16
                 + b"\x07" + b"\x9b" + struct.pack("<i", 0x100) + b"\x1b\x1b"
                 + b"\x0c\x07\x08" + b"\x90\x01")  # def_cfa rsp+8; RA at cfa-8
    fde_at = len(cie)
    pc_field = BASE + fde_at + 8
    ops = (b"\x41" + b"\x0e\x10" + b"\x86\x02"  # advance 1; cfa rsp+16; rbp at cfa-16
           + b"\x0a" + b"\x44" + b"\x2e\x08"  # remember_state; advance 4; GNU_args_size 8
           + b"\x0f\x02\x77\x08"  # def_cfa_expression (DW_OP_breg7 8)
           + b"\x10\x03\x01\x50"  # rbx: expression (DW_OP_reg0)
           + b"\x42" + b"\x0b" + b"\xc6"  # advance 2; restore_state; restore rbp
           + b"\x03\x00\x01" + b"\x08\x0c" + b"\x07\x10")  # advance_loc2 256; r12 same value; RA undefined
    fde = _entry(struct.pack("<Ii", fde_at + 4, CODE - pc_field) + struct.pack("<i", 0x400)
                 + b"\x04" + struct.pack("<i", 0x77) + ops)
    signal_cie_at = fde_at + len(fde)
    signal_cie = _entry(struct.pack("<IB", 0, 1) + b"zRS\0" + b"\x01\x78\x10" + b"\x01\x03"  # udata4
                        + b"\x10\x07\x02\x77\x60")  # rsp: expression
    signal_fde_at = signal_cie_at + len(signal_cie)
    signal_fde = _entry(struct.pack("<III", signal_fde_at + 4 - signal_cie_at, CODE + 0x1000, 0x10) + b"\x00"
                        + b"\x0c\x07\x00")
    return cie + fde + signal_cie + signal_fde + b"\0\0\0\0", fde_at, signal_fde_at


def test_a_made_up_eh_frame_with_what_real_files_seldom_hold():
    data, fde_at, signal_at = _made_up()
    R, C = cfi.RegisterRule, cfi.CFARule
    ra = R("OFFSET", -8)
    start, end, rows = cfi.decode(data, BASE, 8, fde_at, {})
    assert (start, end) == (CODE, CODE + 0x400)
    assert rows == [
        {"pc": CODE, "cfa": C(7, 8), 16: ra},
        {"pc": CODE + 1, "cfa": C(7, 16), 16: ra, 6: R("OFFSET", -16)},
        {"pc": CODE + 5, "cfa": C(None, None, b"\x77\x08"), 16: ra, 6: R("OFFSET", -16), 3: R("EXPRESSION", b"\x50")},
        {"pc": CODE + 7, "cfa": C(7, 16), 16: ra},  # the remembered row, then rbp as the CIE left it
        {"pc": CODE + 7 + 256, "cfa": C(7, 16), 16: R("UNDEFINED"), 12: R("SAME_VALUE")},
    ]
    assert cfi.decode(data, BASE, 8, signal_at, {})[2] == [
        {"pc": CODE + 0x1000, "cfa": C(7, 0), 7: R("EXPRESSION", b"\x77\x60")}]
    assert list(cfi.all_fdes(data, BASE, 8).entries()) == [(CODE, fde_at), (CODE + 0x1000, signal_at)]


@pytest.mark.parametrize("damage", ["truncated", "opcode", "restore_state"])
def test_a_damaged_entry_is_unreadable_not_a_crash(damage: str):
    data, fde_at, _ = _made_up()
    if damage == "truncated":
        data = data[:fde_at + 20]
    elif damage == "opcode":
        data = data[:fde_at + 24] + b"\x3f" + data[fde_at + 25:]  # not a DW_CFA opcode
    else:
        data = data.replace(b"\x0a\x44", b"\x00\x44")  # restore_state with nothing remembered
    with pytest.raises((cfi.BadEntry, IndexError, struct.error)):
        cfi.decode(data, BASE, 8, fde_at, {})
