"""The crash matrix as a user's suite sees it: the whole run by default, narrowing reported,
failures that name the step, ids that ``-k`` and ``--lf`` select, bad values refused.

Each test writes a small user test module and runs pytest on it in a subprocess (the plugin
loads through its real entry point; the engines it kills are never this process's children).
Workflows are a few ``true`` steps, so a whole matrix takes seconds.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent

HEADER = """
import pytest

from pytest_wf import dag, step

MARK = '"$WF_RUN_DIR/deployed"'
# deploy is not idempotent: it fails when it finds the mark of an earlier execution.
DEPLOY = f"test ! -e {MARK} && touch {MARK}"
LATE = dag("late", [step("build", ["true"]), step("deploy", DEPLOY, ["build"])])  # 11 records
TWO = dag("two", [step("fetch", ["true"]), step("build", ["true"], ["fetch"])])  # 11 records
"""


@pytest.fixture(autouse=True)
def _checkout_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest and ``wf`` processes started here run this checkout's code."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )


def user_tests(pytester: pytest.Pytester, body: str, name: str = "test_user") -> Path:
    return pytester.makepyfile(**{name: textwrap.dedent(HEADER) + textwrap.dedent(body)})


def run(pytester: pytest.Pytester, *args: str, cache: bool = False) -> pytest.RunResult:
    plugins = () if cache else ("-p", "no:cacheprovider")
    return pytester.runpytest_subprocess(*plugins, *args, timeout=300)


def collect(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``--collect-only -q`` in this process: collection runs no engine but the reference's."""
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q", *args)


def coverage(result: pytest.RunResult) -> list[str]:
    """The lines of the terminal summary's crash matrix section."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "wf crash matrix coverage" in line)
    section = []
    for line in lines[start + 1 :]:
        if line.startswith("="):
            break
        section.append(line)
    return section


# -- the whole run, every way, by default ------------------------------------------------------


def test_the_default_matrix_catches_a_late_non_idempotent_step(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(workflow=LATE)
        def test_deploy(wf_resume_equivalent, wf_crash_point):
            wf_resume_equivalent(wf_crash_point)
        """,
    )
    result = run(pytester, "-rf", "--wf-crash-jobs", "2")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1 and outcomes.get("passed", 0) >= 30, outcomes
    # The points that catch it: deploy had finished, its SUCCEEDED never became durable.
    failed = set(re.findall(r"FAILED \S+::test_deploy\[(\w+-\d+)\]", result.stdout.str()))
    assert any(point.startswith("before_write-") for point in failed), failed
    result.stdout.fnmatch_lines(
        [
            "*step 'deploy' ran twice (the uncrashed run: once): the crash interrupted it and "
            "resume ran it again, and then it ended FAILED instead of SUCCEEDED*",
        ]
    )
    assert coverage(result) == [
        "test_user.py::test_deploy: all 44 crash points checked, "
        + re.search(r"\d+ by reuse", result.stdout.str()).group(0)  # type: ignore[union-attr]
        + " (11 records x before_write, before_sync, after_sync, power_loss)"
    ]


def test_the_default_matrix_reaches_the_last_record_of_a_long_run(
    pytester: pytest.Pytester,
) -> None:
    """The run of the issue: 9 steps, 39 records; the old default stopped at record 30."""
    user_tests(
        pytester,
        """
        CHAIN = [step(f"s{i}", ["true"], [f"s{i - 1}"] if i > 1 else []) for i in range(1, 9)]
        NINE = dag("nine", [*CHAIN, step("deploy", DEPLOY, ["s8"])])

        @pytest.mark.wf_crash_matrix(workflow=NINE)
        def test_nine(wf_resume_equivalent, wf_crash_point):
            wf_resume_equivalent(wf_crash_point)
        """,
    )
    collected = collect(pytester)
    collected.stdout.fnmatch_lines(["156 tests collected*"])  # 39 records x 4 points
    for point in ("before_write", "before_sync", "after_sync", "power_loss"):
        collected.stdout.fnmatch_lines([f"*::test_nine?{point}-39?"])
    # Records 30-39 alone: deploy's are the last ones, and they catch it.
    late = run(pytester, "-q", "-k", "before_write-3 and not before_write-3]")
    assert late.parseoutcomes().get("failed", 0) >= 1
    late.stdout.fnmatch_lines(["*step 'deploy' ran twice*"])


def test_a_marker_without_a_workflow_must_narrow_on_purpose(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix
        def test_unsized(wf_resume_equivalent, wf_crash_point):
            pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*name the workflow (wf_crash_matrix(workflow=...)) so the matrix can cover every*"]
    )
    assert (
        "4 tests collected"
        in run(pytester, "--collect-only", "-q", "--wf-crash-depth=1").stdout.str()
    )


