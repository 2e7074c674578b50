"""State operations as log payloads (the layout is docs/file-format.md §7).

Byte layout of a payload (big-endian); the first byte is the operation::

    1 put      u8 op, u16 table length, u16 key length, table, key, value
    2 delete   u8 op, u16 table length, u16 key length, table, key
    3 update   u8 op, u16 table length, u16 key length, table, key,
               then per field: u16 name length, name, u32 value length, value
               (value length 0: the field is removed)
    4 batch    u8 op, then per operation: u32 length, a put, delete or update

Names are UTF-8; values are canonical JSON (sorted keys, no spaces).  The
value bytes are encoded once, by the writing device, and compared as bytes
everywhere, so every device breaks ties identically.  Operations 1 and 2 are
the whole of format 1 (peerlog 0.1); 3 and 4 were added in format 2 (0.2).
A payload that is none of these is not a state operation and is ignored.
"""

from __future__ import annotations

import enum
import json
import json.scanner
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from peerlog.sync.errors import InvalidArgumentError

PUT, DELETE, UPDATE, BATCH = 1, 2, 3, 4
_HEAD = struct.Struct(">BHH")
_FIELD = struct.Struct(">H")
_VALUE = struct.Struct(">I")
MAX_NAME = 0xFFFF


class OpKind(enum.StrEnum):
    """What an operation does to its key."""

    PUT = "put"
    UPDATE = "update"
    DELETE = "delete"


class _Remove:
    """The marker that removes a field in `update` (``peerlog.REMOVE``)."""

    _instance: _Remove | None = None

    def __new__(cls) -> _Remove:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "peerlog.REMOVE"

    def __reduce__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()
"""Give a field this value in an update to remove the field."""


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


_SIMPLE = re.compile(rb'-?(?:0|[1-9][0-9]{0,15})|"[^"\\\x00-\x1f\x7f-\xff]*"')
"""Integers and plain ASCII strings: most field values, checked without a parser."""
_CONSTANTS = {b"true": True, b"false": False, b"null": None}


_SCAN = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]


def parse_json(text: str | bytes) -> Any:
    """A JSON value as peerlog holds it: UTF-8, no ``NaN``/``Infinity`` and no number
    outside the float range (such values cannot be written back as JSON).  Raises
    `ValueError` (`json.JSONDecodeError` and `UnicodeDecodeError` among them) or
    `RecursionError` for anything else."""
    if isinstance(text, bytes):
        if text[:1] not in (b"{", b"["):
            if text in _CONSTANTS:
                return _CONSTANTS[text]
            if _SIMPLE.fullmatch(text):
                return int(text) if text[0] != 0x22 else text[1:-1].decode()
        text = text.decode()
    # The scanner alone, when the whole text is one value with no surrounding space (as
    # canonical JSON is): the decoder's wrappers cost more than the scan on small values.
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        end = -1
    if end == len(text):
        return value
    return _DECODER.decode(text)  # the exact error, or a value with spaces around it


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def canonical_json(value: Any) -> bytes:
    """The one encoding of a JSON value: sorted keys, compact, UTF-8, no NaN."""
    try:
        return _ENCODER.encode(value).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"value is not JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Op:
    """A decoded state operation.

    ``value`` is the put's canonical JSON bytes (None otherwise); ``fields`` the
    update's ``(name, value bytes or None for a removal)`` pairs (empty otherwise).
    """

    kind: OpKind
    table: str
    key: str
    value: bytes | None = None
    fields: tuple[tuple[str, bytes | None], ...] = ()


def _names(table: str, key: str) -> bytes:
    if not isinstance(table, str) or not table:
        raise InvalidArgumentError(f"table must be a non-empty string, got {table!r}")
    if not isinstance(key, str):
        raise InvalidArgumentError(f"key must be a string, got {key!r}")
    try:
        t, k = table.encode(), key.encode()
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"table and key must be valid Unicode text, got "
                                   f"{table!r}/{key!r}") from None
    if len(t) > MAX_NAME or len(k) > MAX_NAME:
        raise InvalidArgumentError(f"table and key are limited to {MAX_NAME} UTF-8 bytes")
    return struct.pack(">HH", len(t), len(k)) + t + k


def encode_put(table: str, key: str, value: Any) -> bytes:
    return bytes((PUT,)) + _names(table, key) + canonical_json(value)


