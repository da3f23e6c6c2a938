"""Which thread runs what, the client's helper thread, and the SIGINT handler swap.

Downloads and uploads run on the calling thread, the main thread included (the
library's progress heartbeat lets Ctrl-C in).  Only an upload by URL, which has
no heartbeat, runs on the client's helper thread when started on the main
thread: one long-lived daemon thread per client, started on first use and
stopped by ``Client.close()``.  Python's default SIGINT handler is swapped once
per outermost main-thread call and restored exactly.
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
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

import wxmedia
from wxmedia import _transfer
from wxemu import TOKEN, Emulator, generated, sha256
from conftest import make_client

MiB = 1024 * 1024


def helper_threads() -> List[threading.Thread]:
    """The package's helper threads alive now."""
    return [t for t in threading.enumerate() if t.name.startswith("wxmedia-")]


@pytest.fixture(autouse=True)
def _no_helper_threads_left() -> Iterator[None]:
    """Every test here ends with every client closed: no helper thread may remain."""
    yield
    deadline = time.monotonic() + 5
    while helper_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not helper_threads(), helper_threads()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def record_thread(names: List[str]) -> Callable[[int, Optional[int]], None]:
    def progress(done: int, total: Optional[int]) -> None:
        names.append(threading.current_thread().name)

    return progress


def url_source(emu: Emulator, size: int, seed: int) -> Tuple[str, str]:
    """A media the emulator serves for an upload by URL, and its MD5."""
    m = emu.add_media(size=size, seed=seed, filename="src.bin")
    return f"{emu.base_url}/__video/{m['media_id']}", hashlib.md5(generated(seed, 0, size)).hexdigest()


def upload_by_url(c: wxmedia.Client, emu: Emulator, seed: int) -> None:
    url, md5 = url_source(emu, 1000, seed)
    assert c.upload_by_url("file", url, "u.bin", md5=md5, timeout=30).media_id


# --- lifecycle ----------------------------------------------------------------------------------
def test_downloads_and_uploads_run_on_the_main_thread(emu: Emulator) -> None:
    """No hand-off: callbacks run on the calling thread, and no helper thread starts."""
    media = emu.add_media(size=300_000, seed=10)
    names: List[str] = []
    with make_client(emu) as c:
        for _ in range(3):
            data, _ = c.download_bytes(media["media_id"], progress=record_thread(names))
            assert sha256(data) == media["sha256"]
        c.upload("file", os.urandom(100_000), filename="u.bin", progress=record_thread(names))
        assert c._worker.thread is None
        assert not helper_threads()
    assert names and set(names) == {threading.main_thread().name}


def test_worker_starts_on_first_use_and_is_reused(emu: Emulator) -> None:
    """Uploads by URL (no heartbeat) started on the main thread run on the helper thread."""
    with make_client(emu) as c:
        assert c._worker.thread is None, "no thread before the first upload by URL"
        assert not helper_threads()
        threads: List[Optional[threading.Thread]] = []
        for i in range(3):
            upload_by_url(c, emu, 70 + i)
            threads.append(c._worker.thread)
        worker = threads[0]
        assert worker is not None and worker.is_alive() and worker.daemon
        assert all(t is worker for t in threads), "one thread for every call"
        assert helper_threads() == [worker] and worker.name == "wxmedia-worker"
    assert not worker.is_alive(), "close() joins the helper thread"
    assert c._worker.thread is None


def test_close_while_idle_leaves_no_thread(emu: Emulator) -> None:
    before = threading.active_count()
    c = make_client(emu)
    c.close()
    c.close()  # idempotent
    assert threading.active_count() == before
    assert not helper_threads()


def test_close_after_use_leaves_no_thread(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=200_000, seed=12)
    before = threading.active_count()
    c = make_client(emu)
    c.download(media["media_id"], tmp_path / "a.bin")
    c.upload("file", os.urandom(10_000), filename="u.bin")
    assert not helper_threads()
    upload_by_url(c, emu, 80)
    assert len(helper_threads()) == 1
    c.close()
    assert not helper_threads(), "close() returns once the helper thread has ended"
    assert threading.active_count() == before
    with pytest.raises(wxmedia.StateError):
        c.download_bytes(media["media_id"])
    assert not helper_threads()


