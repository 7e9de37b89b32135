"""The terminal view: widths, ASCII, colour, explain, the verdict per end kind."""

from __future__ import annotations

import os
import subprocess
import sys
import re

import pytest
from render_fixtures import (ALL, assorted, backend_and_postmaster, chain_end_verdict, demo, python_abba,
                             reached_twice)

from waitchain import records
from waitchain.model import Advice, ChainEnd, Diagnosis, End, EndKind, Reason
from waitchain.render import Options, text
from waitchain.render.cells import cell_len
from waitchain.render.common import duration, step_text
from waitchain.render.verdicts import summary
from waitchain.verdict import END_ADVICE, IDLE_ADVICE


@pytest.mark.parametrize("width", [50, 60, 72, 80, 100, 120, 160])
@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("explain", [False, True])
def test_every_line_fits_the_width(name: str, width: int, explain: bool) -> None:
    out = text.render(ALL[name](), Options(width=width, explain=explain))
    for line in out.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}"


def test_columns_align() -> None:
    lines = text.render(demo(), Options()).splitlines()
    rows = [next(l for l in lines if re.match(rf"^[\W]*{pid} ", l)) for pid in (23572, 23573, 23270, 32084)]
    calls = [row.index(c) for row, c in zip(rows, ["read(", "recvfrom(", "wait4(", "write("])]
    blocked = [row.index("12m3") for row in rows]
    assert len(set(calls)) == 1 and len(set(blocked)) == 1, rows


def test_process_lines_start_with_the_pid() -> None:
    """People (and scripts) find a process's line by its pid at the start."""
    lines = text.render(demo(), Options()).splitlines()
    assert lines[1].startswith("23572 ")


def test_ascii_is_ascii() -> None:
    for diag in (demo(), assorted()):
        for width in (None, 60):
            out = text.render(diag, Options(ascii=True, width=width, explain=True))
            out.encode("ascii")
            assert "`- " in out or "|- " in out


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in text.render(demo(), Options(color=False))
    coloured = text.render(demo(), Options(color=True))
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == text.render(demo(), Options(color=False))


def test_explain_gives_the_hand_commands() -> None:
    out = text.render(demo(), Options(explain=True))
    for command in ("cat /proc/23572/task/23572/syscall", "ls -l /proc/23572/fd/3",
                    "lsfd -Q 'INODE == 139828372'", "lsof -n -P +E -p 23572 -a -d 3",
                    "grep flags /proc/23573/fdinfo/1",
                    "ss -tnp '( sport = :39392 or dport = :39392 )'",
                    "cat /proc/23270/task/*/children", "grep PPid /proc/32084/status",
                    "lsfd -Q 'INODE == 139830001'"):
        assert f"$ {command}" in out, command
    assert "evidence: /proc/23573/fd/1" in out


def test_explain_unix_and_ends() -> None:
    out = text.render(assorted(), Options(explain=True))
    assert "$ ss -xp | grep -w 88002" in out
    assert "$ top -H -p 4300" in out
    assert "$ nsenter -t 5200 -n ss -tnpi dst 10.0.0.5:5432" in out


def test_deadlock_verdict_names_fix_and_cause() -> None:
    v = summary(demo())
    assert v.severity == "bad" and v.headline.startswith("DEADLOCK")
    assert v.location == "command-server.py:16 in run_command_for_client: p.wait()"
    assert v.now[0].startswith("kill 32084")
    assert "p.communicate()" in v.fix[0]


def _ending(kind: EndKind, detail: str, reason: Reason = Reason.OTHER) -> Diagnosis:
    """assorted() with its remote chain ending in `kind` instead, and the verdict the
    verdict layer gives that end."""
    diag = assorted()
    proxy = 5200
    chain = records.replace(diag.chains[0], end=ChainEnd(kind, detail, proxy, proxy, reason))
    wait = diag.waits[(proxy, proxy)]
    waits = {**diag.waits, (proxy, proxy): records.replace(wait, end=End(kind, detail, reason=reason))}
    diag = records.replace(diag, chains=[chain], waits=waits)
    advice = IDLE_ADVICE.get(reason, Advice.IDLE) if kind == EndKind.IDLE else END_ADVICE.get(kind, Advice.UNKNOWN)
    diag.verdicts = [chain_end_verdict(diag, chain, advice)]
    return diag


