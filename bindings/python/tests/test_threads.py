"""Which thread runs what, Ctrl-C during uploads by URL, and the SIGINT handler swap.

Every call runs on the calling thread, the main thread included, and the client
starts no thread of its own: while the library waits (a stalled server, an
upload waiting for its answer, an upload by URL waiting for WeChat's job) it
calls the client's progress trampoline about every 100 ms, where Python runs
its signal handlers.  Python's default SIGINT handler is swapped once per
outermost main-thread upload from a reader and restored exactly.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest

import wxmedia
from wxmedia import _ffi, _transfer
from wxmedia import client as client_module
from wxemu import TOKEN, Emulator, generated, sha256
from conftest import make_client

MiB = 1024 * 1024
MAIN = threading.main_thread().name


@pytest.fixture(autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """Every test here ends with no thread of its own left, and the SIGINT handler and
    ``sys.unraisablehook`` as they were."""
    before = set(threading.enumerate())
    hook = sys.unraisablehook
    yield
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.unraisablehook is hook


def record_thread(names: List[str]) -> Callable[[int, Optional[int]], None]:
    def progress(done: int, total: Optional[int]) -> None:
        names.append(threading.current_thread().name)

    return progress


class Source(NamedTuple):
    """A media the emulator serves for an upload by URL."""

    media_id: str
    url: str
    md5: str


def url_source(emu: Emulator, size: int, seed: int) -> Source:
    m = emu.add_media(size=size, seed=seed, filename="src.bin")
    return Source(m["media_id"], f"{emu.base_url}/__video/{m['media_id']}", hashlib.md5(generated(seed, 0, size)).hexdigest())


def slow_source(emu: Emulator, seed: int, ms: int) -> Source:
    """A source whose fetch by WeChat's job stalls ``ms`` before its first byte: the job
    runs that long, and a wait polls meanwhile."""
    src = url_source(emu, 1000, seed)
    emu.fault("stall", endpoint="video", media_id=src.media_id, after_bytes=0, ms=ms)
    return src


def upload_by_url(c: wxmedia.Client, emu: Emulator, seed: int) -> None:
    src = url_source(emu, 1000, seed)
    assert c.upload_by_url("file", src.url, "u.bin", md5=src.md5, timeout=30).media_id


# --- spies -------------------------------------------------------------------------------------------
class Call(NamedTuple):
    """One call of a library function, as client.py made it."""

    name: str  # without the "wxm_url_upload_" prefix
    thread: str
    start: float
    end: float
    args: Tuple[Any, ...]


@pytest.fixture
def url_calls(monkeypatch: pytest.MonkeyPatch) -> List[Call]:
    """The calls of wxm_url_upload_set_progress, _submit and _run (which thread, when)."""
    calls: List[Call] = []
    lock = threading.Lock()
    for short in ("set_progress", "submit", "run"):
        real = getattr(_ffi.lib, "wxm_url_upload_" + short)

        def spy(*args: Any, _real: Any = real, _short: str = short) -> int:
            start = time.monotonic()
            try:
                return int(_real(*args))
            finally:
                call = Call(_short, threading.current_thread().name, start, time.monotonic(), args)
                with lock:
                    calls.append(call)

        monkeypatch.setattr(_ffi.lib, "wxm_url_upload_" + short, spy)
    return calls


class Beat(NamedTuple):
    thread: str
    done: int
    total: int
    sigint_handler: Any
    unraisablehook: Any


class Heartbeats(List[Beat]):
    """Every call of the client's progress trampoline, replaced by :attr:`trampoline`."""

    trampoline: Any = None


@pytest.fixture
def heartbeats(monkeypatch: pytest.MonkeyPatch) -> Heartbeats:
    """Records the calls of the client's progress trampoline (which then does its usual work)."""
    beats = Heartbeats()

    def impl(user_data: Optional[int], done: int, total: int) -> int:
        beats.append(
            Beat(threading.current_thread().name, done, total, signal.getsignal(signal.SIGINT), sys.unraisablehook)
        )
        return _transfer._progress_impl(user_data, done, total)

    beats.trampoline = _ffi.PROGRESS_FN(impl)
    monkeypatch.setattr(client_module, "PROGRESS_TRAMPOLINE", beats.trampoline)
    return beats


