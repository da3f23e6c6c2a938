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
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Generic, List, Optional, TypeVar

from . import _ffi, errcodes
from .errors import WxMediaError

ProgressCallback = Callable[[int, Optional[int]], Any]
"""``progress(done, total)``; ``total`` is ``None`` while unknown."""


class Transfer:
    """State of one running transfer, looked up by the trampolines."""

    __slots__ = ("sink", "reader", "progress", "error", "stop", "cancel", "handle", "total")

    def __init__(
        self,
        sink: Optional[Callable[[int, int, int], None]] = None,
        reader: Optional[Callable[[int, int], int]] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> None:
        # sink(offset, address, length): the bytes are valid only during the call
        self.sink = sink
        self.reader = reader
        self.progress = progress
        self.error: Optional[BaseException] = None
        # 1 once Ctrl-C (or a signal handler's exception) stopped it: what the
        # trampolines then return, so that the library stops at once.
        self.stop = 0
        # While a main-thread call runs it: ``cancel(handle)`` (wxm_*_cancel).
        self.cancel: Optional[Callable[[Any], None]] = None
        self.handle: Any = None
        # The media's size as the last progress call reported it (0: unknown).
        self.total = 0

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


class BytesTransfer(Transfer):
    """A transfer whose bytes are kept in memory (``download_bytes``), by :data:`BYTES_SINK_TRAMPOLINE`.

    The first slice is copied into a ``bytes`` of its own, which is all a small
    media needs.  From the second on, once a progress call has told the size,
    the result is allocated whole and every slice copied into it: one copy per
    byte, not a copy per slice and another to join them.
    """

    __slots__ = ("parts", "start", "expected", "end", "max_size", "result", "base")

    def __init__(self, start: int, max_size: Optional[int], progress: Optional[ProgressCallback]) -> None:
        # Transfer.__init__'s fields set here: one Python frame less per download.
        self.sink = None
        self.reader = None
        self.progress = progress
        self.error = None
        self.stop = 0
        self.cancel = None
        self.handle = None
        self.total = 0
        self.parts: List[bytes] = []
        self.start = start
        self.expected = start
        self.max_size = max_size
        # the offset past which it would hold more than max_size bytes
        self.end = start + max_size if max_size is not None else 1 << 65
        self.result: Optional[bytes] = None  # allocated whole, being filled
        self.base = 0  # the address of result's bytes

    def refuse(self, offset: int, length: int) -> None:
        """Raise for a slice that is out of order, past max_size or past the reported size."""
        if offset != self.expected:
            raise WxMediaError(
                errcodes.E_PROTOCOL,
                f"the library delivered offset {offset} where {self.expected} was expected (a bug: please report)",
            )
        if self.result is not None and offset + length > self.start + len(self.result):
            raise WxMediaError(
                errcodes.E_PROTOCOL,
                f"the library delivered bytes past the size {self.total} it reported (a bug: please report)",
            )
        raise ValueError(
            f"the media is larger than max_size={self.max_size} bytes; "
            "download it to a file with Client.download(), or pass a larger max_size"
        )

    def allocate(self, offset: int, data: int, length: int) -> None:
        """The second slice, the size known: allocate the result, copy what came so far and this slice."""
        size = self.total - self.start
        if self.start + size > self.end:  # say it now, not after downloading max_size bytes
            self.refuse(self.expected, size)
        held = offset - self.start
        if size < held + length or _new_bytes is None:  # a size that is not the media's: keep slices
            self.parts.append(string_at(data, length))
            return
        result = _new_bytes(None, size)
        base = _address_of(result)
        at = base
        for part in self.parts:
            _memmove(at, part, len(part))
            at += len(part)
        _memmove(at, data, length)
        self.parts = []
        self.result = result
        self.base = base
        self.end = min(self.end, self.start + size)

    def data(self) -> bytes:
        """What was downloaded (once the library has returned)."""
        result = self.result
        if result is not None:
            filled = self.expected - self.start
            return result if filled == len(result) else result[:filled]
        parts = self.parts
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)


