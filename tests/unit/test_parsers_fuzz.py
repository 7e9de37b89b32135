"""Every parser of kernel or helper text, fed garbage: random text, random bytes, and real
samples truncated, spliced and corrupted. Each returns a value or raises only the exception
it documents (parse_stat: ValueError; py-spy's JSON: StackError; a sock_diag datagram:
WaitchainError for an error reply) — never IndexError, KeyError, UnicodeError, struct.error
or OverflowError. Hypothesis runs a bounded number of examples so the suite stays fast."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Callable, List

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "waitchain-hypothesis"))  # not in the repo

from waitchain.errors import WaitchainError  # noqa: E402
from waitchain.model import Frame, Syscall  # noqa: E402
from waitchain.procfs import fds, kstack, locks, maps, mounts, net, sched, sockdiag, status, sysvipc  # noqa: E402
from waitchain.procfs.process import parse_cmdline, parse_stat  # noqa: E402
from waitchain.procfs.tasks import parse_syscall  # noqa: E402
from waitchain.stacks import frames, labels, native, python, tidmap  # noqa: E402
from waitchain.waits import filelock, kernel, poll, signals  # noqa: E402
from waitchain.render import ends  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def data(name: str) -> str:
    return (DATA / name).read_text()


STAT = [data("stat_comm_paren.txt"), "1 (a\nb) R 0 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0"]
SYSCALL = [data(n) for n in ("syscall_nanosleep.txt", "syscall_read.txt", "syscall_running.txt",
                              "syscall_stopped.txt")]
FDINFO = [data(n) for n in ("fdinfo_epoll.txt", "fdinfo_pipe_read.txt", "fdinfo_socket.txt")] + [
    "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1\ntty-index:\t3\n",
    "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1\neventfd-count:\t0\neventfd-id: 7\n",
    "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1\nlock:\t1: FLOCK  ADVISORY  WRITE 42 fe:00:2 0 EOF\n"]
TCP = [data("proc_net_tcp.txt"), data("proc_net_tcp6.txt")]
UNIX = [data("proc_net_unix.txt")]
LOCKS = ["1: POSIX  ADVISORY  WRITE 15730 fe:00:2147697 5 14\n1: -> POSIX  ADVISORY  WRITE 15780 "
         "fe:00:2147697 6 8\n2: FLOCK  ADVISORY  READ 15730 fe:00:2147697 0 EOF\n"
         "5: POSIX  ADVISORY  WRITE 901 <none>:0 0 EOF\n"]
MAPS = ["55d1c2a4e000-55d1c2a4f000 r-xp 00001000 fe:00 2147697    /tmp/prog\n"
        "7f2ba3e00000-7f2ba3f00000 r--s 00000000 00:2f 12 /mnt/fuse/file (deleted)\n"
        "7ffe11fb3000-7ffe11fd4000 rw-p 00000000 00:00 0    [stack]\n"]
STACK = ["[<0>] folio_wait_bit_common+0x110/0x310\n[<0>] filemap_fault+0x739/0x1650\n"
         "[<0>] rpc_wait_bit_killable+0x1e/0xa0 [sunrpc]\n"]
SCHED = ["python3 (23569, #threads: 2)\n-------------------\nse.exec_start   :   725713.608879\n"
         "se.vruntime  :  12.5\n"]
STATUS = ["Name:\tpython3\nTgid:\t23569\nSigBlk:\t0000000000000a00\nSigCgt:\t0000000200000002\n"]
SYSVIPC = ["       key      msqid perms      cbytes       qnum lspid lrpid\n"
           "         0          3   600           0          0     0     0\n"]
MOUNTINFO = ["22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
             "27 22 0:419 / /tmp/with\\040space rw,nosuid - tmpfs tmpfs rw\n"
             "42 22 0:39 / /tmp/fx/mnt ro - fuse Hang ro,user_id=0\n"]
GDB = ['Thread 2 (Thread 0x7f99ddb476c0 (LWP 9172) "python"):\n'
       "#0  0x00007f99de1162ec in __GI___libc_read (fd=..., buf=...) at ./io/read.c:26\n"
       "#1  0x0000563f5de1e18a in wait_for_input (fd=...) at /tmp/prog.c:6\n"
       "Thread 1 (process 9165):\n#0  0x00007f2643e9ee53 in __nanosleep () from /lib/libc.so.6\n"]
EU_STACK = ["PID 4242 - process\nTID 4242:\n#0  0x00007f2ba3e1b1dd __read - /usr/lib/libc.so.6\n"
            "    ./io/read.c:26:25\n#1  0x000055d1c2a4e18a wait_for_input - /tmp/prog\n    /tmp/prog.c:6\n"]
PY_SPY = [json.dumps([{"pid": 7, "thread_id": 140001, "thread_name": "MainThread", "os_thread_id": 7,
                       "frames": [{"name": "Thread.join", "filename": "/usr/lib/python3.11/threading.py",
                                   "line": 1119, "locals": [{"name": "self", "addr": 4096, "arg": True,
                                                             "repr": "<Thread at 0x1000>"}]},
                                  {"name": "<module>", "filename": "/app/app.py", "line": 14}]}])]

# Text as /proc gives it to us: decoded with surrogateescape, so lone surrogates too.
raw_text = st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))
any_text = st.one_of(st.text(max_size=300), raw_text)


@st.composite
def mutated(draw, samples: List[str]) -> str:
    """A real sample, cut, spliced with random text, or with characters deleted or replaced."""
    text = draw(st.sampled_from(samples))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["cut", "insert", "delete", "replace", "duplicate"]))
        at = draw(st.integers(0, len(text)))
        junk = draw(st.one_of(st.text(max_size=8), st.sampled_from(
            ["\n", ":", " ", ")", "(", "-1", "0x", "->", "\0", "\udcff", "9" * 30, "ffff", "\t", "EOF"])))
        if op == "cut":
            text = text[:at]
        elif op == "insert":
            text = text[:at] + junk + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + len(junk) + 1:]
        elif op == "replace":
            text = text[:at] + junk + text[at + len(junk):]
        else:
            text = text[:at] + text[at:] + text[at:]
    return text


def garbage(samples: List[str]):
    return st.one_of(any_text, mutated(samples))


# --- /proc text -------------------------------------------------------------------------


@FUZZ
@given(garbage(STAT))
def test_stat(text: str) -> None:
    try:
        stat = parse_stat(text)
    except ValueError:
        return
    assert isinstance(stat.starttime, int) and isinstance(stat.comm, str)


@FUZZ
@given(st.binary(max_size=500))
def test_cmdline(raw: bytes) -> None:
    assert isinstance(parse_cmdline(raw), str)


@FUZZ
@given(garbage(SYSCALL), st.sampled_from([None, "x86_64", "aarch64", "mips"]))
def test_syscall(text: str, machine) -> None:
    call, note = parse_syscall(text, machine)
    assert call is None or (len(call.args) >= 6 and isinstance(call.name, str))
    if call is not None:
        call.arg_int(0), call.arg_int(5)


@FUZZ
@given(garbage(FDINFO))
def test_fdinfo_and_the_lines_rules_read(text: str) -> None:
    info = fds.parse_fdinfo(text)
    assert info.access in ("r", "w", "rw")
    locks.fdinfo_locks(info.extra)
    for key, value in info.extra:  # the epoll rule's tfd: lines, the signalfd rule's sigmask
        match = poll._TFD.match(value) if key == "tfd" else None
        if match:
            int(match[1]), int(match[2], 16), poll._stale("pipe:[12]", match[3])
    assert signals._hex(text) is None or isinstance(signals._hex(text), int)


@FUZZ
@given(any_text)
def test_fd_link_targets(target: str) -> None:
    inode = fds.inode_of(target)
    assert inode is None or inode >= 0
    assert fds.target_kind(target) in ("pipe", "socket", "anon", "path", "other")


@FUZZ
@given(garbage(TCP))
def test_tcp(text: str) -> None:
    for sock in net.parse_tcp(text):
        assert 0 <= sock.local[1] <= 0xFFFF and isinstance(sock.inode, int)


@FUZZ
@given(garbage(UNIX))
def test_unix(text: str) -> None:
    assert all(isinstance(inode, int) for inode in net.parse_unix(text))


@FUZZ
@given(garbage(LOCKS))
def test_locks(text: str) -> None:
    for entry in locks.parse_locks(text):
        assert isinstance(entry.start, int) and entry.key
        filelock.Request("POSIX", "WRITE", 0, None, "").conflicts(entry)


@FUZZ
@given(garbage(MAPS))
def test_maps(text: str) -> None:
    assert all(isinstance(major, int) for major, _ in maps.parse_map_devices(text))


@FUZZ
@given(garbage(STACK), any_text)
def test_kernel_stack_and_its_class(text: str, wchan: str) -> None:
    stack = kstack.parse_stack(text)
    cls, detail = kernel.classify(stack, wchan, "fuse", False, "D", "")
    assert cls in kernel.END_KIND and isinstance(detail, str)


@FUZZ
@given(garbage(SCHED))
def test_sched(text: str) -> None:
    value = sched.parse_exec_start(text)
    assert value is None or isinstance(value, float)


@FUZZ
@given(garbage(STATUS))
def test_status(text: str) -> None:
    fields = status.parse_status(text)
    for key in ("SigBlk", "SigCgt", "Tgid"):
        status.signal_names(status.mask(fields, key))


@FUZZ
@given(garbage(SYSVIPC))
def test_sysvipc(text: str) -> None:
    assert all(isinstance(v, int) for row in sysvipc.parse_sysvipc(text) for v in row.values())


@FUZZ
@given(garbage(MOUNTINFO), any_text)
def test_mountinfo_and_the_mount_of_a_path(text: str, path: str) -> None:
    found = mounts.parse_mountinfo(text)
    mount = kernel.under(found.values(), path)
    assert mount is None or isinstance(mount.fstype, str)
    for m in found.values():
        kernel.connection(m), kernel.is_fuse_mount(m)


# --- numbers a hostile or broken process puts in its system call arguments --------------


@FUZZ
@given(st.integers(-(1 << 70), 1 << 70), st.integers(-(1 << 70), 1 << 70),
       st.integers(-(1 << 70), 1 << 70), st.integers(-(1 << 70), 1 << 70))
def test_lock_ranges_and_timeouts(whence: int, start: int, length: int, pos: int) -> None:
    filelock._range(whence, start, length, pos)
    ends._duration(float(start) / 7)
    status.signal_names(start & ((1 << 64) - 1))
    poll._names(start & 0xFFFFFFFF, "EPOLL")


@FUZZ
@given(st.binary(max_size=600), st.integers(-5, 1 << 40))
def test_fd_set_bits(data: bytes, nfds: int) -> None:
    data = data[: len(data) // 8 * 8]
    assert all(0 <= fd < nfds for fd in poll._bits(data, nfds))


def test_unread_watched_fds_are_counted() -> None:
    def call(name: str, *args: int) -> Syscall:
        return Syscall(7, name, tuple(args) + (0,) * (6 - len(args)))
    assert poll._unread(call("poll", 0x1000, 1 << 31, 0), 4096) == f"{(1 << 31) - 4096:,}"
    assert poll._unread(call("select", 0xFFFFFFFF), 0) == ""  # nfds is a C int: -1
    assert poll._unread(call("select", 5000), 0) == "up to 904"
    assert poll._unread(call("epoll_wait", 3), 5000) == "904" and poll._unread(call("poll", 1, 2), 2) == ""


# --- sock_diag replies ------------------------------------------------------------------


def _netlink(kind: int, payload: bytes, seq: int = 1) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, seq, 0) + payload


REPLY = _netlink(20, struct.pack("=BBBBIII", 1, 1, 1, 0, 6184, 0, 0)
                 + struct.pack("=HH", 8, 2) + struct.pack("=I", 6185)
                 + struct.pack("=HH", 12, 4) + struct.pack("=II", 0, 5)
                 + struct.pack("=HH", 9, 0) + b"@abc" + b"\0" * 3)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.builds(
    lambda cut, junk: REPLY[:cut] + junk, st.integers(0, len(REPLY)), st.binary(max_size=40))))
def test_sock_diag_datagrams(datagram: bytes) -> None:
    for kind, _seq, payload in sockdiag._messages(datagram):
        sockdiag._errno(payload)
        sock = sockdiag._parse(payload)
        assert sock is None or isinstance(sock.path, str)
    try:
        sockdiag._collect(datagram, {})
    except WaitchainError:
        pass  # an error reply is an error


# --- helper programs' output ------------------------------------------------------------


@FUZZ
@given(st.one_of(garbage(PY_SPY), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["frames", "name", "filename", "line", "locals", "os_thread_id",
                         "thread_id", "thread_name", "addr", "arg", "repr"]), inner, max_size=6),
    max_leaves=20).map(json.dumps)))
def test_py_spy_json(text: str) -> None:
    try:
        threads = python.parse(text)
    except python.StackError:
        return
    for thread in threads:
        assert thread.tid is None or (type(thread.tid) is int and thread.tid > 0)
        frames.application_index(thread.frames)
        app = frames.application_index(thread.frames)
        labels.python_wait(thread.frames, app, "lock.acquire()", "Thread")


def test_py_spy_json_that_is_not_a_dump() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, '[{"thread_id": 1e400}]', '{"frames": []}',
                 '[{"os_thread_id": [1]}]', "Error: no python\n", '[{"frames": [{"name": 1}]}]'):
        with pytest.raises(python.StackError):
            python.parse(text)


@FUZZ
@given(garbage(GDB + EU_STACK), st.integers(0, 1 << 64))
def test_native_stacks(text: str, address: int) -> None:
    found = {**native.parse_gdb(text, [(0x1000, 0x2000, "/tmp/prog")]), **native.parse_eu_stack(text)}
    for stack in found.values():
        frames.application_index(stack)
    native.object_at([(0x1000, 0x2000, "/tmp/prog")], address)


@FUZZ
@given(garbage(MAPS))
def test_executable_mappings(text: str) -> None:
    assert all(isinstance(start, int) for start, _, _ in native.parse_maps(text))


@FUZZ
@given(any_text, st.lists(st.text(max_size=10), max_size=4))
def test_python_frame_rules(path: str, names: List[str]) -> None:
    stack = [Frame(n, path, 3) for n in names]
    labels.module_name(path)
    frames.is_library(path)
    labels.python_wait(stack, frames.application_index(stack), path, path)


@FUZZ
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=3), st.sets(st.integers(1, 1 << 22), max_size=4))
def test_tid_offset_search(blocks: List[bytes], tids) -> None:
    offset = tidmap._search(blocks, tids)
    assert offset is None or all(offset + 4 <= len(b) for b in blocks)


def test_source_line_with_a_nul_in_the_path() -> None:
    assert frames.source_line(1, "/etc/\0passwd", 1) == ""


PARSERS: List[Callable] = [parse_stat, parse_syscall, fds.parse_fdinfo, net.parse_tcp, net.parse_unix,
                           locks.parse_locks, maps.parse_map_devices, kstack.parse_stack,
                           sched.parse_exec_start, status.parse_status, sysvipc.parse_sysvipc,
                           mounts.parse_mountinfo]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
def test_huge_inputs(parser: Callable) -> None:
    """A megabyte of one line, of many lines, of digits: no exception but the documented one."""
    for text in ("9" * (1 << 20), "a:\tb\n" * 100_000, ")" * 1000 + " " + "1 " * 50000):
        try:
            parser(text)
        except ValueError:
            assert parser is parse_stat
