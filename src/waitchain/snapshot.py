"""One pass over the system: processes and their fds, with indexes from object to holders.
Details that cost more (threads, fdinfo, socket tables, pipe fill) are read on first use
and cached, so `waitchain PID` reads them only along the chain."""

from __future__ import annotations

import os
from collections import defaultdict
from functools import partial

from .errors import ProcessGone, Timeout, WaitchainError
from .model import Container, DbSession, FdInfo, Holder, PipeFill, Place, Process, Task, TcpSocket, UnixSocket
from .procfs import cstructs, memory, split  # cstructs: a sleep's remaining time already needs it
from .procfs.fds import link_access, read_fdinfo
from .procfs.activity import Seen, activity_again, read_activity, release, switches_of
from .procfs.activity import one_thread_activity as _one_thread_activity
from .procfs.process import CMDLINE_DEADLINE, parse_cmdline, read_cmdline, read_process, read_starttime
from .procfs.reader import TABLE_READ, ProcFS, each_with_deadline, fd_is_fifo
from .procfs.sched import age_at, plausible_idle, read_cpu_and_start, read_exec_start, read_sched_now, read_uptime
from .procfs.status import mask, nspids, read_status, read_status_field, tpgid, tty_nr
from .procfs.tasks import read_task, read_tasks
from .records import NamedTuple
from .procfs import cgroup as cgroups, uts

TYPE_CHECKING = False
if TYPE_CHECKING:  # types only; these modules are imported where they are used: a run imports what it reads
    from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

    from .procfs import postgres
    from .procfs.activity import Activity
    from .procfs.inetdiag import TcpInfo
    from .procfs.locks import LockEntry
    from .procfs.mounts import Mount
    from .procfs.timers import PosixTimer

    Endpoint = Tuple[str, int]
    K = TypeVar("K")
    V = TypeVar("V")
    HolderList = List[Tuple[int, int]]

UNIX_DUMP_AFTER = 32  # exact unix socket lookups before one dump of all is cheaper
MAX_NETNS = 64  # network namespaces searched for the listener of a queued unix connection
BLOCKED_CMDLINES = 3  # command lines that may each take their full deadline; then a short one
SHORT_DEADLINE = 0.05  # seconds
FDS_UNREADABLE = "fds unreadable"  # how a process's note begins when its fds were not read
FUSECTL = "/sys/fs/fuse/connections"
REMOTE_FS = ("fuse", "nfs", "cifs", "smb", "9p", "ceph", "glusterfs", "afs", "lustre", "gfs2",
             "virtiofs", "ocfs2", "beegfs", "gpfs", "orangefs", "pvfs2", "coda", "ncpfs", "davfs")


class TargetMemory:
    """Reads of target memory for the wait rules: process_vm_readv through the run's
    MemoryReader (a helper process with a deadline; see procfs/memory.py), decoded by
    procfs/cstructs.py. Every method raises WaitchainError when unreadable. Under a
    recorded /proc (`live` False) nothing is read: the pids are not this host's."""

    def __init__(self, live: bool = True, reader: Optional[memory.MemoryReader] = None) -> None:
        self.owned = reader is None  # a reader given (ScanCache's) outlives this snapshot
        self.reader = memory.MemoryReader() if reader is None else reader
        self.live = live
        # a process whose main thread exited (pthread_exit) has no memory under its pid:
        # process_vm_readv says ESRCH; one of its live threads reads the same memory
        self.through: Dict[int, int] = {}

    def read(self, pid: int, address: int, size: int) -> bytes:
        self._check(pid)
        return self.reader.read(self.through.get(pid, pid), address, size)

    def read_partial(self, pid: int, address: int, size: int) -> bytes:
        """Up to `size` bytes: fewer when the mapping ends before."""
        self._check(pid)
        return self.reader.read_partial(self.through.get(pid, pid), address, size)

    def cstring(self, pid: int, address: int) -> bytes:
        self._check(pid)
        return self.reader.cstring(self.through.get(pid, pid), address)

    def timespec(self, pid: int, address: int) -> float:
        return cstructs.timespec(self.read(pid, address, cstructs.TIMESPEC.size))

    def u32(self, pid: int, address: int) -> int:
        return cstructs.u32(self.read(pid, address, cstructs.U32.size))

    def sigset(self, pid: int, address: int) -> int:
        return cstructs.sigset(self.read(pid, address, cstructs.U64.size))

    def flock(self, pid: int, address: int) -> Tuple[int, int, int, int]:
        return cstructs.flock(self.read(pid, address, cstructs.FLOCK.size))

    def sembufs(self, pid: int, address: int, count: int) -> List[Tuple[int, int, int]]:
        """An array of struct sembuf (at most cstructs.MAX_SEMBUFS read)."""
        count = cstructs.sembuf_count(count)
        return cstructs.sembufs(self.read(pid, address, cstructs.SEMBUF.size * count)) if count else []

    def mutex(self, pid: int, address: int) -> cstructs.MutexWords:
        """The first words of a glibc pthread_mutex_t (nothing proves it is one)."""
        return cstructs.mutex(self.read(pid, address, cstructs.MUTEX.size))

    def stuck(self, pid: int) -> bool:
        """A read of pid's memory overran its deadline: its mmap lock is held."""
        return self.reader.stuck(pid)

    def mark_stuck(self, pid: int) -> None:
        self.reader.mark_stuck(pid)

    def close(self) -> None:
        if self.owned:
            self.reader.close()

    def _check(self, pid: int) -> None:
        if not self.live:
            raise WaitchainError(f"process {pid}: memory is not read under a recorded /proc")


class Kept(NamedTuple):
    """A process as the last scan read it, for ScanCache: what was seen of its activity (with
    its schedstat files held open, if there was room), how many scans in a row it has been
    carried, and the process."""

    seen: Seen
    carried: int
    proc: Process


