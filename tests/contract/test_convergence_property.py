"""Property: any interleaving and duplication of deliveries converges.

Several origins each have a log (some slots later erased).  Each replica gets
the deliveries in its own random order, with duplicates, stale originals of
erased slots, and chunks that arrive before the chunk they follow (refused
with `CursorMismatchError`, storing nothing).  A final in-order catch-up, as a
puller would do, must leave every replica with identical cursors and
identical `read_since` output, equal to the origins' logs.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerlog import CursorMismatchError, DecodedEntry, Entry, Expunged, Replica
from tests.contract.harnesses import REPLICA_KINDS
from tests.helpers import peer


@dataclass(frozen=True)
class Delivery:
    origin: int
    start: int
    count: int
    erased_view: bool  # deliver slots as they are now (markers) or as first written


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[int, list[Entry]], dict[int, set[int]],
                                        list[list[Delivery]]]:
    n_origins = draw(st.integers(2, 4))
    logs: dict[int, list[Entry]] = {}
    erasures: dict[int, set[int]] = {}
    for o in range(1, n_origins + 1):
        length = draw(st.integers(0, 12))
        payloads = draw(st.lists(st.binary(max_size=6), min_size=length, max_size=length))
        logs[o] = [Entry(1_000 + 10 * i + o, p) for i, p in enumerate(payloads)]
        erasures[o] = set(draw(st.sets(st.integers(0, max(length - 1, 0)), max_size=3))
                          ) if length else set()
    chunk = st.builds(
        Delivery,
        origin=st.integers(1, n_origins),
        start=st.integers(0, 12),
        count=st.integers(1, 5),
        erased_view=st.booleans(),
    )
    orders = draw(st.lists(st.lists(chunk, max_size=25), min_size=2, max_size=3))
    return logs, erasures, orders


def slot(logs: dict[int, list[Entry]], erasures: dict[int, set[int]], origin: int,
         index: int, erased_view: bool) -> DecodedEntry:
    original = logs[origin][index]
    if erased_view and index in erasures[origin]:
        return Expunged(original.digest)
    return original


async def deliver_all(replica: Replica, logs: dict[int, list[Entry]],
                      erasures: dict[int, set[int]], order: list[Delivery]) -> None:
    for d in order:
        end = min(d.start + d.count, len(logs[d.origin]))
        if d.start >= end:
            continue
        batch = [slot(logs, erasures, d.origin, i, d.erased_view) for i in range(d.start, end)]
        before = await replica.cursors()
        try:
            await replica.apply_many(peer(d.origin), d.start, batch)
        except CursorMismatchError:
            assert await replica.cursors() == before, "a refused batch stores nothing"
    # Catch-up: the current state of every origin, in order from the start.
    for origin, log in logs.items():
        current = [slot(logs, erasures, origin, i, True) for i in range(len(log))]
        if current:
            await replica.apply_many(peer(origin), 0, current)


async def dump(replica: Replica, origins: list[UUID]) -> list[list[tuple[int, DecodedEntry]]]:
    out = []
    for origin in origins:
        got: list[tuple[int, DecodedEntry]] = []
        while batch := await replica.read_since(origin, len(got), 4):
            got.extend(batch)
        out.append(got)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_any_interleaving_and_duplication_converges(
        scenario: tuple[dict[int, list[Entry]], dict[int, set[int]], list[list[Delivery]]],
) -> None:
    logs, erasures, orders = scenario
    origins = [peer(o) for o in logs]
    expected = [[(i, slot(logs, erasures, o, i, True)) for i in range(len(log))]
                for o, log in logs.items()]
    expected_cursors = {peer(o): len(log) for o, log in logs.items() if log}

    async def run(kind: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            harnesses = [REPLICA_KINDS[kind](Path(tmp) / str(n)) for n in range(len(orders))]
            for n, _harness in enumerate(harnesses):
                (Path(tmp) / str(n)).mkdir()
            try:
                replicas = [await h.open() for h in harnesses]
                for replica, order in zip(replicas, orders, strict=True):
                    await deliver_all(replica, logs, erasures, order)
                for replica in replicas:
                    assert await replica.cursors() == expected_cursors
                    assert await dump(replica, origins) == expected
            finally:
                for h in harnesses:
                    await h.close_all()

    for kind in REPLICA_KINDS:
        asyncio.run(run(kind))
