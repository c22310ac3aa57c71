"""Opening a run-store file for reading: regular files only, never blocking, never following.

Everything in a run folder that a command reads (``events.jsonl``, attempt output, the cancel
request, lock files) is a regular file the engine made. Anything else in its place — a FIFO, a
directory, a device, a symbolic link — is damage, and reading it the usual way can hang forever
(opening a FIFO waits for a writer) or read somewhere outside the store. So the file is opened
with ``O_NONBLOCK | O_NOFOLLOW``, checked with ``fstat`` on the descriptor actually opened (no
race between the check and the read), and refused with a ``StoreError`` (exit 4) naming it.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from wf_engine.errors import StoreError

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def open_regular_fd(path: str) -> int:
    """A read-only descriptor on the regular file ``path``, or ``StoreError`` if it is not one.

    Never blocks and never follows a symbolic link. Other ``OSError``\\ s (``FileNotFoundError``,
    ``PermissionError`` …) propagate unchanged, so callers can treat a missing file as they
    must. ``O_NONBLOCK`` stays set: it changes nothing for a regular file.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        # A symbolic link (ELOOP under O_NOFOLLOW), a socket (ENXIO) …: say what is there.
        kind = _special_kind(path)
        if kind is not None:
            raise not_regular(path, kind) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise not_regular(path, kind_of(mode))
    return fd


def open_regular(path: str) -> BinaryIO:
    """``open_regular_fd`` as a buffered binary file object (``with open_regular(p) as f: …``)."""
    return os.fdopen(open_regular_fd(path), "rb")


def not_regular(path: str, kind: str) -> StoreError:
    """The error for a run-store file that is ``kind`` instead of a regular file."""
    return StoreError(f"{path}: not a regular file ({kind}); refusing to read it")


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _special_kind(path: str) -> str | None:
    """What ``path`` is if it exists and is no regular file (``lstat``: never follows, blocks)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else kind_of(mode)
