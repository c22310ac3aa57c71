"""``wf rerun``: a new run that reuses what its origin did right and runs the rest, for real.

Every test runs the engine and its steps as processes; the task kit counts each execution, so
"never started again" is checked against what really ran, not against the log alone.
"""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path
from typing import Any

from pytest_wf import RunResult, TaskKit, WfHarness, dag, step, wait_until
from pytest_wf.equivalence import assert_replay_equivalent
from wf_engine.log.eventlog import encode_record


def _flow(tasks: TaskKit, b: list[str]) -> dict[str, Any]:
    """a -> b -> c, and d beside b (it needs only a)."""
    return dag(
        "flow",
        [
            step("a", tasks("ok")),
            step("b", b, ["a"]),
            step("c", tasks("ok"), ["b"]),
            step("d", tasks("ok"), ["a"]),
        ],
    )


def _failed(wf: WfHarness, tasks: TaskKit) -> RunResult:
    origin = wf.run(_flow(tasks, tasks("fail")))
    assert origin.returncode == 1, origin.stderr
    assert [origin.step_state(s) for s in "abcd"] == ["SUCCEEDED", "FAILED", "SKIPPED", "SUCCEEDED"]
    return origin


def _starts(tasks: TaskKit) -> dict[str, int]:
    return {label: tasks.starts(label) for label in "abcd"}


def test_fixing_a_step_reruns_only_it_and_its_dependents(wf: WfHarness, wf_tasks: TaskKit) -> None:
    origin = _failed(wf, wf_tasks)
    fixed = wf.workflow_file(_flow(wf_tasks, wf_tasks("ok")))
    rerun = wf.rerun(str(origin.run_id), workflow=fixed)
    assert rerun.returncode == 0, rerun.stderr
    assert _starts(wf_tasks) == {"a": 1, "b": 2, "c": 1, "d": 1}
    steps = rerun.steps
    assert {s: (steps[s]["reason"], steps[s]["attempts"]) for s in "ad"} == {
        "a": ("reused", 0),
        "d": ("reused", 0),
    }
    assert rerun.status is not None and rerun.status["rerun_of"] == origin.run_id
    opening = [r for r in rerun.events if r["batch"] == 1]
    assert [r["type"] for r in opening] == ["run_created", "runner_started", "step", "step"]
    assert opening[0]["origin_run_id"] == origin.run_id
    assert_replay_equivalent(wf, rerun)
    # Linked both ways, in status and list, text and JSON.
    assert wf.status(str(origin.run_id))["rerun_as"] == [rerun.run_id]
    listed = {row["run_id"]: row for row in json.loads(wf.cli("list", "--json").stdout)}
    assert listed[str(origin.run_id)]["rerun_as"] == [rerun.run_id]
    assert listed[str(rerun.run_id)]["rerun_of"] == origin.run_id
    assert f"rerun as {rerun.run_id}" in wf.cli("status", str(origin.run_id)).stdout
    assert f"(rerun of {origin.run_id})" in wf.cli("list").stdout


