"""A real S3 endpoint for the tests: ``moto[server]``'s `ThreadedMotoServer` on a loopback
port, started once per test session.  It implements the S3 API the bucket log uses,
conditional writes (``If-None-Match: *``) included.  Every request it serves is counted,
so tests can check the bucket log's own request counts against the server's.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import urllib.request
from collections import Counter

import pytest

_BUCKETS = itertools.count()


class _Requests(logging.Handler):
    """Counts the requests the server logs (``"GET /bucket/key HTTP/1.1" 200``), by
    method and bucket."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: Counter[tuple[str, str]] = Counter()
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        try:
            request = message.split('"')[1]
            method, path = request.split()[:2]
        except (IndexError, ValueError):
            return
        bucket = path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        with self._lock2:
            self.seen[(method, bucket)] += 1


class S3Server:
    """The session's S3 endpoint; `fresh_bucket` makes an empty bucket per test."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.requests = _Requests()
        werkzeug = logging.getLogger("werkzeug")
        werkzeug.addHandler(self.requests)
        werkzeug.setLevel(logging.INFO)
        # Credentials and endpoint as a user sets them: the standard AWS variables, which
        # child processes (devices killed mid-upload) inherit.
        os.environ.update(AWS_ACCESS_KEY_ID="peerlog-test", AWS_SECRET_ACCESS_KEY="secret",
                          AWS_REGION="us-east-1", AWS_ENDPOINT_URL=self.endpoint)

    def fresh_bucket(self) -> str:
        """A new, empty bucket; its URL with a prefix (``s3://name/sync``)."""
        name = f"peerlog-test-{os.getpid()}-{next(_BUCKETS)}"
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{name}",
                                                      method="PUT")).read()
        return f"s3://{name}/sync"

    def served(self, bucket_url: str) -> Counter[str]:
        """Requests the server answered for ``bucket_url``'s bucket, by method."""
        name = bucket_url.split("/")[2]
        return Counter({m: n for (m, b), n in self.requests.seen.items() if b == name})


_server: S3Server | None = None
_failure: str | None = None


def s3() -> S3Server:
    """The session's S3 server; the test skips (saying why) if moto cannot start one."""
    global _server, _failure
    if _server is None and _failure is None:
        try:
            _server = S3Server()
        except (ImportError, OSError) as exc:
            _failure = f"cannot start the loopback S3 server (moto[server]): {exc}"
    if _server is None:
        pytest.skip(_failure or "no S3 server")
    return _server
