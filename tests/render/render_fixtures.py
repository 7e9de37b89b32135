"""Fixed diagnoses built in code (no live processes) for the renderer tests."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from waitchain import records
from waitchain.model import (Advice, Alternative, Chain, ChainEnd, Cycle, CycleShape, Diagnosis, Edge, EdgeKind, End,
                             EndKind, FileLock, Frame, Location, LockHold, LockType, Mode, PipeFill, Process, Pty, PtySide,
                             Reason, RootCause, Stack, Syscall, Task, Verdict, VerdictClass, Wait)

HOST_NET = "net:[4026531840]"
CONTAINER_NET = "net:[4026532291]"
EVIL = "\x1b[2J\nevil\"]<script>alert('x')</script> --> \"quoted\" & | ; {}"


def _proc(pid: int, comm: str, ppid: int, fds: Dict[int, str], netns: str = HOST_NET,
          state: str = "S") -> Process:
    return Process(pid=pid, starttime=1000 + pid, comm=comm, state=state, ppid=ppid, pgrp=ppid,
                   uid=1000, netns=netns, fds=fds)


def _task(tid: int, comm: str, name: str, nr: int, args: Tuple[int, ...], wchan: str,
          state: str = "S") -> Task:
    call = Syscall(nr, name, args + (0,) * (6 - len(args))) if name else None
    return Task(tid=tid, comm=comm, state=state, syscall=call, wchan=wchan,
                note="" if name else "running")


def demo() -> Diagnosis:
    """The seed's deadlock, as in DESIGN.md: wrapper → client → server ⇄ dmesg."""
    w, c, s, d = 23572, 23573, 23270, 32084
    e1 = Edge(w, w, c, None, EdgeKind.PIPE, "pipe:[139828372]",
              f"/proc/{c}/fd/1 → pipe:[139828372]; open for writing: the write end", syscall="read", fd=3, holder_fds=(1,), inode=139828372)
    e2 = Edge(c, c, s, None, EdgeKind.TCP, "socket:[139828380]",
              f"/proc/{c}/net/tcp: TCP 127.0.0.1:39392→127.0.0.1:1234; reversed 4-tuple is "
              f"socket:[139828380], held by /proc/{s}/fd/4", syscall="recvfrom", fd=3, queued=0, holder_fds=(4,), inode=139828380,
              local=("127.0.0.1", 39392), remote=("127.0.0.1", 1234))
    e3 = Edge(s, s, d, None, EdgeKind.CHILD, f"pid {d}",
              f"wait4 argument names child {d}; /proc/{d}/stat ppid is {s}", syscall="wait4")
    e4 = Edge(d, d, s, None, EdgeKind.PIPE, "pipe:[139830001]",
              f"/proc/{s}/fd/5 → pipe:[139830001]; open for reading: the read end", syscall="write", fd=1, writing=True,
              fill=PipeFill(65536, 65536), holder_fds=(5,), inode=139830001)
    waits = {
        (w, w): Wait(w, w, "read(3<pipe:[139828372]>)", (e1,), syscall="read", mode=Mode.ANY),
        (c, c): Wait(c, c, "recvfrom(3<TCP 127.0.0.1:39392→127.0.0.1:1234>)", (e2,), syscall="recvfrom",
                     mode=Mode.ANY),
        (s, s): Wait(s, s, f"wait4({d})", (e3,), syscall="wait4", mode=Mode.ANY),
        (d, d): Wait(d, d, "write(1<pipe:[139830001]>)", (e4,), syscall="write", mode=Mode.ANY),
    }
    location = Location("/srv/app/command-server.py", 16, "run_command_for_client", "    p.wait()\n")
    frames = (Frame("wait", "/usr/lib/python3.11/subprocess.py", 1264, "subprocess"),
              Frame("run_command_for_client", "/srv/app/command-server.py", 16, "__main__"),
              Frame("<module>", "/srv/app/command-server.py", 38, "__main__"))
    deadlock = Verdict(VerdictClass.DEADLOCK, Advice.READ_BEFORE_WAIT, members=(s, d),
                       threads=((s, s), (d, d)), ring=(e3, e4), cause=(s, s), culprit=d, victims=(w, c))
    return Diagnosis(
        starts=[w],
        processes={w: _proc(w, "python3", 1500, {3: "pipe:[139828372]"}),
                   c: _proc(c, "python3", w, {1: "pipe:[139828372]", 3: "socket:[139828379]"}),
                   s: _proc(s, "python3", 1, {4: "socket:[139828380]", 5: "pipe:[139830001]"}),
                   d: _proc(d, "dmesg", s, {1: "pipe:[139830001]"})},
        tasks={w: [_task(w, "python3", "read", 0, (3, 0x5590, 8192), "anon_pipe_read")],
               c: [_task(c, "python3", "recvfrom", 45, (3, 0x7f00, 100), "wait_woken")],
               s: [_task(s, "python3", "wait4", 61, (d, 0x7ffe, 0), "do_wait")],
               d: [_task(d, "dmesg", "write", 1, (1, 0x7f10, 76), "anon_pipe_write")]},
        cmdlines={w: "/usr/bin/python3 /srv/app/unprivileged-dmesg.py",
                  c: "/usr/bin/python3 /srv/app/command-client.py dmesg",
                  s: "/usr/bin/python3 /srv/app/command-server.py",
                  d: "dmesg"},
        waits=waits,
        edges=[e1, e2, e3, e4],
        chains=[Chain(w, (w, c, s, d), ChainEnd(EndKind.CYCLE, "", s))],
        cycles=[Cycle((s, d), True, CycleShape.RING, ((s, s), (d, d)), (s, d))],
        root_cause=RootCause(s, s, "wait4", "", location),  # as the engine and the stacks stage make it
        stacks={(s, s): Stack(s, s, frames, location, source="py-spy")},
        blocked_for={(w, w): 754.2, (c, c): 754.1, (s, s): 754.0, (d, d): 753.9},
        verdicts=[deadlock],
    )


