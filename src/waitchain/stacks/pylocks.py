"""The likely holder of a Python lock, inferred from the stacks and the source.

threading.Lock records no owner. A thread blocked acquiring one names it on its current line
(`with X:` or `X.acquire()`); the thread whose frame in the same file is inside `with X:`
(an enclosing with statement of the frame's current line, in the same function) or after
`X.acquire()` with no `X.release()` in between, for the same expression in the same scope,
likely holds it. Same scope: a module-level name in the same file; a local (or a closure's)
name of the same function; `self.x` in methods of the same class. When py-spy showed the
addresses of both frames' locals, the first names must be the same object instead (then the
names and scopes may differ: a lock passed as an argument to two functions).
Only dotted names (`lock`, `self._lock`, `mod.LOCK`) are lock expressions here: a call or a
subscript may name a different object each time. Pure functions of source text."""

from __future__ import annotations

import ast
import heapq

from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

    Def = Union[ast.FunctionDef, ast.AsyncFunctionDef]
    ScopeNode = Union[ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]

WITHS = (ast.With, ast.AsyncWith)
NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@record(frozen=True)
class Acquire:
    """A lock expression acquired by a statement: where, and the scope that names it."""

    expression: str  # ast.unparse of the dotted name
    root: str  # its first name ("self" for self._lock)
    line: int  # the with statement's or the acquire() call's first line
    statement: str  # "with" or "acquire"
    scope: Tuple[object, ...]  # ("module",), ("function", def line), ("class", class line)


class Source:
    """One parsed source file; `ok` is False when it does not parse. What a line acquires
    and what a frame on a line holds are worked out once per line (many threads run the
    same lines): a Source is shared by every thread of every process that runs the file."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self._acquired: Dict[int, Optional[Acquire]] = {}
        self._held: Dict[Tuple[int, bool], Tuple[Acquire, ...]] = {}
        try:
            self.tree: Optional[ast.Module] = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            self.tree = None
        self._parents: Dict[int, ast.AST] = {}
        self._defs: List[Def] = []
        if self.tree is not None:
            for node in ast.walk(self.tree):
                for child in ast.iter_child_nodes(node):
                    self._parents[id(child)] = node
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._defs.append(node)

    @property
    def ok(self) -> bool:
        return self.tree is not None

    def code(self, line: int) -> str:
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""

    # --- what a line acquires, what a frame holds --------------------------------------------

    def acquired_at(self, line: int) -> Optional[Acquire]:
        """The one lock the statement on `line` acquires: a `with X:` header or an
        `X.acquire()` call; None when there is none or more than one."""
        if line not in self._acquired:
            self._acquired[line] = self._acquired_at(line)
        return self._acquired[line]

    def _acquired_at(self, line: int) -> Optional[Acquire]:
        scope = self._scope_at(line)
        if scope is None:
            return None
        found: Dict[str, Acquire] = {}
        for node in _nodes_in(scope):
            if isinstance(node, WITHS) and node.lineno <= line < _body_line(node):
                if len(node.items) != 1:
                    return None  # `with a, b:` blocked on one of them: which one is not known
                found.update(self._acquires(node.items[0].context_expr, node.lineno, "with", scope))
            elif _is_call(node, "acquire") and _start(node) <= line <= _end(node):
                assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                found.update(self._acquires(node.func.value, node.lineno, "acquire", scope))
        return next(iter(found.values())) if len(found) == 1 else None

    def held_at(self, line: int, innermost: bool) -> List[Acquire]:
        """The locks a frame whose current line is `line` holds: the items of its enclosing
        with statements, and what it acquired earlier in the function without releasing.
        `innermost`: the frame is the thread's innermost one, so on a with statement's own
        line it is acquiring, not holding."""
        key = (line, innermost)
        if key not in self._held:
            self._held[key] = tuple(self._held_at(line, innermost))
        return list(self._held[key])

    def _held_at(self, line: int, innermost: bool) -> List[Acquire]:
        scope = self._scope_at(line)
        if scope is None:
            return []
        nodes = list(_nodes_in(scope))
        releases = [(self._name(n.func.value), _end(n)) for n in nodes
                    if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "release"]
        held: List[Acquire] = []
        for node in nodes:
            if isinstance(node, WITHS) and _inside_with(node, line, innermost):
                for item in node.items:
                    held += self._acquires(item.context_expr, node.lineno, "with", scope).values()
            elif _is_call(node, "acquire") and _end(node) < line:
                assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                held += self._acquires(node.func.value, node.lineno, "acquire", scope).values()
        return [a for a in held
                if not any(name == a.expression and a.line < at < line for name, at in releases)]

    # --- scopes -------------------------------------------------------------------------------

    def _scope_at(self, line: int) -> Optional[ScopeNode]:
        """The innermost function whose lines hold `line`, else the module."""
        if self.tree is None:
            return None
        inside = [d for d in self._defs if d.lineno <= line <= _end(d)]
        return max(inside, key=lambda d: d.lineno) if inside else self.tree

    def _acquires(self, expr: ast.AST, line: int, statement: str,
                  scope: ScopeNode) -> Dict[str, Acquire]:
        name = self._name(expr)
        if not name:
            return {}
        root = name.split(".", 1)[0]
        return {name: Acquire(name, root, line, statement, self._binding(root, scope))}

    @staticmethod
    def _name(expr: ast.AST) -> str:
        """`self._lock` for a dotted name, "" for anything else (a call, a subscript)."""
        parts: List[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return ""
        return ".".join([expr.id] + parts[::-1])

    def _binding(self, root: str, scope: ScopeNode) -> Tuple[object, ...]:
        """The scope whose name `root` is: the class for a method's self, the function that
        binds it (the innermost first, as Python resolves a closure), else the module."""
        node: Optional[ast.AST] = scope
        while isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            declared = _declared(node)
            if root in declared.get("global", ()):
                return ("module",)
            if root not in declared.get("nonlocal", ()) and root in _bound(node):
                owner = self._parents.get(id(node))
                args = node.args.posonlyargs + node.args.args
                if isinstance(owner, ast.ClassDef) and args and args[0].arg == root \
                        and not _decorated(node, "staticmethod"):
                    return ("class", owner.lineno)
                return ("function", node.lineno)
            node = self._parents.get(id(node))
            while node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
                node = self._parents.get(id(node))  # class bodies are no closure scope
        return ("module",)


def _nodes_in(scope: ScopeNode) -> Iterator[ast.AST]:
    """The nodes of a scope's body, not those of functions and classes nested in it."""
    todo: List[ast.AST] = list(scope.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, NESTED):
            todo.extend(ast.iter_child_nodes(node))


