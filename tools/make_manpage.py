#!/usr/bin/env python3
"""Generate the man page src/waitchain/data/waitchain.1 from the argparse parser, so the
options, examples and exit codes in `man waitchain` are the ones in `waitchain --help`.

    python3 tools/make_manpage.py           rewrite the file
    python3 tools/make_manpage.py --check   exit 1 if it is out of date (tests run this)
    man -l src/waitchain/data/waitchain.1   read it
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "src", "waitchain", "data", "waitchain.1")
sys.path.insert(0, os.path.join(ROOT, "src"))

from waitchain import __version__  # noqa: E402
from waitchain.cli import epilog, parser  # noqa: E402
from waitchain.watch import parser as watch_parser  # noqa: E402

DEMO = ("Start four small Python programs that deadlock (see WORKED EXAMPLE), diagnose them "
        "from the first one, print the diagnosis, and kill every process it started. Takes the "
        "output options above (\\-\\-format, \\-\\-explain, \\-\\-report ...). A process "
        "that is itself named demo is reached with \\fB\\-\\-pattern demo\\fR or \\fB\\-p\\fR.")
WATCH = ("A watchdog that catches the rare hang while it lasts. Every \\-\\-interval seconds it scans "
         "the machine (or the \\-\\-pid, \\-\\-cgroup, \\-\\-unit targets) for incidents as "
         "\\fB\\-\\-all\\fR finds them; one blocked longer than \\-\\-threshold seconds gets one "
         "report in \\-\\-out DIR (waitchain/1 JSON, text, HTML with stacks; DIR 0700, files 0600, "
         "O_EXCL, no symlink followed), one line on stderr and \\-\\-exec CMD with the JSON report's "
         "path; the same incident is not reported again until a scan no longer finds it. "
         "\\-\\-metrics FILE is a Prometheus textfile-collector file, replaced atomically after every "
         "scan. SIGTERM and SIGINT stop it with exit status 0. Its options:")
MERGE = ("Stitch the waitchain/1 documents of several hosts (\\fBwaitchain \\-\\-all \\-\\-json\\fR "
         "collected on each by ssh, Ansible, Salt, kubectl exec) by matching TCP connections: a chain that "
         "ends at a peer on another host goes on in the document of the host that holds the other end. "
         "Prints the chains that cross hosts (\\-\\-json: waitchain/1 with \\(lqacross\\(rq); a ring "
         "of waits across hosts is a deadlock: exit status 1.")
FILES = ["The page is installed as share/man/man1/waitchain.1 under the installation's prefix "
         "(a virtualenv: /opt/waitchain/share/man/man1/waitchain.1), where man finds it when the "
         "prefix's bin directory is on PATH; \\fBwaitchain \\-\\-man\\fR shows it from anywhere.",
         ".PP", "waitchain/data/waitchain\\-watch.service in the installed package (site\\-packages): a systemd "
         "unit that runs \\fBwaitchain watch\\fR as a service (copy it to /etc/systemd/system)."]
SEE_ALSO = ["strace(1)", "lsof(8)", "lsfd(1)", "ss(8)", "pgrep(1)", "proc(5)", "py-spy(1)", "dot(1)"]


def roff(text: str) -> str:
    """Escape text for roff: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def manpage() -> str:
    p = parser()
    out = [f'.TH WAITCHAIN 1 "" "waitchain {__version__}" "User Commands"',
           ".SH NAME", "waitchain \\- why is this process stuck? Follow its wait chain to the deadlock",
           ".SH SYNOPSIS", *_synopsis(), ".SH DESCRIPTION", *_paragraph(p.description or ""),
           ".SH OPTIONS", *_options(p), ".SH COMMANDS", ".TP", "\\fBwaitchain demo\\fR [\\fIOPTIONS\\fR]",
           DEMO, ".TP", "\\fBwaitchain watch\\fR [\\fIOPTIONS\\fR]", WATCH, ".RS", *_watch_options(), ".RE",
           ".TP", "\\fBwaitchain merge\\fR [\\fB\\-\\-json\\fR] \\fIFILE.json\\fR ...", MERGE,
           *_epilog(epilog()), ".SH FILES", *FILES, ".SH SEE ALSO", ", ".join(_ref(r) for r in SEE_ALSO)]
    return "\n".join(out) + "\n"


