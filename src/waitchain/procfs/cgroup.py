"""/proc/PID/cgroup: the control groups a process is in (a systemd unit is one)."""

from __future__ import annotations

from typing import List

from ..errors import WaitchainError
from .reader import ProcFS


def parse_cgroup(text: str) -> List[str]:
    """The cgroup paths of every hierarchy line `ID:CONTROLLERS:PATH` (v2's is `0::PATH`)."""
    paths = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[2].startswith("/"):
            paths.append(parts[2])
    return list(dict.fromkeys(paths))


def read_cgroups(fs: ProcFS, pid: int) -> List[str]:
    """The process's cgroup paths; [] when it has gone or may not be read."""
    try:
        return parse_cgroup(fs.read(pid, "cgroup"))
    except WaitchainError:
        return []


def in_cgroup(paths: List[str], wanted: str) -> bool:
    """One of `paths` is the cgroup `wanted` or below it (`wanted` as in /proc/PID/cgroup,
    or under /sys/fs/cgroup[/HIERARCHY])."""
    wanted = "/" + wanted.strip("/")
    return any(p == wanted or p.startswith(wanted.rstrip("/") + "/") or _mounted(p, wanted) for p in paths)


def _mounted(path: str, wanted: str) -> bool:
    """`wanted` spelled as a path in the cgroup file system: /sys/fs/cgroup[/unified|/HIER]PATH."""
    for root in ("/sys/fs/cgroup",):
        if wanted.startswith(root + "/"):
            rest = wanted[len(root):]
            tail = rest.split("/", 2)
            candidates = [rest] + (["/" + tail[2]] if len(tail) == 3 else [])
            return any(path == c or path.startswith(c + "/") for c in candidates)
    return False


def in_unit(paths: List[str], unit: str) -> bool:
    """A process of the systemd unit: a component of one of its cgroup paths is the unit's
    name (NAME.service when no suffix is given)."""
    name = unit if "." in unit else unit + ".service"
    return any(name in p.split("/") for p in paths)
