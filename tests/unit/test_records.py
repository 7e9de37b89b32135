"""waitchain.records behaves as the dataclasses it replaces at run time: each class is made
twice from the same body, once by dataclasses and once by records, and both must answer
alike."""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import pickle
import typing
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import pytest

from waitchain import records


@pytest.fixture(autouse=True, params=["generic", "generated"])
def init_kind(request, monkeypatch):
    """Every test twice: instances made by the generic __init__ a class starts with, and by
    the generated one that replaces it (from the first instance on)."""
    monkeypatch.setattr(records, "GENERIC_UP_TO", 10**9 if request.param == "generic" else 1)
    return request.param


def twins(frozen: bool):
    """The same class made by dataclasses and by records: (dataclass, record)."""
    made = []
    for deco, field in ((dataclasses.dataclass, dataclasses.field), (records.record, records.field)):
        @deco(frozen=frozen)
        class Point:
            """A point."""

            x: int
            y: Optional[int] = None
            tags: List[str] = field(default_factory=list)
            marks: Dict[str, int] = field(default_factory=dict)
            label: str = field(default="p")
            unit: ClassVar[str] = "px"  # not a field

            @property
            def norm(self) -> int:
                return abs(self.x) + abs(self.y or 0)

            def moved(self, dx: int) -> int:
                return self.x + dx

        made.append(Point)
    return made


@pytest.mark.parametrize("frozen", [True, False])
def test_construction_positional_and_keyword(frozen):
    for cls in twins(frozen):
        p = cls(1, 2, ["a"], {"k": 1}, "q")
        assert (p.x, p.y, p.tags, p.marks, p.label) == (1, 2, ["a"], {"k": 1}, "q")
        k = cls(label="q", marks={"k": 1}, tags=["a"], y=2, x=1)
        assert k == p
        d = cls(3)
        assert (d.x, d.y, d.tags, d.marks, d.label) == (3, None, [], {}, "p")
        assert (d.norm, d.moved(2), cls.unit, d.unit) == (3, 5, "px", "px")
        assert list(vars(d)) == ["x", "y", "tags", "marks", "label"]


@pytest.mark.parametrize("frozen", [True, False])
def test_defaults_on_the_class_and_factories_per_instance(frozen):
    dc, rc = twins(frozen)
    for cls in (dc, rc):
        assert (cls.y, cls.label) == (None, "p")
        assert not hasattr(cls, "tags")
        a, b = cls(1), cls(1)
        assert a.tags is not b.tags and a.marks is not b.marks
        a.tags.append("x")
        assert b.tags == []
    assert rc.__record_fields__ == tuple(f.name for f in dataclasses.fields(dc))


@pytest.mark.parametrize("frozen", [True, False])
def test_wrong_arguments_raise_the_same_type_error(frozen):
    dc, rc = twins(frozen)
    calls = [((), {}), ((1, 2, [], {}, "p", 6), {}), ((1,), {"x": 2}), ((1,), {"z": 2})]
    for args, kwargs in calls:
        with pytest.raises(TypeError) as d:
            dc(*args, **kwargs)
        with pytest.raises(TypeError) as r:
            rc(*args, **kwargs)
        assert str(r.value) == str(d.value)


@pytest.mark.parametrize("frozen", [True, False])
def test_equality_and_repr(frozen):
    dc, rc = twins(frozen)
    for cls in (dc, rc):
        assert cls(1, 2) == cls(1, 2) and cls(1, 2) != cls(1, 3) and cls(1) != cls(1, label="q")
        assert cls(1) != (1, None, [], {}, "p")
        assert cls(1).__eq__((1, None, [], {}, "p")) is NotImplemented
    assert dc(1) != rc(1)
    assert repr(rc(1, 2, ["a"], label="q")) == repr(dc(1, 2, ["a"], label="q"))
    assert repr(rc(1)).startswith("twins.<locals>.Point(x=1, y=None, tags=[], marks={}, label='p')")


