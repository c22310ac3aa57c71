"""Bad input never runs anything: exit 2, a message that says what and where, no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_wf import WfHarness, dag, step

OK = ["true"]

INVALID_WORKFLOWS: dict[str, tuple[str, str]] = {
    # name: (file content, text the error must contain)
    "syntax": ('{"workflow_id": "w", "steps": [', "line 1, column"),
    "trailing-garbage": ('{"workflow_id": "w", "steps": []} x', "invalid JSON"),
    "not-an-object": ("[1, 2]", "object"),
    "missing-workflow-id": (json.dumps({"steps": [step("a", OK)]}), "workflow_id"),
    "missing-steps": (json.dumps({"workflow_id": "w"}), "steps"),
    "empty-steps": (json.dumps({"workflow_id": "w", "steps": []}), "steps"),
    "unknown-top-field": (json.dumps(dag("w", [step("a", OK)], colour="red")), "colour"),
    "unknown-step-field": (json.dumps(dag("w", [step("a", OK, retry=1)])), "steps[0].retry"),
    "missing-command": (json.dumps(dag("w", [{"id": "a"}])), "steps[0]"),
    "empty-command": (json.dumps(dag("w", [step("a", "")])), "steps[0].command"),
    "command-list-of-ints": (json.dumps(dag("w", [step("a", [1, 2])])), "steps[0].command"),
    "retries-string": (json.dumps(dag("w", [step("a", OK, retries="3")])), "steps[0].retries"),
    "retries-bool": (json.dumps(dag("w", [step("a", OK, retries=True)])), "steps[0].retries"),
    "retries-negative": (json.dumps(dag("w", [step("a", OK, retries=-1)])), "steps[0].retries"),
    "timeout-zero": (json.dumps(dag("w", [step("a", OK, timeout_sec=0)])), "timeout_sec"),
    "env-not-strings": (json.dumps(dag("w", [step("a", OK, env={"A": 1})])), "steps[0].env"),
    "depends-not-list": (
        json.dumps(dag("w", [step("a", OK), {"id": "b", "command": "true", "depends_on": "a"}])),
        "steps[1].depends_on",
    ),
    "bad-step-id": (json.dumps(dag("w", [step("a b", OK)])), "steps[0].id"),
    "path-like-step-id": (json.dumps(dag("w", [step("../etc", OK)])), "steps[0].id"),
    "slash-step-id": (json.dumps(dag("w", [step("a/b", OK)])), "steps[0].id"),
    "dot-workflow-id": (json.dumps(dag(".hidden", [step("a", OK)])), "workflow_id"),
    "dash-step-id": (json.dumps(dag("w", [step("-rf", OK)])), "steps[0].id"),
    "long-id": (json.dumps(dag("w", [step("a" * 129, OK)])), "steps[0].id"),
    "duplicate-ids": (json.dumps(dag("w", [step("a", OK), step("a", OK)])), "duplicate"),
    "unknown-dependency": (
        json.dumps(dag("w", [step("a", OK, ["ghost"])])),
        "steps[0].depends_on[0]",
    ),
    "self-dependency": (json.dumps(dag("w", [step("a", OK, ["a"])])), "a -> a"),
    "cycle": (
        json.dumps(dag("w", [step("a", OK, ["c"]), step("b", OK, ["a"]), step("c", OK, ["b"])])),
        "a -> c -> b -> a",
    ),
    "max-parallel-zero": (json.dumps(dag("w", [step("a", OK)], max_parallel=0)), "max_parallel"),
    "bad-defaults": (
        json.dumps(dag("w", [step("a", OK)], defaults={"retries": "x"})),
        "defaults.retries",
    ),
}


@pytest.mark.parametrize("name", sorted(INVALID_WORKFLOWS))
def test_invalid_workflow_is_rejected_before_anything_runs(wf: WfHarness, name: str) -> None:
    content, expected = INVALID_WORKFLOWS[name]
    path = wf.workdir / f"{name}.json"
    path.write_text(content)
    for command in (["validate", str(path)], ["run", str(path)]):
        done = wf.cli(*command)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert expected in done.stderr, done.stderr
        assert str(path) in done.stderr or name in done.stderr
    assert not (Path(wf.home) / "runs").exists() or os.listdir(Path(wf.home) / "runs") == []


def test_every_problem_is_reported_at_once(wf: WfHarness) -> None:
    bad = dag(
        "w",
        [step("a", OK, retries=-1), step("b", OK, ["ghost"]), step("b", OK, timeout_sec="x")],
    )
    path = wf.workdir / "many.json"
    path.write_text(json.dumps(bad))
    done = wf.cli("validate", str(path))
    assert done.returncode == 2
    for fragment in (
        "steps[0].retries",
        "steps[1].depends_on[0]",
        "steps[2].id",
        "steps[2].timeout_sec",
    ):
        assert fragment in done.stderr


def test_missing_file_and_directory(wf: WfHarness) -> None:
    for target in (str(wf.workdir / "nope.json"), str(wf.workdir)):
        done = wf.cli("run", target)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert "cannot read" in done.stderr


@pytest.mark.parametrize("run_id", ["../escape", "a/b", ".hidden", "-x", "", "a" * 129, "sp ace"])
def test_path_like_run_ids_are_rejected(wf: WfHarness, run_id: str) -> None:
    path = wf.workflow_file(dag("w", [step("a", OK)]))
    for command in (
        ["run", path, "--run-id", run_id],
        ["status", run_id],
        ["replay", run_id],
        ["cancel", run_id],
        ["resume", run_id],
    ):
        done = wf.cli(*command)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (Path(wf.home).parent / "escape").exists()


def test_unknown_run_is_a_usage_error(wf: WfHarness) -> None:
    for command in (["status", "nope"], ["replay", "nope"], ["logs", "nope", "a"]):
        done = wf.cli(*command)
        assert done.returncode == 2
        assert "no run 'nope'" in done.stderr


def test_valid_workflow_validates(wf: WfHarness) -> None:
    path = wf.workflow_file(dag("w", [step("a", OK), step("b", "echo hi", ["a"])]))
    done = wf.cli("validate", path)
    assert done.returncode == 0
    assert "valid (2 steps)" in done.stdout


def test_bad_cli_usage_exits_2(wf: WfHarness) -> None:
    path = wf.workflow_file(dag("w", [step("a", OK)]))
    for command in (["run", path, "--max-parallel", "0"], ["bogus"], ["resume"], ["status"]):
        done = wf.cli(*command)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
