"""The likely holder of a Python lock, inferred from source (stacks/pylocks.py): what a line
acquires, what a frame holds, and which thread holds what another waits for, on source text."""

from __future__ import annotations

import random
import sys
import textwrap
from typing import Dict, List, Optional, Tuple

from waitchain.stacks import pylocks
from waitchain.stacks.pylocks import FrameAt, Holder, Holders, Source, likely_holder

ABBA = """\
import threading
a = threading.Lock()
b = threading.Lock()


def one():
    with a:
        step()
        with b:  # ONE WAITS
            pass


def two():
    with b:
        step()
        with a:  # TWO WAITS
            pass
"""

METHODS = """\
import threading


class Account:
    def __init__(self):
        self.lock = threading.Lock()

    def withdraw(self):
        self.lock.acquire()
        try:
            audit()  # HOLDS
        finally:
            self.lock.release()

    def deposit(self):
        with self.lock:  # WAITS
            pass


class Other:
    def deposit(self):
        with self.lock:  # OTHER WAITS
            pass
"""


def src(text: str) -> Source:
    source = Source(textwrap.dedent(text))
    assert source.ok
    return source


def line(text: str, marker: str) -> int:
    return next(i for i, row in enumerate(text.splitlines(), 1) if marker in row)


def frame(tid: int, at: int, index: int = 0, path: str = "/app.py",
          addrs: Optional[Dict[str, int]] = None) -> FrameAt:
    return FrameAt(tid, index, path, at, addrs or {})


def holder(text: str, waiter: FrameAt, frames: List[FrameAt]) -> Tuple[Optional[str], Optional[Tuple[int, str, int]]]:
    wanted, found = likely_holder(src(text), waiter, frames)
    return (wanted.expression if wanted else None,
            (found.tid, found.acquire.expression, found.acquire.line) if found else None)


# --- what a line acquires ---------------------------------------------------------------------


def test_a_with_statement_and_an_acquire_call_name_their_lock() -> None:
    source = src(ABBA + "\n\ndef three():\n    b.acquire(timeout=5)\n")
    assert source.acquired_at(line(ABBA, "ONE WAITS")).expression == "b"
    assert source.acquired_at(line(ABBA, "TWO WAITS")).expression == "a"
    assert source.acquired_at(len(ABBA.splitlines()) + 4).expression == "b"
    methods = src(METHODS)
    assert methods.acquired_at(line(METHODS, "WAITS")).expression == "self.lock"


def test_nothing_is_acquired_by_an_ordinary_line_a_call_or_two_locks_at_once() -> None:
    text = """\
    def f():
        work()
        with get_lock():
            pass
        with a, b:
            pass
        with locks[0]:
            pass
    """
    source = src(text)
    assert [source.acquired_at(n) for n in (2, 3, 5, 7)] == [None, None, None, None]


def test_source_that_does_not_parse_infers_nothing() -> None:
    assert not Source("def f(:\n").ok
    assert Source("def f(:\n").acquired_at(1) is None
    assert Source("def f(:\n").held_at(1, False) == []


# --- ABBA, re-entry ------------------------------------------------------------------------------


def test_two_threads_taking_two_locks_in_opposite_orders_each_hold_what_the_other_wants() -> None:
    one, two = frame(11, line(ABBA, "ONE WAITS")), frame(12, line(ABBA, "TWO WAITS"))
    outer = [frame(11, 40, 1, "/usr/lib/python3.11/threading.py"), frame(12, 40, 1, "/usr/lib/python3.11/threading.py")]
    assert holder(ABBA, one, [one, two] + outer) == ("b", (12, "b", line(ABBA, "TWO WAITS") - 2))
    assert holder(ABBA, two, [one, two] + outer) == ("a", (11, "a", line(ABBA, "with a:")))


