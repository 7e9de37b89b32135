"""Real GNU make -j hangs (issue 9): the chain from make through its recipe shells to the
blocked command, and the verdict.

- Two recipes take two flock(1) locks in opposite orders: DEADLOCK (exit 1) of the six
  lock holders and waiters, make stuck behind it; the chain from make runs into the cycle.
- make -j2 with two recipes reading a FIFO whose writer is a third recipe make cannot start
  (no free job slot): make waits in pselect6 for a jobserver token, the readers in open():
  JOB SLOTS, not a plain "nobody opened the FIFO" (exit 0: the writer might come from
  elsewhere). The same FIFO readers under a make with nothing left to start (wait4) keep
  the plain FIFO verdict.
- A recipe waiting for a lock another recipe holds while it sleeps: the chain goes from
  make to the holder's sleep."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List

import pytest
from scenario_helpers import assert_schema_valid, diagnose_json, edges_from

from waitchain.demo.harness import blocked_in, children, wait_blocked, wait_until

SLEEPS = ("clock_nanosleep", "nanosleep")


def _make() -> str:
    found = shutil.which("make")
    if found is None:
        pytest.skip("GNU make is not installed (.ci/run installs it)")
    return found


def cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode() for w in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def only_child(pid: int) -> int:
    """The one child of a recipe's shell, once it runs its own program: just forked, it
    still shows the shell's command line (a cat taken for the sleeper was a flaky wait)."""
    def started() -> bool:
        kids = children(pid)
        return len(kids) == 1 and cmdline(kids[0]) not in ([], cmdline(pid))

    wait_until(started, f"{pid} has started its child's program")
    (child,) = children(pid)
    return child


# --- two recipes, two flocks, opposite orders ---------------------------------------------

ABBA = """\
all: a b
a:
\tflock lk1 sh -c 'touch a.ready; while [ ! -e b.ready ]; do sleep 0.01; done; exec flock lk2 true'
b:
\tflock lk2 sh -c 'touch b.ready; while [ ! -e a.ready ]; do sleep 0.01; done; exec flock lk1 true'
"""