def _start(node: ast.AST) -> int:
    return int(getattr(node, "lineno", 0) or 0)


def _end(node: ast.AST) -> int:
    return int(getattr(node, "end_lineno", 0) or getattr(node, "lineno", 0) or 0)


def _body_line(node: Union[ast.With, ast.AsyncWith]) -> int:
    """The first line of the with's body; a one-line `with a: f()` has its header up to and
    including that line."""
    first = node.body[0].lineno
    return first + 1 if first == node.lineno else first


def _inside_with(node: Union[ast.With, ast.AsyncWith], line: int, innermost: bool) -> bool:
    first = node.body[0].lineno
    if not first <= line <= _end(node):
        return False
    return line != node.lineno or not innermost  # an outer frame on a one-line with: in its body


def _is_call(node: ast.AST, method: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == method)


def _declared(node: Def) -> Dict[str, Tuple[str, ...]]:
    out: Dict[str, Tuple[str, ...]] = {}
    for child in _nodes_in(node):
        if isinstance(child, ast.Global):
            out["global"] = out.get("global", ()) + tuple(child.names)
        elif isinstance(child, ast.Nonlocal):
            out["nonlocal"] = out.get("nonlocal", ()) + tuple(child.names)
    return out


def _bound(node: Def) -> set:
    """The names a function binds: its parameters and every name it assigns."""
    args = node.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    for child in _nodes_in(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".", 1)[0] for a in child.names}
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
    return names


def _decorated(node: Def, name: str) -> bool:
    return any(isinstance(d, ast.Name) and d.id == name for d in node.decorator_list)


# --- across threads -------------------------------------------------------------------------


