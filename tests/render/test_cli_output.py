"""The command line's side of output: help with worked examples, every error naming its
fix and exit code, --format svg without Graphviz, --report, the spinner, the man page."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from waitchain import cli
from waitchain.errors import AccessDenied, Ambiguous, NoMatch, ProcessGone, Unsupported
from waitchain.render import progress

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_help_teaches(run_cli) -> None:
    with pytest.raises(SystemExit) as done:
        run_cli("--help")
    assert done.value.code == 0
    text = cli.parser().format_help()
    for needle in ("worked example:", "waitchain unprivileged-dmesg", "DEADLOCK: ",
                   "--format markdown", "--report incident.html", "--explain", "exit codes:",
                   "CAP_SYS_PTRACE", "--ascii"):
        assert needle in text, needle
    text.encode("ascii")  # printable on any terminal


def _failure(exc) -> tuple:
    err = io.StringIO()
    old, sys.stderr = sys.stderr, err
    try:
        code = cli.fail(exc)
    finally:
        sys.stderr = old
    return code, err.getvalue()


@pytest.mark.parametrize("exc,code,fix", [
    (ProcessGone(4242), 3, "ps -p 4242"),
    (NoMatch("srv"), 3, "pgrep -af srv"),
    (NoMatch("a[", "not a valid regular expression: x"), 3, "backslash"),
    (Ambiguous("py", [10, 11], {10: "/usr/bin/python3 a.py", 11: "/usr/bin/python3 b.py"}), 3, "give one pid"),
    (Unsupported("/proc/PID/task/syscall", 1), 5, "strace -p PID"),
    (Unsupported("the process directory"), 5, "mount -t proc"),
])
def test_every_error_names_its_fix(exc, code: int, fix: str) -> None:
    got, err = _failure(exc)
    assert got == code
    assert fix in err and "fix:" in err


def test_ambiguous_lists_the_candidates() -> None:
    _, err = _failure(Ambiguous("py", [10, 11], {10: "/usr/bin/python3 /srv/a.py", 11: "/usr/bin/python3 b.py"}))
    assert "10  python3 a.py" in err and "11  python3 b.py" in err


def test_access_denied_depends_on_who_you_are(monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, err = _failure(AccessDenied(1, "fd"))
    assert code == 4 and "sudo waitchain" in err
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    _, err = _failure(AccessDenied(1, "fd"))
    assert "CAP_SYS_PTRACE" in err and "--cap-add SYS_PTRACE" in err


def test_container_hint(monkeypatch) -> None:
    monkeypatch.setenv("container", "podman")
    _, err = _failure(ProcessGone(4242))
    assert "hostPID: true" in err and "--pid=host" in err


def test_no_such_pid_end_to_end(run_cli) -> None:
    result = run_cli("999999999", "--no-stacks")
    assert result.code == 3 and "does not exist" in result.err and "fix:" in result.err


def test_svg_without_graphviz(run_cli, monkeypatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    result = run_cli(str(os.getpid()), "--format", "svg", "--no-stacks")
    assert result.code == 5
    assert "apt-get install graphviz" in result.err and result.out == ""


def test_unwritable_report(run_cli, tmp_path) -> None:
    result = run_cli(str(os.getpid()), "--no-stacks", "--report", str(tmp_path / "no" / "r.html"))
    assert result.code == 2 and "--report /tmp/incident.html" in result.err
    assert result.out == ""  # checked before the diagnosis: nothing was done


def test_report_written(run_cli, tmp_path) -> None:
    path = tmp_path / "r.html"
    result = run_cli(str(os.getpid()), "--no-stacks", "--report", str(path))
    assert result.code == 0, result.err
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_ascii_flag(run_cli) -> None:
    result = run_cli(str(os.getpid()), "--no-stacks", "--ascii")
    result.out.encode("ascii")


def test_non_utf8_stdout_gets_ascii() -> None:
    env = dict(os.environ, PYTHONIOENCODING="latin-1")
    done = subprocess.run([sys.executable, "-m", "waitchain", str(os.getpid()), "--no-stacks"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    done.stdout.decode("ascii")


# --- the spinner ---------------------------------------------------------------------------


class FakeTty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_spinner_silent_without_a_tty() -> None:
    stream = io.StringIO()
    with progress.spinner("reading stacks", stream):
        pass
    assert stream.getvalue() == ""


def test_spinner_spins_on_a_tty_and_cleans_up(monkeypatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.delenv("TERM", raising=False)
    stream = FakeTty()
    shown = []
    with progress.spinner("reading stacks", stream):
        progress_seen = lambda: "reading stacks" in stream.getvalue()  # noqa: E731
        from waitchain.demo.harness import wait_until

        wait_until(progress_seen, "the spinner drew a frame")
        shown.append(stream.getvalue())
    assert "reading stacks…" in shown[0]
    assert stream.getvalue().endswith("\r")  # the line is cleared afterwards


# --- the man page ---------------------------------------------------------------------------


def test_manpage_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_manpage.py"), "--check"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 0, done.stderr.decode() + " (run python3 tools/make_manpage.py)"


def test_manpage_ships_in_the_package() -> None:
    import waitchain

    path = os.path.join(os.path.dirname(waitchain.__file__), "data", "waitchain.1")
    with open(path, encoding="utf-8") as f:
        page = f.read()
    assert page.startswith(".TH WAITCHAIN 1") and "\\-\\-report" in page and "WORKED EXAMPLE" in page


@pytest.mark.skipif(not os.path.exists("/usr/bin/groff"), reason="groff is not installed")
def test_manpage_formats_without_warnings() -> None:
    path = os.path.join(ROOT, "src", "waitchain", "data", "waitchain.1")
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    assert b"EXIT CODES" in re.sub(rb".\x08", b"", done.stdout)  # without overstrike bold
