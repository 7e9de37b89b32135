"""Which of a start's chains its verdict speaks for: a wait that never ends by itself (a
signal nobody sends, an idle peer, a person) outranks a sibling's sleep with time left."""

from __future__ import annotations

import sys

from scenario_helpers import threads_in

from waitchain.demo.harness import children, wait_until

SLEEPS = ("clock_nanosleep", "nanosleep")


def test_a_shell_waiting_for_a_paused_and_a_sleeping_child_is_stuck_on_the_paused_one(procs, diagnose_pid) -> None:
    shell = procs.spawn(["bash", "-c", f"sleep 300 & {sys.executable} -c 'import signal; signal.pause()' & wait"])
    wait_until(lambda: len(children(shell.pid)) == 2, "both children started")
    kids = children(shell.pid)
    wait_until(lambda: all(threads_in(k, SLEEPS + ("pause", "rt_sigsuspend")) for k in kids), "both children asleep")
    paused = next(k for k in kids if threads_in(k, ("pause", "rt_sigsuspend")))
    data, code = diagnose_pid(shell.pid)
    assert code == 0
    (verdict,) = data["verdicts"]
    assert (verdict["class"], verdict["members"], verdict["end"]["kind"]) == ("chain-end", [shell.pid, paused], "signal")