def _ends(end: End, pid: int, tid: Optional[int] = None) -> ChainEnd:
    """Where a chain ends at the thread whose wait ends as `end` (graph.chains does this)."""
    return ChainEnd(end.kind, end.detail, pid, pid if tid is None else tid, end.reason, end.subject, end)


NO_CULPRIT = {Advice.IDLE_SERVER, Advice.FIFO, Advice.FILE_EVENTS, Advice.IDLE, Advice.NOT_READABLE,
              Advice.APP_WAIT}


def chain_end_verdict(diag: Diagnosis, chain: Chain, advice: Advice) -> Verdict:
    """The verdict the verdict layer gives a chain that ends (verdict.chain_verdict): its
    path, the thread where it ends as the cause (the waiter, for an application wait), the
    edge into the last process."""
    last = chain.path[-1]
    tid = chain.end.tid if chain.end.tid is not None else last
    into = next((e for e in diag.edges if len(chain.path) > 1 and (e.from_pid, e.to_pid) == chain.path[-2:]), None)
    cause = (into.from_pid, into.from_tid) if advice == Advice.APP_WAIT and into else (last, tid)
    return Verdict(VerdictClass.CHAIN_END, advice, chain.path, cause=cause,
                   culprit=None if advice in NO_CULPRIT else last, end=chain.end,
                   ring=(into,) if into else ())


