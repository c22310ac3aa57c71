"""Start ``wf`` commands in milliseconds: fork them from an engine that has already started.

A ``wf`` command spends most of a short run starting Python and importing the engine (about a
third of a second on a 2-core machine); a crash point is two or three commands. So the harness
keeps one *server* process per interpreter environment, which imports the engine once and then
forks a fresh process for each command::

    WfHarness --spawn {argv, env, cwd, umask, out, err}--> server (imported wf_engine, idle)
              <--{pid}-- <--{returncode}--                    |  os.fork()
                                                              v
                                              child: stdio, cwd, umask, environment, signals
                                              reset; runs ``python -m wf_engine ARGV`` (runpy)

The child is a real, separate process running the real CLI from its ``__main__``: a crash
plugin that SIGKILLs it kills exactly the engine, its steps live on in their own sessions, and
``wf resume`` finds what a dead engine left, exactly as after ``subprocess.run``. What differs
from a fresh interpreter: the import happened earlier (the server is keyed by every variable
that may matter at import time, see :func:`server_key`, so an engine never runs with modules
imported under another ``WF_PORTABLE`` or ``PYTHONPATH``), children of one server share its
hash seed, and the child exits through ``os._exit`` after what a normal exit does that anyone
can observe (non-daemon threads joined, ``atexit`` handlers run, open files flushed), skipping
the teardown of every module (30 ms per command).

``PYTEST_WF_LAUNCH=exec`` (or ``--wf-launch exec``, or ``WfHarness(..., launch="exec")``)
starts every command as a new interpreter instead. When the server's control connection
closes (the test process exited, even by SIGKILL), the server kills its children and every
process still tagged by that test process (``pytest_wf.processes``), then exits.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import itertools
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wf_engine.plugins.discovery import installed_digest

__all__ = [
    "ForkServer",
    "ForkServerError",
    "ForkServerUnavailable",
    "can_fork",
    "run_command",
    "server_key",
    "shutdown",
]

#: Variables a command reads when it runs, never at import: they may differ between a server
#: and the commands it forks. So may every variable outside ``_IMPORT_PREFIXES``.
_LATE = frozenset({"WF_PLUGINS", "WF_DISABLED_PLUGINS", "WF_TRACE_PLUGINS", "WF_HOME"})
_LATE_PREFIXES = ("WF_FAULT_", "PYTEST_")
#: Variables that may change what an import does (the interpreter's own, the locale, the
#: engine's): a server serves only commands that agree with it on all of them.
_IMPORT_PREFIXES = ("WF_", "PYTHON", "LC_")
_IMPORT_NAMES = frozenset({"LANG", "LANGUAGE", "TZ", "HOME"})


class ForkServerError(RuntimeError):
    """The server died while it ran a command (the command's fate is unknown)."""


class ForkServerUnavailable(ForkServerError):
    """The server could not start: nothing ran, and a new interpreter can run the command."""


def can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform != "win32"


def server_key(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The part of a command's environment its server must share (see the module docstring)."""
    return tuple(sorted((name, value) for name, value in env.items() if _import_sensitive(name)))


def _import_sensitive(name: str) -> bool:
    if name in _LATE or name.startswith(_LATE_PREFIXES):
        return False
    return name.startswith(_IMPORT_PREFIXES) or name in _IMPORT_NAMES


# --------------------------------------------------------------------------- client side


@dataclass
class _Job:
    argv: list[str]
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    returncode: int | None = None
    error: str | None = None


class ForkServer:
    """A running server and the connection to it (thread-safe: any thread may run commands)."""

    def __init__(self, env: Mapping[str, str], sweep_prefix: str) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="pytest-wf-fork-"))
        mine, theirs = socket.socketpair()
        server_env = {
            k: v for k, v in env.items() if not (k in _LATE or k.startswith(_LATE_PREFIXES))
        }
        try:
            with open(self._scratch / "server.err", "wb") as errors:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", _BOOT, str(theirs.fileno()), sweep_prefix],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    env=server_env,
                    cwd=self._scratch,
                )
        except OSError as error:
            mine.close()
            raise ForkServerUnavailable(f"cannot start the fork server: {error}") from None
        finally:
            theirs.close()
        self._socket = mine
        self._send_lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count(1)
        self._dead: str | None = None
        self._reader = self._socket.makefile("rb")
        first = self._reader.readline()
        if not first.startswith(b"{"):
            self.close()
            raise ForkServerUnavailable(f"the fork server did not start: {self._server_stderr()}")
        threading.Thread(target=self._read, name="pytest-wf-forkserver", daemon=True).start()

    def _server_stderr(self) -> str:
        with contextlib.suppress(OSError):
            return (self._scratch / "server.err").read_text(errors="replace")[-2000:]
        return ""

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        timeout: float | None,
    ) -> subprocess.CompletedProcess[str]:
        """``python -m wf_engine ARGV`` in a forked child; like ``subprocess.run(...,
        capture_output=True, text=True)`` (``TimeoutExpired`` after SIGKILLing the child)."""
        job_id = next(self._ids)
        out, err = self._scratch / f"{job_id}.out", self._scratch / f"{job_id}.err"
        job = _Job(list(argv))
        self._jobs[job_id] = job
        umask = _current_umask()
        request = {
            "op": "spawn",
            "id": job_id,
            "argv": list(argv),
            "env": dict(env),
            "cwd": os.fspath(cwd),
            "umask": umask,
            "stdout": str(out),
            "stderr": str(err),
        }
        try:
            self._send(request)
            finished = job.done.wait(timeout)
            if not finished:
                self._signal(job_id, signal.SIGKILL)
                job.done.wait(30)
        except BaseException:  # Ctrl-C in the test: the command must not outlive it
            self._signal(job_id, signal.SIGKILL)
            raise
        finally:
            self._jobs.pop(job_id, None)
        stdout, stderr = _read_and_remove(out), _read_and_remove(err)
        command = [sys.executable, "-m", "wf_engine", *argv]
        if job.error is not None:
            raise ForkServerError(f"{job.error} (running {command})")
        if not finished:
            raise subprocess.TimeoutExpired(command, timeout or 0, stdout, stderr)
        assert job.returncode is not None
        return subprocess.CompletedProcess(command, job.returncode, stdout, stderr)

    def _send(self, message: dict[str, Any]) -> None:
        if self._dead is not None:
            raise ForkServerError(self._dead)
        data = json.dumps(message).encode() + b"\n"
        with self._send_lock:
            try:
                self._socket.sendall(data)
            except OSError as error:
                raise ForkServerError(f"the fork server is gone: {error}") from None

    def _signal(self, job_id: int, signum: int) -> None:
        with contextlib.suppress(ForkServerError):
            self._send({"op": "signal", "id": job_id, "signum": int(signum)})

    def _read(self) -> None:
        for line in self._reader:
            message = json.loads(line)
            job = self._jobs.get(message.get("id", -1))
            if job is None:
                continue
            if "pid" in message:
                job.pid = message["pid"]
                job.started.set()
            elif "returncode" in message:
                job.returncode = message["returncode"]
                job.done.set()
            elif "error" in message:
                job.error = message["error"]
                job.done.set()
        self._dead = f"the fork server exited: {self._server_stderr()}".strip()
        for job in list(self._jobs.values()):
            job.error = job.error or self._dead
            job.done.set()

    @property
    def alive(self) -> bool:
        return self._dead is None and self.process.poll() is None

    @property
    def idle(self) -> bool:
        """No command of this server is running (it may be retired)."""
        return not self._jobs

    def retire(self) -> None:
        """Stop an idle server for good: unlike ``close``, it leaves every tagged process alone
        (the test session goes on; its background runs are not this server's)."""
        with contextlib.suppress(ForkServerError):
            self._send({"op": "retire"})
        self.close()

    def close(self) -> None:
        """Close the connection: the server kills what it started and exits."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # EOF now, whatever still holds the socket
        with contextlib.suppress(OSError):
            self._socket.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            for path in self._scratch.iterdir():
                path.unlink()
            self._scratch.rmdir()


def _current_umask() -> int:
    """This process's umask (without changing it where the system can tell)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def _read_and_remove(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    with contextlib.suppress(OSError):
        path.unlink()
    return text


