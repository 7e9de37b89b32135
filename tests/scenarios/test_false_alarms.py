"""The false-alarm corpus: ordinary, healthy programs in ordinary waits are not deadlocked.

Every case is a real process in a real state, reached by a readiness line and then polled
in /proc until each thread sleeps in the call it should. In each one some thread or process
that can end the wait is NOT blocked on it (a sibling thread asleep in time.sleep, a child
that will exit and send SIGCHLD, a signal from outside), so the verdict must be: exit 0,
`deadlock` false, no cycle and no verdict of class "deadlock". The last test starts them
all at once and runs `--all` over the machine.

Each builder starts one case and returns the processes to diagnose, already in state."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set

import pytest
from scenario_helpers import threads_in

from waitchain.demo.harness import Processes, children, wait_blocked, wait_until

# time.sleep is clock_nanosleep on 3.11+, pselect6 (select) with no fds on 3.9/3.10
SLEEP_CALLS = ("clock_nanosleep", "nanosleep", "pselect6", "select")
RECV_CALLS = ("recvfrom", "recv", "recvmsg", "read")
EPOLL_CALLS = ("epoll_wait", "epoll_pwait", "epoll_pwait2")
SIGSUSPEND_CALLS = ("rt_sigsuspend", "sigsuspend")


class Target(NamedTuple):
    """A process of a case to diagnose, and what it is (for failure messages)."""

    what: str
    pid: int


class Case(NamedTuple):
    """What a builder needs: the fixtures that start and clean up processes."""

    run_py: Callable[..., Any]
    procs: Processes
    tmp_path: Path


# --- waiting for a state in /proc ----------------------------------------------------------


def wait_threads(pid: int, **counts: int) -> None:
    """Poll until pid has at least counts[group] threads asleep in each group of calls:
    groups are sleep, recv, read, futex, epoll, wait4 (keyword = group name)."""
    groups = {"sleep": SLEEP_CALLS, "recv": RECV_CALLS, "read": ("read",), "futex": ("futex",),
              "epoll": EPOLL_CALLS, "wait4": ("wait4", "waitid")}
    for group, count in counts.items():
        calls = groups[group]
        wait_until(lambda: len(threads_in(pid, calls)) >= count,
                   f"{count} threads of {pid} sleep in {'/'.join(calls)}")


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def child_named(pid: int, name: str) -> Optional[int]:
    found = [c for c in children(pid) if comm(c) == name]
    return found[0] if found else None


def wait_child_named(pid: int, name: str) -> int:
    wait_until(lambda: child_named(pid, name) is not None, f"{pid} has a child {name}")
    child = child_named(pid, name)
    assert child is not None
    return child


def process_state(pid: int) -> str:
    """The state letter in /proc/PID/stat ("" once the process has gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def nginx_path() -> Optional[str]:
    candidates = [shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx"]
    return next((p for p in candidates if p and os.access(p, os.X_OK)), None)


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- what a healthy verdict looks like --------------------------------------------------------


def deadlock_claims(data: Dict[str, Any], ours: Optional[Set[int]] = None) -> List[Any]:
    """Every statement in the JSON that something is deadlocked (restricted to cycles and
    verdicts that involve `ours`, when given)."""

    def involves(pids: Iterable[int]) -> bool:
        return ours is None or bool(set(pids) & ours)

    claims: List[Any] = []
    if ours is None and data.get("deadlock"):
        claims.append("deadlock: true")
    claims += [c for c in data.get("cycles", [])
               if c.get("deadlock") and involves(c.get("members") or c.get("pids") or [])]
    # a chain ending in "self" (a wait only its own process could end) counts as a deadlock
    claims += [c for c in data.get("chains", [])
               if (c.get("end") or {}).get("kind") == "self" and involves(c.get("path") or [])]
    claims += [v for v in data.get("verdicts") or []
               if v.get("class") == "deadlock" and involves(verdict_pids(v))]
    return claims


def verdict_pids(verdict: Dict[str, Any]) -> Set[int]:
    """The pids a verdict names, whatever shape its members take."""
    pids: Set[int] = set()
    for key in ("members", "pids", "ring", "victims"):
        for member in verdict.get(key) or []:
            if isinstance(member, dict) and "pid" in member:
                pids.add(int(member["pid"]))
            elif isinstance(member, int):
                pids.add(member)
    for key in ("cause", "culprit", "root_cause"):
        member = verdict.get(key)
        if isinstance(member, dict) and isinstance(member.get("pid"), int):
            pids.add(member["pid"])
    return pids


def describe_claim(claim: Any, names: Dict[int, str]) -> str:
    """One line for a deadlock claim of --all: its pids and which case each belongs to."""
    if not isinstance(claim, dict):
        return str(claim)
    pids = claim.get("members") or claim.get("path") or sorted(verdict_pids(claim))
    return "%s over %s" % (json.dumps({k: v for k, v in claim.items() if k in ("detail", "end", "class")}),
                           ", ".join("%s (%s)" % (p, names.get(p, "?")) for p in pids))


def summary(data: Dict[str, Any]) -> str:
    """What the tool said, compactly, for a failure message."""
    return json.dumps({"deadlock": data.get("deadlock"), "cycles": data.get("cycles"),
                       "verdicts": data.get("verdicts"), "root_cause": data.get("root_cause"),
                       "chains": data.get("chains")}, indent=1)


def assert_healthy(run_cli, target: Target) -> None:
    """Diagnose one process in JSON and in text: not deadlocked, exit 0."""
    result = run_cli(str(target.pid), "--json", "--no-stacks")
    assert "internal error" not in result.err, f"{target.what}: {result.err}"
    assert result.out, f"{target.what}: no JSON output; stderr: {result.err}"
    data = json.loads(result.out)
    claims = deadlock_claims(data)
    assert claims == [], (f"{target.what} ({target.pid}) called deadlocked, exit {result.code}:\n"
                          f"{summary(data)}")
    assert data["deadlock"] is False
    assert result.code == 0, f"{target.what}: exit {result.code}; stderr: {result.err}"
    text = run_cli(str(target.pid), "--no-stacks")
    assert "DEADLOCK" not in text.out, f"{target.what}:\n{text.out}"
    assert text.code == 0, f"{target.what}: text exit {text.code}; stderr: {text.err}"
    assert process_state(target.pid) == "S", f"{target.what}: looking disturbed it"


def assert_all_healthy(run_cli, targets: Sequence[Target]) -> None:
    for target in targets:
        assert_healthy(run_cli, target)


# --- 1, 2. a thread reads what a sibling thread will write later ---------------------------

# The writer sleeps in time.sleep and then writes: it is the way out of the reader's wait.
# "main": the main thread is the writer; "worker": a second thread is, the main thread join()s.
THREAD_PIPE = """
import threading
kind, writer_thread = sys.argv[1], sys.argv[2]
if kind == "pipe":
    r, w = os.pipe()
    receive = lambda: os.read(r, 1)
    send = lambda: os.write(w, b"x")
else:
    a, b = socket.socketpair()
    receive = lambda: a.recv(1)
    send = lambda: b.send(b"x")

def reader():
    ready("reading")
    receive()

def writer():
    time.sleep(3600)  # it will write, later
    send()

threads = [threading.Thread(target=reader)]
if writer_thread == "worker":
    threads.append(threading.Thread(target=writer))
for t in threads:
    t.start()
if writer_thread == "main":
    writer()
for t in threads:
    t.join()
"""


def start_thread_channel(case: Case, kind: str, writer: str) -> List[Target]:
    prog = case.run_py(THREAD_PIPE, kind, writer)
    prog.ready()
    wait_threads(prog.pid, recv=1, sleep=1)
    if writer == "worker":
        wait_threads(prog.pid, futex=1)  # the main thread in join()
    return [Target(f"{kind} read by a thread, {writer} thread writes later", prog.pid)]


@pytest.mark.parametrize("writer", ["main", "worker"])
def test_thread_reads_a_pipe_a_sibling_will_write(run_py, procs, tmp_path, run_cli, writer) -> None:
    assert_all_healthy(run_cli, start_thread_channel(Case(run_py, procs, tmp_path), "pipe", writer))


@pytest.mark.parametrize("writer", ["main", "worker"])
def test_thread_reads_a_socketpair_a_sibling_will_write(run_py, procs, tmp_path, run_cli, writer) -> None:
    assert_all_healthy(run_cli, start_thread_channel(Case(run_py, procs, tmp_path), "socketpair", writer))


# --- 3. a client thread and a server thread of one process over loopback TCP ---------------

# The server thread has read the client's request and waits for the next one; the client
# waits for the reply. They wait for each other, but the reply is sent by a third thread
# (the main thread, or a responder while the main thread join()s) that sleeps first.
THREAD_TCP = """
import threading
responder = sys.argv[1]
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
accepted = []
got_request = threading.Event()

def server():
    conn, _ = listener.accept()
    accepted.append(conn)
    conn.recv(100)  # the request
    got_request.set()
    ready("server")
    conn.recv(100)  # the next request

def client():
    sock = socket.create_connection(listener.getsockname())
    sock.sendall(b"ping")
    got_request.wait()
    ready("client")
    sock.recv(100)  # the reply

def respond():
    time.sleep(3600)  # it will answer, later
    accepted[0].sendall(b"pong")

threads = [threading.Thread(target=server), threading.Thread(target=client)]
if responder == "worker":
    threads.append(threading.Thread(target=respond))
for t in threads:
    t.start()
if responder == "main":
    respond()
for t in threads:
    t.join()
"""


def start_thread_tcp(case: Case, responder: str) -> List[Target]:
    prog = case.run_py(THREAD_TCP, responder)
    prog.ready(2)
    wait_threads(prog.pid, recv=2, sleep=1)
    if responder == "worker":
        wait_threads(prog.pid, futex=1)
    return [Target(f"TCP client and server threads, the {responder} thread answers later", prog.pid)]


@pytest.mark.parametrize("responder", ["main", "worker"])
def test_client_and_server_threads_over_loopback(run_py, procs, tmp_path, run_cli, responder) -> None:
    assert_all_healthy(run_cli, start_thread_tcp(Case(run_py, procs, tmp_path), responder))


# --- 4. p.wait() on a child blocked on a full pipe, while a drainer thread sleeps ---------

WAIT_WITH_DRAINER = """
import subprocess, threading
p = subprocess.Popen([sys.executable, "-c",
                      "import sys; sys.stdout.buffer.write(b'x' * (1 << 20)); sys.stdout.flush()"],
                     stdout=subprocess.PIPE)

def drain():
    time.sleep(3600)  # it will read, later
    p.stdout.read()

threading.Thread(target=drain, daemon=True).start()
ready("waiting", p.pid)
p.wait()
"""


def start_wait_with_drainer(case: Case) -> List[Target]:
    prog = case.run_py(WAIT_WITH_DRAINER)
    (line,) = prog.ready()
    child = int(line[2])
    wait_blocked(child, "write")
    wait_threads(prog.pid, wait4=1, sleep=1)
    return [Target("p.wait() with a sleeping drainer thread", prog.pid),
            Target("child writing a full pipe its parent's drainer will read", child)]


def test_wait_on_a_child_while_a_drainer_thread_sleeps(run_py, procs, tmp_path, run_cli) -> None:
    assert_all_healthy(run_cli, start_wait_with_drainer(Case(run_py, procs, tmp_path)))


# --- 5. an asyncio daemon idle until SIGTERM -------------------------------------------------

ASYNCIO_DAEMON = """
import asyncio
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
loop.add_signal_handler(signal.SIGTERM, loop.stop)  # wakes through its self-pipe
if sys.argv[1] == "server":
    async def handle(reader, writer):
        writer.write(await reader.readline())
        writer.close()
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    ready("serving", server.sockets[0].getsockname()[1])
else:
    ready("idle")
loop.run_forever()
"""


def start_asyncio(case: Case, variant: str) -> List[Target]:
    prog = case.run_py(ASYNCIO_DAEMON, variant)
    prog.ready()
    wait_blocked(prog.pid, *EPOLL_CALLS)
    return [Target(f"asyncio daemon ({variant}) idle until SIGTERM", prog.pid)]


@pytest.mark.parametrize("variant", ["plain", "server"])
def test_asyncio_daemon_idle_until_sigterm(run_py, procs, tmp_path, run_cli, variant) -> None:
    assert_all_healthy(run_cli, start_asyncio(Case(run_py, procs, tmp_path), variant))


# --- 6. GNU make -j2 ------------------------------------------------------------------------

# Three recipes, two job slots: make runs two and waits in pselect6 on its jobserver pipe for
# a token, with SIGCHLD caught; its children will exit and wake it. With two recipes it
# waits for them in wait4 instead.
MAKEFILE = """\
all: {targets}
{targets}:
\tsleep 1000
"""


def start_make(case: Case, recipes: int) -> List[Target]:
    if not shutil.which("make"):  # CI installs it; the --all test leaves make out without it
        pytest.skip("GNU make is not installed (.ci/run installs it)")
    workdir = case.tmp_path / f"make{recipes}"
    workdir.mkdir()
    targets = " ".join("t%d" % i for i in range(recipes))
    (workdir / "Makefile").write_text(MAKEFILE.format(targets=targets))
    make = case.procs.spawn(["make", "-j2", "-C", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    call = "pselect6" if recipes > 2 else "wait4"
    wait_until(lambda: len(children(make.pid)) == 2, f"make {make.pid} runs two recipes")
    for child in children(make.pid):
        wait_blocked(child, *SLEEP_CALLS)
    wait_blocked(make.pid, call)
    return [Target(f"make -j2 with {recipes} recipes, in {call}", make.pid)]


@pytest.mark.parametrize("recipes", [3, 2])
def test_make_j2_waiting_for_its_recipes(run_py, procs, tmp_path, run_cli, recipes) -> None:
    assert_all_healthy(run_cli, start_make(Case(run_py, procs, tmp_path), recipes))


# --- 7. a shell pipeline ----------------------------------------------------------------------


def start_pipeline(case: Case) -> List[Target]:
    sh = case.procs.spawn(["/bin/sh", "-c", "sleep 1000 | cat"], stdout=subprocess.DEVNULL)
    sleeper = wait_child_named(sh.pid, "sleep")
    cat = wait_child_named(sh.pid, "cat")
    wait_blocked(sleeper, *SLEEP_CALLS)
    wait_blocked(cat, "read")
    wait_blocked(sh.pid, "wait4", "waitid")
    return [Target("sh waiting for `sleep 1000 | cat`", sh.pid),
            Target("cat reading from sleep", cat)]


def test_shell_pipeline(run_py, procs, tmp_path, run_cli) -> None:
    assert_all_healthy(run_cli, start_pipeline(Case(run_py, procs, tmp_path)))


# --- 8. an idle nginx -----------------------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ {location} }}
    }}
}}
"""


def start_nginx(case: Case) -> List[Target]:
    nginx = nginx_path()
    if nginx is None:  # the --all test leaves nginx out without it
        pytest.skip("nginx is not installed (.ci/run installs it: apt-get install nginx)")
    master, worker = run_nginx(nginx, case.procs, case.tmp_path, free_loopback_port(),
                               'return 200 "ok\\n";')
    wait_blocked(master.pid, *SIGSUSPEND_CALLS)
    return [Target("nginx master", master.pid), Target("nginx worker", worker)]


def run_nginx(nginx: str, procs, tmp_path, port: int, location: str):
    """nginx on 127.0.0.1:port in its own prefix under tmp_path, serving `location`; returns
    (master Popen, worker pid) once the worker waits in epoll."""
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    (prefix / "nginx.conf").write_text(NGINX_CONF.format(port=port, location=location))
    master = procs.spawn([nginx, "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr",
                          "-g", "daemon off; master_process on; pid tmp/nginx.pid; error_log stderr;"],
                         stdout=subprocess.DEVNULL)
    wait_until(lambda: master.poll() is not None or child_named(master.pid, "nginx") is not None,
               f"nginx {master.pid} starts its worker")
    assert master.poll() is None, f"nginx exited with status {master.returncode}; see its stderr"
    worker = wait_child_named(master.pid, "nginx")
    wait_blocked(worker, *EPOLL_CALLS)
    return master, worker


def test_idle_nginx(run_py, procs, tmp_path, run_cli) -> None:
    assert_all_healthy(run_cli, start_nginx(Case(run_py, procs, tmp_path)))


# --- 9. a queue.Queue worker pool ---------------------------------------------------------

# Workers wait in q.get() (a Python Condition: futexes with no owner); the main thread
# join()s them; the producer sleeps and will put work, later.
QUEUE_POOL = """
import queue, threading
q = queue.Queue()

