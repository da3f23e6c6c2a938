"""The rest of the ABI through Python: token provider, uploadimg, asynchronous upload by URL."""

from __future__ import annotations

import gc
import hashlib
import socket
import threading
import weakref
import time
from typing import List

import pytest

import wxmedia
from wxmedia import errcodes
from wxemu import JPEG, PNG, TOKEN, Emulator, generated, sha256
from conftest import make_client

MiB = 1024 * 1024


# --- token provider ------------------------------------------------------------------------
def test_token_provider_supplies_and_refreshes(emu: Emulator) -> None:
    media = emu.add_media(size=2 * MiB, seed=8)
    calls: List[bool] = []
    threads: List[str] = []
    emu.add_token("provided-token-1")

    def provider(force_refresh: bool) -> str:
        calls.append(force_refresh)
        threads.append(threading.current_thread().name)
        if force_refresh:
            emu.add_token("provided-token-2")
            return "provided-token-2"
        return "provided-token-1"

    with make_client(emu, access_token=None, token_provider=provider, chunk_size=256 * 1024, parallelism=3) as c:
        data, _ = c.download_bytes(media["media_id"])
        assert sha256(data) == media["sha256"]
        assert calls == [False]
        emu.expire_token("provided-token-1")
        data, _ = c.download_bytes(media["media_id"])
        assert sha256(data) == media["sha256"]
    assert calls == [False, True]
    assert emu.stats()["token_fetches"] == 0


def test_token_provider_exception_is_the_cause(emu: Emulator) -> None:
    media = emu.add_media(size=1000, seed=8)

    class VaultDown(Exception):
        pass

    def provider(force_refresh: bool) -> str:
        raise VaultDown("token service unreachable")

    with make_client(emu, access_token=None, token_provider=provider) as c:
        with pytest.raises(wxmedia.TokenError) as info:
            c.download_bytes(media["media_id"])
    assert info.value.errcode == errcodes.E_NO_TOKEN
    assert isinstance(info.value.__cause__, VaultDown)
    assert "token service unreachable" in str(info.value)


def test_token_provider_can_fail_with_an_errcode(emu: Emulator) -> None:
    def provider(force_refresh: bool) -> str:
        raise wxmedia.WxMediaError(40013, "invalid corpid in my vault")

    with make_client(emu, access_token=None, token_provider=provider) as c:
        with pytest.raises(wxmedia.TokenError) as info:
            c.upload("file", b"0123456789", filename="a.txt")
    assert info.value.errcode == 40013


@pytest.mark.parametrize("bad", [None, "", "has space", "x" * 5000, "令牌"])
def test_token_provider_bad_answers(emu: Emulator, bad: object) -> None:
    media = emu.add_media(size=100, seed=8)
    with make_client(emu, access_token=None, token_provider=lambda force: bad) as c:
        with pytest.raises(wxmedia.TokenError) as info:
            c.download_bytes(media["media_id"])
    assert isinstance(info.value.__cause__, (TypeError, ValueError, UnicodeEncodeError))


def test_token_provider_must_be_callable() -> None:
    with pytest.raises(TypeError, match="token_provider must be callable"):
        wxmedia.Client("wecom", token_provider="token")  # type: ignore[arg-type]


def test_token_provider_released_by_the_library_with_the_client(emu: Emulator) -> None:
    """The library's free_fn drops the provider: no leak once the client is closed."""
    from wxmedia._transfer import PROVIDERS

    media = emu.add_media(size=1000, seed=8)

    def provider(force_refresh: bool) -> str:
        return TOKEN

    alive = weakref.ref(provider)
    before = len(PROVIDERS)
    c = make_client(emu, access_token=None, token_provider=provider)
    del provider
    gc.collect()
    assert alive() is not None and len(PROVIDERS) == before + 1  # the library holds it
    data, _ = c.download_bytes(media["media_id"])
    assert sha256(data) == media["sha256"]
    c.close()
    gc.collect()
    assert alive() is None
    assert len(PROVIDERS) == before
    del c
    gc.collect()
    assert len(PROVIDERS) == before


