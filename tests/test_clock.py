"""Log times: ``to_iso`` and ``from_iso`` are exact inverses, and nothing else is read as a time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wf_engine.core import clock

#: The last microsecond a log may name (records refuse times from the year 9000 on).
LAST_US = clock.from_iso("9000-01-01T00:00:00.000000Z") - 1


@given(st.integers(min_value=0, max_value=LAST_US))
def test_every_microsecond_survives_the_round_trip(us: int) -> None:
    text = clock.to_iso(us)
    assert len(text) == 27
    assert clock.from_iso(text) == us


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T22:39:19.12345Z",  # five fraction digits
        "2026-11-20T22:39:19,123456Z",  # comma before the fraction
        "2026-11-20 22:39:19.123456Z",  # space for T
        "2026-11-20T22:39:19.123456",  # no Z
        "2026-11-20T22:39:19.123456+00:00",
        "\uff12026-11-20T22:39:19.123456Z",  # a digit that is not ASCII
        "2026-13-20T22:39:19.123456Z",  # month 13
        "2026-02-30T22:39:19.123456Z",  # no such day
        "2026-11-20T24:00:00.000000Z",
        "0000-11-20T22:39:19.123456Z",
        "2026-11-20T22:39:19.123456Z\n",
        "",
    ],
)
def test_any_other_spelling_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        clock.from_iso(text)
