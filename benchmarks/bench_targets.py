"""Every performance target of ``wf`` against its baseline, measured in one sitting.

    python benchmarks/bench_targets.py [--repeat 3] [--jobs 4] [--only GROUP,...]
                                       [--crash-matrix] [--tmpdir DIR] [--keep]
                                       [--json] [--out FILE] [--write-readme]
    python benchmarks/bench_targets.py --from-json FILE --write-readme   # render only

Each group of measurements runs its contenders interleaved, repeat by repeat (the order rotates
from one repeat to the next), and reports the ratio of medians with the smallest and largest
ratio of a single repeat. No number is taken from a failed run: every ``wf run`` must end
SUCCEEDED (``wf status --json``), ``make`` and ``doit`` must exit 0, ``floor.py`` must log every
step with status 0. Groups (``--only``; all but ``crash`` by default):

    dag      layered DAG of --steps (1000): wf, make, make writing output files, doit, floor.py
    wide     --steps independent steps: wf, make
    big      layered DAG of --big-steps (10,000): wf, make; per-step cost; wf's peak RSS
    readers  ``wf status`` on a 40,000-record log: benchmarks/bench_readers.py, when it is there
    startup  ``wf --help`` against ``python -c pass``
    output   wf's peak RSS while a step prints --output-bytes (1 GB) to stdout, and when silent
    crash    seconds per crash point of a 20-step workflow (pytest_wf harness); --crash-matrix

The results go to ``--out`` (JSON, default benchmarks/out/targets.json); ``--write-readme``
renders them into benchmarks/README.md between ``<!-- bench:table -->`` and
``<!-- /bench:table -->``. Exit status: 0 when every run succeeded (met targets or not: these
are measurements, not asserts), 1 when a benchmarked run failed, 2 on bad arguments.
Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _workloads import (
    MAKE,
    OUT,
    REPO,
    BenchError,
    Dag,
    Ratio,
    alternate,
    check_floor,
    check_succeeded,
    compare,
    count_batches,
    doit_command,
    make_dag,
    run_timed,
    tool_version,
    wf_command,
    workflow_dict,
    write_dodo,
    write_makefile,
    write_workflow,
)

GROUPS = ("dag", "wide", "big", "readers", "startup", "output", "crash")
DEFAULT_GROUPS = tuple(g for g in GROUPS if g != "crash")
#: ../shared/bench/floor.py, relative to the repository (``--floor`` to point elsewhere).
FLOOR = REPO.parent / "shared" / "bench" / "floor.py"
READERS = Path(__file__).with_name("bench_readers.py")
README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- bench:table -->", "<!-- /bench:table -->"
MB = 1024  # ru_maxrss is in KiB
#: "Unchanged" RSS for the loud step: at most this much above the silent one.
OUTPUT_RSS_SLACK_KB = 5 * MB


@dataclass
class Row:
    """One line of the README table; ``value`` and ``met`` are for machines, the rest for text."""

    workload: str
    baseline: str
    target: str
    measured: str = "not measured"
    medians: str = ""
    met: bool | None = None
    value: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sitting:
    """Everything one invocation measured, in table order."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    extras: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# -- formatting --------------------------------------------------------------------------------


def times_x(r: Ratio) -> str:
    lo, hi = min(r.pair_ratios), max(r.pair_ratios)
    return f"**{r.ratio:.2f}x** ({lo:.2f}-{hi:.2f})"


def medians(r: Ratio, subject: str, baseline: str) -> str:
    return f"{subject} {r.subject_median_s:.2f} s, {baseline} {r.baseline_median_s:.2f} s"


def ratio_row(row: Row, r: Ratio, limit: float, subject: str, baseline: str) -> Row:
    row.measured = times_x(r)
    row.medians = medians(r, subject, baseline)
    row.value = r.ratio
    row.met = r.ratio <= limit
    row.data = asdict(r)
    return row


