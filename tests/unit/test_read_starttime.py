"""procfs/process.read_starttime: the start time parse_stat gives, from that field alone."""

import os

import pytest

from waitchain.errors import WaitchainError
from waitchain.procfs.process import read_starttime, read_stat
from waitchain.procfs.reader import ProcFS


def test_the_start_time_parse_stat_gives() -> None:
    fs = ProcFS()
    for pid in (1, os.getpid()):
        assert read_starttime(fs, pid) == read_stat(fs, pid).starttime


def test_malformed_and_gone(tmp_path) -> None:
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "stat").write_text("5 (x) S 1 2\n")
    assert read_starttime(ProcFS(str(tmp_path)), 5) is None
    with pytest.raises(WaitchainError):
        read_starttime(ProcFS(str(tmp_path)), 6)
