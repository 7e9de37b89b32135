"""The terminal view: the chain as a tree of aligned columns (pid, program, the call with its
fds decoded, how long it has been blocked, why), then the verdict: deadlock or where the
chain ends, the root cause, what to do now and what to fix.

    PID                PROGRAM                      CALL                     BLOCKED  WHY
    9507               unprivileged-dmesg.py 41361  read(3<pipe:[26920]>)       12s  waits for the writer
    └─ 9508            command-client.py dmesg …    recvfrom(3<TCP …>)          12s  waits for the peer
       └─ ↺ 9506  DEADLOCK: 9506 → 9509 → 9506

Colours only with Options.color; box-drawing and arrows replaced with ASCII with
Options.ascii; lines fitted to Options.width (None: as long as they need). A line is a list
of (text, SGR parameters) pieces; the bytes are those rich's Console printed here before
(each styled piece "\x1b[1;36m...\x1b[0m" on its own, nothing around unstyled text), without
its import time (~30-50 ms, most of what the text output added to a run's start)."""

from __future__ import annotations

from ..model import Chain, Diagnosis, Edge, Wait
from ..records import record
from ..sanitize import clean
from . import Options, hosts
from .cells import cell_len
from .verdicts import Summary, summaries
from .common import (blocked_for, cycle_of, ellipsize, end_detail, location_text, name, on_cycle,
                     program_text)
from .labels import label
from .ends import detail as end_sentence
from .pylocks import lock_lines, thread_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple
    from .explain import Check

    Seg = Tuple[str, str]  # (text, style name)
    Text = List[Seg]  # a line to print: (text, SGR parameters or "")

MIN_FREE = 20  # columns left for text after the deepest indent, whatever --width says
# Each style's SGR parameters (the 8 standard colours): pid bold cyan, call yellow, dim, bad
# bold red, end green, warn bold yellow, ok bold green, head bold, cmd cyan
STYLE = {"pid": "1;36", "call": "33", "label": "", "dim": "2", "bad": "1;31", "end": "32",
         "warn": "1;33", "ok": "1;32", "head": "1", "cmd": "36", "": ""}
ASCII = str.maketrans({"└": "`", "├": "|", "│": "|", "─": "-", "↺": "<<", "→": "->", "…": "...",
                       "·": "*", "⟂": "#", "—": "-", "•": "*", "⇄": "<->", "↑": "^"})
GAP = "  "
MAX_THREADS = 8  # thread rows shown per process; the rest are summarised
INDENT = 3  # columns of tree drawing per level ("└─ ")
# Levels of the tree indented: deeper, the one process under a last child ("└─") is drawn
# at that child's column, also with "└─" (siblings would show "├─": a column of "└─" is a
# chain going on); what branches is indented under it. A chain 2,000 processes long drew
# ~6,000 columns of indent on every line (2,000 rows in 2.8 s).
DEEPEST = 12
MIN_PROGRAM = 16
MIN_WHY = 24  # narrower than this, WHY goes on a line of its own
TITLE = 12  # width of the verdict's titles: "root cause: "

UNPRINTED = dict.fromkeys((7, 8, 11, 12, 13))  # BEL, BS, VT, FF, CR: dropped (as rich did)


@record
class Row:
    """One line: either the five columns, or free text (`free`) after the tree drawing."""

    lead: str  # tree drawing before the pid
    cont: str  # tree drawing for the lines that belong under this one
    pid: str = ""
    program: str = ""
    call: str = ""
    blocked: str = ""
    why: str = ""
    why_style: str = "label"
    pid_style: str = "pid"
    free: Optional[List[Seg]] = None


@record
class Widths:
    a: int  # lead + pid
    b: int  # program
    c: int  # call
    d: int  # blocked
    stacked: bool = False  # even the columns do not fit: one field per line


def render(diag: Diagnosis, options: Options = Options()) -> str:
    """The report as text; ANSI colours only when options.color."""
    return _print(lines(diag, options), options)


def tree(diag: Diagnosis, options: Options = Options()) -> str:
    """Only the tree, without the verdict and notes (for the HTML report)."""
    return _print(lines(diag, options, verdict=False), options)


def _print(texts: List[Text], options: Options) -> str:
    return "".join("".join(_sgr(text, sgr) if sgr else text for text, sgr in line) + "\n"
                   for line in texts)


def _sgr(text: str, sgr: str) -> str:
    """Styled text: each of its lines wrapped in the style and a reset."""
    return "\n".join(f"\x1b[{sgr}m{part}\x1b[0m" if part else "" for part in text.split("\n"))


