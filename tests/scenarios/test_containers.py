"""Containers on this host: a process in another pid namespace shows both pids (ours and its
own, from NSpid) and the container or unit its cgroup names; a TCP peer in a container-style
box (its own network, pid, mount and UTS namespaces, joined to ours by a veth pair) is
followed without --remote, named with both pids and the box's host name."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from typing import Any, Dict

import pytest

from waitchain.demo.harness import children, wait_blocked, wait_until

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hosts import SLEEP_CALLS, enter, link, need_namespaces, spawn_in, start_host, stop_all, unlink  # noqa: E402
from scenario_helpers import READER, close, edges_from, spawn_with  # noqa: E402

RECV_CALLS = ("recvfrom", "read", "recvmsg")


def _json(run_cli, pid: int) -> Dict[str, Any]:
    result = run_cli(str(pid), "--json", "--no-stacks")
    assert result.out, result.err
    data = json.loads(result.out)
    data["exit"] = result.code
    return data


def _process(data: Dict[str, Any], pid: int) -> Dict[str, Any]:
    (found,) = [p for p in data["processes"] if p["pid"] == pid]
    return found


def test_a_pipe_writer_in_another_pid_namespace_shows_both_pids(procs, run_cli) -> None:
    """unshare --pid --fork --mount-proc: the writer is pid 1 in its namespace; the reader's
    chain names it by our pid, with 1 as its pid inside, in JSON and in the text."""
    need_namespaces()
    r, w = os.pipe()
    writer = procs.spawn(["unshare", "--pid", "--fork", "--mount-proc", "--", sys.executable, "-c",
                          "import os, time, sys\nos.write(int(sys.argv[1]), b'x' * 0)\n"
                          "print(os.getpid(), flush=True)\ntime.sleep(3600)", str(w)],
                         pass_fds=(w,), stdout=subprocess.PIPE)
    assert writer.stdout is not None
    assert writer.stdout.readline().split() == [b"1"]  # pid 1 inside
    (inner,) = children(writer.pid)  # unshare's forked child, now python
    wait_blocked(inner, *SLEEP_CALLS)
    reader = procs.spawn([sys.executable, "-c", "import os, sys\nos.read(int(sys.argv[1]), 1)", str(r)],
                         pass_fds=(r,))
    close(w, r)
    wait_blocked(reader.pid, "read")
    assert os.readlink(f"/proc/{inner}/ns/pid") != os.readlink("/proc/self/ns/pid")

    data = _json(run_cli, reader.pid)

    # unshare itself holds the write end too (it waits for its child: the chain goes on)
    edges = {e["to"]["pid"]: e for e in edges_from(data, reader.pid)}
    assert sorted(edges) == sorted([writer.pid, inner]), edges
    edge = edges[inner]
    assert edge["kind"] == "pipe"
    assert edge["from"]["host"] == edge["to"]["host"] == os.uname().nodename
    assert [reader.pid, inner] in [c["path"] for c in data["chains"]]
    assert _process(data, inner)["ns_pid"] == 1
    assert _process(data, reader.pid)["ns_pid"] is None  # ours: one pid is enough
    assert data["exit"] == 0

    text = run_cli(str(reader.pid), "--no-stacks").out
    assert "pid 1 inside]" in text, text
    writer.stdout.close()


def _cgroup_root() -> str:
    """A cgroup hierarchy we may make a group in: v2 at /sys/fs/cgroup, or a hybrid's
    unified or named systemd hierarchy."""
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"):
        if os.path.exists(os.path.join(root, "cgroup.procs")):
            return root
    pytest.skip("no cgroup hierarchy to make a group in")


def test_a_process_in_a_docker_scope_is_named_by_its_container_id(procs, run_py, wait_sleeping) -> None:
    """A cgroup named as Docker's systemd driver names its containers
    (system.slice/docker-<64 hex>.scope): the process is named by the id's first 12 digits
    and the unit; the healthy look-alike (its parent, in no such group) is not."""
    need_namespaces()
    root = _cgroup_root()
    cid = secrets.token_hex(32)
    slice_made = not os.path.isdir(os.path.join(root, "system.slice"))  # removed after if we made it
    group = os.path.join(root, "system.slice", f"docker-{cid}.scope")
    os.makedirs(group)
    r, w = os.pipe()
    try:
        writer = spawn_with(run_py, "ready('sleeping')\nsleep_forever()", [w])
        writer.ready()
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(writer.pid))
        reader = spawn_with(run_py, READER, [r])
        close(w, r)
        reader.ready()
        wait_blocked(reader.pid, "read")
        wait_sleeping(writer.pid)
        from waitchain import cli
        import io
        import contextlib
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main([str(reader.pid), "--json", "--no-stacks"])
        data = json.loads(out.getvalue())
        assert code == 0
        box = _process(data, writer.pid)["container"]
        assert box is not None
        assert (box["runtime"], box["id"], box["unit"], box["pod"]) == ("docker", cid[:12], f"docker-{cid}.scope", None)
        assert box["cgroup"].endswith(f"/system.slice/docker-{cid}.scope")
        assert _process(data, writer.pid)["ns_pid"] is None
        mine = _process(data, reader.pid)["container"]
        assert mine is None or mine["runtime"] is None, mine
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cli.main([str(reader.pid), "--no-stacks"])
        assert f"[docker {cid[:12]}]" in out.getvalue(), out.getvalue()
    finally:
        procs.kill_all()
        wait_until(lambda: not open(os.path.join(group, "cgroup.procs")).read().strip(), "the group is empty", 10.0)
        os.rmdir(group)
        if slice_made:
            os.rmdir(os.path.dirname(group))


SERVER = """
import socket, sys
srv = socket.socket()
srv.bind((sys.argv[1], 0))
srv.listen(1)
ready("listening", srv.getsockname()[1], socket.gethostname())
conn, _ = srv.accept()
ready("accepted")
sleep_forever()
"""

CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"request\\n")
ready("sent")
s.recv(100)
"""


