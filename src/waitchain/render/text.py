"""The terminal tree: one line per process along the chains, threads beneath, a verdict."""

from __future__ import annotations

import io
import os
from typing import Dict, List, Optional, Tuple

from rich.console import Console
from rich.text import Text

from ..model import Chain, Diagnosis, Edge, Wait
from . import Options
from ..names import short_cmdline
from ..sanitize import clean

STYLE = {"pid": "bold cyan", "call": "yellow", "label": "dim", "bad": "bold red", "end": "green"}


def render(diag: Diagnosis, options: Options = Options()) -> str:
    """The report as text; ANSI colours only when options.color."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=options.color, no_color=not options.color,
                      width=options.width or 200, highlight=False,
                      soft_wrap=options.width is None, emoji=False, markup=False)
    for line in lines(diag):
        console.print(line)
    return out.getvalue()


def lines(diag: Diagnosis) -> List[Text]:
    result: List[Text] = []
    for start in dict.fromkeys(c.start for c in diag.chains):
        result += _tree(diag, [c for c in diag.chains if c.start == start])
        result.append(Text(""))
    result += _verdict(diag)
    result += [Text(f"note: {clean(n)}", style="dim") for n in diag.notes]
    return result


# --- the tree ---------------------------------------------------------------------------


def _tree(diag: Diagnosis, chains: List[Chain]) -> List[Text]:
    trie: Dict[Tuple[int, ...], List[Tuple[int, ...]]] = {}
    for chain in chains:
        for i in range(1, len(chain.path) + 1):
            kids = trie.setdefault(chain.path[:i - 1], [])
            if chain.path[:i] not in kids:
                kids.append(chain.path[:i])
    ends = {c.path: c for c in chains}
    out: List[Text] = []
    for root in trie.get((), []):
        _node(diag, trie, ends, root, "", "", out)
    return out


def _node(diag, trie, ends, path, lead, child_lead, out) -> None:
    pid = path[-1]
    kids = trie.get(path, [])
    chain: Optional[Chain] = ends.get(path)
    nxt = kids[0][-1] if kids else (chain.end.pid if chain and chain.end.kind == "cycle" else None)
    out.append(_process_line(diag, pid, nxt, chain, lead))
    out.extend(_thread_lines(diag, pid, child_lead + ("│  " if kids or _cycles_back(chain) else "   ")))
    branches = list(kids)
    for i, kid in enumerate(branches):
        last = i == len(branches) - 1 and not _cycles_back(chain)
        _node(diag, trie, ends, kid, child_lead + ("└─ " if last else "├─ "),
              child_lead + ("   " if last else "│  "), out)
    if _cycles_back(chain):
        out.append(_cycle_line(diag, chain, child_lead + "└─ "))


def _cycles_back(chain: Optional[Chain]) -> bool:
    return chain is not None and chain.end.kind == "cycle"


def _process_line(diag: Diagnosis, pid: int, nxt: Optional[int], chain: Optional[Chain], lead: str) -> Text:
    line = Text(lead)
    line.append(str(pid), STYLE["pid"])
    line.append(f" {short_cmdline(diag.cmdlines.get(pid, '?'))}  ")
    wait, edge = _leading_wait(diag, pid, nxt)
    if wait is not None:
        line.append(clean(wait.what), STYLE["call"])
    if edge is not None:
        line.append(f"  {clean(edge.label)}", STYLE["label"])
    elif chain is not None and chain.end.kind != "cycle":
        line.append(f"  ⟂ {chain.end.kind}: {clean(chain.end.detail)}", STYLE["end"])
    return line


def _leading_wait(diag: Diagnosis, pid: int, nxt: Optional[int]) -> Tuple[Optional[Wait], Optional[Edge]]:
    """The thread of pid that waits for nxt (or that ends the chain), and that edge."""
    waits = [w for (p, _), w in diag.waits.items() if p == pid]
    for wait in waits:
        edge = next((e for e in wait.edges if e.to_pid == nxt), None)
        if edge is not None:
            return wait, edge
    ending = next((c.end.tid for c in diag.chains if c.path[-1] == pid and c.end.tid), None)
    chosen = next((w for w in waits if w.tid == ending), waits[0] if waits else None)
    return chosen, None


def _thread_lines(diag: Diagnosis, pid: int, lead: str) -> List[Text]:
    tasks = diag.tasks.get(pid, [])
    if len(tasks) < 2:
        return []
    out = []
    for task in tasks:
        wait = diag.waits.get((pid, task.tid))
        line = Text(f"{lead}· thread {task.tid} {clean(task.comm)} [{task.state}] ", style="dim")
        line.append(clean(wait.what if wait else task.note), STYLE["call"])
        if wait and wait.end and not wait.edges:
            line.append(f"  {wait.end.kind}", STYLE["label"])
        out.append(line)
    return out


def _cycle_line(diag: Diagnosis, chain: Chain, lead: str) -> Text:
    line = Text(lead)
    cycle = next((c for c in diag.cycles if chain.end.pid in c.pids), None)
    line.append(f"↺ {chain.end.pid}", STYLE["pid"])
    if cycle is not None and cycle.deadlock:
        ring = " → ".join(str(p) for p in cycle.pids + cycle.pids[:1])
        line.append(f" — DEADLOCK: {ring}", STYLE["bad"])
    else:
        line.append(f" — {clean(chain.end.detail)}", STYLE["label"])
    return line


# --- the verdict ------------------------------------------------------------------------


def _verdict(diag: Diagnosis) -> List[Text]:
    cause = diag.root_cause
    if cause is None:
        return [Text("no blocked chain found")]
    head = Text("root cause: ", style=STYLE["bad"] if diag.deadlocked else "bold")
    head.append(f"{cause.pid} {short_cmdline(diag.cmdlines.get(cause.pid, '?'))}")
    if cause.location is not None:
        loc = cause.location
        head.append(f" {clean(os.path.basename(loc.file))}:{loc.line} in {clean(loc.function)}")
        if loc.code:
            head.append(f": {clean(loc.code.strip())}", STYLE["call"])
    elif cause.syscall:
        head.append(f" in {cause.syscall}()", STYLE["call"])
    return [head, Text(clean(cause.summary))]