def _pythonapi(name: str, restype: Any, argtypes: Any) -> Any:
    """A function of the C API, as a function object of our own (None without ctypes.pythonapi)."""
    try:
        fn = ctypes.pythonapi[name]  # not pythonapi.<name>, which other code may declare otherwise
    except (AttributeError, KeyError):  # pragma: no cover - Pythons without the C API via ctypes
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


# PyBytes_FromStringAndSize: a copy of C memory, or an uninitialised bytes for NULL.
_new_bytes: Optional[Callable[[Optional[int], int], bytes]] = _pythonapi(
    "PyBytes_FromStringAndSize", ctypes.py_object, (ctypes.c_void_p, ctypes.c_ssize_t)
)
# PyBytes_AsString: the address of a bytes object's buffer.
_address_of: Callable[[bytes], int] = _pythonapi("PyBytes_AsString", ctypes.c_void_p, (ctypes.py_object,))
if _address_of is None:  # pragma: no cover
    _new_bytes = None

string_at: Callable[[int, int], bytes] = _new_bytes if _new_bytes is not None else ctypes.string_at
"""``string_at(address, length)``: a new ``bytes`` holding a copy of C memory (``ctypes.string_at``
without its Python frame)."""
_memmove = ctypes.memmove


T = TypeVar("T")


class Registry(Generic[T]):
    """Integer keys for live Python objects (what C sees as ``user_data``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: Dict[int, T] = {}
        # 0 would arrive as None (NULL); next() of a count is atomic under the GIL
        self._next_key = itertools.count(1).__next__

    def add(self, item: T) -> int:
        with self._lock:
            key = self._next_key()
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

    :data:`PROVIDERS` holds the only strong reference, from
    ``wxm_config_set_token_provider`` until the library's ``free_fn``
    (:data:`TOKEN_FREE_TRAMPOLINE`) says that nothing can call it any more:
    the config, the client and every transfer of the client are gone.
    """

    __slots__ = ("fn", "error", "calls", "__weakref__")

    def __init__(self, fn: Callable[[bool], str]) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.calls = 0


PROVIDERS: Registry[TokenProvider] = Registry()
"""Token providers the library may still call (its ``user_data``), until its ``free_fn``."""

HANDLERS: "Registry[Callable[[int], None]]" = Registry()
"""Event handlers (``events.EventHandler``) the library may still call (its ``user_data``),
until its ``free_fn``: owned by the library as token providers are."""


# The trampolines look transfers up with the registry dict's own ``get`` (no
# Python-level call: they run once per slice of every download).
_lookup = REGISTRY._items.get


def _sink_impl(user_data: Optional[int], offset: int, data: Optional[int], length: int) -> int:
    t = _lookup(user_data)  # type: ignore[arg-type]
    if t is None or t.stop:
        return 1
    sink = t.sink
    if sink is None:
        return 1
    try:
        sink(offset, data or 0, length)
    except BaseException as e:  # noqa: B902 - KeyboardInterrupt included on purpose
        t.stash(e)
        return 1
    return t.stop


def _bytes_sink_impl(user_data: Optional[int], offset: int, data: Optional[int], length: int) -> int:
    # A sink of its own (one Python frame per slice, not two): BytesTransfer's.
    t: Any = _lookup(user_data)  # type: ignore[arg-type]
    if t is None or t.stop:
        return 1
    try:
        if offset != t.expected or offset + length > t.end:
            t.refuse(offset, length)
        if length:
            if data is None:
                raise RuntimeError("wxmedia: the library passed a NULL buffer")
            base = t.base
            if base:
                _memmove(base + (offset - t.start), data, length)
            elif t.parts and t.total:
                t.allocate(offset, data, length)
            else:
                t.parts.append(string_at(data, length))
        t.expected = offset + length
    except BaseException as e:  # noqa: B902
        t.stash(e)
        return 1
    stop: int = t.stop
    return stop


