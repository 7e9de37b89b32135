"""waits/__init__.py dispatches on a static map (system call -> rule module) so that a run
imports only the rules its threads need (start-up, issue 14). The rule modules' own SYSCALLS
(and postgres's LATCH_CALLS) say the same: this checks that the map does."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from typing import Dict

import waitchain.waits as waits
from waitchain.waits import postgres


def _declared() -> Dict[str, str]:
    """Every rule module's SYSCALLS, as system call -> module name (each call in one module)."""
    found: Dict[str, str] = {}
    for info in pkgutil.iter_modules(waits.__path__):
        module = importlib.import_module(f"waitchain.waits.{info.name}")
        for name in getattr(module, "SYSCALLS", ()):
            assert name not in found, f"{name} in both {found[name]} and {info.name}"
            found[name] = info.name
    return found


def test_the_static_map_is_what_the_rule_modules_declare() -> None:
    assert waits.RULE_MODULES == _declared()


def test_every_mapped_module_has_a_rule() -> None:
    for module in set(waits.RULE_MODULES.values()):
        assert callable(importlib.import_module(f"waitchain.waits.{module}").rule)


def test_postgres_is_asked_for_its_latch_calls() -> None:
    assert waits.REFINED == postgres.LATCH_CALLS


def test_importing_the_dispatch_imports_no_rule() -> None:
    """Only ends (the state's waits, which every run asks) and describe come with the package."""
    code = ("import sys, waitchain.waits; "
            "print(sorted(m for m in sys.modules if m.startswith('waitchain.waits.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['waitchain.waits.describe', 'waitchain.waits.ends']"