def _synopsis() -> List[str]:
    return ["\\fBwaitchain\\fR [\\fIOPTIONS\\fR] \\fIPID\\fR|\\fIPATTERN\\fR ...", ".br",
            "\\fBwaitchain\\fR [\\fIOPTIONS\\fR] \\fB\\-p\\fR \\fIPID\\fR[,\\fIPID\\fR...] | "
            "\\fB\\-\\-pattern\\fR \\fIREGEX\\fR", ".br",
            "\\fBwaitchain\\fR \\fB\\-\\-all\\fR [\\fIOPTIONS\\fR]", ".br",
            "\\fBwaitchain demo\\fR [\\fIOPTIONS\\fR]", ".br",
            "\\fBwaitchain watch\\fR [\\fIOPTIONS\\fR] \\fB\\-\\-out\\fR \\fIDIR\\fR", ".br",
            "\\fBwaitchain merge\\fR [\\fB\\-\\-json\\fR] \\fIFILE.json\\fR ...", ".br",
            "\\fBwaitchain \\-\\-man\\fR"]


def _watch_options() -> List[str]:
    """`waitchain watch`'s own options (not --help and --version: the main command has them)."""
    p = watch_parser()
    out: List[str] = []
    for action in p._actions:  # argparse has no public accessor
        if action.help == argparse.SUPPRESS or set(action.option_strings) & {"-h", "--help", "--version"}:
            continue
        out += [".TP", _option_head(action), roff(_help_text(p, action))]
    return out


def _paragraph(text: str) -> List[str]:
    return [roff(" ".join(text.split()))]


def _options(p: argparse.ArgumentParser) -> List[str]:
    out: List[str] = []
    actions = sorted(p._actions, key=lambda a: bool(a.option_strings))  # argparse has no public accessor
    for action in actions:
        if action.help == argparse.SUPPRESS:
            continue
        out += [".TP", _option_head(action), roff(_help_text(p, action))]
    return out


def _option_head(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{roff((action.metavar or action.dest).upper())}\\fR"
    names = ", ".join(f"\\fB{roff(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        value = str(action.metavar or action.dest.upper())
    return f"{names} \\fI{roff(value)}\\fR"


def _help_text(p: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = (action.help or "") % {"prog": p.prog, "default": action.default}
    return " ".join(text.split())


def _epilog(epilog: str) -> List[str]:
    """`heading:` lines become sections; their indented lines stay as they are (.nf)."""
    out: List[str] = []
    block: List[str] = []
    for line in epilog.splitlines() + [""]:
        if line and not line.startswith(" ") and line.endswith(":"):
            out += _block(block)
            block = []
            out.append(f".SH {roff(line[:-1].upper())}")
        elif line.strip():
            block.append(line[2:] if line.startswith("  ") else line)
        else:
            out += _block(block)
            block = []
    return out


def _block(lines: List[str]) -> List[str]:
    if not lines:
        return []
    return [".PP", ".nf", ".RS 2", *[roff(line) for line in lines], ".RE", ".fi"]


def _ref(name: str) -> str:
    page, _, section = name.partition("(")
    return f"\\fB{roff(page)}\\fR({section}"


def main(argv: List[str]) -> int:
    text = manpage()
    if "--check" in argv:
        try:
            with open(TARGET, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"{TARGET} is out of date: run python3 tools/make_manpage.py", file=sys.stderr)
            return 1
        return 0
    os.makedirs(os.path.dirname(TARGET), exist_ok=True)
    with open(TARGET, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
