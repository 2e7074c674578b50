"""Fixtures every test folder shares."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """An empty shared folder, as a sync tool would provide."""
    root = tmp_path / "shared"
    root.mkdir()
    return root
