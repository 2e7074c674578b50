"""`peerlog demo`: several devices, as separate OS processes, converge through one folder."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.live import Live
from rich.table import Table

from peerlog.cli.render import console, rich_console


@dataclass
class DeviceView:
    number: int
    peer: str = "…"
    phase: str = "starting"
    made: int = 0
    held: int = 0
    hash: str = ""
    log: list[str] = field(default_factory=list)


def render(views: list[DeviceView], devices: int, changes: int, elapsed: float) -> Table:
    total = devices * changes
    out = Table(title=f"peerlog demo: {devices} devices x {changes} changes through one "
                      f"shared folder ({elapsed:.1f} s)", title_justify="left")
    for column in ("device", "peer id", "phase", "made offline", "entries held", "state hash"):
        out.add_column(column)
    hashes = {v.hash for v in views if v.hash}
    for v in views:
        mark = "" if not v.hash else (" [green]✓[/green]" if len(hashes) == 1 and
                                      all(x.hash for x in views) else " [red]≠[/red]")
        out.add_row(str(v.number), v.peer[:8], v.phase, f"{v.made:,}", f"{v.held:,}/{total:,}",
                    (v.hash[:16] + mark) if v.hash else "")
    return out


async def _follow(view: DeviceView, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind = event.get("event")
        if kind == "ready":
            view.peer, view.phase = event["peer"], "offline"
        elif kind == "offline":
            view.made, view.held = event["made"], event["held"]
        elif kind == "sync":
            view.phase, view.held = "syncing", event["held"]
        elif kind == "done":
            view.phase, view.held, view.hash = "done", event["held"], event["hash"]


async def run_demo(devices: int, changes: int, workdir: Path | None) -> int:
    if devices < 2 or changes < 1:
        console.print("the demo needs at least 2 devices and 1 change each")
        return 2
    with tempfile.TemporaryDirectory(prefix="peerlog-demo-") as tmp:
        root = workdir or Path(tmp)
        folder = root / "shared"
        folder.mkdir(parents=True, exist_ok=True)
        views = [DeviceView(n + 1) for n in range(devices)]
        started = time.monotonic()
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerlog.cli.demo_device", str(root / f"device-{n + 1}"),
            str(folder), str(devices), str(changes), str(n + 1),
            stdout=asyncio.subprocess.PIPE) for n in range(devices)]
        followers = [asyncio.create_task(_follow(v, p.stdout))  # type: ignore[arg-type]
                     for v, p in zip(views, procs, strict=True)]
        with Live(render(views, devices, changes, 0), console=rich_console(),
                  refresh_per_second=8) as live:
            while not all(f.done() for f in followers):
                await asyncio.sleep(0.125)
                live.update(render(views, devices, changes, time.monotonic() - started))
            codes = [await p.wait() for p in procs]
            elapsed = time.monotonic() - started
            live.update(render(views, devices, changes, elapsed))
        console.print()
        hashes = {v.hash for v in views}
        converged = len(hashes) == 1 and "" not in hashes and all(c == 0 for c in codes)
        if converged:
            console.print(f"[green]converged[/green]: {devices} devices hold identical state "
                          f"(hash {views[0].hash[:16]}) after {elapsed:.2f} s; "
                          f"{devices * changes:,} changes in all")
        else:
            console.print(f"[red]not converged[/red]: exit codes {codes}, "
                          f"{len(hashes)} distinct state hashes")
        if workdir:
            console.print(f"files kept in {root}; try `peerlog --home {root}/device-1 "
                          f"status --folder {folder}`")
        return 0 if converged else 1
