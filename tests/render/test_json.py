"""--json says what the text says: the verdicts' sentences are the text's, the root cause is
the thread the text names, enums are their values, and every edge carries its facts."""

from __future__ import annotations

import json as jsonlib
import re
from typing import Any, Dict, Tuple

import pytest
from render_fixtures import (ALL, backend_and_postmaster, client_and_loop, idle_at, python_abba,
                             sleeping_twice)

from waitchain.demo import scenario
from waitchain.model import Advice, Diagnosis, EdgeKind, Reason
from waitchain.render import Options, json, text
from waitchain.render.labels import label
from waitchain.render.verdicts import summaries

CASES = {**ALL, "sleeping_twice": sleeping_twice, "pty": lambda: client_and_loop(EdgeKind.PTY),
         "no_reply": client_and_loop, "python_abba": python_abba, "app_wait": backend_and_postmaster,
         "fifo": lambda: idle_at("nobody has opened the FIFO", Reason.FIFO_OPEN, Advice.FIFO)}


def _data(diag: Diagnosis) -> Dict[str, Any]:
    return jsonlib.loads(json.render(diag))


def text_root_cause(out: str) -> Tuple[int, int]:
    """(pid, tid) on the text's first `root cause:` line: `PID prog [thread TID] in call()`."""
    line = next(ln for ln in out.splitlines() if ln.startswith("root cause:"))
    pid = int(re.match(r"root cause:\s+(\d+)", line)[1])
    tid = re.search(r" thread (\d+)", line)
    return pid, int(tid[1]) if tid else pid


@pytest.mark.parametrize("name", sorted(CASES))
def test_text_and_json_name_the_same_root_cause_thread(name: str) -> None:
    diag = CASES[name]()
    data = _data(diag)
    cause = data["root_cause"]
    assert text_root_cause(text.render(diag, Options(width=200))) == (cause["pid"], cause["tid"])
    assert (cause["pid"], cause["tid"]) == (data["verdicts"][0]["cause"]["pid"], data["verdicts"][0]["cause"]["tid"])
    assert cause["summary"] == data["verdicts"][0]["headline"]


def test_the_python_abba_cause_is_a_locked_thread_in_both() -> None:
    data = _data(python_abba())
    assert (data["root_cause"]["pid"], data["root_cause"]["tid"]) == (700, 701)
    assert data["root_cause"]["location"]["line"] == 7
    assert data["verdicts"][0]["location"] == "abba.py:7 in transfer: with audit_lock:"


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_sentences_are_the_texts(name: str) -> None:
    diag = CASES[name]()
    out = text.render(diag, Options())
    for verdict, words in zip(_data(diag)["verdicts"], summaries(diag)):
        assert (verdict["headline"], verdict["steps"], verdict["now"], verdict["fix"]) == \
            (words.headline, words.steps, words.now, words.fix)
        assert verdict["headline"] in out.replace("\n", " ") or verdict["headline"][:60] in out


def test_enums_are_their_values() -> None:
    data = _data(ALL["demo"]())
    verdict = data["verdicts"][0]
    assert (verdict["class"], verdict["advice"]) == ("deadlock", "read-before-wait")
    assert [e["kind"] for e in data["edges"]] == ["pipe", "tcp", "child", "pipe"]
    assert data["chains"][0]["end"]["kind"] == "cycle"
    assert {t["mode"] for p in data["processes"] for t in p["threads"]} == {"any"}
    remote = next(t["end"] for p in _data(ALL["assorted"]())["processes"] for t in p["threads"]
                  if t["end"] and t["end"]["kind"] == "remote")
    assert (remote["reason"], remote["subject"]) == ("remote-peer", "10.0.0.5:5432")


def test_edges_carry_their_facts() -> None:
    edges = _data(ALL["demo"]())["edges"]
    full = edges[3]
    assert (full["syscall"], full["fd"], full["writing"], full["fill"], full["holder_fds"], full["inode"]) == \
        ("write", 1, True, {"used": 65536, "size": 65536}, [5], 139830001)
    assert full["label"] == "pipe full 64 KiB/64 KiB; reader is 23270"  # worded as the text words it
    tcp = edges[1]
    assert (tcp["local"], tcp["remote"], tcp["queued"], tcp["unaccepted"]) == \
        ({"host": "127.0.0.1", "port": 39392}, {"host": "127.0.0.1", "port": 1234}, 0, False)
    assert all(e[k] is None for e in edges for k in ("lock", "pty", "fuse", "alternative"))


def test_edge_labels_are_the_texts_and_the_facts_behind_them_are_there() -> None:
    diag = sleeping_twice()
    data = _data(diag)
    assert [e["label"] for e in data["edges"]] == [label(e) for e in diag.edges]
    assert data["edges"][0]["lock"] == {"type": "write", "start": 0, "end": None}
    polled = _data(backend_and_postmaster())["edges"][0]
    assert polled["alternative"] == {"count": 2, "events": "EPOLLIN", "watched": "pipe:[7]"}
    assert polled["label"] == "waits for any of 2 fds, here fd 3<pipe:[7]> (EPOLLIN): waits for the writer"
    assert _data(client_and_loop(EdgeKind.PTY))["edges"][1]["pty"] == {"side": "master", "index": 3}


def test_the_demo_verdict() -> None:
    verdict = _data(ALL["demo"]())["verdicts"][0]
    assert verdict["members"] == [23270, 32084] and verdict["victims"] == [23572, 23573]
    assert verdict["threads"] == [{"pid": 23270, "tid": 23270}, {"pid": 32084, "tid": 32084}]
    assert verdict["cause"] == {"pid": 23270, "tid": 23270, "syscall": "wait4"}
    assert verdict["culprit"] == 32084 and verdict["confirmed"] is True and verdict["moved"] == []
    assert [(e["from"]["pid"], e["to"]["pid"]) for e in verdict["ring"]] == [(23270, 32084), (32084, 23270)]
    assert verdict["location"] == "command-server.py:16 in run_command_for_client: p.wait()"


def test_every_chain_end_and_verdict_end_has_its_reason() -> None:
    data = _data(backend_and_postmaster())
    assert data["chains"][0]["end"]["reason"] == "accept"
    assert data["verdicts"][0]["end"]["reason"] == "accept"
    assert data["verdicts"][0]["cause"] == {"pid": 900, "tid": 900, "syscall": "epoll_wait"}


def test_live_demo_text_and_json_name_the_same_root_cause(procs, run_cli) -> None:
    pids = scenario.start(procs)
    for pid in (pids.wrapper, pids.child):
        out = run_cli(str(pid), "--no-stacks", "--width", "200")
        data = jsonlib.loads(run_cli(str(pid), "--json", "--no-stacks").out)
        cause = data["root_cause"]
        assert text_root_cause(out.out) == (cause["pid"], cause["tid"]) == (pids.server, pids.server)
        assert cause["summary"] == data["verdicts"][0]["headline"]
        assert data["verdicts"][0]["headline"] in out.out
