"""The task kit: a deliberately misbehaving step command for testing wf.

Usage::

    python -m fault_injection.task [--record FILE] [--label NAME] BEHAVIOUR [ARGS]

==========================================  ================================================
Behaviour                                   What it does
==========================================  ================================================
``ok``                                      exit 0
``fail [--code N]``                         message on stderr, exit N (default 1)
``fail-first K [--code N]``                 exit N (default 1) on the first K executions of
                                            this label, then exit 0 (needs ``--record``)
``sleep SEC``                               sleep SEC seconds, exit 0
``hang``                                    sleep until killed
``hang-with-grandchild --pidfile FILE``     start a grandchild sleeping forever in the same
                                            process group, write its pid to FILE, then sleep
                                            until killed
``ignore-term SEC``                         ignore SIGTERM, record and print ``ready``, sleep
                                            SEC, exit 0
``print-lot BYTES [--stream out|err|both]`` write exactly BYTES bytes of text lines to each
                                            chosen stream (default ``out``), exit 0
``exit-signal SIG``                         die by signal SIG (``TERM``, ``SIGKILL``, ``11``)
``daemonize SEC [--pidfile FILE]            double fork and ``setsid``: a daemon in its own
[--close-fds]``                             session sleeps SEC (or until killed); it records
                                            ``daemon`` (its ``pid`` and ``sid``) before it
                                            writes its pid to FILE; with ``--close-fds`` it
                                            first closes every fd it inherited (0..1023, the
                                            overlap lock included). The task exits 0 at once
``close-fds-hang``                          close every inherited fd (0..1023: stdio, the
                                            engine's attempt lock, ...) but the overlap lock,
                                            record ``ready``, sleep until killed
==========================================  ================================================

Options (before the behaviour):

``--record FILE``
    Append one JSON object per line to FILE for each event: ``start`` (``label``, ``pid``,
    ``pgid``, ``attempt`` from ``$WF_ATTEMPT`` or null, ``time``) first, then events of the
    behaviour (``ready``, ``grandchild``), then ``end`` (``label``, ``pid``, ``exit_code``,
    ``time``) just before the task exits on its own. Nothing is written when the task is
    killed. The ``ready`` record is written before the ``ready`` stdout line and the
    ``grandchild`` record (``pid`` is the grandchild's, ``parent_pid`` the task's) before
    the pidfile, so either signal means the record is there. Every line is appended with one
    ``write(2)`` on an ``O_APPEND`` descriptor and fsynced, so any number of processes may
    share one record file. For ``exit-signal`` the end record is written before the signal
    is raised, with ``exit_code`` -SIG (the :mod:`subprocess` convention) and ``signal``.
``--label NAME``
    Label put on every record; defaults to ``$WF_STEP_ID``, else ``task``.

Overlap detector: with ``--record FILE``, every execution holds an exclusive ``flock`` on
``FILE.<label>.running`` (the label percent-quoted; a long one cut, plus a hash) from just after
its ``start`` record until it exits; its children inherit it (``daemonize`` without
``--close-fds`` too). If another execution of the same label holds it, the task appends an
``overlap`` record (``label``, ``pid``, ``attempt``, ``time``) right after its ``start`` and
carries on with its behaviour anyway: two executions of one step ran at once.
:func:`read_overlaps` lists them.

Bad arguments exit 2 (argparse) and write no record. Tests read the record file with
:func:`read_records`, :func:`count_starts` and :func:`read_overlaps`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import NoReturn, TypeAlias

__all__ = ["count_starts", "main", "overlap_lock_path", "read_overlaps", "read_records"]

StrPath: TypeAlias = "str | os.PathLike[str]"

#: Line length (including the newline) used by ``print-lot``.
_LINE_BYTES = 80
#: Roughly how many bytes ``print-lot`` writes per ``write`` call.
_CHUNK_BYTES = 64 * 1024
#: Signals whose default action does not terminate the process (ignore or stop), so
#: ``exit-signal`` cannot die by them.
_NON_FATAL_SIGNALS = frozenset(
    {"SIGCHLD", "SIGCLD", "SIGCONT", "SIGURG", "SIGWINCH", "SIGINFO", "SIGSTOP", "SIGTSTP",
     "SIGTTIN", "SIGTTOU"}
)  # fmt: skip
_GRANDCHILD_CODE = "import time\nwhile True:\n    time.sleep(3600)\n"
#: Descriptors ``close-fds-hang`` and ``daemonize --close-fds`` close: 0 up to this, excluded.
_MAX_FD = 1024
#: Longest quoted label kept whole in an overlap lock's name (file names stop at 255 bytes).
_MAX_LABEL_NAME = 100


# --------------------------------------------------------------------------- records


def read_records(path: StrPath) -> list[dict[str, object]]:
    """Return the records of a ``--record`` file, oldest first.

    A missing file has no records. A last line without its terminating newline is a torn
    append (the writer died mid-write) and is ignored; any other line that is not a JSON
    object raises :class:`ValueError`.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    # The element after the last newline is b"" for a complete file, else a torn line.
    records: list[dict[str, object]] = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}:{number}: corrupt record {line!r}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{os.fspath(path)}:{number}: record is not an object: {line!r}")
        records.append(record)
    return records


