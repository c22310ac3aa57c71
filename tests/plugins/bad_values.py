"""Hand the engine values it cannot exec, on attempt 1 only (attempt 2 runs as written).

``$WF_TEST_BAD_ENV`` picks what ``wf_step_env`` puts into the environment and
``$WF_TEST_BAD_ARGV`` what ``wf_step_command`` returns (keys of ``BAD_ENV`` / ``BAD_ARGV``).
"""

from __future__ import annotations

import os
from typing import Any

from wf_engine import hookimpl

BAD_ENV: dict[str, tuple[Any, Any]] = {
    "int": ("N", 3),
    "nul": ("N", "a\0b"),
    "surrogate": ("N", "\ud800"),
    "equals": ("A=B", "1"),
    "empty": ("", "1"),
    "key-int": (3, "x"),
    "key-nul": ("A\0B", "1"),
}

BAD_ARGV: dict[str, Any] = {
    "str": "echo hello",
    "tuple": ("echo", "hello"),
    "empty": [],
    "int": ["echo", 3],
    "nul": ["echo", "a\0b"],
    "surrogate": ["echo", "\ud800"],
}


@hookimpl
def wf_step_env(attempt: int, env: dict[Any, Any]) -> None:
    kind = os.environ.get("WF_TEST_BAD_ENV")
    if kind and attempt == 1:
        name, value = BAD_ENV[kind]
        env[name] = value


@hookimpl
def wf_step_command(attempt: int) -> Any:
    kind = os.environ.get("WF_TEST_BAD_ARGV")
    return BAD_ARGV[kind] if kind and attempt == 1 else None
