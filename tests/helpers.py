"""Small builders shared by the tests."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import UUID

from peerlog import Entry, Expunged


def peer(n: int) -> UUID:
    """A stable, readable peer id for tests: 00000000-…-n."""
    return UUID(int=n)


def entry(n: int, size: int = 8) -> Entry:
    """A distinct entry per ``n``."""
    return Entry(1_000_000 + n, n.to_bytes(4, "big") * (size // 4 or 1))


def entries(start: int, count: int) -> list[Entry]:
    return [entry(n) for n in range(start, start + count)]


ORIGINALS: dict[bytes, Entry] = {}
"""Entries by digest, so a store that can only erase what it wrote can seed markers."""


def erased(n: int) -> Expunged:
    """The expunged marker of `entry(n)`."""
    original = entry(n)
    ORIGINALS[original.digest] = original
    return Expunged(original.digest)


def now_ts(offset_ms: int = 0) -> int:
    """An HLC timestamp for the wall clock now, plus ``offset_ms``."""
    return (time.time_ns() // 1_000_000 + offset_ms) << 16


def random_peer() -> UUID:
    return uuid.uuid4()


async def wait_until(condition: Callable[[], Awaitable[bool]], within: float = 10.0,
                     step: float = 0.02) -> None:
    """Poll ``condition`` until it holds; `TimeoutError` after ``within`` seconds."""
    for _ in range(int(within / step) + 1):
        if await condition():
            return
        await asyncio.sleep(step)
    raise TimeoutError(f"condition still false after {within} s")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle`` (a `grep -r` of bytes)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and needle in p.read_bytes())


def folder_size(root: Path) -> int:
    """Bytes in every file under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
