"""--format svg: the DOT graph laid out by Graphviz's `dot` (not a Python dependency: the
program is run when present; a clear error names the package when it is not)."""

from __future__ import annotations

import shutil
import subprocess

from ..errors import MissingTool, WaitchainError
from ..model import Diagnosis
from . import Options, dot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

TIMEOUT = 60  # seconds; dot is fast on graphs this size


def render(diag: Diagnosis, options: Options = Options()) -> str:
    return to_svg(dot.render(diag, options))


def available() -> bool:
    return shutil.which("dot") is not None


def to_svg(source: str, program: Optional[str] = None) -> str:
    """Run `dot -Tsvg` on DOT source. Raises MissingTool when Graphviz is not installed."""
    program = program or shutil.which("dot")
    if program is None:
        raise MissingTool("dot", "graphviz", "--format svg")
    try:
        run = subprocess.run([program, "-Tsvg"], input=source.encode("utf-8"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise WaitchainError(f"Graphviz's dot did not finish in {TIMEOUT} s") from None
    except OSError as exc:
        raise MissingTool("dot", "graphviz", f"--format svg ({exc.strerror})") from None
    if run.returncode != 0:
        why = run.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise WaitchainError(f"Graphviz's dot failed: {why[0]}")
    return run.stdout.decode("utf-8", "replace")
