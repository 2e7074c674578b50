"""`peerlog compact` and what `sync` and `doctor` say about snapshots, end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli.conftest import Run
from tests.cli.test_stories import device, get
from tests.helpers import files_holding


def test_a_deleted_password_is_gone_from_every_file_after_compact_everywhere(
        run: Run, tmp_path: Path, shared: Path) -> None:
    laptop, phone = device(run, tmp_path / "laptop"), device(run, tmp_path / "phone")
    run(*laptop, "put", "accounts", "bank", '{"password": "hunter2-tr0ub4dor"}')
    run(*laptop, "put", "todos", "1", '"milk"')
    for home in (laptop, phone):
        assert run(*home, "sync", "--folder", str(shared))[0] == 0
    assert run(*phone, "delete", "accounts", "bank")[0] == 0
    for home in (phone, laptop):
        assert run(*home, "sync")[0] == 0
    assert files_holding(tmp_path, b"hunter2-tr0ub4dor") != []  # still in the logs
    for home in (laptop, phone, laptop):
        code, out, err = run(*home, "compact", "--json")
        assert code == 0, err
        assert json.loads(out)["snapshot"].endswith(".psnap")
    assert files_holding(tmp_path, b"hunter2-tr0ub4dor") == []
    for home in (laptop, phone):
        assert get(run, home, "todos", "1") == "milk"


def test_a_new_device_after_compaction_starts_from_the_snapshot(
        run: Run, tmp_path: Path, shared: Path) -> None:
    laptop = device(run, tmp_path / "laptop")
    run(*laptop, "put", "todos", "1", '"milk"')
    run(*laptop, "sync", "--folder", str(shared))
    assert run(*laptop, "compact")[0] == 0
    tablet = device(run, tmp_path / "tablet")
    code, out, err = run(*tablet, "sync", "--folder", str(shared))
    assert code == 0, err
    assert "started from snapshot" in out
    assert get(run, tablet, "todos", "1") == "milk"


def test_compact_needs_a_shared_folder(run: Run, tmp_path: Path) -> None:
    home = device(run, tmp_path / "alone")
    code, _, err = run(*home, "compact")
    assert code == 2
    assert "--folder" in err


def test_doctor_tells_a_retired_device_from_one_whose_entries_went_with_its_folder(
        run: Run, tmp_path: Path, shared: Path) -> None:
    laptop, old = device(run, tmp_path / "laptop"), device(run, tmp_path / "old")
    run(*old, "put", "notes", "1", '"from the old phone"')
    for home in (old, laptop):
        run(*home, "sync", "--folder", str(shared))
    origin = json.loads(run(*old, "status", "--json")[1])["peer_id"]
    shutil.move(shared / origin, tmp_path / "moved-away")
    code, out, _ = run("doctor", "--folder", str(shared))
    assert code == 1
    assert "device folder gone" in out
    shutil.move(tmp_path / "moved-away", shared / origin)
    assert run(*laptop, "compact")[0] == 0  # the snapshot now holds the old phone's notes
    shutil.rmtree(shared / origin)
    code, out, _ = run("doctor", "--folder", str(shared), "--json")
    assert code == 0
    assert json.loads(out)["missing_devices"] == [
        {"origin": origin, "held": 1, "covered": 1, "lost": False}]
    tablet = device(run, tmp_path / "tablet")
    run(*tablet, "sync", "--folder", str(shared))
    assert get(run, tablet, "notes", "1") == "from the old phone"


def test_doctor_lists_a_damaged_snapshot_as_ignored_and_sync_carries_on(
        run: Run, tmp_path: Path, shared: Path) -> None:
    laptop = device(run, tmp_path / "laptop")
    run(*laptop, "put", "todos", "1", '"milk"')
    run(*laptop, "sync", "--folder", str(shared))
    run(*laptop, "compact")
    [snap] = (shared / "snapshots").iterdir()
    snap.write_bytes(snap.read_bytes()[:40])
    (shared / "snapshots" / "notes.txt").write_text("not a snapshot")
    code, out, _ = run("doctor", "--folder", str(shared), "--json")
    reasons = {Path(i["path"]).name: i["reason"] for i in json.loads(out)["ignored"]}
    assert "digest" in reasons[snap.name]
    assert "notes.txt" in reasons
    tablet = device(run, tmp_path / "tablet")
    code, _, err = run(*tablet, "sync", "--folder", str(shared))
    assert code == 1  # the laptop's compacted entries are in no valid snapshot
    assert "compacted away" in err
