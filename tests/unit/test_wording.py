"""Wording: counted nouns (no "entrys")."""

from __future__ import annotations

import pytest

from waitchain.waits.describe import plural
from waitchain.waits.tty import device_name


@pytest.mark.parametrize("count,noun,said", [
    (1, "fd", "1 fd"), (3, "fd", "3 fds"), (1, "entry", "1 entry"), (2, "entry", "2 entries"),
    (0, "entry", "0 entries"), (2, "watch", "2 watches"), (2, "process", "2 processes"), (2, "key", "2 keys"),
])
def test_counted_nouns(count: int, noun: str, said: str) -> None:
    assert plural(count, noun) == said


@pytest.mark.parametrize("number,name", [(136 << 8 | 3, "/dev/pts/3"), (137 << 8 | 1, "/dev/pts/257"),
                                         (4 << 8 | 1, "/dev/tty1"), (5 << 8 | 1, "terminal 5:1")])
def test_a_controlling_terminals_name_from_its_device_number(number: int, name: str) -> None:
    assert device_name(number) == name