def assorted() -> Diagnosis:
    """No deadlock: a multi-threaded app whose worker waits (unix socket) on a proxy in a
    container that waits for a remote database, and whose other thread waits for a busy child.
    The verdict is the chain that ends first by the verdict layer's order: the busy child."""
    app, proxy, child = 4100, 5200, 4300
    e1 = Edge(app, 4102, proxy, None, EdgeKind.UNIX, "socket:[88002]",
              "sock_diag: socket:[88001] has peer socket:[88002]; held by /proc/5200/fd/7", syscall="recvmsg", fd=9, queued=0, holder_fds=(7,), inode=88002)
    e2 = Edge(app, 4103, child, None, EdgeKind.CHILD, f"pid {child}",
              f"wait4 argument names child {child}; /proc/{child}/stat ppid is {app}", syscall="wait4")
    futex = End(EndKind.UNKNOWN, "waits on a futex (a lock or condition; not followed yet)",
                reason=Reason.NOT_FOLLOWED)
    remote = End(EndKind.REMOTE, "peer 10.0.0.5:5432 is on another host", reason=Reason.REMOTE_PEER,
                 subject="10.0.0.5:5432")
    busy = End(EndKind.RUNNING, reason=Reason.BUSY, cpu=93.0)
    waits = {
        (app, app): Wait(app, app, "futex()", (), futex, syscall="futex"),
        (app, 4102): Wait(app, 4102, "recvmsg(9<UNIX:[88001] /run/proxy.sock>)", (e1,), syscall="recvmsg"),
        (app, 4103): Wait(app, 4103, f"wait4({child})", (e2,), syscall="wait4"),
        (proxy, proxy): Wait(proxy, proxy, "recvfrom(7<TCP 172.17.0.2:40112→10.0.0.5:5432>)", (), remote,
                             syscall="recvfrom"),
        (child, child): Wait(child, child, "running", (), busy),
    }
    chains = [Chain(app, (app, proxy), _ends(remote, proxy)), Chain(app, (app, child), _ends(busy, child))]
    diag = Diagnosis(
        starts=[app],
        processes={app: _proc(app, "app", 1, {9: "socket:[88001]"}),
                   proxy: _proc(proxy, "proxy", 5000, {7: "socket:[88002]"}, CONTAINER_NET),
                   child: _proc(child, "convert", app, {}, state="R")},
        tasks={app: [_task(app, "app", "futex", 202, (0x7f20, 128, 0), "futex_wait_queue"),
                     _task(4102, "io-worker", "recvmsg", 47, (9, 0x7f30, 0), "unix_stream_read_generic"),
                     _task(4103, "reaper", "wait4", 61, (child, 0, 0), "do_wait")],
               proxy: [_task(proxy, "proxy", "recvfrom", 45, (7, 0x7f40, 4096), "wait_woken")],
               child: [_task(child, "convert", "", 0, (), "", state="R")]},
        cmdlines={app: "/usr/bin/python3 /opt/app/app.py --workers 2",
                  proxy: "/usr/local/bin/proxy -c /etc/proxy.conf",
                  child: "/usr/bin/convert in.png out.pdf"},
        waits=waits,
        edges=[e1, e2],
        chains=chains,
        cycles=[],
        root_cause=RootCause(child, child, "", ""),
        blocked_for={(app, app): 3725.0, (app, 4102): 3724.5, (app, 4103): 12.0, (proxy, proxy): 3724.4},
        notes=["not running as root: other users' processes may be unreadable"],
    )
    diag.verdicts = [chain_end_verdict(diag, chains[1], Advice.BUSY)]
    return diag


def hostile() -> Diagnosis:
    """The demo with attacker-controlled text in every field a process can choose."""
    diag = demo()
    s, d = 23270, 32084
    diag.processes[d].comm = EVIL
    diag.cmdlines[d] = EVIL + " --arg"
    diag.cmdlines[s] = f"/usr/bin/python3 /srv/{EVIL}.py"
    fifo = f"/tmp/{EVIL}"
    old = diag.waits[(d, d)]
    edge = Edge(d, d, s, None, EdgeKind.FIFO, fifo, f"/proc/{s}/fd/5 → {fifo}; open for reading: the read end",
                syscall="write", fd=1, writing=True, fill=PipeFill(65536, 65536), holder_fds=(5,))
    diag.waits[(d, d)] = records.replace(old, what=f"write(1<{fifo}>)", edges=(edge,))
    diag.edges[3] = edge
    diag.tasks[d] = [Task(d, EVIL, "S", Syscall(1, "write", (1, 0, 76, 0, 0, 0)), "pipe_write")]
    diag.processes[d].fds = {1: fifo}
    loc = Location(f"/srv/{EVIL}.py", 16, EVIL, EVIL)
    diag.stacks[(s, s)] = Stack(s, s, (Frame(EVIL, f"/srv/{EVIL}.py", 16),), loc)
    diag.notes.append(EVIL)
    diag.verdicts = [records.replace(v, ring=(v.ring[0], edge)) for v in diag.verdicts]
    return diag


# --- small diagnoses for the sentences: each what a real hang gave ----------------------------


def _small(procs: List[Process], tasks: Dict[int, List[Task]], cmdlines: Dict[int, str],
           waits: Dict[Tuple[int, int], Wait], edges: List[Edge], chains: List[Chain],
           verdict: Verdict, cycles: Optional[List[Cycle]] = None,
           stacks: Optional[Dict[Tuple[int, int], Stack]] = None) -> Diagnosis:
    cause = verdict.cause
    wait = waits.get(cause) if cause else None
    return Diagnosis(starts=[chains[0].start], processes={p.pid: p for p in procs}, tasks=tasks,
                     cmdlines=cmdlines, waits=waits, edges=list(edges), chains=chains,
                     cycles=cycles or [], stacks=stacks or {}, blocked_for={k: 60.0 for k in waits},
                     root_cause=RootCause(cause[0], cause[1], wait.syscall if wait else "", "") if cause else None,
                     verdicts=[verdict])


