"""Other hosts: two "hosts" on this machine, each with its own network, pid, mount and UTS
namespaces (own /proc, own hostname), joined by a veth pair. waitchain runs inside host A,
where B's processes are invisible, and goes on to B with --remote through a real sshd on
B's address (a generated host key, a key authorised for the test only). Also: a ring of
waits across the two hosts (a deadlock: exit 1), an unreachable host (the chain ends with
the reason and the command, within the deadline), --socket as a start point."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List

import pytest

import waitchain
from waitchain.demo.harness import wait_blocked, wait_until

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hosts import SLEEP_CALLS, Host, enter, link, spawn_in, start_host, stop_all, unlink  # noqa: E402

RECV_CALLS = ("recvfrom", "read", "recvmsg")
WAIT_CALLS = ("wait4", "waitid")
PORT = 7070
# What imports the waitchain under test, for its runs in the hosts (their cwd is not ours) and
# over ssh (which passes no environment).
HERE = os.path.dirname(os.path.dirname(os.path.abspath(waitchain.__file__)))

SERVER = """
import os, socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(1)
ready("listening")
conn, _ = srv.accept()
child = os.fork()
if child == 0:
    conn.close()
    sleep_forever()
ready("accepted", child)
os.waitpid(child, 0)
"""

CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"request\\n")
ready("sent", s.getsockname()[1])
s.recv(100)
"""

# A ring across the hosts: A's program listens, connects to B and accepts B's connection back
# before it reads B's answer; B's server accepts, connects back to A and reads A's answer.
RING_A = """
import socket, sys
back = socket.socket()
back.bind((sys.argv[1], int(sys.argv[3])))
back.listen(1)
ready("listening")
s = socket.create_connection((sys.argv[2], int(sys.argv[3])))
conn, _ = back.accept()
ready("connected")
s.recv(100)
"""

RING_B = """
import socket, sys
srv = socket.socket()
srv.bind((sys.argv[2], int(sys.argv[3])))
srv.listen(1)
ready("listening")
conn, _ = srv.accept()
back = socket.create_connection((sys.argv[1], int(sys.argv[3])))
ready("connected")
back.recv(100)
"""


def _tools() -> Dict[str, str]:
    found = {n: shutil.which(n) or shutil.which(n, path="/usr/sbin") for n in ("sshd", "ssh", "ssh-keygen")}
    if not all(found.values()) or os.geteuid() != 0:
        pytest.skip("needs OpenSSH's sshd, ssh and ssh-keygen, and root (apt-get install openssh-server)")
    return {k: str(v) for k, v in found.items()}


class Pair:
    def __init__(self, a: Host, b: Host, addrs: tuple) -> None:
        self.a, self.b, self.addrs = a, b, addrs


@pytest.fixture
def pair(procs):
    a, b = start_host(procs, "wchosta"), start_host(procs, "wchostb")
    try:
        lnk = link(a, b, "R", 78)
        yield Pair(a, b, lnk.addrs)
        unlink(a, lnk)
    finally:
        stop_all(procs)


def _sshd(procs, tools: Dict[str, str], host: Host, address: str, tmp_path) -> str:
    """A throwaway sshd inside `host` on `address`; the ssh command template to reach it."""
    for key in ("host", "user"):
        subprocess.run([tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / key)],
                       check=True, timeout=30)
    config = tmp_path / "sshd_config"
    config.write_text(f"Port 22\nListenAddress {address}\nHostKey {tmp_path / 'host'}\n"
                      f"AuthorizedKeysFile {tmp_path / 'user.pub'}\nPidFile none\nUsePAM no\nStrictModes no\n"
                      "PermitRootLogin prohibit-password\n")
    os.makedirs("/run/sshd", exist_ok=True)
    procs.spawn(enter(host, [tools["sshd"], "-D", "-e", "-f", str(config)]), stderr=subprocess.DEVNULL)
    probe = f"import socket; socket.create_connection(({address!r}, 22), timeout=1).close()"
    wait_until(lambda: subprocess.run(enter(host, [sys.executable, "-c", probe]), capture_output=True,
                                      timeout=15).returncode == 0, "sshd listens", 20.0)
    return (f"{tools['ssh']} -i {tmp_path / 'user'} -o BatchMode=yes -o StrictHostKeyChecking=no "
            f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5 root@{{host}} "
            + shlex.join(_command()))


