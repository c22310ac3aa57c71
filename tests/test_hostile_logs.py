"""Hostile run stores: every reader refuses a bad log cleanly, and one bad run breaks no other.

A line whose checksum holds was written as it is, so a record with a member missing or of the
wrong JSON type (hand-written, or forged with a valid ``crc``) is corruption: every command
(``status``, ``status --json``, ``replay``, ``replay --verify``, ``resume``, ``cancel``, ``list``,
``list --json``) exits 4 with ``<path>: line <N>: corrupt event log: <what>``, never a
traceback, and leaves the file byte for byte as it was. Something else than a regular file in
place of ``events.jsonl`` (a directory, a FIFO, a symbolic link) is refused at once, never waited
on; ``wf list`` and ``wf resume --all`` report such a run as UNREADABLE and go on with the others.

The logs are real: two runs are made once per module through the CLI (one that retries, fails,
skips and cannot spawn a step; one cancelled with ``--grace``), and each test damages a copy.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pytest_wf import TaskKit, WfHarness, dag, step
from wf_engine.cli import cli
from wf_engine.cli import readers as cli_readers
from wf_engine.cli import resume as cli_resume
from wf_engine.log.eventlog import encode_record
from wf_engine.runtime.store import RunPaths, RunStore

Record = dict[str, Any]
#: How long a command may take before the test calls it a hang (a refusal takes well under 1 s).
HANG_TIMEOUT = 30
MIXED, CANCELLED = "mixed", "cancelled"
#: ``wf resume`` and ``wf cancel`` on a good copy would run steps: only refusals are tested here.
COMMANDS = (
    ("status",),
    ("status", "--json"),
    ("replay",),
    ("replay", "--verify"),
    ("resume",),
    ("cancel",),
)
LIST_COMMANDS = (("list",), ("list", "--json"))


# -- the template runs, made once -----------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run store holding the MIXED and CANCELLED runs, both finished."""
    root = tmp_path_factory.mktemp("hostile-template")
    (root / "work").mkdir()
    harness = WfHarness(root / "home", root / "work")
    tasks = TaskKit(root / "task-records.jsonl")
    mixed = dag(
        "mixed",
        [
            step("a", tasks("ok")),
            step("flaky", tasks("fail-first", "1"), ["a"], retries=1, retry_backoff_sec=0.01),
            step("bad", tasks("fail", "--code", "3"), ["a"]),
            step("after", tasks("ok"), ["bad"]),
            step("ghost", ["/nonexistent/wf-hostile-prog"]),
        ],
    )
    assert harness.run(mixed, "--max-parallel", "1", run_id=MIXED).returncode == 1
    running = harness.start(dag("cancelled", [step("slow", tasks("hang"))]), run_id=CANCELLED)
    try:
        running.wait_for(lambda events: any(r["type"] == "spawned" for r in events))
        assert harness.cancel(CANCELLED, "--grace", "1").state == "CANCELLED"
        running.wait()
    finally:
        running.close()
    return root / "home"


def template_records(template: Path, run_id: str) -> list[Record]:
    lines = (template / "runs" / run_id / "events.jsonl").read_bytes().splitlines()
    return [json.loads(line) for line in lines]


def copy_run(template: Path, home: Path, run_id: str) -> Path:
    """A copy of a template run in ``home``; returns its ``events.jsonl``."""
    shutil.copytree(template / "runs" / run_id, home / "runs" / run_id)
    return home / "runs" / run_id / "events.jsonl"


# -- forging lines with a valid checksum ----------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A literal written into the line as is: what ``json.dumps`` will not write (``1e400``)."""

    text: str


def listed(listing: str, run_id: str, *columns: str) -> bool:
    """Whether `wf list` has a row for `run_id` whose next columns start with `columns`."""
    for row in listing.splitlines():
        rest = row
        for column in (run_id, *columns):
            if not rest.startswith(column):
                break
            rest = rest[len(column) :].lstrip()
        else:
            return True
    return False


def seal(record: Record) -> bytes:
    """``record`` as a line with a *valid* checksum, whatever it holds."""
    body = {key: value for key, value in record.items() if key != "crc"}
    raws = {key: value.text for key, value in body.items() if isinstance(value, Raw)}
    if not raws:
        return encode_record(body)
    marked = {key: f"@raw:{key}@" if key in raws else value for key, value in body.items()}
    text = json.dumps(marked, ensure_ascii=False, separators=(",", ":"))
    for key, literal in raws.items():
        text = text.replace(json.dumps(f"@raw:{key}@"), literal)
    line = text.encode()
    return line[:-1] + b',"crc":"%08x"}\n' % zlib.crc32(line)


