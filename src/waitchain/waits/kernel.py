"""Waits inside the kernel: uninterruptible sleep (D), and FUSE requests in any state.
/proc/PID/task/TID/stack and wchan are summarised into a class (block I/O, NFS, FUSE, page
fault, kernel lock); the file the call works on, when known (an fd argument's fdinfo
`mnt_id`, or a path argument read from memory), names its file system through
/proc/PID/mountinfo. A thread stuck on a FUSE file waits for the FUSE daemon: the holder of
the /dev/fuse fd whose fdinfo `fuse_connection` is the mount's device number.

Measured: a read of a FUSE file through the page cache sleeps in folio_wait_bit_common ←
filemap_get_pages ← filemap_read ← vfs_read, with no fuse function on the stack, so FUSE is
recognised from the file's mount, not from the stack; a lookup sleeps (S) in
request_wait_answer, and a second lookup in the same directory (D) in fuse_lock_inode."""

from __future__ import annotations


from ..errors import WaitchainError
from ..model import Edge, EdgeKind, End, EndKind, Fuse, Reason, Syscall, Task, Wait
from ..procfs.mmaplock import QUEUED, classify as mmap_lock_wait
from ..procfs.mounts import Mount
from ..snapshot import Snapshot
from .describe import FD_FIRST, call_text
from .ends import is_fuse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Tuple

FUSE, NFS, BLOCK, FAULT, LOCK, KERNEL = "FUSE", "NFS", "block I/O", "page fault", "kernel lock", "kernel"
END_KIND = {FUSE: EndKind.KERNEL, NFS: EndKind.REMOTE, BLOCK: EndKind.DISK, FAULT: EndKind.DISK,
            LOCK: EndKind.KERNEL, KERNEL: EndKind.KERNEL}
REASON = {FUSE: Reason.KERNEL_WAIT, NFS: Reason.IO, BLOCK: Reason.IO, FAULT: Reason.IO,
          LOCK: Reason.KERNEL_WAIT, KERNEL: Reason.KERNEL_WAIT}
MEANING = {
    FUSE: "waits for the FUSE daemon to answer",
    NFS: "waits for the NFS server",
    BLOCK: "waits for block I/O (the disk or block device)",
    FAULT: "waits for a page of a mapped file or swap to be read in",
    LOCK: "waits for a lock inside the kernel that another thread holds",
    KERNEL: "waits inside the kernel",
}

SCHEDULER = {"__schedule", "schedule", "schedule_timeout", "io_schedule", "io_schedule_timeout",
             "schedule_preempt_disabled", "__switch_to", "schedule_hrtimeout_range_clock",
             "do_syscall_64", "entry_SYSCALL_64_after_hwframe"}
LOCKS = ("mutex_lock", "__mutex_lock", "mutex_lock_killable", "rwsem_down_", "down_read", "down_write",
         "__down", "down_killable", "down_interruptible", "rt_mutex", "rtlock", "percpu_rwsem_wait",
         "__percpu_down", "fuse_lock_inode", "lock_mm_and_find_vma", "mmap_read_lock",
         "inode_lock", "lock_rename")
IO = ("folio_wait", "__folio_lock", "wait_on_page", "__lock_page", "io_schedule", "blk_", "bio_",
      "submit_bio", "__wait_on_buffer", "wait_on_buffer", "jbd2", "ext4_", "xfs_", "btrfs_",
      "f2fs_", "filemap_", "__filemap", "blkdev_", "iomap_", "dio_", "wait_for_completion_io",
      "nvme", "scsi_", "file_write_and_wait", "writeback_", "balance_dirty_pages")
FAULTS = ("exc_page_fault", "do_user_addr_fault", "handle_mm_fault", "__handle_mm_fault",
          "do_fault", "__do_fault", "filemap_fault", "do_swap_page", "do_read_fault")
NFS_NAMES = ("nfs", "rpc_", "__rpc", "xprt_", "call_", "gss_")