def test_garbage_collected_client_stops_its_thread(emu: Emulator) -> None:
    c = make_client(emu)
    upload_by_url(c, emu, 13)
    thread = c._worker.thread
    assert thread is not None and thread.is_alive()
    del c  # __del__ closes it; the thread holds no reference to the client
    thread.join(5)
    assert not thread.is_alive()


def test_close_from_another_thread_during_a_transfer(emu: Emulator, tmp_path: Path) -> None:
    """The running transfer finishes; no helper thread is left."""
    media = emu.add_media(size=MiB, seed=14)
    emu.fault("stall", media_id=media["media_id"], after_bytes=65536, ms=800)
    c = make_client(emu)
    closer = threading.Timer(0.3, c.close)
    closer.start()
    info = c.download(media["media_id"], tmp_path / "s.bin")
    closer.join()
    assert info.size == MiB
    assert c.closed
    assert not helper_threads()


def test_close_from_another_thread_during_an_upload_by_url(emu: Emulator) -> None:
    """The running upload finishes on the helper thread, which then ends."""
    emu.fault("slow_headers", endpoint="media/upload_by_url", ms=800)
    c = make_client(emu)
    closer = threading.Timer(0.3, c.close)
    closer.start()
    upload_by_url(c, emu, 81)
    closer.join()
    assert c.closed
    assert not helper_threads(), "the helper thread stops once its call has returned"


def test_each_client_has_its_own_thread(emu: Emulator) -> None:
    with make_client(emu) as a, make_client(emu) as b:
        upload_by_url(a, emu, 15)
        upload_by_url(b, emu, 16)
        assert a._worker.thread is not None and b._worker.thread is not None
        assert a._worker.thread is not b._worker.thread
        assert len(helper_threads()) == 2
        a.close()
        assert helper_threads() == [b._worker.thread]


# --- which thread runs what ----------------------------------------------------------------------
def test_calling_thread_mode_starts_no_thread(emu: Emulator) -> None:
    media = emu.add_media(size=300_000, seed=16)
    names: List[str] = []
    with make_client(emu, cancel_on_interrupt=False) as c:
        c.download_bytes(media["media_id"], progress=record_thread(names))
        assert c._worker.thread is None
        assert not helper_threads()
    assert set(names) == {threading.main_thread().name}


def test_other_threads_run_their_own_transfers_concurrently(emu: Emulator) -> None:
    """Calls from non-main threads are neither serialised nor handed to the helper thread."""
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
        assert c._worker.thread is None, "only the main thread uses the helper thread"
    assert not errors, errors
    assert elapsed < 2.5, f"three 1 s stalls took {elapsed:.1f}s: the transfers were serialised"
    for i in range(3):
        assert set(names[i]) == {f"user-{i}"}


def test_main_and_other_threads_together(emu: Emulator) -> None:
    media = emu.add_media(size=MiB, seed=17)
    out: Dict[str, str] = {}
    with make_client(emu, chunk_size=128 * 1024) as c:
        t = threading.Thread(target=lambda: out.update(t=sha256(c.download_bytes(media["media_id"])[0])))
        t.start()
        out["main"] = sha256(c.download_bytes(media["media_id"])[0])
        t.join(30)
    assert out == {"t": media["sha256"], "main": media["sha256"]}


@pytest.mark.parametrize("watch", [True, False], ids=["heartbeat", "no-heartbeat"])
def test_gil_is_released_while_waiting(emu: Emulator, tmp_path: Path, watch: bool) -> None:
    media = emu.add_media(size=MiB, seed=18)
    emu.fault("stall", media_id=media["media_id"], after_bytes=0, ms=1000)
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
        c.download(media["media_id"], tmp_path / "g.bin")
        during = counter[0] - before
    stop.set()
    t.join()
    assert during > 100_000, f"the counter thread advanced only {during} times"


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
    counting = CountingSignal(_transfer._sig)
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
    inner_data: List[bytes] = []
    with make_client(emu, cancel_on_interrupt=False) as c:

        def progress(done: int, total: Optional[int]) -> None:
            if not inner_data:
                inner_data.append(c.download_bytes(inner["media_id"])[0])
                c.upload("file", os.urandom(10_000), filename="i.bin")
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
        assert signal.getsignal(signal.SIGINT) is mine
        assert counting_signal.calls == calls
    finally:
        signal.signal(signal.SIGINT, old)