# -- the table of bad records ---------------------------------------------------------------------

Select = Callable[[Record], bool]
Change = Callable[[Record], None]


@dataclass(frozen=True)
class Mutation:
    """Change the first record of ``run`` that ``select`` picks; readers must refuse its line."""

    run: str
    select: Select
    change: Change
    #: What the message must say besides the file and the line.
    says: str = ""


def kind(name: str, **fields: Any) -> Select:
    return lambda r: r["type"] == name and all(r.get(k) == v for k, v in fields.items())


def has(name: str, member: str) -> Select:
    return lambda r: r["type"] == name and member in r


def drop(member: str) -> Change:
    return lambda r: r.pop(member)


def put(member: str, value: Any) -> Change:
    return lambda r: r.update({member: value})


def put_option(member: str, value: Any) -> Change:
    return lambda r: r["options"].update({member: value})


def drop_option(member: str) -> Change:
    return lambda r: r["options"].pop(member)


CREATED = kind("run_created")
STARTED = kind("runner_started")
TO_RUNNING = kind("step", to="RUNNING")
SUCCEEDED = kind("step", to="SUCCEEDED")
RETRYING = has("step", "retry_at")
FINAL = has("step", "final")
SPAWN_ERROR = has("step", "error")
STDERR = has("step", "stderr_tail")
SPAWNED = kind("spawned")
CANCEL = kind("cancel_requested")
FINISHED = kind("run_finished")


def m(select: Select, change: Change, says: str = "", run: str = MIXED) -> Mutation:
    return Mutation(run, select, change, says)


