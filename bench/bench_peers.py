#!/usr/bin/env python3
"""Time waitchain's socket peer resolution against `ss`, and its whole diagnosis against the
manual method with py-spy, lsof and ss, in the same run.

    python3 bench/bench_peers.py [--sockets N] [--repeat R] [--src DIR] [--only peers|diagnosis]
                                 [--extra N --fds M]

a) Socket peers. N unix socketpairs and N TCP loopback connections (default 500 each), held
   by four helper processes: each end of a socketpair in a different one, the client and
   the accepted end of each connection in a different one. Measured:

     waitchain unix peers   Snapshot.unix_socket(inode) for each of the 2N unix sockets
                            (one NETLINK_SOCK_DIAG lookup each), then the peer's holder
     waitchain TCP peers    tcp_socket(pid, inode) + tcp_peer(pid, sock) for each of the 2N
                            TCP sockets (/proc/PID/net/tcp{,6}), then the peer's holder
     waitchain scan         Snapshot.scan(), which the holders come from
     ss -xp, ss -tnp        the peers' way: every socket with its process, to /dev/null

   Each resolved peer is checked: its holder must be the other helper process.

b) The whole diagnosis of the demo deadlock (waitchain.demo.scenario: wrapper → client →
   server → dmesg stand-in, 4 Python processes):

     waitchain PID --json       the CLI end to end, stacks through py-spy --nonblocking
     waitchain PID --no-stacks  the CLI without stacks
     the manual method          `py-spy dump --nonblocking --pid P` for each of the 4 chain
                                processes + `lsof -n -P` once + `ss -tnp` once: the sum

Every tool runs in its own child process, R times (default 5), interleaved; the best wall and
CPU time and the largest peak RSS count. Conventions as in bench_snapshot.py (GNU time's
`%M %U %S`, else os.wait4). All helper and demo processes are killed and reaped on every way
out. With --extra, bench_snapshot.py's extra processes (pipes and socketpairs) are held for
the whole run: a bigger system for every tool.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import sysconfig
import time
from typing import ContextManager, Dict, Iterator, List, Optional, Tuple

from common import (Result, Run, beside_python, collect, forked, kill_and_reap, load,
                    process_count, raise_nofile, run_bench, run_child, sigterm_exit, spawner, wait_for_eof)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
WIDTH = 44  # first column of the tables
ROLES = ("wrapper", "client", "server", "child")  # the demo's chain, in order
CLI_OK = (0, 1)  # 1: a deadlock was found, which the demo is
LINGER_0 = struct.pack("ii", 1, 0)  # struct linger: on, 0 seconds


# --- a) the socket helpers --------------------------------------------------------------


def make_unix(count: int) -> Tuple[list, list]:
    pairs = [socket.socketpair() for _ in range(count)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def make_tcp(count: int) -> Tuple[list, list]:
    """count loopback connections: (client ends, accepted ends). The listener is closed.
    Linger 0: killing the holders resets the connections instead of leaving TIME_WAIT
    entries that would lengthen /proc/net/tcp for the next run."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(count)
        clients, servers = [], []
        for _ in range(count):
            clients.append(socket.create_connection(listener.getsockname()))
            servers.append(listener.accept()[0])
    for sock in clients + servers:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    return clients, servers


def fork_holder(keep: list, every: list, hold: Tuple[int, int], ready: Tuple[int, int]) -> int:
    """A child that holds only `keep`, says ready, and blocks in read() until the spawner goes."""
    def body() -> None:
        os.close(hold[1])
        os.close(ready[0])
        mine = {id(s) for s in keep}
        for sock in every:
            if id(sock) not in mine:
                sock.close()
        os.write(ready[1], b"x")
        os.close(ready[1])
        os.read(hold[0], 1)  # EOF when the spawner closes or dies: then exit

    return forked(body)


