"""Callback plumbing shared by downloads and uploads (not public API).

* One module-level ``CFUNCTYPE`` trampoline per callback type, created once and
  kept alive for the life of the process.
* ``user_data`` is an integer key into :data:`REGISTRY`, which maps it to the
  :class:`Transfer` of one running call; nothing Python-side is ever passed to
  C as a pointer.
* A trampoline never lets an exception escape into ctypes (which would print
  and swallow it): it stashes the exception on *its own transfer* and returns
  the value that makes the library stop.  The caller re-raises it, with its
  original traceback, once the C call has returned.
"""

from __future__ import annotations

import _thread
import ctypes
import itertools
import os
import queue
import signal
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, Generic, List, Optional, TypeVar

from . import _ffi, errcodes

ProgressCallback = Callable[[int, Optional[int]], Any]
"""``progress(done, total)``; ``total`` is ``None`` while unknown."""


class Transfer:
    """State of one running transfer, looked up by the trampolines."""

    __slots__ = ("sink", "reader", "progress", "error")

    def __init__(self) -> None:
        # sink(offset, address, length): the bytes are valid only during the call
        self.sink: Optional[Callable[[int, int, int], None]] = None
        self.reader: Optional[Callable[[int, int], int]] = None
        self.progress: Optional[ProgressCallback] = None
        self.error: Optional[BaseException] = None

    def stash(self, exc: BaseException) -> None:
        # Keep the first one: later failures are consequences of it.
        if self.error is None:
            self.error = exc

    def reraise(self) -> None:
        """Raise the stashed exception, if any (its traceback is kept)."""
        exc = self.error
        if exc is not None:
            self.error = None
            try:
                raise exc
            finally:
                del exc


T = TypeVar("T")