def lines(diag: Diagnosis, options: Options = Options(), verdict: bool = True) -> List[Text]:
    rows: List[Row] = []
    by_start: Dict[int, List[Chain]] = {}
    ending: Dict[int, int] = {}  # pid → the thread the first chain that ends at pid ends in
    for chain in diag.chains:
        by_start.setdefault(chain.start, []).append(chain)
        if chain.end.tid:
            ending.setdefault(chain.path[-1], chain.end.tid)
    for chains in by_start.values():
        rows += _tree(diag, chains, options, ending)
        rows.append(Row("", "", free=[]))
    if options.ascii:  # before measuring: "…" becomes "..."
        rows = [_ascii_row(r) for r in rows]
    widths = _widths(rows, options.width)
    header = _header(widths, options) if any(r.free is None for r in rows) else None
    result = [header] if header is not None else []
    for row in rows:
        result += _format(row, widths, options)
    result += [_text([(line, "")], options) for line in hosts.lines(diag)]  # --remote
    if verdict:
        result += _verdict_lines(diag, options)
    return result


def _verdict_lines(diag: Diagnosis, options: Options) -> List[Text]:
    """The verdict and the notes under the tree, wrapped to the width."""
    result: List[Text] = []
    for segs in _verdict(diag):
        indent = " " * TITLE if segs and segs[0][1] in ("head", "dim") else "    "
        result += _wrap_free(Row("", indent, free=segs), options)
    for note in diag.notes:
        result += _wrap_free(Row("", "      ", free=[(f"note: {clean(note)}", "dim")]), options)
    return result


# --- the tree ---------------------------------------------------------------------------


def _tree(diag: Diagnosis, chains: List[Chain], options: Options, ending: Dict[int, int]) -> List[Row]:
    forest = _Forest(chains, ending)
    out: List[Row] = []
    shown: Set[int] = set()
    for root in forest.kids.get(ROOTS, []):
        _node(diag, forest, root, "", "", out, options, shown)
    return out


ROOTS = -1  # the node above the chains' first processes


class _Forest:
    """The chains of one start as a tree of nodes (a node: a process on a path from the
    start), made in one pass over each path: the paths' prefixes as keys made a chain's
    tree quadratic in its length. `ending`: pid → the thread its chain ends in."""

    def __init__(self, chains: List[Chain], ending: Dict[int, int]) -> None:
        self.pid: List[int] = []  # node → its process
        self.kids: Dict[int, List[int]] = {}  # node → the nodes under it, in order
        self.ends: Dict[int, Chain] = {}  # node → the chain that ends there (the last one given)
        self.ending = ending
        ids: Dict[Tuple[int, int], int] = {}
        for chain in chains:
            node = ROOTS
            for pid in chain.path:
                child = ids.get((node, pid))
                if child is None:
                    child = ids[(node, pid)] = len(self.pid)
                    self.pid.append(pid)
                    self.kids.setdefault(node, []).append(child)
                node = child
            self.ends[node] = chain


def _node(diag, forest, node, lead, child_lead, out, options, shown) -> None:
    """The rows of node's process, then of its subtree, depth-first with a stack of its own
    (a chain thousands of processes long is deeper than Python's recursion limit)."""
    todo: List[Tuple] = [(node, lead, child_lead)]
    while todo:
        step = todo.pop()
        if len(step) == 2:  # after a process's children: its chain's way back into a cycle
            chain, child_lead = step
            out.append(_cycle_row(diag, chain, child_lead + "└─ ", child_lead + "      "))
            continue
        node, lead, child_lead = step
        todo += reversed(_node_rows(diag, forest, node, lead, child_lead, out, options, shown))


