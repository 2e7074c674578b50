from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.harnesses import REPLICA_KINDS, SOURCE_KINDS, ReplicaHarness, SourceHarness


@pytest.fixture(params=sorted(REPLICA_KINDS))
async def replica_harness(request: pytest.FixtureRequest, tmp_path: Path
                          ) -> AsyncIterator[ReplicaHarness]:
    harness = REPLICA_KINDS[request.param](tmp_path)
    yield harness
    await harness.close_all()


@pytest.fixture(params=sorted(SOURCE_KINDS))
async def source_harness(request: pytest.FixtureRequest, tmp_path: Path
                         ) -> AsyncIterator[SourceHarness]:
    harness = SOURCE_KINDS[request.param](tmp_path)
    yield harness
    await harness.close_all()


@pytest.fixture(params=["postgres", "sqlite"])
async def sql_harness(request: pytest.FixtureRequest, tmp_path: Path
                      ) -> AsyncIterator[ReplicaHarness]:
    """The SQL oplogs, which compact in place (a relay compacts on its own server)."""
    harness = REPLICA_KINDS[request.param](tmp_path)
    yield harness
    await harness.close_all()