def mb(kb: float) -> str:
    return f"{kb / MB:.1f} MB"


# -- groups ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Race:
    """Times of each contender over the repeats, and what the ``wf`` runs left behind."""

    times: dict[str, list[float]]
    wf_rss_kb: list[int]
    wf_batches: list[int]


def race(
    dag: Dag, names: Sequence[str], jobs: int, repeat: int, workdir: Path, floor: Path = FLOOR
) -> Race:
    """Run ``dag`` through every contender of ``names``, interleaved, ``repeat`` times.

    Contenders: ``wf``, ``make``, ``make+out`` (each recipe writes its own stdout/stderr files),
    ``doit``, ``floor`` and ``floor eager`` (``floor.py --capture eager``).
    """
    n = len(dag.steps)
    workflow, makefile = workdir / "workflow.json", workdir / "Makefile"
    write_workflow(dag, jobs, workflow)
    write_makefile(dag, makefile)
    if "make+out" in names:
        write_makefile(dag, workdir / "Makefile.out", capture=True)
    if "doit" in names:
        write_dodo(dag, workdir / "dodo.py")
    wf, doit = wf_command(), doit_command()
    rss: list[int] = []
    batches: list[int] = []

    def run_wf(i: int) -> float:
        home, run_id = workdir / f"wf-{i}", f"bench-{i}"
        argv = [*wf, "--home", str(home), "run", str(workflow), "--run-id", run_id]
        try:
            timing = run_timed([*argv, "--max-parallel", str(jobs)], workdir)
        except BenchError:
            check_succeeded(wf, home, run_id, n)  # says how the run ended, when it has a log
            raise
        check_succeeded(wf, home, run_id, n)
        rss.append(timing.max_rss_kb)
        batches.append(count_batches(home / "runs" / run_id / "events.jsonl"))
        return timing.seconds

    def run_make(i: int) -> float:
        return run_timed([MAKE, "-j", str(jobs), "-f", str(makefile), "all"], workdir).seconds

    def run_make_out(i: int) -> float:
        out = workdir / f"make-out-{i}"
        out.mkdir()
        argv = [MAKE, "-j", str(jobs), "-f", "Makefile.out", f"OUT={out}", "all"]
        seconds = run_timed(argv, workdir).seconds
        if len(list(out.iterdir())) != 2 * n:
            raise BenchError(f"make OUT={out}: not {2 * n} output files")
        return seconds

    def run_doit(i: int) -> float:
        assert doit is not None
        db = workdir / f"doit-{i}.db"
        argv = [*doit, "-f", "dodo.py", "--db-file", str(db), "-n", str(jobs)]
        return run_timed(argv, workdir).seconds

    def floor_run(*options: str) -> Callable[[int], float]:
        def run_floor(i: int) -> float:
            home = workdir / f"floor{'-'.join(('', *options))}-{i}"
            argv = [sys.executable, str(floor), str(workflow), str(home), "-j", str(jobs)]
            seconds = run_timed([*argv, *options], workdir).seconds
            check_floor(home, n)
            return seconds

        return run_floor

    contenders = {
        "wf": run_wf,
        "make": run_make,
        "make+out": run_make_out,
        "doit": run_doit,
        "floor": floor_run(),
        "floor eager": floor_run("--capture", "eager"),
    }
    times = alternate({name: contenders[name] for name in names}, repeat)
    return Race(times, rss, batches)


def dag_contenders(floor: Path) -> list[str]:
    names = ["wf", "make", "make+out"]
    if doit_command() is not None:
        names.append("doit")
    if floor.is_file():
        names += ["floor", "floor eager"]
    return names