def test_frozen_hash_is_dataclasses_hash_and_assignment_fails():
    dc, rc = twins(frozen=True)
    for cls in (dc, rc):
        p = cls(1, 2, tags=(), marks=())  # hashable values
        with pytest.raises(AttributeError) as e:
            p.x = 5
        assert "cannot assign to field 'x'" in str(e.value)
        with pytest.raises(AttributeError) as e:
            p.extra = 5
        with pytest.raises(AttributeError) as e:
            del p.x
        assert "cannot delete field 'x'" in str(e.value)
        assert p.x == 1
    assert hash(rc(1, 2, tags=(), marks=())) == hash(dc(1, 2, tags=(), marks=()))
    assert {rc(1, 2, tags=(), marks=()), rc(1, 2, tags=(), marks=())} == {rc(1, 2, tags=(), marks=())}


def test_plain_records_are_mutable_and_unhashable():
    for cls in twins(frozen=False):
        p = cls(1)
        p.x = 5
        p.tags.append("t")
        assert (p.x, p.tags) == (5, ["t"])
        p.extra = 1  # not a field: not compared
        assert p == cls(5, tags=["t"])
        with pytest.raises(TypeError):
            hash(p)


@pytest.mark.parametrize("frozen", [True, False])
def test_replace(frozen):
    dc, rc = twins(frozen)
    for cls, replace in ((dc, dataclasses.replace), (rc, records.replace)):
        p = cls(1, 2, ["a"])
        q = replace(p, y=7, label="q")
        assert (q.x, q.y, q.tags, q.label) == (1, 7, ["a"], "q") and q.tags is p.tags
        assert (p.y, p.label) == (2, "p") and replace(p) == p and replace(p) is not p
        with pytest.raises(TypeError):
            replace(p, z=1)
    with pytest.raises(TypeError):
        records.replace(object(), x=1)


def test_one_and_no_field_records():
    for deco in (dataclasses.dataclass, records.record):
        @deco(frozen=True)
        class One:
            a: int

        @deco(frozen=True)
        class Empty:
            pass

        assert (One(3) == One(3), One(3) == One(4), Empty() == Empty()) == (True, False, True)
        assert (hash(One(3)), hash(Empty()), repr(One(3))) == (hash((3,)), hash(()), f"{One.__qualname__}(a=3)")


def test_bare_decorator_post_init_and_methods_written_in_the_class_are_kept():
    seen = []

    @records.record
    class Counted:
        n: int
        m: Tuple[int, ...] = ()

        def __post_init__(self) -> None:
            seen.append(self.n)

    c = Counted(1)
    records.replace(c, n=2)
    assert seen == [1, 2] and c.m == ()

    @records.record(frozen=True)
    class Own:
        a: int
        b: int = 0

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Own) and self.a == other.a

        def __hash__(self) -> int:
            return 7

        def __repr__(self) -> str:
            return "own"

    assert (Own(1, 2) == Own(1, 3), hash(Own(1)), repr(Own(1))) == (True, 7, "own")


def test_bad_classes_fail_at_definition_as_dataclasses_do():
    for deco, field in ((dataclasses.dataclass, dataclasses.field), (records.record, records.field)):
        with pytest.raises(ValueError):
            @deco
            class Mutable:
                items: list = []  # noqa: RUF012

        with pytest.raises(TypeError):
            @deco
            class Order:
                a: int = 0
                b: int

        @deco
        class Required:
            a: int = field()

        assert not hasattr(Required, "a")
        with pytest.raises(TypeError):
            Required()


def test_the_generated_init_takes_over_once(init_kind, monkeypatch):
    monkeypatch.setattr(records, "GENERIC_UP_TO", 3)

    @records.record(frozen=True)
    class Lazy:
        a: int
        b: List[int] = records.field(default_factory=list)

    first = Lazy.__init__
    assert Lazy(1).a == 1 and Lazy(a=2).b == [] and Lazy.__init__ is first
    assert vars(Lazy(3)) == {"a": 3, "b": []}
    assert Lazy.__init__ is not first and Lazy.__init__.__qualname__.endswith("Lazy.__init__")
    made = Lazy.__init__
    assert Lazy(4).a == 4 and Lazy.__init__ is made


def test_a_call_the_generic_init_cannot_bind_gets_the_generated_one(init_kind, monkeypatch):
    monkeypatch.setattr(records, "GENERIC_UP_TO", 10**9)

    @records.record
    class Two:
        a: int
        b: int = 0

    first = Two.__init__
    for args, kwargs in (((1, 2, 3), {}), ((1,), {"a": 1}), ((), {"c": 1}), ((), {"b": 1})):
        with pytest.raises(TypeError):
            Two(*args, **kwargs)
    assert Two.__init__ is not first and vars(Two(b=2, a=1)) == {"a": 1, "b": 2}


