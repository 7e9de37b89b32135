"""Is a process's memory-map lock (mmap_lock) contended? Asked before its memory is read.

process_vm_readv takes the target's mmap lock uninterruptibly: when a thread holds it
for long (a page fault on a file whose FUSE daemon or NFS server does not answer, a read
of /proc/PID/mem faulting such a page in) and a writer is queued behind it (mmap, munmap,
mprotect, brk), every new reader queues too, and sleeps in D state until the holder lets
go: not even SIGKILL ends it. /proc/PID/cmdline waits the same way (killably).

So before the first read of a process's memory, its threads are looked at (stat, wchan,
syscall; the kernel stack when root may read it): one in D state queued on the lock (a
memory-map call, or a page fault waiting in lock_mm_and_find_vma) or stuck in a page fault
(it may hold the lock, and a read of the same page would wait for the same file) means the
memory is not read. Measured on 6.18 while a /proc/PID/mem read of a FUSE page held the
lock: the queued mmap() shows wchan vm_mmap_pgoff and the stack `vm_mmap_pgoff ←
do_syscall_64` (the rwsem slow path is not shown); the faulting reader `filemap_fault ←
__do_fault ← ... ← __get_user_pages ← get_user_pages_remote ← __access_remote_vm ← mem_rw`."""

from __future__ import annotations


from ..errors import WaitchainError
from ..records import record
from .kstack import read_stack
from .reader import ProcFS
from .process import parse_stat
from .tasks import read_task

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

# System calls that take the mmap lock for writing (or for reading, at length).
MMAP_CALLS = frozenset((
    "mmap", "mmap2", "munmap", "mprotect", "pkey_mprotect", "mremap", "brk", "madvise",
    "process_madvise", "mlock", "mlock2", "munlock", "mlockall", "munlockall", "msync",
    "remap_file_pages", "shmat", "shmdt", "mbind", "migrate_pages", "move_pages",
    "set_mempolicy_home_node", "mseal", "map_shadow_stack"))
# Kernel functions that wait for the mmap lock itself (innermost frames or wchan).
LOCK_WAITS = ("rwsem_down_read_slowpath", "rwsem_down_write_slowpath", "down_read", "down_write",
              "mmap_read_lock", "mmap_write_lock", "__mmap_lock", "lock_mm_and_find_vma",
              "vm_mmap_pgoff", "__vm_munmap", "vm_munmap", "do_mprotect_pkey", "__do_sys_brk",
              "__x64_sys_brk", "__arm64_sys_brk", "do_madvise", "__do_sys_mremap", "do_mlock",
              "__mm_populate", "mmap_write_lock_killable", "mmap_read_lock_killable")
# Functions that wait for the lock only when they are mm-specific (a bare rwsem wait is
# any rwsem: an inode's, a superblock's): these say the mm is the one.
MM_ONLY = tuple(n for n in LOCK_WAITS if not n.startswith(("rwsem_", "down_")))
# A page fault, or a walk of another process's pages (it holds that process's lock).
FAULTS = ("do_user_addr_fault", "handle_mm_fault", "__handle_mm_fault", "do_fault", "__do_fault",
          "filemap_fault", "do_swap_page", "do_read_fault", "do_shared_fault", "do_cow_fault",
          "__get_user_pages", "get_user_pages", "pin_user_pages", "__access_remote_vm",
          "access_remote_vm", "exc_page_fault", "do_page_fault")

# A walk of another process's memory (/proc/PID/mem, process_vm_readv, ptrace peeks): a
# fault there is in that process's memory map, not in the walker's own.
REMOTE = ("__access_remote_vm", "access_remote_vm", "get_user_pages_remote", "pin_user_pages_remote",
          "process_vm_rw", "mem_rw", "ptrace_access_vm")

QUEUED, FAULTING, REMOTE_FAULT = "queued", "faulting", "remote-fault"


@record(frozen=True)
class Contender:
    """A thread of the process that waits for its mmap lock (QUEUED) or sleeps in a page
    fault, maybe holding it (FAULTING); `call` its system call ("" in a fault), `where`
    the kernel function it sleeps in (wchan, else the innermost frame)."""

    tid: int
    how: str
    call: str
    where: str


@record(frozen=True)
class Contention:
    """Why the memory of `pid` is not read: its contenders, the faulting ones first."""

    pid: int
    threads: Tuple[Contender, ...]

    @property
    def faulting(self) -> List[Contender]:
        return [c for c in self.threads if c.how == FAULTING]

    @property
    def queued(self) -> List[Contender]:
        return [c for c in self.threads if c.how == QUEUED]


def classify(frames: List[str], wchan: str, call: str) -> str:
    """QUEUED, FAULTING, REMOTE_FAULT (a fault in another process's memory, which it reads)
    or "" for a thread in D state: `frames` innermost first."""
    names = [n for n in [wchan] + frames if n]
    top = names[:3]
    if any(n.startswith(MM_ONLY) for n in top):
        return QUEUED
    faulting = any(n.startswith(FAULTS) for n in names)
    if any(n.startswith(LOCK_WAITS) for n in top) and (call in MMAP_CALLS or faulting):
        return QUEUED
    if faulting and any(n.startswith(REMOTE) for n in names):
        return REMOTE_FAULT
    if faulting:
        return FAULTING
    return ""


def contention(fs: ProcFS, pid: int) -> Optional[Contention]:
    """The threads of pid that make a read of its memory wait (None when there are none,
    or when its threads cannot be read: the read is then tried under its deadline)."""
    try:
        tids = [t for t in fs.listdir(pid, "task") if t.isdigit() and t.isascii()]
    except WaitchainError:
        return None
    found = []
    for tid in tids:
        try:  # stat alone first: most threads are not in D state
            if parse_stat(fs.read_one(pid, "task", tid, "stat")).state != "D":
                continue
            task = read_task(fs, pid, int(tid))
        except (WaitchainError, ValueError):
            continue
        frames, _note = read_stack(fs, pid, task.tid)
        call = task.syscall.name if task.syscall is not None else ""
        how = classify(frames, task.wchan, call)
        if how in (QUEUED, FAULTING):
            found.append(Contender(task.tid, how, call, task.wchan or (frames[0] if frames else "")))
    if not found:
        return None
    found.sort(key=lambda c: (c.how != FAULTING, c.tid))
    return Contention(pid, tuple(found))