MUTATIONS: dict[str, Mutation] = {
    # the envelope's ts, read by status, replay and --verify
    "ts-missing": m(CREATED, drop("ts"), "'ts'"),
    "ts-not-a-time": m(TO_RUNNING, put("ts", "yesterday"), "'ts'"),
    "ts-number": m(SPAWNED, put("ts", 1767225600), "'ts'"),
    "ts-year-9999": m(RETRYING, put("ts", "9999-12-31T23:59:59.999999Z"), "'ts'"),
    # run_created
    "run_id-missing": m(CREATED, drop("run_id"), "'run_id' missing"),
    "run_id-number": m(CREATED, put("run_id", 7), "'run_id'"),
    "workflow-missing": m(CREATED, drop("workflow"), "'workflow' missing"),
    "workflow-list": m(CREATED, put("workflow", []), "'workflow'"),
    "workflow-bad-steps": m(
        CREATED, put("workflow", {"workflow_id": 3, "steps": "x"}), "workflow: workflow_id"
    ),
    "options-missing": m(CREATED, drop("options"), "'options' missing"),
    "options-text": m(CREATED, put("options", "fast"), "'options'"),
    "max_parallel-text": m(CREATED, put_option("max_parallel", "2"), "'options.max_parallel'"),
    "max_parallel-zero": m(CREATED, put_option("max_parallel", 0), "'options.max_parallel'"),
    "max_parallel-bool": m(CREATED, put_option("max_parallel", True), "'options.max_parallel'"),
    "fail_fast-text": m(CREATED, put_option("fail_fast", "no"), "'options.fail_fast'"),
    "base_dir-missing": m(CREATED, drop_option("base_dir"), "'options.base_dir' missing"),
    "base_dir-null": m(CREATED, put_option("base_dir", None), "'options.base_dir'"),
    "executor-number": m(CREATED, put_option("executor", 5), "'options.executor'"),
    "scheduler-null": m(CREATED, put_option("scheduler", None), "'options.scheduler'"),
    # runner_started
    "runner-pid-missing": m(STARTED, drop("pid"), "'pid' missing"),
    "runner-pid-text": m(STARTED, put("pid", "123"), "'pid'"),
    "runner-pid-bool": m(STARTED, put("pid", True), "'pid'"),
    "argv-text": m(STARTED, put("argv", "wf run"), "'argv'"),
    "argv-numbers": m(STARTED, put("argv", [1, 2]), "'argv'"),
    # step
    "step-missing": m(TO_RUNNING, drop("step"), "'step' missing"),
    "step-number": m(TO_RUNNING, put("step", 5), "'step'"),
    "from-missing": m(TO_RUNNING, drop("from"), "'from' missing"),
    "to-null": m(TO_RUNNING, put("to", None), "'to'"),
    "to-unknown": m(TO_RUNNING, put("to", "DONE"), "unknown state"),
    "attempt-missing": m(TO_RUNNING, drop("attempt"), "'attempt' missing"),
    "attempt-text": m(TO_RUNNING, put("attempt", "1"), "'attempt'"),
    "attempt-negative": m(TO_RUNNING, put("attempt", -1), "'attempt'"),
    "attempt-bool": m(TO_RUNNING, put("attempt", True), "'attempt'"),
    "attempt-float": m(TO_RUNNING, put("attempt", 1.0), "'attempt'"),
    "exit_code-list": m(SUCCEEDED, put("exit_code", [0]), "'exit_code'"),
    "exit_code-text": m(SUCCEEDED, put("exit_code", "0"), "'exit_code'"),
    "exit_code-bool": m(FINAL, put("exit_code", False), "'exit_code'"),
    "reason-number": m(SUCCEEDED, put("reason", 7), "'reason'"),
    "retry_delay-text": m(RETRYING, put("retry_delay_sec", "0.01"), "'retry_delay_sec'"),
    "retry_delay-huge": m(RETRYING, put("retry_delay_sec", Raw("1e400")), "'retry_delay_sec'"),
    "retry_at-missing": m(RETRYING, drop("retry_at"), "retry_at"),
    "retry_at-not-a-time": m(RETRYING, put("retry_at", "soon"), "'retry_at'"),
    "retry_at-number": m(RETRYING, put("retry_at", 5), "'retry_at'"),
    "final-text": m(FINAL, put("final", "yes"), "'final'"),
    "final-number": m(FINAL, put("final", 1), "'final'"),
    "stderr_tail-number": m(STDERR, put("stderr_tail", 5), "'stderr_tail'"),
    "error-list": m(SPAWN_ERROR, put("error", []), "'error'"),
    # spawned
    "spawned-pid-zero": m(SPAWNED, put("pid", 0), "'pid'"),
    "spawned-pid-negative": m(SPAWNED, put("pid", -1), "'pid'"),
    "spawned-pid-text": m(SPAWNED, put("pid", "1"), "'pid'"),
    "spawned-pid-huge": m(SPAWNED, put("pid", 2**40), "'pid'"),
    "spawned-pgid-missing": m(SPAWNED, drop("pgid"), "'pgid' missing"),
    "spawned-pgid-null": m(SPAWNED, put("pgid", None), "'pgid'"),
    "spawned-start_id-number": m(SPAWNED, put("start_id", 5), "'start_id'"),
    "spawned-attempt-text": m(SPAWNED, put("attempt", "1"), "'attempt'"),
    "spawned-step-null": m(SPAWNED, put("step", None), "'step'"),
    # cancel_requested
    "source-number": m(CANCEL, put("source", 5), "'source'", run=CANCELLED),
    "cancel-pid-text": m(CANCEL, put("pid", "1"), "'pid'", run=CANCELLED),
    "grace-text": m(CANCEL, put("grace_sec", "2"), "'grace_sec'", run=CANCELLED),
    "grace-negative": m(CANCEL, put("grace_sec", -1), "'grace_sec'", run=CANCELLED),
    "grace-huge": m(CANCEL, put("grace_sec", Raw("1e400")), "'grace_sec'", run=CANCELLED),
    "grace-nan": m(CANCEL, put("grace_sec", Raw("NaN")), "not valid JSON", run=CANCELLED),
    # any record: JSON nested deeper than Python's parser goes (it raises RecursionError)
    "nested-too-deep": m(
        SPAWNED, put("note", Raw("[" * 100_000 + "]" * 100_000)), "not valid JSON"
    ),
    # run_finished
    "state-missing": m(FINISHED, drop("state"), "'state' missing"),
    "state-number": m(FINISHED, put("state", 1), "'state'"),
    "state-unknown": m(FINISHED, put("state", "DONE"), "DONE"),
    # legal shapes, illegal meaning: the fold refuses them, naming the file and line too
    "illegal-transition": m(SUCCEEDED, put("to", "SKIPPED"), "illegal transition"),
    "unknown-type": m(SPAWNED, put("type", "bogus"), "unknown record type"),
}


def damage(template: Path, home: Path, mutation: Mutation) -> tuple[Path, int]:
    """A copy of the mutation's run in ``home`` with the record changed; its path and line."""
    events = copy_run(template, home, mutation.run)
    records = template_records(template, mutation.run)
    lines = events.read_bytes().splitlines(keepends=True)
    index = next(i for i, r in enumerate(records) if mutation.select(r))
    mutation.change(records[index])
    lines[index] = seal(records[index])
    events.write_bytes(b"".join(lines))
    return events, index + 1


