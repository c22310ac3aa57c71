"""transform: raw.csv -> orders.json (typed records, sorted by order id)."""

from __future__ import annotations

import csv
import io
import json

from common import artifacts, fail, write_atomically

text = (artifacts() / "raw.csv").read_text(encoding="utf-8")
orders = []
for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
    try:
        order = {"order_id": int(row["order_id"]), "region": row["region"].strip()}
        order["amount"] = round(float(row["amount"]), 2)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        fail(f"raw.csv line {line}: cannot read {row!r} ({error!r})")
    orders.append(order)
orders.sort(key=lambda order: order["order_id"])
write_atomically("orders.json", json.dumps(orders, indent=1))
print(f"transform: {len(orders)} orders -> orders.json")
