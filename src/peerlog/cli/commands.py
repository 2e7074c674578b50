"""The commands of `peerlog`, one coroutine each."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from peerlog.cli.errors import CliError
from peerlog.cli.render import console, emit_json, errors, rich_console, table
from peerlog.home import (
    HomeError,
    home_dir,
    load_sync,
    open_device,
    read_token,
    save_bucket,
    save_sync,
    shared_folder,
    through_trust,
)
from peerlog.state import REMOVE, HistoryItem, OpKind, Outcome, StateStore
from peerlog.state.ops import encode_put, parse_json
from peerlog.sync.backoff import Backoff
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.errors import CodecError, duration_text
from peerlog.sync.faces import Deferral

if TYPE_CHECKING:  # imported where used: `peerlog get` should not pay for sync and rich
    from rich.progress import Progress

    from peerlog.bucket import BucketLog
    from peerlog.drivers import FolderSync, RelaySync, SyncReport
    from peerlog.drivers.snapshots import Compaction
    from peerlog.filelog import FileLog, SharedFolder, Withheld

BIG_SYNC = 10_000
"""Above this many entries to move, `sync` shows progress bars."""


async def cmd_init(args: argparse.Namespace) -> int:
    """Create this device; with --encrypted, --join or --passphrase, in an encrypted group."""
    from peerlog.cli.group import init_group

    home = home_dir(args.home)
    existed = (home / "device.sqlite").exists() and (home / "device.sqlite").stat().st_size > 0
    group = await init_group(args, home, existed)
    async with open_device(home, create=True) as store:
        if args.json:
            emit_json({"peer_id": str(store.origin), "home": str(home), "created": not existed,
                       **group})
        else:
            verb = "already exists" if existed else "created"
            console.print(f"device {verb} in {home}\npeer id: [bold]{store.origin}[/bold]")
            if group.get("joined"):
                console.print(f"joined encrypted group {group['group']}", highlight=False)
            elif group.get("passphrase"):
                verb = "created" if group.get("created_group") else "joined"
                console.print(f"{verb} passphrase group {group['group']} in {args.folder}",
                              highlight=False)
            elif group.get("encrypted"):
                console.print(f"created encrypted group {group['group']}; invite other "
                              "devices with `peerlog invite`", highlight=False)
    return 0


def _value(text: str) -> object:
    """A JSON value from the command line; `CliError` (exit 2) for anything else."""
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"value is not valid JSON ({exc.msg} at column {exc.colno}): "
                       f"{text[:80]!r}", code=2) from None
    except ValueError as exc:  # NaN, 1e309, an integer of more than 4300 digits
        raise CliError(f"value is not valid JSON: {str(exc)[:120]}", code=2) from None
    except RecursionError:
        raise CliError("value is not valid JSON: nested too deeply", code=2) from None


async def cmd_put(args: argparse.Namespace) -> int:
    value = _value(sys.stdin.read() if args.json_value == "-" else args.json_value)
    async with open_device(home_dir(args.home)) as store:
        try:
            await store.put(args.table, args.key, value)
        except CodecError as exc:  # too large, bad names: the input's fault
            raise CliError(str(exc), code=2) from None
    return 0


async def cmd_update(args: argparse.Namespace) -> int:
    """Set only some fields of TABLE/KEY: a JSON object of fields, and ``--remove F``."""
    text = sys.stdin.read() if args.json_fields == "-" else args.json_fields
    fields = _value(text) if text is not None else {}
    if not isinstance(fields, dict):
        raise CliError("update takes a JSON object of the fields to set, e.g. "
                       "'{\"done\": true}'", code=2)
    for name in args.remove or ():
        if name in fields:
            raise CliError(f"field {name!r} is both set and removed", code=2)
        fields[name] = REMOVE
    if not fields:
        raise CliError("update needs fields to set (a JSON object) or --remove FIELD", code=2)
    async with open_device(home_dir(args.home)) as store:
        try:
            await store.update(args.table, args.key, fields)
        except CodecError as exc:
            raise CliError(str(exc), code=2) from None
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    """Every operation this device holds on TABLE/KEY, and which won or lost."""
    async with open_device(home_dir(args.home)) as store:
        items = await store.history(args.table, args.key)
        names = await _device_names(store)
        try:
            current = await store.get(args.table, args.key)
            live = True
        except KeyError:
            current, live = None, False
    if args.json:
        emit_json({"table": args.table, "key": args.key, "value": current, "exists": live,
                   "operations": [h.to_json() for h in items]})
        return 0
    if not items:
        raise CliError(f"this device holds no operation on {args.table}/{args.key}")
    table(f"{args.table}/{args.key}: {len(items)} operation(s)",
          ["time", "device", "kind", "value or fields", "outcome"],
          [[h.time.astimezone().isoformat(timespec="milliseconds"),
            _name_or_id(names, h.origin), str(h.kind), _op_text(h),
            _outcome_text(h)] for h in items])
    console.print("now: " + (json.dumps(current, ensure_ascii=False) if live else "(absent)"),
                  highlight=False)
    return 0


def _op_text(h: HistoryItem) -> str:
    if h.kind is OpKind.PUT:
        return json.dumps(h.value, ensure_ascii=False)
    if h.kind is OpKind.UPDATE:
        return ", ".join(f"{k}: removed" if v is REMOVE else
                         f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in h.fields.items())
    return ""


def _outcome_text(h: HistoryItem) -> str:
    if h.outcome is Outcome.WINS and h.kind is OpKind.UPDATE \
            and len(h.winning_fields) < len(h.fields):
        return "wins (" + ", ".join(h.winning_fields) + ")"
    return {Outcome.WINS: "[green]wins[/green]", Outcome.LOST: "[red]lost[/red]",
            Outcome.OVERWRITTEN: "overwritten"}[h.outcome]


async def _device_names(store: StateStore) -> dict[UUID, object]:
    """The names devices gave themselves (`devices name`), by peer id, as stored."""
    out: dict[UUID, object] = {}
    for key, value in await store.items(DEVICES_TABLE):
        try:
            peer = UUID(key)
        except ValueError:
            continue
        out[peer] = value.get("name") if isinstance(value, dict) else None
    return out


def _name_or_id(names: dict[UUID, object], peer: UUID) -> str:
    name = names.get(peer)
    return name if isinstance(name, str) and name else str(peer)[:8]


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


async def _lag(store: StateStore, log: FileLog | BucketLog) -> int:
    folder = await log.cursors()
    here = await store.oplog.cursors()
    return sum(hi - lo for peer, (lo, hi) in here.gaps(folder).items() if peer != store.origin)


def _say_round(report: SyncReport, where: str, *, as_json: bool, live: bool) -> None:
    """One round's outcome: a JSON line (``--json``) or a line of text and its problems."""
    if as_json:
        if live:
            sys.stdout.write(json.dumps({"at": _now(), **report.to_json()}) + "\n")
            sys.stdout.flush()
        else:
            emit_json(report.to_json())
        return
    if live and not (report.published or report.ingested) and report.ok:
        return
    console.print(f"{_now() + ' ' if live else ''}published {report.published} entries, "
                  f"took in {report.ingested} from {where}", highlight=False)
    for peer, why in report.diverged.items():
        errors.print(f"[red]not syncing {peer}[/red]: {why}", highlight=False)
    for why in report.refused:
        errors.print(f"[red]not published[/red]: {why}", highlight=False)
    for peer, held in report.withheld.items():
        errors.print(f"[red]withheld[/red]: at least {held.at_least} entries of device {peer} "
                     f"from index {held.from_index} ({held.kind}); run `peerlog doctor "
                     f"--folder {where}`", highlight=False)
    for peer, waiting in report.deferred.items():
        errors.print(f"[yellow]waiting[/yellow]: {ahead_text(peer, waiting)}", highlight=False)
    if report.continued is not None:
        errors.print(f"[bold yellow]{report.continued}[/bold yellow]", highlight=False)
    if report.bootstrapped is not None:
        console.print(f"started from snapshot {report.bootstrapped.name[:16]}… covering "
                      f"{report.bootstrapped.producer_covers} changes", highlight=False)
    if report.compaction is not None:
        console.print(f"published snapshot {report.compaction.snapshot}", highlight=False)
    for peer, first in report.compacted.items():
        errors.print(f"[red]compacted away[/red]: device {peer}'s changes below #{first} are "
                     f"no longer in {where} and no valid snapshot there covers them; run "
                     f"`peerlog doctor --folder {where}`", highlight=False)