class ScanCache:
    """What one scan may carry to the next (`waitchain watch`; psutil's oneshot cache is the
    model, scoped to the owner, here the watch loop): a process that has not run since the
    last scan keeps its fd table, owner, namespaces and stat fields from then, and its
    threads (states, system calls, counters) once a snapshot has read them; the memory
    reader's helper process is kept for every scan. Everything else is read again by every
    scan.

    "Has not run": not running when last read, and every thread's schedstat the same
    (procfs/activity.py), read before its fds were. The schedstat files are held open from
    one scan to the next (one pread() per thread instead of a path walk, an open and a close
    for stat and schedstat: ~5x cheaper per process); a file of /proc/PID stays bound to the
    process it was opened for, so a process gone or a pid reused fails the read. Without room
    for held files (at most `room` fds, and never within 256 of RLIMIT_NOFILE), stat and
    schedstat are read by path and the start time compared, as before. Kernel cost of a held
    file: its struct file and a page of seq_file buffer.

    Why an fd table cannot change without its process running: open, close, dup2,
    close_range, fcntl(F_DUPFD), accept, pidfd_getfd and io_uring's opens each install or
    remove fds in the *caller's* table (pidfd_getfd dups a target's fd into the caller,
    never the other way); an fd passed with SCM_RIGHTS enters the receiver's table only in
    its own recvmsg; io_uring's workers and SQPOLL thread are threads of the process, in its
    task/ list. A process ending is a change of state seen anyway (its pid goes). What can
    change while a process does not run, and is carried stale: its parent (reparented when
    the parent exits), its group (setpgid by its parent before it execs), its name (written
    to /proc/PID/comm by another), and the fd table of a process created with
    clone(CLONE_FILES) but not CLONE_THREAD, which shares another's (rare: old LinuxThreads,
    some hand-made clones). For those, a process is carried `most` scans at most, then read
    again; and the watchdog reads every process afresh, with no cache, before it writes a
    report (watch.py), so a stale fact can delay an incident's report, never make one. The
    scanning process itself runs every scan: it is read again every `most` scans only (its
    fds are its own doing: the held files, its helpers' pipes).
    Owner and namespaces: setuid, setns and unshare change the caller only. Close the cache
    when done (it ends the helper and closes the held files)."""

    def __init__(self, most: int = 12, room: int = 8192) -> None:
        self.most = most
        self.me = os.getpid()
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.room = room if soft == resource.RLIM_INFINITY else max(0, min(room, soft - 256))
        self.kept: Dict[int, Kept] = {}  # pid → as of the last scan
        self.now: Dict[int, Kept] = {}
        self.held = 0  # schedstat files held open in kept and now
        self.activity: Dict[int, Activity] = {}  # this scan's reads, for Snapshot.one_thread_activity
        self.threads: Dict[int, List[Task]] = {}  # pid → its threads as read since its fd table was
        self.reader: Optional[memory.MemoryReader] = None
        self.fd_reads = 0  # fd tables read (counters for tests and benchmarks)
        self.carried = 0  # fd tables carried from the last scan

    def memory_reader(self) -> memory.MemoryReader:
        """The reader kept across scans, with what it learnt in the last scan forgotten."""
        if self.reader is None or self.reader.closed:
            self.reader = memory.MemoryReader()
        else:
            self.reader.next_run()
        return self.reader

    def scan_process(self, fs: ProcFS, pid: int, notes: List[str]) -> Optional[Process]:
        """_scan_process, or the process as the last scan read it if it has not run since."""
        old = self.kept.pop(pid, None)
        if old is not None and old.carried < self.most:
            seen = old.seen if pid == self.me else self._unchanged(fs, pid, old.seen)
            if seen is not None:
                return self._carry(pid, old, seen)
        if old is not None:
            self._release(old.seen)
        self.threads.pop(pid, None)
        if pid == self.me:  # the scanner runs every scan; its fds are its own: held files, helpers' pipes
            proc = _scan_process(fs, pid, notes)
            if proc is not None:
                self.now[pid] = Kept(Seen(proc.starttime, proc.comm, proc.state, proc.ppid, proc.pgrp, ()), 0, proc)
            return proc
        seen = read_activity(fs, pid, hold=self.held < self.room)  # before the fds: a run after it shows next scan
        self.held += len(seen.held) if seen is not None else 0
        proc = _scan_process(fs, pid, notes)  # everything through one open /proc/PID, as without a cache
        if proc is not None:
            self.fd_reads += 1
        if seen is not None and proc is not None and seen.starttime == proc.starttime and not proc.note:
            self.activity[pid] = seen.activity
            self.now[pid] = Kept(seen, 0, proc)
        elif seen is not None:
            self._release(seen)
        return proc

    def _unchanged(self, fs: ProcFS, pid: int, seen: Seen) -> Optional[Seen]:
        """What was seen, if no thread of pid has run since; else None."""
        if seen.held:
            return seen if activity_again(seen) == seen.activity else None
        now = read_activity(fs, pid)
        return now if now is not None and (now.starttime, now.activity) == (seen.starttime, seen.activity) else None

    def _carry(self, pid: int, old: Kept, seen: Seen) -> Process:
        self.carried += 1
        self.activity[pid] = seen.activity
        self.now[pid] = Kept(seen, old.carried + 1, old.proc)
        was = old.proc  # a copy: a snapshot may add a note to its Process
        return Process(pid, was.starttime, was.comm, was.state, was.ppid, was.pgrp, was.uid, was.netns,
                       was.pidns, was.fds)

    def _release(self, seen: Seen) -> None:
        self.held -= len(seen.held)
        release(seen.held)

    def next_scan(self) -> None:
        for pid, gone in self.kept.items():  # not seen by this scan: gone, or not asked for
            self._release(gone.seen)
            self.threads.pop(pid, None)
        self.kept, self.now = self.now, {}

    def carried_threads(self, pid: int) -> Optional[List[Task]]:
        """The threads of a process this scan carried (it has not run since they were read:
        the same states, system calls and counters); None when not known."""
        kept = self.kept.get(pid)
        return self.threads.get(pid) if kept is not None and kept.carried and pid != self.me else None

    def keep_threads(self, pid: int, tasks: List[Task]) -> None:
        """Remember the threads read of a process this scan kept, for the scans that carry it."""
        if pid in self.kept:
            self.threads[pid] = tasks

    def close(self) -> None:
        for kept in list(self.kept.values()) + list(self.now.values()):
            self._release(kept.seen)
        self.kept, self.now, self.threads = {}, {}, {}
        if self.reader is not None:
            self.reader.close()


BIG_TABLE = 64  # fds of a process past which a lookup in it goes through an index of its own
LINEAR_LOOKUPS = 8  # lookups made by walking every fd table before the index is built (~25x one walk)


class Holders:
    """The object → holders index: target ("pipe:[123]", a path) → every (pid, fd) holding it,
    in scan order (processes as scanned, each one's fds in its table's order). `get` as on a
    dict: `snap.holders.get(target, ())`.

    Kept small, for a host with 100,000 fds or more: per target, only the pid that holds it
    (the int the process table has already) or a tuple of pids when several processes do; a
    lookup finds the fds in each holder's own table, through an index of that table built on
    first use when it has more than BIG_TABLE fds. (A list of (pid, fd) tuples per target
    cost ~130 B per fd, as much as the fd tables themselves.)

    Built on first need only: `waitchain PID` looks up a few targets (3 at +1,000 processes x
    50 fds), each found by walking every fd table (~2 ms there) where building the index costs
    ~25 walks (~50 ms under load) and ~2 MiB; past LINEAR_LOOKUPS lookups (--all, long
    chains) it is built. The same answers either way, in the same order."""

    def __init__(self, processes: Dict[int, Process]) -> None:
        self._processes = processes  # the snapshot's own dict: add() is given its new entries
        self._index: Optional[Dict[str, object]] = None  # built on the LINEAR_LOOKUPS+1st lookup
        self._lookups = 0  # made without the index
        self._tables: Dict[int, Dict[str, List[int]]] = {}  # pid → its targets' fds (big tables)
        self._found: Dict[str, HolderList] = {}  # the lookups made, kept: a pipe 1,000 hold is asked for 1,000 times

    def add(self, proc: Process) -> None:
        """Index the fds of a process of the table (at most once each)."""
        if self._index is not None:
            self._add(self._index, proc)
        if self._found:
            self._found.clear()

    def _built(self) -> Dict[str, object]:
        if self._index is None:
            self._index = {}
            for proc in self._processes.values():
                self._add(self._index, proc)
        return self._index

    @staticmethod
    def _add(index: Dict[str, object], proc: Process) -> None:
        pid = proc.pid
        mine: Dict[str, object] = dict.fromkeys(proc.fds.values(), pid)  # its targets, once each, in table order
        for target in mine.keys() & index.keys():  # held by processes indexed before too: few
            seen = index[target]
            if seen == pid:
                continue
            elif type(seen) is int:
                mine[target] = (seen, pid)
            else:
                mine[target] = seen if pid in seen else seen + (pid,)  # type: ignore[operator]
        index.update(mine)  # new targets appended in table order, the shared ones updated in place

    def get(self, target: str, default: Sequence[Tuple[int, int]] = ()) -> Sequence[Tuple[int, int]]:
        """Every (pid, fd) holding target, or `default`. The list is the index's: do not change it."""
        found = self._found.get(target)
        if found is not None:
            return found
        if self._index is None and self._lookups < LINEAR_LOOKUPS:  # a walk of every table, in C
            self._lookups += 1
            found = [(pid, fd) for pid, proc in self._processes.items() if target in proc.fds.values()
                     for fd, held in proc.fds.items() if held == target]
            if not found:
                return default
            self._found[target] = found
            return found
        held = self._built().get(target)
        if held is None:
            return default
        pids: Tuple[int, ...] = (held,) if type(held) is int else held  # type: ignore[assignment]
        found = self._found[target] = [(pid, fd) for pid in pids for fd in self._fds(pid, target)]
        return found

    def _fds(self, pid: int, target: str) -> List[int]:
        fds = self._processes[pid].fds
        if len(fds) <= BIG_TABLE:
            return [fd for fd, t in fds.items() if t == target]
        table = self._tables.get(pid)
        if table is None:
            table = self._tables[pid] = defaultdict(list)
            for fd, t in fds.items():
                table[t].append(fd)
        return table.get(target, [])

    def __getitem__(self, target: str) -> HolderList:
        if target not in self._built():
            raise KeyError(target)
        return list(self.get(target))

    def __contains__(self, target: object) -> bool:
        return target in self._built()

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def items(self) -> Iterator[Tuple[str, HolderList]]:
        return ((target, list(self.get(target))) for target in self._built())