AT_FDCWD = -100
# Calls whose argument is a path: name → (dirfd argument or None, path argument).
PATH_ARGS = {
    **{name: (None, 0) for name in (
        "open", "creat", "stat", "lstat", "access", "readlink", "truncate", "chdir", "chroot",
        "mkdir", "rmdir", "unlink", "chmod", "chown", "lchown", "getxattr", "lgetxattr",
        "listxattr", "llistxattr", "setxattr", "lsetxattr", "statfs", "execve", "utimes",
        "utime", "mknod", "rename", "link", "symlink")},
    **{name: (0, 1) for name in (
        "openat", "openat2", "newfstatat", "statx", "faccessat", "faccessat2", "readlinkat",
        "mkdirat", "unlinkat", "fchmodat", "fchownat", "utimensat", "execveat", "mknodat",
        "name_to_handle_at", "renameat", "renameat2", "linkat")},
}
FD_CALLS = FD_FIRST | {"fstat", "newfstat", "getdents", "getdents64", "fchdir", "ftruncate",
                       "fallocate", "fgetxattr", "flistxattr", "fsetxattr", "lseek", "fstatfs",
                       "sync_file_range", "syncfs", "fadvise64", "readahead", "copy_file_range"}
SHOWN_FRAMES = 5
VFORK = {"wait_for_vfork_done", "kernel_clone"}  # a vfork parent sleeps here until the child execs


def rule(snap: Snapshot, pid: int, task: Task) -> Wait:
    what = call_text(snap, pid, task)
    frames, note = snap.kernel_stack(pid, task.tid)
    if VFORK & ({task.wchan} | set(frames[:3])):
        return _vfork(snap, pid, task, what)
    call = task.syscall.name if task.syscall is not None else ""
    if task.state == "D" and mmap_lock_wait(frames, task.wchan, call) == QUEUED:
        return _mmap_queued(snap, pid, task, what, frames, note)
    fault = _remote_fault(snap, pid, task)
    if fault is not None:  # a read of /proc/N/mem faults N's page in: its file's system
        faulted, _path, how = fault
        cls, detail = classify(frames, task.wchan, faulted.fstype, True, task.state, note)
        if is_fuse_mount(faulted):
            return _fuse(snap, pid, task, what, [faulted], how, detail)
        end = End(END_KIND[cls], f"{detail}; {how}", reason=REASON[cls], subject=faulted.mountpoint)
        return Wait(pid, task.tid, what, end=end)
    mount, found = file_mount(snap, pid, task.syscall)
    cls, detail = classify(frames, task.wchan, mount.fstype if mount else "",
                           task.syscall is None, task.state, note)
    if cls == FUSE:
        return _fuse(snap, pid, task, what, *_fuse_mounts(snap, pid, mount, found), detail)
    mapped = _mapped_fuse(snap, pid) if cls == FAULT and mount is None else []
    if mapped:
        found = ("a page fault: the faulting address is not shown by the kernel, and this "
                 "process maps files from " + ", ".join(m.mountpoint for m in mapped))
        return _fuse(snap, pid, task, what, mapped, found, detail, inferred=True)
    if mount is not None:
        detail += f"; the file is on {mount.mountpoint} ({mount.fstype}, device {mount.major}:{mount.minor})"
    end = End(END_KIND[cls], detail, reason=REASON[cls], subject=mount.mountpoint if mount else "")
    return Wait(pid, task.tid, what, end=end)


def _mmap_queued(snap: Snapshot, pid: int, task: Task, what: str, frames: List[str], note: str) -> Wait:
    """A memory-map call (or a page fault) queued on its process's mmap lock: it waits for
    the thread that holds the lock, asleep in a page fault (its own, or in a read of this
    process's /proc/PID/mem); that thread's wait is followed from there."""
    detail = (f"uninterruptible sleep (kernel lock): waits for the memory-map lock (mmap_lock) of "
              f"process {pid}" + _stack_text([n for n in [task.wchan] + frames if n and n not in SCHEDULER],
                                              task.wchan, note))
    holder = snap.mmap_lock_holder(pid)
    if holder is None or holder == (pid, task.tid):
        end = End(EndKind.KERNEL, f"{detail}; which thread holds it is not seen (no thread of this "
                  "process sleeps in a page fault, and no reader of its /proc/PID/mem does)",
                  reason=Reason.KERNEL_WAIT)
        return Wait(pid, task.tid, what, end=end)
    hpid, htid = holder
    how = ("in a page fault of its own" if hpid == pid
           else f"in a page fault of process {pid}'s memory, read through /proc/{pid}/mem")
    fault = _fault_of(snap, hpid, htid)
    mount, path, found = fault if fault is not None else (None, "", "")
    evidence = (f"{detail}; /proc/{hpid}/task/{htid}: D state {how}, so it holds the lock"
                + (f"; {found}" if found else ""))
    fuse = Fuse(mount.mountpoint) if mount is not None and is_fuse_mount(mount) else None
    call = task.syscall.name if task.syscall is not None else ""
    return Wait(pid, task.tid, what, (Edge(pid, task.tid, hpid, htid, EdgeKind.MMAP_LOCK, f"mmap_lock:{pid}",
                                           evidence, syscall=call, fuse=fuse, fault_file=path),))


