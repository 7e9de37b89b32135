"""Command line: arguments, target resolution, exit codes, and every error → a message."""

from __future__ import annotations

import argparse
import os
import re
import sys

from . import __version__
from .errors import (EXIT_DEADLOCK, EXIT_DENIED, EXIT_INTERNAL, EXIT_INTERRUPTED,  # noqa: F401
                     EXIT_NO_PROCESS, EXIT_OK, EXIT_OUTPUT, EXIT_SYSTEM, EXIT_UNSUPPORTED,
                     EXIT_USAGE, MAX_CANDIDATES, AccessDenied, Ambiguous, IncompleteScan,
                     NoMatch, OutputError, ProcessGone, ReportError, Unsupported, UsageError,
                     WaitchainError)  # the codes are part of the CLI
from . import incidents, remote
from .argtypes import seconds
from .confirm import confirm_over
from .engine import diagnose, measure_blocked
from .incidents import DEFAULT_MIN_BLOCKED
from .model import Diagnosis
from .output import Output, open_output
from .render import Options, renderer
from .render.progress import spinner
from .procfs.status import thread_group
from .procfs.tasks import DENIED
from .sanitize import clean
from .snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

FORMATS = ["text", "json", "dot", "svg", "mermaid", "markdown"]
PICTURES = ("dot", "svg", "mermaid", "markdown")  # no tree, no explain rows, no width
PID = re.compile(r"[0-9]+")
NEGATIVE = re.compile(r"-[0-9]+")

USAGE = """\
waitchain [OPTIONS] PID|PATTERN ...
       waitchain [OPTIONS] -p PID[,PID...] | --pattern REGEX
       waitchain [OPTIONS] --all
       waitchain demo [OPTIONS]
       waitchain watch [--interval S] [--threshold S] --out DIR [--metrics FILE] (see watch --help)
       waitchain --man"""

EPILOG_HEAD = """\
examples:
  waitchain 23572                       the wait chain starting at pid 23572
  waitchain -p 23572,23580              two starts at once (also: waitchain 23572 23580)
  waitchain unprivileged-dmesg          the one process whose command line matches (pgrep -f)
  waitchain --pattern demo              a process named like a subcommand
  waitchain --all                       every chain that ends in a deadlock or a blocked write
  waitchain 23572 --explain             also the commands that check each hop by hand
  waitchain 23572 --json                machine-readable (schema waitchain/1)
  waitchain 23572 --format svg >chain.svg      a picture (needs Graphviz's dot)
  waitchain 23572 --format markdown            a Mermaid flowchart for a GitHub/GitLab issue
  waitchain 23572 --report incident.html       one file for the ticket (mode 0600)
  waitchain demo                        start a real deadlock, diagnose it, clean it up
  waitchain 23572 --confirm 2           look again 2 s later: a hang, or a slow exchange?
  waitchain watch --out /var/lib/waitchain   a watchdog: a report when a rare hang happens
  Run it as root (sudo waitchain ...) to follow processes of other users.

worked example:
  `waitchain demo --ascii --width 100`, as it printed on a test machine (tools/make_examples.py
  runs it again and a test checks that this is still what it prints):

"""

EPILOG_TAIL = """
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
  0    diagnosis printed, no deadlock found
  1    diagnosis printed, a deadlock was found (a cycle, or a process waiting for itself);
       kept when the output fails after it (a closed pipe: waitchain ... | head)
  2    bad arguments or options that conflict; a --report file that exists (without --force)
       or cannot be created (checked before anything is diagnosed)
  3    no such process, or the pattern matched none or several
  4    permission denied (run as root; in a container, add CAP_SYS_PTRACE); also --all when
       some processes could not be read and nothing was found among the others
  5    this kernel or machine lacks something waitchain needs (/proc/PID/syscall; Graphviz's
       dot for --format svg)
  6    the output could not be written (stdout or the --report file: disk full, I/O error)
  7    the system failed a read waitchain needed (no answer in time, an I/O error)
  70   internal error (a bug: please report it with the message)
  130  interrupted (Ctrl-C)
"""


