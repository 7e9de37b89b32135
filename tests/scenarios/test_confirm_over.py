"""--confirm SECONDS: a second look SECONDS later tells a hang from a slow but live exchange.
A reader fed a line every 100 ms is blocked at any instant, but it and its writer move: it is
not reported as stuck. A reader whose writer sleeps for good, and a real deadlock, did not
move: they are confirmed."""

from __future__ import annotations

import json
import os

import pytest
from scenario_helpers import READER, SLEEPER, close, spawn_with

from waitchain import cli
from waitchain.demo.harness import wait_blocked

TICKER = """
fd = int(sys.argv[1])
ready("ticking")
while True:
    os.write(fd, b"tick\\n")
    time.sleep(0.1)
"""

LINE_READER = """
fd = int(sys.argv[1])
ready("reading")
while os.read(fd, 4096):
    pass
"""

CROSS_READER = """
mine, other = int(sys.argv[1]), int(sys.argv[2])
ready("reading")
os.read(mine, 1)
"""


def _confirm(run_cli, pid: int, *extra: str):
    result = run_cli(str(pid), "--json", "--no-stacks", "--confirm", "1", *extra)
    assert result.out, result.err
    return json.loads(result.out), result.code


def test_a_slow_exchange_that_moves_is_not_reported_as_stuck(run_py, run_cli, wait_sleeping) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, LINE_READER, [r])
    writer = spawn_with(run_py, TICKER, [w])
    close(r, w)
    reader.ready(), writer.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(writer.pid)

    data, code = _confirm(run_cli, reader.pid)

    assert code == 0
    (verdict,) = data["verdicts"]
    if verdict.get("end", {}).get("kind") != "running":  # the first look caught it mid-read: busy
        assert verdict["confirmed"] is False, verdict
        moved = {(t["pid"], t["tid"]) for t in verdict["moved"]}
        assert (reader.pid, reader.pid) in moved and moved <= {(reader.pid, reader.pid), (writer.pid, writer.pid)}
        assert verdict["headline"].startswith("MOVING (not stuck)")
    assert any("moved" in n and "live exchange" in n for n in data["notes"]), data["notes"]
    text = run_cli(str(reader.pid), "--no-stacks", "--confirm", "1", "--width", "200")
    assert text.code == 0 and "MOVING (not stuck)" in text.out, text.out


def test_a_reader_whose_writer_sleeps_for_good_is_confirmed(run_py, run_cli, wait_sleeping) -> None:
    r, w = os.pipe()
    reader = spawn_with(run_py, READER, [r])
    writer = run_py(SLEEPER, pass_fds=[w])
    close(r, w)
    reader.ready(), writer.ready()
    wait_blocked(reader.pid, "read")
    wait_sleeping(writer.pid)

    data, code = _confirm(run_cli, reader.pid)

    assert code == 0
    (verdict,) = data["verdicts"]
    assert (verdict["class"], verdict["members"], verdict["end"]["kind"]) == ("chain-end", [reader.pid, writer.pid], "sleeping")
    assert verdict["confirmed"] is True and verdict["moved"] == []
    assert any(n.startswith("confirmed: none of the") for n in data["notes"]), data["notes"]


def test_a_deadlock_is_confirmed_over_the_second_look(run_py, run_cli) -> None:
    ab_r, ab_w = os.pipe()
    ba_r, ba_w = os.pipe()
    a = spawn_with(run_py, CROSS_READER, [ba_r, ab_w])
    b = spawn_with(run_py, CROSS_READER, [ab_r, ba_w])
    close(ab_r, ab_w, ba_r, ba_w)
    a.ready(), b.ready()
    wait_blocked(a.pid, "read")
    wait_blocked(b.pid, "read")

    data, code = _confirm(run_cli, a.pid)

    assert code == 1
    (verdict,) = data["verdicts"]
    assert verdict["class"] == "deadlock" and set(verdict["members"]) == {a.pid, b.pid}
    assert verdict["confirmed"] is True and verdict["moved"] == []
    assert data["deadlock"] is True


def test_confirm_takes_seconds_not_words(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main(["1", "--confirm", "soon"])
    assert exit.value.code == 2 and "not a number of seconds" in capsys.readouterr().err