class Snapshot:
    """Processes, fds and the object → holders index. Build with Snapshot.scan()."""

    def __init__(self, fs: ProcFS, processes: Dict[int, Process], notes: List[str],
                 cache: Optional[ScanCache] = None) -> None:
        self.fs = fs
        self.processes = processes
        self.notes = notes
        self.holders = Holders(processes)
        self.children: Dict[int, List[int]] = defaultdict(list)
        for proc in processes.values():
            self.children[proc.ppid].append(proc.pid)
        self._tasks: Dict[int, List[Task]] = {}
        self._fdinfo: Dict[Tuple[int, int], Optional[FdInfo]] = {}
        self._holders_of: Dict[str, List[Holder]] = {}
        self._holders_with: Dict[Tuple[str, Tuple[str, ...]], List[Holder]] = {}
        self._tcp: Dict[str, List[TcpSocket]] = {}
        self._tcp_indexes: Dict[str, tuple] = {}
        self._tcp_by_target: Dict[str, Dict[str, TcpSocket]] = {}
        self._places: Dict[int, Place] = {}
        self._containers: Dict[Tuple[str, ...], Optional[Container]] = {}  # by cgroup paths
        self._unix: Dict[int, Optional[UnixSocket]] = {}
        self._unix_paths: Optional[Dict[int, UnixSocket]] = None
        self._unix_dump: Optional[Dict[int, UnixSocket]] = None
        self._netns: Dict[str, set] = {}
        self._cmdlines: Dict[int, str] = {}
        self._mounts: Dict[int, Dict[int, Mount]] = {}
        self._timers: Dict[int, List[PosixTimer]] = {}
        self._idle: Dict[Tuple[int, int], Optional[float]] = {}
        self._clocks_on: Dict[Optional[int], Tuple[Optional[float], Optional[float]]] = {}  # CPU → (its scheduler clock, uptime)
        self.memory = TargetMemory(live=fs.root == "/proc", reader=cache.memory_reader() if cache else None)
        self._activity: Dict[int, Activity] = cache.activity if cache else {}  # this scan's: a new dict each scan
        self._cache = cache
        self.memory.reader.holder_of = lambda found: self.mmap_lock_holder(found.pid)
        self._sysvipc: Dict[str, List[Dict[str, int]]] = {}
        self._status: Dict[Tuple[int, Optional[int]], Dict[str, str]] = {}
        self._tracers: Dict[int, int] = {}
        self._handled: Dict[int, int] = {}
        self._locks: Optional[List[LockEntry]] = None
        self._nspids: Dict[Tuple[int, Optional[int]], List[int]] = {}
        self._own_pidns: Optional[str] = None
        self._blocked_cmdlines = 0  # command lines that did not answer in time
        self._sock_diag_failed = False
        self._own_netns: Optional[str] = None
        self._hostnames: Dict[str, str] = {}  # UTS namespace → its host name
        self._conntracks: Dict[str, Optional[Dict[tuple, tuple]]] = {}  # netns → NAT peers (conntrack)
        self._netns_failed: set = set()
        self._unix_elsewhere: Dict[int, Optional[UnixSocket]] = {}  # in another network namespace
        self._unix_listeners: Dict[str, Dict[int, UnixSocket]] = {}  # netns → queued client → listener
        self._tcp_infos: Dict[tuple, Optional[TcpInfo]] = {}
        self._tcp_info_failed = False
        self.ask_db = False  # --db: the wait rules may ask a database server who blocks whom
        self._db_sessions: Dict[int, Optional[DbSession]] = {}
        self._pg_servers: Dict[int, Optional[postgres.PidFile]] = {}
        self._pg_answers: Dict[Tuple[int, str], postgres.Answer] = {}
        # before any later read rewrites a note: whose fds the scan could not read
        self._fds_unreadable = tuple(sorted(p.pid for p in processes.values()
                                            if p.note.startswith(FDS_UNREADABLE)))

    def close(self) -> None:
        """End what the snapshot owns that outlives a read: the memory reader's helper."""
        self.memory.close()

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def scan(cls, fs: Optional[ProcFS] = None, pids: Optional[Iterable[int]] = None,
             cache: Optional[ScanCache] = None) -> "Snapshot":
        """Read every process (or just `pids`). Processes that vanish are skipped. `cache`:
        what the last scan may carry over (the watchdog's; see ScanCache)."""
        fs = fs or ProcFS()
        processes: Dict[int, Process] = {}
        notes: List[str] = []
        if cache is not None:
            cache.activity = {}
        if cache is None:
            every = list(pids if pids is not None else fs.pids())
            found = (split.scan_split(every, partial(_scan_process, fs), notes) if split.worth_splitting(len(every))
                     else [_scan_process(fs, pid, notes) for pid in every])
            processes = {proc.pid: proc for proc in found if proc is not None}
        else:  # the watchdog's: reads what it carries through files it holds
            for pid in pids if pids is not None else fs.pids():
                proc = cache.scan_process(fs, pid, notes)
                if proc is not None:
                    processes[pid] = proc
        if cache is not None:
            cache.next_scan()
        return cls(fs, processes, notes, cache)

    def _index(self, proc: Process) -> None:
        """Index a process added to the table after the scan (tests build snapshots so)."""
        self.children[proc.ppid].append(proc.pid)
        self.holders.add(proc)
        self._holders_of.clear()
        self._holders_with.clear()

    # --- processes and threads -------------------------------------------------------

    def one_thread_activity(self, pid: int) -> Optional[Tuple[int, int]]:
        """(start time, context switches of its thread) of a one-thread process; None when it
        has more threads, has gone, or the kernel does not count switches. As read by the
        scan when it had a ScanCache (the same facts, read once), else read now."""
        proc, activity = self.processes.get(pid), self._activity.get(pid)
        if proc is None or activity is None:
            return _one_thread_activity(self.fs, pid)
        switches = switches_of(activity)
        return None if switches is None else (proc.starttime, switches)

    def tasks(self, pid: int) -> List[Task]:
        """Threads of pid ([] if it has gone or its pid was reused since the scan)."""
        return _cached(self._tasks, pid, lambda: self._read_tasks(pid))

    def _read_tasks(self, pid: int) -> List[Task]:
        if pid not in self.processes:
            return []
        tasks = self._cache.carried_threads(pid) if self._cache is not None else None
        if tasks is None:
            try:
                tasks = read_tasks(self.fs, pid)
            except WaitchainError as exc:
                self.processes[pid].note = str(exc)
                return []
            if not self.alive(pid):  # after: the pid may be another process's now
                return []
            if self._cache is not None:
                self._cache.keep_threads(pid, tasks)
        live = [t.tid for t in tasks if t.state not in ("Z", "X")]
        if tasks[0].state in ("Z", "X") and live:  # its main thread exited: read through another
            self.memory.through[pid] = live[0]
        return tasks

    def moved(self, pid: int, tid: int) -> bool:
        """The thread is not where the scan saw it: another system call or other
        arguments, a context switch since, or gone. Unknown counters do not count as moved."""
        before = next((t for t in self.tasks(pid) if t.tid == tid), None)
        try:
            now = read_task(self.fs, pid, tid)
        except (WaitchainError, ValueError):
            return True
        if before is None or now.syscall != before.syscall or now.state != before.state:
            return True
        return None not in (now.switches, before.switches) and now.switches != before.switches

    def alive(self, pid: int) -> bool:
        """The process scanned as pid still exists and is the same one (same starttime).
        True after a read of /proc/PID means that the read was of this process."""
        proc = self.processes.get(pid)
        try:
            return proc is not None and read_starttime(self.fs, pid) == proc.starttime
        except WaitchainError:
            return False

    def cmdline(self, pid: int) -> str:
        """Command line, `[comm]` for kernel threads, `comm` if unreadable in time."""
        return _cached(self._cmdlines, pid, lambda: self._read_cmdline(pid))

    def cmdlines(self, pids: Iterable[int]) -> Dict[int, str]:
        """cmdline() of each: those not read yet read in turn through one deadline thread
        (a hand-off per read was ~20 of its ~36 us at +1,000 processes), each with the
        deadline, answer and notes that cmdline() one by one would give."""
        pids = list(pids)
        todo = [p for p in dict.fromkeys(pids) if p not in self._cmdlines]
        locked = {p for p in todo if self._contended(p)}  # each looked at once: asked again below
        while todo:
            reads = [p for p in todo if p not in locked]
            seconds = SHORT_DEADLINE if self._blocked_cmdlines >= BLOCKED_CMDLINES else CMDLINE_DEADLINE
            answers = each_with_deadline([partial(self._cmdline_bytes, p) for p in reads], seconds)
            overran = reads[len(answers)] if len(answers) < len(reads) else None
            got = dict(zip(reads, answers))
            for i, pid in enumerate(todo):
                if pid == overran:
                    self._cmdlines[pid] = self._overran(pid)
                    todo = todo[i + 1:]
                    break
                ok, value = got.get(pid, (False, None))
                self._cmdlines[pid] = self._read_cmdline(pid, (ok, value) if pid not in locked else None)
            else:
                todo = []
        return {p: self._cmdlines[p] for p in pids}

    def _contended(self, pid: int) -> bool:
        return self.memory.live and self.memory.reader.contention(pid) is not None

    def _cmdline_bytes(self, pid: int) -> bytes:
        # a process whose main thread exited has its command line under a live thread's id
        return self.fs.read_bytes(self.memory.through.get(pid, pid), "cmdline")

    def _read_cmdline(self, pid: int, answer: Optional[Tuple[bool, object]] = None) -> str:
        """The command line; `answer`: its read, made already (cmdlines())."""
        comm = self.processes[pid].comm if pid in self.processes else "?"
        short = self._blocked_cmdlines >= BLOCKED_CMDLINES  # many blocked: do not wait long for each
        if self._contended(pid):
            self.memory.mark_stuck(pid)  # the read would wait for the lock (killably, but long)
            self._note(f"the command line of {pid} could not be read: "
                       + str(self.memory.reader.locked(pid)).partition(" not read: ")[2])
            return comm
        try:
            if answer is None:
                line = read_cmdline(self.fs, self.memory.through.get(pid, pid), SHORT_DEADLINE if short else None)
            else:
                ok, value = answer
                if not ok:
                    raise value  # type: ignore[misc]
                line = parse_cmdline(value) if value else None  # type: ignore[arg-type]
            if not self.alive(pid):
                return comm  # the pid names another process now
        except Timeout:  # its mmap lock is held: process_vm_readv would block too
            return self._overran(pid)
        except WaitchainError:
            return comm
        return f"[{comm}]" if line is None else line

    def _overran(self, pid: int) -> str:
        """A command line read that did not answer in time: its comm, and a note."""
        self._blocked_cmdlines += 1
        self.memory.mark_stuck(pid)
        self._note(f"the command line of {pid} could not be read: it blocks while the "
                   "process's memory map lock is held (a thread stuck in a page fault?)")
        return self.processes[pid].comm if pid in self.processes else "?"

    def idle_seconds(self, pid: int, tid: int) -> Optional[float]:
        """How long the thread has not run (seconds, from /proc/PID/task/TID/sched
        se.exec_start against the scheduler clock); None if the kernel does not say."""
        return _cached(self._idle, (pid, tid), lambda: self._read_idle(pid, tid))

    def _read_idle(self, pid: int, tid: int) -> Optional[float]:
        cpu, started = read_cpu_and_start(self.fs, pid, tid)  # its CPU's scheduler clock: the CPUs' drift apart
        if cpu not in self._clocks_on:  # that clock and the boot clock read together: one moment
            self._clocks_on[cpu] = (read_sched_now(self.fs, cpu), read_uptime(self.fs))
        now, uptime = self._clocks_on[cpu]
        last = read_exec_start(self.fs, pid, tid)
        if now is None or last is None:
            return None
        # exec_start 0 (a task migrated while asleep) or older than the thread: unknown
        return plausible_idle(last, now, age_at(uptime, started))

    def status(self, pid: int, tid: Optional[int] = None) -> Dict[str, str]:
        """/proc/PID[/task/TID]/status as a dict (cached); raises WaitchainError."""
        key = (pid, tid)
        if key not in self._status:
            self._status[key] = read_status(self.fs, pid, tid)
        return self._status[key]

    def tracer(self, pid: int) -> int:
        """TracerPid of the process (0: not traced, or unreadable), read once. Only this
        field, when its status is not read already: a tracer waiting in wait4 with no child
        asks it of every process (~22 us each instead of ~63 for the whole status parsed)."""
        return _cached(self._tracers, pid, lambda: self._read_tracer(pid))

    def _read_tracer(self, pid: int) -> int:
        status = self._status.get((pid, None))
        try:
            value = status.get("TracerPid") if status is not None else read_status_field(self.fs, pid, "TracerPid")
            return int(value or 0)
        except (WaitchainError, ValueError):
            return 0

    def handled_signals(self, pid: int) -> int:
        """The signals pid has a handler for (SigCgt) that some thread does not block: a
        handler can run. A mask, bit n-1 for signal n (cached); raises WaitchainError."""
        return _cached(self._handled, pid, lambda: self._read_handled(pid))

    def _read_handled(self, pid: int) -> int:
        blocked_by_all = ~0
        for task in self.tasks(pid):
            blocked_by_all &= mask(self.status(pid, task.tid), "SigBlk")
        return mask(self.status(pid), "SigCgt") & ~blocked_by_all

    def locks(self) -> List[LockEntry]:
        """/proc/locks, read once per snapshot; raises WaitchainError."""
        from .procfs.locks import read_locks
        if self._locks is None:
            self._locks = read_locks(self.fs)
        return self._locks

    # --- pid namespaces ------------------------------------------------------------------
    # Numbers read from inside a process (a futex owner TID, a wait4 argument, a thread id
    # py-spy reports) are ids in that process's pid namespace, not ours.

    def local_id(self, pid: int, observer: int, tid: Optional[int] = None) -> Optional[int]:
        """The id of process pid (or of its thread tid) as `observer` sees it; None when
        it is not visible there or cannot be read."""
        own = tid if tid is not None else pid
        if self._in_own_pidns(observer):
            return own
        level = len(self._ids(observer, None)) - 1
        ids = self._ids(pid, tid)
        return ids[level] if level >= 0 and len(ids) > level else None

    def host_tid(self, pid: int, local: int) -> Optional[int]:
        """The thread of pid whose id in pid's own namespace is `local` (None: no such)."""
        for task in self.tasks(pid):
            if self.local_id(pid, pid, task.tid) == local:
                return task.tid
        return None

    def ns_thread_ids(self, pid: int) -> Dict[int, int]:
        """Thread id in pid's own namespace → host thread id; {} when that is ours."""
        if self._in_own_pidns(pid):
            return {}
        found = {self.local_id(pid, pid, t.tid): t.tid for t in self.tasks(pid)}
        return {local: tid for local, tid in found.items() if local is not None}

    def _in_own_pidns(self, pid: int) -> bool:
        proc = self.processes.get(pid)
        return proc is None or not proc.pidns or proc.pidns == self._our_pidns()

    def _our_pidns(self) -> str:
        if self._own_pidns is None:
            try:
                self._own_pidns = self.fs.readlink(os.getpid(), "ns", "pid")
            except WaitchainError:
                self._own_pidns = ""
        return self._own_pidns

    def _ids(self, pid: int, tid: Optional[int]) -> List[int]:
        """NSpid of a process (or thread): its id in each namespace, ours first."""
        return _cached(self._nspids, (pid, tid), lambda: self._read_ids(pid, tid))

    def _read_ids(self, pid: int, tid: Optional[int]) -> List[int]:
        try:
            return nspids(self.status(pid, tid))
        except WaitchainError:
            return []

    # --- fds and the objects behind them ----------------------------------------------

    def fdinfo(self, pid: int, fd: int) -> Optional[FdInfo]:
        return _cached(self._fdinfo, (pid, fd), lambda: read_fdinfo(self.fs, pid, fd))

    def fdinfo_field(self, pid: int, fd: int, key: str) -> Optional[str]:
        """The value of the fd's first fdinfo line `key: value`; None if it has none."""
        info = self.fdinfo(pid, fd)
        return next((v for k, v in (info.extra if info else ()) if k == key), None)

    def target(self, pid: int, fd: int) -> Optional[str]:
        proc = self.processes.get(pid)
        return proc.fds.get(fd) if proc else None

    def holders_of(self, target: str) -> List[Holder]:
        """Every (pid, fd) holding `target`, with its access mode (cached per target: 1,000
        waiters on a pipe 1,000 processes hold ask for it 1,000 times)."""
        if target not in self._holders_of:
            self._holders_of[target] = [Holder(pid, fd, self.access(pid, fd))
                                        for pid, fd in self.holders.get(target, ())]
        return list(self._holders_of[target])

    def access(self, pid: int, fd: int) -> str:
        """READ, WRITE or READ_WRITE ("" when unreadable): from the fd link's mode (one
        lstat; at +1,000 processes all holding one pipe, 1,000 fdinfo reads and parses
        cost ~50 ms), else from fdinfo's flags."""
        info = self._fdinfo.get((pid, fd))
        found = link_access(self.fs, pid, fd) if info is None else None
        if found is not None:
            return found
        info = self.fdinfo(pid, fd)
        return info.access if info else ""

    def holders_with(self, target: str, modes: Tuple[str, ...]) -> List[Holder]:
        """holders_of(target) whose access mode is one of `modes` or unknown (""), in order;
        kept per (target, modes): 1,000 waiters on a pipe 1,000 others read from look for
        its one writer once, not each among 1,000 holders."""
        key = (target, modes)
        if key not in self._holders_with:
            self._holders_with[key] = [h for h in self.holders_of(target) if h.access in modes or not h.access]
        return list(self._holders_with[key])

    def is_fifo(self, pid: int, fd: int) -> bool:
        """Whether a path fd is a FIFO. Files on network and FUSE file systems are never
        stat()ed: an unresponsive server would hang us (and FIFOs there are rare)."""
        info = self.fdinfo(pid, fd)
        mount = self.mounts(pid).get(info.mnt_id) if info else None
        if mount is None or mount.fstype.startswith(REMOTE_FS):
            return False
        return fd_is_fifo(self.fs, pid, fd)

    def pipe_fill(self, pid: int, fd: int) -> Optional[PipeFill]:
        """The pipe's fill through a pidfd_getfd duplicate, if pid is still the scanned process."""
        from .procfs import pidfd
        if self.fs.root != "/proc":
            return None
        return pidfd.pipe_fill(pid, fd, lambda: self.alive(pid))

    # --- sockets ----------------------------------------------------------------------

    def unix_socket(self, inode: int, pid: Optional[int] = None) -> Optional[UnixSocket]:
        """Peer and queues from sock_diag; None if not a unix socket in our network
        namespace, nor in that of pid (a process that holds it or its peer) when given."""
        found = _cached(self._unix, inode, lambda: self._lookup_unix(inode))
        netns = self.processes[pid].netns if pid in self.processes else ""
        if found is None and netns and netns != self._our_netns() and not self._sock_diag_failed:
            found = _cached(self._unix_elsewhere, inode, lambda: self._unix_in(netns, inode))
        return found

    def _unix_in(self, netns: str, inode: int) -> Optional[UnixSocket]:
        """An exact sock_diag lookup of inode in another network namespace."""
        from .procfs import sockdiag
        try:
            return self._in_netns(netns, lambda fd: sockdiag.unix_lookup([inode], fd).get(inode))
        except WaitchainError as exc:
            self._note(f"unix sockets of {netns} unavailable: {exc}")
            return None

    def unix_listener(self, client: int, pid: int) -> Optional[UnixSocket]:
        """The listening unix socket whose accept queue holds the connected socket `client`
        (its peer not accepted yet): UDIAG_SHOW_ICONS of the listeners of our network
        namespace, then of pid's, then of the others' (a path connects across them)."""
        if self._sock_diag_failed:
            return None
        own = self._our_netns()
        first = self.processes[pid].netns if pid in self.processes else ""
        order = [own] + ([first] if first and first != own else [])
        order += sorted(self.netns_list() - set(order)) if self.fs.root == "/proc" else []
        for netns in order[:MAX_NETNS]:
            found = _cached(self._unix_listeners, netns, lambda: self._listeners_in(netns)).get(client)
            if found is not None:
                return found
        if len(order) > MAX_NETNS:
            self._note(f"unix listeners looked for in {MAX_NETNS} of {len(order)} network namespaces only")
        return None

    def _listeners_in(self, netns: str) -> Dict[int, UnixSocket]:
        """Queued client inode → its listener, in one network namespace ({} if unreadable)."""
        from .procfs import sockdiag
        try:
            if netns == self._our_netns():
                dump = sockdiag.unix_dump(listeners=True)
            else:
                dump = self._in_netns(netns, lambda fd: sockdiag.unix_dump(fd, listeners=True)) or {}
        except WaitchainError as exc:
            self._note(f"unix listeners of {netns or 'our network namespace'} unavailable: {exc}")
            return {}
        return {client: sock for sock in dump.values() for client in sock.pending}

    def _in_netns(self, netns: str, query: Callable[[int], V]) -> Optional[V]:
        """query(fd) with fd an open /proc/PID/ns/net of a scanned process in `netns`
        (None when none can be opened as that namespace). Only on the live /proc."""
        if self.fs.root != "/proc" or netns in self._netns_failed:
            return None
        for pid in sorted(p.pid for p in self.processes.values() if p.netns == netns):
            try:
                fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                try:
                    same = os.readlink(f"/proc/self/fd/{fd}") == netns
                except OSError:
                    same = False
                if same:  # else the pid is another process's now
                    return query(fd)
            except WaitchainError:
                self._netns_failed.add(netns)  # not asked again (no rights: each would fail)
                raise
            finally:
                os.close(fd)
        return None

    def _our_netns(self) -> str:
        if self._own_netns is None:
            self._own_netns = self.namespace(None, "net")
        return self._own_netns

    def _lookup_unix(self, inode: int) -> Optional[UnixSocket]:
        """One exact sock_diag lookup per inode while few are asked for (each costs more
        the more unix sockets the host has); past UNIX_DUMP_AFTER, one dump of them all."""
        from .procfs import sockdiag
        if self._sock_diag_failed:
            return self._unix_from_proc(inode)
        try:
            if len(self._unix) >= UNIX_DUMP_AFTER:
                if self._unix_dump is None:
                    self._unix_dump = sockdiag.unix_dump()
                return self._unix_dump.get(inode)
            found = sockdiag.unix_lookup([inode]).get(inode)
        except WaitchainError as exc:  # not asked again: a timeout would cost each lookup
            self._sock_diag_failed = True
            self._note(f"unix socket peers unavailable: {exc}")
            return self._unix_from_proc(inode)
        return found

    def _unix_from_proc(self, inode: int) -> Optional[UnixSocket]:
        from .procfs import net
        if self._unix_paths is None:
            try:
                self._unix_paths = net.parse_unix(self.fs.read(None, "net", "unix", limit=TABLE_READ))
            except WaitchainError:
                self._unix_paths = {}
        return self._unix_paths.get(inode)

    def tcp_table(self, netns: str) -> List[TcpSocket]:
        """TCP sockets of one network namespace, read through any process inside it."""
        return _cached(self._tcp, netns, lambda: self._read_tcp(netns))

    def _read_tcp(self, netns: str) -> List[TcpSocket]:
        for pid in (p.pid for p in self.processes.values() if p.netns == netns):
            try:
                return self._tcp_of(pid)
            except WaitchainError:
                continue
        return []

    def _tcp_of(self, pid: int) -> List[TcpSocket]:
        from .procfs import net
        sockets = net.parse_tcp(self.fs.read(pid, "net", "tcp", limit=TABLE_READ))
        try:
            sockets += net.parse_tcp(self.fs.read(pid, "net", "tcp6", limit=TABLE_READ))
        except WaitchainError:
            pass  # a kernel without IPv6 (or the process exited after tcp was read)
        return sockets

    def tcp_socket(self, pid: int, inode: int) -> Optional[TcpSocket]:
        proc = self.processes.get(pid)
        if proc is None or not inode:
            return None
        return self._tcp_index(proc.netns)[0].get(inode)

    def tcp_peer(self, pid: int, sock: TcpSocket) -> Tuple[Optional[TcpSocket], str]:
        """The socket at the other end on this host (any namespace), and its namespace."""
        own = self.processes[pid].netns
        for netns in [own] + sorted(self.netns_list() - {own}):
            peer = self._tcp_index(netns)[1].get((sock.remote, sock.local))
            if peer is not None:
                return peer, netns
        return self._tcp_nat_peer(own, sock)

    def _tcp_nat_peer(self, own: str, sock: TcpSocket) -> Tuple[Optional[TcpSocket], str]:
        """The peer through NAT (a published container port): the connection as conntrack of
        some network namespace of this host says the other end sees it. Says so in a note
        when no namespace has a conntrack table to read."""
        if self.fs.root != "/proc" or sock.state == "LISTEN":
            return None, ""
        tables = [self._conntrack(netns) for netns in [own] + sorted(self.netns_list() - {own})]
        if all(t is None for t in tables):
            self._note("no conntrack table could be read (nf_conntrack not loaded, or no rights): a TCP peer "
                       "behind NAT on this host (a published container port) cannot be followed")
            return None, ""
        for table in tables:
            pair = table.get((sock.local, sock.remote)) if table else None
            if pair is None:
                continue
            for netns in [own] + sorted(self.netns_list() - {own}):
                peer = self._tcp_index(netns)[1].get(pair)
                if peer is not None:
                    return peer, netns
        return None, ""

    def _conntrack(self, netns: str) -> Optional[Dict[tuple, tuple]]:
        """conntrack's NAT-rewritten connections of a network namespace; None: unreadable."""
        from .procfs import conntrack
        def read() -> Optional[Dict[tuple, tuple]]:
            for pid in (p.pid for p in self.processes.values() if p.netns == netns):
                try:
                    return conntrack.parse_conntrack(self.fs.read(pid, "net", "nf_conntrack", limit=TABLE_READ))
                except WaitchainError:
                    continue
            return None
        return _cached(self._conntracks, netns, read)

    def _tcp_index(self, netns: str) -> Tuple[Dict[int, TcpSocket], Dict[tuple, TcpSocket]]:
        """By inode, and by (local, remote) for connected sockets; built once per netns."""
        return _cached(self._tcp_indexes, netns, lambda: self._index_tcp(netns))

    def _index_tcp(self, netns: str) -> Tuple[Dict[int, TcpSocket], Dict[tuple, TcpSocket]]:
        table = self.tcp_table(netns)
        by_inode = {s.inode: s for s in table if s.inode}
        by_pair = {(s.local, s.remote): s for s in table if s.state != "LISTEN"}
        return by_inode, by_pair

    def tcp_listener(self, netns: str, local: Endpoint) -> Optional[TcpSocket]:
        """The listening socket that a not-yet-accepted connection to `local` sits behind."""
        for sock in self.tcp_table(netns):
            if sock.state == "LISTEN" and sock.local[1] == local[1] and _covers(sock.local[0], local[0]):
                return sock
        return None

    def tcp_info(self, netns: str, sock: TcpSocket) -> Optional[TcpInfo]:
        """tcp_info counters of a connected socket of network namespace `netns` (inet_diag);
        None when unknown (another namespace unreadable, a recorded /proc, no such socket)."""
        return _cached(self._tcp_infos, (netns, sock.local, sock.remote), lambda: self._read_tcp_info(netns, sock))

    def _read_tcp_info(self, netns: str, sock: TcpSocket) -> Optional[TcpInfo]:
        from .procfs import inetdiag
        if self.fs.root != "/proc" or self._tcp_info_failed:
            return None
        try:
            if not netns or netns == self._our_netns():
                return inetdiag.tcp_info(sock.local, sock.remote)
            return self._in_netns(netns, lambda fd: inetdiag.tcp_info(sock.local, sock.remote, fd))
        except WaitchainError as exc:
            self._tcp_info_failed = True
            self._note(f"TCP counters (tcp_info) unavailable: {exc}")
            return None

    def netns_list(self) -> set:
        return _cached(self._netns, "all", lambda: {p.netns for p in self.processes.values() if p.netns})

    def tcp_holders(self, local: Endpoint, remote: Endpoint) -> Tuple[List[int], bool]:
        """The processes holding the connected TCP socket local→remote in any network
        namespace of this host (--socket), and whether it was found only by ports and the
        remote address (the local address rewritten on the way: NAT, a published port)."""
        for exact in (True, False):
            for netns in sorted(self.netns_list()):
                for sock in self.tcp_table(netns):
                    if sock.state == "LISTEN" or not sock.inode or sock.remote != remote:
                        continue
                    if sock.local == local or (not exact and sock.local[1] == local[1]):
                        pids = sorted({p for p, _fd in self.holders.get(f"socket:[{sock.inode}]", ())})
                        if pids:
                            return pids, not exact
        return [], False

    # --- kernel waits: stacks, mounts, FUSE connections -------------------------------

    def kernel_stack(self, pid: int, tid: int) -> Tuple[List[str], str]:
        """Kernel functions the thread sleeps in, innermost first, and why none if none."""
        from .procfs.kstack import read_stack
        return read_stack(self.fs, pid, tid)

    def timers(self, pid: int) -> List[PosixTimer]:
        """/proc/PID/timers (cached): its POSIX timers, [] when unreadable."""
        return _cached(self._timers, pid, lambda: self._read_timers(pid))

    def _read_timers(self, pid: int) -> List[PosixTimer]:
        from .procfs.timers import read_timers
        try:
            return read_timers(self.fs, pid)
        except WaitchainError:
            return []

    def mounts(self, pid: int) -> Dict[int, Mount]:
        """Mounts as pid sees them (mount id → mount), {} if unreadable."""
        from .procfs.mounts import read_mounts
        return _cached(self._mounts, pid, lambda: read_mounts(self.fs, pid))

    def mapped_devices(self, pid: int) -> set:
        """(major, minor) of every file pid has mapped."""
        from .procfs.maps import read_map_devices
        return read_map_devices(self.fs, pid)

    def mapping_at(self, pid: int, address: int) -> Optional[Tuple[int, int, int, str]]:
        """(major, minor, inode, path) of the file pid maps at `address` (None: none)."""
        from .procfs.maps import read_mapping_at
        return read_mapping_at(self.fs, pid, address)

    def mmap_lock_holder(self, pid: int) -> Optional[Tuple[int, int]]:
        """The thread (pid, tid) that likely holds pid's mmap lock while its memory-map calls
        queue: one of its own threads asleep in a page fault, else a thread of a process
        reading its memory through /proc/PID/mem that sleeps in a page fault (the read
        faults the page in under the lock). None if no such thread is seen."""
        from .procfs.mmaplock import FAULTING, REMOTE_FAULT, classify as mmap_lock_wait
        if self.memory.live:
            found = self.memory.reader.contention(pid)
            if found is not None and found.faulting:
                return pid, found.faulting[0].tid
        for reader in sorted({p for p, _fd in self.holders.get(f"/proc/{pid}/mem", ())}):
            for task in self.tasks(reader):
                if task.state != "D":
                    continue
                frames, _note = self.kernel_stack(reader, task.tid)
                call = task.syscall.name if task.syscall is not None else ""
                if mmap_lock_wait(frames, task.wchan, call) in (FAULTING, REMOTE_FAULT):
                    return reader, task.tid
        return None

    def cwd(self, pid: int) -> Optional[str]:
        try:
            return self.fs.readlink(pid, "cwd")
        except WaitchainError:
            return None

    def fuse_daemons(self, dev: int) -> List[Holder]:
        """Holders of /dev/fuse whose fdinfo `fuse_connection` is `dev` (the mount's device
        number, as the kernel encodes it: major << 20 | minor), and whose connection is
        alive: a daemon of an aborted or unmounted connection shows the same number, which
        a new mount may have been given since (fuse_fd_alive: its fd polls EPOLLERR)."""
        found = []
        for pid, fd in self.holders.get("/dev/fuse", ()):
            info = self.fdinfo(pid, fd)
            if info is not None and ("fuse_connection", str(dev)) in info.extra:
                if self.fuse_fd_alive(pid, fd) is False:
                    self._note(f"{pid} holds /dev/fuse (fd {fd}) of an earlier FUSE connection numbered "
                               f"{dev} that is dead (aborted or unmounted): not the daemon of the mount "
                               "now on that device")
                    continue
                found.append(Holder(pid, fd, info.access))
        return found

    def fuse_fd_alive(self, pid: int, fd: int) -> Optional[bool]:
        """Whether pid's /dev/fuse fd serves a live connection (None: not checked)."""
        from .procfs import pidfd
        if self.fs.root != "/proc":
            return None
        return pidfd.fuse_fd_alive(pid, fd, lambda: self.alive(pid))

    def fuse_connection_listed(self, dev: int) -> Optional[bool]:
        """Whether fusectl lists connection `dev` (/sys/fs/fuse/connections/DEV: a mounted
        connection); None when fusectl is not mounted or this is a recorded /proc."""
        if self.fs.root != "/proc" or not os.path.ismount(FUSECTL):
            return None
        return os.path.isdir(os.path.join(FUSECTL, str(dev)))

    # --- what the scan could not see (for the wait rules) ------------------------------

    def fds_unreadable(self) -> Tuple[int, ...]:
        """Processes whose fds could not be read (permission, usually): a holder looked
        for among them may have been missed, so "no process holds it" cannot be said."""
        return self._fds_unreadable

    def local_pgrp(self, pid: int, observer: int) -> Optional[int]:
        """The process group of pid as `observer` sees it (NSpgid: a wait4(-PGID) argument
        is in the waiter's pid namespace); None when it cannot be read."""
        proc = self.processes.get(pid)
        if proc is not None and self._in_own_pidns(observer):
            return proc.pgrp
        level = len(self._ids(observer, None)) - 1
        try:
            ids = [int(v) for v in self.status(pid).get("NSpgid", "").split()]
        except (WaitchainError, ValueError):
            return None
        return ids[level] if 0 <= level < len(ids) else None

    # --- System V IPC, namespaces, terminals (for the wait rules) -------------------------

    def sysvipc(self, kind: str) -> List[Dict[str, int]]:
        """Rows of /proc/sysvipc/KIND ("msg", "sem") of our IPC namespace, read once per
        snapshot; [] if unreadable."""
        return _cached(self._sysvipc, kind, lambda: self._read_sysvipc(kind))

    def _read_sysvipc(self, kind: str) -> List[Dict[str, int]]:
        from .procfs.sysvipc import parse_sysvipc
        try:
            return parse_sysvipc(self.fs.read(None, "sysvipc", kind, limit=TABLE_READ))
        except WaitchainError:
            return []

    def namespace(self, pid: Optional[int], kind: str) -> str:
        """readlink of /proc/PID/ns/KIND ("ipc:[4026531839]"), ours when pid is None; ""
        if unreadable."""
        try:
            return self.fs.readlink(None, "self", "ns", kind) if pid is None else self.fs.readlink(pid, "ns", kind)
        except WaitchainError:
            return ""

    def controlling_tty(self, pid: int) -> int:
        """The controlling terminal's device number (stat's tty_nr; 0: none or unreadable)."""
        return tty_nr(self.fs, pid)

    def foreground_group(self, pid: int) -> int:
        """The foreground process group of its controlling terminal (stat's tpgid; -1: none)."""
        return tpgid(self.fs, pid)

    # --- database servers (PostgreSQL backends; --db asks the server) ----------------------

    def db_session(self, pid: int) -> Optional[DbSession]:
        """pid as a PostgreSQL client backend: a child of a postmaster (a process whose cwd
        holds a postmaster.pid naming it) titled "postgres: USER DB CLIENT ACTIVITY"."""
        return _cached(self._db_sessions, pid, lambda: self._read_db_session(pid))

    def _read_db_session(self, pid: int) -> Optional[DbSession]:
        from .procfs import postgres
        proc = self.processes.get(pid)
        if proc is None or proc.ppid not in self.processes or proc.comm not in postgres.COMMS:
            return None
        title = postgres.parse_title(self.cmdline(pid))
        server = self.pg_server(proc.ppid) if title is not None else None
        if title is None or server is None:
            return None
        return DbSession("postgresql", proc.ppid, title.user, title.database, title.client, title.activity,
                         title.waiting, server.datadir)

    def pg_server(self, pid: int) -> Optional[postgres.PidFile]:
        """pid as a postmaster: its postmaster.pid (in its cwd, the data directory), when that
        names pid as pid sees itself; None for any other process."""
        return _cached(self._pg_servers, pid, lambda: self._read_pg_server(pid))

    def _read_pg_server(self, pid: int) -> Optional[postgres.PidFile]:
        from .procfs import postgres
        proc = self.processes.get(pid)
        if proc is None or proc.comm not in postgres.COMMS:
            return None
        try:
            found = postgres.parse_pid_file(self.fs.read(pid, "cwd", "postmaster.pid", limit=4096))
        except WaitchainError:
            return None
        own = self.local_id(pid, pid)
        return found if found is not None and found.pid in (pid, own) and self.alive(pid) else None

    def pg_blockers(self, pid: int) -> postgres.Answer:
        """--db: who blocks the waiting backend pid, asked of its server with the server's own
        psql (once per server and database, for all its backends whose title says waiting).
        Pids in the answer are ours (host pids); an answer with `error` says why none."""
        from .procfs import postgres
        session = self.db_session(pid)
        if session is None:
            return postgres.Answer(error=f"{pid} is not a PostgreSQL backend")
        key = (session.server, session.database)
        if key not in self._pg_answers:
            self._pg_answers[key] = self._ask_pg(session)
        return self._pg_answers[key]

    def _ask_pg(self, session: DbSession) -> postgres.Answer:
        from .procfs import postgres
        server = session.server
        pidfile = self.pg_server(server)
        if not self.ask_db or pidfile is None or self.fs.root != "/proc":
            return postgres.Answer(error="not asked (no --db, or not a live system)")
        ours = {self.local_id(c, server): c for c in self.children.get(server, ())}
        waiting = sorted(local for local, c in ours.items() if local is not None and self._waits_in(c, session))
        try:
            exe = self.fs.readlink(server, "exe")
            gid = int(self.status(server).get("Gid", "").split()[0])
        except (WaitchainError, ValueError, IndexError) as exc:
            return postgres.Answer(error=f"the server {server} could not be read: {exc}")
        psql = os.path.join(os.path.dirname(exe), "psql")
        if self.namespace(server, "mnt") != self.namespace(None, "mnt"):
            return postgres.Answer(error=f"the server {server} runs in another mount namespace (a container): "
                                   f"its psql and socket are not ours; run the query inside it (nsenter -t {server} -a)")
        if not pidfile.socket_dir:
            return postgres.Answer(error=f"the server {server} listens on no unix socket (postmaster.pid)")
        answer = postgres.ask_blockers(psql, pidfile.socket_dir, pidfile.port, session.database, waiting,
                                       uid=self.processes[server].uid, gid=gid)
        answer.blockers = [postgres.Blocker(ours.get(b.waiter, -1), ours.get(b.blocker, -1) if b.blocker else 0,
                                            b.lock) for b in answer.blockers]
        return answer

    def _waits_in(self, pid: int, session: DbSession) -> bool:
        other = self.db_session(pid)
        return other is not None and other.waiting and other.database == session.database

    # --- where a process runs: host, pid namespace, container -------------------------------

    def place(self, pid: int) -> Place:
        """Its host's name (the hostname of its UTS namespace), its pid in its own pid
        namespace when that is not ours, and the container, pod or unit its cgroup names
        (read once per process: a diagnosis asks for each process's place more than once)."""
        return _cached(self._places, pid, lambda: self._read_place(pid))

    def _read_place(self, pid: int) -> Place:
        ns_pid = None
        if not self._in_own_pidns(pid):
            ids = self._ids(pid, None)
            ns_pid = ids[-1] if len(ids) > 1 else None
        return Place(host=self.hostname(pid), ns_pid=ns_pid,
                     container=self._container(cgroups.read_cgroups(self.fs, pid)),
                     tcp=self._connections(pid))

    def _container(self, paths: List[str]) -> Optional[Container]:
        """container_of(paths), worked out once per set of paths (most processes share a
        cgroup: ~8 us of regular expressions per process at +1,000)."""
        return _cached(self._containers, tuple(paths), lambda: cgroups.container_of(paths))

    def _connections(self, pid: int) -> Tuple[Tuple[Endpoint, Endpoint], ...]:
        """Its connected TCP sockets (local, remote), to another host (`waitchain merge`
        matches them across documents); loopback ones are of this host only."""
        proc = self.processes.get(pid)
        if proc is None:
            return ()
        targets = dict.fromkeys(proc.fds.values())  # in table order, each once
        if not any(t.startswith("socket:[") for t in targets):  # no socket: the netns's table not read (~6 ms)
            return ()
        by_target = self._tcp_targets(proc.netns)
        if not by_target or not targets.keys() & by_target.keys():  # most processes: no TCP socket
            return ()
        found = []
        for target in targets:
            sock = by_target.get(target)
            if sock is not None and sock.state != "LISTEN" and not _loopback(sock.remote[0]):
                found.append((sock.local, sock.remote))
        return tuple(found)

    def _tcp_targets(self, netns: str) -> Dict[str, TcpSocket]:
        """The TCP sockets of a network namespace by fd target ("socket:[inode]")."""
        return _cached(self._tcp_by_target, netns,
                       lambda: {f"socket:[{inode}]": sock for inode, sock in self._tcp_index(netns)[0].items()})

    def hostname(self, pid: Optional[int] = None) -> str:
        """The host name process pid sees (ours when None); "" when it cannot be read (a
        recorded /proc); the namespace ("uts:[4026532300]") when it may not be joined."""
        if self.fs.root != "/proc":
            return ""
        ns = self.namespace(pid, "uts")
        return _cached(self._hostnames, ns, lambda: self._read_hostname(pid, ns))

    def _read_hostname(self, pid: Optional[int], ns: str) -> str:
        if pid is None or not ns or ns == self.namespace(None, "uts"):
            return uts.own_hostname()
        return uts.hostname_in(f"/proc/{pid}/ns/uts") or ns

    def note(self, text: str) -> None:
        """A remark for the report's notes (each said once)."""
        self._note(text)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _cached(cache: Dict[K, V], key: K, read: Callable[[], V]) -> V:
    """cache[key], read on first use."""
    if key not in cache:
        cache[key] = read()
    return cache[key]


def _scan_process(fs: ProcFS, pid: int, notes: List[str]) -> Optional[Process]:
    """Everything read through one open /proc/PID: the same process throughout. None if it
    has gone; a note says why if it could not be read."""
    try:
        piddir = fs.open_pid(pid)
        try:
            return _scan_open_process(fs, pid, piddir)
        finally:
            os.close(piddir)
    except ProcessGone:
        return None
    except WaitchainError as exc:
        notes.append(str(exc))
        return None


def _scan_open_process(fs: ProcFS, pid: int, piddir: int) -> Process:
    proc = read_process(fs, pid, piddir)
    try:
        proc.fds = fs.fd_links(pid, piddir)
    except ProcessGone:
        raise
    except WaitchainError as exc:
        proc.note = f"{FDS_UNREADABLE}: {exc}"
    return proc


def _loopback(addr: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def _covers(bound: str, addr: str) -> bool:
    """A listener bound to `bound` accepts connections to `addr`."""
    import ipaddress
    return bound == addr or ipaddress.ip_address(bound).is_unspecified
