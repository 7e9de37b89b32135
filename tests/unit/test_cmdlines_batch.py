"""Snapshot.cmdlines reads the command lines not read yet through one deadline thread: each
answer, note and deadline as cmdline() one by one gives them, also when a read overruns."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Dict, List, Tuple

import pytest

from waitchain import snapshot as snapshot_module
from waitchain.procfs import process as process_module
from waitchain.snapshot import Snapshot

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")


def _both(pids: List[int], hung: Tuple[int, ...] = ()) -> Tuple[Dict[int, str], List[str], Dict[int, str], List[str]]:
    release = threading.Event()
    found = []
    for batched in (True, False):
        snap = Snapshot.scan(pids=pids)
        plain = snap.fs.read_bytes

        def read_bytes(pid, *parts, **kw):  # type: ignore[no-untyped-def]
            if parts == ("cmdline",) and pid in hung:
                release.wait(5)
            return plain(pid, *parts, **kw)

        snap.fs.read_bytes = read_bytes  # type: ignore[method-assign]
        try:
            got = snap.cmdlines(pids) if batched else {p: snap.cmdline(p) for p in pids}
        finally:
            snap.close()
        found += [got, list(snap.notes)]
    release.set()
    return found[0], found[1], found[2], found[3]


def test_the_same_as_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    kids = [subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", f"argument {i}"],
                             stdin=subprocess.PIPE) for i in range(5)]
    try:
        pids = [os.getpid(), 2] + [k.pid for k in kids] + [os.getpid()]  # 2: kthreadd, no command line
        batched, notes, single, single_notes = _both(pids)
        assert batched == single and notes == single_notes
        assert batched[kids[0].pid].endswith("argument 0") and batched[2].startswith("[")
        monkeypatch.setattr(snapshot_module, "CMDLINE_DEADLINE", 0.1)
        monkeypatch.setattr(process_module, "CMDLINE_DEADLINE", 0.1)
        hung = tuple(k.pid for k in kids if k is not kids[2])  # past BLOCKED_CMDLINES: the short deadline
        batched, notes, single, single_notes = _both(pids, hung)
        assert batched == single and notes == single_notes
        assert batched[kids[2].pid].endswith("argument 2")
        assert [p for p in hung if "argument" not in batched[p]] == list(hung)
        assert [n.split()[4] for n in notes] == [str(p) for p in hung]  # "the command line of PID could..."
    finally:
        for kid in kids:
            kid.kill()
            kid.wait()
