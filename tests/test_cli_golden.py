"""Golden output of the readers: ``status``, ``list`` and ``graph`` (every format) on fixed logs.

The logs are the repository's golden ones (``tests/golden/*.jsonl``: retries, a final failure,
a skip, a timeout; a run resumed then cancelled) and one cut from the first at a batch boundary
(a RUNNING run whose runner is gone). Times are shown in local time: the tests set ``TZ=UTC``.
The expected outputs are in ``tests/golden/cli/``; ``WF_UPDATE_GOLDEN=1`` rewrites them (then
read the diff). The HTML page is also checked by parsing it, and rendered once by a headless
Chromium when one is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_wf import WfHarness, dag, step
from wf_engine.cli import cli
from wf_engine.log.eventlog import encode_record

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
EXPECTED = GOLDEN / "cli"
UPDATE = os.environ.get("WF_UPDATE_GOLDEN") == "1"
EXAMPLE = REPO / "examples" / "image_pipeline" / "workflow.json"


def interrupted_log() -> bytes:
    """``mixed.jsonl`` up to its 18th record (a whole batch), renamed ``golden-interrupted``."""
    lines = (GOLDEN / "mixed.jsonl").read_bytes().splitlines(keepends=True)[:18]
    first = json.loads(lines[0])
    del first["crc"]
    first["run_id"] = "golden-interrupted"
    return encode_record(first) + b"".join(lines[1:])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("NO_COLOR", raising=False)
    for run_id, source in (("golden-mixed", "mixed"), ("golden-resumed", "resumed-cancelled")):
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        shutil.copyfile(GOLDEN / f"{source}.jsonl", folder / "events.jsonl")
    folder = tmp_path / "runs" / "golden-interrupted"
    folder.mkdir()
    (folder / "events.jsonl").write_bytes(interrupted_log())
    yield tmp_path
    monkeypatch.undo()
    time.tzset()


def wf(home: Path, *args: str) -> str:
    done = CliRunner().invoke(cli, ["--home", str(home), *args])
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    assert done.exit_code == 0, done.output
    return done.output


def check(name: str, text: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (WF_UPDATE_GOLDEN=1 rewrites it)"


CASES = {
    "status-mixed.txt": ("status", "golden-mixed"),
    "status-mixed.json": ("status", "golden-mixed", "--json"),
    "status-resumed.txt": ("status", "golden-resumed"),
    "status-interrupted.txt": ("status", "golden-interrupted"),
    "status-interrupted.json": ("status", "golden-interrupted", "--json"),
    "list.txt": ("list",),
    "list.json": ("list", "--json"),
    "list-failed.txt": ("list", "--state", "failed"),
    "graph-mixed.txt": ("graph", "golden-mixed"),
    "graph-mixed.mmd": ("graph", "golden-mixed", "--format", "mermaid"),
    "graph-mixed.dot": ("graph", "golden-mixed", "--format", "dot"),
    "graph-mixed.html": ("graph", "golden-mixed", "--format", "html"),
    "graph-interrupted.mmd": ("graph", "golden-int", "--format", "mermaid"),
    "graph-example.txt": ("graph", str(EXAMPLE)),
    "graph-example.mmd": ("graph", str(EXAMPLE), "--format", "mermaid"),
    "graph-example.dot": ("graph", str(EXAMPLE), "--format", "dot"),
}


def test_golden_outputs(home: Path) -> None:
    for name, args in CASES.items():
        check(name, wf(home, *args))


def test_status_json_keeps_the_contract_keys(home: Path) -> None:
    """SPEC section 7: these keys stay; more may come."""
    status = json.loads(wf(home, "status", "golden-mixed", "--json"))
    assert {"run_id", "workflow_id", "state", "runner_alive", "rerun_of", "counts", "steps"} <= set(
        status
    )
    assert status["counts"] == {
        "PENDING": 0,
        "READY": 0,
        "RUNNING": 0,
        "SUCCEEDED": 3,
        "FAILED": 2,
        "SKIPPED": 1,
        "CANCELLED": 0,
    }
    broken = status["steps"]["broken"]
    assert {"state", "attempts", "exit_code", "reason", "duration_sec", "stderr_tail"} <= set(
        broken
    )
    assert (broken["stderr_tail"], broken["final"]) == ("nope\n", True)
    assert status["steps"]["fetch"]["stderr_tail"] is None
    waiting = json.loads(wf(home, "status", "golden-interrupted", "--json"))
    flaky = waiting["steps"]["flaky"]
    assert (flaky["state"], flaky["final"], flaky["retry_at"]) == (
        "FAILED",
        False,
        "2026-11-30T03:11:09.946474Z",
    )
    assert waiting["interrupted"] is True and waiting["state"] == "RUNNING"


# -- the HTML page ---------------------------------------------------------------------------------


class Page(HTMLParser):
    """Checks that every element is closed in order, and collects what the tests look at."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == [], page.stack
    return page


def test_the_html_page_is_whole_self_contained_and_shows_states_and_timings(home: Path) -> None:
    text = wf(home, "graph", "golden-mixed", "--format", "html")
    page = parse(text)
    nodes = {
        attrs["data-step"]: tag for tag, attrs in page.tags if tag == "g" and "data-step" in attrs
    }
    rows = [attrs["data-step"] for tag, attrs in page.tags if tag == "tr" and "data-step" in attrs]
    steps = ["fetch", "flaky", "broken", "after_broken", "slow", "join"]
    assert sorted(nodes) == sorted(steps) and rows == steps
    fills = [attrs.get("fill") for tag, attrs in page.tags if tag == "rect"]
    assert fills.count("#dcfce7") == 3 and fills.count("#fee2e2") == 2  # succeeded, failed
    words = " ".join(page.text)
    assert "FAILED · 0.11s" in words and "timeout" in words and "nope" in words
    # Self-contained: no script, nothing fetched from anywhere.
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "img", "iframe")]
    assert not [a for _, attrs in page.tags for k, a in attrs.items() if k in ("src", "href")]


def test_what_comes_from_the_run_is_escaped_in_every_format(wf: WfHarness) -> None:
    hostile = dag(
        "hostile",
        [
            step(
                "evil",
                "echo '</title><script>alert(1)</script>' >&2; echo '<img src=x onerror=y>' >&2;"
                " printf '\\033[31mred\\033]0;title\\007' >&2; exit 9",
            )
        ],
    )
    result = wf.run(hostile, run_id="hostile-1")
    assert result.state == "FAILED"
    html = wf.cli("graph", "hostile-1", "--format", "html").stdout
    page = parse(html)
    assert not [tag for tag, _ in page.tags if tag in ("script", "img")]
    shown = "".join(page.text)
    assert "<script>alert(1)</script>" in shown and "<img src=x onerror=y>" in shown
    assert "\x1b" not in html and "\x07" not in html
    status = wf.cli("status", "hostile-1").stdout
    assert "\x1b" not in status and "^[[31mred" in status
    for fmt in ("mermaid", "dot"):
        assert "<script>" not in wf.cli("graph", "hostile-1", "--format", fmt).stdout


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.mark.skipif(not any(shutil.which(b) for b in BROWSERS), reason="no headless browser")
def test_a_headless_browser_renders_the_page_offline(home: Path, tmp_path: Path) -> None:
    browser = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    page = tmp_path / "graph.html"
    wf(home, "graph", "golden-mixed", "--format", "html", "-o", str(page))
    shot = tmp_path / "graph.png"
    done = subprocess.run(
        [
            str(browser),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
