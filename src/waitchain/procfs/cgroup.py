"""/proc/PID/cgroup: the control groups a process is in (a systemd unit is one)."""

from __future__ import annotations

import re

from ..errors import WaitchainError
from ..model import Container
from .reader import ProcFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional


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


# --- containers, pods and units a cgroup path names ----------------------------------------

_HEX64 = re.compile(r"(?:^|[-_/])([0-9a-f]{64})(?:\.scope)?$")
_RUNTIMES = (  # a component's prefix → the runtime (systemd cgroup driver: PREFIX-ID.scope)
    ("docker-", "docker"), ("cri-containerd-", "containerd"), ("libpod-", "podman"),
    ("crio-", "cri-o"), ("containerd-", "containerd"),
)
_PARENTS = (("docker", "docker"), ("libpod_parent", "podman"), ("machine.slice", "podman"))
_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$")
_UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap", ".target")


def container_of(paths: List[str]) -> Optional[Container]:
    """The container, Kubernetes pod and systemd unit the cgroup paths name (the first
    path that names any); None when none names one (the root cgroup, a plain slice)."""
    for path in paths:
        found = _container_in(path)
        if found is not None:
            return found
    return None


def _container_in(path: str) -> Optional[Container]:
    parts = [p for p in path.split("/") if p]
    runtime = cid = pod = unit = ""
    for i, part in enumerate(parts):
        m = _POD.search(part)
        if m and part.startswith(("pod", "kubepods")):
            pod = m.group(1).replace("_", "-")
            continue
        if part.endswith(_UNIT_SUFFIXES):
            unit = part
        h = _HEX64.search(part)
        if h is not None and not part.startswith(("libpod-conmon-",)):
            cid = h.group(1)[:12]
            runtime = next((r for prefix, r in _RUNTIMES if part.startswith(prefix)), "")
            if not runtime and i > 0:
                runtime = next((r for parent, r in _PARENTS if parts[i - 1] == parent), "")
            if not runtime and pod:
                runtime = "containerd"  # cgroupfs driver under kubepods: the CRI's container
        elif part.startswith("lxc.payload."):
            runtime, cid = "lxc", part[len("lxc.payload."):]
        elif i > 0 and parts[i - 1] == "lxc" and not cid:
            runtime, cid = "lxc", part
    if not (runtime or cid or pod or unit):
        return None
    return Container(runtime=runtime, id=cid, pod=pod, unit=unit, cgroup=path)
