"""Real processes in real blocked states; the exact chain waitchain reports for them."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import uuid
from typing import Any, Dict, Set, Tuple

import pytest
from scenario_helpers import (F_GETPIPE_SZ, READER, SLEEPER, close, edges_from, only_chain,
                              spawn_with, threads_of)

from waitchain import cli
from waitchain.demo import scenario
from waitchain.demo.harness import children, wait_blocked
from waitchain.engine import diagnose
from waitchain.render import json as render_json
from waitchain.render import labels
from waitchain.snapshot import Snapshot

RECEIVER = """
fd = int(sys.argv[1])
sock = socket.socket(fileno=fd)
ready("receiving", fd)
sock.recv(1)
"""


# --- helpers over the JSON ---------------------------------------------------------------


def edge_set(data: Dict[str, Any]) -> Set[Tuple[int, int, str]]:
    return {(e["from"]["pid"], e["to"]["pid"], e["kind"]) for e in data["edges"]}


def pipe_inode(fd: int) -> int:
    return os.fstat(fd).st_ino


# --- 1. the demo ---------------------------------------------------------------------------


def test_demo_deadlock(procs, diagnose_pid) -> None:
    pids = scenario.start(procs)
    w, c, s, ch = pids.wrapper, pids.client, pids.server, pids.child
    data, code = diagnose_pid(w)

    assert code == 1
    assert data["schema"] == "waitchain/1"
    chain = only_chain(data)
    assert chain["start"] == w
    assert chain["path"] == [w, c, s, ch]
    assert chain["end"]["kind"] == "cycle"
    assert chain["end"]["pid"] == s
    assert edge_set(data) == {(w, c, "pipe"), (c, s, "tcp"), (s, ch, "child"), (ch, s, "pipe")}
    assert len(data["cycles"]) == 1
    assert set(data["cycles"][0]["pids"]) == {s, ch}
    assert data["cycles"][0]["deadlock"] is True
    assert data["deadlock"] is True
    cause = data["root_cause"]
    assert cause["pid"] == s and cause["tid"] == s
    assert cause["syscall"] == "wait4"
    back = edges_from(data, ch)[0]
    assert back["object"].startswith("pipe:[") and "reader is %d" % s in back["label"]


def test_demo_found_by_all(procs, run_cli) -> None:
    """--all starts the chain where nobody waits for it: at the wrapper."""
    pids = scenario.start(procs)
    result = run_cli("--all", "--json", "--no-stacks")
    assert result.code == 1, result.err
    data = json.loads(result.out)
    ours = [c for c in data["chains"] if c["start"] == pids.wrapper]
    assert [c["path"] for c in ours] == [[pids.wrapper, pids.client, pids.server, pids.child]]
    assert ours[0]["end"]["kind"] == "cycle" and ours[0]["end"]["pid"] == pids.server
    assert {pids.server, pids.child} in [set(c["pids"]) for c in data["cycles"] if c["deadlock"]]
    assert not [c for c in data["chains"] if c["start"] in (pids.client, pids.server, pids.child)]


def test_demo_command() -> None:
    run = subprocess.run([sys.executable, "-m", "waitchain", "demo", "--no-stacks"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert run.returncode == 1, run.stderr.decode()
    assert "DEADLOCK" in run.stdout.decode()
    assert b"Traceback" not in run.stderr


# --- 2. pipes ------------------------------------------------------------------------------


def test_pipe_reader_of_sleeping_writer(run_py, diagnose_pid, wait_sleeping) -> None:
    r, w = os.pipe()
    ino = pipe_inode(r)
    reader = spawn_with(run_py, READER, [r])
    writer = run_py(SLEEPER, pass_fds=[w])
    close(r, w)
    reader.ready(), writer.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(writer.pid)

    data, code = diagnose_pid(reader.pid)

    assert code == 0
    chain = only_chain(data)
    assert chain["path"] == [reader.pid, writer.pid]
    assert chain["end"]["kind"] == "sleeping"
    assert chain["end"]["pid"] == writer.pid
    assert data["cycles"] == []
    assert data["deadlock"] is False
    (edge,) = data["edges"]
    assert (edge["from"]["pid"], edge["to"]["pid"], edge["kind"]) == (reader.pid, writer.pid, "pipe")
    assert edge["object"] == f"pipe:[{ino}]"
    assert data["root_cause"]["pid"] == writer.pid


def test_writer_on_full_pipe_of_sleeping_reader(run_py, diagnose_pid, wait_sleeping) -> None:
    r, w = os.pipe()
    size = fcntl.fcntl(w, F_GETPIPE_SZ)
    writer = spawn_with(run_py, """
        fd = int(sys.argv[1])
        ready("writing", fd)
        os.write(fd, b"x" * (4 * %d))
        """ % size, [w])
    reader = run_py(SLEEPER, pass_fds=[r])
    close(r, w)
    writer.ready(), reader.ready()
    wait_blocked(writer.pid, "write")
    wait_sleeping(reader.pid)

    data, code = diagnose_pid(writer.pid)

    assert code == 0
    chain = only_chain(data)
    assert chain["path"] == [writer.pid, reader.pid]
    assert chain["end"]["kind"] == "sleeping"
    (edge,) = data["edges"]
    assert (edge["from"]["pid"], edge["to"]["pid"], edge["kind"]) == (writer.pid, reader.pid, "pipe")
    assert edge["label"] == f"pipe full {labels.size(size)}/{labels.size(size)}; reader is {reader.pid}"
    assert edge["fill"] == {"used": size, "size": size}
    assert data["cycles"] == []


def test_fifo_reader_of_sleeping_writer(run_py, diagnose_pid, wait_sleeping, tmp_path) -> None:
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    reader = run_py("""
        fd = os.open(sys.argv[1], os.O_RDONLY)
        ready("reading", fd)
        os.read(fd, 1)
        """, fifo)
    writer = run_py("""
        fd = os.open(sys.argv[1], os.O_WRONLY)
        ready("writing", fd)
        sleep_forever()
        """, fifo)
    reader.ready(), writer.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(writer.pid)

    data, code = diagnose_pid(reader.pid)

    assert code == 0
    assert only_chain(data)["path"] == [reader.pid, writer.pid]
    assert only_chain(data)["end"]["kind"] == "sleeping"
    (edge,) = data["edges"]
    assert (edge["to"]["pid"], edge["kind"], edge["object"]) == (writer.pid, "fifo", fifo)


# --- 3. socket chains ----------------------------------------------------------------------


def _three_deep(run_py, wait_sleeping, ab: Tuple[socket.socket, socket.socket],
                bc: Tuple[socket.socket, socket.socket]):
    """A receives on ab[0] (peer ab[1] held by B); B receives on bc[0] (peer bc[1] held by C)."""
    a_fd, b_peer, b_fd, c_peer = ab[0].fileno(), ab[1].fileno(), bc[0].fileno(), bc[1].fileno()
    a = spawn_with(run_py, RECEIVER, [a_fd])
    b = run_py(RECEIVER, str(b_fd), pass_fds=[b_fd, b_peer])
    c = run_py(SLEEPER, pass_fds=[c_peer])
    for sock in ab + bc:
        sock.close()
    for program in (a, b, c):
        program.ready()
    wait_blocked(a.pid, "recvfrom")
    wait_blocked(b.pid, "recvfrom")
    wait_sleeping(c.pid)
    return a.pid, b.pid, c.pid


def _assert_three_deep(data: Dict[str, Any], code: int, pids: Tuple[int, int, int], kind: str) -> None:
    a, b, c = pids
    assert code == 0
    chain = only_chain(data)
    assert chain["path"] == [a, b, c]
    assert chain["end"]["kind"] == "sleeping"
    assert chain["end"]["pid"] == c
    assert edge_set(data) == {(a, b, kind), (b, c, kind)}
    assert data["cycles"] == []
    assert data["root_cause"]["pid"] == c


def test_unix_socket_chain(run_py, diagnose_pid, wait_sleeping) -> None:
    ab = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    bc = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pids = _three_deep(run_py, wait_sleeping, ab, bc)
    data, code = diagnose_pid(pids[0])
    _assert_three_deep(data, code, pids, "unix")


def _tcp_pair(listener: socket.socket) -> Tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return client, server


def test_tcp_loopback_chain(run_py, diagnose_pid, wait_sleeping) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        ab, bc = _tcp_pair(listener), _tcp_pair(listener)
    pids = _three_deep(run_py, wait_sleeping, ab, bc)
    data, code = diagnose_pid(pids[0])
    _assert_three_deep(data, code, pids, "tcp")
    assert all(e["object"].startswith("socket:[") for e in data["edges"])


# --- 4. wait4 --------------------------------------------------------------------------------


WAIT_FOR_CHILD = """
r, w = os.pipe()
child = os.fork()
if child == 0:
    grandchild = os.fork()
    if grandchild == 0:
        os.close(r)
        ready("grandchild")
        sleep_forever()
    os.close(w)
    ready("child", grandchild)
    os.read(r, 1)
    os._exit(0)