def count_starts(path: StrPath, label: str | None = None) -> int:
    """Number of executions recorded in *path* (``start`` events), only *label*'s if given."""
    return sum(
        1
        for record in read_records(path)
        if record.get("event") == "start" and (label is None or record.get("label") == label)
    )


def read_overlaps(path: StrPath, label: str | None = None) -> list[dict[str, object]]:
    """The ``overlap`` records in *path*, only *label*'s if given.

    Each is an execution that began while another execution of its label still ran.
    """
    return [
        record
        for record in read_records(path)
        if record.get("event") == "overlap" and (label is None or record.get("label") == label)
    ]


def overlap_lock_path(record: StrPath, label: str) -> str:
    """The file whose ``flock`` the executions of *label* recording into *record* hold.

    A label too long for a file name is cut and made unique by a hash of the whole label.
    """
    name = urllib.parse.quote(label, safe="")
    if len(name) > _MAX_LABEL_NAME:
        name = f"{name[:_MAX_LABEL_NAME]}-{hashlib.sha256(label.encode()).hexdigest()[:16]}"
    return f"{os.fspath(record)}.{name}.running"


class _Recorder:
    """Appends events of one task execution to the record file (no-op without one)."""

    def __init__(self, path: str | None, label: str) -> None:
        self.path = path
        self.label = label

    def emit(self, event: str, **fields: object) -> None:
        if self.path is None:
            return
        record: dict[str, object] = {"event": event, "label": self.label, "pid": os.getpid()}
        record.update(fields)  # the grandchild event overrides "pid"
        record["time"] = time.time()
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)  # one write: concurrent appends never interleave
            if written != len(data):
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)


def _attempt() -> int | str | None:
    value = os.environ.get("WF_ATTEMPT")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


# --------------------------------------------------------------------------- arguments


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _exit_code(text: str) -> int:
    value = _non_negative_int(text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"exit code must be 0..255: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def _fatal_signal(text: str) -> signal.Signals:
    """Parse ``TERM``, ``SIGTERM``, ``term`` or ``15`` into a signal that kills by default."""
    try:
        sig = signal.Signals(int(text)) if text.isdigit() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown signal number: {text}") from None
    if sig is None:
        name = text.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            sig = signal.Signals[name]
        except KeyError:
            raise argparse.ArgumentTypeError(f"unknown signal: {text!r}") from None
    if sig.name in _NON_FATAL_SIGNALS:
        raise argparse.ArgumentTypeError(f"{sig.name} does not terminate a process by default")
    return sig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fault_injection.task",
        description="A deliberately misbehaving step command for testing wf.",
    )
    parser.add_argument("--record", metavar="FILE", help="append JSON event lines to FILE")
    parser.add_argument(
        "--label",
        metavar="NAME",
        default=os.environ.get("WF_STEP_ID") or "task",
        help="label of the records (default: $WF_STEP_ID, else 'task')",
    )
    sub = parser.add_subparsers(dest="behaviour", metavar="BEHAVIOUR", required=True)

    sub.add_parser("ok", help="exit 0")

    p = sub.add_parser("fail", help="exit N (default 1)")
    p.add_argument("--code", type=_exit_code, default=1, metavar="N")

    p = sub.add_parser("fail-first", help="fail the first K executions, then succeed")
    p.add_argument("k", type=_non_negative_int, metavar="K")
    p.add_argument("--code", type=_exit_code, default=1, metavar="N")

    p = sub.add_parser("sleep", help="sleep SEC seconds, then exit 0")
    p.add_argument("seconds", type=_seconds, metavar="SEC")

    sub.add_parser("hang", help="sleep until killed")

    p = sub.add_parser(
        "hang-with-grandchild", help="leave a grandchild in the process group, sleep forever"
    )
    p.add_argument("--pidfile", required=True, metavar="FILE", help="gets the grandchild's pid")

    p = sub.add_parser("ignore-term", help="ignore SIGTERM, print 'ready', sleep SEC, exit 0")
    p.add_argument("seconds", type=_seconds, metavar="SEC")

    p = sub.add_parser("print-lot", help="write BYTES bytes of text lines, exit 0")
    p.add_argument("nbytes", type=_non_negative_int, metavar="BYTES")
    p.add_argument("--stream", choices=("out", "err", "both"), default="out")

    p = sub.add_parser("exit-signal", help="die by signal SIG")
    p.add_argument("sig", type=_fatal_signal, metavar="SIG")

    p = sub.add_parser("daemonize", help="leave a daemon sleeping SEC in its own session, exit 0")
    p.add_argument("seconds", type=_seconds, metavar="SEC")
    p.add_argument("--pidfile", metavar="FILE", help="gets the daemon's pid")
    p.add_argument("--close-fds", action="store_true", help="the daemon closes every fd")

    sub.add_parser("close-fds-hang", help="close every inherited fd, record 'ready', hang")

    return parser


