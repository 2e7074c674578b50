"""Property: random puts, updates, deletes and transactions from 3-5 origins over
shared keys and fields, delivered in random orders, with duplicates and crashes
between batches, end in byte-identical state everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
from pathlib import Path
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerlog import REMOVE, CursorMismatchError, Entry, StateStore
from peerlog.state.ops import (
    OpKind,
    decode_ops,
    encode_batch,
    encode_delete,
    encode_put,
    encode_update,
)
from tests.helpers import peer

KEYS = ["a", "b", "c"]
FIELDS = ["f", "g", "h"]
SCALARS = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=3),
                    st.lists(st.integers(0, 2), max_size=2))
VALUES = st.one_of(SCALARS, st.dictionaries(st.sampled_from(FIELDS), SCALARS, max_size=3))
FIELD_SETS = st.dictionaries(st.sampled_from(FIELDS), st.one_of(SCALARS, st.just(REMOVE)),
                             min_size=1, max_size=3)
TABLES = st.sampled_from(["t1", "t2"])
ONE = st.one_of(
    st.builds(encode_put, TABLES, st.sampled_from(KEYS), VALUES),
    st.builds(encode_update, TABLES, st.sampled_from(KEYS), FIELD_SETS),
    st.builds(encode_delete, TABLES, st.sampled_from(KEYS)),
)
OP = st.one_of(ONE, ONE, ONE, st.lists(ONE, min_size=2, max_size=3).map(encode_batch))


@st.composite
def histories(draw: st.DrawFn) -> dict[UUID, list[Entry]]:
    n = draw(st.integers(3, 5))
    logs: dict[UUID, list[Entry]] = {}
    for o in range(1, n + 1):
        ops = draw(st.lists(OP, max_size=8))
        # Small clock range: equal timestamps across origins happen often.
        stamps = sorted(draw(st.lists(st.integers(1, 6), min_size=len(ops),
                                      max_size=len(ops))))
        logs[peer(o)] = [Entry(ts, payload) for payload, ts in zip(ops, stamps, strict=True)]
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs=histories(), seed=st.integers(0, 2**32))
def test_random_operations_converge_to_byte_identical_state(
        logs: dict[UUID, list[Entry]], seed: int) -> None:
    rng = random.Random(seed)

    async def run() -> list[str]:
        with tempfile.TemporaryDirectory() as tmp:
            return [await deliver(Path(tmp) / f"d{n}.db", logs, rng) for n in range(3)]

    hashes = asyncio.run(run())
    assert len(set(hashes)) == 1, hashes


def model(logs: dict[UUID, list[Entry]]) -> dict[tuple[str, str], object]:
    """The state as docs/contract.md defines it, computed directly from every operation."""
    base: dict[tuple[str, str], tuple[int, int, bytes]] = {}
    fields: dict[tuple[str, str], dict[str, tuple[int, int, bytes]]] = {}
    for log in logs.values():
        for entry in log:
            for op in decode_ops(entry.payload):
                where = (op.table, op.key)
                if op.kind is OpKind.UPDATE:
                    for name, raw in op.fields:
                        rank = (entry.ts, 0, raw) if raw is not None else (entry.ts, 1, b"")
                        held = fields.setdefault(where, {}).get(name)
                        fields[where][name] = max(held or rank, rank)
                else:
                    rank = (entry.ts, 0, op.value) if op.value is not None else (entry.ts, 1, b"")
                    base[where] = max(base.get(where, rank), rank)
    state: dict[tuple[str, str], object] = {}
    for where in set(base) | set(fields):
        ts, deleted, value = base.get(where, (-1, 1, b""))
        above = {n: r for n, r in fields.get(where, {}).items() if r >= (ts, deleted, value)}
        present = {n: json.loads(r[2]) for n, r in above.items() if not r[1]}
        current = None if deleted else json.loads(value)
        if isinstance(current, dict):
            for name, rank in above.items():
                if rank[1]:
                    current.pop(name, None)
                else:
                    current[name] = json.loads(rank[2])
            state[where] = current
        elif present:
            state[where] = present
        elif not deleted:
            state[where] = current
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs=histories())
def test_the_state_is_the_merge_rule_applied_to_every_operation(
        logs: dict[UUID, list[Entry]]) -> None:
    async def run() -> dict[tuple[str, str], object]:
        with tempfile.TemporaryDirectory() as tmp:
            async with StateStore(Path(tmp) / "d.db") as store:
                for origin, log in logs.items():
                    if log:
                        await store.oplog.apply_many(origin, 0, log)
                return {(t, k): v for t in ("t1", "t2") for k, v in await store.items(t)}

    assert asyncio.run(run()) == model(logs)
