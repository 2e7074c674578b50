"""State operations as log payloads.

Byte layout of a payload (big-endian)::

    u8  op          1 = put, 2 = delete
    u16 table length, u16 key length
    table (UTF-8), key (UTF-8)
    value           put only: canonical JSON (UTF-8, sorted keys, no spaces)

The value bytes are encoded once, by the writing device, and compared as
bytes everywhere, so every device breaks ties identically.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from peerlog.sync.errors import InvalidArgumentError

PUT, DELETE = 1, 2
_HEAD = struct.Struct(">BHH")
MAX_NAME = 0xFFFF


def parse_json(text: str | bytes) -> Any:
    """A JSON value as peerlog holds it: no ``NaN``/``Infinity`` and no number outside
    the float range (such values cannot be written back as JSON).  Raises `ValueError`
    (`json.JSONDecodeError` among them) or `RecursionError` for anything else."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value


def canonical_json(value: Any) -> bytes:
    """The one encoding of a JSON value: sorted keys, compact, UTF-8, no NaN."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"value is not JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Op:
    """A decoded state operation; ``value`` is canonical JSON bytes, or None for a delete."""

    table: str
    key: str
    value: bytes | None


def _names(table: str, key: str) -> tuple[bytes, bytes]:
    if not isinstance(table, str) or not table:
        raise InvalidArgumentError(f"table must be a non-empty string, got {table!r}")
    if not isinstance(key, str):
        raise InvalidArgumentError(f"key must be a string, got {key!r}")
    try:
        t, k = table.encode(), key.encode()
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"table and key must be valid Unicode text, got "
                                   f"{table!r}/{key!r}"
                         ) from None
    if len(t) > MAX_NAME or len(k) > MAX_NAME:
        raise InvalidArgumentError(f"table and key are limited to {MAX_NAME} UTF-8 bytes")
    return t, k


def encode_put(table: str, key: str, value: Any) -> bytes:
    t, k = _names(table, key)
    return _HEAD.pack(PUT, len(t), len(k)) + t + k + canonical_json(value)


def encode_delete(table: str, key: str) -> bytes:
    t, k = _names(table, key)
    return _HEAD.pack(DELETE, len(t), len(k)) + t + k


def decode_op(payload: bytes) -> Op | None:
    """The operation in a payload, or None when the payload is not a state operation."""
    if len(payload) < _HEAD.size:
        return None
    op, tlen, klen = _HEAD.unpack_from(payload)
    end = _HEAD.size + tlen + klen
    if op not in (PUT, DELETE) or len(payload) < end or (op == DELETE and len(payload) != end):
        return None
    try:
        table = payload[_HEAD.size:_HEAD.size + tlen].decode()
        key = payload[_HEAD.size + tlen:end].decode()
    except UnicodeDecodeError:
        return None
    return Op(table, key, payload[end:] if op == PUT else None)


Rank = tuple[int, int, bytes]
"""``(ts, deleted, value bytes)``: the greater rank wins a key."""


def collapse(rows: Sequence[tuple[int | None, bytes]], start: int
             ) -> list[tuple[str, str, Rank, int]]:
    """The winning operation per key among log slots ``start, start+1, …``.

    Returns ``(table, key, rank, index)`` for each key touched.  Slots that
    are markers (``ts`` None) or not state operations are skipped.  This is
    the hot path of applying a batch: names are grouped as raw bytes and only
    the winners' are decoded.
    """
    unpack = _HEAD.unpack_from
    size = _HEAD.size
    best: dict[bytes, tuple[Rank, int]] = {}
    for index, (ts, payload) in enumerate(rows, start):
        if ts is None or len(payload) < size:
            continue
        op, tlen, klen = unpack(payload)
        end = size + tlen + klen
        if op == PUT and len(payload) >= end:
            rank: Rank = (ts, 0, payload[end:])
        elif op == DELETE and len(payload) == end:
            rank = (ts, 1, b"")
        else:
            continue
        names = payload[1:end]
        held = best.get(names)
        if held is None or rank > held[0]:
            best[names] = (rank, index)
    out = []
    for names, (rank, index) in best.items():
        tlen, klen = struct.unpack_from(">HH", names)
        try:
            table = names[4:4 + tlen].decode()
            key = names[4 + tlen:4 + tlen + klen].decode()
        except UnicodeDecodeError:
            continue  # not a state operation after all
        out.append((table, key, rank, index))
    return out
