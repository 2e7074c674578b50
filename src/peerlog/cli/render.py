"""Human output with rich, and the one-JSON-document form for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
errors = Console(stderr=True, soft_wrap=True)
"""Problems a command reports without failing outright go to stderr."""


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))}


def shown(text: str) -> Text:
    """``text`` as plain terminal output: control characters (escape sequences from a
    hostile device's table or key names) shown as ``\\xNN``, never interpreted, and
    no rich markup."""
    return Text(text.translate(_CONTROL).encode("utf-8", "backslashreplace").decode())


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    out = Table(title=shown(title) if title is not None else None, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*map(shown, row))
    console.print(out)
