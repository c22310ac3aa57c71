"""report: totals.json -> report.md, the pipeline's product."""

from __future__ import annotations

from common import read_json, write_atomically

totals = read_json("totals.json")
lines = ["# Sales report", "", "| region | total |", "|---|---:|"]
lines += [f"| {region} | {amount:.2f} |" for region, amount in totals["regions"].items()]
lines += [f"| **all** | **{totals['total']:.2f}** |", ""]
path = write_atomically("report.md", "\n".join(lines))
print(f"report: {path}")
