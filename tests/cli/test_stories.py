"""The three user stories of the merge-semantics issue, end to end through `peerlog`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from peerlog import Entry, FileLog
from peerlog.state.ops import encode_put
from tests.cli.conftest import Run
from tests.helpers import peer


def device(run: Run, path: Path) -> tuple[str, str]:
    run("--home", str(path), "init")
    return "--home", str(path)


def get(run: Run, home: tuple[str, str], table: str, key: str) -> object:
    code, out, err = run(*home, "get", table, key)
    assert code == 0, err
    return json.loads(out)


def test_a_concurrent_field_edit_is_kept_and_the_loser_is_shown(run: Run, tmp_path: Path,
                                                                shared: Path) -> None:
    laptop, phone = device(run, tmp_path / "laptop"), device(run, tmp_path / "phone")
    run(*laptop, "put", "todos", "10", '{"title": "call mum", "done": false}')
    for home in (laptop, phone):
        run(*home, "sync", "--folder", str(shared))
    # Both offline: the laptop rewrites the title, the phone marks it done.
    run(*laptop, "put", "todos", "10", '{"title": "call mum about Sunday", "done": false}')
    assert run(*phone, "update", "todos", "10", '{"done": true}')[0] == 0
    for home in (laptop, phone, laptop):
        assert run(*home, "sync")[0] == 0
    for home in (laptop, phone):
        assert get(run, home, "todos", "10") == {"done": True,
                                                 "title": "call mum about Sunday"}
    code, out, _ = run(*phone, "history", "todos", "10", "--json")
    ops = json.loads(out)["operations"]
    assert [(o["kind"], o["outcome"]) for o in ops] == [
        ("put", "overwritten"), ("put", "wins"), ("update", "wins")]
    code, out, _ = run(*laptop, "history", "todos", "10")
    assert code == 0
    assert "call mum about Sunday" in out
    assert "done: true" in out


def test_update_removes_fields_and_refuses_what_is_not_an_object(run: Run,
                                                                 tmp_path: Path) -> None:
    a = device(run, tmp_path / "a")
    run(*a, "put", "t", "k", '{"a": 1, "b": 2}')
    assert run(*a, "update", "t", "k", "--remove", "b")[0] == 0
    assert get(run, a, "t", "k") == {"a": 1}
    code, _, err = run(*a, "update", "t", "k", "[1, 2]")
    assert code == 2
    assert "JSON object" in err
    code, _, err = run(*a, "update", "t", "k")
    assert code == 2
    assert "--remove" in err


def test_a_timestamp_at_the_end_of_time_no_longer_pins_a_key(run: Run, tmp_path: Path,
                                                            shared: Path) -> None:
    a = device(run, tmp_path / "a")
    run(*a, "put", "todos", "1", '"mine"')
    run(*a, "sync", "--folder", str(shared))
    forger = FileLog(shared, peer(666))  # anyone who can write the folder
    forger.append_many(0, [Entry(2**63 - 1, encode_put("todos", "1", "pinned forever"))])
    code, _, err = run(*a, "sync")
    assert code == 0
    assert "clock is" in err
    assert "ahead" in err
    run(*a, "put", "todos", "1", '"a later write"')
    assert get(run, a, "todos", "1") == "a later write"
    run(*a, "delete", "todos", "1")
    assert run(*a, "get", "todos", "1")[0] == 1
    code, out, _ = run(*a, "status", "--json")
    assert str(peer(666)) in json.loads(out)["clock_ahead"]
    code, out, _ = run("doctor", "--folder", str(shared))
    assert code == 1
    assert "clock ahead" in out
    code, out, _ = run("doctor", "--folder", str(shared), "--json")
    ahead = {o["origin"]: o["clock_ahead_ms"] for o in json.loads(out)["origins"]}
    assert ahead[str(peer(666))] > 0
    assert ahead[json.loads(run(*a, "status", "--json")[1])
                                                  ["peer_id"]] == 0


def test_a_device_restored_from_a_backup_continues_and_loses_nothing(
        run: Run, tmp_path: Path, shared: Path) -> None:
    laptop, other = device(run, tmp_path / "laptop"), device(run, tmp_path / "other")
    run(*laptop, "put", "notes", "1", '"before the backup"')
    run(*laptop, "sync", "--folder", str(shared))
    shutil.copytree(tmp_path / "laptop", tmp_path / "backup")
    run(*laptop, "put", "notes", "2", '"after the backup"')
    run(*laptop, "sync")
    shutil.rmtree(tmp_path / "laptop")  # the disk died
    shutil.copytree(tmp_path / "backup", tmp_path / "laptop")
    run(*laptop, "put", "notes", "3", '"after the restore"')
    code, _, err = run(*laptop, "sync")
    assert code == 0, err
    assert "restored from a backup or copied; it continues as device" in err
    assert "1 unpublished change carried over" in err
    run(*other, "sync", "--folder", str(shared))
    code, out, _ = run(*other, "ls", "notes", "--json")
    assert json.loads(out) == {"1": "before the backup", "2": "after the backup",
                               "3": "after the restore"}
    assert run(*laptop, "sync")[0] == 0
    code, out, _ = run(*laptop, "ls", "notes", "--json")
    assert len(json.loads(out)) == 3
