"""Optional parts and the extra that installs each: a missing one is a one-line error."""

from __future__ import annotations

import importlib
from types import ModuleType

from peerlog.sync.errors import SyncError


class MissingExtraError(SyncError, ImportError):
    """A part of peerlog whose dependencies are not installed; the message names the
    extra to install (``pip install 'peerlog[relay]'``)."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or say which extra provides what it needs."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "peerlog":
            raise
        raise MissingExtraError(
            f"{module} needs the {extra!r} extra ({exc.name} is not installed): "
            f"pip install 'peerlog[{extra}]'") from exc
