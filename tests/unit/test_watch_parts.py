"""The watchdog's parts on data made in code: which incidents are due (once, after two scans,
again after they clear), their ranking, the metrics text (parsed by prometheus_client) and its
atomic write, the report files' safety, cgroup and unit matching."""

from __future__ import annotations

import os
import stat
from typing import Optional

import pytest

from waitchain.errors import WaitchainError
from waitchain.incidents import Incident, Kind, rank, verdict_threads
from waitchain.metrics import Metrics, of_scan, render, write_atomically
from waitchain.model import Advice, ChainEnd, Edge, EdgeKind, End, EndKind, Verdict, VerdictClass, Wait
from waitchain.procfs.cgroup import in_cgroup, in_unit, parse_cgroup
from waitchain.watch import Tracker, _create, key_tag, open_out_dir

parser = pytest.importorskip("prometheus_client.parser")


def incident(name: str, kind: str = Kind.DEADLOCK, blocked: Optional[float] = 5.0, members=(1, 2)) -> Incident:
    cls = VerdictClass.DEADLOCK if kind == Kind.DEADLOCK else VerdictClass.CHAIN_END
    verdict = Verdict(cls, Advice.BREAK_CYCLE, tuple(members))
    return Incident(verdict, kind, tuple((p, p) for p in members), blocked, (name,))


# --- what is due --------------------------------------------------------------------------


def test_an_incident_is_reported_once_it_is_old_enough_and_seen_twice() -> None:
    t = Tracker(threshold=3.0)
    young = incident("a", blocked=1.0)
    assert t.update([young], now=100.0) == []
    assert t.update([young], now=101.0) == []  # seen twice, but 1 s old by both counts
    old = incident("a", blocked=1.5)
    assert t.update([old], now=103.5) == [old]  # 3.5 s since first seen


def test_an_incident_blocked_long_before_the_watchdog_started_waits_for_the_second_scan() -> None:
    t = Tracker(threshold=3.0)
    inc = incident("a", blocked=600.0)
    assert t.update([inc], now=0.0) == []
    assert t.update([inc], now=5.0) == [inc]


def test_threshold_zero_reports_at_the_first_scan() -> None:
    t = Tracker(threshold=0.0)
    inc = incident("a", blocked=None)
    assert t.update([inc], now=0.0) == [inc]


def test_the_same_incident_is_not_reported_again_until_it_clears() -> None:
    t = Tracker(threshold=1.0)
    inc = incident("a", blocked=10.0)
    t.update([inc], now=0.0)
    (due,) = t.update([inc], now=1.0)
    t.done(due)
    assert t.update([inc], now=2.0) == []
    assert t.update([inc], now=30.0) == []
    assert t.update([], now=31.0) == []  # one scan missed it: not cleared yet
    assert t.update([inc], now=32.0) == []  # the same incident, still reported
    assert t.update([], now=33.0) == []
    assert t.update([], now=34.0) == []  # two scans in a row: it cleared
    assert t.update([inc], now=35.0) == []  # back: a new occurrence, seen once
    assert t.update([inc], now=36.0) == [inc]


def test_once_reports_at_the_first_scan_what_is_old_enough() -> None:
    t = Tracker(threshold=3.0, looks=1)
    assert t.update([incident("a", blocked=1.0)], now=0.0) == []
    old = incident("b", blocked=600.0)
    assert t.update([old], now=0.0) == [old]


def test_a_new_incident_beside_a_reported_one_is_reported() -> None:
    t = Tracker(threshold=1.0)
    a, b = incident("a", blocked=10.0), incident("b", blocked=10.0)
    t.update([a], now=0.0)
    for due in t.update([a], now=1.0):
        t.done(due)
    assert t.update([a, b], now=2.0) == []
    assert t.update([a, b], now=3.0) == [b]


def test_incidents_rank_by_severity_then_longest_blocked() -> None:
    found = [incident("1", Kind.BLOCKED, 50.0), incident("2", Kind.DEADLOCK, 2.0),
             incident("3", Kind.FULL_BUFFER, None), incident("4", Kind.FULL_BUFFER, 9.0),
             incident("5", Kind.BLOCKED, 80.0), incident("6", Kind.CYCLE, 1.0)]
    assert [i.key[0] for i in rank(found)] == ["2", "6", "4", "3", "5", "1"]


# --- metrics --------------------------------------------------------------------------------


def samples(text: str) -> dict:
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_the_metrics_text_parses_and_says_what_the_scan_found() -> None:
    found = [incident("a", Kind.DEADLOCK, 12.0, (1, 2)), incident("b", Kind.BLOCKED, 40.0, (3, 4, 5))]
    last = Metrics(reports_total=3, scans_total=7)
    m = of_scan(found, 0.25, last, now=1000.5, ages={("a",): 15.0})
    got = samples(render(m))
    assert got[("waitchain_deadlocks", ())] == 1
    assert got[("waitchain_blocked_threads", (("kind", "deadlock"),))] == 2
    assert got[("waitchain_blocked_threads", (("kind", "blocked"),))] == 3
    assert got[("waitchain_blocked_threads", (("kind", "full-buffer"),))] == 0
    assert got[("waitchain_incidents", (("kind", "blocked"),))] == 1
    assert got[("waitchain_longest_blocked_seconds", ())] == 40.0
    assert got[("waitchain_scan_seconds", ())] == 0.25
    assert got[("waitchain_reports_total", ())] == 3
    assert got[("waitchain_scans_total", ())] == 8
    assert got[("waitchain_last_scan_timestamp_seconds", ())] == 1000.5
    types = {f.name: f.type for f in parser.text_string_to_metric_families(render(m))}
    assert types["waitchain_deadlocks"] == "gauge" and types["waitchain_reports"] == "counter"


