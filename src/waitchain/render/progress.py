"""A spinner on stderr while a slow step runs (stacks, remote hops). Only when stderr is a
terminal: nothing is written to pipes, files or logs, and stdout is never touched."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Iterator, Optional

FRAMES_UTF8 = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
FRAMES_ASCII = "|/-\\"
DELAY = 0.3  # seconds before the spinner shows: fast steps print nothing
INTERVAL = 0.1


@contextmanager
def spinner(message: str, stream: Optional[IO[str]] = None) -> Iterator[None]:
    """`with spinner("reading stacks"):` shows `⠋ reading stacks…` until the block ends."""
    stream = sys.stderr if stream is None else stream
    if not _wanted(stream):
        yield
        return
    stop = threading.Event()
    worker = threading.Thread(target=_spin, args=(stream, message, stop), daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def _wanted(stream: IO[str]) -> bool:
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM") != "dumb"


def _spin(stream: IO[str], message: str, stop: threading.Event) -> None:
    if stop.wait(DELAY):
        return
    utf8 = (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
    frames = FRAMES_UTF8 if utf8 else FRAMES_ASCII
    text = message + ("…" if utf8 else "...")
    i = 0
    try:
        while not stop.is_set():
            stream.write(f"\r{frames[i % len(frames)]} {text}")
            stream.flush()
            i += 1
            stop.wait(INTERVAL)
        stream.write("\r" + " " * (len(text) + 2) + "\r")
        stream.flush()
    except (OSError, ValueError):
        pass  # stderr closed under us: the spinner is not worth an error