@pytest.fixture
def thread_starts(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """The names of the Python threads started meanwhile."""
    started: List[str] = []
    real = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


# --- which thread runs what ----------------------------------------------------------------------
def test_downloads_and_uploads_run_on_the_main_thread(emu: Emulator, thread_starts: List[str]) -> None:
    """No hand-off: callbacks run on the calling thread, and no thread starts."""
    media = emu.add_media(size=300_000, seed=10)
    names: List[str] = []
    with make_client(emu) as c:
        for _ in range(3):
            data, _ = c.download_bytes(media["media_id"], progress=record_thread(names))
            assert sha256(data) == media["sha256"]
        c.upload("file", os.urandom(100_000), filename="u.bin", progress=record_thread(names))
    assert names and set(names) == {MAIN}
    assert thread_starts == []


def test_uploads_by_url_run_on_the_main_thread_with_a_heartbeat(
    emu: Emulator, url_calls: List[Call], heartbeats: Heartbeats, thread_starts: List[str]
) -> None:
    """The run, submit-only and wait forms: the C call on this very thread, no thread
    started, and the heartbeat registered: (0, 0) on this thread while the job runs."""
    src = url_source(emu, 1000, 70)
    before = threading.enumerate()
    with make_client(emu) as c:
        assert c.upload_by_url("file", src.url, "u.bin", md5=src.md5, timeout=30).media_id
        jobid = c.submit_upload_by_url("file", src.url, "v.bin", md5=src.md5)
        res = c.wait_upload_by_url(jobid, timeout=30)
        assert res.media_id and res.jobid == jobid
        assert threading.enumerate() == before
    assert thread_starts == []
    assert [(call.name, call.thread) for call in url_calls] == [
        ("set_progress", MAIN),
        ("run", MAIN),
        ("set_progress", MAIN),
        ("submit", MAIN),
        ("set_progress", MAIN),
        ("run", MAIN),
    ]
    for call in url_calls:
        if call.name == "set_progress":
            assert call.args[1] is heartbeats.trampoline and isinstance(call.args[2], int)
    # each job takes at least 300 ms, polled from the calling thread with pauses
    assert len(heartbeats) >= 2, heartbeats
    assert {(b.thread, b.done, b.total) for b in heartbeats} == {(MAIN, 0, 0)}
    assert all(b.unraisablehook is _transfer._GUARD.hook for b in heartbeats), "the guard watches for Ctrl-C"


def test_calling_thread_mode_registers_no_heartbeat(
    emu: Emulator, url_calls: List[Call], thread_starts: List[str]
) -> None:
    """cancel_on_interrupt=False: no heartbeat, no thread, and uploads by URL work as ever."""
    media = emu.add_media(size=300_000, seed=16)
    src = url_source(emu, 1000, 71)
    names: List[str] = []
    with make_client(emu, cancel_on_interrupt=False) as c:
        c.download_bytes(media["media_id"], progress=record_thread(names))
        assert c.upload_by_url("file", src.url, "u.bin", md5=src.md5, timeout=30).media_id
        jobid = c.submit_upload_by_url("file", src.url, "v.bin", md5=src.md5)
        assert c.wait_upload_by_url(jobid, timeout=30).media_id
    assert set(names) == {MAIN}
    assert [(call.name, call.thread) for call in url_calls] == [("run", MAIN), ("submit", MAIN), ("run", MAIN)]
    assert thread_starts == []


def test_other_threads_run_their_own_transfers_concurrently(emu: Emulator) -> None:
    """Calls from non-main threads are neither serialised nor handed to another thread."""
    medias = [emu.add_media(size=200_000, seed=20 + i) for i in range(3)]
    for m in medias:
        emu.fault("stall", media_id=m["media_id"], after_bytes=0, ms=1000)
    names: Dict[int, List[str]] = {i: [] for i in range(3)}
    errors: List[BaseException] = []
    with make_client(emu, timeouts=(10, 10)) as c:

        def work(i: int) -> None:
            try:
                data, _ = c.download_bytes(medias[i]["media_id"], progress=record_thread(names[i]))
                assert sha256(data) == medias[i]["sha256"]
            except BaseException as e:  # noqa: B902
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,), name=f"user-{i}") for i in range(3)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        elapsed = time.monotonic() - t0
    assert not errors, errors
    assert elapsed < 2.5, f"three 1 s stalls took {elapsed:.1f}s: the transfers were serialised"
    for i in range(3):
        assert set(names[i]) == {f"user-{i}"}