def test_token_provider_released_when_no_client_is_made(emu: Emulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from wxmedia._transfer import PROVIDERS

    def provider(force_refresh: bool) -> str:
        return TOKEN

    alive = weakref.ref(provider)
    before = len(PROVIDERS)
    with pytest.raises(wxmedia.InvalidArgument):
        make_client(emu, access_token=None, token_provider=provider, ca_file=tmp_path / "missing.pem")
    del provider
    gc.collect()
    assert alive() is None and len(PROVIDERS) == before


def test_token_provider_outlives_close_while_a_transfer_needs_it(emu: Emulator) -> None:
    """A transfer running when the client is closed still asks the provider for a new token;
    the provider is released only when that transfer ends (no use after free)."""
    from wxmedia._transfer import PROVIDERS

    media = emu.add_media(size=512 * 1024, seed=9)
    emu.add_token("outlive-token-1")
    calls: List[bool] = []

    def provider(force_refresh: bool) -> str:
        calls.append(force_refresh)
        return "outlive-token-2" if force_refresh else "outlive-token-1"

    alive = weakref.ref(provider)
    before = len(PROVIDERS)
    started, closed = threading.Event(), threading.Event()

    def progress(done: int, total: object) -> None:
        if done and not started.is_set():
            started.set()
            assert closed.wait(10)

    c = make_client(emu, access_token=None, token_provider=provider, chunk_size=64 * 1024)
    del provider
    result: List[bytes] = []
    t = threading.Thread(target=lambda: result.append(c.download_bytes(media["media_id"], progress=progress)[0]))
    t.start()
    assert started.wait(10)
    c.close()
    emu.expire_token("outlive-token-1")  # the next chunk answers 42001
    emu.add_token("outlive-token-2")
    gc.collect()
    assert alive() is not None and len(PROVIDERS) == before + 1  # the running transfer holds it
    closed.set()
    t.join(30)
    assert result and sha256(result[0]) == media["sha256"]
    assert calls == [False, True]  # asked again after close()
    gc.collect()
    assert alive() is None and len(PROVIDERS) == before


def test_token_store_url_is_validated() -> None:
    with pytest.raises(wxmedia.InvalidArgument):
        wxmedia.Client("wecom", token_store="http://not-redis")
    with pytest.raises(ValueError):
        wxmedia.Client("wecom", token_store_timeouts=(0, 1))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_token_store_raises_unless_fallback_was_chosen(emu: Emulator, creds: tuple) -> None:
    media = emu.add_media(size=5000, seed=12)
    store = f"redis://:s3cret-pw@127.0.0.1:{_closed_port()}/0"
    kw = dict(access_token=None, credentials=creds, token_store=store, token_store_timeouts=1)
    with make_client(emu, **kw) as c:
        started = time.monotonic()
        with pytest.raises(wxmedia.TokenStoreError) as info:
            c.download_bytes(media["media_id"])
        assert time.monotonic() - started < 5
        assert info.value.errcode == errcodes.E_TOKEN_STORE
        assert "redis://127.0.0.1:" in str(info.value) and "s3cret-pw" not in str(info.value)
        assert c.token_store_fallbacks == 0
    with make_client(emu, token_store_fallback=True, **kw) as c:
        data, _ = c.download_bytes(media["media_id"])
        assert sha256(data) == media["sha256"]
        assert c.token_store_fallbacks == 1


# --- uploadimg -------------------------------------------------------------------------------
def test_uploadimg_gives_a_permanent_url(client: wxmedia.Client, emu: Emulator) -> None:
    res = client.upload("uploadimg", PNG, filename="logo.png")
    assert res.url is not None and res.url.startswith("http")
    assert TOKEN not in res.url


# --- upload by URL ---------------------------------------------------------------------------
def _source(emu: Emulator, size: int, seed: int) -> tuple:
    """A media served by the emulator's own CDN-like /__video/ endpoint (Range-capable)."""
    m = emu.add_media(size=size, seed=seed, filename="src.bin")
    md5 = hashlib.md5(generated(seed, 0, size)).hexdigest()
    return f"{emu.base_url}/__video/{m['media_id']}", md5, m


def test_upload_by_url(client: wxmedia.Client, emu: Emulator) -> None:
    url, md5, src = _source(emu, 3 * MiB + 5, 61)
    res = client.upload_by_url("file", url, "远程文件.bin", md5=md5, timeout=60)
    assert res.media_id and res.jobid and res.created_at > 0
    stored = emu.media(res.media_id)
    assert stored["sha256"] == src["sha256"] and stored["filename"] == "远程文件.bin"
    data, _ = client.download_bytes(res.media_id)
    assert sha256(data) == src["sha256"]


def test_upload_by_url_md5_from_path(client: wxmedia.Client, emu: Emulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, _, src = _source(emu, MiB, 62)
    local = tmp_path / "copy.bin"
    local.write_bytes(generated(62, 0, MiB))
    jobid = client.submit_upload_by_url("video", url, "clip.mp4", md5_path=local)
    assert jobid
    res = client.wait_upload_by_url(jobid, timeout=60)
    assert res.jobid == jobid
    assert emu.media(res.media_id)["sha256"] == src["sha256"]


def test_upload_by_url_md5_mismatch(client: wxmedia.Client, emu: Emulator) -> None:
    url, _, _ = _source(emu, MiB, 63)
    with pytest.raises(wxmedia.WxMediaError) as info:
        client.upload_by_url("file", url, "x.bin", md5="0" * 32, timeout=60)
    assert info.value.errcode == errcodes.MD5_MISMATCH
    assert info.value.jobid


def test_upload_by_url_local_checks(client: wxmedia.Client) -> None:
    with pytest.raises(wxmedia.InvalidType):
        client.upload_by_url("image", "http://127.0.0.1:9/x.jpg", "x.jpg", md5="0" * 32)
    with pytest.raises(TypeError, match="not both"):
        client.upload_by_url("file", "http://127.0.0.1:9/x", "x", md5="0" * 32, md5_path="/etc/hostname")
    with pytest.raises(wxmedia.WxMediaError):
        client.upload_by_url("file", "http://127.0.0.1:9/x", "x.bin", md5="not-hex")


def test_upload_by_url_is_wecom_only(official_client: wxmedia.Client) -> None:
    with pytest.raises(wxmedia.WxMediaError) as info:
        official_client.upload_by_url("file", "http://127.0.0.1:9/x.bin", "x.bin", md5="0" * 32)
    assert info.value.errcode == errcodes.API_UNAUTHORIZED == 48001