def _p(pid: int, comm: str, ppid: int = 1, fds: Optional[Dict[int, str]] = None) -> Process:
    return Process(pid=pid, starttime=pid, comm=comm, state="S", ppid=ppid, pgrp=ppid, uid=0,
                   netns="net:[1]", fds=fds or {})


def _t(tid: int, comm: str, name: str, nr: int, args: Tuple[int, ...] = ()) -> Task:
    return Task(tid, comm, "S", Syscall(nr, name, args + (0,) * (6 - len(args))), "x")


def _with_ends(diag: Diagnosis, advice: Advice, chain: int = 0) -> Diagnosis:
    diag.verdicts = [chain_end_verdict(diag, diag.chains[chain], advice)]
    cause = diag.verdicts[0].cause
    assert cause is not None
    diag.root_cause = RootCause(cause[0], cause[1], diag.waits[cause].syscall, "")
    return diag


def sleeping_twice() -> Diagnosis:
    """`flock /tmp/l sleep 1000` and a second `flock /tmp/l true`: the waiter waits for the
    holder and for its child (which inherited the lock), the holder for the child, asleep."""
    w, h, s = 100, 200, 300
    e1 = Edge(w, w, h, None, EdgeKind.FLOCK, "/tmp/l", "/proc/locks: '1: FLOCK  ADVISORY  WRITE 200 "
              "fe:00:2146326 0 EOF' conflicts with this LOCK_EX on fe:00:2146326", syscall="flock",
              inode=2146326, lock=FileLock(LockType.WRITE, 0, None))
    e2 = Edge(w, w, s, None, EdgeKind.FLOCK, "/tmp/l", "the same lock, inherited", syscall="flock",
              lock=FileLock(LockType.WRITE, 0, None))
    e3 = Edge(h, h, s, None, EdgeKind.CHILD, "pid 300", "wait4 names 300", syscall="wait4")
    end = End(EndKind.SLEEPING, reason=Reason.SLEEP, timeout=1000.0, call="clock_nanosleep", duration=1000.0)
    waits = {(w, w): Wait(w, w, "flock(3</tmp/l>, LOCK_EX)", (e1, e2), syscall="flock", mode=Mode.ALL),
             (h, h): Wait(h, h, "wait4(300)", (e3,), syscall="wait4"),
             (s, s): Wait(s, s, "clock_nanosleep(1000 s)", (), end, syscall="clock_nanosleep")}
    chain_end = _ends(end, s)
    diag = _small([_p(w, "flock", fds={3: "/tmp/l"}), _p(h, "flock"), _p(s, "sleep", h)],
                  {w: [_t(w, "flock", "flock", 73, (3, 2))], h: [_t(h, "flock", "wait4", 61)],
                   s: [_t(s, "sleep", "clock_nanosleep", 230)]},
                  {w: "flock /tmp/l true", h: "flock /tmp/l sleep 1000", s: "sleep 1000"},
                  waits, [e1, e2, e3], [Chain(w, (w, h, s), chain_end), Chain(w, (w, s), chain_end)],
                  Verdict(VerdictClass.CHAIN_END, Advice.SLEEPING, (w, h, s)))
    return _with_ends(diag, Advice.SLEEPING)


def reached_twice() -> Diagnosis:
    """100 waits for 200 or 250 (two writers of a pipe); both wait for 300, which waits for
    400, asleep."""
    edges = [Edge(a, a, b, None, EdgeKind.PIPE, "pipe:[1]", "e", syscall="read", fd=0)
             for a, b in ((100, 200), (100, 250), (200, 300), (250, 300), (300, 400))]
    end = End(EndKind.SLEEPING, "sleeps", reason=Reason.SLEEP)
    waits = {(p, p): Wait(p, p, "read(0<pipe:[1]>)", tuple(e for e in edges if e.from_pid == p), syscall="read")
             for p in (100, 200, 250, 300)}
    waits[(400, 400)] = Wait(400, 400, "clock_nanosleep(9 s)", (), end, syscall="clock_nanosleep")
    pids = (100, 200, 250, 300, 400)
    diag = _small([_p(p, "cat") for p in pids], {p: [_t(p, "cat", "read", 0)] for p in pids},
                  {p: f"cat{p}" for p in pids}, waits, edges,
                  [Chain(100, (100, 200, 300, 400), _ends(end, 400)), Chain(100, (100, 250, 300, 400), _ends(end, 400))],
                  Verdict(VerdictClass.CHAIN_END, Advice.SLEEPING, ()))
    return _with_ends(diag, Advice.SLEEPING)


