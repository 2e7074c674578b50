"""A writer killed with SIGKILL at random moments never loses an acknowledged entry."""

from __future__ import annotations

import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from peerlog import FileLog
from tests.filelog.crash_writer import ERASE_EVERY
from tests.helpers import entry, erased, peer

ROOT = Path(__file__).resolve().parents[2]
KILLS = 30


def run_until_killed(shared: Path, seed: int, rng: random.Random) -> tuple[int, set[int]]:
    """Start the writer, SIGKILL it at a random moment; what it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.filelog.crash_writer", str(shared), "1", str(seed)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acked, erased_ok = 0, set()
    started = child.stdout.readline()
    assert started.startswith("start"), child.stderr.read() if child.stderr else started
    deadline = time.monotonic() + rng.uniform(0.0, 0.25)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        line = child.stdout.readline()
        if line.startswith("ack "):
            acked = int(line.split()[1])
        elif line.startswith("erased "):
            erased_ok.add(int(line.split()[1]))
    child.send_signal(signal.SIGKILL)
    child.wait()
    # Lines already written before the kill were acknowledged too.
    for line in child.stdout.read().splitlines():
        if line.startswith("ack "):
            acked = int(line.split()[1])
        elif line.startswith("erased "):
            erased_ok.add(int(line.split()[1]))
    assert child.returncode == -signal.SIGKILL
    return acked, erased_ok


def test_sigkill_at_random_moments_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    rng = random.Random(20261124)
    acked_total, erased_total = 0, set()
    for kill in range(KILLS):
        acked, erased_now = run_until_killed(shared, kill, rng)
        acked_total = max(acked_total, acked)
        erased_total |= erased_now
        reader = FileLog(shared, peer(9))
        extent = reader.extents().of(peer(1))
        assert extent >= acked_total, f"kill {kill}: acknowledged {acked_total}, found {extent}"
        got: list[tuple[int, object]] = []
        while batch := reader.read_entries(peer(1), len(got)):
            got.extend(batch)
        assert len(got) == extent
        for index, value in got:
            if index in erased_total:
                assert value == erased(index), f"kill {kill}: erasure of {index} lost"
            elif index % ERASE_EVERY == 0:
                assert value in (entry(index), erased(index))
            else:
                assert value == entry(index), f"kill {kill}: wrong entry at {index}"
        assert all(p.kind == "incomplete" for p in reader.doctor().all_problems()), \
            "a killed writer may leave a torn tail, never corruption"
    # And the writer continues cleanly after the last kill.
    final = FileLog(shared, peer(1))
    index = final.next_index
    assert index >= acked_total
    final.append(index, entry(index))
    assert FileLog(shared, peer(9)).doctor().healthy
