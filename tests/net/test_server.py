"""The relay's answers: who may write what, and bad input never stores anything."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets

from peerlog import Entry, SqliteOplog
from peerlog.net import RelayLimits, TokenStore, create_app
from peerlog.net.serve import ServeOptions, running
from peerlog.net.wire import RECORD_TYPE, decode_batch, encode_batch
from tests.helpers import entries, peer

A, B = peer(1), peer(2)


@dataclass
class Relay:
    client: httpx.AsyncClient
    oplog: SqliteOplog
    tokens: TokenStore
    device_a: str
    relay: str

    async def post(self, who: object, start: int, body: bytes, token: str | None
                   ) -> httpx.Response:
        headers = {"Content-Type": RECORD_TYPE}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.post(f"/v1/origins/{who}/entries", params={"start": start},
                                      content=body, headers=headers)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    oplog = SqliteOplog(tmp_path / "relay.db")
    tokens = TokenStore()
    device_a, relay_token = tokens.issue(A, "a"), tokens.issue(None, "relay")
    app = create_app(oplog, tokens, limits=RelayLimits(max_body=64 << 10))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://relay") as client:
        yield Relay(client, oplog, tokens, device_a, relay_token)
    await oplog.close()


async def nothing_stored(relay: Relay) -> None:
    assert await relay.oplog.cursors() == {}


async def test_a_device_writes_its_own_origin(relay: Relay) -> None:
    response = await relay.post(A, 0, encode_batch(0, entries(0, 3)), relay.device_a)
    assert (response.status_code, response.json()) == (200, {"new": 3})
    assert await relay.oplog.cursors() == {A: 3}


async def test_a_relay_token_writes_any_origin(relay: Relay) -> None:
    response = await relay.post(B, 0, encode_batch(0, entries(0, 2)), relay.relay)
    assert response.status_code == 200


async def test_no_token_is_401_and_nothing_is_stored(relay: Relay) -> None:
    response = await relay.post(A, 0, encode_batch(0, entries(0, 1)), None)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert (await relay.client.get("/v1/cursors")).status_code == 401
    await nothing_stored(relay)


async def test_a_wrong_token_is_401(relay: Relay) -> None:
    response = await relay.post(A, 0, encode_batch(0, entries(0, 1)), "guessed")
    assert response.status_code == 401
    await nothing_stored(relay)


async def test_a_device_writing_another_origin_is_403(relay: Relay) -> None:
    response = await relay.post(B, 0, encode_batch(0, entries(0, 1)), relay.device_a)
    assert response.status_code == 403
    assert str(A) in response.json()["message"]
    await nothing_stored(relay)


async def test_an_oversized_body_is_413(relay: Relay) -> None:
    big = [Entry(1, b"x" * 1000)] * 100  # 100 kB, over the 64 kB limit
    response = await relay.post(A, 0, encode_batch(0, big), relay.device_a)
    assert response.status_code == 413
    await nothing_stored(relay)


@pytest.mark.parametrize(
    "body",
    [b"garbage", encode_batch(0, entries(0, 3))[:-5], encode_batch(0, entries(0, 3)) + b"!",
     encode_batch(5, entries(0, 3))],
    ids=["garbage", "truncated", "trailing-bytes", "index-not-start"],
)
async def test_malformed_entries_are_400(relay: Relay, body: bytes) -> None:
    response = await relay.post(A, 0, body, relay.device_a)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed"
    await nothing_stored(relay)


@pytest.mark.parametrize("query", ["start=abc", "start=-1", ""], ids=["text", "negative",
                                                                      "missing"])
async def test_bad_parameters_are_400(relay: Relay, query: str) -> None:
    response = await relay.client.post(
        f"/v1/origins/{A}/entries?{query}", content=encode_batch(0, entries(0, 1)),
        headers={"Authorization": f"Bearer {relay.device_a}"})
    assert response.status_code == 400
    await nothing_stored(relay)


async def test_a_bad_origin_is_400(relay: Relay) -> None:
    response = await relay.post("not-a-uuid", 0, b"", relay.relay)
    assert response.status_code == 400


async def test_a_gap_is_409_with_expected_and_actual(relay: Relay) -> None:
    response = await relay.post(A, 4, encode_batch(4, entries(4, 1)), relay.device_a)
    assert response.status_code == 409
    assert response.json() | {"message": ""} == {
        "error": "cursor_mismatch", "expected": 0, "actual": 4, "message": ""}
    await nothing_stored(relay)


async def test_divergent_entries_are_409_and_change_nothing(relay: Relay) -> None:
    await relay.post(A, 0, encode_batch(0, entries(0, 2)), relay.device_a)
    response = await relay.post(A, 0, encode_batch(0, [Entry(9, b"other")]), relay.device_a)
    assert response.status_code == 409
    assert response.json()["error"] == "divergence"
    assert await relay.oplog.read_since(A, 0) == list(enumerate(entries(0, 2)))


async def test_pages_are_bounded(relay: Relay) -> None:
    await relay.oplog.apply_many(A, 0, entries(0, 25_000))
    response = await relay.client.get(f"/v1/origins/{A}/entries",
                                      params={"from": 0, "limit": 10**9},
                                      headers={"Authorization": f"Bearer {relay.device_a}"})
    page = decode_batch(response.content, 0)
    assert 0 < len(page) <= 10_000


async def test_a_database_that_is_down_is_503_not_500(relay: Relay) -> None:
    await relay.oplog.close()
    response = await relay.post(A, 0, encode_batch(0, entries(0, 1)), relay.device_a)
    assert response.status_code == 503


async def test_random_bodies_never_get_a_500(relay: Relay) -> None:
    rng = random.Random(5)
    valid = encode_batch(0, entries(0, 4))
    for _ in range(200):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        response = await relay.post(A, 0, bytes(body), relay.device_a)
        assert response.status_code in (200, 400, 409), response.text
    held = await relay.oplog.read_since(A, 0)
    assert all(e == entries(0, 4)[i] for i, e in held), "a mangled body never stored garbage"


async def test_a_watch_without_a_valid_token_is_closed_with_4401(tmp_path: Path) -> None:
    tokens = TokenStore()
    async with running(SqliteOplog(tmp_path / "relay.db"), tokens,
                       ServeOptions(port=0)) as server:
        port = server.servers[0].sockets[0].getsockname()[1]
        for headers in ({}, {"Authorization": "Bearer guessed"}):
            async with websockets.connect(f"ws://127.0.0.1:{port}/v1/watch",
                                          additional_headers=headers) as socket:
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await socket.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 4401


def test_tokens_never_start_like_a_command_line_option() -> None:
    from peerlog.net.tokens import TOKEN_PREFIX, TokenStore

    store = TokenStore()
    tokens = [store.issue(None) for _ in range(200)]
    assert all(t.startswith(TOKEN_PREFIX) for t in tokens)
    assert all(store.check(t) is not None for t in tokens)


async def continue_as(relay: Relay, token: str, old: object, new: object) -> httpx.Response:
    return await relay.client.post(f"/v1/origins/{old}/continue", params={"as": str(new)},
                                   headers={"Authorization": f"Bearer {token}"})


async def test_a_device_token_may_continue_as_an_unknown_origin(relay: Relay) -> None:
    new = peer(77)
    answer = await continue_as(relay, relay.device_a, A, new)
    assert (answer.status_code, answer.json()) == (200, {"continued": str(new)})
    body = encode_batch(0, entries(0, 1))
    assert (await relay.post(new, 0, body, relay.device_a)).status_code == 200


async def test_a_continuation_cannot_take_an_origin_that_has_entries_or_an_owner(
        relay: Relay) -> None:
    await relay.oplog.apply_many(peer(5), 0, entries(0, 1))
    refused = await continue_as(relay, relay.device_a, A, peer(5))
    assert refused.status_code == 403
    relay.tokens.issue(peer(6), "another device")
    assert (await continue_as(relay, relay.device_a, A, peer(6))).status_code == 403
    assert (await continue_as(relay, relay.device_a, B, peer(7))).status_code == 403
    assert (await relay.post(peer(5), 1, encode_batch(1, entries(1, 1)),
                             relay.device_a)).status_code == 403
    grant = relay.tokens.check(relay.device_a)
    assert grant is not None
    assert grant.continued == ()


async def test_a_token_continues_at_most_sixteen_times(relay: Relay) -> None:
    from peerlog.net.tokens import MAX_CONTINUED

    for n in range(MAX_CONTINUED):
        assert (await continue_as(relay, relay.device_a, A, peer(100 + n))).status_code == 200
    assert (await continue_as(relay, relay.device_a, A, peer(999))).status_code == 403
