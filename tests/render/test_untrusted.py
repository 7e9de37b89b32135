"""The untrusted-text rule: a process chooses its comm, its command line and the paths it
opens. A name containing "\\x1b[2J", newlines, `<script>`, quotes, `"]` and `-->` must not
clear a terminal, break a line, close a DOT or Mermaid string, start an arrow, or run in the
HTML report, in any format."""

from __future__ import annotations

import json as jsonlib
import re
import shutil
import subprocess

import pytest
from conftest import needs_chromium, needs_dot
from render_fixtures import EVIL, hostile

from waitchain.render import Options, dot, html, json, mermaid, text

RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e]")
ESCAPED = "\\x1b[2J\\x0aevil"  # how cleaned text shows the escape sequence and the newline


@pytest.mark.parametrize("options", [Options(), Options(width=80), Options(explain=True),
                                     Options(ascii=True), Options(stacks=True)])
def test_text(options: Options) -> None:
    out = text.render(hostile(), options)
    assert not RAW_CONTROL.search(out)
    assert ESCAPED in out
    assert not any(line.startswith("evil") for line in out.splitlines())


def test_text_in_colour_has_only_our_escape_sequences() -> None:
    out = text.render(hostile(), Options(color=True))
    ours = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "\x1b" not in ours and ESCAPED in ours


def _dot_strings(source: str):
    """The quoted strings of a DOT file, checked to be well formed: a raw newline inside a
    string, or an unterminated one, fails."""
    strings, i = [], 0
    while i < len(source):
        if source[i] != '"':
            i += 1
            continue
        j, body = i + 1, []
        while source[j] != '"':
            assert source[j] != "\n", f"raw newline inside a DOT string near {source[i:j][:60]!r}"
            body.append(source[j:j + 2] if source[j] == "\\" else source[j])
            j += 2 if source[j] == "\\" else 1
        strings.append("".join(body))
        i = j + 1
    return strings


def test_dot_strings_stay_closed() -> None:
    out = dot.render(hostile())
    assert not RAW_CONTROL.search(out)
    strings = _dot_strings(out)
    assert any("<script>alert" in s for s in strings)
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', out)
    assert "script" not in outside and "evil" not in outside  # nothing leaked out of a string


@needs_dot
def test_dot_parses_to_the_same_graph() -> None:
    diag = hostile()
    done = subprocess.run(["dot", "-Tjson"], input=dot.render(diag).encode(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60, check=True)
    graph = jsonlib.loads(done.stdout)
    nodes = {o["name"] for o in graph["objects"] if "nodes" not in o and not o["name"].startswith("cluster")}
    assert nodes == {f"p{pid}" for pid in diag.processes}
    assert len(graph["edges"]) == len(diag.edges)
    labels = " ".join(o.get("label", "") for o in graph["objects"])
    assert "<script>alert('x')</script> --> " in labels  # shown literally, as text
    assert '--> "quoted" & | ; {} --arg' in labels


def test_mermaid_labels_stay_closed() -> None:
    out = mermaid.source(hostile())
    assert not RAW_CONTROL.search(out)
    assert "<script" not in out and "-->" not in out.replace(" -->|", "")
    for line in out.splitlines():
        if line.lstrip().startswith("%%"):
            assert '"' not in line
            continue
        assert line.count('"') in (0, 2, 4), line
        for label in re.findall(r'"([^"]*)"', line):
            bare = re.sub(r"#\d+;", "", label.replace("<br/>", ""))
            assert not re.search(r"[<>{}|;`#&\\]", bare), label
    assert "#60;script#62;alert" in out  # the text is still there, as entity codes


def test_mermaid_arrows_are_only_ours() -> None:
    diag = hostile()
    out = mermaid.source(diag)
    assert out.count("-->|") == len(diag.edges)


def test_json_is_faithful_and_inert() -> None:
    out = json.render(hostile())
    assert not RAW_CONTROL.search(out) and "\x1b" not in out
    data = jsonlib.loads(out)
    comms = {p["pid"]: p["comm"] for p in data["processes"]}
    assert comms[32084] == EVIL  # machine-readable output keeps the exact bytes, escaped


def test_html_escapes_everything() -> None:
    page = html.report(hostile(), host="<b>host</b>")
    assert "<script" not in page.lower()
    assert not RAW_CONTROL.search(page.replace("\n", ""))
    assert "&lt;script&gt;alert" in page
    assert "<b>host</b>" not in page


@needs_chromium
def test_html_in_a_browser_runs_nothing(tmp_path, chromium) -> None:
    path = tmp_path / "hostile.html"
    html.write_report(hostile(), str(path))
    dom = chromium(path.as_uri(), "--dump-dom")
    assert "<script" not in dom.lower()
    assert "&lt;script&gt;alert" in dom  # shown as text


def test_svg_would_be_refused_if_dot_let_a_script_through() -> None:
    with pytest.raises(Exception):
        html._inline_svg('<svg><script>alert(1)</script></svg>')
    with pytest.raises(Exception):
        html._inline_svg('<svg><g onload="x()"></g></svg>')


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_escapes_labels() -> None:
    from waitchain.render import svg

    out = svg.render(hostile())
    assert "<script" not in out.lower() and "&lt;script&gt;" in out
