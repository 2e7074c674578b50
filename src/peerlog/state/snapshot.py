"""State snapshots: the materialised state plus the frontier it covers, as verified bytes.

A snapshot holds every register of the state (each key's base and its field
registers, with their ranks and the ``(origin, index)`` that wrote them), so
a device that loads it and then applies the entries above its frontier
reaches exactly the state a full replay reaches: the state is a maximum
over ranks, and a maximum can be taken in any grouping.  Tombstones are
registers too, so an entry that arrives later with a lower rank still loses.

Byte format (docs/file-format.md §9), all integers big-endian::

    header   magic 8, version u16, flags u16, producer 16, created_ms u64,
             hlc u64, origins u32, body_length u64
    frontier origins x (origin 16, next index u64), ascending by origin
    body     zlib (RFC 1950) of: peers, base columns, field columns
    digest   SHA-256 of everything before it (32 bytes)

A snapshot's name is the hex of its digest, so it is content-addressed:
`decode_snapshot` recomputes the digest first and refuses anything damaged,
truncated, foreign or from a newer version with `SnapshotError` before a
single row is used.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from peerlog.state.ops import MAX_NAME
from peerlog.state.view import json_problem
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.errors import SnapshotError

MAGIC = b"\x89PSNAP\r\n"
FORMAT_VERSION = 1
SUFFIX = ".psnap"
HEADER = struct.Struct(">8sHH16sQQIQ")
DIGEST_SIZE = 32
MAX_BODY = 16 << 30
"""The largest uncompressed body a reader accepts (16 GiB): a bound on what a hostile
file can make a reader allocate."""
NO_PEER = 0xFFFFFFFF
"""The peer reference of a register no entry wrote (a key only updates touched)."""

Base = tuple[str, str, int, int, bytes, bytes, int]
"""``(table, key, ts, deleted, value, origin bytes, index)``."""
Field = tuple[str, str, str, int, int, bytes, bytes, int]
"""``(table, key, field, ts, removed, value, origin bytes, index)``."""


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """A decoded snapshot: what `StateStore.load_snapshot` takes in."""

    producer: UUID
    created_ms: int
    hlc: int
    """The highest timestamp the producer's clock had seen."""
    frontier: PeerCursors
    """Every origin's next index: the snapshot covers every entry below it."""
    bases: list[Base]
    fields: list[Field]

    @property
    def covers(self) -> int:
        """How many entries the snapshot covers in all."""
        return sum(self.frontier.values())


def snapshot_name(data: bytes) -> str:
    """The content-addressed file name of encoded snapshot bytes."""
    return data[-DIGEST_SIZE:].hex() + SUFFIX


def encode_snapshot(producer: UUID, created_ms: int, hlc: int, frontier: PeerCursors,
                    bases: Sequence[Base], fields: Sequence[Field]) -> bytes:
    """The bytes of a snapshot (deterministic for equal inputs)."""
    peers: dict[bytes, int] = {}

    def ref(raw: bytes) -> int:
        if not raw:
            return NO_PEER
        return peers.setdefault(raw, len(peers))

    base_refs = [ref(b[5]) for b in bases]
    field_refs = [ref(f[6]) for f in fields]
    parts = [struct.pack(">II", len(peers), len(bases)), *peers]
    parts += _columns([(b[2], b[3], b[6], r) for b, r in zip(bases, base_refs, strict=True)],
                      [(b[0].encode(), b[1].encode(), b"", b[4]) for b in bases])
    parts.append(struct.pack(">I", len(fields)))
    parts += _columns([(f[3], f[4], f[7], r) for f, r in zip(fields, field_refs, strict=True)],
                      [(f[0].encode(), f[1].encode(), f[2].encode(), f[5]) for f in fields])
    body = b"".join(parts)
    head = HEADER.pack(MAGIC, FORMAT_VERSION, 0, producer.bytes, created_ms, hlc,
                       len(frontier), len(body))
    ordered = sorted(frontier.items(), key=lambda item: item[0].bytes)
    front = b"".join(p.bytes + struct.pack(">Q", i) for p, i in ordered)
    data = head + front + zlib.compress(body, 1)
    return data + hashlib.sha256(data).digest()


def _columns(fixed: list[tuple[int, int, int, int]],
             names: list[tuple[bytes, bytes, bytes, bytes]]) -> list[bytes]:
    """Rows as columns: ts q, deleted B, index q, peer I, then the four lengths, then
    the bytes, so a reader unpacks each column with one `struct.unpack`."""
    n = len(fixed)
    out = [struct.pack(f">{n}q", *(r[0] for r in fixed)),
           bytes(r[1] for r in fixed),
           struct.pack(f">{n}q", *(r[2] for r in fixed)),
           struct.pack(f">{n}I", *(r[3] for r in fixed))]
    for column in range(4):
        out.append(struct.pack(f">{n}I", *(len(r[column]) for r in names)))
    out.append(b"".join(b"".join(r) for r in names))
    return out