def test_narrowing_is_reported_in_the_summary(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(workflow=TWO, points=("after_sync", "before_write"))
        def test_two(wf_resume_equivalent, wf_crash_point):
            assert wf_resume_equivalent(wf_crash_point).resumed.state in ("SUCCEEDED", None)
        """,
    )
    result = run(pytester, "--wf-crash-depth", "3")
    result.assert_outcomes(passed=6)
    [line] = coverage(result)
    assert line.startswith("test_user.py::test_two: 6 of 44 crash points checked")
    assert (
        "38 left unchecked: before_write at records 4-11; before_sync at every record; "
        "after_sync at records 4-11; power_loss at every record"
    ) in line
    assert "(the marker's points; --wf-crash-depth 3)" in line


def test_a_sample_is_drawn_by_seed_and_reported(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(workflow=TWO)
        def test_two(wf_resume_equivalent, wf_crash_point):
            wf_resume_equivalent(wf_crash_point)
        """,
    )

    def ids(*args: str) -> list[str]:
        listed = collect(pytester, "--wf-crash-sample", "5", *args)
        return [line for line in listed.stdout.lines if "::test_two[" in line]

    first, again, other = ids(), ids(), ids("--wf-crash-seed", "7")
    assert len(first) == 5 and first == again and other != first
    result = run(pytester, "--wf-crash-sample", "3")
    result.assert_outcomes(passed=3)
    [line] = coverage(result)
    assert "3 of 44 crash points checked" in line and "a sample of 3, --wf-crash-seed 0" in line


# -- failures that point at the cause, and ids to select them by ------------------------------


def test_crash_point_ids_select_with_k_and_lf_and_reuse_is_said(
    pytester: pytest.Pytester,
) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(workflow=LATE, points=("before_write",))
        def test_deploy(wf, wf_resume_equivalent, wf_crash_point):
            outcome = wf_resume_equivalent(wf_crash_point)
            if outcome.resumed.status is not None:
                # the runs are in this test's home, whichever test ran them
                assert wf.status(outcome.resumed.run_id)["state"] == outcome.resumed.state
        """,
    )
    first = run(pytester, "-q", "-rf", cache=True)
    failed = re.findall(r"FAILED (\S+::test_deploy\[before_write-\d+\])", first.stdout.str())
    assert failed, first.stdout.str()
    assert re.search(r"\d+ by reuse", first.stdout.str())
    if len(failed) > 1:  # deploy's SUCCEEDED shares its commit batch with other records
        first.stdout.fnmatch_lines(["*is the crash at seq *: records *-* share one commit batch*"])
    again = run(pytester, "-q", "--lf", "-rf", cache=True)
    assert sorted(re.findall(r"FAILED (\S+\])", again.stdout.str())) == sorted(failed)
    again.assert_outcomes(failed=len(failed))
    one = failed[-1].split("[", 1)[1]  # e.g. "before_write-10]": the bracket makes it exact
    alone = run(pytester, "-q", "-k", one, "--wf-crash-reuse", "none")
    alone.assert_outcomes(failed=1)
    assert "by reuse" not in alone.stdout.str()


def test_the_shorthand_needs_a_marker_that_names_the_workflow(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(depth=1, points=("after_sync",))
        def test_short(wf_resume_equivalent, wf_crash_point):
            wf_resume_equivalent(wf_crash_point)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wf_resume_equivalent(crash_point) needs a wf_crash_matrix*"])


# -- invalid values are usage errors ------------------------------------------------------------

BAD_OPTIONS = [
    (("--wf-crash-depth", "0"), "--wf-crash-depth: must be 1 or more, not 0"),
    (("--wf-crash-depth", "-2"), "--wf-crash-depth: must be 1 or more, not -2"),
    (("--wf-crash-depth", "deep"), "--wf-crash-depth: not an integer: 'deep'"),
    (("--wf-crash-points", ","), "--wf-crash-points: give at least one crash point"),
    (("--wf-crash-points", "nowhere"), "--wf-crash-points: unknown crash point(s) nowhere"),
    (("--wf-crash-sample", "0"), "--wf-crash-sample: must be 1 or more, not 0"),
    (("--wf-crash-seed", "x"), "--wf-crash-seed: not an integer: 'x'"),
    (("--wf-crash-jobs", "0"), "--wf-crash-jobs: must be 1 or more, not 0"),
    (("--wf-crash-reuse", "some"), "--wf-crash-reuse: invalid choice: 'some'"),
    (("--wf-launch", "spawn"), "--wf-launch: invalid choice: 'spawn'"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS]
)
def test_invalid_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, str], message: str
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_inprocess(*args)  # refused while parsing: nothing runs
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


BAD_MARKERS = {
    "depth=0": "depth must be an integer >= 1, not 0",
    "depth='3'": "depth must be an integer >= 1, not '3'",
    "depth=True": "depth must be an integer >= 1, not True",
    "sample=-1": "sample must be an integer >= 1, not -1",
    "points=()": "give at least one crash point",
    "workflow=TWO, options='--fail-fast'": "options must be a tuple of strings",
    "workflow=TWO, env={'A': 1}": "env must map names to strings",
    "workflow=TWO, dpeth=3": "unknown wf_crash_matrix argument(s) dpeth",
}


def test_invalid_marker_values_are_refused(pytester: pytest.Pytester) -> None:
    for number, marker in enumerate(BAD_MARKERS):
        body = f"""
        @pytest.mark.wf_crash_matrix({marker})
        def test_bad(wf_resume_equivalent, wf_crash_point):
            pass
        """
        user_tests(pytester, body, name=f"test_bad_{number}")
    result = run(pytester)
    result.assert_outcomes(errors=len(BAD_MARKERS))
    for message in BAD_MARKERS.values():
        assert message in result.stdout.str(), message
