"""The `peerlog` command and the relay as real OS processes, for end-to-end tests."""

from __future__ import annotations

import random
import select
import signal
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


def kill_at_random(module: str, where: str | Path, seed: int, rng: random.Random,
                   window: tuple[float, float] = (0.0, 0.25)) -> list[str]:
    """Start ``python -m module WHERE 1 SEED`` (a writer that prints ``start`` and then a
    line per step), SIGKILL it a random time within ``window`` seconds after it started;
    every line it printed."""
    child = subprocess.Popen(
        [sys.executable, "-m", module, str(where), "1", str(seed)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    started = child.stdout.readline()
    assert started.startswith("start"), child.stderr.read() if child.stderr else started
    lines = []
    deadline = time.monotonic() + rng.uniform(*window)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        lines.append(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    # Lines already written before the kill were acknowledged too.
    lines += child.stdout.read().splitlines()
    assert child.returncode == -signal.SIGKILL
    return lines
