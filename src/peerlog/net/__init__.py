"""The relay: an HTTP/WebSocket server over any Replica, and the client Replica."""

from peerlog.net.client import RemoteReplica
from peerlog.net.server import RelayLimits, create_app
from peerlog.net.tokens import Grant, TokenStore

__all__ = ["Grant", "RelayLimits", "RemoteReplica", "TokenStore", "create_app"]
