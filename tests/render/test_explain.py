"""--explain: the commands to check each edge and each chain end by hand are made from the
structured facts (the edge's fd, inode, holder fds, direction and addresses; the end's
reason and subject), never from the sentences the wait rules wrote, and run as printed."""

from __future__ import annotations

import subprocess

from render_fixtures import assorted, demo, idle_at, sleeping_twice

from waitchain import records
from waitchain.model import Advice, Reason
from waitchain.render.explain import edge_checks, end_checks

INOTIFY = "waits for file-system events (inotify fd 4, 1 watch)"


def _commands(checks) -> list:
    return [c.command for c in checks]


def test_lock_greps_proc_locks_for_the_inode() -> None:
    diag = sleeping_twice()
    assert "grep ':2146326 ' /proc/locks" in _commands(edge_checks(diag, diag.edges[0]))
    commands = _commands(edge_checks(diag, diag.edges[1]))  # no inode known
    grep = next(c for c in commands if "/proc/locks" in c)
    assert grep == 'grep ":$(stat -Lc %i /proc/100/fd/3) " /proc/locks'  # $(...) must expand
    assert subprocess.run(["bash", "-n", "-c", grep]).returncode == 0


def test_idle_ends_are_checked_by_their_reason() -> None:
    diag = idle_at(INOTIFY, Reason.FILE_EVENTS, Advice.FILE_EVENTS)
    assert _commands(end_checks(diag, diag.chains[0]))[-1] == "grep -h inotify /proc/400/fdinfo/*"
    diag = idle_at("any words at all", Reason.ACCEPT, Advice.IDLE_SERVER)
    assert _commands(end_checks(diag, diag.chains[0]))[-1] == "ss -ltnp | grep pid=400,"
    diag = idle_at("a listening socket, inotify", Reason.OTHER, Advice.IDLE)  # the words do not count
    assert _commands(end_checks(diag, diag.chains[0]))[-1] == "cat /proc/400/task/400/wchan"


def test_pipe_direction_comes_from_the_edge() -> None:
    diag = demo()
    write = diag.edges[3]
    reworded = records.replace(write, evidence="read end write end")
    for edge in (write, reworded):
        checks = {c.command: c.expect for c in edge_checks(diag, edge)}
        assert "MODE r-- (the read end)" in checks["lsfd -Q 'INODE == 139830001'"]
        assert "the read end" in checks["grep flags /proc/23270/fdinfo/5"]
        assert checks["lsof -n -P +E -p 32084 -a -d 1"].endswith("23270,…,5r")
    read = records.replace(diag.edges[0], evidence="pipe full read end")
    checks = {c.command: c.expect for c in edge_checks(diag, read)}
    assert "MODE -w- (the write end)" in checks["lsfd -Q 'INODE == 139828372'"]


def test_tcp_checks_use_the_edges_addresses() -> None:
    diag = demo()
    tcp = diag.edges[1]
    commands = _commands(edge_checks(diag, tcp))
    assert "ss -tnp '( sport = :39392 or dport = :39392 )'" in commands
    unknown = records.replace(tcp, local=None, remote=None)
    assert not any("ss -tnp" in c for c in _commands(edge_checks(diag, unknown)))


def test_a_remote_end_is_checked_in_its_network_namespace() -> None:
    diag = assorted()
    remote = diag.chains[0]
    assert _commands(end_checks(diag, remote))[-1] == "nsenter -t 5200 -n ss -tnpi dst 10.0.0.5:5432"
