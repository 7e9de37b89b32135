"""Plain helpers shared by the tests that start real processes: small programs for run_py,
starting a program that holds given fds, the threads of a process asleep in some calls, and
lookups in the CLI's JSON. (Fixtures are in conftest.py. Functions live here because a
conftest cannot be imported reliably: every directory's conftest is the module `conftest`.)"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any, Dict, List, Sequence, Set

from waitchain.errors import WaitchainError
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.tasks import read_tasks

F_GETPIPE_SZ = 1032

# Programs for run_py (they run after conftest.PRELUDE: ready(), sleep_forever()).
SLEEPER = """
ready("sleeping")
sleep_forever()
"""

READER = """
fd = int(sys.argv[1])
ready("reading", fd)
os.read(fd, 1)
"""

POLLER = """
import select
p = select.poll()
for fd in sys.argv[1:]:
    p.register(int(fd), select.POLLIN)
ready("polling")
p.poll()
"""


def spawn_with(run_py, code: str, fds: List[int], *extra: str):
    """Start `code` holding `fds` (passed by number as argv)."""
    return run_py(code, *[str(fd) for fd in fds], *extra, pass_fds=fds)


def close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def read_lines(fd: int, count: int, timeout: float) -> List[List[str]]:
    """The first `count` lines a program writes to fd (its stdout, or a readiness pipe),
    each split into words."""
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no {count} lines on fd {fd} in time: the program is not ready")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError("the program exited before it was ready")
        buf += chunk
    return [line.split() for line in buf.decode().splitlines()[:count]]


def threads_in(pid: int, calls: Sequence[str]) -> Set[int]:
    """TIDs of pid's threads asleep (S) in one of `calls` (none if pid has gone)."""
    try:
        tasks = read_tasks(ProcFS(), pid)
    except WaitchainError:
        return set()
    return {t.tid for t in tasks if t.state == "S" and t.syscall is not None and t.syscall.name in calls}


# --- the CLI's JSON ---------------------------------------------------------------------------


def only_chain(data: Dict[str, Any]) -> Dict[str, Any]:
    assert len(data["chains"]) == 1, data["chains"]
    return data["chains"][0]


def edges_from(data: Dict[str, Any], pid: int) -> List[Dict[str, Any]]:
    return [e for e in data["edges"] if e["from"]["pid"] == pid]


def threads_of(data: Dict[str, Any], pid: int) -> List[Dict[str, Any]]:
    return next(p for p in data["processes"] if p["pid"] == pid)["threads"]


def thread_of(data: Dict[str, Any], pid: int, tid: int) -> Dict[str, Any]:
    return next(t for t in threads_of(data, pid) if t["tid"] == tid)


def only_thread(data: Dict[str, Any], pid: int) -> Dict[str, Any]:
    """The thread of a single-threaded process."""
    (found,) = threads_of(data, pid)
    return found


# --- live output checked against the contract ------------------------------------------------

def assert_schema_valid(data: Dict[str, Any]) -> None:
    """Live output (a retry edge, the job-slots advice) is valid waitchain/1."""
    import jsonschema
    from waitchain import __file__ as package

    with open(os.path.join(os.path.dirname(package), "data", "waitchain-1.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    document = {k: v for k, v in data.items() if k != "_code"}
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(document))
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]]


def diagnose_json(run_cli, pid: int) -> Dict[str, Any]:
    """The CLI's JSON for pid (no stacks), its exit code under "_code"."""
    result = run_cli(str(pid), "--json", "--no-stacks")
    assert "internal error" not in result.err, result.err
    data = json.loads(result.out)
    data["_code"] = result.code
    return data


def libc_of(pid: str = "self") -> str:
    """The path of the C library mapped by a process ("" when none is: a static program)."""
    with open(f"/proc/{pid}/maps") as f:
        return next((line.split()[-1] for line in f if "/libc.so" in line or "/libc-" in line), "")
