"""Step ``preprocess``: grayscale, resize to 64x64 (bilinear), then a 2-98 % contrast stretch.

Reads ``original.png`` (from ``download``), writes ``preprocessed.png`` (8-bit grayscale).
"""

from __future__ import annotations

from _common import (
    ORIGINAL_PNG,
    PREPROCESSED_PNG,
    Image,
    log,
    out_dir,
    read_png,
    to_gray,
    write_png,
)

TARGET = 64
LOW_PERCENTILE = 2.0
HIGH_PERCENTILE = 98.0


def resize_bilinear(
    values: list[float], width: int, height: int, new_w: int, new_h: int
) -> list[float]:
    """Bilinear resampling of a single-channel image, pixel centres aligned."""
    out: list[float] = []
    for y in range(new_h):
        sy = min(max((y + 0.5) * height / new_h - 0.5, 0.0), height - 1.0)
        y0 = int(sy)
        y1 = min(y0 + 1, height - 1)
        fy = sy - y0
        for x in range(new_w):
            sx = min(max((x + 0.5) * width / new_w - 0.5, 0.0), width - 1.0)
            x0 = int(sx)
            x1 = min(x0 + 1, width - 1)
            fx = sx - x0
            top = values[y0 * width + x0] * (1 - fx) + values[y0 * width + x1] * fx
            bottom = values[y1 * width + x0] * (1 - fx) + values[y1 * width + x1] * fx
            out.append(top * (1 - fy) + bottom * fy)
    return out


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    index = round(pct / 100 * (len(sorted_values) - 1))
    return sorted_values[index]


def contrast_stretch(values: list[float]) -> tuple[list[float], float, float]:
    """Map the [low, high] percentile range onto [0, 255], clipping outside it."""
    ordered = sorted(values)
    low, high = percentile(ordered, LOW_PERCENTILE), percentile(ordered, HIGH_PERCENTILE)
    if high - low < 1e-6:  # flat image: nothing to stretch
        return list(values), low, high
    scale = 255.0 / (high - low)
    return [min(max((v - low) * scale, 0.0), 255.0) for v in values], low, high


def main() -> None:
    out = out_dir()
    source = read_png(out / ORIGINAL_PNG, producer="download")
    gray = to_gray(source)
    small = resize_bilinear(gray, source.width, source.height, TARGET, TARGET)
    stretched, low, high = contrast_stretch(small)
    result = Image(TARGET, TARGET, 1, bytes(round(v) for v in stretched))
    write_png(out / PREPROCESSED_PNG, result)
    log(
        f"{source.width}x{source.height} {source.mode} -> {TARGET}x{TARGET} gray, "
        f"stretched [{low:.1f}, {high:.1f}] -> [0, 255]"
    )
    log(f"wrote {out / PREPROCESSED_PNG}")


if __name__ == "__main__":
    main()
