"""The waitchain/1 contract: the JSON Schema in waitchain/data validates every golden file,
every fixed diagnosis and live output of the CLI (the demo deadlock, --all), and its enums
are the model's, so neither can drift from the other."""

from __future__ import annotations

import json as jsonlib
import os
from typing import Any, Dict, List

import jsonschema
import pytest
from conftest import GOLDEN
from render_fixtures import (ALL, backend_and_postmaster, client_and_loop, hostile, idle_at, python_abba,
                             reached_twice, sleeping_twice)

import waitchain
from waitchain.demo import scenario
from waitchain.model import (Advice, CycleShape, EdgeKind, EndKind, LockType, Mode, Ownerless, PtySide, Reason,
                             VerdictClass)
from waitchain.render import json

SCHEMA_PATH = os.path.join(os.path.dirname(waitchain.__file__), "data", "waitchain-1.schema.json")
ENUMS = {"edgeKind": EdgeKind, "endKind": EndKind, "reason": Reason, "mode": Mode,
         "verdictClass": VerdictClass, "advice": Advice, "cycleShape": CycleShape, "lockType": LockType,
         "ptySide": PtySide, "ownerless": Ownerless}
GOLDENS = sorted(f for f in os.listdir(GOLDEN) if f.endswith(".json"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = jsonlib.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _valid(validator, data: Dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10])


def test_the_schema_is_a_valid_schema(validator) -> None:
    assert validator.schema["properties"]["schema"] == {"const": json.SCHEMA}


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_the_schemas_enums_are_the_models(validator, name: str) -> None:
    assert validator.schema["$defs"][name]["enum"] == [m.value for m in ENUMS[name]]


def test_every_top_level_field_is_required(validator) -> None:
    schema = validator.schema
    assert sorted(schema["required"]) == sorted(schema["properties"])
    for name, part in schema["$defs"].items():
        if part.get("type") == "object":
            assert sorted(part["required"]) == sorted(part["properties"]), name
            assert part["additionalProperties"] is False, name


def test_there_are_goldens() -> None:
    assert GOLDENS == ["assorted.json", "demo.json"]


@pytest.mark.parametrize("name", GOLDENS)
def test_golden(validator, name: str) -> None:
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as f:
        _valid(validator, jsonlib.load(f))


FIXTURES = {**ALL, "hostile": hostile, "sleeping_twice": sleeping_twice, "reached_twice": reached_twice,
            "idle_at": lambda: idle_at("x", Reason.ACCEPT, Advice.IDLE_SERVER),
            "client_and_loop": client_and_loop, "pty": lambda: client_and_loop(EdgeKind.PTY),
            "open_cycle": lambda: client_and_loop(loop=False), "python_abba": python_abba,
            "backend_and_postmaster": backend_and_postmaster}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture(validator, name: str) -> None:
    _valid(validator, jsonlib.loads(json.render(FIXTURES[name]())))


def test_nothing_blocked(validator) -> None:
    diag = ALL["demo"]()
    diag.chains, diag.cycles, diag.verdicts, diag.root_cause = [], [], [], None
    data = jsonlib.loads(json.render(diag))
    _valid(validator, data)
    assert [v["class"] for v in data["verdicts"]] == ["nothing"]


def test_a_deadlock_flag_without_a_deadlock_verdict_is_invalid(validator) -> None:
    data = jsonlib.loads(json.render(ALL["assorted"]()))
    data["deadlock"] = True
    assert list(validator.iter_errors(data))


# --- live ------------------------------------------------------------------------------------


def _live(run_cli, *argv: str) -> List[Any]:
    result = run_cli(*argv, "--json", "--no-stacks")
    assert result.out, result.err
    return [jsonlib.loads(result.out), result.code]


def test_live_demo(validator, procs, run_cli) -> None:
    pids = scenario.start(procs)
    for pid in (pids.wrapper, pids.child):
        data, code = _live(run_cli, str(pid))
        _valid(validator, data)
        assert code == 1 and data["deadlock"] is True
        first = data["verdicts"][0]
        assert (first["class"], first["advice"]) == ("deadlock", "read-before-wait")
        assert first["cause"] == {"pid": pids.server, "tid": pids.server, "syscall": "wait4"}
        assert any(e["kind"] == "pipe" and e["writing"] and e["fill"] for e in first["ring"])
    data, code = _live(run_cli, "--all")
    _valid(validator, data)
    deadlocks = [set(v["members"]) for v in data["verdicts"] if v["class"] == "deadlock"]
    assert code == 1 and {pids.server, pids.child} in deadlocks  # other deadlocks on this host may come first


def test_live_nothing_blocked(validator, run_cli) -> None:
    data, code = _live(run_cli, str(os.getpid()))
    _valid(validator, data)
    assert code == 0 and data["deadlock"] is False