def test_ctrl_c_then_rerun_never_starts_a_succeeded_step_again(
    wf: WfHarness, wf_tasks: TaskKit, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    # b records its start, then waits for ``go`` (absent during the origin: Ctrl-C stops it).
    b = f"{shlex.join(wf_tasks('ok'))} && until test -e {shlex.quote(str(go))}; do sleep 0.05; done"
    running = wf.start(_flow(wf_tasks, ["sh", "-c", b]))
    running.wait_for_step("d", "SUCCEEDED")
    running.wait_for_step("b", "RUNNING")
    running.wait_for(
        lambda events: any(r["type"] == "spawned" and r["step"] == "b" for r in events)
    )
    running.signal(signal.SIGINT)
    origin = running.wait()
    assert origin.returncode == 3, origin.stderr
    assert f"next: wf --home {wf.home} rerun {origin.run_id}" in origin.stdout + origin.stderr
    go.touch()
    rerun = wf.rerun(running.run_id)
    assert rerun.returncode == 0, rerun.stderr
    assert wf_tasks.starts("a") == wf_tasks.starts("d") == 1
    assert wf_tasks.starts("c") == 1
    assert [rerun.steps[s]["reason"] for s in "ad"] == ["reused", "reused"]
    assert not [r for r in rerun.events if r["type"] == "spawned" and r["step"] in "ad"]


def test_from_reruns_a_step_and_everything_downstream(wf: WfHarness, wf_tasks: TaskKit) -> None:
    origin = wf.run(_flow(wf_tasks, wf_tasks("ok")))
    assert origin.returncode == 0
    rerun = wf.rerun(str(origin.run_id), from_steps=["b"])
    assert rerun.returncode == 0, rerun.stderr
    assert _starts(wf_tasks) == {"a": 1, "b": 2, "c": 2, "d": 1}


def test_only_runs_exactly_the_named_steps_or_names_what_is_missing(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    origin = _failed(wf, wf_tasks)
    refused = wf.cli("rerun", str(origin.run_id), "--only", "c")
    assert refused.returncode == 2
    assert "--only: a dependency would not have succeeded: c needs b" in refused.stderr
    assert "Traceback" not in refused.stderr
    fixed = wf.workflow_file(_flow(wf_tasks, wf_tasks("ok")))
    rerun = wf.rerun(str(origin.run_id), workflow=fixed, only=["b"])
    assert rerun.returncode == 0, rerun.stderr
    assert _starts(wf_tasks) == {"a": 1, "b": 2, "c": 0, "d": 1}
    assert (rerun.step_state("c"), rerun.steps["c"]["reason"]) == ("SKIPPED", "not_selected")
    assert_replay_equivalent(wf, rerun)


def test_dry_run_prints_the_plan_and_creates_nothing(wf: WfHarness, wf_tasks: TaskKit) -> None:
    origin = _failed(wf, wf_tasks)
    runs = sorted(p.name for p in (wf.home / "runs").iterdir())
    text = wf.cli("rerun", "@last", "--dry-run")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        f"rerun of {origin.run_id}: 2 reused, 2 to run",
        "  reuse  a  succeeded in the origin",
        "  run    b  failed in the origin",
        "  run    c  skipped in the origin",
        "  reuse  d  succeeded in the origin",
        "dry run: nothing was created",
    ]
    as_json = wf.cli("rerun", str(origin.run_id)[:-1], "--dry-run", "--json", "--from", "d")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "origin": origin.run_id,
        "steps": {
            "a": {"action": "reuse", "why": "succeeded in the origin"},
            "b": {"action": "run", "why": "failed in the origin"},
            "c": {"action": "run", "why": "skipped in the origin"},
            "d": {"action": "run", "why": "named by --from"},
        },
    }
    assert sorted(p.name for p in (wf.home / "runs").iterdir()) == runs
    assert _starts(wf_tasks) == {"a": 1, "b": 1, "c": 0, "d": 1}


def test_a_rerun_of_a_rerun_carries_over_from_both(wf: WfHarness, wf_tasks: TaskKit) -> None:
    def flow(b: list[str], c: list[str]) -> dict[str, Any]:
        return dag("chain", [step("a", wf_tasks("ok")), step("b", b, ["a"]), step("c", c, ["a"])])

    origin = wf.run(flow(wf_tasks("fail"), wf_tasks("fail")))
    first = wf.rerun(str(origin.run_id), workflow=flow(wf_tasks("ok"), wf_tasks("fail")))
    assert first.returncode == 1
    second = wf.rerun(str(first.run_id), workflow=flow(wf_tasks("ok"), wf_tasks("ok")))
    assert second.returncode == 0, second.stderr
    assert {s: wf_tasks.starts(s) for s in "abc"} == {"a": 1, "b": 2, "c": 3}
    assert [second.steps[s]["reason"] for s in "ab"] == ["reused", "reused"]
    middle = wf.status(str(first.run_id))
    assert (middle["rerun_of"], middle["rerun_as"]) == (origin.run_id, [second.run_id])
    assert_replay_equivalent(wf, second)


def test_a_succeeded_run_rerun_unchanged_executes_nothing(wf: WfHarness, wf_tasks: TaskKit) -> None:
    origin = wf.run(_flow(wf_tasks, wf_tasks("ok")))
    rerun = wf.rerun(str(origin.run_id))
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.state == "SUCCEEDED"
    assert _starts(wf_tasks) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert {entry["reason"] for entry in rerun.steps.values()} == {"reused"}
    assert [r["type"] for r in rerun.events][-1] == "run_finished"
    assert not [r for r in rerun.events if r["type"] == "spawned"]


