"""Servers holding a request on purpose (issue 9, item 5). A client waits on a server idle
in its event loop whose socket shows it read the request (nothing unread; for TCP, tcp_info
counts the bytes it received): "the server read the request and is holding it", advice
`held-request`, exit 0 (a BLPOP is not a deadlock). Real redis-server with redis-cli BLPOP
over a unix socket and over TCP; and the look-alikes that keep the old words: a request the
server never read ("the request never reached"), and a server-speaks-first connection on
which the client sent nothing (`no-reply`)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from typing import Any, Dict, List

import pytest
from scenario_helpers import edges_from
from test_false_alarms import free_loopback_port

from waitchain.demo.harness import wait_blocked, wait_until

RECV_CALLS = ("recvfrom", "recv", "recvmsg", "read")
EPOLL_CALLS = ("epoll_wait", "epoll_pwait", "epoll_pwait2")
HELD = ("the server read the request and is holding it (an application-level blocking call: BLPOP, "
        "a long poll, a lock)")


def _json(run_cli, pid: int) -> Dict[str, Any]:
    result = run_cli(str(pid), "--json", "--no-stacks")
    assert result.out, result.err
    data = json.loads(result.out)
    data["exit"] = result.code
    return data


# --- redis-server and redis-cli BLPOP -------------------------------------------------------


def _redis_or_skip() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are not installed")


def _start_redis(procs, tmp_path, where: List[str]) -> subprocess.Popen:
    """A private redis-server (no persistence) on `where` (a unix socket or a port), ready."""
    server = procs.spawn(["redis-server", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
                          "--daemonize", "no", *where], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert server.stdout is not None
    fd, log, deadline = server.stdout.fileno(), b"", time.monotonic() + 15.0
    while b"ready to accept connections" not in log.lower():
        left = deadline - time.monotonic()
        chunk = os.read(fd, 4096) if left > 0 and select.select([fd], [], [], left)[0] else b""
        if not chunk:
            pytest.fail(f"redis-server did not get ready (exit {server.poll()}):\n{log.decode(errors='replace')}")
        log += chunk
    return server


def _blpop_blocked(cli: List[str], server: subprocess.Popen) -> bool:
    """The server has parsed the BLPOP: CLIENT LIST shows it blocked (flags=b)."""
    listed = subprocess.run(cli + ["CLIENT", "LIST"], capture_output=True, text=True, timeout=10).stdout
    return any("cmd=blpop" in line and "flags=b" in line for line in listed.splitlines())


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_redis_cli_blpop_is_a_request_the_server_holds(procs, run_cli, tmp_path, transport) -> None:
    _redis_or_skip()
    if transport == "unix":
        sock = str(tmp_path / "redis.sock")
        server = _start_redis(procs, tmp_path, ["--port", "0", "--unixsocket", sock])
        cli = ["redis-cli", "-s", sock]
    else:
        port = free_loopback_port()
        server = _start_redis(procs, tmp_path, ["--port", str(port), "--bind", "127.0.0.1"])
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    try:
        client = procs.spawn(cli + ["BLPOP", "somekey", "0"], stdout=subprocess.DEVNULL)
        wait_until(lambda: _blpop_blocked(cli, server), "redis-server holds the BLPOP")
        wait_blocked(client.pid, *RECV_CALLS)
        wait_blocked(server.pid, *EPOLL_CALLS)

        data = _json(run_cli, client.pid)

        (edge,) = edges_from(data, client.pid)
        assert (edge["kind"], edge["to"]["pid"], edge["unaccepted"]) == (transport, server.pid, False), edge
        assert [c["path"] for c in data["chains"]][0] == [client.pid, server.pid]
        verdict = data["verdicts"][0]
        assert verdict["advice"] == "held-request", verdict
        assert HELD in verdict["headline"], verdict["headline"]
        assert data["deadlock"] is False and data["exit"] == 0
        text = run_cli(str(client.pid), "--no-stacks")
        assert HELD in text.out and "never reached" not in text.out and text.code == 0, text.out
    finally:
        assert server.stdout is not None
        server.stdout.close()


# --- the look-alikes: a request still unread, a client that sent nothing ---------------------

NEVER_READS = """
listener = socket.create_server(("127.0.0.1", 0))
ready("listening", listener.getsockname()[1])
conn, _ = listener.accept()  # accepted, and never read
ready("accepted")
listener.accept()
"""

CLIENT = """
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
if sys.argv[2]:
    s.sendall(sys.argv[2].encode())
ready("sent")
s.recv(100)
"""

GREETS_FIRST = """
import asyncio

async def handle(reader, writer):
    ready("connected")
    await reader.read(100)  # a server that speaks first would greet; this one waits

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready("serving", server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_request_the_server_never_read_keeps_never_reached(run_py, run_cli) -> None:
    server = run_py(NEVER_READS)
    ((_, _, port),) = server.ready()
    client = run_py(CLIENT, port, "GET / HTTP/1.0\r\n\r\n")
    client.ready()
    server.ready()
    wait_blocked(client.pid, *RECV_CALLS)
    wait_blocked(server.pid, "accept", "accept4")

    data = _json(run_cli, client.pid)

    (edge,) = edges_from(data, client.pid)
    assert (edge["kind"], edge["to"]["pid"]) == ("tcp", server.pid), edge
    assert "holds 18 B unread" in edge["evidence"], edge["evidence"]
    verdict = data["verdicts"][0]
    assert verdict["advice"] == "idle-server", verdict
    assert data["deadlock"] is False and data["exit"] == 0
    text = run_cli(str(client.pid), "--no-stacks")
    assert "the request never reached" in text.out and HELD not in text.out, text.out


def test_a_client_that_sent_nothing_to_an_event_loop_is_no_reply(run_py, run_cli) -> None:
    """Nothing unread, but nothing received either (tcp_info): no request was read."""
    server = run_py(GREETS_FIRST)
    ((_, _, port),) = server.ready()
    client = run_py(CLIENT, port, "")
    client.ready()
    server.ready()
    wait_blocked(client.pid, *RECV_CALLS)
    wait_blocked(server.pid, *EPOLL_CALLS)

    data = _json(run_cli, client.pid)

    (edge,) = edges_from(data, client.pid)
    assert (edge["kind"], edge["to"]["pid"]) == ("tcp", server.pid), edge
    assert "holds 0 B unread, received 0 B in all" in edge["evidence"], edge["evidence"]
    verdict = data["verdicts"][0]
    assert verdict["advice"] == "no-reply", verdict
    assert data["deadlock"] is False and data["exit"] == 0