def idle_at(detail: str, reason: Reason, advice: Advice) -> Diagnosis:
    """`tail -f` (or a FIFO reader, or a server) idle in poll: the chain ends where it starts."""
    p = 400
    end = End(EndKind.IDLE, detail, reason=reason)
    waits = {(p, p): Wait(p, p, "poll([4<anon_inode:inotify>])", (), end, syscall="poll")}
    diag = _small([_p(p, "tail")], {p: [_t(p, "tail", "poll", 7, (1, 1))]}, {p: "tail -f /var/log/x"},
                  waits, [], [Chain(p, (p,), _ends(end, p))],
                  Verdict(VerdictClass.CHAIN_END, advice, (p,)))
    return _with_ends(diag, advice)


LISTENING = End(EndKind.IDLE, "fd 6<TCP 127.0.0.1:80 (LISTEN)>: a listening socket, waits for a client",
                reason=Reason.ACCEPT, subject="TCP 127.0.0.1:80 (LISTEN)")


def client_and_loop(kind: EdgeKind = EdgeKind.TCP, loop: bool = True) -> Diagnosis:
    """A client waits for a server (or a program reads a terminal) whose event loop waits for
    it among other fds: a cycle that is not a deadlock. Without the loop (the server blocked
    in a plain read) the cycle may still resolve: wait and see."""
    c, s = 500, 600
    tty = kind == EdgeKind.PTY  # the client reads /dev/pts/3, the loop (a terminal) its master
    e1 = Edge(c, c, s, None, kind, "socket:[2]", "peer", syscall="recvfrom", fd=3,
              pty=Pty(PtySide.SLAVE, 3) if tty else None)
    e2 = Edge(s, s, c, None, kind, "socket:[1]", "peer", syscall="epoll_wait", fd=5,
              pty=Pty(PtySide.MASTER, 3) if tty else None)
    server = (Wait(s, s, "epoll_wait(3<anon_inode:[eventpoll]>)", (e2,), any_of=3, live=(LISTENING,),
                   syscall="epoll_wait") if loop else
              Wait(s, s, "read(4<pipe:[9]>)", (e2,), syscall="read"))
    waits = {(c, c): Wait(c, c, "recvfrom(3<TCP 127.0.0.1:5→127.0.0.1:80>)", (e1,), syscall="recvfrom"),
             (s, s): server}
    chain = Chain(c, (c, s), ChainEnd(EndKind.CYCLE, "", c))
    if not loop:
        verdict = Verdict(VerdictClass.CYCLE, Advice.WAIT_AND_SEE, chain.path, cause=(s, s), end=chain.end,
                          ring=(e1,))
    elif kind == EdgeKind.PTY:
        verdict = Verdict(VerdictClass.CYCLE, Advice.PTY_INPUT, chain.path, cause=(c, c), culprit=s,
                          end=chain.end, ring=(e1,))
    else:
        verdict = Verdict(VerdictClass.CYCLE, Advice.NO_REPLY, chain.path, cause=(s, s), culprit=s,
                          end=chain.end, ring=(e1,))
    return _small([_p(c, "python3"), _p(s, "python3")],
                  {c: [_t(c, "python3", "recvfrom", 45)], s: [_t(s, "python3", server.syscall, 232 if loop else 0)]},
                  {c: "python3 client.py", s: "python3 server.py"}, waits, [e1, e2], [chain], verdict,
                  [Cycle((c, s), False, CycleShape.OPEN, (), (c, s), free=(s, s),
                         free_via=None if loop else (c, None))])


