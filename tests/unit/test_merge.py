"""waitchain merge on documents made by hand: the stitching by 4-tuples, a ring across
hosts, and documents that are not as waitchain/1 says (no traceback)."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from waitchain import cli

A, B = ("10.0.0.1", 40000), ("10.0.0.2", 80)
A2, B2 = ("10.0.0.1", 90), ("10.0.0.2", 50000)


def _addr(ep):
    return {"host": ep[0], "port": ep[1]}


def _doc(host: str, pid: int, tcp: List[tuple], end: Dict[str, Any], any_of: int = 0) -> Dict[str, Any]:
    return {"schema": "waitchain/1", "starts": [pid],
            "processes": [{"pid": pid, "host": host, "cmdline": f"prog-{host}", "comm": "prog",
                           "tcp": [{"local": _addr(l), "remote": _addr(r)} for l, r in tcp],
                           "threads": [{"tid": pid, "waits": "recvfrom(3)", "any_of": any_of, "live": []}]}],
            "edges": [], "chains": [{"start": pid, "path": [pid], "end": dict(end, pid=pid, tid=pid)}]}


def _remote(local: tuple, remote: tuple) -> Dict[str, Any]:
    return {"kind": "remote", "detail": "waits for the peer", "reason": "remote-peer", "local": _addr(local),
            "remote": _addr(remote)}


def _run(tmp_path, capsys, *docs: Dict[str, Any], json_out: bool = True) -> tuple:
    paths = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    capsys.readouterr()
    code = cli.main(["merge", *paths] + (["--json"] if json_out else []))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if json_out and out else out), err


def test_a_ring_over_two_connections_is_one_deadlock(tmp_path, capsys) -> None:
    a = _doc("a", 5, [(A, B), (A2, B2)], _remote(A, B))
    b = _doc("b", 7, [(B, A), (B2, A2)], _remote(B2, A2))
    code, data, _ = _run(tmp_path, capsys, a, b)
    assert code == 1 and data["deadlock"] is True
    (ring,) = data["across"]
    assert [(h["host"], h["pid"]) for h in ring["path"]] == [("a", 5), ("b", 7), ("a", 5)]
    assert (ring["deadlock"], ring["ring"], ring["end"]["kind"]) == (True, 0, "cycle")


def test_a_ring_through_an_or_wait_is_no_deadlock(tmp_path, capsys) -> None:
    """The same ring, but B's thread polls several fds: it may still go on."""
    a = _doc("a", 5, [(A, B), (A2, B2)], _remote(A, B))
    b = _doc("b", 7, [(B, A), (B2, A2)], _remote(B2, A2), any_of=3)
    code, data, _ = _run(tmp_path, capsys, a, b)
    assert code == 0 and data["deadlock"] is False
    (ring,) = data["across"]  # seen from each side, reported once
    assert (ring["deadlock"], ring["end"]["kind"]) == (False, "cycle")


def test_documents_not_as_waitchain_1_says_give_no_traceback(tmp_path, capsys) -> None:
    a = _doc("a", 5, [(A, B)], _remote(A, B))
    b = _doc("b", 7, [(B, A)], _remote(B2, A2))
    b["processes"].append("not a process")
    b["edges"] = [{"from": "x"}]
    b["chains"][0]["path"] = [7, 8]  # an edge to 8 that is not there
    code, data, err = _run(tmp_path, capsys, a, b)
    assert code == 0, err
    text_code, text, err = _run(tmp_path, capsys, a, b, json_out=False)
    assert text_code == 0 and "could not be read" in text, (text, err)
