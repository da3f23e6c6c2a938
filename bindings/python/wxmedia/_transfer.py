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

import ctypes
import itertools
import signal
import threading
from typing import Any, Callable, Dict, Generic, Optional, TypeVar

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


class _InterruptGuard:
    """While a transfer runs on the main thread, Ctrl-C cancels it instead of raising at once.

    Python runs signal handlers on the main thread between bytecodes: during a
    transfer that means at the first instruction of a callback trampoline, before
    its ``try`` — where ctypes would print and swallow the KeyboardInterrupt — or,
    with the helper thread, inside the wait.  So for the duration of the call
    Python's default SIGINT handler is replaced by one that only records the
    interrupt and calls ``wxm_*_cancel``; once the library has returned (and the
    handle is still alive), the original handler is back and KeyboardInterrupt is
    raised.  A custom SIGINT handler installed by the application is left alone.
    """

    def __init__(self, cancel: Callable[[], None]) -> None:
        self.cancel = cancel
        self.interrupted = False
        self.previous: Any = None
        self.installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        self.cancel()

    def __enter__(self) -> "_InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self.previous = signal.signal(signal.SIGINT, self._handler)
                    self.installed = True
            except (ValueError, OSError):  # not the main interpreter, or no signals here
                self.installed = False
        return self

    def restore(self) -> None:
        if self.installed:
            self.installed = False
            signal.signal(signal.SIGINT, self.previous)

    def __exit__(self, *exc: Any) -> None:
        self.restore()


def run_blocking(call: Callable[[], int], cancel: Callable[[], None], watch_interrupts: bool) -> int:
    """Run one blocking C transfer call and return its code.

    On the main thread, Ctrl-C cancels the transfer and ``KeyboardInterrupt``
    is raised once the library has returned (see :class:`_InterruptGuard`).
    With ``watch_interrupts`` the C call itself runs on a helper thread while
    the main thread waits, so Ctrl-C takes effect at once even while the
    server stalls and no callback runs.  Off the main thread the call simply
    runs here.  Either way the GIL is released for the whole C call
    (ctypes.CDLL), so other Python threads keep running.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    with _InterruptGuard(cancel) as guard:
        if watch_interrupts:
            rc = _call_on_helper_thread(call, cancel)
        else:
            rc = call()
        guard.restore()
        if guard.interrupted:
            raise KeyboardInterrupt
    return rc


def _call_on_helper_thread(call: Callable[[], int], cancel: Callable[[], None]) -> int:
    box: Dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["rc"] = call()
        except BaseException as e:  # noqa: B902
            box["exc"] = e
        finally:
            done.set()

    worker = threading.Thread(target=work, name="wxmedia-transfer", daemon=True)
    worker.start()
    pending: Optional[BaseException] = None
    while True:
        try:
            done.wait()
            break
        except BaseException as e:  # noqa: B902 - e.g. SystemExit from an application's signal handler
            if pending is None:
                pending = e
                cancel()
            # Never leave while the worker is inside the library: the caller
            # frees the handle right after we return.
    worker.join()
    if pending is not None:
        try:
            raise pending
        finally:
            pending = None
    if "exc" in box:
        exc = box.pop("exc")
        try:
            raise exc
        finally:
            del exc
    return int(box["rc"])