# --- the worker on its own (no library) ------------------------------------------------------------
class Boom(Exception):
    pass


def test_an_exception_of_the_call_comes_back_with_its_traceback() -> None:
    w = _transfer.Worker()

    def failing_c_call() -> int:
        raise Boom("from the helper thread")

    try:
        with pytest.raises(Boom) as info:
            _transfer.run_blocking(failing_c_call, lambda: None, w)
        assert "failing_c_call" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert _transfer.run_blocking(lambda: 7, lambda: None, w) == 7, "the thread survives it"
    finally:
        w.close()


def test_a_signal_handler_that_raises_cancels_and_waits() -> None:
    """An application's handler raising during the wait: cancel, wait for the call, then raise."""
    w = _transfer.Worker()
    cancelled = threading.Event()
    finished: List[bool] = []

    def c_call() -> int:
        cancelled.wait(5)  # the library stops once cancelled
        time.sleep(0.05)
        finished.append(True)
        return -1

    def handler(signum: int, frame: Any) -> None:
        raise Boom("SIGUSR1")

    old = signal.signal(signal.SIGUSR1, handler)
    # while the main thread waits for c_call
    kill = threading.Timer(0.2, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1))
    try:
        kill.start()
        t0 = time.monotonic()
        with pytest.raises(Boom):
            _transfer.run_blocking(c_call, cancelled.set, w)
        assert cancelled.is_set() and finished == [True], "left before the call returned"
        assert time.monotonic() - t0 < 4, "the handler did not run during the wait"
    finally:
        kill.join()
        signal.signal(signal.SIGUSR1, old)
        w.close()