def sockets_spawner_main(count: int) -> None:
    """Make the sockets, fork the four holders, close our copies; print the holders' pids
    (unix a, unix b, TCP client, TCP server) when all are ready; wait for stdin EOF."""
    signal.signal(signal.SIGTERM, sigterm_exit)
    raise_nofile(4 * count + 64)
    hold, ready = os.pipe(), os.pipe()
    kids: List[int] = []
    try:
        groups = [*make_unix(count), *make_tcp(count)]
        every = [s for group in groups for s in group]
        for group in groups:
            kids.append(fork_holder(group, every, hold, ready))
        for sock in every:
            sock.close()  # from now on each socket has exactly one holder
        os.close(ready[1])
        ok = collect(ready[0], len(kids)) == b"x" * len(kids)
        sys.stdout.write(" ".join(map(str, kids)) + "\n" if ok else "error\n")
        sys.stdout.flush()
        wait_for_eof()
    finally:
        kill_and_reap(kids)


@contextlib.contextmanager
def socket_holders(count: int) -> Iterator[List[int]]:
    """The four holder pids; all killed and reaped on the way out."""
    argv = [sys.executable, os.path.abspath(__file__), "--_spawn", str(count)]
    with spawner(argv) as line:
        if len(line) != 4 or not all(w.isdigit() for w in line):
            raise SystemExit(f"socket spawner failed to hold {count} + {count} connections "
                             f"(said {' '.join(line) or 'nothing'})")
        yield [int(w) for w in line]


# --- a) measuring inside a child --------------------------------------------------------


def socket_inodes(snap, pid: int) -> List[int]:
    return [int(t[8:-1]) for t in snap.processes[pid].fds.values() if t.startswith("socket:[")]


def holder_pids(snap, inode: int) -> set:
    return {pid for pid, _ in snap.holders.get(f"socket:[{inode}]", ())}


def resolve_unix(snap, inodes: Dict[int, List[int]], other: Dict[int, int]) -> int:
    """Peers of every unix socket, and their holders; how many are the other helper."""
    right = 0
    for pid, inos in inodes.items():
        for ino in inos:
            sock = snap.unix_socket(ino)
            right += bool(sock and sock.peer and other[pid] in holder_pids(snap, sock.peer))
    return right


def resolve_tcp(snap, inodes: Dict[int, List[int]], other: Dict[int, int]) -> int:
    """Peers of every TCP socket, and their holders; how many are the other helper."""
    right = 0
    for pid, inos in inodes.items():
        for ino in inos:
            sock = snap.tcp_socket(pid, ino)
            peer = snap.tcp_peer(pid, sock)[0] if sock else None
            right += bool(peer and other[pid] in holder_pids(snap, peer.inode))
    return right


class Clock:
    """Wall and CPU seconds of consecutive phases."""

    def __init__(self) -> None:
        self.times: Dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.times[name], self.times[name + "_cpu"] = wall - self._wall, cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def measure_peers(src: str, pids: List[int]) -> None:
    """In a child process: scan, then resolve every helper socket's peer; a JSON line."""
    sys.path.insert(0, src)
    from waitchain.snapshot import Snapshot

    ua, ub, tc, ts = pids
    other = {ua: ub, ub: ua, tc: ts, ts: tc}
    clock = Clock()
    snap = Snapshot.scan()
    clock.lap("scan")
    unix = {pid: socket_inodes(snap, pid) for pid in (ua, ub)}
    tcp = {pid: socket_inodes(snap, pid) for pid in (tc, ts)}
    clock.lap("inodes")
    unix_right = resolve_unix(snap, unix, other)
    clock.lap("unix")
    tcp_right = resolve_tcp(snap, tcp, other)
    clock.lap("tcp")
    counts = {"unix_sockets": sum(map(len, unix.values())), "unix_right": unix_right,
              "tcp_sockets": sum(map(len, tcp.values())), "tcp_right": tcp_right,
              "procs": len(snap.processes)}
    print(json.dumps({**clock.times, **counts}))


# --- b) measuring the diagnosis inside a child ------------------------------------------


