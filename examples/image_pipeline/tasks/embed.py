"""Step ``embed``: a small hand-made feature vector for the preprocessed image.

Features: a 16-bin intensity histogram (sums to 1), mean and standard deviation of each quadrant
(scaled to 0-1), and an 8-bin gradient-orientation histogram weighted by gradient magnitude (sums
to 1). ``vector`` is their concatenation, L2-normalised. Reads ``preprocessed.png``, writes
``embedding.json`` including this step's own start/end times.

The step lasts at least ``MIN_PARALLEL_STEP_SEC`` so that, when the engine runs it alongside
``classify``, the overlap is visible in the timings.
"""

from __future__ import annotations

import math
import os
import time

from _common import (
    EMBEDDING_JSON,
    MIN_PARALLEL_STEP_SEC,
    PREPROCESSED_PNG,
    attempt,
    gradients,
    hold_until,
    log,
    out_dir,
    read_png,
    to_gray,
    write_json,
)

HISTOGRAM_BINS = 16
ORIENTATION_BINS = 8


def intensity_histogram(values: list[float], bins: int) -> list[float]:
    counts = [0] * bins
    for v in values:
        counts[min(int(v * bins / 256), bins - 1)] += 1
    return [c / len(values) for c in counts]


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def quadrant_stats(values: list[float], width: int, height: int) -> dict[str, dict[str, float]]:
    """Mean and std of each quadrant, scaled from 0-255 to 0-1."""
    half_w, half_h = width // 2, height // 2
    boxes = {
        "top_left": (0, 0, half_w, half_h),
        "top_right": (half_w, 0, width, half_h),
        "bottom_left": (0, half_h, half_w, height),
        "bottom_right": (half_w, half_h, width, height),
    }
    stats: dict[str, dict[str, float]] = {}
    for name, (x0, y0, x1, y1) in boxes.items():
        region = [values[y * width + x] for y in range(y0, y1) for x in range(x0, x1)]
        mean, std = mean_std(region)
        stats[name] = {"mean": mean / 255, "std": std / 255}
    return stats


def orientation_histogram(gx: list[float], gy: list[float], bins: int) -> list[float]:
    """Unsigned gradient orientations (0-180 degrees), weighted by magnitude."""
    weights = [0.0] * bins
    for dx, dy in zip(gx, gy, strict=True):
        magnitude = math.hypot(dx, dy)
        if magnitude == 0:
            continue
        angle = math.atan2(dy, dx) % math.pi
        weights[min(int(angle / math.pi * bins), bins - 1)] += magnitude
    total = sum(weights)
    return [w / total for w in weights] if total else weights


def main() -> None:
    started_at = time.time()
    started = time.monotonic()
    out = out_dir()
    image = read_png(out / PREPROCESSED_PNG, producer="preprocess")
    log(f"embedding {image.width}x{image.height} {image.mode} image (attempt {attempt()})")

    values = to_gray(image)
    histogram = intensity_histogram(values, HISTOGRAM_BINS)
    quadrants = quadrant_stats(values, image.width, image.height)
    gx, gy = gradients(values, image.width, image.height)
    orientations = orientation_histogram(gx, gy, ORIENTATION_BINS)

    raw = histogram + [s for q in quadrants.values() for s in (q["mean"], q["std"])] + orientations
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    vector = [round(v / norm, 6) for v in raw]

    hold_until(started, MIN_PARALLEL_STEP_SEC)
    finished_at = time.time()
    write_json(
        out / EMBEDDING_JSON,
        {
            "dimensions": len(vector),
            "vector": vector,
            "histogram": [round(v, 6) for v in histogram],
            "quadrants": {
                name: {k: round(v, 6) for k, v in stat.items()} for name, stat in quadrants.items()
            },
            "orientations": [round(v, 6) for v in orientations],
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_sec": round(finished_at - started_at, 3),
            "attempt": attempt(),
            "pid": os.getpid(),
        },
    )
    log(f"wrote {out / EMBEDDING_JSON} ({len(vector)} dims, {finished_at - started_at:.2f} s)")


if __name__ == "__main__":
    main()
