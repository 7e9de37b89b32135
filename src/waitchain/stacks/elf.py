"""ELF files mapped by a target, read without touching the target: call frame information
(.eh_frame through .eh_frame_hdr), symbols (.symtab, else .dynsym), file:line (.debug_line of
the file or of its separate debug file, by build-id or .gnu_debuglink) and code bytes.

Headers, sections, notes, symbols are read here (ElfFile, struct), the CFI by stacks/cfi.py and
lines by stacks/dwarfline.py (from only the parts of the debug sections one CU needs);
pyelftools (its import ~76 ms, its reading of a debug file ~100 ms more, decompressing every
section) only for a layout dwarfline does not read, or an address .debug_aranges does not
cover (the CUs' own ranges). Each file is opened and its tables
parsed once, lazily, and kept in a cache keyed by build-id (else by the file's identity),
shared by every process and thread of a run (and of the runs of one waitchain process). A
file that cannot be read or parsed answers None to every question: the unwinder then falls
back (frame pointers, a scan)."""

from __future__ import annotations

import os
import stat
import struct
import threading
import zlib
from bisect import bisect_right
from collections import OrderedDict

from ..records import NamedTuple
from . import cfi, dwarfline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    Row = cfi.Row

# Separate debug files: <root>/.build-id/xx/rest.debug, <root>/<dir of the file>/<debuglink>.
# Looked for inside the target's root first (a container), then in ours.
DEBUG_ROOTS: List[str] = ["/usr/lib/debug"]
CACHE_SIZE = 64  # ELF files kept parsed
MAX_DEBUG_BYTES = 256 << 20  # debug sections larger than this in all are not loaded (no lines)
LARGE_LINE_PROGRAM = 64 << 10  # bytes of one CU's line program: decoded only when worth it
_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym
STT_FUNC, STT_GNU_IFUNC = 2, 10
PF_X = 1
PAGE = 4096
PT_LOAD = 1
SHT_NOTE, SHT_NOBITS = 7, 8
SHF_COMPRESSED = 0x800
INFLATE_CHUNK = 16 << 10  # compressed bytes fed to zlib at a time (span)
NT_GNU_BUILD_ID = 3
# ELF headers by class (1: 32-bit, 2: 64-bit), little-endian: the file header's fields from
# e_type on, a program header, a section header, a compressed section's header.
_EHDR = {1: struct.Struct("<HHIIIIIHHHHHH"), 2: struct.Struct("<HHIQQQIHHHHHH")}
_PHDR = {1: struct.Struct("<IIIIIIII"), 2: struct.Struct("<IIQQQQQQ")}
_SHDR = {1: struct.Struct("<IIIIIIIIII"), 2: struct.Struct("<IIQQQQIIQQ")}
_CHDR = {1: struct.Struct("<III"), 2: struct.Struct("<IIQQ")}


class BadElf(Exception):
    """Not an ELF file we read (or a truncated one)."""


class Section(NamedTuple):
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


