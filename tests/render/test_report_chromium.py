"""The HTML incident report opened in headless Chromium: the verdict and the picture
render, and the page asks for nothing over the network (its CSP would log any attempt)."""

from __future__ import annotations

import re
import shutil

from conftest import needs_chromium
from render_fixtures import assorted, demo

from waitchain.render import html

HEADLINE = "DEADLOCK: 23270 command-server.py and 32084 dmesg wait for each other"


def test_report_is_self_contained() -> None:
    page = html.report(demo())
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert HEADLINE in page and "&quot;schema&quot;: &quot;waitchain/1&quot;" in page


@needs_chromium
def test_report_renders_verdict_and_picture(tmp_path, chromium) -> None:
    path = tmp_path / "incident.html"
    html.write_report(demo(), str(path))
    dom = chromium(path.as_uri(), "--dump-dom")
    assert HEADLINE in dom
    assert "at command-server.py:16 in run_command_for_client: p.wait()" in dom
    if shutil.which("dot"):
        svg = dom[dom.index("<svg"):dom.index("</svg>")]
        assert len(re.findall(r'class="node"', svg)) == 4
        assert len(re.findall(r'class="edge"', svg)) == 4
        assert svg.count('stroke="#c62828"') >= 2  # the cycle, in red
    else:
        assert 'id="mermaid"' in dom and "flowchart" in dom


@needs_chromium
def test_report_loads_without_console_errors(tmp_path, chromium) -> None:
    """CSP violations, failed loads and script errors all reach the console log."""
    path = tmp_path / "incident.html"
    html.write_report(assorted(), str(path))
    shot = tmp_path / "shot.png"
    chromium(path.as_uri(), "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
             "--window-size=1280,1600")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000  # a page, not a blank


@needs_chromium
def test_report_console_is_clean(tmp_path) -> None:
    import subprocess

    from conftest import chromium_binary

    path = tmp_path / "incident.html"
    html.write_report(demo(), str(path))
    done = subprocess.run([chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-quic", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                           f"--user-data-dir={tmp_path / 'p'}", "--enable-logging=stderr", "--v=0",
                           "--dump-dom", path.as_uri()],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    console = [l for l in done.stderr.decode(errors="replace").splitlines() if ":CONSOLE" in l]
    assert console == []


def test_report_without_graphviz_falls_back_to_mermaid(monkeypatch) -> None:
    from waitchain.render import svg

    monkeypatch.setattr(svg, "available", lambda: False)
    page = html.report(demo())
    assert 'id="mermaid"' in page and "flowchart LR" in page and "apt-get install graphviz" in page
    assert "<svg" not in page and 'id="tree"' in page
