"""An encrypted group's snapshots: sealed and signed in the folder and on the relay; a new
member bootstraps from one; a forged or plain snapshot is never loaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peerlog
from peerlog.filelog import SharedFolder
from peerlog.state.snapshot import FLAG_SEALED, HEADER
from peerlog.sync.errors import SnapshotError
from peerlog.trust import Keyring, Trust, verify_folder
from peerlog.trust.snapshots import open_snapshot, seal_snapshot
from tests.drivers.test_never_wedges import RELAY_DBS, relay
from tests.helpers import files_holding
from tests.trust.groups import group_of, newcomer
from tests.trust.test_attacks import origin_of
from tests.trust.test_relay_group import relay_bytes


def ring_of(home: Path) -> Keyring:
    ring = Keyring.load(home)
    assert ring is not None
    return ring


async def test_a_compacted_folder_holds_a_sealed_snapshot_a_newcomer_boots_from(
        tmp_path: Path, folder: Path) -> None:
    [writer] = await group_of(tmp_path, 1)
    async with peerlog.open(writer, folder=folder, live=False) as device:
        await device.put_many("notes", {f"k{i}": {"text": f"snap-marker-{i}"}
                                        for i in range(50)})
        await device.sync_now()
        done = await device.compact()
        assert done.snapshot is not None
    [snapshot] = (folder / "snapshots").iterdir()
    data = snapshot.read_bytes()
    assert HEADER.unpack_from(data)[2] & FLAG_SEALED
    assert files_holding(folder, b"snap-marker") == []
    async with peerlog.open(await newcomer(tmp_path, writer, folder), folder=folder,
                            live=False) as device:
        report = await device.sync_now()
        assert report.ok, report
        assert await device.get("notes", "k7") == {"text": "snap-marker-7"}


async def test_verifying_a_compacted_folder_starts_where_each_log_starts(
        tmp_path: Path, folder: Path) -> None:
    [writer] = await group_of(tmp_path, 1)
    async with peerlog.open(writer, folder=folder, live=False) as device:
        await device.put_many("notes", {f"k{i}": i for i in range(50)})
        await device.sync_now()
        assert (await device.compact()).segments_removed >= 1
    trust = Trust.load(writer)
    assert trust is not None
    async with SharedFolder(folder) as shared:
        assert shared.first_indexes()  # the log now starts above 0
        assert await verify_folder(trust, shared) == {}


async def test_a_snapshot_is_opened_only_when_a_member_signed_it(tmp_path: Path) -> None:
    writer, other = await group_of(tmp_path, 2)
    ring = ring_of(writer)
    async with peerlog.open(writer, live=False) as device:
        await device.put("t", "k", "v")
        plain = await device.store.snapshot()
    sealed = seal_snapshot(plain, ring)
    reader = ring_of(other)
    reader.members[ring.origin] = ring.own_member()
    assert open_snapshot(sealed, reader) == plain
    with pytest.raises(SnapshotError, match="not a member"):
        open_snapshot(sealed, _stranger(reader, ring))
    with pytest.raises(SnapshotError, match="unencrypted snapshot"):
        open_snapshot(plain, reader)
    tampered = bytearray(sealed)
    tampered[-100] ^= 1
    import hashlib

    tampered[-32:] = hashlib.sha256(bytes(tampered[:-32])).digest()
    with pytest.raises(SnapshotError, match="signature does not verify"):
        open_snapshot(bytes(tampered), reader)


def _stranger(reader: Keyring, producer: Keyring) -> Keyring:
    stranger = reader.copy()
    stranger.members.pop(producer.origin)
    return stranger


@pytest.mark.parametrize("make_db", RELAY_DBS, ids=["sqlite", "postgres"])
async def test_a_relay_keeps_only_sealed_snapshots(
        tmp_path: Path, make_db: Callable[[Path], str]) -> None:
    db = make_db(tmp_path)
    [writer] = await group_of(tmp_path, 1)
    origin = origin_of(writer)
    async with relay(db, [origin]) as (url, tokens):
        async with peerlog.open(writer, server=url, token=tokens[origin],
                                live=False) as device:
            await device.put_many("notes", {f"k{i}": {"text": f"relay-snap-marker-{i}"}
                                            for i in range(20)})
            await device.sync_now()
            assert (await device.compact()).snapshot is not None
        assert b"relay-snap-marker" not in relay_bytes(db)
        assert b"relay-snap-marker".hex().encode() not in relay_bytes(db)


async def test_a_planted_snapshot_is_never_loaded_by_a_member(tmp_path: Path,
                                                              folder: Path) -> None:
    """Someone with write access plants a plain snapshot claiming entries of a device whose
    log is gone: a newcomer of the encrypted group refuses it and loads nothing from it."""
    from peerlog import StateStore

    [writer] = await group_of(tmp_path, 1)
    async with peerlog.open(writer, folder=folder, live=False) as device:
        await device.put("notes", "k", {"text": "real"})
        await device.sync_now()
    async with StateStore(tmp_path / "outsider.db") as outsider:
        await outsider.put("notes", "k", {"text": "PLANTED"})
        planted = await outsider.snapshot()
    (folder / "snapshots").mkdir(exist_ok=True)
    from peerlog.state.snapshot import snapshot_name

    (folder / "snapshots" / snapshot_name(planted)).write_bytes(planted)
    async with peerlog.open(await newcomer(tmp_path, writer, folder), folder=folder,
                            live=False) as device:
        report = await device.sync_now()
        assert report.bootstrapped is None
        assert await device.get("notes", "k") == {"text": "real"}
