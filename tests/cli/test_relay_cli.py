"""`peerlog token`, `peerlog serve` and `peerlog sync --server`, as a person runs them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from tests.helpers import free_port
from tests.processes import peerlog, start_relay


@dataclass
class TwoDevices:
    """Devices ``a`` and ``b`` (homes), their peer ids and tokens, and the relay's URL."""

    a: str
    b: str
    ids: list[str]
    token_a: str
    token_b: str
    tokens: Path
    url: str


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[TwoDevices]:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    ids = [json.loads(peerlog("--home", h, "init", "--json").stdout)["peer_id"] for h in (a, b)]
    tokens = tmp_path / "tokens.json"
    token_a, token_b = (peerlog("token", "--tokens", str(tokens), "--device", i).stdout.strip()
                        for i in ids)
    port = free_port()
    server = start_relay(f"sqlite:{tmp_path}/relay.db", port, tokens)
    try:
        yield TwoDevices(a, b, ids, token_a, token_b, tokens, f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)


def test_two_devices_sync_through_a_relay(relay: TwoDevices) -> None:
    a, b, token_a, token_b, url = relay.a, relay.b, relay.token_a, relay.token_b, relay.url
    peerlog("--home", a, "put", "notes", "n1", '"from a"')
    peerlog("--home", b, "put", "notes", "n2", '"from b"')
    for home, token in ((a, token_a), (b, token_b), (a, token_a)):
        done = peerlog("--home", home, "sync", "--server", url, "--token", token, "--json")
        assert done.returncode == 0, done.stderr
    for home in (a, b):
        listing = peerlog("--home", home, "ls", "notes", "--json")
        assert json.loads(listing.stdout) == {"n1": "from a", "n2": "from b"}
    # A device token cannot be used to write another device's changes.
    peerlog("--home", b, "put", "notes", "n3", '"from b again"')
    stolen = peerlog("--home", b, "sync", "--server", url, "--token", token_a)
    assert stolen.returncode == 1
    assert "403" in stolen.stderr


def test_sync_needs_a_token_for_a_server(tmp_path: Path) -> None:
    peerlog("--home", str(tmp_path / "a"), "init")
    done = peerlog("--home", str(tmp_path / "a"), "sync", "--server", "http://127.0.0.1:1",
                   env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "token" in done.stderr


@pytest.mark.parametrize("db", ["mysql://nope", "nonsense"])
def test_serve_refuses_an_unknown_database_url(tmp_path: Path, db: str) -> None:
    done = peerlog("serve", "--db", db, "--tokens", str(tmp_path / "t.json"))
    assert done.returncode == 1
    assert "sqlite:PATH or postgresql" in done.stderr


def test_a_copied_device_continues_through_a_relay_with_its_own_token(
        relay: TwoDevices, tmp_path: Path) -> None:
    a, b, url = relay.a, relay.b, relay.url
    peerlog("--home", a, "put", "notes", "shared", '"before the copy"')
    assert peerlog("--home", a, "sync", "--server", url, "--token",
                   relay.token_a).returncode == 0
    shutil.copytree(a, tmp_path / "copy")
    copy = str(tmp_path / "copy")
    peerlog("--home", a, "put", "notes", "a", '"the original\'s"')
    peerlog("--home", copy, "put", "notes", "copy", '"the copy\'s"')
    assert peerlog("--home", a, "sync").returncode == 0
    done = peerlog("--home", copy, "sync")  # the remembered server and token
    assert done.returncode == 0, done.stderr
    assert "continues as device" in done.stderr
    for home in (a, b, copy, a):
        token = relay.token_b if home == b else relay.token_a
        assert peerlog("--home", home, "sync", "--server", url, "--token", token).returncode == 0
    expected = {"shared": "before the copy", "a": "the original's", "copy": "the copy's"}
    for home in (a, b, copy):
        listing = peerlog("--home", home, "ls", "notes", "--json")
        assert json.loads(listing.stdout) == expected
    grant = next(g for g in json.loads(relay.tokens.read_text())["tokens"].values()
                 if g["origin"] == relay.ids[0])
    assert len(grant["continued"]) == 1


def test_a_claim_lost_before_it_reached_the_relay_is_made_on_the_next_sync(
        relay: TwoDevices) -> None:
    import asyncio

    from peerlog import StateStore

    a, url = relay.a, relay.url
    peerlog("--home", a, "put", "notes", "1", '"one"')
    assert peerlog("--home", a, "sync", "--server", url, "--token",
                   relay.token_a).returncode == 0

    async def fork_without_telling_the_relay() -> str:
        async with StateStore(Path(a) / "device.sqlite") as store:
            await store.put("notes", "2", "two")
            new, carried = await store.oplog.continue_as_new_origin(1)
            assert carried == 1
        async with StateStore(Path(a) / "device.sqlite") as again:
            assert again.oplog.forked_from == UUID(relay.ids[0])
        return str(new)

    new = asyncio.run(fork_without_telling_the_relay())
    done = peerlog("--home", a, "sync")
    assert done.returncode == 0, done.stderr
    assert peerlog("--home", relay.b, "sync", "--server", url, "--token",
                   relay.token_b).returncode == 0
    listing = peerlog("--home", relay.b, "ls", "notes", "--json")
    assert json.loads(listing.stdout) == {"1": "one", "2": "two"}
    grant = next(g for g in json.loads(relay.tokens.read_text())["tokens"].values()
                 if g["origin"] == relay.ids[0])
    assert grant["continued"] == [new]


def test_compact_through_a_relay_drops_a_deleted_value_from_its_database(
        relay: TwoDevices, tmp_path: Path) -> None:
    a, b, url = relay.a, relay.b, relay.url
    secret = "hunter2-cli-relay-3f9a"
    peerlog("--home", a, "put", "accounts", "me", json.dumps({"password": secret}))
    for home, token in ((a, relay.token_a), (b, relay.token_b)):
        assert peerlog("--home", home, "sync", "--server", url, "--token", token).returncode == 0
    peerlog("--home", b, "delete", "accounts", "me")
    for home in (b, a):
        assert peerlog("--home", home, "sync").returncode == 0
    for home in (a, b, a):
        done = peerlog("--home", home, "compact", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["snapshot"].endswith(".psnap")
    found = [p.name for p in tmp_path.rglob("*") if p.is_file()
             and secret.encode() in p.read_bytes()]
    assert found == []
    # A third device joins and starts from the relay's snapshot.
    c = str(tmp_path / "c")
    c_id = json.loads(peerlog("--home", c, "init", "--json").stdout)["peer_id"]
    token_c = peerlog("token", "--tokens", str(relay.tokens), "--device", c_id).stdout.strip()
    done = peerlog("--home", c, "sync", "--server", url, "--token", token_c)
    assert done.returncode == 0, done.stderr
    assert "started from snapshot" in done.stdout
    assert json.loads(peerlog("--home", c, "ls", "accounts", "--json").stdout) == {}
