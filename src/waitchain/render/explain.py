"""--explain: for every edge and every chain end, the commands a person would type to check
it by hand (the method waitchain automates), each with what it should show here.

Commands only contain numbers that waitchain produced (pids, fds, inodes, ports) and
shell-quoted, cleaned paths, so they are safe to copy and paste."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..model import Chain, Diagnosis, Edge, Task
from ..sanitize import clean
from .common import end_pid, name

_FD_CALL = re.compile(r"^\w+\((\d+)<")
_TCP = re.compile(r"TCP (\S+):(\d+)→(\S+):(\d+)")
_INODE = re.compile(r"\[(\d+)\]")
_HOLDER = re.compile(r"/proc/(\d+)/fd/([\d,]+)")
_LOCK_INODE = re.compile(r"\b[0-9a-f]{2,}:[0-9a-f]{2,}:(\d+)\b")  # MAJ:MIN:INODE in /proc/locks


@dataclass(frozen=True)
class Check:
    command: str  # what to type (a shell command)
    expect: str  # what it shows for this diagnosis


def edge_checks(diag: Diagnosis, edge: Edge) -> List[Check]:
    """How to see, by hand, that edge.from waits for edge.to."""
    checks = _call_checks(diag, edge.from_pid, edge.from_tid)
    kind = EDGE_KINDS.get(edge.kind)
    if kind is None and "lock" in edge.kind:
        kind = _lock
    checks += kind(diag, edge) if kind else [_evidence_only(edge)]
    return checks


def end_checks(diag: Diagnosis, chain: Chain) -> List[Check]:
    """How to see, by hand, why the chain ends where it does."""
    if chain.end.kind == "cycle":
        return []
    pid = end_pid(chain)
    tid = chain.end.tid if chain.end.tid is not None else pid
    checks = _call_checks(diag, pid, tid) if chain.end.kind != "running" else []
    return checks + END_KINDS.get(chain.end.kind, _wchan)(diag, pid, tid)


# --- the waiting thread -----------------------------------------------------------------


def _task(diag: Diagnosis, pid: int, tid: int) -> Optional[Task]:
    return next((t for t in diag.tasks.get(pid, []) if t.tid == tid), None)


def _call_checks(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    task = _task(diag, pid, tid)
    call = task.syscall if task else None
    syscall_file = f"cat /proc/{pid}/task/{tid}/syscall"
    if call is None:
        return [Check(syscall_file, clean(task.note) if task and task.note else "the thread's system call")]
    args = " ".join(hex(a) for a in call.args[:3])
    checks = [Check(syscall_file, f"{call.nr} {args} …: {clean(call.name)}() is syscall {call.nr}")]
    fd, target = _fd_of(diag, pid, tid)
    if fd is not None:
        checks[0] = Check(syscall_file, f"{call.nr} {args} …: {clean(call.name)}() on fd {fd}")
        checks.append(Check(f"ls -l /proc/{pid}/fd/{fd}", f"→ {target}"))
    return checks


def _fd_of(diag: Diagnosis, pid: int, tid: int) -> Tuple[Optional[int], str]:
    wait = diag.waits.get((pid, tid))
    match = _FD_CALL.match(wait.what) if wait else None
    if match is None:
        return None, ""
    fd = int(match[1])
    proc = diag.processes.get(pid)
    target = proc.fds.get(fd) if proc else None
    if target is None:
        target = wait.what[match.end():].rstrip(")").rstrip(">") if wait else ""
    return fd, clean(target)


def _holder_fds(edge: Edge) -> str:
    """The fds through which edge.to holds the object, from the evidence text."""
    for pid, fds in _HOLDER.findall(edge.evidence):
        if int(pid) == edge.to_pid:
            return fds
    return ""


def _inode(text: str) -> Optional[str]:
    match = _INODE.search(text)
    return match[1] if match else None


# --- per edge kind -----------------------------------------------------------------------


def _pipe(diag: Diagnosis, edge: Edge) -> List[Check]:
    inode = _inode(edge.object) if edge.object.startswith("pipe:") else None
    writing = "read end" in edge.evidence or edge.label.startswith("pipe")
    end = "read" if writing else "write"
    checks = []
    fds = _holder_fds(edge)
    if inode is not None:
        mode = "r--" if writing else "-w-"
        checks.append(Check(f"lsfd -Q 'INODE == {inode}'",
                            f"every holder of the pipe; {edge.to_pid} has MODE {mode} (the {end} end)"))
        other = f"{edge.to_pid},…,{fds.split(',')[0] or 'FD'}{end[0]}"
        checks.append(Check(f"lsof -n -P +E -p {edge.from_pid} -a -d {_from_fd(diag, edge)}",
                            f"the pipe; +E adds its other end: {other}"))
    else:
        path = shlex.quote(clean(edge.object))
        checks.append(Check(f"lsof -n -P -- {path}", f"{edge.to_pid} holds the {end} end of the FIFO"))
    if fds:
        first = fds.split(",")[0]
        mode = "0 (O_RDONLY) or 2 (O_RDWR)" if writing else "1 (O_WRONLY) or 2 (O_RDWR)"
        checks.append(Check(f"grep flags /proc/{edge.to_pid}/fdinfo/{first}",
                            f"the last octal digit is {mode}: the {end} end"))
    return checks


def _from_fd(diag: Diagnosis, edge: Edge) -> str:
    fd, _ = _fd_of(diag, edge.from_pid, edge.from_tid)
    return str(fd) if fd is not None else "FD"


def _unix(diag: Diagnosis, edge: Edge) -> List[Check]:
    peer = _inode(edge.object)
    if peer is None:
        return [_evidence_only(edge)]
    return [Check(f"ss -xp | grep -w {peer}",
                  f"the connection; the side with inode {peer} names {edge.to_pid} in users:(...)"),
            Check(f"lsfd -Q 'INODE == {peer}'", f"{name(diag, edge.to_pid)} holds the peer socket")]


def _tcp(diag: Diagnosis, edge: Edge) -> List[Check]:
    wait = diag.waits.get((edge.from_pid, edge.from_tid))
    match = _TCP.search(wait.what) if wait else None
    if match is None:
        return [_evidence_only(edge)]
    local, lport, remote, rport = match.groups()
    ns = _netns_prefix(diag, edge)
    expect = (f"this end {local}:{lport}→{remote}:{rport} and its peer, held by "
              f"{name(diag, edge.to_pid)}; Recv-Q/Send-Q are the queued bytes")
    return [Check(f"{ns}ss -tnp '( sport = :{lport} or dport = :{lport} )'", expect),
            Check(f"lsof -n -P -iTCP:{lport}", "both ends, if they are in this network namespace")]


def _netns_prefix(diag: Diagnosis, edge: Edge) -> str:
    spaces = {p.netns for p in diag.processes.values() if p.netns}
    return f"nsenter -t {edge.from_pid} -n " if len(spaces) > 1 else ""


def _child(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"cat /proc/{edge.from_pid}/task/*/children", f"lists {edge.to_pid}"),
            Check(f"grep PPid /proc/{edge.to_pid}/status", f"PPid: {edge.from_pid}")]


def _lock(diag: Diagnosis, edge: Edge) -> List[Check]:
    fd = _from_fd(diag, edge)
    known = _LOCK_INODE.search(edge.evidence)  # the /proc/locks line names the inode
    if known is not None:
        pattern = f"':{known[1]} '"
    elif fd != "FD":  # double quotes: the shell must expand $(...)
        pattern = f'":$(stat -Lc %i /proc/{edge.from_pid}/fd/{fd}) "'
    else:
        pattern = "':INODE '"
    return [Check(f"grep {pattern} /proc/locks",
                  "the granted lock, and this request marked -> (blocked)"),
            Check(f"lslocks -p {edge.to_pid}", f"{name(diag, edge.to_pid)} holds a lock on the same file")]


def _futex(diag: Diagnosis, edge: Edge) -> List[Check]:
    owner = edge.to_tid if edge.to_tid is not None else edge.to_pid
    return [Check(f"cat /proc/{edge.to_pid}/task/{owner}/syscall",
                  f"what thread {owner} (the {'mutex owner' if edge.kind == 'mutex' else 'joined thread'}) "
                  "is doing instead of releasing it")]


def _fuse(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"cat /proc/{edge.from_pid}/task/{edge.from_tid}/stack", "request_wait_answer: a FUSE "
                  "request (root only)"),
            Check(f"grep -l fuse_connection /proc/{edge.to_pid}/fdinfo/*",
                  f"{name(diag, edge.to_pid)} holds /dev/fuse: it is the daemon that must answer")]


def _holder_grep(word: str, what: str):
    def checks(diag: Diagnosis, edge: Edge) -> List[Check]:
        return [Check(f"grep -l {word} /proc/{edge.to_pid}/fdinfo/*",
                      f"{name(diag, edge.to_pid)} holds the same {what}")]
    return checks


def _mqueue(diag: Diagnosis, edge: Edge) -> List[Check]:
    path = clean(edge.object.split(" ", 1)[-1])
    return [Check(f"cat {shlex.quote('/dev/mqueue/' + path.lstrip('/'))}", "QSIZE: the bytes queued"),
            Check(f"ls -l /proc/{edge.to_pid}/fd | grep -F {shlex.quote(path)}",
                  f"{name(diag, edge.to_pid)} has the queue open")]


def _pty(diag: Diagnosis, edge: Edge) -> List[Check]:
    return [Check(f"ls -l /proc/{edge.to_pid}/fd | grep -E 'ptmx|pts'",
                  f"{name(diag, edge.to_pid)} holds the other side of the terminal")]


def _evidence_only(edge: Edge) -> Check:
    return Check(f"# {clean(edge.kind)} {clean(edge.object)}", clean(edge.evidence))


EDGE_KINDS = {"pipe": _pipe, "fifo": _pipe, "unix": _unix, "tcp": _tcp, "child": _child,
              "flock": _lock, "posix-lock": _lock, "ofd-lock": _lock, "lock": _lock,
              "mutex": _futex, "join": _futex, "fuse": _fuse, "pty": _pty,
              "eventfd": _holder_grep("eventfd-id", "eventfd"), "mqueue": _mqueue}


# --- per end kind -----------------------------------------------------------------------


def _running(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"top -H -p {pid}", f"thread {tid} uses CPU"),
            Check(f"py-spy dump --nonblocking --pid {pid}", "where it computes (Python only)")]


def _wchan(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"cat /proc/{pid}/task/{tid}/wchan", "the kernel function it sleeps in")]


def _disk(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"cat /proc/{pid}/task/{tid}/stack", "the kernel stack of the wait (root only)"),
            Check("dmesg | tail", "I/O errors or hung-task warnings")]


def _stopped(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"grep -E 'State|TracerPid' /proc/{pid}/status",
                  "State: T (stopped); TracerPid is a debugger's pid, or 0")]


def _self(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    _, target = _fd_of(diag, pid, tid)
    inode = _inode(target)
    if inode is None:
        return []
    return [Check(f"ls -l /proc/{pid}/fd | grep {inode}", "this process holds both ends of the pipe")]


def _idle(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    detail = next((c.end.detail for c in diag.chains if end_pid(c) == pid and c.end.kind == "idle"), "")
    if "listening socket" in detail or "waits for a client" in detail:
        return [Check(f"ss -ltnp | grep pid={pid},", "Recv-Q: connections waiting to be accepted")]
    if "inotify" in detail:
        return [Check(f"grep -h inotify /proc/{pid}/fdinfo/*",
                      "the watches: ino (hex) and sdev name the watched files")]
    return [Check(f"ls -l /proc/{pid}/fd", "the files, pipes and sockets it has open"),
            Check(f"cat /proc/{pid}/task/{tid}/wchan", "the kernel function it sleeps in")]


def _remote(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    wait = next((w for w in diag.waits.values() if w.pid == pid and w.tid == tid), None)
    match = _TCP.search(wait.what) if wait else None
    if match is None:
        return []
    return [Check(f"ss -tnpi '( sport = :{match[2]} )'",
                  f"the connection to {match[3]}:{match[4]}; rtt and retransmits show a slow peer")]


def _signal(diag: Diagnosis, pid: int, tid: int) -> List[Check]:
    return [Check(f"grep -E 'SigBlk|SigCgt' /proc/{pid}/task/{tid}/status",
                  "the signals it blocks and catches (hex masks)")]


END_KINDS = {"running": _running, "disk": _disk, "kernel": _disk, "signal": _signal, "stopped": _stopped, "self": _self,
             "idle": _idle, "remote": _remote, "sleeping": _wchan, "terminal": _wchan,
             "unknown": _wchan}
