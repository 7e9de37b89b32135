"""waitchain run by an unprivileged user against another user's process: a clear message
and exit code 4, never a chain built from nothing."""

from __future__ import annotations

import io
import os
import sys

import pytest

import shlex  # noqa: F401  (all imported before dropping privileges: as nobody the
import waitchain.render.html  # noqa: F401  interpreter's own files may be unreadable)
import waitchain.render.json  # noqa: F401
import waitchain.render.text  # noqa: F401
from waitchain import cli
from waitchain.demo.harness import wait_blocked

NOBODY = 65534


def run_as_nobody(argv: list) -> tuple:
    """cli.main(argv) in a forked child that has dropped to uid/gid 65534: (code, stderr)."""
    err_r, err_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.dup2(err_w, 2)
        sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0, closefd=False), write_through=True)
        sys.stdout = io.StringIO()
        code = 98
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            code = cli.main(argv)
        except BaseException as exc:  # nothing may escape a forked child
            os.write(2, f"child failed: {exc!r}\n".encode())
            code = 99
        finally:
            os._exit(code)
    os.close(err_w)
    with os.fdopen(err_r) as f:
        err = f.read()
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8, err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a root-owned target")
def test_root_process_read_by_nobody_is_permission_denied(procs) -> None:
    reader = procs.spawn([sys.executable, "-c", "import os; r, w = os.pipe(); os.read(r, 1)"])
    wait_blocked(reader.pid, "read")
    code, err = run_as_nobody([str(reader.pid), "--no-stacks"])
    assert code == cli.EXIT_DENIED, err
    assert "permission denied" in err and str(reader.pid) in err
    assert "run it as root" in err and "Traceback" not in err
