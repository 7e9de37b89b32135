"""False alarms found by trying waitchain on ordinary software (QA round on issue 8), each
a healthy program once called DEADLOCKED or told to kill something, though something outside
the process can wake it:

- a FIFO read by a process that holds its write end too (`cat 0<>fifo`, the shell idiom
  `exec 3<>fifo; read <&3`): any process may open the FIFO by its path and write;
- a blocking read of Python's signal wake-up fd (signal.set_wakeup_fd) with a SIGTERM
  handler: the signal ends the read, as for an event loop's wake-up fd;
- multiprocessing.Pool.map whose workers are busy (asleep in their task): the pool's
  worker-handler thread polls the workers' sentinels; nothing is to be killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from typing import Any, Dict, List

import pytest
from scenario_helpers import read_lines, threads_in
from test_false_alarms import (SLEEP_CALLS, Target, assert_healthy, free_loopback_port, nginx_path,
                               run_nginx)

from waitchain.demo.harness import blocked_in, wait_blocked, wait_child, wait_until


# --- a FIFO read by a process that also holds its write end --------------------------------


FIFO_READERS = {
    # coreutils cat, the usual way to read a FIFO across many writers
    "cat": (["/bin/sh", "-c", 'exec cat 0<>"$1"', "sh"], ("read",)),
    # a shell command loop on a FIFO it keeps open read-write
    "sh-read": (["/bin/sh", "-c", 'exec 3<>"$1"; while read -r line <&3; do :; done', "sh"], ("read",)),
}


@pytest.mark.parametrize("reader", sorted(FIFO_READERS))
def test_fifo_reader_holding_its_own_write_end(procs, tmp_path, run_cli, reader) -> None:
    fifo = tmp_path / "commands"
    os.mkfifo(fifo)
    argv, calls = FIFO_READERS[reader]
    proc = procs.spawn(argv + [str(fifo)], stdout=subprocess.DEVNULL)
    wait_blocked(proc.pid, *calls)
    assert_healthy(run_cli, Target(f"{reader} reading a FIFO it holds read-write", proc.pid))


# --- a blocking read of Python's signal wake-up fd -----------------------------------------

WAKEUP_READ = """
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
signal.signal(signal.SIGTERM, lambda *_: None)  # SIGTERM writes the wake-up fd: read returns
ready("reading")
os.read(r, 1)
"""


def test_blocking_read_of_the_signal_wakeup_fd(run_py, run_cli) -> None:
    prog = run_py(WAKEUP_READ)
    prog.ready()
    wait_blocked(prog.pid, "read")
    assert_healthy(run_cli, Target("os.read of the signal wake-up fd, SIGTERM handled", prog.pid))


# --- multiprocessing.Pool.map with its workers busy ----------------------------------------

POOL_MAP = """
import multiprocessing

def task(_):
    ready("working")
    time.sleep(3600)  # a long task: the pool is busy, not stuck

ctx = multiprocessing.get_context("fork")
with ctx.Pool(2) as pool:
    pool.map(task, range(2))
