"""`waitchain watch`: a watchdog that catches the rare hang while it happens.

Every --interval seconds it scans the machine (or the --pid, --cgroup, --unit targets) for
incidents as `waitchain --all` finds them (incidents.py). An incident blocked longer than
--threshold seconds gets one report in --out DIR: the waitchain/1 JSON document, the text and
the HTML report, with user-space stacks; one line goes to stderr and --exec runs with the JSON
report's path. The same incident (the same key, incidents.py) is not reported again until a
scan no longer finds it. --metrics FILE is rewritten after every scan. SIGTERM and SIGINT
end it after the scan under way, with exit code 0. --once scans once (for cron); it skips an
incident a report in DIR already has, as a later run of cron would find it again."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import select
import shlex
import signal
import subprocess
import sys
import time

from . import __version__, incidents
from .argtypes import seconds
from .errors import EXIT_OK, EXIT_USAGE, WaitchainError
from .engine import measure_blocked
from .incidents import Incident
from .metrics import Metrics, of_scan, render, write_atomically
from .model import Diagnosis, Task, Wait
from .graph import Explored
from .procfs.cgroup import in_cgroup, in_unit, read_cgroups
from .records import field, record, replace
from .sanitize import clean
from .snapshot import ScanCache, Snapshot
from .waits import wait_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple

    Key = Tuple[object, ...]

DEFAULT_INTERVAL = 5.0
DEFAULT_THRESHOLD = 30.0
DIR_MODE, FILE_MODE = 0o700, 0o600
EXEC_TIMEOUT = 60.0  # seconds an --exec hook may run before the watchdog stops waiting for it


class SetupError(WaitchainError, ValueError):
    """An option the watchdog cannot work with (an unsafe --out, an empty --exec)."""

    exit_code = EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="waitchain watch", description="A watchdog: scan every --interval seconds, and write a "
        "report for each incident (a deadlock, a chain through a full buffer, a chain blocked too "
        "long) once it has been blocked longer than --threshold.")
    p.add_argument("--interval", type=_positive, default=DEFAULT_INTERVAL, metavar="SECONDS",
                   help="seconds between scans (default %(default)g)")
    p.add_argument("--threshold", type=seconds, default=DEFAULT_THRESHOLD, metavar="SECONDS",
                   help="report an incident once it has been blocked this long (default %(default)g)")
    p.add_argument("--out", metavar="DIR", help="write the reports here (created 0700; files 0600)")
    p.add_argument("--metrics", metavar="FILE", help="write Prometheus textfile-collector metrics to FILE "
                   "(e.g. /var/lib/node_exporter/textfile_collector/waitchain.prom) after every scan")
    p.add_argument("--exec", dest="hook", metavar="CMD", help="run CMD (split as a shell would, run without "
                   "one) with the JSON report's path as its last argument, for each report")
    p.add_argument("--pid", type=int, action="append", default=[], metavar="PID",
                   help="watch this process and its descendants (repeatable)")
    p.add_argument("--cgroup", action="append", default=[], metavar="PATH",
                   help="watch the processes of this control group and below it, as /proc/PID/cgroup "
                   "or /sys/fs/cgroup spells it (repeatable)")
    p.add_argument("--unit", action="append", default=[], metavar="NAME",
                   help="watch the processes of this systemd unit (NAME.service if no suffix; repeatable)")
    p.add_argument("--once", action="store_true", help="scan once and exit (for cron)")
    p.add_argument("--no-stacks", action="store_true", help="do not read user-space stacks for reports")
    p.add_argument("--version", action="version", version=f"waitchain {__version__}")
    return p


def _positive(text: str) -> float:
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the interval must be more than 0 seconds")
    return value


def main(argv: List[str]) -> int:
    args = parser().parse_args(argv)
    if not args.out and not args.metrics:
        parser().error("give --out DIR (reports) or --metrics FILE, or both")
    try:
        watchdog = Watchdog(args)
    except WaitchainError as exc:
        print(f"waitchain watch: {clean(str(exc))}", file=sys.stderr)
        return exc.exit_code
    return watchdog.run()


# --- what is new ------------------------------------------------------------------------------


@record
class Tracker:
    """Which incidents have been seen since when, and which were reported: an incident is
    reported once it has been blocked `threshold` seconds (by the kernel's account of its
    threads, or since the watchdog first saw it, whichever is longer), and not again until a
    scan no longer finds it."""

    threshold: float
    looks: int = 2  # scans that must find an incident before it is reported (1: --once)
    first_seen: Dict[Key, float] = field(default_factory=dict)
    scans: Dict[Key, int] = field(default_factory=dict)  # scans that found it since it was first seen
    missing: Dict[Key, int] = field(default_factory=dict)  # scans in a row that did not
    reported: Set[Key] = field(default_factory=set)

    def update(self, found: List[Incident], now: float) -> List[Incident]:
        """The incidents of this scan to report now (worst first, as found). Unless the
        threshold is 0, an incident must have been found by `looks` scans: the second scan
        is its second look (a thread's blocked time is only as exact as the scheduler clocks
        of two CPUs agree, a second or so on some machines). It has cleared once two scans
        in a row did not find it (one scan can miss a process it could not read in time);
        found again after that, it is a new incident."""
        keys = {i.key for i in found}
        for key in list(self.first_seen):
            if key in keys:
                self.missing.pop(key, None)
                continue
            self.missing[key] = self.missing.get(key, 0) + 1
            if self.missing[key] >= 2:  # cleared: a new occurrence is a new incident
                for table in (self.first_seen, self.scans, self.missing):
                    del table[key]
                self.reported.discard(key)
        due = []
        for inc in found:
            since = self.first_seen.setdefault(inc.key, now)
            self.scans[inc.key] = self.scans.get(inc.key, 0) + 1
            if inc.key in self.reported or self.age(inc, now, since) < self.threshold:
                continue
            if self.scans[inc.key] >= self.looks or self.threshold == 0:
                due.append(inc)
        return due

    def age(self, inc: Incident, now: float, since: float) -> float:
        return max(inc.blocked or 0.0, now - since)

    def done(self, inc: Incident) -> None:
        self.reported.add(inc.key)


class WaitCache:
    """What makes a scan cheap: the wait of a thread that has not run since the last scan
    (same process by pid and start time, same thread, same context-switch count, state and
    system call with the same arguments) is the one worked out then, if it led to no other
    process. A thread that has not run has not changed what it waits in; a wait with no
    edges depends on no other process (and so can make no deadlock). Waits with edges are
    always worked out again, as are the waits of a report."""

    def __init__(self) -> None:
        self.kept: Dict[Tuple[object, ...], Wait] = {}
        self.now: Dict[Tuple[object, ...], Wait] = {}
        self.hits = 0

    def rules(self, snap: Snapshot, pid: int, task: Task) -> Wait:
        key = _unchanged(snap, pid, task)
        if key is not None and key in self.kept:
            self.hits += 1
            wait = self.now[key] = self.kept[key]
            return wait
        wait = wait_of(snap, pid, task)
        if key is not None and not wait.edges:
            self.now[key] = wait
        return wait

    def next_scan(self) -> None:
        self.kept, self.now = self.now, {}


class QuietProcesses:
    """What makes a scan cheaper still: a process with one thread whose waits led to no other
    process, and which has not run since (same start time, same context-switch count), is
    not a start of the next scan's exploration. It cannot start a chain, be in a deadlock or
    block a writer (all of that takes an edge); a chain that reaches it still reads it."""

    def __init__(self) -> None:
        self.quiet: Dict[int, Tuple[int, int]] = {}  # pid → (start time, switches) when looked at

    def starts(self, snap: Snapshot, pids: Optional[List[int]]) -> List[int]:
        """The processes to explore from: all (or `pids`) but those still quiet."""
        for pid in [p for p in self.quiet if p not in snap.processes]:
            del self.quiet[pid]
        candidates = sorted(snap.processes) if pids is None else pids
        return [p for p in candidates if p not in self.quiet or snap.one_thread_activity(p) != self.quiet[p]]

    def learn(self, ex: Explored) -> None:
        """Which of the processes explored are quiet, as of the switch counts their waits were read at."""
        for pid in ex.order:
            proc, tasks, waits = ex.snap.processes.get(pid), ex.snap.tasks(pid), ex.thread_waits(pid)
            if (proc is not None and len(tasks) == 1 and tasks[0].switches is not None and waits
                    and not any(w.edges for w in waits)):
                self.quiet[pid] = (proc.starttime, tasks[0].switches)
            else:
                self.quiet.pop(pid, None)


def _unchanged(snap: Snapshot, pid: int, task: Task) -> Optional[Tuple[object, ...]]:
    """What names a thread's state until it next runs; None when the kernel does not count
    its context switches."""
    proc = snap.processes.get(pid)
    if proc is None or task.switches is None:
        return None
    return (pid, proc.starttime, task.tid, task.switches, task.state, task.syscall, task.note)


# --- the watchdog -----------------------------------------------------------------------------


class Watchdog:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tracker = Tracker(args.threshold, looks=1 if args.once else 2)
        self.cache = WaitCache()
        self.quiet = QuietProcesses()
        self.carry = ScanCache()  # fd tables of processes that have not run; the memory reader's helper
        self.metrics = Metrics()
        self.hooks: List[Tuple[subprocess.Popen, float]] = []
        self.dirfd = open_out_dir(args.out) if args.out else None
        self.hook = shlex.split(args.hook) if args.hook else None
        if args.hook is not None and not self.hook:
            raise SetupError("--exec: an empty command")
        if args.metrics:
            self._check_metrics(args.metrics)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.stopping = False

    def _check_metrics(self, path: str) -> None:
        where = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(where):
            raise SetupError(f"--metrics {path}: the directory {where} does not exist")

    def run(self) -> int:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._log(f"watching {self._what()} every {self.args.interval:g} s; reporting incidents "
                      f"blocked {self.args.threshold:g} s" + (f" into {self.args.out}" if self.args.out else ""))
            if os.geteuid() != 0:
                self._log("not running as root: other users' processes may be unreadable")
            while not self.stopping:
                started = time.monotonic()
                self.scan_once()
                if self.args.once:
                    break
                self._sleep(self.args.interval - (time.monotonic() - started))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()
        self._log("stopped")
        return EXIT_OK

    def close(self) -> None:
        """Give back what the watchdog holds: the scan cache's files and helper, the wake-up
        pipe and the report directory; hooks that ended are reaped (running ones are named)."""
        self.carry.close()
        self._reap(final=True)
        for fd in (self.wake_r, self.wake_w) + ((self.dirfd,) if self.dirfd is not None else ()):
            os.close(fd)
        self.dirfd = None

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def _sleep(self, seconds: float) -> None:
        """Until the next scan, or a signal to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            poller = select.poll()  # not select(): the scan cache may hold fds numbered past 1024
            poller.register(self.wake_r, select.POLLIN)
            poller.poll(max(1, int(left * 1000)))

    # --- one scan -----------------------------------------------------------------------------

    def scan_once(self) -> None:
        started = time.monotonic()
        try:
            with Snapshot.scan(cache=self.carry) as snap:
                pids = self._targets(snap)
                found = incidents.scan(snap, 0.0, self.quiet.starts(snap, pids), self.cache.rules)
                self.cache.next_scan()
                self.quiet.learn(found.explored)
                now = time.monotonic()
                due = self.tracker.update(found.incidents, now)
                ages = {i.key: self.tracker.age(i, now, self.tracker.first_seen[i.key]) for i in found.incidents}
                if self.args.once and self.dirfd is not None:
                    due = [i for i in due if not self._already(i)]
                if due:  # every process and wait read again for the reports: nothing kept from an earlier scan
                    with Snapshot.scan() as anew:
                        fresh = incidents.scan(anew, 0.0, self._targets(anew))
                        again = {i.key: i for i in fresh.incidents}
                        for inc in due:
                            if inc.key in again:
                                self._report(fresh, again[inc.key], anew)
            self.metrics = of_scan(found.incidents, time.monotonic() - started, self.metrics, time.time(), ages)
        except WaitchainError as exc:
            self._failed(f"scan failed: {exc}")
        except Exception as exc:  # a watchdog does not die of one bad scan
            self._failed(f"scan failed (a bug: please report it): {type(exc).__name__}: {exc}")
        self._write_metrics()
        self._reap()

    def _failed(self, message: str) -> None:
        self.metrics = replace(self.metrics, scan_errors_total=self.metrics.scan_errors_total + 1)
        self._log(message)

    def _targets(self, snap: Snapshot) -> Optional[List[int]]:
        """The processes to watch now; None for the whole machine."""
        a = self.args
        if not (a.pid or a.cgroup or a.unit):
            return None
        found: Set[int] = set()
        for pid in a.pid:
            found |= _descendants(snap, pid)
        if a.cgroup or a.unit:
            for pid in snap.processes:
                paths = read_cgroups(snap.fs, pid)
                if any(in_cgroup(paths, c) for c in a.cgroup) or any(in_unit(paths, u) for u in a.unit):
                    found.add(pid)
        return sorted(found)

    def _what(self) -> str:
        a = self.args
        parts = [f"pid {p}" for p in a.pid] + [f"cgroup {c}" for c in a.cgroup] + [f"unit {u}" for u in a.unit]
        return ", ".join(parts) if parts else "the machine"

    # --- reports --------------------------------------------------------------------------

    def _report(self, found: incidents.Scan, inc: Incident, snap: Snapshot) -> None:
        diag = found.diagnosis_of(inc)
        measure_blocked(diag, snap)
        if not self.args.no_stacks:
            from .stacks import attach_stacks

            attach_stacks(diag, native=False)
        self.tracker.done(inc)
        headline = _headline(diag)
        blocked = f"{inc.blocked:.0f} s" if inc.blocked is not None else "unknown time"
        if self.dirfd is None:
            self._log(f"{headline} (pids {_pids(inc)}, blocked {blocked})")
            return
        try:
            path = write_report(self.dirfd, self.args.out, diag, inc)
        except OSError as exc:
            self._log(f"{headline} (pids {_pids(inc)}): the report could not be written: {exc}")
            return
        self.metrics = replace(self.metrics, reports_total=self.metrics.reports_total + 1)
        self._log(f"{headline} (pids {_pids(inc)}, blocked {blocked}): report {path}")
        self._run_hook(path)

    def _already(self, inc: Incident) -> bool:
        """A report for this incident is in the directory (from an earlier --once run)."""
        tag = f"-{key_tag(inc.key)}.json"
        return self.dirfd is not None and any(n.endswith(tag) for n in os.listdir(self.dirfd))

    def _run_hook(self, path: str) -> None:
        if not self.hook:
            return
        try:
            child = subprocess.Popen(self.hook + [path], stdin=subprocess.DEVNULL, close_fds=True,
                                     start_new_session=True)
        except OSError as exc:
            self._log(f"--exec {shlex.join(self.hook)} could not be started: {exc}")
            return
        self.hooks.append((child, time.monotonic()))

    def _reap(self, final: bool = False) -> None:
        """Collect the hooks that ended; say which outlived EXEC_TIMEOUT (left running)."""
        left = []
        for child, started in self.hooks:
            code = child.poll()
            if code is not None:
                if code != 0:
                    self._log(f"--exec {shlex.join(self.hook or [])}: exit status {code}")
            elif final or time.monotonic() - started > EXEC_TIMEOUT:
                self._log(f"--exec is still running after {time.monotonic() - started:.0f} s (pid {child.pid}); "
                          "not waiting for it")
            else:
                left.append((child, started))
        self.hooks = left

    def _write_metrics(self) -> None:
        if not self.args.metrics:
            return
        try:
            write_atomically(self.args.metrics, render(self.metrics))
        except OSError as exc:
            self._log(f"--metrics {self.args.metrics}: {exc}")

    def _log(self, text: str) -> None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"{stamp} waitchain watch: {clean(text)}", file=sys.stderr, flush=True)


