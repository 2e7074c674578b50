"""The bucket log on a real S3 endpoint: one immutable object per batch, written
put-if-absent; erasures, damage, compaction and the cost of following."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest

from peerlog import (
    BucketLog,
    BucketStore,
    CompactedError,
    CorruptLogError,
    CursorMismatchError,
    DivergenceError,
    Entry,
    Expunged,
)
from peerlog.bucket.layout import batch_key
from tests.helpers import entries, entry, peer, wait_until
from tests.s3 import S3Server


def raw(server: S3Server, bucket: str, key: str) -> bytes:
    """An object's bytes as any S3 client sees them."""
    return BucketStore(bucket).get(key)


def plant(server: S3Server, bucket: str, key: str, data: bytes) -> None:
    """Write an object behind peerlog's back (another tool, an attacker, damage)."""
    BucketStore(bucket).put(key, data)


def keys(bucket: str) -> list[str]:
    return [o.key for o in BucketStore(bucket).list_keys("")]


async def test_each_batch_is_one_object_named_by_origin_and_first_index(bucket: str) -> None:
    async with BucketLog(bucket, peer(1)) as log:
        log.append_many(0, entries(0, 3))
        log.append_many(3, entries(3, 2))
    assert keys(bucket) == [batch_key(peer(1), 0), batch_key(peer(1), 3)]
    async with BucketLog(bucket, peer(2)) as reader:
        assert await reader.read_since(peer(1), 0) == list(enumerate(entries(0, 5)))


async def test_a_cloned_device_is_refused_and_nothing_is_overwritten(
        server: S3Server, bucket: str) -> None:
    original, clone = BucketLog(bucket, peer(1)), BucketLog(bucket, peer(1))
    original.append_many(0, entries(0, 2))
    assert clone.next_index == 2
    original.append_many(2, [entry(2)])
    before = raw(server, bucket, batch_key(peer(1), 2))
    with pytest.raises(DivergenceError, match="another device is writing the same origin"):
        clone.append_many(2, [Entry(99, b"the clone's own change")])
    assert raw(server, bucket, batch_key(peer(1), 2)) == before
    await original.close()
    await clone.close()


async def test_two_processes_of_one_device_are_told_where_the_log_now_ends(bucket: str) -> None:
    first, second = BucketLog(bucket, peer(1)), BucketLog(bucket, peer(1))
    assert first.next_index == second.next_index == 0
    first.append_many(0, entries(0, 3))
    with pytest.raises(CursorMismatchError) as refused:
        second.append_many(0, entries(0, 3))  # the same entries: published already
    assert refused.value.expected == 3
    second.append_many(3, entries(3, 1))
    await first.cursors()
    assert await first.read_since(peer(1), 0) == list(enumerate(entries(0, 4)))
    await first.close()
    await second.close()


async def test_an_erasure_rewrites_the_batch_and_reaches_a_reader_already_past_it(
        server: S3Server, bucket: str) -> None:
    writer, reader = BucketLog(bucket, peer(1)), BucketLog(bucket, peer(2))
    secret = Entry(5, b"alice@example.org")
    writer.append_many(0, [entry(0), secret, entry(2)])
    assert (await reader.read_since(peer(1), 0))[1] == (1, secret)
    writer.append_many(3, entries(3, 2))
    writer.expunge(1)
    assert b"alice@example.org" not in raw(server, bucket, batch_key(peer(1), 0))
    await reader.cursors()  # the next round's listing carries the notice
    assert await reader.erased() == {peer(1): [(1, secret.digest)]}
    assert (await reader.read_since(peer(1), 0))[1] == (1, Expunged(secret.digest))
    await writer.close()
    await reader.close()


async def test_two_processes_of_one_device_erasing_keep_each_others_erasures(
        server: S3Server, bucket: str) -> None:
    app, daemon = BucketLog(bucket, peer(1)), BucketLog(bucket, peer(1))
    app.append_many(0, entries(0, 4))
    assert len(await daemon.read_since(peer(1), 0)) == 4  # the daemon holds the batch
    assert daemon.next_index == 4
    app.expunge(1)
    daemon.append_many(4, entries(4, 1))  # its next batch sorts after the app's notice
    daemon.expunge(2)  # and its copy of the first batch predates the app's erasure
    async with BucketLog(bucket, peer(2)) as reader:
        assert [i for i, _ in reader.erased_slots(peer(1))] == [1, 2]
    assert entry(1).payload not in raw(server, bucket, batch_key(peer(1), 0))
    await app.close()
    await daemon.close()


async def test_an_erasure_interrupted_before_its_notice_is_finished_by_the_next(
        bucket: str) -> None:
    writer = BucketLog(bucket, peer(1))
    writer.append_many(0, entries(0, 2))
    writer.expunge(0)
    for key in keys(bucket):
        if "-erased-" in key:
            BucketStore(bucket).delete(key)  # as if killed between rewrite and notice
    again = BucketLog(bucket, peer(1))
    again.expunge(0)
    assert sum("-erased-" in k for k in keys(bucket)) == 1
    await writer.close()
    await again.close()


