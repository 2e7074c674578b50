"""`Device`: the one object an application needs.

    async with peerlog.open("~/.myapp", folder="~/Dropbox/myapp") as device:
        await device.put("todos", "1", {"title": "milk"})
        print(await device.items("todos"))

A `Device` is this machine's replica: its state (`put`, `get`, `delete`,
`items`, `changes`) and, when given a shared ``folder`` or a relay
``server``, sync that starts with the context (one round before it
returns, so a program that opens, reads and exits sees the other devices'
changes), follows both sides live,
retries with backoff while offline, and makes a last round on close so a
short-lived program still publishes what it wrote.  `connect` is the same
for programs that are not async: the event loop runs in a thread of its own.

The device lives in ``home`` (see `peerlog.home`), shared with the
``peerlog`` command: an app and ``peerlog sync --watch`` may use one home at
once.  Where to sync is remembered there, so later opens may omit it.

Failure modes: `HomeError` for a home that cannot be used (no device and
``create=False``, an empty database, no token for a relay); every other
error is the `SyncError` family.  Sync failures after opening never raise
into the application: they are in `status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from peerlog.drivers.fork import Continued
from peerlog.drivers.rounds import FolderSync, RelaySync, SyncReport
from peerlog.drivers.snapshots import Compaction
from peerlog.filelog.log import FileLog

if TYPE_CHECKING:
    from peerlog.bucket import BucketLog
from peerlog.home import (
    home_dir,
    load_sync,
    open_device,
    read_token,
    save_bucket,
    save_sync,
    shared_folder,
    through_trust,
)
from peerlog.state.store import Change, HistoryItem, StateStore, Transaction
from peerlog.sync.errors import SyncError, TrustError
from peerlog.sync.faces import Deferral

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(slots=True)
class SyncStatus:
    """Where sync stands: a value the application can show (`Device.status`)."""

    peer_id: UUID
    where: str | None
    """The shared folder or relay URL; None when the device does not sync."""
    online: bool = False
    """The last attempt reached the folder or relay."""
    last_sync: datetime | None = None
    """When the last round completed."""
    last_report: SyncReport | None = None
    error: str | None = None
    """Why the last attempt failed, or why sync stopped for good."""
    rounds: int = field(default=0)
    deferred: dict[UUID, Deferral] = field(default_factory=dict)
    """Devices whose changes wait because their clock is ahead of this one's."""
    continued: Continued | None = None
    """Set once this device, found restored from a backup or copied, continued as a new
    device id (``peer_id`` is then the new one)."""