def test_model_records_are_frozen_and_compare_by_fields():
    from waitchain.model import Diagnosis, Edge, EdgeKind, Syscall

    e = Edge(1, 1, 2, None, EdgeKind.PIPE, "pipe:[7]", "read end")
    assert e == records.replace(e) and hash(e) == hash(records.replace(e)) and e.fd is None
    with pytest.raises(AttributeError):
        e.fd = 3  # type: ignore[misc]
    assert Syscall(0, "read", (3, 1 << 32 | 5)).arg_int(1) == 5
    d = Diagnosis([], {}, {}, {}, {}, [], [], [], None)
    assert d.notes == [] and d.notes is not Diagnosis([], {}, {}, {}, {}, [], [], [], None).notes


# NamedTuple: the same class bodies made by typing.NamedTuple and by records.NamedTuple, at
# the top of this module (pickle finds a class by module and qualified name).
NAMED = '''
from __future__ import annotations

class {prefix}Frame({base}):
    """A frame."""

    pc: int
    how: str = "cfi"
    sp: Optional[int] = None
    unit = "byte"  # not annotated: not a field

    def moved(self, by: int) -> {prefix}Frame:
        return self._replace(pc=self.pc + by)

    @property
    def native(self) -> bool:
        return self.how != "python"

    @classmethod
    def at(cls, pc: int) -> {prefix}Frame:
        return cls(pc, "fp")


class {prefix}Bare({base}):
    start: int
    end: int
'''
exec(NAMED.format(prefix="Typing", base="typing.NamedTuple"), globals())
exec(NAMED.format(prefix="Records", base="records.NamedTuple"), globals())
NAMED_TWINS = [(TypingFrame, RecordsFrame), (TypingBare, RecordsBare)]  # type: ignore[name-defined]  # noqa: F821


def _plain(value):
    """A namedtuple's repr and parts, with the class prefix dropped: comparable across twins."""
    return repr(value).replace("Typing", "").replace("Records", "")


@pytest.mark.parametrize("pair", NAMED_TWINS, ids=lambda pair: pair[0].__name__)
def test_named_tuple_class_is_typings(pair):
    made, ours = pair
    assert issubclass(ours, tuple) and ours.__bases__ == made.__bases__ == (tuple,)
    assert ours._fields == made._fields
    assert ours._field_defaults == made._field_defaults
    assert ours.__module__ == made.__module__ == __name__
    assert ours.__qualname__ == ours.__name__ == made.__name__.replace("Typing", "Records")
    assert ours.__doc__.replace("Records", "") == made.__doc__.replace("Typing", "")
    # the annotations' strings (`from __future__ import annotations`), which typing makes ForwardRefs
    assert ours.__annotations__ == {n: ref.__forward_arg__ for n, ref in made.__annotations__.items()}
    # the same attributes, methods among them (typing's __orig_bases__, on 3.11 and later, for
    # typing's own introspection, is not set)
    assert set(dir(ours)) ^ set(dir(made)) <= {"__orig_bases__"}


def test_named_tuple_instances_as_typings():
    for cls in (TypingFrame, RecordsFrame):  # type: ignore[name-defined]  # noqa: F821
        f = cls(0x10)
        assert (f.pc, f.how, f.sp, f[0], len(f), tuple(f)) == (0x10, "cfi", None, 0x10, 3, (0x10, "cfi", None))
        assert cls(0x10, sp=8) == (0x10, "cfi", 8) and cls(0x10) != cls(0x11) and hash(f) == hash((0x10, "cfi", None))
        assert f.moved(2) == cls(0x12) and type(f.moved(2)) is cls and f.native and cls.unit == "byte"
        assert cls.at(5) == (5, "fp", None) and type(cls.at(5)) is cls
        assert f._replace(how="fp", sp=1) == (0x10, "fp", 1) and f._asdict() == {"pc": 0x10, "how": "cfi", "sp": None}
        assert cls._make([1, "scan", 2]) == (1, "scan", 2)
        assert sorted([cls(3), cls(1, "fp"), cls(1)]) == [cls(1), cls(1, "fp"), cls(3)]
        with pytest.raises(AttributeError):
            f.pc = 1  # type: ignore[misc]
        with pytest.raises(TypeError):
            cls()
        with pytest.raises(TypeError):
            cls(1, nowhere=2)
        with pytest.raises(ValueError):
            f._replace(nowhere=2)
        assert pickle.loads(pickle.dumps(f)) == f and type(pickle.loads(pickle.dumps(f))) is cls
        assert copy.copy(f) == f and copy.deepcopy(f) == f
    assert _plain(RecordsFrame(1, sp=2)) == _plain(TypingFrame(1, sp=2)) == "Frame(pc=1, how='cfi', sp=2)"  # type: ignore[name-defined]  # noqa: F821
    assert RecordsBare(1, 2) == TypingBare(1, 2) == (1, 2)  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize("base", [typing.NamedTuple, records.NamedTuple], ids=["typing", "records"])