def _fault_of(snap: Snapshot, pid: int, tid: int) -> Optional[Tuple[Mount, str, str]]:
    """The file a thread asleep in a page fault faults on: through /proc/N/mem, the file
    mapped at the read's address; in its own process, the only FUSE file it maps."""
    task = next((t for t in snap.tasks(pid) if t.tid == tid), None)
    if task is None:
        return None
    remote = _remote_fault(snap, pid, task)
    if remote is not None:
        return remote
    mapped = _mapped_fuse(snap, pid)
    if len(mapped) == 1:
        return mapped[0], mapped[0].mountpoint, (f"it maps files from the FUSE mount {mapped[0].mountpoint} "
                                                 "(the faulting address is not shown by the kernel)")
    return None


MEM_READS = {"read": None, "pread64": 3, "readv": None, "preadv": 3, "preadv2": 3, "pread": 3}


def _remote_fault(snap: Snapshot, pid: int, task: Task) -> Optional[Tuple[Mount, str, str]]:
    """A read of /proc/N/mem that sleeps in a page fault of N's memory: the mount and path
    of the file N maps at the read's address, and how they were found."""
    call = task.syscall
    if call is None or call.name not in MEM_READS or task.state != "D":
        return None
    fd = call.arg_int(0)
    target = snap.target(pid, fd) or ""
    parts = target.split("/")  # /proc/N/mem or /proc/N/task/T/mem
    if not (target.startswith("/proc/") and parts[-1] == "mem" and parts[2].isdigit()):
        return None
    owner = int(parts[2])
    index = MEM_READS[call.name]
    if index is not None:
        address = call.args[index]
    else:
        info = snap.fdinfo(pid, fd)
        pos = info.pos if info is not None else None
        if pos is None:
            return None
        address = pos
    mapping = snap.mapping_at(owner, address)
    if mapping is None:
        return None
    major, minor, _inode, path = mapping
    mount = next((m for m in snap.mounts(owner).values() if (m.major, m.minor) == (major, minor)), None)
    if mount is None:
        return None
    return mount, path, (f"fd {fd} is {target}: the read faults in the page at {address:#x} of process "
                         f"{owner}, which maps {path} there (/proc/{owner}/maps: device {major}:{minor})")


def _vfork(snap: Snapshot, pid: int, task: Task, what: str) -> Wait:
    """vfork (posix_spawn, a shell's fast fork): the parent sleeps until its child execs or
    exits; the child is the newest, but any live one may be it."""
    kids = sorted(c for c in snap.children.get(pid, []) if c in snap.processes
                  and snap.processes[c].state not in ("Z", "X"))
    evidence = (f"/proc/{pid}/task/{task.tid}/wchan or stack: {task.wchan or 'wait_for_vfork_done'} "
                f"(vfork: the parent waits for its child to exec or exit); /proc/CHILD/stat ppid is {pid}")
    edges = tuple(Edge(pid, task.tid, kid, None, EdgeKind.CHILD, f"pid {kid}", evidence) for kid in kids)
    if not edges:
        return Wait(pid, task.tid, what, end=End(EndKind.UNKNOWN, "waits for its vfork child, but "
                                                 "none is left", reason=Reason.NO_CHILD))
    return Wait(pid, task.tid, what, edges)


# --- the class --------------------------------------------------------------------------