_SERVERS: dict[tuple[Any, ...], ForkServer] = {}
_LOCK = threading.Lock()
#: Servers kept at once: one per environment a session used, each an idle interpreter of
#: about 25 MB; past this many, the least recently used idle one is retired.
MAX_SERVERS = 6


def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | os.PathLike[str],
    timeout: float | None,
    sweep_prefix: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``wf ARGV`` through this process's server for ``env`` (started on first use)."""
    # A package installed since a server started (a plugin, say) is not on its import path
    # (``.pth`` files are read at start-up): a changed set of distributions gets a new server.
    key = (server_key(env), sys.executable, sweep_prefix, _installed())
    with _LOCK:
        server = _SERVERS.pop(key, None)  # put back last: the dict is in order of use
        if server is None or not server.alive:
            server = ForkServer(env, sweep_prefix)
        _SERVERS[key] = server
        retired = _over_the_limit()
    for old in retired:
        old.retire()
    return server.run(argv, env, cwd, timeout)


_DIGEST: dict[tuple[tuple[str, int], ...], str] = {}


def _installed() -> str:
    """``installed_digest()`` (a few ms: a look at every distribution), looked up again only
    when a folder on ``sys.path`` changed, as installing or removing a package changes it."""
    folders: list[tuple[str, int]] = []
    for path in sys.path:
        with contextlib.suppress(OSError):
            folders.append((path, os.stat(path or os.curdir).st_mtime_ns))
    key = tuple(folders)
    if key not in _DIGEST:
        _DIGEST.clear()
        _DIGEST[key] = installed_digest()
    return _DIGEST[key]