@pytest.mark.parametrize("kind,words", [
    (EndKind.RUNNING, "py-spy dump --nonblocking --pid 5200"), (EndKind.SLEEPING, "sleeps on purpose"),
    (EndKind.IDLE, "never reached"), (EndKind.REMOTE, "remote host"),
    (EndKind.DISK, "cat /proc/5200/task/5200/stack"), (EndKind.KERNEL, "cat /proc/5200/task/5200/stack"),
    (EndKind.TERMINAL, "type"), (EndKind.STOPPED, "kill -CONT 5200"), (EndKind.SIGNAL, "grep SigCgt"),
    (EndKind.UNKNOWN, "by hand"),
])
def test_every_end_kind_says_what_to_do(kind: EndKind, words: str) -> None:
    idle = kind == EndKind.IDLE
    detail = "waits for a client on TCP 0.0.0.0:80" if idle else "peer 10.0.0.5:5432 is on another host"
    v = summary(_ending(kind, detail, Reason.ACCEPT if idle else Reason.OTHER))
    assert v.now and v.fix
    assert words in " ".join(v.now + v.fix)
    assert text.render(_ending(kind, "x"), Options()).count("do now:") == 1


def test_every_end_kind_has_a_headline() -> None:
    for kind in set(EndKind) - {EndKind.CYCLE}:
        headline = summary(_ending(kind, "x")).headline
        assert headline.split(":")[0].isupper() and len(headline) > len(kind.value) + 10, (kind, headline)


def test_nothing_blocked() -> None:
    diag = records.replace(demo(), chains=[], cycles=[], root_cause=None, verdicts=[])
    assert "NOTHING BLOCKED" in text.render(diag, Options())


@pytest.mark.parametrize("seconds,shown", [(None, ""), (0.01, "<0.1s"), (3.26, "3.3s"), (42, "42s"),
                                           (185, "3m05s"), (7500, "2h05m"), (3 * 86400 + 7200, "3d02h")])
def test_duration(seconds, shown) -> None:
    assert duration(seconds) == shown


def test_every_width_terminates() -> None:
    """A tree deeper than --width once looped forever wrapping an empty word: render every
    fixture at every small width, in a child with a deadline so a regression fails, not hangs."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import render_fixtures as f\n"
        "from waitchain.render import Options, text\n"
        "for make in (f.demo, f.assorted, f.hostile):\n"
        "    for width in range(1, 61):\n"
        "        for explain in (False, True):\n"
        "            out = text.render(make(), Options(width=width, explain=explain))\n"
        "            assert out.strip(), width\n"
        "print('ok')\n"
    ) % os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


# --- the tree ----------------------------------------------------------------------------------


def test_a_process_reached_twice_is_expanded_once() -> None:
    """100 waits for 200 or 250; both wait for 300, which waits for 400: the second time 300
    comes up, its own chain is not drawn again."""
    out = text.render(reached_twice(), Options()).split("\n\n")[0]
    assert out.count("cat300") == 2 and out.count("cat400") == 1
    assert re.search(r"└─ 300 +cat300 .*shown above$", out.splitlines()[-1])


def test_every_thread_shows_the_line_it_waits_at() -> None:
    tree = text.render(python_abba(), Options()).split("\n\n")[0]
    for line in ("at abba.py:7 in transfer: with audit_lock:", "at abba.py:12 in audit: with accounts_lock:",
                 "at abba.py:15 in <module>: a.join()"):
        assert tree.count(line) == 1, tree


def test_a_second_line_of_advice_wraps_under_its_title() -> None:
    out = text.render(backend_and_postmaster(), Options(width=80))
    advice = out[out.index("do now:"):out.index("to fix:")].splitlines()
    assert len(advice) > 2 and all(line.startswith(" " * 12) for line in advice[1:]), advice


# --- a step of a cycle names the edge's label, not its reader twice ----------------------------


def test_a_step_names_the_pipe_fill_but_not_the_reader_twice() -> None:
    diag = demo()
    assert step_text(diag, diag.edges[3]).endswith("for 23270 command-server.py (pipe:[139830001]: pipe full 64 KiB/64 KiB)")
    own = records.replace(diag.edges[1], to_pid=23573, holder_fds=(4,))
    said = "waits for the peer: it holds the peer itself (fd 4); another of its threads must act"
    assert step_text(diag, own).endswith(f"(socket:[139828380]: {said})")  # the sentence is not cut
