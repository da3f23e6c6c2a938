"""The example test wxmedia.testing documents, run against an installed wheel
by tests/dist/run.sh (outside the repository, no cargo on PATH), beside
tests/dist/conftest.py, which enables the fixture as the docs say."""

from pathlib import Path

import wxmedia
from wxmedia.testing import Emulator


def test_round_trip(wxmedia_emulator: Emulator, tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4000)
    with wxmedia_emulator.client(chunk_size=64 * 1024) as client:
        media_id = client.upload("image", src).media_id
        data, info = client.download_bytes(media_id)
    assert data == src.read_bytes()
    assert info.size == len(data)


def test_download_scripted_media(wxmedia_emulator: Emulator, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000 + b"tail"
    media_id = wxmedia_emulator.add_media(payload, filename="report.bin")
    dest = tmp_path / "out.bin"
    with wxmedia_emulator.client(chunk_size=16 * 1024) as client:
        info = client.download(media_id, dest)
    assert dest.read_bytes() == payload
    assert info.filename == "report.bin"


def test_bundled_library_and_emulator() -> None:
    # Loaded from the wheel, not from a build tree.
    assert "site-packages" in str(wxmedia.LIBRARY_PATH)
    from wxmedia.testing import emulator_path

    assert "site-packages" in str(emulator_path())
