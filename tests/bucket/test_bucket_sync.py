"""Devices converge through a bucket: live rounds, snapshots, the application API, the
command line, the demo and encrypted groups.  (The driver tests of tests/drivers that take
``place`` run through a bucket too.)"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import peerlog
from peerlog import BucketLog, BucketStore, FolderSync, StateStore
from peerlog.cli.main import main
from peerlog.home import load_sync
from peerlog.sync.backoff import Backoff
from tests.helpers import free_port, wait_until
from tests.s3 import S3Server


async def round_of(store: StateStore, bucket: str) -> peerlog.SyncReport:
    async with BucketLog(bucket, store.origin) as log:
        report = await FolderSync(store.oplog, log, state=store).run_once()
    assert report.ok, report.to_json()
    return report


def bucket_bytes(bucket: str) -> bytes:
    """Every object in the bucket, concatenated: what its provider can read."""
    store = BucketStore(bucket)
    return b"".join(store.get(o.key) for o in store.list_keys(""))


async def test_live_devices_writing_at_once_converge(tmp_path: Path, bucket: str) -> None:
    stores = [StateStore(tmp_path / f"{n}.db") for n in range(3)]
    logs = [BucketLog(bucket, s.origin, poll_interval=0.05, poll_max=0.2) for s in stores]
    syncs = [FolderSync(s.oplog, log, state=s) for s, log in zip(stores, logs, strict=True)]
    tasks = [asyncio.create_task(sync.run()) for sync in syncs]
    try:
        async def writes(n: int, store: StateStore) -> None:
            for k in range(30):
                await store.put("t", f"{n}-{k}", k)
                await store.put("shared", "last", f"{n}-{k}")
                await asyncio.sleep(0.01)

        await asyncio.gather(*(writes(n, s) for n, s in enumerate(stores)))

        async def converged() -> bool:
            cursors = [await s.oplog.cursors() for s in stores]
            return all(c == cursors[0] for c in cursors) and sum(cursors[0].values()) == 180

        await wait_until(converged, within=30)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for log in logs:
            await log.close()
    hashes = {await s.state_hash() for s in stores}
    assert len(hashes) == 1
    assert len(await stores[0].items("t")) == 90
    for store in stores:
        await store.close()


async def test_an_app_opens_a_device_on_a_bucket_and_it_is_remembered(
        tmp_path: Path, bucket: str) -> None:
    async with peerlog.open(tmp_path / "a", bucket=bucket, live=False) as a:
        await a.put("notes", "n", "from a")
    assert load_sync(tmp_path / "a") == {"bucket": bucket}
    async with peerlog.open(tmp_path / "b", bucket=bucket, live=False) as b:
        assert await b.get("notes", "n") == "from a"
    async with peerlog.open(tmp_path / "a", live=False) as again:
        assert again.status.where == bucket


async def test_an_encrypted_group_syncs_through_a_bucket_it_cannot_read(
        tmp_path: Path, bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with peerlog.open(tmp_path / "a", bucket=bucket, encrypted=True, live=False) as a:
        await a.put("secrets", "wifi", "correct horse battery staple")
        code = await a.invite()
        await a.sync_now()
    async with peerlog.open(tmp_path / "b", bucket=bucket, join=code, live=False) as b:
        assert await b.get("secrets", "wifi") == "correct horse battery staple"
        await b.put("secrets", "door", "4711-pin-marker")
    async with peerlog.open(tmp_path / "a", live=False) as a:
        assert await a.get("secrets", "door") == "4711-pin-marker"
        await a.compact()  # a sealed snapshot in the bucket too
    seen = bucket_bytes(bucket)
    for marker in (b"correct horse", b"4711-pin-marker", b"secrets", b"wifi"):
        assert marker not in seen
    async with peerlog.open(tmp_path / "outsider", bucket=bucket, live=False) as outsider:
        status = outsider.status
    assert not status.online
    assert "encrypted group" in (status.error or "")
    # A member's doctor verifies every device's signatures in the bucket too.
    doctor = ["--home", str(tmp_path / "a"), "doctor", "--bucket", bucket, "--json"]
    exit_code = await asyncio.to_thread(lambda: main(doctor))
    assert exit_code == 0, capsys.readouterr()


def test_the_command_line_syncs_and_diagnoses_a_bucket(
        tmp_path: Path, bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    homes = [str(tmp_path / name) for name in ("a", "b")]
    for n, home in enumerate(homes):
        assert main(["--home", home, "init"]) == 0
        assert main(["--home", home, "put", "t", f"k{n}", json.dumps(n)]) == 0
    for home in homes + homes[:1]:
        assert main(["--home", home, "sync", "--bucket", bucket, "--json"]) == 0
    capsys.readouterr()
    assert main(["--home", homes[0], "sync", "--json"]) == 0  # the bucket is remembered
    assert main(["--home", homes[1], "ls", "t", "--json"]) == 0
    out = capsys.readouterr().out
    assert "k0" in out
    assert "k1" in out
    assert main(["--home", homes[1], "status", "--bucket", bucket, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["origins"]
    assert [(r["held"], r["in_folder"], r["lag"]) for r in rows] == [(1, 1, 0), (1, 1, 0)]
    BucketStore(bucket).put("stray.bin", b"not peerlog's")
    assert main(["doctor", "--bucket", bucket, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"]
    assert [o["entries"] for o in report["origins"]] == [1, 1]
    assert [i["path"].rsplit("/", 1)[-1] for i in report["ignored"]] == ["stray.bin"]


def test_a_bad_bucket_url_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "a"), "init"]) == 0
    assert main(["--home", str(tmp_path / "a"), "sync", "--bucket", "ftp://nope"]) == 2
    assert "not a bucket URL" in capsys.readouterr().err


def test_a_missing_bucket_is_named_and_nothing_is_written(
        tmp_path: Path, server: object, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "a")
    assert main(["--home", home, "init"]) == 0
    assert main(["--home", home, "put", "t", "k", "1"]) == 0
    assert main(["--home", home, "sync", "--bucket", "s3://no-such-bucket/app"]) == 1
    assert "the bucket does not exist" in capsys.readouterr().err
    assert main(["--home", home, "get", "t", "k"]) == 0  # the device is as it was


async def test_a_local_path_works_as_a_bucket(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'bucket'}"
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b:
        await a.put("t", "a", 1)
        await b.put("t", "b", 2)
        for store in (a, b, a):
            await round_of(store, url)
        assert await a.state_hash() == await b.state_hash()
        assert sorted(p.name for p in (tmp_path / "bucket" / str(a.origin)).iterdir()) == \
            ["00000000000000000000.plog", "cursors.json"]
        clone = BucketLog(url, a.origin)
        clone.append_many(1, [peerlog.Entry(5, b"the clone's")])  # a new batch: accepted
        with pytest.raises(peerlog.DivergenceError):
            BucketLog(url, a.origin).append_many(1, [peerlog.Entry(6, b"another clone's")])
        await clone.close()


def test_the_demo_converges_as_an_encrypted_group_through_a_bucket(
        tmp_path: Path, bucket: str) -> None:
    done = subprocess.run([sys.executable, "-m", "peerlog.cli", "demo", "--devices", "3",
                           "--changes", "300", "--dir", str(tmp_path), "--encrypted",
                           "--bucket", bucket],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "converged" in done.stdout
    assert "objects of the bucket" in done.stdout
    assert "not found" in done.stdout
    assert not (tmp_path / "shared").exists()


async def test_sync_waits_out_an_unreachable_endpoint_and_resumes(
        tmp_path: Path, server: S3Server, caplog: pytest.LogCaptureFixture) -> None:
    from moto.server import ThreadedMotoServer

    caplog.set_level(logging.WARNING, logger="peerlog.drivers.rounds")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    url = server.fresh_bucket()  # moto keeps one store per process: the new server sees it
    async with StateStore(tmp_path / "a.db") as a, \
            BucketLog(url, a.origin, endpoint=endpoint, poll_interval=0.05) as log:
        await a.put("t", "k", "written while the endpoint is down")
        rounds: list[peerlog.SyncReport] = []
        live = asyncio.create_task(FolderSync(a.oplog, log).run(
            rounds.append, backoff=Backoff(first=0.05, cap=0.3)))
        await wait_until(_logged(caplog, "offline: cannot reach the bucket"))
        assert not rounds
        assert not live.done()
        came_back = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        came_back.start()
        try:
            await wait_until(_logged(caplog, "back online: the bucket"), within=20)
            await wait_until(lambda: _has_batch(url, endpoint, a.origin), within=10)
            assert not live.done()
        finally:
            live.cancel()
            await asyncio.gather(live, return_exceptions=True)
            came_back.stop()


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(text in r.getMessage() for r in caplog.records)
    return check


async def _has_batch(url: str, endpoint: str, origin: object) -> bool:
    keys = [o.key for o in BucketStore(url, endpoint=endpoint).list_keys(f"{origin}/")]
    return any(k.endswith(".plog") for k in keys)


def test_without_the_bucket_extra_the_error_names_it_in_one_line(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['obstore'] = None\n"
            "from peerlog.cli.main import main\n"
            f"sys.exit(main(['--home', {str(tmp_path / 'a')!r}, 'init']) or "
            f"main(['--home', {str(tmp_path / 'a')!r}, 'sync', '--bucket', 's3://b/p']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "pip install 'peerlog[bucket]'" in done.stderr
