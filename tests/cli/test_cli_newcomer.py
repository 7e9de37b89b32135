"""A newcomer's first ten minutes (issue 13), each as the real CLI: exit code and message.
Targets are real processes this test starts (and the harness kills and reaps)."""

from __future__ import annotations

import json
import re
import os
import stat
import subprocess
import sys

import pytest

from waitchain import cli
from waitchain.demo.harness import wait_blocked
from waitchain.errors import (EXIT_DEADLOCK, EXIT_DENIED, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE,
                              OutputError)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "src")


def waitchain(*argv: str, stdout=subprocess.PIPE, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (real stdout, real exit code)."""
    env = dict(os.environ if env is None else env, PYTHONPATH=SRC, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "waitchain", *argv], stdout=stdout,
                          stderr=subprocess.PIPE, env=env, timeout=timeout, cwd="/")


@pytest.fixture
def sleeper(procs):
    """A process sleeping for a long time: (pid) a harmless target."""
    def start(*argv: str) -> int:
        proc = procs.spawn(list(argv) or ["sleep", "1000"])
        wait_blocked(proc.pid, "clock_nanosleep", "nanosleep")
        return proc.pid
    return start


# --- 4. conventions: -p/--pid, several targets, negative numbers, --pattern -----------------


def test_pid_option_and_several_targets(run_cli, sleeper) -> None:
    a, b = sleeper(), sleeper()
    for argv in ([str(a), str(b)], ["-p", f"{a},{b}"], ["--pid", str(a), "-p", str(b)]):
        result = run_cli(*argv, "--json", "--no-stacks")
        assert result.code == EXIT_OK, result.err
        assert json.loads(result.out)["starts"] == [a, b], argv


def test_a_negative_number_is_an_error_not_a_pattern(run_cli) -> None:
    result = run_cli("-1", "--no-stacks")
    assert result.code == EXIT_USAGE and result.out == ""
    assert "-1 is not a pid" in result.err and "--pattern=-1" in result.err


@pytest.mark.parametrize("argv,message", [
    (["-p", "-1"], "not a pid: '-1'"), (["-p", "12,x"], "not a pid: 'x'"), (["-p", "0"], "not a pid"),
    (["--width", "0", "1"], "--width: must be a positive number"),
    (["--width", "-5", "1"], "--width: must be a positive number"),
])
def test_bad_numbers_are_usage_errors(run_cli, capsys, argv, message: str) -> None:
    with pytest.raises(SystemExit) as done:
        run_cli(*argv)
    assert done.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_process_named_demo_is_reachable(run_cli, procs) -> None:
    proc = procs.spawn(["bash", "-c", "exec -a demo sleep 10007.5"])
    wait_blocked(proc.pid, "clock_nanosleep", "nanosleep")
    for argv in (["--pattern", r"^demo 10007\.5$"], ["-p", str(proc.pid)]):
        result = run_cli(*argv, "--json", "--no-stacks")
        assert result.code == EXIT_OK, result.err
        assert json.loads(result.out)["starts"] == [proc.pid]


# --- 6. conflicting options are errors; --json --explain; --ascii; mermaid vs markdown ------


@pytest.mark.parametrize("extra,message", [
    (["--json", "--format", "dot"], "--json and --format dot"),
    (["--stacks", "--no-stacks"], "--stacks and --no-stacks"),
    (["--native", "--no-stacks"], "--native reads stacks"),
    (["--format", "mermaid", "--explain"], "--explain has no place in --format mermaid"),
    (["--format", "dot", "--stacks"], "--stacks has no place in --format dot"),
    (["--json", "--width", "80"], "--width applies to the text output"),
    (["--force"], "--force only lets --report replace a file"),
    (["--all"], "--all looks at every process"),
])
def test_conflicting_options(run_cli, sleeper, extra, message: str) -> None:
    result = run_cli(str(sleeper()), *extra)
    assert result.code == EXIT_USAGE and result.out == ""
    assert message in result.err and "fix:" in result.err


def test_json_explain_carries_the_commands(run_cli, sleeper) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    pid = sleeper()
    result = run_cli(str(pid), "--json", "--explain", "--no-stacks")
    assert result.code == EXIT_OK, result.err
    doc = json.loads(result.out)
    commands = [c["command"] for item in doc["explain"] for c in item["checks"]]
    assert f"cat /proc/{pid}/task/{pid}/syscall" in commands
    assert doc["explain"][0]["chain"] == 0
    with open(os.path.join(SRC, "waitchain", "data", "waitchain-1.schema.json"), encoding="utf-8") as f:
        jsonschema.validate(doc, json.load(f))
    plain = json.loads(run_cli(str(pid), "--json", "--no-stacks").out)
    assert plain["explain"] is None  # only when asked


def test_mermaid_is_source_markdown_is_fenced_and_ascii_applies(run_cli, sleeper) -> None:
    pid = sleeper()
    source = run_cli(str(pid), "--format", "mermaid", "--no-stacks")
    assert source.code == EXIT_OK and source.out.startswith("%% waitchain:")
    assert "```" not in source.out and "flowchart LR" in source.out
    fenced = run_cli(str(pid), "--format", "markdown", "--no-stacks")
    assert fenced.out.startswith("```mermaid\n") and fenced.out.endswith("```\n")
    for fmt in ("mermaid", "markdown", "dot", "text"):
        out = run_cli(str(pid), "--format", fmt, "--ascii", "--no-stacks").out
        out.encode("ascii")  # the blocked time "<0.1s", arrows, ellipses: all spelled in ASCII


def test_mermaid_ascii_spells_arrows_and_codes_the_rest() -> None:
    from waitchain.render import mermaid

    assert mermaid._ascii("a→b …ü") == "a-#62;b ...#252;"


# --- 5. exit codes: a closed pipe keeps the verdict, a full disk is its own error ------------


def test_broken_pipe_keeps_the_deadlock_code() -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen([sys.executable, "-m", "waitchain", "demo", "--no-stacks"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/")
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before anything is written: | head -0
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_DEADLOCK, err.decode()
    assert b"Traceback" not in err and b"Exception ignored" not in err and b"internal error" not in err


def test_full_disk_on_stdout_is_an_output_error(sleeper) -> None:
    with open("/dev/full", "w") as full:
        done = waitchain(str(sleeper()), "--no-stacks", stdout=full)
    err = done.stderr.decode()
    assert done.returncode == EXIT_OUTPUT, err
    assert "cannot write the output (stdout): No space left on device (ENOSPC)" in err
    assert "fix: free some space" in err
    assert "internal error" not in err and "Traceback" not in err


def test_report_failing_after_a_deadlock_keeps_the_deadlock_code(run_cli, tmp_path, monkeypatch) -> None:
    def full(self, diag) -> None:
        raise OutputError("the report", OSError(28, "No space left on device"))

    monkeypatch.setattr(cli.Report, "write", full)
    result = run_cli("demo", "--no-stacks", "--report", str(tmp_path / "r.html"))
    assert result.code == EXIT_DEADLOCK and "DEADLOCK" in result.out
    assert "cannot write the report: No space left on device (ENOSPC)" in result.err
    assert not (tmp_path / "r.html").exists()  # the reserved file is removed again


def test_report_failing_without_a_deadlock_is_an_output_error(run_cli, sleeper, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cli.Report, "write", lambda self, diag: (_ for _ in ()).throw(
        OutputError("the report", OSError(5, "Input/output error"))))
    result = run_cli(str(sleeper()), "--no-stacks", "--report", str(tmp_path / "r.html"))
    assert result.code == EXIT_OUTPUT and "(EIO)" in result.err and result.out


# --- 7. --report: a new file, 0600, no symlinks followed, --force, checked first -------------


def test_report_is_new_private_and_announced(run_cli, sleeper, tmp_path) -> None:
    path = tmp_path / "incident.html"
    result = run_cli(str(sleeper()), "--no-stacks", "--report", str(path))
    assert result.code == EXIT_OK, result.err
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert f"report written to {path}" in result.err


def test_report_refuses_an_existing_file_before_the_diagnosis(run_cli, tmp_path) -> None:
    path = tmp_path / "incident.html"
    path.write_text("keep me")
    result = run_cli("999999999", "--no-stacks", "--report", str(path))  # no such pid either
    assert result.code == EXIT_USAGE and result.out == ""  # the report is checked first
    assert "the file exists (--force replaces it)" in result.err
    assert "fix: give a new file name, or add --force to replace it" in result.err
    assert path.read_text() == "keep me"


def test_report_never_follows_a_symlink(run_cli, sleeper, tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "incident.html"
    link.symlink_to(victim)
    result = run_cli(str(sleeper()), "--no-stacks", "--report", str(link))
    assert result.code == EXIT_USAGE and victim.read_text() == "precious"
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "not-yet")
    result = run_cli(str(sleeper()), "--no-stacks", "--report", str(dangling))
    assert result.code == EXIT_USAGE and not (tmp_path / "not-yet").exists()
    result = run_cli(str(sleeper()), "--no-stacks", "--report", str(link), "--force")
    assert victim.read_text() == "precious"  # --force never writes through a link: it
    if result.code == EXIT_OK:  # replaces the link itself, or refuses it
        assert not link.is_symlink() and stat.S_IMODE(os.stat(link).st_mode) == 0o600
    else:
        assert result.code == EXIT_USAGE and link.is_symlink(), result.err


def test_report_force_replaces(run_cli, sleeper, tmp_path) -> None:
    path = tmp_path / "incident.html"
    path.write_text("old")
    result = run_cli(str(sleeper()), "--no-stacks", "--report", str(path), "--force")
    assert result.code == EXIT_OK and path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["incident.html"]  # no temporary file left


def test_report_in_a_missing_directory(run_cli, sleeper, tmp_path) -> None:
    result = run_cli(str(sleeper()), "--no-stacks", "--report", str(tmp_path / "no" / "r.html"))
    assert result.code == EXIT_USAGE and result.out == "" and "--report /tmp/incident.html" in result.err


# --- 8. --all as an unprivileged user: not "NOTHING FOUND" --------------------------------


def as_nobody(argv: list) -> tuple:
    """cli.main(argv) in a forked child that dropped to uid/gid 65534 (setresuid, as
    setpriv --reuid=65534 --regid=65534 --clear-groups does; forked, because nobody may not
    read this interpreter's files): (exit code, stdout, stderr)."""
    import io
    import tempfile

    import waitchain.render.json  # noqa: F401  (imported before dropping privileges)
    import waitchain.render.text  # noqa: F401

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            code = 98
            try:
                os.dup2(err.fileno(), 2)
                sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0, closefd=False), write_through=True)
                sys.stdout = io.StringIO()
                os.setgroups([])
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
                code = cli.main(argv)
                os.write(out.fileno(), sys.stdout.getvalue().encode())
            except BaseException as exc:  # nothing may escape a forked child
                os.write(2, f"child failed: {exc!r}\n".encode())
                code = 99
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        out.seek(0)
        err.seek(0)
        return os.WEXITSTATUS(status), out.read().decode(), err.read().decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_all_as_nobody_says_the_scan_is_incomplete(sleeper) -> None:
    sleeper()  # at least one process nobody cannot read
    code, out, err = as_nobody(["--all", "--no-stacks"])
    assert "NOTHING FOUND" not in out + err
    assert re.search(r"the scan is incomplete: \d+ of \d+ processes could not be read", out + err)
    if code == EXIT_DENIED:  # nothing found among what nobody may read: no verdict at all
        assert out == "" and "run it as root" in err
    else:  # something nobody may read was found (a zombie of another user's): shown, with the note
        assert code in (EXIT_OK, EXIT_DEADLOCK) and "note: the scan is incomplete:" in out, err


