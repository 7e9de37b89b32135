"""Each wait rule runs isolated: a rule that raises (a bug) costs that thread's wait, which
becomes unknown with a note naming the rule, never the report (exit 70)."""

from __future__ import annotations

import json

from rule_fakes import FakeSnapshot, task

from waitchain import waits
from waitchain.demo.harness import wait_blocked
from waitchain.model import EndKind, Reason
from waitchain.waits import futex, wait_of


def broken_rule(snap, pid, thread):
    return {}["no such key"]  # a KeyError, as a bug in a rule would raise


def test_a_raising_rule_is_an_unknown_end_with_a_note(monkeypatch) -> None:
    monkeypatch.setitem(waits.RULES, "nanosleep", broken_rule)
    snap = FakeSnapshot()
    snap.add_process(10)
    wait = wait_of(snap, 10, task(11, "nanosleep"))
    assert wait.edges == () and wait.end is not None
    assert (wait.end.kind, wait.end.reason) == (EndKind.UNKNOWN, Reason.RULE_FAILED)
    assert "test_rule_isolation" in wait.end.detail and "KeyError" in wait.end.detail
    assert wait.syscall == "nanosleep" and wait.what == "nanosleep()"
    (note,) = snap.notes
    assert "test_rule_isolation" in note and "KeyError" in note and "thread 11 of process 10" in note


def test_a_rule_module_is_named_by_its_module(monkeypatch) -> None:
    snap = FakeSnapshot()
    snap.add_process(10)

    def fail(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(futex, "_follow", fail)  # inside the futex rule
    wait = wait_of(snap, 10, task(11, "futex", 0x1000, 128, 2))
    assert wait.end.reason == Reason.RULE_FAILED and "the futex rule" in wait.end.detail
    assert "RuntimeError" in wait.end.detail and "test_rule_isolation.py" in wait.end.detail


def test_every_wait_names_its_call() -> None:
    snap = FakeSnapshot()
    snap.add_process(10)
    assert wait_of(snap, 10, task(11, "nanosleep")).syscall == "nanosleep"
    assert wait_of(snap, 10, task(11, "io_uring_enter")).syscall == "io_uring_enter"  # not followed
    running = task(12, "read", state="R")
    assert wait_of(snap, 10, running).syscall == "read"


def test_the_cli_reports_the_rest(monkeypatch, run_py, run_cli) -> None:
    """A real sleeping process whose sleep rule raises: the report is still written (exit 0)."""
    program = run_py("""
        ready("sleeping")
        sleep_forever()
        """)
    program.ready()
    wait_blocked(program.pid, "clock_nanosleep", "nanosleep", "pselect6")
    for call in ("clock_nanosleep", "nanosleep", "pselect6"):
        monkeypatch.setitem(waits.RULES, call, broken_rule)
    result = run_cli(str(program.pid), "--json", "--no-stacks")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    (thread,) = [t for p in data["processes"] if p["pid"] == program.pid for t in p["threads"]]
    assert thread["end"]["reason"] == "rule-failed"
    assert any("wait rule" in note and "KeyError" in note for note in data["notes"])
