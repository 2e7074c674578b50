"""Fixtures of the driver tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.drivers.places import PLACES, BucketPlace, FolderPlace


@pytest.fixture(params=sorted(PLACES))
def place(request: pytest.FixtureRequest, tmp_path: Path) -> FolderPlace | BucketPlace:
    """A shared folder, then a bucket: a test taking it runs once through each."""
    return PLACES[request.param](tmp_path / "place")