def group_dag(args: argparse.Namespace, workdir: Path, sitting: Sitting) -> Race:
    n, j = args.steps, args.jobs
    dag = make_dag(n, "layered", args.seed)
    floor = Path(args.floor)
    result = race(dag, dag_contenders(floor), j, args.repeat, workdir, floor)
    workload = f"layered DAG, {n} steps ({dag.edges} edges), every step `true`, {j} in parallel"
    sitting.rows.append(
        ratio_row(
            Row(workload, f"`make -j{j}` (no log, no output capture)", "≤ 2.0x"),
            compare(result.times, "wf", "make"),
            2.0,
            "wf",
            "make",
        )
    )
    sitting.rows.append(
        ratio_row(
            Row(
                "the same",
                f"`make -j{j}`, every recipe writing its own stdout/stderr files "
                "(`@true >$(OUT)/x.out 2>$(OUT)/x.err`)",
                "≤ 1.0x",
            ),
            compare(result.times, "wf", "make+out"),
            1.0,
            "wf",
            "make+out",
        )
    )
    doit_row = Row("the same", f"doit `-n {j}` (no durable log, output kept in memory)", "≤ 0.9x")
    if "doit" in result.times:
        doit_row = ratio_row(doit_row, compare(result.times, "wf", "doit"), 0.9, "wf", "doit")
    else:
        doit_row.measured = "doit not installed"
    sitting.rows.append(doit_row)
    if "floor" not in result.times:
        sitting.extras.append(Row("floor.py", "", "reference", f"skipped: {floor} not found"))
        return result
    floor_j = f"floor.py `-j {j}`"
    eager_j = f"floor.py `-j {j} --capture eager`"
    for subject, baseline, label, against in (
        ("floor", "make", f"{floor_j}, layered {n}", f"`make -j{j}`"),
        ("floor eager", "make", f"{eager_j}, layered {n}", f"`make -j{j}`"),
        ("wf", "floor eager", f"`wf run`, layered {n}", eager_j),
    ):
        r = compare(result.times, subject, baseline)
        sitting.extras.append(
            Row(
                label,
                against,
                "reference",
                times_x(r),
                medians(r, subject, baseline),
                value=r.ratio,
                data=asdict(r),
            )
        )
    return result


def group_wide(args: argparse.Namespace, workdir: Path, sitting: Sitting) -> None:
    n, j = args.steps, args.jobs
    result = race(make_dag(n, "wide", args.seed), ["wf", "make"], j, args.repeat, workdir)
    row = Row(f"{n} independent steps, {j} in parallel", f"`make -j{j}`", "≤ 2.0x")
    sitting.rows.append(ratio_row(row, compare(result.times, "wf", "make"), 2.0, "wf", "make"))


def group_big(
    args: argparse.Namespace, workdir: Path, sitting: Sitting, small: Race | None
) -> None:
    n, j = args.big_steps, args.jobs
    dag = make_dag(n, "layered", args.seed)
    result = race(dag, ["wf", "make"], j, args.repeat, workdir)
    workload = f"layered DAG, {n} steps ({dag.edges} edges), {j} in parallel"
    row = Row(workload, f"`make -j{j}`", "≤ 2.2x")
    sitting.rows.append(ratio_row(row, compare(result.times, "wf", "make"), 2.2, "wf", "make"))
    per_step = Row(
        "the same: wf's per-step cost (median s / steps)",
        f"wf's per-step cost on the layered {args.steps}",
        "within 10 % (≤ 1.10x)",
    )
    big_cost = statistics.median(result.times["wf"]) / n
    if small is not None:
        small_cost = statistics.median(small.times["wf"]) / args.steps
        per_step.value = big_cost / small_cost
        per_step.measured = f"**{per_step.value:.2f}x**"
        per_step.medians = f"{big_cost * 1e3:.2f} ms vs {small_cost * 1e3:.2f} ms a step"
        per_step.met = per_step.value <= 1.10  # cheaper at scale is no regression
    else:
        per_step.measured = "needs the `dag` group in the same sitting"
        per_step.medians = f"{big_cost * 1e3:.2f} ms a step"
    sitting.rows.append(per_step)
    peak = max(result.wf_rss_kb)
    sitting.extras.append(
        Row(
            f"peak RSS of `wf run`, layered {n} steps",
            "",
            "≤ 60 MB",
            f"**{mb(peak)}**",
            "per repeat: " + ", ".join(mb(k) for k in result.wf_rss_kb),
            met=peak <= 60 * MB,
            value=peak / MB,
            data={"max_rss_kb": result.wf_rss_kb, "batches": result.wf_batches},
        )
    )