def _descendants(snap: Snapshot, pid: int) -> Set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in snap.processes and p not in found:
            found.add(p)
            todo.extend(snap.children.get(p, ()))
    return found


def _headline(diag: Diagnosis) -> str:
    """The worst verdict's class and advice, from the facts (the log line's first word)."""
    if not diag.verdicts:
        return "NOTHING"
    verdict = diag.verdicts[0]
    return f"{verdict.cls.value.upper()} ({verdict.advice.value})"


def _pids(inc: Incident) -> str:
    return ",".join(str(p) for p in inc.pids)


# --- safe files -------------------------------------------------------------------------------


def open_out_dir(path: str) -> int:
    """The report directory, opened (never through a symlink): created 0700 when missing;
    an existing one must be a directory of ours that no one else may write to."""
    created = False
    try:
        os.makedirs(path, mode=DIR_MODE)
        created = True
    except FileExistsError:
        pass
    except OSError as exc:
        raise SetupError(f"--out {path}: cannot create it: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError(f"--out {path}: not a directory waitchain may use ({exc.strerror}; "
                         "a symlink is refused)") from None
    st = os.fstat(fd)
    if created:
        os.fchmod(fd, DIR_MODE)
    elif st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise SetupError(f"--out {path}: owned by another user or writable by others: "
                         "give a directory of your own (it is created 0700)")
    return fd


def key_tag(key: Key) -> str:
    """A short stable name of an incident's key, in its report's file names."""
    return hashlib.sha256(repr(key).encode()).hexdigest()[:12]


def write_report(dirfd: int, where: str, diag: Diagnosis, inc: Incident) -> str:
    """The JSON, text and HTML reports of one incident in the directory; the JSON's path."""
    from .render import Options, renderer
    from .render.html import report

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    base = f"waitchain-{stamp}-{inc.kind}-{key_tag(inc.key)}"
    options = Options(color=False, width=None, stacks=True, ascii=False)
    _create(dirfd, base + ".txt", renderer("text")(diag, options))
    _create(dirfd, base + ".html", report(diag))
    _create(dirfd, base + ".json", renderer("json")(diag, options))  # last: the hook's file is complete
    return os.path.join(where, base + ".json")


def _create(dirfd: int, name: str, text: str) -> None:
    """A new file, 0600, relative to the directory opened: written under a hidden name made
    with O_EXCL and O_NOFOLLOW, then linked to `name` (which fails if anything is there, a
    symlink included), so that a reader never sees it half written."""
    part = f".{name}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                 dir_fd=dirfd)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(part, name, src_dir_fd=dirfd, dst_dir_fd=dirfd, follow_symlinks=False)
    finally:
        os.unlink(part, dir_fd=dirfd)
