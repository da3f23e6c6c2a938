"""Downloads through the Python API against the real emulator: every case of the contract."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import wxmedia
from wxmedia import errcodes
from wxemu import CORPID, SECRET, TOKEN, Emulator, generated, sha256, sha256_file
from conftest import make_client

MiB = 1024 * 1024


# --- the three ways to download ----------------------------------------------------
def test_download_to_path(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=3 * MiB + 5, seed=42, filename="report.pdf", content_type="application/pdf")
    dest = tmp_path / "out.pdf"
    info = client.download(media["media_id"], dest)
    assert info[:4] == wxmedia.MediaInfo(3 * MiB + 5, "application/pdf", "report.pdf", None)[:4]
    assert info.counters is not None and info.counters.bytes_received == 3 * MiB + 5
    assert sha256_file(dest) == media["sha256"]
    # only the final file is left: no temporary or resume files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pdf"]


def test_download_to_str_path(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=1000, seed=1)
    dest = str(tmp_path / "x.bin")
    info = client.download(media["media_id"], dest)
    assert info.size == 1000 and sha256_file(dest) == media["sha256"]


def test_download_to_file_objects(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB + 77, seed=5)
    buf = io.BytesIO()
    info = client.download(media["media_id"], buf)
    assert info.size == MiB + 77 and sha256(buf.getvalue()) == media["sha256"]
    with open(tmp_path / "f.bin", "wb") as f:
        client.download(media["media_id"], f)
    assert sha256_file(tmp_path / "f.bin") == media["sha256"]
    with open(tmp_path / "raw.bin", "wb", buffering=0) as raw:  # raw FileIO: short writes handled
        client.download(media["media_id"], raw)
    assert sha256_file(tmp_path / "raw.bin") == media["sha256"]


def test_download_bytes(client: wxmedia.Client, emu: Emulator) -> None:
    payload = os.urandom(70_001)
    media = emu.add_media(data=payload, filename="blob.dat")
    data, info = client.download_bytes(media["media_id"])
    assert data == payload
    assert info.size == len(payload) and info.filename == "blob.dat" and info.video_url is None


def test_download_bytes_refuses_to_grow_past_max_size(client: wxmedia.Client, emu: Emulator) -> None:
    media = emu.add_media(size=200_000, seed=2)
    with pytest.raises(ValueError, match="max_size=100000"):
        client.download_bytes(media["media_id"], max_size=100_000)
    data, _ = client.download_bytes(media["media_id"], max_size=200_000)
    assert len(data) == 200_000


@pytest.mark.parametrize("start", [0, 1, 3 * MiB + 17])
@pytest.mark.parametrize("where", ["main", "thread", "parallel"])
def test_download_bytes_of_many_slices(emu: Emulator, where: str, start: int) -> None:
    """Slices are copied into one result once a progress call told the size (the main
    thread always has one), or joined (another thread, no progress callable)."""
    size = 5 * MiB + 3
    media = emu.add_media(size=size, seed=91)
    kw: Dict[str, Any] = dict(parallelism=3, chunk_size=MiB) if where == "parallel" else {}
    out: Dict[str, bytes] = {}
    with make_client(emu, **kw) as c:
        if where == "thread":
            t = threading.Thread(target=lambda: out.update(data=c.download_bytes(media["media_id"], start=start)[0]))
            t.start()
            t.join(60)
        else:
            out["data"] = c.download_bytes(media["media_id"], start=start)[0]
    assert out["data"] == generated(91, start, size)


def test_download_bytes_refuses_max_size_once_the_size_is_known(emu: Emulator) -> None:
    media = emu.add_media(size=8 * MiB, seed=92)
    with make_client(emu, chunk_size=MiB) as c:
        with pytest.raises(ValueError, match="max_size=7340032"):
            c.download_bytes(media["media_id"], max_size=7 * MiB)
    # the first chunk told the size: no more were asked for
    assert len(emu.ranges(media["media_id"])) <= 2


def test_empty_media(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(data=b"", filename="empty.txt")
    data, info = client.download_bytes(media["media_id"])
    assert data == b"" and info.size == 0
    info = client.download(media["media_id"], tmp_path / "empty.txt")
    assert (tmp_path / "empty.txt").read_bytes() == b""


# --- progress ----------------------------------------------------------------------------
def test_progress_reports_monotonic_totals(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=2 * MiB + 3, seed=8)
    seen: List[Tuple[int, Optional[int]]] = []
    client.download(media["media_id"], tmp_path / "p.bin", progress=lambda d, t: seen.append((d, t)))
    assert seen, "progress was never called"
    dones = [d for d, _ in seen]
    assert dones == sorted(dones)
    assert seen[-1] == (2 * MiB + 3, 2 * MiB + 3)
    assert all(t in (None, 2 * MiB + 3) for _, t in seen)


def test_progress_works_with_a_tqdm_style_bar(client: wxmedia.Client, emu: Emulator) -> None:
    class Bar:  # what tqdm offers: .n, .total, update(delta)
        def __init__(self) -> None:
            self.n = 0
            self.total: Optional[int] = None

        def update(self, k: int) -> None:
            self.n += k

    bar = Bar()

    def progress(done: int, total: Optional[int]) -> None:
        bar.total = total
        bar.update(done - bar.n)

    media = emu.add_media(size=500_000, seed=4)
    client.download(media["media_id"], io.BytesIO(), progress=progress)
    assert (bar.n, bar.total) == (500_000, 500_000)


# --- resume with start ------------------------------------------------------------------
@pytest.mark.parametrize(
    "start",
    [
        16,
        1_000_003,
        3 * MiB - 1,
        3 * MiB,  # at the end: nothing left, a success
    ],
)
def test_resume_into_a_stream_with_start(emu: Emulator, start: int) -> None:
    size = 3 * MiB
    media = emu.add_media(size=size, seed=77, encrypted=True)
    with make_client(emu, chunk_size=256 * 1024) as c:
        buf = io.BytesIO()
        info = c.download(media["media_id"], buf, start=start)
    assert info.size == size
    assert buf.getvalue() == generated(77, start, size)
    for r in emu.ranges(media["media_id"]):
        assert r["start"] is not None and r["start"] % 16 == 0, r


def test_download_bytes_with_start(client: wxmedia.Client, emu: Emulator) -> None:
    payload = os.urandom(10_000)
    media = emu.add_media(data=payload)
    data, _ = client.download_bytes(media["media_id"], start=1234)
    assert data == payload[1234:]


def test_path_download_resumes_from_its_temporary_file(emu: Emulator, tmp_path: Path) -> None:
    size = 4 * MiB
    media = emu.add_media(size=size, seed=123)
    dest = tmp_path / "resume.bin"

    class Stop(Exception):
        pass

    def stop_halfway(done: int, total: Optional[int]) -> None:
        if done >= 2 * MiB:
            raise Stop

    with make_client(emu, chunk_size=MiB) as c:
        with pytest.raises(Stop):
            c.download(media["media_id"], dest, progress=stop_halfway)
        assert not dest.exists(), "a failed download must not create the destination"
        served_first = emu.stats()["bytes_served"]
        emu.reset()
        c.download(media["media_id"], dest)
    assert sha256_file(dest) == media["sha256"]
    ranges = emu.ranges(media["media_id"])
    assert ranges and ranges[0]["start"] >= MiB, f"the second run did not resume: {ranges}"
    assert emu.stats()["bytes_served"] <= size - MiB
    assert served_first >= 2 * MiB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume.bin"]


# --- names, types, platforms ---------------------------------------------------------------
def test_chinese_filename(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(data=b"\xe4\xbd\xa0\xe5\xa5\xbd" * 100, filename="聊天记录 2024年.txt")
    dest = tmp_path / "下载" / "聊天记录.txt"
    dest.parent.mkdir()
    info = client.download(media["media_id"], dest)
    assert info.filename == "聊天记录 2024年.txt"
    assert dest.read_bytes() == b"\xe4\xbd\xa0\xe5\xa5\xbd" * 100


def test_video_url_on_the_official_platform(official_client: wxmedia.Client, official: Emulator) -> None:
    media = official.add_media(size=2 * MiB + 9, seed=31, video=True, kind="video", filename="clip.mp4")
    data, info = official_client.download_bytes(media["media_id"])
    assert info.video_url is not None
    assert info.video_url.startswith("http://127.0.0.1:") and "/__video/" in info.video_url
    assert TOKEN not in info.video_url
    assert sha256(data) == media["sha256"] and info.size == len(data)
    assert official.stats()["requests"].get("video", 0) >= 1


def test_official_errors_come_as_text_plain(official_client: wxmedia.Client) -> None:
    with pytest.raises(wxmedia.InvalidMediaId) as info:
        official_client.download_bytes("no-such-official-media")
    assert info.value.errcode == 40007


def test_hd_voice_uses_jssdk(client: wxmedia.Client, emu: Emulator) -> None:
    media = emu.add_media(data=b"#!AMR\n" + os.urandom(4000), kind="voice")
    data, info = client.download_bytes(media["media_id"], hd_voice=True)
    assert info.content_type == "voice/speex"
    assert sha256(data) == media["sha256"]
    assert emu.stats()["requests"].get("media/get/jssdk") == 1


def test_encrypted_media_in_aligned_chunks(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=5 * MiB + 7, seed=9, encrypted=True)
    with make_client(emu, chunk_size=64 * 1024 * 3, parallelism=2) as c:  # 196608: a multiple of 16
        c.download(media["media_id"], tmp_path / "enc.bin")
    assert sha256_file(tmp_path / "enc.bin") == media["sha256"]
    ranges = emu.ranges(media["media_id"])
    assert len(ranges) == -(-(5 * MiB + 7) // (64 * 1024 * 3))
    for r in ranges:
        assert r["start"] % 16 == 0
        length = r["end"] - r["start"] + 1
        assert length % 16 == 0 or r["end"] == 5 * MiB + 6, r


def test_over_20_mib_in_chunks(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    size = 25 * MiB + 1
    media = emu.add_media(size=size, seed=20, **{"async": True})
    client.download(media["media_id"], tmp_path / "big.bin")
    assert sha256_file(tmp_path / "big.bin") == media["sha256"]
    ranges = emu.ranges(media["media_id"])
    assert len(ranges) == 2
    assert all(r["end"] - r["start"] + 1 <= 20 * MiB for r in ranges)
    assert emu.stats()["requests"]["media/get"] == 2  # no 830002 round trip


def test_small_chunks_in_parallel_arrive_in_order(emu: Emulator) -> None:
    size = 3 * MiB + 100
    media = emu.add_media(size=size, seed=64)
    # Every answer waits 20 ms before its head, so the workers' requests overlap.
    emu.fault("slow_headers", media_id=media["media_id"], ms=20, count=10_000)
    offsets: List[int] = []
    buf = io.BytesIO()

    class Sink:
        def write(self, b: bytes) -> int:
            offsets.append(buf.tell())
            return buf.write(b)

    with make_client(emu, chunk_size=64 * 1024, parallelism=4) as c:
        c.download(media["media_id"], Sink())  # type: ignore[arg-type]
    assert sha256(buf.getvalue()) == media["sha256"]
    assert len(emu.ranges(media["media_id"])) == -(-size // (64 * 1024))
    assert emu.stats()["max_concurrent_connections"] >= 2


# --- errcodes ------------------------------------------------------------------------------
def test_invalid_media_id(client: wxmedia.Client, tmp_path: Path) -> None:
    dest = tmp_path / "keep.txt"
    dest.write_bytes(b"precious")
    with pytest.raises(wxmedia.InvalidMediaId) as info:
        client.download("no-such-media", dest)
    assert info.value.errcode == errcodes.INVALID_MEDIA_ID == 40007
    assert "40007" in str(info.value) and TOKEN not in str(info.value)
    assert dest.read_bytes() == b"precious", "a failed download must not damage the existing file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_expired_media_answers_40007(client: wxmedia.Client, emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=1)
    emu.request("POST", "/__admin/clock", {"advance_secs": 3 * 86400 + 60})
    emu.add_token(TOKEN)  # the static token must outlive the clock jump
    with pytest.raises(wxmedia.InvalidMediaId):
        client.download_bytes(media["media_id"])


@pytest.mark.parametrize("code, cls", [(45009, wxmedia.ServerBusy), (48001, wxmedia.WxMediaError), (40058, wxmedia.WxMediaError)])
def test_final_errcodes_map_to_classes(client: wxmedia.Client, emu: Emulator, code: int, cls: type) -> None:
    media = emu.add_media(size=100, seed=1)
    emu.fault("errcode", errcode=code, media_id=media["media_id"], count=10)
    with pytest.raises(cls) as info:
        client.download_bytes(media["media_id"])
    assert info.value.errcode == code


# --- tokens --------------------------------------------------------------------------------
def test_credentials_fetch_and_cache_a_token(emu: Emulator) -> None:
    media = emu.add_media(size=10_000, seed=3)
    with make_client(emu, access_token=None, credentials=(CORPID, SECRET)) as c:
        for _ in range(3):
            data, _ = c.download_bytes(media["media_id"])
            assert sha256(data) == media["sha256"]
    assert emu.stats()["token_fetches"] == 1


def test_token_refresh_after_expiry(emu: Emulator) -> None:
    media = emu.add_media(size=10_000, seed=3)
    with make_client(emu, access_token=None, credentials=(CORPID, SECRET)) as c:
        c.download_bytes(media["media_id"])
        emu.expire_token()  # every token, also the static one; restored below
        try:
            data, _ = c.download_bytes(media["media_id"])
        finally:
            emu.add_token(TOKEN)
    assert sha256(data) == media["sha256"]
    assert emu.stats()["token_fetches"] == 2


def test_token_expiring_mid_transfer(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=2 * MiB, seed=12)
    with make_client(emu, access_token=None, credentials=(CORPID, SECRET), chunk_size=512 * 1024) as c:
        emu.fault("token_expire", after_bytes=100_000, media_id=media["media_id"])
        c.download(media["media_id"], tmp_path / "t.bin")
    assert sha256_file(tmp_path / "t.bin") == media["sha256"]
    assert emu.stats()["token_fetches"] == 2


def test_expired_static_token_without_credentials(emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=3)
    emu.add_token("short-lived-token-x")
    emu.expire_token("short-lived-token-x")
    with make_client(emu, access_token="short-lived-token-x") as c:
        with pytest.raises(wxmedia.TokenError) as info:
            c.download_bytes(media["media_id"])
    assert info.value.errcode == errcodes.ACCESS_TOKEN_EXPIRED
    assert "short-lived-token-x" not in str(info.value)


def test_bad_secret(emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=3)
    with make_client(emu, access_token=None, credentials=(CORPID, "wrong-secret-123")) as c:
        with pytest.raises(wxmedia.TokenError) as info:
            c.download_bytes(media["media_id"])
    assert info.value.errcode == 40001
    assert "wrong-secret-123" not in str(info.value)


# --- faults --------------------------------------------------------------------------------
def _fault_roundtrip(emu: Emulator, tmp_path: Path, kind: str, size: int = 2 * MiB, **fault: object) -> Emulator:
    media = emu.add_media(size=size, seed=99)
    emu.fault(kind, media_id=media["media_id"], **fault)
    with make_client(emu, chunk_size=MiB) as c:
        c.download(media["media_id"], tmp_path / "f.bin")
    assert sha256_file(tmp_path / "f.bin") == media["sha256"]
    assert emu.stats()["faults_fired"] >= 1
    return emu


def test_reset_mid_body_is_retried_from_the_offset(emu: Emulator, tmp_path: Path) -> None:
    _fault_roundtrip(emu, tmp_path, "reset", after_bytes=300_000)
    starts = [r["start"] for r in emu.stats()["ranges"]]
    assert len(starts) == 3 and 0 < starts[1] < MiB, f"the retry did not resume mid-chunk: {starts}"


def test_stall_longer_than_the_io_timeout_is_retried(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB, seed=5)
    emu.fault("stall", media_id=media["media_id"], after_bytes=100_000, ms=3000)
    t0 = time.monotonic()
    with make_client(emu, timeouts=(2, 0.5)) as c:
        c.download(media["media_id"], tmp_path / "s.bin")
    assert time.monotonic() - t0 < 2.5, "the stalled connection was waited out instead of timed out"
    assert sha256_file(tmp_path / "s.bin") == media["sha256"]
    assert emu.stats()["requests"]["media/get"] == 2


def test_stall_with_too_few_attempts_is_a_timeout(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB, seed=5)
    # No byte before the stall: attempts that make progress do not count as failures.
    emu.fault("stall", media_id=media["media_id"], after_bytes=0, ms=3000, count=5)
    with make_client(emu, timeouts=(2, 0.3), retries=(2, 0.01)) as c:
        with pytest.raises(wxmedia.Timeout) as info:
            c.download(media["media_id"], tmp_path / "s.bin")
    assert isinstance(info.value, wxmedia.NetworkError)
    assert info.value.errcode == errcodes.E_TIMEOUT
    assert not (tmp_path / "s.bin").exists()
    assert emu.stats()["requests"]["media/get"] == 2


def test_system_busy_is_retried(emu: Emulator, tmp_path: Path) -> None:
    _fault_roundtrip(emu, tmp_path, "errcode", errcode=-1, count=2)
    assert emu.stats()["faults_fired"] == 2


def test_system_busy_forever_gives_up(emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=1)
    emu.fault("errcode", errcode=-1, media_id=media["media_id"], count=100)
    with make_client(emu, retries=(3, 0.01)) as c:
        with pytest.raises(wxmedia.ServerBusy) as info:
            c.download_bytes(media["media_id"])
    assert info.value.errcode == errcodes.SYSTEM_BUSY == -1
    assert emu.stats()["requests"]["media/get"] == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried(emu: Emulator, tmp_path: Path, status: int) -> None:
    _fault_roundtrip(emu, tmp_path, "http_status", status=status)


def test_5xx_forever_is_an_http_status_error(emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=1)
    emu.fault("http_status", status=503, media_id=media["media_id"], count=100)
    with make_client(emu, retries=(2, 0.01)) as c:
        with pytest.raises(wxmedia.HTTPStatusError) as info:
            c.download_bytes(media["media_id"])
    assert info.value.errcode == errcodes.E_HTTP_STATUS


def test_short_body_is_retried(emu: Emulator, tmp_path: Path) -> None:
    _fault_roundtrip(emu, tmp_path, "short_body", after_bytes=1000)


def test_short_body_forever_is_a_network_error(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB, seed=1)
    emu.fault("short_body", media_id=media["media_id"], count=100)
    with make_client(emu, retries=(2, 0.01)) as c:
        with pytest.raises(wxmedia.NetworkError) as info:
            c.download(media["media_id"], tmp_path / "x.bin")
    assert info.value.errcode in (errcodes.E_NETWORK, errcodes.E_PROTOCOL)
    assert not (tmp_path / "x.bin").exists()


def test_wrong_content_range_is_a_protocol_error(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB, seed=1)
    emu.fault("wrong_content_range", media_id=media["media_id"], count=100)
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"old")
    with make_client(emu, chunk_size=256 * 1024, retries=(2, 0.01)) as c:
        with pytest.raises(wxmedia.ProtocolError) as info:
            c.download(media["media_id"], dest)
    assert info.value.errcode == errcodes.E_PROTOCOL
    assert dest.read_bytes() == b"old"


def test_wrong_content_range_never_corrupts_a_stream(emu: Emulator) -> None:
    media = emu.add_media(size=MiB, seed=17)
    emu.fault("wrong_content_range", media_id=media["media_id"], count=1)
    buf = io.BytesIO()
    with make_client(emu, chunk_size=256 * 1024) as c:
        try:
            c.download(media["media_id"], buf)
        except wxmedia.ProtocolError:
            # Refusing is correct too; then nothing of the bad answer was delivered.
            assert generated(17, 0, len(buf.getvalue())) == buf.getvalue()
            return
    assert sha256(buf.getvalue()) == media["sha256"]


def test_ignored_range_is_handled(emu: Emulator, tmp_path: Path) -> None:
    _fault_roundtrip(emu, tmp_path, "ignore_range")


def test_ignored_range_with_start(emu: Emulator) -> None:
    payload = os.urandom(300_000)
    media = emu.add_media(data=payload)
    emu.fault("ignore_range", media_id=media["media_id"], count=10)
    buf = io.BytesIO()
    with make_client(emu) as c:
        c.download(media["media_id"], buf, start=100_001)
    assert buf.getvalue() == payload[100_001:]


def test_connection_refused_is_a_network_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with wxmedia.Client(
        "wecom", access_token=TOKEN, base_url=f"http://127.0.0.1:{port}", retries=(2, 0.01), timeouts=(1, 1)
    ) as c:
        with pytest.raises(wxmedia.NetworkError) as info:
            c.download_bytes("whatever")
    assert info.value.errcode in (errcodes.E_NETWORK, errcodes.E_TIMEOUT)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("api, endpoint", [(None, "stable_token"), ("stable", "stable_token"), ("classic", "token")])
def test_official_token_api(official: Emulator, api: Optional[str], endpoint: str) -> None:
    media = official.add_media(size=1000, seed=6)
    with make_client(official, access_token=None, credentials=(CORPID, SECRET), token_api=api) as c:
        data, _ = c.download_bytes(media["media_id"])
    assert sha256(data) == media["sha256"]
    requests = official.stats()["requests"]
    assert requests.get(endpoint) == 1
    assert requests.get("gettoken", 0) == 0


def test_bad_token_api() -> None:
    with pytest.raises(ValueError, match="unknown token_api 'fast'"):
        wxmedia.Client("official", token_api="fast")
    with pytest.raises(wxmedia.InvalidArgument):
        wxmedia.Client("wecom", token_api="classic")  # WeCom only has gettoken


@pytest.mark.parametrize("start", [1001, 5000, 2**64 - 1])
def test_start_past_the_end_is_a_clear_error(client: wxmedia.Client, emu: Emulator, start: int) -> None:
    media = emu.add_media(size=1000, seed=1)
    buf = io.BytesIO()
    with pytest.raises(wxmedia.InvalidArgument, match="beyond the media size 1000"):
        client.download(media["media_id"], buf, start=start)
    assert buf.getvalue() == b""
    with pytest.raises(ValueError, match="start"):
        client.download(media["media_id"], buf, start=2**64)