def group_startup(args: argparse.Namespace, workdir: Path, sitting: Sitting) -> None:
    wf_help = [*wf_command(), "--help"]
    bare = [sys.executable, "-c", "pass"]
    for _ in range(2):  # warm the page cache: the first start-up of a sitting reads from disk
        run_timed(wf_help, workdir)
        run_timed(bare, workdir)
    times = alternate(
        {
            "wf --help": lambda i: run_timed(wf_help, workdir).seconds,
            "python -c pass": lambda i: run_timed(bare, workdir).seconds,
        },
        args.startup_repeat,
    )
    wf_s, bare_s = times["wf --help"], times["python -c pass"]
    extra = statistics.median(wf_s) - statistics.median(bare_s)
    pairs = [w - b for w, b in zip(wf_s, bare_s, strict=True)]
    sitting.rows.append(
        Row(
            "`wf --help` start-up",
            "a bare `python -c pass`",
            "≤ + 40 ms",
            f"**+{extra * 1e3:.0f} ms** ({min(pairs) * 1e3:.0f}-{max(pairs) * 1e3:.0f})",
            f"wf --help {statistics.median(wf_s) * 1e3:.0f} ms, "
            f"python -c pass {statistics.median(bare_s) * 1e3:.0f} ms",
            met=extra <= 0.040,
            value=extra * 1e3,
            data={"times_s": times, "repeat": args.startup_repeat},
        )
    )


def group_output(args: argparse.Namespace, workdir: Path, sitting: Sitting) -> None:
    """wf's peak RSS with a step printing ``--output-bytes`` to stdout, and with a silent one."""
    size = args.output_bytes
    wf = wf_command()
    rss: dict[str, int] = {}
    for name, command in (("silent", "true"), ("loud", f"head -c {size} /dev/zero")):
        path = workdir / f"{name}.json"
        workflow = workflow_dict(Dag(["step"], {"step": []}), 1, command, f"output_{name}")
        path.write_text(json.dumps(workflow))
        home = workdir / f"home-{name}"
        argv = [*wf, "--home", str(home), "run", str(path), "--run-id", name]
        rss[name] = run_timed(argv, workdir).max_rss_kb
        check_succeeded(wf, home, name, 1)
        out = home / "runs" / name / "steps" / "step" / "1.out"
        if name == "loud" and out.stat().st_size != size:
            raise BenchError(f"{out}: {out.stat().st_size} bytes captured, not {size}")
        shutil.rmtree(home)  # a gigabyte: gone before the next group
    grew = rss["loud"] - rss["silent"]
    sitting.extras.append(
        Row(
            f"peak RSS of `wf run` while a step prints {size / 1e9:g} GB to stdout",
            "the same with a silent step",
            "unchanged (≤ +5 MB)",
            f"**{grew / MB:+.1f} MB**",
            f"{mb(rss['loud'])} vs {mb(rss['silent'])}",
            met=grew <= OUTPUT_RSS_SLACK_KB,
            value=grew / MB,
            data={"max_rss_kb": rss, "bytes": size},
        )
    )


