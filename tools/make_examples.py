#!/usr/bin/env python3
"""The worked example in `waitchain --help`, the man page and the README is real output:
this runs the real demo (`python -m waitchain demo --ascii --width 100`: real processes,
a real deadlock, the installed py-spy), stores what it printed in
src/waitchain/data/example.txt (--help reads it), copies it into the README between the
example markers, and regenerates the man page (tools/make_manpage.py).

    python3 tools/make_examples.py           run the demo, rewrite the three
    python3 tools/make_examples.py --check   run the demo again: exit 1 if what it prints now
                                             differs from the stored example other than in pids,
                                             inodes, ports, times and the spacing they cause,
                                             or if the README or the man page are out of date
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "src", "waitchain", "data", "example.txt")
README = os.path.join(ROOT, "README.md")
COMMAND = ["demo", "--ascii", "--width", "100"]
BEGIN = "<!-- example: the output of `waitchain demo --ascii --width 100`, kept by tools/make_examples.py -->"
END = "<!-- /example -->"


def run_demo() -> Tuple[int, str, str]:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"), NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "waitchain", *COMMAND], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, timeout=300, cwd="/")
    return done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8", "replace")


def normalized(text: str) -> str:
    """What must not change between runs: the words and their order. Numbers (pids, inodes,
    ports, times, the fill of a pipe), the spacing their width causes and where a column
    cuts a long name ("unprivileged-dmesg.py ...", "dmes...") may."""
    text = re.sub(r"\S*(?: )?\.\.\.(?=\s|$)", "CUT", text)
    text = re.sub(r"[0-9]+", "N", text)
    text = re.sub(r"<N\.Ns|N\.Ns|NmNs|(?<![A-Za-z])Ns\b", "T", text)
    return " ".join(text.split())


def readme_block(example: str) -> str:
    body = "".join("    " + line if line.strip() else "\n" for line in example.splitlines(True))
    return f"{BEGIN}\n\n    $ waitchain demo --ascii --width 100\n{body}\n{END}"


def with_readme_block(readme: str, example: str) -> str:
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{README}: the example markers are missing ({BEGIN} ... {END})")
    return readme[:start] + readme_block(example) + readme[end + len(END):]


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path}")


def main(argv: List[str]) -> int:
    code, out, err = run_demo()
    if code != 1 or "DEADLOCK" not in out:
        print(f"the demo did not find its deadlock (exit {code}):\n{out}{err}", file=sys.stderr)
        return 1
    manpage = [sys.executable, os.path.join(ROOT, "tools", "make_manpage.py")]
    if "--check" in argv:
        stored = read(EXAMPLE)
        problems = []
        if normalized(stored) != normalized(out):
            problems.append(f"the demo prints something else than {EXAMPLE}:\n--- stored\n{stored}"
                            f"--- now\n{out}")
        if with_readme_block(read(README), stored) != read(README):
            problems.append(f"the README's example is not {EXAMPLE}")
        if subprocess.run(manpage + ["--check"]).returncode != 0:
            problems.append("the man page is out of date")
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run python3 tools/make_examples.py and review the diff", file=sys.stderr)
        return 1 if problems else 0
    write(EXAMPLE, out)
    write(README, with_readme_block(read(README), out))
    return subprocess.run(manpage).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
