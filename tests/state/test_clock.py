"""Causal order and clock skew: a fast clock is waited for, never pins a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from peerlog import DeferredError, Entry, Hlc, Puller, SqliteOplog, StateStore
from peerlog.state.ops import encode_put
from peerlog.sync.hlc import wall_ms
from tests.helpers import now_ts, peer

DAY_MS = 86_400_000


class Clock:
    """A wall clock a test moves by hand."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def __call__(self) -> int:
        return wall_ms() + self.offset_ms


def store_at(path: Path, clock: Clock) -> StateStore:
    return StateStore(path, hlc=Hlc(wall=clock))


async def test_a_write_after_applying_a_remote_one_ranks_above_it_whatever_the_clock(
        tmp_path: Path) -> None:
    slow = Clock(-30_000)  # this device's clock is 30 s behind the other's
    async with store_at(tmp_path / "a.db", slow) as store:
        await store.oplog.apply(peer(2), 0, Entry(now_ts(), encode_put("t", "k", "theirs")))
        await store.put("t", "k", "mine, made after seeing theirs")
        assert await store.get("t", "k") == "mine, made after seeing theirs"


async def test_another_process_of_the_device_stamps_after_what_this_one_applied(
        tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    async with store_at(path, Clock(-30_000)) as writer, \
            store_at(path, Clock(-30_000)) as syncer:
        await writer.put("t", "k", "first")  # its clock is now loaded and behind
        await syncer.oplog.apply(peer(2), 0, Entry(now_ts(), encode_put("t", "k", "remote")))
        await writer.put("t", "k", "after the remote one")
        assert await writer.get("t", "k") == "after the remote one"


async def test_an_entry_far_ahead_is_deferred_and_the_rest_still_applies(
        tmp_path: Path) -> None:
    async with StateStore(tmp_path / "a.db") as store:
        ahead = [Entry(now_ts(-1_000), encode_put("t", "fast", "fine")),
                 Entry(now_ts(DAY_MS), encode_put("t", "fast", "from tomorrow"))]
        with pytest.raises(DeferredError) as caught:
            await store.oplog.apply_many(peer(2), 0, ahead)
        assert caught.value.index == 1
        assert DAY_MS - 5_000 < caught.value.ahead_ms <= DAY_MS
        assert "24.0 h ahead" in str(caught.value)
        assert (await store.oplog.cursors()).of(peer(2)) == 0  # all or nothing
        await store.oplog.apply(peer(3), 0, Entry(now_ts(), encode_put("t", "other", 1)))
        assert await store.get("t", "other") == 1
        deferred = await store.deferred()
        assert deferred[peer(2)].index == 1


async def test_the_puller_applies_up_to_a_deferred_entry_and_reports_it(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "src.db") as source, \
            StateStore(tmp_path / "a.db") as store:
        await source.apply_many(peer(2), 0, [
            Entry(now_ts(-1_000), encode_put("t", "k", "now")),
            Entry(now_ts(DAY_MS), encode_put("t", "k", "tomorrow")),
            Entry(now_ts(DAY_MS) + 1, encode_put("t", "k", "later still"))])
        puller = Puller(source, store.oplog)
        assert await puller.run_once() == 1
        assert await store.get("t", "k") == "now"
        assert puller.deferred[peer(2)].index == 1


async def test_a_forged_timestamp_at_the_end_of_time_never_pins_a_key(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "src.db") as source, \
            StateStore(tmp_path / "a.db") as store:
        await source.apply(peer(666), 0, Entry(2**63 - 1, encode_put("t", "k", "pinned")))
        await Puller(source, store.oplog).run_once()
        await store.put("t", "k", "a later write")
        assert await store.get("t", "k") == "a later write"
        await store.delete("t", "k")
        with pytest.raises(KeyError):
            await store.get("t", "k")
        assert (await store.deferred())[peer(666)].ahead_ms > 100 * 365 * DAY_MS


async def test_a_fast_devices_entries_arrive_once_the_clock_catches_up(tmp_path: Path) -> None:
    clock = Clock()
    async with SqliteOplog(tmp_path / "src.db") as source, \
            store_at(tmp_path / "a.db", clock) as store:
        await source.apply(peer(2), 0, Entry(now_ts(DAY_MS), encode_put("t", "k", "fast")))
        puller = Puller(source, store.oplog)
        assert await puller.run_once() == 0
        clock.offset_ms = DAY_MS  # a day passes
        assert await puller.run_once() == 1
        assert await store.get("t", "k") == "fast"
        assert puller.deferred == {}
        assert await store.deferred() == {}
