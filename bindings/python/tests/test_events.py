"""Events and counters: scripted faults against the emulator, and what the host sees of them.

Every test here (as every test of the suite, see conftest.wxm_events) also
checks that no event holds a secret.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import threading
from pathlib import Path
from typing import List, Optional

import pytest

import wxmedia
import wxmedia.aio
from wxmedia import errcodes
from wxmedia.events import Counters, Event, EventKind, ExpectContinue, TokenSource
from conftest import EventRecorder, make_client
from wxemu import CORPID, PNG, SECRET, TOKEN, Emulator, generated, sha256, sha256_file

MiB = 1024 * 1024
K = EventKind


def kinds(events: List[Event]) -> List[EventKind]:
    return [e.kind for e in events]


def test_two_503s_then_success_are_two_retries(emu: Emulator) -> None:
    media = emu.add_media(size=50_000, seed=5)
    emu.fault("http_status", status=503, media_id=media["media_id"], count=2)
    events: List[Event] = []
    with make_client(emu, on_event=events.append, log_events=False) as c:
        data, info = c.download_bytes(media["media_id"])
    assert sha256(data) == media["sha256"]
    retries = [e for e in events if e.kind == K.RETRY_SCHEDULED]
    assert [e.attempt for e in retries] == [2, 3]
    assert all(e.retry_reason == errcodes.E_HTTP_STATUS and e.level == logging.WARNING for e in retries)
    assert all(e.endpoint == "cgi-bin/media/get" for e in retries)  # as its requests name it
    finished = [e for e in events if e.kind == K.REQUEST_FINISHED]
    assert [e.http_status for e in finished] == [503, 503, 206]
    assert [e.attempt for e in finished] == [1, 2, 3]
    assert [e.method for e in events if e.kind in (K.REQUEST_STARTED, K.REQUEST_FINISHED)] == ["GET"] * 6
    assert all(e.method == "" for e in retries)
    assert kinds(events)[0] == K.TRANSFER_STARTED and kinds(events)[-1] == K.TRANSFER_FINISHED
    assert events[-1].errcode == 0 and events[-1].bytes == 50_000
    c_ = info.counters
    assert c_ is not None
    assert (c_.retries, c_.requests, c_.bytes_received, c_.resumed_from) == (2, 3, 50_000, 0)
    assert c_.elapsed > 0 and isinstance(c_.elapsed, float)
    assert {e.transfer_id for e in events} == {c_.transfer_id}
    assert [e.time_ns for e in events] == sorted(e.time_ns for e in events)


def test_a_failed_download_raises_with_its_counters(emu: Emulator) -> None:
    media = emu.add_media(size=1000, seed=5)
    emu.fault("http_status", status=503, media_id=media["media_id"], count=100)
    events: List[Event] = []
    with make_client(emu, retries=(3, 0.01), on_event=events.append) as c:
        with pytest.raises(wxmedia.HTTPStatusError) as info:
            c.download_bytes(media["media_id"])
    counters = info.value.counters
    assert counters is not None and (counters.requests, counters.retries) == (3, 2)
    last = events[-1]
    assert last.kind == K.TRANSFER_FINISHED and last.errcode == errcodes.E_HTTP_STATUS
    assert last.level == logging.WARNING


def test_a_token_invalidated_mid_transfer_is_refreshed(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=2 * MiB, seed=12)
    events: List[Event] = []
    with make_client(
        emu, access_token=None, credentials=(CORPID, SECRET), chunk_size=512 * 1024, on_event=events.append
    ) as c:
        emu.fault("token_expire", after_bytes=100_000, media_id=media["media_id"])
        info = c.download(media["media_id"], tmp_path / "t.bin")
    assert sha256_file(tmp_path / "t.bin") == media["sha256"]
    fetched = [e for e in events if e.kind == K.TOKEN_FETCHED]
    refreshed = [e for e in events if e.kind == K.TOKEN_REFRESHED]
    assert len(fetched) == 1 and len(refreshed) == 1
    assert fetched[0].token_source == TokenSource.CREDENTIALS and refreshed[0].token_source == TokenSource.CREDENTIALS
    assert refreshed[0].token_fetch > 0
    assert kinds(events).index(K.TOKEN_FETCHED) < kinds(events).index(K.TOKEN_REFRESHED)
    assert info.counters is not None and info.counters.token_refreshes >= 1


def test_an_interrupted_download_resumes_and_says_so(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=4 * MiB, seed=123)
    dest = tmp_path / "resume.bin"
    events: List[Event] = []

    class Stop(Exception):
        pass

    def stop_halfway(done: int, total: Optional[int]) -> None:
        if done >= 2 * MiB:
            raise Stop

    with make_client(emu, chunk_size=MiB, on_event=events.append) as c:
        with pytest.raises(Stop):
            c.download(media["media_id"], dest, progress=stop_halfway)
        assert K.RESUME_DECIDED not in kinds(events)
        del events[:]
        info = c.download(media["media_id"], dest)
    assert sha256_file(dest) == media["sha256"]
    decided = [e for e in events if e.kind == K.RESUME_DECIDED]
    assert len(decided) == 1 and decided[0].resume_offset >= MiB
    assert decided[0].level == logging.INFO
    assert info.counters is not None and info.counters.resumed_from == decided[0].resume_offset
    assert K.RESUME_CHECK_FAILED not in kinds(events)


def test_logging_levels_and_extra_fields(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    media = emu.add_media(size=3000, seed=8)
    emu.fault("http_status", status=502, media_id=media["media_id"], count=1)
    caplog.set_level(logging.DEBUG, logger="wxmedia")
    with make_client(emu) as c:
        _, info = c.download_bytes(media["media_id"])
    records = [r for r in caplog.records if r.name == "wxmedia"]
    by_kind = {}
    for r in records:
        by_kind.setdefault(r.wxm_kind, []).append(r)  # type: ignore[attr-defined]
    assert {r.levelno for r in by_kind["REQUEST_STARTED"] + by_kind["REQUEST_FINISHED"]} == {logging.DEBUG}
    assert [r.levelno for r in by_kind["RETRY_SCHEDULED"]] == [logging.WARNING]
    assert [r.levelno for r in by_kind["TRANSFER_STARTED"] + by_kind["TRANSFER_FINISHED"]] == [logging.INFO] * 2
    retry = by_kind["RETRY_SCHEDULED"][0]
    assert retry.wxm_attempt == 2 and retry.wxm_retry_reason == errcodes.E_HTTP_STATUS  # type: ignore[attr-defined]
    assert retry.wxm_endpoint == "cgi-bin/media/get" and retry.wxm_backoff > 0  # type: ignore[attr-defined]
    assert info.counters is not None
    assert {r.wxm_transfer_id for r in records} == {info.counters.transfer_id}  # type: ignore[attr-defined]
    started = by_kind["REQUEST_STARTED"][0]
    assert (started.wxm_range_start, started.wxm_range_end) == (0, 20 * MiB)  # type: ignore[attr-defined]
    assert started.getMessage().startswith("GET cgi-bin/media/get")
    # every field, with the same keys on every record
    keys = {k for k in vars(retry) if k.startswith("wxm_")}
    assert {"wxm_kind", "wxm_endpoint", "wxm_attempt", "wxm_errcode", "wxm_http_status", "wxm_duration"} <= keys
    assert all({k for k in vars(r) if k.startswith("wxm_")} == keys for r in records)


def test_the_library_builds_only_the_levels_the_logger_had(emu: Emulator, wxm_events: EventRecorder) -> None:
    media = emu.add_media(size=3000, seed=8)
    logger = logging.getLogger("wxmedia")
    logger.setLevel(logging.WARNING)
    c = make_client(emu)
    logger.setLevel(logging.DEBUG)  # too late for this client: it asked the library for WARNING and up
    emu.fault("http_status", status=503, media_id=media["media_id"], count=1)
    with c:
        c.download_bytes(media["media_id"])
    assert [r.wxm_kind for r in wxm_events.events()] == ["RETRY_SCHEDULED"]  # type: ignore[attr-defined]


def test_raising_the_logger_level_later_takes_effect_at_once(emu: Emulator, wxm_events: EventRecorder) -> None:
    media = emu.add_media(size=3000, seed=8)
    with make_client(emu) as c:  # created at DEBUG (conftest)
        logging.getLogger("wxmedia").setLevel(logging.WARNING)
        c.download_bytes(media["media_id"])
    assert wxm_events.events() == []


def test_no_consumer_no_handler(emu: Emulator, wxm_events: EventRecorder) -> None:
    from wxmedia._transfer import HANDLERS

    media = emu.add_media(size=3000, seed=8)
    before = len(HANDLERS)
    with make_client(emu, log_events=False) as c:
        assert len(HANDLERS) == before  # nothing installed in the library
        c.download_bytes(media["media_id"])
    logging.getLogger("wxmedia").setLevel(logging.CRITICAL)  # a logger that wants nothing: the same
    with make_client(emu) as c:
        assert len(HANDLERS) == before
    assert wxm_events.events() == []


def test_the_library_releases_the_handler(emu: Emulator) -> None:
    from wxmedia._transfer import HANDLERS

    media = emu.add_media(size=3000, seed=8)
    before = len(HANDLERS)
    c = make_client(emu, on_event=lambda e: None)
    assert len(HANDLERS) == before + 1
    c.download_bytes(media["media_id"])
    c.close()
    del c
    gc.collect()
    assert len(HANDLERS) == before  # the free_fn ran


def test_on_event_raising_does_not_break_the_transfer(emu: Emulator, wxm_events: EventRecorder) -> None:
    media = emu.add_media(size=3 * MiB, seed=4)
    calls = []

    def broken(event: Event) -> None:
        calls.append(event.kind)
        raise RuntimeError("a bug in the host's on_event")

    with make_client(emu, on_event=broken, chunk_size=MiB, parallelism=2) as c:
        data, info = c.download_bytes(media["media_id"])
    assert sha256(data) == media["sha256"]
    assert info.counters is not None and calls.count(K.REQUEST_FINISHED) == info.counters.requests >= 3
    told = [r for r in wxm_events.records if "on_event raised" in r.getMessage()]
    assert len(told) == len(calls) and all(r.levelno == logging.ERROR and r.exc_info for r in told)


def test_on_event_level_filters_and_logging_stays_independent(emu: Emulator, wxm_events: EventRecorder) -> None:
    media = emu.add_media(size=3000, seed=8)
    events: List[Event] = []
    with make_client(emu, on_event=events.append, on_event_level=logging.INFO) as c:
        c.download_bytes(media["media_id"])
    assert kinds(events) == [K.TRANSFER_STARTED, K.TRANSFER_FINISHED]
    assert "REQUEST_STARTED" in [r.wxm_kind for r in wxm_events.events()]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        make_client(emu, on_event="print")
    with pytest.raises(TypeError):
        make_client(emu, on_event_level="DEBUG")


def test_parallel_workers_report_from_their_threads(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=4 * MiB, seed=31)
    seen = []

    def on_event(event: Event) -> None:
        seen.append((event.kind, event.transfer_id, threading.get_ident()))

    with make_client(emu, on_event=on_event, chunk_size=512 * 1024, parallelism=4) as c:
        info = c.download(media["media_id"], tmp_path / "p.bin")
    assert info.counters is not None
    assert {tid for _, tid, _ in seen} == {info.counters.transfer_id}
    assert len({th for k, _, th in seen if k == K.REQUEST_STARTED}) > 1
    assert sum(1 for k, _, _ in seen if k == K.REQUEST_FINISHED) == info.counters.requests >= 8


def test_upload_counters_and_events(emu: Emulator) -> None:
    events: List[Event] = []
    data = PNG * 8
    with make_client(emu, on_event=events.append) as c:
        up = c.upload("image", data, "a.png")
        big = c.upload("file", bytes(2 * MiB), "b.bin")
    assert up.counters is not None and up.counters.bytes_sent == len(data) and up.counters.requests == 1
    assert big.counters is not None and big.counters.bytes_sent == 2 * MiB
    finished = [e for e in events if e.kind == K.REQUEST_FINISHED and e.endpoint == "cgi-bin/media/upload"]
    assert [e.expect_continue for e in finished] == [ExpectContinue.NOT_ASKED, ExpectContinue.BODY_SENT]
    assert all(e.http_status == 200 for e in finished)


def test_upload_by_url_has_counters(emu: Emulator) -> None:
    media = emu.add_media(size=100_000, seed=2)
    url = f"{emu.base_url}/__video/{media['media_id']}"
    md5 = hashlib.md5(generated(2, 0, 100_000)).hexdigest()
    with make_client(emu) as c:
        with pytest.raises(wxmedia.WxMediaError) as info:  # a wrong MD5: the job fails
            c.upload_by_url("file", url, "x.bin", md5="0" * 32, timeout=30)
        result = c.upload_by_url("file", url, "x.bin", md5=md5, timeout=30)
    assert info.value.errcode == 301019
    failed = info.value.counters
    assert failed is not None and failed.requests >= 2 and failed.elapsed > 0  # submit, then polls
    assert result.media_id and result.counters is not None and result.counters.requests >= 2
    assert result.counters.transfer_id != failed.transfer_id


def test_aio_results_carry_counters(emu: Emulator) -> None:
    media = emu.add_media(size=10_000, seed=2)

    async def main() -> Counters:
        async with wxmedia.aio.Client("wecom", access_token=TOKEN, base_url=emu.base_url) as c:
            data, info = await c.download_bytes(media["media_id"])
            assert sha256(data) == media["sha256"] and info.counters is not None
            up = await c.upload("file", b"x" * 1000, "x.txt")
            assert up.counters is not None and up.counters.bytes_sent == 1000
            return info.counters

    assert asyncio.run(main()).bytes_received == 10_000

    async def on_event(event: Event) -> None:
        pass

    with pytest.raises(TypeError, match="plain function"):
        wxmedia.aio.Client("wecom", access_token=TOKEN, base_url=emu.base_url, on_event=on_event)


def test_a_failed_upload_raises_with_its_counters(emu: Emulator) -> None:
    # Bytes go through the library's reader, which cannot be read again once
    # past its sniffed head: such an upload is not sent twice.
    emu.fault("http_status", status=503, endpoint="media/upload", count=100)
    events: List[Event] = []
    with make_client(emu, retries=(3, 0.01), on_event=events.append) as c:
        with pytest.raises(wxmedia.HTTPStatusError) as info:
            c.upload("image", PNG, "a.png")
    counters = info.value.counters
    assert counters is not None and (counters.requests, counters.retries) == (1, 0)
    assert counters.bytes_sent == len(PNG) and counters.transfer_id == events[0].transfer_id
    assert K.RETRY_SCHEDULED not in kinds(events)
    assert events[-1].kind == K.TRANSFER_FINISHED and events[-1].errcode == errcodes.E_HTTP_STATUS
    assert events[-1].level == logging.WARNING


def test_keyboard_interrupt_in_on_event_stops_a_main_thread_transfer(emu: Emulator, tmp_path: Path) -> None:
    # As Ctrl-C landing while on_event runs: the transfer is cancelled and the
    # interrupt raised once the library has stopped (not swallowed, not into C).
    assert threading.current_thread() is threading.main_thread()
    media = emu.add_media(size=4 * MiB, seed=9)
    started = []

    def interrupt(event: Event) -> None:
        if event.kind == K.REQUEST_STARTED:
            started.append(event)
            if len(started) == 2:
                raise KeyboardInterrupt

    with make_client(emu, chunk_size=MiB, on_event=interrupt) as c:
        with pytest.raises(KeyboardInterrupt):
            c.download(media["media_id"], tmp_path / "k.bin")
        assert not (tmp_path / "k.bin").exists()
        assert len(started) == 2
        data, _ = c.download_bytes(media["media_id"], max_size=None)  # the client is fine
    assert sha256(data) == media["sha256"]


def test_aio_on_event_runs_on_the_transfer_threads(emu: Emulator) -> None:
    media = emu.add_media(size=10_000, seed=2)
    seen: List[Event] = []
    threads = set()
    loop_thread = []

    def on_event(event: Event) -> None:
        seen.append(event)
        threads.add(threading.get_ident())

    async def main() -> wxmedia.MediaInfo:
        loop_thread.append(threading.get_ident())
        async with wxmedia.aio.Client(
            "wecom", access_token=TOKEN, base_url=emu.base_url, on_event=on_event, log_events=False
        ) as c:
            _, info = await c.download_bytes(media["media_id"])
            return info

    info = asyncio.run(main())
    assert info.counters is not None
    assert kinds(seen) == [K.TRANSFER_STARTED, K.REQUEST_STARTED, K.REQUEST_FINISHED, K.TRANSFER_FINISHED]
    assert {e.transfer_id for e in seen} == {info.counters.transfer_id}
    assert threads and loop_thread[0] not in threads  # the loop never waits for the library


def test_a_token_store_fallback_is_a_warning_without_the_password(emu: Emulator) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    media = emu.add_media(size=5000, seed=12)
    events: List[Event] = []
    store = f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    with make_client(
        emu,
        access_token=None,
        credentials=(CORPID, SECRET),
        token_store=store,
        token_store_timeouts=1,
        token_store_fallback=True,
        on_event=events.append,
    ) as c:
        c.download_bytes(media["media_id"])
    fallbacks = [e for e in events if e.kind == K.FALLBACK]
    assert len(fallbacks) == 1 and fallbacks[0].level == logging.WARNING
    assert "127.0.0.1" in fallbacks[0].message and "s3cret-pw" not in fallbacks[0].message
    fetched = [e for e in events if e.kind == K.TOKEN_FETCHED]
    assert [e.token_source for e in fetched] == [TokenSource.CREDENTIALS]
