"""Where devices meet, for the driver tests that every place must pass: a shared folder
and a bucket on the loopback S3 server (the same drivers serve both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from peerlog import BucketLog, BucketStore, FileLog
from tests.s3 import s3


class FolderPlace:
    name = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)

    def log(self, origin: UUID, **options: Any) -> Any:
        return FileLog(self.root, origin, **options)

    def stored_bytes(self) -> bytes:
        """Everything the place holds, as its provider can read it."""
        return b"".join(p.read_bytes() for p in sorted(self.root.rglob("*")) if p.is_file())


class BucketPlace:
    name = "bucket"

    def __init__(self, root: Path) -> None:
        self.url = s3().fresh_bucket()

    def log(self, origin: UUID, **options: Any) -> Any:
        return BucketLog(self.url, origin, **options)

    def stored_bytes(self) -> bytes:
        store = BucketStore(self.url)
        return b"".join(store.get(o.key) for o in store.list_keys(""))


PLACES: dict[str, type[FolderPlace] | type[BucketPlace]] = {
    "folder": FolderPlace, "bucket": BucketPlace}
