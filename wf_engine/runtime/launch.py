"""Starting one attempt's process: the cheapest way that keeps ``/bin/sh -c`` semantics.

* **No shell when none is needed.** ``["/bin/sh", "-c", COMMAND]`` where COMMAND is plain words
  (no quoting, expansion, redirection, operator, assignment or shell builtin) is exec'd as
  ``COMMAND.split()``, as ``make`` does: the shell would have done exactly that, and starting it
  costs a process image per step. If the program cannot be exec'd (not found, not executable),
  the attempt is started through the shell after all, so its exit code (127, 126) and message
  are the shell's own.
* **subprocess, not os.posix_spawn.** Both create the child with ``vfork`` semantics, but
  CPython's ``os.posix_spawn`` holds the interpreter lock until the child has exec'd (up to a
  few milliseconds on a busy machine), stalling the scheduler thread meanwhile, while
  ``subprocess`` releases it; ``subprocess`` can also change folder. The child gets a new session
  (its own process group), stdin from ``/dev/null``, stdout/stderr on the given descriptors, no
  other descriptor of the engine, and SIGPIPE/SIGXFSZ back at their defaults.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from wf_engine.runtime.executor import LaunchSpec, SpawnError

#: Characters that make a command need the shell (after GNU make's list, plus quoting).
_SHELL_CHARS = frozenset("#;\"'*?[]&|<>(){}$`^~!\\\n\r\t")
#: First words the shell runs itself, or whose builtin differs from the program of that name.
_SHELL_WORDS = frozenset(
    [
        ".",
        ":",
        "[",
        "[[",
        "{",
        "}",
        "!",
        "alias",
        "bg",
        "break",
        "case",
        "cd",
        "command",
        "continue",
        "do",
        "done",
        "echo",
        "elif",
        "else",
        "esac",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "fi",
        "for",
        "function",
        "getopts",
        "hash",
        "if",
        "in",
        "jobs",
        "kill",
        "local",
        "login",
        "logout",
        "printf",
        "pwd",
        "read",
        "readonly",
        "return",
        "select",
        "set",
        "shift",
        "source",
        "test",
        "then",
        "times",
        "trap",
        "type",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "until",
        "wait",
        "while",
    ]
)
_SH = "/bin/sh"

#: Waits for a started process and returns its exit status (a negative signal number if killed).
Reaper = Callable[[], int]


def direct_argv(argv: list[str]) -> list[str] | None:
    """The words to exec for ``["/bin/sh", "-c", command]``; None when the shell is needed."""
    if len(argv) != 3 or argv[0] != _SH or argv[1] != "-c":
        return None
    command = argv[2]
    if not _SHELL_CHARS.isdisjoint(command):
        return None
    words = command.split(" ")
    words = [word for word in words if word]
    if not words or words[0] in _SHELL_WORDS or "=" in words[0]:
        return None
    return words


def spawn(spec: LaunchSpec, stdout_fd: int, stderr_fd: int) -> tuple[int, Reaper]:
    """Start ``spec`` in a new session with the given output descriptors; returns (pid, reaper).

    Raises ``SpawnError`` with a message naming the program and the folder.
    """
    try:
        return _spawn(spec.argv, spec, stdout_fd, stderr_fd)
    except (OSError, ValueError) as exc:
        if spec.shell_fallback is None:
            raise _spawn_error(spec.argv, spec.cwd, exc) from exc
    # Not found, not executable, a script without "#!": the shell decides, as it would have.
    try:
        return _spawn(spec.shell_fallback, spec, stdout_fd, stderr_fd)
    except (OSError, ValueError) as exc:
        raise _spawn_error(spec.shell_fallback, spec.cwd, exc) from exc


def _spawn(argv: list[str], spec: LaunchSpec, stdout_fd: int, stderr_fd: int) -> tuple[int, Reaper]:
    popen = subprocess.Popen(
        argv,
        cwd=spec.cwd,
        env=spec.env,
        stdin=subprocess.DEVNULL,
        stdout=stdout_fd,
        stderr=stderr_fd,
        start_new_session=True,
    )
    return popen.pid, popen.wait


def _spawn_error(argv: list[str], cwd: str, exc: Exception) -> SpawnError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return SpawnError(f"cannot start {argv[0]!r} in {cwd!r}: {reason}")