def work():
    while True:
        item = q.get()
        if item is None:
            return

def produce():
    time.sleep(3600)  # it will put work, later
    for _ in workers:
        q.put(None)

workers = [threading.Thread(target=work) for _ in range(3)]
for t in workers + [threading.Thread(target=produce, daemon=True)]:
    t.start()
ready("pool")
for t in workers:
    t.join()
"""


def start_queue_pool(case: Case) -> List[Target]:
    prog = case.run_py(QUEUE_POOL)
    prog.ready()
    wait_threads(prog.pid, futex=4, sleep=1)  # three workers in q.get(), main in join()
    return [Target("queue.Queue workers idle, a producer sleeps", prog.pid)]


def test_queue_worker_pool(run_py, procs, tmp_path, run_cli) -> None:
    assert_all_healthy(run_cli, start_queue_pool(Case(run_py, procs, tmp_path)))


# --- 10. a selectors loop on a listener and its own self-pipe --------------------------------

# A SIGTERM handler and signal.set_wakeup_fd on its own pipe: the loop wakes when a signal
# comes. "listener": it also serves a loopback listener; "self-pipe": it only waits for
# signals (like the asyncio daemon), a wait that only a signal from outside can end.
SELECTOR_LOOP = """
import selectors
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
sel = selectors.DefaultSelector()
sel.register(r, selectors.EVENT_READ)
listener = socket.socket()
if sys.argv[1] == "listener":
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    sel.register(listener, selectors.EVENT_READ)
ready("selecting")
while True:
    for key, _ in sel.select():
        if key.fileobj is listener:
            listener.accept()[0].close()
        else:
            os.read(r, 100)