def test_a_thread_on_the_with_line_is_acquiring_not_holding() -> None:
    # thread 12 is at `with a:` itself (blocked on it), not inside its body
    one, two = frame(11, line(ABBA, "ONE WAITS")), frame(12, line(ABBA, "with a:"))
    assert holder(ABBA, one, [one, two]) == ("b", None)


def test_a_thread_that_takes_a_lock_it_holds_is_its_own_holder() -> None:
    text = """\
    import threading
    lock = threading.Lock()

    def save():
        with lock:
            flush()

    def flush():
        with lock:  # AGAIN
            pass
    """
    text = textwrap.dedent(text)
    inner = frame(5, line(text, "AGAIN"))
    outer = frame(5, line(text, "flush()"), 1)
    assert holder(text, inner, [inner, outer]) == ("lock", (5, "lock", line(text, "with lock:")))


def test_the_same_function_nesting_its_own_lock() -> None:
    text = "import threading\nm = threading.Lock()\ndef f():\n    with m:\n        with m:\n            pass\n"
    waiter = frame(3, 5)
    assert holder(text, waiter, [waiter]) == ("m", (3, "m", 4))


# --- acquire() without release ------------------------------------------------------------------


def test_after_acquire_and_before_release_the_lock_is_held() -> None:
    waiter, inside = frame(1, line(METHODS, "WAITS")), frame(2, line(METHODS, "HOLDS"), 1)
    assert holder(METHODS, waiter, [waiter, inside]) == ("self.lock", (2, "self.lock", line(METHODS, "acquire()")))


def test_a_released_lock_is_not_held() -> None:
    text = """\
    import threading
    lock = threading.Lock()

    def worker():
        lock.acquire()
        lock.release()
        idle()  # AFTER

    def other():
        lock.acquire()  # WAITS
    """
    text = textwrap.dedent(text)
    waiter, after = frame(1, line(text, "WAITS")), frame(2, line(text, "AFTER"), 1)
    assert holder(text, waiter, [waiter, after]) == ("lock", None)


def test_a_with_block_that_released_inside_it_does_not_hold() -> None:
    text = """\
    def worker():
        with lock:
            lock.release()
            idle()  # AFTER
            lock.acquire()

    def other():
        with lock:  # WAITS
            pass
    """
    text = textwrap.dedent(text)
    waiter, after = frame(1, line(text, "WAITS")), frame(2, line(text, "AFTER"), 1)
    assert holder(text, waiter, [waiter, after]) == ("lock", None)


# --- the same scope, the same object -------------------------------------------------------------


def test_self_attributes_match_only_in_methods_of_the_same_class() -> None:
    other = frame(1, line(METHODS, "OTHER WAITS"))
    inside = frame(2, line(METHODS, "HOLDS"), 1)
    assert holder(METHODS, other, [other, inside]) == ("self.lock", None)


def test_self_attributes_of_different_objects_do_not_match_when_py_spy_showed_self() -> None:
    waiter = frame(1, line(METHODS, "WAITS"), addrs={"self": 0x1000})
    inside = frame(2, line(METHODS, "HOLDS"), 1, addrs={"self": 0x2000})
    same = frame(2, line(METHODS, "HOLDS"), 1, addrs={"self": 0x1000})
    assert holder(METHODS, waiter, [waiter, inside]) == ("self.lock", None)
    assert holder(METHODS, waiter, [waiter, same])[1] == (2, "self.lock", line(METHODS, "acquire()"))


def test_locals_of_the_same_function_match_only_as_the_same_object() -> None:
    text = """\
    def work(lock):
        with lock:
            step()  # HOLDS
            with lock:  # WAITS
                pass
    """
    text = textwrap.dedent(text)
    waiter = frame(1, line(text, "WAITS"), addrs={"lock": 7})
    theirs = frame(2, line(text, "HOLDS"), 1, addrs={"lock": 8})
    mine = frame(2, line(text, "HOLDS"), 1, addrs={"lock": 7})
    assert holder(text, waiter, [theirs]) == ("lock", None)
    assert holder(text, waiter, [mine])[1] == (2, "lock", 2)