def readers_row(args: argparse.Namespace, workdir: Path) -> Row:
    """``wf status`` on a 40,000-record log against a bare ``json.loads`` of every line.

    Measured by benchmarks/bench_readers.py (its own script, its own author): ``--json`` prints
    ``{"records": N, "status": {"ratio", "pair_ratios", "wf_status_median_s",
    "json_loads_median_s"}, ...}``. Its log is a real ``wf run`` of ``--readers-steps`` steps
    (four records a step), built in the sitting unless ``--readers-home`` holds one already.
    """
    row = Row("`wf status` on a 40,000-record log", "a bare `json.loads` of every line", "≤ 2x")
    if not READERS.is_file():
        row.measured = "not measured: benchmarks/bench_readers.py is not there"
        return row
    argv = [sys.executable, str(READERS), "--json", "--repeat", str(args.repeat)]
    argv += ["--steps", str(args.readers_steps), "--tmpdir", str(workdir)]
    if args.readers_home:
        argv += ["--home", args.readers_home]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"bench_readers.py exited {done.returncode}\n{done.stderr[-2000:]}")
    doc = json.loads(done.stdout)
    status = doc["status"]
    ratio, pairs = float(status["ratio"]), [float(p) for p in status["pair_ratios"]]
    row.workload = f"`wf status` on a {doc['records']:,}-record log"
    row.value, row.met, row.data = ratio, ratio <= 2.0, doc
    row.measured = f"**{ratio:.2f}x** ({min(pairs):.2f}-{max(pairs):.2f})"
    row.medians = (
        f"wf status {status['wf_status_median_s']:.2f} s, "
        f"json.loads {status['json_loads_median_s']:.2f} s"
    )
    return row


def group_readers(args: argparse.Namespace, workdir: Path, sitting: Sitting) -> None:
    sitting.rows.append(readers_row(args, workdir))


def group_crash(args: argparse.Namespace, workdir: Path, sitting: Sitting) -> None:
    """Crash matrix of a 20-step workflow of ``true``: every record, every ``--crash-points``."""
    sys.path.insert(0, str(REPO))
    from pytest_wf.equivalence import assert_resume_equivalent, crash_points
    from pytest_wf.harness import WfHarness

    steps = args.crash_steps
    workflow = workflow_dict(make_dag(steps, "layered", args.seed), args.jobs, "true", "crash")
    (workdir / "work").mkdir()
    harness = WfHarness(workdir / "home", workdir / "work")
    try:
        start = time.perf_counter()
        reference = harness.run(workflow)
        if reference.state != "SUCCEEDED":
            raise BenchError(f"crash matrix reference run ended {reference.state}")
        points = crash_points(reference, args.crash_points.split(","))
        unfinished = 0
        for point in points:
            outcome = assert_resume_equivalent(harness, workflow, point, reference=reference)
            unfinished += outcome.resumed.state != "SUCCEEDED"  # None: killed before run_created
        elapsed = time.perf_counter() - start
    finally:
        harness.close()
    sitting.extras.append(
        Row(
            f"crash matrix, {steps} `true` steps ({len(points)} points: "
            f"{args.crash_points}; crash, resume, compare)",
            "",
            "reference",
            f"**{elapsed / len(points):.2f} s a point**",
            f"{elapsed:.1f} s in all, reference run included; "
            f"{unfinished} points killed before the run existed",
            value=elapsed / len(points),
            data={"points": len(points), "seconds": elapsed, "no_run": unfinished},
        )
    )


# -- the sitting -------------------------------------------------------------------------------


def filesystem(path: Path) -> str:
    """``TYPE (DEVICE)`` of the mount holding ``path``, from ``/proc/self/mounts``."""
    best, found = "", "?"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                device, mount, kind = line.split()[:3]
                inside = str(path.resolve()).startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, found = mount, f"{kind} ({device})"
    except OSError:
        pass
    return found


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def meta(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    doit = doit_command()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "make": tool_version([MAKE, "--version"]),
        "doit": tool_version([*doit, "--version"]) if doit else None,
        "wf": " ".join(wf_command()),
        "commit": commit(),
        "tmpdir": str(tmp),
        "filesystem": filesystem(tmp),
        "groups": args.only,
        "repeat": args.repeat,
        "jobs": args.jobs,
        "note": args.note,
        "group_seconds": {},  # wall time of each group, temp folders' removal included
        "loadavg": [],  # 1-minute load average before each group and at the end
    }


