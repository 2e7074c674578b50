"""A device killed with SIGKILL mid-upload leaves no visible half batch, and loses no
acknowledged entry."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from peerlog import BucketLog
from tests.helpers import entry, erased, peer
from tests.processes import kill_at_random

ROOT = Path(__file__).resolve().parents[2]
KILLS = 10


@pytest.mark.slow
def test_sigkill_mid_upload_leaves_no_half_batch_and_loses_nothing(bucket: str) -> None:
    rng = random.Random(20261127)
    acked, erased_ok, mid_upload, checked = 0, set(), 0, 0
    for kill in range(KILLS):
        lines = [line.strip() for line in kill_at_random(
            "tests.bucket.crash_writer", bucket, kill, rng, window=(0.05, 1.0)) if line.strip()]
        for line in lines:
            word, _, rest = line.partition(" ")
            if word == "ack":
                acked = max(acked, int(rest))
            elif word == "erased":
                erased_ok.add(int(rest))
        if lines and lines[-1].startswith("uploading"):
            mid_upload += 1
        reader = BucketLog(bucket, peer(9))
        extent = reader.extents().of(peer(1))
        assert extent >= acked, f"kill {kill}: acknowledged {acked}, found {extent}"
        got: list[tuple[int, object]] = []
        while batch := reader.read_entries(peer(1), len(got)):
            got.extend(batch)
        assert len(got) == extent
        for index in erased_ok:
            assert got[index] == (index, erased(index)), f"kill {kill}: erasure lost"
        for index, value in got[checked:]:  # what the earlier rounds checked stays
            assert value in (entry(index), erased(index)), f"kill {kill}: wrong entry"
        checked = extent
        assert reader.doctor().healthy, f"kill {kill}: {reader.doctor().all_problems()}"
    print(f"{mid_upload} of {KILLS} kills landed mid-upload; {acked} entries acknowledged")
    assert mid_upload >= 3, "the kills should land during uploads"
    final = BucketLog(bucket, peer(1))
    index = final.next_index
    assert index >= acked
    final.append(index, entry(index))
    assert BucketLog(bucket, peer(9)).doctor().healthy
