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
import subprocess
from typing import Any, Dict, List

import pytest
from scenario_helpers import threads_in
from test_false_alarms import SLEEP_CALLS, Target, assert_healthy

from waitchain.demo.harness import wait_blocked, wait_until


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
