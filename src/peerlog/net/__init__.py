"""The relay: an HTTP/WebSocket server over any Replica, and the client Replica.

Everything here needs the ``relay`` extra (httpx, starlette, uvicorn,
websockets) and is imported on first use, so ``import peerlog`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peerlog.net.client import RemoteReplica
    from peerlog.net.server import RelayLimits, create_app
    from peerlog.net.tokens import Grant, TokenStore

__all__ = ["Grant", "RelayLimits", "RemoteReplica", "TokenStore", "create_app"]

_HOMES = {"RemoteReplica": "peerlog.net.client", "RelayLimits": "peerlog.net.server",
          "create_app": "peerlog.net.server", "Grant": "peerlog.net.tokens",
          "TokenStore": "peerlog.net.tokens"}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from peerlog.extras import require

    return getattr(require(module, "relay"), name)