class Registry(Generic[T]):
    """Integer keys for live Python objects (what C sees as ``user_data``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: Dict[int, T] = {}
        self._keys = itertools.count(1)  # 0 would arrive as None (NULL)

    def add(self, item: T) -> int:
        with self._lock:
            key = next(self._keys)
            self._items[key] = item
            return key

    def remove(self, key: int) -> None:
        with self._lock:
            self._items.pop(key, None)

    def get(self, key: Optional[int]) -> Optional[T]:
        if key is None:
            return None
        return self._items.get(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


REGISTRY: Registry[Transfer] = Registry()
"""Running transfers."""


class TokenProvider:
    """A client's ``token_provider`` callable and the last exception it raised.

    The library calls it on whatever thread needs a token (also its own worker
    threads), single-flight per client, so its failure cannot be stashed on
    one transfer: it is kept here and every transfer that then fails with
    ``E_NO_TOKEN`` raises :class:`TokenError` *from* it.
    """

    __slots__ = ("fn", "error", "calls")

    def __init__(self, fn: Callable[[bool], str]) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.calls = 0


PROVIDERS: Registry[TokenProvider] = Registry()
"""Token providers of live clients."""


def _sink_impl(user_data: Optional[int], offset: int, data: Optional[int], length: int) -> int:
    t = REGISTRY.get(user_data)
    if t is None or t.sink is None:
        return 1
    try:
        t.sink(offset, data or 0, length)
        return 0
    except BaseException as e:  # noqa: B902 - KeyboardInterrupt included on purpose
        t.stash(e)
        return 1


def _progress_impl(user_data: Optional[int], done: int, total: int) -> int:
    t = REGISTRY.get(user_data)
    if t is None or t.progress is None:
        return 0
    try:
        t.progress(done, total if total else None)
        return 0
    except BaseException as e:  # noqa: B902
        t.stash(e)
        return 1


def _read_impl(user_data: Optional[int], buf: Optional[int], cap: int) -> int:
    t = REGISTRY.get(user_data)
    if t is None or t.reader is None:
        return -1
    try:
        if buf is None:
            raise RuntimeError("wxmedia: the library passed a NULL read buffer")
        return t.reader(buf, cap)
    except BaseException as e:  # noqa: B902
        t.stash(e)
        return -1


def _token_impl(user_data: Optional[int], force_refresh: int, buf: Optional[int], cap: int, len_out: Any) -> int:
    p = PROVIDERS.get(user_data)
    if p is None:
        return errcodes.E_NO_TOKEN
    try:
        p.calls += 1
        token = p.fn(bool(force_refresh))
        if not isinstance(token, str):
            raise TypeError(f"token_provider returned {type(token).__name__}, expected str")
        raw = token.encode("ascii")
        if not raw or not all(0x21 <= b <= 0x7E for b in raw):
            raise ValueError("token_provider returned an empty token or one with non-printable characters")
        if len(raw) > cap:
            raise ValueError(f"token_provider returned {len(raw)} bytes; the library has room for {cap}")
        if buf is None:
            raise RuntimeError("wxmedia: the library passed a NULL token buffer")
        ctypes.memmove(buf, raw, len(raw))
        len_out[0] = len(raw)
        p.error = None
        return 0
    except BaseException as e:  # noqa: B902
        p.error = e
        # A WeChat errcode raised on purpose is passed on as that errcode.
        code = getattr(e, "errcode", None)
        if isinstance(code, int) and code > 0 and isinstance(e, Exception):
            return code
        return errcodes.E_NO_TOKEN


SINK_TRAMPOLINE = _ffi.SINK_FN(_sink_impl)
TOKEN_TRAMPOLINE = _ffi.TOKEN_PROVIDER_FN(_token_impl)
PROGRESS_TRAMPOLINE = _ffi.PROGRESS_FN(_progress_impl)
READ_TRAMPOLINE = _ffi.READ_FN(_read_impl)


class CancelToken:
    """Cancels transfers from another thread (or a signal handler, a GUI, ...).

    Pass it as ``cancel=`` to :meth:`Client.download`, :meth:`Client.download_bytes`
    or :meth:`Client.upload`; :meth:`cancel` stops every transfer using it, now
    and later, and each raises :class:`wxmedia.Cancelled`::

        token = wxmedia.CancelToken()
        threading.Timer(10, token.cancel).start()
        client.download(media_id, "big.bin", cancel=token)

    Thread-safe.  A token stays cancelled; make a new one for new work.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._active: Dict[int, Callable[[], None]] = {}
        self._keys = itertools.count(1)

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Cancel every transfer using this token (idempotent)."""
        with self._lock:
            self._cancelled = True
            for fn in list(self._active.values()):
                fn()

    def _attach(self, cancel_fn: Callable[[], None]) -> Optional[int]:
        """Register a running transfer; ``None`` when already cancelled."""
        with self._lock:
            if self._cancelled:
                return None
            key = next(self._keys)
            self._active[key] = cancel_fn
            return key

    def _detach(self, key: int) -> None:
        # Under the lock, so cancel() never calls into a handle being freed.
        with self._lock:
            self._active.pop(key, None)

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self._cancelled})"


# --- running a blocking call: Ctrl-C, the worker thread --------------------------------------
#
# Python runs signal handlers on the main thread only, between bytecodes.  A
# blocking C call made on the main thread is therefore either deaf to Ctrl-C
# until it returns, or -- when a callback trampoline runs on the main thread --
# gets KeyboardInterrupt raised at the trampoline's first instruction, before
# its ``try``, where ctypes prints and swallows it.  Hence two mechanisms:
#
# * :class:`_SigintGuard`: while a transfer started on the main thread runs,
#   Python's default SIGINT handler is replaced by one that records the
#   interrupt and calls ``wxm_*_cancel``; once the library has returned, the
#   original handler is back and KeyboardInterrupt is raised.
# * :class:`Worker`: with ``cancel_on_interrupt`` the C call itself runs on a
#   long-lived helper thread of the client while the main thread waits on a
#   lock, where signal handlers do run; so Ctrl-C takes effect at once, even
#   while the server stalls and no callback runs.

if TYPE_CHECKING:  # no stubs for _signal; it has signal's signatures
    import signal as _sig
else:
    try:  # the C module: signal.signal/getsignal convert to and from IntEnums on every call
        import _signal as _sig
    except ImportError:  # pragma: no cover - Pythons without it
        import signal as _sig

_SIGINT = int(signal.SIGINT)
_DEFAULT_INT_HANDLER = signal.default_int_handler
_main_thread = threading.main_thread
_get_ident = threading.get_ident
_allocate_lock = _thread.allocate_lock
_is_finalizing = sys.is_finalizing


class _SigintGuard:
    """Swaps Python's default SIGINT handler for one that cancels, once per outermost call.

    Only the main thread uses it (signal handlers run there), so it needs no
    lock.  Transfers nested on the main thread (a callback that starts another
    transfer, with ``cancel_on_interrupt=False``) share the outermost call's
    handler; Ctrl-C cancels all of them.  A handler the application installed
    itself is left alone.
    """

    __slots__ = ("depth", "cancels", "interrupted", "previous", "installed", "handler")

    def __init__(self) -> None:
        self.depth = 0
        self.cancels: List[Callable[[], None]] = []
        self.interrupted = False
        self.previous: Any = None
        self.installed = False
        self.handler = self._on_sigint  # one bound method, so restore() can recognise it

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        for cancel in tuple(self.cancels):
            cancel()

    def install(self) -> None:
        """At the outermost call: replace Python's default handler, if it is the current one."""
        self.interrupted = False
        try:
            if _sig.getsignal(_SIGINT) is _DEFAULT_INT_HANDLER:
                self.previous = _sig.signal(_SIGINT, self.handler)
                self.installed = True
        except (ValueError, OSError):  # not the main interpreter, or no signals here
            self.installed = False

    def restore(self) -> None:
        """At the end of the outermost call: put the previous handler back exactly."""
        if self.installed:
            self.installed = False
            previous, self.previous = self.previous, None
            # Unless the application replaced ours meanwhile: then its handler stays.
            if _sig.getsignal(_SIGINT) is self.handler:
                _sig.signal(_SIGINT, previous)