class ElfFile:
    """The headers of a little-endian ELF file (32 or 64-bit) and its sections' bytes, read
    with pread from an open file (the stream pyelftools is given for .debug_line)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._fd = stream.fileno()
        ident = self.read(0, 16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] != 1:
            raise BadElf("not a little-endian ELF file")
        self.elfclass = 32 * ident[4]
        cls = ident[4]
        ehdr = _EHDR[cls]
        (_type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize,
         shnum, shstrndx) = ehdr.unpack(self._exact(16, ehdr.size))
        self.segments: List[Tuple[int, ...]] = []  # (type, offset, vaddr, filesz, flags)
        phdr = _PHDR[cls]
        if phnum and phentsize >= phdr.size:
            table = self._exact(phoff, phentsize * phnum)
            for i in range(phnum):
                f = phdr.unpack_from(table, i * phentsize)
                self.segments.append((f[0], f[1], f[2], f[4], f[6]) if cls == 1 else (f[0], f[2], f[3], f[5], f[1]))
        self.sections: List[Section] = []
        shdr = _SHDR[cls]
        if shoff and shentsize >= shdr.size:
            first = shdr.unpack(self._exact(shoff, shdr.size))
            shnum = shnum or first[5]  # more than 0xff00 sections: the count is in section 0
            shstrndx = first[6] if shstrndx == 0xFFFF else shstrndx
            table = self._exact(shoff, shentsize * shnum)
            raw = [shdr.unpack_from(table, i * shentsize) for i in range(shnum)]
            names = self._data(raw[shstrndx][1], raw[shstrndx][2], raw[shstrndx][4], raw[shstrndx][5]) \
                if 0 < shstrndx < shnum else b""
            for name, type_, flags, addr, offset, size, link, *_ in raw:
                end = names.find(b"\0", name)
                text = names[name:end if end >= 0 else None].decode("utf-8", "replace")
                self.sections.append(Section(text, type_, flags, addr, offset, size, link))
        self._by_name = {s.name: s for s in self.sections}  # (the last of a name, as pyelftools)
        # compressed sections read in part (span): by section offset, the decompressor, the
        # bytes it has given so far, where its input stopped in the file, the size it declares
        self._inflating: Dict[int, Tuple[Any, bytearray, int, int]] = {}

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def _exact(self, offset: int, size: int) -> bytes:
        data = self.read(offset, size)
        if len(data) != size:
            raise BadElf("truncated")
        return data

    def section(self, name: str) -> Optional[Section]:
        return self._by_name.get(name)

    def data(self, section: Section) -> bytes:
        """A section's bytes (decompressed), b"" for one that has none in the file."""
        return self._data(section.type, section.flags, section.offset, section.size)

    def span(self, section: Section, start: int, size: int) -> bytes:
        """`size` bytes of a section's (decompressed) bytes from `start`, fewer at its end: of
        a compressed section only as much is decompressed as that needs (kept, so that a later
        span further on continues where this one stopped): a line of libc reads a few hundred
        KB of its debug file's 5.8 MB of .debug_info, not all of it."""
        if section.type == SHT_NOBITS or start < 0 or size <= 0:
            return b""
        if not section.flags & SHF_COMPRESSED:
            size = min(size, section.size - start)
            return self._exact(section.offset + start, size) if size > 0 else b""
        return bytes(self._prefix(section, start + size)[start:start + size])

    def reader(self) -> Callable[[str, int, int], bytes]:
        """span() by section name (dwarfline's `read`): b"" for a section the file lacks."""
        def read(name: str, start: int, size: int) -> bytes:
            section = self.section(name)
            return self.span(section, start, size) if section is not None else b""
        return read

    def inflated_size(self, section: Section) -> int:
        """A section's size in bytes once decompressed (as its compression header says)."""
        if not section.flags & SHF_COMPRESSED:
            return section.size
        return self._compressed(self.read(section.offset, 32))[0]

    def _prefix(self, section: Section, size: int) -> bytearray:
        """At least the first `size` bytes of a compressed section (all of it when smaller);
        never more than it declares (BadElf when its stream has more)."""
        state = self._inflating.get(section.offset)
        if state is None:
            declared, start = self._compressed(self.read(section.offset, 32))
            state = (zlib.decompressobj(), bytearray(), section.offset + start, declared)
        inflater, out, at, declared = state
        end = section.offset + section.size
        while len(out) < size and not inflater.eof:
            chunk = inflater.unconsumed_tail  # what the last call's output bound left
            if not chunk:
                if at >= end:
                    break
                chunk = self._exact(at, min(INFLATE_CHUNK, end - at))
                at += len(chunk)
            out += inflater.decompress(chunk, min(size, declared + 1) - len(out))  # past it: a lie
            if len(out) > declared:
                raise BadElf(f"a compressed section inflates past the {declared} bytes it declares")
        self._inflating[section.offset] = (inflater, out, at, declared)
        return out

    def _data(self, type_: int, flags: int, offset: int, size: int) -> bytes:
        if type_ == SHT_NOBITS:
            return b""
        data = self._exact(offset, size)
        if flags & SHF_COMPRESSED:
            declared, start = self._compressed(data)
            data = zlib.decompressobj().decompress(data[start:], declared + 1)
            if len(data) > declared:
                raise BadElf(f"a compressed section inflates past the {declared} bytes it declares")
        return data

    def _compressed(self, head: bytes) -> Tuple[int, int]:
        """(declared size, where the zlib stream starts) from a compressed section's header:
        a section of another kind, or that declares more than MAX_DEBUG_BYTES, is BadElf (a
        file a target maps may be made to inflate to gigabytes)."""
        chdr = _CHDR[self.elfclass // 32]
        if len(head) < chdr.size:
            raise BadElf("truncated compression header")
        fields = chdr.unpack_from(head)
        if fields[0] != 1:  # ELFCOMPRESS_ZLIB
            raise BadElf("compressed section of an unknown kind")
        declared = int(fields[2] if self.elfclass == 64 else fields[1])
        if declared > MAX_DEBUG_BYTES:
            raise BadElf(f"a compressed section declares {declared} bytes")
        return declared, chdr.size


class Module:
    """One ELF file: its load segments, CFI, symbols and lines. Thread-safe (one lock:
    pyelftools reads through one seekable stream, ElfFile.span continues one decompressor)."""

    def __init__(self, path: str, data_path: str, build_id: str, elf: ElfFile) -> None:
        self.path = path  # as the target names it (/usr/lib/x86_64-linux-gnu/libc.so.6)
        self.build_id = build_id
        self._data_path = data_path  # where we opened it (/proc/PID/root/... or map_files)
        self._elf = elf
        self._lock = threading.RLock()
        self.loads = [(vaddr, offset, filesz, flags)
                      for type_, offset, vaddr, filesz, flags in elf.segments if type_ == PT_LOAD]
        self._fdes: Optional[cfi.FdeIndex] = None
        self._eh_frame = (b"", 0)  # its bytes and address
        self._cies: Dict[int, cfi.CIE] = {}  # decoded CIEs by offset
        self._rows: "OrderedDict[int, Optional[Tuple[int, int, List[Row]]]]" = OrderedDict()
        self._symbols: Optional[Tuple[List[int], List[Tuple[int, int, str]]]] = None
        self._debug: Optional[ElfFile] = None  # the separate debug file
        self._debug_done = False
        self._fetched = False  # asked a debuginfod client (stacks/debuginfod.py) for it
        self._lines: Dict[int, Tuple[List[int], List[Tuple[int, str, int]]]] = {}  # CU offset → rows
        self._line_file: Any = None  # _line_elf(), False: none
        self._aranges: Any = None  # _read_aranges(), or False
        self._cu_ranges: Optional[List[Tuple[int, int, int]]] = None
        self._dwarf_info: Any = None  # pyelftools' DWARFInfo, False: none

    def close(self) -> None:
        with self._lock:
            try:
                self._elf.stream.close()
            except OSError:
                pass

    # --- addresses -----------------------------------------------------------------------

    def bias(self, start: int, offset: int, executable: bool = True) -> Optional[int]:
        """The load bias of a mapping at `start` of the file at `offset` (page-aligned: a
        segment's mapping starts on the page holding its first byte): vaddr = address - bias."""
        for vaddr, off, filesz, flags in self.loads:
            page = off - off % PAGE
            if page <= offset < off + max(filesz, 1) and bool(flags & PF_X) == executable:
                return start - (vaddr - (off - page) + (offset - page))
        return None

    def code(self, vaddr: int, size: int) -> bytes:
        """Bytes of the file's code at `vaddr` (b"" outside its loaded segments)."""
        for seg_vaddr, off, filesz, _ in self.loads:
            if seg_vaddr <= vaddr and vaddr + size <= seg_vaddr + filesz:
                try:
                    return self._elf.read(off + vaddr - seg_vaddr, size)
                except (OSError, ValueError):
                    return b""
        return b""

    # --- call frame information --------------------------------------------------------------

    def cfi_row(self, vaddr: int) -> Optional[Tuple[Row, bool]]:
        """The CFI row in force at `vaddr` and whether the FDE covers it; None when no FDE does."""
        with self._lock:
            fde = self._fde_at(vaddr)
        if fde is None:
            return None
        start, end, rows = fde
        if not start <= vaddr < end or not rows:
            return None
        i = len(rows) - 1
        while i > 0 and rows[i]["pc"] > vaddr:  # a handful of rows per function
            i -= 1
        return rows[i], True

    def _fde_at(self, vaddr: int) -> Optional[Tuple[int, int, List[Row]]]:
        index = self._fde_index()
        offset = index.find(vaddr) if index is not None else None
        if offset is None:
            return None
        if offset in self._rows:
            self._rows.move_to_end(offset)
            return self._rows[offset]
        found: Optional[Tuple[int, int, List[Row]]] = None
        data, address = self._eh_frame
        try:
            found = cfi.decode(data, address, self._elf.elfclass // 8, offset, self._cies)
        except Exception:  # a malformed entry is no rule, not a failure
            found = None
        self._rows[offset] = found
        if len(self._rows) > 4096:
            self._rows.popitem(last=False)
        return found

    def _fde_index(self) -> Optional[cfi.FdeIndex]:
        """The FDEs by start address: .eh_frame_hdr's binary search table, else every entry
        parsed once."""
        if self._fdes is None:
            self._fdes = cfi.FdeIndex([], [])
            try:
                eh_frame = self._elf.section(".eh_frame")
                if eh_frame is None or eh_frame.type == SHT_NOBITS:
                    return None
                self._eh_frame = (self._elf.data(eh_frame), eh_frame.addr)
                hdr = self._elf.section(".eh_frame_hdr")
                table = cfi.hdr_table(self._elf.data(hdr), hdr.addr, eh_frame.addr) if hdr is not None else None
                self._fdes = table or cfi.all_fdes(self._eh_frame[0], eh_frame.addr, self._elf.elfclass // 8)
            except Exception:
                self._fdes = cfi.FdeIndex([], [])
        return self._fdes if self._fdes.starts else None

    # --- symbols -----------------------------------------------------------------------------

    def symbol(self, vaddr: int, fetch: Any = None) -> Optional[Tuple[str, int]]:
        """(raw symbol name, its start) of the function containing `vaddr`. `fetch`: a
        debuginfod.Client that may download the debug file (--debuginfod), else None."""
        with self._lock:
            self._fetch_debug(fetch)
            if self._symbols is None:
                self._symbols = self._load_symbols()
        starts, entries = self._symbols
        i = bisect_right(starts, vaddr) - 1
        if i < 0:
            return None
        start, size, name = entries[i]
        if size and vaddr >= start + size:
            return None  # past its end: in code no symbol names
        return name, start  # (a symbol of no size, from assembly: the nearest below)

    def _load_symbols(self) -> Tuple[List[int], List[Tuple[int, int, str]]]:
        found: Dict[int, Tuple[int, int, str]] = {}
        sources = [self._elf]
        debug = self._debug_elf()
        if debug is not None:
            sources.insert(0, debug)
        for elf in sources:
            for name in (".symtab", ".dynsym"):
                try:
                    _read_symbols(elf, name, found)
                except Exception:
                    continue
            if found:
                break
        entries = sorted(found.values())
        return [e[0] for e in entries], entries

    # --- lines ---------------------------------------------------------------------------------

    def line(self, vaddr: int, large: bool = True, fetch: Any = None) -> Optional[Tuple[str, int]]:
        """(source file, line) of `vaddr` from .debug_line, when the file or its debug file has
        it. large=False: not when that means decoding a large line program (pyelftools takes
        seconds for the ~100k rows of Rust's std: a runtime's own frame is not worth it)."""
        with self._lock:
            try:
                self._fetch_debug(fetch)
                return self._line(vaddr, large)
            except Exception:
                return None

    def _line(self, vaddr: int, large: bool) -> Optional[Tuple[str, int]]:
        elf = self._line_elf()
        if elf is None:
            return None
        cu_offset = self._cu_for(elf, vaddr)
        if cu_offset is None:
            return None
        if cu_offset not in self._lines:
            decoded = self._line_rows(elf, cu_offset, large)
            if decoded is None:
                return None
            self._lines[cu_offset] = decoded
        addrs, rows = self._lines[cu_offset]
        i = bisect_right(addrs, vaddr) - 1
        if i < 0 or rows[i][2] <= 0 or not rows[i][1]:
            return None
        return rows[i][1], rows[i][2]

    def _line_elf(self) -> Optional[ElfFile]:
        """The file whose DWARF gives lines: the file or its debug file, the first with a
        .debug_line and debug info (as pyelftools' has_dwarf_info() sees it), not too large."""
        if self._line_file is None:
            self._line_file = False
            debug = self._debug_elf()
            for elf in [self._elf] + ([debug] if debug is not None else []):
                section = elf.section(".debug_line")
                if section is None or section.type == SHT_NOBITS or _debug_bytes(elf) >= MAX_DEBUG_BYTES:
                    continue
                if any(elf.section(name) is not None for name in (".debug_info", ".zdebug_info", ".eh_frame")):
                    self._line_file = elf
                    break
        return self._line_file or None

    def _dwarf(self) -> Any:
        """pyelftools' DWARFInfo of that file, for what dwarfline does not read: imported here."""
        if self._dwarf_info is None:
            self._dwarf_info = False
            elf = self._line_elf()
            if elf is not None and _inflates_as_declared(elf):
                from elftools.elf.elffile import ELFFile
                self._dwarf_info = ELFFile(elf.stream).get_dwarf_info(relocate_dwarf_sections=False)
        return self._dwarf_info or None

    def _cu_for(self, elf: ElfFile, vaddr: int) -> Optional[int]:
        if self._aranges is None:
            self._aranges = self._read_aranges(elf) or False
        if self._aranges:
            starts, entries = self._aranges
            i = bisect_right(starts, vaddr) - 1
            if i >= 0 and vaddr < entries[i][0] + entries[i][1]:
                return entries[i][2]
        if self._cu_ranges is None:  # not in .debug_aranges: the own ranges of the CUs it does not list
            self._cu_ranges = self._unlisted_cu_ranges(elf)
        for low, high, offset in self._cu_ranges:
            if low <= vaddr < high:
                return offset
        return None

    def _unlisted_cu_ranges(self, elf: ElfFile) -> List[Tuple[int, int, int]]:
        """(low, high, CU offset) from the top DIE (by pyelftools) of each CU with code that
        .debug_aranges does not list: a listed CU's ranges are all there (as gdb takes them),
        and a CU whose top DIE names no address has none (libc: 126 of 2,063). A frame outside
        every range (libc's soft-float helpers, a program's _start from crt1.o) made pyelftools
        read every CU's top DIE: ~5 s for libc's, for no line."""
        listed = {cu for _, _, cu in self._aranges[1]} if self._aranges else set()
        unlisted: Optional[List[int]] = None  # None: the units are not known, every CU is asked
        section = elf.section(".debug_info")
        if section is not None:
            read = elf.reader()
            try:
                offsets = dwarfline.unit_offsets(read, elf.inflated_size(section))
            except Exception:
                offsets = dwarfline.NOT_HANDLED
            if not isinstance(offsets, dwarfline.NotHandled):
                unlisted = [o for o in offsets if o not in listed and dwarfline.has_addresses(read, o) is not False]
        if unlisted == []:
            return []
        dwarf = self._dwarf()
        if dwarf is None:
            return []
        return _cu_ranges(dwarf, dwarf.iter_CUs() if unlisted is None else (dwarf.get_CU_at(o) for o in unlisted))

    def _read_aranges(self, elf: ElfFile) -> Optional[Tuple[List[int], List[Tuple[int, int, int]]]]:
        """.debug_aranges read by dwarfline (pyelftools' parser took ~45 ms for the ~2,000
        ranges of libc's debug file), by pyelftools in a layout dwarfline does not read."""
        section = elf.section(".debug_aranges")
        if section is None:
            return None
        try:
            found = dwarfline.aranges(elf.data(section), "<")
        except Exception:  # compressed in a way ElfFile does not read
            found = dwarfline.NOT_HANDLED
        if not isinstance(found, dwarfline.NotHandled):
            return found
        dwarf = self._dwarf()
        return _pyelftools_aranges(dwarf) if dwarf is not None else None

    def _line_rows(self, elf: ElfFile, cu_offset: int,
                   large: bool) -> Optional[Tuple[List[int], List[Tuple[int, str, int]]]]:
        found = dwarfline.line_table(elf.reader(), cu_offset, large, LARGE_LINE_PROGRAM)
        if not isinstance(found, dwarfline.NotHandled):
            return found
        dwarf = self._dwarf()
        return _pyelftools_rows(dwarf, cu_offset, large) if dwarf is not None else None

    def _debug_elf(self) -> Optional[ElfFile]:
        """The separate debug file, by build-id or .gnu_debuglink."""
        if not self._debug_done:
            self._debug_done = True
            for path in self._debug_candidates():
                elf = _open_elf(path)
                if elf is not None:
                    if not self.build_id or _build_id(elf) in ("", self.build_id):
                        self._debug = elf
                        break
                    elf.stream.close()
        return self._debug

    def _fetch_debug(self, fetch: Any) -> None:
        """With a debuginfod client: the debug file from its servers (or its cache), when the
        file has a build-id, no local debug file and no debug info of its own."""
        if fetch is None or self._fetched or not self.build_id:
            return
        self._fetched = True
        if self._debug_elf() is not None or self._elf.section(".debug_info") is not None:
            return
        path = fetch.debuginfo(self.build_id)
        elf = _open_elf(path) if path else None
        if elf is None:
            return
        if _build_id(elf) != self.build_id:
            elf.stream.close()
            return
        self._debug = elf
        self._symbols = None  # read again, from the debug file
        self._line_file = self._dwarf_info = None

    def _debug_candidates(self) -> List[str]:
        roots = [self._root() + r for r in DEBUG_ROOTS] + list(DEBUG_ROOTS)
        paths = []
        if len(self.build_id) > 2:
            paths += [f"{r}/.build-id/{self.build_id[:2]}/{self.build_id[2:]}.debug" for r in roots]
        link = _debuglink(self._elf)
        if link is not None:
            name, crc = link
            here = os.path.dirname(self._root() + self.path)
            for path in [os.path.join(here, name), os.path.join(here, ".debug", name)] + \
                    [r + os.path.dirname(self.path) + "/" + name for r in roots]:
                if _crc_ok(path, crc):
                    paths.append(path)
        return list(dict.fromkeys(paths))

    def _root(self) -> str:
        """/proc/PID/root when the file was opened through a target's root, else ""."""
        marker = "/root/"
        if self._data_path.startswith("/proc/") and marker in self._data_path:
            return self._data_path[:self._data_path.index(marker) + len(marker) - 1]
        return ""


# --- the cache ----------------------------------------------------------------------------

_cache: "OrderedDict[Any, Optional[Module]]" = OrderedDict()
_cache_lock = threading.Lock()
_loading: Dict[Any, threading.Lock] = {}


def module_for(pid: int, start: int, end: int, path: str, inode: int) -> Optional[Module]:
    """The parsed ELF file mapped at [start, end) by pid, from the cache when the same file
    (same build-id, or same device, inode, size and mtime) was read before; None if unreadable."""
    for data_path in (f"/proc/{pid}/map_files/{start:x}-{end:x}", f"/proc/{pid}/root{path}"):
        try:
            st = os.stat(data_path)
        except (OSError, ValueError):
            continue
        if inode and st.st_ino != inode:
            continue  # replaced since it was mapped: not the file the process runs
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
            gate = _loading.setdefault(key, threading.Lock())
        with gate:  # one thread parses a file; the others wait for it
            with _cache_lock:
                if key in _cache:
                    return _cache[key]
            module = _load(path, data_path)
            with _cache_lock:
                if module is not None and module.build_id:
                    for other in _cache.values():  # the same build-id: the parsed one is kept
                        if other is not None and other.build_id == module.build_id:
                            module.close()
                            module = other
                            break
                _cache[key] = module
                _loading.pop(key, None)
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
            return module
    return None


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _load(path: str, data_path: str) -> Optional[Module]:
    elf = _open_elf(data_path)
    if elf is None:
        return None
    try:
        return Module(path, data_path, _build_id(elf), elf)
    except Exception:
        elf.stream.close()
        return None


def _open_regular(path: str) -> Any:
    """A binary file object for a regular file; OSError for anything else (a FIFO put in a
    container's file system where a library or a debug file was expected would block)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_elf(path: str) -> Optional[ElfFile]:
    try:
        stream = _open_regular(path)
    except (OSError, ValueError):
        return None
    try:
        return ElfFile(stream)
    except Exception:
        stream.close()
        return None


def build_id_of(path: str) -> str:
    """The build-id of the ELF file at `path` ("" when it has none or is not one)."""
    elf = _open_elf(path)
    if elf is None:
        return ""
    try:
        return _build_id(elf)
    finally:
        elf.stream.close()


def _build_id(elf: ElfFile) -> str:
    """The GNU build-id note's bytes in hex, "" when none."""
    try:
        for section in elf.sections:
            if section.type != SHT_NOTE:
                continue
            data, at = elf.data(section), 0
            while at + 12 < len(data):  # notes: name and description each padded to 4 bytes
                namesz, descsz, kind = struct.unpack_from("<III", data, at)
                at += 12
                name = data[at:at + namesz].split(b"\0", 1)[0]
                at += -(-namesz // 4) * 4
                if kind == NT_GNU_BUILD_ID and name == b"GNU":
                    return data[at:at + descsz].hex()
                at += -(-descsz // 4) * 4
    except Exception:
        pass
    return ""


def _debuglink(elf: ElfFile) -> Optional[Tuple[str, int]]:
    section = elf.section(".gnu_debuglink")
    if section is None:
        return None
    try:
        data = elf.data(section)
    except Exception:  # truncated, or compressed in a way we do not read
        return None
    end = data.find(b"\0")
    if end <= 0:
        return None
    crc_at = (end + 4) & ~3
    if crc_at + 4 > len(data):
        return None
    name = data[:end].decode("utf-8", "replace")
    if "/" in name:
        return None
    return name, struct.unpack_from("<I", data, crc_at)[0]


def _crc_ok(path: str, crc: int) -> bool:
    try:
        with _open_regular(path) as f:
            if os.fstat(f.fileno()).st_size > MAX_DEBUG_BYTES:
                return False
            value = 0
            for chunk in iter(lambda: f.read(1 << 20), b""):
                value = zlib.crc32(chunk, value)
        return value & 0xFFFFFFFF == crc
    except (OSError, ValueError):
        return False


def _inflates_as_declared(elf: ElfFile) -> bool:
    """Each compressed debug section (SHF_COMPRESSED, or GNU's .zdebug_*) inflates to no more
    than it declares (checked by a bounded inflation): pyelftools, which inflates whole
    sections without a bound, is not given one that would not."""
    try:
        for section in elf.sections:
            if section.name.startswith(".debug_") and section.flags & SHF_COMPRESSED:
                elf.data(section)
            elif section.name.startswith(".zdebug_") and section.type != SHT_NOBITS:
                raw = elf.read(section.offset, section.size)  # GNU's: "ZLIB", its size (big-endian), zlib
                declared = int.from_bytes(raw[4:12], "big")
                if raw[:4] != b"ZLIB" or declared > MAX_DEBUG_BYTES or \
                        len(zlib.decompressobj().decompress(raw[12:], declared + 1)) > declared:
                    return False
    except (BadElf, OSError, zlib.error):
        return False
    return True


def _debug_bytes(elf: ElfFile) -> int:
    """The size of the DWARF sections once decompressed, as their headers declare (what
    pyelftools would hold in memory); past MAX_DEBUG_BYTES for one that cannot be read."""
    try:
        return sum(elf.inflated_size(s) for s in elf.sections
                   if s.name.startswith((".debug_", ".zdebug_")) and s.type != SHT_NOBITS)
    except (BadElf, OSError):
        return MAX_DEBUG_BYTES


def _read_symbols(elf: ElfFile, name: str, found: Dict[int, Tuple[int, int, str]]) -> None:
    section = elf.section(name)
    if section is None or section.type == SHT_NOBITS or elf.elfclass != 64:
        return
    strtab = elf.data(elf.sections[section.link])
    data = elf.data(section)
    for st_name, info, _, shndx, value, size in _SYM.iter_unpack(data[:len(data) - len(data) % _SYM.size]):
        if info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or shndx == 0 or value == 0:
            continue
        end = strtab.find(b"\0", st_name)
        text = strtab[st_name:end if end >= 0 else None].decode("utf-8", "replace")
        old = found.get(value)
        if old is None or (old[1] == 0 and size) or (bool(size) == bool(old[1]) and _plainer(text, old[2])):
            found[value] = (value, size, text)


def _plainer(name: str, other: str) -> bool:
    """Of two names of one address (read, __read, __libc_read), the one a reader expects."""
    return (len(name) - len(name.lstrip("_")), len(name)) < (len(other) - len(other.lstrip("_")), len(other))


def _pyelftools_aranges(dwarf: Any) -> Optional[Tuple[List[int], List[Tuple[int, int, int]]]]:
    """.debug_aranges as pyelftools reads it (a layout dwarfline.aranges does not read), in
    the same form: the starts, sorted, and (start, length, CU offset) of each."""
    if dwarf.debug_aranges_sec is None:
        return None
    entries = sorted(((e.begin_addr, e.length, e.info_offset) for e in dwarf.get_aranges().entries),
                     key=lambda e: e[0])
    return [e[0] for e in entries], entries


def _cu_ranges(dwarf: Any, units: Any) -> List[Tuple[int, int, int]]:
    """(low, high, CU offset) of each of pyelftools' CUs `units` whose top DIE gives its addresses."""
    out: List[Tuple[int, int, int]] = []
    ranges = None
    for cu in units:
        top = cu.get_top_DIE()
        low = top.attributes.get("DW_AT_low_pc")
        high = top.attributes.get("DW_AT_high_pc")
        if low is not None and high is not None:
            hi = high.value if high.form == "DW_FORM_addr" else low.value + high.value
            out.append((low.value, hi, cu.cu_offset))
        elif "DW_AT_ranges" in top.attributes:
            if ranges is None:
                ranges = dwarf.range_lists()
            try:
                for r in ranges.get_range_list_at_offset(top.attributes["DW_AT_ranges"].value, cu=cu):
                    if hasattr(r, "begin_offset"):
                        base = low.value if low is not None else 0
                        out.append((base + r.begin_offset, base + r.end_offset, cu.cu_offset))
            except Exception:
                continue
    return out


def _pyelftools_rows(dwarf: Any, cu_offset: int,
                     large: bool) -> Optional[Tuple[List[int], List[Tuple[int, str, int]]]]:
    """The rows of a CU's line program as dwarfline.line_table has them, by pyelftools."""
    cu = dwarf.get_CU_at(cu_offset)
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return [], []
    if not large and program.program_end_offset - program.program_start_offset > LARGE_LINE_PROGRAM:
        return None
    top = cu.get_top_DIE()
    comp_dir = _text(top.attributes.get("DW_AT_comp_dir"))
    version = program.header["version"]
    entries = program.get_entries()  # (first: DW_LNE_define_file adds files)
    files = [(_text(f.name), f.dir_index) for f in program.header["file_entry"]]
    dirs = [_text(d) for d in program.header["include_directory"]]
    names: Dict[int, str] = {}
    rows: List[Tuple[int, str, int]] = []
    for entry in entries:
        state = entry.state
        if state is None:
            continue
        if state.end_sequence:
            rows.append((state.address, "", 0))
            continue
        if state.file not in names:
            names[state.file] = dwarfline.file_name(files, dirs, state.file, version, comp_dir)
        rows.append((state.address, names[state.file], state.line))
    rows.sort(key=lambda r: (r[0], r[2] == 0))  # an end_sequence after a row at its address
    return [r[0] for r in rows], rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    value = getattr(value, "value", value)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
