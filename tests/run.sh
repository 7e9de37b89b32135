#!/usr/bin/env bash
# Runs the test suite with waitchain installed under the default python3 and under
# Python 3.9 (the oldest we support), each in its own virtualenv under .venvs/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY39="${PY39:-$(command -v python3.9 || ls "$HOME"/.pyenv/versions/3.9*/bin/python3.9 2>/dev/null | head -1 || true)}"
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
