"""Client construction: every bad input is a clear error; lifecycle; no secret in any text."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

import wxmedia
from wxmedia import errcodes
from wxemu import SECRET, TOKEN, Emulator
from conftest import make_client


def test_platform_names_and_enum(emu: Emulator) -> None:
    for name in ("wecom", "WeCom", "kf", "official", "miniprogram", wxmedia.Platform.OFFICIAL, 3):
        with wxmedia.Client(name, access_token=TOKEN, base_url=emu.base_url) as c:  # type: ignore[arg-type]
            assert isinstance(c.platform, wxmedia.Platform)
    with pytest.raises(ValueError, match="unknown platform 'wechat'.*wecom"):
        wxmedia.Client("wechat")
    with pytest.raises(ValueError, match="unknown platform number 9"):
        wxmedia.Client(9)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wxmedia.Client(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"chunk_size": 100}, wxmedia.InvalidArgument, "16"),
        ({"chunk_size": 21 * 1024 * 1024}, wxmedia.InvalidArgument, None),
        ({"chunk_size": 0}, wxmedia.InvalidArgument, None),
        ({"chunk_size": -16}, ValueError, "chunk_size"),
        ({"chunk_size": "64k"}, TypeError, "chunk_size must be an int"),
        ({"chunk_size": True}, TypeError, "chunk_size must be an int"),
        ({"parallelism": 0}, wxmedia.InvalidArgument, None),
        ({"parallelism": 2**32}, ValueError, "parallelism"),
        ({"base_url": "ftp://127.0.0.1"}, wxmedia.InvalidArgument, "http"),
        ({"base_url": "http://127.0.0.1/a b"}, wxmedia.InvalidArgument, None),
        ({"base_url": 5}, TypeError, "base_url must be a str"),
        ({"access_token": "abc\0def"}, ValueError, "NUL"),
        ({"access_token": "\ud800"}, ValueError, "Unicode"),
        ({"credentials": "corp:secret"}, TypeError, r"\(id, secret\)"),
        ({"credentials": ("only-one",)}, TypeError, r"\(id, secret\)"),
        ({"timeouts": 0}, ValueError, "positive"),
        ({"timeouts": (1, 2, 3)}, TypeError, "timeouts"),
        ({"timeouts": float("inf")}, ValueError, "finite"),
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": (3, -1)}, ValueError, "backoff"),
        ({"limits": {"image": -5}}, ValueError, "limits"),
        ({"ca_file": "/nonexistent/ca.pem"}, wxmedia.WxMediaError, None),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict, exc: type, match: "str | None") -> None:
    with pytest.raises(exc, match=match) as info:
        wxmedia.Client("wecom", **kwargs)
    if isinstance(info.value, wxmedia.WxMediaError):
        assert info.value.errcode in (errcodes.E_INVALID_ARG, errcodes.E_IO)
        assert info.value.errmsg, "the library's detail text is carried"


def test_invalid_argument_is_also_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        wxmedia.Client("wecom", chunk_size=100)
    assert isinstance(info.value, wxmedia.WxMediaError)
    assert info.value.errcode == errcodes.E_INVALID_ARG


def test_good_configuration(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=1000, seed=3)
    with wxmedia.Client(
        "wecom",
        access_token=TOKEN,
        base_url=emu.base_url + "/",
        chunk_size=16 * 64,
        parallelism=3,
        timeouts=(2, 3.5),
        retries=(2, 0.01),
        limits={"image": 5_000_000},
    ) as c:
        data, info = c.download_bytes(media["media_id"])
        assert info.size == 1000 and len(data) == 1000


def test_context_manager_closes(emu: Emulator) -> None:
    with make_client(emu) as c:
        assert not c.closed
    assert c.closed
    c.close()  # idempotent
    with pytest.raises(wxmedia.StateError, match="closed") as info:
        c.download_bytes("anything")
    assert info.value.errcode == errcodes.E_STATE
    with pytest.raises(wxmedia.StateError):
        c.upload("file", b"123456789", filename="a.txt")
    with pytest.raises(wxmedia.StateError):
        c.set_access_token("x")


def test_garbage_collected_client_is_freed(emu: Emulator) -> None:
    c = make_client(emu)
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None


def test_no_token_and_no_credentials(emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=1)
    with wxmedia.Client("wecom", base_url=emu.base_url) as c:
        with pytest.raises(wxmedia.TokenError) as info:
            c.download_bytes(media["media_id"])
    assert info.value.errcode == errcodes.E_NO_TOKEN


def test_repr_and_errors_never_show_secrets(emu: Emulator) -> None:
    with wxmedia.Client(
        "wecom", access_token=TOKEN, credentials=("wxm-corp", SECRET), base_url=emu.base_url
    ) as c:
        assert TOKEN not in repr(c) and SECRET not in repr(c)
        with pytest.raises(wxmedia.InvalidMediaId) as info:
            c.download_bytes("no-such-media")
        text = f"{info.value} {info.value!r} {info.value.errmsg}"
        assert TOKEN not in text and SECRET not in text


def test_bad_call_arguments(client: wxmedia.Client, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="media_id must be a str"):
        client.download_bytes(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        client.download_bytes("a\0b")
    with pytest.raises(wxmedia.InvalidArgument):
        client.download_bytes("")
    with pytest.raises(TypeError, match="dest must be a path"):
        client.download("x", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="binary mode"):
        with open(tmp_path / "t.txt", "w") as f:
            client.download("x", f)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resumes by itself"):
        client.download("x", tmp_path / "x.bin", start=16)
    with pytest.raises(ValueError, match="start"):
        client.download_bytes("x", start=-1)
    with pytest.raises(TypeError, match="progress must be callable"):
        client.download_bytes("x", progress=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="type must be a str"):
        client.upload(None, b"123456")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="src must be"):
        client.upload("file", 12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="length= is only for file objects"):
        client.upload("file", tmp_path / "x", length=5)
    with pytest.raises(ValueError, match="length=3 but the data holds 9"):
        client.upload("file", b"123456789", filename="a.txt", length=3)
    with pytest.raises(TypeError, match="cancel must be"):
        client.download_bytes("x", cancel=object())  # type: ignore[arg-type]


def test_set_access_token_rotates(emu: Emulator) -> None:
    media = emu.add_media(size=4096, seed=11)
    with make_client(emu, access_token="not-a-valid-token") as c:
        with pytest.raises(wxmedia.TokenError) as info:
            c.download_bytes(media["media_id"])
        assert info.value.errcode in (40001, 40014, 42001)
        assert "not-a-valid-token" not in str(info.value)
        c.set_access_token(TOKEN)
        data, _ = c.download_bytes(media["media_id"])
        assert len(data) == 4096


def test_local_file_errors(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=100, seed=1)
    with pytest.raises(wxmedia.LocalIOError) as info:
        client.download(media["media_id"], tmp_path / "no" / "such" / "dir" / "x.bin")
    assert info.value.errcode == errcodes.E_IO
    with pytest.raises(wxmedia.LocalIOError) as info2:
        client.upload("file", tmp_path / "missing.bin")
    assert "missing.bin" in info2.value.errmsg
    with pytest.raises(wxmedia.WxMediaError):
        client.upload("file", tmp_path)  # a directory
