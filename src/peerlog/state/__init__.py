"""The state an application reads: a field-level last-writer-wins store over the oplog."""

from peerlog.state.ops import REMOVE, OpKind, canonical_json
from peerlog.state.store import (
    Change,
    HistoryItem,
    OriginSummary,
    Outcome,
    StateStore,
    Transaction,
)
from peerlog.state.view import LwwView

__all__ = ["REMOVE", "Change", "HistoryItem", "LwwView", "OpKind", "OriginSummary", "Outcome",
           "StateStore", "Transaction", "canonical_json"]