def _node_rows(diag, forest, node, lead, child_lead, out, options, shown) -> List[Tuple]:
    """node's process's own rows; what comes under it, in order (its children, then the
    way back into a cycle)."""
    pid = forest.pid[node]
    kids = forest.kids.get(node, [])
    chain: Optional[Chain] = forest.ends.get(node)
    nxt = forest.pid[kids[0]] if kids else (chain.end.pid if chain is not None and _cycles_back(chain) else None)
    more = bool(kids) or _cycles_back(chain)
    if pid in shown and more:  # reached again by another path: once is enough
        wait, edge = _leading_wait(diag, pid, nxt, forest.ending)
        row = _process_row(diag, pid, wait, edge, None, lead, child_lead + "   ")
        row.why, row.why_style = "↑ what it waits for is shown above", "dim"
        out.append(row)
        return []
    shown.add(pid)
    # this deep, the one process under a last child is drawn at its column (see DEEPEST)
    flat = len(kids) == 1 and not _cycles_back(chain) and lead.endswith("└─ ") and len(lead) > INDENT * DEEPEST
    under = child_lead + ("│  " if more and not flat else "   ")
    wait, edge = _leading_wait(diag, pid, nxt, forest.ending)
    out.append(_process_row(diag, pid, wait, edge, chain, lead, under))
    threads = _thread_rows(diag, pid, under, options)
    out.extend(threads)
    if wait is None or str(wait.tid) not in {r.pid for r in threads}:  # else under its thread row
        out.extend(_stack_rows(diag, pid, wait, under, options))
    if options.explain:
        out.extend(_explain_rows(diag, edge, chain, under, options.width))
    after: List[Tuple] = []
    if flat:
        after.append((kids[0], lead, child_lead))
    else:
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1 and not _cycles_back(chain)
            after.append((kid, child_lead + ("└─ " if last else "├─ "), child_lead + ("   " if last else "│  ")))
    if chain is not None and _cycles_back(chain):
        after.append((chain, child_lead))
    return after


def _cycles_back(chain: Optional[Chain]) -> bool:
    return chain is not None and chain.end.kind == "cycle"


def _process_row(diag: Diagnosis, pid: int, wait: Optional[Wait], edge: Optional[Edge],
                 chain: Optional[Chain], lead: str, cont: str) -> Row:
    row = Row(lead, cont, str(pid), program_text(diag, pid))
    threads = len(diag.tasks.get(pid, []))
    if threads > 1:  # its threads follow, one row each
        waits = diag.waits_of(pid)
        blocked = sum(1 for w in waits if any(e.to_pid != pid for e in w.edges))
        inside = sum(1 for w in waits if w.edges and all(e.to_pid == pid for e in w.edges))
        row.call = f"{threads} threads" + "".join(
            f", {n} {what}" for n, what in ((blocked, "waiting for other processes"),
                                            (inside, "waiting for each other")) if n) + ":"
        if chain is not None and not _cycles_back(chain) and not edge:
            row.why, row.why_style = _chain_end_why(diag, chain)
        return row
    if wait is not None:
        row.call = clean(wait.what)
        row.blocked = blocked_for(diag, pid, wait.tid)
    if edge is not None:
        row.why = label(edge)
        row.why_style = "bad" if on_cycle(diag, edge) else "label"
    elif chain is not None and not _cycles_back(chain):
        row.why, row.why_style = _chain_end_why(diag, chain)
    elif wait is not None and wait.end is not None:
        row.why, row.why_style = _wait_end_why(wait)
    return row


def _chain_end_why(diag: Diagnosis, chain: Chain) -> Seg:
    """WHY for the process where the chain ends."""
    return f"END {clean(chain.end.kind)}: {end_detail(diag, chain.end, len(chain.path))}", "end"


def _wait_end_why(wait: Wait) -> Seg:
    """WHY for a thread whose wait ends (off the chain, or with a remark)."""
    assert wait.end is not None
    return f"{clean(wait.end.kind)}: {clean(end_sentence(wait.end))}", "dim"


def _leading_wait(diag: Diagnosis, pid: int, nxt: Optional[int],
                  ending: Dict[int, int]) -> Tuple[Optional[Wait], Optional[Edge]]:
    """The thread of pid that waits for nxt (or that ends the chain), and that edge.
    `ending`: pid → the thread the first chain ending at pid ends in."""
    waits = diag.waits_of(pid)
    for wait in waits:
        edge = next((e for e in wait.edges if e.to_pid == nxt), None)
        if edge is not None:
            return wait, edge
    tid = ending.get(pid)
    chosen = next((w for w in waits if w.tid == tid), waits[0] if waits else None)
    return chosen, None


def _thread_rows(diag: Diagnosis, pid: int, lead: str, options: Options = Options()) -> List[Row]:
    """Every thread of a multi-threaded process (the first MAX_THREADS, blocked ones first),
    each with the application line it waits at."""
    tasks = diag.tasks.get(pid, [])
    if len(tasks) < 2:
        return []
    ranked = sorted(tasks, key=lambda t: not (diag.waits.get((pid, t.tid)) and diag.waits[(pid, t.tid)].edges))
    rows = []
    for task in ranked[:MAX_THREADS]:
        rows.append(_thread_row(diag, pid, task, lead))
        rows.extend(_stack_rows(diag, pid, diag.waits.get((pid, task.tid)), lead + "  ", options))
    if len(tasks) > MAX_THREADS:
        rows.append(Row(lead, lead + "  ", free=[(f"· … {len(tasks) - MAX_THREADS} more threads "
                                           "(--json lists them all)", "dim")]))
    return rows


