"""`peerlog [--home DIR] COMMAND`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from peerlog import __version__
from peerlog.cli import commands
from peerlog.cli.errors import CliError
from peerlog.sync import defaults
from peerlog.sync.errors import DiskFullError, SyncError

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit 2, like every error."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)", 2)
        sys.exit(2)


def name_arg(text: str) -> str:
    """A table or key name from the command line: text that encodes as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"{text.encode(errors='surrogateescape')!r} is not valid UTF-8") from None
    return text


def _group_command(name: str) -> Command:
    """A command of `peerlog.cli.group`, imported when run: only they need cryptography."""
    async def run(args: argparse.Namespace) -> int:
        from peerlog.cli import group

        fn: Command = getattr(group, name)
        return await fn(args)
    return run


def _bucket_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", metavar="URL",
                   help="an object-storage bucket instead of a folder: s3://BUCKET/PREFIX "
                        "(any S3-compatible service with --endpoint), gs://, az://, "
                        "file:///PATH; credentials from the usual AWS_*, GOOGLE_*, AZURE_* "
                        "variables (remembered: later runs may omit it)")
    p.add_argument("--endpoint", metavar="URL",
                   help="with --bucket s3://: the S3-compatible server (MinIO, R2, B2, ...); "
                        "else $AWS_ENDPOINT_URL, else AWS")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="peerlog", description="Local-first sync through per-device append-only logs.")
    parser.add_argument("--home", metavar="DIR",
                        help="the device's folder (default: $PEERLOG_HOME, else the "
                             "platform's user data folder)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the library's INFO logs")
    parser.add_argument("--version", action="version", version=f"peerlog {__version__}")
    # The global options are accepted after the command too (`peerlog ls t --home X`);
    # SUPPRESS keeps a subcommand from resetting what was given before it.
    anywhere = _Parser(add_help=False)
    anywhere.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS,
                          help="the device's folder")
    anywhere.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="show the library's INFO logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn: Command, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[anywhere])
        p.set_defaults(fn=fn)
        return p

    p = command("init", commands.cmd_init, "create this device: its peer id and database")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--encrypted", action="store_true",
                       help="also create a new encrypted group, this device its first member")
    group.add_argument("--join", metavar="CODE",
                       help="join an encrypted group with an invite code from one of its "
                            "devices ('-' reads it from stdin, else $PEERLOG_INVITE)")
    group.add_argument("--passphrase", action="store_true",
                       help="create or join the passphrase group of --folder (the passphrase "
                            "is read from $PEERLOG_PASSPHRASE, else asked for)")
    p.add_argument("--folder", metavar="DIR", help="with --passphrase: the shared folder")
    p.add_argument("--json", action="store_true")
    p = command("invite", _group_command("cmd_invite"),
                "print a one-time code that admits one device to this device's encrypted group")
    p.add_argument("--expires-hours", type=float, default=24.0, metavar="H",
                   help="how long the code admits a device (default 24)")
    p.add_argument("--device", metavar="PEER_ID",
                   help="admit this existing device (of a group moved to encryption) instead "
                        "of a new one")
    p.add_argument("--json", action="store_true")
    p = command("encrypt", _group_command("cmd_encrypt"),
                "move this device's unencrypted group to encryption from now on")
    p.add_argument("--folder", metavar="DIR", help="the shared folder (default: the one "
                                                   "this device syncs with)")
    p.add_argument("--json", action="store_true")
    p = command("put", commands.cmd_put, "set TABLE/KEY to a JSON value")
    p.add_argument("table", type=name_arg)
    p.add_argument("key", type=name_arg)
    p.add_argument("json_value", metavar="JSON", help="the value; '-' reads it from stdin")
    p = command("update", commands.cmd_update,
                "set only some fields of TABLE/KEY (another device's edits of other fields "
                "are kept)")
    p.add_argument("table", type=name_arg)
    p.add_argument("key", type=name_arg)
    p.add_argument("json_fields", metavar="JSON", nargs="?",
                   help="a JSON object of the fields to set; '-' reads it from stdin")
    p.add_argument("--remove", metavar="FIELD", action="append",
                   help="remove this field (repeatable)")
    p = command("history", commands.cmd_history,
                "every operation on TABLE/KEY held here, and which won or lost")
    p.add_argument("table", type=name_arg)
    p.add_argument("key", type=name_arg)
    p.add_argument("--json", action="store_true")
    p = command("get", commands.cmd_get, "print the JSON value of TABLE/KEY")
    p.add_argument("table", type=name_arg)
    p.add_argument("key", type=name_arg)
    p = command("delete", commands.cmd_delete, "delete TABLE/KEY")
    p.add_argument("table", type=name_arg)
    p.add_argument("key", type=name_arg)
    p = command("ls", commands.cmd_ls, "every live key and value of TABLE")
    p.add_argument("table", type=name_arg)
    p.add_argument("--json", action="store_true")
    p = command("sync", commands.cmd_sync,
                "publish this device's log and take in every other (a folder or a relay)")
    p.add_argument("--folder", metavar="DIR")
    p.add_argument("--watch", action="store_true",
                   help="keep following until interrupted; retries while offline")
    p.add_argument("--json", action="store_true",
                   help="one JSON document (with --watch: one JSON line per round)")
    p.add_argument("--server", metavar="URL",
                   help="a relay instead of a folder (remembered: later runs may omit it)")
    _bucket_options(p)
    p.add_argument("--token", metavar="TOKEN",
                   help="this device's relay token, remembered in the device home; '-' "
                        "reads it from stdin (else $PEERLOG_TOKEN)")
    p.add_argument("--retry-cap", type=float, default=defaults.BACKOFF_CAP, metavar="S",
                   help="with --watch: the longest wait between retries while offline "
                        "(default 30 s; waits start at 0.5 s and double, jittered)")
    p.add_argument("--ca", metavar="FILE",
                   help="also trust this PEM certificate for the relay's TLS "
                        "(the system store and $SSL_CERT_FILE always are)")
    p = command("status", commands.cmd_status,
                "every origin: entries held here, in the folder or on the relay, and the lag")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--folder", metavar="DIR")
    where.add_argument("--server", metavar="URL", help="compare with a relay ('in_folder' "
                                                       "then counts the relay's entries)")
    where.add_argument("--bucket", metavar="URL", help="compare with a bucket")
    p.add_argument("--endpoint", metavar="URL", help="with --bucket: an S3-compatible server")
    p.add_argument("--token", help="the relay token (default: the one remembered)")
    p.add_argument("--ca", metavar="FILE", help="extra CA certificate for the relay")
    p.add_argument("--json", action="store_true")
    p = command("compact", commands.cmd_compact,
                "publish a state snapshot to the shared folder, then remove what it makes "
                "redundant there and in this device's database")
    p.add_argument("--folder", metavar="DIR",
                   help="the shared folder (default: where this device syncs)")
    p.add_argument("--server", metavar="URL", help="a relay (default: where this device syncs)")
    _bucket_options(p)
    p.add_argument("--token", help="the relay token (default: the one saved for it)")
    p.add_argument("--ca", metavar="PEM", help="extra CA certificates to trust for the relay")
    p.add_argument("--retention-days", type=int, default=defaults.RETENTION_MS // 86_400_000,
                   metavar="N", help="devices silent longer than this no longer hold "
                                     "compaction back (default: %(default)s)")
    p.add_argument("--json", action="store_true")
    p = command("doctor", commands.cmd_doctor,
                "what is wrong in a shared folder or bucket, and what was ignored")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--folder", metavar="DIR")
    where.add_argument("--bucket", metavar="URL", help="an object-storage bucket (s3://, gs://, "
                                                       "az://, file://)")
    p.add_argument("--endpoint", metavar="URL", help="with --bucket: an S3-compatible server")
    p.add_argument("--json", action="store_true")
    p = command("serve", commands.cmd_serve, "the relay server")
    p.add_argument("--db", metavar="URL", required=True,
                   help="sqlite:PATH or postgresql://USER@HOST/DB")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=defaults.RELAY_PORT)
    p.add_argument("--tokens", metavar="FILE", default=defaults.TOKENS_FILE,
                   help="the token file (see `peerlog token`); re-read when it changes")
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="FILE", help="... and this private key")
    p.add_argument("--quota-mb", type=float, metavar="N",
                   help="payload stored per device, in MiB (default: no quota)")
    p.add_argument("--rate", type=float, default=defaults.RELAY_RATE, metavar="N",
                   help="requests per second per token (default 200; bursts of 2x)")
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="open connections (default: 1000, or what the descriptor limit allows)")
    p.add_argument("--header-timeout", type=float, default=defaults.RELAY_HEADER_TIMEOUT,
                   metavar="S",
                   help="seconds for a request's headers to arrive (default 10)")
    p.add_argument("--body-timeout", type=float, default=defaults.RELAY_BODY_TIMEOUT, metavar="S",
                   help="seconds for a request's body to arrive (default 60)")
    p = command("token", commands.cmd_token,
                "issue, list or revoke relay tokens: a device's (--device) or a relay's")
    p.add_argument("--tokens", metavar="FILE", default=defaults.TOKENS_FILE)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--device", metavar="PEER_ID", help="issue a token that may write only "
                                                          "this origin")
    what.add_argument("--relay", action="store_true", help="issue a token that may write "
                                                           "any origin")
    what.add_argument("--list", action="store_true", help="list the tokens (never their "
                                                          "secrets: only hashes are kept)")
    what.add_argument("--revoke", metavar="PEER_ID", help="remove every token of a device")
    p.add_argument("--name", default="")
    p.add_argument("--json", action="store_true")
    p = command("devices", commands.cmd_devices,
                "every device this one knows (entries, last change), or `devices name NAME`")
    p.add_argument("action", nargs="?", choices=["list", "name", "remove"], default="list")
    p.add_argument("name", nargs="?", help="the new name, or the id of the device to remove "
                                           "from this device's encrypted group")
    p.add_argument("--json", action="store_true")
    p = command("export", commands.cmd_export, "every live value as JSON lines")
    p.add_argument("table", nargs="?", type=name_arg, help="only this table")
    p = command("import", commands.cmd_import,
                "put every value of an export (JSON lines; '-' reads stdin)")
    p.add_argument("file", metavar="FILE")
    p = command("demo", commands.cmd_demo,
                "several devices, as separate processes, converging through one folder "
                "(or bucket)")
    p.add_argument("--devices", type=int, default=4)
    p.add_argument("--bucket", metavar="URL",
                   help="converge through this bucket instead of a temporary folder (use "
                        "an empty prefix: the demo leaves its objects there)")
    p.add_argument("--endpoint", metavar="URL", help="with --bucket s3://: the S3-compatible "
                                                     "server")
    p.add_argument("--changes", type=int, default=2_000, help="changes per device")
    p.add_argument("--dir", metavar="DIR", help="keep the demo's files here")
    p.add_argument("--encrypted", action="store_true",
                   help="the devices form an encrypted group; the folder is then searched "
                        "for the changes' text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Going offline and coming back are news a person watching a sync wants.
        logging.getLogger("peerlog.drivers.rounds").setLevel(logging.WARNING)
    try:
        code: int = asyncio.run(args.fn(args))
        return code
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        return fail(str(exc), exc.code)
    except (SyncError, OSError) as exc:
        if _disk_full(exc):
            return fail(f"disk is full ({exc})", 1)
        return fail(str(exc), 1)


def _disk_full(exc: BaseException | None) -> bool:
    """True when ``exc`` or its causes mean no space is left on the device."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DiskFullError) or (
                isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def fail(message: str, code: int) -> int:
    """One line on stderr, never wrapped: scripts parse it."""
    sys.stderr.write("peerlog: error: " + " ".join(message.split()) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
