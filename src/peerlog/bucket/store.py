"""`BucketStore`: one bucket (and prefix) reached through ``obstore``, every request counted.

``obstore`` (the Python binding of Rust's ``object_store`` crate) speaks S3 and every
S3-compatible service (R2, B2, MinIO, ...), Google Cloud Storage, Azure Blob Storage and
the local file system behind one interface, with conditional writes (put-if-absent).
This module is the only one that imports it: the bucket log speaks to `BucketStore`,
whose calls are synchronous (the log runs them in worker threads, as the folder log
does its file system calls) and whose failures are `BackendError`, except the one a
caller acts on: `AlreadyExists` from `put_new`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from peerlog.extras import require
from peerlog.sync.errors import BackendError, InvalidArgumentError

log = logging.getLogger(__name__)

SCHEMES = ("s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "file", "memory")
LIST_PAGE = 1000
"""Keys an S3 LIST request returns at most: how listings are counted as requests."""


class AlreadyExists(Exception):
    """A put-if-absent found the key taken: another writer was first."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """A listed object: its key (relative to the prefix), size and version tag."""

    key: str
    size: int
    etag: str


def _store_options(url: str, endpoint: str | None) -> dict[str, Any]:
    scheme = urlsplit(url).scheme
    options: dict[str, Any] = {}
    if scheme in ("s3", "s3a"):
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") \
            or os.environ.get("AWS_ENDPOINT_URL_S3")
        if endpoint:
            options["endpoint"] = endpoint
            # A self-hosted endpoint (MinIO, a test server) is addressed by path.
            options["virtual_hosted_style_request"] = False
            if endpoint.startswith("http://"):
                options["client_options"] = {"allow_http": True}
        if not os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
            options["region"] = "us-east-1"  # what S3-compatible servers expect by default
    elif endpoint:
        raise InvalidArgumentError(f"--endpoint is for s3:// buckets, not {scheme}://")
    if scheme == "file":
        options["mkdir"] = True
    return options


class BucketStore:
    """The bucket named by ``url`` (``s3://bucket/prefix``, ``gs://``, ``az://``,
    ``file:///path``, ``memory:///``); credentials come from the usual environment
    (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``).  ``requests`` counts what was sent, by kind
    (``list``, ``get``, ``put``, ``delete``): a LIST is one request per 1,000 keys."""

    def __init__(self, url: str, *, endpoint: str | None = None) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in SCHEMES:
            raise InvalidArgumentError(
                f"{url!r} is not a bucket URL: use s3://bucket/prefix, gs://, az://, "
                "file:///path or memory:///")
        self.url = url
        # Rust-backed, loaded only for buckets; `MissingExtraError` names the extra.
        from_url = require("obstore.store", "bucket").from_url
        try:
            # Few, short retries: the sync drivers already retry an unreachable place
            # with their own backoff, and say that they are offline.
            self._store = from_url(url, retry_config={"max_retries": 3,
                                                      "retry_timeout": timedelta(seconds=20)},
                                   **_store_options(url, endpoint))
        except Exception as exc:  # obstore's configuration errors have no common base
            raise InvalidArgumentError(f"cannot use bucket {url}: {exc}") from None
        self.requests: Counter[str] = Counter()
        self._count = threading.Lock()

    def _counted(self, kind: str, n: int = 1) -> None:
        with self._count:
            self.requests[kind] += n

    def _fail(self, what: str, exc: Exception) -> BackendError:
        text = str(exc)
        detail = (text.splitlines()[0] if text else type(exc).__name__)[:300]
        if "NoSuchBucket" in text or (what == "list the bucket" and "404" in text):
            detail = "the bucket does not exist (check its name, and --endpoint)"
        elif "403 Forbidden" in text or "401 Unauthorized" in text \
                or "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text:
            detail = ("access denied: check the credentials (AWS_ACCESS_KEY_ID and "
                      "AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*) and "
                      "that they may list, read and write the bucket")
        return BackendError(f"bucket {self.url}: cannot {what}: {detail}")

    # -- requests ---------------------------------------------------------------

    def list_keys(self, prefix: str, after: str | None = None) -> list[ObjectInfo]:
        """Every key under ``prefix`` that sorts after ``after``, ascending."""
        import obstore

        out: list[ObjectInfo] = []
        try:
            for chunk in obstore.list(self._store, prefix=prefix, offset=after,
                                      chunk_size=LIST_PAGE):
                out.extend(ObjectInfo(o["path"], o["size"], o.get("e_tag") or "")
                           for o in chunk)
        except Exception as exc:
            raise self._fail(f"list {prefix!r}", exc) from exc
        finally:
            self._counted("list", 1 + len(out) // LIST_PAGE)
        out.sort(key=lambda o: o.key)  # the local file system lists in no order
        return out

    def list_top(self) -> tuple[list[str], list[ObjectInfo]]:
        """The prefixes (``name/``, without the slash) and objects at the top level."""
        import obstore

        self._counted("list")
        try:
            got = obstore.list_with_delimiter(self._store)
        except Exception as exc:
            raise self._fail("list the bucket", exc) from exc
        return ([p.rstrip("/").rsplit("/", 1)[-1] for p in got["common_prefixes"]],
                [ObjectInfo(o["path"], o["size"], o.get("e_tag") or "")
                 for o in got["objects"]])

    def get(self, key: str) -> bytes:
        """The object's bytes; `FileNotFoundError` when it is gone."""
        import obstore

        self._counted("get")
        try:
            return obstore.get(self._store, key).bytes().to_bytes()
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._fail(f"read {key}", exc) from exc

    def put_new(self, key: str, data: bytes) -> None:
        """Write ``key`` only if it does not exist (``If-None-Match: *``): `AlreadyExists`
        otherwise.  An object is all or nothing: a writer killed mid-upload leaves none."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        self._counted("put")
        try:
            obstore.put(self._store, key, data, mode="create", use_multipart=False)
        except (AlreadyExistsError, PreconditionError):
            raise AlreadyExists(key) from None
        except Exception as exc:
            raise self._fail(f"write {key}", exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Write ``key`` whatever it held (an erasure's rewrite, acknowledgements)."""
        import obstore

        self._counted("put")
        try:
            obstore.put(self._store, key, data, use_multipart=False)
        except Exception as exc:
            raise self._fail(f"write {key}", exc) from exc

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is already gone)."""
        import obstore

        self._counted("delete")
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail(f"remove {key}", exc) from exc

    def total(self) -> int:
        """Every request sent so far."""
        return sum(self.requests.values())

    def __repr__(self) -> str:
        return f"<BucketStore {self.url}>"