def classify(frames: List[str], wchan: str, fstype: str = "", faulting: bool = False,
             state: str = "D", note: str = "") -> Tuple[str, str]:
    """(class, detail) from the kernel stack (innermost first), wchan, and the file system
    of the file the call works on ("" if unknown)."""
    names = [n for n in [wchan] + frames if n and n not in SCHEDULER]
    fault = faulting or any(n.startswith(FAULTS) for n in names)
    cls = _filesystem(names, fstype) or _primitive(names, fault)
    sleep = "uninterruptible sleep" if state == "D" else "sleep"
    where = ", in a page fault" if fault and cls != FAULT else ""
    text = f"{sleep} ({cls}{where}): {MEANING[cls]}"
    if _lock_at_top(names) and cls != LOCK:
        text += ", behind a kernel lock another thread holds"
    return cls, text + _stack_text(names, wchan, note)


def _filesystem(names: List[str], fstype: str) -> str:
    if fstype.startswith("fuse") or any(is_fuse(n) for n in names):
        return FUSE
    if fstype.startswith("nfs") or any(n.startswith(NFS_NAMES) for n in names):
        return NFS
    return ""


def _primitive(names: List[str], fault: bool) -> str:
    if _lock_at_top(names):
        return LOCK
    if fault:
        return FAULT
    if any(n.startswith(IO) for n in names):
        return BLOCK
    return KERNEL


def _lock_at_top(names: List[str]) -> bool:
    """The innermost two functions (wchan, then the first frame) take a lock."""
    return any(n.startswith(LOCKS) for n in names[:2])


def _stack_text(names: List[str], wchan: str, note: str) -> str:
    frames = names[1:] if names and names[0] == wchan else names
    if frames:
        shown = " ← ".join(frames[:SHOWN_FRAMES]) + (" ← …" if len(frames) > SHOWN_FRAMES else "")
        return f"; wchan {wchan or '?'}; kernel stack {shown}"
    return f"; wchan {wchan or '?'}" + (f" ({note})" if note else "")


# --- the file the call works on ----------------------------------------------------------


def file_mount(snap: Snapshot, pid: int, call: Optional[Syscall]) -> Tuple[Optional[Mount], str]:
    """The mount of the file the call works on, and how it was found ("" if not found)."""
    if call is None:
        return None, ""
    if call.name in PATH_ARGS:
        return _path_mount(snap, pid, call, *PATH_ARGS[call.name])
    if call.name in FD_CALLS:
        return _fd_mount(snap, pid, call.arg_int(0))
    return None, ""


def _fd_mount(snap: Snapshot, pid: int, fd: int) -> Tuple[Optional[Mount], str]:
    info = snap.fdinfo(pid, fd)
    mount = snap.mounts(pid).get(info.mnt_id) if info is not None else None
    if mount is None:
        return None, ""
    return mount, f"/proc/{pid}/fdinfo/{fd}: mnt_id {mount.mnt_id}, mounted on {mount.mountpoint}"


def _path_mount(snap: Snapshot, pid: int, call: Syscall, dir_arg: Optional[int],
                path_arg: int) -> Tuple[Optional[Mount], str]:
    try:
        path = snap.memory.cstring(pid, call.args[path_arg]).decode("utf-8", "surrogateescape")
    except WaitchainError:
        return None, ""
    dirfd = call.arg_int(dir_arg) if dir_arg is not None else AT_FDCWD
    if not path and dirfd >= 0:  # AT_EMPTY_PATH: the call works on dirfd itself
        return _fd_mount(snap, pid, dirfd)
    if not path.startswith("/"):
        base = snap.cwd(pid) if dirfd == AT_FDCWD else snap.target(pid, dirfd)
        if base is None or not base.startswith("/"):
            return None, ""
        path = base.rstrip("/") + "/" + path
    mount = under(snap.mounts(pid).values(), path)
    if mount is None:
        return None, ""
    return mount, f"the path argument {path!r} (read with process_vm_readv) is under {mount.mountpoint}"


def under(mounts: Iterable[Mount], path: str) -> Optional[Mount]:
    """The mount a path is on: the longest mount point that contains it, the newest of equals."""
    best: Optional[Tuple[int, int, Mount]] = None
    for order, mount in enumerate(mounts):
        point = mount.mountpoint.rstrip("/")
        if path == mount.mountpoint or path.startswith(point + "/"):
            if best is None or (len(point), order) > best[:2]:
                best = (len(point), order, mount)
    return best[2] if best else None


# --- FUSE: follow to the daemon ----------------------------------------------------------


def connection(mount: Mount) -> int:
    """The FUSE connection number: the mount's dev_t as the kernel encodes it (MKDEV)."""
    return mount.major << 20 | mount.minor