def measure_diagnosis(src: str, pid: int) -> None:
    """In a child process: scan + diagnose, then attach_stacks (py-spy); a JSON line."""
    sys.path.insert(0, src)
    from waitchain.engine import diagnose
    from waitchain.snapshot import Snapshot
    from waitchain.stacks import attach_stacks

    clock = Clock()
    diag = diagnose(Snapshot.scan(), [pid])
    clock.lap("diagnose")
    attach_stacks(diag)
    clock.lap("stacks")
    print(json.dumps({**clock.times, "deadlock": diag.deadlocked, "stack_count": len(diag.stacks),
                      "processes": len(diag.processes)}))


# --- running the tools ------------------------------------------------------------------


def child_argv(src: str, *rest: str) -> List[str]:
    return [sys.executable, os.path.abspath(__file__), "--src", src, *rest]


def cli_argv() -> List[str]:
    """The waitchain console script installed beside this interpreter (what a user runs,
    without a pyenv shim), else `python -m waitchain`; either way from --src (PYTHONPATH)."""
    script = os.path.join(sysconfig.get_path("scripts"), "waitchain")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "waitchain"]


def cli_env(src: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def inner(res: Result, run: Run, phases: List[str]) -> dict:
    """Record a measuring child's run: in-process time = the sum of `phases`."""
    info = json.loads(run.out.decode().strip().splitlines()[-1])
    res.add(run)
    res.inner.append(sum(info[p] for p in phases))
    res.inner_cpus.append(sum(info[p + "_cpu"] for p in phases))
    res.info = info
    res.infos.append(info)
    return info


class Row:
    """One line of a table: a label, seconds, CPU, RSS (KiB or None), and the comparison."""

    def __init__(self, label: str, secs: float, cpu: float, rss: Optional[int],
                 vs: str = "", peer: Optional[float] = None) -> None:
        self.label, self.secs, self.cpu, self.rss, self.vs, self.peer = label, secs, cpu, rss, vs, peer

    def text(self) -> str:
        mib = f"{self.rss / 1024:14.1f}" if self.rss is not None else f"{'':>14}"
        ratio = f"{self.peer / self.secs:8.1f}x" if self.peer is not None else ""
        cells = f"  {ratio:>9}  {self.vs}" if self.vs else ""
        return f"{self.label:<{WIDTH}}{self.secs:9.3f}{self.cpu:9.3f}{mib}{cells}".rstrip()


def print_rows(title: str, rows: List[Row]) -> None:
    print(f"\n== {title} ==")
    print(f"{'tool':<{WIDTH}}{'wall s':>9}{'CPU s':>9}{'peak RSS MiB':>14}  {'peer ÷':>9}  peer")
    for row in rows:
        print(row.text())


def peer_row(res: Result, label: Optional[str] = None) -> Row:
    return Row(label or res.name, res.best_wall(), min(res.cpus), max(res.rss))


class Summed:
    """Several peer commands run one after another, as a person would: per repetition the
    sum of their wall and CPU times, the largest of their peak RSS."""

    def __init__(self) -> None:
        self.walls: List[float] = []
        self.cpus: List[float] = []
        self.rss = 0

    def add(self, runs: List[Run]) -> None:
        self.walls.append(sum(r.wall for r in runs))
        self.cpus.append(sum(r.cpu for r in runs))
        self.rss = max([self.rss] + [r.rss for r in runs])

    def row(self, label: str) -> Row:
        return Row(label, min(self.walls), min(self.cpus), self.rss)


# --- a) the table -------------------------------------------------------------------------


def bench_sockets(args: argparse.Namespace) -> str:
    """Part a): returns its summary line."""
    start = time.perf_counter()
    with socket_holders(args.sockets) as pids:
        took = time.perf_counter() - start
        print(f"\n(started {args.sockets} unix socketpairs and {args.sockets} TCP loopback "
              f"connections in 4 helper processes {', '.join(map(str, pids))} in {took:.1f} s)")
        counts = listed_by_ss()
        res, ss = run_sockets(args, pids)
    return report_sockets(args, res, ss, counts)


def listed_by_ss() -> Dict[str, int]:
    """How many sockets each ss command lists (an untimed run; a check that it sees ours)."""
    counts = {}
    for name in ("ss -xp", "ss -tnp"):
        out = run_child(name.split(), capture=True, ok=(0,)).out
        counts[name] = max(0, len(out.splitlines()) - 1)
    return counts


def run_sockets(args: argparse.Namespace, pids: List[int]) -> Tuple[Dict[str, Result], Summed]:
    res = {name: Result(name) for name in ("waitchain", "ss -xp", "ss -tnp")}
    both = Summed()
    measure = child_argv(args.src, "--_measure", "peers", "--_pids", ",".join(map(str, pids)))
    for _ in range(args.repeat):
        info = inner(res["waitchain"], run_child(measure), ["scan", "inodes", "unix", "tcp"])
        check_peers(info, args.sockets)
        runs = [run_child(["ss", "-xp"], ok=(0,)), run_child(["ss", "-tnp"], ok=(0,))]
        res["ss -xp"].add(runs[0])
        res["ss -tnp"].add(runs[1])
        both.add(runs)
    return res, both


def check_peers(info: dict, count: int) -> None:
    for kind in ("unix", "tcp"):
        if info[kind + "_sockets"] != 2 * count or info[kind + "_right"] != 2 * count:
            raise SystemExit(f"waitchain resolved {info[kind + '_right']} of "
                             f"{info[kind + '_sockets']} {kind} "
                             f"sockets to the right peer process; expected {2 * count}")


def best_phase(res: Result, phase: str) -> Tuple[float, float]:
    """The best in-process time of one phase over the runs, and its best CPU time."""
    return min(i[phase] for i in res.infos), min(i[phase + "_cpu"] for i in res.infos)


def report_sockets(args: argparse.Namespace, res: Dict[str, Result], ss: Summed,
                   counts: Dict[str, int]) -> str:
    own, xp, tnp = res["waitchain"], res["ss -xp"], res["ss -tnp"]
    n2 = 2 * args.sockets
    unix, unix_cpu = best_phase(own, "unix")
    tcp, tcp_cpu = best_phase(own, "tcp")
    scan, scan_cpu = best_phase(own, "scan")
    both = ss.row("ss -xp + ss -tnp")
    rows = [
        Row(f"waitchain unix peers, {n2} (in-process)", unix, unix_cpu, None, "ss -xp", xp.best_wall()),
        Row(f"waitchain TCP peers, {n2} (in-process)", tcp, tcp_cpu, None, "ss -tnp", tnp.best_wall()),
        Row("waitchain scan (in-process)", scan, scan_cpu, None),
        Row("waitchain scan + both (in-process)", own.best(), min(own.inner_cpus), None,
            "ss -xp + ss -tnp", both.secs),
        Row("waitchain scan + both (whole process)", own.best_wall(), min(own.cpus), max(own.rss),
            "ss -xp + ss -tnp", both.secs),
        peer_row(xp), peer_row(tnp), both,
    ]
    print_rows(f"a) socket peers: {n2} unix + {n2} TCP sockets, {own.info['procs']} processes; "
               f"ss -xp lists {counts['ss -xp']:,} sockets, ss -tnp {counts['ss -tnp']:,}", rows)
    return (f"peers of {n2} unix + {n2} TCP sockets: {unix * 1000:.0f} + {tcp * 1000:.0f} ms "
            f"(ss -xp {xp.best_wall() * 1000:.0f} ms: {xp.best_wall() / unix:.1f}x, ss -tnp "
            f"{tnp.best_wall() * 1000:.0f} ms: {tnp.best_wall() / tcp:.1f}x); whole process with "
            f"the scan {own.best_wall():.2f} s vs both ss {both.secs:.2f} s "
            f"({both.secs / own.best_wall():.1f}x)")


# --- b) the table ---------------------------------------------------------------------------


def bench_diagnosis(args: argparse.Namespace) -> str:
    """Part b): returns its summary line."""
    sys.path.insert(0, args.src)
    from waitchain.demo.harness import Processes
    from waitchain.demo.scenario import start

    with Processes() as procs:
        began = time.perf_counter()
        demo = start(procs)
        pids = [getattr(demo, role) for role in ROLES]
        print(f"\n(started the demo deadlock in {time.perf_counter() - began:.1f} s: "
              + ", ".join(f"{role} {pid}" for role, pid in zip(ROLES, pids)) + ")")
        check_cli(args.src, demo.wrapper)
        results = run_diagnosis(args, pids)
    return report_diagnosis(results)


def check_cli(src: str, pid: int) -> None:
    """One untimed run: the CLI must find the deadlock and read the 4 stacks through py-spy,
    else the comparison with the manual method would not be like for like."""
    run = run_child(cli_argv() + [str(pid), "--json"], capture=True, ok=CLI_OK, env=cli_env(src))
    doc = json.loads(run.out)
    sources = [t.get("stack_source") for p in doc["processes"] for t in p["threads"]]
    if not doc.get("deadlock") or sources.count("py-spy") < len(ROLES):
        raise SystemExit(f"waitchain {pid} --json: deadlock={doc.get('deadlock')}, stack sources "
                         f"{sources}; expected a deadlock and {len(ROLES)} py-spy stacks")


def manual_commands(pids: List[int]) -> Dict[str, List[str]]:
    py_spy = beside_python("py-spy") or "py-spy"
    cmds = {f"py-spy dump --nonblocking ({role})": [py_spy, "dump", "--nonblocking", "--pid", str(pid)]
            for role, pid in zip(ROLES, pids)}
    cmds["lsof -n -P"] = ["lsof", "-n", "-P"]
    cmds["ss -tnp"] = ["ss", "-tnp"]
    return cmds


def check_diagnosis(info: dict) -> None:
    if not info["deadlock"] or info["stack_count"] < len(ROLES):
        raise SystemExit(f"in-process diagnosis: deadlock={info['deadlock']}, "
                         f"{info['stack_count']} stacks; expected a deadlock and {len(ROLES)}")


class Diagnosis:
    """Part b)'s results: each tool's runs, and the manual method's sums."""

    def __init__(self, manual: Dict[str, List[str]]) -> None:
        self.manual = manual
        names = ["in-process", "--json", "--no-stacks", *manual]
        self.res = {name: Result(name) for name in names}
        self.summed = Summed()


def run_diagnosis(args: argparse.Namespace, pids: List[int]) -> Diagnosis:
    cli, env = cli_argv() + [str(pids[0])], cli_env(args.src)
    out = Diagnosis(manual_commands(pids))
    res, manual = out.res, out.manual
    for _ in range(args.repeat):
        measure = child_argv(args.src, "--_measure", "diagnosis", "--_pids", str(pids[0]))
        check_diagnosis(inner(res["in-process"], run_child(measure), ["diagnose", "stacks"]))
        res["--json"].add(run_child(cli + ["--json"], ok=CLI_OK, env=env))
        res["--no-stacks"].add(run_child(cli + ["--no-stacks"], ok=CLI_OK, env=env))
        runs = [run_child(argv, ok=(0,)) for argv in manual.values()]
        for name, run in zip(manual, runs):
            res[name].add(run)
        out.summed.add(runs)
    return out


def report_diagnosis(results: Diagnosis) -> str:
    res = results.res
    manual = results.summed.row("manual: 4 py-spy + lsof + ss (sum)")
    lsof = res["lsof -n -P"].best_wall()
    diag, diag_cpu = best_phase(res["in-process"], "diagnose")
    own = res["in-process"]
    rows = [
        Row("waitchain scan + diagnose (in-process)", diag, diag_cpu, None, "lsof -n -P", lsof),
        Row("waitchain + attach_stacks (in-process)", own.best(), min(own.inner_cpus), None,
            "manual", manual.secs),
        Row("waitchain PID --json (whole process)", res["--json"].best_wall(),
            min(res["--json"].cpus), max(res["--json"].rss), "manual", manual.secs),
        Row("waitchain PID --no-stacks (whole process)", res["--no-stacks"].best_wall(),
            min(res["--no-stacks"].cpus), max(res["--no-stacks"].rss), "lsof -n -P", lsof),
    ]
    rows += [peer_row(res[name]) for name in results.manual]
    rows.append(manual)
    print_rows(f"b) diagnosis of the demo deadlock ({len(ROLES)} processes)", rows)
    json_wall, bare = res["--json"].best_wall(), res["--no-stacks"].best_wall()
    return (f"diagnosis: waitchain --json {json_wall:.2f} s vs manual {manual.secs:.2f} s "
            f"({manual.secs / json_wall:.1f}x); --no-stacks {bare:.2f} s vs lsof {lsof:.2f} s "
            f"({lsof / bare:.1f}x); peak RSS {max(res['--json'].rss) / 1024:.0f} MiB vs "
            f"{manual.rss / 1024:.0f} MiB")


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=500,
                        help="unix socketpairs and TCP connections, N of each (default 500)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool; the best counts")
    parser.add_argument("--only", choices=["peers", "diagnosis"], help="run one part only")
    parser.add_argument("--extra", type=int, default=0,
                        help="also keep N extra processes with ~--fds fds each for the whole run "
                        "(bench_snapshot.py's, to see how both sides scale; default 0)")
    parser.add_argument("--fds", type=int, default=50, help="fds per extra process (default 50)")
    parser.add_argument("--src", default=SRC,
                        help="waitchain source tree to measure (default: this checkout's src/)")
    parser.add_argument("--_spawn", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_measure", choices=["peers", "diagnosis"], help=argparse.SUPPRESS)
    parser.add_argument("--_pids", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def missing_tools() -> List[str]:
    import shutil

    tools = ["ss", "lsof"]
    return [t for t in tools if not shutil.which(t)] + ([] if beside_python("py-spy") else ["py-spy"])


def bench(args: argparse.Namespace) -> None:
    missing = missing_tools()
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (the peers measured in the same run)")
    before = process_count()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, best of {args.repeat} runs, "
          f"waitchain from {args.src}")
    print("÷ = the peer's wall time / this row's (>1: waitchain is faster); wall and CPU: the "
          "best of the runs; peak RSS: the largest")
    print(f"load average before: {load()}; {before} processes")
    with extra(args.extra, args.fds):
        lines = run_parts(args)
    print(f"\nload average after: {load()}; {process_count()} processes")
    print("\n".join(lines))


def extra(count: int, fds: int) -> ContextManager[None]:
    """bench_snapshot.py's extra processes, or nothing."""
    if count <= 0:
        return contextlib.nullcontext()
    from bench_snapshot import extra_processes

    print(f"(with {count} extra processes x ~{fds} fds held for the whole run)")
    return extra_processes(count, fds)


def run_parts(args: argparse.Namespace) -> List[str]:
    """Parts a) and b) (or the one asked for); their summary lines."""
    lines: List[str] = []
    if args.only in (None, "peers"):
        lines.append(bench_sockets(args))
    if args.only in (None, "diagnosis"):
        lines.append(bench_diagnosis(args))
    return lines


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.src = os.path.abspath(args.src)
    if args._spawn:
        sockets_spawner_main(args._spawn)
    elif args._measure == "peers":
        measure_peers(args.src, [int(p) for p in args._pids.split(",")])
    elif args._measure == "diagnosis":
        measure_diagnosis(args.src, int(args._pids))
    else:
        run_bench(bench, args, "helper processes")


if __name__ == "__main__":
    main()
