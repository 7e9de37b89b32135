"""Renderer tests: fixed diagnoses (render_fixtures), golden files, headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import List

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GOLDEN = os.path.join(HERE, "golden")
REGOLD = os.environ.get("WAITCHAIN_REGOLD") == "1"


def golden(name: str, actual: str) -> None:
    """Compare with tests/render/golden/NAME; WAITCHAIN_REGOLD=1 rewrites it instead."""
    path = os.path.join(GOLDEN, name)
    if REGOLD:
        with open(path, "w", encoding="utf-8") as f:
            f.write(actual)
        return
    if not os.path.exists(path):
        pytest.fail(f"no golden file {path}: run with WAITCHAIN_REGOLD=1 once and review it")
    with open(path, encoding="utf-8") as f:
        expected = f.read()
    assert actual == expected, f"{name} differs from its golden file (WAITCHAIN_REGOLD=1 to accept)"


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return ""


needs_chromium = pytest.mark.skipif(not chromium_binary(), reason="chromium is not installed")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@pytest.fixture
def chromium(tmp_path):
    """chromium(url, *flags) -> stdout: one headless run, no network, a throwaway profile."""

    def run(url: str, *flags: str) -> str:
        argv: List[str] = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-quic", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                           f"--user-data-dir={tmp_path / 'profile'}", *flags, url]
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        return done.stdout.decode("utf-8", "replace")

    return run
