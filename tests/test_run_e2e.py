"""End-to-end: ``wf run`` through the real CLI, real processes and a real file system."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from pytest_wf import TaskKit, WfHarness, dag, process_alive, step, wait_until
from wf_engine.core import clock

REPO = Path(__file__).resolve().parent.parent


def _interval(result_events: list[dict], step_id: str) -> tuple[int, int]:
    """(RUNNING ts, end ts) of a step's last attempt, in microseconds."""
    start = end = 0
    for record in result_events:
        if record["type"] == "step" and record["step"] == step_id:
            if record["to"] == "RUNNING":
                start = clock.from_iso(record["ts"])
            elif record["from"] == "RUNNING":
                end = clock.from_iso(record["ts"])
    return start, end


def test_example_pipeline_runs_with_embed_and_classify_overlapping(wf: WfHarness) -> None:
    result = wf.run(REPO / "examples" / "image_pipeline" / "workflow.json", "--max-parallel", "4")
    assert result.returncode == 0, result.stderr
    assert result.state == "SUCCEEDED"
    assert {s["state"] for s in result.steps.values()} == {"SUCCEEDED"}
    embed, classify = _interval(result.events, "embed"), _interval(result.events, "classify")
    assert embed[0] < classify[1] and classify[0] < embed[1], "embed and classify did not overlap"
    report = REPO / "examples" / "image_pipeline" / "out" / str(result.run_id) / "report.html"
    assert report.exists()
    shutil.rmtree(report.parent)


def test_dependencies_run_in_order(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag(
        "order",
        [
            step("c", wf_tasks("ok"), ["b"]),
            step("b", wf_tasks("ok"), ["a"]),
            step("a", wf_tasks("ok")),
        ],
    )
    result = wf.run(workflow)
    assert result.returncode == 0
    starts = [r["label"] for r in wf_tasks.records() if r["event"] == "start"]
    assert starts == ["a", "b", "c"]
    ends = {r["label"]: r["time"] for r in wf_tasks.records() if r["event"] == "end"}
    begins = {r["label"]: r["time"] for r in wf_tasks.records() if r["event"] == "start"}
    assert ends["a"] <= begins["b"] and ends["b"] <= begins["c"]


def test_max_parallel_bounds_concurrency(wf: WfHarness, wf_tasks: TaskKit) -> None:
    steps = [step(f"s{i}", wf_tasks("sleep", "0.3")) for i in range(6)]
    result = wf.run(dag("wide", steps), "--max-parallel", "2")
    assert result.returncode == 0
    running = peak = 0
    for record in result.events:
        if record["type"] == "step" and record["to"] == "RUNNING":
            running += 1
            peak = max(peak, running)
        elif record["type"] == "step" and record["from"] == "RUNNING":
            running -= 1
    assert peak == 2
    # Definition order breaks ties: s0 and s1 start first.
    first_two = [r["step"] for r in result.events if r.get("to") == "RUNNING"][:2]
    assert first_two == ["s0", "s1"]


def test_independent_steps_run_concurrently(wf: WfHarness, wf_tasks: TaskKit) -> None:
    steps = [step(f"s{i}", wf_tasks("sleep", "0.5")) for i in range(3)]
    result = wf.run(dag("parallel", steps), "--max-parallel", "3")
    assert result.returncode == 0
    intervals = [_interval(result.events, f"s{i}") for i in range(3)]
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)