_GUARD = _SigintGuard()


class _Job:
    """One blocking call handed to a helper thread, and its outcome."""

    __slots__ = ("call", "rc", "exc", "finished", "done")

    def __init__(self, call: Callable[[], int]) -> None:
        self.call: Optional[Callable[[], int]] = call
        self.rc = 0
        self.exc: Optional[BaseException] = None
        self.finished = False  # set before ``done`` is released
        self.done = _allocate_lock()  # released by the helper when the call has returned
        self.done.acquire()

    def run(self) -> None:
        try:
            assert self.call is not None
            self.rc = self.call()
        except BaseException as e:  # noqa: B902
            self.exc = e
        finally:
            self.call = None  # drop the handle's closures now, not when the job is collected
            self.finished = True
            self.done.release()

    def wait(self) -> None:
        """Block until the call has returned; signal handlers run meanwhile.

        Safe to call again after it raised: a handler's exception may surface
        right after ``acquire()`` succeeded (at the interpreter's next check),
        and acquiring the lock a second time would then never return.
        """
        while not self.finished:
            self.done.acquire()


def _serve(jobs: "queue.SimpleQueue[Optional[_Job]]") -> None:
    """A helper thread's loop: run jobs until ``None``."""
    get = jobs.get
    while True:
        job = get()
        if job is None:
            return
        job.run()
        del job  # hold nothing of the last transfer while idle


def _start_helper(jobs: "queue.SimpleQueue[Optional[_Job]]", name: str) -> threading.Thread:
    thread = threading.Thread(target=_serve, args=(jobs,), name=name, daemon=True)
    try:
        thread.start()
    except BaseException:
        # Interrupted after the thread began (start() waits for it): let it end.
        jobs.put(None)
        raise
    return thread


def _hand_off(jobs: "queue.SimpleQueue[Optional[_Job]]", job: _Job, cancel: Callable[[], None]) -> int:
    """Queue ``job`` to a helper thread and wait for it, interruptibly; return its code."""
    pending: Optional[BaseException] = None
    queued = False
    while True:
        try:
            if not queued:
                queued = True
                jobs.put(job)
            job.wait()
            break
        except BaseException as e:  # noqa: B902 - e.g. SystemExit from an application's signal handler
            if pending is None:
                pending = e
                cancel()
            # Never leave while the helper is inside the library: the caller
            # frees the handle right after we return.
    if pending is not None:
        try:
            raise pending
        finally:
            pending = None
    exc = job.exc
    if exc is not None:
        job.exc = None
        try:
            raise exc
        finally:
            exc = None
    return int(job.rc)


def _run_on_new_thread(call: Callable[[], int], cancel: Callable[[], None]) -> int:
    """The fallback: a one-off helper thread for this call only."""
    jobs: "queue.SimpleQueue[Optional[_Job]]" = queue.SimpleQueue()
    try:
        thread = _start_helper(jobs, "wxmedia-transfer")
    except RuntimeError:  # no new threads (interpreter shutdown, limits): run here
        return call()
    try:
        return _hand_off(jobs, _Job(call), cancel)
    finally:
        jobs.put(None)
        thread.join()