def example() -> str:
    """The worked example: real output of the demo, stored by tools/make_examples.py."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "example.txt")
    try:
        with open(path, encoding="utf-8") as f:
            return "".join("  " + line if line.strip() else "\n" for line in f)
    except OSError:
        return "  (the example file is missing from this installation)\n"


def epilog() -> str:
    return EPILOG_HEAD + example() + EPILOG_TAIL


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="waitchain", usage=USAGE, description="Why is this process stuck? Follows what a "
        "hung process waits for,\nthrough pipes, sockets and child processes, to the deadlock or "
        "the end of the chain.",
        epilog=epilog(), formatter_class=_Building)
    p.add_argument("targets", nargs="*", metavar="PID|PATTERN",
                   help="where chains start: a pid (a thread id names its process), or a pattern "
                   "matched against command lines like pgrep -f (one process must match); several "
                   "may be given")
    p.add_argument("-p", "--pid", action="append", default=[], type=pid_list, metavar="PID[,PID...]",
                   help="start at these pids (like strace, gdb, py-spy); may be repeated")
    p.add_argument("--pattern", action="append", default=[], metavar="REGEX",
                   help="start at the one process whose command line matches REGEX, even if it "
                   "looks like a pid or a subcommand (--pattern demo); may be repeated")
    p.add_argument("--all", action="store_true", help="every incident on the machine, worst first: deadlocks, "
                   "chains through a full buffer, chains blocked longer than --min-blocked")
    p.add_argument("--db", action="store_true",
                   help="ask a PostgreSQL server who holds the lock a backend waits for: runs the server's own "
                        "psql as its OS user over its unix socket, read-only with timeouts (pg_blocking_pids, "
                        "pg_locks, pg_stat_activity)")
    p.add_argument("--min-blocked", type=seconds, metavar="SECONDS",
                   help=f"with --all: also report a chain of two or more processes once all its waits have "
                   f"been blocked this long (default {DEFAULT_MIN_BLOCKED:g})")
    p.add_argument("--confirm", type=seconds, metavar="SECONDS",
                   help="look again after SECONDS; report as stuck only the waits that did not move (same "
                   "call and arguments, no context switch, same queues): a hang, not a slow exchange")
    remote.add_options(p)
    add_output_options(p)
    p.add_argument("--man", action="store_true", help="show the manual page and exit")
    p.add_argument("--version", action="version", version=f"waitchain {__version__}")
    p.formatter_class = argparse.RawDescriptionHelpFormatter  # --help and errors: the terminal's width
    return p


class _Building(argparse.RawDescriptionHelpFormatter):
    """The formatter while options are added: argparse makes one per option only to check its
    metavar, and each would ask the terminal's width through shutil (~3 ms to import)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, 80 if width is None else width)


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the main command and `waitchain demo`."""
    p.add_argument("--json", action="store_true", help="print JSON (schema waitchain/1); "
                   "same as --format json")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="output format (default: text); mermaid is the flowchart source (for mmdc, "
                   "mermaid.live), markdown the same inside a ```mermaid block")
    p.add_argument("--width", type=positive_int, metavar="COLUMNS",
                   help="fit the text output to this many columns (default: the terminal's "
                   "width; unlimited when stdout is not a terminal)")
    p.add_argument("--ascii", action="store_true",
                   help="ASCII only, in every format (automatic for text when stdout's encoding "
                   "is not UTF-8)")
    p.add_argument("--explain", action="store_true",
                   help="for every edge, show how to check it by hand (ls -l /proc/PID/fd, ss, ...); "
                   "in --json, an \"explain\" list")
    p.add_argument("--stacks", action="store_true",
                   help="show the whole user-space stack of each blocked thread, not just the "
                   "application frame")
    p.add_argument("--no-stacks", action="store_true",
                   help="do not read user-space stacks at all (no py-spy)")
    p.add_argument("--native", action="store_true",
                   help="INVASIVE: also read native stacks with gdb/eu-stack, which briefly "
                   "stops (ptrace-attaches to) each target thread; this restarts its blocking "
                   "call, so the next run shows it blocked for a moment only")
    p.add_argument("--debuginfod", action="store_true",
                   help="NETWORK: fetch the debug info of native frames whose file has none here "
                   "from the servers in DEBUGINFOD_URLS (file:line; kept in elfutils' cache, "
                   "~/.cache/debuginfod_client); without it waitchain never uses the network")
    p.add_argument("--report", metavar="FILE.html",
                   help="also write a self-contained HTML incident report to FILE.html (a new "
                   "file, mode 0600; see --force)")
    p.add_argument("--force", action="store_true", help="let --report replace an existing file")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also the notes that are the same on every run (native stacks not read)")


def pid_list(value: str) -> List[int]:
    """`1050` or `1050,1124`: positive numbers only."""
    pids = []
    for part in value.split(","):
        part = part.strip()
        if not PID.fullmatch(part) or int(part) <= 0:
            raise argparse.ArgumentTypeError(f"not a pid: {part!r} (pids are positive numbers)")
        pids.append(int(part))
    return pids


def positive_int(value: str) -> int:
    if not PID.fullmatch(value.strip()) or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value!r}")
    return int(value)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["demo"]:
            from .demo.run import main as demo_main

            return demo_main(argv[1:])
        if argv[:1] == ["watch"]:
            from .watch import main as watch_main

            return watch_main(argv[1:])
        if argv[:1] == ["merge"]:
            from .merge import main as merge_main

            return merge_main(argv[1:])
        return run(parser().parse_args(argv))
    except WaitchainError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed before there was a verdict to keep
        _quiet_stdout()
        return EXIT_OUTPUT
    except Exception as exc:  # the one place a bug becomes a message, not a traceback
        print(f"waitchain: internal error (a bug, please report it): {type(exc).__name__}: "
              f"{clean(str(exc))}", file=sys.stderr)
        if os.environ.get("WAITCHAIN_DEBUG"):
            raise
        return EXIT_INTERNAL


def check_options(args: argparse.Namespace) -> str:
    """The output format; options that contradict each other are an error, never ignored."""
    if args.json and args.format not in (None, "json"):
        raise UsageError(f"--json and --format {args.format} ask for two formats",
                         "give one of them (--json is --format json)")
    fmt = "json" if args.json else (args.format or "text")
    if args.stacks and args.no_stacks:
        raise UsageError("--stacks and --no-stacks contradict each other", "give one of them")
    if args.native and args.no_stacks:
        raise UsageError("--native reads stacks and --no-stacks reads none", "give one of them")
    if getattr(args, "debuginfod", False) and args.no_stacks:
        raise UsageError("--debuginfod is for stacks and --no-stacks reads none", "give one of them")
    if fmt in PICTURES and args.explain:
        raise UsageError(f"--explain has no place in --format {fmt} (a picture)",
                         "use --explain with text or --json, or --report (it holds both)")
    if fmt in PICTURES and args.stacks:
        raise UsageError(f"--stacks has no place in --format {fmt} (a picture)",
                         "use --stacks with text or --json")
    if args.width is not None and fmt != "text":
        raise UsageError(f"--width applies to the text output, not to --format {fmt}",
                         "leave --width out")
    if getattr(args, "min_blocked", None) is not None and not args.all:
        raise UsageError("--min-blocked chooses what --all reports, and --all is not given",
                         "add --all, or leave --min-blocked out")
    if args.force and not args.report:
        raise UsageError("--force only lets --report replace a file, and --report is not given",
                         "add --report FILE, or leave --force out")
    return fmt


def run(args: argparse.Namespace) -> int:
    if args.man:
        return show_man()
    fmt = check_options(args)
    remote.check(args)
    starts = _starts(args)
    if args.all == bool(starts or args.socket):
        raise UsageError("give a pid or pattern, or --all" if not args.all else
                         "--all looks at every process: give it without pids or patterns",
                         "waitchain PID, waitchain -p PID, waitchain --pattern REGEX, or "
                         "waitchain --all")
    report = Report.open(args.report, args.force) if args.report else None
    try:
        if args.native:
            _warn("--native stops each target thread briefly (ptrace) and restarts its blocking "
                  "call: the next run shows it blocked for a moment only")
        with Snapshot.scan() as snap:  # closing it ends its memory reader's helper process
            snap.ask_db = args.db
            if args.all:
                diag = incidents.scan(snap, _min_blocked(args)).diagnosis
                skipped, total = _unread(snap)
            else:
                pids = _resolve_all(snap, starts)
                pids += [p for p in (remote.socket_starts(snap, args.socket) if args.socket else []) if p not in pids]
                for pid in pids:
                    _readable(snap, pid)
                diag = diagnose(snap, pids)
                skipped = total = 0
            if args.confirm is not None:
                diag = confirm_over(diag, snap, args.confirm)
            if args.remote:
                remote.follow(diag, snap, args)
            if skipped and not diag.verdicts:  # "nothing found" would not be true
                raise IncompleteScan(skipped, total)
            if skipped:
                diag.notes.append(f"the scan is incomplete: {skipped} of {total} processes could "
                                  "not be read (permission denied)")
            elif os.geteuid() != 0:
                diag.notes.append("not running as root: other users' processes may be unreadable")
            return finish(diag, args, snap, fmt, report)
    finally:
        if report is not None:
            report.discard()  # nothing written: the file reserved for it goes


def _min_blocked(args: argparse.Namespace) -> float:
    return DEFAULT_MIN_BLOCKED if args.min_blocked is None else args.min_blocked


def _warn(text: str) -> None:
    print(f"waitchain: warning: {text}", file=sys.stderr)


def _starts(args: argparse.Namespace) -> List[Tuple[str, str]]:
    """(kind, value) of every start asked for: ("pid", "1050"), ("pattern", "srv")."""
    starts: List[Tuple[str, str]] = []
    for target in args.targets:
        if NEGATIVE.fullmatch(target):
            raise UsageError(f"{target} is not a pid: pids are positive numbers",
                             f"a pattern that begins with '-' is given as --pattern={target}")
        if PID.fullmatch(target) and int(target) == 0:
            raise UsageError("0 is not a pid", "give a pid from ps or pgrep")
        starts.append(("pid" if PID.fullmatch(target) else "pattern", target))
    starts += [("pid", str(pid)) for group in args.pid for pid in group]
    starts += [("pattern", pattern) for pattern in args.pattern]
    return starts


def _resolve_all(snap: Snapshot, starts: List[Tuple[str, str]]) -> List[int]:
    pids = [_by_pid(snap, int(v)) if kind == "pid" else _by_pattern(snap, v) for kind, v in starts]
    return list(dict.fromkeys(pids))


def _unread(snap: Snapshot) -> Tuple[int, int]:
    """(processes whose fds could not be read, processes): kernel threads left out (they
    have no fds to read, and their cmdline is `[name]`: only a process without fds read has
    its command line looked at)."""
    unread = set(snap.fds_unreadable())
    users = [p for p, proc in snap.processes.items() if proc.fds or not _kernel_thread(snap, p)]
    return len([p for p in users if p in unread]), len(users)


def _kernel_thread(snap: Snapshot, pid: int) -> bool:
    line = snap.cmdline(pid)
    return line.startswith("[") and line.endswith("]")


def _readable(snap: Snapshot, pid: int) -> None:
    """A start process none of whose system calls we may read is an error, not a chain."""
    tasks = snap.tasks(pid)
    if tasks and all(t.note == DENIED for t in tasks):
        raise AccessDenied(pid, "the system calls (/proc/PID/task/TID/syscall)")


def finish(diag: Diagnosis, args: argparse.Namespace, snap: Optional[Snapshot] = None,
           fmt: Optional[str] = None, report: Optional["Report"] = None, before: str = "") -> int:
    """Stacks, output in the chosen format, the optional report; the exit code. A deadlock's
    code (1) is kept when the reader closed the pipe (| head, | grep -q) or the report failed
    after the verdict was printed; stdout that cannot be written (a full disk) is EXIT_OUTPUT."""
    fmt = fmt or check_options(args)
    if snap is not None:
        measure_blocked(diag, snap)
    if not args.no_stacks:
        from .stacks import GROUP_NOTES, attach_stacks  # imported only when stacks are read

        with spinner("reading user-space stacks"):
            attach_stacks(diag, native=args.native, debuginfod=getattr(args, "debuginfod", False),
                          every_frame=fmt == "json" or args.stacks or report is not None)
        if not args.verbose:  # the note that says the same thing on every run
            routine = GROUP_NOTES["native-available"].split("{")[0]
            diag.notes[:] = [n for n in diag.notes if not n.startswith(routine)]
    verdict = EXIT_DEADLOCK if diag.deadlocked else EXIT_OK
    text = renderer(fmt)(diag, options(args, fmt))
    printed: Optional[OutputError] = None
    try:
        write_stdout(before + text)
    except BrokenPipeError:
        pass  # the reader has what it wanted (| head, | grep -q): the verdict stands
    except OutputError as exc:
        printed = exc  # the verdict did not reach anyone
    if report is not None:
        try:
            report.write(diag)
            print(f"waitchain: report written to {clean(report.path)}", file=sys.stderr)
        except OutputError as exc:
            code = fail(exc)
            verdict = verdict if verdict == EXIT_DEADLOCK else code
    return fail(printed) if printed is not None else verdict


def write_stdout(text: str) -> None:
    """stdout in its own encoding (UTF-8 bytes when it cannot hold the text: a DOT file piped
    through a C-locale shell must still be valid), flushed, so a full disk or an I/O error is
    seen here: OutputError. BrokenPipeError is the caller's: the reader went away."""
    try:
        try:
            sys.stdout.write(text)
        except UnicodeEncodeError:
            sys.stdout.flush()
            sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        raise
    except OSError as exc:
        _quiet_stdout()
        raise OutputError("the output (stdout)", exc) from None