def python_abba() -> Diagnosis:
    """Two Python threads take two threading.Locks in opposite orders; the main thread joins
    one of them. Python's locks record no owner: no edges, and the stacks say who waits."""
    p, a, b = 700, 701, 702
    futex = End(EndKind.UNKNOWN, "waits on a futex; no owner can be known", reason=Reason.NO_OWNER)
    waits = {(p, t): Wait(p, t, "futex(0x1, FUTEX_WAIT_BITSET_PRIVATE, 0)", (), futex, syscall="futex")
             for t in (p, a, b)}
    tasks = [_t(t, "python3", "futex", 202, (1,)) for t in (p, a, b)]

    def stack(tid: int, line: int, func: str, code: str, label: str, on_lock: bool, name: str, **facts) -> Stack:
        loc = Location("/srv/abba.py", line, func, code)
        return Stack(p, tid, (Frame(func, "/srv/abba.py", line),), loc, label, "py-spy", on_lock, name=name, **facts)

    # the stacks stage inferred from the source who holds each lock (see stacks/pylocks.py)
    accounts = LockHold(a, "accounts_lock", "/srv/abba.py", 6, "with", "with accounts_lock:")
    audit = LockHold(b, "audit_lock", "/srv/abba.py", 11, "with", "with audit_lock:")
    stacks = {(p, p): stack(p, 15, "<module>", "a.join()", "waits in threading.Thread.join for thread "
                            "'transfer' (701)", False, "MainThread", joined_tid=a),
              (p, a): stack(a, 7, "transfer", "with audit_lock:", "waits for a lock (with statement)", True,
                            "transfer", lock_wait="audit_lock", likely_holder=audit, holds=(accounts,)),
              (p, b): stack(b, 12, "audit", "with accounts_lock:", "waits for a lock (with statement)", True,
                            "audit", lock_wait="accounts_lock", likely_holder=accounts, holds=(audit,))}
    chain = Chain(p, (p,), _ends(futex, p))
    verdict = Verdict(VerdictClass.CHAIN_END, Advice.UNKNOWN, (p,), cause=(p, p), culprit=p, end=chain.end)
    return _small([_p(p, "python3")], {p: tasks}, {p: "python3 /srv/abba.py"}, waits, [], [chain], verdict,
                  stacks=stacks)


def backend_and_postmaster() -> Diagnosis:
    """A PostgreSQL backend waiting for a row lock sleeps in epoll_wait on its latch and on the
    postmaster's pipe; the chain follows the pipe to the postmaster, idle in its accept loop."""
    b, pm = 900, 800
    edge = Edge(b, b, pm, None, EdgeKind.PIPE, "pipe:[7]", "/proc/800/fd/4 → pipe:[7]; the write end",
                syscall="epoll_wait", fd=3, holder_fds=(4,), alternative=Alternative(2, "EPOLLIN", "pipe:[7]"))
    listening = End(EndKind.IDLE, "fd 5<TCP 127.0.0.1:5432 (LISTEN)>: a listening socket, waits for a client",
                    reason=Reason.ACCEPT, subject="TCP 127.0.0.1:5432 (LISTEN)")
    detail = f"waits for any of 2 fds; none leads to a blocked process: {listening.detail}"
    latch = End(EndKind.SIGNAL, "waits for SIGURG through signalfd 8", reason=Reason.SIGNAL_WAIT, signals=("SIGURG",))
    idle = End(EndKind.IDLE, detail, reason=Reason.ACCEPT, subject=listening.subject)
    waits = {(b, b): Wait(b, b, "epoll_wait(9<anon_inode:[eventpoll]>)", (edge,), any_of=2, live=(latch,),
                          syscall="epoll_wait"),
             (pm, pm): Wait(pm, pm, "pselect6([5<TCP 127.0.0.1:5432 (LISTEN)>])", (), idle, any_of=1,
                            live=(listening,), syscall="pselect6")}
    chain = Chain(b, (b, pm), _ends(idle, pm))
    diag = _small([_p(b, "postgres", pm), _p(pm, "postgres")],
                  {b: [_t(b, "postgres", "epoll_wait", 232)], pm: [_t(pm, "postgres", "pselect6", 270)]},
                  {b: "postgres: 15/main: app app [local] UPDATE waiting",
                   pm: "/usr/lib/postgresql/15/bin/postgres -D /x"},
                  waits, [edge], [chain], Verdict(VerdictClass.CHAIN_END, Advice.APP_WAIT, ()))
    return _with_ends(diag, Advice.APP_WAIT)


ALL = {"demo": demo, "assorted": assorted}


def names() -> List[str]:
    return sorted(ALL)
