"""The example plugin ``examples/plugins/wf_notify``: installed for real, driven through ``wf run``.

The session fixture pip-installs the package (editable) into the current environment, so ``wf``
finds it through its ``wf_engine`` entry point, exactly as a user's install would. Webhooks are
real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytest_wf import RunResult, TaskKit, WfHarness, dag, step

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "examples" / "plugins" / "wf_notify"
#: Keep the test webhooks off any proxy configured on the machine.
NO_PROXY = {"no_proxy": "*", "NO_PROXY": "*"}


# -- installing the plugin ---------------------------------------------------------------------


def _notify_entry_point() -> importlib.metadata.EntryPoint | None:
    importlib.invalidate_caches()
    for entry_point in importlib.metadata.entry_points(group="wf_engine"):
        if entry_point.name == "notify":
            return entry_point
    return None


def _installed_editable_from_here() -> bool:
    try:
        direct_url = importlib.metadata.distribution("wf-notify").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    info = json.loads(direct_url or "{}")
    return bool(
        info.get("dir_info", {}).get("editable")
        and info.get("url", "").rstrip("/") == PACKAGE.as_uri()
        and _notify_entry_point() is not None
    )


def _can_build_without_isolation() -> bool:
    """setuptools>=64 builds editables; before 70.1 its ``bdist_wheel`` needs ``wheel``."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:2])
    return parts >= (70, 1) or (parts >= (64, 0) and importlib.util.find_spec("wheel") is not None)


