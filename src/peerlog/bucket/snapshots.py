"""`BucketShelf`: the state snapshots kept under a bucket's ``snapshots/``.

The same rules as a folder's shelf (`peerlog.filelog.snapshots`): a snapshot is
named by the SHA-256 of its bytes, written once (put-if-absent), checked against its
name before use, and removed by whichever device a newer one supersedes it for.
A verdict is remembered by name and version tag, so each snapshot is read once.
"""

from __future__ import annotations

import contextlib
import re
import threading

from peerlog.bucket.layout import snapshot_key
from peerlog.bucket.store import AlreadyExists, BucketStore, ObjectInfo
from peerlog.filelog.names import SNAPSHOTS_FOLDER
from peerlog.filelog.snapshots import MAX_SNAPSHOT_FILE, BadSnapshot
from peerlog.state.snapshot import SUFFIX, read_header, snapshot_name
from peerlog.sync.errors import BackendError, SnapshotError
from peerlog.sync.faces import SnapshotMeta

_NAME = re.compile(r"^[0-9a-f]{64}" + re.escape(SUFFIX) + "$")


class BucketShelf:
    """``snapshots/`` in a bucket: publish, list, verify and remove snapshots."""

    def __init__(self, store: BucketStore) -> None:
        self._store = store
        self._cache: dict[str, tuple[str, SnapshotMeta | BadSnapshot]] = {}
        self._lock = threading.Lock()

    def _listed(self) -> list[ObjectInfo]:
        return self._store.list_keys(f"{SNAPSHOTS_FOLDER}/")

    def names(self) -> list[str]:
        """Every object on the shelf (snapshot or not)."""
        return [o.key.rsplit("/", 1)[-1] for o in self._listed()]

    def _check(self, info: ObjectInfo) -> SnapshotMeta | BadSnapshot:
        name = info.key.rsplit("/", 1)[-1]
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] == f"{info.etag}:{info.size}":
            return cached[1]
        verdict: SnapshotMeta | BadSnapshot
        if not _NAME.match(name):
            verdict = BadSnapshot(name, "not a snapshot name")
        elif info.size > MAX_SNAPSHOT_FILE:
            verdict = BadSnapshot(name, f"oversized: {info.size} bytes, more than any "
                                  "snapshot a reader loads")
        else:
            try:
                data = self._store.get(info.key)
                if snapshot_name(data) != name:
                    raise SnapshotError("its digest does not match its name: damaged or "
                                        "truncated")
                verdict = SnapshotMeta(name, len(data), *read_header(data))
            except FileNotFoundError:
                verdict = BadSnapshot(name, "removed while being read")
            except SnapshotError as exc:
                verdict = BadSnapshot(name, str(exc))
        with self._lock:
            self._cache[name] = (f"{info.etag}:{info.size}", verdict)
        return verdict

    def verdicts(self) -> tuple[list[SnapshotMeta], list[BadSnapshot]]:
        """``(valid, bad)`` from one listing: every valid snapshot, the one covering most
        entries first, and every object on the shelf that is not one."""
        found = list(map(self._check, self._listed()))
        valid = [v for v in found if isinstance(v, SnapshotMeta)]
        return (sorted(valid, key=lambda s: (-s.covers, s.name)),
                [v for v in found if isinstance(v, BadSnapshot)])

    def valid(self) -> list[SnapshotMeta]:
        """Every valid snapshot, the one covering most entries first."""
        return self.verdicts()[0]

    def bad(self) -> list[BadSnapshot]:
        """Every object on the shelf that is not a valid snapshot."""
        return self.verdicts()[1]

    def read(self, name: str) -> bytes:
        """The bytes of a snapshot (`StateStore.load_snapshot` verifies them whole)."""
        try:
            return self._store.get(snapshot_key(name))
        except FileNotFoundError:
            raise BackendError(f"snapshot {name} is gone from {self._store.url}") from None

    def mark_bad(self, name: str, reason: str) -> None:
        """Remember that a snapshot failed to load, while its bytes stay the same."""
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None:
                self._cache[name] = (cached[0], BadSnapshot(name, reason))

    def publish(self, data: bytes) -> str:
        """Add snapshot bytes (put-if-absent: the name is the digest); returns the name."""
        name = snapshot_name(data)
        with contextlib.suppress(AlreadyExists):  # the same bytes, by construction
            self._store.put_new(snapshot_key(name), data)
        return name

    def remove(self, name: str) -> bool:
        """Remove one snapshot; False when it was not listed."""
        with self._lock:
            known = self._cache.pop(name, None)
        self._store.delete(snapshot_key(name))
        return known is not None