def test_uploads_by_url_on_several_threads_at_once(emu: Emulator, url_calls: List[Call]) -> None:
    """Three other threads and the main thread, each with a job that runs 1.5 s: every
    call runs on its own thread, all at once; only the main thread's has a heartbeat."""
    sources = [slow_source(emu, 90 + i, 1500) for i in range(4)]
    results: Dict[str, str] = {}
    errors: List[BaseException] = []
    with make_client(emu, timeouts=(10, 10)) as c:

        def work(i: int) -> None:
            try:
                src = sources[i]
                res = c.upload_by_url("file", src.url, f"u{i}.bin", md5=src.md5, timeout=30)
                results[threading.current_thread().name] = res.media_id
            except BaseException as e:  # noqa: B902
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,), name=f"user-{i}") for i in range(3)]
        for t in threads:
            t.start()
        work(3)
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert sorted(results) == [MAIN, "user-0", "user-1", "user-2"] and all(results.values())
    runs = [call for call in url_calls if call.name == "run"]
    assert sorted(call.thread for call in runs) == sorted(results)
    assert [call.thread for call in url_calls if call.name == "set_progress"] == [MAIN]
    assert all(call.end - call.start >= 1.4 for call in runs), "the jobs did not stall"
    assert max(call.start for call in runs) < min(call.end for call in runs), "the calls were serialised"


def test_main_and_other_threads_together(emu: Emulator) -> None:
    media = emu.add_media(size=MiB, seed=17)
    out: Dict[str, str] = {}
    with make_client(emu, chunk_size=128 * 1024) as c:
        t = threading.Thread(target=lambda: out.update(t=sha256(c.download_bytes(media["media_id"])[0])))
        t.start()
        out["main"] = sha256(c.download_bytes(media["media_id"])[0])
        t.join(30)
    assert out == {"t": media["sha256"], "main": media["sha256"]}