def ahead_text(peer: UUID, waiting: Deferral) -> str:
    """One line on a device whose clock is ahead of this one's."""
    return (f"device {peer}'s clock is {duration_text(waiting.ahead_ms)} ahead of this one: its "
            f"changes from #{waiting.index} are applied once this clock catches up")


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


async def _sync_rounds(sync: FolderSync | RelaySync, where: str, args: argparse.Namespace,
                       progress: Progress) -> int:
    report = await sync.run_once()
    progress.stop()
    _say_round(report, where, as_json=args.json, live=args.watch and args.json)
    if not args.watch:
        return 0 if report.ok else 1
    if not args.json:
        console.print(f"following {where}; Ctrl-C to stop", highlight=False)
    await sync.run(lambda r: _say_round(r, where, as_json=args.json, live=True),
                   backoff=Backoff(first=min(0.5, args.retry_cap), cap=args.retry_cap))
    return 0


def _progress(show: bool) -> tuple[Progress, Callable[[UUID, int], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        console=rich_console(), disable=not show, transient=True)
    task = progress.add_task("taking in entries", total=None)
    return progress, lambda _peer, n: progress.advance(task, n)


def _places(args: argparse.Namespace, saved: dict[str, str], command: str
            ) -> tuple[str | None, str | None, str | None]:
    """``(folder, server, bucket)``: the one given, else the one this device last synced
    with; exit 2 when more than one is given."""
    given = [name for name in ("folder", "server", "bucket") if getattr(args, name, None)]
    if len(given) > 1:
        raise CliError(f"{command} takes one of --folder DIR, --server URL or --bucket URL, "
                       "not several", code=2)
    if given:
        return tuple(getattr(args, n, None) if n == given[0] else None  # type: ignore[return-value]
                     for n in ("folder", "server", "bucket"))
    return saved.get("folder"), saved.get("server"), saved.get("bucket")


def _endpoint(args: argparse.Namespace, saved: dict[str, str]) -> str | None:
    """``--endpoint``, else the one remembered with the bucket."""
    return getattr(args, "endpoint", None) or saved.get("endpoint")


def _bucket_log(url: str, endpoint: str | None, origin: UUID) -> BucketLog:
    from peerlog.bucket import BucketLog
    from peerlog.sync.errors import InvalidArgumentError

    try:
        return BucketLog(url, origin, endpoint=endpoint)
    except InvalidArgumentError as exc:
        raise CliError(str(exc), code=2) from None


async def cmd_sync(args: argparse.Namespace) -> int:
    """Sync with ``--folder``, ``--server`` or ``--bucket``, or with what this device
    synced with last."""
    home = home_dir(args.home)
    saved = load_sync(home)
    folder, server, bucket = _places(args, saved, "sync")
    if folder:
        return await _sync_shared(args, home, folder=shared_folder(folder))
    if server:
        return await _sync_server(args, home, server, saved)
    if bucket:
        return await _sync_shared(args, home, bucket=bucket, endpoint=_endpoint(args, saved))
    raise CliError("sync needs --folder DIR, --server URL or --bucket URL (this device has "
                   "not synced before, so there is nothing to remember)", code=2)


async def _sync_shared(args: argparse.Namespace, home: Path, *, folder: Path | None = None,
                       bucket: str | None = None, endpoint: str | None = None) -> int:
    """Rounds with a shared folder or a bucket (the same drivers serve both)."""
    from peerlog.drivers import FolderSync
    from peerlog.filelog import FileLog

    async with open_device(home) as store:
        log: FileLog | BucketLog
        if folder is not None:
            save_sync(home, folder=str(folder))
            log, where = FileLog(folder, store.origin), str(folder)
        else:
            assert bucket is not None
            log, where = _bucket_log(bucket, endpoint, store.origin), bucket
            save_bucket(home, bucket, endpoint)
        try:
            show = not args.json and await _lag(store, log) >= BIG_SYNC
            progress, advance = _progress(show)
            with progress:
                sync = FolderSync(store.oplog, through_trust(home, store, log, folder=folder),
                                  progress=advance, state=store)
                return await _sync_rounds(sync, where, args, progress)
        finally:
            await log.close()


async def cmd_compact(args: argparse.Namespace) -> int:
    """Publish a snapshot where this device syncs and remove what it makes redundant."""
    home = home_dir(args.home)
    saved = load_sync(home)
    folder, server, bucket = _places(args, saved, "compact")
    if not folder and not server and not bucket:
        raise CliError("compact needs --folder DIR, --server URL or --bucket URL (this "
                       "device has not synced before)", code=2)
    async with open_device(home) as store:
        if folder:
            done, where = await _compact_shared(home, store, args, folder=shared_folder(
                folder)), folder
        elif bucket:
            done, where = await _compact_shared(home, store, args, bucket=bucket,
                                                endpoint=_endpoint(args, saved)), bucket
        else:
            assert server is not None
            done, where = await _compact_relay(home, store, server, args, saved), server
    if args.json:
        emit_json({"snapshot": done.snapshot, "segments_removed": done.segments_removed,
                   "snapshots_removed": done.snapshots_removed,
                   "entries_dropped": done.entries_dropped,
                   "waiting_for": [str(p) for p in done.waiting_for]})
        return 0
    console.print(f"published snapshot {done.snapshot} to {where}; removed "
                  f"{done.segments_removed} segment(s) and {done.snapshots_removed} older "
                  f"snapshot(s) there; dropped {done.entries_dropped} entries from this "
                  "device's database", highlight=False)
    for peer in done.waiting_for:
        console.print(f"waiting for device {peer}: it synced within the last "
                      f"{args.retention_days} days and lacks some of this device's changes, "
                      "so they stay in the folder", highlight=False)
    return 0


async def _compact_shared(home: Path, store: StateStore, args: argparse.Namespace, *,
                          folder: Path | None = None, bucket: str | None = None,
                          endpoint: str | None = None) -> Compaction:
    from peerlog.drivers import FolderSync
    from peerlog.filelog import FileLog

    log: FileLog | BucketLog
    if folder is not None:
        log = FileLog(folder, store.origin)
    else:
        assert bucket is not None
        log = _bucket_log(bucket, endpoint, store.origin)
    try:
        sync = FolderSync(store.oplog, through_trust(home, store, log, folder=folder),
                          state=store)
        assert sync.snapshots is not None
        sync.snapshots.retention_ms = args.retention_days * 86_400_000
        return await sync.compact()
    finally:
        await log.close()


async def _compact_relay(home: Path, store: StateStore, url: str, args: argparse.Namespace,
                         saved: dict[str, str]) -> Compaction:
    from peerlog.drivers import RelaySync
    from peerlog.net import RemoteReplica

    async with RemoteReplica(url, _token(args, url, saved), ca=args.ca) as relay:
        return await RelaySync(store.oplog, through_trust(home, store, relay),
                               state=store).compact()


async def _sync_server(args: argparse.Namespace, home: Path, url: str,
                       saved: dict[str, str]) -> int:
    token = _token(args, url, saved)
    from peerlog.drivers import RelaySync
    from peerlog.net import RemoteReplica

    async with open_device(home) as store:
        save_sync(home, server=url, token=token)
        async with RemoteReplica(url, token, ca=args.ca) as relay:
            progress, advance = _progress(not args.json)
            with progress:
                sync = RelaySync(store.oplog, through_trust(home, store, relay),
                                 progress=advance, state=store)
                return await _sync_rounds(sync, url, args, progress)


async def cmd_serve(args: argparse.Namespace) -> int:
    from peerlog.net import RelayLimits, TokenStore
    from peerlog.net.guard import ConnectionLimits
    from peerlog.net.serve import (
        ServeOptions,
        default_connection_limits,
        serve_forever,
        warnings_for,
    )

    tokens = TokenStore.load(args.tokens)
    defaults = default_connection_limits()
    options = ServeOptions(
        host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
        limits=RelayLimits(rate=args.rate, burst=max(int(args.rate * 2), 1),
                           quota_bytes=None if args.quota_mb is None
                           else int(args.quota_mb * (1 << 20))),
        connections=ConnectionLimits(header_timeout=args.header_timeout,
                                     body_timeout=args.body_timeout,
                                     max_connections=args.max_connections
                                     or defaults.max_connections))
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together", code=2)
    for warning in warnings_for(tokens, options):
        errors.print(f"[bold yellow]warning:[/bold yellow] {warning}",
                                   highlight=False)
    console.print(f"peerlog relay on {options.scheme}://{args.host}:{args.port} serving "
                  f"{args.db}", highlight=False)
    await serve_forever(args.db, tokens, options)
    return 0


async def cmd_token(args: argparse.Namespace) -> int:
    from peerlog.net import TokenStore

    tokens = TokenStore.load(args.tokens)
    if args.list:
        grants = tokens.grants()
        if args.json:
            emit_json({"tokens": [{"device": str(g.origin) if g.origin else None,
                                   "name": g.name} for g in grants]})
        else:
            table(f"{args.tokens}: {len(grants)} token(s)", ["device", "name"],
                  [[str(g.origin) if g.origin else "(relay: any origin)", g.name]
                   for g in grants])
        return 0
    if args.revoke:
        gone = tokens.revoke(_peer_arg(args.revoke, "--revoke"))
        if not gone:
            raise CliError(f"no token of device {args.revoke} in {args.tokens}")
        console.print(f"revoked {gone} token(s) of device {args.revoke}; the relay stops "
                      "accepting them within a second", highlight=False)
        return 0
    origin = _peer_arg(args.device, "--device") if args.device else None
    print(tokens.issue(origin, args.name))
    return 0


def _peer_arg(text: str, option: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise CliError(f"{option} must be a peer id (a UUID), got {text!r}", code=2) from None


async def cmd_status(args: argparse.Namespace) -> int:
    from peerlog.filelog import SharedFolder

    withheld: dict[UUID, Withheld] = {}
    async with open_device(home_dir(args.home)) as store:
        here = await store.oplog.cursors()
        folder_extents = None
        if args.folder or args.bucket:
            reader: SharedFolder | BucketLog = SharedFolder(shared_folder(args.folder)) \
                if args.folder else _bucket_log(args.bucket, args.endpoint, store.origin)
            async with reader:
                folder_extents = await reader.cursors()
                withheld = dict(await asyncio.to_thread(reader.withheld))
                withheld.update(await _distrusted(home_dir(args.home), reader))
        elif args.server:
            folder_extents = await _relay_cursors(args, store)
        skipped = await store.skipped_count()
        deferred = await store.deferred()
        place = "in_relay" if args.server and not args.folder else "in_folder"
        peers: set[UUID] = {store.origin} | set(here) | set(folder_extents or {})
        rows = []
        for peer in sorted(peers, key=str):
            held = here.of(peer)
            row: dict[str, object] = {"origin": str(peer), "this_device": peer == store.origin,
                                      "held": held}
            if folder_extents is not None:
                in_folder = folder_extents.of(peer)
                row[place] = in_folder
                row["lag"] = max(in_folder - held, 0) if peer != store.origin \
                    else max(held - in_folder, 0)
                hidden = withheld.get(peer)
                row["withheld"] = None if hidden is None else {
                    "from_index": hidden.from_index, "at_least": hidden.at_least,
                    "kind": hidden.kind}
            rows.append(row)
    if args.json:
        emit_json({"peer_id": str(store.origin), "origins": rows,
                   "skipped_operations": skipped,
                   "clock_ahead": {str(p): {"index": d.index, "ahead_ms": d.ahead_ms}
                                   for p, d in deferred.items()}})
        return 0
    columns = ["origin", "", "held here"] + ([place.replace("_", " "), "lag", "withheld"]
                                             if folder_extents is not None else [])
    table(f"device {store.origin}", columns, [
        [str(r["origin"]), "this device" if r["this_device"] else "", str(r["held"])]
        + ([str(r[place]), str(r["lag"]),
            _withheld_cell(withheld.get(UUID(str(r["origin"]))))]
           if folder_extents is not None else [])
        for r in rows])
    if withheld:
        doctor = f"--bucket {args.bucket}" if args.bucket else f"--folder {args.folder}"
        console.print(f"[red]entries of {len(withheld)} device(s) are withheld[/red]: run "
                      f"`peerlog doctor {doctor}`", highlight=False)
    if skipped:
        console.print(f"[yellow]{skipped} operation(s) skipped by the state view[/yellow] "
                      "(not valid state operations; kept in the log)", highlight=False)
    for peer, waiting in deferred.items():
        console.print(f"[yellow]waiting[/yellow]: {ahead_text(peer, waiting)}", highlight=False)
    return 0


def _token(args: argparse.Namespace, url: str, saved: dict[str, str]) -> str:
    """The relay token (``--token``, ``$PEERLOG_TOKEN`` or remembered); exit 2 without one."""
    try:
        return read_token(args.token, url, saved)
    except HomeError as exc:
        raise CliError(str(exc), code=2) from None


async def _relay_cursors(args: argparse.Namespace, store: StateStore) -> PeerCursors:
    """The relay's cursors, with the token remembered for it (or ``--token``)."""
    from peerlog.net import RemoteReplica

    token = _token(args, args.server, load_sync(home_dir(args.home)))
    async with RemoteReplica(args.server, token, ca=args.ca) as relay:
        return await relay.cursors()


async def _distrusted(home: Path, folder: SharedFolder | BucketLog) -> dict[UUID, Any]:
    """For a device of an encrypted group: what its keys would withhold in ``folder``
    (forged, removed, not a member, ...), by origin (`peerlog.trust.verify_folder`)."""
    if not (home / "group.json").exists():
        return {}
    from peerlog.trust import Trust, verify_folder

    trust = Trust.load(home)
    return {} if trust is None else dict(await verify_folder(trust, folder))


def _withheld_cell(held: Any) -> str:
    return "" if held is None else f"≥{held.at_least} from {held.from_index} ({held.kind})"


async def cmd_doctor(args: argparse.Namespace) -> int:
    from peerlog.filelog import SharedFolder
    from peerlog.filelog.chain import Problem

    log: SharedFolder | BucketLog
    if args.bucket:
        from uuid import uuid4

        log = _bucket_log(args.bucket, args.endpoint, uuid4())  # reads only: any origin
        place: str = args.bucket
    else:
        folder = shared_folder(args.folder)
        log, place = SharedFolder(folder), str(folder)
    try:
        distrusted = await _distrusted(home_dir(args.home), log)
        report = await asyncio.to_thread(log.doctor)
    finally:
        await log.close()
    problems = report.all_problems() + [
        Problem(peer, f"{place.rstrip('/')}/{peer}", bad.kind, bad.detail, bad.from_index)
        for peer, bad in distrusted.items()]
    healthy = report.healthy and all(bad.kind == "removed" for bad in distrusted.values())
    if args.json:
        emit_json({
            ("bucket" if args.bucket else "folder"): report.root, "healthy": healthy,
            "origins": [{"origin": str(o.origin), "entries": o.extent, "first": o.first,
                         "segments": o.segments,
                         "problems": len(o.problems), "clock_ahead_ms": o.ahead_ms}
                        for o in report.origins],
            "problems": [{"origin": str(p.origin) if p.origin else None, "path": p.path,
                          "kind": p.kind, "detail": p.detail,
                          "withheld_from": p.withheld_from} for p in problems],
            "ignored": [{"path": i.path, "reason": i.reason} for i in report.ignored],
            "snapshots": [{"name": s.name, "producer": str(s.producer), "covers": s.covers,
                           "bytes": s.size} for s in report.snapshots],
            "missing_devices": [{"origin": str(m.origin), "held": m.held,
                                 "covered": m.covered, "lost": m.lost}
                                for m in report.missing],
        })
        return 0 if healthy else 1
    table(f"{place}: {len(report.origins)} device log(s)",
          ["origin", "entries", "from", "segments", "problems"],
          [[str(o.origin), str(o.extent), str(o.first), str(o.segments), str(len(o.problems))]
           for o in report.origins])
    if problems:
        table("problems (entries from 'withheld' on are not served)",
              ["kind", "path", "detail", "withheld"],
              [[p.kind, p.path, p.detail, "" if p.withheld_from is None
                else str(p.withheld_from)] for p in problems])
    if report.ignored:
        table("ignored", ["path", "reason"], [[i.path, i.reason] for i in report.ignored])
    if report.snapshots:
        table("snapshots", ["name", "made by", "covers", "bytes"],
              [[s.name[:16] + "…", str(s.producer), str(s.covers), str(s.size)]
               for s in report.snapshots])
    for m in report.missing:
        if m.lost:
            console.print(f"[red]device folder gone[/red]: {m.origin}'s folder disappeared; "
                          f"devices held {m.held} of its entries but snapshots cover only "
                          f"{m.covered}: a device that lacks the rest will never get them "
                          "(put the folder back, or run `peerlog compact` on a device that "
                          "holds them)", highlight=False)
        else:
            console.print(f"retired: device {m.origin}'s folder is gone; its {m.held} "
                          "entries are in a snapshot", highlight=False)
    fast = [o for o in report.origins if o.ahead_ms]
    for o in fast:
        console.print(f"[red]clock ahead[/red]: device {o.origin}'s newest change is stamped "
                      f"{duration_text(o.ahead_ms)} ahead of this machine's clock; other devices "
                      "wait for it (fix that device's clock)", highlight=False)
    lost = sum(m.lost for m in report.missing)
    console.print("[green]healthy[/green]" if healthy
                  else f"[red]{len(problems) + len(fast) + lost} problem(s)[/red]")
    return 0 if healthy else 1


DEVICES_TABLE = "_peerlog/devices"
"""The synced table of device names: key a peer id, value ``{"name": …}``."""


async def cmd_devices(args: argparse.Namespace) -> int:
    """List every device this one knows, or name this device (``devices name NAME``)."""
    home = home_dir(args.home)
    async with open_device(home) as store:
        if args.action == "remove":
            from peerlog.cli.group import cmd_remove

            return await cmd_remove(args, store, home)
        if args.action == "name":
            if not args.name:
                raise CliError("devices name needs the new name", code=2)
            await store.put(DEVICES_TABLE, str(store.origin), {"name": args.name})
            console.print(f"this device is now named {args.name!r}", highlight=False)
            return 0
        names = await _device_names(store)
        origins = await store.origins()
    known = {o.origin for o in origins}
    rows = [{"id": str(o.origin), "name": names.get(o.origin), "entries": o.entries,
             "last_change": None if o.last_ts is None else _iso(o.last_ts),
             "this_device": o.origin == store.origin} for o in origins]
    if store.origin not in known:
        rows.insert(0, {"id": str(store.origin), "name": names.get(store.origin),
                        "entries": 0, "last_change": None, "this_device": True})
    if args.json:
        emit_json({"devices": rows})
        return 0
    table(f"{len(rows)} device(s)", ["", "id", "name", "entries", "last change"],
          [["*" if r["this_device"] else "", str(r["id"]), str(r["name"] or ""),
            str(r["entries"]), str(r["last_change"] or "")] for r in rows])
    return 0


def _iso(ts: int) -> str:
    return datetime.fromtimestamp((ts >> 16) / 1000, UTC).astimezone().isoformat(
        timespec="seconds")


async def cmd_export(args: argparse.Namespace) -> int:
    """Every live value as JSON lines: ``{"table": …, "key": …, "value": …}``."""
    async with open_device(home_dir(args.home)) as store:
        tables = [args.table] if args.table else await store.tables()
        for name in tables:
            for key, value in await store.items(name):
                sys.stdout.write(json.dumps({"table": name, "key": key, "value": value},
                                            ensure_ascii=False, sort_keys=True) + "\n")
    return 0


def _export_lines(file: str) -> list[bytes]:
    """The state payloads of an export's JSON lines; `CliError` (exit 2) naming the first
    bad line."""
    stream = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115
    payloads: list[bytes] = []
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                payloads.append(encode_put(doc["table"], doc["key"], doc["value"]))
            except (ValueError, KeyError, TypeError, CodecError) as exc:
                raise CliError(f"{file} line {number} is not an export line: "
                               f"{str(exc)[:100]}", code=2) from None
    return payloads


async def cmd_import(args: argparse.Namespace) -> int:
    """Put every JSON line of FILE (``-``: stdin) as one transaction: all or nothing."""
    payloads = _export_lines(args.file)
    async with open_device(home_dir(args.home)) as store:
        try:
            await store.oplog.append_many(payloads)
        except CodecError as exc:
            raise CliError(str(exc), code=2) from None
    console.print(f"imported {len(payloads)} value(s)", highlight=False)
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from peerlog.cli.demo import run_demo

    if args.endpoint:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint  # the device processes inherit it
    return await run_demo(devices=args.devices, changes=args.changes,
                          workdir=Path(args.dir) if args.dir else None,
                          encrypted=args.encrypted, bucket=args.bucket)