async def test_a_foreign_object_is_ignored_and_named_by_doctor(
        server: S3Server, bucket: str) -> None:
    async with BucketLog(bucket, peer(1)) as log:
        log.append_many(0, entries(0, 2))
    plant(server, bucket, f"{peer(1)}/notes.txt", b"someone's file")
    plant(server, bucket, "backup.zip", b"PK")
    async with BucketLog(bucket, peer(2)) as reader:
        assert await reader.read_since(peer(1), 0) == list(enumerate(entries(0, 2)))
        report = reader.doctor()
    assert report.healthy
    assert {i.path.rsplit("/", 1)[-1] for i in report.ignored} == {"notes.txt", "backup.zip"}


@pytest.mark.parametrize(("damage", "kind"), [
    (lambda data: data[:-7], "incomplete"),
    (lambda data: data[:60] + bytes([data[60] ^ 0xFF]) + data[61:], "corrupt"),
    (lambda data: b"not a batch at all; " * 4, "not-a-segment"),
])
async def test_a_damaged_batch_withholds_from_there_and_loses_nothing_before(
        server: S3Server, bucket: str, damage: Callable[[bytes], bytes], kind: str) -> None:
    async with BucketLog(bucket, peer(1)) as log:
        log.append_many(0, entries(0, 2))
        log.append_many(2, entries(2, 2))
    key = batch_key(peer(1), 2)
    plant(server, bucket, key, damage(raw(server, bucket, key)))
    async with BucketLog(bucket, peer(2)) as reader:
        got = await reader.read_since(peer(1), 0)
        assert got[:2] == list(enumerate(entries(0, 2)))
        assert all(e == entries(0, 4)[i] for i, e in got)  # a prefix, never a wrong entry
        assert reader.withheld()[peer(1)].kind == kind
        [problem] = reader.doctor().all_problems()
        assert problem.kind == kind
        assert problem.path.endswith(key)
    async with BucketLog(bucket, peer(1)) as own:
        with pytest.raises(CorruptLogError, match="doctor --bucket"):
            own.append_many(4, [entry(4)])


async def test_compaction_starts_the_log_later_and_removes_the_batches_below(
        bucket: str) -> None:
    async with BucketLog(bucket, peer(1)) as log, BucketLog(bucket, peer(2)) as reader:
        log.append_many(0, entries(0, 3))
        log.append_many(3, entries(3, 3))
        assert len(await reader.read_since(peer(1), 0)) == 6
        assert log.compact_below(4) == 1
        assert log.first_indexes() == {peer(1): 3}
        assert batch_key(peer(1), 0) not in keys(bucket)
        late = BucketLog(bucket, peer(3))
        with pytest.raises(CompactedError):
            await late.read_since(peer(1), 0)
        assert await late.read_since(peer(1), 3) == list(enumerate(entries(3, 3), 3))
        assert await reader.cursors() == {peer(1): 6}
        log.append_many(6, [entry(6)])
        assert await late.cursors() == {peer(1): 7}
        await late.close()
        assert log.compact_below(7) == 2  # again: everything, and the old start key goes
        assert [k.rsplit("/", 1)[-1] for k in keys(bucket)] == ["00000000000000000007-start"]
        assert log.next_index == 7


async def test_an_empty_log_can_start_above_zero(bucket: str) -> None:
    async with BucketLog(bucket, peer(1)) as log:
        log.start_at(40)
        assert log.next_index == 40
        log.append_many(40, entries(40, 2))
    async with BucketLog(bucket, peer(2)) as reader:
        assert reader.first_indexes() == {peer(1): 40}
        assert await reader.read_since(peer(1), 40) == list(enumerate(entries(40, 2), 40))


async def test_following_costs_one_list_per_origin_plus_one_and_reads_each_batch_once(
        server: S3Server, bucket: str) -> None:
    origins = [peer(n) for n in range(1, 5)]
    logs = []
    for origin in origins:
        async with BucketLog(bucket, origin) as log:
            log.append_many(0, [Entry(1, b"x" * 100)] * 1_000)
            logs.append(log)
    reader = BucketLog(bucket, uuid4())
    await reader.cursors()
    for origin in origins:
        assert len(await reader.read_since(origin, 0)) == 1_000
    assert reader.store.requests == {"list": 5, "get": 4}
    await asyncio.sleep(reader._fresh)  # past the reuse window: a new round lists again
    for _ in range(3):  # idle rounds: listings only, nothing read again
        await reader.cursors()
    assert reader.store.requests == {"list": 5 + 3 * 5, "get": 4}
    async with BucketLog(bucket, origins[0]) as writer:
        writer.append_many(1_000, [Entry(2, b"y" * 100)] * 1_000)
        # 1,000 changes cost one PUT; a restarted writer first reads its own last batch.
        assert writer.store.requests == {"list": 1, "get": 1, "put": 1}
    await reader.cursors()
    assert len(await reader.read_since(origins[0], 1_000)) == 1_000
    assert reader.store.requests == {"list": 5 + 4 * 5, "get": 5}
    await reader.close()
    # The server answered exactly what the logs counted (LISTs are GETs on the wire),
    # plus the bucket's creation.
    ours = sum((log.store.requests for log in [*logs, writer, reader]), Counter())
    expected = {"PUT": ours["put"] + 1, "GET": ours["get"] + ours["list"]}
    await wait_until(_async(lambda: server.served(bucket) == expected), within=5)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()
    return wrapped


