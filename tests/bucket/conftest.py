"""Fixtures of the bucket tests: a fresh bucket on the session's loopback S3 server."""

from __future__ import annotations

import pytest

from tests.s3 import S3Server, s3


@pytest.fixture
def server() -> S3Server:
    return s3()


@pytest.fixture
def bucket(server: S3Server) -> str:
    """An empty bucket's URL (``s3://name/sync``), on the loopback S3 server."""
    return server.fresh_bucket()