def encode_delete(table: str, key: str) -> bytes:
    return bytes((DELETE,)) + _names(table, key)


def encode_update(table: str, key: str, fields: Mapping[str, Any]) -> bytes:
    """Set (or, with `REMOVE`, remove) only the given top-level fields of an object."""
    if not isinstance(fields, Mapping) or not fields:
        raise InvalidArgumentError("an update needs a non-empty mapping of fields")
    out = [bytes((UPDATE,)), _names(table, key)]
    for name in sorted(fields):
        if not isinstance(name, str):
            raise InvalidArgumentError(f"field names must be strings, got {name!r}")
        try:
            raw = name.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"field name {name!r} is not valid Unicode") from None
        if len(raw) > MAX_NAME:
            raise InvalidArgumentError(f"field names are limited to {MAX_NAME} UTF-8 bytes")
        value = fields[name]
        body = b"" if value is REMOVE else canonical_json(value)
        out += [_FIELD.pack(len(raw)), raw, _VALUE.pack(len(body)), body]
    return b"".join(out)


def encode_batch(payloads: Sequence[bytes]) -> bytes:
    """Several puts, updates and deletes as one entry: applied all or nothing."""
    if not payloads:
        raise InvalidArgumentError("a batch needs at least one operation")
    out = [bytes((BATCH,))]
    for payload in payloads:
        if not payload or payload[0] not in (PUT, DELETE, UPDATE):
            raise InvalidArgumentError("a batch holds puts, updates and deletes only")
        out += [_VALUE.pack(len(payload)), payload]
    return b"".join(out)


def _split_batch(payload: bytes) -> list[bytes] | None:
    parts, at, end = [], 1, len(payload)
    while at < end:
        if at + 4 > end:
            return None
        (size,) = _VALUE.unpack_from(payload, at)
        at += 4
        if at + size > end or size == 0 or payload[at] not in (PUT, DELETE, UPDATE):
            return None
        parts.append(payload[at:at + size])
        at += size
    return parts or None


def _split_fields(payload: bytes, at: int) -> list[tuple[bytes, bytes | None]] | None:
    """An update's ``(name bytes, value bytes or None)`` from offset ``at``; None if malformed."""
    fields, end = [], len(payload)
    while at < end:
        if at + 2 > end:
            return None
        (size,) = _FIELD.unpack_from(payload, at)
        name = payload[at + 2:at + 2 + size]
        at += 2 + size
        if at + 4 > end:
            return None
        (vsize,) = _VALUE.unpack_from(payload, at)
        at += 4
        if at + vsize > end:
            return None
        fields.append((name, payload[at:at + vsize] if vsize else None))
        at += vsize
    return fields or None


def _decode_one(payload: bytes) -> Op | None:
    if len(payload) < _HEAD.size:
        return None
    op, tlen, klen = _HEAD.unpack_from(payload)
    end = _HEAD.size + tlen + klen
    if op not in (PUT, DELETE, UPDATE) or len(payload) < end \
            or (op == DELETE and len(payload) != end):
        return None
    try:
        table = payload[_HEAD.size:_HEAD.size + tlen].decode()
        key = payload[_HEAD.size + tlen:end].decode()
        if op == PUT:
            return Op(OpKind.PUT, table, key, payload[end:])
        if op == DELETE:
            return Op(OpKind.DELETE, table, key)
        fields = _split_fields(payload, end)
        if fields is None:
            return None
        return Op(OpKind.UPDATE, table, key,
                  fields=tuple((name.decode(), value) for name, value in fields))
    except UnicodeDecodeError:
        return None


def decode_ops(payload: bytes) -> list[Op]:
    """The operations in a payload (one, or a batch's); empty when it is not state."""
    if payload[:1] == bytes((BATCH,)):
        parts = _split_batch(payload)
        ops = [_decode_one(p) for p in parts] if parts is not None else [None]
        return [] if None in ops else [op for op in ops if op is not None]
    op = _decode_one(payload)
    return [] if op is None else [op]


def key_prefix(table: str, key: str) -> bytes:
    """Bytes 1.. of every put/delete/update payload on ``table/key`` (for searching)."""
    return _names(table, key)