@pytest.mark.parametrize("what", ["download", "upload_by_url"])
@pytest.mark.parametrize("watch", [True, False], ids=["heartbeat", "no-heartbeat"])
def test_gil_is_released_while_waiting(emu: Emulator, tmp_path: Path, watch: bool, what: str) -> None:
    media = emu.add_media(size=MiB, seed=18)
    emu.fault("stall", media_id=media["media_id"], after_bytes=0, ms=1000)
    src = slow_source(emu, 19, 1000)
    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    with make_client(emu, cancel_on_interrupt=watch) as c:
        t.start()
        time.sleep(0.05)
        before = counter[0]
        t0 = time.monotonic()
        if what == "download":
            c.download(media["media_id"], tmp_path / "g.bin")
        else:
            assert c.upload_by_url("file", src.url, "g.bin", md5=src.md5, timeout=30).media_id
        elapsed = time.monotonic() - t0
        during = counter[0] - before
    stop.set()
    t.join()
    assert elapsed >= 0.9, "the stall did not happen"
    assert during > 100_000, f"the counter thread advanced only {during} times"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_from_another_thread_knows_its_main_thread() -> None:
    """The thread that forked is the child's main thread: its calls get the heartbeat."""
    status: List[int] = []

    def fork() -> None:
        pid = os.fork()
        if pid == 0:  # the child: only this thread exists
            ok = _transfer._main_ident == threading.get_ident() == threading.main_thread().ident
            os._exit(0 if ok else 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(st)
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    t = threading.Thread(target=fork)
    t.start()
    t.join(20)
    assert status, "the forked child hung"
    assert os.WIFEXITED(status[0]) and os.WEXITSTATUS(status[0]) == 0, status
    assert _transfer._main_ident == threading.main_thread().ident, "the parent's is unchanged"


# --- close --------------------------------------------------------------------------------------------
def test_close_while_idle_leaves_no_thread(emu: Emulator) -> None:
    before = threading.active_count()
    c = make_client(emu)
    c.close()
    c.close()  # idempotent
    assert threading.active_count() == before


def test_close_after_use(emu: Emulator, tmp_path: Path, thread_starts: List[str]) -> None:
    media = emu.add_media(size=200_000, seed=12)
    src = url_source(emu, 1000, 80)
    c = make_client(emu)
    c.download(media["media_id"], tmp_path / "a.bin")
    c.upload("file", os.urandom(10_000), filename="u.bin")
    assert c.upload_by_url("file", src.url, "u.bin", md5=src.md5, timeout=30).media_id
    jobid = c.submit_upload_by_url("file", src.url, "v.bin", md5=src.md5)
    c.close()
    assert c.closed
    with pytest.raises(wxmedia.StateError):
        c.download_bytes(media["media_id"])
    with pytest.raises(wxmedia.StateError):
        c.upload_by_url("file", src.url, "u.bin", md5=src.md5, timeout=30)
    with pytest.raises(wxmedia.StateError):
        c.wait_upload_by_url(jobid, timeout=30)
    c.close()  # idempotent
    assert thread_starts == []
    with make_client(emu) as c2:  # the job went on regardless
        assert c2.wait_upload_by_url(jobid, timeout=30).media_id


def test_a_dropped_client_is_freed(emu: Emulator) -> None:
    """Nothing (no thread, no registry entry) keeps a used client alive."""
    c = make_client(emu)
    upload_by_url(c, emu, 13)
    c.download_bytes(emu.add_media(size=1000, seed=13)["media_id"])
    ref = weakref.ref(c)
    del c  # no gc.collect(): not even a reference cycle holds it
    assert ref() is None


def test_close_from_another_thread_during_a_transfer(emu: Emulator, tmp_path: Path) -> None:
    """The running transfer finishes."""
    media = emu.add_media(size=MiB, seed=14)
    emu.fault("stall", media_id=media["media_id"], after_bytes=65536, ms=800)
    c = make_client(emu)
    closer = threading.Timer(0.3, c.close)
    closer.start()
    info = c.download(media["media_id"], tmp_path / "s.bin")
    closer.join()
    assert info.size == MiB
    assert c.closed


@pytest.mark.parametrize("form", ["run", "wait"])
def test_close_from_another_thread_during_an_upload_by_url(emu: Emulator, form: str) -> None:
    """The running upload by URL (waiting for WeChat's answer, or for the job) finishes."""
    src = slow_source(emu, 81, 1000) if form == "wait" else url_source(emu, 1000, 81)
    c = make_client(emu)
    try:
        if form == "run":
            emu.fault("slow_headers", endpoint="media/upload_by_url", ms=800)
            call: Callable[[], wxmedia.UploadResult] = lambda: c.upload_by_url(  # noqa: E731
                "file", src.url, "u.bin", md5=src.md5, timeout=30
            )
        else:
            jobid = c.submit_upload_by_url("file", src.url, "u.bin", md5=src.md5)
            call = lambda: c.wait_upload_by_url(jobid, timeout=30)  # noqa: E731
        closer = threading.Timer(0.3, c.close)
        closer.start()
        t0 = time.monotonic()
        res = call()
        elapsed = time.monotonic() - t0
        closer.join()
    finally:
        c.close()
    assert res.media_id
    assert elapsed >= 0.7, "closed before the upload was waiting"
    assert c.closed


# --- the SIGINT handler -------------------------------------------------------------------------
class CountingSignal:
    """Stands in for the ``_signal`` module in _transfer, counting signal() calls."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def getsignal(self, signum: int) -> Any:
        return self.real.getsignal(signum)

    def signal(self, signum: int, handler: Any) -> Any:
        self.calls += 1
        return self.real.signal(signum, handler)


@pytest.fixture
def counting_signal(monkeypatch: pytest.MonkeyPatch) -> CountingSignal:
    counting = CountingSignal(getattr(_transfer, "_sig"))
    monkeypatch.setattr(_transfer, "_sig", counting)
    return counting


@pytest.mark.parametrize("watch", [True, False], ids=["heartbeat", "no-heartbeat"])
def test_downloads_leave_the_sigint_handler_alone(
    emu: Emulator, counting_signal: CountingSignal, watch: bool, tmp_path: Path
) -> None:
    """A download needs no handler swap (no syscalls per call): Ctrl-C's KeyboardInterrupt,
    raised at a trampoline's entry, reaches the guard's unraisable hook."""
    media = emu.add_media(size=300_000, seed=19)
    seen: List[Any] = []

    def progress(done: int, total: Optional[int]) -> None:
        seen.append((signal.getsignal(signal.SIGINT), sys.unraisablehook))

    hook = sys.unraisablehook
    with make_client(emu, cancel_on_interrupt=watch) as c:
        for _ in range(3):
            c.download_bytes(media["media_id"], progress=progress)
            c.download(media["media_id"], tmp_path / "d.bin", progress=progress)
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            assert sys.unraisablehook is hook
    assert seen and all(h is signal.default_int_handler and u is _transfer._GUARD.hook for h, u in seen)
    assert counting_signal.calls == 0


@pytest.mark.parametrize("watch", [True, False], ids=["heartbeat", "no-heartbeat"])
def test_uploads_by_url_leave_the_sigint_handler_alone(
    emu: Emulator, counting_signal: CountingSignal, heartbeats: Heartbeats, watch: bool
) -> None:
    """As for downloads: the heartbeat has no return value that could be made up."""
    hook = sys.unraisablehook
    with make_client(emu, cancel_on_interrupt=watch) as c:
        for i in range(2):
            upload_by_url(c, emu, 50 + i)
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            assert sys.unraisablehook is hook
    assert counting_signal.calls == 0
    if watch:
        assert heartbeats and all(
            b.sigint_handler is signal.default_int_handler and b.unraisablehook is _transfer._GUARD.hook
            for b in heartbeats
        )
    else:
        assert heartbeats == []


@pytest.mark.parametrize("watch", [True, False], ids=["heartbeat", "no-heartbeat"])
def test_sigint_handler_swapped_during_an_upload_from_a_reader_and_restored(
    emu: Emulator, counting_signal: CountingSignal, watch: bool
) -> None:
    """Not for a reader: its undefined return value could be sent as a byte count."""
    seen: List[Any] = []

    def progress(done: int, total: Optional[int]) -> None:
        seen.append(signal.getsignal(signal.SIGINT))

    with make_client(emu, cancel_on_interrupt=watch) as c:
        for _ in range(3):
            c.upload("file", os.urandom(100_000), filename="s.bin", progress=progress)
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert seen and all(h is _transfer._GUARD.handler for h in seen)
    assert counting_signal.calls == 6, "one install and one restore per call"


def test_nested_main_thread_calls_swap_the_handler_once(emu: Emulator, counting_signal: CountingSignal) -> None:
    """A callback on the main thread that starts other transfers: one install, one restore."""
    inner = emu.add_media(size=1000, seed=31)
    src = url_source(emu, 1000, 33)
    inner_data: List[bytes] = []
    with make_client(emu, cancel_on_interrupt=False) as c:

        def progress(done: int, total: Optional[int]) -> None:
            if not inner_data:
                inner_data.append(c.download_bytes(inner["media_id"])[0])
                c.upload("file", os.urandom(10_000), filename="i.bin")
                assert c.upload_by_url("file", src.url, "i.bin", md5=src.md5, timeout=30).media_id
                assert signal.getsignal(signal.SIGINT) is _transfer._GUARD.handler, "still ours after the inner calls"
                assert len(_transfer._GUARD.running) == 1

        c.upload("file", os.urandom(300_000), filename="o.bin", progress=progress)
    assert sha256(inner_data[0]) == inner["sha256"]
    assert counting_signal.calls == 2
    assert _transfer._GUARD.depth == 0 and not _transfer._GUARD.running


def test_an_application_sigint_handler_is_left_alone(emu: Emulator, counting_signal: CountingSignal) -> None:
    media = emu.add_media(size=1000, seed=32)

    def mine(signum: int, frame: Any) -> None:
        pass

    old = signal.signal(signal.SIGINT, mine)
    try:
        calls = counting_signal.calls
        with make_client(emu) as c:
            c.download_bytes(media["media_id"])
            upload_by_url(c, emu, 34)
        assert signal.getsignal(signal.SIGINT) is mine
        assert counting_signal.calls == calls
    finally:
        signal.signal(signal.SIGINT, old)


# --- whole processes: Ctrl-C, exit -------------------------------------------------------------------
def run_script(tmp_path: Path, source: str, *args: str, timeout: float = 20) -> "subprocess.CompletedProcess[str]":
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(wxmedia.__file__).resolve().parent.parent)
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_ctrl_c_then_the_same_client_again(emu: Emulator, tmp_path: Path) -> None:
    """Ctrl-C during a stalled download, an upload by URL waiting for WeChat's answer and
    a wait for a job that is still running: each stops within about a second, caught by
    the heartbeat inside the library call, with no other thread ever started; the client
    keeps working, and a later wait picks up the interrupted job."""
    stalled = emu.add_media(size=MiB, seed=40)
    fine = emu.add_media(size=MiB, seed=41)
    src = url_source(emu, 1000, 43)
    # The job runs 5 s: the SIGINT comes about 0.2 s after the wait's first poll.
    slow = slow_source(emu, 44, 5000)
    emu.fault("stall", media_id=stalled["media_id"], after_bytes=65536, ms=15_000)
    emu.fault("slow_headers", endpoint="media/upload_by_url", ms=15_000)
    source = """
        import json, os, signal, sys, threading, time, traceback, urllib.request, wxmedia
        base, token, stalled, fine, url, md5, slow_url, slow_md5 = sys.argv[1:9]

        def requests(endpoint):
            with urllib.request.urlopen(base + "/__admin/stats", timeout=10) as r:
                return json.load(r)["requests"].get(endpoint, 0)

        def interrupted(label, endpoint, call):
            # SIGINT once the emulator has the call's next request to `endpoint`: the
            # main thread is inside the library call then.
            n = requests(endpoint)
            sent = []
            def kill():
                while requests(endpoint) <= n:
                    time.sleep(0.02)
                time.sleep(0.2)
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
            killer = threading.Thread(target=kill, name="killer")
            killer.start()
            try:
                call()
                print(label, "NOT-INTERRUPTED", flush=True)
            except KeyboardInterrupt as e:
                took = time.monotonic() - sent[0]
                frames = [f.name for f in traceback.extract_tb(e.__traceback__)]
                others = [t.name for t in threading.enumerate() if t.name not in ("MainThread", "killer")]
                print(label, "INTERRUPTED %.2f" % took, "_progress_impl" in frames, others, flush=True)
            killer.join()
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

        c = wxmedia.Client("wecom", access_token=token, base_url=base, timeouts=(30, 30))
        interrupted("download", "media/get", lambda: c.download_bytes(stalled))
        data, info = c.download_bytes(fine)
        print("AGAIN", len(data), flush=True)
        interrupted("url", "media/upload_by_url", lambda: c.upload_by_url("file", url, "x.bin", md5=md5, timeout=30))
        res = c.upload_by_url("file", url, "x.bin", md5=md5, timeout=30)
        print("AGAIN", bool(res.media_id), flush=True)
        jobid = c.submit_upload_by_url("file", slow_url, "y.bin", md5=slow_md5)
        interrupted("wait", "media/get_upload_by_url_result", lambda: c.wait_upload_by_url(jobid, timeout=30))
        res = c.wait_upload_by_url(jobid, timeout=30)
        print("WAITED", res.jobid == jobid, bool(res.media_id), flush=True)
        c.close()
        print("THREADS", [t.name for t in threading.enumerate() if t is not threading.main_thread()])
    """
    res = run_script(
        tmp_path, source, emu.base_url, TOKEN, stalled["media_id"], fine["media_id"], src.url, src.md5,
        slow.url, slow.md5, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 7, res.stdout
    for line, label in zip((lines[0], lines[2], lines[4]), ("download", "url", "wait")):
        words = line.split(" ", 4)
        assert words[:2] == [label, "INTERRUPTED"], res.stdout
        assert float(words[2]) < 2, f"{label}: Ctrl-C took {words[2]} s"
        assert words[3:] == ["True", "[]"], f"{label}: not stopped by the heartbeat, or a thread ran: {line}"
    assert lines[1] == f"AGAIN {MiB}", res.stdout
    assert lines[3] == "AGAIN True", res.stdout
    assert lines[5:] == ["WAITED True True", "THREADS []"], res.stdout
    assert "Exception ignored" not in res.stderr, res.stderr


@pytest.mark.parametrize(
    "ending",
    ["never-closed", "closed", "exit-in-atexit", "new-client-in-atexit", "url-in-atexit", "sys-exit-from-callback"],
)
def test_interpreter_exit_does_not_hang(emu: Emulator, tmp_path: Path, ending: str) -> None:
    media = emu.add_media(size=300_000, seed=42)
    src = url_source(emu, 1000, 45)
    source = """
        import atexit, sys, wxmedia
        base, token, media_id, url, md5, ending = sys.argv[1:7]
        c = wxmedia.Client("wecom", access_token=token, base_url=base)
        c.download_bytes(media_id)
        if ending == "closed":
            c.close()
        elif ending == "exit-in-atexit":
            atexit.register(lambda: print("ATEXIT", len(c.download_bytes(media_id)[0]), flush=True))
        elif ending == "new-client-in-atexit":
            def late():
                c2 = wxmedia.Client("wecom", access_token=token, base_url=base)
                print("ATEXIT", len(c2.download_bytes(media_id)[0]), flush=True)
            atexit.register(late)
        elif ending == "url-in-atexit":  # the heartbeat during shutdown
            def late_url():
                res = c.upload_by_url("file", url, "x.bin", md5=md5, timeout=30)
                print("ATEXIT", bool(res.media_id), flush=True)
            atexit.register(late_url)
        elif ending == "sys-exit-from-callback":
            def progress(done, total):
                sys.exit(3)
            c.download_bytes(media_id, progress=progress)
        print("END", flush=True)
    """
    t0 = time.monotonic()
    res = run_script(tmp_path, source, emu.base_url, TOKEN, media["media_id"], src.url, src.md5, ending, timeout=15)
    assert time.monotonic() - t0 < 10
    if ending == "sys-exit-from-callback":
        assert res.returncode == 3, res.stderr
    else:
        assert res.returncode == 0, res.stderr
        assert "END" in res.stdout
    if ending in ("exit-in-atexit", "new-client-in-atexit"):
        assert "ATEXIT 300000" in res.stdout, res.stderr
    if ending == "url-in-atexit":
        assert "ATEXIT True" in res.stdout, res.stderr
    assert "Exception ignored" not in res.stderr, res.stderr