@pytest.fixture(scope="session")
def notify_installed() -> importlib.metadata.EntryPoint:
    """wf-notify installed (editable, from this checkout) and registered as an entry point.

    Left installed afterwards: an editable install follows the source, and without
    ``WF_NOTIFY_URL`` the plugin does nothing.
    """
    if not _installed_editable_from_here():
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        if _can_build_without_isolation():
            command.append("--no-build-isolation")  # no download of build requirements
        done = subprocess.run(
            [*command, "-e", str(PACKAGE)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    entry_point = _notify_entry_point()
    assert entry_point is not None, "wf-notify installed but no 'notify' entry point"
    assert entry_point.value == "wf_notify"
    return entry_point


# -- webhooks ------------------------------------------------------------------------------------


@dataclass
class Webhook:
    """A local HTTP server recording every POST; ``hang`` makes it never answer (until closed)."""

    hang: bool = False
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                hook.headers.append(dict(self.headers.items()))
                hook.posts.append(json.loads(body))
                if hook.hang:
                    hook.release.wait(30)
                    return  # closes the connection without an answer
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/secret-token"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def hanging_webhook() -> Iterator[Webhook]:
    hook = Webhook(hang=True)
    yield hook
    hook.close()


# -- workflows -----------------------------------------------------------------------------------


def failing_workflow(tasks: TaskKit) -> dict[str, Any]:
    """``bad`` fails twice (one retry, then for good), ``after`` is skipped, ``ok`` succeeds."""
    return dag(
        "notify",
        [
            step("bad", tasks("fail", "--code", "3"), retries=1, retry_backoff_sec=0.05),
            step("after", tasks("ok"), ["bad"]),
            step("ok", tasks("ok")),
        ],
    )


def assert_failed_as_expected(result: RunResult) -> None:
    assert result.returncode == 1, result.stderr
    assert result.state == "FAILED"
    assert result.step_state("bad") == "FAILED"
    assert result.steps["bad"]["attempts"] == 2
    assert result.step_state("after") == "SKIPPED"
    assert result.step_state("ok") == "SUCCEEDED"


def timed_run(
    wf: WfHarness, workflow: dict[str, Any], env: dict[str, str]
) -> tuple[RunResult, float]:
    started = time.monotonic()
    result = wf.run(workflow, env={**NO_PROXY, **env})
    return result, time.monotonic() - started


# -- tests ---------------------------------------------------------------------------------------


def test_wf_plugins_lists_notify_with_its_hooks(
    notify_installed: importlib.metadata.EntryPoint, wf: WfHarness
) -> None:
    done = wf.cli("plugins")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "notify: wf_run_finished, wf_step_transition" in lines, done.stdout


def test_notifies_final_step_failure_and_run_finish(
    notify_installed: importlib.metadata.EntryPoint,
    wf: WfHarness,
    wf_tasks: TaskKit,
    webhook: Webhook,
) -> None:
    result, _ = timed_run(wf, failing_workflow(wf_tasks), {"WF_NOTIFY_URL": webhook.url})
    assert_failed_as_expected(result)
    # the retried first failure was not final: the log has it, the webhook must not
    failures = [r for r in result.events if r["type"] == "step" and r["to"] == "FAILED"]
    assert [bool(r.get("final")) for r in failures] == [False, True]

    # delivered before `wf run` exited (the atexit join), so no waiting here
    kinds = sorted(post["wf"]["event"] for post in webhook.posts)
    assert kinds == ["run_finished", "step_failed"], webhook.posts
    assert "wf-notify" not in result.stderr
    assert result.run_id is not None
    for post, headers in zip(webhook.posts, webhook.headers, strict=True):
        assert isinstance(post["text"], str) and result.run_id in post["text"]
        assert post["wf"]["run_id"] == result.run_id
        assert post["blocks"][0]["text"]["text"] == post["text"]
        assert headers["Content-Type"] == "application/json"

    (failed,) = (p for p in webhook.posts if p["wf"]["event"] == "step_failed")
    assert failed["wf"]["step"] == "bad"
    assert failed["wf"]["state"] == "FAILED"
    assert failed["wf"]["attempt"] == 2
    assert failed["wf"]["exit_code"] == 3
    assert failed["wf"]["reason"] == "exit"
    assert "bad" in failed["text"]

    (finished,) = (p for p in webhook.posts if p["wf"]["event"] == "run_finished")
    assert finished["wf"]["state"] == "FAILED"
    assert "FAILED" in finished["text"]
    assert finished["wf"]["exit_code"] is None and finished["wf"]["reason"] is None


def test_successful_run_sends_only_run_finished(
    notify_installed: importlib.metadata.EntryPoint,
    wf: WfHarness,
    wf_tasks: TaskKit,
    webhook: Webhook,
) -> None:
    workflow = dag("fine", [step("a", wf_tasks("ok")), step("b", wf_tasks("ok"), ["a"])])
    result, _ = timed_run(wf, workflow, {"WF_NOTIFY_URL": webhook.url})
    assert result.returncode == 0 and result.state == "SUCCEEDED", result.stderr
    assert [(p["wf"]["event"], p["wf"]["state"]) for p in webhook.posts] == [
        ("run_finished", "SUCCEEDED")
    ]


def test_hanging_webhook_delays_exit_by_at_most_the_timeout(
    notify_installed: importlib.metadata.EntryPoint,
    wf: WfHarness,
    wf_tasks: TaskKit,
    hanging_webhook: Webhook,
) -> None:
    timeout = 1.0
    notifications = 2  # bad failed for good, run finished
    baseline, baseline_sec = timed_run(wf, failing_workflow(wf_tasks), {})
    assert_failed_as_expected(baseline)
    assert "wf-notify" not in baseline.stderr  # no URL: the plugin does nothing

    env = {"WF_NOTIFY_URL": hanging_webhook.url, "WF_NOTIFY_TIMEOUT": f"{timeout:g}"}
    result, hanging_sec = timed_run(wf, failing_workflow(wf_tasks), env)
    print(f"baseline {baseline_sec:.2f}s, hanging webhook {hanging_sec:.2f}s")

    assert_failed_as_expected(result)
    assert len(hanging_webhook.posts) == notifications  # both were sent, neither answered
    assert hanging_sec < baseline_sec + timeout * notifications + 3.0
    assert "wf-notify:" in result.stderr
    assert "timed out" in result.stderr
    assert "secret-token" not in result.stderr  # reports never show the webhook's path


def test_unreachable_webhook_is_reported_and_never_breaks_the_run(
    notify_installed: importlib.metadata.EntryPoint, wf: WfHarness, wf_tasks: TaskKit
) -> None:
    closed = Webhook()
    url = closed.url
    closed.close()  # nothing listens on that port any more
    result, _ = timed_run(wf, dag("fine", [step("a", wf_tasks("ok"))]), {"WF_NOTIFY_URL": url})
    assert result.returncode == 0 and result.state == "SUCCEEDED", result.stderr
    assert "wf-notify: run_finished message" in result.stderr
    assert "not delivered" in result.stderr


def test_bad_settings_are_reported_not_fatal(
    notify_installed: importlib.metadata.EntryPoint,
    wf: WfHarness,
    wf_tasks: TaskKit,
    webhook: Webhook,
) -> None:
    workflow = dag("fine", [step("a", wf_tasks("ok"))])
    result, _ = timed_run(wf, workflow, {"WF_NOTIFY_URL": "file:///etc/passwd"})
    assert result.returncode == 0 and result.state == "SUCCEEDED", result.stderr
    assert "wf-notify: WF_NOTIFY_URL must be an http:// or https:// URL" in result.stderr

    env = {"WF_NOTIFY_URL": webhook.url, "WF_NOTIFY_TIMEOUT": "soon"}
    result, _ = timed_run(wf, workflow, env)
    assert result.returncode == 0 and result.state == "SUCCEEDED", result.stderr
    assert "wf-notify: ignoring WF_NOTIFY_TIMEOUT='soon'" in result.stderr
    assert [p["wf"]["event"] for p in webhook.posts] == ["run_finished"]  # default timeout