def _thread_row(diag: Diagnosis, pid: int, task, lead: str) -> Row:
    wait = diag.waits.get((pid, task.tid))
    named = thread_name(diag, pid, task.tid)  # its Python name, else its comm
    row = Row(lead + "· ", lead, str(task.tid), f"thread {named or clean(task.comm)} [{task.state}]",
              pid_style="dim")
    row.call = clean(wait.what if wait else task.note)
    row.blocked = blocked_for(diag, pid, task.tid)
    if wait is not None and wait.edges:
        targets = ", ".join(dict.fromkeys(str(e.to_pid) for e in wait.edges))
        row.why = f"{label(wait.edges[0])} → {targets}"
    elif wait is not None and wait.end is not None:
        row.why, row.why_style = _wait_end_why(wait)
    return row


def _stack_rows(diag: Diagnosis, pid: int, wait: Optional[Wait], lead: str, options: Options) -> List[Row]:
    """`at FILE:LINE in FUNC: CODE` under the process (the stacks stage fills diag.stacks);
    with --stacks, every frame."""
    if wait is None:
        return []
    where = location_text(diag, pid, wait.tid)
    stack = diag.stacks.get((pid, wait.tid))
    said = [("  — " + clean(stack.label), "dim")] if stack is not None and stack.label else []
    rows = [Row(lead, lead + "     ", free=([("  at ", "dim"), (where, "call")] if where else []) + said)] \
        if where or said else []
    rows += [Row(lead, lead + "     ", free=[("  " + line, "dim")]) for line in lock_lines(diag, pid, wait.tid)]
    if options.stacks and stack is not None:
        for frame in stack.native:  # a C extension's frames above a Python stack
            text = f"{clean(frame.function)} ({clean(frame.file)}:{frame.line})  [native]"
            rows.append(Row(lead, lead, free=[("     ", ""), (text, "dim")]))
        for frame in stack.frames:
            text = f"{clean(frame.function)} ({clean(frame.file)}:{frame.line})"
            guessed = f"  [{frame.how}]" if frame.how in ("fp", "scan") else ""  # not by CFI
            rows.append(Row(lead, lead, free=[("     ", ""), (text + guessed, "dim")]))
        if stack.incomplete:
            rows.append(Row(lead, lead, free=[("     ", ""), ("… (no unwind rule past this frame)", "dim")]))
    return rows


def _explain_rows(diag: Diagnosis, edge: Optional[Edge], chain: Optional[Chain], lead: str,
                  width: Optional[int]) -> List[Row]:
    """--explain: the commands that check the edge (or the chain's end) by hand."""
    from .explain import edge_checks, end_checks  # only with --explain: ~0.5 ms to import

    checks: List[Check] = []
    if edge is not None:
        checks = edge_checks(diag, edge)
    elif chain is not None:
        checks = end_checks(diag, chain)
    if not checks:
        return []
    rows = [Row(lead, lead, free=[("  check by hand:", "dim")])] + _check_rows(checks, lead, width)
    if edge is not None:
        rows.append(Row(lead, lead, free=[("    evidence: ", "dim"), (clean(edge.evidence), "dim")]))
    return rows


def _check_rows(checks: List[Check], lead: str, width: Optional[int]) -> List[Row]:
    """`$ command   # what it shows`, aligned; what it shows on a line of its own when the
    two do not fit the width side by side."""
    widest = max(cell_len(c.command) for c in checks)
    beside = width is None or all(
        cell_len(lead) + 6 + widest + 5 + cell_len(c.expect) <= width for c in checks)
    rows: List[Row] = []
    for check in checks:
        command = Row(lead, lead + "      ", free=[("    $ ", "dim"), (check.command, "cmd")])
        if beside:
            pad = " " * (widest - cell_len(check.command))
            command.free.append((f"{pad}   # {check.expect}", "dim"))  # type: ignore[union-attr]
            rows.append(command)
        else:
            rows += [command, Row(lead, lead + " " * 10, free=[(f"        # {check.expect}", "dim")])]
    return rows


