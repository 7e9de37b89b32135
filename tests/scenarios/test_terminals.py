"""Terminals, with util-linux `script` (a pty relay like ssh and tmux): a program reading
its pty slave waits for the input the master's holder relays from its own input, never
for the output direction (the relay reading the master waits for that very program: a
false cycle through `script` and a pager). When the relay's input is a person's terminal,
the chain ends there: "waits for someone to type at /dev/pts/N".

The person's terminal is a pty whose master no process holds in its fd table: it is in
flight in a unix socket (SCM_RIGHTS), as a terminal outside the scan is (sshd in another
container, a console), and the slave reads block as at a terminal nobody types into."""

from __future__ import annotations

import array
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

import pytest
from scenario_helpers import edges_from, only_chain
from test_false_alarms import free_loopback_port

from waitchain.demo.harness import children, wait_blocked, wait_child, wait_until

SCRIPT = shutil.which("script")
pytestmark = pytest.mark.skipif(SCRIPT is None, reason="util-linux script is not installed")


class Terminal(NamedTuple):
    slave: int  # our copy of the slave fd: give it to the program, then close it
    path: str  # /dev/pts/N
    sockets: Tuple[socket.socket, socket.socket]  # the master is in flight between them


@pytest.fixture
def person() -> Iterator[Terminal]:
    """A terminal nobody in the scan relays to (its master only in a unix socket's queue)."""
    master, slave = os.openpty()
    pair = socket.socketpair(socket.AF_UNIX)
    try:
        pair[0].sendmsg([b"m"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    finally:
        os.close(master)
    terminal = Terminal(slave, os.ttyname(slave), pair)
    try:
        yield terminal
    finally:
        for sock in pair:
            sock.close()
        try:
            os.close(slave)
        except OSError:
            pass


def start_script(procs, command: str, stdin: Any) -> subprocess.Popen:
    """`script -q -c COMMAND /dev/null` on stdin, its output to nowhere."""
    env = dict(os.environ, SHELL="/bin/sh", TERM="xterm")
    env.pop("LESS", None)
    return procs.spawn([SCRIPT, "-q", "-c", command, "/dev/null"], stdin=stdin,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def pty_index(pid: int, fd: int) -> int:
    target = os.readlink(f"/proc/{pid}/fd/{fd}")
    assert target.startswith("/dev/pts/"), target
    return int(target[len("/dev/pts/"):])


def pty_edge(data: Dict[str, Any], waiter: int, holder: int) -> Dict[str, Any]:
    found = [e for e in edges_from(data, waiter) if e["to"]["pid"] == holder]
    assert len(found) == 1 and found[0]["kind"] == "pty", edges_from(data, waiter)
    return found[0]


def assert_types_at(data: Dict[str, Any], chain: Dict[str, Any], relay: int, terminal: str) -> None:
    end = chain["end"]
    assert (end["kind"], end["reason"], end["pid"], end["subject"]) == ("terminal", "terminal-input", relay,
                                                                        terminal), chain
    assert end["detail"].startswith("fd ") and f"<{terminal}>: waits for someone to type at {terminal} " in end["detail"], end
    assert data["deadlock"] is False and not any(c["deadlock"] for c in data["cycles"]), data["cycles"]
    assert [v["class"] for v in data["verdicts"]] == ["chain-end"], data["verdicts"]
    assert data["verdicts"][0]["advice"] == "terminal", data["verdicts"][0]
    assert data["root_cause"]["pid"] == relay


def test_cat_in_script_waits_for_someone_to_type_at_scripts_terminal(procs, person, run_cli, diagnose_pid) -> None:
    script = start_script(procs, "exec cat", person.slave)
    os.close(person.slave)
    cat = wait_child(script.pid)
    wait_blocked(cat, "read")
    wait_blocked(script.pid, "poll")
    data, code = diagnose_pid(cat)
    assert code == 0, data
    chain = only_chain(data)
    assert chain["path"] == [cat, script.pid]
    edge = pty_edge(data, cat, script.pid)
    assert edge["pty"] == {"side": "slave", "index": pty_index(cat, 0)} and edge["fd"] == 0
    assert_types_at(data, chain, script.pid, person.path)
    text = run_cli(str(cat), "--no-stacks")
    assert text.code == 0 and f"waits for someone to type at {person.path} " in text.out, text.out
    assert f"do now:     it waits for someone to type at {person.path}: answer it there, or kill {script.pid}" \
        in text.out, text.out


def test_a_pager_in_script_is_no_cycle(procs, person, run_cli, diagnose_pid, tmp_path) -> None:
    """less reads /dev/tty (its pty slave) while script polls the master for its output:
    following the master back to less made a false cycle. From less, from script and over
    the whole system: no cycle, nothing stuck, exit 0."""
    text = tmp_path / "long.txt"
    text.write_text("".join(f"line {n}\n" for n in range(2000)))
    script = start_script(procs, f"exec less {text}", person.slave)
    os.close(person.slave)
    less = wait_child(script.pid)
    wait_blocked(less, "read")
    wait_blocked(script.pid, "poll")
    data, code = diagnose_pid(less)
    assert code == 0, data
    chain = only_chain(data)
    assert chain["path"] == [less, script.pid]
    tty_fd = pty_edge(data, less, script.pid)["fd"]
    assert os.readlink(f"/proc/{less}/fd/{tty_fd}") == f"/dev/pts/{pty_index(less, tty_fd)}"
    assert_types_at(data, chain, script.pid, person.path)
    data, code = diagnose_pid(script.pid)
    assert code == 0 and only_chain(data)["path"] == [script.pid], data["chains"]
    assert_types_at(data, only_chain(data), script.pid, person.path)
    everything = run_cli("--all", "--json", "--no-stacks")
    verdicts = json.loads(everything.out)["verdicts"]
    assert not [v for v in verdicts if {less, script.pid} & set(v["members"])], verdicts


def test_nested_scripts_wait_for_the_outer_ones_terminal(procs, person, run_cli, diagnose_pid) -> None:
    """cat in script in script: the inner script relays its own terminal (the outer's pty),
    whose input the outer relays from the person's terminal."""
    outer = start_script(procs, f"exec {SCRIPT} -q -c 'exec cat' /dev/null", person.slave)
    os.close(person.slave)
    inner = wait_child(outer.pid)
    cat = wait_child(inner)
    wait_blocked(cat, "read")
    for relay in (inner, outer.pid):
        wait_blocked(relay, "poll")
    data, code = diagnose_pid(cat)
    assert code == 0, data
    chain = only_chain(data)
    assert chain["path"] == [cat, inner, outer.pid]
    assert pty_edge(data, cat, inner)["pty"] == {"side": "slave", "index": pty_index(cat, 0)}
    relayed = pty_edge(data, inner, outer.pid)
    assert relayed["pty"] == {"side": "slave", "index": pty_index(inner, 0)} and relayed["fd"] == 0
    assert relayed["alternative"]["count"] == 3 and relayed["alternative"]["watched"] == f"/dev/pts/{pty_index(inner, 0)}"
    assert_types_at(data, chain, outer.pid, person.path)


def test_script_reading_a_pipe_waits_for_the_pipes_writer(procs, run_cli, diagnose_pid) -> None:
    """The relay's input is a pipe: the chain goes on to its writer (asleep)."""
    r, w = os.pipe()
    writer = procs.spawn([sys.executable, "-c", "import time\nwhile True: time.sleep(3600)"], pass_fds=(w,))
    script = start_script(procs, "exec cat", r)
    os.close(r)
    os.close(w)
    cat = wait_child(script.pid)
    wait_blocked(cat, "read")
    wait_blocked(script.pid, "poll")
    wait_blocked(writer.pid, "clock_nanosleep", "select", "pselect6")
    data, code = diagnose_pid(cat)
    assert code == 0, data
    chain = only_chain(data)
    assert chain["path"] == [cat, script.pid, writer.pid]
    assert chain["end"]["kind"] == "sleeping", chain
    (to_writer,) = edges_from(data, script.pid) and [e for e in edges_from(data, script.pid)
                                                     if e["to"]["pid"] == writer.pid]
    assert to_writer["kind"] == "pipe" and to_writer["fd"] == 0
    assert data["deadlock"] is False and data["verdicts"][0]["advice"] == "sleeping"


def test_a_program_in_tmux_with_a_client_attached_waits_for_typing_at_the_clients_terminal(
        procs, person, run_cli, diagnose_pid, tmp_path) -> None:
    """The tmux server reads an attached client's terminal itself (the client passes it its
    tty): the reader in the window waits for someone to type there."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed (.ci/run installs it: apt-get install tmux)")
    base = [tmux, "-S", str(tmp_path / "tmux.sock"), "-f", "/dev/null"]

    def ask(*words: str) -> List[str]:
        return subprocess.run(base + list(words), check=True, timeout=15, capture_output=True,
                              text=True).stdout.split()

    try:
        subprocess.run(base + ["new-session", "-d", "-s", "t", "cat"], check=True, timeout=15)
        client = procs.spawn(base + ["attach", "-t", "t"], stdin=person.slave, stdout=person.slave,
                             stderr=person.slave, env=dict(os.environ, TERM="xterm"))
        os.close(person.slave)
        wait_until(lambda: len(ask("list-clients")) > 0, "the client is attached")
        server, reader = int(ask("display-message", "-p", "#{pid}")[0]), int(ask("list-panes", "-F", "#{pane_pid}")[0])
        wait_blocked(reader, "read")
        wait_blocked(server, "poll")
        data, code = diagnose_pid(reader)
        assert code == 0 and data["deadlock"] is False, data
        assert [c["path"] for c in data["chains"]] == [[reader, server]], data["chains"]
        assert pty_edge(data, reader, server)["pty"] == {"side": "slave", "index": pty_index(reader, 0)}
        assert data["verdicts"][0]["advice"] == "pty-input" and data["root_cause"]["pid"] == reader
        assert client.pid not in {p for c in data["chains"] for p in c["path"]}
        text = run_cli(str(reader), "--no-stacks").out
        assert f"do now:     type at {person.path} (the terminal {server} tmux reads its input from), " \
               f"or kill {reader}" in text, text
    finally:
        subprocess.run(base + ["kill-server"], timeout=15, capture_output=True)


def test_a_program_in_an_ssh_session_waits_for_typing_at_the_ssh_clients_terminal(
        procs, person, run_cli, diagnose_pid, tmp_path) -> None:
    """cat in an ssh session reads its pty, whose master sshd holds; sshd relays what comes on
    the connection, which the ssh client (here on this host) reads from its own terminal."""
    sshd, ssh, keygen = (shutil.which(n) or shutil.which(n, path="/usr/sbin") for n in ("sshd", "ssh", "ssh-keygen"))
    if sshd is None or ssh is None or keygen is None or os.geteuid() != 0:
        pytest.skip("needs OpenSSH's sshd, ssh and ssh-keygen, and root (apt-get install openssh-server)")
    for key in ("host", "user"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / key)], check=True, timeout=30)
    port = free_loopback_port()
    config = tmp_path / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path / 'host'}\n"
                      f"AuthorizedKeysFile {tmp_path / 'user.pub'}\nPidFile none\nUsePAM no\nStrictModes no\n"
                      "PermitRootLogin yes\n")
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege separation directory
    server = procs.spawn([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    wait_until(lambda: listening(port), "sshd listens")
    client = procs.spawn([ssh, "-tt", "-p", str(port), "-i", str(tmp_path / "user"), "-o", "BatchMode=yes",
                          "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                          "root@127.0.0.1", "exec cat"], stdin=person.slave, stdout=person.slave,
                         stderr=subprocess.DEVNULL)
    os.close(person.slave)
    try:
        wait_until(lambda: bool(logged_in(server.pid)), "the ssh session runs cat", timeout=60)
        session, cat = logged_in(server.pid)[0]
        wait_blocked(cat, "read")
        wait_blocked(session, "ppoll", "poll", "select", "pselect6")
        wait_blocked(client.pid, "poll", "ppoll", "select", "pselect6")
        data, code = diagnose_pid(cat)
        assert code == 0, data
        chain = only_chain(data)
        assert chain["path"] == [cat, session, client.pid], data["chains"]
        assert pty_edge(data, cat, session)["pty"] == {"side": "slave", "index": pty_index(cat, 0)}
        (over,) = [e for e in edges_from(data, session) if e["to"]["pid"] == client.pid]
        assert over["kind"] == "tcp" and over["alternative"] is not None
        assert_types_at(data, chain, client.pid, person.path)
    finally:  # the session is in a session of its own: not one procs kills
        for session, cat in logged_in(server.pid):
            for pid in (cat, session):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def logged_in(listener: int) -> List[Tuple[int, int]]:
    """(session process, its cat) of each ssh session of the listener that runs cat."""
    found = []
    for session in children(listener):
        found += [(session, kid) for kid in children(session) if comm(kid) == "cat"]
    return found


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
