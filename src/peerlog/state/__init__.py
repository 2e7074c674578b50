"""The state an application reads: a last-writer-wins table store over the oplog."""

from peerlog.state.ops import canonical_json
from peerlog.state.store import Change, StateStore
from peerlog.state.view import LwwView

__all__ = ["Change", "LwwView", "StateStore", "canonical_json"]
