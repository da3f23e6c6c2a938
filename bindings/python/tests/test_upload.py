"""Uploads through the Python API: each type from a path, bytes and file objects; local rejections."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

import wxmedia
from wxmedia import errcodes
from wxemu import AMR, GIF, JPEG, MP4, PNG, Emulator, sha256
from conftest import make_client

MiB = 1024 * 1024

WECOM_TYPES = [("image", PNG, "photo.png"), ("image", JPEG, "photo.jpg"), ("voice", AMR, "hello.amr"),
               ("video", MP4, "clip.mp4"), ("file", os.urandom(300_000), "data.bin")]


def _check_stored(emu: Emulator, res: wxmedia.UploadResult, data: bytes, filename: Optional[str] = None) -> None:
    assert res.media_id
    assert isinstance(res.created_at, int) and res.created_at > 1_500_000_000
    stored = emu.media(res.media_id)
    assert stored["size"] == len(data)
    assert stored["sha256"] == sha256(data)
    if filename is not None:
        assert stored["filename"] == filename


@pytest.mark.parametrize("type_, data, name", WECOM_TYPES, ids=[f"{t}-{n}" for t, _, n in WECOM_TYPES])
def test_each_type_from_a_path(client: wxmedia.Client, emu: Emulator, tmp_path: Path,
                               type_: str, data: bytes, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(data)
    res = client.upload(type_, src)
    assert res.type == type_
    _check_stored(emu, res, data, name)
    # and it downloads back identical
    back, info = client.download_bytes(res.media_id)
    assert back == data and info.filename == name


@pytest.mark.parametrize("type_, data, name", WECOM_TYPES, ids=[f"{t}-{n}" for t, _, n in WECOM_TYPES])
def test_each_type_from_bytes(client: wxmedia.Client, emu: Emulator, type_: str, data: bytes, name: str) -> None:
    res = client.upload(type_, data, filename=name)
    assert res.type == type_
    _check_stored(emu, res, data, name)


@pytest.mark.parametrize("type_, data, name", WECOM_TYPES, ids=[f"{t}-{n}" for t, _, n in WECOM_TYPES])
def test_each_type_from_a_file_object(client: wxmedia.Client, emu: Emulator, tmp_path: Path,
                                      type_: str, data: bytes, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(data)
    with open(src, "rb") as f:
        res = client.upload(type_, f)  # filename from f.name, length from seek/tell
    _check_stored(emu, res, data, name)


def test_bytes_like_inputs(client: wxmedia.Client, emu: Emulator) -> None:
    data = os.urandom(100_000)
    for src in (bytearray(data), memoryview(data)):
        res = client.upload("file", src, filename="x.bin")
        _check_stored(emu, res, data)


def test_bytes_without_filename_gets_one_from_the_content(client: wxmedia.Client, emu: Emulator) -> None:
    res = client.upload("image", PNG)
    stored = emu.media(res.media_id)
    assert stored["filename"].endswith(".png")


def test_chinese_filename(client: wxmedia.Client, emu: Emulator) -> None:
    res = client.upload("file", b"some text content\n" * 10, filename="会议纪要 第3版.txt")
    assert emu.media(res.media_id)["filename"] == "会议纪要 第3版.txt"
    _, info = client.download_bytes(res.media_id)
    assert info.filename == "会议纪要 第3版.txt"


def test_bytesio_from_its_current_position(client: wxmedia.Client, emu: Emulator) -> None:
    data = os.urandom(50_000)
    f = io.BytesIO(b"HEADER-NOT-SENT" + data)
    f.seek(15)
    res = client.upload("file", f, filename="part.bin")
    _check_stored(emu, res, data)


def test_read_only_stream_without_readinto(client: wxmedia.Client, emu: Emulator) -> None:
    data = os.urandom(200_000)

    class OnlyRead:
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)
            self.calls = 0

        def read(self, n: int) -> bytes:
            self.calls += 1
            return self.inner.read(min(n, 7000))  # short reads are fine

    src = OnlyRead()
    res = client.upload("file", src, filename="r.bin", length=len(data))  # type: ignore[arg-type]
    _check_stored(emu, res, data)
    assert src.calls > 10, "the stream was not streamed in pieces"


def test_pipe_needs_a_length(client: wxmedia.Client, emu: Emulator) -> None:
    data = os.urandom(30_000)
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
    writer.start()
    try:
        with open(r, "rb") as f:
            with pytest.raises(ValueError, match="length="):
                client.upload("file", f, filename="p.bin")
            res = client.upload("file", f, filename="p.bin", length=len(data))
    finally:
        writer.join()
    _check_stored(emu, res, data)


def test_stream_shorter_than_its_length(client: wxmedia.Client, emu: Emulator) -> None:
    with pytest.raises(wxmedia.WxMediaError) as info:
        client.upload("file", io.BytesIO(b"x" * 500), filename="short.bin", length=1000)
    assert isinstance(info.value, wxmedia.LocalIOError) and info.value.errcode == errcodes.E_IO
    assert "500" in info.value.errmsg
    assert emu.stats()["uploads"] == 0


def test_text_stream_is_refused(client: wxmedia.Client, tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("hello world")
    with open(p) as f:
        with pytest.raises(TypeError, match="binary mode"):
            client.upload("file", f)  # type: ignore[arg-type]


def test_upload_progress(client: wxmedia.Client) -> None:
    data = os.urandom(3 * MiB)
    seen: List[Tuple[int, Optional[int]]] = []
    client.upload("file", data, filename="p.bin", progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (3 * MiB, 3 * MiB)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_large_file_object_is_streamed_not_read_whole(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(15 * MiB)
    src.write_bytes(data)
    biggest = 0

    class Watch(io.FileIO):
        def readinto(self, b: Any) -> Any:
            nonlocal biggest
            biggest = max(biggest, len(b))
            return super().readinto(b)

    with Watch(str(src), "rb") as f:
        res = client.upload("file", f, filename="big.bin")
    _check_stored(emu, res, data)
    assert biggest <= 4 * MiB, f"the library asked for {biggest} bytes at once"


# --- official account -------------------------------------------------------------------------
def test_official_types(official_client: wxmedia.Client, official: Emulator) -> None:
    for type_, data, name in [("thumb", JPEG, "t.jpg"), ("image", GIF, "g.gif"), ("voice", b"ID3" + bytes(3000), "v.mp3"),
                              ("video", MP4, "v.mp4")]:
        res = official_client.upload(type_, data, filename=name)
        assert res.type == type_
        _check_stored(official, res, data, name)


# --- local rejections: WeChat's own codes, before any byte is sent -----------------------------
def _sparse(path: Path, head: bytes, size: int) -> Path:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


@pytest.mark.parametrize(
    "type_, make, code, cls",
    [
        ("image", lambda p: _sparse(p / "big.png", PNG, 10 * MiB + 1), 40009, wxmedia.TooLarge),
        ("voice", lambda p: _sparse(p / "big.amr", AMR, 2 * MiB + 1), 40010, wxmedia.TooLarge),
        ("video", lambda p: _sparse(p / "big.mp4", MP4, 10 * MiB + 1), 40011, wxmedia.TooLarge),
        ("file", lambda p: _sparse(p / "big.bin", b"", 20 * MiB + 1), 40006, wxmedia.TooLarge),
        ("file", lambda p: _sparse(p / "tiny.bin", b"12345", 5), 40006, wxmedia.TooLarge),
        ("file", lambda p: _sparse(p / "empty.bin", b"", 0), 44001, wxmedia.TooLarge),
        ("image", lambda p: _sparse(p / "notes.png", b"just some text, not an image", 100), 40005, wxmedia.InvalidType),
        ("voice", lambda p: _sparse(p / "song.amr", PNG, 1000), 40005, wxmedia.InvalidType),
        ("thumb", lambda p: _sparse(p / "t.jpg", JPEG, 1000), 40004, wxmedia.InvalidType),
        ("document", lambda p: _sparse(p / "d.bin", b"abcdefgh", 100), 40004, wxmedia.InvalidType),
    ],
    ids=["image>10M", "voice>2M", "video>10M", "file>20M", "5-bytes", "empty", "text-as-image",
         "png-as-voice", "thumb-on-wecom", "unknown-type"],
)
def test_local_rejections(client: wxmedia.Client, emu: Emulator, tmp_path: Path,
                          type_: str, make: Any, code: int, cls: type) -> None:
    path = make(tmp_path)
    with pytest.raises(cls) as info:
        client.upload(type_, path)
    assert info.value.errcode == code
    assert emu.stats()["requests"].get("media/upload", 0) == 0, "rejected locally: nothing may be sent"
    # the same from a stream
    with open(path, "rb") as f:
        with pytest.raises(cls):
            client.upload(type_, f)
    assert emu.stats()["requests"].get("media/upload", 0) == 0


def test_official_thumb_limit(official_client: wxmedia.Client, official: Emulator) -> None:
    with pytest.raises(wxmedia.TooLarge) as info:
        official_client.upload("thumb", JPEG + bytes(64 * 1024), filename="t.jpg")
    assert info.value.errcode == errcodes.INVALID_THUMB_SIZE == 40012
    assert official.stats()["requests"].get("media/upload", 0) == 0


def test_kf_image_limit_is_2_mib(kf: Emulator) -> None:
    with make_client(kf) as c:
        with pytest.raises(wxmedia.TooLarge) as info:
            c.upload("image", PNG + bytes(2 * MiB), filename="big.png")
        assert info.value.errcode == 40009
        res = c.upload("image", PNG, filename="small.png")
        assert res.type == "image"


def test_miniprogram_takes_images_only(miniprogram: Emulator) -> None:
    with make_client(miniprogram) as c:
        assert c.upload("image", JPEG, filename="a.jpg").type == "image"
        with pytest.raises(wxmedia.InvalidType) as info:
            c.upload("video", MP4, filename="v.mp4")
    assert info.value.errcode == errcodes.INVALID_MEDIA_TYPE == 40004


def test_limit_override(emu: Emulator) -> None:
    with make_client(emu, limits={"image": 1000}) as c:
        with pytest.raises(wxmedia.TooLarge) as info:
            c.upload("image", PNG + bytes(2000), filename="x.png")
        assert info.value.errcode == 40009
        assert c.upload("image", PNG[:900], filename="ok.png").type == "image"


def test_server_side_rejection_and_retry(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    src = tmp_path / "r.bin"
    data = os.urandom(100_000)
    src.write_bytes(data)
    emu.fault("http_status", status=503, endpoint="media/upload")
    res = client.upload("file", src)  # a path can be re-read: retried
    _check_stored(emu, res, data)
    emu.fault("errcode", errcode=45033, endpoint="media/upload", count=100)
    with pytest.raises(wxmedia.ServerBusy) as info:
        client.upload("file", src)
    assert info.value.errcode == 45033


def test_upload_with_credentials_and_token_refresh(emu: Emulator) -> None:
    from wxemu import CORPID, SECRET, TOKEN

    with make_client(emu, access_token=None, credentials=(CORPID, SECRET)) as c:
        c.upload("file", b"first upload!", filename="a.txt")
        emu.expire_token()
        try:
            res = c.upload("file", b"second upload", filename="b.txt")
        finally:
            emu.add_token(TOKEN)
    assert emu.media(res.media_id)["size"] == 13
    assert emu.stats()["token_fetches"] == 2
