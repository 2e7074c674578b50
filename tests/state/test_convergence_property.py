"""Property: random operations from 3-5 origins, delivered in random orders, with
duplicates and crashes between batches, end in byte-identical state everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerlog import CursorMismatchError, Entry, StateStore
from peerlog.state.ops import encode_delete, encode_put
from tests.helpers import peer

KEYS = ["a", "b", "c"]
VALUES = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=3),
                   st.lists(st.integers(0, 2), max_size=2))
OP = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(["t1", "t2"]), st.sampled_from(KEYS), VALUES),
    st.tuples(st.just("del"), st.sampled_from(["t1", "t2"]), st.sampled_from(KEYS), st.none()),
)


@st.composite
def histories(draw: st.DrawFn) -> dict[UUID, list[Entry]]:
    n = draw(st.integers(3, 5))
    logs: dict[UUID, list[Entry]] = {}
    for o in range(1, n + 1):
        ops = draw(st.lists(OP, max_size=8))
        # Small clock range: equal timestamps across origins happen often.
        stamps = sorted(draw(st.lists(st.integers(1, 6), min_size=len(ops),
                                      max_size=len(ops))))
        logs[peer(o)] = [
            Entry(ts, encode_put(t, k, v) if kind == "put" else encode_delete(t, k))
            for (kind, t, k, v), ts in zip(ops, stamps, strict=True)]
    return logs


async def deliver(path: Path, logs: dict[UUID, list[Entry]], rng: random.Random) -> str:
    """One device: random chunks in random order, duplicates, reopen between batches."""
    chunks: list[tuple[UUID, int, list[Entry]]] = []
    for origin, log in logs.items():
        size = rng.randint(1, 3)
        chunks += [(origin, lo, log[lo:lo + size]) for lo in range(0, len(log), size)]
    chunks += rng.sample(chunks, k=len(chunks) // 2)  # duplicates
    rng.shuffle(chunks)
    store = StateStore(path)
    try:
        for origin, lo, batch in chunks:
            # Arriving before its predecessor: refused, and redelivered below.
            with contextlib.suppress(CursorMismatchError):
                await store.oplog.apply_many(origin, lo, batch)
            if rng.random() < 0.3:  # a crash between batches
                await store.close()
                store = StateStore(path)
        for origin, log in logs.items():  # the final catch-up a puller does
            if log:
                await store.oplog.apply_many(origin, 0, log)
        return await store.state_hash()
    finally:
        await store.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs=histories(), seed=st.integers(0, 2**32))
def test_random_operations_converge_to_byte_identical_state(
        logs: dict[UUID, list[Entry]], seed: int) -> None:
    rng = random.Random(seed)

    async def run() -> list[str]:
        with tempfile.TemporaryDirectory() as tmp:
            return [await deliver(Path(tmp) / f"d{n}.db", logs, rng) for n in range(3)]

    hashes = asyncio.run(run())
    assert len(set(hashes)) == 1, hashes
