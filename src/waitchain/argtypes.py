"""Option value types shared by the commands (`waitchain`, `waitchain watch`): a module of its
own so that the main command does not import the watchdog to parse its options."""

from __future__ import annotations

import argparse


def seconds(text: str) -> float:
    """A duration option: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value
