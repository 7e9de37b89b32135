"""Whether a Python process maps any code whose frames its Python stacks would not show: a C
extension, or a library one calls (stacks/unwind.under_interpreter adds such frames). The
interpreter, libpython, the system libraries, Python's own standard modules (lib-dynload)
and the kernel's [vdso] do not count. When nothing counts, no thread of the process is
unwound, whatever their number, and the unwinder is not even imported."""

from __future__ import annotations

from ..errors import WaitchainError
from ..model import Frame
from ..procfs.maps import read_maps
from ..procfs.reader import ProcFS
from .frames import in_stdlib, is_system


def may_hold_extension(perms: str, path: str, interpreter: str) -> bool:
    """An executable file mapping where a frame unwind._extension accepts could be."""
    bare = path.replace(" (deleted)", "")
    if "x" not in perms or not bare or bare.startswith("["):
        return False
    if bare == interpreter or bare.rsplit("/", 1)[-1].startswith("libpython"):
        return False  # the walk stops at the interpreter's first frame
    return not is_system(Frame("", "", 0, module=path)) and not in_stdlib(path)


def extension_mapped(pid: int, interpreter: str, proc: str = "/proc") -> bool:
    """pid maps something may_hold_extension accepts (True when its maps cannot be read:
    then the unwinder decides)."""
    try:
        text = read_maps(ProcFS(proc), pid)
    except WaitchainError:
        return True
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and may_hold_extension(parts[1], parts[5].strip(), interpreter):
            return True
    return False