def test_the_table_covers_every_record_type(template: Path) -> None:
    """Each mutation picks a record in its run: a template change cannot empty the table."""
    for name, mutation in MUTATIONS.items():
        assert any(map(mutation.select, template_records(template, mutation.run))), name
    kinds = {r["type"] for run in (MIXED, CANCELLED) for r in template_records(template, run)}
    assert kinds == {"run_created", "runner_started", "step", "spawned"} | {
        "cancel_requested",
        "run_finished",
    }


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_every_command_refuses_a_bad_record_naming_file_and_line(
    wf: WfHarness, template: Path, name: str
) -> None:
    mutation = MUTATIONS[name]
    events, line = damage(template, Path(wf.home), mutation)
    before = events.read_bytes()
    where = f"{events}: line {line}: corrupt event log: "
    for command in COMMANDS:
        done = wf.cli(command[0], mutation.run, *command[1:], timeout=HANG_TIMEOUT)
        assert done.returncode == 4, (command, done.stderr)
        assert where in done.stderr and mutation.says in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
    for command in LIST_COMMANDS:
        done = wf.cli(*command, timeout=HANG_TIMEOUT)
        assert done.returncode == 4, (command, done.stderr)
        assert listed(done.stdout, mutation.run, "UNREADABLE") or '"UNREADABLE"' in done.stdout
        assert where in done.stdout.replace("\\\\", "\\"), (command, done.stdout)
        assert "Traceback" not in done.stderr
    header, *rows = wf.cli("list").stdout.splitlines()
    assert header.split()[:2] == ["RUN", "STATE"]
    assert len(rows) == 1  # one line per run, whatever the reason
    assert events.read_bytes() == before


# -- not a regular file ---------------------------------------------------------------------------


def make_directory(events: Path) -> None:
    events.mkdir()


def make_fifo(events: Path) -> None:
    os.mkfifo(events)


def make_symlink(events: Path) -> None:
    """A link to a perfectly good log: still not followed (it could point anywhere)."""
    target = events.with_name("elsewhere.jsonl")
    target.write_bytes(events.with_name("events.jsonl.orig").read_bytes())
    events.symlink_to(target)


def make_socket(events: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(events))


REPLACEMENTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "directory": (make_directory, "a directory"),
    "fifo": (make_fifo, "a FIFO"),
    "symlink": (make_symlink, "a symbolic link"),
    "socket": (make_socket, "a socket"),
}


def replace_log(template: Path, home: Path, run_id: str, how: str) -> Path:
    events = copy_run(template, home, run_id)
    events.rename(events.with_name("events.jsonl.orig"))
    REPLACEMENTS[how][0](events)
    return events


@pytest.mark.parametrize("how", list(REPLACEMENTS))
def test_a_log_that_is_not_a_regular_file_is_refused_at_once(
    wf: WfHarness, template: Path, how: str
) -> None:
    copy_run(template, Path(wf.home), CANCELLED)  # a healthy run beside the broken one
    events = replace_log(template, Path(wf.home), MIXED, how)
    message = f"{events}: not a regular file ({REPLACEMENTS[how][1]})"
    for command in (*COMMANDS, ("logs", "a"), ("graph",)):
        done = wf.cli(command[0], MIXED, *command[1:], timeout=HANG_TIMEOUT)
        assert done.returncode == 4, (command, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (command, done.stderr)
    listing = wf.cli("list", "--json", timeout=HANG_TIMEOUT)
    assert listing.returncode == 4, listing.stderr
    rows = {row["run_id"]: row for row in json.loads(listing.stdout)}
    assert rows[CANCELLED]["state"] == "CANCELLED"
    assert rows[MIXED]["state"] == "UNREADABLE" and message in rows[MIXED]["error"]
    plain = wf.cli("list", timeout=HANG_TIMEOUT)
    assert plain.returncode == 4
    assert listed(plain.stdout, CANCELLED, "CANCELLED")
    assert listed(plain.stdout, MIXED, "UNREADABLE", message)


def test_a_dangling_symlink_is_listed_as_unreadable(wf: WfHarness, template: Path) -> None:
    copy_run(template, Path(wf.home), CANCELLED)
    events = copy_run(template, Path(wf.home), MIXED)
    events.unlink()
    events.symlink_to(events.with_name("nowhere"))
    listing = wf.cli("list", "--json", timeout=HANG_TIMEOUT)
    assert listing.returncode == 4
    states = {row["run_id"]: row["state"] for row in json.loads(listing.stdout)}
    assert states == {CANCELLED: "CANCELLED", MIXED: "UNREADABLE"}


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args])