def is_fuse_mount(mount: Mount) -> bool:
    return mount.fstype in ("fuse", "fuseblk") or mount.fstype.startswith("fuse.")


def _fuse(snap: Snapshot, pid: int, task: Task, what: str, mounts: List[Mount], found: str,
          detail: str, inferred: bool = False) -> Wait:
    tid = task.tid
    if not mounts:
        end = End(EndKind.KERNEL, f"{detail}; which FUSE mount is not known", reason=Reason.KERNEL_WAIT)
        return Wait(pid, tid, what, end=end)
    edges = [e for m in mounts for e in _daemon_edges(snap, pid, task, m, found, detail, inferred)]
    if edges:
        return Wait(pid, tid, what, tuple(edges))
    gone = ", ".join(f"{m.mountpoint} (connection {connection(m)})" for m in mounts)
    end = End(EndKind.KERNEL, f"{detail}; no process holds /dev/fuse for {gone}: the daemon is gone "
              "(umount -l detaches the mount)", reason=Reason.FUSE_GONE,
              subject=", ".join(m.mountpoint for m in mounts))
    return Wait(pid, tid, what, end=end)


def _fuse_mounts(snap: Snapshot, pid: int, mount: Optional[Mount], found: str) -> Tuple[List[Mount], str]:
    """The FUSE mount of the file when known; else the FUSE mounts the process uses."""
    if mount is not None and is_fuse_mount(mount):
        return [mount], found
    fuse = [m for m in snap.mounts(pid).values() if is_fuse_mount(m)]
    if len(fuse) <= 1:
        return fuse, "the only FUSE mount this process sees (the call's file is not known)"
    used = _mapped_fuse(snap, pid)
    if used:
        return used, "FUSE mounts this process maps files from (the call's file is not known)"
    return fuse, "every FUSE mount this process sees (the call's file is not known)"


def _mapped_fuse(snap: Snapshot, pid: int) -> List[Mount]:
    """FUSE mounts whose files the process has mapped (/proc/PID/maps device numbers)."""
    fuse = [m for m in snap.mounts(pid).values() if is_fuse_mount(m)]
    if not fuse:
        return []
    mapped = snap.mapped_devices(pid)
    return [m for m in fuse if (m.major, m.minor) in mapped]


def _daemon_edges(snap: Snapshot, pid: int, task: Task, mount: Mount, found: str, detail: str,
                  inferred: bool = False) -> List[Edge]:
    """One edge per process holding /dev/fuse for the mount's connection."""
    conn = connection(mount)
    fds: Dict[int, List[int]] = {}
    for holder in snap.fuse_daemons(conn):
        fds.setdefault(holder.pid, []).append(holder.fd)
    call = task.syscall
    fd = call.arg_int(0) if call is not None and call.name in FD_CALLS else None
    listed = snap.fuse_connection_listed(conn)
    alive = {daemon: snap.fuse_fd_alive(daemon, held[0]) for daemon, held in fds.items()}
    return [Edge(pid, task.tid, daemon, None, EdgeKind.FUSE, f"fuse:{mount.mountpoint}",
                 _daemon_evidence(pid, mount, found, detail, daemon, held[0]) + _alive_text(conn, listed, alive[daemon]),
                 fd=fd, holder_fds=tuple(held), fuse=Fuse(mount.mountpoint, inferred))
            for daemon, held in fds.items()]


def _alive_text(conn: int, listed: Optional[bool], alive: Optional[bool]) -> str:
    """How the connection was checked to be this mount's, live one."""
    text = f"; /sys/fs/fuse/connections/{conn} exists" if listed else ""
    if alive:
        return text + "; its /dev/fuse fd polls as a live connection (not an aborted one of the same number)"
    return text + "; whether its connection is alive was not checked (pidfd_getfd not permitted)"


def _daemon_evidence(pid: int, mount: Mount, found: str, detail: str, daemon: int, fd: int) -> str:
    return (f"{detail}; {found}; /proc/{pid}/mountinfo: {mount.mountpoint} is {mount.fstype} "
            f"on device {mount.major}:{mount.minor}; /proc/{daemon}/fdinfo/{fd} "
            f"(/dev/fuse): fuse_connection: {connection(mount)}")
