"""Human output with rich, and the one-JSON-document form for scripts."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


class _LazyConsole:
    """A rich `Console` made on first use: commands that print JSON or nothing (``get``)
    never import rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


_console, _errors = _LazyConsole(), _LazyConsole(stderr=True, soft_wrap=True)
console = cast("Console", _console)
errors = cast("Console", _errors)


def rich_console() -> Console:
    """The standard-output `Console` itself, for rich objects that drive it (`Live`,
    `Progress`)."""
    return _console.real()
"""Problems a command reports without failing outright go to stderr."""


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))}


def shown(text: str) -> Text:
    """``text`` as plain terminal output: control characters (escape sequences from a
    hostile device's table or key names) shown as ``\\xNN``, never interpreted, and
    no rich markup."""
    from rich.text import Text

    return Text(text.translate(_CONTROL).encode("utf-8", "backslashreplace").decode())


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    out = Table(title=shown(title) if title is not None else None, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*map(shown, row))
    console.print(out)