# --- 9. notes: the routine one only with --verbose; --native warns ------------------------


def test_routine_native_note_only_with_verbose(run_cli, sleeper, monkeypatch) -> None:
    from waitchain import stacks

    routine = stacks.GROUP_NOTES["native-available"].format(whos="1 (x)", how="--native reads it")
    monkeypatch.setattr(stacks, "attach_stacks", lambda diag, **kw: diag.notes.append(routine))
    pid = sleeper()
    quiet = run_cli(str(pid), "--json")
    assert routine not in json.loads(quiet.out)["notes"]
    verbose = run_cli(str(pid), "--json", "--verbose")
    assert routine in json.loads(verbose.out)["notes"]


def test_native_warns_that_it_resets_the_blocked_clock(run_cli, sleeper, monkeypatch) -> None:
    from waitchain.stacks import native

    monkeypatch.setattr(native, "find_tool", lambda: None)  # nothing is attached in this test
    result = run_cli(str(sleeper()), "--native")
    assert "--native stops each target thread briefly" in result.err
    assert "blocked for a moment only" in result.err


# --- 2. the man page ------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/usr/bin/man"), reason="man is not installed")
def test_man_option_shows_the_page() -> None:
    done = waitchain("--man", env=dict(os.environ, MANWIDTH="100"))
    assert done.returncode == EXIT_OK, done.stderr.decode()
    out = done.stdout.decode()
    assert "EXIT CODES" in out and "WORKED EXAMPLE" in out and "--pattern" in out.replace("‐", "-")


