"""Unix connections in a listener's accept queue (issue 9, item 3): a client whose connect()
succeeded while the server has not accept()ed has a peer socket with no inode yet. sock_diag
(UDIAG_SHOW_ICONS) lists it in the listener's queue: the client waits for the listener's
holders to accept, as for TCP. Also when the listener is in another network namespace (a
path connects across them), and the healthy look-alike: a server that accepts and answers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List

import pytest
from scenario_helpers import edges_from, read_lines

from waitchain.demo.harness import wait_blocked

RECV_CALLS = ("recvfrom", "recv", "recvmsg", "read")
SLEEP_CALLS = ("clock_nanosleep", "nanosleep", "pselect6", "select")

NEVER_ACCEPTS = """
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen(4)
ready("listening", listener.fileno())
sleep_forever()  # busy elsewhere: it never gets to accept()
"""

ACCEPTS_AND_ANSWERS = """
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen(4)
kept = []
ready("listening", listener.fileno())
while True:
    conn, _ = listener.accept()
    conn.recv(100)
    conn.sendall(b"answer\\n")
    kept.append(conn)
    ready("answered", conn.fileno())
"""

CLIENT = """
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"request\\n")
if len(sys.argv) > 2:
    s.recv(100)  # the answer; then it waits for more
ready("waiting", s.fileno())
s.recv(100)
"""


def _json(run_cli, pid: int) -> Dict[str, Any]:
    result = run_cli(str(pid), "--json", "--no-stacks")
    assert result.out, result.err
    data = json.loads(result.out)
    data["exit"] = result.code
    return data


def _verdict(data: Dict[str, Any]) -> Dict[str, Any]:
    return data["verdicts"][0]


def test_a_unix_client_queued_on_a_listener_that_never_accepts(run_py, run_cli, tmp_path) -> None:
    path = str(tmp_path / "server.sock")
    server = run_py(NEVER_ACCEPTS, path)
    ((_, _, listen_fd),) = server.ready()
    wait_blocked(server.pid, *SLEEP_CALLS)
    client = run_py(CLIENT, path)
    client.ready()
    wait_blocked(client.pid, *RECV_CALLS)

    data = _json(run_cli, client.pid)

    (edge,) = edges_from(data, client.pid)
    assert (edge["kind"], edge["to"]["pid"], edge["unaccepted"]) == ("unix", server.pid, True), edge
    assert edge["label"] == "waits for the server to accept the connection"
    assert edge["holder_fds"] == [int(listen_fd)]
    assert path in edge["evidence"] and "accept queue" in edge["evidence"]
    assert [c["path"] for c in data["chains"]] == [[client.pid, server.pid]]
    assert data["chains"][0]["end"]["kind"] == "sleeping"
    assert (_verdict(data)["class"], _verdict(data)["advice"]) == ("chain-end", "sleeping")
    assert data["deadlock"] is False and data["exit"] == 0
    text = run_cli(str(client.pid), "--no-stacks")
    assert "waits for the server to accept the connection" in text.out and text.code == 0, text.out
    explain = run_cli(str(client.pid), "--no-stacks", "--explain")
    listener = os.stat(f"/proc/{server.pid}/fd/{listen_fd}").st_ino
    assert edge["inode"] == listener and f"ss -xlp | grep -w {listener}" in explain.out, explain.out


def test_a_unix_client_of_a_server_that_accepts_and_answers(run_py, run_cli, tmp_path) -> None:
    """The look-alike: connected to the same kind of listener, but accepted (and answered):
    the edge is to the accepted socket, not to the accept queue."""
    path = str(tmp_path / "server.sock")
    server = run_py(ACCEPTS_AND_ANSWERS, path)
    ((_, _, listen_fd),) = server.ready()
    client = run_py(CLIENT, path, "read the answer first")
    ((_, _, conn_fd),) = server.ready()
    client.ready()
    wait_blocked(client.pid, *RECV_CALLS)
    wait_blocked(server.pid, "accept", "accept4")

    data = _json(run_cli, client.pid)

    (edge,) = edges_from(data, client.pid)
    assert (edge["kind"], edge["to"]["pid"], edge["unaccepted"]) == ("unix", server.pid, False), edge
    assert edge["holder_fds"] == [int(conn_fd)] != [int(listen_fd)]
    assert edge["label"] == "waits for the peer"
    assert [c["path"] for c in data["chains"]] == [[client.pid, server.pid]]
    assert data["chains"][0]["end"]["kind"] == "idle"
    assert data["deadlock"] is False and data["exit"] == 0


# --- a listener in another network namespace ---------------------------------------------------

NS_SERVER = """
import socket, sys, time
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen(4)
print("listening", listener.fileno(), flush=True)
if len(sys.argv) > 2:  # accept, and hold the connection without answering
    conn, _ = listener.accept()
    print("accepted", conn.fileno(), flush=True)