"""


def start_selector_loop(case: Case, variant: str) -> List[Target]:
    prog = case.run_py(SELECTOR_LOOP, variant)
    prog.ready()
    wait_blocked(prog.pid, *EPOLL_CALLS)
    return [Target(f"selectors loop on its self-pipe ({variant})", prog.pid)]


@pytest.mark.parametrize("variant", ["listener", "self-pipe"])
def test_selector_loop_on_its_self_pipe(run_py, procs, tmp_path, run_cli, variant) -> None:
    assert_all_healthy(run_cli, start_selector_loop(Case(run_py, procs, tmp_path), variant))


# --- 11. all of them at once, through --all -------------------------------------------------

# Every case; make and nginx only where installed (their own tests say when they are not).
BUILDERS: List[Callable[[Case], List[Target]]] = [
    lambda c: start_thread_channel(c, "pipe", "main"),
    lambda c: start_thread_channel(c, "pipe", "worker"),
    lambda c: start_thread_channel(c, "socketpair", "main"),
    lambda c: start_thread_channel(c, "socketpair", "worker"),
    lambda c: start_thread_tcp(c, "main"),
    lambda c: start_thread_tcp(c, "worker"),
    start_wait_with_drainer,
    lambda c: start_asyncio(c, "plain"),
    lambda c: start_asyncio(c, "server"),
    start_pipeline,
    start_queue_pool,
    lambda c: start_selector_loop(c, "listener"),
    lambda c: start_selector_loop(c, "self-pipe"),
]
if shutil.which("make"):
    BUILDERS += [lambda c: start_make(c, 3), lambda c: start_make(c, 2)]
if nginx_path():
    BUILDERS.append(start_nginx)


def test_all_at_once_through_all(run_py, procs, tmp_path, run_cli) -> None:
    case = Case(run_py, procs, tmp_path)
    targets: List[Target] = []
    for build in BUILDERS:
        targets += build(case)
    ours = set(procs.descendants()) | {t.pid for t in targets}

    result = run_cli("--all", "--json", "--no-stacks")

    assert "internal error" not in result.err, result.err
    assert result.out, f"no JSON output; stderr: {result.err}"
    data = json.loads(result.out)
    claims = deadlock_claims(data, ours)
    names = {t.pid: t.what for t in targets}
    assert claims == [], "our healthy processes called deadlocked:\n" + "\n".join(
        describe_claim(claim, names) for claim in claims)
    if not deadlock_claims(data):  # no foreign deadlock either: the run as a whole is clean
        assert result.code == 0, result.err
    for target in targets:  # looking disturbed nothing: every process still sleeps where it did
        assert process_state(target.pid) == "S", target
