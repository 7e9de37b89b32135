"""--format mermaid: the wait-for graph as Mermaid flowchart source (what mmdc and
mermaid.live read); --format markdown: the same inside a ```mermaid block, ready to paste
into a GitHub or GitLab issue, or any Markdown that renders Mermaid.

Untrusted text is written with Mermaid's entity codes (`#34;` for a quote, `#60;` for `<`),
so no process name can close a label, start an arrow, or inject HTML."""

from __future__ import annotations


from ..model import Diagnosis, Edge
from ..sanitize import clean
from . import Options
from .ascii import TABLE
from .verdicts import summary
from .common import (by_netns, chain_ends, edge_lines, end_lines, netns_id, node_lines, on_cycle,
                     process_head, thread_head, unexamined, unique_edges)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:/_()=+@~?!*'$^-[]")
RED = "#c62828"


def render(diag: Diagnosis, options: Options = Options()) -> str:
    """--format markdown: the flowchart in a fenced block."""
    return "```mermaid\n" + source(diag, options.ascii) + "```\n"


def render_source(diag: Diagnosis, options: Options = Options()) -> str:
    """--format mermaid: the flowchart source alone."""
    return source(diag, options.ascii)


def source(diag: Diagnosis, ascii_only: bool = False) -> str:
    """The flowchart itself, without the Markdown fence."""
    out = "\n".join(lines(diag)) + "\n"
    return _ascii(out) if ascii_only else out


def _ascii(source: str) -> str:
    """--ascii: what is beyond ASCII is only ever inside labels (and the %% comment): arrows
    and ellipses spelled out (entity-coded where a character is not safe in a label: `->` is
    `-#62;`), anything else as its entity code, which Mermaid shows as the character."""
    return "".join(ch if ord(ch) < 0x80 else _spelled(ch) for ch in source)


def _spelled(ch: str) -> str:
    ascii_text = ch.translate(TABLE)
    if ascii_text == ch:
        return f"#{ord(ch)};"
    return "".join(c if c in SAFE else f"#{ord(c)};" for c in ascii_text)


def text(value: str) -> str:
    """A label: cleaned, then every character outside a small safe set as an entity code.
    Characters beyond ASCII (→, …, letters) stay as they are, except quotes and brackets."""
    out = []
    for ch in clean(value):
        out.append(ch if ch in SAFE or (ord(ch) > 0x7F and ch.isprintable() and ch not in "＂")
                   else f"#{ord(ch)};")
    return "".join(out)


def _label(*parts: str) -> str:
    return '"' + "<br/>".join(text(p) for p in parts if p) + '"'


def lines(diag: Diagnosis) -> List[str]:
    v = summary(diag)
    out = [f"%% waitchain: {text(v.headline)}", "flowchart LR"]
    for netns, pids in by_netns(diag).items():
        out += _group(diag, netns, pids)
    out += [f"  p{pid}[{_label(f'{pid}', 'not examined')}]" for pid in unexamined(diag)]
    edges, red = _edge_lines(diag)
    out += edges
    out += _end_lines(diag)
    out += _styles(diag, red)
    return out


def _group(diag: Diagnosis, netns: str, pids: List[int]) -> List[str]:
    body = [line for pid in pids for line in _process(diag, pid)]
    if not netns:
        return body
    return ([f"  subgraph net{netns_id(netns)}[{_label('network namespace ' + netns)}]"]
            + ["  " + line for line in body] + ["  end"])


def _process(diag: Diagnosis, pid: int) -> List[str]:
    tasks = diag.tasks.get(pid, [])
    if len(tasks) < 2:
        tid = tasks[0].tid if tasks else pid
        return [f"  p{pid}[{_node_text(diag, pid, tid, process_head(diag, pid))}]"]
    out = [f"  subgraph p{pid}[{_label(process_head(diag, pid))}]"]
    for task in tasks:
        out.append(f"    t{pid}_{task.tid}[{_node_text(diag, pid, task.tid, thread_head(task))}]")
    return out + ["  end"]


def _node_text(diag: Diagnosis, pid: int, tid: int, head: str) -> str:
    return _label(*node_lines(diag, pid, tid, head))


def _endpoint(diag: Diagnosis, pid: int, tid: Optional[int]) -> str:
    tasks = diag.tasks.get(pid, [])
    if len(tasks) >= 2 and tid is not None and any(t.tid == tid for t in tasks):
        return f"t{pid}_{tid}"
    return f"p{pid}"  # a process, or the subgraph of a multi-threaded one


def _edge_lines(diag: Diagnosis) -> Tuple[List[str], List[int]]:
    out: List[str] = []
    red: List[int] = []
    for edge in unique_edges(diag):
        if on_cycle(diag, edge):
            red.append(len(out))
        out.append(f"  {_endpoint(diag, edge.from_pid, edge.from_tid)} -->|{_edge_label(edge)}| "
                   f"{_endpoint(diag, edge.to_pid, edge.to_tid)}")
    return out, red


def _edge_label(edge: Edge) -> str:
    return _label(*edge_lines(edge))


def _end_lines(diag: Diagnosis) -> List[str]:
    out: List[str] = []
    for number, (pid, end) in enumerate(chain_ends(diag), 1):
        out.append(f"  end{number}>{_label(*end_lines(end))}]:::ending")
        out.append(f"  {_endpoint(diag, pid, end.tid)} -.- end{number}")
    return out


def _styles(diag: Diagnosis, red: List[int]) -> List[str]:
    out = [f"  classDef deadlock fill:#ffebee,stroke:{RED},stroke-width:2px,color:#000",
           "  classDef cause stroke-width:4px",
           "  classDef ending fill:#fff8e1,stroke:#f9a825,color:#000"]
    members = [p for c in diag.cycles if c.deadlock for p in c.pids if p in diag.processes]
    if members:
        out.append("  class " + ",".join(_endpoint(diag, p, None) if len(diag.tasks.get(p, [])) < 2
                                          else f"p{p}" for p in dict.fromkeys(members)) + " deadlock")
    if diag.root_cause is not None and diag.root_cause.pid in diag.processes:
        out.append(f"  class {_endpoint(diag, diag.root_cause.pid, diag.root_cause.tid)} cause")
    if red:
        out.append(f"  linkStyle {','.join(map(str, red))} stroke:{RED},stroke-width:3px,color:{RED}")
    return out