# --------------------------------------------------------------------------- behaviours


def _sleep_forever() -> NoReturn:
    while True:
        time.sleep(3600)


def _write_pidfile(path: str, pid: int) -> None:
    """Write *pid* to *path* atomically: readers see no file or the whole pid."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{pid}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _hang_with_grandchild(rec: _Recorder, pidfile: str) -> NoReturn:
    # Same process group (no new session); stdout/stderr not held open so a reader of the
    # task's output sees EOF when the task dies; every fd the task inherited (stdin, the
    # engine's lock fd, ...) is passed on. Python's own fds are non-inheritable (PEP 446).
    grandchild = subprocess.Popen(
        [sys.executable, "-c", _GRANDCHILD_CODE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=False,
    )
    # Record first: once the pidfile exists, the grandchild record is there too.
    rec.emit("grandchild", pid=grandchild.pid, parent_pid=os.getpid())
    _write_pidfile(pidfile, grandchild.pid)
    _sleep_forever()


def _hold_overlap_lock(rec: _Recorder) -> int | None:
    """Take this label's overlap lock for the whole execution; record an ``overlap`` if held.

    The descriptor is inheritable and never closed, so the lock lasts as long as this process
    and every child that inherited it. Without ``--record`` there is nothing to detect.
    """
    if rec.path is None:
        return None
    fd = os.open(overlap_lock_path(rec.path, rec.label), os.O_RDWR | os.O_CREAT, 0o644)
    os.set_inheritable(fd, True)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        rec.emit("overlap", attempt=_attempt())
    return fd


def _close_fds_except(keep: int | None) -> None:
    """Close descriptors 0.._MAX_FD-1 but ``keep`` (records are appended through fresh fds)."""
    if keep is None:
        os.closerange(0, _MAX_FD)
    else:
        os.closerange(0, keep)
        os.closerange(keep + 1, _MAX_FD)


def _daemonize(rec: _Recorder, seconds: float, pidfile: str | None, close_fds: bool) -> None:
    """Double fork and ``setsid``: the daemon is out of the task's session and process group."""
    sys.stdout.flush()
    sys.stderr.flush()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            _daemon(rec, seconds, pidfile, close_fds)
        os._exit(0)
    os.waitpid(middle, 0)


def _daemon(rec: _Recorder, seconds: float, pidfile: str | None, close_fds: bool) -> NoReturn:
    try:
        if close_fds:
            _close_fds_except(None)
        # Record first: once the pidfile exists, the daemon record is there (and fds closed).
        rec.emit("daemon", sid=os.getsid(0))
        if pidfile is not None:
            _write_pidfile(pidfile, os.getpid())
        time.sleep(seconds)
    finally:
        os._exit(0)