def _quiet_stdout() -> None:
    """After stdout failed: point it at /dev/null, so the interpreter's last flush at exit
    cannot fail again ("Exception ignored ... BrokenPipeError")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests capture it)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


class Report:
    """The --report file: checked and reserved before the diagnosis (so a bad path costs
    nothing), written after it, through output.open_output (a new file O_EXCL|O_NOFOLLOW|
    O_NONBLOCK, mode 0600: a report names processes and command lines; with --force an
    existing regular file is replaced by rename; a FIFO, device or symlink is refused)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.path = out.path

    @classmethod
    def open(cls, path: str, force: bool) -> "Report":
        return cls(open_output(path, force))

    def write(self, diag: Diagnosis) -> None:
        from .render.html import report

        try:
            self.out.write(report(diag).encode("utf-8"))
        except OSError as exc:
            raise OutputError(f"the report {clean(self.path)}", exc) from None

    def discard(self) -> None:
        """Remove what open() created, unless the report was written."""
        self.out.discard()


def show_man() -> int:
    """`waitchain --man`: the page through man(1); --help's text when man is missing (the
    page is made from it)."""
    import shutil
    import subprocess

    page = manpage_path()
    program = shutil.which("man")
    if program is None or not os.path.exists(page):
        _warn("man is not installed (Debian/Ubuntu: apt-get install man-db): the page's text is --help")
        write_stdout(parser().format_help())
        return EXIT_OK
    return subprocess.call([program, "-l", page])


def manpage_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "waitchain.1")


def options(args: argparse.Namespace, fmt: str = "text") -> Options:
    tty = sys.stdout.isatty()
    color = tty and fmt == "text" and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    width = args.width or (_terminal_columns() if tty else None)
    encoding = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "")
    ascii_only = getattr(args, "ascii", False) or (fmt == "text" and encoding != "utf8")
    return Options(color=color, width=width, explain=args.explain, stacks=args.stacks,
                   ascii=ascii_only)


def _terminal_columns() -> int:
    import shutil  # only for a terminal: shutil (bz2, lzma, fnmatch) costs ~3 ms to import

    return shutil.get_terminal_size().columns


def resolve(snap: Snapshot, target: str) -> int:
    """A pid that exists, or the one process whose command line matches the pattern."""
    return _by_pid(snap, int(target)) if PID.fullmatch(target) else _by_pattern(snap, target)
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