def test_a_handler_exception_after_the_wait_succeeded_does_not_deadlock(tmp_path: Path) -> None:
    """The handler's exception surfaces only once the wait has already returned.

    The signal is delivered to the helper thread, so the main thread's wait is
    not interrupted: it succeeds when the call returns and the handler runs at
    the interpreter's next check, inside the wait's ``try``.  Waiting again on
    the same lock would then block forever (a subprocess, so a hang fails
    instead of stalling the suite).
    """
    source = """
        import signal, threading, time
        from wxmedia import _transfer

        class Boom(Exception):
            pass

        def handler(signum, frame):
            raise Boom()

        def c_call():
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # this thread, not main
            time.sleep(0.05)
            return 9

        signal.signal(signal.SIGUSR1, handler)
        w = _transfer.Worker()
        cancels = []
        booms = 0
        for _ in range(5):
            try:
                _transfer.run_blocking(c_call, lambda: cancels.append(1), w)
            except Boom:
                booms += 1
        print("OK", booms, len(cancels), _transfer.run_blocking(lambda: 3, lambda: None, w), flush=True)
        w.close()
    """
    try:
        res = run_script(tmp_path, source, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the main thread waited forever for a call that had returned")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["OK", "5", "5", "3"], res.stdout


def test_a_call_during_a_wait_gets_a_one_off_thread_and_close_does_not_deadlock() -> None:
    """A signal handler on the main thread starts a call (and closes) while the worker is busy."""
    w = _transfer.Worker()
    names: List[str] = []

    def inner() -> int:
        names.append(threading.current_thread().name)
        return 5

    def handler(signum: int, frame: Any) -> None:
        names.append(f"rc={_transfer.run_blocking(inner, lambda: None, w)}")
        w.close()  # busy: the worker stops when its call returns

    def outer() -> int:
        names.append(threading.current_thread().name)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
        time.sleep(0.3)
        return 3

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        assert _transfer.run_blocking(outer, lambda: None, w) == 3
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert names == ["wxmedia-worker", "wxmedia-transfer", "rc=5"]
    assert w.closed and w.thread is None
    # closed: later calls still work, on one-off threads
    assert _transfer.run_blocking(lambda: len(threading.current_thread().name), lambda: None, w) == len(
        "wxmedia-transfer"
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_its_own_thread() -> None:
    w = _transfer.Worker()
    try:
        assert _transfer.run_blocking(lambda: 1, lambda: None, w) == 1
        assert w.thread is not None
        pid = os.fork()
        if pid == 0:  # the child: the parent's helper thread does not exist here
            rc = 1
            try:
                ok = _transfer.run_blocking(lambda: 2, lambda: None, w) == 2 and w.thread is not None
                w.close()
                rc = 0 if ok and w.thread is None else 1
            finally:
                os._exit(rc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert _transfer.run_blocking(lambda: 3, lambda: None, w) == 3
    finally:
        w.close()


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
    """Ctrl-C during a stalled download (main thread) and a stalled upload by URL
    (helper thread); the client and its helper thread keep working."""
    stalled = emu.add_media(size=MiB, seed=40)
    fine = emu.add_media(size=MiB, seed=41)
    url, md5 = url_source(emu, 1000, 43)
    emu.fault("stall", media_id=stalled["media_id"], after_bytes=65536, ms=15_000)
    emu.fault("slow_headers", endpoint="media/upload_by_url", ms=15_000)
    source = """
        import os, signal, sys, threading, time, wxmedia
        base, token, stalled, fine, url, md5 = sys.argv[1:7]
        c = wxmedia.Client("wecom", access_token=token, base_url=base, timeouts=(30, 30))
        def progress(done, total):
            if done and not fired:
                fired.append(1)
                threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        fired = []
        t0 = time.monotonic()
        try:
            c.download_bytes(stalled, progress=progress)
            print("NOT INTERRUPTED")
        except KeyboardInterrupt:
            print("INTERRUPTED %.2f" % (time.monotonic() - t0))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert c._worker.thread is None
        data, info = c.download_bytes(fine)
        print("AGAIN", len(data))
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            c.upload_by_url("file", url, "x.bin", md5=md5, timeout=30)
            print("NOT INTERRUPTED")
        except KeyboardInterrupt:
            print("INTERRUPTED %.2f" % (time.monotonic() - t0))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        worker = c._worker.thread
        assert worker is not None and worker.is_alive()
        res = c.upload_by_url("file", url, "x.bin", md5=md5, timeout=30)
        assert c._worker.thread is worker
        print("AGAIN", bool(res.media_id))
        c.close()
        print("THREADS", [t.name for t in threading.enumerate() if t.name.startswith("wxmedia-")])
    """
    res = run_script(tmp_path, source, emu.base_url, TOKEN, stalled["media_id"], fine["media_id"], url, md5)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[0].startswith("INTERRUPTED"), res.stdout
    assert float(lines[0].split()[1]) < 3
    assert lines[1] == f"AGAIN {MiB}", res.stdout
    assert lines[2].startswith("INTERRUPTED"), res.stdout
    assert float(lines[2].split()[1]) < 3
    assert lines[3:5] == ["AGAIN True", "THREADS []"], res.stdout


@pytest.mark.parametrize(
    "ending", ["never-closed", "closed", "exit-in-atexit", "new-client-in-atexit", "sys-exit-from-callback"]
)
def test_interpreter_exit_does_not_hang(emu: Emulator, tmp_path: Path, ending: str) -> None:
    media = emu.add_media(size=300_000, seed=42)
    source = """
        import atexit, sys, wxmedia
        base, token, media_id, ending = sys.argv[1:5]
        c = wxmedia.Client("wecom", access_token=token, base_url=base)
        c.download_bytes(media_id)
        if ending == "closed":
            c.close()
        elif ending == "exit-in-atexit":
            atexit.register(lambda: print("ATEXIT", len(c.download_bytes(media_id)[0]), flush=True))
        elif ending == "new-client-in-atexit":  # its helper thread would start during shutdown
            def late():
                c2 = wxmedia.Client("wecom", access_token=token, base_url=base)
                print("ATEXIT", len(c2.download_bytes(media_id)[0]), flush=True)
            atexit.register(late)
        elif ending == "sys-exit-from-callback":
            def progress(done, total):
                sys.exit(3)
            c.download_bytes(media_id, progress=progress)
        print("END", flush=True)
    """
    t0 = time.monotonic()
    res = run_script(tmp_path, source, emu.base_url, TOKEN, media["media_id"], ending, timeout=15)
    assert time.monotonic() - t0 < 10
    if ending == "sys-exit-from-callback":
        assert res.returncode == 3, res.stderr
    else:
        assert res.returncode == 0, res.stderr
        assert "END" in res.stdout
    if ending.endswith("in-atexit"):
        assert "ATEXIT 300000" in res.stdout, res.stderr