def _close_fds_hang(rec: _Recorder, overlap_fd: int | None) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    _close_fds_except(overlap_fd)
    rec.emit("ready")
    _sleep_forever()


def _print_lot(nbytes: int, stream: str) -> None:
    """Write exactly *nbytes* bytes of newline-terminated text lines to each chosen stream.

    Lines are ``<stream> <line number> ....\\n`` of at most 80 bytes; the last one is
    shortened to fit. With ``both``, the streams are written alternately chunk by chunk so
    a reader that drains only one of them blocks the task.
    """
    names = ["out", "err"] if stream == "both" else [stream]
    targets = {"out": sys.stdout.buffer, "err": sys.stderr.buffer}
    sys.stdout.flush()
    sys.stderr.flush()
    remaining = dict.fromkeys(names, nbytes)
    lineno = dict.fromkeys(names, 0)
    while any(remaining.values()):
        for name in names:
            parts: list[bytes] = []
            size = 0
            while remaining[name] and size < _CHUNK_BYTES:
                length = min(_LINE_BYTES, remaining[name])
                text = f"{name} {lineno[name]:09d} ".ljust(_LINE_BYTES - 1, ".")
                line = text[: length - 1].encode() + b"\n"
                parts.append(line)
                size += length
                remaining[name] -= length
                lineno[name] += 1
            if parts:
                targets[name].write(b"".join(parts))
                targets[name].flush()


def _exit_by_signal(sig: signal.Signals) -> NoReturn:
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource  # Unix only; no core files from SEGV/ABRT/QUIT in the test dirs

        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    if sig not in (signal.SIGKILL, signal.SIGSTOP):
        # Python installs its own handlers (SIGINT) or ignores some (SIGPIPE): restore the
        # default action so the signal terminates the process.
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), sig)
    # POSIX delivers an unblocked signal sent to oneself before kill() returns; this is
    # only a guard against a platform that does not.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print(f"task kit: still alive after {sig.name}", file=sys.stderr)
    os._exit(128 + sig.value)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the task kit; returns the exit code (some behaviours never return)."""
    parser = _parser()
    args = parser.parse_args(argv)
    behaviour: str = args.behaviour
    record: str | None = args.record
    if behaviour == "fail-first" and record is None:
        parser.error("fail-first needs --record FILE to count executions")

    rec = _Recorder(record, args.label)
    rec.emit("start", pgid=os.getpgrp(), attempt=_attempt())
    overlap_fd = _hold_overlap_lock(rec)

    code = 0
    if behaviour == "ok":
        pass
    elif behaviour == "fail":
        code = args.code
        print(f"task kit: {rec.label}: failing with exit code {code}", file=sys.stderr)
    elif behaviour == "fail-first":
        assert record is not None
        execution = count_starts(record, rec.label)  # includes this execution's start
        if execution <= args.k:
            code = args.code
            print(
                f"task kit: {rec.label}: execution {execution} of {args.k} failing ones, "
                f"exit code {code}",
                file=sys.stderr,
            )
    elif behaviour == "sleep":
        time.sleep(args.seconds)
    elif behaviour == "hang":
        _sleep_forever()
    elif behaviour == "hang-with-grandchild":
        _hang_with_grandchild(rec, args.pidfile)
    elif behaviour == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        rec.emit("ready")  # before the stdout line, so a reader of "ready" sees the record
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        time.sleep(args.seconds)
    elif behaviour == "print-lot":
        try:
            _print_lot(args.nbytes, args.stream)
        except BrokenPipeError:
            # The reader went away; keep the interpreter's final flush from failing too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.dup2(devnull, sys.stderr.fileno())
            os.close(devnull)
            code = 1
    elif behaviour == "exit-signal":
        sig: signal.Signals = args.sig
        rec.emit("end", exit_code=-sig.value, signal=sig.name)
        _exit_by_signal(sig)
    elif behaviour == "daemonize":
        _daemonize(rec, args.seconds, args.pidfile, args.close_fds)
    elif behaviour == "close-fds-hang":
        _close_fds_hang(rec, overlap_fd)
    else:  # pragma: no cover - argparse only accepts the behaviours above
        parser.error(f"unknown behaviour {behaviour!r}")

    sys.stdout.flush()
    sys.stderr.flush()
    rec.emit("end", exit_code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
