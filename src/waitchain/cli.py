"""Command line: arguments, target resolution, exit codes, and every error → a message."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from typing import List, Optional

from . import __version__
from .errors import (EXIT_DEADLOCK, EXIT_DENIED, EXIT_INTERNAL, EXIT_NO_PROCESS,  # noqa: F401
                     EXIT_OK, EXIT_UNSUPPORTED, EXIT_USAGE, MAX_CANDIDATES, AccessDenied,
                     Ambiguous, NoMatch, ProcessGone, WaitchainError)  # the codes are part of the CLI
from .engine import diagnose, diagnose_all
from .model import Diagnosis
from .render import Options, renderers
from .render.progress import spinner
from .procfs.status import thread_group
from .procfs.tasks import DENIED
from .sanitize import clean
from .snapshot import Snapshot
from .stacks import attach_stacks

FORMATS = ["text", "json", "dot", "svg", "mermaid"]


EPILOG = """\
examples:
  sudo waitchain 23572                  the wait chain starting at pid 23572
  sudo waitchain unprivileged-dmesg     the one process whose command line matches (pgrep -f)
  sudo waitchain --all                  every chain that ends in a deadlock or a blocked write
  sudo waitchain 23572 --explain        also the commands that check each hop by hand
  sudo waitchain 23572 --json           machine-readable (schema waitchain/1)
  sudo waitchain 23572 --format svg >chain.svg   a picture (needs Graphviz's dot)
  sudo waitchain 23572 --format mermaid          a flowchart for a GitHub/GitLab issue
  sudo waitchain 23572 --report incident.html    one file for the ticket
  waitchain demo                        start a real deadlock, diagnose it, clean it up

worked example:
  What `waitchain demo` runs: a wrapper reads a client's output through a pipe; the client
  waits for a server's reply over TCP; the server ran `dmesg` with stdout=PIPE and calls
  p.wait() before reading, and dmesg has filled the pipe:

  $ sudo waitchain unprivileged-dmesg
  PID            PROGRAM                  CALL                      BLOCKED  WHY
  23572          unprivileged-dmesg.py    read(3<pipe:[139828372]>)  12m34s  waits for the writer
  `- 23573       command-client.py dmesg  recvfrom(3<TCP 127.0.0.1:39392->127.0.0.1:1234>)
     |                                                               12m34s  waits for the peer
     `- 23270    command-server.py        wait4(32084)               12m34s  waits for its child
        `- 32084 dmesg                    write(1<pipe:[139830001]>) 12m33s  pipe full 64 KiB
           `- << 23270 command-server.py  DEADLOCK: 23270 -> 32084 -> 23270

  DEADLOCK: 23270 command-server.py and 32084 dmesg wait for each other
  root cause: 23270 command-server.py in wait4(), blocked for 12m34s
              at command-server.py:16 in run_command_for_client: p.wait()
  do now:     kill 32084 (dmesg): 23270 stops waiting and the chain unwinds
  to fix:     read the child's output until EOF first, then wait (p.communicate())

reading the output:
  Read it from the top: each line waits for the line below it. CALL is the system call the
  thread is blocked in, with its fd decoded as strace -y does; BLOCKED is how long the thread
  has not run (from /proc/PID/task/TID/sched); WHY says what it waits for. The chain ends in a
  cycle (a deadlock: exit code 1) or at a process that is running, sleeping, idle, on another
  host, in the kernel (D state), at a terminal, or in a wait waitchain cannot follow yet.

when it says DEADLOCK:
  Only when every thread that could end each wait is stuck too: a sleeping or running thread
  of the same process, a live alternative of a poll/epoll, a timeout, or a signal the program
  waits for (make -j's SIGCHLD, an event loop's wake-up fd) is a way out. One verdict per
  deadlock, with a root cause that does not depend on the pid you start from; the threads are
  looked at a second time first, and one that moved withdraws the verdict. --json has them all
  under "verdicts".

safety and permissions:
  waitchain only reads /proc and sock_diag netlink: it never stops, ptraces or writes to the
  processes it looks at (--native is the one exception, and says so). Run it as root to see
  other users' processes; in a container it needs CAP_SYS_PTRACE and the host's pid namespace.

exit codes:
  0  diagnosis printed, no deadlock found
  1  diagnosis printed, a deadlock was found (a cycle, or a process waiting for itself)
  2  bad arguments (or the --report file cannot be written)
  3  no such process, or the pattern matched none or several
  4  permission denied (run as root; in a container, add CAP_SYS_PTRACE)
  5  this kernel or machine lacks something waitchain needs (/proc/PID/syscall; Graphviz's dot
     for --format svg)
  70 internal error (a bug: please report it with the message)
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="waitchain", description="Why is this process stuck? Follows what a hung process "
        "waits for,\nthrough pipes, sockets and child processes, to the deadlock or the end of "
        "the chain.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", help="a pid, or a pattern matched against command lines")
    p.add_argument("--all", action="store_true", help="every chain that ends in a deadlock or a blocked write")
    add_output_options(p)
    p.add_argument("--version", action="version", version=f"waitchain {__version__}")
    return p


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the main command and `waitchain demo`."""
    p.add_argument("--json", action="store_true", help="print JSON (schema waitchain/1); "
                   "same as --format json")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format")
    p.add_argument("--width", type=int, metavar="COLUMNS",
                   help="fit the text output to this many columns (default: the terminal's "
                   "width; unlimited when stdout is not a terminal)")
    p.add_argument("--ascii", action="store_true",
                   help="draw the tree with ASCII only (automatic when stdout's encoding is not UTF-8)")
    p.add_argument("--explain", action="store_true",
                   help="for every edge, show how to check it by hand (ls -l /proc/PID/fd, ss, ...)")
    p.add_argument("--stacks", action="store_true",
                   help="show the whole user-space stack of each blocked thread, not just the "
                   "application frame")
    p.add_argument("--no-stacks", action="store_true",
                   help="do not read user-space stacks at all (no py-spy)")
    p.add_argument("--native", action="store_true",
                   help="INVASIVE: also read native stacks with gdb/eu-stack, which briefly "
                   "stops (ptrace-attaches to) each target thread")
    p.add_argument("--report", metavar="FILE.html",
                   help="also write a self-contained HTML incident report to FILE.html")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["demo"]:
            from .demo.run import main as demo_main

            return demo_main(argv[1:])
        return run(parser().parse_args(argv))
    except WaitchainError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the one place a bug becomes a message, not a traceback
        print(f"waitchain: internal error: {type(exc).__name__}: {clean(str(exc))}", file=sys.stderr)
        if os.environ.get("WAITCHAIN_DEBUG"):
            raise
        return EXIT_INTERNAL


def run(args: argparse.Namespace) -> int:
    if args.all == (args.target is not None):
        parser().error("give a pid or pattern, or --all")
    with Snapshot.scan() as snap:  # closing it ends its memory reader's helper process
        if args.all:
            diag = diagnose_all(snap)
        else:
            pid = resolve(snap, args.target)
            _readable(snap, pid)
            diag = diagnose(snap, [pid])
        if os.geteuid() != 0:
            diag.notes.append("not running as root: other users' processes may be unreadable")
        return finish(diag, args, snap)


def _readable(snap: Snapshot, pid: int) -> None:
    """A start process none of whose system calls we may read is an error, not a chain."""
    tasks = snap.tasks(pid)
    if tasks and all(t.note == DENIED for t in tasks):
        raise AccessDenied(pid, "the system calls (/proc/PID/task/TID/syscall)")


def finish(diag: Diagnosis, args: argparse.Namespace, snap: Optional[Snapshot] = None) -> int:
    """Stacks, output in the chosen format, the optional report; the exit code."""
    if snap is not None:
        measure_blocked(diag, snap)
    if not args.no_stacks:
        with spinner("reading user-space stacks"):
            attach_stacks(diag, native=args.native)
    fmt = "json" if args.json else args.format
    _write(renderers()[fmt](diag, options(args)))
    if args.report:
        from .render.html import write_report

        write_report(diag, args.report)
    return EXIT_DEADLOCK if diag.deadlocked else EXIT_OK


def _write(text: str) -> None:
    """stdout in its own encoding; UTF-8 bytes when it cannot hold the text (a DOT file
    piped through a C-locale shell must still be valid)."""
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()


def measure_blocked(diag: Diagnosis, snap: Snapshot) -> None:
    """How long each thread on the chains has not run (from /proc/PID/task/TID/sched)."""
    for pid, tasks in diag.tasks.items():
        for task in tasks:
            idle = snap.idle_seconds(pid, task.tid)
            if idle is not None:
                diag.blocked_for[(pid, task.tid)] = idle


def options(args: argparse.Namespace) -> Options:
    tty = sys.stdout.isatty()
    color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    width = args.width or (shutil.get_terminal_size().columns if tty else None)
    encoding = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "")
    ascii_only = getattr(args, "ascii", False) or encoding != "utf8"
    return Options(color=color, width=width, explain=args.explain, stacks=args.stacks,
                   ascii=ascii_only)


def resolve(snap: Snapshot, target: str) -> int:
    """A pid that exists, or the one process whose command line matches the pattern."""
    return _by_pid(snap, int(target)) if target.isdigit() else _by_pattern(snap, target)


def _by_pid(snap: Snapshot, number: int) -> int:
    """The process `number` names: a pid, or the id of one of its threads."""
    pid = number if number in snap.processes else thread_group(snap.fs, number)
    if pid not in snap.processes:
        raise ProcessGone(number)
    return pid


def _by_pattern(snap: Snapshot, target: str) -> int:
    """The one process, other than waitchain and its ancestors, whose command line matches."""
    try:
        pattern = re.compile(target)
    except re.error as exc:
        raise NoMatch(target, f"not a valid regular expression: {exc}") from None
    mine = _ancestors(snap, os.getpid())
    found = [p for p in sorted(snap.processes) if p not in mine and pattern.search(snap.cmdline(p))]
    if not found:
        raise NoMatch(target)
    deepest = _deepest_of_one_line(snap, found)
    if deepest is None:
        raise Ambiguous(target, found, {p: snap.cmdline(p) for p in found[:MAX_CANDIDATES]})
    return deepest


def _deepest_of_one_line(snap: Snapshot, found: List[int]) -> Optional[int]:
    """When every match is an ancestor of one of them (`bash -c 'python3 server.py'`,
    sudo, su -c, timeout: wrappers repeat the command line), that one; else None."""
    for pid in found:
        if set(found) - {pid} <= _ancestors(snap, pid):
            return pid
    return None


def _ancestors(snap: Snapshot, pid: int) -> set:
    """This process and its ancestors (sudo, the shell): their command lines hold the pattern."""
    seen = set()
    while pid in snap.processes and pid not in seen:
        seen.add(pid)
        pid = snap.processes[pid].ppid
    return seen | {os.getpid()}


def fail(exc: WaitchainError) -> int:
    """Print the error and how to fix it (the error knows); its exit code."""
    print(f"waitchain: {clean(str(exc))}", file=sys.stderr)
    for line in exc.fixes():
        print(f"  {line}", file=sys.stderr)
    return exc.exit_code
