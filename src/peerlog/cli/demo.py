"""`peerlog demo`: several devices, as separate OS processes, converge through one folder
(or one bucket)."""

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


def render(views: list[DeviceView], devices: int, changes: int, elapsed: float,
           records: int = 0, through: str = "shared folder") -> Table:
    total = devices * changes + records
    out = Table(title=f"peerlog demo: {devices} devices x {changes} changes through one "
                      f"{through} ({elapsed:.1f} s)", title_justify="left")
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


async def form_group(homes: list[Path]) -> int:
    """The first home founds an encrypted group and invites every other; returns how many
    trust records that wrote (an admit and a hello per invited device)."""
    from peerlog.home import open_device
    from peerlog.trust import invite_device, join_code, start_group

    async with open_device(homes[0], create=True) as store:
        trust = await start_group(homes[0], store)
        codes = [(await invite_device(trust, store)).code for _ in homes[1:]]
    for home, code in zip(homes[1:], codes, strict=True):
        ring, hello = join_code(code)
        async with open_device(home, create=True, origin=ring.origin) as store:
            ring.save(home)
            await store.oplog.append(hello)
    return 2 * len(codes)


def plaintext_files(folder: Path, needles: list[bytes]) -> tuple[int, list[str]]:
    """How many files ``folder`` holds, and those in which any of ``needles`` appears."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), [str(p) for p in files if any(n in p.read_bytes() for n in needles)]


def plaintext_objects(url: str, needles: list[bytes]) -> tuple[int, list[str]]:
    """How many objects the bucket at ``url`` holds, and those holding any of ``needles``."""
    from peerlog.bucket import BucketStore

    store = BucketStore(url)
    keys = [o.key for o in store.list_keys("")]
    return len(keys), [k for k in keys if any(n in store.get(k) for n in needles)]


async def run_demo(devices: int, changes: int, workdir: Path | None,
                   encrypted: bool = False, bucket: str | None = None) -> int:
    if devices < 2 or changes < 1:
        console.print("the demo needs at least 2 devices and 1 change each")
        return 2
    with tempfile.TemporaryDirectory(prefix="peerlog-demo-") as tmp:
        root = workdir or Path(tmp)
        folder = root / "shared"
        if bucket is None:
            folder.mkdir(parents=True, exist_ok=True)
        place, through = (str(folder), "shared folder") if bucket is None else (bucket, "bucket")
        views = [DeviceView(n + 1) for n in range(devices)]
        homes = [root / f"device-{n + 1}" for n in range(devices)]
        records = await form_group(homes) if encrypted else 0
        started = time.monotonic()
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerlog.cli.demo_device", str(homes[n]),
            place, str(devices), str(changes), str(n + 1), str(records),
            stdout=asyncio.subprocess.PIPE) for n in range(devices)]
        followers = [asyncio.create_task(_follow(v, p.stdout))  # type: ignore[arg-type]
                     for v, p in zip(views, procs, strict=True)]
        with Live(render(views, devices, changes, 0, records, through),
                  console=rich_console(), refresh_per_second=8) as live:
            while not all(f.done() for f in followers):
                await asyncio.sleep(0.125)
                live.update(render(views, devices, changes, time.monotonic() - started,
                                   records, through))
            codes = [await p.wait() for p in procs]
            elapsed = time.monotonic() - started
            live.update(render(views, devices, changes, elapsed, records, through))
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
        if encrypted and converged:
            needles = [b"change 0 of device 1", b"todos"]
            count, found = plaintext_files(folder, needles) if bucket is None \
                else plaintext_objects(bucket, needles)
            if found:
                console.print(f"[red]plaintext in the {through}[/red]: {found}")
                return 1
            what = "files of the shared folder" if bucket is None else "objects of the bucket"
            console.print(f"encrypted group: searched the {count} {what} for the changes' "
                          "text and table names: not found")
        if workdir:
            option = f"--folder {folder}" if bucket is None else f"--bucket {bucket}"
            console.print(f"files kept in {root}; try `peerlog --home {root}/device-1 "
                          f"status {option}`")
        return 0 if converged else 1
