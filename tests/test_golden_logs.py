"""Logs written by an earlier version of the engine still read, replay and verify, unchanged.

``tests/golden/*.jsonl`` are real logs (a run with retries, a final failure, a skip and a
timeout; a run crashed, resumed and cancelled), kept with the ``wf replay --json`` output they
gave. The on-disk format is a contract: every line must re-encode to the very same bytes, and
replay must print the very same document. The document may gain keys (per-step ``duration_sec``,
``stderr_tail``, ``error`` and ``retry_at`` were added after these logs were written); a key is
never removed or changed, which the history of ``*.replay.json`` shows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_wf import WfHarness
from wf_engine.log.eventlog import encode_record

GOLDEN = Path(__file__).resolve().parent / "golden"
LOGS = sorted(path.stem for path in GOLDEN.glob("*.jsonl"))


def install(wf: WfHarness, name: str) -> None:
    folder = Path(wf.home) / "runs" / name
    folder.mkdir(parents=True)
    shutil.copyfile(GOLDEN / f"{name}.jsonl", folder / "events.jsonl")


@pytest.mark.parametrize("name", LOGS)
def test_every_line_re_encodes_to_the_same_bytes(name: str) -> None:
    for line in (GOLDEN / f"{name}.jsonl").read_bytes().splitlines(keepends=True):
        record = json.loads(line)
        del record["crc"]
        assert encode_record(record) == line


@pytest.mark.parametrize("name", LOGS)
def test_replay_verifies_and_prints_what_it_printed_then(wf: WfHarness, name: str) -> None:
    install(wf, name)

    verified = wf.cli("replay", name, "--verify")
    replayed = wf.cli("replay", name, "--json")

    assert verified.returncode == 0, verified.stderr
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == (GOLDEN / f"{name}.replay.json").read_text()
