"""Step ``publish``: gather every artifact of the run into one self-contained HTML report.

Reads ``original.png``, ``preprocessed.png``, ``embedding.json`` and ``classification.json``
(plus ``source.json`` when present), writes ``report.html`` with the images embedded as base64
``data:`` URIs, and prints the report's path as the last line on stdout.
"""

from __future__ import annotations

import base64
import time
from html import escape
from pathlib import Path
from typing import Any

from _common import (
    CLASSIFICATION_JSON,
    EMBEDDING_JSON,
    ORIGINAL_PNG,
    PREPROCESSED_PNG,
    REPORT_HTML,
    SOURCE_JSON,
    atomic_write_text,
    fail,
    log,
    out_dir,
    read_json,
    read_png,
    require_file,
    run_id,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.images { display: flex; gap: 2rem; flex-wrap: wrap; }
figure { margin: 0; } figcaption { font-size: .85rem; color: #555; }
img { image-rendering: pixelated; border: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: .2rem .6rem; text-align: left; }
th { border-bottom: 1px solid #ccc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #4a7bd0; height: .8rem; }
.hist { display: flex; align-items: flex-end; gap: 2px; height: 6rem;
        border-bottom: 1px solid #999; }
.hist div { background: #4a7bd0; width: 1.2rem; }
code { font-size: .8rem; word-break: break-all; }
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def timing(doc: dict[str, Any], name: str) -> tuple[float, float]:
    start, end = doc.get("started_at"), doc.get("finished_at")
    if not isinstance(start, int | float) or not isinstance(end, int | float) or end < start:
        fail(f"{name} output has no valid started_at/finished_at times")
    return float(start), float(end)


def figure(path: Path, producer: str, caption: str, scale: int) -> str:
    image = read_png(path, producer)  # decoding also proves the file is a complete PNG
    return (
        f'<figure><img src="{data_uri(path)}" width="{image.width * scale}" '
        f'height="{image.height * scale}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)} &mdash; {image.width}x{image.height} {image.mode}"
        "</figcaption></figure>"
    )


def classification_section(doc: dict[str, Any]) -> str:
    scores: dict[str, float] = doc.get("scores", {})
    rules: dict[str, str] = doc.get("rules", {})
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td class=num>{score:.3f}</td>"
        f'<td style="width:12rem"><div class=bar style="width:{score * 100:.1f}%"></div></td>'
        f"<td>{escape(rules.get(name, ''))}</td></tr>"
        for name, score in scores.items()
    )
    labels = ", ".join(escape(str(label)) for label in doc.get("labels", [])) or "none"
    return (
        f"<p>Top label: <strong>{escape(str(doc.get('top_label', '?')))}</strong>; "
        f"labels scoring &ge; {doc.get('threshold', '?')}: {labels}.</p>"
        "<table><tr><th>label</th><th>score</th><th></th><th>rule</th></tr>"
        f"{rows}</table>"
    )


def embedding_section(doc: dict[str, Any]) -> str:
    histogram: list[float] = doc.get("histogram", [])
    peak = max(histogram, default=0.0) or 1.0
    bars = "".join(
        f'<div title="bin {i}: {v:.3f}" style="height:{v / peak * 100:.1f}%"></div>'
        for i, v in enumerate(histogram)
    )
    quadrant_rows = "".join(
        f"<tr><td>{escape(name)}</td><td class=num>{q['mean']:.3f}</td>"
        f"<td class=num>{q['std']:.3f}</td></tr>"
        for name, q in doc.get("quadrants", {}).items()
    )
    vector = ", ".join(f"{v:.4f}" for v in doc.get("vector", []))
    return (
        f"<p>{doc.get('dimensions', '?')}-dimensional vector: 16-bin intensity histogram, "
        "quadrant mean/std, 8-bin gradient orientation histogram, L2-normalised.</p>"
        f'<h3>Intensity histogram</h3><div class="hist">{bars}</div>'
        "<h3>Quadrants</h3><table><tr><th>quadrant</th><th>mean</th><th>std</th></tr>"
        f"{quadrant_rows}</table>"
        f"<h3>Vector</h3><p><code>[{vector}]</code></p>"
    )


def timing_section(embedding: dict[str, Any], classification: dict[str, Any]) -> str:
    spans = {
        "embed": timing(embedding, "embed"),
        "classify": timing(classification, "classify"),
    }
    origin = min(start for start, _ in spans.values())
    overlap = max(0.0, min(end for _, end in spans.values()) - max(s for s, _ in spans.values()))
    rows = "".join(
        f"<tr><td>{name}</td><td class=num>{start - origin:.3f}</td>"
        f"<td class=num>{end - origin:.3f}</td><td class=num>{end - start:.3f}</td></tr>"
        for name, (start, end) in spans.items()
    )
    verdict = "ran in parallel" if overlap > 0 else "ran one after the other"
    return (
        "<table><tr><th>step</th><th>start (s)</th><th>end (s)</th><th>duration (s)</th></tr>"
        f"{rows}</table><p>Overlap: {overlap:.3f} s &mdash; embed and classify {verdict}.</p>"
    )


def source_section(out: Path) -> str:
    if not (out / SOURCE_JSON).is_file():
        return ""
    source = read_json(out / SOURCE_JSON, producer="download")
    return (
        f"<p>Synthesised by <code>download</code> with seed {escape(str(source.get('seed')))}, "
        f"{len(source.get('shapes', []))} shapes; PNG SHA-256 "
        f"<code>{escape(str(source.get('sha256')))}</code>.</p>"
    )


def render(out: Path, embedding: dict[str, Any], classification: dict[str, Any]) -> str:
    title = f"image_pipeline report \u2014 run {run_id()}"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>Generated {escape(generated)}.</p>"
        "<h2>Images</h2><div class=images>"
        f"{figure(out / ORIGINAL_PNG, 'download', 'original', 3)}"
        f"{figure(out / PREPROCESSED_PNG, 'preprocess', 'preprocessed', 4)}"
        f"</div>{source_section(out)}"
        f"<h2>Classification</h2>{classification_section(classification)}"
        f"<h2>Embedding</h2>{embedding_section(embedding)}"
        f"<h2>Parallel steps</h2>{timing_section(embedding, classification)}"
        "</body></html>\n"
    )


def main() -> None:
    out = out_dir()
    require_file(out / ORIGINAL_PNG, producer="download")
    require_file(out / PREPROCESSED_PNG, producer="preprocess")
    embedding = read_json(out / EMBEDDING_JSON, producer="embed")
    classification = read_json(out / CLASSIFICATION_JSON, producer="classify")
    log(f"building report for run {run_id()!r}")
    try:
        page = render(out, embedding, classification)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        fail(f"unexpected content in the outputs of embed/classify: {exc!r}")
    report = out / REPORT_HTML
    atomic_write_text(report, page)
    print(report.resolve(), flush=True)


if __name__ == "__main__":
    main()
