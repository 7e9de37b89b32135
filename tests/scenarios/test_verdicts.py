"""Verdicts on real deadlocks and the statements waitchain makes about them (issue 8).

Each test starts real processes in a real deadlock (or in a state where a confident claim
would be false), waits until /proc shows every thread in its call, and checks the verdict
layer's contract in `--json` (waitchain/1): `verdicts` (one per incident, worst first:
class, members, threads, cause, advice, confirmed), `root_cause` equal to the first
verdict's cause, the same whichever member the diagnosis starts from, and exit code 1 iff
a deadlock verdict is found."""

from __future__ import annotations

import json
import os
import pkgutil
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set, Tuple

import pytest
from scenario_helpers import POLLER, READER, SLEEPER, close, read_lines, spawn_with, threads_in
from test_locks_mutex import ABBA, compile_c, needs_gcc, thread_ids

import waitchain
from waitchain import cli
from waitchain.demo import scenario
from waitchain.demo.harness import wait_blocked, wait_child, wait_until

NOBODY = 65534
PR_SET_DUMPABLE = 4
POLL_CALLS = ("poll", "ppoll")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
needs_unshare = pytest.mark.skipif(
    not any(os.access(os.path.join(d, "unshare"), os.X_OK) for d in os.environ.get("PATH", "").split(":")),
    reason="unshare (util-linux) is not installed")


# --- the verdict contract in the JSON ------------------------------------------------------


def verdicts_of(data: Dict[str, Any]) -> List[Dict[str, Any]]:
    assert "verdicts" in data, f"no 'verdicts' in the JSON (keys: {sorted(data)})"
    return data["verdicts"]


