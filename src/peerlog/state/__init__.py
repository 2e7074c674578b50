"""The state an application reads: a last-writer-wins table store over the oplog."""

from peerlog.state.ops import canonical_json
from peerlog.state.store import Change, OriginSummary, StateStore
from peerlog.state.view import LwwView

__all__ = ["Change", "LwwView", "OriginSummary", "StateStore", "canonical_json"]
