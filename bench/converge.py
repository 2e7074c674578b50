"""Time for N devices to converge through a local shared folder, beside the raw rate.

    python -m bench.converge [--changes C] [--devices 2,4,8] [--updates F] [--encrypted]

Each device is a `StateStore` that made C changes offline over 1,000 keys:
whole-value puts, or with ``--updates F`` that fraction of field updates
(three fields per key).  Timed: every device publishes its log
(`FileLogPublisher`), then every device takes in all the others
(`FileLogIngester`); at the end all state hashes must be equal.  The rate is
the entries delivered to other devices, N x (N-1) x C, per second.

Raw, from the same run: one origin's log read back with
`FileLog.read_entries` and applied with `SqliteOplog.apply_many` into a bare
oplog (no drivers, no state view), in entries per second.

LWW apply, from the same run: one origin's C entries applied to a fresh
`StateStore` (log + field-level state, in `apply_many` batches), beside a
bare ``sqlite3`` of the same rows: an ``executemany`` INSERT into an entries
table and an ``executemany`` last-writer-wins upsert per row into a state
table, in the same batches (``lww_vs_upsert``); best of 3 alternating runs
each.

With ``--encrypted``, each N also runs as one encrypted group (every entry
sealed and range-signed on publish, verified and opened on ingest:
`peerlog.trust.SealedLog`), right after the plain run of the same changes;
``encrypted_vs_plain`` is the ratio of their convergence rates for the
largest N.  Then sealing and opening throughput (payload MB/s, signatures
included) beside the raw AEAD (AES-256-GCM of `cryptography`, the cipher the
seal uses) encrypting and decrypting the same payloads with the same nonce and
associated-data sizes, best of 3 each.

The last line is one JSON object; ``converge_vs_raw`` is for the largest N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bare import bare_replay
from peerlog import Entry, FileLog, FileLogIngester, FileLogPublisher, SqliteOplog, StateStore
from peerlog.state.ops import encode_put, encode_update

BATCH = 5_000


def change(n: int, i: int, updates: float) -> bytes:
    key = f"k{(i * 7 + n) % 1000}"
    if (i * 7919) % 1000 < updates * 1000:
        return encode_update("items", key, {f"f{i % 3}": i})
    return encode_put("items", key, {"device": n, "i": i})


async def make_device(path: Path, n: int, changes: int, updates: float) -> StateStore:
    store = StateStore(path)
    for lo in range(0, changes, BATCH):
        await store.oplog.append_many([change(n, i, updates)
                                       for i in range(lo, min(lo + BATCH, changes))])
    return store


async def lww_rate(source: StateStore, tmp: Path, rounds: int = 3) -> tuple[float, float]:
    """Entries/s into a fresh StateStore, and a bare sqlite3 insert + upsert of the same
    rows: the best of ``rounds`` alternating runs of each (the machine is noisy)."""
    entries: list[Entry] = []
    while got := await source.oplog.read_since(source.origin, len(entries)):
        entries += [e for _, e in got if type(e) is Entry]
    ours, bare = 0.0, 0.0
    for n in range(rounds):
        ours = max(ours, await _state_apply(entries, source, tmp / f"lww{n}.db"))
        bare = max(bare, _bare_upsert(entries, tmp / f"bare{n}.db"))
    return ours, bare


async def _state_apply(entries: list[Entry], source: StateStore, path: Path) -> float:
    async with StateStore(path) as store:
        started = time.perf_counter()
        for lo in range(0, len(entries), BATCH):
            await store.oplog.apply_many(source.origin, lo, entries[lo:lo + BATCH])
        return len(entries) / (time.perf_counter() - started)


def _bare_upsert(entries: list[Entry], path: Path) -> float:
    return bare_replay(path, entries, batch=BATCH)


async def raw_rate(folder: Path, source: StateStore, tmp: Path) -> float:
    reader = FileLog(folder, source.origin.__class__(int=0))
    async with SqliteOplog(tmp / "raw.db") as bare:
        started = time.perf_counter()
        index = 0
        while got := reader.read_entries(source.origin, index):
            await bare.apply_many(source.origin, index, [e for _, e in got])
            index = got[-1][0] + 1
        elapsed = time.perf_counter() - started
    await reader.close()
    return index / elapsed


def one_group(devices: list[StateStore]) -> list[Any]:
    """A keyring per device, all in one group and each knowing every member (what invites
    and hellos lead to), as the `Opener` each device verifies with."""
    from peerlog.trust import Keyring, Opener

    rings = [Keyring.create(d.origin) for d in devices]
    founder = rings[0]
    for ring in rings[1:]:
        ring.group, ring.epochs = founder.group, dict(founder.epochs)
    members = {ring.origin: ring.own_member() for ring in rings}
    for ring in rings:
        ring.members = dict(members)
    return [Opener(ring) for ring in rings]


def sealed(log: FileLog, opener: Any, device: StateStore) -> Any:
    from peerlog.trust import SealedLog

    async def record(payload: bytes) -> int:
        index, _ = await device.oplog.append(payload)
        return index
    return SealedLog(log, opener, device.origin, record=record)


async def converge(n: int, changes: int, updates: float,
                   encrypted: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "shared"
        folder.mkdir()
        devices = [await make_device(tmp / f"d{i}.db", i, changes, updates) for i in range(n)]
        logs = [FileLog(folder, d.origin) for d in devices]
        views: list[Any] = list(logs)
        if encrypted:
            views = [sealed(log, opener, d)
                     for log, opener, d in zip(logs, one_group(devices), devices, strict=True)]
        started = time.perf_counter()
        for device, view in zip(devices, views, strict=True):
            await FileLogPublisher(device.oplog, view).run_once()
        for device, view in zip(devices, views, strict=True):
            await FileLogIngester(view, device.oplog).run_once()
        elapsed = time.perf_counter() - started
        hashes = {await d.state_hash() for d in devices}
        assert len(hashes) == 1, f"devices did not converge: {len(hashes)} states"
        for d in devices:
            assert sum((await d.oplog.cursors()).values()) == n * changes
        raw = await raw_rate(folder, devices[0], tmp)
        lww, upsert = await lww_rate(devices[0], tmp)
        for log in logs:
            await log.close()
        for d in devices:
            await d.close()
    delivered = n * (n - 1) * changes
    return {"devices": n, "seconds": round(elapsed, 3), "entries_delivered": delivered,
            "converge_per_s": round(delivered / elapsed), "raw_read_apply_per_s": round(raw),
            "ratio": round(delivered / elapsed / raw, 3), "lww_apply_per_s": round(lww),
            "bare_upsert_per_s": round(upsert), "lww_vs_upsert": round(lww / upsert, 3)}


async def seal_rates(changes: int) -> dict[str, float]:
    """Payload MB/s sealing (AEAD + range signatures) and opening (verify + AEAD) one
    device's log, beside the raw AEAD on the same payloads; best of 3 each."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        device = await make_device(tmp / "d.db", 0, changes, 0.0)
        [opener] = one_group([device])
        entries: list[Entry] = []
        while got := await device.oplog.read_since(device.origin, len(entries)):
            entries += [e for _, e in got if type(e) is Entry]
        await device.close()
    view = sealed(object(), opener, device)  # type: ignore[arg-type]  # sealing only
    megabytes = sum(len(e.payload) + 8 for e in entries) / 1e6
    best = {"seal": 0.0, "open": 0.0, "raw_encrypt": 0.0, "raw_decrypt": 0.0}
    aead = AESGCM(bytes(32))
    aad = bytes(55)
    for _ in range(3):
        started = time.perf_counter()
        ranges = view._seal(0, entries)
        best["seal"] = max(best["seal"], megabytes / (time.perf_counter() - started))
        started = time.perf_counter()
        at = 0
        for run in ranges:
            opened, bad = opener.open_range(device.origin, at, run)
            assert bad is None
            assert opened is not None
            at += len(run)
        best["open"] = max(best["open"], megabytes / (time.perf_counter() - started))
        started = time.perf_counter()
        boxes = [aead.encrypt(bytes(12), e.ts.to_bytes(8, "big") + e.payload, aad)
                 for e in entries]
        best["raw_encrypt"] = max(best["raw_encrypt"],
                                  megabytes / (time.perf_counter() - started))
        started = time.perf_counter()
        for box in boxes:
            aead.decrypt(bytes(12), box, aad)
        best["raw_decrypt"] = max(best["raw_decrypt"],
                                  megabytes / (time.perf_counter() - started))
    return {"seal_mb_s": round(best["seal"], 1), "open_mb_s": round(best["open"], 1),
            "raw_encrypt_mb_s": round(best["raw_encrypt"], 1),
            "raw_decrypt_mb_s": round(best["raw_decrypt"], 1),
            "seal_vs_raw": round(best["seal"] / best["raw_encrypt"], 3),
            "open_vs_raw": round(best["open"] / best["raw_decrypt"], 3)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--devices", default="2,4,8")
    parser.add_argument("--updates", type=float, default=0.0,
                        help="fraction of changes that are field updates (0..1)")
    parser.add_argument("--encrypted", action="store_true",
                        help="also run each N as an encrypted group, and time sealing")
    args = parser.parse_args()
    results = []
    summary: dict[str, object] = {}
    for n in (int(x) for x in args.devices.split(",")):
        result = await converge(n, args.changes, args.updates)
        results.append(result)
        print(f"N={n}: converged in {result['seconds']} s, {result['converge_per_s']:,} "
              f"entries/s delivered; raw read+apply {result['raw_read_apply_per_s']:,}/s; "
              f"ratio {result['ratio']}; LWW apply {result['lww_apply_per_s']:,}/s vs bare "
              f"upsert {result['bare_upsert_per_s']:,}/s: {result['lww_vs_upsert']}",
              flush=True)
        if args.encrypted:
            sealed_run = await converge(n, args.changes, args.updates, encrypted=True)
            result["encrypted_seconds"] = sealed_run["seconds"]
            result["encrypted_per_s"] = sealed_run["converge_per_s"]
            result["encrypted_vs_plain"] = round(
                sealed_run["converge_per_s"] / result["converge_per_s"], 3)
            print(f"N={n}, encrypted: converged in {sealed_run['seconds']} s, "
                  f"{sealed_run['converge_per_s']:,} entries/s delivered; "
                  f"{result['encrypted_vs_plain']} of the plain run", flush=True)
            summary["encrypted_vs_plain"] = result["encrypted_vs_plain"]
    if args.encrypted:
        rates = await seal_rates(args.changes)
        print(f"sealing {rates['seal_mb_s']} MB/s vs raw AEAD {rates['raw_encrypt_mb_s']} "
              f"MB/s ({rates['seal_vs_raw']}); opening {rates['open_mb_s']} MB/s vs raw "
              f"{rates['raw_decrypt_mb_s']} MB/s ({rates['open_vs_raw']})", flush=True)
        summary.update(rates)
    last = results[-1]
    print(json.dumps({"changes_per_device": args.changes, "updates": args.updates,
                      "runs": results, "converge_vs_raw": last["ratio"],
                      "lww_vs_upsert": last["lww_vs_upsert"], "devices": last["devices"],
                      **summary}))


if __name__ == "__main__":
    asyncio.run(main())
