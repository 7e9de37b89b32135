"""Files the user names for output never hang waitchain nor get written where they should
not (output.py): --report on a FIFO, a device, a symlink, a directory; --force replaces only
a regular file, by rename; every file is 0600; watch --metrics likewise. The FIFO cases run
a real waitchain under a deadline: the old open() blocked forever there."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import pytest

from waitchain import metrics
from waitchain.demo.harness import wait_blocked
from waitchain.errors import EXIT_OK, EXIT_USAGE
from waitchain.output import OutputRefused, open_output


@pytest.fixture
def sleeper(procs):
    proc = procs.spawn(["sleep", "1000"])
    wait_blocked(proc.pid, "clock_nanosleep", "nanosleep")
    return proc.pid


def _waitchain(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "waitchain", *argv], capture_output=True, text=True,
                          timeout=60)  # a hang in open() is a failure, not a stuck suite


@pytest.mark.parametrize("force", [(), ("--force",)])
def test_report_on_a_fifo_is_refused_at_once(sleeper, tmp_path, force) -> None:
    fifo = tmp_path / "report.html"
    os.mkfifo(fifo)
    result = _waitchain(str(sleeper), "--no-stacks", "--report", str(fifo), *force)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stdout == ""  # refused before the diagnosis
    assert f"cannot write the report to {fifo}: it is a FIFO (named pipe), not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left as it was


def test_report_on_a_device_or_a_directory_is_refused_even_with_force(sleeper, tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of a device needs root")
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    result = _waitchain(str(sleeper), "--no-stacks", "--report", str(null), "--force")
    assert result.returncode == EXIT_USAGE
    assert "it is a character device, not a regular file" in result.stderr
    assert "fix: give --report the path of a new or regular file" in result.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    result = _waitchain(str(sleeper), "--no-stacks", "--report", str(tmp_path), "--force")
    assert result.returncode == EXIT_USAGE and "it is a directory" in result.stderr


def test_force_never_replaces_a_symlink(sleeper, tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "incident.html"
    link.symlink_to(victim)
    result = _waitchain(str(sleeper), "--no-stacks", "--report", str(link), "--force")
    assert result.returncode == EXIT_USAGE and "it is a symbolic link" in result.stderr
    assert link.is_symlink() and victim.read_text() == "precious"


def test_new_and_replaced_reports_are_0600_whatever_the_umask(sleeper, tmp_path) -> None:
    old = os.umask(0)
    try:
        new = tmp_path / "new.html"
        assert _waitchain(str(sleeper), "--no-stacks", "--report", str(new)).returncode == EXIT_OK
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o600
        replaced = tmp_path / "old.html"
        replaced.write_text("old")
        os.chmod(replaced, 0o644)
        assert _waitchain(str(sleeper), "--no-stacks", "--report", str(replaced), "--force").returncode == EXIT_OK
        assert stat.S_IMODE(os.stat(replaced).st_mode) == 0o600
        assert replaced.read_text().startswith("<!DOCTYPE html>")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["new.html", "old.html"]  # no temporary left
    finally:
        os.umask(old)


def test_open_output_descriptor(tmp_path) -> None:
    out = open_output(str(tmp_path / "r.html"))
    try:
        assert os.get_blocking(out.fd)  # O_NONBLOCK was for the open only
        flags = os.O_NOFOLLOW
        assert flags  # the open's flags are not readable back; the refusals above prove them
    finally:
        out.discard()
    assert not (tmp_path / "r.html").exists()  # discarded: what was created is removed
    with pytest.raises(OutputRefused) as refused:
        open_output(str(tmp_path / "missing" / "r.html"))
    assert refused.value.exit_code == EXIT_USAGE and refused.value.errno == errno.ENOENT


def test_metrics_never_replace_a_fifo_or_a_symlink(tmp_path) -> None:
    fifo = tmp_path / "waitchain.prom"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        metrics.write_atomically(str(fifo), "x 1\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    link = tmp_path / "link.prom"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="symbolic link"):
        metrics.write_atomically(str(link), "x 1\n")
    plain = tmp_path / "plain.prom"
    metrics.write_atomically(str(plain), "x 1\n")
    assert plain.read_text() == "x 1\n"