@pytest.mark.parametrize("command", [("list", "--json"), ("resume", "--all")])
def test_an_os_error_on_one_run_spares_the_others(
    wf_home: Path, template: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    copy_run(template, wf_home, CANCELLED)
    events = copy_run(template, wf_home, MIXED)
    module = cli_readers if command[0] == "list" else cli_resume
    real = module.read_run

    def read_run(paths: RunPaths, *args: Any, **kwargs: Any) -> Any:
        if paths.events == str(events):
            raise PermissionError(errno.EACCES, "Permission denied", paths.events)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(module, "read_run", read_run)
    done = invoke(wf_home, *command)
    assert done.exit_code == 4, done.output
    if command[0] == "list":
        rows = {row["run_id"]: row for row in json.loads(done.stdout)}
        assert rows[CANCELLED]["state"] == "CANCELLED"
        assert rows[MIXED] == {
            "run_id": MIXED,
            "state": "UNREADABLE",
            "error": f"{events}: Permission denied",
        }
    else:
        assert f"{MIXED}: UNREADABLE: {events}: Permission denied" in done.stderr


# -- wf resume --all ------------------------------------------------------------------------------


@pytest.fixture
def interrupted(wf: WfHarness, wf_tasks: TaskKit) -> Iterator[str]:
    """A healthy run whose runner was killed after a durable batch: ``wf resume`` finishes it."""
    workflow = dag("interrupted", [step("a", wf_tasks("ok")), step("b", wf_tasks("ok"), ["a"])])
    crashed = wf.crash(workflow, 4, "after_sync")
    assert crashed.returncode != 0 and crashed.run_id is not None
    yield crashed.run_id


@pytest.mark.parametrize("broken", ["fifo", "directory", "bad-record"])
def test_resume_all_resumes_the_healthy_runs_beside_a_broken_one(
    wf: WfHarness, template: Path, interrupted: str, broken: str
) -> None:
    if broken == "bad-record":
        events, _ = damage(template, Path(wf.home), MUTATIONS["attempt-text"])
    else:
        events = replace_log(template, Path(wf.home), MIXED, broken)
    done = wf.cli("resume", "--all", timeout=120)
    assert done.returncode == 4, done.stderr
    assert f"{MIXED}: UNREADABLE: {events}: " in done.stderr
    assert "Traceback" not in done.stderr
    assert wf.status(interrupted)["state"] == "SUCCEEDED"


# -- files never change ---------------------------------------------------------------------------


def test_a_reader_never_changes_a_damaged_log(wf: WfHarness, template: Path) -> None:
    """Not even ``resume`` and ``cancel``, which would cut a torn tail: this is no torn tail."""
    events, line = damage(template, Path(wf.home), MUTATIONS["state-number"])
    before = events.read_bytes()
    assert line == len(before.splitlines())  # the last record: seen only after all the others
    for command in (*COMMANDS, ("logs", "a"), ("graph",)):
        wf.cli(command[0], MIXED, *command[1:], timeout=HANG_TIMEOUT)
    wf.cli("resume", "--all", timeout=HANG_TIMEOUT)
    assert events.read_bytes() == before
    assert not [name for name in os.listdir(events.parent) if ".torn-" in name]


def test_the_good_template_reads_cleanly(wf: WfHarness, template: Path) -> None:
    """The control: without damage every reader accepts both runs."""
    for run_id in (MIXED, CANCELLED):
        copy_run(template, Path(wf.home), run_id)
        for command in (("status",), ("replay", "--verify")):
            done = wf.cli(command[0], run_id, *command[1:], timeout=HANG_TIMEOUT)
            assert done.returncode == 0, (run_id, command, done.stderr)
    assert wf.cli("list").returncode == 0


def test_run_ids_skips_entries_that_are_no_runs(wf: WfHarness, template: Path) -> None:
    copy_run(template, Path(wf.home), MIXED)
    runs = Path(wf.home) / "runs"
    (runs / "dangling").symlink_to(runs / "gone")  # is_dir() is False: not a run
    (runs / "stray-file").write_text("")
    (runs / "empty-folder").mkdir()
    assert RunStore(wf.home).run_ids() == [MIXED]


def test_logs_refuses_a_fifo_in_place_of_captured_output(wf: WfHarness, template: Path) -> None:
    events = copy_run(template, Path(wf.home), MIXED)
    output = events.parent / "steps" / "a" / "1.out"
    output.parent.mkdir(parents=True, exist_ok=True)  # a silent step leaves no output file
    output.unlink(missing_ok=True)
    os.mkfifo(output)
    done = wf.cli("logs", MIXED, "a", timeout=HANG_TIMEOUT)
    assert done.returncode == 4, done.stderr
    assert f"{output}: not a regular file (a FIFO)" in done.stderr
