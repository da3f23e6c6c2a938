"""Callbacks done right: exceptions re-raised per transfer, Ctrl-C, cancel, threads, the GIL."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import wxmedia
from wxmedia import errcodes
from wxemu import TOKEN, Emulator, generated, interrupt, sha256, sha256_file
from conftest import make_client

MiB = 1024 * 1024


class Boom(Exception):
    pass


def _frames(exc: BaseException) -> List[str]:
    return [f.name for f in traceback.extract_tb(exc.__traceback__)]


# --- exceptions in callbacks -----------------------------------------------------------------
def test_exception_in_write_is_reraised_with_its_traceback(emu: Emulator) -> None:
    media = emu.add_media(size=8 * MiB, seed=1)
    raised: List[BaseException] = []

    class FailingSink:
        def __init__(self) -> None:
            self.n = 0

        def write(self, b: bytes) -> int:
            self.n += len(b)
            if self.n > MiB:
                e = Boom("disk full (simulated)")
                raised.append(e)
                raise e
            return len(b)

    with make_client(emu, chunk_size=256 * 1024) as client:
        with pytest.raises(Boom) as info:
            client.download(media["media_id"], FailingSink())  # type: ignore[arg-type]
    assert info.value is raised[0], "the very exception object must come back"
    assert "write" in _frames(info.value), "the traceback must reach into write()"
    assert info.value.__context__ is None or not isinstance(info.value.__context__, wxmedia.WxMediaError)
    requests = emu.stats()["media_requests"][media["media_id"]]
    assert requests <= 6, f"the transfer went on after the sink failed ({requests} of 32 chunks asked)"


def test_exception_in_progress_is_reraised(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB, seed=1)

    def progress(done: int, total: Optional[int]) -> None:
        if done > 0:
            raise Boom(f"at {done}")

    with pytest.raises(Boom, match="at") as info:
        client.download(media["media_id"], tmp_path / "x.bin", progress=progress)
    assert "progress" in _frames(info.value)
    assert not (tmp_path / "x.bin").exists()


def test_exception_in_read_is_reraised(client: wxmedia.Client, emu: Emulator) -> None:
    class FailingReader(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 300_000

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            if self.left < 200_000:
                raise Boom("read failed")
            n = min(len(b), 10_000)
            b[:n] = b"x" * n
            self.left -= n
            return n

    with pytest.raises(Boom, match="read failed") as info:
        client.upload("file", FailingReader(), filename="r.bin", length=300_000)
    assert "readinto" in _frames(info.value)
    assert emu.stats()["uploads"] == 0


def test_exception_in_upload_progress_is_reraised(client: wxmedia.Client, emu: Emulator) -> None:
    def progress(done: int, total: Optional[int]) -> None:
        raise Boom("stop the upload")

    with pytest.raises(Boom):
        client.upload("file", os.urandom(100_000), filename="p.bin", progress=progress)
    assert emu.stats()["uploads"] == 0


def test_keyboard_interrupt_in_a_callback_is_reraised(client: wxmedia.Client, emu: Emulator) -> None:
    media = emu.add_media(size=MiB, seed=1)

    def progress(done: int, total: Optional[int]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.download_bytes(media["media_id"], progress=progress)


@pytest.mark.parametrize("watch", [True, False], ids=["interrupt-watcher", "calling-thread"])
def test_exceptions_are_stashed_per_transfer(emu: Emulator, watch: bool) -> None:
    """Two threads, one failing callback: only its own transfer fails."""
    media = emu.add_media(size=4 * MiB, seed=2)
    results: Dict[str, Any] = {}
    with make_client(emu, chunk_size=256 * 1024, cancel_on_interrupt=watch) as c:

        def good() -> None:
            buf = io.BytesIO()
            c.download(media["media_id"], buf, progress=lambda d, t: time.sleep(0.001))
            results["good"] = sha256(buf.getvalue())

        def bad() -> None:
            def progress(done: int, total: Optional[int]) -> None:
                if done > MiB:
                    raise Boom("only mine")

            try:
                c.download_bytes(media["media_id"], progress=progress)
            except Boom as e:
                results["bad"] = e

        threads = [threading.Thread(target=good), threading.Thread(target=bad)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert results["good"] == media["sha256"]
    assert isinstance(results["bad"], Boom)


def test_library_abort_code_without_python_exception() -> None:
    # Aborted is what the library reports when a callback stopped a transfer;
    # with Python callbacks the callback's own exception is raised instead.
    e = wxmedia.errors.make_error(errcodes.E_ABORTED, "stopped by the sink")
    assert isinstance(e, wxmedia.Aborted)


# --- threads and the GIL ------------------------------------------------------------------------
def test_threads_share_one_client(emu: Emulator, tmp_path: Path) -> None:
    medias = [emu.add_media(size=MiB + i * 1000, seed=100 + i) for i in range(6)]
    errors: List[BaseException] = []
    with make_client(emu, chunk_size=128 * 1024, parallelism=2) as c:

        def work(i: int) -> None:
            try:
                m = medias[i % len(medias)]
                dest = tmp_path / f"t{i}.bin"
                c.download(m["media_id"], dest)
                assert sha256_file(dest) == m["sha256"]
                data, _ = c.download_bytes(m["media_id"])
                assert sha256(data) == m["sha256"]
                payload = os.urandom(50_000 + i)
                up = c.upload("file", payload, filename=f"u{i}.bin")
                assert emu.media(up.media_id)["sha256"] == sha256(payload)
            except BaseException as e:  # noqa: B902
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    assert emu.stats()["max_concurrent_connections"] >= 2


# --- cancel ---------------------------------------------------------------------------------------
def test_cancel_token_stops_a_stalled_download(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB, seed=4)
    emu.fault("stall", media_id=media["media_id"], after_bytes=65536, ms=20_000)
    token = wxmedia.CancelToken()
    timer = threading.Timer(0.5, token.cancel)
    with make_client(emu, timeouts=(30, 30)) as c:
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(wxmedia.Cancelled) as info:
            c.download(media["media_id"], tmp_path / "c.bin", cancel=token)
        elapsed = time.monotonic() - t0
    timer.join()
    assert info.value.errcode == errcodes.E_CANCELLED
    assert elapsed < 3, f"cancel took {elapsed:.1f}s"
    assert not (tmp_path / "c.bin").exists()
    assert token.cancelled


def test_cancel_token_stops_a_stalled_upload(emu: Emulator) -> None:
    emu.fault("slow_headers", endpoint="media/upload", ms=20_000)
    token = wxmedia.CancelToken()
    timer = threading.Timer(0.5, token.cancel)
    with make_client(emu, timeouts=(30, 30)) as c:
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(wxmedia.Cancelled):
            c.upload("file", os.urandom(100_000), filename="c.bin", cancel=token)
        elapsed = time.monotonic() - t0
    timer.join()
    assert elapsed < 3, f"cancel took {elapsed:.1f}s"


def test_cancelled_token_refuses_to_start(client: wxmedia.Client, emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=1)
    token = wxmedia.CancelToken()
    token.cancel()
    with pytest.raises(wxmedia.Cancelled):
        client.download_bytes(media["media_id"], cancel=token)
    assert emu.stats()["requests"].get("media/get", 0) == 0


@pytest.mark.parametrize("where", ["main", "thread"])
@pytest.mark.parametrize("form", ["run", "submit", "wait"])
def test_cancel_token_stops_an_upload_by_url(emu: Emulator, form: str, where: str) -> None:
    """Waiting for WeChat's answer (run, submit) or polling a running job (wait); on the
    main thread (with the heartbeat) and on another; the job goes on and can be waited for."""
    size = 1000
    media = emu.add_media(size=size, seed=7, filename="src.bin")
    url = f"{emu.base_url}/__video/{media['media_id']}"
    md5 = hashlib.md5(generated(7, 0, size)).hexdigest()
    token = wxmedia.CancelToken()
    out: Dict[str, Any] = {}
    with make_client(emu, timeouts=(30, 30)) as c:
        if form == "wait":
            emu.fault("stall", endpoint="video", media_id=media["media_id"], after_bytes=0, ms=2000)
            jobid = c.submit_upload_by_url("file", url, "c.bin", md5=md5)
        else:
            emu.fault("slow_headers", endpoint="media/upload_by_url", ms=20_000)

        def work() -> None:
            t0 = time.monotonic()
            try:
                if form == "run":
                    c.upload_by_url("file", url, "c.bin", md5=md5, timeout=60, cancel=token)
                elif form == "submit":
                    c.submit_upload_by_url("file", url, "c.bin", md5=md5, cancel=token)
                else:
                    c.wait_upload_by_url(jobid, timeout=60, cancel=token)
            except BaseException as e:  # noqa: B902
                out["e"] = e
            out["elapsed"] = time.monotonic() - t0

        timer = threading.Timer(0.5, token.cancel)
        timer.start()
        if where == "main":
            work()
        else:
            t = threading.Thread(target=work)
            t.start()
            t.join(10)
            assert not t.is_alive()
        timer.join()
        e = out.get("e")
        assert isinstance(e, wxmedia.Cancelled), e
        assert e.errcode == errcodes.E_CANCELLED
        assert out["elapsed"] < 3, f"cancel took {out['elapsed']:.1f}s"
        if form == "wait":
            assert e.jobid == jobid
            assert c.wait_upload_by_url(jobid, timeout=30).media_id, "the job went on"
        with pytest.raises(wxmedia.Cancelled):  # a token stays cancelled
            c.upload_by_url("file", url, "c.bin", md5=md5, timeout=60, cancel=token)


def test_cancel_token_from_a_worker_thread_transfer(emu: Emulator) -> None:
    media = emu.add_media(size=MiB, seed=4)
    emu.fault("stall", media_id=media["media_id"], after_bytes=0, ms=20_000)
    token = wxmedia.CancelToken()
    out: Dict[str, BaseException] = {}
    with make_client(emu, timeouts=(30, 30)) as c:

        def work() -> None:
            try:
                c.download_bytes(media["media_id"], cancel=token)
            except BaseException as e:  # noqa: B902
                out["e"] = e

        t = threading.Thread(target=work)
        t.start()
        time.sleep(0.3)
        token.cancel()
        t.join(5)
    assert not t.is_alive()
    assert isinstance(out.get("e"), wxmedia.Cancelled)


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time, wxmedia
    base, token, media_id, dest, watch, what, with_progress = sys.argv[1:8]
    kw = dict(access_token=token, base_url=base, timeouts=(30, 30), cancel_on_interrupt=watch == "1")
    if what == "parallel":
        kw.update(parallelism=2, chunk_size=256 * 1024)
    c = wxmedia.Client("wecom", **kw)
    threads = set()
    def progress(done, total):
        threads.add(threading.current_thread().name)
        if done and not threads.intersection({"STARTED"}):
            threads.add("STARTED")
            print("STARTED", flush=True)
    prog = progress if with_progress == "1" else None
    if prog is None:
        print("STARTED", flush=True)
    t0 = time.monotonic()
    try:
        if what in ("path", "parallel"):
            c.download(media_id, dest, progress=prog)
        elif what == "stream":
            with open(dest + ".stream", "wb") as f:
                c.download(media_id, f, progress=prog)
        elif what == "bytes":
            c.download_bytes(media_id, progress=prog)
        elif what == "upload":
            c.upload("file", os.urandom(300_000), filename="u.bin", progress=prog)
        elif what == "url":
            c.upload_by_url("file", base + "/__video/" + media_id, "u.bin", md5="0" * 32, timeout=60)
        elif what == "url-submit":
            c.submit_upload_by_url("file", base + "/__video/" + media_id, "u.bin", md5="0" * 32)
    except KeyboardInterrupt:
        print("INTERRUPTED %.2f" % (time.monotonic() - t0), flush=True)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert threads <= {"MainThread", "STARTED"}, threads
        assert threading.enumerate() == [threading.main_thread()], threading.enumerate()
        sys.exit(42)
    print("FINISHED", flush=True)
    """
)

