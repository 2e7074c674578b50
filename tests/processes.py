"""The `peerlog` command and the relay as real OS processes, for end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def peerlog(*argv: str, env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``peerlog ARGV`` to completion (60 s at most)."""
    return subprocess.run([sys.executable, "-m", "peerlog.cli", *argv], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env, input=stdin)


def wait_healthy(url: str, within: float = 15.0) -> None:
    """Until the relay at ``url`` answers its health check; `TimeoutError` after ``within``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} never answered")


def start_relay(db: str, port: int, tokens: str | Path, *options: str,
                preexec_fn: Callable[[], None] | None = None,
                stderr: int | IO[Any] = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """`peerlog serve` on loopback ``port``, returned once it answers."""
    server = subprocess.Popen(
        [sys.executable, "-m", "peerlog.cli", "serve", "--db", db, "--port", str(port),
         "--tokens", str(tokens), *options], cwd=ROOT, preexec_fn=preexec_fn,
        stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
    except TimeoutError:
        server.kill()
        raise
    return server