def test_make_j2_recipes_taking_flocks_in_opposite_orders_deadlock(procs, tmp_path, run_cli) -> None:
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed (util-linux)")
    (tmp_path / "Makefile").write_text(ABBA)
    make = procs.spawn([_make(), "-s", "-j2"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # make's /bin/sh -c execs the recipe's flock(1): wait for both
    wait_until(lambda: [cmdline(p)[:1] for p in children(make.pid)] == [["flock"]] * 2, "make runs both recipes")
    outer = {cmdline(p)[1]: p for p in children(make.pid)}  # flock lk1 ..., flock lk2 ...
    # each outer flock(1) runs sh, which execs the inner flock of the other lock
    inner = {lock: only_child(pid) for lock, pid in outer.items()}
    wait_until(lambda: all(blocked_in(p, ("flock",)) and cmdline(p)[:2] == ["flock", other]
                           for (lock, p), other in zip(sorted(inner.items()), ("lk2", "lk1"))),
               "each inner flock waits for the other recipe's lock")
    wait_blocked(make.pid, "wait4")
    data = diagnose_json(run_cli, make.pid)
    assert data["_code"] == 1 and data["deadlock"] is True, data["verdicts"]
    (verdict,) = [v for v in data["verdicts"] if v["class"] == "deadlock"]
    knot = sorted(list(outer.values()) + list(inner.values()))
    assert verdict["members"] == knot and verdict["victims"] == [make.pid], verdict
    assert verdict["culprit"] in inner.values(), verdict  # killing a waiting inner flock ends it
    # make waits for a recipe, its outer flock for the inner one, which waits for the lock the
    # other recipe's flocks hold (both: they share the locked file), and round again
    a_out, a_in, b_out, b_in = outer["lk1"], inner["lk1"], outer["lk2"], inner["lk2"]
    paths = [c["path"] for c in data["chains"]]
    assert [make.pid, a_out, a_in, b_out, b_in] in [p[:5] for p in paths], paths
    assert all(c["end"]["kind"] == "cycle" for c in data["chains"]), data["chains"]
    assert {e["kind"] for e in edges_from(data, a_in)} == {"flock"}
    assert sorted(e["to"]["pid"] for e in edges_from(data, a_in)) == sorted([b_out, b_in])


# --- FIFO readers holding the job slots their writer needs --------------------------------

FIFO_MAKEFILE = """\
all: {targets}
{readers}
writer:
\techo hi > fifo
"""


def start_fifo_make(procs, tmp_path, jobs: int, readers: int, sleeper: bool = False):
    """make -jJOBS running `readers` recipes that read the FIFO (and, with `sleeper`, one
    that sleeps instead of the last reader); the writer's recipe comes last, started only
    once a slot is free. Returns make, the recipes' shells, the readers' cats."""
    names = [f"r{i}" for i in range(readers)]
    targets = " ".join(names + (["writer"] if jobs <= readers else []))
    recipes = "".join(f"{n}:\n\tcat fifo > /dev/null\n" for n in names)
    if sleeper:
        recipes = recipes.replace("cat fifo > /dev/null\n", "sleep 3600 > /dev/null\n", 1)
    (tmp_path / "Makefile").write_text(FIFO_MAKEFILE.format(targets=targets, readers=recipes))
    os.mkfifo(tmp_path / "fifo")
    make = procs.spawn([_make(), "-s", f"-j{jobs}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    wait_until(lambda: len(children(make.pid)) == readers, f"make runs {readers} recipes")
    shells = sorted(children(make.pid))
    kids = [only_child(sh) for sh in shells]
    cats = [k for k in kids if cmdline(k)[:1] == ["cat"]]
    for kid in kids:
        wait_blocked(kid, *(("openat", "open") if kid in cats else SLEEPS))
    return make, shells, cats


def test_make_j2_fifo_readers_holding_the_slots_their_writer_needs(procs, tmp_path, run_cli) -> None:
    make, shells, cats = start_fifo_make(procs, tmp_path, jobs=2, readers=2)
    wait_blocked(make.pid, "pselect6", "select")
    data = diagnose_json(run_cli, make.pid)
    assert data["_code"] == 0 and data["deadlock"] is False, data["verdicts"]
    (verdict,) = data["verdicts"]
    assert (verdict["class"], verdict["advice"], verdict["culprit"]) == ("chain-end", "job-slots", None), verdict
    path = verdict["members"]
    assert path in ([make.pid, shells[0], cats[0]], [make.pid, shells[1], cats[1]]), path
    assert verdict["end"]["kind"] == "idle" and verdict["end"]["reason"] == "fifo-open"
    assert data["root_cause"]["pid"] == path[-1] and data["root_cause"]["syscall"] in ("openat", "open")
    slot = verdict["ring"][-1]  # make's wait for a jobserver token
    assert (slot["from"]["pid"], slot["kind"], slot["alternative"] is not None) == (make.pid, "pipe", True), slot
    text = run_cli(str(make.pid), "--no-stacks").out
    assert f"JOB SLOTS: {make.pid} make waits for a free job slot" in text, text
    assert_schema_valid(data)
    assert "larger -j" in text


def test_fifo_readers_under_a_make_with_nothing_left_to_start_keep_the_fifo_verdict(
        procs, tmp_path, run_cli) -> None:
    """make -j3 started both readers and the writer has no recipe: make waits in wait4, the
    FIFO's writer is not make's to start."""
    make, _, cats = start_fifo_make(procs, tmp_path, jobs=3, readers=2)
    wait_blocked(make.pid, "wait4")
    data = diagnose_json(run_cli, make.pid)
    assert data["_code"] == 0 and data["deadlock"] is False
    (verdict,) = data["verdicts"]
    assert verdict["advice"] == "fifo" and verdict["members"][-1] in cats, verdict


# --- a recipe waiting for a lock a sleeping recipe holds ----------------------------------

HELD = """\
all: holder waiter
holder:
\tflock lk sh -c 'touch started; exec sleep 3600'
waiter:
\twhile [ ! -e started ]; do sleep 0.01; done; flock lk true
"""


def test_make_j2_recipe_waiting_for_a_lock_a_sleeping_recipe_holds(procs, tmp_path, run_cli) -> None:
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed (util-linux)")
    (tmp_path / "Makefile").write_text(HELD)  # the waiter starts once the holder has the lock
    make = procs.spawn([_make(), "-s", "-j2"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    named = lambda argv: [p for p in procs.descendants() if cmdline(p) == argv]  # noqa: E731
    wait_until(lambda: any(blocked_in(p, SLEEPS) for p in named(["sleep", "3600"])), "the holder's sleep runs")
    wait_until(lambda: any(blocked_in(p, ("flock",)) for p in named(["flock", "lk", "true"])),
               "the waiter's flock blocks")
    (sleeper,) = named(["sleep", "3600"])
    (flock_waiter,) = named(["flock", "lk", "true"])
    data = diagnose_json(run_cli, make.pid)
    assert data["_code"] == 0 and data["deadlock"] is False, data["verdicts"]
    assert data["root_cause"]["pid"] == sleeper, data["verdicts"]
    # make → (the recipe's sh, unless it exec'd) → flock lk true → (flock lk sleep) → sleep
    through = [c["path"] for c in data["chains"] if flock_waiter in c["path"]]
    assert through and all(p[0] == make.pid and p[-1] == sleeper for p in through), data["chains"]
    assert {e["kind"] for e in edges_from(data, flock_waiter)} == {"flock"}


def test_a_fifo_reader_beside_a_sleeping_recipe_is_no_job_slot_deadlock(procs, tmp_path, run_cli) -> None:
    """make -j2 waits for a slot, but one recipe sleeps: it will end, free its slot, and make
    will start the writer. The reader's chain keeps the plain FIFO verdict."""
    make, _, cats = start_fifo_make(procs, tmp_path, jobs=2, readers=2, sleeper=True)
    wait_blocked(make.pid, "pselect6", "select")
    (cat,) = cats
    data = diagnose_json(run_cli, make.pid)
    assert data["_code"] == 0 and data["deadlock"] is False
    assert all(v["advice"] != "job-slots" for v in data["verdicts"]), data["verdicts"]
    fifo = [c for c in data["chains"] if c["path"][-1] == cat]
    assert fifo and fifo[0]["end"]["reason"] == "fifo-open", data["chains"]
