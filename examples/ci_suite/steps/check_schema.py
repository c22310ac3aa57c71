"""check_schema: every order has a region and an amount >= 0, and order ids are unique."""

from __future__ import annotations

from common import fail, read_json

orders = read_json("orders.json")
if not orders:
    fail("no orders")
seen: set[int] = set()
for order in orders:
    if not order["region"]:
        fail(f"order {order['order_id']}: empty region")
    if order["amount"] < 0:
        fail(f"order {order['order_id']}: negative amount {order['amount']}")
    if order["order_id"] in seen:
        fail(f"order {order['order_id']}: duplicate id")
    seen.add(order["order_id"])
print(f"check_schema: {len(orders)} orders ok")
