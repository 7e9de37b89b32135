"""Prometheus textfile-collector metrics of the watchdog (`waitchain watch --metrics FILE`).

Written after every scan, atomically: the text goes to a new file next to FILE (created with
O_EXCL, never through a symlink), is flushed to disk, and is renamed over FILE, so the
collector reads either the last scan's metrics or the one before, never half of one. The
format is Prometheus's text exposition format 0.0.4 (HELP, TYPE, samples)."""

from __future__ import annotations

import errno
import os
import stat

from .incidents import Incident, Kind
from .output import kind
from .records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Tuple

    Key = Tuple[object, ...]

__all__ = ["Metrics", "render", "write_atomically", "of_scan"]


@record
class Metrics:
    deadlocks: int = 0  # deadlocks now
    blocked_threads: Dict[str, int] = field(default_factory=dict)  # incident kind → threads
    incidents: Dict[str, int] = field(default_factory=dict)  # incident kind → incidents
    longest_blocked: float = 0.0  # seconds, over the incidents now
    scan_seconds: float = 0.0  # how long the last scan took
    reports_total: int = 0  # reports written since the watchdog started
    scans_total: int = 0
    scan_errors_total: int = 0
    last_scan: float = 0.0  # Unix time of the last scan's end


def of_scan(incidents: Iterable[Incident], scan_seconds: float, last: Metrics, now: float,
            ages: Optional[Dict[Key, float]] = None) -> Metrics:
    """The metrics after a scan that found `incidents` (`ages`: how long each has been
    blocked by the watchdog's account, by key; else their threads' blocked time); the
    counters carried over from `last`."""
    found = list(incidents)
    ages = ages or {}
    per_kind = {k: [i for i in found if i.kind == k] for k in Kind.ORDER}
    return Metrics(
        deadlocks=len(per_kind[Kind.DEADLOCK]),
        blocked_threads={k: len({t for i in v for t in i.threads}) for k, v in per_kind.items()},
        incidents={k: len(v) for k, v in per_kind.items()},
        longest_blocked=max((ages.get(i.key, i.blocked or 0.0) for i in found), default=0.0),
        scan_seconds=scan_seconds,
        reports_total=last.reports_total,
        scans_total=last.scans_total + 1,
        scan_errors_total=last.scan_errors_total,
        last_scan=now,
    )


def render(m: Metrics) -> str:
    families: List[Tuple[str, str, str, List[Tuple[str, float]]]] = [
        ("waitchain_deadlocks", "gauge", "Deadlocks found by the last scan.", [("", m.deadlocks)]),
        ("waitchain_incidents", "gauge", "Incidents found by the last scan, by kind.",
         [(_labels(kind=k), v) for k, v in sorted(m.incidents.items())]),
        ("waitchain_blocked_threads", "gauge", "Threads blocked in the incidents of the last scan, by "
         "incident kind.", [(_labels(kind=k), v) for k, v in sorted(m.blocked_threads.items())]),
        ("waitchain_longest_blocked_seconds", "gauge", "How long the longest-blocked incident of the last "
         "scan has been blocked.", [("", m.longest_blocked)]),
        ("waitchain_scan_seconds", "gauge", "How long the last scan took.", [("", m.scan_seconds)]),
        ("waitchain_last_scan_timestamp_seconds", "gauge", "When the last scan ended (Unix time).",
         [("", m.last_scan)]),
        ("waitchain_reports_total", "counter", "Incident reports written since the watchdog started.",
         [("", m.reports_total)]),
        ("waitchain_scans_total", "counter", "Scans since the watchdog started.", [("", m.scans_total)]),
        ("waitchain_scan_errors_total", "counter", "Scans that failed since the watchdog started.",
         [("", m.scan_errors_total)]),
    ]
    lines: List[str] = []
    for name, family, text, samples in families:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {family}"]
        lines += [f"{name}{labels} {_number(value)}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _labels(**pairs: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(round(float(value), 6))


def write_atomically(path: str, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` by a rename: readers see the old file or the new one.
    Raises OSError."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode_now = os.lstat(path).st_mode
    except FileNotFoundError:
        mode_now = stat.S_IFREG
    if not stat.S_ISREG(mode_now):  # a FIFO, device or symlink is never replaced (output.py)
        raise OSError(errno.EINVAL, f"{path} is {kind(mode_now)}, not a regular file")
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.unlink(temp)  # left by a watchdog of this pid that was killed mid-write
    except FileNotFoundError:
        pass
    fd = os.open(temp, flags, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    os.rename(temp, path)