class Device:
    """This device's replica of the shared state, synced in the background.

    Use as ``async with peerlog.open(home, folder=...) as device``, or call
    `start` and `aclose` yourself.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, *,
                 folder: str | os.PathLike[str] | None = None, server: str | None = None,
                 token: str | None = None, ca: str | None = None, create: bool = True,
                 live: bool = True, encrypted: bool = False, join: str | None = None,
                 bucket: str | None = None, endpoint: str | None = None) -> None:
        if sum(place is not None for place in (folder, server, bucket)) > 1:
            raise ValueError("a device syncs with one folder, server or bucket, not several")
        self.home = home_dir(os.fspath(home) if home is not None else None)
        self._encrypted = encrypted
        self._join = join
        self._folder = os.fspath(folder) if folder is not None else None
        self._server = server
        self._bucket = bucket
        self._endpoint = endpoint
        self._token = token
        self._ca = ca
        self._create = create
        self._live = live
        self._store: StateStore | None = None
        self._log: FileLog | BucketLog | None = None
        self._remote: Any = None  # a RemoteReplica, imported only when a server is used
        self._sync: FolderSync | RelaySync | None = None
        self._task: asyncio.Task[None] | None = None
        self._status: SyncStatus | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> Device:
        """Open the device (creating it if allowed) and start syncing."""
        if self._store is not None:
            return self
        self._store = await self._open_store()
        try:
            self._sync = await self._open_sync(self._store)
        except BaseException:
            await self._store.close()
            self._store = None
            raise
        where = None if self._sync is None else \
            (self._server or self._folder or self._bucket)
        self._status = SyncStatus(self._store.origin, where)
        if self._sync is not None:
            # One round before the application reads: a program that starts, reads and
            # exits sees what other devices wrote.  Offline is not an error here.
            try:
                self._record(await self._sync.run_once())
            except (SyncError, OSError) as exc:
                log.warning("first sync with %s failed (%s); carrying on offline", where, exc)
                self._offline(exc)
        if self._sync is not None and self._live:
            self._task = asyncio.create_task(self._follow(self._sync),
                                             name=f"peerlog-sync:{self.home}")
        return self

    async def _open_store(self) -> StateStore:
        """The device database; a new device joins its group first (``join``), or founds
        one (``encrypted``).  `InviteError` / `TrustError` leave no device behind."""
        from peerlog.trust import Keyring, join_code

        new = not (self.home / "device.sqlite").exists()
        if self._join is not None and new and self._create:
            ring, hello = join_code(self._join)
            store = open_device(self.home, create=True, origin=ring.origin)
            ring.save(self.home)
            await store.oplog.append(hello)
            return store
        store = open_device(self.home, create=self._create)
        if self._encrypted and Keyring.load(self.home) is None:
            if not new:
                await store.close()
                raise TrustError(f"the device in {self.home} already syncs unencrypted: use "
                                 "`peerlog encrypt` to move its group to encryption")
            Keyring.create(store.origin).save(self.home)
        return store

    async def invite(self, *, hours: float = 24.0, device: UUID | None = None) -> str:
        """A one-time code that admits one new device (or the existing ``device``, after
        `peerlog encrypt`) to this device's encrypted group for ``hours``; pass it to
        ``peerlog.open(home, join=code)`` there.  The next sync tells the other members.
        `TrustError` when this device is in no encrypted group."""
        from peerlog.trust import Trust, invite_device

        trust = Trust.load(self.home)
        if trust is None:
            raise TrustError("this device is in no encrypted group: open it with "
                             "encrypted=True first")
        return (await invite_device(trust, self.store, int(hours * 3_600_000),
                                    device=device)).code

    async def remove_device(self, device: UUID) -> int:
        """Remove ``device`` from this device's encrypted group (a new key epoch, which is
        returned); it can no longer read new changes, and its new ones are refused."""
        from peerlog.trust import Trust, remove_device

        trust = Trust.load(self.home)
        if trust is None:
            raise TrustError("this device is in no encrypted group")
        return await remove_device(trust, self.store, device)

    async def _open_sync(self, store: StateStore) -> FolderSync | RelaySync | None:
        saved = load_sync(self.home)
        if self._folder is None and self._server is None and self._bucket is None:
            self._folder = saved.get("folder")
            self._server = saved.get("server")
            self._bucket = saved.get("bucket")
            self._endpoint = self._endpoint or saved.get("endpoint")
        if self._folder is not None:
            folder = shared_folder(self._folder)
            self._folder = str(folder)
            save_sync(self.home, folder=self._folder)
            self._log = FileLog(folder, store.origin)
            return FolderSync(store.oplog, through_trust(self.home, store, self._log,
                                                         folder=folder), state=store)
        if self._bucket is not None:
            from peerlog.bucket import BucketLog

            self._log = BucketLog(self._bucket, store.origin, endpoint=self._endpoint)
            save_bucket(self.home, self._bucket, self._endpoint)
            return FolderSync(store.oplog, through_trust(self.home, store, self._log),
                              state=store)
        if self._server is not None:
            from peerlog.net.client import RemoteReplica  # the relay extra, only when used

            token = read_token(self._token, self._server, saved)
            save_sync(self.home, server=self._server, token=token)
            self._remote = RemoteReplica(self._server, token, ca=self._ca)
            return RelaySync(store.oplog, through_trust(self.home, store, self._remote),
                             state=store)
        return None

    async def _follow(self, sync: FolderSync | RelaySync) -> None:
        try:
            await sync.run(self._record, on_offline=self._offline)
        except asyncio.CancelledError:
            raise
        except SyncError as exc:  # e.g. a refused token: retrying cannot fix it
            log.error("sync stopped: %s", exc)
            self._offline(exc)

    def _record(self, report: SyncReport) -> None:
        if self._status is not None:
            status = self._status
            status.online, status.error = True, None
            status.last_sync, status.last_report = datetime.now(UTC), report
            status.rounds += 1
            status.deferred = dict(report.deferred)
            if report.continued is not None:
                status.continued = report.continued
                status.peer_id = report.continued.new

    def _offline(self, exc: Exception) -> None:
        if self._status is not None:
            self._status.online, self._status.error = False, str(exc)

    async def aclose(self) -> None:
        """Stop syncing after one last round (best effort), and close the device."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._sync is not None:
            try:
                self._record(await self._sync.run_once())
            except (SyncError, OSError) as exc:
                log.warning("last sync before closing failed: %s", exc)
        for closing in (self._log, self._remote, self._store):
            if closing is not None:
                await closing.close()
        self._log = self._remote = self._store = None
        self._sync = None

    async def __aenter__(self) -> Device:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # -- the state ------------------------------------------------------------

    @property
    def store(self) -> StateStore:
        """The underlying `StateStore` (its ``oplog`` is the `Replica` drivers use)."""
        if self._store is None:
            raise SyncError("the device is not open: use `async with` or `await start()`")
        return self._store

    @property
    def peer_id(self) -> UUID:
        return self.store.origin

    @property
    def status(self) -> SyncStatus:
        """Where sync stands now (updated after every round and every failed attempt)."""
        self.store  # noqa: B018 - raises when not open
        assert self._status is not None
        return self._status

    async def put(self, table: str, key: str, value: Any) -> int:
        """Set ``table[key]`` to a JSON value, replacing it whole; returns the change's log
        index."""
        return await self.store.put(table, key, value)

    async def update(self, table: str, key: str, fields: Mapping[str, Any]) -> int:
        """Set only the given top-level fields (`peerlog.REMOVE` removes one): another
        device's concurrent edit of other fields is kept."""
        return await self.store.update(table, key, fields)

    async def put_many(self, table: str,
                       items: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> int:
        """Put several keys as one change, applied all or nothing everywhere."""
        return await self.store.put_many(table, items)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """``async with device.transaction() as tx:`` ``tx.put``/``tx.update``/``tx.delete``
        become one change, applied all or nothing on every device."""
        return self.store.transaction()

    async def history(self, table: str, key: str) -> list[HistoryItem]:
        """Every operation on ``table/key`` held here, and which won or lost."""
        return await self.store.history(table, key)

    async def get(self, table: str, key: str, default: Any = KeyError) -> Any:
        """The value of ``table[key]``; ``default`` when absent (else `KeyError`)."""
        try:
            return await self.store.get(table, key)
        except KeyError:
            if default is KeyError:
                raise
            return default

    async def delete(self, table: str, key: str) -> int:
        return await self.store.delete(table, key)

    async def items(self, table: str) -> list[tuple[str, Any]]:
        """Every live key of ``table`` with its value, ordered by key."""
        return await self.store.items(table)

    async def tables(self) -> list[str]:
        return await self.store.tables()

    def changes(self) -> AsyncIterator[list[Change]]:
        """The keys each change touches from now on, by this device or any other: one
        list per applied batch (500 remote puts arrive as one list, not 500 events)."""
        return self.store.changes()

    async def sync_now(self) -> SyncReport:
        """One sync round now; `SyncError` when the device does not sync."""
        if self._sync is None:
            raise SyncError("this device has no folder, server or bucket to sync with")
        report = await self._sync.run_once()
        self._record(report)
        return report

    async def compact(self) -> Compaction:
        """Publish a snapshot where this device syncs and remove what it makes redundant
        there and in this device's database (`peerlog compact`; docs/contract.md,
        "Snapshots and compaction"); `SyncError` when the device does not sync."""
        if self._sync is None:
            raise SyncError("this device has no folder, server or bucket to compact")
        return await self._sync.compact()


def open(home: str | os.PathLike[str] | None = None, *,
         folder: str | os.PathLike[str] | None = None, server: str | None = None,
         token: str | None = None, ca: str | None = None, create: bool = True,
         live: bool = True, encrypted: bool = False, join: str | None = None,
         bucket: str | None = None, endpoint: str | None = None) -> Device:
    """The `Device` in ``home``, syncing with a shared ``folder``, a relay ``server`` or an
    object-storage ``bucket`` URL (``s3://bucket/prefix`` with an optional S3-compatible
    ``endpoint``, ``gs://``, ``az://``, ``file:///path``), or with what it synced with
    last; use as ``async with peerlog.open(...) as device``.

    A new device founds an encrypted group with ``encrypted=True``, or joins one with
    ``join=`` an invite code (`Device.invite`); after that its keys are used by
    themselves."""
    return Device(home, folder=folder, server=server, token=token, ca=ca, create=create,
                  live=live, encrypted=encrypted, join=join, bucket=bucket, endpoint=endpoint)


class BlockingDevice:
    """`Device` for programs that are not async: the same methods, as plain calls.

    The device's event loop runs in a daemon thread; every call hands its
    coroutine to that loop and waits (`asyncio.run_coroutine_threadsafe`:
    the one way across).  Close it (or use ``with``) to make the last sync
    round and stop the thread.
    """

    def __init__(self, device: Device) -> None:
        self._device = device
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="peerlog-device")
        self._thread.start()
        try:
            self._call(device.start())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _next_of(self, stream: AsyncIterator[_T]) -> _T:
        async def step() -> _T:
            return await anext(stream)
        return self._call(step())

    @property
    def peer_id(self) -> UUID:
        return self._device.peer_id

    @property
    def status(self) -> SyncStatus:
        return self._device.status

    def put(self, table: str, key: str, value: Any) -> int:
        return self._call(self._device.put(table, key, value))

    def update(self, table: str, key: str, fields: Mapping[str, Any]) -> int:
        return self._call(self._device.update(table, key, fields))

    def put_many(self, table: str, items: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> int:
        return self._call(self._device.put_many(table, items))

    @contextlib.contextmanager
    def transaction(self) -> Generator[Transaction, None, None]:
        """``with device.transaction() as tx:``: one change, all or nothing."""
        tx = Transaction()
        yield tx
        self._call(self._device.store.commit(tx))

    def history(self, table: str, key: str) -> list[HistoryItem]:
        return self._call(self._device.history(table, key))

    def get(self, table: str, key: str, default: Any = KeyError) -> Any:
        return self._call(self._device.get(table, key, default))

    def delete(self, table: str, key: str) -> int:
        return self._call(self._device.delete(table, key))

    def items(self, table: str) -> list[tuple[str, Any]]:
        return self._call(self._device.items(table))

    def tables(self) -> list[str]:
        return self._call(self._device.tables())

    def sync_now(self) -> SyncReport:
        return self._call(self._device.sync_now())

    def compact(self) -> Compaction:
        return self._call(self._device.compact())

    def invite(self, *, hours: float = 24.0, device: UUID | None = None) -> str:
        return self._call(self._device.invite(hours=hours, device=device))

    def remove_device(self, device: UUID) -> int:
        return self._call(self._device.remove_device(device))

    def changes(self) -> Generator[list[Change], None, None]:
        """The keys each applied batch touched, from now on (blocks until the next one);
        ``close()`` it when done."""
        stream = self._device.changes()
        try:
            while True:
                try:
                    yield self._next_of(stream)
                except StopAsyncIteration:
                    return
        finally:
            with contextlib.suppress(RuntimeError):
                self._call(stream.aclose())  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self._device.aclose())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> BlockingDevice:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def connect(home: str | os.PathLike[str] | None = None, *,
            folder: str | os.PathLike[str] | None = None, server: str | None = None,
            token: str | None = None, ca: str | None = None, create: bool = True,
            live: bool = True, encrypted: bool = False, join: str | None = None,
            bucket: str | None = None, endpoint: str | None = None) -> BlockingDevice:
    """`open` for programs that are not async: an open `BlockingDevice`."""
    return BlockingDevice(Device(home, folder=folder, server=server, token=token, ca=ca,
                                 create=create, live=live, encrypted=encrypted, join=join,
                                 bucket=bucket, endpoint=endpoint))
