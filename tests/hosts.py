"""Plain helpers for tests of containers and other hosts made of namespaces on this machine:
a "host" is a process tree in its own network, pid, mount and UTS namespaces (own /proc, own
hostname), joined to others (or to ours) by a veth pair. Every process is started through
the `procs` fixture (killed and reaped); links die with their namespaces and are deleted too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import signal
import textwrap
import time
from typing import List, NamedTuple, Optional, Sequence

import pytest

from waitchain.demo.harness import Processes, children, wait_until

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenario_helpers import read_lines  # noqa: E402

# What every program starts with (as conftest.PRELUDE: conftest itself is not importable).
PRELUDE = '''\
import os, socket, sys, time
_READY = int(os.environ.pop("WAITCHAIN_TEST_READY"))

def ready(*words):
    os.write(_READY, (" ".join(str(w) for w in (os.getpid(),) + words) + "\\n").encode())

def sleep_forever():
    while True:
        time.sleep(3600)

'''


class Program:
    """A started program, its pid as we see it, and its readiness pipe."""

    def __init__(self, popen: subprocess.Popen, pid: int, fd: int) -> None:
        self.popen, self.pid, self.fd = popen, pid, fd

    def ready(self, timeout: float = 15.0) -> List[str]:
        return read_lines(self.fd, 1, timeout)[0]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# What a sleeping Python thread is inside (as conftest.SLEEP_CALLS).
SLEEP_CALLS = ("clock_nanosleep", "nanosleep", "pselect6", "select", "pause", "ppoll")


class Host(NamedTuple):
    name: str
    init: int  # its pid 1, as we see it


def need_namespaces() -> None:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "nsenter", "ip")):
        pytest.skip("hosts made of namespaces need root, unshare(1), nsenter(1) and ip(8)")


def start_host(procs: Processes, name: str) -> Host:
    """A new "host" named `name`: its pid 1 is a shell that set the hostname and sleeps."""
    need_namespaces()
    unshare = procs.spawn(["unshare", "--net", "--pid", "--fork", "--mount-proc", "--uts", "--",
                           "sh", "-c", f"hostname {name} && exec sleep 100000"])
    wait_until(lambda: any(_comm(c) == "sleep" for c in children(unshare.pid)), f"host {name} is up", 15.0)
    (init,) = [c for c in children(unshare.pid) if _comm(c) == "sleep"]
    run(init, ["ip", "link", "set", "lo", "up"])
    return Host(name, init)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def enter(host: Optional[Host], argv: Sequence[str]) -> List[str]:
    """argv run inside `host` (as is when None: our own namespaces)."""
    if host is None:
        return list(argv)
    return ["nsenter", "-t", str(host.init), "--net", "--pid", "--mount", "--uts", "--", *argv]


def run(pid: Optional[int], argv: Sequence[str]) -> None:
    """A short command in the network namespace of pid (ours when None)."""
    full = list(argv) if pid is None else ["nsenter", "-t", str(pid), "--net", "--", *argv]
    subprocess.run(full, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=15)


class Link(NamedTuple):
    names: tuple
    addrs: tuple  # (address of side a, address of side b)


def link(a: Optional[Host], b: Optional[Host], tag: str, net: int) -> Link:
    """A veth pair between a and b (None: our namespace), 10.NET.0.1 on a, 10.NET.0.2 on b."""
    names = (f"wc{tag}a{os.getpid() % 10000}", f"wc{tag}b{os.getpid() % 10000}")
    addrs = (f"10.{net}.0.1", f"10.{net}.0.2")
    subprocess.run(["ip", "link", "del", names[0]], stderr=subprocess.DEVNULL, check=False)
    run(None, ["ip", "link", "add", names[0], "type", "veth", "peer", "name", names[1]])
    for host, name, addr in ((a, names[0], addrs[0]), (b, names[1], addrs[1])):
        if host is not None:
            run(None, ["ip", "link", "set", name, "netns", str(host.init)])
        pid = host.init if host is not None else None
        run(pid, ["ip", "addr", "add", f"{addr}/24", "dev", name])
        run(pid, ["ip", "link", "set", name, "up"])
    return Link(names, addrs)


def unlink(a: Optional[Host], lnk: Link) -> None:
    full = ["ip", "link", "del", lnk.names[0]]
    if a is not None:
        full = ["nsenter", "-t", str(a.init), "--net", "--"] + full
    subprocess.run(full, stderr=subprocess.DEVNULL, check=False, timeout=15)


def spawn_in(procs: Processes, host: Optional[Host], code: str, *args: str, **kwargs) -> Program:
    """A Python program (after conftest.PRELUDE: ready()) inside `host`, with the readiness
    pipe; its `pid` is set to the program's own pid as we see it (nsenter forks it)."""
    r, w = os.pipe()
    env = dict(os.environ, WAITCHAIN_TEST_READY=str(w))
    argv = enter(host, [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args])
    try:
        popen = procs.spawn(argv, pass_fds=(w,), env=env, **kwargs)
    finally:
        os.close(w)
    pid = popen.pid
    if host is not None:
        wait_until(lambda: bool(children(popen.pid)), "nsenter started the program", 15.0)
        pid = children(popen.pid)[0]
    return Program(popen, pid, r)


def stop_all(procs: Processes) -> None:
    """Kill every process started through procs and reap every child in whatever order they
    die: the init of a pid namespace does not exit until the processes of its namespace are
    reaped, and those (nsenter's children) are ours to reap once nsenter is gone; waiting
    for the init first would wait for ever. Call before the procs fixture's own cleanup."""
    victims = set(procs.descendants()) | {p.pid for p in procs.started}
    for proc in procs.started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 20
    while any(os.path.exists(f"/proc/{pid}") for pid in victims) and time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.02)
        except ChildProcessError:
            time.sleep(0.02)
