#!/usr/bin/env bash
# Runs the test suite with waitchain installed under the default python3 and under
# Python 3.9 (the oldest we support), each in its own virtualenv under .venvs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
find_py39() {  # a Python 3.9 that really runs (a pyenv shim may exist but refuse)
    for cand in "$HOME"/.pyenv/versions/3.9*/bin/python3.9 /usr/bin/python3.9 /usr/local/bin/python3.9; do
        if [ -x "$cand" ] && "$cand" -c pass 2>/dev/null; then echo "$cand"; return; fi
    done
}
PY39="${PY39:-$(find_py39)}"
if [ -z "$PY39" ]; then echo "tests/run.sh: no Python 3.9 found: the 3.9 run is required" >&2; exit 1; fi
status=0
for py in python3 ${PY39:+"$PY39"}; do
    name=$("$py" -c 'import sys; print("py%d%d" % sys.version_info[:2])')
    venv=".venvs/$name"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
    echo "== mypy under $("$venv/bin/python" --version) =="
    "$venv/bin/python" -m mypy || status=$?
    echo "== tests under $("$venv/bin/python" --version) =="
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=$?
done
# The torture script once in its short mode (issue 15): 1,000 runs under a 1,000 forks/s churn,
# the held-mmap-lock scenario, the no-harm trace; it exits 1 on any crash, hang, wrong chain,
# leftover or harmful call. Root only (it mounts FUSE and traces with strace).
if [ "$(id -u)" -eq 0 ]; then
    echo "== bench/torture.py --short =="
    ".venvs/$(python3 -c 'import sys; print("py%d%d" % sys.version_info[:2])')/bin/python" bench/torture.py --short || status=$?
else
    echo "== bench/torture.py --short: skipped (not root) =="
fi
# The README's first command, as a new user runs it: a plain (non-editable) install, then
# the demo, which must find the deadlock (exit 1) and name the server's p.wait() line.
echo "== waitchain demo from a non-editable install =="
venv=.venvs/installed
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps . 2>/dev/null
"$venv/bin/python" -m pip install -q --disable-pip-version-check .
demo_status=0
out=$(cd / && "$ROOT/$venv/bin/waitchain" demo --width 200) || demo_status=$?
echo "$out" | tail -4
if [ "$demo_status" -ne 1 ] || ! grep -q "run_command_for_client: p.wait()" <<<"$out"; then
    echo "demo: expected exit 1 and the server's p.wait() line (exit $demo_status)" >&2
    status=1
else
    echo "demo: ok (exit 1, the deadlock and the p.wait() line found)"
fi
exit $status
