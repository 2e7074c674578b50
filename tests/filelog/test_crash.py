"""A writer killed with SIGKILL at random moments never loses an acknowledged entry."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from peerlog import FileLog
from tests.filelog.crash_writer import ERASE_EVERY
from tests.helpers import entry, erased, peer
from tests.processes import kill_at_random

ROOT = Path(__file__).resolve().parents[2]
KILLS = 30


def run_until_killed(shared: Path, seed: int, rng: random.Random) -> tuple[int, set[int]]:
    """Start the appending writer, SIGKILL it at a random moment; what it acknowledged."""
    acked, erased_ok = 0, set()
    for line in kill_at_random("tests.filelog.crash_writer", shared, seed, rng):
        if line.startswith("ack "):
            acked = int(line.split()[1])
        elif line.startswith("erased "):
            erased_ok.add(int(line.split()[1]))
    return acked, erased_ok


def test_sigkill_at_random_moments_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    rng = random.Random(20261124)
    acked_total, erased_total = 0, set()
    for kill in range(KILLS):
        acked, erased_now = run_until_killed(shared, kill, rng)
        acked_total = max(acked_total, acked)
        erased_total |= erased_now
        reader = FileLog(shared, peer(9))
        extent = reader.extents().of(peer(1))
        assert extent >= acked_total, f"kill {kill}: acknowledged {acked_total}, found {extent}"
        got: list[tuple[int, object]] = []
        while batch := reader.read_entries(peer(1), len(got)):
            got.extend(batch)
        assert len(got) == extent
        for index, value in got:
            if index in erased_total:
                assert value == erased(index), f"kill {kill}: erasure of {index} lost"
            elif index % ERASE_EVERY == 0:
                assert value in (entry(index), erased(index))
            else:
                assert value == entry(index), f"kill {kill}: wrong entry at {index}"
        assert all(p.kind == "incomplete" for p in reader.doctor().all_problems()), \
            "a killed writer may leave a torn tail, never corruption"
    # And the writer continues cleanly after the last kill.
    final = FileLog(shared, peer(1))
    index = final.next_index
    assert index >= acked_total
    final.append(index, entry(index))
    assert FileLog(shared, peer(9)).doctor().healthy


@pytest.mark.slow
def test_sigkill_while_compacting_leaves_a_chain_that_serves_every_kept_entry(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    rng = random.Random(20261127)
    acked = compacted = 0
    for kill in range(KILLS):
        for line in kill_at_random("tests.filelog.compacting_writer", shared, kill, rng):
            word, _, number = line.partition(" ")
            if word == "ack":
                acked = max(acked, int(number))
            elif word == "compacted":
                compacted = max(compacted, int(number))
        reader = FileLog(shared, peer(9))
        first, extent = reader.first_indexes().of(peer(1)), reader.extents().of(peer(1))
        assert extent >= acked, f"kill {kill}: acknowledged {acked}, found {extent}"
        assert first <= acked, f"kill {kill}: compacted past what was written"
        got: list[tuple[int, object]] = []
        while batch := reader.read_entries(peer(1), first + len(got)):
            got.extend(batch)
        assert got == [(i, entry(i)) for i in range(first, extent)], f"kill {kill}"
        assert all(p.kind == "incomplete" for p in reader.doctor().all_problems()), \
            f"kill {kill}: {reader.doctor().all_problems()}"
    assert compacted > 0  # the loop did compact, many times
