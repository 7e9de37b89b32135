"""Call frame information of .eh_frame, decoded here (no pyelftools: importing it and its
construct parsers cost ~40 ms of a run's start-up): the FDE covering an address is found
through .eh_frame_hdr's binary search table, and only that FDE and its CIE are decoded.

The table of rows is the one the DWARF standard (6.4.1) defines and pyelftools'
get_decoded() builds: each row a dict of "pc", "cfa" (CFARule) and register number →
RegisterRule, a new row at each advance. Handled: what x86-64 and aarch64 code puts in
.eh_frame (advance_loc*, def_cfa*, offset*, val_offset*, restore*, register,
remember/restore_state, undefined, same_value, (val_)expression and def_cfa_expression,
kept as their bytes, GNU_args_size, GNU_window_save, the obsolete GNU_negative_offset_extended),
augmentations z, P, L, R, S and the pointer encodings of the DWARF and LSB specifications.
Anything else, or an entry running past its end, makes the entry unreadable (None): the
unwinder then falls back as for an address with no CFI."""

from __future__ import annotations

import struct
from bisect import bisect_right

from ..records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

    Row = Dict[Any, Any]  # "pc": int, "cfa": CFARule, register number → RegisterRule


class CFARule(NamedTuple):
    reg: Optional[int]
    offset: Optional[int]
    expr: Optional[bytes] = None  # a DWARF expression computes the CFA (no reg, no offset)


class RegisterRule(NamedTuple):
    type: str  # UNDEFINED, SAME_VALUE, OFFSET, VAL_OFFSET, REGISTER, EXPRESSION, VAL_EXPRESSION
    arg: Any = None  # the offset, the register, the expression's bytes


class CIE(NamedTuple):
    code_align: int
    data_align: int
    fde_encoding: int
    augmented: bool  # its FDEs carry augmentation data (the string begins with "z")
    initial: Optional[Row]  # the row its initial instructions leave (None: they leave none)


class BadEntry(Exception):
    """An entry that cannot be read: truncated, or something not handled."""


# DW_EH_PE_* pointer encodings: the format (low 4 bits), then how it applies (0x70), indirect.
OMIT = 0xFF
_FIXED = {0x02: "<H", 0x03: "<I", 0x04: "<Q", 0x0A: "<h", 0x0B: "<i", 0x0C: "<q"}
PCREL, DATAREL = 0x10, 0x30


