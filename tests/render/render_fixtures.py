"""Fixed diagnoses built in code (no live processes) for the renderer tests."""

from __future__ import annotations

from typing import Dict, List, Tuple

from waitchain.model import (Chain, ChainEnd, Cycle, Diagnosis, Edge, End, Frame, Location,
                             Process, RootCause, Stack, Syscall, Task, Wait)

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
    e1 = Edge(w, w, c, None, "pipe", "pipe:[139828372]",
              f"/proc/{c}/fd/1 → pipe:[139828372]; fdinfo flags mark the write end", "waits for the writer")
    e2 = Edge(c, c, s, None, "tcp", "socket:[139828380]",
              f"/proc/{c}/net/tcp: TCP 127.0.0.1:39392→127.0.0.1:1234; reversed 4-tuple is "
              f"socket:[139828380], held by /proc/{s}/fd/4", "waits for the peer")
    e3 = Edge(s, s, d, None, "child", f"pid {d}",
              f"wait4 argument names child {d}; /proc/CHILD/stat ppid is {s}", "waits for its child")
    e4 = Edge(d, d, s, None, "pipe", "pipe:[139830001]",
              f"/proc/{s}/fd/5 → pipe:[139830001]; fdinfo flags mark the read end",
              f"pipe full 65536/65536 B; reader is {s}")
    waits = {
        (w, w): Wait(w, w, "read(3<pipe:[139828372]>)", (e1,)),
        (c, c): Wait(c, c, "recvfrom(3<TCP 127.0.0.1:39392→127.0.0.1:1234>)", (e2,)),
        (s, s): Wait(s, s, f"wait4({d})", (e3,)),
        (d, d): Wait(d, d, "write(1<pipe:[139830001]>)", (e4,)),
    }
    location = Location("/srv/app/command-server.py", 16, "run_command_for_client", "    p.wait()\n")
    summary = (f"deadlock: {s} command-server.py waits in wait4() for its child {d}; {d} dmesg waits "
               f"in write() for {s} (pipe:[139830001]: pipe full 65536/65536 B)")
    frames = (Frame("wait", "/usr/lib/python3.11/subprocess.py", 1264, "subprocess"),
              Frame("run_command_for_client", "/srv/app/command-server.py", 16, "__main__"),
              Frame("<module>", "/srv/app/command-server.py", 38, "__main__"))
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
        chains=[Chain(w, (w, c, s, d), ChainEnd("cycle", f"back to {s}: DEADLOCK", s))],
        cycles=[Cycle((s, d), True, "every member waits for the next", ((s, s), (d, d)))],
        root_cause=RootCause(s, s, "wait4", summary, location),
        stacks={(s, s): Stack(s, s, frames, location, source="py-spy")},
        blocked_for={(w, w): 754.2, (c, c): 754.1, (s, s): 754.0, (d, d): 753.9},
    )


def assorted() -> Diagnosis:
    """No deadlock: a multi-threaded app whose worker waits (unix socket) on a proxy in a
    container that waits for a remote database, and whose other thread waits for a busy child."""
    app, proxy, child = 4100, 5200, 4300
    e1 = Edge(app, 4102, proxy, None, "unix", "socket:[88002]",
              "sock_diag: socket:[88001] has peer socket:[88002]; held by /proc/5200/fd/7",
              "waits for the peer")
    e2 = Edge(app, 4103, child, None, "child", f"pid {child}",
              f"wait4 argument names child {child}; /proc/CHILD/stat ppid is {app}", "waits for its child")
    waits = {
        (app, app): Wait(app, app, "futex()", (), End("unknown", "waits on a futex (a lock or condition; not followed yet)")),
        (app, 4102): Wait(app, 4102, "recvmsg(9<UNIX:[88001] /run/proxy.sock>)", (e1,)),
        (app, 4103): Wait(app, 4103, f"wait4({child})", (e2,)),
        (proxy, proxy): Wait(proxy, proxy, "recvfrom(7<TCP 172.17.0.2:40112→10.0.0.5:5432>)", (),
                             End("remote", "peer 10.0.0.5:5432 is on another host")),
        (child, child): Wait(child, child, "running", (), End("running", "running (busy), 93.0 s CPU so far")),
    }
    return Diagnosis(
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
        chains=[Chain(app, (app, proxy), ChainEnd("remote", "peer 10.0.0.5:5432 is on another host", proxy, proxy)),
                Chain(app, (app, child), ChainEnd("running", "running (busy), 93.0 s CPU so far", child, child))],
        cycles=[],
        root_cause=RootCause(proxy, proxy, "recvfrom",
                             "the chain ends at 5200 proxy: remote: peer 10.0.0.5:5432 is on another host"),
        blocked_for={(app, app): 3725.0, (app, 4102): 3724.5, (app, 4103): 12.0, (proxy, proxy): 3724.4},
        notes=["not running as root: other users' processes may be unreadable"],
    )


def hostile() -> Diagnosis:
    """The demo with attacker-controlled text in every field a process can choose."""
    diag = demo()
    s, d = 23270, 32084
    diag.processes[d].comm = EVIL
    diag.cmdlines[d] = EVIL + " --arg"
    diag.cmdlines[s] = f"/usr/bin/python3 /srv/{EVIL}.py"
    fifo = f"/tmp/{EVIL}"
    old = diag.waits[(d, d)]
    edge = Edge(d, d, s, None, "fifo", fifo, f"/proc/{s}/fd/5 → {fifo}; fdinfo flags mark the read end",
                f"pipe full 65536/65536 B; reader is {s} {EVIL}")
    diag.waits[(d, d)] = Wait(d, d, f"write(1<{fifo}>)", (edge,), old.end)
    diag.edges[3] = edge
    diag.tasks[d] = [Task(d, EVIL, "S", Syscall(1, "write", (1, 0, 76, 0, 0, 0)), "pipe_write")]
    diag.processes[d].fds = {1: fifo}
    loc = Location(f"/srv/{EVIL}.py", 16, EVIL, EVIL)
    diag.stacks[(s, s)] = Stack(s, s, (Frame(EVIL, f"/srv/{EVIL}.py", 16),), loc)
    diag.notes.append(EVIL)
    return diag


ALL = {"demo": demo, "assorted": assorted}


def names() -> List[str]:
    return sorted(ALL)
