"""The commands of `peerlog`, one coroutine each."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from peerlog.cli.device import CliError, home_dir, open_device, shared_folder
from peerlog.cli.render import console, emit_json, table
from peerlog.drivers import FileLogIngester, FileLogPublisher, Puller
from peerlog.filelog import FileLog
from peerlog.net import RemoteReplica, TokenStore
from peerlog.net.serve import serve_forever
from peerlog.state import StateStore
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.watch import watching

BIG_SYNC = 10_000
"""Above this many entries to move, `sync` shows progress bars."""


async def cmd_init(args: argparse.Namespace) -> int:
    home = home_dir(args.home)
    existed = (home / "device.sqlite").exists()
    async with open_device(home, create=True) as store:
        if args.json:
            emit_json({"peer_id": str(store.origin), "home": str(home), "created": not existed})
        else:
            verb = "already exists" if existed else "created"
            console.print(f"device {verb} in {home}\npeer id: [bold]{store.origin}[/bold]")
    return 0


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"value is not valid JSON ({exc.msg} at column {exc.colno}): {text!r}",
                       code=2) from None


async def cmd_put(args: argparse.Namespace) -> int:
    value = _value(args.json_value)
    async with open_device(home_dir(args.home)) as store:
        await store.put(args.table, args.key, value)
    return 0


async def cmd_get(args: argparse.Namespace) -> int:
    async with open_device(home_dir(args.home)) as store:
        try:
            value = await store.get(args.table, args.key)
        except KeyError:
            raise CliError(f"no key {args.key!r} in table {args.table!r}") from None
    print(json.dumps(value, ensure_ascii=False))
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    async with open_device(home_dir(args.home)) as store:
        await store.delete(args.table, args.key)
    return 0


async def cmd_ls(args: argparse.Namespace) -> int:
    async with open_device(home_dir(args.home)) as store:
        items = await store.items(args.table)
    if args.json:
        emit_json({key: value for key, value in items})
    else:
        table(f"{args.table}: {len(items)} key(s)", ["key", "value"],
              [[key, json.dumps(value, ensure_ascii=False)] for key, value in items])
    return 0


async def _lag(store: StateStore, log: FileLog) -> int:
    folder = await log.cursors()
    here = await store.oplog.cursors()
    return sum(hi - lo for peer, (lo, hi) in here.gaps(folder).items() if peer != store.origin)


async def _sync_once(store: StateStore, log: FileLog, quiet: bool) -> dict[str, object]:
    to_take = await _lag(store, log)
    show = not quiet and to_take >= BIG_SYNC
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, disable=not show, transient=True) as progress:
        task = progress.add_task("taking in entries", total=to_take)
        publisher = FileLogPublisher(store.oplog, log)
        ingester = FileLogIngester(log, store.oplog,
                                   progress=lambda _peer, n: progress.advance(task, n))
        published = await publisher.run_once()
        ingested = await ingester.run_once()
    return {"published": published, "ingested": ingested,
            "diverged": {str(p): str(e) for p, e in ingester.diverged.items()}}


async def cmd_sync(args: argparse.Namespace) -> int:
    if bool(args.folder) == bool(args.server):
        raise CliError("sync needs exactly one of --folder DIR or --server URL", code=2)
    if args.server:
        return await _sync_server(args)
    folder = shared_folder(args.folder)
    async with open_device(home_dir(args.home)) as store:
        log = FileLog(folder, store.origin)
        try:
            result = await _sync_once(store, log, args.json)
            if args.json and not args.watch:
                emit_json(result)
            elif not args.json:
                console.print(f"published {result['published']} entries, took in "
                              f"{result['ingested']} from the folder")
                for peer, why in dict(result["diverged"]).items():  # type: ignore[call-overload]
                    console.print(f"[red]not syncing {peer}[/red]: {why}")
            if args.watch:
                console.print(f"following {folder}; Ctrl-C to stop")
                await run_together(FileLogPublisher(store.oplog, log).run(),
                                   FileLogIngester(log, store.oplog).run())
        finally:
            await log.close()
    return 1 if result["diverged"] else 0


async def _sync_server(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("PEERLOG_TOKEN")
    if not token:
        raise CliError("--server needs this device's token: --token T or $PEERLOG_TOKEN",
                       code=2)
    async with open_device(home_dir(args.home)) as store, \
            RemoteReplica(args.server, token) as relay:
        push = Puller(store.oplog, relay, skip=())
        pull_in = Puller(relay, store.oplog, skip=(store.origin,))
        mine = PeerCursors({store.origin: (await store.oplog.cursors()).of(store.origin)})
        published = await push.catch_up(mine)
        taken = await pull_in.run_once()
        diverged = {str(p): str(e) for p, e in {**push.diverged, **pull_in.diverged}.items()}
        if args.json and not args.watch:
            emit_json({"published": published, "ingested": taken, "diverged": diverged})
        elif not args.json:
            console.print(f"published {published} entries, took in {taken} from {args.server}")
        if args.watch:
            console.print(f"following {args.server}; Ctrl-C to stop")
            await run_together(_push_live(store, relay), pull_in.run())
    return 1 if diverged else 0


async def run_together(*drivers: Coroutine[Any, Any, None]) -> None:
    """Run live drivers until one fails or all are cancelled (Ctrl-C); then stop them all."""
    tasks = [asyncio.create_task(driver) for driver in drivers]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _push_live(store: StateStore, relay: RemoteReplica) -> None:
    """Push this device's own origin whenever it advances."""
    push = Puller(store.oplog, relay)
    async with watching(store.oplog) as events:
        async for event in events:
            if store.origin in event.cursors:
                await push.catch_up(PeerCursors({store.origin: event.cursors[store.origin]}))