def _cycle_row(diag: Diagnosis, chain: Chain, lead: str, cont: str) -> Row:
    cycle = cycle_of(diag, chain.end.pid)
    segs: List[Seg] = [(f"↺ {name(diag, chain.end.pid)}", "pid") if chain.end.pid else ("↺", "pid")]
    if cycle is not None and cycle.deadlock:
        ring = " → ".join(str(p) for p in cycle.pids + cycle.pids[:1])
        segs.append((f"  DEADLOCK: {ring}", "bad"))
    else:
        segs.append((f"  {end_detail(diag, chain.end)}", "warn"))
    return Row(lead, cont, free=segs)


# --- columns and width -----------------------------------------------------------------


HEAD = ("PID", "PROGRAM", "CALL", "BLOCKED", "WHY")


def _widths(rows: List[Row], width: Optional[int]) -> Widths:
    cols = [r for r in rows if r.free is None]

    def widest(get, head: str) -> int:
        return max([cell_len(get(r)) for r in cols] + [len(head)])

    w = Widths(widest(lambda r: r.lead + r.pid, HEAD[0]), widest(lambda r: r.program, HEAD[1]),
               widest(lambda r: r.call, HEAD[2]), widest(lambda r: r.blocked, HEAD[3]))
    if width is None or not cols:
        return w
    why = max(cell_len(r.why) for r in cols)
    if _total(w) + len(GAP) + why <= width:
        return w
    w.b = max(MIN_PROGRAM, min(w.b, width - (w.a + w.c + w.d + len(GAP) * 4 + why)))
    if _total(w) + len(GAP) + why <= width:
        return w
    # WHY cannot fit beside the columns (_format wraps it, or puts it on a line of its own):
    # give PROGRAM back the room WHY would have taken
    w.b = max(MIN_PROGRAM, min(widest(lambda r: r.program, HEAD[1]), width - (w.a + w.c + w.d + len(GAP) * 3)))
    w.stacked = _total(w) > width  # the call is never cut: it goes on a line of its own
    return w


def _total(w: Widths) -> int:
    return w.a + w.b + w.c + w.d + len(GAP) * 3


def _header(w: Widths, options: Options) -> Optional[Text]:
    if w.stacked:
        return None
    cells = [_pad(HEAD[0], w.a), _pad(HEAD[1], w.b), _pad(HEAD[2], w.c), HEAD[3].rjust(w.d)]
    text = GAP.join(cells)
    if options.width is None or cell_len(text) + len(GAP) + len(HEAD[4]) <= options.width:
        text += GAP + HEAD[4]
    return _text([(text, "head")], options)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cell_len(text))


def _cut(text: str, width: int, ascii_only: bool) -> str:
    if cell_len(text) <= width:
        return text
    return text[: max(width - 3, 0)] + "..." if ascii_only else ellipsize(text, width)


def _format(row: Row, w: Widths, options: Options) -> List[Text]:
    if row.free is not None:
        return _wrap_free(row, options)
    if w.stacked:
        return _stacked(row, options)
    segs: List[Seg] = [(row.lead, "dim"), (row.pid, row.pid_style),
                       (" " * (w.a - cell_len(row.lead + row.pid)) + GAP, ""),
                       (_pad(_cut(row.program, w.b, options.ascii), w.b) + GAP, ""),
                       (_pad(row.call, w.c), "call"), (GAP + row.blocked.rjust(w.d), "dim")]
    fits = options.width is None or w.a + w.b + w.c + w.d + len(GAP) * 4 + cell_len(row.why) <= options.width
    if not row.why or fits:
        segs += [(GAP + row.why, row.why_style)] if row.why else []
        return [_stripped(_text(segs, options))]
    column = w.a + w.b + w.c + w.d + len(GAP) * 4
    assert options.width is not None  # it fits when there is no width
    if options.width - column >= MIN_WHY:  # wrap the cell inside its column
        indent = row.cont + " " * (column - cell_len(row.cont))
        cell = Row("", indent, free=segs + [(GAP + row.why, row.why_style)])
        return [_stripped(t) for t in _wrap_free(cell, options)]
    below = Row(row.cont, row.cont, free=[("  " + " " * (w.a - cell_len(row.cont)), ""), (row.why, row.why_style)])
    return [_stripped(_text(segs, options))] + _wrap_free(below, options)


