"""ELF files mapped by a target, read without touching the target: call frame information
(.eh_frame through .eh_frame_hdr), symbols (.symtab, else .dynsym), file:line (.debug_line of
the file or of its separate debug file, by build-id or .gnu_debuglink) and code bytes.

pyelftools parses; each file is opened and its tables parsed once, lazily, and kept in a
cache keyed by build-id (else by the file's identity), shared by every process and thread
of a run (and of the runs of one waitchain process). A file that cannot be read or parsed
answers None to every question: the unwinder then falls back (frame pointers, a scan)."""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
import zlib
from bisect import bisect_right
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

try:  # a dependency; without it native stacks are not unwound (gdb stays available)
    from elftools.common.exceptions import ELFError
    from elftools.dwarf.callframe import FDE, CallFrameInfo
    from elftools.dwarf.structs import DWARFStructs
    from elftools.elf.elffile import ELFFile
    HAVE_ELFTOOLS = True
except ImportError:  # pragma: no cover - the package depends on pyelftools
    HAVE_ELFTOOLS = False

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

Row = Dict[Any, Any]  # a decoded CFI row: "pc", "cfa" (CFARule), register number → RegisterRule


class Module:
    """One ELF file: its load segments, CFI, symbols and lines. Thread-safe (one lock:
    pyelftools reads through one seekable stream)."""

    def __init__(self, path: str, data_path: str, build_id: str, elf: "ELFFile", stream: Any) -> None:
        self.path = path  # as the target names it (/usr/lib/x86_64-linux-gnu/libc.so.6)
        self.build_id = build_id
        self._data_path = data_path  # where we opened it (/proc/PID/root/... or map_files)
        self._elf = elf
        self._stream = stream
        self._lock = threading.RLock()
        self.loads = [(s["p_vaddr"], s["p_offset"], s["p_filesz"], s["p_flags"])
                      for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        self._fdes: Optional[Tuple[List[int], List[int]]] = None  # sorted starts, eh_frame offsets
        self._cfi: Optional[Any] = None
        self._rows: "OrderedDict[int, Optional[Tuple[int, int, List[Row]]]]" = OrderedDict()
        self._symbols: Optional[Tuple[List[int], List[Tuple[int, int, str]]]] = None
        self._debug: Optional[Tuple[Any, Any]] = None  # (ELFFile, stream) of the debug info
        self._debug_done = False
        self._fetched = False  # asked a debuginfod client (stacks/debuginfod.py) for it
        self._lines: Dict[int, Tuple[List[int], List[Tuple[int, str, int]]]] = {}  # CU offset → rows
        self._aranges: Optional[Any] = None
        self._cu_ranges: Optional[List[Tuple[int, int, int]]] = None
        self._comp_dirs: Dict[int, str] = {}

    def close(self) -> None:
        with self._lock:
            try:
                self._stream.close()
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
                with self._lock:
                    try:
                        self._stream.seek(off + vaddr - seg_vaddr)
                        return bytes(self._stream.read(size))
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
        if index is None:
            return None
        starts, offsets = index
        i = bisect_right(starts, vaddr) - 1
        if i < 0:
            return None
        offset = offsets[i]
        if offset in self._rows:
            self._rows.move_to_end(offset)
            return self._rows[offset]
        found: Optional[Tuple[int, int, List[Row]]] = None
        try:
            entry = self._entry(offset)
            if isinstance(entry, FDE):
                start = entry.header["initial_location"]
                table = entry.get_decoded().table
                found = (start, start + entry.header["address_range"], list(table))
        except (ELFError, Exception):  # a malformed entry is no rule, not a failure
            found = None
        self._rows[offset] = found
        if len(self._rows) > 4096:
            self._rows.popitem(last=False)
        return found

    def _entry(self, offset: int) -> Any:
        cfi = self._cfi_reader()
        parse = getattr(cfi, "_parse_entry_at", None)
        if parse is not None:
            return parse(offset)
        return next((e for e in cfi.get_entries() if e.offset == offset), None)  # pragma: no cover

    def _cfi_reader(self) -> Any:
        if self._cfi is None:
            section: Any = self._elf.get_section_by_name(".eh_frame")
            data = section.data()
            structs = DWARFStructs(little_endian=self._elf.little_endian, dwarf_format=32,
                                   address_size=self._elf.elfclass // 8)
            self._cfi = CallFrameInfo(io.BytesIO(data), len(data), section["sh_addr"], structs,
                                      for_eh_frame=True)
        return self._cfi

    def _fde_index(self) -> Optional[Tuple[List[int], List[int]]]:
        """(sorted FDE start addresses, their offsets in .eh_frame): from .eh_frame_hdr's
        binary search table, else from parsing every entry once."""
        if self._fdes is None:
            self._fdes = ([], [])
            try:
                eh_frame = self._elf.get_section_by_name(".eh_frame")
                if eh_frame is None or eh_frame["sh_type"] == "SHT_NOBITS":
                    return None
                self._fdes = (_hdr_table(self._elf, eh_frame["sh_addr"]) or self._all_fdes())
            except (ELFError, Exception):
                self._fdes = ([], [])
        return self._fdes if self._fdes[0] else None

    def _all_fdes(self) -> Tuple[List[int], List[int]]:
        pairs = sorted((e.header["initial_location"], e.offset)
                       for e in self._cfi_reader().get_entries() if isinstance(e, FDE))
        return [p[0] for p in pairs], [p[1] for p in pairs]

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
            sources.insert(0, debug[0])
        for elf in sources:
            for name in (".symtab", ".dynsym"):
                try:
                    _read_symbols(elf, name, found)
                except (ELFError, Exception):
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
            except (ELFError, Exception):
                return None

    def _line(self, vaddr: int, large: bool) -> Optional[Tuple[str, int]]:
        dwarf = self._dwarf()
        if dwarf is None:
            return None
        cu_offset = self._cu_for(dwarf, vaddr)
        if cu_offset is None:
            return None
        if cu_offset not in self._lines:
            decoded = self._line_rows(dwarf, cu_offset, large)
            if decoded is None:
                return None
            self._lines[cu_offset] = decoded
        addrs, rows = self._lines[cu_offset]
        i = bisect_right(addrs, vaddr) - 1
        if i < 0 or rows[i][2] <= 0 or not rows[i][1]:
            return None
        return rows[i][1], rows[i][2]

    def _dwarf(self) -> Any:
        if getattr(self, "_dwarf_info", None) is None:
            self._dwarf_info: Any = False
            for elf in ([self._elf] + ([self._debug_elf()[0]] if self._debug_elf() else [])):  # type: ignore[index]
                section = elf.get_section_by_name(".debug_line")
                if section is not None and section["sh_type"] != "SHT_NOBITS" and \
                        _debug_bytes(elf) < MAX_DEBUG_BYTES and elf.has_dwarf_info():
                    self._dwarf_info = elf.get_dwarf_info(relocate_dwarf_sections=False)
                    break
        return self._dwarf_info or None

    def _cu_for(self, dwarf: Any, vaddr: int) -> Optional[int]:
        if self._aranges is None:
            self._aranges = dwarf.get_aranges() or False
        aranges: Any = self._aranges
        if aranges:
            offset = aranges.cu_offset_at_addr(vaddr)
            if offset is not None:
                return int(offset)
        if self._cu_ranges is None:
            self._cu_ranges = _cu_ranges(dwarf)
        for low, high, offset in self._cu_ranges:
            if low <= vaddr < high:
                return offset
        return None

    def _line_rows(self, dwarf: Any, cu_offset: int,
                   large: bool) -> Optional[Tuple[List[int], List[Tuple[int, str, int]]]]:
        cu = dwarf.get_CU_at(cu_offset)
        program = dwarf.line_program_for_CU(cu)
        if program is None:
            return [], []
        if not large and program.program_end_offset - program.program_start_offset > LARGE_LINE_PROGRAM:
            return None
        top = cu.get_top_DIE()
        comp_dir = _text(top.attributes.get("DW_AT_comp_dir"))
        version = program.header["version"]
        files = program.header["file_entry"]
        dirs = [_text(d) for d in program.header["include_directory"]]
        names: Dict[int, str] = {}
        rows: List[Tuple[int, str, int]] = []
        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            if state.end_sequence:
                rows.append((state.address, "", 0))
                continue
            if state.file not in names:
                names[state.file] = _file_name(files, dirs, state.file, version, comp_dir)
            rows.append((state.address, names[state.file], state.line))
        rows.sort(key=lambda r: (r[0], r[2] == 0))  # an end_sequence after a row at its address
        return [r[0] for r in rows], rows

    def _debug_elf(self) -> Optional[Tuple[Any, Any]]:
        """The separate debug file (ELFFile, stream), by build-id or .gnu_debuglink."""
        if not self._debug_done:
            self._debug_done = True
            for path in self._debug_candidates():
                opened = _open_elf(path)
                if opened is not None:
                    elf, stream = opened
                    if not self.build_id or _build_id(elf) in ("", self.build_id):
                        self._debug = (elf, stream)
                        break
                    stream.close()
        return self._debug

    def _fetch_debug(self, fetch: Any) -> None:
        """With a debuginfod client: the debug file from its servers (or its cache), when the
        file has a build-id, no local debug file and no debug info of its own."""
        if fetch is None or self._fetched or not self.build_id:
            return
        self._fetched = True
        if self._debug_elf() is not None or self._elf.get_section_by_name(".debug_info") is not None:
            return
        path = fetch.debuginfo(self.build_id)
        opened = _open_elf(path) if path else None
        if opened is None:
            return
        elf, stream = opened
        if _build_id(elf) != self.build_id:
            stream.close()
            return
        self._debug = (elf, stream)
        self._symbols = None  # read again, from the debug file
        self._dwarf_info = None

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
    if not HAVE_ELFTOOLS:
        return None
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
    opened = _open_elf(data_path)
    if opened is None:
        return None
    elf, stream = opened
    try:
        return Module(path, data_path, _build_id(elf), elf, stream)
    except (ELFError, Exception):
        stream.close()
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


def _open_elf(path: str) -> Optional[Tuple[Any, Any]]:
    try:
        stream = _open_regular(path)
    except (OSError, ValueError):
        return None
    try:
        return ELFFile(stream), stream
    except (ELFError, Exception):
        stream.close()
        return None


def _build_id(elf: Any) -> str:
    try:
        for section in elf.iter_sections():
            if section["sh_type"] == "SHT_NOTE":
                for note in section.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return str(note["n_desc"])
    except (ELFError, Exception):
        pass
    return ""


def _debuglink(elf: Any) -> Optional[Tuple[str, int]]:
    section = elf.get_section_by_name(".gnu_debuglink")
    if section is None:
        return None
    data = section.data()
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


def _debug_bytes(elf: Any) -> int:
    """The size of the DWARF sections pyelftools would load into memory."""
    return sum(s["sh_size"] for s in elf.iter_sections()
               if s.name.startswith((".debug_", ".zdebug_")) and s["sh_type"] != "SHT_NOBITS")


def _hdr_table(elf: Any, eh_frame_addr: int) -> Optional[Tuple[List[int], List[int]]]:
    """.eh_frame_hdr's sorted table (initial location, FDE address), in the usual encoding
    (datarel sdata4); None for another encoding or none."""
    hdr = elf.get_section_by_name(".eh_frame_hdr")
    if hdr is None:
        return None
    data = hdr.data()
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
    base = hdr["sh_addr"]
    starts, offsets = [], []
    for loc, fde in struct.iter_unpack("<ii", data[at:at + 8 * count]):
        starts.append(base + loc)
        offsets.append(base + fde - eh_frame_addr)
    return starts, offsets


def _read_symbols(elf: Any, name: str, found: Dict[int, Tuple[int, int, str]]) -> None:
    section = elf.get_section_by_name(name)
    if section is None or section["sh_type"] == "SHT_NOBITS" or elf.elfclass != 64:
        return
    strtab = elf.get_section(section["sh_link"]).data()
    data = section.data()
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


def _cu_ranges(dwarf: Any) -> List[Tuple[int, int, int]]:
    """(low, high, CU offset) of every CU whose top DIE gives its addresses."""
    out: List[Tuple[int, int, int]] = []
    ranges = None
    for cu in dwarf.iter_CUs():
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


def _file_name(files: Any, dirs: List[str], index: int, version: int, comp_dir: str) -> str:
    i = index if version >= 5 else index - 1
    if not 0 <= i < len(files):
        return ""
    entry = files[i]
    name = _text(entry.name)
    d = entry.dir_index if version >= 5 else entry.dir_index - 1
    directory = dirs[d] if 0 <= d < len(dirs) else ""
    if version < 5 and entry.dir_index == 0:
        directory = comp_dir
    path = os.path.join(directory, name) if directory else name
    # Relative to the compilation directory (DWARF 5: directory 0 is that directory itself).
    base = comp_dir if version < 5 else (dirs[0] if dirs and d != 0 else "")
    if not path.startswith("/") and base:
        path = os.path.join(base, path)
    return os.path.normpath(path)


def _text(value: Any) -> str:
    if value is None:
        return ""
    value = getattr(value, "value", value)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