def test_man_option_without_man_prints_help(tmp_path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # no man on this PATH
    done = waitchain("--man", env=env)
    assert done.returncode == EXIT_OK
    assert "apt-get install man-db" in done.stderr.decode()
    assert "exit codes:" in done.stdout.decode()


# --- 3. the worked example is real output --------------------------------------------------


def test_worked_example_is_what_the_demo_prints() -> None:
    """Runs the real demo and compares with the stored example (README, --help, man page)."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_examples.py"), "--check"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert done.returncode == 0, done.stderr.decode()


def test_help_shows_the_stored_example() -> None:
    text = cli.parser().format_help()
    with open(os.path.join(SRC, "waitchain", "data", "example.txt"), encoding="utf-8") as f:
        first = f.readline().strip()
    assert first.startswith("waitchain demo: starts four small Python programs")
    assert first in text and "root cause:" in text and "-p PID[,PID...]" in text
    text.encode("ascii")


def test_demo_intro_speaks_to_a_newcomer() -> None:
    from waitchain.demo.run import INTRO

    intro = INTRO.format(wrapper=4242)
    assert "talk" not in intro and "seed" not in intro
    assert "kills them" in intro and "What to look at" in intro and "root cause" in intro
    assert max(len(line) for line in intro.splitlines()) <= 100


# --- 10. pictures cut their labels at word boundaries --------------------------------------


def test_cut_words() -> None:
    from waitchain.render.common import cut_words

    assert cut_words("pipe holds 63.0 KiB/64 KiB, no room for this write; reader is 12030", 48) == \
        "pipe holds 63.0 KiB/64 KiB, no room for this…"
    assert cut_words("waits for the peer", 48) == "waits for the peer"
    assert cut_words("x" * 60, 20) == "x" * 19 + "…"  # no word boundary: cut where it must
    assert cut_words("waits for the peer, then more", 19) == "waits for the peer…"


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_picture_labels_end_at_a_word(run_cli, fmt: str) -> None:
    result = run_cli("demo", "--format", fmt, "--no-stacks")
    assert result.code == EXIT_DEADLOCK, result.err
    assert "no room for this…" in result.out  # the full pipe's label, cut before "write; reader is"
    assert not re.search(r"[a-z]{1,3}…", result.out.replace("this…", "")), result.out


# --- 10. advice never sends the user in a circle ------------------------------------------


def test_no_stacks_advice_for_a_process_without_a_readable_stack(run_cli, sleeper, monkeypatch) -> None:
    from waitchain import stacks

    monkeypatch.setattr(stacks, "attach_stacks", lambda diag, **kw: None)  # no stack was read
    pid = sleeper()
    result = run_cli(str(pid))
    assert result.code == EXIT_OK, result.err
    now = next(line for line in result.out.splitlines() if line.startswith("do now:"))
    assert "--stacks" not in now and f"waitchain {pid} --native" in now


def test_stacks_advice_when_there_is_a_stack(run_cli, procs) -> None:
    pytest.importorskip("waitchain.stacks.python")
    from waitchain.stacks.python import find_py_spy

    if find_py_spy() is None:
        pytest.skip("py-spy is not installed")
    proc = procs.spawn([sys.executable, "-c", "import time\ntime.sleep(1000)\n"])
    wait_blocked(proc.pid, "clock_nanosleep", "nanosleep", "pselect6", "select")
    result = run_cli(str(proc.pid))
    now = next(line for line in result.out.splitlines() if line.startswith("do now:"))
    assert f"waitchain {proc.pid} --stacks shows where" in now, result.out


# --- 5. the exit codes are documented where people look, and stable -----------------------


def test_exit_codes_are_documented_everywhere() -> None:
    from waitchain import errors

    codes = {name: value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert codes == {"EXIT_OK": 0, "EXIT_DEADLOCK": 1, "EXIT_USAGE": 2, "EXIT_NO_PROCESS": 3,
                     "EXIT_DENIED": 4, "EXIT_UNSUPPORTED": 5, "EXIT_OUTPUT": 6, "EXIT_SYSTEM": 7,
                     "EXIT_INTERNAL": 70, "EXIT_INTERRUPTED": 130}  # stable: scripts test them
    help_codes = cli.parser().format_help().split("exit codes:")[1]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for value in codes.values():
        assert re.search(rf"^  {value} +\S", help_codes, re.M), value
        assert f"| {value} | " in readme, value
    with open(os.path.join(SRC, "waitchain", "data", "waitchain.1"), encoding="utf-8") as f:
        assert "EXIT CODES" in f.read()


def test_full_disk_hides_even_a_deadlock_so_it_is_an_output_error() -> None:
    with open("/dev/full", "w") as full:
        done = waitchain("demo", "--no-stacks", stdout=full)
    err = done.stderr.decode()
    assert done.returncode == EXIT_OUTPUT, err  # nobody saw the verdict: not 1
    assert "No space left on device (ENOSPC)" in err and "Traceback" not in err
