"""Address → (source file, line) from DWARF 2-5, reading only what one CU's lines need: the
CU's header and top DIE in .debug_info (with its abbreviations), its line program in
.debug_line, and the strings those name. Pure functions over section bytes; pyelftools (whose
import and whole-file decompression cost a `--json` run ~0.2 s for libc's debug file) stays the
fallback in stacks/elf.py for any layout read here as NOT_HANDLED: 64-bit DWARF, split or type
units, GNU/supplementary forms, indexed strings (strx), VLIW line programs, anything that does
not add up. Garbage is NOT_HANDLED too, never an exception and never a guess.

The rows are those stacks/elf.py's pyelftools path builds: (address, file, line) per row of the
line table, (address, "", 0) per end of sequence, sorted by address with an end of sequence
after a row at its address."""

from __future__ import annotations

import os
import struct

from .cfi import sleb as _sleb, uleb as _uleb  # LEB128, as .eh_frame has it

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

    # read(section name, start, size): that many bytes of the (decompressed) section from
    # start, fewer at its end, b"" without the section
    Read = Callable[[str, int, int], bytes]
    Rows = Tuple[List[int], List[Tuple[int, str, int]]]
    Aranges = Tuple[List[int], List[Tuple[int, int, int]]]


class NotHandled:
    """A layout this module does not read: ask pyelftools."""

    def __repr__(self) -> str:
        return "NOT_HANDLED"


NOT_HANDLED = NotHandled()


class _Unhandled(Exception):
    pass


# DW_FORM_* codes (DWARF 5 section 7.5.6) by how their value is laid out
_FIXED = {0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x1E: 16,  # data1/2/4/8/16
          0x0C: 1, 0x19: 0, 0x21: 0,  # flag, flag_present, implicit_const (its value: the abbrev's)
          0x11: 1, 0x12: 2, 0x13: 4, 0x14: 8, 0x20: 8,  # ref1/2/4/8, ref_sig8
          0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4,  # strx1-4
          0x29: 1, 0x2A: 2, 0x2B: 3, 0x2C: 4,  # addrx1-4
          0x1C: 4, 0x24: 8}  # ref_sup4/8
_ULEB_FORMS = {0x0F, 0x15, 0x1A, 0x1B, 0x22, 0x23}  # udata, ref_udata, strx, addrx, loclistx, rnglistx
_OFFSET_FORMS = {0x0E, 0x17, 0x1F, 0x1D}  # strp, sec_offset, line_strp, strp_sup: 4 bytes in 32-bit DWARF
FORM_ADDR, FORM_REF_ADDR, FORM_STRING, FORM_SDATA, FORM_INDIRECT, FORM_IMPLICIT_CONST = 0x01, 0x10, 0x08, 0x0D, 0x16, 0x21
FORM_BLOCK, FORM_BLOCK1, FORM_BLOCK2, FORM_BLOCK4, FORM_EXPRLOC = 0x09, 0x0A, 0x03, 0x04, 0x18
FORM_STRP, FORM_LINE_STRP = 0x0E, 0x1F
AT_STMT_LIST, AT_COMP_DIR = 0x10, 0x1B
AT_LOW_PC, AT_HIGH_PC, AT_RANGES = 0x11, 0x12, 0x55
UT_COMPILE, UT_PARTIAL = 0x01, 0x03
LNCT_PATH, LNCT_DIRECTORY_INDEX = 1, 2
# standard opcodes (DW_LNS_*) and extended ones (DW_LNE_*)
LNS_COPY, LNS_ADVANCE_PC, LNS_ADVANCE_LINE, LNS_SET_FILE, LNS_CONST_ADD_PC, LNS_FIXED_ADVANCE_PC = 1, 2, 3, 4, 8, 9
LNS_NO_OPERAND = {6, 7, 10, 11}  # negate_stmt, set_basic_block, set_prologue_end, set_epilogue_begin
LNS_ONE_ULEB = {5, 12}  # set_column, set_isa
LNE_END_SEQUENCE, LNE_SET_ADDRESS, LNE_DEFINE_FILE, LNE_SET_DISCRIMINATOR = 1, 2, 3, 4
FIRST_READ = 4096  # bytes first read of a unit's header and top DIE, of an abbrev table, of a string


