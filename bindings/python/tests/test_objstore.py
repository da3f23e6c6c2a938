"""Client.download_to_object (issue 23): the emulator as WeChat, versitygw (a real
S3-compatible server that checks signatures) as the object store.

Objects are read back with boto3 (signed GETs) and compared by sha256 with the
media; "nothing left behind" is ListMultipartUploads answering none.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import EventRecorder, make_client
from s3gw import S3_ACCESS, S3_REGION, S3_SECRET, Versitygw
from wxemu import SECRETS, TOKEN, Emulator, interrupt, wait_for

import wxmedia
import wxmedia.aio
from wxmedia import errcodes

MiB = 1 << 20
WRONG_SECRET = "wrong-s3-secret-Pz41Kd"
SECRETS.add(WRONG_SECRET)


def make_store(gw: Versitygw, **kw: Any) -> wxmedia.ObjectStore:
    args: Dict[str, Any] = dict(region=S3_REGION, access_key=S3_ACCESS, secret_key=S3_SECRET, part_size=5 * MiB)
    args.update(kw)
    return wxmedia.ObjectStore(gw.endpoint, **args)


def read_back(gw: Versitygw, bucket: str, key: str) -> Tuple[str, int, Dict[str, Any]]:
    """sha256, length and the headers of the object, by a signed GET."""
    r = gw.s3.get_object(Bucket=bucket, Key=key)
    h = hashlib.sha256()
    n = 0
    for block in r["Body"].iter_chunks(1 << 20):
        h.update(block)
        n += len(block)
    return h.hexdigest(), n, r


def kept_parts(gw: Versitygw, bucket: str, key: str) -> int:
    """Media parts (not the library's marker part) of the upload in progress for ``key``."""
    for u in gw.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        if u["Key"] == key:
            parts = gw.s3.list_parts(Bucket=bucket, Key=key, UploadId=u["UploadId"]).get("Parts", [])
            return sum(1 for p in parts if p["PartNumber"] < 10_000)
    return 0


def fetched(emu: Emulator, media_id: str, size: int) -> int:
    """The media bytes the emulator served (a Range asked for may pass the end)."""
    return sum(min(r["end"], size - 1) - r["start"] + 1 for r in emu.ranges(media_id))


class Stop(Exception):
    """Raised by a test's progress callback."""


# --- media into objects ---------------------------------------------------------------------------
@pytest.mark.parametrize("parallelism", [1, 4])
@pytest.mark.parametrize("size", [MiB, 12 * MiB + 5], ids=["1MiB", "12MiB"])
def test_media_becomes_an_identical_object(
    emu: Emulator, versitygw: Versitygw, bucket: str, wxm_events: EventRecorder, size: int, parallelism: int
) -> None:
    media = emu.add_media(size=size, seed=size + parallelism, filename="报告 1.pdf", content_type="application/pdf")
    mid = media["media_id"]
    calls: List[Tuple[int, Optional[int]]] = []
    with make_client(emu, parallelism=parallelism) as c:
        info = c.download_to_object(
            mid, make_store(versitygw), bucket, "in/report.pdf", progress=lambda d, t: calls.append((d, t))
        )
    assert info[:4] == (size, "application/pdf", "报告 1.pdf", None)
    sha, n, obj = read_back(versitygw, bucket, "in/report.pdf")
    assert (sha, n) == (media["sha256"], size)
    assert obj["ContentType"] == "application/pdf"
    assert "filename*=UTF-8''%E6%8A%A5%E5%91%8A%201.pdf" in obj["ContentDisposition"]
    assert versitygw.uploads(bucket) == []
    # Every byte fetched from WeChat once; the parts' bytes sent once.
    ranges = emu.ranges(mid)
    assert fetched(emu, mid, size) == size
    k = info.counters
    assert k is not None and k.transfer_id > 0 and k.elapsed > 0
    assert (k.bytes_received, k.resumed_from) == (size, 0)
    # The parts, plus the small bodies of a multipart upload (its resume marker, the completion).
    assert size <= k.bytes_sent < size + 64 * 1024, k
    store_requests = 1 if size <= 5 * MiB else 3 + 2  # a PutObject; or create, 3 parts, complete
    assert k.requests >= len(ranges) + store_requests, k
    assert calls and calls[-1] == (size, size)
    # The store's requests are events naming bucket/key (never a presigned query).
    endpoints = {getattr(r, "wxm_endpoint", None) for r in wxm_events.events()}
    assert f"{bucket}/in/report.pdf" in endpoints, endpoints


def test_credentials_and_endpoint_from_the_environment(
    emu: Emulator, versitygw: Versitygw, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset fields are the library's to fill, from the AWS tools' variables."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", versitygw.endpoint)
    monkeypatch.setenv("AWS_REGION", S3_REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    store = wxmedia.ObjectStore()
    assert "from the environment" in repr(store) and store.endpoint is None
    media = emu.add_media(size=6 * MiB + 1, seed=23)
    with make_client(emu) as c:
        info = c.download_to_object(media["media_id"], store, bucket, "env.bin")
    assert info.size == 6 * MiB + 1
    assert read_back(versitygw, bucket, "env.bin")[0] == media["sha256"]
    # Read when each transfer starts: without them, no credentials anywhere.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with make_client(emu) as c:
        with pytest.raises(wxmedia.InvalidArgument):
            c.download_to_object(media["media_id"], store, bucket, "env2.bin")


# --- failures ----------------------------------------------------------------------------------------
def test_wrong_credentials_fail_fast_without_the_secret(emu: Emulator, versitygw: Versitygw, bucket: str) -> None:
    media = emu.add_media(size=6 * MiB, seed=13)
    store = make_store(versitygw, secret_key=WRONG_SECRET)
    assert WRONG_SECRET not in repr(store) and S3_SECRET not in repr(store)
    with make_client(emu) as c:
        t0 = time.monotonic()
        with pytest.raises(wxmedia.ObjectStoreAuthError) as info:
            c.download_to_object(media["media_id"], store, bucket, "k")
        elapsed = time.monotonic() - t0
        e = info.value
        assert isinstance(e, wxmedia.ObjectStoreError) and e.errcode == errcodes.E_OBJECT_STORE_AUTH
        assert elapsed < 2, f"not retried, yet took {elapsed:.1f}s"
        assert "SignatureDoesNotMatch" in e.errmsg, e.errmsg
        for text in (str(e), repr(e), e.errmsg):
            assert WRONG_SECRET not in text and S3_SECRET not in text
        assert e.counters is not None
        # Nothing fetched from WeChat, nothing created.
        assert emu.ranges(media["media_id"]) == []
        assert versitygw.uploads(bucket) == [] and versitygw.keys(bucket) == []
        # An unknown access key too.
        with pytest.raises(wxmedia.ObjectStoreAuthError):
            c.download_to_object(media["media_id"], make_store(versitygw, access_key="nobody"), bucket, "k")


def test_a_missing_bucket(emu: Emulator, versitygw: Versitygw) -> None:
    media = emu.add_media(size=MiB, seed=14)
    with make_client(emu) as c:
        t0 = time.monotonic()
        with pytest.raises(wxmedia.NoSuchBucket) as info:
            c.download_to_object(media["media_id"], make_store(versitygw), "no-such-bucket", "k")
    assert time.monotonic() - t0 < 2
    assert info.value.errcode == errcodes.E_NO_SUCH_BUCKET and "no-such-bucket" in info.value.errmsg
    assert isinstance(info.value, wxmedia.ObjectStoreError)


def test_error_classes() -> None:
    err = wxmedia.errors.error_class
    assert err(errcodes.E_OBJECT_STORE) is wxmedia.ObjectStoreError
    assert err(errcodes.E_OBJECT_STORE_AUTH) is wxmedia.ObjectStoreAuthError
    assert err(errcodes.E_NO_SUCH_BUCKET) is wxmedia.NoSuchBucket
    assert issubclass(wxmedia.ObjectStoreAuthError, wxmedia.ObjectStoreError)
    assert issubclass(wxmedia.NoSuchBucket, wxmedia.ObjectStoreError)
    assert errcodes.OBJECT_STORE_CODES == {-1015, -1016, -1017}


# --- stops: a progress callback, a CancelToken, a signal handler; and a resume -----------------------
def slow_media(emu: Emulator, size: int, seed: int, **kw: Any) -> Dict[str, Any]:
    media = emu.add_media(size=size, seed=seed, **kw)
    emu.fault("throttle", media_id=media["media_id"], bytes_per_sec=20_000_000, count=10_000)
    return media


@pytest.mark.parametrize("keep", [False, True], ids=["aborted", "kept-then-resumed"])
def test_a_raising_progress_aborts_the_upload(emu: Emulator, versitygw: Versitygw, bucket: str, keep: bool) -> None:
    size = 23 * MiB + 5
    media = slow_media(emu, size, 15, encrypted=True)
    seen = []

    def progress(done: int, total: Optional[int]) -> None:
        # Stop once the upload holds a part: there is something to abort (or keep).
        if done >= 5 * MiB and kept_parts(versitygw, bucket, "stopped") >= 1:
            seen.append(done)
            raise Stop

    store = make_store(versitygw, keep_parts_on_failure=keep)
    with make_client(emu, parallelism=2, chunk_size=MiB) as c:
        with pytest.raises(Stop):  # the callback's own exception, unchanged
            c.download_to_object(media["media_id"], store, bucket, "stopped", progress=progress)
        assert seen
        assert versitygw.keys(bucket) == []
        if not keep:
            assert versitygw.uploads(bucket) == [], "the upload was aborted"
            return
        assert versitygw.uploads(bucket) == ["stopped"], "the upload was kept"
        emu.reset()
        info = c.download_to_object(media["media_id"], store, bucket, "stopped")
    assert info.counters is not None and info.counters.resumed_from >= 5 * MiB
    missing = size - info.counters.resumed_from
    assert fetched(emu, media["media_id"], size) == missing, "only the missing parts were fetched"
    assert read_back(versitygw, bucket, "stopped")[0] == media["sha256"]
    assert versitygw.uploads(bucket) == []


def test_a_cancel_token_aborts_the_upload(emu: Emulator, versitygw: Versitygw, bucket: str) -> None:
    media = slow_media(emu, 30 * MiB, 16)
    token = wxmedia.CancelToken()

    def cancel_once_a_part_is_in() -> None:
        wait_for(lambda: kept_parts(versitygw, bucket, "cancelled") >= 1, timeout=30)
        token.cancel()

    t = threading.Thread(target=cancel_once_a_part_is_in)
    with make_client(emu, parallelism=2, chunk_size=MiB) as c:
        t.start()
        try:
            with pytest.raises(wxmedia.Cancelled) as info:
                c.download_to_object(media["media_id"], make_store(versitygw), bucket, "cancelled", cancel=token)
        finally:
            t.join()
    assert info.value.counters is not None and info.value.counters.bytes_sent >= 5 * MiB
    assert versitygw.uploads(bucket) == [] and versitygw.keys(bucket) == []


def test_a_signal_handlers_exception_stops_a_stalled_transfer(
    emu: Emulator, versitygw: Versitygw, bucket: str
) -> None:
    """The heartbeat lets a signal handler (Ctrl-C's, or this one) in on the main thread,
    although WeChat stalls and no progress callable is given."""
    media = emu.add_media(size=12 * MiB, seed=17)
    emu.fault("stall", media_id=media["media_id"], after_bytes=65536, ms=15_000)

    def handler(signum: int, frame: Any) -> None:
        raise Stop("SIGUSR1")

    old = signal.signal(signal.SIGUSR1, handler)
    kill = threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1))
    try:
        with make_client(emu, timeouts=(30, 30)) as c:
            kill.start()
            t0 = time.monotonic()
            with pytest.raises(Stop):
                c.download_to_object(media["media_id"], make_store(versitygw), bucket, "stalled")
            elapsed = time.monotonic() - t0
    finally:
        kill.join()
        signal.signal(signal.SIGUSR1, old)
    assert elapsed < 3, f"the handler's exception took {elapsed:.1f}s to stop the transfer"
    assert versitygw.uploads(bucket) == [] and versitygw.keys(bucket) == []


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, wxmedia
    base, token, media_id, endpoint, access, secret, bucket = sys.argv[1:8]
    c = wxmedia.Client("wecom", access_token=token, base_url=base, timeouts=(30, 30))
    store = wxmedia.ObjectStore(endpoint, access_key=access, secret_key=secret, part_size=5 << 20)
    print("STARTED", flush=True)
    t0 = time.monotonic()
    try:
        c.download_to_object(media_id, store, bucket, "ctrl-c")
    except KeyboardInterrupt:
        print("INTERRUPTED %.2f" % (time.monotonic() - t0), flush=True)
        assert threading.enumerate() == [threading.main_thread()], threading.enumerate()
        sys.exit(42)
    print("FINISHED", flush=True)
    """
)


def test_ctrl_c_stops_a_stalled_transfer_and_aborts_its_upload(
    emu: Emulator, versitygw: Versitygw, bucket: str, tmp_path: Path
) -> None:
    """A real SIGINT to a process whose main thread waits in download_to_object:
    KeyboardInterrupt, quickly, with the upload aborted."""
    media = emu.add_media(size=12 * MiB, seed=21)
    # The second request (the second part) stalls: by then the first part is in the store, so
    # there is an upload to abort.  Faults are taken in order: a harmless one for the first.
    emu.fault("throttle", media_id=media["media_id"], bytes_per_sec=1 << 30)
    emu.fault("stall", media_id=media["media_id"], after_bytes=65536, ms=15_000)
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(wxmedia.__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, str(script), emu.base_url, TOKEN, media["media_id"], versitygw.endpoint, S3_ACCESS,
         S3_SECRET, bucket],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "STARTED", proc.stderr.read() if proc.stderr else line
    started = wait_for(lambda: kept_parts(versitygw, bucket, "ctrl-c") >= 1, timeout=20)
    time.sleep(0.3)  # inside the stall: nothing but the heartbeat runs Python
    out, err, took = interrupt(proc)
    assert proc.returncode == 42, (out, err)
    assert took < 3
    assert "Exception ignored" not in err and S3_SECRET not in err + out, err
    assert started, "no part reached the store before the stall"
    assert versitygw.uploads(bucket) == [] and versitygw.keys(bucket) == []


# --- asyncio -------------------------------------------------------------------------------------------
def aio_client(emu: Emulator, **kw: Any) -> wxmedia.aio.Client:
    return wxmedia.aio.Client(emu.platform, access_token=TOKEN, base_url=emu.base_url, timeouts=(5, 5), **kw)


def test_aio_download_to_object(emu: Emulator, versitygw: Versitygw, bucket: str) -> None:
    media = emu.add_media(size=12 * MiB + 5, seed=18, content_type="video/mp4")
    done: List[int] = []

    async def progress(d: int, t: Optional[int]) -> None:
        done.append(d)

    async def main() -> wxmedia.MediaInfo:
        async with aio_client(emu, parallelism=4) as c:
            return await c.download_to_object(
                media["media_id"], make_store(versitygw), bucket, "aio.mp4", progress=progress
            )

    info = asyncio.run(main())
    assert info.size == 12 * MiB + 5 and info.counters is not None
    assert info.size <= info.counters.bytes_sent < info.size + 64 * 1024
    sha, _, obj = read_back(versitygw, bucket, "aio.mp4")
    assert sha == media["sha256"] and obj["ContentType"] == "video/mp4"
    assert done and done[-1] == info.size


def test_aio_cancelling_the_task_aborts_the_upload(emu: Emulator, versitygw: Versitygw, bucket: str) -> None:
    media = slow_media(emu, 30 * MiB, 19)

    async def main() -> None:
        async with aio_client(emu, parallelism=2, chunk_size=MiB) as c:
            task = asyncio.ensure_future(
                c.download_to_object(media["media_id"], make_store(versitygw), bucket, "aio-cancelled")
            )
            while kept_parts(versitygw, bucket, "aio-cancelled") < 1:
                assert not task.done(), task
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    # Once the await has raised, the transfer is over and its upload aborted.
    assert versitygw.uploads(bucket) == [] and versitygw.keys(bucket) == []


# --- the store's own checks ----------------------------------------------------------------------------
def test_object_store_settings() -> None:
    s = wxmedia.ObjectStore(
        "http://127.0.0.1:9",
        region="eu-west-1",
        access_key="AKEXAMPLE",
        secret_key="s3cret-pw",
        session_token="tok-s3cret-pw",
        path_style=True,
        keep_parts_on_failure=True,
        part_size=16 * MiB,
    )
    assert (s.endpoint, s.region, s.access_key, s.path_style, s.keep_parts_on_failure, s.part_size) == (
        "http://127.0.0.1:9", "eu-west-1", "AKEXAMPLE", True, True, 16 * MiB,
    )
    text = repr(s)
    assert "s3cret-pw" not in text and "AKEXAMPLE" in text and "with session token" in text
    assert not hasattr(s, "secret_key") and not hasattr(s, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert wxmedia.ObjectStore().part_size is None
    # The library's refusals.
    for bad in (dict(part_size=4 * MiB), dict(part_size=5 * MiB + 1), dict(endpoint="ftp://x")):
        with pytest.raises(wxmedia.InvalidArgument) as info:
            wxmedia.ObjectStore(**bad)  # type: ignore[arg-type]
        assert "s3cret" not in str(info.value)
    with pytest.raises(wxmedia.InvalidArgument):
        wxmedia.ObjectStore(access_key="", secret_key="s3cret-pw")
    # Python's own.
    with pytest.raises(TypeError, match="together"):
        wxmedia.ObjectStore(access_key="AKEXAMPLE")
    with pytest.raises(TypeError, match="session_token"):
        wxmedia.ObjectStore(session_token="tok")
    with pytest.raises(TypeError):
        wxmedia.ObjectStore(path_style=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wxmedia.ObjectStore(secret_key=b"x", access_key="a")  # type: ignore[arg-type]


def test_download_to_object_arguments(client: wxmedia.Client, emu: Emulator) -> None:
    media = emu.add_media(size=100, seed=1)
    store = wxmedia.ObjectStore("http://127.0.0.1:9", access_key="a", secret_key="s3cret-pw")
    with pytest.raises(TypeError, match="ObjectStore"):
        client.download_to_object(media["media_id"], "s3://b/k", "b", "k")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.download_to_object(media["media_id"], store, "b", "k\0")
    with pytest.raises(wxmedia.InvalidArgument):  # an empty key: the library's refusal
        client.download_to_object(media["media_id"], store, "b", "")
    with pytest.raises(TypeError):
        client.download_to_object(media["media_id"], store, "b", "k", progress=3)  # type: ignore[arg-type]