"""


def kill_advice(data: Dict[str, Any]) -> List[str]:
    """Every "do now" step of every verdict that says to kill something."""
    return [step for v in data.get("verdicts") or [] for step in v.get("now") or []
            if "kill" in step]


def test_pool_map_with_busy_workers_is_not_told_to_kill_one(run_py, run_cli) -> None:
    prog = run_py(POOL_MAP)
    workers = [int(line[0]) for line in prog.ready(2)]
    for worker in workers:
        wait_blocked(worker, *SLEEP_CALLS)
    wait_until(lambda: len(threads_in(prog.pid, ("poll",))) >= 1,
               f"the pool's worker handler in {prog.pid} polls the sentinels")
    for pid in [prog.pid] + workers:
        result = run_cli(str(pid), "--json", "--no-stacks")
        assert "internal error" not in result.err, result.err
        data = json.loads(result.out)
        assert data["deadlock"] is False and result.code == 0
        assert kill_advice(data) == [], f"{pid}: {json.dumps(data['verdicts'], indent=1)}"



# --- a poll of a file for errors only (OpenBSD nc polls its stdout, /dev/null, with no events)

POLL_DEVNULL = """
import select
r = int(sys.argv[1])
devnull = os.open("/dev/null", os.O_WRONLY)
p = select.poll()
p.register(devnull, 0)  # errors only: a file is never ready for them
p.register(r, select.POLLIN)
ready("polling")
p.poll()
"""


def test_a_file_polled_for_no_event_is_no_alternative(run_py, run_cli, wait_sleeping) -> None:
    """Not "KERNEL WAIT ... uninterruptible sleep" (the process is in S, and /dev/null ends
    nothing): the chain goes through the pipe to the sleeping writer."""
    r, w = os.pipe()
    poller = run_py(POLL_DEVNULL, str(r), pass_fds=[r])
    writer = run_py("ready('sleeping')\nsleep_forever()", pass_fds=[w])
    os.close(r)
    os.close(w)
    poller.ready(), writer.ready()
    wait_blocked(poller.pid, "poll")
    wait_sleeping(writer.pid)
    result = run_cli(str(poller.pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 0 and data["deadlock"] is False
    (chain,) = data["chains"]
    assert chain["path"] == [poller.pid, writer.pid] and chain["end"]["kind"] == "sleeping", data
    (thread,) = next(p for p in data["processes"] if p["pid"] == poller.pid)["threads"]
    assert thread["live"] == [] and thread["any_of"] == 2


# --- QA round 2: found by trying waitchain on ordinary software again -----------------------
# (each was wrong as described, and is right now; so are the ones below)
#
# - two readers sharing one FIFO, each holding it read-write (two `cat 0<>fifo` consumers,
#   a shell read loop next to a cat): each is told that the other is the writer it waits
#   for, and the pair is called DEADLOCKED, though anyone may open the FIFO and write;
# - a flock(1) ABBA whose -c shells do not exec the inner flock (a command follows it):
#   "do now: kill <shell>", but the inner flock, the shell's child, inherited the outer
#   lock's file description: it keeps the lock when the shell and the outer flock are gone;
# - an asyncio server that read a request and never answers: since the idle-server change
#   the client is told "the request never reached the server: check the address and port";
# - a client waiting on nginx that waits on a sleeping upstream: the chain stops at nginx
#   ("IDLE SERVER: the request never reached nginx") or, for curl, goes back to the client
#   ("CYCLE ... run again in a minute"); never to the upstream.


def test_two_readers_sharing_a_fifo_they_hold_read_write(procs, tmp_path, run_cli) -> None:
    fifo = tmp_path / "jobs"
    os.mkfifo(fifo)
    readers = [procs.spawn(FIFO_READERS[name][0] + [str(fifo)], stdout=subprocess.DEVNULL)
               for name in ("cat", "sh-read")]
    for reader in readers:
        wait_blocked(reader.pid, "read")
    for reader in readers:
        assert_healthy(run_cli, Target("one of two readers of a FIFO both hold read-write", reader.pid))


# Each side: the outer flock(1) takes FIRST and runs a shell that reports on its stdout (the
# ready pipe), waits for the go (EOF on its stdin, once both sides hold their lock), then runs
# the inner flock on SECOND as a child (the command after it keeps sh from exec'ing it): the
# child inherits FIRST's lock fd, as flock(1) documents.
FLOCK_SIDE = 'exec flock "$1" sh -c \'echo locked; read _; flock "$2" true; true\' sh "$@"'


def _cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.fsdecode(f.read()).split("\0")[:-1]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """Neither gone nor a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_flock_abba_do_now_kill_really_ends_it(procs, tmp_path, run_cli) -> None:
    """Kill the process "do now" names: both sides must then finish (checked by doing it)."""
    flock = shutil.which("flock")
    if flock is None:
        pytest.skip("flock(1) is not installed (util-linux)")
    a, b = str(tmp_path / "A"), str(tmp_path / "B")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        sides = [procs.spawn(["/bin/sh", "-c", FLOCK_SIDE, "sh", first, second], stdin=go_r, stdout=ready_w)
                 for first, second in ((a, b), (b, a))]
    finally:
        os.close(ready_w)
        os.close(go_r)
    try:
        read_lines(ready_r, 2, 15.0)  # both sides hold their first lock
    finally:
        os.close(ready_r)
        os.close(go_w)  # go: each side now asks for the other's lock
    inner = lambda: [p for p in procs.descendants()
                     if os.path.basename((_cmdline(p) or [""])[0]) == "flock" and _cmdline(p)[2:] == ["true"]]
    wait_until(lambda: sum(blocked_in(p, ("flock",)) for p in inner()) == 2, "both inner flocks block")
    result = run_cli(str(sides[0].pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 1 and data["deadlock"] is True, result.out
    (verdict,) = [v for v in data["verdicts"] if v["class"] == "deadlock"]
    culprit = verdict["culprit"]
    ours = set(procs.descendants())
    assert culprit in ours, f"do now names {culprit}, none of ours {sorted(ours)}: {verdict['now']}"
    os.kill(culprit, signal.SIGKILL)
    try:
        wait_until(lambda: all(s.poll() is not None for s in sides)
                   and not any(_alive(p) for p in procs.descendants()),
                   "both sides finish after the advised kill", timeout=5.0)
    except TimeoutError:
        left = [p for p in procs.descendants() if _alive(p)]
        again = run_cli(str(left[0]), "--no-stacks").out if left else ""
        pytest.fail(f"killed {culprit} as advised ({verdict['now']}); still stuck: {left}\n{again}")


# --- an asyncio server that read the request and never answers -----------------------------

NO_REPLY_SERVER = """
import asyncio

async def handle(reader, writer):
    await reader.readline()
    ready("read the request")
    await asyncio.Event().wait()  # the answer never comes

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready("serving", server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()

asyncio.run(main())
"""

CLIENT = """
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode())
ready("sent")
s.recv(100)
"""

RECV_CALLS = ("recvfrom", "recv", "recvmsg", "read")
EPOLL_CALLS = ("epoll_wait", "epoll_pwait", "epoll_pwait2")


def test_a_request_the_server_read_and_never_answers_is_no_reply(run_py, run_cli) -> None:
    """Not "the request never reached the server: check the address and port": the server
    holds the connection, read the request and watches it in its event loop."""
    server = run_py(NO_REPLY_SERVER)
    ((_, _, port),) = server.ready()
    client = run_py(CLIENT, port, "GET\\n")
    client.ready()
    server.ready()
    wait_blocked(client.pid, *RECV_CALLS)
    wait_blocked(server.pid, *EPOLL_CALLS)
    result = run_cli(str(client.pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 0 and data["deadlock"] is False, result.out
    text = run_cli(str(client.pid), "--no-stacks").out
    assert "never reached" not in text, text
    # its socket shows the request read (nothing unread, 4 B received): held, not lost
    assert data["verdicts"][0]["advice"] == "held-request", text


# --- a client waiting on nginx that waits on a slow upstream -------------------------------

UPSTREAM = """
srv = socket.create_server(("127.0.0.1", 0))
ready("listening", srv.getsockname()[1])
conn, _ = srv.accept()
conn.recv(65536)
ready("got the request")
sleep_forever()  # a slow handler: the answer comes when it wakes
"""

PROXY = "proxy_pass http://127.0.0.1:{upstream}; proxy_read_timeout 3600s;"


# A client that also watches its own wake-up socketpair (as curl's multi handle does): its
# branch leads back to nginx but is no idle branch (it also waits on itself), so nginx's
# sleeping upstream is dropped as one and the chain ends back at the client: "CYCLE (not a
# deadlock) ... run waitchain again in a minute", root cause nginx's epoll_wait.
WAKEUP_CLIENT = """
import select
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode())
wake_r, wake_w = socket.socketpair()
p = select.poll()
p.register(s, select.POLLIN)
p.register(wake_r, select.POLLIN)
ready("sent")
p.poll()
"""

PROXY_CLIENTS = {"recv": (CLIENT, RECV_CALLS), "wakeup-fd": (WAKEUP_CLIENT, ("poll",))}


@pytest.mark.parametrize("kind", ["recv", "wakeup-fd"])
def test_a_chain_through_nginx_ends_at_the_slow_upstream(run_py, procs, tmp_path, run_cli,
                                                         wait_sleeping, kind) -> None:
    nginx = nginx_path()
    if nginx is None:
        pytest.skip("nginx is not installed (.ci/run installs it: apt-get install nginx)")
    upstream = run_py(UPSTREAM)
    ((_, _, upstream_port),) = upstream.ready()
    port = free_loopback_port()
    _, worker = run_nginx(nginx, procs, tmp_path, port, PROXY.format(upstream=upstream_port))
    code, calls = PROXY_CLIENTS[kind]
    client = run_py(code, str(port), "GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
    client.ready()
    upstream.ready()
    wait_sleeping(upstream.pid)
    wait_blocked(client.pid, *calls)
    wait_blocked(worker, *EPOLL_CALLS)
    result = run_cli(str(client.pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 0 and data["deadlock"] is False, result.out
    text = run_cli(str(client.pid), "--no-stacks").out
    assert any(upstream.pid in chain["path"] for chain in data["chains"]), text
    assert data["root_cause"]["pid"] == upstream.pid, text


# --- a command substitution that started a server in the background ------------------------

# The classic hang of `out=$(start-server)`: the server, started in the background, inherited
# the substitution's pipe as its stdout, so the shell's read sees no EOF while it runs.
# waitchain follows the pipe to the idle server and then says the shell "also watches a pipe"
# and "really waits for something inside the application (a lock, a latch, a signal)".

BACKGROUND_SERVER = """
import os, select, socket, sys
srv = socket.create_server(("127.0.0.1", 0))
os.write(int(sys.argv[1]), b"listening\\n")
p = select.poll()
p.register(srv, select.POLLIN)
while True:
    p.poll()
    srv.accept()[0].close()
"""


def shell_with_server(procs, script: str) -> subprocess.Popen:
    """`sh -c script` with "$@" the background server; returns once the server listens."""
    ready_r, ready_w = os.pipe()
    try:
        shell = procs.spawn(["/bin/sh", "-c", script, "sh", sys.executable, "-c", BACKGROUND_SERVER,
                             str(ready_w)], pass_fds=(ready_w,), stdout=subprocess.DEVNULL)
    finally:
        os.close(ready_w)
    try:
        read_lines(ready_r, 1, 15.0)
    finally:
        os.close(ready_r)
    return shell


def test_a_shell_reading_a_pipe_a_background_server_inherited(procs, run_cli) -> None:
    shell = shell_with_server(procs, 'out=$("$@" & echo started); echo "$out"')
    wait_blocked(shell.pid, "read")
    server = next(p for p in procs.descendants() if p != shell.pid and _cmdline(p)[1:2] == ["-c"])
    wait_blocked(server, "poll")
    result = run_cli(str(shell.pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 0 and data["deadlock"] is False, result.out
    (chain,) = data["chains"]
    assert chain["path"] == [shell.pid, server], result.out
    text = run_cli(str(shell.pid), "--no-stacks").out
    assert data["verdicts"][0]["advice"] != "app-wait", text
    assert "also watches" not in text and "cannot see" not in text, text


# --- a recursive make -j whose recipes are busy ---------------------------------------------

# Two sub-makes share the jobserver pipe with the top make; their recipes sleep (a long
# compile). Nothing is stuck: the sub-makes' pselect6 also waits for SIGCHLD from the sleeping
# recipes. waitchain drops those sigchld branches as idle and keeps the jobserver pipe's, which
# lead back into the makes: "CYCLE (not a deadlock) ... run waitchain again in a minute", root
# cause the top make's wait4, instead of the recipes the build waits for.

TOP_MAKEFILE = "all: s1 s2\ns1:\n\t$(MAKE) -s -C sub1\ns2:\n\t$(MAKE) -s -C sub2\n"
SUB_MAKEFILE = "all: a b c\na:\n\tsleep 3600\nb:\n\tsleep 3600\nc:\n\tsleep 3600\n"


def test_a_recursive_make_j_with_sleeping_recipes_ends_at_a_recipe(procs, tmp_path, run_cli) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    (tmp_path / "Makefile").write_text(TOP_MAKEFILE)
    for sub in ("sub1", "sub2"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "Makefile").write_text(SUB_MAKEFILE)
    top = procs.spawn([make, "-s", "-j3"], cwd=tmp_path, stdout=subprocess.DEVNULL)
    named = lambda name: [p for p in procs.descendants() if os.path.basename((_cmdline(p) or [""])[0]) == name]
    wait_until(lambda: sum(blocked_in(p, SLEEP_CALLS) for p in named("sleep")) == 3, "three recipes sleep")
    wait_until(lambda: sum(blocked_in(p, ("pselect6", "select")) for p in named("make")) == 2,
               "both sub-makes wait for a job slot")
    wait_blocked(top.pid, "wait4")
    sleepers = set(named("sleep"))
    sub = next(p for p in named("make") if p != top.pid)
    result = run_cli(str(sub), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 0 and data["deadlock"] is False, result.out
    text = run_cli(str(sub), "--no-stacks").out
    assert data["verdicts"][0]["class"] != "cycle", text
    assert data["root_cause"]["pid"] in sleepers, text


# --- posix_spawn whose child blocks before exec ---------------------------------------------

# glibc's posix_spawn (as Python's os.posix_spawn, Java's and Go's process starters) clones
# with CLONE_VFORK: the parent sleeps uninterruptibly in clone3 until the child execs. Here
# the child blocks first, opening a FIFO nobody writes (a spawn file action). waitchain
# calls the parent a KERNEL WAIT ("a D-state process cannot be killed until the I/O returns:
# fix the storage ...") and never reaches the child; the parent is killable and waits for it.

SPAWN_ON_FIFO = """
ready("spawning")
os.posix_spawn("/bin/cat", ["cat"], os.environ,
               file_actions=[(os.POSIX_SPAWN_OPEN, 0, sys.argv[1], os.O_RDONLY, 0)])
"""


def test_a_posix_spawn_parent_waits_for_its_child_not_the_kernel(run_py, procs, tmp_path, run_cli) -> None:
    if not os.path.exists("/bin/cat"):
        pytest.skip("no /bin/cat")
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    parent = run_py(SPAWN_ON_FIFO, str(fifo))
    parent.ready()
    child = wait_child(parent.pid)
    wait_blocked(child, "open", "openat")
    wait_until(lambda: _state(parent.pid) == "D", f"{parent.pid} waits in vfork for {child}")
    result = run_cli(str(parent.pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 0 and data["deadlock"] is False, result.out
    text = run_cli(str(parent.pid), "--no-stacks").out
    assert any(child in chain["path"] for chain in data["chains"]), text
    assert "cannot be killed" not in text, text


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


# --- a wrapper shell that runs a server in the foreground -----------------------------------

# An entrypoint script that runs its server as a child (no exec) waits in wait4 for it; the
# server is idle. waitchain on the wrapper says "the request never reached <server>: check
# the address and port the client uses": there is no client and no request, the wrapper waits
# for its server to exit.


def test_a_wrapper_waiting_for_its_server_child_is_not_told_the_request_never_reached(
        procs, run_cli) -> None:
    wrapper = shell_with_server(procs, '"$@"; echo exited')
    server = wait_child(wrapper.pid)
    wait_blocked(wrapper.pid, "wait4", "waitid")
    wait_blocked(server, "poll")
    result = run_cli(str(wrapper.pid), "--json", "--no-stacks")
    data = json.loads(result.out)
    assert result.code == 0 and data["deadlock"] is False, result.out
    text = run_cli(str(wrapper.pid), "--no-stacks").out
    assert "never reached" not in text and "address and port" not in text, text


# --- a program reading its terminal inside tmux, with a busy program in another window ------

def test_a_terminal_in_tmux_waits_for_input_not_for_other_windows(tmp_path, run_cli) -> None:
    """tmux's event loop also watches its other windows' terminals and children (here a busy
    `yes`): those are other business; the reader waits for someone to type."""
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed (.ci/run installs it: apt-get install tmux)")
    sock = str(tmp_path / "tmux.sock")
    base = [tmux, "-S", sock, "-f", "/dev/null"]
    try:
        subprocess.run(base + ["new-session", "-d", "-s", "t", "cat"], check=True, timeout=15)
        subprocess.run(base + ["new-window", "-t", "t:", "yes >/dev/null"], check=True, timeout=15)
        server = int(subprocess.run(base + ["display-message", "-p", "-t", "t", "#{pid}"], check=True,
                                    timeout=15, capture_output=True, text=True).stdout)
        panes = subprocess.run(base + ["list-panes", "-s", "-t", "t", "-F", "#{pane_pid}"], check=True,
                               timeout=15, capture_output=True, text=True).stdout.split()
        reader, shell = int(panes[0]), int(panes[1])
        busy = wait_child(shell)  # the window's sh -c runs yes
        wait_blocked(reader, "read")
        wait_until(lambda: _state(busy) == "R", "yes runs")
        result = run_cli(str(reader), "--json", "--no-stacks")
        data = json.loads(result.out)
        assert result.code == 0 and data["deadlock"] is False, result.out
        assert data["verdicts"][0]["advice"] == "pty-input", json.dumps(data["verdicts"], indent=1)
        assert data["root_cause"]["pid"] == reader
        assert all(not {shell, busy} & set(c["path"]) for c in data["chains"]), data["chains"]
        assert [c["path"][:2] for c in data["chains"]] == [[reader, server]]
    finally:
        subprocess.run(base + ["kill-server"], timeout=15, capture_output=True)
