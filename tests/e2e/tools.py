"""Real file-sync tools for the end-to-end tests: Syncthing, unison, rsync.

Each test skips only when its tool is not installed (`./dev test` installs
them with apt), and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed and could not be installed here "
                    f"(`./dev test` runs `apt-get install {tool}`)")
    return path




@dataclass
class Syncthing:
    home: Path
    folder: Path
    device_id: str
    listen_port: int
    gui_port: int
    api_key: str
    process: subprocess.Popen[bytes] | None = None

    def api(self, path: str) -> object:
        request = urllib.request.Request(f"http://127.0.0.1:{self.gui_port}{path}",
                                         headers={"X-API-Key": self.api_key})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())


def _generate(binary: str, home: Path) -> str:
    subprocess.run([binary, "generate", f"--home={home}", "--no-default-folder"],
                   check=True, capture_output=True)
    return subprocess.run([binary, "--device-id", f"--home={home}"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _configure(me: Syncthing, peer: Syncthing) -> None:
    """Loopback only: no discovery, relays, NAT, usage or crash reporting."""
    path = me.home / "config.xml"
    tree = ET.parse(path)
    root = tree.getroot()
    options = root.find("options")
    assert options is not None
    settings = {
        "listenAddress": f"tcp://127.0.0.1:{me.listen_port}",
        "globalAnnounceEnabled": "false", "localAnnounceEnabled": "false",
        "relaysEnabled": "false", "natEnabled": "false", "urAccepted": "-1",
        "autoUpgradeIntervalH": "0", "crashReportingEnabled": "false",
        "startBrowser": "false", "reconnectionIntervalS": "1",
    }
    for name, value in settings.items():
        element = options.find(name)
        if element is None:
            element = ET.SubElement(options, name)
        element.text = value
    for extra in options.findall("globalAnnounceServer"):
        extra.text = ""
    gui = root.find("gui")
    assert gui is not None
    address, key = gui.find("address"), gui.find("apikey")
    assert address is not None
    assert key is not None
    address.text = f"127.0.0.1:{me.gui_port}"
    me.api_key = key.text or ""
    other = ET.SubElement(root, "device", id=peer.device_id, name="peer",
                          compression="metadata", introducer="false")
    ET.SubElement(other, "address").text = f"tcp://127.0.0.1:{peer.listen_port}"
    folder = ET.Element("folder", id="peerlog", label="peerlog", path=str(me.folder),
                        type="sendreceive", rescanIntervalS="1", fsWatcherEnabled="true",
                        fsWatcherDelayS="1", ignorePerms="false", autoNormalize="true")
    ET.SubElement(folder, "filesystemType").text = "basic"
    for device in (me.device_id, peer.device_id):
        ET.SubElement(folder, "device", id=device, introducedBy="")
    root.insert(1, folder)
    tree.write(path)
    (me.folder / ".stfolder").mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def syncthing_pair(tmp: Path) -> Iterator[tuple[Syncthing, Syncthing]]:
    """Two Syncthing instances on loopback, each syncing its own copy of one folder."""
    binary = require("syncthing")
    pair = []
    for name in ("a", "b"):
        home = tmp / f"syncthing-{name}"
        pair.append(Syncthing(home, tmp / f"folder-{name}", _generate(binary, home),
                              free_port(), free_port(), ""))
    a, b = pair
    _configure(a, b)
    _configure(b, a)
    env = {**os.environ, "STNOUPGRADE": "1", "STNORESTART": "1"}
    try:
        for st in pair:
            log = open(st.home / "syncthing.log", "wb")  # noqa: SIM115 (closed with the process)
            st.process = subprocess.Popen(
                [binary, "serve", f"--home={st.home}", "--no-browser", "--no-restart",
                 "--no-upgrade", "--no-default-folder"], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connections = a.api("/rest/system/connections")
                assert isinstance(connections, dict)
                if connections["connections"].get(b.device_id, {}).get("connected"):
                    break
            except (OSError, KeyError, AssertionError):
                pass
            time.sleep(0.25)
        else:
            logs = "\n".join((st.home / "syncthing.log").read_text(errors="replace")[-2000:]
                             for st in pair)
            raise AssertionError(f"the two Syncthing instances did not connect:\n{logs}")
        yield a, b
    finally:
        for st in pair:
            if st.process is not None:
                st.process.terminate()
                try:
                    st.process.wait(10)
                except subprocess.TimeoutExpired:
                    st.process.kill()