def read_header(data: bytes) -> tuple[UUID, int, PeerCursors]:
    """``(producer, created_ms, frontier)`` from a snapshot's first bytes, unverified: for
    choosing among snapshots before reading one whole.  `SnapshotError` when they do not
    parse."""
    if len(data) < HEADER.size:
        raise SnapshotError(f"snapshot has {len(data)} bytes, shorter than its header")
    magic, version, _flags, producer, created, _hlc, origins, _ = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError("not a peerlog snapshot (the magic bytes differ)")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format version {version}; this peerlog reads version "
                            f"{FORMAT_VERSION}" + (": upgrade peerlog"
                                                   if version > FORMAT_VERSION else ""))
    end = HEADER.size + 24 * origins
    if len(data) < end:
        raise SnapshotError("snapshot is truncated inside its frontier")
    frontier = PeerCursors()
    previous = b""
    for at in range(HEADER.size, end, 24):
        raw = data[at:at + 16]
        if raw <= previous:
            raise SnapshotError("snapshot frontier is not in ascending origin order")
        previous = raw
        (index,) = struct.unpack_from(">Q", data, at + 16)
        if index >= 1 << 63:
            raise SnapshotError("snapshot frontier holds an index out of range")
        if index:
            frontier[UUID(bytes=raw)] = index
    return UUID(bytes=producer), created, frontier


def decode_snapshot(data: bytes, *, expect_name: str | None = None) -> StateSnapshot:
    """Verify and decode snapshot bytes; `SnapshotError` says what is wrong.

    The digest is checked before anything else is trusted, then every length
    and reference is bounded, and every live value must be JSON, as an entry's
    must; with ``expect_name`` the bytes must also be the ones that name
    addresses.
    """
    if len(data) < HEADER.size + DIGEST_SIZE:
        raise SnapshotError(f"snapshot has {len(data)} bytes: truncated")
    digest = hashlib.sha256(memoryview(data)[:-DIGEST_SIZE]).digest()
    if digest != data[-DIGEST_SIZE:]:
        raise SnapshotError("snapshot digest does not match its contents: damaged or "
                            "truncated (a copy still arriving?)")
    if expect_name is not None and snapshot_name(data) != expect_name:
        raise SnapshotError(f"snapshot is named {expect_name} but its digest says "
                            f"{snapshot_name(data)}")
    producer, created, frontier = read_header(data)
    _, _, _, _, _, hlc, origins, body_len = HEADER.unpack_from(data)
    if body_len > MAX_BODY:
        raise SnapshotError(f"snapshot body of {body_len} bytes is over the bound")
    try:
        inflate = zlib.decompressobj()
        body = inflate.decompress(
            memoryview(data)[HEADER.size + 24 * origins:-DIGEST_SIZE], body_len)
        if len(body) != body_len or inflate.unconsumed_tail or not inflate.eof:
            raise SnapshotError("snapshot body length differs from its header")
        return StateSnapshot(producer, created, hlc, frontier, *_decode_body(body))
    except (zlib.error, struct.error, IndexError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"snapshot body does not decode: {exc}") from exc


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.body):
            raise SnapshotError("snapshot body ends early")
        out = self.body[self.at:self.at + size]
        self.at += size
        return out

    def ints(self, fmt: str, n: int) -> tuple[int, ...]:
        return struct.unpack(f">{n}{fmt}", self.take(struct.calcsize(f">{n}{fmt}")))


def _decode_body(body: bytes) -> tuple[list[Base], list[Field]]:
    r = _Reader(body)
    n_peers, n_bases = r.ints("I", 2)
    peers = [r.take(16) for _ in range(n_peers)]
    bases: list[Base] = [
        (t, k, ts, d, v, p, i)
        for (t, k, _, v), (ts, d, i, p) in _rows(r, n_bases, peers, field_names=False)]
    (n_fields,) = r.ints("I", 1)
    fields: list[Field] = [
        (t, k, f, ts, d, v, p, i)
        for (t, k, f, v), (ts, d, i, p) in _rows(r, n_fields, peers, field_names=True)]
    if r.at != len(body):
        raise SnapshotError("snapshot body has bytes after its last row")
    return bases, fields


def _rows(r: _Reader, n: int, peers: list[bytes], *, field_names: bool
          ) -> list[tuple[tuple[str, str, str, bytes], tuple[int, int, int, bytes]]]:
    stamps = r.ints("q", n)
    flags = r.take(n)
    indexes = r.ints("q", n)
    refs = r.ints("I", n)
    lengths = [r.ints("I", n) for _ in range(4)]
    blob = r.take(sum(map(sum, lengths)))
    out = []
    at = 0
    for row in range(n):
        t_len, k_len, f_len, v_len = (lengths[c][row] for c in range(4))
        if t_len == 0 or t_len > MAX_NAME or k_len > MAX_NAME or f_len > MAX_NAME \
                or (f_len == 0) == field_names:
            raise SnapshotError("snapshot holds a table, key or field name out of bounds")
        table = blob[at:at + t_len].decode()
        key = blob[at + t_len:at + t_len + k_len].decode()
        name = blob[at + t_len + k_len:at + t_len + k_len + f_len].decode()
        at += t_len + k_len + f_len
        value = blob[at:at + v_len]
        at += v_len
        deleted, ref = flags[row], refs[row]
        if deleted > 1 or (ref != NO_PEER and ref >= len(peers)):
            raise SnapshotError("snapshot holds a register with a bad flag or origin")
        if not deleted and (why := json_problem(value)):
            raise SnapshotError(f"snapshot holds a value that is not JSON ({why})")
        out.append(((table, key, name, value),
                    (stamps[row], deleted, indexes[row], b"" if ref == NO_PEER else peers[ref])))
    return out


__all__ = ["SUFFIX", "StateSnapshot", "decode_snapshot", "encode_snapshot", "read_header",
           "snapshot_name"]