def _reseal(path: Path, line: int, **changes: object) -> None:
    """Forge line ``line`` (1-based) of a log, with a valid checksum."""
    lines = path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[line - 1])
    del record["crc"]
    record.update(changes)
    lines[line - 1] = encode_record(record)
    path.write_bytes(b"".join(lines))


def test_verify_checks_each_reuse_against_the_origin(
    wf: WfHarness, wf_tasks: TaskKit, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flow = wf.workflow_file(_flow(wf_tasks, ["test", "-e", str(flag)]))
    flag.touch()
    origin = wf.run(flow)
    rerun = wf.rerun(str(origin.run_id), from_steps=["c"])
    assert wf.cli("replay", str(rerun.run_id), "--verify").returncode == 0
    # The same log claiming another origin of the same definition, where b failed: forged.
    flag.unlink()
    other = wf.run(flow)
    assert other.step_state("b") == "FAILED"
    _reseal(rerun.paths.events, 1, origin_run_id=other.run_id)
    forged = wf.cli("replay", str(rerun.run_id), "--verify")
    assert forged.returncode == 4
    assert (
        f"verify failed: step 'b' reused from {other.run_id}, but it did not succeed in the "
        "origin (failed in the origin)"
    ) in forged.stderr
    # An origin that is not in the store: the log's own facts are checked, and it says so.
    _reseal(rerun.paths.events, 1, origin_run_id="gone-1")
    alone = wf.cli("replay", str(rerun.run_id), "--verify")
    assert alone.returncode == 0, alone.stderr
    assert "origin gone-1 is not in" in alone.stderr


def test_refusals_are_exit_2_with_a_clear_message(wf: WfHarness, wf_tasks: TaskKit) -> None:
    origin = _failed(wf, wf_tasks)
    run_id = str(origin.run_id)
    cases = {
        ("rerun", run_id + "x"): "did you mean",
        ("rerun", run_id, "--from", "bb"): "--from: run " + run_id + " has no step 'bb'; did",
        ("rerun", run_id, "--only", "zz"): "--only: run " + run_id + " has no step 'zz'",
        ("rerun", run_id, "--run-id", run_id): "already exists",
        ("rerun", run_id, "--workflow", "missing.json"): "cannot read file",
        ("rerun", run_id, "--scheduler", "tcp://10.0.0.7:1"): "--executor dask",
    }
    for args, message in cases.items():
        done = wf.cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    running = wf.start(dag("busy", [step("hang", wf_tasks("hang"))]))
    running.wait_for_step("hang", "RUNNING")
    busy = wf.cli("rerun", running.run_id)
    assert busy.returncode == 2
    assert "is still RUNNING (its runner is alive)" in busy.stderr
    running.signal(signal.SIGTERM)
    assert running.wait().returncode == 3


def test_detach_runs_the_rerun_in_the_background(wf: WfHarness, wf_tasks: TaskKit) -> None:
    origin = _failed(wf, wf_tasks)
    flow = wf.workflow_file(_flow(wf_tasks, wf_tasks("ok")))
    done = wf.cli("rerun", str(origin.run_id), "--workflow", str(flow), "--detach")
    assert done.returncode == 0, done.stderr
    rerun = done.stdout.strip()
    watched = wf.cli("status", rerun, "--watch", timeout=120)  # follows it across the hand-over
    assert watched.returncode == 0, watched.stderr
    wait_until(lambda: wf.status(rerun)["state"] != "RUNNING", 120, "the detached rerun's end")
    status = wf.status(rerun)
    assert status["state"] == "SUCCEEDED" and status["rerun_of"] == origin.run_id
    assert _starts(wf_tasks) == {"a": 1, "b": 2, "c": 1, "d": 1}


def test_help_has_a_purpose_and_examples(wf: WfHarness) -> None:
    done = wf.cli("rerun", "--help")
    assert done.returncode == 0
    assert "Rerun RUN_ID as a new run" in done.stdout
    assert "Examples:" in done.stdout
