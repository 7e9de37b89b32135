"""Records: classes of typed fields as @dataclass makes them, at a fraction of the import cost.

Why: start-up time. On the test VM a frozen @dataclass costs ~0.8 ms per class to create (it
execs __init__, __repr__, __eq__, __hash__, __setattr__, __delattr__), a plain one 0.45 ms:
`import waitchain.model` (34 of them) took ~35 ms, and `import dataclasses` itself pulls in
inspect, ast, dis and tokenize (~10 ms). Here the decorator only reads the class's own
annotations (strings: `from __future__ import annotations`) and defaults; __eq__, __hash__,
__repr__ and the frozen __setattr__/__delattr__ are shared functions; __init__ is generated
(one exec) when the class is first instantiated. mypy sees the real dataclasses (below), so
signatures and field types are checked exactly as before.

What dataclasses does that is kept, as waitchain uses it: `@record` and `@record(frozen=True)`
(eq=True, no ordering); `field(default=...)`, `field(default_factory=...)`; a generated
__init__ taking the fields in order, positionally or by keyword, a factory called per
instance, then __post_init__ if the class has one; __eq__ on the same class only, comparing
the fields' tuple; __hash__ of that tuple when frozen, unhashable when not (a __hash__,
__eq__, __repr__ or __init__ written in the class is kept); dataclasses' __repr__; frozen
instances raising FrozenInstanceError (an AttributeError); `replace(obj, **changes)`; ClassVar
annotations are not fields. Not supported: inheritance between records, InitVar, the other
field() options, fields() (vars(obj) gives the fields in order)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

_MISSING: Any = object()  # no default given
_FACTORY: Any = object()  # the __init__ default of a default_factory field: call the factory


class _Field:
    __slots__ = ("default", "factory")

    def __init__(self, default: Any, factory: Any) -> None:
        self.default, self.factory = default, factory


def _field(*, default: Any = _MISSING, default_factory: Any = _MISSING) -> Any:
    return _Field(default, default_factory)


def _record(cls: Optional[type] = None, *, frozen: bool = False) -> Any:
    return (lambda c: _make(c, frozen)) if cls is None else _make(cls, frozen)


def _make(cls: Any, frozen: bool) -> Any:
    own = cls.__annotations__ if sys.version_info >= (3, 10) else cls.__dict__.get("__annotations__", {})
    names: List[str] = []
    defaults: Dict[str, Any] = {}  # name → default value, or _FACTORY
    factories: Dict[str, Callable[[], Any]] = {}
    for name, kind in own.items():
        if str(kind).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            if value.factory is not _MISSING:
                factories[name], value = value.factory, _FACTORY
                delattr(cls, name)
            else:
                value = value.default
                if value is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, value)
        if value is not _MISSING and value is not _FACTORY and type(value).__hash__ is None:
            raise ValueError(f"mutable default {type(value)} for field {name} is not allowed: use default_factory")
        if value is _MISSING and defaults:
            raise TypeError(f"non-default argument {name!r} follows default argument")
        if value is not _MISSING:
            defaults[name] = value
        names.append(name)
    body = dict(cls.__dict__)
    cls.__record_fields__ = tuple(names)
    if "__init__" not in body:
        cls.__init__ = _first_init(cls, names, defaults, factories)
    shared = {"__repr__": _repr, "__eq__": _eq}
    if frozen:
        shared.update(__eq__=_frozen_eq, __setattr__=_setattr, __delattr__=_delattr)
    for name, fn in shared.items():
        if name not in body:
            setattr(cls, name, fn)
    if "__hash__" not in body or (body["__hash__"] is None and "__eq__" in body):
        cls.__hash__ = _hash if frozen else None
    return cls


def _first_init(cls: Any, names: List[str], defaults: Dict[str, Any], factories: Dict[str, Any]) -> Any:
    """An __init__ that makes the class's real one, puts it in its place, and calls it."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        params = [n if n not in defaults else f"{n}=_d_{n}" for n in names]
        lines = [f"  {n} = _f_{n}() if {n} is _FACTORY else {n}\n" for n in factories]
        lines.append(f"  self.__dict__.update({', '.join(f'{n}={n}' for n in names)})\n")
        if hasattr(cls, "__post_init__"):
            lines.append("  self.__post_init__()\n")
        space = {"_FACTORY": _FACTORY, **{f"_d_{n}": v for n, v in defaults.items()},
                 **{f"_f_{n}": f for n, f in factories.items()}}
        exec(f"def __init__(self, {', '.join(params)}):\n{''.join(lines)}", space)
        real = space["__init__"]
        real.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = real
        real(self, *args, **kwargs)

    return __init__


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        names = self.__record_fields__
        return [getattr(self, n) for n in names] == [getattr(other, n) for n in names]
    return NotImplemented


# A frozen record's __dict__ holds its fields, in order, and nothing else (__init__ fills it,
# nothing can add to it): comparing or hashing it is what dataclasses does with the fields'
# tuple, as fast as its generated code; getting each field by name was 2-4x slower (these
# are the hot ones: edges and waits in sets and dict keys).
def _frozen_eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return self.__dict__ == other.__dict__
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(tuple(self.__dict__.values()))


def _repr(self: Any) -> str:
    return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__record_fields__)})"


def _setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _replace(obj: Any, **changes: Any) -> Any:
    names = getattr(obj.__class__, "__record_fields__", None)
    if names is None:
        raise TypeError("replace() should be called on record instances")
    return obj.__class__(**{**{n: getattr(obj, n) for n in names}, **changes})


if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError, dataclass as record, field, replace
else:
    class FrozenInstanceError(AttributeError):
        """Assigning to or deleting a field of a frozen record."""

    record, field, replace = _record, _field, _replace