def test_a_local_of_another_function_is_another_lock() -> None:
    text = """\
    def first():
        lock = make()
        with lock:
            step()  # HOLDS

    def second():
        lock = make()
        with lock:  # WAITS
            pass
    """
    text = textwrap.dedent(text)
    waiter, inside = frame(1, line(text, "WAITS")), frame(2, line(text, "HOLDS"), 1)
    assert holder(text, waiter, [waiter, inside]) == ("lock", None)


def test_a_global_declared_in_a_function_is_the_modules_name() -> None:
    text = """\
    lock = None

    def setup():
        global lock
        lock = make()
        with lock:
            step()  # HOLDS

    def use():
        with lock:  # WAITS
            pass
    """
    text = textwrap.dedent(text)
    waiter, inside = frame(1, line(text, "WAITS")), frame(2, line(text, "HOLDS"), 1)
    assert holder(text, waiter, [waiter, inside])[1] == (2, "lock", line(text, "with lock:"))


def test_a_closure_shares_its_enclosing_functions_lock() -> None:
    text = """\
    def start():
        lock = make()

        def a():
            with lock:
                step()  # HOLDS

        def b():
            with lock:  # WAITS
                pass
    """
    text = textwrap.dedent(text)
    waiter, inside = frame(1, line(text, "WAITS")), frame(2, line(text, "HOLDS"), 1)
    assert holder(text, waiter, [waiter, inside])[1] == (2, "lock", line(text, "with lock:"))


def test_a_with_around_a_nested_function_definition_is_not_held_by_that_function() -> None:
    text = """\
    import threading
    lock = threading.Lock()

    def outer():
        with lock:
            def callback():
                idle()  # LATER
            register(callback)

    def other():
        with lock:  # WAITS
            pass
    """
    text = textwrap.dedent(text)
    waiter, later = frame(1, line(text, "WAITS")), frame(2, line(text, "LATER"), 1)
    assert holder(text, waiter, [waiter, later]) == ("lock", None)


def test_frames_of_other_files_are_never_holders() -> None:
    one, two = frame(11, line(ABBA, "ONE WAITS")), frame(12, line(ABBA, "with b:") + 1, 1, "/other.py")
    assert holder(ABBA, one, [one, two]) == ("b", None)


def test_two_threads_that_both_look_like_holders_name_none() -> None:
    one = frame(11, line(ABBA, "ONE WAITS"))
    two, three = frame(12, line(ABBA, "TWO WAITS") - 1, 1), frame(13, line(ABBA, "TWO WAITS") - 1, 1)
    assert holder(ABBA, one, [one, two, three]) == ("b", None)


def test_a_lock_passed_to_two_functions_is_the_same_object_when_py_spy_shows_it() -> None:
    text = """\
    def hold(r):
        with r:
            step()  # HOLDS

    def wait(lock):
        with lock:  # WAITS
            pass
    """
    text = textwrap.dedent(text)
    waiter = frame(1, line(text, "WAITS"), addrs={"lock": 0x10})
    same, other = (frame(2, line(text, "HOLDS"), 1, addrs={"r": addr}) for addr in (0x10, 0x20))
    assert holder(text, waiter, [waiter, same]) == ("lock", (2, "r", line(text, "with r:")))
    assert holder(text, waiter, [waiter, other]) == ("lock", None)
    assert holder(text, frame(1, line(text, "WAITS")), [same]) == ("lock", None)  # not shown: scopes differ


# --- many threads: each line worked out once, each waiter matched through the index ---------------

MANY = """\
import threading
lock = threading.Lock()
other = threading.Lock()


class Box:
    def put(self):
        with self.lock:
            step()  # BOX HOLDS
            with other:  # BOX WAITS
                pass

    def get(self, r):
        r.acquire()
        step()  # GET HOLDS
        with self.lock:  # GET WAITS
            pass


def worker(l):
    with lock:
        step()  # WORKER HOLDS
        with l:  # WORKER WAITS
            pass
    with other:
        with lock:  # NESTED WAITS
            pass
"""


