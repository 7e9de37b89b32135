"""Snapshot.tracer: the TracerPid a status parse gives, from the one field."""

import os
from pathlib import Path

from waitchain.errors import WaitchainError
from waitchain.procfs.reader import ProcFS
from waitchain.procfs.status import read_status
from waitchain.snapshot import Snapshot


def test_tracer_field_as_the_whole_status_says() -> None:
    snap = Snapshot.scan(pids=[1, os.getpid()])
    for pid in snap.processes:
        try:
            want = int(read_status(snap.fs, pid)["TracerPid"])
        except (WaitchainError, KeyError):
            continue
        assert snap.tracer(pid) == want
    assert snap.tracer(1 << 22) == 0  # no such process


def test_tracer_from_a_status_read_before() -> None:
    snap = Snapshot.scan(pids=[os.getpid()])
    snap._status[(os.getpid(), None)] = {"TracerPid": "\t42"}
    assert snap.tracer(os.getpid()) == 42


def test_each_status_field_as_the_whole_status_says(tmp_path: Path) -> None:
    """On one copy of our status: live, counters (context switches, VmRSS) move between two
    reads, and the comparison failed 1 CI run in a few."""
    from waitchain.procfs.status import read_status_field

    pid = os.getpid()
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "status").write_text(Path(f"/proc/{pid}/status").read_text())
    fs = ProcFS(str(tmp_path))
    fields = read_status(fs, pid)
    assert len(fields) > 20
    for key, value in fields.items():
        assert read_status_field(fs, pid, key) == value, key
    assert read_status_field(fs, pid, "NoSuchField") is None
