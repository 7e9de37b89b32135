"""Install as a newcomer does (issue 13): a wheel that carries the entry point, the man page
(where man(1) finds it), the JSON schema, the worked example and the demo scripts. Built
offline from a copy of the tree (no build isolation: the test venv's setuptools)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 61:
        pytest.skip("setuptools < 61 reads no [project] table (the test extra installs a newer one)")
    pytest.importorskip("wheel")  # bdist_wheel for setuptools < 70 (the test extra installs it)
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), tree)
    shutil.copytree(os.path.join(ROOT, "src"), tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tree / "dist"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                           "--no-build-isolation", "-w", str(dist), str(tree)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == 0, done.stdout.decode()
    [built] = list(dist.glob("waitchain-*.whl"))
    return str(built)


def test_the_wheel_carries_what_users_need(wheel: str) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("waitchain/cli.py", "waitchain/data/waitchain.1", "waitchain/data/example.txt",
                   "waitchain/data/waitchain-1.schema.json", "waitchain/demo/command-server.py",
                   "waitchain/demo/dmesg.py", "waitchain/demo/unprivileged-dmesg.py",
                   "waitchain/demo/command-client.py"):
        assert needed in names, needed
    assert any(n.endswith(".data/data/share/man/man1/waitchain.1") for n in names), names
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "waitchain = waitchain.entry:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_finds_the_page_of_a_virtualenv_on_path(wheel: str, tmp_path) -> None:
    """pip puts the page in <venv>/share/man/man1; man-db finds it from <venv>/bin on PATH
    (its ../share/man rule), with no MANPATH and no mandb run."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    done = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                           "--no-index", wheel], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == 0, done.stdout.decode()
    page = env_dir / "share" / "man" / "man1" / "waitchain.1"
    assert page.is_file()
    assert (env_dir / "bin" / "waitchain").is_file()
    env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
    env["PATH"] = f"{env_dir / 'bin'}:/usr/bin:/bin"
    found = subprocess.run(["man", "-aw", "waitchain"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)  # -a: a page linked into /usr/local may be found too
    assert str(page) in found.stdout.decode().split(), found.stdout.decode() + found.stderr.decode()
