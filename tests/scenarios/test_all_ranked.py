"""waitchain --all, ranked: one snapshot of the machine, one verdict per incident, worst first.
A deadlock always; a chain through a full buffer always; a chain blocked longer than
--min-blocked (a sleeping pipeline) only past it; an idle server nobody waits for never.
Chains that run into the same place are one incident, and a chain that is the tail of
another is folded into it. (Other tests may run on the machine: only our processes' verdicts
are looked at.)"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Dict, List, Set

from scenario_helpers import READER, SLEEPER, close, spawn_with

from waitchain.demo import scenario
from waitchain.demo.harness import wait_blocked

IDLE_SERVER = """
fd = int(sys.argv[1])
s = socket.socket(fileno=fd)
ready("accepting")
s.accept()
"""

FILLER = """
fd = int(sys.argv[1])
ready("writing")
os.write(fd, b"x" * (1 << 20))
"""


def _all(run_cli, min_blocked: str):
    result = run_cli("--all", "--json", "--no-stacks", "--min-blocked", min_blocked)
    assert result.out, result.err
    return json.loads(result.out), result.code


def _touching(data: Dict[str, Any], ours: Set[int]) -> List[Dict[str, Any]]:
    return [v for v in data["verdicts"] if ours & set(v["members"] + v.get("victims", []))]


def test_all_ranks_the_deadlock_first_and_reports_the_sleeping_pipeline_only_past_min_blocked(
        procs, run_py, run_cli, wait_sleeping) -> None:
    demo = scenario.start(procs)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(b"\0waitchain-test-idle-%d" % os.getpid())
    listener.listen()
    server = spawn_with(run_py, IDLE_SERVER, [listener.fileno()])
    listener.close()
    r, w = os.pipe()
    sleeper = run_py(SLEEPER, pass_fds=[w])
    cat = spawn_with(run_py, READER, [r])
    fr, fw = os.pipe()
    filler = spawn_with(run_py, FILLER, [fw])
    slow = run_py(SLEEPER, pass_fds=[fr])  # holds the read end and never reads: a full buffer
    close(r, w, fr, fw)
    for p in (server, sleeper, cat, filler, slow):
        p.ready()
    wait_blocked(server.pid, "accept", "accept4")
    wait_blocked(cat.pid, "read")
    wait_blocked(filler.pid, "write")
    wait_sleeping(sleeper.pid)
    wait_sleeping(slow.pid)
    ours = {demo.wrapper, demo.client, demo.server, demo.child, server.pid, sleeper.pid, cat.pid,
            filler.pid, slow.pid}

    strict, code = _all(run_cli, "3600")

    assert code == 1
    found = [(v["class"], v["members"]) for v in _touching(strict, ours)]
    assert found == [("deadlock", sorted([demo.server, demo.child])), ("chain-end", [filler.pid, slow.pid])]
    deadlock = _touching(strict, ours)[0]
    assert set(deadlock["victims"]) == {demo.wrapper, demo.client}
    assert not [c for c in strict["chains"] if {server.pid, cat.pid, sleeper.pid} & set(c["path"])]

    loose, code = _all(run_cli, "0")

    assert code == 1
    found = [(v["class"], v["members"]) for v in _touching(loose, ours)]
    assert found == [("deadlock", sorted([demo.server, demo.child])), ("chain-end", [filler.pid, slow.pid]),
                     ("chain-end", [cat.pid, sleeper.pid])]
    pipeline = _touching(loose, ours)[2]
    assert pipeline["end"]["kind"] == "sleeping"
    assert not [v for v in loose["verdicts"] if server.pid in v["members"]]
    ranks = [loose["verdicts"].index(v) for v in _touching(loose, ours)]
    assert ranks == sorted(ranks)  # in the whole machine's order too


def test_chains_into_the_same_place_are_one_incident_and_tails_are_folded(run_py, run_cli, wait_sleeping) -> None:
    """r2 -> r1 -> sleeper and r3 -> sleeper: one incident, at the sleeper; r1 -> sleeper is
    the tail of r2's chain and starts none of its own."""
    p_r, p_w = os.pipe()
    q_r, q_w = os.pipe()
    sleeper = run_py(SLEEPER, pass_fds=[p_w])
    r1 = run_py(READER, str(p_r), pass_fds=[p_r, q_w])
    r2 = spawn_with(run_py, READER, [q_r])
    r3 = spawn_with(run_py, READER, [p_r])
    close(p_r, p_w, q_r, q_w)
    for p in (sleeper, r1, r2, r3):
        p.ready()
    for p in (r1, r2, r3):
        wait_blocked(p.pid, "read")
    wait_sleeping(sleeper.pid)
    ours = {sleeper.pid, r1.pid, r2.pid, r3.pid}

    data, code = _all(run_cli, "0")

    (verdict,) = _touching(data, ours)
    assert verdict["class"] == "chain-end" and verdict["members"][-1] == sleeper.pid
    assert verdict["end"]["kind"] == "sleeping"
    paths = sorted(c["path"] for c in data["chains"] if ours & set(c["path"]))
    assert paths == sorted([[r2.pid, r1.pid, sleeper.pid], [r3.pid, sleeper.pid]])
