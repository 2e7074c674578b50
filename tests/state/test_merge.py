"""Field-level merge, transactions and history: the state keeps what users meant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from peerlog import REMOVE, Entry, Outcome, StateStore
from peerlog.state.ops import encode_batch, encode_delete, encode_put, encode_update
from tests.helpers import now_ts, peer


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with StateStore(tmp_path / "device.db") as s:
        yield s


async def remote(store: StateStore, origin: int, *ops: tuple[int, bytes]) -> None:
    """Apply ``(ms from now, payload)`` operations as entries of peer ``origin``."""
    held = (await store.oplog.cursors()).of(peer(origin))
    await store.oplog.apply_many(peer(origin), held, [Entry(now_ts(ms), p) for ms, p in ops])


async def test_an_update_sets_only_the_fields_it_names(store: StateStore) -> None:
    await store.put("todos", "1", {"title": "call mum", "done": False})
    await store.update("todos", "1", {"done": True})
    assert await store.get("todos", "1") == {"title": "call mum", "done": True}


async def test_a_concurrent_update_keeps_the_other_devices_field_edit(
        store: StateStore) -> None:
    # The laptop rewrote the title with a put; the phone, concurrently and a little
    # later, marked it done with an update: both edits survive.
    await remote(store, 1, (-5_000, encode_put("todos", "10", {"title": "call mum",
                                                               "done": False})))
    await remote(store, 2, (-2_000, encode_put("todos", "10", {"title": "call mum about Sunday",
                                                               "done": False})))
    await remote(store, 3, (-1_000, encode_update("todos", "10", {"done": True})))
    assert await store.get("todos", "10") == {"done": True, "title": "call mum about Sunday"}


async def test_a_put_hides_every_field_it_does_not_give(store: StateStore) -> None:
    await store.put("t", "k", {"a": 1, "b": 2})
    await store.update("t", "k", {"c": 3})
    await store.put("t", "k", {"a": 9})
    assert await store.get("t", "k") == {"a": 9}


async def test_an_update_ranked_above_a_put_survives_on_top_of_it(store: StateStore) -> None:
    await remote(store, 1, (-1_000, encode_update("t", "k", {"done": True})))
    await remote(store, 2, (-2_000, encode_put("t", "k", {"title": "x", "done": False})))
    assert await store.get("t", "k") == {"title": "x", "done": True}


async def test_remove_deletes_one_field(store: StateStore) -> None:
    await store.put("t", "k", {"a": 1, "b": 2})
    await store.update("t", "k", {"b": REMOVE})
    assert await store.get("t", "k") == {"a": 1}


async def test_an_update_of_an_absent_key_creates_an_object(store: StateStore) -> None:
    await store.update("t", "new", {"a": 1})
    assert await store.get("t", "new") == {"a": 1}
    assert await store.items("t") == [("new", {"a": 1})]


async def test_removing_fields_of_an_absent_key_leaves_it_absent(store: StateStore) -> None:
    await store.update("t", "k", {"a": REMOVE})
    with pytest.raises(KeyError):
        await store.get("t", "k")
    assert await store.tables() == []


async def test_a_delete_hides_fields_ranked_below_it_only(store: StateStore) -> None:
    await remote(store, 1, (-3_000, encode_put("t", "k", {"a": 1})),
                 (-2_000, encode_update("t", "k", {"b": 2})))
    await remote(store, 2, (-1_500, encode_delete("t", "k")))
    with pytest.raises(KeyError):
        await store.get("t", "k")
    await remote(store, 3, (-1_000, encode_update("t", "k", {"c": 3})))
    assert await store.get("t", "k") == {"c": 3}


async def test_a_value_that_is_not_an_object_stays_one_register(store: StateStore) -> None:
    await store.put("t", "k", "plain text")
    await store.update("t", "k", {"gone": REMOVE})
    assert await store.get("t", "k") == "plain text"
    await store.update("t", "k", {"now": "an object"})
    assert await store.get("t", "k") == {"now": "an object"}


async def test_equal_ranks_break_ties_by_kind_then_bytes(store: StateStore) -> None:
    ts = now_ts(-1_000)
    await store.oplog.apply(peer(1), 0, Entry(ts, encode_update("t", "k", {"f": "zzz"})))
    await store.oplog.apply(peer(2), 0, Entry(ts, encode_update("t", "k", {"f": "aaa"})))
    await store.oplog.apply(peer(3), 0, Entry(ts, encode_update("t", "k", {"f": REMOVE})))
    with pytest.raises(KeyError):  # the removal wins the tie: no field is left
        await store.get("t", "k")


async def test_a_transaction_is_one_entry_applied_all_or_nothing(store: StateStore,
                                                                 tmp_path: Path) -> None:
    async with store.transaction() as tx:
        tx.put("accounts", "a", {"balance": 90})
        tx.update("accounts", "b", {"balance": 110})
        tx.delete("pending", "p1")
    assert (await store.oplog.cursors()).of(store.origin) == tx.index + 1 == 1
    async with StateStore(tmp_path / "other.db") as other:
        got = await store.oplog.read_since(store.origin, 0)
        await other.oplog.apply_many(store.origin, 0, [e for _, e in got])
        assert await other.items("accounts") == [("a", {"balance": 90}), ("b", {"balance": 110})]


async def test_a_transaction_that_raises_writes_nothing(store: StateStore) -> None:
    async def change_of_mind() -> None:
        async with store.transaction() as tx:
            tx.put("t", "k", 1)
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await change_of_mind()
    assert (await store.oplog.cursors()).of(store.origin) == 0


async def test_changes_to_one_key_in_a_transaction_apply_in_the_order_made(
        store: StateStore) -> None:
    async with store.transaction() as tx:
        tx.put("t", "k", {"title": "x", "done": False})
        tx.update("t", "k", {"done": True})
        tx.delete("t", "gone")
        tx.update("t", "gone", {"back": 1})
    assert await store.get("t", "k") == {"title": "x", "done": True}
    assert await store.get("t", "gone") == {"back": 1}


async def test_put_many_is_one_entry(store: StateStore) -> None:
    index = await store.put_many("t", {"a": 1, "b": 2, "c": 3})
    assert index == 0
    assert await store.items("t") == [("a", 1), ("b", 2), ("c", 3)]


async def test_a_malformed_batch_is_ignored_whole(store: StateStore) -> None:
    good = encode_batch([encode_put("t", "a", 1), encode_put("t", "b", 2)])
    await remote(store, 1, (-1_000, good[:-3]))  # cut inside its second operation
    assert await store.items("t") == []


async def test_an_update_with_a_value_that_is_not_json_is_skipped(store: StateStore) -> None:
    bad = bytearray(encode_update("t", "k", {"f": 12345}))
    bad[-5:] = b"NaN!!"
    await remote(store, 1, (-1_000, bytes(bad)), (-500, encode_update("t", "k", {"g": 1})))
    assert await store.get("t", "k") == {"g": 1}
    assert await store.skipped_count() == 1


async def test_erasing_a_winning_update_falls_back_to_the_next(store: StateStore) -> None:
    await store.put("t", "k", {"a": 1})
    index = await store.update("t", "k", {"a": 2})
    await store.oplog.expunge(store.origin, index)
    assert await store.get("t", "k") == {"a": 1}


async def test_history_lists_every_operation_with_what_became_of_it(store: StateStore) -> None:
    await remote(store, 1, (-5_000, encode_put("todos", "10", {"title": "call mum",
                                                               "done": False})),
                 (-4_000, encode_put("todos", "10", {"title": "call mum!", "done": False})))
    await remote(store, 2, (-2_000, encode_put("todos", "10", {"title": "call mum about Sunday",
                                                               "done": False})))
    await remote(store, 3, (-1_000, encode_update("todos", "10", {"done": True})))
    history = await store.history("todos", "10")
    assert [(h.origin, h.kind, h.outcome) for h in history] == [
        (peer(1), "put", Outcome.OVERWRITTEN),
        (peer(1), "put", Outcome.LOST),
        (peer(2), "put", Outcome.WINS),
        (peer(3), "update", Outcome.WINS)]
    assert history[3].fields == {"done": True}
    assert history[3].winning_fields == ("done",)
    assert history[2].value["title"] == "call mum about Sunday"
    assert history[0].time < history[3].time
    assert history[3].to_json()["set"] == {"done": True}


async def test_history_of_an_untouched_key_is_empty(store: StateStore) -> None:
    await store.put("t", "other", 1)
    assert await store.history("t", "k") == []
