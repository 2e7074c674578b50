"""`SnapshotShelf`: the state snapshots kept in a shared folder's ``snapshots/``.

Any device may add one and remove one another snapshot supersedes: a
snapshot is immutable and named by the SHA-256 of its bytes
(docs/file-format.md §9), so two devices never write different bytes under
one name, and a reader checks the name against the bytes before using any
of them.  A file still arriving, damaged, or not a snapshot at all is never
loaded; `check` says what is wrong with each.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from peerlog.filelog.durable import (
    UnsafeFileError,
    open_segment,
    real_folder,
    replace_atomically,
)
from peerlog.filelog.names import SNAPSHOTS_FOLDER, why_ignored
from peerlog.state.snapshot import (
    SUFFIX,
    read_header,
    snapshot_name,
)
from peerlog.sync.errors import BackendError, SnapshotError
from peerlog.sync.faces import SnapshotMeta

_NAME = re.compile(r"^[0-9a-f]{64}" + re.escape(SUFFIX) + "$")
MAX_SNAPSHOT_FILE = 4 << 30
"""The largest snapshot file a reader loads (4 GiB)."""


@dataclass(frozen=True, slots=True)
class BadSnapshot:
    """A file on the shelf that is not loaded, and why."""

    name: str
    reason: str


class SnapshotShelf:
    """``root/snapshots/``: publish, list, verify and remove snapshots.  Thread-safe
    (no state but a cache keyed by name, size and mtime)."""

    def __init__(self, root: Path) -> None:
        self.folder = root / SNAPSHOTS_FOLDER
        self._cache: dict[str, tuple[tuple[int, int], SnapshotMeta | BadSnapshot]] = {}

    def names(self) -> list[str]:
        """Every file on the shelf (snapshot or not)."""
        if not real_folder(self.folder):
            return []  # missing, or not a folder (a file or a link put there): nothing kept
        try:
            return sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise BackendError(f"cannot list {self.folder}: {exc}") from exc

    def check(self, name: str) -> SnapshotMeta | BadSnapshot:
        """Read and verify one file; a verdict on unchanged bytes is remembered."""
        if not _NAME.match(name):
            return BadSnapshot(name, why_ignored(name))
        path = self.folder / name
        try:
            fd = open_segment(path, MAX_SNAPSHOT_FILE)
        except UnsafeFileError as exc:
            return BadSnapshot(name, f"{exc.kind}: {exc.detail}")
        except OSError as exc:
            return BadSnapshot(name, f"unreadable: {exc.strerror or exc}")
        try:
            st = os.fstat(fd)
            key = (st.st_size, st.st_mtime_ns)
            cached = self._cache.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            verdict: SnapshotMeta | BadSnapshot
            try:
                if snapshot_name(data) != name:
                    raise SnapshotError("its digest does not match its name: damaged, "
                                        "truncated, or a copy still arriving")
                verdict = SnapshotMeta(name, len(data), *read_header(data))
            except SnapshotError as exc:
                verdict = BadSnapshot(name, str(exc))
        finally:
            os.close(fd)
        self._cache[name] = (key, verdict)
        return verdict

    def valid(self) -> list[SnapshotMeta]:
        """Every valid snapshot, the one covering most entries first."""
        found = [v for v in map(self.check, self.names()) if isinstance(v, SnapshotMeta)]
        return sorted(found, key=lambda s: (-s.covers, s.name))

    def bad(self) -> list[BadSnapshot]:
        """Every file on the shelf that is not a valid snapshot."""
        return [v for v in map(self.check, self.names()) if isinstance(v, BadSnapshot)]

    def read(self, name: str) -> bytes:
        """The bytes of a snapshot (`StateStore.load_snapshot` verifies them whole)."""
        try:
            return (self.folder / name).read_bytes()
        except OSError as exc:
            raise BackendError(f"cannot read snapshot {name}: {exc}") from exc

    def mark_bad(self, name: str, reason: str) -> None:
        """Remember that a snapshot failed to load, while its bytes stay the same."""
        try:
            st = os.stat(self.folder / name)
        except OSError:
            return
        self._cache[name] = ((st.st_size, st.st_mtime_ns), BadSnapshot(name, reason))

    def publish(self, data: bytes) -> str:
        """Add snapshot bytes (durably, through a temporary file); returns the name."""
        name = snapshot_name(data)
        if self.folder.is_symlink() or (self.folder.exists() and not real_folder(self.folder)):
            raise BackendError(f"cannot write snapshots into {self.folder}: it is not a folder "
                               "(move it away)")
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            if not (self.folder / name).exists():
                replace_atomically(self.folder / name, data)
        except OSError as exc:
            raise BackendError(f"cannot write snapshot into {self.folder}: {exc}") from exc
        return name

    def remove(self, name: str) -> bool:
        """Remove one snapshot; False when it was already gone."""
        try:
            os.unlink(self.folder / name)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BackendError(f"cannot remove snapshot {name}: {exc}") from exc
        self._cache.pop(name, None)
        return True
