"""render/json.dumps writes what json.dumps(obj, indent=2, ensure_ascii=True) writes."""

import enum
import json
import random

import pytest

from waitchain.render.json import dumps


class Color(enum.IntEnum):
    RED = 1


class Name(str, enum.Enum):
    A = "a"


class Sub(dict):
    pass


SCALARS = ["", "x", "é\u2603\U0001f600\n\t\"\\\x00", 0, -7, 1 << 70, 1.5, -0.0, 1e300, float("nan"), float("inf"),
           float("-inf"), True, False, None, Color.RED, Name.A]


def _random(rng: random.Random, depth: int) -> object:
    pick = rng.random()
    if depth > 4 or pick < 0.5:
        return rng.choice(SCALARS)
    if pick < 0.7:
        return [_random(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick < 0.75:
        return tuple(_random(rng, depth + 1) for _ in range(rng.randrange(3)))
    if pick < 0.8:
        return Sub({"k": _random(rng, depth + 1)})
    keys = ["a", "b\u00e9", 1, 2.5, True, False, None, "", "c"]
    return {rng.choice(keys): _random(rng, depth + 1) for _ in range(rng.randrange(5))}


def test_same_text_as_the_standard_library() -> None:
    rng = random.Random(14)
    for _ in range(3000):
        obj = _random(rng, 0)
        assert dumps(obj) == json.dumps(obj, indent=2, ensure_ascii=True)


def test_deep_nesting_and_unknown_types() -> None:
    deep: object = 1
    for _ in range(40):
        deep = {"x": [deep]}
    assert dumps(deep) == json.dumps(deep, indent=2, ensure_ascii=True)
    for bad in ({"x": object()}, [{1, 2}], {(1, 2): 3}):
        with pytest.raises(TypeError):
            dumps(bad)