def test_retry_then_succeed(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag(
        "flaky",
        [step("flaky", wf_tasks("fail-first", "2"), retries=2, retry_backoff_sec=0.05)],
    )
    result = wf.run(workflow)
    assert result.returncode == 0
    flaky = result.steps["flaky"]
    assert flaky["duration_sec"] > 0
    assert flaky | {"started": None, "finished": None, "duration_sec": None} == {
        "state": "SUCCEEDED",
        "attempts": 3,
        "exit_code": 0,
        "reason": "exit",
        "started": None,
        "finished": None,
        "duration_sec": None,
        "error": None,
        "retry_at": None,
        "stderr_tail": None,
    }
    assert wf_tasks.starts("flaky") == 3
    failed = [r for r in result.events if r.get("to") == "FAILED"]
    assert [r["retry_delay_sec"] for r in failed] == [0.05, 0.1]


def test_exhausted_retries_skip_dependents_but_not_independent_branch(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    workflow = dag(
        "branches",
        [
            step("bad", wf_tasks("fail", "--code", "7"), retries=1, retry_backoff_sec=0.01),
            step("child", wf_tasks("ok"), ["bad"]),
            step("grandchild", wf_tasks("ok"), ["child"]),
            step("good", wf_tasks("sleep", "0.2")),
            step("good_child", wf_tasks("ok"), ["good"]),
        ],
    )
    result = wf.run(workflow)
    assert result.returncode == 1
    assert result.state == "FAILED"
    assert result.steps["bad"]["state"] == "FAILED"
    assert result.steps["bad"]["final"] is True
    assert result.steps["bad"]["exit_code"] == 7
    assert result.steps["bad"]["attempts"] == 2
    for skipped in ("child", "grandchild"):
        assert result.steps[skipped]["state"] == "SKIPPED"
        assert result.steps[skipped]["reason"] == "dependency_failed"
    assert result.step_state("good") == result.step_state("good_child") == "SUCCEEDED"
    assert wf_tasks.starts("child") == 0
    final = [r for r in result.events if r.get("to") == "FAILED" and r.get("final")]
    assert "stderr_tail" in final[0]


def test_backoff_doubles_while_another_branch_keeps_running(
    wf: WfHarness, wf_tasks: TaskKit
) -> None:
    workflow = dag(
        "backoff",
        [
            step("flaky", wf_tasks("fail-first", "3"), retries=3, retry_backoff_sec=0.2),
            # A chain of short steps on an independent branch, running during the backoffs.
            *[
                step(f"tick{i}", wf_tasks("sleep", "0.05"), [f"tick{i - 1}"] if i else [])
                for i in range(8)
            ],
        ],
    )
    result = wf.run(workflow, "--max-parallel", "2")
    assert result.returncode == 0
    events = result.events
    failures = [r for r in events if r.get("step") == "flaky" and r.get("to") == "FAILED"]
    assert [r["retry_delay_sec"] for r in failures] == [0.2, 0.4, 0.8]
    starts = [
        clock.from_iso(r["ts"])
        for r in events
        if r.get("step") == "flaky" and r.get("to") == "RUNNING"
    ]
    for failure, next_start in zip(failures, starts[1:], strict=True):
        waited = next_start - clock.from_iso(failure["ts"])
        assert waited >= clock.seconds_to_us(failure["retry_delay_sec"])
    # The other branch made progress while flaky waited: ticks finished inside the backoff window.
    window = (clock.from_iso(failures[0]["ts"]), starts[-1])
    ticks_done = [
        clock.from_iso(r["ts"])
        for r in events
        if r.get("step", "").startswith("tick") and r.get("to") == "SUCCEEDED"
    ]
    assert sum(window[0] < t < window[1] for t in ticks_done) >= 2


def test_timeout_kills_the_whole_process_group(
    wf: WfHarness, wf_tasks: TaskKit, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    workflow = dag(
        "timeout",
        [
            step(
                "hang",
                wf_tasks("hang-with-grandchild", "--pidfile", str(pidfile)),
                timeout_sec=1,
                kill_grace_sec=1,
            )
        ],
    )
    result = wf.run(workflow)
    assert result.returncode == 1
    assert result.steps["hang"]["state"] == "FAILED"
    assert result.steps["hang"]["reason"] == "timeout"
    grandchild = int(pidfile.read_text())
    wait_until(lambda: not process_alive(grandchild), 10, "grandchild to die")


def test_status_needs_nothing_but_the_log(wf: WfHarness, wf_tasks: TaskKit) -> None:
    workflow = dag("log_only", [step("a", wf_tasks("ok")), step("b", wf_tasks("fail"), ["a"])])
    result = wf.run(workflow)
    before = wf.cli("status", str(result.run_id), "--json").stdout
    replay_before = wf.cli("replay", str(result.run_id)).stdout
    for entry in os.scandir(result.paths.root):
        if entry.name != "events.jsonl":
            shutil.rmtree(entry.path) if entry.is_dir() else os.remove(entry.path)
    assert os.listdir(result.paths.root) == ["events.jsonl"]
    assert wf.cli("status", str(result.run_id), "--json").stdout == before
    assert wf.cli("replay", str(result.run_id)).stdout == replay_before


def test_step_env_and_cwd(wf: WfHarness, tmp_path: Path) -> None:
    (wf.workdir / "sub").mkdir()
    workflow = dag(
        "envcwd",
        [
            step(
                "show",
                'echo "$GREETING $WF_STEP_ID $WF_ATTEMPT $(basename "$PWD")"',
                env={"GREETING": "hello"},
                cwd="sub",
            )
        ],
    )
    result = wf.run(workflow)
    assert result.returncode == 0
    logs = wf.cli("logs", str(result.run_id), "show")
    assert logs.stdout == "hello show 1 sub\n"


def test_spawn_error_is_a_failed_attempt(wf: WfHarness) -> None:
    workflow = dag("spawn", [step("missing", ["/nonexistent/program"])])
    result = wf.run(workflow)
    assert result.returncode == 1
    assert result.steps["missing"]["reason"] == "spawn_error"


def test_sigint_exit_code_is_not_a_traceback(wf: WfHarness, wf_tasks: TaskKit) -> None:
    running = wf.start(dag("interrupt", [step("hang", wf_tasks("hang"), kill_grace_sec=1)]))
    running.wait_for_step("hang", "RUNNING")
    running.signal(signal.SIGINT)
    result = running.wait()
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert result.state == "CANCELLED"