os.close(r)
os.close(w)
ready("parent", child)
os.waitpid(child, 0)
"""


def test_parent_waits_for_child_blocked_on_pipe(run_py, diagnose_pid, wait_sleeping) -> None:
    parent = run_py(WAIT_FOR_CHILD)
    roles = {words[1]: int(words[0]) for words in parent.ready(3)}
    child, grandchild = roles["child"], roles["grandchild"]
    assert roles["parent"] == parent.pid
    wait_blocked(parent.pid, "wait4")
    wait_blocked(child, "read")
    wait_sleeping(grandchild)

    data, code = diagnose_pid(parent.pid)

    assert code == 0
    chain = only_chain(data)
    assert chain["path"] == [parent.pid, child, grandchild]
    assert chain["end"]["kind"] == "sleeping"
    assert edge_set(data) == {(parent.pid, child, "child"), (child, grandchild, "pipe")}
    assert [e["kind"] for e in data["edges"]] == ["child", "pipe"]
    assert data["cycles"] == []


# --- 5. self-deadlock ------------------------------------------------------------------------


def test_reader_holding_the_write_end(run_py, diagnose_pid) -> None:
    program = run_py("""
        r, w = os.pipe()
        ready("reading", r, "holding", w)
        os.read(r, 1)
        """)
    (words,) = program.ready()
    write_fd = int(words[4])
    wait_blocked(program.pid, "read")

    data, code = diagnose_pid(program.pid)

    assert code == 1
    chain = only_chain(data)
    assert chain["path"] == [program.pid]
    # the wait is on its own process (another thread could write); with no other thread,
    # the graph finds the loop back to it stuck: a self-deadlock
    assert chain["end"]["kind"] == "cycle" and chain["end"]["pid"] == program.pid
    (edge,) = data["edges"]
    assert (edge["from"], edge["to"], edge["kind"]) == (
        {"pid": program.pid, "tid": program.pid, "host": os.uname().nodename},
        {"pid": program.pid, "tid": None, "host": os.uname().nodename}, "pipe")
    assert f"fd {write_fd}" in edge["label"] and f"/proc/{program.pid}/fd/{write_fd}" in edge["evidence"]
    assert data["deadlock"] is True
    assert data["root_cause"]["pid"] == program.pid


# --- 6. idle server ------------------------------------------------------------------------


def test_idle_server_is_not_a_deadlock(run_py, diagnose_pid) -> None:
    server = run_py("""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        ready("listening", listener.getsockname()[1])
        listener.accept()
        """)
    server.ready()
    wait_blocked(server.pid, "accept", "accept4")

    data, code = diagnose_pid(server.pid)

    assert code == 0
    chain = only_chain(data)
    assert chain["path"] == [server.pid]
    assert chain["end"]["kind"] == "idle"
    assert data["cycles"] == []
    assert data["edges"] == []
    assert data["deadlock"] is False
    assert data["root_cause"]["pid"] == server.pid
    assert "deadlock" not in data["root_cause"]["summary"].lower()


# --- 7. threads ----------------------------------------------------------------------------


def test_multithreaded_process(run_py, diagnose_pid, wait_sleeping) -> None:
    r, w = os.pipe()
    program = spawn_with(run_py, """
        fd = int(sys.argv[1])
        napper = threading.Thread(target=libc.sleep, args=(3600,), daemon=True)
        napper.start()
        ready("reading", fd, "napper", napper.native_id)
        os.read(fd, 1)
        """, [r])
    writer = run_py(SLEEPER, pass_fds=[w])
    close(r, w)
    (words,), _ = program.ready(), writer.ready()
    napper = int(words[4])
    wait_blocked(program.pid, "read")
    wait_blocked(program.pid, "clock_nanosleep", "nanosleep")
    wait_sleeping(writer.pid)

    data, code = diagnose_pid(program.pid)

    assert code == 0
    calls = {t["tid"]: (t["syscall"] or {}).get("name") for t in threads_of(data, program.pid)}
    assert calls[program.pid] == "read"
    assert calls[napper] in ("clock_nanosleep", "nanosleep")
    assert set(calls) == {program.pid, napper}
    chain = only_chain(data)
    assert chain["path"] == [program.pid, writer.pid]
    assert chain["end"]["kind"] == "sleeping"
    (edge,) = data["edges"]
    assert edge["from"] == {"pid": program.pid, "tid": program.pid, "host": os.uname().nodename}
    assert edge["to"]["pid"] == writer.pid and edge["kind"] == "pipe"

    by_tid, code = diagnose_pid(napper)  # a thread id names its process
    assert code == 0 and by_tid["starts"] == [program.pid]


# --- 8. bad input --------------------------------------------------------------------------


def _assert_one_line_error(err: str) -> None:
    """One error line, then only indented lines saying how to fix it."""
    assert "Traceback" not in err
    assert err.startswith("waitchain: ")
    first, *hints = err.rstrip("\n").split("\n")
    assert all(h.startswith("  ") for h in hints), err
    assert any("fix:" in h for h in hints), err


def _pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())  # pids are below pid_max: this one never exists


@pytest.mark.parametrize("pid", [_pid_max(), 10 ** 12])
def test_pid_that_does_not_exist(run_cli, pid: int) -> None:
    for extra in (["--json"], []):
        result = run_cli(str(pid), "--no-stacks", *extra)
        assert result.code == 3
        assert result.out == ""
        _assert_one_line_error(result.err)
        assert str(pid) in result.err


def test_pattern_matching_nothing(run_cli) -> None:
    result = run_cli("no-such-process-" + uuid.uuid4().hex, "--no-stacks")
    assert result.code == 3
    _assert_one_line_error(result.err)


def test_pattern_matching_several(run_py, run_cli) -> None:
    marker = "wc-several-" + uuid.uuid4().hex
    first, second = run_py(SLEEPER, marker), run_py(SLEEPER, marker)
    first.ready(), second.ready()
    result = run_cli(marker, "--no-stacks")
    assert result.code == 3
    assert "Traceback" not in result.err
    assert f"candidates: {min(first.pid, second.pid)}, {max(first.pid, second.pid)}" in result.err


def test_pattern_matching_one(run_py, run_cli, wait_sleeping) -> None:
    marker = "wc-one-" + uuid.uuid4().hex
    program = run_py(SLEEPER, marker)
    program.ready()
    wait_sleeping(program.pid)
    result = run_cli(marker, "--json", "--no-stacks")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["starts"] == [program.pid]
    assert only_chain(data)["path"] == [program.pid]
    assert only_chain(data)["end"]["kind"] == "sleeping"


def _kill(program) -> None:
    program.popen.kill()
    program.popen.wait()


def test_start_process_exits_during_the_scan(run_py, diagnose_pid, monkeypatch, wait_sleeping) -> None:
    program = run_py(SLEEPER)
    program.ready()
    wait_sleeping(program.pid)
    real_scan = Snapshot.scan

    def scan_then_kill(*args, **kwargs):
        snap = real_scan(*args, **kwargs)
        _kill(program)
        return snap

    monkeypatch.setattr(cli.Snapshot, "scan", scan_then_kill)
    data, code = diagnose_pid(program.pid)

    assert code == 0
    chain = only_chain(data)
    assert chain["path"] == [program.pid]
    assert chain["end"]["kind"] == "unknown"
    assert "exited" in chain["end"]["detail"]


def test_process_along_the_chain_exits_during_the_scan(run_py, wait_sleeping) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, READER, [r])
    doomed = run_py(SLEEPER, pass_fds=[w])
    keeper = run_py(SLEEPER, pass_fds=[w])  # still holds the write end: the reader stays blocked
    close(r, w)
    for program in (reader, doomed, keeper):
        program.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(doomed.pid)
    wait_sleeping(keeper.pid)

    snap = Snapshot.scan()
    _kill(doomed)
    diag = diagnose(snap, [reader.pid])
    data = json.loads(render_json.render(diag))

    ends = {tuple(c["path"]): c["end"]["kind"] for c in data["chains"]}
    assert ends == {(reader.pid, doomed.pid): "unknown", (reader.pid, keeper.pid): "sleeping"}
    assert threads_of(data, doomed.pid) == []
    assert data["deadlock"] is False


def test_hostile_process_name(run_py, run_cli, wait_sleeping) -> None:
    hostile = "\x1b[2J\nevil\rname"
    program = run_py("""
        libc.prctl(15, b"\\x1b[2J\\nx)(y", 0, 0, 0)
        threading.Thread(target=sleep_forever, daemon=True).start()  # text shows thread comms
        ready("named")
        sleep_forever()
        """, argv0=hostile)
    program.ready()
    wait_sleeping(program.pid, threads=2)

    text = run_cli(str(program.pid), "--no-stacks")
    assert text.code == 0, text.err
    assert "\x1b" not in text.out and "\r" not in text.out
    line = next(l for l in text.out.splitlines() if l.startswith(str(program.pid)))
    assert "\\x1b[2J\\x0aevil\\x0dname" in line
    assert sum("\\x1b[2J\\x0ax)(y" in l for l in text.out.splitlines()) == 2  # both threads

    as_json = run_cli(str(program.pid), "--json", "--no-stacks")
    assert "\x1b" not in as_json.out
    assert "\\u001b[2J\\nevil" in as_json.out
    proc = json.loads(as_json.out)["processes"][0]
    assert proc["comm"] == "\x1b[2J\nx)(y"
    assert proc["cmdline"].startswith(hostile + " -c ")


POLLER = '''
import select
fd, lfd = int(sys.argv[1]), int(sys.argv[2])
ready("polling")
select.select([fd, lfd], [], [])
'''


def test_all_leaves_out_a_cycle_that_can_still_resolve(procs, run_py, run_cli) -> None:
    """A reads a pipe only B writes; B polls a pipe only A writes AND a listening socket.
    A → B → A is a cycle, but a client may connect to B: --all must not report it."""
    a_r, b_w = os.pipe()
    b_r, a_w = os.pipe()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    lfd = listener.fileno()
    a = spawn_with(run_py, READER, [a_r, a_w])
    b = run_py(POLLER, str(b_r), str(lfd), pass_fds=[b_r, b_w, lfd])
    close(a_r, a_w, b_r, b_w)
    listener.close()
    a.ready(), b.ready()
    wait_blocked(a.pid, "read")
    wait_blocked(b.pid, "select", "pselect6")

    single = json.loads(run_cli(str(a.pid), "--json", "--no-stacks").out)
    assert [set(c["pids"]) for c in single["cycles"]] == [{a.pid, b.pid}]
    assert single["cycles"][0]["deadlock"] is False
    result = run_cli("--all", "--json", "--no-stacks")
    everywhere = json.loads(result.out)
    assert not [c for c in everywhere["chains"] if {a.pid, b.pid} & set(c["path"])]


def test_pattern_matching_a_wrapper_and_its_child_picks_the_child(procs, run_cli, wait_sleeping) -> None:
    """`sh -c 'python3 ... MARKER'` and the python3 it starts both match: the process a
    person means is the innermost one, not an ambiguity."""
    marker = f"wrapped-{uuid.uuid4().hex}"
    r, w = os.pipe()
    code = f"import os, time; os.write({w}, b'x'); time.sleep(1000)  # {marker}"
    shell = procs.spawn(["sh", "-c", f'{sys.executable} -c "{code}"; true'], pass_fds=[w])
    os.close(w)
    os.read(r, 1)  # the python3 child has started
    os.close(r)
    (child,) = children(shell.pid)
    wait_sleeping(child)

    result = run_cli(marker, "--json", "--no-stacks")

    assert result.code == 0, result.err
    assert json.loads(result.out)["starts"] == [child]

