"""`peerlog [--home DIR] COMMAND`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from peerlog.cli import commands
from peerlog.cli.device import CliError
from peerlog.sync.errors import SyncError

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peerlog", description="Local-first sync through per-device append-only logs.")
    parser.add_argument("--home", metavar="DIR",
                        help="the device's folder (default: $PEERLOG_HOME, else the "
                             "platform's user data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn: Command, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        return p

    p = command("init", commands.cmd_init, "create this device: its peer id and database")
    p.add_argument("--json", action="store_true")
    p = command("put", commands.cmd_put, "set TABLE/KEY to a JSON value")
    p.add_argument("table")
    p.add_argument("key")
    p.add_argument("json_value", metavar="JSON")
    p = command("get", commands.cmd_get, "print the JSON value of TABLE/KEY")
    p.add_argument("table")
    p.add_argument("key")
    p = command("delete", commands.cmd_delete, "delete TABLE/KEY")
    p.add_argument("table")
    p.add_argument("key")
    p = command("ls", commands.cmd_ls, "every live key and value of TABLE")
    p.add_argument("table")
    p.add_argument("--json", action="store_true")
    p = command("sync", commands.cmd_sync,
                "publish this device's log to a shared folder and take in every other")
    p.add_argument("--folder", metavar="DIR")
    p.add_argument("--watch", action="store_true", help="keep following until interrupted")
    p.add_argument("--json", action="store_true")
    p.add_argument("--server", metavar="URL", help="a relay instead of a folder")
    p.add_argument("--token", help="this device's token for --server (or $PEERLOG_TOKEN)")
    p = command("status", commands.cmd_status,
                "every origin: entries held here, in the folder, and the lag")
    p.add_argument("--folder", metavar="DIR")
    p.add_argument("--json", action="store_true")
    p = command("doctor", commands.cmd_doctor,
                "what is wrong in a shared folder, and what was ignored")
    p.add_argument("--folder", metavar="DIR", required=True)
    p.add_argument("--json", action="store_true")
    p = command("serve", commands.cmd_serve, "the relay server")
    p.add_argument("--db", metavar="URL", required=True,
                   help="sqlite:PATH or postgresql://USER@HOST/DB")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8470)
    p.add_argument("--tokens", metavar="FILE", default="peerlog-tokens.json",
                   help="the token file (see `peerlog token`)")
    p = command("token", commands.cmd_token,
                "issue a token for the relay: a device's (--device) or a relay's (--relay)")
    p.add_argument("--tokens", metavar="FILE", default="peerlog-tokens.json")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--device", metavar="PEER_ID", help="may write only this origin")
    who.add_argument("--relay", action="store_true", help="may write any origin")
    p.add_argument("--name", default="")
    p = command("demo", commands.cmd_demo,
                "several devices, as separate processes, converging through one folder")
    p.add_argument("--devices", type=int, default=4)
    p.add_argument("--changes", type=int, default=2_000, help="changes per device")
    p.add_argument("--dir", metavar="DIR", help="keep the demo's files here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = asyncio.run(args.fn(args))
        return code
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        return fail(str(exc), exc.code)
    except (SyncError, OSError) as exc:
        return fail(str(exc), 1)


def fail(message: str, code: int) -> int:
    """One line on stderr, never wrapped: scripts parse it."""
    sys.stderr.write("peerlog: error: " + " ".join(message.split()) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