def _progress_impl(user_data: Optional[int], done: int, total: int) -> int:
    """The user's progress, if any; for a main-thread call also the heartbeat.

    While the library waits without news it calls this about every 100 ms on
    the calling thread: Python runs pending signal handlers at its first
    instruction (Ctrl-C sets ``stop``), and a non-zero return stops the transfer.
    """
    t = _lookup(user_data)  # type: ignore[arg-type]
    if t is None:
        return 0
    t.total = total
    progress = t.progress
    if progress is not None:
        try:
            progress(done, total if total else None)
        except BaseException as e:  # noqa: B902
            t.stash(e)
            return 1
    return t.stop


def _read_impl(user_data: Optional[int], buf: Optional[int], cap: int) -> int:
    t = _lookup(user_data)  # type: ignore[arg-type]
    if t is None or t.reader is None:
        return -1
    if t.stop:
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


def _free_impl(registry: "Registry[Any]") -> Callable[[Optional[int]], None]:
    """A library ``free_fn`` for ``user_data`` that is a key of ``registry``.

    It runs once, on any thread, inside whichever ``wxm_*_free`` dropped the
    library's last reference, which may be a ``__del__`` called by the
    garbage collector while this thread holds the registry's lock: hence
    the dict's own ``pop`` (atomic under the GIL), not :meth:`Registry.remove`.
    """
    release = registry._items.pop

    def free(user_data: Optional[int]) -> None:
        try:
            release(user_data, None)  # type: ignore[arg-type]
        except BaseException:  # noqa: B902 - nothing may escape into ctypes; at shutdown the module may be gone
            pass

    return free


_token_free_impl = _free_impl(PROVIDERS)
_lookup_handler = HANDLERS._items.get


def _event_impl(user_data: Optional[int], event: Optional[int]) -> None:
    """An event: to the client's handler, on whatever thread it happened.

    Nothing may escape into ctypes.  The handler itself logs what the
    user's ``on_event`` raises; a ``KeyboardInterrupt`` (or another signal
    handler's exception) raised here on the main thread stops the innermost
    main-thread transfer, as in any other trampoline (see :class:`_SigintGuard`).
    """
    try:
        handler = _lookup_handler(user_data)  # type: ignore[arg-type]
        if handler is not None and event:
            handler(event)
    except Exception:  # noqa: B902
        try:
            import logging

            logging.getLogger("wxmedia").error("wxmedia: an event handler failed", exc_info=True)
        except BaseException:  # noqa: B902 - at shutdown logging may be gone
            pass
    except BaseException as e:  # noqa: B902 - KeyboardInterrupt, SystemExit
        if _get_ident() == _main_ident and _GUARD.running:
            t = _GUARD.running[-1]
            t.stash(e)
            _stop(t)


SINK_TRAMPOLINE = _ffi.SINK_FN(_sink_impl)
BYTES_SINK_TRAMPOLINE = _ffi.SINK_FN(_bytes_sink_impl)
TOKEN_TRAMPOLINE = _ffi.TOKEN_PROVIDER_FN(_token_impl)
TOKEN_FREE_TRAMPOLINE = _ffi.FREE_FN(_token_free_impl)
EVENT_TRAMPOLINE = _ffi.EVENT_FN(_event_impl)
EVENT_FREE_TRAMPOLINE = _ffi.FREE_FN(_free_impl(HANDLERS))
PROGRESS_TRAMPOLINE = _ffi.PROGRESS_FN(_progress_impl)
READ_TRAMPOLINE = _ffi.READ_FN(_read_impl)


def _keep_forever(obj: Any) -> None:
    """One reference that is never dropped, not even when modules are torn down at exit.

    The library may call a trampoline from a ``wxm_*_free`` run by a
    ``__del__`` late in interpreter shutdown; the C thunk must still exist then.
    """
    incref = _pythonapi("Py_IncRef", None, (ctypes.py_object,))
    if incref is not None:
        incref(obj)