@contextmanager
def workspace(parent: Path, name: str, keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"wf-bench-{name}-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"bench_targets: kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def measure(args: argparse.Namespace) -> Sitting:
    parent = Path(args.tmpdir) if args.tmpdir else OUT
    parent.mkdir(parents=True, exist_ok=True)
    sitting = Sitting(meta(args, parent))
    small: Race | None = None
    for group in GROUPS:
        if group not in args.only:
            continue
        sitting.meta["loadavg"].append(round(os.getloadavg()[0], 2))
        print(f"bench_targets: {group} ...", file=sys.stderr)
        started = time.perf_counter()
        try:
            with workspace(parent, group, args.keep) as workdir:
                if group == "dag":
                    small = group_dag(args, workdir, sitting)
                elif group == "big":
                    group_big(args, workdir, sitting, small)
                else:
                    GROUP_FUNCTIONS[group](args, workdir, sitting)
        except BenchError as exc:
            sitting.errors.append(f"{group}: {exc}")
            print(f"bench_targets: {group}: {exc}", file=sys.stderr)
        sitting.meta["group_seconds"][group] = round(time.perf_counter() - started, 1)
    sitting.meta["loadavg"].append(round(os.getloadavg()[0], 2))
    return sitting


GROUP_FUNCTIONS: dict[str, Callable[[argparse.Namespace, Path, Sitting], None]] = {
    "wide": group_wide,
    "readers": group_readers,
    "startup": group_startup,
    "output": group_output,
    "crash": group_crash,
}


# -- rendering ---------------------------------------------------------------------------------


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[met]


def took(m: dict[str, Any]) -> str:
    seconds = m.get("group_seconds")
    if not seconds:
        return ""
    each = ", ".join(f"{group} {s:.0f}" for group, s in seconds.items())
    total = sum(seconds.values())
    span = f"{total:.0f} s" if total < 120 else f"{total / 60:.1f} min"
    return f"The sitting took {span} (seconds by group: {each}). "


def render(sitting: Sitting) -> str:
    m = sitting.meta
    load = m["loadavg"]
    lines = [
        f"Measured {m['date']} by `bench_targets.py --repeat {m['repeat']}` "
        f"(groups: {', '.join(m['groups'])}), commit `{m['commit']}` "
        f"{m.get('note') or 'and its working tree.'} "
        f"{m['cpus']} CPUs, Python {m['python']}, {m['make']}, doit: {m['doit'] or 'none'}; "
        f"run stores on {m['filesystem']}. 1-minute load average before each group: "
        f"{', '.join(f'{x:.2f}' for x in load[:-1])}; at the end {load[-1]:.2f}. "
        f"{took(m)}Ratios are medians; in brackets the smallest and largest ratio of a single "
        "repeat.",
        "",
        "| workload | baseline | target | measured | medians | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in sitting.rows:
        cells = (r.workload, r.baseline, r.target, r.measured, r.medians, verdict(r.met))
        lines.append("| " + " | ".join(cells) + " |")
    if sitting.extras:
        lines += ["", "| also measured | against | target | measured | detail | met |"]
        lines.append("|---|---|---|---|---|---|")
        for r in sitting.extras:
            cells = (r.workload, r.baseline, r.target, r.measured, r.medians, verdict(r.met))
            lines.append("| " + " | ".join(cells) + " |")
    if sitting.errors:
        lines += ["", "Failed (no numbers taken from these):", ""]
        lines += [f"- {e.splitlines()[0]}" for e in sitting.errors]
    return "\n".join(lines)


def write_readme(text: str, path: Path = README) -> None:
    """Replace what lies between the marker lines (each a line of its own) with ``text``."""
    lines = path.read_text(encoding="utf-8").split("\n")
    try:
        begin = lines.index(BEGIN)
        end = lines.index(END, begin)
    except ValueError:
        raise SystemExit(
            f"bench_targets: {path} lacks the marker lines {BEGIN} ... {END}"
        ) from None
    lines[begin + 1 : end] = text.split("\n")
    path.write_text("\n".join(lines), encoding="utf-8")


def to_json(sitting: Sitting) -> dict[str, Any]:
    return asdict(sitting)


def from_json(doc: dict[str, Any]) -> Sitting:
    return Sitting(
        meta=doc["meta"],
        rows=[Row(**r) for r in doc["rows"]],
        extras=[Row(**r) for r in doc["extras"]],
        errors=doc["errors"],
    )


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--repeat", type=int, default=3, help="runs of each contender (default 3)")
    p.add_argument("--jobs", type=int, default=4, help="make -j, wf --max-parallel, doit -n")
    p.add_argument("--steps", type=int, default=1000, help="steps of dag and wide (1000)")
    p.add_argument("--big-steps", type=int, default=10_000, help="steps of big (10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the layered DAGs' edges")
    p.add_argument("--startup-repeat", type=int, default=20, help="start-ups of each command (20)")
    p.add_argument(
        "--output-bytes", type=int, default=10**9, help="bytes the loud step prints (1e9)"
    )
    p.add_argument(
        "--only",
        default=",".join(DEFAULT_GROUPS),
        help=f"comma-separated groups, of {','.join(GROUPS)} (default: all but crash)",
    )
    p.add_argument(
        "--readers-steps", type=int, default=10_000, help="steps of bench_readers.py's log"
    )
    p.add_argument("--readers-home", help="bench_readers.py --home: build its log once, reuse")
    p.add_argument("--crash-matrix", action="store_true", help="add the crash group")
    p.add_argument("--crash-steps", type=int, default=20, help="steps of the crash matrix (20)")
    p.add_argument(
        "--crash-points", default="after_sync", help="crash points, comma-separated (after_sync)"
    )
    p.add_argument("--floor", default=str(FLOOR), help="floor.py (../shared/bench/floor.py)")
    p.add_argument("--note", help="a sentence for the table's header (what was measured, load)")
    p.add_argument("--tmpdir", help="parent of the temp folders (default benchmarks/out)")
    p.add_argument("--keep", action="store_true", help="keep the temp folders")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--out", default=str(OUT / "targets.json"), help="results file (benchmarks/out/...)"
    )
    p.add_argument(
        "--write-readme", action="store_true", help="render the table into benchmarks/README.md"
    )
    p.add_argument("--from-json", metavar="FILE", help="render FILE's results; measure nothing")
    args = p.parse_args(argv)
    only = [g.strip() for g in args.only.split(",") if g.strip()]
    if unknown := sorted(set(only) - set(GROUPS)):
        p.error(f"unknown group(s) {', '.join(unknown)}; groups: {', '.join(GROUPS)}")
    if args.crash_matrix and "crash" not in only:
        only.append("crash")
    args.only = [g for g in GROUPS if g in only]
    counts = ("repeat", "jobs", "steps", "big_steps", "readers_steps", "startup_repeat")
    for name in (*counts, "crash_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        sitting = from_json(json.loads(Path(args.from_json).read_text(encoding="utf-8")))
        if args.note:  # a note written after the fact replaces the one measured with
            sitting.meta["note"] = args.note
    else:
        sitting = measure(args)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_json(sitting), indent=1) + "\n", encoding="utf-8")
        print(f"bench_targets: results in {out}", file=sys.stderr)
    text = render(sitting)
    print(json.dumps(to_json(sitting), indent=1) if args.json else text)
    if args.write_readme:
        write_readme(text)
        print(f"bench_targets: table written to {README}", file=sys.stderr)
    return 1 if sitting.errors else 0


if __name__ == "__main__":
    sys.exit(main())