async def cmd_serve(args: argparse.Namespace) -> int:
    tokens = TokenStore.load(args.tokens)
    console.print(f"peerlog relay on http://{args.host}:{args.port} serving {args.db}")
    await serve_forever(args.db, tokens, args.host, args.port)
    return 0


async def cmd_token(args: argparse.Namespace) -> int:
    tokens = TokenStore.load(args.tokens)
    origin = None
    if args.device:
        try:
            origin = UUID(args.device)
        except ValueError:
            raise CliError(f"--device must be a peer id (a UUID), got {args.device!r}",
                           code=2) from None
    print(tokens.issue(origin, args.name))
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    async with open_device(home_dir(args.home)) as store:
        here = await store.oplog.cursors()
        folder_extents = None
        if args.folder:
            log = FileLog(shared_folder(args.folder), store.origin)
            folder_extents = await log.cursors()
            await log.close()
        peers: set[UUID] = {store.origin} | set(here) | set(folder_extents or {})
        rows = []
        for peer in sorted(peers, key=str):
            held = here.of(peer)
            row: dict[str, object] = {"origin": str(peer), "this_device": peer == store.origin,
                                      "held": held}
            if folder_extents is not None:
                in_folder = folder_extents.of(peer)
                row["in_folder"] = in_folder
                row["lag"] = max(in_folder - held, 0) if peer != store.origin \
                    else max(held - in_folder, 0)
            rows.append(row)
    if args.json:
        emit_json({"peer_id": str(store.origin), "origins": rows})
        return 0
    columns = ["origin", "", "held here"] + (["in folder", "lag"]
                                             if folder_extents is not None else [])
    table(f"device {store.origin}", columns, [
        [str(r["origin"]), "this device" if r["this_device"] else "", str(r["held"])]
        + ([str(r["in_folder"]), str(r["lag"])] if folder_extents is not None else [])
        for r in rows])
    return 0


async def cmd_doctor(args: argparse.Namespace) -> int:
    folder = shared_folder(args.folder)
    log = FileLog(folder, UUID(int=0))
    try:
        report = await asyncio.to_thread(log.doctor)
    finally:
        await log.close()
    problems = report.all_problems()
    if args.json:
        emit_json({
            "folder": report.root, "healthy": report.healthy,
            "origins": [{"origin": str(o.origin), "entries": o.extent, "segments": o.segments,
                         "problems": len(o.problems)} for o in report.origins],
            "problems": [{"origin": str(p.origin) if p.origin else None, "path": p.path,
                          "kind": p.kind, "detail": p.detail,
                          "withheld_from": p.withheld_from} for p in problems],
            "ignored": [{"path": i.path, "reason": i.reason} for i in report.ignored],
        })
        return 0 if report.healthy else 1
    table(f"{folder}: {len(report.origins)} device log(s)", ["origin", "entries", "segments",
                                                             "problems"],
          [[str(o.origin), str(o.extent), str(o.segments), str(len(o.problems))]
           for o in report.origins])
    if problems:
        table("problems (entries from 'withheld' on are not served)",
              ["kind", "path", "detail", "withheld"],
              [[p.kind, p.path, p.detail, "" if p.withheld_from is None
                else str(p.withheld_from)] for p in problems])
    if report.ignored:
        table("ignored", ["path", "reason"], [[i.path, i.reason] for i in report.ignored])
    console.print("[green]healthy[/green]" if report.healthy
                  else f"[red]{len(problems)} problem(s)[/red]")
    return 0 if report.healthy else 1


async def cmd_demo(args: argparse.Namespace) -> int:
    from peerlog.cli.demo import run_demo

    return await run_demo(devices=args.devices, changes=args.changes,
                          workdir=Path(args.dir) if args.dir else None)
