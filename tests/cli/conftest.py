"""The `peerlog` command run in-process, as a fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from peerlog.cli.main import main


class Run:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty shared folder."""
    path = tmp_path / "shared"
    path.mkdir()
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(capsys)
