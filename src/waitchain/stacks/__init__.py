"""User-space stacks of the threads that matter (filled in by the stacks issue)."""

from __future__ import annotations

from ..model import Diagnosis


def attach_stacks(diag: Diagnosis, native: bool = False) -> None:
    """Fill diag.stacks and diag.root_cause.location for the blocked threads on the chains."""
    return None