def uleb(data: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def sleb(data: bytes, pos: int) -> Tuple[int, int]:
    value, end = uleb(data, pos)
    bits = 7 * (end - pos)
    return (value - (1 << bits) if value >> (bits - 1) & 1 else value), end


def pointer(data: bytes, pos: int, encoding: int, address: int, word: int,
            datarel: Optional[int] = None) -> Tuple[int, int]:
    """(value, next position) of a pointer encoded at data[pos]; `address` is where data
    begins in memory (pcrel), `datarel` the data-relative base (.eh_frame_hdr's address).
    An indirect pointer is the address of the value (what it points to is in memory)."""
    form = encoding & 0x0F
    if form == 0x00:  # absptr: a target address
        if pos + word > len(data):
            raise BadEntry("truncated pointer")
        value, end = int.from_bytes(data[pos:pos + word], "little"), pos + word
    elif form == 0x01:
        value, end = uleb(data, pos)
    elif form == 0x09:
        value, end = sleb(data, pos)
    elif form in _FIXED:
        fmt = _FIXED[form]
        (value,) = struct.unpack_from(fmt, data, pos)
        end = pos + struct.calcsize(fmt)
    else:
        raise BadEntry(f"pointer encoding {encoding:#x}")
    how = encoding & 0x70
    if how == PCREL:
        value += address + pos
    elif how == DATAREL and datarel is not None:
        value += datarel
    elif how != 0:
        raise BadEntry(f"pointer encoding {encoding:#x}")
    return value, end


# --- .eh_frame_hdr ----------------------------------------------------------------------------


class FdeIndex(NamedTuple):
    """The FDEs of an .eh_frame, sorted by initial location: the i-th starts at starts[i] +
    shift and is at offsets[i] + base in .eh_frame. .eh_frame_hdr's table keeps its
    numbers relative (two slices of one unpack: building lists of absolute ones took ~2 ms
    for postgres's 17,000 FDEs, per run; now ~0.7)."""

    starts: Sequence[int]
    offsets: Sequence[int]
    shift: int = 0
    base: int = 0

    def find(self, vaddr: int) -> Optional[int]:
        """The .eh_frame offset of the FDE starting at or below vaddr (whether it covers
        vaddr is the FDE's own range)."""
        i = bisect_right(self.starts, vaddr - self.shift) - 1
        return self.offsets[i] + self.base if i >= 0 else None

    def entries(self) -> Iterator[Tuple[int, int]]:
        """(initial location, .eh_frame offset) of each FDE, in order."""
        return ((start + self.shift, offset + self.base) for start, offset in zip(self.starts, self.offsets))


def hdr_table(data: bytes, hdr_addr: int, eh_frame_addr: int) -> Optional[FdeIndex]:
    """.eh_frame_hdr's sorted table, in the usual encoding (datarel sdata4); None for
    another encoding or none."""
    if len(data) < 12 or data[0] != 1 or data[3] != 0x3B:
        return None
    count_enc = data[2]
    at = 4 + {0x1B: 4, 0x03: 4, 0x0B: 4}.get(data[1], -100)
    if at < 4 or count_enc not in (0x03, 0x0B):
        return None
    (count,) = struct.unpack_from("<I", data, at)
    at += 4
    if at + 8 * count > len(data):
        return None
    pairs = struct.unpack_from(f"<{2 * count}i", data, at)
    return FdeIndex(pairs[0::2], pairs[1::2], hdr_addr, hdr_addr - eh_frame_addr)


# --- entries ----------------------------------------------------------------------------------


def _entry(data: bytes, offset: int) -> Tuple[int, int, int]:
    """(position of its id field, the id's size, end) of the entry at offset; id size 0 for
    the zero terminator."""
    if offset < 0 or offset + 4 > len(data):
        raise BadEntry("outside .eh_frame")
    (length,) = struct.unpack_from("<I", data, offset)
    if length == 0:
        return offset + 4, 0, offset + 4
    if length == 0xFFFFFFFF:
        (length,) = struct.unpack_from("<Q", data, offset + 4)
        at, size = offset + 12, 8
    else:
        at, size = offset + 4, 4
    end = at + length
    if end > len(data) or length < size:
        raise BadEntry("truncated entry")
    return at, size, end


def _id(data: bytes, at: int, size: int) -> int:
    return int(struct.unpack_from("<Q" if size == 8 else "<I", data, at)[0])


def all_fdes(data: bytes, address: int, word: int) -> FdeIndex:
    """Every FDE of an .eh_frame at `address`: the index when a file has no .eh_frame_hdr."""
    pairs: List[Tuple[int, int]] = []
    cies: Dict[int, CIE] = {}
    offset = 0
    while offset < len(data):
        at, size, end = _entry(data, offset)
        if size and _id(data, at, size):
            pairs.append((fde_header(data, address, word, offset, cies)[0], offset))
        offset = end
    pairs.sort()
    return FdeIndex([p[0] for p in pairs], [p[1] for p in pairs])


def fde_header(data: bytes, address: int, word: int, offset: int,
               cies: Dict[int, CIE]) -> Tuple[int, int, CIE, int, int]:
    """(initial location, address range, its CIE, where its instructions begin, end)."""
    at, size, end = _entry(data, offset)
    cie_id = _id(data, at, size) if size else 0
    if not cie_id:
        raise BadEntry("not an FDE")
    cie_offset = at - cie_id
    cie = cies.get(cie_offset)
    if cie is None:
        cie = cies[cie_offset] = _cie(data, word, cie_offset)
    pos = at + size
    start, pos = pointer(data, pos, cie.fde_encoding, address, word)
    length, pos = pointer(data, pos, cie.fde_encoding & 0x0F, address, word)
    if cie.augmented:
        skip, pos = uleb(data, pos)
        pos += skip
    return start, length, cie, pos, end


def _cie(data: bytes, word: int, offset: int) -> CIE:
    at, size, end = _entry(data, offset)
    if not size or _id(data, at, size) != 0:
        raise BadEntry("not a CIE")
    pos = at + size
    version = data[pos]
    aug_end = data.index(b"\0", pos + 1)
    augmentation = data[pos + 1:aug_end]
    pos = aug_end + 1
    if version >= 4:
        pos += 2  # address size, segment selector size
    code_align, pos = uleb(data, pos)
    data_align, pos = sleb(data, pos)
    if version == 1:
        pos += 1  # the return address column
    else:
        _, pos = uleb(data, pos)
    fde_encoding = 0x00
    if augmentation:
        if augmentation[:1] != b"z":
            raise BadEntry(f"augmentation {augmentation!r}")
        length, pos = uleb(data, pos)
        here, pos = pos, pos + length
        for char in augmentation[1:].decode("latin-1"):
            if char == "R":
                fde_encoding = data[here]
                here += 1
            elif char == "L":
                here += 1
            elif char == "P":
                _, here = pointer(data, here + 1, data[here] & 0x0F, 0, word)
            elif char != "S":
                break  # unknown: the rest of the data is skipped by its length
    cie = CIE(code_align, data_align, fde_encoding, augmentation[:1] == b"z", None)
    rows = _run(data, pos, end, cie, {"pc": 0, "cfa": CFARule(None, 0)}, None, word)
    return cie._replace(initial=rows[-1] if rows else None)


def decode(data: bytes, address: int, word: int, offset: int,
           cies: Dict[int, CIE]) -> Tuple[int, int, List[Row]]:
    """(start, end, rows) of the FDE at `offset` in an .eh_frame at `address`; `cies` caches
    the file's decoded CIEs. BadEntry (or IndexError, struct.error) when unreadable."""
    start, length, cie, pos, end = fde_header(data, address, word, offset, cies)
    row: Row = dict(cie.initial, pc=start) if cie.initial is not None else {"pc": start, "cfa": CFARule(None, 0)}
    return start, start + length, _run(data, pos, end, cie, row, cie.initial, word)


def _run(data: bytes, pos: int, end: int, cie: CIE, row: Row, initial: Optional[Row], word: int) -> List[Row]:
    """Execute the instructions in data[pos:end] from `row`: the rows of the table."""
    rows: List[Row] = []
    saved: List[Row] = []
    factor = cie.data_align
    while pos < end:
        op = data[pos]
        pos += 1
        high, low = op & 0xC0, op & 0x3F
        if high == 0x40:  # advance_loc
            rows.append(row.copy())
            row["pc"] += low * cie.code_align
            continue
        if high == 0x80:  # offset
            value, pos = uleb(data, pos)
            row[low] = RegisterRule("OFFSET", value * factor)
            continue
        if high == 0xC0:  # restore
            _restore(row, initial, low)
            continue
        if op == 0x00 or op == 0x2D:  # nop; GNU_window_save (aarch64: negate_ra_state)
            continue
        if op == 0x01:  # set_loc
            rows.append(row.copy())
            row["pc"] = int.from_bytes(data[pos:pos + word], "little")
            pos += word
        elif op in (0x02, 0x03, 0x04):  # advance_loc1, 2, 4
            fmt = {0x02: "<B", 0x03: "<H", 0x04: "<I"}[op]
            (delta,) = struct.unpack_from(fmt, data, pos)
            pos += struct.calcsize(fmt)
            rows.append(row.copy())
            row["pc"] += delta * cie.code_align
        elif op in (0x05, 0x14):  # offset_extended, val_offset
            reg, pos = uleb(data, pos)
            value, pos = uleb(data, pos)
            row[reg] = RegisterRule("OFFSET" if op == 0x05 else "VAL_OFFSET", value * factor)
        elif op in (0x11, 0x15):  # offset_extended_sf, val_offset_sf
            reg, pos = uleb(data, pos)
            value, pos = sleb(data, pos)
            row[reg] = RegisterRule("OFFSET" if op == 0x11 else "VAL_OFFSET", value * factor)
        elif op == 0x2F:  # GNU_negative_offset_extended
            reg, pos = uleb(data, pos)
            value, pos = uleb(data, pos)
            row[reg] = RegisterRule("OFFSET", -value * factor)
        elif op == 0x06:  # restore_extended
            reg, pos = uleb(data, pos)
            _restore(row, initial, reg)
        elif op in (0x07, 0x08):  # undefined, same_value
            reg, pos = uleb(data, pos)
            row[reg] = RegisterRule("UNDEFINED" if op == 0x07 else "SAME_VALUE")
        elif op == 0x09:  # register
            reg, pos = uleb(data, pos)
            other, pos = uleb(data, pos)
            row[reg] = RegisterRule("REGISTER", other)
        elif op == 0x0A:  # remember_state
            saved.append(row.copy())
        elif op == 0x0B:  # restore_state (the location stays)
            if not saved:
                raise BadEntry("restore_state without remember_state")
            pc = row["pc"]
            row = saved.pop()
            row["pc"] = pc
        elif op == 0x0C:  # def_cfa
            reg, pos = uleb(data, pos)
            value, pos = uleb(data, pos)
            row["cfa"] = CFARule(reg, value)
        elif op == 0x12:  # def_cfa_sf
            reg, pos = uleb(data, pos)
            value, pos = sleb(data, pos)
            row["cfa"] = CFARule(reg, value * factor)
        elif op == 0x0D:  # def_cfa_register
            reg, pos = uleb(data, pos)
            row["cfa"] = CFARule(reg, row["cfa"].offset)
        elif op == 0x0E:  # def_cfa_offset
            value, pos = uleb(data, pos)
            row["cfa"] = CFARule(row["cfa"].reg, value)
        elif op == 0x13:  # def_cfa_offset_sf
            value, pos = sleb(data, pos)
            row["cfa"] = CFARule(row["cfa"].reg, value * factor)
        elif op == 0x0F:  # def_cfa_expression
            size, pos = uleb(data, pos)
            row["cfa"] = CFARule(None, None, bytes(data[pos:pos + size]))
            pos += size
        elif op in (0x10, 0x16):  # expression, val_expression
            reg, pos = uleb(data, pos)
            size, pos = uleb(data, pos)
            row[reg] = RegisterRule("EXPRESSION" if op == 0x10 else "VAL_EXPRESSION", bytes(data[pos:pos + size]))
            pos += size
        elif op == 0x2E:  # GNU_args_size: the stack's outgoing arguments, not a rule
            _, pos = uleb(data, pos)
        else:
            raise BadEntry(f"CFI opcode {op:#x}")
    if pos > end:
        raise BadEntry("instructions past the entry's end")
    if row["cfa"].reg is not None or len(row) > 2:
        rows.append(row)
    return rows


def _restore(row: Row, initial: Optional[Row], reg: int) -> None:
    """The register's rule as the CIE's initial instructions left it."""
    if initial is None:
        raise BadEntry("restore outside an FDE")
    if reg in initial:
        row[reg] = initial[reg]
    else:
        row.pop(reg, None)
