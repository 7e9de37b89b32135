"""Waits inside the kernel: D state classified from /proc/PID/stack and wchan, and a thread
stuck on a FUSE file followed to the FUSE daemon (the /dev/fuse holder whose fdinfo
`fuse_connection` is the mount's device number). The FUSE file system is a small fusepy
program whose read (or lookup) never answers; it is unmounted and its daemon killed even
when a test fails."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, List, NamedTuple, Tuple

import pytest
from scenario_helpers import edges_from, only_thread, threads_of

from waitchain.demo.harness import blocked_in, children, wait_until
from waitchain.errors import WaitchainError
from waitchain.procfs import memory
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.tasks import read_tasks
from waitchain.procfs.kstack import parse_stack
from waitchain.procfs.mounts import parse_mountinfo
from waitchain.waits import kernel
from waitchain.waits.kernel import BLOCK, FAULT, FUSE, KERNEL, LOCK, NFS, classify

MNT_DETACH = 2

# Recorded on this machine (kernel 6.18) while a fusepy daemon left requests unanswered.
FUSE_READ = """\
[<0>] folio_wait_bit_common+0x110/0x310
[<0>] filemap_get_pages+0x749/0x760
[<0>] filemap_read+0xda/0x3d0
[<0>] vfs_read+0x23a/0x360
[<0>] ksys_read+0x66/0xe0
[<0>] do_syscall_64+0x71/0x280
[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e
"""
FUSE_LOOKUP = """\
[<0>] request_wait_answer+0x112/0x210
[<0>] __fuse_simple_request+0x120/0x330
[<0>] fuse_lookup_name+0xbf/0x220
[<0>] fuse_lookup+0x75/0x1b0
[<0>] __lookup_slow+0x87/0x150
[<0>] walk_component+0x108/0x190
[<0>] path_lookupat+0xa7/0x180
[<0>] filename_lookup+0xe4/0x200
[<0>] vfs_statx+0x66/0x160
[<0>] do_statx+0x40/0x90
[<0>] __x64_sys_statx+0x90/0xf0
[<0>] do_syscall_64+0x71/0x280
[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e
"""
FUSE_INODE_LOCK = """\
[<0>] fuse_lock_inode+0x33/0x50
[<0>] fuse_lookup+0x56/0x1b0
[<0>] fuse_atomic_open+0x124/0x190
[<0>] path_openat+0xba6/0x12d0
[<0>] do_filp_open+0xc3/0x180
[<0>] do_sys_openat2+0x6e/0xd0
[<0>] __x64_sys_openat+0x5d/0xa0
[<0>] do_syscall_64+0x71/0x280
[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e
"""
FAULT_ON_MAPPING = """\
[<0>] folio_wait_bit_common+0x110/0x310
[<0>] filemap_fault+0x739/0x1650
[<0>] __do_fault+0x34/0xd0
[<0>] do_fault+0x319/0x660
[<0>] __handle_mm_fault+0x7fc/0xf40
[<0>] handle_mm_fault+0xd0/0x310
[<0>] exc_page_fault+0x176/0x770
[<0>] asm_exc_page_fault+0x22/0x30
"""
# The shapes the kernel's source gives for these (not reproduced on this machine).
NFS_GETATTR = """\
[<0>] rpc_wait_bit_killable+0x1e/0xa0 [sunrpc]
[<0>] __rpc_execute+0xf5/0x480 [sunrpc]
[<0>] rpc_execute+0x5c/0xc0 [sunrpc]
[<0>] rpc_run_task+0x121/0x190 [sunrpc]
[<0>] nfs4_call_sync_sequence+0x6f/0xa0 [nfsv4]
[<0>] _nfs4_proc_getattr+0xbc/0xe0 [nfsv4]
[<0>] nfs4_proc_getattr+0x6d/0x110 [nfsv4]
[<0>] __nfs_revalidate_inode+0xb3/0x2d0 [nfs]
[<0>] nfs_getattr+0x16f/0x2e0 [nfs]
[<0>] vfs_statx+0x89/0x110
"""
FSYNC = """\
[<0>] jbd2_log_wait_commit+0xac/0x120
[<0>] ext4_sync_file+0x2a8/0x3a0
[<0>] do_fsync+0x38/0x70
[<0>] __x64_sys_fsync+0x10/0x20
[<0>] do_syscall_64+0x5b/0x80
"""
MUTEX = """\
[<0>] __mutex_lock.constprop.0+0x2a4/0x4b0
[<0>] tty_release_struct+0x14/0x50
[<0>] tty_release+0x3ce/0x4b0
[<0>] __fput+0xea/0x2a0
[<0>] task_work_run+0x5d/0xa0
"""
MMAP_LOCK = """\
[<0>] rwsem_down_read_slowpath+0x2b6/0x4d0
[<0>] lock_mm_and_find_vma+0x7f/0x120
[<0>] do_user_addr_fault+0x1c8/0x670
[<0>] exc_page_fault+0x77/0x170
[<0>] asm_exc_page_fault+0x26/0x30
"""


# --- classification of recorded stacks -------------------------------------------------------


@pytest.mark.parametrize("stack, wchan, fstype, faulting, expected", [
    (FUSE_READ, "folio_wait_bit_common", "fuse", False, FUSE),  # no fuse frame: the mount says
    (FUSE_READ, "folio_wait_bit_common", "", False, BLOCK),
    (FUSE_READ, "folio_wait_bit_common", "ext4", False, BLOCK),
    (FUSE_LOOKUP, "request_wait_answer", "", False, FUSE),
    (FUSE_INODE_LOCK, "fuse_lock_inode", "", False, FUSE),
    (FAULT_ON_MAPPING, "folio_wait_bit_common", "", True, FAULT),
    (NFS_GETATTR, "rpc_wait_bit_killable", "", False, NFS),
    (FSYNC, "jbd2_log_wait_commit", "", False, BLOCK),
    (MUTEX, "__mutex_lock.constprop.0", "", False, LOCK),
    (MMAP_LOCK, "rwsem_down_read_slowpath", "", True, LOCK),
    ("", "", "", False, KERNEL),
])
def test_classify_recorded_stacks(stack: str, wchan: str, fstype: str, faulting: bool, expected: str) -> None:
    cls, detail = classify(parse_stack(stack), wchan, fstype, faulting)
    assert cls == expected
    assert detail.startswith(f"uninterruptible sleep ({expected}")
    assert kernel.END_KIND[cls] in ("kernel", "remote", "disk")


def test_classify_details() -> None:
    _, detail = classify(parse_stack(FUSE_INODE_LOCK), "fuse_lock_inode")
    assert "behind a kernel lock" in detail and "fuse_lookup" in detail
    _, detail = classify(parse_stack(MMAP_LOCK), "rwsem_down_read_slowpath", faulting=True)
    assert detail.startswith("uninterruptible sleep (kernel lock, in a page fault)")
    _, detail = classify([], "folio_wait_bit_common", note="the kernel stack needs root")
    assert detail.endswith("wchan folio_wait_bit_common (the kernel stack needs root)")
    _, detail = classify(parse_stack(FUSE_LOOKUP), "request_wait_answer", state="S")
    assert detail.startswith("sleep (FUSE)")


def test_parse_stack_drops_offsets_and_modules() -> None:
    assert parse_stack(NFS_GETATTR)[:2] == ["rpc_wait_bit_killable", "__rpc_execute"]
    assert parse_stack("") == []


def test_mount_of_a_path() -> None:
    mounts = parse_mountinfo(
        "22 1 0:21 / / rw - ext4 /dev/root rw\n"
        "42 22 0:39 / /tmp/fx/mnt ro - fuse Hang ro,user_id=0\n"
        "43 22 0:40 / /tmp/fx/mnt2 rw - fuse.sshfs host: rw\n"
        "44 42 0:41 / /tmp/fx/mnt ro - fuse Over ro\n")
    assert kernel.under(mounts.values(), "/tmp/fx/mnt/stuck").mnt_id == 44  # the newest of equals
    assert kernel.under(mounts.values(), "/tmp/fx/mnt2").mnt_id == 43
    assert kernel.under(mounts.values(), "/tmp/fx/mnt20/x").mnt_id == 22
    assert kernel.connection(mounts[42]) == 39
    assert all(kernel.is_fuse_mount(mounts[i]) for i in (42, 43, 44))


# --- a real FUSE file system that never answers ------------------------------------------------


FUSE_DAEMON = """
import errno, stat
from fuse import FUSE, Operations, FuseOSError

class Stuck(Operations):
    def init(self, path):
        ready("mounted")

    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        if path == "/stuck":
            return dict(st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=8192)
        if path == "/hang":
            ready("lookup")
            sleep_forever()
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "stuck"]

    def open(self, path, flags):
        return 0

    def read(self, path, size, offset, fh):
        ready("read")
        sleep_forever()

FUSE(Stuck(), sys.argv[1], foreground=True, ro=True)
"""


class Fuse(NamedTuple):
    mountpoint: Path
    daemon: Any  # conftest Program
    minor: int


def _fuse_unavailable() -> str:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if os.geteuid() != 0:
        return "mounting a FUSE file system here needs root"
    try:
        import fuse  # noqa: F401  (fusepy; raises OSError without libfuse)
    except (ImportError, OSError) as exc:
        return f"fusepy unusable: {exc}"
    return ""


@pytest.fixture
def stuck_fuse(run_py, tmp_path) -> Iterator[Fuse]:
    """A mounted fusepy file system whose read and /hang lookup never answer."""
    why = _fuse_unavailable()
    if why:
        pytest.skip(why)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    daemon = run_py(FUSE_DAEMON, str(mountpoint))
    minor = None
    try:
        daemon.ready()
        minor = _minor(str(mountpoint))
        yield Fuse(mountpoint, daemon, minor)
    finally:
        if minor is not None:  # first: every request of the connection fails at once, even
            abort_fuse(minor)  # when the daemon cannot be killed or a reader holds a lock
        _quiet_kill(daemon.pid)  # closes /dev/fuse: the kernel aborts every pending request
        ctypes.CDLL(None, use_errno=True).umount2(str(mountpoint).encode(), MNT_DETACH)


FUSECTL = "/sys/fs/fuse/connections"


def abort_fuse(connection: int) -> bool:
    """Abort a FUSE connection through fusectl (mounted here if it is not): its pending and
    future requests fail with ENOTCONN, so no test can leave a process waiting on it."""
    abort = f"{FUSECTL}/{connection}/abort"
    if not os.path.exists(abort) and os.path.isdir(FUSECTL):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    try:
        with open(abort, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def _minor(mountpoint: str) -> int:
    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    (mount,) = [m for m in mounts.values() if m.mountpoint == mountpoint]
    assert mount.fstype.startswith("fuse") and mount.major == 0
    return mount.minor


def _quiet_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _in_kernel(pid: int, state: str, wchan: str = "") -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            now = f.read().rpartition(")")[2].split()[0]
        with open(f"/proc/{pid}/wchan") as f:
            where = f.read()
    except OSError:
        return False
    return now == state and where.startswith(wchan)


def test_fuse_read_followed_to_the_daemon(stuck_fuse, run_py, diagnose_pid, run_cli) -> None:
    reader = run_py("""
        f = open(sys.argv[1], "rb", buffering=0)
        ready("reading", f.fileno())
        f.read(100)
        """, str(stuck_fuse.mountpoint / "stuck"), stderr=subprocess.DEVNULL)
    reader.ready()
    stuck_fuse.daemon.ready()  # the read request reached the daemon
    wait_until(lambda: _in_kernel(reader.pid, "D"), f"{reader.pid} sleeps in D state")

    data, code = diagnose_pid(reader.pid)

    assert code == 0
    (edge,) = edges_from(data, reader.pid)
    assert (edge["to"]["pid"], edge["kind"]) == (stuck_fuse.daemon.pid, "fuse")
    assert edge["object"] == f"fuse:{stuck_fuse.mountpoint}"
    assert edge["label"] == f"waits for the FUSE daemon of {stuck_fuse.mountpoint} to answer"
    assert edge["fuse"] == {"mountpoint": str(stuck_fuse.mountpoint), "inferred": False}
    assert f"fuse_connection: {stuck_fuse.minor}" in edge["evidence"]
    assert f"on device 0:{stuck_fuse.minor}" in edge["evidence"]
    assert "uninterruptible sleep (FUSE)" in edge["evidence"]
    assert "mnt_id" in edge["evidence"]  # found through the fd argument
    reading = only_thread(data, reader.pid)
    assert reading["state"] == "D" and reading["end"] is None
    assert reading["waits"].startswith("read(3<")
    assert [c["path"] for c in data["chains"]] == [[reader.pid, stuck_fuse.daemon.pid]]
    assert data["chains"][0]["end"]["kind"] == "sleeping"  # the daemon's handler, not its idle readers
    assert data["deadlock"] is False
    assert "FUSE daemon" in run_cli(str(reader.pid), "--no-stacks").out


def test_fuse_lookups_followed_by_their_path(stuck_fuse, run_py, diagnose_pid) -> None:
    """A stat() whose lookup the daemon never answers sleeps (S) in request_wait_answer; a
    second lookup in the same directory waits (D) for the FUSE inode lock. Both name their
    file only by a path argument, read from memory."""
    first = run_py("""
        ready("stat")
        os.stat(sys.argv[1])
        """, str(stuck_fuse.mountpoint / "hang"), stderr=subprocess.DEVNULL)
    first.ready()
    stuck_fuse.daemon.ready()  # the lookup reached the daemon
    wait_until(lambda: _in_kernel(first.pid, "S", "request_wait_answer"), "the lookup waits")
    second = run_py("""
        os.chdir(sys.argv[1])  # into the mount's root: no lookup in it yet
        ready("open")
        os.open("stuck", os.O_RDONLY)  # relative: resolved against /proc/PID/cwd
        """, str(stuck_fuse.mountpoint), stderr=subprocess.DEVNULL)
    second.ready()
    wait_until(lambda: _in_kernel(second.pid, "D"), "the second lookup waits for the inode lock")

    for pid, how in ((first.pid, "'" + str(stuck_fuse.mountpoint / "hang") + "'"),
                     (second.pid, "'" + str(stuck_fuse.mountpoint / "stuck") + "'")):
        data, code = diagnose_pid(pid)
        assert code == 0
        (edge,) = edges_from(data, pid)
        assert (edge["to"]["pid"], edge["kind"]) == (stuck_fuse.daemon.pid, "fuse")
        assert f"the path argument {how}" in edge["evidence"]
        assert f"fuse_connection: {stuck_fuse.minor}" in edge["evidence"]
    assert "behind a kernel lock" in edge["evidence"]


# --- the target's mmap lock held: reads that take it must not hang waitchain ---------------------

MAPPED_VICTIM = """
import mmap
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 8192, prot=mmap.PROT_READ)
with open("/proc/self/maps") as maps:
    start = next(l.split("-")[0] for l in maps if l.rstrip().endswith(sys.argv[1]))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])