_keep_forever(TOKEN_TRAMPOLINE)
_keep_forever(TOKEN_FREE_TRAMPOLINE)
_keep_forever(EVENT_TRAMPOLINE)  # called up to the last wxm_*_free, like the token provider's
_keep_forever(EVENT_FREE_TRAMPOLINE)


class CancelToken:
    """Cancels transfers from another thread (or a signal handler, a GUI, ...).

    Pass it as ``cancel=`` to :meth:`Client.download`, :meth:`Client.download_bytes`,
    :meth:`Client.upload` or the uploads by URL; :meth:`cancel` stops every
    transfer using it, now and later, and each raises :class:`wxmedia.Cancelled`::

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


# --- running a blocking call on the main thread: Ctrl-C and signal handlers ---------------------
#
# Python runs signal handlers on the main thread only, between bytecodes.  A
# blocking C call made on the main thread is deaf to them until it returns or
# calls back into Python; and when a trampoline runs, a handler's exception is
# raised at the trampoline's very first instruction, before its ``try``, where
# ctypes prints and swallows it.  Every call runs on the calling thread all the
# same (no helper thread, no hand-off per call):
#
# * The library calls the progress trampoline on the calling thread about every
#   100 ms while it waits without news (a stalled server, an upload waiting for
#   its answer, parallel workers, an upload by URL waiting for WeChat's job,
#   through ``wxm_url_upload_set_progress``), and at most every ~10 ms while
#   bytes flow: the client installs it on every main-thread call
#   (``cancel_on_interrupt``), so pending signal handlers run at least that often.
# * :class:`_SigintGuard`: a signal handler's exception raised at a
#   trampoline's entry -- Ctrl-C's KeyboardInterrupt, or an application's
#   SIGTERM handler raising SystemExit, say -- reaches ``sys.unraisablehook``;
#   the guard's hook, installed while a main-thread call runs, stashes it
#   on the innermost one and stops and cancels it, and it is re-raised once the
#   library has returned.  During an upload from a reader, whose return value
#   must never be made up, Python's default SIGINT handler is swapped for one
#   that raises nothing.

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
_main_ident = _main_thread().ident  # refreshed after a fork (the child's main thread may differ)

_TRAMPOLINE_CODES = tuple(
    f.__code__ for f in (_sink_impl, _bytes_sink_impl, _progress_impl, _read_impl, _token_impl, _event_impl)
)


def _from_a_trampoline(args: Any) -> bool:
    """Whether an unraisable exception escaped one of our trampolines.

    Its traceback starts in the trampoline's frame.  (``args.object`` is the
    callback up to Python 3.12; from 3.13 on ctypes leaves it None.)
    """
    tb = args.exc_traceback
    return tb is not None and any(tb.tb_frame.f_code is code for code in _TRAMPOLINE_CODES)


class _SigintGuard:
    """Ctrl-C and signal handlers' exceptions for the main thread's running transfers.

    Only the main thread uses it (signal handlers run there), so it needs no
    lock.  ``running`` holds the main thread's running transfers, outermost
    first (a callback may start another transfer).

    * While any runs, :meth:`_on_unraisable` is ``sys.unraisablehook``: an
      exception raised at a trampoline's first instruction (Python's default
      SIGINT handler's KeyboardInterrupt, or any other signal handler's) is
      stashed on the innermost transfer, which is stopped and cancelled.  That
      trampoline's return value is then undefined, which the stop makes
      harmless for a sink or progress callback.
    * Not for a reader (an upload's source): a made-up byte count could be
      sent.  So while an upload with a reader runs, Python's default SIGINT
      handler is swapped for :meth:`_on_sigint`, which raises nothing: it stops
      and cancels every running transfer, and KeyboardInterrupt is raised once
      the library has returned.  A SIGINT handler the application installed
      itself is left alone.
    """

    __slots__ = ("running", "interrupted", "previous", "installed", "handler", "hook", "previous_hook")

    def __init__(self) -> None:
        self.running: List[Transfer] = []  # outermost first
        self.interrupted = False
        self.previous: Any = None
        self.installed = False
        self.handler = self._on_sigint  # one bound method, so restore() can recognise it
        self.hook = self._on_unraisable
        self.previous_hook: Any = None

    @property
    def depth(self) -> int:
        """How many main-thread transfers are running (nested ones included)."""
        return len(self.running)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        for t in tuple(self.running):
            _stop(t)

    def _on_unraisable(self, args: Any) -> None:
        # A signal handler raised at a trampoline's first instruction, before
        # its ``try``: ctypes gave up on the exception.  Only the innermost
        # main-thread transfer can be calling back on this thread.
        exc = args.exc_value
        if (
            _from_a_trampoline(args)
            and isinstance(exc, BaseException)
            and self.running
            and _get_ident() == _main_ident
        ):
            if exc.__traceback__ is None and args.exc_traceback is not None:
                exc = exc.with_traceback(args.exc_traceback)
            t = self.running[-1]
            t.stash(exc)
            _stop(t)
            return
        previous = self.previous_hook
        (previous if previous is not None else sys.__unraisablehook__)(args)

    def install(self) -> None:
        """Replace Python's default SIGINT handler, if it is the current one."""
        self.interrupted = False
        try:
            if _sig.getsignal(_SIGINT) is _DEFAULT_INT_HANDLER:
                self.previous = _sig.signal(_SIGINT, self.handler)
                self.installed = True
        except (ValueError, OSError):  # not the main interpreter, or no signals here
            self.installed = False

    def restore(self) -> None:
        """Put the previous SIGINT handler back exactly."""
        if self.installed:
            self.installed = False
            previous, self.previous = self.previous, None
            # Unless the application replaced ours meanwhile: then its handler stays.
            if _sig.getsignal(_SIGINT) is self.handler:
                _sig.signal(_SIGINT, previous)


def _stop(t: Transfer) -> None:
    """Stop a main-thread transfer: its trampolines return non-zero, and it is cancelled."""
    t.stop = 1
    cancel = t.cancel
    if cancel is not None:
        cancel(t.handle)


_GUARD = _SigintGuard()


def _after_fork_in_child() -> None:
    global _main_ident
    _main_ident = _main_thread().ident  # threading's own after-fork hook ran first


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def call_on_main(transfer: Transfer, fn: Callable[..., int], *args: Any) -> int:
    """On the main thread: ``fn(*args)``, a blocking C call of ``transfer``, with Ctrl-C handled.

    ``transfer.cancel(transfer.handle)`` cancels it.  Ctrl-C (or another
    signal handler's exception) stops and cancels it, and the exception is
    raised once the library has returned: by ``transfer.reraise()``, or here
    when the SIGINT handler was swapped (see :class:`_SigintGuard`).
    """
    guard = _GUARD
    running = guard.running
    outermost = not running
    swap = transfer.reader is not None and not guard.installed
    if outermost:
        guard.previous_hook = sys.unraisablehook
        sys.unraisablehook = guard.hook
    if swap:
        guard.install()
    running.append(transfer)
    try:
        rc = fn(*args)
    finally:
        # Plain stores first: a signal handler's exception can only surface at a call.
        transfer.cancel = None  # the handle is freed next: nothing may cancel it any more
        if outermost:
            previous_hook, guard.previous_hook = guard.previous_hook, None
            if sys.unraisablehook is guard.hook:
                sys.unraisablehook = previous_hook
        running.pop()
        if swap:
            guard.restore()
    if guard.interrupted:  # set by the swapped handler, for every call it stopped
        if swap:
            guard.interrupted = False
        raise KeyboardInterrupt
    return rc

