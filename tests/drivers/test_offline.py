"""Live sync while offline (item 6 of the reliability issue): it retries with backoff,
says once that it is offline and once that it is back, and never exits for it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peerlog import FileLog, FolderSync, StateStore, SyncReport
from peerlog.sync.backoff import Backoff
from tests.helpers import free_port, wait_until
from tests.processes import ROOT, peerlog, start_relay


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(first=0.5, cap=4.0)
    delays = [backoff.next() for _ in range(8)]
    for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 4, 4, 4, 4], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next() <= 0.5
    with pytest.raises(ValueError, match="0 < first <= cap"):
        Backoff(first=2, cap=1)


async def test_folder_sync_survives_the_folder_disappearing_and_coming_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="peerlog.drivers.rounds")
    shared, away = tmp_path / "shared", tmp_path / "unmounted"
    shared.mkdir()
    rounds: list[SyncReport] = []
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b, \
            FileLog(shared, a.origin, force_polling=True, poll_interval=0.1) as log_a, \
            FileLog(shared, b.origin, force_polling=True, poll_interval=0.1) as log_b:
        live_a = asyncio.create_task(FolderSync(a.oplog, log_a).run(
            rounds.append, backoff=Backoff(first=0.05, cap=0.3)))
        live_b = asyncio.create_task(FolderSync(b.oplog, log_b).run(
            backoff=Backoff(first=0.05, cap=0.3)))
        await a.put("t", "before", 1)

        async def b_has(key: str) -> bool:
            try:
                await b.get("t", key)
                return True
            except KeyError:
                return False

        await wait_until(lambda: b_has("before"))
        os.rename(shared, away)  # the drive is unplugged
        await a.put("t", "while-away", 2)
        await wait_until(lambda: _said(caplog, "offline"))
        await asyncio.sleep(0.5)
        assert not live_a.done()
        os.rename(away, shared)  # and plugged back in
        await wait_until(lambda: b_has("while-away"))
        await wait_until(lambda: _said(caplog, "back online"))
        assert not live_a.done()
        assert not live_b.done()
        # Both changes are in the folder, once each.  (Counting the rounds' reports would
        # race: a round that published and then lost the folder again reports nothing.)
        assert (await log_b.cursors()).of(a.origin) == 2
        assert rounds, "rounds were reported"
        live_a.cancel()
        live_b.cancel()
        await asyncio.gather(live_a, live_b, return_exceptions=True)
    offline = [r for r in caplog.records if "offline" in r.getMessage()
               and "still" not in r.getMessage()]
    assert 1 <= len(offline) <= 2, "said once per device, not on every retry"


async def _said(caplog: pytest.LogCaptureFixture, words: str) -> bool:
    return any(words in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_sync_watch_survives_a_relay_killed_and_restarted_twice(tmp_path: Path) -> None:
    homes = [str(tmp_path / "a"), str(tmp_path / "b")]
    ids = [json.loads(peerlog("--home", h, "init", "--json").stdout)["peer_id"] for h in homes]
    tokens = str(tmp_path / "tokens.json")
    secrets = [peerlog("token", "--tokens", tokens, "--device", i).stdout.strip() for i in ids]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    relay = start_relay(f"sqlite:{tmp_path}/relay.db", port, tokens)
    watchers = [subprocess.Popen(
        [sys.executable, "-m", "peerlog.cli", "--home", home, "sync", "--server", url,
         "--token", secret, "--watch", "--json", "--retry-cap", "1"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for home, secret in zip(homes, secrets, strict=True)]
    try:
        n = 0
        for _ in range(2):
            for _ in range(3):
                for home in homes:
                    peerlog("--home", home, "put", "t", f"{n}", f'"{home[-1]}"')
                    n += 1
                time.sleep(0.2)
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            for home in homes:  # written while the relay is down
                peerlog("--home", home, "put", "t", f"{n}", f'"{home[-1]}"')
                n += 1
            time.sleep(1.5)
            assert all(w.poll() is None for w in watchers), "a watcher exited while offline"
            relay = start_relay(f"sqlite:{tmp_path}/relay.db", port, tokens)
        deadline = time.monotonic() + 30
        listings: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            listings = [json.loads(peerlog("--home", h, "ls", "t", "--json").stdout)
                        for h in homes]
            if all(len(listing) == n for listing in listings):
                break
            time.sleep(0.5)
        assert len(listings[0]) == n
        assert listings[0] == listings[1]
        assert all(w.poll() is None for w in watchers), "the watchers never exited"
    finally:
        for w in watchers:
            w.send_signal(signal.SIGINT)
        outputs = [w.communicate(timeout=15) for w in watchers]
        relay.terminate()
        relay.wait(10)
    for out, err in outputs:
        rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert rounds, "one JSON line per round"
        assert err.count("offline: cannot reach") == 2, err
        assert err.count("back online") == 2, err
        assert "Traceback" not in err