def test_metrics_are_replaced_atomically_and_never_through_a_symlink(tmp_path) -> None:
    path = tmp_path / "waitchain.prom"
    write_atomically(str(path), "a 1\n")
    write_atomically(str(path), "a 2\n")
    assert path.read_text() == "a 2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["waitchain.prom"]  # no temporary left
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(victim, tmp_path / f".waitchain.prom.{os.getpid()}.tmp")
    write_atomically(str(path), "a 3\n")  # the stale temporary name is removed, not followed
    assert victim.read_text() == "keep" and path.read_text() == "a 3\n"


# --- report files -----------------------------------------------------------------------------


def test_the_report_directory_is_created_0700_and_files_0600_never_replacing_anything(tmp_path) -> None:
    old = os.umask(0)
    try:
        fd = open_out_dir(str(tmp_path / "new" / "reports"))
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o700
        _create(fd, "one.json", "{}")
        assert stat.S_IMODE(os.stat("one.json", dir_fd=fd).st_mode) == 0o600
        with pytest.raises(FileExistsError):
            _create(fd, "one.json", "again")
        os.symlink(str(tmp_path / "elsewhere"), "two.json", dir_fd=fd)
        with pytest.raises(FileExistsError):
            _create(fd, "two.json", "{}")
        assert not (tmp_path / "elsewhere").exists()
        assert sorted(os.listdir(fd)) == ["one.json", "two.json"]  # no part files left
    finally:
        os.close(fd)


def test_an_existing_report_directory_others_may_write_to_is_refused(tmp_path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(WaitchainError, match="writable by others"):
        open_out_dir(str(shared))


def test_key_tags_are_stable_and_distinct() -> None:
    assert key_tag(("deadlock", (1, 5), (2, 6))) == key_tag(("deadlock", (1, 5), (2, 6)))
    assert key_tag(("deadlock", (1, 5), (2, 6))) != key_tag(("deadlock", (1, 5), (2, 7)))


# --- targets ------------------------------------------------------------------------------------


CGROUP_V1 = """9:name=systemd:/system.slice/nginx.service
4:memory:/system.slice/nginx.service
0::/system.slice/nginx.service
"""


def test_cgroup_paths_and_units() -> None:
    paths = parse_cgroup(CGROUP_V1)
    assert paths == ["/system.slice/nginx.service"]
    assert in_cgroup(paths, "/system.slice")
    assert in_cgroup(paths, "system.slice/nginx.service/")
    assert in_cgroup(paths, "/sys/fs/cgroup/system.slice/nginx.service")
    assert in_cgroup(paths, "/sys/fs/cgroup/unified/system.slice")
    assert not in_cgroup(paths, "/system.sl")
    assert not in_cgroup(paths, "/user.slice")
    assert in_unit(paths, "nginx") and in_unit(paths, "nginx.service")
    assert not in_unit(paths, "ngin") and not in_unit(paths, "nginx.socket")


# --- which threads an incident stands on ----------------------------------------------------


class _Explored:
    """What verdict_threads asks of an Explored."""

    def __init__(self, *waits: Wait) -> None:
        self.waits = {(w.pid, w.tid): w for w in waits}

    def thread_waits(self, pid: int):
        return [w for (p, _), w in self.waits.items() if p == pid]

    def edges_to(self, pid: int, to: int):
        return [(w, e) for w in self.thread_waits(pid) for e in w.edges if e.to_pid == to]


def test_a_chain_that_ends_at_a_process_gone_during_the_scan_stands_on_its_waiters_only() -> None:
    reader = Wait(1, 1, "read(3<pipe:[9]>)", edges=(Edge(1, 1, 2, None, EdgeKind.PIPE, "pipe:[9]", "fd scan"),))
    ex = _Explored(reader)
    gone = Verdict(VerdictClass.CHAIN_END, Advice.UNKNOWN, (1, 2),
                   end=ChainEnd(EndKind.UNKNOWN, "the process exited during the scan", pid=2, tid=None))
    assert verdict_threads(ex, gone) == ((1, 1),)  # process 2 has no wait left: no KeyError later
    sleeping = Verdict(VerdictClass.CHAIN_END, Advice.SLEEPING, (1, 2),
                       end=ChainEnd(EndKind.SLEEPING, "sleeps", pid=2, tid=3))
    ex = _Explored(reader, Wait(2, 3, "clock_nanosleep()", end=End(EndKind.SLEEPING)))
    assert verdict_threads(ex, sleeping) == ((1, 1), (2, 3))


def test_a_scan_that_fails_is_logged_and_counted_and_the_watchdog_goes_on(tmp_path, monkeypatch, capsys) -> None:
    from waitchain import watch

    args = watch.parser().parse_args(["--metrics", str(tmp_path / "m.prom"), "--once"])
    dog = watch.Watchdog(args)

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(watch.incidents, "scan", broken)
    try:
        dog.scan_once()
        dog.scan_once()
    finally:
        dog.close()  # its scan cache holds a schedstat file per thread it carried
    got = samples((tmp_path / "m.prom").read_text())
    assert got[("waitchain_scan_errors_total", ())] == 2
    assert "scan failed (a bug: please report it): RuntimeError: boom" in capsys.readouterr().err


def test_one_thread_start_times_from_stat() -> None:
    from waitchain.procfs.activity import parse_one_thread

    line = "4242 (a) b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 {} 0 987654 1000 200"
    assert parse_one_thread(line.format(1)) == 987654
    assert parse_one_thread(line.format(3)) is None  # three threads
    assert parse_one_thread("4242 (a) S 1") is None
    assert parse_one_thread("") is None