def _stacked(row: Row, options: Options) -> List[Text]:
    """Narrow terminals: `pid program  blocked`, then the call, then why, each on its own line."""
    head = [(row.lead, "dim"), (row.pid, row.pid_style), (f"  {row.program}", "")]
    if row.blocked:
        head.append((f"  {row.blocked}", "dim"))
    out = _wrap_free(Row("", row.cont + "  ", free=head), options)
    for text, style in ((row.call, "call"), (row.why, row.why_style)):
        if text:
            out += _wrap_free(Row(row.cont, row.cont + "    ", free=[("  ", ""), (text, style)]), options)
    return out


def _wrap_free(row: Row, options: Options) -> List[Text]:
    """A free line; wrapped at word boundaries to the width, continuing under row.cont."""
    segs = [(row.lead, "dim")] + list(row.free or [])
    width = options.width
    if width is None or cell_len("".join(s for s, _ in segs)) <= width:
        return [_text(segs, options)]
    indent = row.cont if row.cont != row.lead else row.cont + "    "
    width = max(width, cell_len(indent) + MIN_FREE)  # a deep tree in a narrow width
    out: List[Text] = []
    line: List[Seg] = []
    used = 0
    for text, style in segs:
        for word in _words(text):
            if used + cell_len(word) > width and used > cell_len(indent):
                out.append(_text(line, options))
                line, used, word = [(indent, "dim")], cell_len(indent), word.lstrip(" ")
            while word and cell_len(word) > width - used:  # a word longer than a line: cut it
                room = max(width - used, 1)
                line.append((word[:room], style))
                out.append(_text(line, options))
                line, used, word = [(indent, "dim")], cell_len(indent), word[room:]
            line.append((word, style))
            used += cell_len(word)
    out.append(_text(line, options))
    return out


def _words(text: str) -> List[str]:
    """Split keeping the spaces attached to the following word."""
    words: List[str] = []
    for i, part in enumerate(text.split(" ")):
        words.append(part if i == 0 else " " + part)
    return [w for w in words if w]


def _text(segs: List[Seg], options: Options) -> Text:
    line: Text = []
    for text, style in _merged(segs):
        if options.ascii:
            text = _ascii(text)
        text = text.translate(UNPRINTED)
        if text:
            line.append((text, STYLE[style] if options.color else ""))
    return line


def _ascii(text: str) -> str:
    return text.translate(ASCII).encode("ascii", "backslashreplace").decode("ascii")


def _ascii_row(row: Row) -> Row:
    free = [(_ascii(t), s) for t, s in row.free] if row.free is not None else None
    return Row(_ascii(row.lead), _ascii(row.cont), _ascii(row.pid), _ascii(row.program),
               _ascii(row.call), _ascii(row.blocked), _ascii(row.why), row.why_style,
               row.pid_style, free)


def _stripped(line: Text) -> Text:
    """Without the spaces at its end."""
    while line and not line[-1][0].rstrip():
        line.pop()
    if line:
        line[-1] = (line[-1][0].rstrip(), line[-1][1])
    return line


def _merged(segs: List[Seg]) -> List[Seg]:
    """Adjacent pieces in the same style as one (fewer escape sequences)."""
    out: List[Seg] = []
    for text, style in segs:
        if out and out[-1][1] == style:
            out[-1] = (out[-1][0] + text, style)
        elif text:
            out.append((text, style))
    return out


# --- the verdict ------------------------------------------------------------------------


def _verdict(diag: Diagnosis) -> List[List[Seg]]:
    out: List[List[Seg]] = []
    for i, v in enumerate(summaries(diag)):
        out += ([[("", "")]] if i else []) + _summary(v)
    return out


def _summary(v: Summary) -> List[List[Seg]]:
    out: List[List[Seg]] = [[(v.headline, v.severity)]]
    out += [[("  ", ""), (step, "")] for step in v.steps]
    if v.cause:
        out.append([(f"{'root cause:':<{TITLE}}", "head"), (v.cause, "")])
    if v.location:
        out.append([(" " * TITLE + "at ", "dim"), (v.location, "call")])
    out += _advice("do now:", v.now) + _advice("to fix:", v.fix)
    if v.others:
        out.append([("other chains end at:", "head")])
        out += [[("  ", ""), (other, "dim")] for other in v.others]
    return out


def _advice(title: str, items: List[str]) -> List[List[Seg]]:
    if not items:
        return []
    first = [[(f"{title:<{TITLE}}", "head"), (items[0], "")]]
    return first + [[(" " * TITLE, "head"), (item, "")] for item in items[1:]]  # "head": wrap under TITLE