def _over_the_limit() -> list[ForkServer]:
    """Take the least recently used idle servers beyond ``MAX_SERVERS`` out of ``_SERVERS``
    (the last one, just used, stays)."""
    excess = len(_SERVERS) - MAX_SERVERS
    keys = [key for key, server in list(_SERVERS.items())[:-1] if server.idle][: max(0, excess)]
    return [_SERVERS.pop(key) for key in keys]


def shutdown() -> None:
    """Close every server of this process (each kills what it started)."""
    with _LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for server in servers:
        server.close()


def _forget_in_child() -> None:
    """A process forked from a test process must not share its servers' connections."""
    _SERVERS.clear()


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


# --------------------------------------------------------------------------- server side

_BOOT = "import sys; from pytest_wf.forkserver import serve; serve(int(sys.argv[1]), sys.argv[2])"


def serve(fd: int, sweep_prefix: str) -> None:
    """The server's loop: fork a ``wf`` command per request, report its pid and exit status."""
    _preload()
    if threading.active_count() > 1:  # an import started a thread: forking would not be safe
        print("pytest_wf fork server: an import started a thread; not forking", file=sys.stderr)
        return
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # children then leave these objects' pages shared
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the test process's to handle
    control = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    server = _Server(control, selector, (wake_r, wake_w))
    server.reply({"ready": os.getpid()})
    server.loop()
    server.stop("" if server.retiring else sweep_prefix)


#: Engine modules never imported ahead: optional extras (they may be absent, heavy, or start
#: threads of their own).
_NOT_PRELOADED = ("dask",)


def _preload() -> None:
    """Import the engine's modules once, so that no forked command pays for them.

    The CLI imports a command's modules only when it runs; the server imports them all up front
    (``__main__`` aside: it is run, not imported). A module that fails to import is left to the
    command that needs it, which then reports the error as a fresh interpreter would.
    """
    import importlib
    import pkgutil

    import wf_engine

    importlib.import_module("wf_engine.cli")
    for module in pkgutil.walk_packages(wf_engine.__path__, "wf_engine."):
        name = module.name
        if name.endswith(".__main__") or any(part in name for part in _NOT_PRELOADED):
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(name)