def aranges(data: bytes, order: str = "<") -> Union[Aranges, None, NotHandled]:
    """.debug_aranges: the ranges' starts, sorted, and (start, length, CU offset) of each.
    None when the section is truncated; NOT_HANDLED for a layout not read here (64-bit
    DWARF, segments, an address size other than 4 or 8)."""
    found: List[Tuple[int, int, int]] = []
    offset = 0
    try:
        while offset < len(data):
            length, _version, cu, address_size, segment_size = struct.unpack_from(order + "IHIBB", data, offset)
            if length >= 0xFFFFFFF0 or segment_size or address_size not in (4, 8):
                return NOT_HANDLED
            pair = 2 * address_size
            at = -(-(offset + 12) // pair) * pair  # the first pair is aligned to its size
            fmt = order + ("QQ" if address_size == 8 else "II")
            while True:
                start, size = struct.unpack_from(fmt, data, at)
                at += pair
                if start == 0 and size == 0:
                    break
                found.append((start, size, cu))
            offset += length + 4
    except struct.error:  # a truncated section
        return None
    found.sort(key=lambda e: e[0])
    return [e[0] for e in found], found


def unit_offsets(read: Read, size: int) -> Union[List[int], NotHandled]:
    """The offset of every unit in .debug_info (`size` bytes), by hopping from each unit's
    header to the next: no DIE is read. NOT_HANDLED for 64-bit DWARF or lengths that do not
    add up."""
    found: List[int] = []
    offset = 0
    while offset < size:
        head = read(".debug_info", offset, 4)
        if len(head) < 4:
            return NOT_HANDLED
        length = struct.unpack_from("<I", head)[0]
        if length >= 0xFFFFFFF0 or length == 0:
            return NOT_HANDLED
        found.append(offset)
        offset += 4 + length
    return found if offset == size else NOT_HANDLED


def has_addresses(read: Read, cu_offset: int) -> Union[bool, NotHandled]:
    """Whether the top DIE of the unit at `cu_offset` names addresses (DW_AT_low_pc,
    DW_AT_high_pc or DW_AT_ranges): a unit of data or declarations only has no code."""
    try:
        values = _growing(read, ".debug_info", cu_offset, lambda data: _top_die(read, data)[1])
    except Exception:  # _Unhandled, or bytes that do not add up
        return NOT_HANDLED
    return any(attribute in (AT_LOW_PC, AT_HIGH_PC, AT_RANGES) for attribute, *_ in values)


def line_table(read: Read, cu_offset: int, large: bool, max_program: int) -> Union[Rows, None, NotHandled]:
    """The rows of the line program of the CU at `cu_offset` in .debug_info. None: the program
    is larger than `max_program` bytes and `large` is False (not decoded: no line); ([], [])
    for a CU without a line program; NOT_HANDLED for what this module does not read."""
    try:
        unit = _unit(read, cu_offset)
        if unit is None:
            return [], []
        return _rows(read, unit, large, max_program)
    except Exception:  # _Unhandled, or bytes that do not add up (struct.error, IndexError, ...)
        return NOT_HANDLED


def file_name(files: Sequence[Tuple[str, int]], dirs: Sequence[str], index: int, version: int,
              comp_dir: str) -> str:
    """The path of file `index` of a line program's header ((name, directory index) each):
    DWARF 5 counts files and directories from 0, directory 0 being the compilation
    directory; before, from 1, directory 0 meaning the compilation directory."""
    i = index if version >= 5 else index - 1
    if not 0 <= i < len(files):
        return ""
    name, dir_index = files[i]
    d = dir_index if version >= 5 else dir_index - 1
    directory = dirs[d] if 0 <= d < len(dirs) else ""
    if version < 5 and dir_index == 0:
        directory = comp_dir
    path = os.path.join(directory, name) if directory else name
    # Relative to the compilation directory (DWARF 5: directory 0 is that directory itself).
    base = comp_dir if version < 5 else (dirs[0] if dirs and d != 0 else "")
    if not path.startswith("/") and base:
        path = os.path.join(base, path)
    return os.path.normpath(path)


# --- reading bytes -------------------------------------------------------------------------------


def _cstring(data: bytes, at: int) -> Tuple[bytes, int]:
    end = data.index(b"\0", at)  # ValueError when it runs off the bytes
    return data[at:end], end + 1


def _growing(read: Read, section: str, start: int, parse: Callable[[bytes], Any]) -> Any:
    """parse(bytes of `section` from `start`), read again with twice as many bytes while it
    runs off the end of what was read and the section has more."""
    size = FIRST_READ
    while True:
        data = read(section, start, size)
        try:
            return parse(data)
        except (IndexError, ValueError, struct.error):
            if len(data) < size:
                raise _Unhandled(f"{section} ends at {start + len(data)}")
            size *= 2


def _string(read: Read, section: str, offset: int) -> str:
    raw = _growing(read, section, offset, lambda data: _cstring(data, 0)[0])
    return _text(raw)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


# --- the unit ------------------------------------------------------------------------------------


class _Unit:
    __slots__ = ("address_size", "stmt_list", "comp_dir")

    def __init__(self, address_size: int, stmt_list: int, comp_dir: str) -> None:
        self.address_size = address_size
        self.stmt_list = stmt_list
        self.comp_dir = comp_dir


def _unit(read: Read, cu_offset: int) -> Optional[_Unit]:
    """The CU's address size, line program offset and compilation directory; None when its
    top DIE has no DW_AT_stmt_list."""
    return _growing(read, ".debug_info", cu_offset, lambda data: _parse_unit(read, data))  # type: ignore[no-any-return]


def _parse_unit(read: Read, data: bytes) -> Optional[_Unit]:
    address_size, values = _top_die(read, data)
    stmt_list: Optional[int] = None
    comp_dir: Optional[Tuple[int, Any]] = None
    for attribute, form, start, end in values:
        if attribute == AT_STMT_LIST:
            if form in (0x06, 0x17):  # data4 (DWARF 2, 3), sec_offset
                stmt_list = struct.unpack_from("<I", data, start)[0]
            elif form == 0x07:
                stmt_list = struct.unpack_from("<Q", data, start)[0]
            else:
                raise _Unhandled(f"DW_AT_stmt_list of form {form:#x}")
        elif attribute == AT_COMP_DIR:
            if form == FORM_STRING:
                comp_dir = (form, data[start:end - 1])
            elif form in (FORM_STRP, FORM_LINE_STRP):
                comp_dir = (form, struct.unpack_from("<I", data, start)[0])
            else:
                raise _Unhandled(f"DW_AT_comp_dir of form {form:#x}")
    if stmt_list is None:
        return None
    return _Unit(address_size, stmt_list, _form_string(read, comp_dir) if comp_dir is not None else "")


def _top_die(read: Read, data: bytes) -> Tuple[int, List[Tuple[int, int, int, int]]]:
    """A unit's address size, and (attribute, form, start, end) of each attribute of its top
    DIE: where its value lies in `data` (the unit's bytes from its header)."""
    length, version = struct.unpack_from("<IH", data, 0)
    if length >= 0xFFFFFFF0:
        raise _Unhandled("64-bit DWARF (or a reserved length)")
    if not 2 <= version <= 5:
        raise _Unhandled(f"unit version {version}")
    if version >= 5:
        unit_type, address_size, abbrev_offset = struct.unpack_from("<BBI", data, 6)
        if unit_type not in (UT_COMPILE, UT_PARTIAL):
            raise _Unhandled(f"unit type {unit_type}")
        at = 12
    else:
        abbrev_offset, address_size = struct.unpack_from("<IB", data, 6)
        at = 11
    code, at = _uleb(data, at)
    if code == 0:
        raise _Unhandled("no top DIE")
    values = []
    for attribute, form, _implicit in _abbrev(read, abbrev_offset, code):
        if form == FORM_INDIRECT:
            form, at = _uleb(data, at)
            if form in (FORM_INDIRECT, FORM_IMPLICIT_CONST):
                raise _Unhandled("indirect form of no value")
        start = at
        at = _skip(data, at, form, version, address_size)
        values.append((attribute, form, start, at))
    if at > len(data):
        raise IndexError("the top DIE runs past the bytes read")
    return address_size, values


def _form_string(read: Read, value: Tuple[int, Any]) -> str:
    form, raw = value
    if form == FORM_STRING:
        return _text(raw)
    return _string(read, ".debug_str" if form == FORM_STRP else ".debug_line_str", raw)


def _abbrev(read: Read, offset: int, code: int) -> List[Tuple[int, int, int]]:
    """The (attribute, form, implicit constant) of abbreviation `code` of the table at `offset`."""
    def parse(data: bytes) -> List[Tuple[int, int, int]]:
        at = 0
        while True:
            this, at = _uleb(data, at)
            if this == 0:
                raise _Unhandled(f"abbreviation {code} not in its table")
            _tag, at = _uleb(data, at)
            at += 1  # DW_CHILDREN_*
            specs: List[Tuple[int, int, int]] = []
            while True:
                attribute, at = _uleb(data, at)
                form, at = _uleb(data, at)
                if attribute == 0 and form == 0:
                    break
                implicit = 0
                if form == FORM_IMPLICIT_CONST:
                    implicit, at = _sleb(data, at)
                specs.append((attribute, form, implicit))
            if at > len(data):
                raise IndexError("the table runs past the bytes read")
            if this == code:
                return specs
    return _growing(read, ".debug_abbrev", offset, parse)  # type: ignore[no-any-return]


def _skip(data: bytes, at: int, form: int, version: int, address_size: int) -> int:
    """Where the value of `form` at `at` ends (32-bit DWARF)."""
    size = _FIXED.get(form)
    if size is not None:
        return at + size
    if form in _OFFSET_FORMS:
        return at + 4
    if form == FORM_ADDR:
        return at + address_size
    if form == FORM_REF_ADDR:
        return at + (address_size if version == 2 else 4)
    if form in _ULEB_FORMS:
        return _uleb(data, at)[1]
    if form == FORM_SDATA:
        return _sleb(data, at)[1]
    if form == FORM_STRING:
        return _cstring(data, at)[1]
    if form in (FORM_BLOCK, FORM_EXPRLOC):
        length, at = _uleb(data, at)
        return at + length
    if form == FORM_BLOCK1:
        return at + 1 + data[at]
    if form == FORM_BLOCK2:
        return at + 2 + struct.unpack_from("<H", data, at)[0]
    if form == FORM_BLOCK4:
        return at + 4 + struct.unpack_from("<I", data, at)[0]
    raise _Unhandled(f"form {form:#x}")  # GNU and unknown forms


# --- the line program ----------------------------------------------------------------------------


def _rows(read: Read, unit: _Unit, large: bool, max_program: int) -> Optional[Rows]:
    head = read(".debug_line", unit.stmt_list, 4)
    if len(head) < 4:
        raise _Unhandled("no line program at DW_AT_stmt_list")
    length = struct.unpack_from("<I", head)[0]
    if length >= 0xFFFFFFF0:
        raise _Unhandled("64-bit DWARF line program")
    data = read(".debug_line", unit.stmt_list, 4 + length)
    if len(data) < 4 + length:
        raise _Unhandled("truncated line program")
    header = _LineHeader(read, data, unit)
    if not large and len(data) - header.program > max_program:
        return None
    return _run(data, header, unit)


class _LineHeader:
    """A line program's header (DWARF 2-5, 32-bit), read from its unit's bytes."""

    def __init__(self, read: Read, data: bytes, unit: _Unit) -> None:
        version = self.version = struct.unpack_from("<H", data, 4)[0]
        if not 2 <= version <= 5:
            raise _Unhandled(f"line program version {version}")
        at = 6
        if version >= 5:
            address_size, segment_size = data[6], data[7]
            if address_size != unit.address_size or segment_size:
                raise _Unhandled("line program's address size or segments")
            at = 8
        header_length = struct.unpack_from("<I", data, at)[0]
        at += 4
        self.program = at + header_length  # where the opcodes start
        self.min_length = data[at]
        at += 1
        if version >= 4:
            if data[at] != 1:
                raise _Unhandled("VLIW line program (maximum_operations_per_instruction != 1)")
            at += 1
        self.default_is_stmt = data[at]
        self.line_base = struct.unpack_from("<b", data, at + 1)[0]
        self.line_range, self.opcode_base = data[at + 2], data[at + 3]
        if self.line_range == 0 or self.opcode_base == 0:
            raise _Unhandled("line_range or opcode_base 0")
        at += 4
        self.opcode_lengths = data[at:at + self.opcode_base - 1]
        at += self.opcode_base - 1
        self.dirs: List[str] = []
        self.files: List[Tuple[str, int]] = []
        if version >= 5:
            at = _entries(read, data, at, unit, self.dirs, None)
            at = _entries(read, data, at, unit, None, self.files)
        else:
            while data[at]:
                raw, at = _cstring(data, at)
                self.dirs.append(_text(raw))
            at += 1
            while data[at]:
                at = _file_entry(data, at, self.files)
            at += 1
        if at != self.program:
            raise _Unhandled("header fields and header_length disagree")


def _entries(read: Read, data: bytes, at: int, unit: _Unit, dirs: Optional[List[str]],
             files: Optional[List[Tuple[str, int]]]) -> int:
    """DWARF 5: a directory or file name table, by its entry format (content type, form)."""
    formats = []
    count, at = data[at], at + 1
    for _ in range(count):
        content, at = _uleb(data, at)
        form, at = _uleb(data, at)
        formats.append((content, form))
    count, at = _uleb(data, at)
    for _ in range(count):
        path: Optional[str] = None
        dir_index: Optional[int] = None
        for content, form in formats:
            start = at
            at = _skip(data, at, form, 5, unit.address_size)
            if content == LNCT_PATH:
                if form == FORM_STRING:
                    path = _text(data[start:at - 1])
                elif form in (FORM_STRP, FORM_LINE_STRP):
                    path = _form_string(read, (form, struct.unpack_from("<I", data, start)[0]))
                else:
                    raise _Unhandled(f"DW_LNCT_path of form {form:#x}")
            elif content == LNCT_DIRECTORY_INDEX:
                if form == 0x0F:
                    dir_index = _uleb(data, start)[0]
                elif form in (0x0B, 0x05):  # data1, data2
                    dir_index = int.from_bytes(data[start:at], "little")
                else:
                    raise _Unhandled(f"DW_LNCT_directory_index of form {form:#x}")
        if path is None:
            raise _Unhandled("an entry without DW_LNCT_path")
        if dirs is not None:
            dirs.append(path)
        elif files is not None:
            if dir_index is None:
                raise _Unhandled("a file without DW_LNCT_directory_index")
            files.append((path, dir_index))
    return at


def _file_entry(data: bytes, at: int, files: List[Tuple[str, int]]) -> int:
    """A DWARF 2-4 file entry (name, directory index, time, size), as in the header and in
    DW_LNE_define_file."""
    raw, at = _cstring(data, at)
    dir_index, at = _uleb(data, at)
    at = _uleb(data, at)[1]
    at = _uleb(data, at)[1]
    files.append((_text(raw), dir_index))
    return at


def _run(data: bytes, h: _LineHeader, unit: _Unit) -> Rows:
    """The line number state machine (DWARF 5 section 6.2.5), rows only: address, file, line."""
    found: List[Tuple[int, int, int]] = []  # (address, file index, line), line 0 and file -1: an end
    files = list(h.files)
    min_length, line_base, line_range, opcode_base = h.min_length, h.line_base, h.line_range, h.opcode_base
    lengths = h.opcode_lengths
    end = len(data)
    address, file, line = 0, 1, 1
    at = h.program
    while at < end:
        opcode = data[at]
        at += 1
        if opcode >= opcode_base:  # special opcode: advance address and line, append a row
            adjusted = opcode - opcode_base
            address += min_length * (adjusted // line_range)
            line += line_base + adjusted % line_range
            found.append((address, file, line))
        elif opcode == 0:  # extended opcode: its length, then its code
            length, at = _uleb(data, at)
            if length == 0:
                raise _Unhandled("extended opcode of length 0")
            after = at + length
            code = data[at]
            at += 1
            if code == LNE_END_SEQUENCE:
                found.append((address, -1, 0))
                address, file, line = 0, 1, 1
            elif code == LNE_SET_ADDRESS:
                if length - 1 != unit.address_size or length - 1 not in (4, 8):
                    raise _Unhandled("DW_LNE_set_address of another size")
                address = int.from_bytes(data[at:at + length - 1], "little")
                at += length - 1
            elif code == LNE_DEFINE_FILE:
                if h.version >= 5:
                    raise _Unhandled("DW_LNE_define_file in DWARF 5")
                at = _file_entry(data, at, files)
            elif code == LNE_SET_DISCRIMINATOR:
                at = _uleb(data, at)[1]
            else:
                at = after
            if at != after or after > end:
                raise _Unhandled("extended opcode's length and operands disagree")
        elif opcode == LNS_COPY:
            found.append((address, file, line))
        elif opcode == LNS_ADVANCE_PC:
            operand, at = _uleb(data, at)
            address += operand * min_length
        elif opcode == LNS_ADVANCE_LINE:
            operand, at = _sleb(data, at)
            line += operand
        elif opcode == LNS_SET_FILE:
            file, at = _uleb(data, at)
        elif opcode == LNS_CONST_ADD_PC:
            address += min_length * ((255 - opcode_base) // line_range)
        elif opcode == LNS_FIXED_ADVANCE_PC:
            address += struct.unpack_from("<H", data, at)[0]
            at += 2
        elif opcode in LNS_NO_OPERAND:
            pass
        elif opcode in LNS_ONE_ULEB:
            at = _uleb(data, at)[1]
        else:  # a standard opcode of a later version: skip its ULEB operands
            for _ in range(lengths[opcode - 1]):
                at = _uleb(data, at)[1]
    if at > end:
        raise _Unhandled("the line program runs past its unit")
    # names once decoded: DW_LNE_define_file may name a file after rows use its index
    names: Dict[int, str] = {}
    dirs = h.dirs
    rows: List[Tuple[int, str, int]] = []
    for address, file, line in found:
        if file < 0:
            rows.append((address, "", 0))
            continue
        if file not in names:
            names[file] = file_name(files, dirs, file, h.version, unit.comp_dir)
        rows.append((address, names[file], line))
    rows.sort(key=lambda r: (r[0], r[2] == 0))  # an end_sequence after a row at its address
    return [r[0] for r in rows], rows