def test_a_tcp_peer_in_a_container_style_box_is_followed_with_both_pids(procs, run_cli) -> None:
    """The server runs in a box with its own network, pid, mount and UTS namespaces (hostname
    wcbox), reached over a veth pair: the client's chain goes on to it without --remote,
    with our pid and its pid inside, and the box's host name."""
    box = start_host(procs, "wcbox")
    lnk = link(None, box, "R", 77)
    try:
        server = spawn_in(procs, box, SERVER, lnk.addrs[1])
        _, word, port, name = server.ready()
        assert (word, name) == ("listening", "wcbox")
        client = spawn_in(procs, None, CLIENT, lnk.addrs[1], port)
        assert server.ready()[1] == "accepted"
        client.ready()
        wait_blocked(client.pid, *RECV_CALLS)
        wait_blocked(server.pid, *SLEEP_CALLS)
        assert os.readlink(f"/proc/{server.pid}/ns/net") != os.readlink("/proc/self/ns/net")

        data = _json(run_cli, client.pid)

        (edge,) = edges_from(data, client.pid)
        assert (edge["kind"], edge["to"]["pid"]) == ("tcp", server.pid), edge
        assert (edge["from"]["host"], edge["to"]["host"]) == (os.uname().nodename, "wcbox")
        assert [c["path"] for c in data["chains"]] == [[client.pid, server.pid]]
        inside = _process(data, server.pid)
        assert inside["ns_pid"] == int(_) and inside["ns_pid"] != server.pid
        assert inside["host"] == "wcbox"
        assert data["chains"][0]["end"]["kind"] == "sleeping"
        assert data["exit"] == 0
        text = run_cli(str(client.pid), "--no-stacks").out
        assert f"[on wcbox, pid {inside['ns_pid']} inside]" in text, text
        for prog in (server, client):
            prog.close()
    finally:
        unlink(None, lnk)
        stop_all(procs)


def test_a_tcp_peer_behind_nat_is_found_through_conntrack(procs, run_cli) -> None:
    """A published port: the client on host A connects to A's own address, port 8080, which
    A's netfilter rewrites (DNAT) to the server on host B. The client's socket names no peer
    of its own (A:8080 is nobody's socket); conntrack of A's namespace gives the connection
    as B sees it, and the chain goes on to the server. Without the rule (the look-alike: a
    direct connection) the reversed 4-tuple finds it, and the evidence says which it used."""
    if shutil.which("iptables") is None:
        pytest.skip("needs iptables (apt-get install iptables)")
    a, b = start_host(procs, "wcnata"), start_host(procs, "wcnatb")
    try:
        lnk = link(a, b, "N", 79)
        nat = subprocess.run(enter(a, ["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", lnk.addrs[0],
                                       "--dport", "8080", "-j", "DNAT", "--to-destination", f"{lnk.addrs[1]}:80"]),
                             capture_output=True, text=True, timeout=30)
        if nat.returncode != 0:
            pytest.skip(f"no NAT rule could be made here: {nat.stderr.strip()}")
        server = spawn_in(procs, b, SERVER_ON_PORT, lnk.addrs[1], "80")
        server.ready()
        client = spawn_in(procs, a, CLIENT, lnk.addrs[0], "8080")
        assert server.ready()[1] == "accepted"
        client.ready()
        wait_blocked(client.pid, *RECV_CALLS)
        wait_blocked(server.pid, "accept", "accept4")

        data = _json(run_cli, client.pid)

        (edge,) = edges_from(data, client.pid)
        assert (edge["kind"], edge["to"]["pid"], edge["to"]["host"]) == ("tcp", server.pid, "wcnatb"), edge
        assert edge["remote"] == {"host": lnk.addrs[0], "port": 8080}  # the published address
        assert "conntrack: NAT gives it the other end" in edge["evidence"], edge["evidence"]
        assert [c["path"] for c in data["chains"]] == [[client.pid, server.pid]]
        assert data["exit"] == 0

        direct = spawn_in(procs, a, CLIENT, lnk.addrs[1], "80")  # the look-alike: no NAT on the way
        assert server.ready()[1] == "accepted"
        direct.ready()
        wait_blocked(direct.pid, *RECV_CALLS)
        (plain,) = edges_from(_json(run_cli, direct.pid), direct.pid)
        assert plain["to"]["pid"] == server.pid and "reversed 4-tuple is" in plain["evidence"]
        for prog in (server, client, direct):
            prog.close()
    finally:
        stop_all(procs)


SERVER_ON_PORT = """
import os, socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(5)
ready("listening")
conns = []
while True:
    conn, _ = srv.accept()
    conns.append(conn)
    ready("accepted")
"""
