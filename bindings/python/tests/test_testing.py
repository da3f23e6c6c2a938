"""wxmedia.testing against the repository's emulator ($WXMEDIA_EMULATOR, set
by make py-test); tests/dist runs the same fixture from an installed wheel,
on the emulator bundled in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wxmedia.testing import Emulator, emulator_path
from wxmedia.testing import wxmedia_emulator  # noqa: F401  (the fixture; users name the plugin in conftest.py)


def test_fixture_round_trip(wxmedia_emulator: Emulator, tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 300)
    with wxmedia_emulator.client(chunk_size=4096) as client:
        media_id = client.upload("image", src).media_id
        data, info = client.download_bytes(media_id)
    assert data == src.read_bytes() and info.size == len(data)


def test_add_media_and_admin(wxmedia_emulator: Emulator, tmp_path: Path) -> None:
    media_id = wxmedia_emulator.add_media(b"0123456789" * 1000, filename="n.txt")
    meta = wxmedia_emulator.admin("GET", "/__admin/media/" + media_id)
    assert meta["size"] == 10000
    with wxmedia_emulator.client() as client:
        info = client.download(media_id, tmp_path / "n.txt")
    assert (tmp_path / "n.txt").read_bytes() == b"0123456789" * 1000
    assert info.filename == "n.txt"


def test_emulator_path_prefers_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WXMEDIA_EMULATOR", str(tmp_path / "elsewhere"))
    assert emulator_path() == tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError):
        Emulator()


def test_a_failed_start_says_why() -> None:
    with pytest.raises(RuntimeError, match="did not start"):
        Emulator(extra_args=["--no-such-flag"])
