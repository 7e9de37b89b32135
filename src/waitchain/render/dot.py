"""--format dot: the wait-for graph for Graphviz. Processes are boxes grouped by network
namespace (one cluster per host/container network); a multi-threaded process is a cluster
of its threads; edges carry their kind and object; a deadlock's edges and members are red;
where a chain ends is a note. Every label is cleaned and quoted (untrusted text)."""

from __future__ import annotations


from ..model import Diagnosis, Edge, Task
from ..sanitize import clean
from . import Options
from .ascii import to_ascii
from .verdicts import summary
from .common import (by_netns, chain_ends, deadlock_of, edge_lines, end_lines, netns_id,
                     node_lines, on_cycle, process_head, thread_head, unexamined, unique_edges)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

RED = "#c62828"
FONT = "Helvetica"


def render(diag: Diagnosis, options: Options = Options()) -> str:
    out = "\n".join(lines(diag)) + "\n"
    # --ascii: what is beyond ASCII is only inside quoted strings, where the ASCII spellings
    # (-> ... <<) are plain text and Graphviz reads &#N; as the character
    return to_ascii(out, lambda code: f"&#{code};") if options.ascii else out


def quote(text: str) -> str:
    """A DOT string: cleaned, backslashes and quotes escaped (so no \\N, \\G, \\l escapes
    and no way out of the string)."""
    return '"' + clean(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def label_of(*parts: str) -> str:
    """A multi-line label: each part quoted safely, joined with DOT's \\n."""
    return '"' + "\\n".join(quote(p)[1:-1] for p in parts if p) + '"'


def lines(diag: Diagnosis) -> List[str]:
    v = summary(diag)
    out = ["digraph waitchain {",
           f"  graph [rankdir=TB, compound=true, fontname={quote(FONT)}, fontsize=12, labelloc=t, "
           f"label={quote(v.headline)}{', fontcolor=' + quote(RED) if v.severity == 'bad' else ''}];",
           f"  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f7f7f7\", fontname={quote(FONT)}, fontsize=10];",
           f"  edge [fontname={quote(FONT)}, fontsize=9];"]
    for netns, pids in by_netns(diag).items():
        out += _cluster(diag, netns, pids)
    out += _missing_nodes(diag)
    out += [_edge_line(diag, e) for e in unique_edges(diag)]
    out += _end_lines(diag)
    out.append("}")
    return out


# --- nodes ------------------------------------------------------------------------------


def _cluster(diag: Diagnosis, netns: str, pids: List[int]) -> List[str]:
    body = [line for pid in pids for line in _process(diag, pid)]
    if not netns:
        return body
    head = [f"  subgraph cluster_net_{netns_id(netns)} {{",
            f"    label={quote('network namespace ' + netns)}; style=dashed; color=\"#9e9e9e\"; "
            "fontcolor=\"#616161\"; fontsize=10;"]
    return head + ["  " + line for line in body] + ["  }"]


def _process(diag: Diagnosis, pid: int) -> List[str]:
    tasks = diag.tasks.get(pid, [])
    if len(tasks) < 2:
        tid = tasks[0].tid if tasks else pid
        return [f"  {_node_id(pid, None)} [{_node_attrs(diag, pid, tid, _process_label(diag, pid, tid))}];"]
    out = [f"  subgraph cluster_p{pid} {{",
           f"    label={label_of(process_head(diag, pid))}; style=rounded; "
           f"color={quote(RED if _in_deadlock(diag, pid) else '#424242')};"]
    out += [f"    {_node_id(pid, t.tid)} [{_node_attrs(diag, pid, t.tid, _thread_label(diag, pid, t))}];"
            for t in tasks]
    return out + ["  }"]


def _node_id(pid: int, tid: Optional[int]) -> str:
    return f"p{pid}" if tid is None else f"t{pid}_{tid}"


def _process_label(diag: Diagnosis, pid: int, tid: int) -> str:
    return label_of(*node_lines(diag, pid, tid, process_head(diag, pid)))


def _thread_label(diag: Diagnosis, pid: int, task: Task) -> str:
    return label_of(*node_lines(diag, pid, task.tid, thread_head(task), task.note))


def _node_attrs(diag: Diagnosis, pid: int, tid: int, text: str) -> str:
    attrs = [f"label={text}"]
    if _in_deadlock(diag, pid) and _thread_in_deadlock(diag, pid, tid):
        attrs += [f"color={quote(RED)}", "penwidth=2", "fillcolor=\"#ffebee\""]
    cause = diag.root_cause
    if cause is not None and cause.pid == pid and cause.tid == tid:
        attrs += ["peripheries=2", f"tooltip={quote('root cause')}"]
    return ", ".join(attrs)


def _in_deadlock(diag: Diagnosis, pid: int) -> bool:
    return deadlock_of(diag, pid) is not None


def _thread_in_deadlock(diag: Diagnosis, pid: int, tid: int) -> bool:
    cycles = [c for c in diag.cycles if c.deadlock and pid in c.pids]
    return any(not c.threads or (pid, tid) in c.threads for c in cycles) or len(diag.tasks.get(pid, [])) < 2


def _missing_nodes(diag: Diagnosis) -> List[str]:
    return [f"  {_node_id(pid, None)} [label={label_of(f'{pid}', 'not examined')}, style=dashed];"
            for pid in unexamined(diag)]


# --- edges ------------------------------------------------------------------------------


def _endpoint(diag: Diagnosis, pid: int, tid: Optional[int]) -> Tuple[str, str]:
    """(node id, cluster to point the arrow at) for a process or one of its threads."""
    tasks = diag.tasks.get(pid, [])
    if len(tasks) < 2:
        return _node_id(pid, None), ""
    if tid is not None and any(t.tid == tid for t in tasks):
        return _node_id(pid, tid), ""
    return _node_id(pid, tasks[0].tid), f"cluster_p{pid}"


def _edge_line(diag: Diagnosis, edge: Edge) -> str:
    tail, _ = _endpoint(diag, edge.from_pid, edge.from_tid)
    head, cluster = _endpoint(diag, edge.to_pid, edge.to_tid)
    attrs = [f"label={label_of(*edge_lines(edge))}", f"tooltip={quote(edge.evidence)}"]
    if cluster:
        attrs.append(f"lhead={cluster}")
    if on_cycle(diag, edge):
        attrs += [f"color={quote(RED)}", f"fontcolor={quote(RED)}", "penwidth=2.5"]
    return f"  {tail} -> {head} [{', '.join(attrs)}];"


def _end_lines(diag: Diagnosis) -> List[str]:
    out: List[str] = []
    for number, (pid, end) in enumerate(chain_ends(diag), 1):
        tail, _ = _endpoint(diag, pid, end.tid)
        out.append(f"  end{number} [shape=note, style=filled, fillcolor=\"#fff8e1\", "
                   f"label={label_of(*end_lines(end))}];")
        out.append(f"  {tail} -> end{number} [style=dashed, arrowhead=none];")
    return out
