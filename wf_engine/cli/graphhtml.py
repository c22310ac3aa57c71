"""``wf graph --format html``: one self-contained page (no script, no file or network fetch).

The DAG is drawn as inline SVG, left to right: a step's column is the length of the longest
chain of dependencies before it, and within a column steps are ordered by where their
dependencies sit (two barycenter sweeps), so edges cross little. For a run, each node is filled
with its state's colour and shows its duration; hovering shows the command, the attempts and
the last lines of stderr. Under the graph, a table gives each step's timings, with a bar on the
run's time line.

Everything that comes from the workflow or the run (ids, commands, stderr) goes through
``html.escape``: a command such as ``echo '<script>'`` is shown, never run.
"""

from __future__ import annotations

import html
from typing import Any

from wf_engine.cli.summary import FILLS, duration, local_time, tail_lines
from wf_engine.core.clock import from_iso
from wf_engine.core.model import Workflow

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 190, 46, 70, 18, 20
_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;
color:#18181b;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#52525b;margin-bottom:16px}
.graph{overflow:auto;border:1px solid #e4e4e7;border-radius:8px;margin-bottom:24px}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
svg .id{font-weight:600}
svg .sub{fill:#52525b}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e4e4e7;vertical-align:top}
th{font-weight:600;background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:0 6px;border-radius:4px;border:1px solid}
.line{position:relative;height:12px;min-width:160px;background:#f4f4f5;border-radius:3px}
.bar{position:absolute;top:0;height:12px;border-radius:3px}
pre{margin:4px 0 0;white-space:pre-wrap;font:12px ui-monospace,Menlo,Consolas,monospace;
background:#fafafa;padding:6px;border-radius:4px}
.legend span{margin-right:12px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def layers(workflow: Workflow) -> list[list[str]]:
    """Steps by column (longest chain of dependencies before each), ordered to cross little."""
    steps = workflow.steps
    depth: dict[str, int] = {}
    pending = {step.id: len(step.depends_on) for step in steps}
    dependents: dict[str, list[str]] = {step.id: [] for step in steps}
    for step in steps:
        for dep in step.depends_on:
            dependents[dep].append(step.id)
    ready = [step.id for step in steps if not step.depends_on]
    for step_id in ready:
        depth[step_id] = 0
    while ready:
        current = ready.pop()
        for dependent in dependents[current]:
            depth[dependent] = max(depth.get(dependent, 0), depth[current] + 1)
            pending[dependent] -= 1
            if pending[dependent] == 0:
                ready.append(dependent)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for step in steps:  # definition order first
        columns[depth.get(step.id, 0)].append(step.id)
    by_id = {step.id: step for step in steps}
    position = {step_id: i for column in columns for i, step_id in enumerate(column)}

    def centre(step_id: str) -> float:
        deps = by_id[step_id].depends_on
        return sum(position[d] for d in deps) / len(deps) if deps else position[step_id]

    for _sweep in range(2):
        for column in columns[1:]:
            column.sort(key=centre)
            position.update((step_id, i) for i, step_id in enumerate(column))
    return columns


def _svg(workflow: Workflow, steps: dict[str, dict[str, Any]]) -> str:
    columns = layers(workflow)
    place: dict[str, tuple[int, int]] = {}
    for x, column in enumerate(columns):
        for y, step_id in enumerate(column):
            place[step_id] = (MARGIN + x * (NODE_W + GAP_X), MARGIN + y * (NODE_H + GAP_Y))
    width = MARGIN * 2 + len(columns) * NODE_W + (len(columns) - 1) * GAP_X
    height = MARGIN * 2 + max(len(c) for c in columns) * (NODE_H + GAP_Y) - GAP_Y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="dependency graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#71717a"/></marker></defs>',
    ]
    for step in workflow.steps:
        x2, y2 = place[step.id]
        for dep in step.depends_on:
            x1, y1 = place[dep]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
            bend = (ex - sx) / 2
            out.append(
                f'<path d="M {sx} {sy} C {sx + bend} {sy}, {ex - bend} {ey}, {ex} {ey}" '
                'fill="none" stroke="#a1a1aa" stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
    for step in workflow.steps:
        x, y = place[step.id]
        entry = steps.get(step.id)
        state = entry["state"] if entry else None
        fill, stroke = FILLS.get(state or "", ("#ffffff", "#71717a"))
        name = step.id if len(step.id) <= 26 else step.id[:25] + "…"
        sub = state or ""
        if entry and entry.get("duration_sec") is not None:
            sub += f" · {duration(entry['duration_sec'])}"
        if entry and entry.get("attempts", 0) > 1:
            sub += f" · {entry['attempts']} attempts"
        out.append(f'<g class="node" data-step="{_e(step.id)}">')
        out.append(f"<title>{_e(_tooltip(step, entry))}</title>")
        out.append(
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        )
        out.append(f'<text class="id" x="{x + 10}" y="{y + 19}">{_e(name)}</text>')
        if sub:
            out.append(f'<text class="sub" x="{x + 10}" y="{y + 36}">{_e(sub)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _tooltip(step: Any, entry: dict[str, Any] | None) -> str:
    command = step.command if isinstance(step.command, str) else " ".join(step.command)
    lines = [step.id, f"command: {command}"]
    if step.depends_on:
        lines.append(f"after: {', '.join(step.depends_on)}")
    if entry:
        lines.append(f"state: {entry['state']}, attempts: {entry['attempts']}")
        if entry.get("exit_code") is not None:
            lines.append(f"exit code: {entry['exit_code']} ({entry.get('reason') or '-'})")
        if entry.get("duration_sec") is not None:
            lines.append(f"duration: {duration(entry['duration_sec'])}")
        lines.extend(tail_lines(entry.get("stderr_tail"), count=5))
    return "\n".join(lines)


def _rows(workflow: Workflow, run: dict[str, Any]) -> str:
    steps = run["steps"]
    starts = [from_iso(e["started"]) for e in steps.values() if e.get("started")]
    origin = from_iso(run["created"]) if run.get("created") else min(starts, default=0)
    span_end = origin + int((run.get("duration_sec") or 0) * 1e6)
    for entry in steps.values():
        if entry.get("started") and entry.get("duration_sec") is not None:
            span_end = max(span_end, from_iso(entry["started"]) + int(entry["duration_sec"] * 1e6))
    span = max(span_end - origin, 1)
    out = [
        "<table><thead><tr><th>step</th><th>state</th><th>attempts</th><th>exit</th>"
        "<th>reason</th><th>started</th><th>duration</th><th>time line</th></tr></thead><tbody>"
    ]
    for step in workflow.steps:
        entry = steps[step.id]
        fill, stroke = FILLS.get(entry["state"], ("#fff", "#71717a"))
        started = entry.get("started")
        offset = f"+{duration((from_iso(started) - origin) / 1e6)}" if started else "-"
        bar = ""
        if started and entry.get("duration_sec") is not None:
            left = (from_iso(started) - origin) / span * 100
            width = max(entry["duration_sec"] * 1e6 / span * 100, 0.5)
            bar = (
                f'<div class="bar" style="left:{left:.2f}%;width:{min(width, 100 - left):.2f}%;'
                f'background:{stroke}"></div>'
            )
        exit_code = entry.get("exit_code")
        details = ""
        tail = tail_lines(entry.get("stderr_tail"), count=10) + tail_lines(entry.get("error"))
        if tail:
            details = f"<pre>{_e(chr(10).join(tail))}</pre>"
        out.append(
            f'<tr data-step="{_e(step.id)}"><td>{_e(step.id)}{details}</td>'
            f'<td><span class="state" style="background:{fill};border-color:{stroke}">'
            f"{_e(entry['state'])}</span></td>"
            f'<td class="num">{_e(entry["attempts"])}</td>'
            f'<td class="num">{_e("-" if exit_code is None else exit_code)}</td>'
            f"<td>{_e(entry.get('reason') or '-')}</td>"
            f'<td class="num">{_e(offset)}</td>'
            f'<td class="num">{_e(duration(entry.get("duration_sec")))}</td>'
            f'<td><div class="line">{bar}</div></td></tr>'
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def html_page(workflow: Workflow, run: dict[str, Any] | None) -> str:
    """The page: a title, the graph, and for a run its states and timings."""
    title = f"{run['run_id']} ({workflow.workflow_id})" if run else workflow.workflow_id
    steps = run["steps"] if run else {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>wf graph: {_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if run:
        counts = ", ".join(f"{n} {s.lower()}" for s, n in run["counts"].items() if n)
        created = from_iso(run["created"]) if run.get("created") else None
        parts.append(
            f'<div class="meta">run <b>{_e(run["state"])}</b> · {_e(counts)} · created '
            f"{_e(local_time(created))} · {_e(duration(run.get('duration_sec')))}</div>"
        )
    else:
        parts.append(f'<div class="meta">{len(workflow.steps)} steps (a workflow file)</div>')
    parts.append(f'<div class="graph">{_svg(workflow, steps)}</div>')
    if run:
        legend = " ".join(
            f'<span><span class="state" style="background:{f};border-color:{s}">{_e(n)}</span>'
            "</span>"
            for n, (f, s) in FILLS.items()
        )
        parts.append(f'<div class="legend">{legend}</div><h2>Steps</h2>')
        parts.append(_rows(workflow, run))
    parts.append("</body></html>")
    return "\n".join(parts)