time.sleep(3600)
"""

NS_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"request\\n")
print("waiting", flush=True)
s.recv(100)
"""


def _in_new_netns(procs, code: str, *args: str) -> subprocess.Popen:
    return procs.spawn(["unshare", "--net", sys.executable, "-c", code, *args], stdout=subprocess.PIPE)


def _other_netns_or_skip(procs, tmp_path) -> subprocess.Popen:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a new network namespace needs root and unshare(1)")
    probe = procs.spawn(["unshare", "--net", "true"], stderr=subprocess.DEVNULL)
    if probe.wait() != 0:
        pytest.skip("unshare --net is not allowed here")
    return _in_new_netns(procs, NS_SERVER, str(tmp_path / "server.sock"))


def _ready(proc: subprocess.Popen) -> List[str]:
    assert proc.stdout is not None
    return read_lines(proc.stdout.fileno(), 1, 15.0)[0]


@pytest.mark.parametrize("client_netns", ["ours", "the server's"])
def test_a_unix_client_queued_on_a_listener_in_another_network_namespace(procs, run_cli, tmp_path,
                                                                          client_netns) -> None:
    """The listener (and, in the second case, the client too) is in a network namespace
    that is not waitchain's: sock_diag is asked from inside it."""
    server = _other_netns_or_skip(procs, tmp_path)
    (_, listen_fd) = _ready(server)
    wait_blocked(server.pid, *SLEEP_CALLS)
    path = str(tmp_path / "server.sock")
    if client_netns == "ours":
        client = procs.spawn([sys.executable, "-c", NS_CLIENT, path], stdout=subprocess.PIPE)
    else:
        client = procs.spawn(["nsenter", f"--net=/proc/{server.pid}/ns/net", sys.executable, "-c",
                              NS_CLIENT, path], stdout=subprocess.PIPE)
    _ready(client)
    wait_blocked(client.pid, *RECV_CALLS)
    ours = os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{server.pid}/ns/net") != ours
    assert (os.readlink(f"/proc/{client.pid}/ns/net") == ours) == (client_netns == "ours")

    data = _json(run_cli, client.pid)

    (edge,) = edges_from(data, client.pid)
    assert (edge["kind"], edge["to"]["pid"], edge["unaccepted"]) == ("unix", server.pid, True), edge
    assert edge["holder_fds"] == [int(listen_fd)]
    assert [c["path"] for c in data["chains"]] == [[client.pid, server.pid]]
    assert data["chains"][0]["end"]["kind"] == "sleeping"
    assert data["deadlock"] is False and data["exit"] == 0
    for proc in (client, server):
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_unix_connection_inside_another_network_namespace_is_followed(procs, run_cli, tmp_path) -> None:
    """Both ends accepted and in a namespace that is not waitchain's: the client's socket and
    its peer are found by sock_diag from inside it (before, "neither TCP nor a unix socket")."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("a new network namespace needs root, unshare(1) and nsenter(1)")
    path = str(tmp_path / "server.sock")
    server = _in_new_netns(procs, NS_SERVER, path, "accept")
    _ready(server)
    client = procs.spawn(["nsenter", f"--net=/proc/{server.pid}/ns/net", sys.executable, "-c", NS_CLIENT, path],
                         stdout=subprocess.PIPE)
    (_, conn_fd) = _ready(server)
    _ready(client)
    wait_blocked(client.pid, *RECV_CALLS)
    wait_blocked(server.pid, *SLEEP_CALLS)
    assert os.readlink(f"/proc/{client.pid}/ns/net") != os.readlink("/proc/self/ns/net")

    data = _json(run_cli, client.pid)

    (edge,) = edges_from(data, client.pid)
    assert (edge["kind"], edge["to"]["pid"], edge["unaccepted"]) == ("unix", server.pid, False), edge
    assert edge["holder_fds"] == [int(conn_fd)]
    assert "holds 8 B unread" in edge["evidence"], edge["evidence"]  # "request\n", never read
    assert [c["path"] for c in data["chains"]] == [[client.pid, server.pid]]
    assert data["deadlock"] is False and data["exit"] == 0
    for proc in (client, server):
        assert proc.stdout is not None
        proc.stdout.close()
