"""Fixtures for the encrypted-group tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def folder(shared: Path) -> Path:
    """The group's shared folder (the suite's empty `shared` folder)."""
    return shared
