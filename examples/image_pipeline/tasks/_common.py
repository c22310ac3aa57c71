"""Helpers shared by the image_pipeline tasks: run folder, atomic writes, a tiny PNG codec.

Every task is run by the engine as ``python3 tasks/<name>.py`` from the folder holding
``workflow.json``, so this module is importable as ``_common`` (the script's own folder is on
``sys.path``). Standard library only.

Files a task writes are written atomically (temp file in the same folder, fsync, ``os.replace``):
a step killed by a timeout or a cancel, then retried, never leaves a half-written file that a
later step could read.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

#: File names inside ``out/<run id>/``, one per artifact, shared so producers and consumers agree.
ORIGINAL_PNG = "original.png"
SOURCE_JSON = "source.json"
PREPROCESSED_PNG = "preprocessed.png"
EMBEDDING_JSON = "embedding.json"
CLASSIFICATION_JSON = "classification.json"
REPORT_HTML = "report.html"

#: embed and classify each last at least this long, so their overlap is visible in a parallel run.
MIN_PARALLEL_STEP_SEC = 0.8

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE_BY_CHANNELS = {1: 0, 3: 2}  # grayscale, truecolour
_CHANNELS_BY_COLOR_TYPE = {v: k for k, v in _COLOR_TYPE_BY_CHANNELS.items()}


# --------------------------------------------------------------------------------------------
# Run context
# --------------------------------------------------------------------------------------------


def run_id() -> str:
    """The engine's run id, or ``manual`` when the task is run by hand."""
    return os.environ.get("WF_RUN_ID") or "manual"


def step_name() -> str:
    """The step id given by the engine, or the script's name when run by hand."""
    return os.environ.get("WF_STEP_ID") or Path(sys.argv[0]).stem


def attempt() -> int:
    """The engine's attempt number (1, 2, ...), 1 when unset or malformed."""
    try:
        return max(1, int(os.environ.get("WF_ATTEMPT", "1")))
    except ValueError:
        return 1


def out_dir() -> Path:
    """``out/<run id>/`` relative to the current directory, created if needed."""
    path = Path("out") / run_id()
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str) -> None:
    """One progress line on stdout, prefixed with the step name."""
    print(f"{step_name()}: {message}", flush=True)


def fail(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit with status 1."""
    print(f"{step_name()}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def require_file(path: Path, producer: str) -> Path:
    """Return ``path`` if it is a file, else fail naming the step that should have written it."""
    if not path.is_file():
        fail(
            f"missing input {path} (written by step {producer!r}; "
            f"has it succeeded for run {run_id()!r}?)"
        )
    return path


def hold_until(started_monotonic: float, min_seconds: float) -> None:
    """Sleep until at least ``min_seconds`` have passed since ``started_monotonic``."""
    remaining = started_monotonic + min_seconds - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


# --------------------------------------------------------------------------------------------
# Atomic writes and JSON
# --------------------------------------------------------------------------------------------


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file, or all of the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, producer: str) -> dict[str, Any]:
    """Load a JSON object written by step ``producer``; fail clearly if missing or malformed."""
    require_file(path, producer)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"cannot read {path} (written by step {producer!r}): {exc}")
    if not isinstance(value, dict):
        fail(f"{path} (written by step {producer!r}) is not a JSON object")
    return value


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; a no-op where directories cannot be opened (not POSIX)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Images and PNG (8-bit grayscale or RGB, no interlace, filter type 0 only)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """Row-major 8-bit pixels; ``channels`` is 1 (grayscale) or 3 (RGB, interleaved)."""

    width: int
    height: int
    channels: int
    pixels: bytes

    def __post_init__(self) -> None:
        if self.channels not in _COLOR_TYPE_BY_CHANNELS:
            raise ValueError(f"unsupported channel count {self.channels}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"bad size {self.width}x{self.height}")
        expected = self.width * self.height * self.channels
        if len(self.pixels) != expected:
            raise ValueError(f"expected {expected} pixel bytes, got {len(self.pixels)}")

    @property
    def mode(self) -> str:
        return "gray" if self.channels == 1 else "RGB"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image: Image) -> bytes:
    """Encode ``image`` as a PNG: one IDAT chunk, every row with filter type 0 (None)."""
    stride = image.width * image.channels
    raw = bytearray()
    for y in range(image.height):
        raw.append(0)
        raw += image.pixels[y * stride : (y + 1) * stride]
    ihdr = struct.pack(
        ">IIBBBBB", image.width, image.height, 8, _COLOR_TYPE_BY_CHANNELS[image.channels], 0, 0, 0
    )
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + _chunk(b"IEND", b"")
    )


def decode_png(data: bytes) -> Image:
    """Decode a PNG written by :func:`encode_png`; raise ``ValueError`` for anything else."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    pos = len(_PNG_SIGNATURE)
    header: tuple[int, ...] | None = None
    idat = bytearray()
    while True:
        if pos + 8 > len(data):
            raise ValueError("truncated PNG (no IEND chunk)")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc_bytes = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            raise ValueError(f"truncated PNG chunk {kind!r}")
        if struct.unpack(">I", crc_bytes)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"bad CRC in PNG chunk {kind!r}")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG has no IHDR chunk")
    width, height, depth, color_type, compression, filter_method, interlace = header
    if depth != 8 or color_type not in _CHANNELS_BY_COLOR_TYPE:
        raise ValueError(f"unsupported PNG format (bit depth {depth}, colour type {color_type})")
    if compression != 0 or filter_method != 0 or interlace != 0:
        raise ValueError("unsupported PNG format (interlaced or non-standard compression)")
    channels = _CHANNELS_BY_COLOR_TYPE[color_type]
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as exc:
        raise ValueError(f"corrupt PNG image data: {exc}") from None
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG image data has the wrong length")
    pixels = bytearray()
    for y in range(height):
        row_start = y * (stride + 1)
        if raw[row_start] != 0:
            raise ValueError(f"unsupported PNG row filter type {raw[row_start]} (only 0 is read)")
        pixels += raw[row_start + 1 : row_start + 1 + stride]
    return Image(width, height, channels, bytes(pixels))


def write_png(path: Path, image: Image) -> None:
    atomic_write_bytes(path, encode_png(image))


def read_png(path: Path, producer: str) -> Image:
    """Load a PNG written by step ``producer``; fail clearly if missing or unreadable."""
    require_file(path, producer)
    try:
        return decode_png(path.read_bytes())
    except (OSError, ValueError) as exc:
        fail(f"cannot read image {path} (written by step {producer!r}): {exc}")


def to_gray(image: Image) -> list[float]:
    """Luma (ITU-R BT.601) of every pixel, 0.0-255.0, row-major."""
    if image.channels == 1:
        return [float(v) for v in image.pixels]
    px = image.pixels
    return [0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2] for i in range(0, len(px), 3)]


def gradients(values: list[float], width: int, height: int) -> tuple[list[float], list[float]]:
    """Sobel x and y derivatives of a single-channel image (edges replicated)."""

    def at(x: int, y: int) -> float:
        return values[min(max(y, 0), height - 1) * width + min(max(x, 0), width - 1)]

    gx: list[float] = []
    gy: list[float] = []
    for y in range(height):
        for x in range(width):
            left = at(x - 1, y - 1) + 2 * at(x - 1, y) + at(x - 1, y + 1)
            right = at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1)
            above = at(x - 1, y - 1) + 2 * at(x, y - 1) + at(x + 1, y - 1)
            below = at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1)
            gx.append(right - left)
            gy.append(below - above)
    return gx, gy
