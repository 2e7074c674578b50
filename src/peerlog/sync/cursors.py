"""Cursors: per-origin version vectors, and the events a watch yields."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from uuid import UUID

from peerlog.sync.errors import CodecError


class PeerCursors(dict[UUID, int]):
    """Peer id -> the *next* entry index of that peer's log; an absent peer means 0.

    It is exactly what to pass `LogSource.read_since` for the next entry.  Two
    cursors combine by pointwise max (`merged`), which is why events may be
    dropped, duplicated or coalesced without harm.
    """

    __slots__ = ()

    def of(self, peer: UUID) -> int:
        """The next index for ``peer``, ``0`` when absent."""
        return self.get(peer, 0)

    def merged(self, other: Mapping[UUID, int]) -> PeerCursors:
        """A new `PeerCursors`, the pointwise max of ``self`` and ``other``."""
        out = PeerCursors(self)
        for peer, index in other.items():
            if index > out.get(peer, 0):
                out[peer] = index
        return out

    def gaps(self, ahead: Mapping[UUID, int]) -> dict[UUID, tuple[int, int]]:
        """For every peer where ``ahead`` is past ``self``: the half-open range to pull."""
        return {
            peer: (self.get(peer, 0), index)
            for peer, index in ahead.items()
            if index > self.get(peer, 0)
        }

    def to_json(self) -> dict[str, int]:
        """A JSON-ready mapping with string UUID keys."""
        return {str(peer): index for peer, index in self.items()}

    @classmethod
    def from_json(cls, obj: Any) -> PeerCursors:
        """Parse `to_json` output; raise `CodecError` on anything else."""
        if not isinstance(obj, dict):
            raise CodecError(f"cursors must be a JSON object, got {type(obj).__name__}")
        out = cls()
        for key, value in obj.items():
            try:
                peer = UUID(key)
            except (ValueError, TypeError, AttributeError):
                raise CodecError(f"cursor key must be a UUID string, got {key!r}") from None
            if type(value) is not int or value < 0:
                raise CodecError(
                    f"cursor of {peer} must be a non-negative int, got {value!r}"
                )
            out[peer] = value
        return out

    def __repr__(self) -> str:
        return f"PeerCursors({dict.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The first event of every watch: all cursors at subscription time."""

    cursors: PeerCursors


@dataclass(frozen=True, slots=True)
class Advanced:
    """A later event: only the origins that moved, mapped to their new next index."""

    cursors: PeerCursors


CursorsEvent: TypeAlias = Snapshot | Advanced
CursorStream: TypeAlias = AsyncIterator[CursorsEvent]
