"""Who may write what on a relay: device tokens and relay tokens.

A *device token* may write only its own origin; a *relay token* may write any
origin (a relay pulling from another relay).  Any valid token may read.
Only SHA-256 hashes of tokens are stored, in a JSON file::

    {"tokens": {"<sha256 hex>": {"origin": "<uuid>" | null, "name": "laptop"}}}
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from peerlog.sync.errors import CodecError


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token allows: ``origin`` None means a relay token (any origin)."""

    origin: UUID | None
    name: str

    def may_write(self, peer: UUID) -> bool:
        return self.origin is None or self.origin == peer


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Token hashes and their grants, kept in a JSON file (or in memory)."""

    def __init__(self, grants: dict[str, Grant] | None = None,
                 path: Path | None = None) -> None:
        self._grants = dict(grants or {})
        self._path = path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TokenStore:
        file = Path(path)
        if not file.exists():
            return cls(path=file)
        try:
            doc = json.loads(file.read_text())
            grants = {h: Grant(UUID(g["origin"]) if g.get("origin") else None,
                               str(g.get("name", "")))
                      for h, g in doc["tokens"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CodecError(f"{file} is not a peerlog token file: {exc}") from exc
        return cls(grants, file)

    def check(self, token: str | None) -> Grant | None:
        """The grant of ``token``, or None when it is missing or unknown."""
        if not token:
            return None
        return self._grants.get(_hash(token))

    def issue(self, origin: UUID | None, name: str = "") -> str:
        """Create a token (a device's when ``origin`` is given, else a relay's); saved."""
        token = secrets.token_urlsafe(32)
        self._grants[_hash(token)] = Grant(origin, name)
        self._save()
        return token

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {"tokens": {h: {"origin": str(g.origin) if g.origin else None, "name": g.name}
                          for h, g in self._grants.items()}}
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self._path)
