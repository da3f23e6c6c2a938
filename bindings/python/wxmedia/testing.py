"""Test your integration offline against the bundled WeChat emulator.

The wheel ships ``wxmedia-emulator`` (a real HTTP server speaking WeChat's
temporary-media API on loopback) next to the library.  :class:`Emulator`
starts one; the ``wxmedia_emulator`` pytest fixture starts one per test.

Enable the fixture in your ``conftest.py``::

    pytest_plugins = ["wxmedia.testing"]

and use it::

    import wxmedia

    def test_round_trip(wxmedia_emulator, tmp_path):
        src = tmp_path / "a.png"
        src.write_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(1000))
        with wxmedia_emulator.client() as client:
            media_id = client.upload("image", src).media_id
            data, _info = client.download_bytes(media_id)
            assert data == src.read_bytes()

The emulator binary is, in order: ``$WXMEDIA_EMULATOR``, the copy bundled in
the package, ``wxmedia-emulator`` on ``PATH``.  Its admin API (scripted media,
faults, token expiry) is documented in the repository's docs/CONTRACT.md;
:meth:`Emulator.admin` calls it.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

import pytest

from .client import Client

__all__ = ["Emulator", "emulator_path", "wxmedia_emulator"]

TOKEN = "wxmedia-testing-token"
"""The static access_token the emulator accepts (``Emulator.token``)."""


def emulator_path() -> Path:
    """Where the emulator binary is: ``$WXMEDIA_EMULATOR``, bundled, or on PATH."""
    env = os.environ.get("WXMEDIA_EMULATOR")
    if env:
        return Path(env)
    bundled = Path(__file__).resolve().parent / "_lib" / "wxmedia-emulator"
    if bundled.is_file():
        return bundled
    found = shutil.which("wxmedia-emulator")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "wxmedia-emulator not found: install a wxmedia wheel (it bundles one), "
        "put it on PATH or set WXMEDIA_EMULATOR"
    )


class Emulator:
    """One emulator process on 127.0.0.1, on a free port; a context manager."""

    def __init__(self, platform: str = "wecom", token: str = TOKEN, extra_args: Sequence[str] = ()) -> None:
        self.platform = platform
        self.token = token
        exe = emulator_path()
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [str(exe), "--listen", "127.0.0.1:0", "--platform", platform, "--access-token", token,
                 *extra_args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._log,
            )
        except BaseException:
            self._log.close()
            raise
        assert self._proc.stdout is not None
        # The emulator prints its bound address as its first line.
        ready, _, _ = select.select([self._proc.stdout], [], [], 30)
        line = self._proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("127.0.0.1:"):
            self.stop()
            logs = self.logs()
            self._log.close()
            raise RuntimeError(f"wxmedia-emulator did not start: {logs[-2000:]}")
        self.address = line
        self.base_url = f"http://{line}"

    def client(self, **options: Any) -> Client:
        """A :class:`wxmedia.Client` for this emulator with its static token."""
        return Client(platform=self.platform, access_token=self.token, base_url=self.base_url, **options)

    def admin(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        """Call the admin API, e.g. ``admin("POST", "/__admin/faults", {...})``."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    def add_media(self, data: bytes, **fields: Any) -> str:
        """Register a media holding ``data``; returns its media_id."""
        fields["data_b64"] = base64.b64encode(data).decode()
        return str(self.admin("POST", "/__admin/media", fields)["media_id"])

    def logs(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self._log.close()


@pytest.fixture
def wxmedia_emulator() -> Iterator[Emulator]:
    """A fresh emulator (WeCom API, static token) for one test."""
    with Emulator() as emulator:
        yield emulator
