"""Who may write what on a relay: device tokens and relay tokens.

A *device token* may write only its own origin, and the origins that device
continued as (a restored or copied device takes a new origin: at most
`MAX_CONTINUED` per token, each one unknown to the relay when claimed); a
*relay token* may write any origin (a relay pulling from another relay).
Any valid token may read.  Only SHA-256 hashes of tokens are stored, in a
JSON file::

    {"tokens": {"<sha256 hex>": {"origin": "<uuid>" | null, "name": "laptop",
                                 "continued": ["<uuid>", ...]}}}

(``continued`` is new in 0.2 and absent when empty.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from peerlog.sync.errors import CodecError

log = logging.getLogger(__name__)


TOKEN_PREFIX = "plt_"
"""What every token issued since 0.2 starts with (older tokens stay valid)."""

MAX_CONTINUED = 16
"""New origins one device token may claim (`TokenStore.continue_as`)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token allows: ``origin`` None means a relay token (any origin)."""

    origin: UUID | None
    name: str
    continued: tuple[UUID, ...] = ()
    """Origins the device continued as, which it may write too."""

    def may_write(self, peer: UUID) -> bool:
        return self.origin is None or self.origin == peer or peer in self.continued

    def owns(self, peer: UUID) -> bool:
        """Whether ``peer`` is this device token's own origin or one it continued as."""
        return self.origin is not None and (self.origin == peer or peer in self.continued)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Token hashes and their grants, kept in a JSON file (or in memory).

    A store loaded from a file notices when the file changes (checked at most
    once per ``recheck`` seconds) and re-reads it, so tokens issued or
    revoked by `peerlog token` take effect without restarting the relay.  A
    file that cannot be parsed on a re-read leaves the grants as they were
    and is logged.
    """

    def __init__(self, grants: dict[str, Grant] | None = None,
                 path: Path | None = None, *, recheck: float = 1.0) -> None:
        self._grants = dict(grants or {})
        self._path = path
        self._recheck = recheck
        self._checked_at = time.monotonic()
        self._stamp = _stamp(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TokenStore:
        file = Path(path)
        return cls(_read(file) if file.exists() else {}, file)

    @property
    def path(self) -> Path | None:
        return self._path

    def __len__(self) -> int:
        self._refresh()
        return len(self._grants)

    def _refresh(self) -> None:
        if self._path is None or time.monotonic() - self._checked_at < self._recheck:
            return
        self._checked_at = time.monotonic()
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        try:
            self._grants = _read(self._path) if stamp is not None else {}
        except CodecError as exc:
            log.error("keeping the previous tokens: %s", exc)
            return
        self._stamp = stamp
        log.info("tokens re-read from %s: %d token(s)", self._path, len(self._grants))

    def check(self, token: str | None) -> Grant | None:
        """The grant of ``token``, or None when it is missing or unknown."""
        if not token:
            return None
        self._refresh()
        return self._grants.get(_hash(token))

    def issue(self, origin: UUID | None, name: str = "") -> str:
        """Create a token (a device's when ``origin`` is given, else a relay's); saved."""
        # The prefix keeps a token from starting with "-", which a command line would
        # take for an option (`--token -…`); it also makes a leaked token recognisable.
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._grants[_hash(token)] = Grant(origin, name)
        self._save()
        return token

    def continue_as(self, token: str, new: UUID) -> Grant:
        """Let a device token write ``new`` too (its device continued as a new origin).

        The caller checks that no one has written ``new`` yet.  Raises
        `ValueError` for a relay token, an origin another token owns, or more than
        `MAX_CONTINUED` continuations; saved to the file.
        """
        self._refresh()
        key = _hash(token)
        grant = self._grants[key]
        if grant.origin is None:
            raise ValueError("a relay token writes every origin already")
        if grant.may_write(new):
            return grant
        if any(g.owns(new) for g in self._grants.values()):
            raise ValueError(f"origin {new} belongs to another device's token")
        if len(grant.continued) >= MAX_CONTINUED:
            raise ValueError(f"this token has continued as {MAX_CONTINUED} origins already; "
                             "issue the device a new token")
        self._grants[key] = Grant(grant.origin, grant.name, (*grant.continued, new))
        self._save()
        return self._grants[key]

    def grants(self) -> list[Grant]:
        """Every grant, devices first (by origin), then relay tokens (by name)."""
        self._refresh()
        return sorted(self._grants.values(),
                      key=lambda g: (g.origin is None, str(g.origin), g.name))

    def revoke(self, origin: UUID) -> int:
        """Remove every token of device ``origin``; returns how many there were."""
        gone = [h for h, g in self._grants.items() if g.origin == origin]
        for h in gone:
            del self._grants[h]
        if gone:
            self._save()
        return len(gone)

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {"tokens": {h: {"origin": str(g.origin) if g.origin else None, "name": g.name,
                              **({"continued": [str(c) for c in g.continued]}
                                 if g.continued else {})}
                          for h, g in self._grants.items()}}
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent=2))
        tmp.replace(self._path)
        self._stamp = _stamp(self._path)


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns)


def _read(file: Path) -> dict[str, Grant]:
    try:
        doc = json.loads(file.read_text())
        return {h: Grant(UUID(g["origin"]) if g.get("origin") else None, str(g.get("name", "")),
                         tuple(UUID(c) for c in g.get("continued", ())))
                for h, g in doc["tokens"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CodecError(f"{file} is not a peerlog token file: {exc}") from exc