def deadlock_verdicts(data: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [v for v in verdicts_of(data) if v["class"] == "deadlock"]


def members(verdict: Dict[str, Any]) -> FrozenSet[int]:
    return frozenset(verdict["members"])


def threads(verdict: Dict[str, Any]) -> Set[Tuple[int, int]]:
    return {(t["pid"], t["tid"]) for t in verdict["threads"]}


def cause(found: Optional[Dict[str, Any]]) -> Optional[Tuple[int, int, str]]:
    """(pid, tid, syscall) of a root cause or a verdict's cause."""
    return None if found is None else (found["pid"], found["tid"], found["syscall"])


def check_contract(data: Dict[str, Any], code: int) -> None:
    """What holds for every diagnosis: well-formed verdicts, worst first; root_cause is the
    first verdict's cause; exit 1 iff some verdict is a deadlock."""
    found = verdicts_of(data)
    assert found, "no verdict at all"
    for v in found:
        assert v["class"] in ("deadlock", "cycle", "chain-end", "nothing"), v
        assert isinstance(v["advice"], str) and v["advice"], v
        assert isinstance(v["headline"], str) and v["headline"], v
        assert isinstance(v["now"], list) and isinstance(v["fix"], list), v
        assert isinstance(v["confirmed"], bool), v
    if any(v["class"] == "deadlock" for v in found):
        assert found[0]["class"] == "deadlock", "a deadlock verdict is not first"
    assert cause(data["root_cause"]) == cause(found[0]["cause"])
    assert code == (1 if deadlock_verdicts(data) else 0)


def edge_set(data: Dict[str, Any]) -> Set[Tuple[int, int, str]]:
    return {(e["from"]["pid"], e["to"]["pid"], e["kind"]) for e in data["edges"]}


def thread_entry(data: Dict[str, Any], pid: int, tid: int) -> Dict[str, Any]:
    process = next(p for p in data["processes"] if p["pid"] == pid)
    return next(t for t in process["threads"] if t["tid"] == tid)


# --- the text output -----------------------------------------------------------------------


def text_root_cause(out: str) -> Tuple[int, int]:
    """(pid, tid) named on the first "root cause:" line: `PID prog [thread TID] in call()`."""
    line = next((ln for ln in out.splitlines() if ln.lstrip().startswith("root cause:")), None)
    assert line is not None, f"no 'root cause:' line in:\n{out}"
    rest = line.split("root cause:", 1)[1]
    pid = re.match(r"\s*(\d+)", rest)
    assert pid, f"the root cause line names no pid: {line!r}"
    tid = re.search(r"\b(?:thread|tid|TID)\s+(\d+)", rest) or re.match(r"\s*\d+/(\d+)", rest)
    return int(pid.group(1)), int(tid.group(1)) if tid else int(pid.group(1))


# --- helpers: programs, namespaces ---------------------------------------------------------


def start_c(procs, tmp_path: Path, name: str, source: str, prefix: Tuple[str, ...] = ()) -> subprocess.Popen:
    exe = compile_c(tmp_path, name, source)
    return procs.spawn([*prefix, exe], stdout=subprocess.PIPE)


def ns_to_host_tids(host_pid: int) -> Dict[int, int]:
    """The tids of host_pid's threads inside its own (innermost) pid namespace → host tids."""
    mapping = {}
    for tid in os.listdir(f"/proc/{host_pid}/task"):
        with open(f"/proc/{host_pid}/task/{tid}/status") as f:
            nspid = next(ln for ln in f if ln.startswith("NSpid:")).split()[1:]
        mapping[int(nspid[-1])] = int(tid)
    return mapping


UNSHARE_PID = ("unshare", "--pid", "--fork", "--mount-proc")


# --- 1. the demo, from each of its four processes ------------------------------------------


def test_demo_same_root_cause_from_every_member(procs, diagnose_pid, run_cli) -> None:
    """wrapper → client → server ⇄ child: the knot is {server, child} and the bug is the
    server's wait4 on a child whose output it does not read, whichever pid we start from."""
    pids = scenario.start(procs)
    server, child = pids.server, pids.child
    starts = {"wrapper": pids.wrapper, "client": pids.client, "server": server, "child": child}

    seen, expected = {}, {}
    for role, pid in starts.items():
        data, code = diagnose_pid(pid)
        first = (data.get("verdicts") or [{}])[0]
        text = run_cli(str(pid), "--no-stacks", "--width", "200")
        seen[role] = (code, cause(data["root_cause"]), first.get("class"),
                      sorted(first.get("members", [])), cause(first.get("cause")),
                      text.code, text_root_cause(text.out)[0])
        expected[role] = (1, (server, server, "wait4"), "deadlock", sorted([server, child]),
                          (server, server, "wait4"), 1, server)
    assert seen == expected

    data, code = diagnose_pid(child)
    check_contract(data, code)
    first = verdicts_of(data)[0]
    assert threads(first) == {(server, server), (child, child)}
    assert first["advice"] == "read-before-wait"
    assert first["confirmed"] is True


# --- 2. a broker knot: an OR wait whose every alternative is stuck -------------------------


BROKER = POLLER  # polls every client for a request

CLIENT = """
sock = socket.socket(fileno=int(sys.argv[1]))
ready("waiting for the reply")
sock.recv(1)
"""


def _socket_pairs(transport: str) -> List[Tuple[socket.socket, socket.socket]]:
    """Two connected pairs: (broker's end, client's end)."""
    if transport == "unix":
        return [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        pairs = []
        for _ in range(2):
            client = socket.create_connection(listener.getsockname())
            pairs.append((listener.accept()[0], client))
        return pairs


def start_broker_knot(run_py, transport: str, broker_last: bool) -> Tuple[int, int, int]:
    """(broker, c1, c2), all blocked. With broker_last the clients (normally) get the lower
    pids and the broker polls c2 before c1: a ring walk that starts at the lowest pid and
    takes the first successor goes c1 → broker → c2 and finds no edge back to c1."""
    (b1, s1), (b2, s2) = _socket_pairs(transport)
    polled = [b2.fileno(), b1.fileno()] if broker_last else [b1.fileno(), b2.fileno()]
    broker = None if broker_last else run_py(BROKER, *map(str, polled), pass_fds=polled)
    c1 = spawn_with(run_py, CLIENT, [s1.fileno()])
    c2 = spawn_with(run_py, CLIENT, [s2.fileno()])
    broker = broker or run_py(BROKER, *map(str, polled), pass_fds=polled)
    for sock in (b1, s1, b2, s2):
        sock.close()
    for program in (broker, c1, c2):
        program.ready()
    wait_blocked(broker.pid, *POLL_CALLS)
    wait_blocked(c1.pid, "recvfrom")
    wait_blocked(c2.pid, "recvfrom")
    return broker.pid, c1.pid, c2.pid


@pytest.mark.parametrize("broker_last", [False, True], ids=["broker-first", "broker-last"])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_broker_knot_is_one_deadlock(run_py, diagnose_pid, transport: str, broker_last: bool) -> None:
    """The broker polls both clients for a request; both clients wait in recv for the
    broker's reply. Nobody has sent anything: a knot of three, whichever pid we start from."""
    broker, c1, c2 = start_broker_knot(run_py, transport, broker_last)
    knot = sorted([broker, c1, c2])

    seen: Dict[str, Any] = {}
    expected: Dict[str, Any] = {}
    for role, pid in (("broker", broker), ("c1", c1), ("c2", c2)):
        try:
            data, code = diagnose_pid(pid)
        except AssertionError as exc:  # no JSON at all: an internal error
            seen[role] = str(exc).splitlines()[0]
        else:
            found = [sorted(v["members"]) for v in data.get("verdicts", []) if v["class"] == "deadlock"]
            seen[role] = (code, found, (data.get("root_cause") or {}).get("pid"))
        expected[role] = (1, [knot], broker)
    assert seen == expected

    check_contract(data, code)
    assert edge_set(data) == {(broker, c1, transport), (broker, c2, transport),
                              (c1, broker, transport), (c2, broker, transport)}
    (verdict,) = deadlock_verdicts(data)
    assert threads(verdict) == {(pid, pid) for pid in knot}


def test_broker_knot_text_has_no_internal_error(run_py, run_cli) -> None:
    broker, c1, c2 = start_broker_knot(run_py, "unix", broker_last=True)

    for pid in (broker, c1, c2):
        result = run_cli(str(pid), "--no-stacks", "--width", "200")
        assert (result.code, result.err) == (1, ""), f"from {pid}"
        assert "DEADLOCK" in result.out
        assert text_root_cause(result.out)[0] == broker, f"from {pid}"


# --- 3. --all: one verdict per deadlock ----------------------------------------------------


def _pipe_pair(run_py) -> Tuple[int, int]:
    """A reads a pipe only B writes; B reads a pipe only A writes."""
    ab_r, ab_w = os.pipe()  # A → B
    ba_r, ba_w = os.pipe()  # B → A
    a = spawn_with(run_py, READER, [ba_r, ab_w])
    b = spawn_with(run_py, READER, [ab_r, ba_w])
    close(ab_r, ab_w, ba_r, ba_w)
    a.ready(), b.ready()
    wait_blocked(a.pid, "read")
    wait_blocked(b.pid, "read")
    return a.pid, b.pid


def test_all_gives_one_verdict_per_deadlock(run_py, run_cli) -> None:
    pairs = [frozenset(_pipe_pair(run_py)) for _ in range(3)]
    ours = frozenset().union(*pairs)

    result = run_cli("--all", "--json", "--no-stacks")

    assert result.code == 1, result.err
    data = json.loads(result.out)
    check_contract(data, result.code)
    touching = [members(v) for v in deadlock_verdicts(data) if members(v) & ours]
    assert sorted(map(sorted, touching)) == sorted(map(sorted, pairs))
    for pair in pairs:
        (verdict,) = [v for v in deadlock_verdicts(data) if members(v) == pair]
        assert verdict["cause"] is not None and verdict["cause"]["pid"] in pair
        assert verdict["headline"] and verdict["now"] and verdict["fix"]

    text = run_cli("--all", "--no-stacks", "--width", "200")
    assert text.code == 1
    named = {int(m) for m in re.findall(r"^\s*root cause:\s+(\d+)", text.out, re.M)}
    assert [bool(named & pair) for pair in pairs] == [True, True, True], text.out


# --- 4. a pthread ABBA: text and JSON name the same thread ---------------------------------


@needs_gcc
def test_abba_text_and_json_name_the_same_thread(procs, diagnose_pid, run_cli, tmp_path) -> None:
    proc = start_c(procs, tmp_path, "abba", ABBA)
    tids = thread_ids(proc, 2)
    one, two = tids["one"], tids["two"]
    wait_until(lambda: threads_in(proc.pid, ("futex",)) >= {proc.pid, one, two}, "all three threads wait")

    data, code = diagnose_pid(proc.pid)
    text = run_cli(str(proc.pid), "--no-stacks", "--width", "200")

    assert (code, text.code) == (1, 1)
    json_tid = data["root_cause"]["tid"]
    assert json_tid in (one, two)  # a thread of the ABBA, not the main thread joining one
    assert text_root_cause(text.out) == (proc.pid, json_tid)
    check_contract(data, code)
    first = verdicts_of(data)[0]
    assert (first["class"], first["members"]) == ("deadlock", [proc.pid])
    assert threads(first) == {(proc.pid, one), (proc.pid, two)}
    assert first["cause"]["tid"] == json_tid
    assert first["advice"] == "lock-order"
    assert first["confirmed"] is True


# --- 5. pid namespaces: numbers read inside the target are translated ----------------------


@needs_root
@needs_gcc
@needs_unshare
def test_abba_inside_a_pid_namespace(procs, diagnose_pid, tmp_path) -> None:
    unshare = start_c(procs, tmp_path, "abba", ABBA, prefix=UNSHARE_PID)
    ns_tids = thread_ids(unshare, 2)
    host = wait_child(unshare.pid)
    to_host = ns_to_host_tids(host)
    assert to_host[1] == host  # the program is the namespace's pid 1
    one, two = to_host[ns_tids["one"]], to_host[ns_tids["two"]]
    assert (one, two) != (ns_tids["one"], ns_tids["two"])  # else nothing is tested
    wait_until(lambda: threads_in(host, ("futex",)) >= {host, one, two}, "all three threads wait")

    data, code = diagnose_pid(host)

    assert code == 1
    check_contract(data, code)
    mutex = {(e["from"]["tid"], e["to"]["tid"]) for e in data["edges"] if e["kind"] == "mutex"}
    assert mutex == {(one, two), (two, one)}
    join = [(e["from"]["tid"], e["to"]["tid"]) for e in data["edges"] if e["kind"] == "join"]
    assert join == [(host, one)]
    (verdict,) = deadlock_verdicts(data)
    assert threads(verdict) == {(host, one), (host, two)}


NS_WAIT_FOR_WRITER = """
import os, subprocess, sys
ready_fd = int(sys.argv[1])
p = subprocess.Popen([sys.executable, "-c", "import os; os.write(1, b'x' * (1 << 20))"],
                     stdout=subprocess.PIPE)
os.write(ready_fd, b"waiting\\n")
p.wait()
"""


@needs_root
@needs_unshare
def test_wait_for_child_inside_a_pid_namespace(procs, diagnose_pid) -> None:
    """The demo's bug inside `unshare --pid`: the parent waits for child 2 (a namespace
    pid), which is blocked writing a full pipe only the parent reads."""
    r, w = os.pipe()
    try:
        unshare = procs.spawn([*UNSHARE_PID, sys.executable, "-c", NS_WAIT_FOR_WRITER, str(w)],
                              pass_fds=[w])
        os.close(w)
        read_lines(r, 1, 15.0)
    finally:
        os.close(r)
    parent = wait_child(unshare.pid)
    child = wait_child(parent)
    wait_blocked(parent, "wait4")
    wait_blocked(child, "write")
    assert ns_to_host_tids(child) == {2: child}  # wait4's argument is 2, not the host pid

    data, code = diagnose_pid(parent)

    assert code == 1
    assert (parent, child, "child") in edge_set(data)
    assert (child, parent, "pipe") in edge_set(data)
    check_contract(data, code)
    (verdict,) = deadlock_verdicts(data)
    assert members(verdict) == {parent, child}
    assert cause(verdict["cause"]) == (parent, parent, "wait4")


# --- 6. a single thread reading a pipe only it can write -----------------------------------


SELF_READ_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    int p[2];
    char c;
    if (pipe(p)) return 2;
    dprintf(1, "reading %d holding %d\n", p[0], p[1]);
    return (int)read(p[0], &c, 1);
}
"""


def _self_reader_python(procs, run_py, tmp_path: Path) -> int:
    program = run_py("""
        r, w = os.pipe()
        ready("reading", r, "holding", w)
        os.read(r, 1)
        """)
    program.ready()
    return program.pid


def _self_reader_c(procs, run_py, tmp_path: Path) -> int:
    if not any(os.access(os.path.join(d, "gcc"), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
        pytest.skip("gcc is not installed")
    proc = start_c(procs, tmp_path, "selfread", SELF_READ_C)
    assert proc.stdout is not None
    read_lines(proc.stdout.fileno(), 1, 15.0)
    return proc.pid


@pytest.mark.parametrize("start", [_self_reader_python, _self_reader_c], ids=["python", "c"])
def test_single_thread_reading_its_own_pipe(procs, run_py, diagnose_pid, tmp_path,
                                            start: Callable[..., int]) -> None:
    pid = start(procs, run_py, tmp_path)
    wait_blocked(pid, "read")
    assert len(os.listdir(f"/proc/{pid}/task")) == 1

    data, code = diagnose_pid(pid)

    assert code == 1
    check_contract(data, code)
    (verdict,) = deadlock_verdicts(data)
    assert verdict["members"] == [pid]
    assert threads(verdict) == {(pid, pid)}
    assert cause(verdict["cause"]) == (pid, pid, "read")
    assert verdict["advice"] == "close-own-write-end"


# --- 7. confident statements that would be false -------------------------------------------


STDIO_LOCK = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#define HOLDER_STACK ((void *)0x100000000UL)  /* 4 GiB: the low 32 bits of its TCB look like a TID */
#define STACK_SIZE (1UL << 20)
static pthread_barrier_t holding;
static void *holder(void *unused) {
    flockfile(stdout);  /* stdio's _IO_lock_t: {int lock; int cnt; void *owner} */
    dprintf(1, "holder %ld\n", (long)syscall(SYS_gettid));
    pthread_barrier_wait(&holding);
    for (;;) sleep(3600);
    return unused;
}
static void *waiter(void *unused) {
    pthread_barrier_wait(&holding);
    dprintf(1, "waiter %ld\n", (long)syscall(SYS_gettid));
    flockfile(stdout);
    return unused;
}
int main(void) {
    pthread_t h, w;
    pthread_attr_t attr;
    void *stack = mmap(HOLDER_STACK, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (stack != HOLDER_STACK) return 2;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, STACK_SIZE);
    pthread_barrier_init(&holding, 0, 2);
    pthread_create(&h, &attr, holder, 0);
    pthread_create(&w, 0, waiter, 0);
    pthread_join(w, 0);
    return 0;
}
"""


def _futex_words(pid: int, tid: int) -> Tuple[int, int, int]:
    """The three ints at the futex address a blocked thread waits on (its first syscall
    argument): a pthread mutex's lock, count and owner TID, read as a naive rule would."""
    with open(f"/proc/{pid}/task/{tid}/syscall") as f:
        addr = int(f.read().split()[1], 16)
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(addr)
        raw = mem.read(12)
    lock, count, owner = (int.from_bytes(raw[i:i + 4], sys.byteorder, signed=True) for i in (0, 4, 8))
    return lock, count, owner


@needs_gcc
def test_stdio_lock_is_not_read_as_a_pthread_mutex(procs, diagnose_pid, tmp_path) -> None:
    """flockfile(stdout) held by a sleeping thread: the waiter blocks on a futex whose value
    is 2, but stdio's lock has an owner pointer where a mutex has an owner TID."""
    proc = start_c(procs, tmp_path, "stdiolock", STDIO_LOCK)
    tids = thread_ids(proc, 2)
    holder, waiter = tids["holder"], tids["waiter"]
    wait_until(lambda: waiter in threads_in(proc.pid, ("futex",)), "the waiter blocks on the stdio lock")
    wait_until(lambda: holder in threads_in(proc.pid, ("clock_nanosleep", "nanosleep")), "the holder sleeps")
    lock, _, owner = _futex_words(proc.pid, waiter)
    # What a pthread mutex would show: contended, and a positive "owner TID" (the low half of
    # the holder's thread pointer, placed at 4 GiB by the program) that is no thread of ours.
    assert lock == 2 and 0 < owner < 1 << 22, (lock, owner)

    data, code = diagnose_pid(proc.pid)

    own = {int(t) for t in os.listdir(f"/proc/{proc.pid}/task")}
    bogus = [e for e in data["edges"] if e["kind"] == "mutex" and e["to"]["tid"] not in own]
    assert bogus == []
    mutex = [e["to"]["tid"] for e in data["edges"] if e["kind"] == "mutex" and e["from"]["tid"] == waiter]
    assert mutex in ([], [holder])  # if it names an owner at all, the one that holds the lock
    end = thread_entry(data, proc.pid, waiter).get("end") or {}
    assert end.get("reason") != "owner-exited", end
    assert "exited holding" not in json.dumps(end), end
    assert code == 0
    assert data["deadlock"] is False


def _import_all_of_waitchain() -> None:
    """As nobody, the interpreter's own files may be unreadable: import everything first."""
    for module in pkgutil.walk_packages(waitchain.__path__, "waitchain."):
        if not module.name.startswith("waitchain.demo.") and not module.name.endswith("__main__"):
            __import__(module.name)


def run_as_nobody(argv: List[str], tmp_path: Path) -> Tuple[int, str, str]:
    """cli.main(argv) in a forked child that has dropped to uid/gid 65534: (code, out, err)."""
    _import_all_of_waitchain()
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            code = 98
            try:
                sys.stdout, sys.stderr = out, err
                os.setgroups([])
                os.setresgid(NOBODY, NOBODY, NOBODY)
                os.setresuid(NOBODY, NOBODY, NOBODY)
                code = cli.main(argv)
            except BaseException as exc:  # nothing may escape a forked child
                err.write(f"child failed: {exc!r}\n")
                code = 99
            finally:
                out.flush()
                err.flush()
                os._exit(code)
    _, status = os.waitpid(child, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return code, out_path.read_text(), err_path.read_text()


NOBODY_READER = f"""
fd = int(sys.argv[1])
os.setgroups([])
os.setresgid({NOBODY}, {NOBODY}, {NOBODY})
os.setresuid({NOBODY}, {NOBODY}, {NOBODY})
libc.prctl({PR_SET_DUMPABLE}, 1, 0, 0, 0)  # a uid change clears it: /proc/PID/fd would be root's
ready("reading", fd)
os.read(fd, 1)
"""


@needs_root
def test_unreadable_writer_is_unknown_not_nobody(run_py, wait_sleeping, tmp_path) -> None:
    """Run as nobody on nobody's reader whose pipe's write end a root process holds: the
    holder could not be looked for, which is not the same as there being none."""
    r, w = os.pipe()
    reader = spawn_with(run_py, NOBODY_READER, [r])
    writer = run_py(SLEEPER, pass_fds=[w])
    close(r, w)
    reader.ready(), writer.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(writer.pid)
    assert os.stat(f"/proc/{reader.pid}").st_uid == NOBODY
    assert os.stat(f"/proc/{writer.pid}").st_uid == 0

    code, out, err = run_as_nobody([str(reader.pid), "--json", "--no-stacks"], tmp_path)

    assert code == 0, err
    data = json.loads(out)
    end = thread_entry(data, reader.pid, reader.pid)["end"]
    assert end.get("reason") == "not-readable", end
    assert "no process holds" not in json.dumps(data)
    assert data["deadlock"] is False