def _command(*argv: str) -> List[str]:
    return ["env", f"PYTHONPATH={HERE}", sys.executable, "-m", "waitchain", *argv]


def _waitchain(procs, host: Host, *argv: str, timeout: float = 90.0) -> Dict[str, Any]:
    """waitchain run inside `host`; its JSON with its exit code."""
    run = procs.spawn(enter(host, _command(*argv, "--json")),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = run.communicate(timeout=timeout)
    assert out, err.decode()
    data = json.loads(out)
    data["exit"] = run.returncode
    data["stderr"] = err.decode()
    return data


def _path(across: Dict[str, Any]) -> List[tuple]:
    return [(h["host"], h["pid"]) for h in across["path"]]


def test_remote_follows_the_chain_through_ssh_onto_the_other_host(procs, pair, tmp_path) -> None:
    """A client on host A reads from a server on host B that waits for its sleeping child:
    waitchain in A (B's processes are invisible there) goes on over ssh and gives the whole
    chain, hosts named, with B's pids as B sees them."""
    tools = _tools()
    template = _sshd(procs, tools, pair.b, pair.addrs[1], tmp_path)
    server = spawn_in(procs, pair.b, SERVER, pair.addrs[1], str(PORT))
    assert server.ready()[1] == "listening"
    client = spawn_in(procs, pair.a, CLIENT, pair.addrs[1], str(PORT))
    client_inside, _, client_port = client.ready()
    server_inside, _, child_inside = server.ready()
    wait_blocked(client.pid, *RECV_CALLS)
    wait_blocked(server.pid, *WAIT_CALLS)

    data = _waitchain(procs, pair.a, client_inside, "--remote", "--remote-cmd", template, "--no-stacks")

    assert data["exit"] == 0, data["stderr"]
    (across,) = data["across"]
    assert _path(across) == [("wchosta", int(client_inside)), ("wchostb", int(server_inside)),
                             ("wchostb", int(child_inside))], across
    crossing = across["path"][1]
    assert (crossing["local"], crossing["remote"]) == ({"host": pair.addrs[0], "port": int(client_port)},
                                                       {"host": pair.addrs[1], "port": PORT})
    assert across["path"][2]["label"] == "waits for its child"
    assert (across["end"]["kind"], across["end"]["host"], across["end"]["pid"]) == ("sleeping", "wchostb",
                                                                                    int(child_inside))
    assert across["deadlock"] is False
    (asked,) = data["remote"]
    assert (asked["address"], asked["host"], asked["error"]) == (pair.addrs[1], "wchostb", None)
    assert asked["command"][-4:] == ["--socket", f"{pair.addrs[1]}:{PORT}-{pair.addrs[0]}:{client_port}",
                                     "--json", "--no-stacks"]
    assert "root@" + pair.addrs[1] in asked["command"]
    assert asked["document"]["starts"] == [int(server_inside)]
    # the local part as before: the chain ends at the remote peer, named with its host
    (chain,) = data["chains"]
    assert (chain["end"]["kind"], chain["end"]["host"]) == ("remote", "wchosta")

    text = subprocess.run(enter(pair.a, _command(client_inside, "--remote", "--remote-cmd", template, "--no-stacks")),
                          capture_output=True, timeout=90, text=True)
    assert f"over TCP {pair.addrs[0]}:{client_port} → {pair.addrs[1]}:{PORT}, on to wchostb" in text.stdout, text
    assert "END sleeping on wchostb" in text.stdout, text.stdout
    for prog in (server, client):
        prog.close()


def test_a_ring_of_waits_across_two_hosts_is_a_deadlock(procs, pair, tmp_path) -> None:
    """A waits for B over one connection, B for A over another: exit 1, the ring named."""
    tools = _tools()
    template = _sshd(procs, tools, pair.b, pair.addrs[1], tmp_path)
    port = PORT + 1
    b = spawn_in(procs, pair.b, RING_B, *pair.addrs, str(port))
    assert b.ready()[1] == "listening"
    a = spawn_in(procs, pair.a, RING_A, *pair.addrs, str(port))
    a_inside = a.ready()[0]
    assert a.ready()[1] == "connected"
    b_inside = b.ready()[0]
    wait_blocked(a.pid, *RECV_CALLS)
    wait_blocked(b.pid, *RECV_CALLS)

    data = _waitchain(procs, pair.a, a_inside, "--remote", "--remote-cmd", template, "--no-stacks")

    assert data["exit"] == 1, data["stderr"]
    assert data["deadlock"] is True
    (across,) = data["across"]
    assert _path(across) == [("wchosta", int(a_inside)), ("wchostb", int(b_inside)), ("wchosta", int(a_inside))]
    assert (across["deadlock"], across["ring"], across["end"]["kind"]) == (True, 0, "cycle")
    assert len(data["remote"]) == 1  # the way back was found on this host, not asked over ssh
    for prog in (a, b):
        prog.close()


def test_an_unreachable_host_ends_the_chain_with_the_reason_and_the_command(procs, pair) -> None:
    """No sshd on B: ssh is refused; the chain ends there with ssh's reason and the command,
    well within the deadline; the exit code is the local verdict's."""
    _tools()
    server = spawn_in(procs, pair.b, SERVER, pair.addrs[1], str(PORT))
    server.ready()
    client = spawn_in(procs, pair.a, CLIENT, pair.addrs[1], str(PORT))
    client_inside = client.ready()[0]
    wait_blocked(client.pid, *RECV_CALLS)

    started = time.monotonic()
    data = _waitchain(procs, pair.a, client_inside, "--remote", "--no-stacks", "--remote-timeout", "20")
    took = time.monotonic() - started

    assert data["exit"] == 0, data["stderr"]
    (across,) = data["across"]
    assert _path(across) == [("wchosta", int(client_inside))]
    end = across["end"]
    assert end["kind"] == "remote" and "ssh could not connect or log in (exit status 255" in end["error"], end
    assert end["command"][:5] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    assert end["command"][5] == pair.addrs[1] and end["command"][6] == "waitchain"
    (asked,) = data["remote"]
    assert asked["document"] is None and asked["host"] is None
    assert took < 20
    for prog in (server, client):
        prog.close()


def test_socket_names_who_holds_a_connection(procs, run_cli) -> None:
    """--socket on this host: the server side of a loopback connection is held by the server,
    whose chain goes on to its child; an unknown connection is exit 3."""
    server = spawn_in(procs, None, SERVER, "127.0.0.1", "0")
    server.ready()
    port = _listening_port(server.pid)
    client = spawn_in(procs, None, CLIENT, "127.0.0.1", str(port))
    _, _, client_port = client.ready()
    _, _, child = server.ready()
    wait_blocked(server.pid, *WAIT_CALLS)
    wait_blocked(int(child), *SLEEP_CALLS)  # asleep, so it has closed its copy of the connection

    result = run_cli("--socket", f"127.0.0.1:{port}-127.0.0.1:{client_port}", "--json", "--no-stacks")

    data = json.loads(result.out)
    assert data["starts"] == [server.pid]
    assert [c["path"] for c in data["chains"]] == [[server.pid, int(child)]]
    assert result.code == 0
    missing = run_cli("--socket", f"127.0.0.1:{port}-127.0.0.1:1", "--json")
    assert missing.code == 3 and "no process on this host holds the TCP connection" in missing.err
    with pytest.raises(SystemExit) as bad:  # argparse's usage error
        run_cli("--socket", "127.0.0.1-5", "--json")
    assert bad.value.code == 2
    for prog in (server, client):
        prog.close()


def _listening_port(pid: int) -> int:
    from waitchain.procfs.net import parse_tcp
    with open(f"/proc/{pid}/net/tcp") as f:
        table = parse_tcp(f.read())
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    (port,) = {s.local[1] for s in table if s.state == "LISTEN" and f"socket:[{s.inode}]" in inodes}
    return port


def _all(procs, host: Host, tmp_path, name: str) -> str:
    """waitchain --all --json run inside `host`, written to a file as a fleet would collect it."""
    data = _waitchain(procs, host, "--all", "--min-blocked", "0", "--no-stacks")
    assert data["exit"] in (0, 1), data["stderr"]
    for key in ("exit", "stderr"):
        del data[key]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def _merge(run_cli, *paths: str) -> Dict[str, Any]:
    result = run_cli("merge", *paths, "--json")
    assert result.out, result.err
    data = json.loads(result.out)
    data["exit"] = result.code
    return data


def test_merge_of_each_hosts_all_documents_gives_the_chain_across_hosts(procs, pair, tmp_path, run_cli) -> None:
    """`waitchain --all --json` on each host, collected separately, merged by the connection's
    4-tuple: the same chain as --remote gives (client on A, server and child on B)."""
    server = spawn_in(procs, pair.b, SERVER, pair.addrs[1], str(PORT))
    server.ready()
    client = spawn_in(procs, pair.a, CLIENT, pair.addrs[1], str(PORT))
    client_inside, _, client_port = client.ready()
    server_inside, _, child_inside = server.ready()
    wait_blocked(client.pid, *RECV_CALLS)
    wait_blocked(server.pid, *WAIT_CALLS)

    data = _merge(run_cli, _all(procs, pair.a, tmp_path, "a"), _all(procs, pair.b, tmp_path, "b"))

    assert data["exit"] == 0
    (across,) = data["across"]
    assert _path(across) == [("wchosta", int(client_inside)), ("wchostb", int(server_inside)),
                             ("wchostb", int(child_inside))], across
    assert (across["path"][1]["local"], across["path"][1]["remote"]) == (
        {"host": pair.addrs[0], "port": int(client_port)}, {"host": pair.addrs[1], "port": PORT})
    assert (across["end"]["kind"], across["end"]["host"], across["deadlock"]) == ("sleeping", "wchostb", False)
    assert [r["host"] for r in data["remote"]] == ["wchosta", "wchostb"]
    text = run_cli("merge", str(tmp_path / "a.json"), str(tmp_path / "b.json")).out
    assert "on to wchostb" in text and "END sleeping on wchostb" in text, text
    for prog in (server, client):
        prog.close()


def test_merge_finds_a_deadlock_across_hosts(procs, pair, tmp_path, run_cli) -> None:
    """The ring of waits over two connections, from the two hosts' --all documents: one
    deadlock (found from either side, reported once), exit 1; each document alone has none."""
    port = PORT + 2
    b = spawn_in(procs, pair.b, RING_B, *pair.addrs, str(port))
    b.ready()
    a = spawn_in(procs, pair.a, RING_A, *pair.addrs, str(port))
    a_inside = a.ready()[0]
    a.ready()
    b_inside = b.ready()[0]
    wait_blocked(a.pid, *RECV_CALLS)
    wait_blocked(b.pid, *RECV_CALLS)
    docs = _all(procs, pair.a, tmp_path, "a"), _all(procs, pair.b, tmp_path, "b")

    data = _merge(run_cli, *docs)

    assert data["exit"] == 1 and data["deadlock"] is True
    (across,) = data["across"]
    assert (across["deadlock"], across["end"]["kind"]) == (True, "cycle")
    assert set(_path(across)) == {("wchosta", int(a_inside)), ("wchostb", int(b_inside))}
    for one in docs:
        alone = _merge(run_cli, one)
        assert alone["exit"] == 0 and alone["across"][0]["deadlock"] is False
        assert "no document holds the other end" in alone["across"][0]["end"]["error"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = run_cli("merge", str(bad))
    assert result.code == 2 and "not a waitchain/1 document" in result.err
    for prog in (a, b):
        prog.close()
