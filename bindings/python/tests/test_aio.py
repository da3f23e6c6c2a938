"""wxmedia.aio against the real emulator, on asyncio's loop and on uvloop (when installed).

No pytest plugin: each test is a coroutine run on a fresh loop of the kind
under test (``run`` below), so the loop the client meets is the real one.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, TypeVar

import pytest
from conftest import make_client
from wxemu import TOKEN, Emulator

import wxmedia
import wxmedia.aio

T = TypeVar("T")
MiB = 1 << 20


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[T]], T]:
    """Runs a coroutine to completion on a new loop of the parametrized kind."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Any = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def runner(coro: Awaitable[T]) -> T:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)  # type: ignore[arg-type]

    return runner


def aio_client(emu: Emulator, **kw: Any) -> wxmedia.aio.Client:
    args: Dict[str, Any] = dict(access_token=TOKEN, base_url=emu.base_url, timeouts=(5, 5), retries=(4, 0.02))
    args.update(kw)
    return wxmedia.aio.Client(emu.platform, **args)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ticker:
    """Measures the loop's latency: how far each short sleep overshoots."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self.ticks = 0
        self._task: Optional["asyncio.Task[None]"] = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, loop.time() - t0 - self.period)
            self.ticks += 1

    def __enter__(self) -> "Ticker":
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()


# --- the basics -------------------------------------------------------------------------
def test_download_to_path_bytes_and_file_objects(emu: Emulator, tmp_path: Path, run: Any) -> None:
    media = emu.add_media(size=3 * MiB + 5, seed=11, filename="报告.bin")

    async def main() -> None:
        async with aio_client(emu, chunk_size=MiB, parallelism=2) as c:
            info = await c.download(media["media_id"], tmp_path / "a.bin")
            assert info.size == media["size"] and info.filename == "报告.bin"
            assert sha256((tmp_path / "a.bin").read_bytes()) == media["sha256"]

            data, info = await c.download_bytes(media["media_id"])
            assert sha256(data) == media["sha256"]

            with open(tmp_path / "b.bin", "wb") as f:  # a sync file object: written on the transfer's thread
                await c.download(media["media_id"], f)
            assert sha256((tmp_path / "b.bin").read_bytes()) == media["sha256"]

            class AsyncFile:  # like aiofiles: write is a coroutine function
                def __init__(self) -> None:
                    self.buf = io.BytesIO()
                    self.threads: set = set()

                async def write(self, data: bytes) -> int:
                    self.threads.add(threading.get_ident())
                    await asyncio.sleep(0)
                    return self.buf.write(data)

            af = AsyncFile()
            await c.download(media["media_id"], af)
            assert sha256(af.buf.getvalue()) == media["sha256"]
            assert af.threads == {threading.get_ident()}, "the async writer ran off the loop's thread"

            chunks: List[bytes] = []

            async def sink(chunk: bytes) -> None:
                chunks.append(chunk)

            await c.download(media["media_id"], sink, start=1000)
            assert sha256(b"".join(chunks)) == sha256(data[1000:])

    run(main())


def test_errors_are_the_sync_clients(emu: Emulator, tmp_path: Path, run: Any) -> None:
    async def main() -> None:
        async with aio_client(emu) as c:
            with pytest.raises(wxmedia.InvalidMediaId) as info:
                await c.download_bytes("no-such-media")
            assert info.value.errcode == 40007
            with pytest.raises(wxmedia.LocalIOError) as info2:
                await c.download(emu.add_media(size=100, seed=1)["media_id"], tmp_path / "no" / "dir" / "x")
            assert isinstance(info2.value, OSError)
            with pytest.raises(TypeError):
                await c.download("m", 42)  # type: ignore[arg-type]
        with pytest.raises(wxmedia.StateError):
            await c.download_bytes("m")

    run(main())


def test_uploads(emu: Emulator, tmp_path: Path, run: Any) -> None:
    body = os.urandom(300_000)
    (tmp_path / "up.bin").write_bytes(body)

    class AsyncReader:
        def __init__(self, data: bytes) -> None:
            self.data = data
            self.pos = 0
            self.threads: set = set()

        async def read(self, n: int) -> bytes:
            self.threads.add(threading.get_ident())
            await asyncio.sleep(0)
            piece = self.data[self.pos : self.pos + n]
            self.pos += len(piece)
            return piece

    async def main() -> None:
        async with aio_client(emu) as c:
            seen: List[int] = []

            async def progress(done: int, total: Optional[int]) -> None:
                seen.append(done)

            r1 = await c.upload("file", tmp_path / "up.bin", progress=progress)
            r2 = await c.upload("file", body, filename="b.bin")
            reader = AsyncReader(body)
            r3 = await c.upload("file", reader, filename="c.bin", length=len(body))
            assert reader.threads == {threading.get_ident()}
            with pytest.raises(TypeError, match="length="):
                await c.upload("file", AsyncReader(body), filename="d.bin")
            for r in (r1, r2, r3):
                data, _ = await c.download_bytes(r.media_id)
                assert data == body
            assert seen and seen[-1] == len(body)

    run(main())


def test_upload_by_url(emu: Emulator, run: Any) -> None:
    media = emu.add_media(size=50_000, seed=3)
    data, _ = make_client(emu).download_bytes(media["media_id"])

    async def main() -> None:
        async with aio_client(emu) as c:
            res = await c.upload_by_url(
                "file", f"{emu.base_url}/__video/{media['media_id']}", "u.bin", md5=hashlib.md5(data).hexdigest()
            )
            assert res.media_id and res.jobid
            got, _ = await c.download_bytes(res.media_id)
            assert got == data

    run(main())


def test_progress_plain_and_coroutine_run_on_the_loop(emu: Emulator, run: Any) -> None:
    media = emu.add_media(size=2 * MiB, seed=4)

    async def main() -> None:
        loop_thread = threading.get_ident()
        async with aio_client(emu, chunk_size=256 * 1024) as c:
            plain: List[tuple] = []
            await c.download_bytes(media["media_id"], progress=lambda d, t: plain.append((d, t, threading.get_ident())))
            assert plain[-1][:2] == (2 * MiB, 2 * MiB)
            assert {p[2] for p in plain} == {loop_thread}

            class Stop(Exception):
                pass

            async def stop_half_way(done: int, total: Optional[int]) -> None:
                if done >= MiB:
                    raise Stop

            with pytest.raises(Stop):  # a progress coroutine that raises stops the transfer
                await c.download_bytes(media["media_id"], progress=stop_half_way)

    run(main())


def test_async_token_provider_does_not_block_the_loop(emu: Emulator, run: Any) -> None:
    media = emu.add_media(size=10_000, seed=5)

    async def main() -> None:
        calls: List[bool] = []

        async def provider(force: bool) -> str:
            calls.append(force)
            await asyncio.sleep(0.3)  # a slow token service
            return TOKEN

        def slow_sync_provider(force: bool) -> str:
            time.sleep(0.3)  # blocks its transfer's thread, never the loop
            return TOKEN

        for p in (provider, slow_sync_provider):
            async with aio_client(emu, access_token=None, token_provider=p) as c:
                with Ticker() as ticker:
                    data, _ = await c.download_bytes(media["media_id"])
                assert len(data) == 10_000
                assert ticker.worst < 0.05, f"the loop stalled {ticker.worst * 1000:.0f} ms"
        assert calls == [False]

    run(main())


# --- concurrency and the loop's latency ------------------------------------------------------
def test_fifty_concurrent_downloads_keep_the_loop_responsive(emu: Emulator, tmp_path: Path, run: Any) -> None:
    """Half to paths, half to bytes (a Python sink callback per slice), all at once.

    Each connection is throttled to 4 MB/s so that the 50 overlap for about
    half a second without saturating the CPUs: at full loopback speed on two
    cores, 50 transfer threads and the emulator keep every core busy, and the
    loop thread then waits for a CPU (measured up to 80 ms with downloads to
    paths, which run no Python at all), which is the machine's latency, not
    the client's.
    """
    media = [emu.add_media(size=2 * MiB + i, seed=100 + i) for i in range(50)]
    emu.fault("throttle", bytes_per_sec=4_000_000, count=1000)

    async def main() -> None:
        async with aio_client(emu, chunk_size=MiB) as c:
            async def one(i: int) -> Optional[bytes]:
                m = media[i]["media_id"]
                if i % 2:
                    data, _ = await c.download_bytes(m)
                    return data
                await c.download(m, tmp_path / f"{i}.bin")
                return None

            with Ticker() as ticker:
                t0 = time.monotonic()
                results = await asyncio.gather(*(one(i) for i in range(50)))
                elapsed = time.monotonic() - t0
            print(f"50 x 2 MiB in {elapsed:.2f} s; loop latency worst {ticker.worst * 1000:.1f} ms over {ticker.ticks} ticks")
            assert ticker.worst < 0.05, f"the event loop stalled {ticker.worst * 1000:.1f} ms"
            assert ticker.ticks >= elapsed / 0.055 - 1, "the ticker hardly ran"
        assert elapsed > 0.4, "the downloads were not throttled"
        for i, data in enumerate(results):  # hashed after: sha256 of 100 MiB would block the loop itself
            got = data if data is not None else (tmp_path / f"{i}.bin").read_bytes()
            assert sha256(got) == media[i]["sha256"]
        assert emu.stats()["max_concurrent_connections"] > 10, "the downloads did not run concurrently"

    run(main())


# --- cancellation -------------------------------------------------------------------------------
def test_cancel_during_a_stall_returns_promptly_and_leaves_no_file(emu: Emulator, tmp_path: Path, run: Any) -> None:
    media = emu.add_media(size=2 * MiB, seed=6)
    emu.fault("stall", media_id=media["media_id"], after_bytes=200_000, ms=10_000)
    target = tmp_path / "stalled.bin"

    async def main() -> None:
        progressed = asyncio.Event()
        calls = [0]

        def progress(done: int, total: Optional[int]) -> None:
            calls[0] += 1
            if done:
                progressed.set()

        async with aio_client(emu, timeouts=(5, 30)) as c:
            with Ticker() as ticker:
                task = asyncio.create_task(c.download(media["media_id"], target, progress=progress))
                await asyncio.wait_for(progressed.wait(), 5)
                await asyncio.sleep(0.3)  # well into the stall
                t0 = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                took = time.monotonic() - t0
            assert took < 0.5, f"cancel took {took * 1000:.0f} ms against a stalled server"
            assert ticker.worst < 0.05
            assert not target.exists(), "a partial file at the target"
            after = calls[0]
            await asyncio.sleep(0.35)  # past the library's heartbeat: nothing of the transfer runs
            assert calls[0] == after

            # The client is fine afterwards.
            emu.reset()
            await c.download(media["media_id"], target)
            assert sha256(target.read_bytes()) == media["sha256"]

    run(main())


def test_cancel_every_kind_of_call(emu: Emulator, tmp_path: Path, run: Any) -> None:
    """Bytes, sink, upload: each cancelled mid-stall returns promptly with CancelledError."""
    media = emu.add_media(size=2 * MiB, seed=7)

    async def main() -> None:
        async with aio_client(emu, timeouts=(5, 30), chunk_size=MiB) as c:
            async def sink(chunk: bytes) -> None:
                pass

            for make in (
                lambda: c.download_bytes(media["media_id"]),
                lambda: c.download(media["media_id"], sink),
            ):
                emu.fault("stall", media_id=media["media_id"], after_bytes=0, ms=10_000)
                task = asyncio.create_task(make())
                await asyncio.sleep(0.4)
                t0 = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert time.monotonic() - t0 < 0.5
                emu.reset()

            # A cancelled upload from an async reader that never answers.
            class Never:
                async def read(self, n: int) -> bytes:
                    await asyncio.sleep(3600)
                    return b""

            task = asyncio.create_task(c.upload("file", Never(), filename="n.bin", length=1000))
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - t0 < 0.5

    run(main())


def test_cancel_a_queued_call_never_runs_it(emu: Emulator, run: Any) -> None:
    media = emu.add_media(size=MiB, seed=8)
    emu.fault("stall", media_id=media["media_id"], after_bytes=0, ms=10_000)

    async def main() -> None:
        async with aio_client(emu, max_threads=1, timeouts=(5, 30)) as c:
            first = asyncio.create_task(c.download_bytes(media["media_id"]))
            await asyncio.sleep(0.2)
            queued = asyncio.create_task(c.download_bytes(media["media_id"]))
            await asyncio.sleep(0.1)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
        assert emu.stats()["requests"]["media/get"] == 1

    run(main())


# --- backpressure ---------------------------------------------------------------------------------
def test_a_slow_async_sink_holds_the_library_back(emu: Emulator, run: Any) -> None:
    """The library fetches no further than the sink has consumed, plus one chunk."""
    chunk = 256 * 1024
    media = emu.add_media(size=4 * MiB, seed=9)

    async def main() -> None:
        got = hashlib.sha256()
        consumed = [0]
        worst = [0]

        async def sink(data: bytes) -> None:
            await asyncio.sleep(0.002)  # slower than loopback
            got.update(data)
            consumed[0] += len(data)
            if consumed[0] % chunk < len(data):  # once per chunk: how far ahead is the library?
                asked = len(emu.ranges(media["media_id"]))  # blocking urllib: fine in a test
                worst[0] = max(worst[0], asked * chunk - consumed[0])

        async with aio_client(emu, chunk_size=chunk, parallelism=1) as c:
            await c.download(media["media_id"], sink)
        assert got.hexdigest() == media["sha256"]
        # Requests run at most one chunk ahead of what the sink took.
        assert worst[0] <= 2 * chunk, f"the library ran {worst[0]} bytes ahead of the sink"

    run(main())