class _Server:
    def __init__(
        self, control: socket.socket, selector: selectors.BaseSelector, wake: tuple[int, int]
    ) -> None:
        self.control = control
        self.selector = selector
        self.wake = wake
        self.children: dict[int, int] = {}  # pid -> request id
        self.buffer = b""
        #: Asked to exit while the test session goes on: nothing tagged is swept.
        self.retiring = False

    def reply(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(json.dumps(message).encode() + b"\n")

    def loop(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    data = self.control.recv(1 << 16)
                    if not data:
                        return
                    self.buffer += data
                    while b"\n" in self.buffer:
                        line, self.buffer = self.buffer.split(b"\n", 1)
                        self.handle(json.loads(line))
                else:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake[0], 4096):
                            pass
                    self.reap()

    def handle(self, request: dict[str, Any]) -> None:
        if request["op"] == "retire":
            self.retiring = True
            return
        if request["op"] == "signal":
            for pid, job in self.children.items():
                if job == request["id"]:
                    with contextlib.suppress(OSError):
                        os.kill(pid, request["signum"])
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as error:
            self.reply({"id": request["id"], "error": f"fork failed: {error}"})
            return
        if pid == 0:
            self.become_command(request)  # never returns
        self.children[pid] = request["id"]
        self.reply({"id": request["id"], "pid": pid})

    def reap(self) -> None:
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                job = self.children.pop(pid)
                self.reply({"id": job, "returncode": os.waitstatus_to_exitcode(status)})

    def stop(self, sweep_prefix: str) -> None:
        """The test process went away (or retired this server): kill what it started, then
        everything it tagged (``sweep_prefix``; "" for a retired server)."""
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
        if sweep_prefix:
            from pytest_wf.processes import kill_tagged

            kill_tagged(sweep_prefix)

    # -- in the child ----------------------------------------------------------------------

    def become_command(self, request: dict[str, Any]) -> None:
        """Turn this fresh fork into ``python -m wf_engine ARGV``; exits, never returns."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
            self.selector.close()
            self.control.close()
            for fd in self.wake:
                os.close(fd)
            _redirect(request["stdout"], request["stderr"])
            os.chdir(request["cwd"])
            os.umask(request["umask"])
            os.environ.clear()
            os.environ.update(request["env"])
            if not getattr(sys.flags, "safe_path", False) and not sys.flags.isolated:
                sys.path[0] = os.getcwd()  # as ``python -m`` puts it
            import importlib

            importlib.invalidate_caches()
            code = _run_main(request["argv"])
        except BaseException:  # the child must never return into the server's loop
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            _finish(code)


def _redirect(stdout: str, stderr: str) -> None:
    """stdin from /dev/null, stdout and stderr to the files; close every other descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for target, path, how in ((0, os.devnull, os.O_RDONLY), (1, stdout, flags), (2, stderr, flags)):
        fd = os.open(path, how, 0o600)
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.close(fd)


def _run_main(argv: list[str]) -> int:
    """``python -m wf_engine ARGV``: its ``__main__`` as the main module; the exit code."""
    import runpy

    sys.argv = ["wf_engine", *argv]
    try:
        runpy.run_module("wf_engine", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return _exit_code(done.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        _flush_std()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as Python does: die by the signal
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(code: int) -> None:
    """What a normal exit does that anyone can see, then ``os._exit``."""
    with contextlib.suppress(BaseException):
        shutdown_threads = getattr(threading, "_shutdown", None)
        if shutdown_threads is not None:
            shutdown_threads()  # join non-daemon threads, as the interpreter does at exit
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        for obj in gc.get_objects():
            if isinstance(obj, io.BufferedWriter | io.TextIOWrapper) and not obj.closed:
                with contextlib.suppress(BaseException):
                    obj.flush()
    _flush_std()
    os._exit(code)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            if stream is not None:
                stream.flush()
