"""`peerlog init --encrypted / --join / --passphrase`, `invite`, `devices remove`, `encrypt`:
the key management a user does, and the one-line errors when keys do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.helpers import files_holding


def home(tmp_path: Path, name: str) -> str:
    return str(tmp_path / name)


def invite(run: Run, tmp_path: Path, name: str, *extra: str) -> dict[str, str]:
    code, out, err = run("--home", home(tmp_path, name), "invite", "--json", *extra)
    assert code == 0, err
    doc: dict[str, str] = json.loads(out)
    return doc


def two_members(run: Run, tmp_path: Path, folder: Path) -> None:
    assert run("--home", home(tmp_path, "a"), "init", "--encrypted")[0] == 0
    code = invite(run, tmp_path, "a")["code"]
    assert run("--home", home(tmp_path, "a"), "sync", "--folder", str(folder))[0] == 0
    assert run("--home", home(tmp_path, "b"), "init", "--join", code)[0] == 0
    assert run("--home", home(tmp_path, "b"), "sync", "--folder", str(folder))[0] == 0


def test_an_invited_device_joins_and_both_converge_unseen_by_the_folder(
        run: Run, tmp_path: Path, folder: Path) -> None:
    two_members(run, tmp_path, folder)
    assert run("--home", home(tmp_path, "a"), "put", "todos", "milk",
               '{"title": "cli-secret-marker"}')[0] == 0
    for name in ("a", "b"):
        assert run("--home", home(tmp_path, name), "sync")[0] == 0
    _code, out, _ = run("--home", home(tmp_path, "b"), "get", "todos", "milk")
    assert json.loads(out) == {"title": "cli-secret-marker"}
    assert files_holding(folder, b"cli-secret-marker") == []
    assert files_holding(folder, b"todos") == []


def test_the_keyring_is_private_to_the_user(run: Run, tmp_path: Path) -> None:
    assert run("--home", home(tmp_path, "a"), "init", "--encrypted")[0] == 0
    assert (tmp_path / "a" / "group.json").stat().st_mode & 0o777 == 0o600


def test_a_code_admits_one_device_only(run: Run, tmp_path: Path, folder: Path) -> None:
    assert run("--home", home(tmp_path, "a"), "init", "--encrypted")[0] == 0
    assert run("--home", home(tmp_path, "a"), "sync", "--folder", str(folder))[0] == 0
    code = invite(run, tmp_path, "a")["code"]
    assert run("--home", home(tmp_path, "a"), "sync")[0] == 0
    assert run("--home", home(tmp_path, "b"), "init", "--join", code)[0] == 0
    assert run("--home", home(tmp_path, "b"), "put", "t", "k", "1")[0] == 0
    assert run("--home", home(tmp_path, "b"), "sync", "--folder", str(folder))[0] == 0
    assert run("--home", home(tmp_path, "c"), "init", "--join", code)[0] == 0
    status, _, err = run("--home", home(tmp_path, "c"), "sync", "--folder", str(folder))
    assert status == 1
    assert "its invite code was used by another device" in err
    assert run("--home", home(tmp_path, "a"), "sync")[0] == 0
    assert run("--home", home(tmp_path, "a"), "get", "t", "k")[1].strip() == "1"


def test_an_expired_code_admits_no_one(run: Run, tmp_path: Path) -> None:
    assert run("--home", home(tmp_path, "a"), "init", "--encrypted")[0] == 0
    code = invite(run, tmp_path, "a", "--expires-hours", "-1")["code"]
    status, _, err = run("--home", home(tmp_path, "b"), "init", "--join", code)
    assert status == 1
    assert "the invite code expired" in err
    assert not (tmp_path / "b" / "device.sqlite").exists()


def test_a_damaged_code_is_refused_in_one_line(run: Run, tmp_path: Path) -> None:
    status, _, err = run("--home", home(tmp_path, "b"), "init", "--join",
                         "peerlog-invite-1:AAAA")
    assert status == 1
    assert "the invite code is damaged" in err
    assert err.count("\n") == 1


def test_a_device_of_another_group_is_told_which_group_the_folder_belongs_to(
        run: Run, tmp_path: Path, folder: Path) -> None:
    two_members(run, tmp_path, folder)
    ring = json.loads((tmp_path / "a" / "group.json").read_text())
    assert run("--home", home(tmp_path, "x"), "init", "--encrypted")[0] == 0
    status, _, err = run("--home", home(tmp_path, "x"), "sync", "--folder", str(folder))
    assert status == 1
    assert f"belongs to group {ring['group']}" in err
    assert "peerlog invite" in err
    assert err.count("\n") == 1


def test_a_device_without_keys_is_told_to_join(run: Run, tmp_path: Path,
                                               folder: Path) -> None:
    two_members(run, tmp_path, folder)
    assert run("--home", home(tmp_path, "plain"), "init")[0] == 0
    status, _, err = run("--home", home(tmp_path, "plain"), "sync", "--folder", str(folder))
    assert status == 1
    assert "this device has no key for it" in err
    (tmp_path / "b" / "group.json").unlink()  # a keyring lost
    status, _, err = run("--home", home(tmp_path, "b"), "sync")
    assert status == 1
    assert "this device has no key for it" in err


def test_a_passphrase_group_forms_in_a_folder_and_refuses_a_wrong_passphrase(
        run: Run, tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERLOG_PASSPHRASE", "correct horse battery staple")
    assert run("--home", home(tmp_path, "a"), "init", "--passphrase", "--folder",
               str(folder))[0] == 0
    assert run("--home", home(tmp_path, "a"), "put", "t", "k", '"pass-marker"')[0] == 0
    assert run("--home", home(tmp_path, "a"), "sync")[0] == 0
    doc = json.loads((folder / "peerlog-group.json").read_text())
    assert set(doc["kdf"]) == {"name", "salt", "n", "r", "p", "check"}
    assert doc["kdf"]["n"] >= 1 << 17
    monkeypatch.setenv("PEERLOG_PASSPHRASE", "wrong horse battery staple")
    status, _, err = run("--home", home(tmp_path, "b"), "init", "--passphrase", "--folder",
                         str(folder))
    assert status == 1
    assert "wrong passphrase for group" in err
    monkeypatch.setenv("PEERLOG_PASSPHRASE", "correct horse battery staple")
    assert run("--home", home(tmp_path, "b"), "init", "--passphrase", "--folder",
               str(folder))[0] == 0
    assert run("--home", home(tmp_path, "b"), "sync")[0] == 0
    assert run("--home", home(tmp_path, "b"), "get", "t", "k")[1].strip() == '"pass-marker"'
    assert files_holding(folder, b"pass-marker") == []


def test_removing_a_device_from_the_command_line(run: Run, tmp_path: Path,
                                                 folder: Path) -> None:
    two_members(run, tmp_path, folder)
    b = json.loads((tmp_path / "b" / "group.json").read_text())["origin"]
    status, out, err = run("--home", home(tmp_path, "a"), "devices", "remove", b)
    assert status == 0, err
    assert "new changes are sealed with key epoch 1" in " ".join(out.split())
    assert run("--home", home(tmp_path, "a"), "put", "t", "after", '"after-marker"')[0] == 0
    assert run("--home", home(tmp_path, "a"), "sync")[0] == 0
    run("--home", home(tmp_path, "b"), "sync")
    assert run("--home", home(tmp_path, "b"), "get", "t", "after")[0] != 0


def test_encrypt_moves_a_plain_group_on_and_keeps_what_was_written(
        run: Run, tmp_path: Path, folder: Path) -> None:
    for name in ("a", "b"):
        assert run("--home", home(tmp_path, name), "init")[0] == 0
        assert run("--home", home(tmp_path, name), "put", "t", name, '"before"')[0] == 0
        assert run("--home", home(tmp_path, name), "sync", "--folder", str(folder))[0] == 0
    status, out, err = run("--home", home(tmp_path, "a"), "encrypt", "--json")
    assert status == 0, err
    assert len(json.loads(out)["encrypted_from"]) == 2
    b_id = run("--home", home(tmp_path, "b"), "init", "--json")[1]
    b_origin = json.loads(b_id)["peer_id"]
    status, _, err = run("--home", home(tmp_path, "b"), "sync")
    assert status == 1
    assert "this device has no key for it" in err
    code = invite(run, tmp_path, "a", "--device", b_origin)["code"]
    assert run("--home", home(tmp_path, "a"), "put", "t", "a2", '"sealed-marker"')[0] == 0
    assert run("--home", home(tmp_path, "a"), "sync")[0] == 0
    assert run("--home", home(tmp_path, "b"), "put", "t", "b2", '"b-sealed-marker"')[0] == 0
    status, _, err = run("--home", home(tmp_path, "b"), "init", "--join", code)
    assert status == 0, err
    for name in ("b", "a", "b"):
        assert run("--home", home(tmp_path, name), "sync")[0] == 0
    for name in ("a", "b"):
        _, out, _ = run("--home", home(tmp_path, name), "export")
        values = {json.loads(line)["key"]: json.loads(line)["value"]
                  for line in out.splitlines()}
        assert values == {"a": "before", "b": "before", "a2": "sealed-marker",
                          "b2": "b-sealed-marker"}
    assert files_holding(folder, b"sealed-marker") == []
    assert files_holding(folder, b"before")  # what was written before stays as it was


def test_doctor_and_status_name_a_forged_entry(run: Run, tmp_path: Path, folder: Path) -> None:
    from uuid import UUID

    from tests.trust.test_attacks import forge_as_member

    two_members(run, tmp_path, folder)
    assert run("--home", home(tmp_path, "a"), "sync")[0] == 0
    status, out, _ = run("--home", home(tmp_path, "a"), "doctor", "--folder", str(folder),
                         "--json")
    assert status == 0, out
    b = UUID(json.loads((tmp_path / "b" / "group.json").read_text())["origin"])
    forge_as_member(folder, tmp_path / "a", b)
    status, out, _ = run("--home", home(tmp_path, "a"), "doctor", "--folder", str(folder),
                         "--json")
    assert status == 1
    [problem] = [p for p in json.loads(out)["problems"] if p["origin"] == str(b)]
    assert problem["kind"] == "forged"
    assert f"signature does not verify for device {b}" in problem["detail"]
    status, out, _ = run("--home", home(tmp_path, "a"), "status", "--folder", str(folder),
                         "--json")
    [row] = [r for r in json.loads(out)["origins"] if r["origin"] == str(b)]
    assert row["withheld"]["kind"] == "forged"