def test_bad_named_tuples_fail_as_typings_do(base):
    with pytest.raises(TypeError):
        class Late(base):  # a field without a default after one with
            a: int = 0
            b: int
    with pytest.raises(AttributeError):
        class Own(base):  # namedtuple's own methods are not replaced
            a: int

            def _replace(self, **changes):
                return self


def _named(base: type) -> type:
    """model.Named's shape on another base."""

    class Named(str, base):
        def __str__(self) -> str:
            return self.value

    return Named


def _kind(base: type, name: str) -> type:
    """One closed set's body on `base`, named `name` (this module's: pickle finds it)."""

    class Kind(_named(base)):
        """A closed set."""

        __qualname__ = name
        A = "a"
        B = "b-x"
        ALIAS = "a"

        def shout(self) -> str:
            return self.upper()

        @property
        def twice(self) -> str:
            return self.value * 2

    return Kind


EnumKind: Any = _kind(enum.Enum, "EnumKind")
RecordsKind: Any = _kind(records.Names, "RecordsKind")


def _behaviour(kind) -> list:
    """Everything model.py's closed sets are used for, as plain values to compare."""
    a, b = kind.A, kind.B
    return [a == "a", hash(a) == hash("a"), "a" == a, a != "b", a < "b", sorted([b, a]) == [a, b],
            repr(a).replace(kind.__name__, "Kind"), str(a),
            format(a), f"{a:>4}|", "%s" % a, [m.value for m in kind], [m.name for m in kind], len(kind),
            [m.name for m in reversed(kind)], kind("a") is a, kind(a) is a, kind.ALIAS is a, list(kind.__members__),
            kind.__members__["ALIAS"] is a, a.name, a.value, kind.ALIAS.name, type(a) is kind, isinstance(a, str),
            a.upper(), a + "x", type(a + "x") is str, a.shout(), b.twice, {a: 1}.get("a"), {"a": 1}.get(a),
            kind.__doc__, bool(a), a.startswith("a"), pickle.loads(pickle.dumps(a)) is a,
            pickle.loads(pickle.dumps(b, 0)) is b, copy.copy(a) is a, copy.deepcopy([b])[0] is b,
            json.dumps({"k": [a]}), json.dumps({a: 1})]


def test_names_answer_as_enums_do() -> None:
    """records.Names (model.py's closed sets, without Enum's ~27 us a member at import)
    against enum.Enum with the same str mix-in and bodies."""
    assert _behaviour(RecordsKind) == _behaviour(EnumKind)
    for kind in (EnumKind, RecordsKind):
        for bad in ("zz", None, ["x"], "A"):
            with pytest.raises(ValueError, match="is not a valid"):
                kind(bad)
        with pytest.raises(AttributeError):
            kind.A = "q"  # type: ignore[misc]


def test_the_models_closed_sets_are_names() -> None:
    """Each of them: members in order, each its own value's, none of them enum.Enum's."""
    from waitchain import model

    kinds = [k for k in vars(model).values() if isinstance(k, type) and issubclass(k, model.Named) and k is not model.Named]
    assert len(kinds) >= 11 and model.EdgeKind in kinds and model.Advice in kinds
    for kind in kinds:
        assert not issubclass(kind, enum.Enum) and len(kind) == len(set(m.value for m in kind)) > 0
        assert all(kind(m.value) is m and getattr(kind, m.name) is m and str(m) == m.value for m in kind)
