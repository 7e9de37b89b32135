"""Parsers of /proc/locks, fdinfo `lock:` lines and the text the lock rules rely on
(mountinfo devices, /proc/sysvipc), on text recorded from kernel 6.18."""

from __future__ import annotations

import pytest

from waitchain.procfs.fds import parse_fdinfo
from waitchain.procfs.locks import device_text, fdinfo_locks, overlaps, parse_lock_line, parse_locks
from waitchain.procfs.mounts import parse_mountinfo
from waitchain.procfs.status import parse_status, mask, signal_names
from waitchain.procfs.sysvipc import parse_sysvipc
from waitchain.waits.filelock import Request, _range

# A POSIX lock with a blocked POSIX request and, under that, a blocked OFD request; a
# shared flock with two blocked exclusive requests; an OFD lock; a lease; a lock on no inode.
PROC_LOCKS = """\
1: POSIX  ADVISORY  WRITE 15730 fe:00:2147697 5 14
1: -> POSIX  ADVISORY  WRITE 15780 fe:00:2147697 6 8
1:  -> OFDLCK ADVISORY  WRITE -1 fe:00:2147697 0 EOF
2: FLOCK  ADVISORY  READ 15730 fe:00:2147697 0 EOF
2: -> FLOCK  ADVISORY  WRITE 15771 fe:00:2147697 0 EOF
2:  -> FLOCK  ADVISORY  WRITE 15772 fe:00:2147697 0 EOF
3: OFDLCK ADVISORY  READ -1 00:1a3:12 0 EOF
4: LEASE  ACTIVE    READ 900 fe:00:77 0 EOF
5: POSIX  ADVISORY  WRITE 901 <none>:0 0 EOF
not a lock line
"""

FDINFO = """\
pos:\t0
flags:\t02100002
mnt_id:\t27
ino:\t2147697
lock:\t1: FLOCK  ADVISORY  READ 15730 fe:00:2147697 0 EOF
lock:\t2: POSIX  ADVISORY  WRITE 15730 fe:00:2147697 5 14
"""

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
27 22 0:419 / /tmp/with\\040space rw,nosuid - tmpfs tmpfs rw
29 22 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600
garbage
"""


def test_held_locks_and_blocked_requests() -> None:
    locks = parse_locks(PROC_LOCKS)
    assert [(e.id, e.level, e.cls, e.type, e.pid) for e in locks[:6]] == [
        (1, 0, "POSIX", "WRITE", 15730), (1, 1, "POSIX", "WRITE", 15780), (1, 2, "OFDLCK", "WRITE", -1),
        (2, 0, "FLOCK", "READ", 15730), (2, 1, "FLOCK", "WRITE", 15771), (2, 2, "FLOCK", "WRITE", 15772)]
    first = locks[0]
    assert (first.dev, first.ino, first.start, first.end, first.held) == ("fe:00", 2147697, 5, 14, True)
    assert locks[2].end is None and not locks[2].held
    assert first.line == "1: POSIX  ADVISORY  WRITE 15730 fe:00:2147697 5 14"


def test_odd_lines() -> None:
    locks = parse_locks(PROC_LOCKS)
    assert len(locks) == 9
    ofd, lease, noinode = locks[6:]
    assert (ofd.cls, ofd.dev, ofd.ino, ofd.pid) == ("OFDLCK", "00:1a3", 12, -1)
    assert (lease.cls, lease.mode) == ("LEASE", "ACTIVE")
    assert (noinode.dev, noinode.ino) == ("", 0)
    assert parse_lock_line("1: FLOCK ADVISORY WRITE x fe:00:1 0 EOF") is None
    assert parse_lock_line("1: FLOCK ADVISORY WRITE 1 fe00 0 EOF") is None


def test_fdinfo_lock_lines_match_proc_locks_by_key() -> None:
    info = parse_fdinfo(FDINFO)
    mine = fdinfo_locks(info.extra)
    assert [(e.id, e.cls) for e in mine] == [(1, "FLOCK"), (2, "POSIX")]
    system = parse_locks(PROC_LOCKS)
    assert mine[0].key == system[3].key and mine[1].key == system[0].key
    assert mine[0].id != system[3].id  # fdinfo numbers its own lines


def test_conflicts() -> None:
    held = parse_locks(PROC_LOCKS)
    posix, flock = held[0], held[3]
    assert Request("FLOCK", "WRITE", 0, None, "LOCK_EX").conflicts(flock)
    assert not Request("FLOCK", "READ", 0, None, "LOCK_SH").conflicts(flock)
    assert not Request("FLOCK", "WRITE", 0, None, "LOCK_EX").conflicts(posix)  # separate kinds
    assert Request("OFDLCK", "READ", 0, None, "").conflicts(posix)  # OFD and POSIX conflict
    assert not Request("POSIX", "WRITE", 15, None, "").conflicts(posix)
    assert Request("POSIX", "", 0, None, "").conflicts(posix)  # unknown request: assume it does
    assert not Request("POSIX", "WRITE", 0, None, "").conflicts(held[1])  # a blocked request holds nothing


@pytest.mark.parametrize("whence, start, length, pos, expected", [
    (0, 5, 5, 0, (5, 9)),
    (0, 5, 0, 0, (5, None)),
    (0, 10, -4, 0, (6, 9)),
    (1, 2, 3, 100, (102, 104)),
    (2, 0, 10, 0, (0, None)),  # relative to the end, which we do not know: the whole file
])
def test_byte_ranges(whence, start, length, pos, expected) -> None:
    assert _range(whence, start, length, pos) == expected


def test_overlaps() -> None:
    assert overlaps(0, 9, 5, 14) and overlaps(0, None, 100, 200) and overlaps(14, None, 5, 14)
    assert not overlaps(0, 4, 5, 14) and not overlaps(15, None, 5, 14)


def test_device_text_is_what_proc_locks_prints() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert sorted(mounts) == [22, 27, 29]
    root, tmp = mounts[22], mounts[27]
    assert device_text(root.major, root.minor) == "fe:00"
    assert device_text(tmp.major, tmp.minor) == "00:1a3"
    assert (tmp.mountpoint, tmp.fstype) == ("/tmp/with space", "tmpfs")


def test_sysvipc_rows() -> None:
    text = ("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n"
            "         0          3   600           0          0     0     0     0     0     0     0          0          0 1764410000\n"
            "short line\n")
    (row,) = parse_sysvipc(text)
    assert (row["key"], row["msqid"], row["qnum"], row["lspid"]) == (0, 3, 0, 0)
    assert parse_sysvipc("") == []


def test_signal_masks() -> None:
    status = parse_status("SigPnd:\t0000000000000000\nSigBlk:\t0000000000000a00\nSigCgt:\t0000000200000002\n")
    assert signal_names(mask(status, "SigBlk")) == ["SIGUSR1", "SIGUSR2"]
    assert signal_names(mask(status, "SigCgt")) == ["SIGINT", "SIGRTMIN"]
    assert signal_names(1 << 32) == ["SIG33"] and mask(status, "Missing") == 0
