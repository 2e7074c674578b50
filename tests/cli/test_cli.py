"""The `peerlog` command: each command, its JSON form and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import peerlog
from peerlog.cli.main import main
from tests.cli.conftest import Run


def test_init_creates_a_device_and_says_its_peer_id(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("--home", str(tmp_path / "a"), "init", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["created"] is True
    code, out, _ = run("--home", str(tmp_path / "a"), "init", "--json")
    assert json.loads(out) == {**doc, "created": False}


def test_home_defaults_to_peerlog_home(run: Run, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERLOG_HOME", str(tmp_path / "env-home"))
    assert run("init")[0] == 0
    assert (tmp_path / "env-home" / "device.sqlite").exists()


def test_put_get_ls_delete(run: Run, tmp_path: Path) -> None:
    home = ("--home", str(tmp_path / "a"))
    run(*home, "init")
    assert run(*home, "put", "todos", "1", '{"title": "milk"}')[0] == 0
    assert run(*home, "put", "todos", "2", '"eggs"')[0] == 0
    code, out, _ = run(*home, "get", "todos", "1")
    assert (code, json.loads(out)) == (0, {"title": "milk"})
    code, out, _ = run(*home, "ls", "todos", "--json")
    assert json.loads(out) == {"1": {"title": "milk"}, "2": "eggs"}
    assert run(*home, "delete", "todos", "1")[0] == 0
    assert json.loads(run(*home, "ls", "todos", "--json")[1]) == {"2": "eggs"}
    assert "eggs" in run(*home, "ls", "todos")[1]


def test_bad_json_is_a_one_line_error_with_exit_2(run: Run, tmp_path: Path) -> None:
    home = ("--home", str(tmp_path / "a"))
    run(*home, "init")
    code, out, err = run(*home, "put", "t", "k", "{not json")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "not valid JSON" in err


def test_get_of_a_missing_key_fails(run: Run, tmp_path: Path) -> None:
    run("--home", str(tmp_path / "a"), "init")
    code, _, err = run("--home", str(tmp_path / "a"), "get", "t", "nope")
    assert code == 1
    assert "no key 'nope'" in err


def test_commands_before_init_say_what_to_do(run: Run, tmp_path: Path) -> None:
    code, _, err = run("--home", str(tmp_path / "none"), "ls", "t")
    assert code == 1
    assert "peerlog --home" in err
    assert "init" in err


def test_a_corrupt_database_is_a_one_line_error(run: Run, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "device.sqlite").write_bytes(b"garbage" * 1000)
    code, _, err = run("--home", str(tmp_path / "a"), "ls", "t")
    assert code == 1
    assert err.startswith("peerlog: error:")
    assert err.count("\n") == 1


def test_two_devices_sync_through_a_folder(run: Run, tmp_path: Path, folder: Path) -> None:
    a, b = ("--home", str(tmp_path / "a")), ("--home", str(tmp_path / "b"))
    run(*a, "init")
    run(*b, "init")
    run(*a, "put", "t", "x", "1")
    run(*b, "put", "t", "y", "2")
    for home in (a, b, a):
        code, out, _ = run(*home, "sync", "--folder", str(folder), "--json")
        assert code == 0
        assert json.loads(out)["diverged"] == {}
    assert json.loads(run(*a, "ls", "t", "--json")[1]) == {"x": 1, "y": 2}
    assert json.loads(run(*b, "ls", "t", "--json")[1]) == {"x": 1, "y": 2}


def test_status_reports_held_in_folder_and_lag(run: Run, tmp_path: Path, folder: Path) -> None:
    a, b = ("--home", str(tmp_path / "a")), ("--home", str(tmp_path / "b"))
    run(*a, "init")
    run(*b, "init")
    for n in range(3):
        run(*a, "put", "t", f"k{n}", "1")
    run(*a, "sync", "--folder", str(folder))
    code, out, _ = run(*b, "status", "--folder", str(folder), "--json")
    assert code == 0
    [row] = [r for r in json.loads(out)["origins"] if not r["this_device"]]
    assert (row["held"], row["in_folder"], row["lag"]) == (0, 3, 3)
    assert "this device" in run(*b, "status", "--folder", str(folder))[1]


def test_sync_with_a_missing_folder_fails_clearly(run: Run, tmp_path: Path) -> None:
    run("--home", str(tmp_path / "a"), "init")
    code, _, err = run("--home", str(tmp_path / "a"), "sync", "--folder",
                       str(tmp_path / "missing"))
    assert code == 1
    assert "does not exist" in err


def test_sync_refuses_a_folder_that_is_not_a_peer_log_folder(run: Run, tmp_path: Path) -> None:
    run("--home", str(tmp_path / "a"), "init")
    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "thesis.docx").write_text("draft")
    code, _, err = run("--home", str(tmp_path / "a"), "sync", "--folder", str(documents))
    assert code == 1
    assert "not a peerlog shared folder" in err
    assert sorted(p.name for p in documents.iterdir()) == ["thesis.docx"]


def test_doctor_lists_problems_and_ignored_files(run: Run, tmp_path: Path,
                                                 folder: Path) -> None:
    run("--home", str(tmp_path / "a"), "init")
    run("--home", str(tmp_path / "a"), "put", "t", "k", "1")
    run("--home", str(tmp_path / "a"), "sync", "--folder", str(folder))
    code, out, _ = run("doctor", "--folder", str(folder), "--json")
    assert (code, json.loads(out)["healthy"]) == (0, True)
    [device] = [p for p in folder.iterdir() if p.is_dir()]
    (device / ".DS_Store").write_bytes(b"x")
    segment = next(device.glob("*.plog"))
    segment.write_bytes(segment.read_bytes()[:-3] + b"\xff\xff\xff")
    code, out, _ = run("doctor", "--folder", str(folder), "--json")
    report = json.loads(out)
    assert code == 1
    assert [p["kind"] for p in report["problems"]] == ["corrupt"]
    assert any(i["reason"] == "operating-system metadata" for i in report["ignored"])
    code, out, _ = run("doctor", "--folder", str(folder))
    assert code == 1
    assert "corrupt" in out


def test_the_demo_converges(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "peerlog.cli", "demo", "--devices", "3",
                           "--changes", "300", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "converged" in done.stdout


def test_the_demo_converges_as_an_encrypted_group_that_the_folder_cannot_read(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "peerlog.cli", "demo", "--devices", "3",
                           "--changes", "300", "--dir", str(tmp_path), "--encrypted"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "converged" in done.stdout
    assert "not found" in done.stdout
    assert (tmp_path / "device-1" / "group.json").exists()


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"peerlog {peerlog.__version__}"


def test_global_options_are_accepted_after_the_command(run: Run, tmp_path: Path) -> None:
    home = str(tmp_path / "a")
    assert run("init", "--home", home)[0] == 0
    assert run("put", "t", "k", "1", "--home", home)[0] == 0
    assert run("--home", home, "get", "t", "k", "-v")[1].strip() == "1"


def test_a_missing_extra_is_named_in_one_line(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['httpx'] = None\n"
            "from peerlog.cli.main import main\n"
            f"sys.exit(main(['--home', {str(tmp_path / 'a')!r}, 'init']) or "
            f"main(['--home', {str(tmp_path / 'a')!r}, 'sync', '--server', 'http://x', "
            "'--token', 't']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "pip install 'peerlog[relay]'" in done.stderr


def test_devices_lists_every_device_with_its_name(run: Run, tmp_path: Path,
                                                  folder: Path) -> None:
    a, b = ("--home", str(tmp_path / "a")), ("--home", str(tmp_path / "b"))
    for home, name in ((a, "laptop"), (b, "phone")):
        run(*home, "init")
        assert run(*home, "devices", "name", name)[0] == 0
        run(*home, "put", "t", name, "1")
        run(*home, "sync", "--folder", str(folder))
    run(*a, "sync")  # the folder is remembered
    code, out, _ = run(*a, "devices", "--json")
    devices = json.loads(out)["devices"]
    assert code == 0
    assert sorted(d["name"] for d in devices) == ["laptop", "phone"]
    assert [d["name"] for d in devices if d["this_device"]] == ["laptop"]
    assert all(d["entries"] == 2 and d["last_change"] for d in devices)
    code, out, _ = run(*a, "devices")
    assert "laptop" in out
    assert "phone" in out


def test_export_then_import_moves_every_value(run: Run, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = ("--home", str(tmp_path / "a")), ("--home", str(tmp_path / "b"))
    run(*a, "init")
    run(*a, "put", "todos", "1", '{"title": "milk"}')
    run(*a, "put", "notes", "n", '"ünïcode"')
    code, exported, _ = run(*a, "export")
    assert code == 0
    assert len(exported.splitlines()) == 2
    (tmp_path / "export.jsonl").write_text(exported)
    run(*b, "init")
    assert run(*b, "import", str(tmp_path / "export.jsonl"))[0] == 0
    assert run(*b, "export")[1] == exported
    assert run(*b, "export", "notes")[1] == exported.splitlines(keepends=True)[0]


def test_a_bad_import_line_imports_nothing(run: Run, tmp_path: Path) -> None:
    a = ("--home", str(tmp_path / "a"))
    run(*a, "init")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"table": "t", "key": "1", "value": 1}\n{"table": "t", "value": 2}\n')
    code, _, err = run(*a, "import", str(bad))
    assert code == 2
    assert "line 2" in err
    assert run(*a, "export")[1] == ""


def test_get_loads_neither_rich_nor_sync_nor_the_extras(tmp_path: Path) -> None:
    home = str(tmp_path / "a")
    code = ("import sys\n"
            "from peerlog.cli.main import main\n"
            f"main(['--home', {home!r}, 'init', '--json'])\n"
            f"main(['--home', {home!r}, 'put', 't', 'k', '1'])\n"
            "for name in list(sys.modules):\n"
            "    if name.startswith(('rich', 'peerlog.drivers', 'peerlog.filelog')):\n"
            "        del sys.modules[name]\n"
            f"main(['--home', {home!r}, 'get', 't', 'k'])\n"
            "heavy = ('rich', 'httpx', 'psycopg', 'starlette', 'uvicorn', 'watchfiles',\n"
            "         'peerlog.drivers', 'peerlog.filelog')\n"
            "print(sorted(n for n in sys.modules if n.startswith(heavy)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["1", "[]"]


def test_import_peerlog_loads_names_on_first_use() -> None:
    code = ("import sys, peerlog\n"
            "before = 'asyncio' in sys.modules or 'peerlog.device' in sys.modules\n"
            "peerlog.Device\n"
            "print(before, 'peerlog.device' in sys.modules, sorted(peerlog.__all__) == "
            "sorted(set(peerlog.__all__)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["False", "True", "True"]


def test_every_public_name_resolves() -> None:
    for name in peerlog.__all__:
        assert hasattr(peerlog, name), name