STALL = {"kind": "stall", "after_bytes": 65536, "ms": 15_000}


@pytest.mark.parametrize(
    "watch, what, with_progress, fault",
    [
        # the heartbeat: Ctrl-C works even while nothing arrives
        ("1", "path", "1", STALL),
        ("1", "path", "0", STALL),
        ("1", "stream", "0", STALL),
        ("1", "bytes", "1", STALL),
        ("1", "bytes", "0", STALL),
        ("1", "parallel", "0", STALL),
        ("1", "upload", "1", {"kind": "slow_headers", "endpoint": "media/upload", "ms": 15_000}),
        ("1", "upload", "0", {"kind": "slow_headers", "endpoint": "media/upload", "ms": 15_000}),
        # an upload by URL: the heartbeat while it waits for WeChat's answer, and for the job
        # (whose fetch of the URL stalls) between polls
        ("1", "url", "0", {"kind": "slow_headers", "endpoint": "media/upload_by_url", "ms": 15_000}),
        ("1", "url-submit", "0", {"kind": "slow_headers", "endpoint": "media/upload_by_url", "ms": 15_000}),
        ("1", "url", "0", {"kind": "stall", "endpoint": "video", "after_bytes": 0, "ms": 15_000}),
        # without the heartbeat: Ctrl-C lands in a callback and must not be swallowed by ctypes
        ("0", "path", "1", {"kind": "throttle", "bytes_per_sec": 100_000}),
    ],
    ids=[
        "stalled-path",
        "stalled-path-no-progress",
        "stalled-stream-no-progress",
        "stalled-bytes",
        "stalled-bytes-no-progress",
        "stalled-parallel-no-progress",
        "stalled-upload",
        "stalled-upload-no-progress",
        "stalled-upload-by-url",
        "stalled-submit-upload-by-url",
        "polling-upload-by-url",
        "trickling-without-heartbeat",
    ],
)
def test_ctrl_c_stops_a_transfer(
    emu: Emulator, tmp_path: Path, watch: str, what: str, with_progress: str, fault: Dict[str, Any]
) -> None:
    media = emu.add_media(size=MiB, seed=5)
    if fault.get("endpoint", "media/get") in ("media/get", "video"):
        fault = dict(fault, media_id=media["media_id"])
    emu.fault(**fault)
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(wxmedia.__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, str(script), emu.base_url, TOKEN, media["media_id"], str(tmp_path / "out.bin"), watch,
         what, with_progress],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "STARTED", proc.stderr.read() if proc.stderr else line
    time.sleep(0.5)  # now inside the stall (no callback but the heartbeat runs) or the trickle
    out, err, took = interrupt(proc)
    assert proc.returncode == 42, (out, err)
    assert "INTERRUPTED" in out
    assert took < 3
    assert not (tmp_path / "out.bin").exists()
    assert "Exception ignored" not in err, err


