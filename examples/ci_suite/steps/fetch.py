"""fetch: get the day's orders as CSV (raw.csv).

The "download" reads ``$CI_SUITE_SOURCE`` if set, else makes a fixed sample.
``$CI_SUITE_FETCH_DELAY_SEC`` simulates a slow network (the tests use it to cancel a run).
"""

from __future__ import annotations

import os
import time

from common import write_atomically

SAMPLE = """order_id,region,amount
1001,north,120.50
1002,south,80.00
1003,north,42.25
1004,east,310.00
1005,south,19.99
1006,west,64.10
"""

time.sleep(float(os.environ.get("CI_SUITE_FETCH_DELAY_SEC", "0")))
source = os.environ.get("CI_SUITE_SOURCE")
if source:
    with open(source, encoding="utf-8") as file:
        data = file.read()
else:
    data = SAMPLE
path = write_atomically("raw.csv", data)
print(f"fetch: {len(data.splitlines()) - 1} orders -> {path.name}")