Rank = tuple[int, int, bytes]
"""``(ts, deleted, value bytes)``: the greater rank wins a key or a field."""

Names = bytes
"""A key as raw bytes: ``u16 table length, u16 key length, table, key``."""


@dataclass(slots=True)
class Collapsed:
    """The operations of a run of log slots that can matter, at most one per register.

    ``whole`` holds the highest put or delete per key, ``fields`` the highest
    update of each field per key: ``(rank, index)``.
    """

    whole: dict[Names, tuple[Rank, int]]
    fields: dict[tuple[Names, bytes], tuple[Rank, int]]


def names_of(names: Names) -> tuple[str, str] | None:
    """``(table, key)`` of raw names, or None when they are not UTF-8."""
    tlen, klen = struct.unpack_from(">HH", names)
    try:
        return names[4:4 + tlen].decode(), names[4 + tlen:4 + tlen + klen].decode()
    except UnicodeDecodeError:
        return None


def collapse(rows: Sequence[tuple[int | None, bytes]], start: int) -> Collapsed:
    """The registers each operation among log slots ``start, start+1, …`` would set,
    keeping only the highest rank per register.

    Slots that are markers (``ts`` None) or not state operations (as
    `decode_ops` decides) are skipped.  This is the hot path of applying a
    batch: puts and deletes are grouped by their raw name bytes without
    decoding anything, and a key's names are decoded only if it wins.
    """
    unpack = _HEAD.unpack_from
    size = _HEAD.size
    whole: dict[Names, tuple[Rank, int]] = {}
    fields: dict[tuple[Names, bytes], tuple[Rank, int]] = {}
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
            if op == UPDATE and len(payload) >= end:
                shaped = _split_fields(payload, end)
                if shaped is not None:
                    _claim(payload[1:end], shaped, ts, index, fields)
            elif op == BATCH:
                _register_batch(payload, ts, index, whole, fields)
            continue
        names = payload[1:end]
        held = whole.get(names)
        if held is None or rank > held[0]:
            whole[names] = (rank, index)
    return Collapsed(whole, fields)


def rank_of(ts: int, value: bytes | None) -> Rank:
    """The rank of a write of ``value`` (None: a delete or a field removal) at ``ts``."""
    return (ts, 0, value) if value is not None else (ts, 1, b"")


def _claim(names: Names, shaped: list[tuple[bytes, bytes | None]], ts: int, index: int,
           fields: dict[tuple[Names, bytes], tuple[Rank, int]]) -> None:
    for name, value in shaped:
        rank = rank_of(ts, value)
        slot = (names, name)
        held = fields.get(slot)
        if held is None or rank > held[0]:
            fields[slot] = (rank, index)


def _register_batch(payload: bytes, ts: int, index: int, whole: dict[Names, tuple[Rank, int]],
                    fields: dict[tuple[Names, bytes], tuple[Rank, int]]) -> None:
    """Every operation of a batch, or none when any of them is malformed."""
    parts = _split_batch(payload)
    if parts is None or any(_decode_one(p) is None for p in parts):
        return
    for part in parts:
        op, tlen, klen = _HEAD.unpack_from(part)
        end = _HEAD.size + tlen + klen
        names = part[1:end]
        if op == UPDATE:
            _claim(names, _split_fields(part, end) or [], ts, index, fields)
            continue
        rank = rank_of(ts, part[end:] if op == PUT else None)
        held = whole.get(names)
        if held is None or rank > held[0]:
            whole[names] = (rank, index)


def merged_value(base_deleted: bool, base: bytes, fields: Sequence[tuple[str, bool, bytes]]
                 ) -> bytes | None:
    """The value of a key whose last put or delete is ``base`` and whose updates
    above it set or remove ``fields`` (``(name, removed, value)``).

    None means "no fields to merge": the value is ``base`` (absent when it is a
    delete).  An object put takes the fields on top; a non-object put or a
    delete gives way to an object of the fields set, if any.
    """
    if not fields:
        return None
    if not base_deleted:
        value = parse_json(base)
        if isinstance(value, dict):
            for name, removed, raw in fields:
                if removed:
                    value.pop(name, None)
                else:
                    value[name] = parse_json(raw)
            return canonical_json(value)
    present = {name: parse_json(raw) for name, removed, raw in fields if not removed}
    return canonical_json(present) if present else None