def following(log: BucketLog) -> tuple[list[object], asyncio.Task[None]]:
    """Every event of a watch of ``log``, as it arrives, and the task collecting them."""
    seen: list[object] = []

    async def follow() -> None:
        async for event in log.watch_cursors():
            seen.append(event)

    return seen, asyncio.create_task(follow())


async def test_an_idle_watch_backs_off_and_a_change_is_still_seen(bucket: str) -> None:
    watcher = BucketLog(bucket, peer(2), poll_interval=0.05, poll_max=0.4)
    seen, task = following(watcher)
    await asyncio.sleep(2.0)
    idle_lists = watcher.store.requests["list"]
    # At a steady 0.05 s it would be about 40 polls of 2 listings each.
    assert idle_lists <= 2 * 12
    async with BucketLog(bucket, peer(1)) as writer:
        writer.append_many(0, entries(0, 2))
    await wait_until(_async(lambda: any(getattr(e, "cursors", {}).get(peer(1)) == 2
                                        for e in seen)), within=5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await watcher.close()


async def test_a_local_write_brings_the_poll_back_to_its_quickest(bucket: str) -> None:
    watcher = BucketLog(bucket, peer(2), poll_interval=0.05, poll_max=10.0)
    seen, task = following(watcher)
    await asyncio.sleep(1.6)  # idle: the next poll is now about 1.6 s away
    await asyncio.to_thread(watcher.append_many, 0, entries(0, 1))  # this device writes
    async with BucketLog(bucket, peer(1)) as other:
        other.append_many(0, entries(0, 1))  # and another device answers
    started = asyncio.get_running_loop().time()
    await wait_until(_async(lambda: any(getattr(e, "cursors", {}).get(peer(1)) == 1
                                        for e in seen)), within=5)
    assert asyncio.get_running_loop().time() - started < 1.0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await watcher.close()


async def test_erasing_an_erased_slot_again_writes_nothing(bucket: str) -> None:
    async with BucketLog(bucket, peer(1)) as log:
        log.append_many(0, entries(0, 2))
        log.expunge(0)
        before = log.store.requests["put"]
        log.expunge(0)
        assert log.store.requests["put"] == before
    assert sum("-erased-" in k for k in keys(bucket)) == 1


@pytest.mark.parametrize(("origin", "first", "kind"), [
    (3, 0, "foreign-origin"),  # another device's prefix
    (1, 2, "misnamed"),  # the same prefix, under another first index
])
async def test_a_copy_of_a_batch_under_another_key_is_refused(
        server: S3Server, bucket: str, origin: int, first: int, kind: str) -> None:
    async with BucketLog(bucket, peer(1)) as log:
        log.append_many(0, entries(0, 2))
    plant(server, bucket, batch_key(peer(origin), first),
          raw(server, bucket, batch_key(peer(1), 0)))
    async with BucketLog(bucket, peer(2)) as reader:
        assert len(await reader.read_since(peer(origin), 0)) == (2 if origin == 1 else 0)
        assert reader.withheld()[peer(origin)].kind == kind


async def test_a_missing_batch_is_a_gap_and_nothing_after_it_is_served(bucket: str) -> None:
    async with BucketLog(bucket, peer(1)) as log:
        for start in (0, 2, 4):
            log.append_many(start, entries(start, 2))
    BucketStore(bucket).delete(batch_key(peer(1), 2))
    async with BucketLog(bucket, peer(2)) as reader:
        assert await reader.read_since(peer(1), 0) == list(enumerate(entries(0, 2)))
        held = reader.withheld()[peer(1)]
        assert (held.kind, held.from_index) == ("gap", 2)


async def test_a_damaged_snapshot_is_never_offered_and_doctor_names_it(
        server: S3Server, bucket: str) -> None:
    plant(server, bucket, "snapshots/" + "ab" * 32 + ".psnap", b"not a snapshot")
    async with BucketLog(bucket, peer(1)) as log:
        log.append_many(0, entries(0, 1))
        assert log.snapshots.valid() == []
        [ignored] = log.doctor().ignored
    assert ignored.path.endswith(".psnap")
    assert "not a usable snapshot" in ignored.reason
