"""Step ``classify``: a transparent rule-based classifier over the preprocessed image.

Each label gets a score in [0, 1] from one simple statistic; every label scoring at least
``THRESHOLD`` is assigned, and ``top_label`` is the highest-scoring one. Reads
``preprocessed.png``, writes ``classification.json`` including this step's own start/end times.

The step lasts at least ``MIN_PARALLEL_STEP_SEC`` so that, when the engine runs it alongside
``embed``, the overlap is visible in the timings.
"""

from __future__ import annotations

import math
import os
import time

from _common import (
    CLASSIFICATION_JSON,
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

THRESHOLD = 0.5
#: Sobel magnitude above which a pixel counts as an edge (max is about 4 * 255 * sqrt 2).
EDGE_MAGNITUDE = 200.0

RULES = {
    "bright": "mean intensity / 255",
    "dark": "1 - mean intensity / 255",
    "high-contrast": "intensity std / 80, capped at 1",
    "textured": f"share of pixels with Sobel magnitude > {EDGE_MAGNITUDE:g}, / 0.25, capped at 1",
}


def clamp01(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def main() -> None:
    started_at = time.time()
    started = time.monotonic()
    out = out_dir()
    image = read_png(out / PREPROCESSED_PNG, producer="preprocess")
    log(f"classifying {image.width}x{image.height} {image.mode} image (attempt {attempt()})")

    values = to_gray(image)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    gx, gy = gradients(values, image.width, image.height)
    edges = sum(1 for dx, dy in zip(gx, gy, strict=True) if math.hypot(dx, dy) > EDGE_MAGNITUDE)
    edge_density = edges / len(values)

    scores = {
        "bright": clamp01(mean / 255),
        "dark": clamp01(1 - mean / 255),
        "high-contrast": clamp01(std / 80),
        "textured": clamp01(edge_density / 0.25),
    }
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    labels = [name for name, score in ranked if score >= THRESHOLD]
    top_label = ranked[0][0]

    hold_until(started, MIN_PARALLEL_STEP_SEC)
    finished_at = time.time()
    write_json(
        out / CLASSIFICATION_JSON,
        {
            "top_label": top_label,
            "labels": labels,
            "threshold": THRESHOLD,
            "scores": {name: round(score, 4) for name, score in ranked},
            "rules": RULES,
            "statistics": {
                "mean": round(mean, 3),
                "std": round(std, 3),
                "edge_density": round(edge_density, 4),
            },
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_sec": round(finished_at - started_at, 3),
            "attempt": attempt(),
            "pid": os.getpid(),
        },
    )
    log(
        f"wrote {out / CLASSIFICATION_JSON}: top {top_label!r}, labels {labels} "
        f"({finished_at - started_at:.2f} s)"
    )


if __name__ == "__main__":
    main()
