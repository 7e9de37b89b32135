#!/usr/bin/env bash
# Runs the test suite with waitchain installed under the default python3 and under
# Python 3.9 (the oldest we support), each in its own virtualenv under .venvs/.
set -euo pipefail
cd "$(dirname "$0")/.."
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
    echo "== tests under $("$venv/bin/python" --version) =="
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=$?
done
exit $status
