"""procfs.reader.with_deadline reuses its threads: one that answered in time takes the next
call, one that overran is never given work again (it may stay blocked for good), and a
forked child does not count on threads that do not exist in it."""

from __future__ import annotations

import os
import threading

import pytest

from waitchain.errors import Timeout
from waitchain.procfs import reader
from waitchain.procfs.reader import with_deadline


def deadline_threads() -> set:
    return {t.ident for t in threading.enumerate() if t.name == "waitchain-deadline"}


def test_calls_in_a_row_use_one_thread_and_answer_each_its_own() -> None:
    seen = set()

    def where(i: int) -> int:
        seen.add(threading.get_ident())
        return i * 2

    assert [with_deadline(lambda i=i: where(i), 5.0, None, "x") for i in range(200)] == list(range(0, 400, 2))
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert seen <= deadline_threads()


def test_an_error_in_the_call_is_raised_in_the_caller_and_the_thread_is_kept() -> None:
    with_deadline(lambda: None, 5.0, None, "x")
    before = deadline_threads()
    with pytest.raises(ZeroDivisionError):
        with_deadline(lambda: 1 // 0, 5.0, None, "x")
    assert with_deadline(lambda: "next", 5.0, None, "x") == "next"
    assert deadline_threads() == before


def test_a_thread_that_overran_is_not_given_the_next_call() -> None:
    release = threading.Event()
    stuck = []

    def block() -> None:
        stuck.append(threading.get_ident())
        release.wait(30)

    try:
        with pytest.raises(Timeout):
            with_deadline(block, 0.05, 42, "cmdline")
        # the stuck thread still waits: the next call must not queue behind it
        ident = with_deadline(threading.get_ident, 5.0, None, "x")
        assert stuck and ident != stuck[0]
        with pytest.raises(Timeout):  # again while it waits: not returned to the idle ones
            with_deadline(block, 0.05, 42, "cmdline")
        assert with_deadline(lambda: "ok", 5.0, None, "x") == "ok"
        assert stuck[0] not in [w for w in reader._idle]
    finally:
        release.set()


def test_a_forked_child_starts_its_own_threads() -> None:
    with_deadline(lambda: None, 5.0, None, "x")
    assert reader._idle  # the parent has an idle thread
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            answer = with_deadline(lambda: b"child", 2.0, None, "x")
        except BaseException:
            answer = b"timeout"
        os.write(write_end, answer)
        os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 16) == b"child"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


def test_each_with_deadline_answers_each_in_order_through_one_thread() -> None:
    seen = set()

    def where(i: int) -> int:
        seen.add(threading.get_ident())
        if i == 3:
            raise ValueError(i)
        return i * 2

    answers = reader.each_with_deadline([lambda i=i: where(i) for i in range(6)], 5.0)
    assert [a for a in answers if a[0]] == [(True, 0), (True, 2), (True, 4), (True, 8), (True, 10)]
    assert not answers[3][0] and isinstance(answers[3][1], ValueError)
    assert len(seen) == 1 and threading.get_ident() not in seen
    assert reader.each_with_deadline([], 5.0) == []


def test_each_with_deadline_stops_at_the_one_that_overran() -> None:
    import time

    release = threading.Event()
    ran = []
    stuck = []

    def block() -> None:
        stuck.append(threading.get_ident())
        release.wait(30)

    try:
        answers = reader.each_with_deadline([lambda: ran.append(1), lambda: 2, block, lambda: ran.append(4)], 0.1)
        assert [value for _, value in answers] == [None, 2]  # the third overran: the list stops there
        assert with_deadline(threading.get_ident, 5.0, None, "x") != stuck[0]  # not given the next call
        release.set()
        time.sleep(0.1)
        assert ran == [1]  # the thread left behind runs none of the funcs after the one that overran
    finally:
        release.set()


def test_each_with_deadline_gives_each_func_its_own_deadline() -> None:
    import time

    answers = reader.each_with_deadline([lambda: time.sleep(0.06) or i for i in range(4)], 0.1)
    assert len(answers) == 4  # 0.24 s in all, each within its 0.1 s
