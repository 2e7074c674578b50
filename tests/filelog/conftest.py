from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import UUID

import pytest

from peerlog import FileLog


@pytest.fixture
async def open_log(shared: Path) -> AsyncIterator[Callable[[UUID], FileLog]]:
    opened: list[FileLog] = []

    def opener(origin: UUID) -> FileLog:
        log = FileLog(shared, origin, poll_interval=0.05)
        opened.append(log)
        return log

    yield opener
    for log in opened:
        await log.close()