def mapper():
    signal.sigwait([signal.SIGUSR1])
    mmap.mmap(-1, 4096)  # waits for the mmap lock, behind the /proc/PID/mem reader

class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]

def nap():  # (clock_)nanosleep on every Python: its timespec is read from memory
    while True:
        libc.nanosleep(ctypes.byref(timespec(3600, 0)), None)

threading.Thread(target=mapper).start()
threading.Thread(target=nap).start()
lock = threading.Lock()
lock.acquire()
ready("mapped", start)
lock.acquire()
"""

MEM_READER = """
fd = os.open("/proc/%s/mem" % sys.argv[1], os.O_RDONLY)
ready("reading")
os.pread(fd, 16, int(sys.argv[2], 16))  # faults the FUSE page in, holding the mmap lock
"""


def test_held_mmap_lock_neither_hangs_nor_blocks_exit(stuck_fuse, run_py, procs) -> None:
    """A process whose mmap lock is held (a /proc/PID/mem read stuck on a FUSE page) and
    wanted by a writer (mmap): cmdline and process_vm_readv on it block, the latter in an
    uninterruptible sleep that not even SIGKILL ends. waitchain must answer, say why, and
    exit: the memory reads go through a helper process under a deadline."""
    victim = run_py(MAPPED_VICTIM, str(stuck_fuse.mountpoint / "stuck"), stderr=subprocess.DEVNULL)
    ((_, _, start),) = victim.ready()
    reader = run_py(MEM_READER, str(victim.pid), start, stderr=subprocess.DEVNULL)
    reader.ready()
    stuck_fuse.daemon.ready()  # the page's read reached the daemon: the mmap lock is held
    wait_until(lambda: _in_kernel(reader.pid, "D"), "the /proc/PID/mem reader holds the lock")
    os.kill(victim.pid, signal.SIGUSR1)
    wait_until(lambda: blocked_in(victim.pid, ["mmap"]), "a writer waits for the mmap lock")

    began = time.monotonic()
    cli = procs.spawn([sys.executable, "-m", "waitchain", str(victim.pid), "--json"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = cli.communicate(timeout=60)  # returns once waitchain has exited
    took = time.monotonic() - began

    assert cli.returncode in (0, 1), err.decode()
    assert took < 20, f"waitchain took {took:.1f} s"
    data = json.loads(out)
    notes = " ".join(data["notes"])
    assert (f"the command line of {victim.pid} could not be read: its memory-map lock is held by "
            f"thread {reader.pid} of process {reader.pid}") in notes
    text = json.dumps(threads_of(data, victim.pid))
    # the sleep's timespec: not read, and why
    assert (f"memory of process {victim.pid} not read: its memory-map lock is held by thread "
            f"{reader.pid} of process {reader.pid}") in text


def _held_mmap_lock(stuck_fuse, run_py) -> Tuple[Any, Any, int]:
    """The victim of MAPPED_VICTIM with its mmap lock held by a /proc/PID/mem reader that
    faults in a FUSE page, and its mapper thread queued behind: (victim, reader, mapper tid)."""
    victim = run_py(MAPPED_VICTIM, str(stuck_fuse.mountpoint / "stuck"), stderr=subprocess.DEVNULL)
    ((_, _, start),) = victim.ready()
    reader = run_py(MEM_READER, str(victim.pid), start, stderr=subprocess.DEVNULL)
    reader.ready()
    stuck_fuse.daemon.ready()  # the page's read reached the daemon: the mmap lock is held
    wait_until(lambda: _in_kernel(reader.pid, "D"), "the /proc/PID/mem reader holds the lock")
    os.kill(victim.pid, signal.SIGUSR1)
    wait_until(lambda: blocked_in(victim.pid, ["mmap"]), "a writer waits for the mmap lock")
    (mapper,) = [t.tid for t in read_tasks(ProcFS(), victim.pid) if t.syscall and t.syscall.name == "mmap"]
    wait_until(lambda: _thread_state(victim.pid, mapper) == "D", "the mapper sleeps in D state")
    return victim, reader, mapper


def _thread_state(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return ""


def _ours_in_d(exclude: Iterable[int]) -> List[int]:
    """Processes of ours (children of this test process, the subreaper of every orphan
    of the runs) in D state, but for `exclude` (the scenario's own)."""
    return [pid for pid in children(os.getpid())
            if pid not in exclude and _thread_state(pid, pid) == "D"]


def test_mmap_call_queued_behind_a_fault_on_fuse(stuck_fuse, run_py, run_cli) -> None:
    """A thread queued in mmap() waits for the thread that holds its process's mmap lock (a
    /proc/PID/mem read faulting a FUSE page in), whose wait goes on to the FUSE daemon;
    the victim's memory and command line are not read (the lock is seen held first)."""
    victim, reader, mapper = _held_mmap_lock(stuck_fuse, run_py)

    result = run_cli(str(victim.pid), "--json", "--no-stacks")

    data = json.loads(result.out)
    queued = [e for e in data["edges"] if (e["from"]["pid"], e["from"]["tid"]) == (victim.pid, mapper)]
    assert [(e["kind"], e["to"]["pid"], e["to"]["tid"]) for e in queued] == [("mmap-lock", reader.pid, reader.pid)]
    stuck = str(stuck_fuse.mountpoint / "stuck")
    assert queued[0]["label"] == (f"waits for the memory-map lock, held by thread {reader.pid} of process "
                                  f"{reader.pid} (page fault on FUSE file {stuck})")
    assert queued[0]["fuse"] == {"mountpoint": str(stuck_fuse.mountpoint), "inferred": False}
    assert f"/proc/{victim.pid}/mem" in queued[0]["evidence"]
    (fault,) = edges_from(data, reader.pid)
    assert (fault["kind"], fault["to"]["pid"]) == ("fuse", stuck_fuse.daemon.pid)
    assert f"which maps {stuck} there" in fault["evidence"]
    assert f"fuse_connection: {stuck_fuse.minor}" in fault["evidence"]
    assert data["deadlock"] is False
    assert result.code == 0
    notes = " ".join(data["notes"])
    assert (f"the command line of {victim.pid} could not be read: its memory-map lock is held by "
            f"thread {reader.pid} of process {reader.pid}") in notes
    assert f"the command line of {reader.pid}" not in notes  # its own memory is free
    # the healthy look-alike: once the daemon is gone the lock is free, the read goes on
    assert abort_fuse(stuck_fuse.minor)
    wait_until(lambda: _thread_state(victim.pid, mapper) != "D", "the mapper got the lock")
    after = json.loads(run_cli(str(victim.pid), "--json", "--no-stacks").out)
    assert not [e for e in after["edges"] if e["kind"] == "mmap-lock"]
    assert not [n for n in after["notes"] if "memory-map lock" in n]


def test_twenty_runs_under_a_held_mmap_lock_leave_nothing_in_d_state(stuck_fuse, run_py, procs) -> None:
    """Every `--all` run used to leave its memory reader in D state (process_vm_readv queued
    behind the mmap lock, unkillable) and reparented: now none. This process is the
    subreaper of every orphan of the runs, so a helper left behind is its child."""
    victim, reader, mapper = _held_mmap_lock(stuck_fuse, run_py)
    scenario = {victim.pid, reader.pid, stuck_fuse.daemon.pid}
    assert _ours_in_d(scenario) == []

    took = []
    for _ in range(20):
        began = time.monotonic()
        cli = procs.spawn([sys.executable, "-m", "waitchain", "--all", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = cli.communicate(timeout=60)
        took.append(time.monotonic() - began)
        assert cli.returncode in (0, 1, 4), err.decode()
        assert "verdicts" in json.loads(out)
    time.sleep(0.2)  # a helper killed at exit is reaped by us within this

    assert _ours_in_d(scenario) == []
    assert max(took) < 20, took
    assert _thread_state(victim.pid, mapper) == "D"  # the lock was held all along


def test_one_memory_reader_a_run_even_when_a_read_overruns(stuck_fuse, run_py) -> None:
    """A read that waits anyway (the check before it saw nothing, the lock was taken
    after) overruns its deadline: the helper is kept, not replaced (at most one a run),
    later reads fail at once while it waits, and it is used again once it answers."""
    victim, reader, mapper = _held_mmap_lock(stuck_fuse, run_py)
    scenario = {victim.pid, reader.pid, stuck_fuse.daemon.pid}
    probe = ctypes.create_string_buffer(b"probe-S!")
    mem = memory.MemoryReader()
    try:
        mem._contention[victim.pid] = None  # as if the check had seen no contention
        with pytest.raises(memory.MemoryLocked):
            mem.read(victim.pid, 0x1000, 8)  # any address: the lock is taken first
        helpers = [p for p in children(os.getpid()) if p not in scenario]
        assert len(helpers) == 1 and _thread_state(helpers[0], helpers[0]) == "D"
        began = time.monotonic()
        with pytest.raises(WaitchainError, match="memory reader is held up"):
            mem.read(os.getpid(), ctypes.addressof(probe), 8)
        assert time.monotonic() - began < 0.5
        assert [p for p in children(os.getpid()) if p not in scenario] == helpers  # no second one
        assert abort_fuse(stuck_fuse.minor)  # the lock is released: the late answer comes
        wait_until(lambda: _thread_state(victim.pid, mapper) != "D", "the mapper got the lock")
        assert mem.read(os.getpid(), ctypes.addressof(probe), 8) == b"probe-S!"  # the same helper again
        assert [p for p in children(os.getpid()) if p not in scenario] == helpers
    finally:
        mem.close()


# --- FUSE daemon identity: a stale holder of a dead connection with the same number -------------

FD_HOLDER = """
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438
pidfd = libc.syscall(SYS_PIDFD_OPEN, int(sys.argv[1]), 0)
fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(sys.argv[2]), 0)
assert fd >= 0, ctypes.get_errno()
ready("holding", fd)
sleep_forever()
"""

FUSE_READER = """
f = open(sys.argv[1], "rb", buffering=0)
ready("reading")
f.read(100)
"""


def _fuse_fd(pid: int) -> int:
    return next(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse")


def _mount(run_py, mountpoint: Path) -> Tuple[Any, int]:
    mountpoint.mkdir()
    daemon = run_py(FUSE_DAEMON, str(mountpoint))
    daemon.ready()
    return daemon, _minor(str(mountpoint))


def test_a_stale_daemon_of_a_reused_connection_number_is_not_the_daemon(run_py, diagnose_pid, tmp_path) -> None:
    """Mount A's /dev/fuse is also held by another process (as a daemon's forked helper
    would); A is aborted and unmounted, its daemon killed, the holder stays; mount B gets
    A's device number. The holder's fdinfo says fuse_connection: N, as B's daemon's does:
    only B's daemon is the one a reader of B waits for. While A lived, the holder was one
    of A's daemons too (the look-alike: a live second holder is named)."""
    why = _fuse_unavailable()
    if why:
        pytest.skip(why)
    mounted = []
    try:
        first, number = _mount(run_py, tmp_path / "a")
        mounted.append((tmp_path / "a", number))
        holder = run_py(FD_HOLDER, str(first.pid), str(_fuse_fd(first.pid)))
        ((_, _, held),) = holder.ready()
        reader = run_py(FUSE_READER, str(tmp_path / "a" / "stuck"), stderr=subprocess.DEVNULL)
        reader.ready()
        first.ready()  # the read reached A's daemon
        wait_until(lambda: _in_kernel(reader.pid, "D"), "the reader of A waits")
        data, _code = diagnose_pid(reader.pid)
        assert sorted(e["to"]["pid"] for e in edges_from(data, reader.pid)) == sorted([first.pid, holder.pid])
        assert all("polls as a live connection" in e["evidence"] for e in edges_from(data, reader.pid))

        assert abort_fuse(number)
        _quiet_kill(first.pid)
        ctypes.CDLL(None, use_errno=True).umount2(str(tmp_path / "a").encode(), MNT_DETACH)
        wait_until(lambda: not os.path.isdir(f"{FUSECTL}/{number}"), "A's connection is gone from fusectl")
        second, again = _mount(run_py, tmp_path / "b")
        mounted.append((tmp_path / "b", again))
        if again != number:
            pytest.skip(f"the device number was not reused ({number} then {again}): another FUSE mount came between")
        with open(f"/proc/{holder.pid}/fdinfo/{held}") as f:
            assert f"fuse_connection:\t{number}" in f.read()  # the stale holder claims the number

        reader = run_py(FUSE_READER, str(tmp_path / "b" / "stuck"), stderr=subprocess.DEVNULL)
        reader.ready()
        second.ready()  # the read reached B's daemon
        wait_until(lambda: _in_kernel(reader.pid, "D"), "the reader of B waits")
        data, code = diagnose_pid(reader.pid)
        assert [(e["kind"], e["to"]["pid"]) for e in edges_from(data, reader.pid)] == [("fuse", second.pid)]
        assert (f"{holder.pid} holds /dev/fuse (fd {held}) of an earlier FUSE connection numbered {number} "
                "that is dead") in " ".join(data["notes"])
        assert code == 0
    finally:
        for mountpoint, minor in mounted:
            abort_fuse(minor)
            ctypes.CDLL(None, use_errno=True).umount2(str(mountpoint).encode(), MNT_DETACH)
