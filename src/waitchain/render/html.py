"""--report FILE.html: one self-contained incident report to attach to a ticket. The verdict,
the picture (inline SVG when Graphviz is installed, else the Mermaid source and the text
tree), a table of every hop with its evidence and the commands to check it by hand, the
stacks, and the raw JSON. No scripts and no network resources (a Content-Security-Policy
forbids both); every piece of untrusted text is HTML-escaped."""

from __future__ import annotations

import datetime
import html
import re
import socket

from .. import __version__
from ..errors import ReportError, WaitchainError
from ..model import Chain, Diagnosis, Edge
from ..sanitize import clean
from . import Options
from . import json as render_json
from . import dot, mermaid, svg, text
from .common import blocked_for, end_detail, location_text, on_cycle, program_text
from .pylocks import lock_lines, thread_name, thread_text
from .verdicts import Summary, summaries
from .explain import Check, edge_checks, end_checks
from .labels import label

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:20px 28px 60px}
header{color:#555;font-size:13px;border-bottom:1px solid #ddd;padding-bottom:8px;margin-bottom:16px}
h1{font-size:22px;margin:0 0 10px}
h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #e0e0e0;padding-bottom:4px}
code,pre,td.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px 12px;overflow-x:auto;white-space:pre}
.verdict{border-radius:8px;padding:14px 18px;border:2px solid;background:#fff}
.verdict.bad{border-color:#c62828;background:#fff5f5}.verdict.bad h1{color:#b71c1c}
.verdict.warn{border-color:#f9a825;background:#fffdf3}.verdict.ok{border-color:#2e7d32}
.verdict ul{margin:4px 0 10px 0;padding-left:20px}
.verdict dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:8px 0 0}
.verdict dt{font-weight:600}.verdict dd{margin:0}
.picture{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px;overflow-x:auto}
.picture svg{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e0e0e0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
tr.cycle td{background:#fff0f0}
td.checks div{white-space:pre-wrap}td.checks{border-top:none;font-size:12px}
tr.how td{border-top:none}
.dim{color:#666}.cause{font-weight:600;color:#b71c1c}
details summary{cursor:pointer;font-weight:600}
"""


def write_report(diag: Diagnosis, path: str) -> None:
    """Write the report to `path` (a regular file replaced if it exists; see output.py)."""
    from ..output import open_output

    page = report(diag)
    out = open_output(path, force=True)
    try:
        out.write(page.encode("utf-8"))
    except OSError as exc:
        out.discard()
        raise ReportError(path, exc) from None


def report(diag: Diagnosis, now: Optional[datetime.datetime] = None,
           host: Optional[str] = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    host = host if host is not None else socket.gethostname()
    found = summaries(diag)
    title = f"waitchain: {found[0].headline.split(':')[0]} on {host}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        _header(diag, host, now), "".join(_verdict(v) for v in found), _picture(diag),
        _tree(diag), _table(diag),
        _stacks(diag), _notes(diag), _raw(diag), "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _e(value: object) -> str:
    """Escape for HTML text and attribute values, after cleaning control characters."""
    return html.escape(clean(str(value)), quote=True)


def _header(diag: Diagnosis, host: str, now: datetime.datetime) -> str:
    starts = ", ".join(str(p) for p in diag.starts)
    when = now.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return (f"<header>waitchain {_e(__version__)} incident report · host <b>{_e(host)}</b> · "
            f"{_e(when)} · started from {_e(starts or '-')} · {len(diag.processes)} processes, "
            f"{len(diag.edges)} edges</header>")


def _verdict(v: Summary) -> str:
    rows = []
    if v.cause:
        rows.append(("Root cause", _e(v.cause) + (f"<br><code>at {_e(v.location)}</code>" if v.location else "")))
    rows += [("Do now", "<br>".join(_e(i) for i in v.now))] if v.now else []
    rows += [("To fix", "<br>".join(_e(i) for i in v.fix))] if v.fix else []
    rows += [("Other chains", "<br>".join(_e(i) for i in v.others))] if v.others else []
    steps = "".join(f"<li>{_e(s)}</li>" for s in v.steps)
    items = "".join(f"<dt>{t}</dt><dd>{body}</dd>" for t, body in rows)
    return (f'<section id="verdict" class="verdict {_e(v.severity)}"><h1>{_e(v.headline)}</h1>'
            f"{'<ul>' + steps + '</ul>' if steps else ''}<dl>{items}</dl></section>")


def _picture(diag: Diagnosis) -> str:
    if not diag.processes:
        return ""
    head = '<h2>The wait-for graph</h2><div class="picture" id="picture">'
    if svg.available():
        try:
            return head + _inline_svg(svg.to_svg(dot.render(diag))) + "</div>"
        except WaitchainError as exc:
            note = f"Graphviz failed ({_e(exc)}); the Mermaid source follows."
    else:
        note = ("Graphviz's <code>dot</code> is not installed here (apt-get install graphviz), so "
                "there is no picture; paste this Mermaid source into a GitHub or GitLab issue to draw it.")
    return f'{head}<p class="dim">{note}</p><pre id="mermaid">{_e(mermaid.source(diag))}</pre></div>'


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)


def _inline_svg(source: str) -> str:
    """dot's SVG without the XML prolog and DOCTYPE (which name a DTD URL); dot escapes
    every label. Anything that could run or fetch is refused rather than embedded."""
    body = _PROLOG.sub("", source, count=1)
    lowered = body.lower()
    if "<script" in lowered or "<foreignobject" in lowered or re.search(r"\son\w+\s*=", lowered):
        raise WaitchainError("the SVG from dot contains active content")
    return body


def _tree(diag: Diagnosis) -> str:
    tree = text.tree(diag, Options(color=False, width=None))
    return f"<h2>The chain</h2><pre id=\"tree\">{_e_block(tree)}</pre>"


def _e_block(block: str) -> str:
    """Escape multi-line text that the renderers already cleaned (keeps its newlines)."""
    return "\n".join(_e(line) for line in block.splitlines())


def _table(diag: Diagnosis) -> str:
    rows = []
    first: Dict[Tuple[int, Optional[int]], Edge] = {}  # (from pid, to pid) → its first edge (a scan per hop: quadratic)
    for edge in diag.edges:
        first.setdefault((edge.from_pid, edge.to_pid), edge)
    for chain in diag.chains:
        for i, pid in enumerate(chain.path):
            nxt = chain.path[i + 1] if i + 1 < len(chain.path) else chain.end.pid
            rows.append(_hop(diag, chain, pid, first.get((pid, nxt)), i == len(chain.path) - 1))
    head = ("<tr><th>Chain</th><th>PID</th><th>Program</th><th>Thread</th><th>Call</th><th>Blocked</th>"
            "<th>Waits for</th></tr>")
    return f'<h2>Hop by hop</h2><table id="hops">{head}{"".join(rows)}</table>'


def _hop(diag: Diagnosis, chain: Chain, pid: int, edge: Optional[Edge], last: bool) -> str:
    tid = edge.from_tid if edge else (chain.end.tid or pid)
    wait = diag.waits.get((pid, tid))
    if edge is not None:
        target = f"{edge.to_pid} — {label(edge)}"
        evidence, checks = edge.evidence, edge_checks(diag, edge)
    else:
        target = f"END {chain.end.kind}: {end_detail(diag, chain.end, len(chain.path))}"
        evidence, checks = "", end_checks(diag, chain) if last else []
    cycle = edge is not None and on_cycle(diag, edge)
    cause = diag.root_cause is not None and diag.root_cause.pid == pid
    named = thread_name(diag, pid, tid)
    cells = [f"{chain.start}", f'<span class="{"cause" if cause else ""}">{pid}</span>',
             _e(program_text(diag, pid)), str(tid) + (f" '{_e(named)}'" if named else ""), f"<code>{_e(wait.what) if wait else ''}</code>",
             _e(blocked_for(diag, pid, tid)), _e(target)]
    kind = "cycle" if cycle else ""
    main = f'<tr class="{kind}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    if not evidence and not checks:
        return main
    how = (f'<div class="dim">evidence: {_e(evidence)}</div>' if evidence else "") + _checks(checks)
    return main + f'<tr class="how {kind}"><td></td><td colspan="6" class="checks">{how}</td></tr>'


def _checks(checks: List[Check]) -> str:
    return "".join(f"<div><code>$ {_e(c.command)}</code> <span class=\"dim\"># {_e(c.expect)}</span></div>"
                   for c in checks)


def _stacks(diag: Diagnosis) -> str:
    if not diag.stacks:
        return ""
    blocks = []
    for (pid, tid), stack in diag.stacks.items():
        where = location_text(diag, pid, tid)
        frames = "\n".join(f"  {_e(f.function)}  ({_e(f.file)}:{f.line})" for f in stack.frames)
        locks = "".join(f"<p>{_e(line)}</p>" for line in lock_lines(diag, pid, tid))
        blocks.append(f"<h3>{pid} {_e(program_text(diag, pid))}, {_e(thread_text(diag, pid, tid))}"
                      f"{' · ' + _e(stack.source) if stack.source else ''}</h3>"
                      + (f"<p>at <code>{_e(where)}</code></p>" if where else "")
                      + locks + f"<pre>{frames}</pre>")
    return '<h2>Stacks</h2><div id="stacks">' + "".join(blocks) + "</div>"


def _notes(diag: Diagnosis) -> str:
    if not diag.notes:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in diag.notes) + "</ul>"


def _raw(diag: Diagnosis) -> str:
    raw = render_json.render(diag)  # ASCII JSON: control characters are \\u escapes
    return f'<h2>Raw data</h2><details><summary>JSON (schema waitchain/1)</summary><pre id="json">' \
           f"{html.escape(raw, quote=True)}</pre></details>"
