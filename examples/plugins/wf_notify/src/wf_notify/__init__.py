"""wf-notify: post a Slack-compatible JSON message to a webhook when a run ends or a step fails.

Configuration (read from the environment at each notification):

``WF_NOTIFY_URL``
    The webhook (``http://`` or ``https://``). Unset or empty: the plugin does nothing.
``WF_NOTIFY_TIMEOUT``
    Seconds one delivery may take (default 2).

Delivery never blocks the run: each message is POSTed from a thread of its own, so a hook returns
at once. The process waits at exit (``atexit``) for messages still in flight, each until its own
deadline (raised + timeout + a short grace), so the final ``run_finished`` message is delivered
while a dead webhook delays exit by at most about the timeout. Failures are reported on stderr as
``wf-notify: ...`` and never raised. Standard library only.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from wf_engine import hookimpl

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "URL_ENV",
    "flush",
    "notify",
    "run_message",
    "step_message",
    "wf_run_finished",
    "wf_step_transition",
]
__version__ = "0.1.0"

URL_ENV = "WF_NOTIFY_URL"
TIMEOUT_ENV = "WF_NOTIFY_TIMEOUT"
DEFAULT_TIMEOUT = 2.0
#: Extra time the exit wait gives a sender past its socket timeout, to let it report on its own.
GRACE = 0.25
#: How much of a failed step's stderr tail goes into a message.
STDERR_TAIL_CHARS = 1000

_lock = threading.Lock()
_in_flight: list[tuple[threading.Thread, float]] = []  # (sender, monotonic deadline)
_atexit_registered = False


# -- hooks ---------------------------------------------------------------------------------------


@hookimpl
def wf_step_transition(run_id: str, event: dict[str, Any], step: str, to_state: str) -> None:
    """A step failed for good (FAILED with no retry left): notify."""
    if to_state == "FAILED" and event.get("final"):
        notify(step_message(run_id, event, step))


@hookimpl
def wf_run_finished(run_id: str, event: dict[str, Any], state: str) -> None:
    """The run reached SUCCEEDED, FAILED or CANCELLED: notify."""
    notify(run_message(run_id, event, state))


# -- messages ------------------------------------------------------------------------------------


def run_message(run_id: str, event: dict[str, Any], state: str) -> dict[str, Any]:
    """The payload for a finished run."""
    text = f"wf run `{run_id}` finished: {state}"
    return _payload(
        text,
        {
            "event": "run_finished",
            "run_id": run_id,
            "state": state,
            "step": None,
            "attempt": None,
            "exit_code": None,
            "reason": None,
            "seq": event.get("seq"),
            "ts": event.get("ts"),
        },
    )


def step_message(run_id: str, event: dict[str, Any], step: str) -> dict[str, Any]:
    """The payload for a step that failed with no retry left."""
    exit_code = event.get("exit_code")
    reason = event.get("reason")
    details = [f"attempt {event.get('attempt')}"]
    if exit_code is not None:
        details.append(f"exit code {exit_code}")
    if reason is not None:
        details.append(f"reason {reason}")
    text = f"wf step `{step}` of run `{run_id}` failed for good ({', '.join(details)})"
    tail = event.get("stderr_tail")
    return _payload(
        text,
        {
            "event": "step_failed",
            "run_id": run_id,
            "state": "FAILED",
            "step": step,
            "attempt": event.get("attempt"),
            "exit_code": exit_code,
            "reason": reason,
            "seq": event.get("seq"),
            "ts": event.get("ts"),
            "stderr_tail": tail[-STDERR_TAIL_CHARS:] if isinstance(tail, str) else None,
        },
    )


def _payload(text: str, wf: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "wf": wf,
    }


# -- delivery ------------------------------------------------------------------------------------


def notify(payload: dict[str, Any]) -> None:
    """POST ``payload`` to ``$WF_NOTIFY_URL`` from a background thread (no URL: do nothing)."""
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        return
    what = _describe(payload)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        _warn(f"{URL_ENV} must be an http:// or https:// URL; {what} not sent")
        return
    timeout = _timeout()
    sender = threading.Thread(
        target=_send, args=(url, payload, timeout, what), name="wf-notify", daemon=True
    )
    with _lock:
        _register_atexit()
        _in_flight[:] = [(thread, end) for thread, end in _in_flight if thread.is_alive()]
        _in_flight.append((sender, time.monotonic() + timeout + GRACE))
    sender.start()


def flush() -> int:
    """Wait for messages in flight, each until its deadline; return how many were given up."""
    with _lock:
        pending = list(_in_flight)
        _in_flight.clear()
    for thread, deadline in pending:
        remaining = deadline - time.monotonic()
        if remaining > 0:
            thread.join(remaining)
    abandoned = sum(1 for thread, _ in pending if thread.is_alive())
    if abandoned:
        _warn(f"gave up waiting for {abandoned} message(s) still in flight")
    return abandoned


def _send(url: str, payload: dict[str, Any], timeout: float, what: str) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": f"wf-notify/{__version__}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        _warn(f"{what} rejected by {_where(url)}: HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        _warn(f"{what} not delivered to {_where(url)}: {exc.reason}")
    except Exception as exc:  # a notification must never surface as a crash
        _warn(f"{what} not delivered to {_where(url)}: {type(exc).__name__}: {exc}")


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        _warn(f"ignoring {TIMEOUT_ENV}={raw!r} (want seconds > 0); using {DEFAULT_TIMEOUT:g}")
        return DEFAULT_TIMEOUT
    return value


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(flush)
        _atexit_registered = True


def _describe(payload: dict[str, Any]) -> str:
    wf = payload.get("wf", {})
    if wf.get("event") == "step_failed":
        return f"step_failed message (run {wf.get('run_id')}, step {wf.get('step')})"
    return f"{wf.get('event', 'message')} message (run {wf.get('run_id')})"


def _where(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries often carry secrets."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or '?'}{port}"
    except ValueError:
        return "the webhook"


def _warn(message: str) -> None:
    with contextlib.suppress(Exception):  # stderr gone at exit: nothing left to tell
        print(f"wf-notify: {message}", file=sys.stderr, flush=True)
