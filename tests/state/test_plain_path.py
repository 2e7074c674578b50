"""The SQL path for plain puts and deletes stores exactly what the Python path stores:
the same registers, written by the same operations, and the same skipped entries."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerlog import Entry, StateStore
from peerlog.state import view
from peerlog.state.ops import canonical_json, encode_delete, encode_put, encode_update
from peerlog.state.view import plain_batch
from tests.helpers import peer

KEYS = st.sampled_from(["a", "b", "c", "é"])
TOKENS = ['{', '}', '[', ']', ',', ':', '"a"', '"', '\\', '1', '0', '-', '.', 'e', 'E', '+',
          '01', '1.5', 'true', 'null', 'NaN', ' ', '\t', '\x01', '\x00', '1e5', '9' * 120]
RAW_VALUES = st.lists(st.sampled_from(TOKENS), min_size=0, max_size=5).map(
    lambda parts: "".join(parts).encode())
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=6).map(canonical_json)


def _raw_put(table: str, key: str, value: bytes) -> bytes:
    return encode_put(table, key, None)[:-4] + value  # a put of any bytes, as a peer might send


OPS = st.one_of(
    st.builds(lambda k, v: encode_put("t", k, v), KEYS, JSON_VALUES.map(lambda b: b.decode())),
    st.builds(lambda k, v: _raw_put("t", k, v), KEYS, RAW_VALUES | JSON_VALUES),
    st.builds(lambda k: encode_delete("t", k), KEYS),
)


@st.composite
def batches(draw: st.DrawFn) -> dict[UUID, list[Entry]]:
    logs: dict[UUID, list[Entry]] = {}
    for o in (1, 2):
        ops = draw(st.lists(OPS, max_size=10))
        stamps = sorted(draw(st.lists(st.integers(1, 4), min_size=len(ops), max_size=len(ops))))
        logs[peer(o)] = [Entry(ts, p) for p, ts in zip(ops, stamps, strict=True)]
    return logs


def _rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        state = conn.execute("SELECT tbl, key, ts, del, value, peer, idx, merged"
                             " FROM peerlog_state ORDER BY tbl, key").fetchall()
        skipped = conn.execute("SELECT peer, idx FROM peerlog_state_skipped"
                               " ORDER BY peer, idx").fetchall()
    conn.close()
    return state, skipped


async def _apply(path: Path, logs: dict[UUID, list[Entry]], cut: int) -> None:
    async with StateStore(path) as store:
        for origin, log in logs.items():
            for lo in range(0, len(log), cut):
                await store.oplog.apply_many(origin, lo, log[lo:lo + cut])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs=batches(), cut=st.integers(1, 6))
def test_the_sql_path_stores_what_the_python_path_stores(
        logs: dict[UUID, list[Entry]], cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        fast, slow = Path(tmp) / "fast.db", Path(tmp) / "slow.db"
        asyncio.run(_apply(fast, logs, cut))
        patch.setattr(view, "plain_batch", lambda rows: False)
        asyncio.run(_apply(slow, logs, cut))
        assert _rows(fast) == _rows(slow)


def test_plain_batches_are_puts_and_deletes_written_in_ascii() -> None:
    assert plain_batch([(1, encode_put("t", "k", {"a": [1, "x"]})), (2, encode_delete("t", "k")),
                        (None, b"\x00" * 32)])
    assert not plain_batch([(1, encode_put("t", "k", "é"))])
    assert not plain_batch([(1, encode_update("t", "k", {"a": 1}))])


EDGES = [b"1e400", b"[1e5]", b"1" * 400, b"0." + b"9" * 200, b'"a\x00"', b"[" * 600 + b"]" * 600,
         b'"' + b"x" * 2000 + b'"', b"NaN", b"01", rb'"\ud800"', b" 1 ", b"[1,]", b"\t1"]


@pytest.mark.parametrize("value", EDGES, ids=[repr(v[:12]) for v in EDGES])
def test_values_sqlite_might_judge_otherwise_are_stored_as_the_python_path_stores_them(
        value: bytes) -> None:
    logs = {peer(1): [Entry(5, encode_put("t", "k", 1)), Entry(6, _raw_put("t", "k", value))]}
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        fast, slow = Path(tmp) / "fast.db", Path(tmp) / "slow.db"
        asyncio.run(_apply(fast, logs, 2))
        patch.setattr(view, "plain_batch", lambda rows: False)
        asyncio.run(_apply(slow, logs, 2))
        assert _rows(fast) == _rows(slow)
