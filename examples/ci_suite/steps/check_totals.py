"""check_totals: totals per region (totals.json); no order above the sanity limit.

An order above ``$CI_SUITE_MAX_ORDER`` (default 10000) is most likely a misplaced decimal point.
"""

from __future__ import annotations

import json
import os

from common import fail, read_json, write_atomically

limit = float(os.environ.get("CI_SUITE_MAX_ORDER", "10000"))
orders = read_json("orders.json")
regions: dict[str, float] = {}
for order in orders:
    if order["amount"] > limit:
        fail(f"order {order['order_id']}: amount {order['amount']} is above {limit:g}")
    regions[order["region"]] = round(regions.get(order["region"], 0.0) + order["amount"], 2)
total = round(sum(regions.values()), 2)
totals = {"regions": dict(sorted(regions.items())), "total": total}
write_atomically("totals.json", json.dumps(totals, indent=1))
print(f"check_totals: {len(regions)} regions, total {total:.2f}")
