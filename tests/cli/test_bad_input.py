"""The command line under bad input and damaged data: one line, the right exit, nothing lost.

Named for the items of the reliability issue: withheld entries are said
(7), values that are not JSON never break the state (10), device files are
private and never silently replaced (11), and every bad input is one line
on stderr with exit 2 (18).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from peerlog import DiskFullError, Entry, FileLog, StateStore
from peerlog.cli.main import _disk_full
from peerlog.state.ops import PUT
from tests.cli.conftest import Run
from tests.helpers import now_ts, peer

ROOT = Path(__file__).resolve().parents[2]




def one_line_error(err: str) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith("peerlog: error: ")
    assert "Traceback" not in err


def device(run: Run, path: Path) -> tuple[str, str]:
    run("--home", str(path), "init")
    return "--home", str(path)


# -- 7. withheld entries are said -------------------------------------------------------


def test_sync_and_status_say_which_entries_are_withheld(run: Run, tmp_path: Path,
                                                        shared: Path) -> None:
    a, b = device(run, tmp_path / "a"), device(run, tmp_path / "b")
    for n in range(3):
        run(*a, "put", "t", str(n), str(n))
        assert run(*a, "sync", "--folder", str(shared))[0] == 0
    [origin] = os.listdir(shared)
    [segment] = (shared / origin).glob("*.plog")
    data = bytearray(segment.read_bytes())
    data[-6] ^= 0xFF  # inside the last record: its checksum no longer matches
    segment.write_bytes(bytes(data))

    code, out, err = run(*b, "sync", "--folder", str(shared), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ingested"] == 2
    assert report["withheld"] == {origin: {"from_index": 2, "at_least": 1, "kind": "corrupt"}}
    code, _, err = run(*b, "sync", "--folder", str(shared))
    assert code == 1
    assert f"withheld: at least 1 entries of device {origin} from index 2" in err
    assert "peerlog doctor" in err

    code, out, _ = run(*b, "status", "--folder", str(shared), "--json")
    [row] = [r for r in json.loads(out)["origins"] if r["origin"] == origin]
    assert row["withheld"] == {"from_index": 2, "at_least": 1, "kind": "corrupt"}
    code, out, _ = run(*b, "status", "--folder", str(shared))
    assert "withheld" in out
    assert "peerlog doctor" in out


# -- 10. a value that is not JSON never breaks the state ---------------------------------


def raw_put(table: str, key: str, value: bytes) -> bytes:
    t, k = table.encode(), key.encode()
    return struct.pack(">BHH", PUT, len(t), len(k)) + t + k + value


@pytest.mark.parametrize("bad", [b"{not json", b"\xff\xfe", b"NaN", b"[" * 50_000, b"1e999"])
def test_a_value_that_is_not_json_is_kept_in_the_log_but_skipped_by_the_state(
        run: Run, tmp_path: Path, shared: Path, bad: bytes) -> None:
    a, b = device(run, tmp_path / "a"), device(run, tmp_path / "b")
    run(*a, "put", "todos", "1", '"call mum"')
    run(*a, "sync", "--folder", str(shared))
    hostile = FileLog(shared, peer(666))
    later = now_ts(1_000)  # above the first put, within the clock-skew bound
    hostile.append_many(0, [Entry(later, raw_put("todos", "1", bad)),
                            Entry(later + 1, raw_put("todos", "2", b'"fine"'))])

    code, _, err = run(*b, "sync", "--folder", str(shared))
    assert code == 0, err
    code, out, err = run(*b, "ls", "todos", "--json")
    assert (code, json.loads(out)) == (0, {"1": "call mum", "2": "fine"})
    code, out, _ = run(*b, "status", "--json")
    assert json.loads(out)["skipped_operations"] == 1
    code, out, _ = run(*b, "status")
    assert "1 operation(s) skipped" in out


async def test_changes_and_items_survive_a_value_that_is_not_json(tmp_path: Path) -> None:
    async with StateStore(tmp_path / "b.db") as b:
        await b.oplog.apply_many(peer(666), 0, [Entry(5, raw_put("t", "k", b"{oops"))])
        await b.put("t", "ok", 1)
        assert await b.items("t") == [("ok", 1)]
        assert await b.skipped_count() == 1
        assert len(await b.oplog.read_since(peer(666), 0)) == 1, "kept in the log"


# -- 11. device files are private, and an empty database is never a new device ------------


def test_an_empty_device_database_is_refused_never_replaced(run: Run, tmp_path: Path) -> None:
    a = device(run, tmp_path / "a")
    database = tmp_path / "a" / "device.sqlite"
    database.write_bytes(b"")
    for argv in (("put", "t", "k", "1"), ("ls", "t"), ("init",)):
        code, _, err = run(*a, *argv)
        assert code == 1
        one_line_error(err)
        assert "is empty (0 bytes)" in err
        assert "restore device.sqlite from a backup" in err
    assert database.stat().st_size == 0, "no new identity was minted in its place"


def test_device_home_database_and_segments_are_private(run: Run, tmp_path: Path,
                                                       shared: Path) -> None:
    a = device(run, tmp_path / "a")
    run(*a, "put", "t", "k", "1")
    run(*a, "sync", "--folder", str(shared))
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "device.sqlite").stat().st_mode) == 0o600
    [own] = shared.iterdir()
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    for segment in own.iterdir():
        assert stat.S_IMODE(segment.stat().st_mode) == 0o600


# -- 18. every bad input is one line and exit 2 --------------------------------------------


@pytest.mark.parametrize("value", ["1" * 5_000, "[" * 50_000 + "]" * 50_000, "NaN",
                                   "1e309", "-Infinity", "{", ""])
def test_a_bad_value_is_one_line_and_exit_2(run: Run, tmp_path: Path, value: str) -> None:
    a = device(run, tmp_path / "a")
    code, _, err = run(*a, "put", "t", "k", "--", value)
    assert code == 2
    one_line_error(err)
    assert run(*a, "ls", "t", "--json")[1].strip() == "{}"


def test_a_value_over_the_maximum_is_refused_with_exit_2(run: Run, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a = device(run, tmp_path / "a")
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps("x" * (5 << 20))))
    code, _, err = run(*a, "put", "t", "big", "-")
    assert code == 2
    one_line_error(err)
    assert "limited to 4194304 bytes" in err
    assert json.loads(run(*a, "status", "--json")[1])["origins"][0]["held"] == 0


def test_put_reads_the_value_from_stdin(run: Run, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    a = device(run, tmp_path / "a")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"title": "milk"}\n'))
    assert run(*a, "put", "t", "k", "-")[0] == 0
    assert json.loads(run(*a, "get", "t", "k")[1]) == {"title": "milk"}


def test_a_table_name_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    home = str(tmp_path / "a")
    subprocess.run([sys.executable, "-m", "peerlog.cli", "--home", home, "init"], check=True,
                   capture_output=True, cwd=ROOT)
    for argv in ([b"put", b"t\xff", b"k", b"1"], [b"get", b"t", b"k\xfe"], [b"ls", b"\xff"]):
        done = subprocess.run([os.fsencode(sys.executable), b"-m", b"peerlog.cli", b"--home",
                               os.fsencode(home), *argv], capture_output=True, cwd=ROOT)
        assert done.returncode == 2, done.stderr
        err = done.stderr.decode(errors="replace")
        one_line_error(err)
        assert "not valid UTF-8" in err


def test_a_usage_error_is_one_line_and_exit_2(run: Run) -> None:
    code, _, err = run("put", "only-a-table")
    assert code == 2
    one_line_error(err)


def test_names_with_terminal_escapes_are_shown_escaped(run: Run, tmp_path: Path) -> None:
    home = tmp_path / "a"
    run("--home", str(home), "init")

    async def remote_write() -> None:
        async with StateStore(home / "device.sqlite") as store:
            await store.put("t", "\x1b]0;pwned\x07\x1b[31mred", "[bold]not markup[/bold]\x9b")

    asyncio.run(remote_write())
    code, out, _ = run("--home", str(home), "ls", "t")
    assert code == 0
    assert "\x1b" not in out
    assert "\x9b" not in out
    assert "\\x1b]0;pwned\\x07" in out
    assert "[bold]not markup[/bold]" in out


async def test_a_full_disk_says_disk_is_full(tmp_path: Path) -> None:
    async with StateStore(tmp_path / "a.db") as store:
        await store.put("t", "k", "first")
        pages = await store.oplog.run_query(
            lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store.oplog.run_query(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
        with pytest.raises(DiskFullError, match="disk is full") as info:
            await store.put("t", "big", "x" * 200_000)
        assert _disk_full(info.value)
        assert "cannot rollback" not in str(info.value)
        assert await store.get("t", "k") == "first"
    assert _disk_full(OSError(28, "No space left on device"))
    assert not _disk_full(OSError(2, "No such file"))


