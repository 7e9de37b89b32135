"""Python waits named from the frames (stacks/labels.py): a multiprocessing child's own
frames end at BaseProcess._bootstrap, its exit-time join of its queue's feeder is named, and
multiprocessing's joins and queues are recognised; render/pylocks.py words lock rings."""

from __future__ import annotations

from waitchain.model import Diagnosis, Frame, LockHold, Stack
from waitchain.render.pylocks import lock_lines, lock_steps, thread_text
from waitchain.stacks.labels import entry_index, fork_boundary, library_wait, python_wait

LIB = "/usr/lib/python3.11"
CHILD_AT_EXIT = (
    Frame("Thread._wait_for_tstate_lock", f"{LIB}/threading.py", 1139),
    Frame("Thread.join", f"{LIB}/threading.py", 1119),
    Frame("Queue._finalize_join", f"{LIB}/multiprocessing/queues.py", 199),
    Frame("Finalize.__call__", f"{LIB}/multiprocessing/util.py", 224),
    Frame("_exit_function", f"{LIB}/multiprocessing/util.py", 360),
    Frame("BaseProcess._bootstrap", f"{LIB}/multiprocessing/process.py", 317),
    Frame("Popen._launch", f"{LIB}/multiprocessing/popen_fork.py", 71),
    Frame("BaseProcess.start", f"{LIB}/multiprocessing/process.py", 121),
    Frame("<module>", "/srv/app.py", 9),  # the parent's p.start(), copied at fork
)
FEEDER = (Frame("Connection._send", f"{LIB}/multiprocessing/connection.py", 384),
          Frame("Queue._feed", f"{LIB}/multiprocessing/queues.py", 250),
          Frame("Thread.run", f"{LIB}/threading.py", 982))
PARENT = (Frame("Popen.wait", f"{LIB}/multiprocessing/popen_fork.py", 43),
          Frame("BaseProcess.join", f"{LIB}/multiprocessing/process.py", 149),
          Frame("<module>", "/srv/app.py", 10))


def test_a_forked_childs_own_frames_end_at_bootstrap() -> None:
    own = CHILD_AT_EXIT[:fork_boundary(CHILD_AT_EXIT)]
    assert own[-1].function == "BaseProcess._bootstrap" and len(own) == 6
    assert fork_boundary(PARENT) == len(PARENT)  # not a child: every frame is its own


def test_a_childs_exit_join_of_its_feeder_is_named() -> None:
    own = CHILD_AT_EXIT[:fork_boundary(CHILD_AT_EXIT)]
    assert entry_index(own, None) == 2
    assert python_wait(own, None, "") == "waits in multiprocessing.queues.Queue._finalize_join"
    assert entry_index(PARENT, 2) == 1  # with an application frame: the library frame it called


def test_multiprocessing_joins_and_queues_are_recognised() -> None:
    assert library_wait(CHILD_AT_EXIT[:6]) == "multiprocessing-queue"
    assert library_wait(FEEDER) == "multiprocessing-queue"
    assert library_wait(PARENT) == "multiprocessing-join"
    assert library_wait((Frame("Thread.join", f"{LIB}/threading.py", 1119), Frame("<module>", "/a.py", 3))) == ""


def _diag(stacks, names=None) -> Diagnosis:
    return Diagnosis([1], {}, {}, {}, {}, [], [], [], None, stacks=stacks, thread_names=names or {})


def test_three_threads_in_a_ring_of_locks_are_said_to_wait_for_each_other() -> None:
    p = 1
    holds = {t: LockHold(t, f"l{t}", "/a.py", t, "with", f"with l{t}:") for t in (11, 12, 13)}
    # 11 waits for l12 (held by 12), 12 for l13, 13 for l11
    stacks = {(p, t): Stack(p, t, (), on_lock=True, lock_wait=f"l{nxt}", likely_holder=holds[nxt],
                            holds=(holds[t],))
              for t, nxt in ((11, 12), (12, 13), (13, 11))}
    (step,) = lock_steps(_diag(stacks, {(p, 11): "a"}), p)
    assert step.startswith("thread 11 'a' and thread 12 and thread 13 wait for each other "
                           "(each holds the lock the next one wants): 11 holds `l11` (with l11: at a.py:11)")
    assert step.endswith("13 holds `l13` (with l13: at a.py:13) and waits for `l11` (inferred from source)")


def test_a_waiter_whose_holder_is_unknown_and_a_thread_outside_any_ring() -> None:
    p = 1
    held = LockHold(12, "m", "/a.py", 4, "acquire", "m.acquire()")
    stacks = {(p, 11): Stack(p, 11, (), on_lock=True, lock_wait="m", likely_holder=held),
              (p, 12): Stack(p, 12, (), holds=(held,)),
              (p, 13): Stack(p, 13, (), on_lock=True, lock_wait="n")}
    diag = _diag(stacks)
    assert lock_steps(diag, p) == []  # 12 is not waiting: no ring, nothing more to say
    assert lock_lines(diag, p, 12) == ["holds `m` (m.acquire() at a.py:4, inferred from source)"]
    assert lock_lines(diag, p, 11) == ["waits for `m`, held by thread 12 (m.acquire() at a.py:4, inferred from source)"]
    assert lock_lines(diag, p, 13)[0].startswith("waits for `n`; no thread is found")
    assert thread_text(diag, p, 13) == "thread 13"