def _reference(source: Source, waiter: FrameAt, frames: List[FrameAt]) -> Tuple[Optional[object], Optional[Holder]]:
    """likely_holder as a walk over every frame (the rule, before the index)."""
    wanted = source.acquired_at(waiter.line)
    if wanted is None:
        return None, None
    found: Dict[int, Holder] = {}
    for f in frames:
        if f.file != waiter.file:
            continue
        for held in source.held_at(f.line, innermost=f.index == 0):
            if pylocks._same_lock(wanted, waiter, held, f):
                found.setdefault(f.tid, Holder(f.tid, held, source.code(held.line)))
    return wanted, (next(iter(found.values())) if len(found) == 1 else None)


def test_the_index_finds_what_a_walk_over_every_frame_finds() -> None:
    source = src(MANY)
    lines = [line(MANY, m) for m in ("BOX HOLDS", "BOX WAITS", "GET HOLDS", "GET WAITS", "WORKER HOLDS",
                                     "WORKER WAITS", "NESTED WAITS", "with self.lock:", "with lock:", "r.acquire")]
    names = ["self", "l", "r", "lock"]
    rng = random.Random(14)
    checked = 0
    for _case in range(400):
        frames = []
        for tid in range(1, rng.randint(2, 7)):
            for index in range(rng.randint(1, 3)):
                addrs = {n: rng.choice([1, 2, 3]) for n in names if rng.random() < 0.4}
                path = "/app.py" if rng.random() < 0.9 else "/other.py"
                frames.append(FrameAt(tid, index, path, rng.choice(lines), addrs))
        index = Holders(source, "/app.py", frames)
        for waiter in frames:
            if waiter.file == "/app.py":
                assert index.likely_holder(waiter) == _reference(source, waiter, frames), (waiter, frames)
                checked += 1
    assert checked > 1000


def test_many_threads_on_the_same_lines_work_each_line_out_once(monkeypatch) -> None:
    source = src(MANY)
    calls: List[Tuple[int, bool]] = []
    real = Source._held_at

    def counted(self: Source, at: int, innermost: bool) -> list:
        calls.append((at, innermost))
        return real(self, at, innermost)

    monkeypatch.setattr(Source, "_held_at", counted)
    waits, holds = line(MANY, "NESTED WAITS"), line(MANY, "WORKER HOLDS")
    waiters = [FrameAt(tid, 0, "/app.py", waits, {}) for tid in range(2, 2002)]
    frames = waiters + [FrameAt(1, 1, "/app.py", holds, {})]
    index = Holders(source, "/app.py", frames)
    found = {index.likely_holder(w)[1] for w in waiters}
    assert found == {Holder(1, source.held_at(holds, False)[0], "with lock:")}
    assert sorted(calls) == [(holds, False), (waits, True)]


# --- an RLock's owner, read from the lock object ------------------------------------------------


def test_an_rlocks_owner_is_read_after_its_type_name() -> None:
    from waitchain.stacks.rlock import owner_from

    memory = {0x1000: (b"\x02" + b"\0" * 7) + (0x2000).to_bytes(8, sys.byteorder) + (0x3000).to_bytes(8, sys.byteorder)
              + (0x7F00DEAD).to_bytes(8, sys.byteorder),
              0x2000 + 24: (0x4000).to_bytes(8, sys.byteorder),
              0x4000: b"_thread.RLock\0"}

    def read(address: int, size: int) -> bytes:
        for start, data in memory.items():
            if start <= address < start + len(data):
                return data[address - start:address - start + size]
        return b""

    assert owner_from(read, 0x1000) == 0x7F00DEAD
    memory[0x4000] = b"_thread.lock\0\0"  # a Lock records no owner: nothing is believed
    assert owner_from(read, 0x1000) is None
    assert owner_from(read, 0x9000) is None  # unreadable