class Worker:
    """A client's helper thread for blocking calls made on the main thread.

    Started on first use, stopped by :meth:`close` (``Client.close()``).  Only
    the main thread hands it work, and the main thread waits for each call, so
    it never has more than one call to run: calls from other threads run on
    those threads (concurrently, as before).  When it is busy (a signal handler
    of the application starting a transfer during a wait) or closed, a call gets
    a one-off thread instead.  After ``os.fork()`` the child starts its own.
    """

    __slots__ = ("_lock", "_jobs", "_thread", "_busy", "_closed", "__weakref__")

    name = "wxmedia-worker"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: "Optional[queue.SimpleQueue[Optional[_Job]]]" = None
        self._thread: Optional[threading.Thread] = None
        self._busy = False
        self._closed = False
        _WORKERS.add(self)

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The helper thread, while it runs (for tests and diagnostics)."""
        return self._thread

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, call: Callable[[], int], cancel: Callable[[], None]) -> int:
        """Run ``call`` on the helper thread while this (main) thread waits; return its code.

        The critical sections below call nothing, so a signal handler of the
        application (which may call ``close()``) cannot run inside them.
        """
        with self._lock:
            if self._closed or self._busy:
                usable = False
            else:
                usable = True
                self._busy = True  # from now on close() leaves the thread to us
                jobs = self._jobs
                thread = self._thread
        if not usable:
            return _run_on_new_thread(call, cancel)
        try:
            if jobs is None or thread is None:
                jobs = queue.SimpleQueue()
                try:
                    thread = _start_helper(jobs, self.name)
                except RuntimeError:  # no new threads (interpreter shutdown, limits): run here
                    return call()
                with self._lock:
                    self._jobs = jobs
                    self._thread = thread
            return _hand_off(jobs, _Job(call), cancel)
        finally:
            with self._lock:
                self._busy = False
                stop = self._closed
                if stop:  # closed meanwhile: the thread is ours to stop
                    jobs = self._jobs
                    thread = self._thread
                    self._jobs = None
                    self._thread = None
            if stop:
                self._stop(jobs, thread)

    def close(self) -> None:
        """Stop the helper thread (idempotent); a call it is running finishes first."""
        with self._lock:
            self._closed = True
            if self._busy:  # run() stops it when its call returns
                return
            jobs = self._jobs
            thread = self._thread
            self._jobs = None
            self._thread = None
        self._stop(jobs, thread)

    @staticmethod
    def _stop(
        jobs: "Optional[queue.SimpleQueue[Optional[_Job]]]", thread: Optional[threading.Thread]
    ) -> None:
        if jobs is not None:
            jobs.put(None)
        # Join it (it is idle: this takes microseconds) unless it is this very
        # thread, or the interpreter is finalizing: then no other thread can
        # take the GIL again and join() would never return.
        if thread is not None and thread is not threading.current_thread() and not _is_finalizing():
            thread.join()

    def _after_fork_in_child(self) -> None:
        # The thread did not survive the fork, and the lock may have been held.
        self._lock = threading.Lock()
        self._jobs = None
        self._thread = None
        self._busy = False


_WORKERS: "weakref.WeakSet[Worker]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for worker in list(_WORKERS):
        worker._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_blocking(call: Callable[[], int], cancel: Callable[[], None], worker: Optional[Worker]) -> int:
    """Run one blocking C transfer call and return its code.

    On the main thread, Ctrl-C cancels the transfer and ``KeyboardInterrupt``
    is raised once the library has returned (see :class:`_SigintGuard`).  With
    a ``worker`` the C call itself runs on the worker's thread while the main
    thread waits, so Ctrl-C takes effect at once even while the server stalls
    and no callback runs.  Off the main thread the call simply runs here (each
    thread its own transfer, concurrently).  Either way the GIL is released
    for the whole C call (ctypes.CDLL), so other Python threads keep running.
    """
    if _get_ident() != _main_thread().ident:
        return call()
    if _is_finalizing():  # no other thread can run any more
        worker = None
    guard = _GUARD
    outermost = guard.depth == 0
    if outermost:
        guard.install()
    guard.depth += 1
    guard.cancels.append(cancel)
    try:
        if worker is not None:
            rc = worker.run(call, cancel)
        else:
            rc = call()
    finally:
        guard.cancels.pop()
        guard.depth -= 1
        if outermost:
            guard.restore()
    if guard.interrupted:
        if outermost:
            guard.interrupted = False
        raise KeyboardInterrupt
    return rc