@record(frozen=True)
class FrameAt:
    """One frame of a thread, as the inference needs it."""

    tid: int
    index: int  # 0: the innermost
    file: str
    line: int
    local_addrs: Mapping[str, int]  # py-spy --locals: name → object address ({} when not read)


@record(frozen=True)
class Holder:
    tid: int
    acquire: Acquire
    code: str


def likely_holder(source: Source, waiter: FrameAt, frames: Sequence[FrameAt]) -> Tuple[Optional[Acquire], Optional[Holder]]:
    """What the waiter's frame acquires, and the one thread that holds it (the waiter itself
    when it takes a lock it already holds); no holder when none or several threads match."""
    return Holders(source, waiter.file, frames).likely_holder(waiter)


class Holders:
    """What every frame in one file holds, worked out once and indexed by the lock's
    expression and scope, and by its object's address: each waiter then looks only at the
    frames that hold its lock, not at every frame (2,000 threads waiting for one lock cost
    2,000 look-ups, not 2,000 × 2,000 comparisons). Built once per file and process."""

    def __init__(self, source: Source, file: str, frames: Sequence[FrameAt]) -> None:
        self.source = source
        self.file = file
        # (order, frame, held): `order` is the frames' order, kept so that the first match of
        # a thread is the same one a walk over the frames in order would find.
        self._named: Dict[Tuple[str, Tuple[object, ...]], List[Tuple[int, FrameAt, Acquire]]] = {}
        self._unaddressed: Dict[Tuple[str, Tuple[object, ...]], List[Tuple[int, FrameAt, Acquire]]] = {}
        self._addressed: Dict[Tuple[int, str], List[Tuple[int, FrameAt, Acquire]]] = {}
        order = 0
        for frame in frames:
            if frame.file != file:
                continue
            for held in source.held_at(frame.line, innermost=frame.index == 0):
                entry = (order, frame, held)
                order += 1
                key = (held.expression, held.scope)
                self._named.setdefault(key, []).append(entry)
                theirs = frame.local_addrs.get(held.root)
                if theirs is None:
                    self._unaddressed.setdefault(key, []).append(entry)
                else:
                    self._addressed.setdefault((theirs, _path(held)), []).append(entry)

    def likely_holder(self, waiter: FrameAt) -> Tuple[Optional[Acquire], Optional[Holder]]:
        """likely_holder() for a waiter whose frame is in this file."""
        wanted = self.source.acquired_at(waiter.line) if waiter.file == self.file else None
        if wanted is None:
            return None, None
        key = (wanted.expression, wanted.scope)
        mine = waiter.local_addrs.get(wanted.root)
        if mine is None:  # by name: any frame holding the same expression in the same scope
            candidates: Iterable[Tuple[int, FrameAt, Acquire]] = self._named.get(key, [])
        else:  # the same object, or the same name where the holder's address is not known
            candidates = heapq.merge(self._unaddressed.get(key, []),
                                     self._addressed.get((mine, _path(wanted)), []))
        found: Dict[int, Holder] = {}
        for _order, frame, held in candidates:
            if frame.tid in found or not _same_lock(wanted, waiter, held, frame):
                continue
            found[frame.tid] = Holder(frame.tid, held, self.source.code(held.line))
            if len(found) > 1:
                break  # several threads: no one holder
        return wanted, (next(iter(found.values())) if len(found) == 1 else None)


def _same_lock(wanted: Acquire, waiter: FrameAt, held: Acquire, frame: FrameAt) -> bool:
    """The same object when py-spy showed where both first names are (then the names and
    scopes may differ: a lock passed as an argument), else the same expression in the same
    scope (and not two different objects)."""
    mine, theirs = waiter.local_addrs.get(wanted.root), frame.local_addrs.get(held.root)
    if mine is not None and theirs is not None:
        return mine == theirs and _path(wanted) == _path(held)
    if (held.expression, held.scope) != (wanted.expression, wanted.scope):
        return False
    return wanted.scope == ("module",) or mine is None or theirs is None


def _path(acquire: Acquire) -> str:
    """The attributes after the first name: `.lock` for `self.lock`."""
    return acquire.expression[len(acquire.root):]