# --- an application's signal handler raising during a transfer ------------------------------------
@pytest.mark.parametrize("what", ["path", "bytes", "upload", "url", "url-wait"])
def test_a_signal_handlers_exception_stops_a_stalled_transfer(emu: Emulator, tmp_path: Path, what: str) -> None:
    """Raised at a trampoline's first instruction, where ctypes would swallow it: it comes back."""
    media = emu.add_media(size=MiB, seed=6)
    url = f"{emu.base_url}/__video/{media['media_id']}"
    if what == "upload":
        emu.fault("slow_headers", endpoint="media/upload", ms=15_000)
    elif what == "url":  # waiting for WeChat's answer
        emu.fault("slow_headers", endpoint="media/upload_by_url", ms=15_000)
    elif what == "url-wait":  # polling a job whose fetch stalls
        emu.fault("stall", endpoint="video", media_id=media["media_id"], after_bytes=0, ms=15_000)
    else:
        emu.fault("stall", media_id=media["media_id"], after_bytes=65536, ms=15_000)

    def handler(signum: int, frame: Any) -> None:
        raise Boom("SIGUSR1")

    hook = sys.unraisablehook
    old = signal.signal(signal.SIGUSR1, handler)
    kill = threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1))
    try:
        with make_client(emu, timeouts=(30, 30)) as c:
            kill.start()
            t0 = time.monotonic()
            with pytest.raises(Boom) as info:
                if what == "path":
                    c.download(media["media_id"], tmp_path / "s.bin")
                elif what == "bytes":
                    c.download_bytes(media["media_id"])
                elif what == "upload":
                    c.upload("file", os.urandom(300_000), filename="s.bin")
                elif what == "url":
                    c.upload_by_url("file", url, "s.bin", md5="0" * 32, timeout=60)
                else:
                    c.wait_upload_by_url(c.submit_upload_by_url("file", url, "s.bin", md5="0" * 32), timeout=60)
            elapsed = time.monotonic() - t0
    finally:
        kill.join()
        signal.signal(signal.SIGUSR1, old)
    assert elapsed < 3, f"the handler's exception took {elapsed:.1f}s to stop the transfer"
    assert "handler" in _frames(info.value)
    assert sys.unraisablehook is hook
    assert not (tmp_path / "s.bin").exists()
