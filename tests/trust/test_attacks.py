"""Someone with write access to the shared folder attacks an encrypted group.

Each attack worked on 0.1 (the devices showed the forged value, lost an entry in
silence, or stopped syncing the victim) and must now be withheld, applied
nowhere, reported by name, and never lock the real device out.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import peerlog
from peerlog import Entry, FileLog
from peerlog.filelog import format as fmt
from peerlog.state.ops import encode_put
from peerlog.trust import Keyring
from peerlog.trust.sealing import seal_range
from tests.helpers import now_ts
from tests.trust.groups import group_of, newcomer


def origin_of(home: Path) -> UUID:
    ring = Keyring.load(home)
    assert ring is not None
    return ring.origin


async def put(home: Path, folder: Path, value: str) -> None:
    async with peerlog.open(home, folder=folder, live=False) as device:
        await device.put("todos", "milk", {"v": value})
        await device.sync_now()


async def read(home: Path, folder: Path) -> tuple[object, peerlog.SyncReport]:
    async with peerlog.open(home, folder=folder, live=False) as device:
        report = await device.sync_now()
        return await device.get("todos", "milk", None), report


async def a_group(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    folder = tmp_path / "shared"
    folder.mkdir()
    victim, reader, member = await group_of(tmp_path, 3)
    await put(victim, folder, "real")
    for home in (reader, member, victim):
        await read(home, folder)
    assert (await read(reader, folder))[0] == {"v": "real"}
    return folder, victim, reader, member


def forge_plain(folder: Path, victim: UUID) -> None:
    """What an outsider can do: append a plain entry in the victim's name."""
    log = FileLog(folder, victim)
    log.append(log.next_index, Entry(now_ts(), encode_put("todos", "milk",
                                                          {"v": "FORGED as victim"})))


def forge_as_member(folder: Path, member: Path, victim: UUID) -> None:
    """What a member (who holds the group key) can do: seal a valid entry in the victim's
    slot, signed with its own key."""
    ring = Keyring.load(member)
    assert ring is not None
    cipher = ring.cipher(ring.epoch)
    assert cipher is not None
    log = FileLog(folder, victim)
    index = log.next_index
    body = cipher.seal(victim, index, Entry(now_ts(), encode_put(
        "todos", "milk", {"v": "FORGED as victim"})))
    log.append_many(index, seal_range(cipher, ring.signer, victim, index, [body]))


async def test_an_outsiders_entry_in_a_devices_name_is_withheld_and_reported(
        tmp_path: Path) -> None:
    folder, victim, reader, _ = await a_group(tmp_path)
    forge_plain(folder, origin_of(victim))
    value, report = await read(reader, folder)
    assert value == {"v": "real"}
    held = report.withheld[origin_of(victim)]
    assert held.kind == "unsealed"


async def test_a_members_forgery_in_another_devices_name_fails_its_signature(
        tmp_path: Path) -> None:
    folder, victim, reader, member = await a_group(tmp_path)
    forge_as_member(folder, member, origin_of(victim))
    value, report = await read(reader, folder)
    assert value == {"v": "real"}
    held = report.withheld[origin_of(victim)]
    assert held.kind == "forged"
    assert f"signature does not verify for device {origin_of(victim)}" in str(held)


async def test_the_real_device_is_never_locked_out_by_a_forgery_in_its_name(
        tmp_path: Path) -> None:
    folder, victim, reader, member = await a_group(tmp_path)
    forge_as_member(folder, member, origin_of(victim))
    await put(victim, folder, "real again")
    async with peerlog.open(victim, folder=folder, live=False) as device:
        assert (await device.sync_now()).ok
    value, report = await read(reader, folder)
    assert value == {"v": "real again"}
    assert report.ok, report
    assert list((folder / str(origin_of(victim))).glob("*.set-aside")), \
        "the forged record is kept aside as evidence"


async def test_a_forged_erasure_is_applied_nowhere_and_reported(tmp_path: Path) -> None:
    folder, victim, reader, _ = await a_group(tmp_path)
    log = FileLog(folder, origin_of(victim))
    log.expunge(log.next_index - 1)  # the victim's put: the last entry it wrote
    value, report = await read(reader, folder)
    assert value == {"v": "real"}
    held = report.withheld[origin_of(victim)]
    assert held.kind == "forged-erasure"
    value, report = await read(await newcomer(tmp_path, reader, folder), folder)
    assert value is None  # never applied: the erased slot and what follows are withheld
    assert report.withheld[origin_of(victim)].kind == "forged-erasure"


async def test_a_fake_conflict_copy_does_not_freeze_the_device(tmp_path: Path) -> None:
    folder, victim, reader, member = await a_group(tmp_path)
    segment = folder / str(origin_of(victim)) / fmt.segment_name(0)
    ring = Keyring.load(member)
    assert ring is not None
    cipher = ring.cipher(ring.epoch)
    assert cipher is not None
    body = cipher.seal(origin_of(victim), 0, Entry(now_ts(), b"fake"))
    fake = fmt.encode_header(origin_of(victim), 0) + fmt.encode_record(
        0, seal_range(cipher, ring.signer, origin_of(victim), 0, [body]))
    (segment.parent / (segment.stem + ".sync-conflict-20261124-101500-FAKE001.plog")
     ).write_bytes(fake)
    await put(victim, folder, "still syncing")
    value, report = await read(reader, folder)
    assert value == {"v": "still syncing"}
    assert report.ok, report
    diagnosis = FileLog(folder, origin_of(reader))
    try:
        from peerlog.trust import Trust

        trust = Trust.load(reader)
        assert trust is not None
        trust.wrap(diagnosis, origin_of(reader), None)
        kinds = [p.kind for p in diagnosis.doctor().all_problems()]
        assert "forged" in kinds
        assert "divergence" not in kinds
    finally:
        await diagnosis.close()


async def test_a_device_no_member_admitted_is_withheld_as_not_a_member(
        tmp_path: Path) -> None:
    """Someone who obtained the group key (not an invite) writes as a new device: its
    hello is signed by an invite key no member issued."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from peerlog.home import open_device
    from peerlog.trust import group as groups

    folder, victim, reader, _ = await a_group(tmp_path)
    stolen = Keyring.load(victim)
    assert stolen is not None
    intruder = tmp_path / "intruder"
    async with open_device(intruder, create=True) as store:
        ring = Keyring.create(store.origin, group=stolen.group, epoch_key=stolen.epochs[0])
        ring.members = {**stolen.members, store.origin: ring.own_member()}
        ring.save(intruder)
        await store.oplog.append(groups.hello(ring, Ed25519PrivateKey.generate()))
        await store.put("todos", "milk", {"v": "FORGED by an intruder"})
    async with peerlog.open(intruder, folder=folder, live=False) as device:
        await device.sync_now()
    value, report = await read(reader, folder)
    assert value == {"v": "real"}
    assert report.withheld[ring.origin].kind == "not-a-member"
