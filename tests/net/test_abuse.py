"""The relay under abuse, and the client against a broken relay (items 12-17 of the
reliability issue): slow clients, out-of-range parameters, malicious answers, tokens,
TLS and quotas.  All traffic stays on loopback, bounded in count and time."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import resource
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from peerlog import (
    AccessDeniedError,
    BackendError,
    Entry,
    RelayLimits,
    RelaySync,
    RemoteReplica,
    Snapshot,
    SqliteOplog,
    StateStore,
)
from peerlog.net import TokenStore, create_app
from peerlog.net import client as client_module
from peerlog.net.serve import ServeOptions, running, warnings_for
from peerlog.net.wire import RECORD_TYPE, encode_batch
from tests.helpers import entries, free_port, peer, wait_until
from tests.processes import peerlog, start_relay

A = peer(1)


@asynccontextmanager
async def relay(tmp_path: Path, tokens: TokenStore, **options: object
                ) -> AsyncIterator[tuple[str, SqliteOplog]]:
    """A relay on a free loopback port; its base URL and its oplog."""
    port = free_port()
    oplog = SqliteOplog(tmp_path / f"relay-{port}.db")
    opts = ServeOptions(port=port, **options)  # type: ignore[arg-type]
    async with running(oplog, tokens, opts):
        yield f"{opts.scheme}://127.0.0.1:{port}", oplog


# -- 12. slow clients, connection limits and the rate limit ------------------------------


def limited_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


def test_a_bounded_slowloris_never_stops_health_answering(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_relay(f"sqlite:{tmp_path}/r.db", port, tmp_path / "t.json",
                         "--header-timeout", "2", "--body-timeout", "2",
                         preexec_fn=limited_descriptors)
    slow: list[socket.socket] = []
    try:
        for _ in range(300):  # more than the process has descriptors for
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        started = time.monotonic()
        assert httpx.get(f"{url}/v1/health", timeout=5).json() == {"ok": True}
        assert time.monotonic() - started < 5
        # A body trickled at a byte a second is cut off after the body deadline.
        trickle = socket.create_connection(("127.0.0.1", port), timeout=10)
        trickle.sendall(b"POST /v1/origins/x/entries?start=0 HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 100\r\n\r\n")
        started = time.monotonic()
        closed = False
        for _ in range(8):
            try:
                trickle.sendall(b"x")
                time.sleep(0.5)
                trickle.settimeout(0.01)
                if trickle.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        assert closed, "a 1 byte/s body stayed open past the 2 s body deadline"
        assert time.monotonic() - started < 4.5
        trickle.close()
        # The slow header senders themselves were closed by the header deadline.
        time.sleep(2.5)
        slow[-1].settimeout(1)
        with contextlib.suppress(ConnectionResetError):
            assert slow[-1].recv(1) == b""
        assert server.poll() is None
        assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
    finally:
        for s in slow:
            s.close()
        server.terminate()
        server.wait(10)


async def test_too_many_requests_get_429_with_retry_after(tmp_path: Path) -> None:
    tokens = TokenStore()
    token = tokens.issue(A)
    app = create_app(SqliteOplog(":memory:"), tokens, limits=RelayLimits(rate=2, burst=3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://relay") as client:
        answers = [await client.get("/v1/cursors", headers={"Authorization": f"Bearer {token}"})
                   for _ in range(6)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    limited = [a for a in answers if a.status_code == 429]
    assert limited
    assert all(a.headers["Retry-After"].isdigit() for a in limited)


async def test_the_client_honours_retry_after(tmp_path: Path) -> None:
    tokens = TokenStore()
    token = tokens.issue(A)
    async with relay(tmp_path, tokens, limits=RelayLimits(rate=2, burst=2)) as (url, _), \
            RemoteReplica(url, token) as remote:
        started = time.monotonic()
        for _ in range(5):
            assert await remote.cursors() == {}
        assert time.monotonic() - started >= 0.9, "some calls waited for Retry-After"


# -- 13. parameters out of range are 400, a disconnect is not an error ---------------------


@pytest.mark.parametrize("query", ["from=1000000000000000000000000000000",
                                   "from=0&limit=1000000000000000000000000000000",
                                   "from=9223372036854775808", "from=%EF%BC%91", "from=-1"])
async def test_every_parameter_out_of_range_is_a_400(query: str) -> None:
    tokens = TokenStore()
    token = tokens.issue(A)
    app = create_app(SqliteOplog(":memory:"), tokens)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://relay") as client:
        answer = await client.get(f"/v1/origins/{A}/entries?{query}",
                                  headers={"Authorization": f"Bearer {token}"})
        post = await client.post(f"/v1/origins/{A}/entries?start=10000000000000000000",
                                 content=encode_batch(0, entries(0, 1)),
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": RECORD_TYPE})
    assert answer.status_code == 400, answer.text
    assert post.status_code == 400, post.text


async def test_a_client_disconnecting_mid_upload_is_logged_at_info(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tokens = TokenStore()
    token = tokens.issue(A)
    caplog.set_level(logging.INFO)
    async with relay(tmp_path, tokens) as (url, oplog):
        port = int(url.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /v1/origins/{A}/entries?start=0 HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n"
                     .encode() + b"x" * 100)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

        async def logged() -> bool:
            return any("disconnected" in r.getMessage() for r in caplog.records)

        await wait_until(logged, within=5)
        assert await oplog.cursors() == {}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# -- 14. a malicious or broken relay ----------------------------------------------------


def hostile_app(mode: dict[str, str]) -> Starlette:
    record = encode_batch(0, entries(0, 3))

    async def cursors(request: Request) -> Response:
        return JSONResponse({"cursors": {str(A): 3}})

    async def read(request: Request) -> Response:
        if mode["read"] == "bad-first":
            return Response(record, media_type=RECORD_TYPE,
                            headers={"X-Peerlog-First": "not-a-number"})
        if mode["read"] == "truncated":
            return Response(record[:-7], media_type=RECORD_TYPE,
                            headers={"X-Peerlog-First": "0"})
        return Response(record, media_type=RECORD_TYPE, headers={"X-Peerlog-First": "0"})

    async def write(request: Request) -> Response:
        return JSONResponse({"error": "cursor_mismatch", "expected": "zero", "actual": []},
                            status_code=409)

    async def erased(request: Request) -> Response:
        return JSONResponse({"erased": {str(A): [["one", "zz"]]}})

    return Starlette(routes=[
        Route("/v1/cursors", cursors),
        Route("/v1/origins/{peer}/entries", read, methods=["GET"]),
        Route("/v1/origins/{peer}/entries", write, methods=["POST"]),
        Route("/v1/erased", erased),
    ])


@asynccontextmanager
async def hostile_relay(mode: dict[str, str]) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(hostile_app(mode), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize("read", ["bad-first", "truncated"])
async def test_a_malicious_relay_page_is_one_line_error_and_nothing_applied(
        tmp_path: Path, read: str) -> None:
    async with hostile_relay({"read": read}) as url, \
            StateStore(tmp_path / "b.db") as b, RemoteReplica(url, "t") as remote:
        with pytest.raises(BackendError) as info:
            await RelaySync(b.oplog, remote).run_once()
        assert "\n" not in str(info.value)
        assert await b.oplog.cursors() == {}


async def test_a_409_without_numbers_and_a_bad_erasure_list_are_one_line_errors(
        tmp_path: Path) -> None:
    async with hostile_relay({"read": "fine"}) as url, RemoteReplica(url, "t") as remote:
        with pytest.raises(BackendError, match="409 with a malformed body"):
            await remote.apply_many(A, 0, entries(0, 1))
        with pytest.raises(BackendError, match="malformed erasure list"):
            await remote.erased()


def test_sync_against_a_malicious_relay_is_one_line_and_exit_1(tmp_path: Path) -> None:
    home = str(tmp_path / "b")
    peerlog("--home", home, "init")

    async def scenario() -> subprocess.CompletedProcess[str]:
        async with hostile_relay({"read": "bad-first"}) as url:
            return await asyncio.to_thread(peerlog, "--home", home, "sync", "--server", url,
                                           "--token", "t")

    done = asyncio.run(scenario())
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "X-Peerlog-First" in done.stderr


# -- 15. tokens --------------------------------------------------------------------------


def test_serve_warns_loudly_without_tokens_and_on_plain_http_off_loopback(
        tmp_path: Path) -> None:
    empty = TokenStore.load(tmp_path / "missing.json")
    said = warnings_for(empty, ServeOptions())
    assert len(said) == 1
    assert "missing or empty" in said[0]
    said = warnings_for(empty, ServeOptions(host="0.0.0.0"))
    assert any("plain HTTP" in w for w in said)
    assert not any("plain HTTP" in w for w in warnings_for(
        empty, ServeOptions(host="0.0.0.0", tls_cert="c", tls_key="k")))
    server = start_relay(f"sqlite:{tmp_path}/r.db", free_port(), tmp_path / "missing.json",
                         stderr=subprocess.PIPE)
    server.terminate()
    _, err = server.communicate(timeout=10)
    assert "warning:" in err
    assert "missing or empty" in err


async def test_new_and_revoked_tokens_take_effect_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    served = TokenStore.load(path)
    async with relay(tmp_path, served) as (url, _):
        token = TokenStore.load(path).issue(A, "laptop")  # as `peerlog token` does
        async with RemoteReplica(url, token) as remote:
            async def accepted() -> bool:
                try:
                    return await remote.cursors() == {}
                except AccessDeniedError:
                    return False

            await wait_until(accepted, within=5)
            assert TokenStore.load(path).revoke(A) == 1

            async def refused() -> bool:
                return not await accepted()

            await wait_until(refused, within=5)


def test_token_list_and_revoke(tmp_path: Path) -> None:
    tokens = str(tmp_path / "tokens.json")

    def token(*argv: str) -> subprocess.CompletedProcess[str]:
        return peerlog("token", "--tokens", tokens, *argv)

    secret = token("--device", str(A), "--name", "laptop").stdout.strip()
    token("--relay", "--name", "mirror")
    listed = json.loads(token("--list", "--json").stdout)["tokens"]
    assert listed == [{"device": str(A), "name": "laptop"}, {"device": None, "name": "mirror"}]
    assert secret not in Path(tokens).read_text(), "only hashes are stored"
    assert token("--revoke", str(A)).returncode == 0
    assert json.loads(token("--list", "--json").stdout)["tokens"] == [
        {"device": None, "name": "mirror"}]
    again = token("--revoke", str(A))
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1


async def test_a_watch_whose_token_is_refused_stops_retrying(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = TokenStore.load(path).issue(A)
    port = free_port()
    oplog = SqliteOplog(tmp_path / "r.db")
    options = ServeOptions(port=port)
    async with running(oplog, TokenStore.load(path), options):
        remote = RemoteReplica(f"http://127.0.0.1:{port}", token)
        stream = remote.watch_cursors()
        assert isinstance(await anext(stream), Snapshot)
        TokenStore.load(path).revoke(A)
    # The relay restarts with the token gone: the watch reconnects and is refused.
    async with running(SqliteOplog(tmp_path / "r.db"), TokenStore.load(path), options):
        with pytest.raises(AccessDeniedError, match="refused this token"):
            await asyncio.wait_for(anext(stream), 15)
    await remote.close()


def test_the_token_is_read_from_stdin_and_remembered(tmp_path: Path) -> None:
    home = str(tmp_path / "a")

    env = {"PATH": "/usr/bin:/bin"}
    origin = json.loads(peerlog("--home", home, "init", "--json", env=env).stdout)["peer_id"]
    tokens = str(tmp_path / "tokens.json")
    token = peerlog("token", "--tokens", tokens, "--device", origin).stdout.strip()
    port = free_port()
    server = start_relay(f"sqlite:{tmp_path}/r.db", port, tokens)
    url = f"http://127.0.0.1:{port}"
    try:
        peerlog("--home", home, "put", "t", "k", "1", env=env)
        first = peerlog("--home", home, "sync", "--server", url, "--token", "-", stdin=token,
                        env=env)
        assert first.returncode == 0, first.stderr
        peerlog("--home", home, "put", "t", "k2", "2", env=env)
        again = peerlog("--home", home, "sync", "--json", env=env)  # relay and token remembered
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["published"] == 1
        status = peerlog("--home", home, "status", "--server", url, "--json", env=env)
        [row] = json.loads(status.stdout)["origins"]
        assert (row["held"], row["in_relay"], row["lag"]) == (2, 2, 0)
        assert (Path(home) / "sync.json").stat().st_mode & 0o077 == 0
    finally:
        server.terminate()
        server.wait(10)


# -- 16. TLS -----------------------------------------------------------------------------


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peerlog test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "relay.pem", folder / "relay.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


async def test_tls_with_a_trusted_ca_for_http_and_websocket(tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    tokens = TokenStore()
    token = tokens.issue(A)
    async with relay(tmp_path, tokens, tls_cert=str(cert), tls_key=str(key)) as (url, _):
        assert url.startswith("https://")
        async with RemoteReplica(url, token) as untrusted:
            with pytest.raises(BackendError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.cursors()
        async with RemoteReplica(url, token, ca=str(ca)) as remote:
            stream = remote.watch_cursors()
            assert isinstance(await anext(stream), Snapshot)
            await remote.apply_many(A, 0, entries(0, 2))
            event = await asyncio.wait_for(anext(stream), 10)
            assert event.cursors == {A: 2}
            await stream.aclose()  # type: ignore[attr-defined]


async def test_tls_trusts_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = make_certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setattr(client_module, "_tls", {})
    tokens = TokenStore()
    token = tokens.issue(A)
    async with relay(tmp_path, tokens, tls_cert=str(cert), tls_key=str(key)) as (url, _), \
            RemoteReplica(url, token) as remote:
        assert await remote.cursors() == {}


# -- 17. a storage quota per device ------------------------------------------------------


async def test_a_device_over_its_quota_gets_507_and_nothing_is_stored(tmp_path: Path) -> None:
    tokens = TokenStore()
    async with StateStore(tmp_path / "a.db") as a:
        token = tokens.issue(a.origin)
        async with relay(tmp_path, tokens, limits=RelayLimits(quota_bytes=10_000)) \
                as (url, held), RemoteReplica(url, token) as remote:
            await a.oplog.append_many([b"x" * 1_000 for _ in range(4)])
            assert (await RelaySync(a.oplog, remote).run_once()).ok
            await a.oplog.append_many([b"y" * 1_000 for _ in range(20)])
            report = await RelaySync(a.oplog, remote).run_once()
            assert "507" in report.refused[0]
            assert "quota" in report.refused[0]
            assert await held.cursors() == {a.origin: 4}, "nothing of the refused batch"
            with pytest.raises(Exception, match="quota"):
                await remote.apply_many(a.origin, 4, [Entry(1, b"z" * 7_000)])
            await remote.apply_many(a.origin, 4, [Entry(1, b"z" * 5_000)])  # still fits




@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_shutting_down_while_a_client_closes_its_watch_stops_cleanly(
        tmp_path: Path, tls: bool) -> None:
    tokens = TokenStore()
    token = tokens.issue(A)
    ca, cert, key = make_certificates(tmp_path)
    options = {"tls_cert": str(cert), "tls_key": str(key)} if tls else {}
    context = ssl.create_default_context(cafile=str(ca)) if tls else None
    async with relay(tmp_path, tokens, **options) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(("GET /v1/watch HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
                      ).encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        mask = b"\x01\x02\x03\x04"
        code = (1000).to_bytes(2, "big")
        writer.write(b"\x88\x82" + mask + bytes(c ^ mask[i] for i, c in enumerate(code)))
        await writer.drain()
        await asyncio.sleep(0.3)  # the relay has the close frame; the socket stays open
    # Leaving the block shut the relay down with the watch still closing: no error.
    writer.close()
