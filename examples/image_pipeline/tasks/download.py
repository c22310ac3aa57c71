"""Step ``download``: "fetch" the source image.

There is no network access here: the image is synthesised deterministically (a colour gradient
with a few shapes placed by a fixed-seed RNG), so every run and every retry produce byte-identical
output. Writes ``original.png`` and ``source.json`` (seed, size, shapes, SHA-256 of the PNG).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from _common import (
    ORIGINAL_PNG,
    SOURCE_JSON,
    Image,
    atomic_write_bytes,
    attempt,
    encode_png,
    log,
    out_dir,
    write_json,
)

SEED = 20240611
SIZE = 96


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def synthesise(size: int, seed: int) -> tuple[Image, list[dict[str, Any]]]:
    """A ``size`` x ``size`` RGB image and the list of shapes drawn on it."""
    rng = random.Random(seed)
    pixels = bytearray(size * size * 3)
    top = size - 1
    for y in range(size):
        for x in range(size):
            i = (y * size + x) * 3
            pixels[i] = 40 + 180 * x // top
            pixels[i + 1] = 30 + 150 * y // top
            pixels[i + 2] = 200 - 160 * (x + y) // (2 * top)

    shapes: list[dict[str, Any]] = []
    for _ in range(3):
        shapes.append(
            {
                "kind": "circle",
                "cx": rng.randrange(12, size - 12),
                "cy": rng.randrange(12, size - 12),
                "r": rng.randrange(6, 18),
                "colour": _random_colour(rng),
            }
        )
    for _ in range(2):
        x0, y0 = rng.randrange(0, size - 24), rng.randrange(0, size - 24)
        shapes.append(
            {
                "kind": "rect",
                "x0": x0,
                "y0": y0,
                "x1": x0 + rng.randrange(10, 24),
                "y1": y0 + rng.randrange(10, 24),
                "colour": _random_colour(rng),
            }
        )

    for shape in shapes:
        for y in range(size):
            for x in range(size):
                if shape["kind"] == "circle":
                    inside = (x - shape["cx"]) ** 2 + (y - shape["cy"]) ** 2 <= shape["r"] ** 2
                else:
                    inside = shape["x0"] <= x < shape["x1"] and shape["y0"] <= y < shape["y1"]
                if inside:
                    i = (y * size + x) * 3
                    pixels[i : i + 3] = bytes(shape["colour"])
    return Image(size, size, 3, bytes(pixels)), shapes


def main() -> None:
    out = out_dir()
    log(f"synthesising {SIZE}x{SIZE} RGB image (seed {SEED}, attempt {attempt()})")
    image, shapes = synthesise(SIZE, SEED)
    png = encode_png(image)
    atomic_write_bytes(out / ORIGINAL_PNG, png)
    write_json(
        out / SOURCE_JSON,
        {
            "seed": SEED,
            "width": image.width,
            "height": image.height,
            "mode": image.mode,
            "shapes": shapes,
            "sha256": hashlib.sha256(png).hexdigest(),
            "bytes": len(png),
        },
    )
    log(f"wrote {out / ORIGINAL_PNG} ({len(png)} bytes, {len(shapes)} shapes)")


if __name__ == "__main__":
    main()
