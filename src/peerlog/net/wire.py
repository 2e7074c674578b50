"""What crosses the wire between a relay and its clients.

Entries travel as one file-log record (docs/file-format.md §3): the same
columnar, checksummed bytes a segment holds, with media type
``application/vnd.peerlog.record``.  An empty body is an empty batch.
Cursors and watch events are JSON with string UUID keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from peerlog.filelog.format import decode_record, encode_record, scan_records
from peerlog.sync.cursors import Advanced, CursorsEvent, PeerCursors, Snapshot
from peerlog.sync.entry import DecodedEntry
from peerlog.sync.errors import CodecError

RECORD_TYPE = "application/vnd.peerlog.record"
SNAPSHOT_TYPE = "application/vnd.peerlog.snapshot"
API = "/v1"
WS_UNAUTHORIZED = 4401
"""The close code of a watch whose token is missing or refused (the client stops retrying)."""


class WireError(StrEnum):
    """The ``error`` field of a relay's refusal (docs/relay.md); `STATUS` gives its code."""

    MALFORMED = "malformed"
    DISCONNECTED = "disconnected"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    UNSUPPORTED = "unsupported"
    CURSOR_MISMATCH = "cursor_mismatch"
    DIVERGENCE = "divergence"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    QUOTA_EXCEEDED = "quota_exceeded"
    COMPACTED = "compacted"
    NOT_FOUND = "not_found"


STATUS: dict[WireError, int] = {
    WireError.MALFORMED: 400, WireError.DISCONNECTED: 400, WireError.REJECTED: 400,
    WireError.UNAUTHORIZED: 401, WireError.FORBIDDEN: 403, WireError.UNSUPPORTED: 404,
    WireError.CURSOR_MISMATCH: 409, WireError.DIVERGENCE: 409, WireError.TOO_LARGE: 413,
    WireError.RATE_LIMITED: 429, WireError.UNAVAILABLE: 503, WireError.QUOTA_EXCEEDED: 507,
    WireError.COMPACTED: 410, WireError.NOT_FOUND: 404,
}
"""The one table of error kinds and HTTP statuses, used by the relay and the client."""


def kind_of(status: int, named: object) -> WireError | None:
    """The kind of a refusal: the one the body names if it fits ``status``, else the
    only kind with that status, else None."""
    try:
        kind = WireError(str(named))
    except ValueError:
        kind = None
    if kind is not None and STATUS[kind] == status:
        return kind
    fitting = [k for k, code in STATUS.items() if code == status]
    return fitting[0] if len(fitting) == 1 else None


def encode_batch(first_index: int, entries: Sequence[DecodedEntry]) -> bytes:
    """A batch as record bytes (empty for no entries)."""
    return encode_record(first_index, entries) if entries else b""


def decode_batch(body: bytes, first_index: int) -> list[tuple[int, DecodedEntry]]:
    """Record bytes back into ``(index, entry)`` pairs; `CodecError` unless exactly one
    valid record starting at ``first_index``."""
    if not body:
        return []
    scan = scan_records(body, 0, first_index)
    if scan.stop is not None or len(scan.records) != 1 or scan.valid_end != len(body):
        detail = scan.detail or "expected exactly one record"
        raise CodecError(f"malformed entry batch: {detail}")
    ref = scan.records[0]
    return decode_record(body, ref.offset, ref.first_index, ref.count, 0, ref.count)


def event_to_json(event: CursorsEvent) -> dict[str, Any]:
    kind = "snapshot" if isinstance(event, Snapshot) else "advanced"
    return {"type": kind, "cursors": event.cursors.to_json()}


def event_from_json(obj: Any) -> CursorsEvent:
    if not isinstance(obj, dict) or obj.get("type") not in ("snapshot", "advanced"):
        raise CodecError(f"not a cursors event: {obj!r:.200}")
    cursors = PeerCursors.from_json(obj.get("cursors"))
    return Snapshot(cursors) if obj["type"] == "snapshot" else Advanced(cursors)
