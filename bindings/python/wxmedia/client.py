"""The Pythonic API: :class:`Client`, :class:`MediaInfo`, :class:`UploadResult`."""

from __future__ import annotations

import ctypes
import enum
import functools
import io
import logging
import math
import os
import stat
import threading
import weakref
from typing import IO, TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Optional, Tuple, Union

from . import _ffi, _transfer
from . import errcodes as ec
from ._transfer import (
    EVENT_FREE_TRAMPOLINE,
    EVENT_TRAMPOLINE,
    HANDLERS,
    PROGRESS_TRAMPOLINE,
    PROVIDERS,
    READ_TRAMPOLINE,
    REGISTRY,
    BYTES_SINK_TRAMPOLINE,
    SINK_TRAMPOLINE,
    TOKEN_FREE_TRAMPOLINE,
    TOKEN_TRAMPOLINE,
    BytesTransfer,
    CancelToken,
    ProgressCallback,
    TokenProvider,
    Transfer,
    call_on_main,
)
from ._transfer import string_at as _string_at
from .errors import StateError, TokenError, WxMediaError, make_error
from .events import LOGGER, Counters, EventHandler, OnEvent, read_counters

if TYPE_CHECKING:
    from .objstore import ObjectStore

lib = _ffi.lib

# What every download calls, bound once: a download_bytes() of a small media is
# a few microseconds of Python, and each lookup and GIL hand-over counts.
_fast = _ffi.fast
_download_new = _fast.wxm_download_new
_download_set_progress = _fast.wxm_download_set_progress
_download_to_sink = _fast.wxm_download_to_sink
_download_to_path = _fast.wxm_download_to_path
_download_to_object = _fast.wxm_download_to_object
_download_cancel = _fast.wxm_download_cancel
_download_size = _fast.wxm_download_size
_download_content_type = _fast.wxm_download_content_type
_download_filename = _fast.wxm_download_filename
_download_video_url = _fast.wxm_download_video_url
_download_errmsg = _fast.wxm_download_errmsg
_download_free = _fast.wxm_download_free
_download_counters = _fast.wxm_download_counters
_transfers = REGISTRY._items
_next_key = REGISTRY._next_key
_get_ident = threading.get_ident
_new_tuple = tuple.__new__  # MediaInfo._make without its Python frame

StrPath = Union[str, "os.PathLike[str]"]

MAX_CHUNK_SIZE = 20 * 1024 * 1024
"""The largest Range chunk WeChat serves (and the library's default)."""

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Default ``max_size`` of :meth:`Client.download_bytes`."""

DEFAULT_BACKOFF = 0.2
"""Backoff in seconds used when ``retries`` is given as a bare attempt count."""


class Platform(enum.IntEnum):
    """The platforms the library speaks for (``WXM_PLATFORM_*``)."""

    WECOM = 1
    """WeCom (企业微信), qyapi.weixin.qq.com, token by corpid/corpsecret."""
    KF = 2
    """WeChat Customer Service (微信客服): same host and endpoints as WeCom."""
    OFFICIAL = 3
    """Official Account (公众号), api.weixin.qq.com, token by appid/secret."""
    MINIPROGRAM = 4
    """Mini Program customer-service media: images only."""


_PLATFORM_NAMES = {p.name.lower(): p for p in Platform}


class TokenApi(enum.IntEnum):
    """Which endpoint issues tokens from credentials (``WXM_TOKEN_API_*``)."""

    DEFAULT = 0
    """The platform's default: ``gettoken`` (WeCom, kf), ``stable_token`` (Official Account, Mini Program)."""
    STABLE = 1
    """Official Account / Mini Program: ``cgi-bin/stable_token``."""
    CLASSIC = 2
    """Official Account / Mini Program: ``cgi-bin/token`` (a fetch invalidates other processes' tokens)."""


def _token_api(value: Any) -> TokenApi:
    if isinstance(value, TokenApi):
        return value
    if isinstance(value, str):
        try:
            return TokenApi[value.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown token_api {value!r}; expected 'default', 'stable' or 'classic'") from None
    raise TypeError(f"token_api must be a str or wxmedia.TokenApi, not {type(value).__name__}")


class MediaInfo(NamedTuple):
    """What a download learnt about the media."""

    size: int
    """Total size in bytes."""
    content_type: Optional[str]
    """The Content-Type WeChat answered, if any."""
    filename: Optional[str]
    """The filename from Content-Disposition (``filename*`` preferred), if any."""
    video_url: Optional[str]
    """For Official Account / Mini Program videos: the URL the bytes came from."""
    counters: Optional[Counters] = None
    """What the download counted (requests, retries, bytes, resume, time)."""


class UploadResult(NamedTuple):
    """What WeChat answered to an upload."""

    media_id: str
    """The new media_id (valid for 3 days); empty for ``"uploadimg"``."""
    type: str
    """The media type WeChat recorded."""
    created_at: int
    """Unix time of the upload (WeCom sends it as a string; this is always an int)."""
    url: Optional[str] = None
    """For type ``"uploadimg"``: the permanent image URL."""
    jobid: Optional[str] = None
    """For :meth:`Client.upload_by_url`: the job that produced it."""
    counters: Optional[Counters] = None
    """What the upload (or the wait for the job) counted."""


class JobStatus(enum.IntEnum):
    """State of an asynchronous upload by URL (``WXM_JOB_*``)."""

    NONE = 0
    PROCESSING = 1
    DONE = 2
    FAILED = 3


# --- argument checks ------------------------------------------------------------
def _cstr(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not valid Unicode text: {e}") from None


def _uint(value: Any, what: str, bits: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not minimum <= value < (1 << bits):
        raise ValueError(f"{what} must be between {minimum} and {(1 << bits) - 1}, got {value}")
    return value


def _millis(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{what} must be a positive, finite number of seconds, got {value!r}")
    ms = math.ceil(value * 1000)
    if ms >= 1 << 32:
        raise ValueError(f"{what} is too large: {value!r} seconds")
    return ms


def _path_bytes(path: Any, what: str) -> bytes:
    raw = os.fsencode(os.fspath(path))
    if not raw:
        raise ValueError(f"{what} must not be empty")
    if b"\0" in raw:
        raise ValueError(f"{what} must not contain NUL characters")
    return raw


def _platform(value: Any) -> Platform:
    if isinstance(value, Platform):
        return value
    if isinstance(value, str):
        p = _PLATFORM_NAMES.get(value.strip().lower())
        if p is None:
            raise ValueError(f"unknown platform {value!r}; expected one of {', '.join(_PLATFORM_NAMES)}")
        return p
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return Platform(value)
        except ValueError:
            raise ValueError(f"unknown platform number {value}; expected 1-4 (see wxmedia.Platform)") from None
    raise TypeError(f"platform must be a str or wxmedia.Platform, not {type(value).__name__}")


def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _check_progress(progress: Any) -> None:
    """The one check of a ``progress`` argument (the sync and the asyncio client)."""
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable as progress(done, total)")


def _check_binary_stream(obj: Any, what: str) -> None:
    if isinstance(obj, io.TextIOBase):
        raise TypeError(f"{what} is a text stream; open it in binary mode ('rb' / 'wb')")


def _raise_for(code: int, detail: Optional[str]) -> None:
    raise make_error(code, detail or _ffi.strerror(code))


def _check(code: int, errmsg: Optional[Callable[[Any], Optional[bytes]]] = None, handle: Any = None) -> None:
    """Raise the exception for a non-zero code, with the best detail available.

    ``errmsg(handle)`` is the handle's own message getter (``wxm_*_errmsg``).
    """
    if code == ec.OK:
        return
    detail = _ffi.decode(errmsg(handle)) if errmsg is not None else None
    _raise_for(code, detail or _ffi.last_errmsg())


# --- sinks and readers ------------------------------------------------------------
# Streams known to copy what write() is given before returning: they may be
# handed a view of the library's buffer instead of a copy of it.
_COPYING_STREAMS = (io.BufferedWriter, io.BufferedRandom, io.FileIO, io.BytesIO)


def _make_c_view() -> Callable[[int, int], memoryview]:
    """A writable memoryview of C memory, without a ctypes array type per length.

    (``(c_ubyte * n).from_address`` would create and cache one type per distinct
    ``n``: an unbounded cache over a long-running process.)
    """
    try:
        # pythonapi[...]: a function object of our own (pythonapi.<name> is shared with other code)
        from_memory = ctypes.pythonapi["PyMemoryView_FromMemory"]
    except AttributeError:  # pragma: no cover - Pythons without the C API via ctypes
        return lambda address, length: memoryview((ctypes.c_ubyte * length).from_address(address)).cast("B")
    from_memory.restype = ctypes.py_object
    from_memory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    PyBUF_WRITE = 0x200

    def view(address: int, length: int) -> memoryview:
        return from_memory(address, length, PyBUF_WRITE)  # type: ignore[no-any-return]

    return view


_c_view = _make_c_view()


def _check_order(offset: int, expected: int) -> None:
    if offset != expected:
        raise WxMediaError(
            ec.E_PROTOCOL,
            f"the library delivered offset {offset} where {expected} was expected (a bug: please report)",
        )


class _StreamSink:
    """Writes in-order chunks to a binary file object."""

    __slots__ = ("write", "expected", "zero_copy")

    def __init__(self, dest: Any, start: int) -> None:
        self.write = dest.write
        self.expected = start
        # Anything else (a user's object) gets its own bytes: it may keep them.
        self.zero_copy = type(dest) in _COPYING_STREAMS

    def deliver(self, offset: int, address: int, length: int) -> None:
        _check_order(offset, self.expected)
        if length == 0:
            return
        if self.zero_copy:
            view = _c_view(address, length)
            try:
                self._write_all(view)
            finally:
                view.release()
        else:
            self._write_all(memoryview(_string_at(address, length)))
        self.expected += length

    def _write_all(self, view: memoryview) -> None:
        while view:
            n = self.write(view)
            if n is None:  # raw non-blocking stream that would block
                raise BlockingIOError("the destination stream would block; use a blocking binary stream")
            if not isinstance(n, int):  # a write() that returns nothing useful wrote it all
                n = len(view)
            if n <= 0:
                raise OSError("the destination stream wrote 0 bytes")
            view = view[n:]


class _StreamReader:
    """Feeds the library's read buffer from a binary file object, in place when it can."""

    def __init__(self, src: Any) -> None:
        self.readinto = getattr(src, "readinto", None)
        self.read = getattr(src, "read", None)
        if self.readinto is None and self.read is None:
            raise TypeError("src must be a path, bytes, or a binary file object with read() or readinto()")

    def __call__(self, buf: int, cap: int) -> int:
        if cap == 0:
            return 0
        if self.readinto is not None:
            view = _c_view(buf, cap)
            try:
                n = self.readinto(view)
            finally:
                view.release()
            if n is None:
                raise BlockingIOError("the source stream would block; use a blocking binary stream")
        else:
            assert self.read is not None
            data = self.read(cap)
            if data is None:
                raise BlockingIOError("the source stream would block; use a blocking binary stream")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"src.read() returned {type(data).__name__}, expected bytes (binary mode)")
            n = len(data)
            if n > cap:
                raise ValueError(f"src.read({cap}) returned {n} bytes")
            if n:
                ctypes.memmove(buf, bytes(data), n)
        if not isinstance(n, int) or n < 0 or n > cap:
            raise ValueError(f"src.readinto() returned {n!r} for a buffer of {cap} bytes")
        return n


class _BufferReader:
    """Streams a bytes-like object without copying it first."""

    def __init__(self, data: Any) -> None:
        self.view = memoryview(data).cast("B")
        self.pos = 0

    def __len__(self) -> int:
        return len(self.view)

    def __call__(self, buf: int, cap: int) -> int:
        n = min(cap, len(self.view) - self.pos)
        if n > 0:
            dst = _c_view(buf, n)
            try:
                dst[:] = self.view[self.pos : self.pos + n]
            finally:
                dst.release()
            self.pos += n
        return n


def _stream_length(src: Any) -> int:
    """Bytes left in ``src`` from its current position, or ValueError."""
    try:
        if src.seekable():
            pos = src.tell()
            end = src.seek(0, io.SEEK_END)
            src.seek(pos, io.SEEK_SET)
            return max(int(end) - int(pos), 0)
    except (AttributeError, OSError, ValueError):
        pass
    try:
        st = os.fstat(src.fileno())
        if stat.S_ISREG(st.st_mode):
            return int(st.st_size)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    raise ValueError(
        "cannot tell how many bytes src holds (it is not seekable and not a regular file); "
        "pass length= (the exact number of bytes the upload will read)"
    )


def _stream_name(src: Any) -> Optional[str]:
    name = getattr(src, "name", None)
    if isinstance(name, str) and name and not name.startswith("<"):
        return os.path.basename(name)
    return None


# --- the client -------------------------------------------------------------------
class Client:
    """A WeChat temporary-media client (thread-safe; share one per application).

    Args:
        platform: ``"wecom"`` (default), ``"kf"``, ``"official"``, ``"miniprogram"``,
            or a :class:`Platform`.
        access_token: a static access_token (rotate it with :meth:`set_access_token`).
        credentials: ``(corpid, corpsecret)`` or ``(appid, secret)``: the library
            fetches, caches and refreshes the token itself.
        token_api: ``"default"``, ``"stable"`` or ``"classic"`` (a :class:`TokenApi`):
            which endpoint issues tokens from credentials on the Official
            Account / Mini Program (``stable_token`` by default).
        token_provider: ``token_provider(force_refresh) -> str``: tokens from
            your own token service instead of credentials.  ``force_refresh``
            is True after WeChat rejected the previous token.  It is called on
            whichever thread needs a token (also the library's own worker
            threads), never twice at once for one client; if it raises, the
            transfer fails with :class:`TokenError` whose ``__cause__`` is your
            exception (raise a :class:`WxMediaError` with a positive errcode to
            fail with that errcode instead).  Transfers still running after
            :meth:`close` may call it; the library releases it once the client
            is closed and its last transfer has ended (the client keeps no
            other reference to it).
        token_store: ``redis://[[user]:password@]host[:port][/db]`` (or
            ``rediss://`` for TLS, trusting the built-in roots plus ``ca_file``):
            share one token per app between processes through Redis (with
            credentials).  Any failure of the store (unreachable, refused
            password, READONLY, an error reply, an untrusted certificate, no
            answer in time) raises :class:`TokenStoreError`; the message names
            the store without its password.
        token_store_timeouts: ``(connect, command)`` seconds for the token
            store, or one number for both (5 s each by default).
        token_store_fallback: when the token store fails, fetch a token from
            WeChat alone instead of raising (off by default: on the Official
            Account a token fetched alone can invalidate every other
            process's).  :attr:`token_store_fallbacks` counts these.
        base_url: the API host, e.g. ``"http://127.0.0.1:8080"`` for the emulator
            (default: the platform's official host).
        chunk_size: bytes per Range request: a multiple of 16, at most 20 MiB (the default).
        parallelism: connections per download.
        timeouts: ``(connect, io)`` seconds, or one number for both.
        retries: max attempts, or ``(max_attempts, backoff_seconds)``.
        limits: per-type upload limit overrides in bytes, e.g. ``{"video": 20_000_000}``.
        ca_file: a PEM file of private CAs for https.
        cancel_on_interrupt: Ctrl-C during a transfer or an upload by URL
            started from the main thread cancels it (also while the server
            stalls, or while WeChat's job is running) and raises
            ``KeyboardInterrupt`` once the library has stopped.  Every call
            runs on the calling thread, callbacks included, and the client
            starts no thread of its own: the library calls a progress
            trampoline of the client's about every 100 ms while it waits,
            which is where Python runs the signal handlers.  Set False for no
            trampoline: Ctrl-C then takes effect at the next callback (or when
            the call returns).  Calls made from other threads always run on
            their own thread, concurrently.
        log_events: send the library's events to ``logging.getLogger("wxmedia")``
            (:data:`wxmedia.events.LOGGER`): requests at DEBUG, the rest at
            their own level (INFO; WARNING for retries, failed transfers,
            failed resume checks, a token store fallback), the fields in the
            record's ``extra`` as ``wxm_kind``, ``wxm_endpoint``,
            ``wxm_attempt``, ... (see :func:`wxmedia.events.log_extra`).  The
            library builds only the events of the levels that logger is
            enabled for *when the client is created* (by default WARNING: a
            few events, only when something goes wrong).  Raising the logger's
            level later takes effect at once; lowering it (say to DEBUG) needs
            a new client.  False: nothing is logged.
        on_event: ``on_event(event)`` receives every event of
            ``on_event_level`` and above (default all) as a
            :class:`wxmedia.events.Event`, in addition to the logging
            (``log_events=False`` for this alone).  It runs on the thread where
            the event happens (also the library's worker threads, concurrently
            for concurrent transfers) while the transfer waits: keep it quick
            and thread-safe, and start no transfer from it.  What it raises is
            logged on the "wxmedia" logger and the transfer goes on.  With
            ``on_event=None`` and ``log_events=False`` (or a logger that is
            disabled) the library has no event handler at all and builds no event.
            Like a ``token_provider``, the library holds it until the client
            is closed and its last transfer has ended: one that refers to the
            client keeps it alive until :meth:`close`.
        on_event_level: the lowest :mod:`logging` level ``on_event`` receives.

    Every result carries the transfer's :class:`wxmedia.events.Counters`
    (``info.counters``, ``result.counters``), and so does a
    :class:`WxMediaError` a transfer raises (``exc.counters``).

    Use it as a context manager, or call :meth:`close`::

        with wxmedia.Client("wecom", credentials=(corpid, secret)) as client:
            info = client.download(media_id, "photo.jpg")
    """

    def __init__(
        self,
        platform: Union[str, Platform] = "wecom",
        access_token: Optional[str] = None,
        credentials: Optional[Tuple[str, str]] = None,
        base_url: Optional[str] = None,
        chunk_size: Optional[int] = None,
        parallelism: Optional[int] = None,
        timeouts: Union[None, float, Tuple[float, float]] = None,
        retries: Union[None, int, Tuple[int, float]] = None,
        *,
        limits: Optional[Mapping[str, int]] = None,
        ca_file: Optional[StrPath] = None,
        token_api: Union[None, str, TokenApi] = None,
        token_provider: Optional[Callable[[bool], str]] = None,
        token_store: Optional[str] = None,
        token_store_timeouts: Union[None, float, Tuple[float, float]] = None,
        token_store_fallback: bool = False,
        cancel_on_interrupt: bool = True,
        log_events: bool = True,
        on_event: Optional[OnEvent] = None,
        on_event_level: int = logging.DEBUG,
    ) -> None:
        self._ptr: Optional[Any] = None
        self._addr: Optional[int] = None  # the same handle as an int, for _ffi.fast
        self._lock = threading.Lock()
        # Weak: the library owns the provider (PROVIDERS, until its free_fn);
        # kept here only to chain a provider's exception to the error it caused.
        self._provider: Optional["weakref.ref[TokenProvider]"] = None
        self.platform = _platform(platform)
        self.base_url = base_url
        self.cancel_on_interrupt = bool(cancel_on_interrupt)

        cfg = lib.wxm_config_new(int(self.platform))
        if not cfg:
            _raise_for(ec.E_INVALID_ARG, _ffi.last_errmsg())
        try:
            if base_url is not None:
                _check(lib.wxm_config_set_base_url(cfg, _cstr(base_url, "base_url")))
            if access_token is not None:
                _check(lib.wxm_config_set_access_token(cfg, _cstr(access_token, "access_token")))
            if credentials is not None:
                if not isinstance(credentials, (tuple, list)) or len(credentials) != 2:
                    raise TypeError("credentials must be an (id, secret) tuple")
                cid = _cstr(credentials[0], "credentials id")
                secret = _cstr(credentials[1], "credentials secret")
                _check(lib.wxm_config_set_credentials(cfg, cid, secret))
            if token_provider is not None:
                if not callable(token_provider):
                    raise TypeError("token_provider must be callable as token_provider(force_refresh) -> str")
                provider = TokenProvider(token_provider)
                self._provider = weakref.ref(provider)
                # From here the library owns the entry: its free_fn removes it
                # once the config, this client and its transfers are all gone
                # (at once if this call fails).
                key = PROVIDERS.add(provider)
                del provider
                _check(
                    lib.wxm_config_set_token_provider(cfg, TOKEN_TRAMPOLINE, key, TOKEN_FREE_TRAMPOLINE)
                )
            if token_store is not None:
                _check(lib.wxm_config_set_token_store(cfg, _cstr(token_store, "token_store")))
            if token_store_timeouts is not None:
                if isinstance(token_store_timeouts, (tuple, list)):
                    if len(token_store_timeouts) != 2:
                        raise TypeError("token_store_timeouts must be (connect_seconds, command_seconds) or one number")
                    store_connect_ms = _millis(token_store_timeouts[0], "token store connect timeout")
                    store_command_ms = _millis(token_store_timeouts[1], "token store command timeout")
                else:
                    store_connect_ms = store_command_ms = _millis(token_store_timeouts, "token_store_timeouts")
                _check(lib.wxm_config_set_token_store_timeouts(cfg, store_connect_ms, store_command_ms))
            if token_store_fallback:
                _check(lib.wxm_config_set_token_store_fallback(cfg, 1))
            if token_api is not None:
                _check(lib.wxm_config_set_token_api(cfg, int(_token_api(token_api))))
            if chunk_size is not None:
                _check(lib.wxm_config_set_chunk_size(cfg, _uint(chunk_size, "chunk_size", 64)))
            if parallelism is not None:
                _check(lib.wxm_config_set_parallelism(cfg, _uint(parallelism, "parallelism", 32)))
            if timeouts is not None:
                if isinstance(timeouts, (tuple, list)):
                    if len(timeouts) != 2:
                        raise TypeError("timeouts must be (connect_seconds, io_seconds) or one number")
                    connect_ms = _millis(timeouts[0], "connect timeout")
                    io_ms = _millis(timeouts[1], "io timeout")
                else:
                    connect_ms = io_ms = _millis(timeouts, "timeouts")
                _check(lib.wxm_config_set_timeouts(cfg, connect_ms, io_ms))
            if retries is not None:
                if isinstance(retries, (tuple, list)):
                    if len(retries) != 2:
                        raise TypeError("retries must be max_attempts or (max_attempts, backoff_seconds)")
                    attempts = _uint(retries[0], "retries max_attempts", 32)
                    backoff = retries[1]
                else:
                    attempts = _uint(retries, "retries", 32)
                    backoff = DEFAULT_BACKOFF
                if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not 0 <= backoff < 4e6:
                    raise ValueError(f"retry backoff must be a number of seconds >= 0, got {backoff!r}")
                _check(lib.wxm_config_set_retries(cfg, attempts, int(round(backoff * 1000))))
            if limits is not None:
                for type_, max_bytes in dict(limits).items():
                    _check(
                        lib.wxm_config_set_limit(
                            cfg, _cstr(type_, "limits key"), _uint(max_bytes, f"limits[{type_!r}]", 64)
                        )
                    )
            if ca_file is not None:
                _check(lib.wxm_config_set_ca_file(cfg, _path_bytes(ca_file, "ca_file")))
            self._set_events(cfg, log_events, on_event, on_event_level)
            out = _ffi.ClientP()
            _check(lib.wxm_client_new(cfg, ctypes.byref(out)))
            if not out:
                _raise_for(ec.E_PANIC, "wxm_client_new reported success but gave no client")
            self._ptr = out
            self._addr = _ffi.address(out)
        finally:
            lib.wxm_config_free(cfg)

    @staticmethod
    def _set_events(cfg: Any, log_events: bool, on_event: Optional[OnEvent], on_event_level: int) -> None:
        """Install the event handler on ``cfg``, only when someone wants events."""
        if on_event is not None and not callable(on_event):
            raise TypeError("on_event must be callable as on_event(event)")
        if isinstance(on_event_level, bool) or not isinstance(on_event_level, int):
            raise TypeError(f"on_event_level must be a logging level (int), not {type(on_event_level).__name__}")
        handler = EventHandler(LOGGER if log_events else None, on_event, on_event_level)
        min_level = handler.min_level
        if min_level is None:
            return  # no handler: the library builds no event
        # From here the library owns the entry, as a token provider's: its
        # free_fn removes it once nothing can call it (at once if this fails).
        key = HANDLERS.add(handler)
        del handler
        _check(lib.wxm_config_set_event_handler(cfg, EVENT_TRAMPOLINE, key, EVENT_FREE_TRAMPOLINE, min_level))

    # --- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        """Free the client handle (idempotent).

        Running transfers keep going (each holds its own reference); new ones raise
        :class:`StateError`.
        """
        with self._lock:
            ptr, self._ptr = self._ptr, None
            self._addr = None
        if ptr is not None:
            lib.wxm_client_free(ptr)

    def _fail(
        self, rc: int, errmsg: Callable[[Any], Optional[bytes]], h: Any, counters: Optional[Counters] = None
    ) -> None:
        """Raise for a failed transfer, chaining a token provider's exception when it caused it.

        The exception carries the transfer's ``counters``.
        """
        p = self._provider() if self._provider is not None else None
        cause = p.error if p is not None else None
        if cause is not None and (rc == ec.E_NO_TOKEN or rc == getattr(cause, "errcode", None)):
            detail = _ffi.decode(errmsg(h)) or _ffi.strerror(rc)
            err = make_error(rc, f"{detail} (token_provider raised {type(cause).__name__}: {cause})")
            if rc == ec.E_NO_TOKEN:
                err = TokenError(rc, err.errmsg)
            err.counters = counters
            raise err from cause
        try:
            _check(rc, errmsg, h)
        except WxMediaError as e:
            e.counters = counters
            raise

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._ptr is None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<wxmedia.Client platform={self.platform.name.lower()} base_url={self.base_url!r} {state}>"

    def set_access_token(self, token: str) -> None:
        """Replace the access_token (for hosts that rotate tokens themselves)."""
        raw = _cstr(token, "token")
        with self._lock:
            _check(lib.wxm_client_set_access_token(self._live(), raw))

    @property
    def token_store_fallbacks(self) -> int:
        """How many times this client fetched a token alone because its token
        store failed (only with ``token_store_fallback=True``; else 0)."""
        n = ctypes.c_uint64(0)
        with self._lock:
            _check(lib.wxm_client_token_store_fallbacks(self._live(), ctypes.byref(n)))
        return int(n.value)

    def _live(self) -> Any:
        if self._ptr is None:
            raise StateError(ec.E_STATE, "the client is closed")
        return self._ptr

    def _new_handle(self, new: Callable[[Any, bytes], Any], arg: bytes) -> Any:
        with self._lock:  # close() cannot free the client under us
            h = new(self._live(), arg)
            if not h:
                detail = _ffi.last_errmsg()  # same thread, right after the call
        if not h:
            _raise_for(ec.E_INVALID_ARG, detail)
        return h

    def _run(
        self,
        transfer: Transfer,
        cancel: Optional[CancelToken],
        cancel_fn: Callable[[Any], None],
        h: Any,
        call: Callable[..., int],
        args: Tuple[Any, ...],
    ) -> int:
        """Run ``call(*args)``, the blocking C call of a transfer on handle ``h``, on this thread.

        ``cancel_fn(h)`` cancels it: for the CancelToken, and for Ctrl-C on the
        main thread (see ``_transfer.call_on_main``).
        """
        if cancel is not None:
            return self._run_cancellable(transfer, cancel, cancel_fn, h, call, args)
        if _get_ident() == _transfer._main_ident:
            transfer.cancel = cancel_fn
            transfer.handle = h
            return call_on_main(transfer, call, *args)
        return call(*args)

    def _run_cancellable(
        self,
        transfer: Transfer,
        cancel: CancelToken,
        cancel_fn: Callable[[Any], None],
        h: Any,
        call: Callable[..., int],
        args: Tuple[Any, ...],
    ) -> int:
        if not isinstance(cancel, CancelToken):
            raise TypeError("cancel must be a wxmedia.CancelToken")
        key = cancel._attach(functools.partial(cancel_fn, h))
        if key is None:
            raise make_error(ec.E_CANCELLED, "cancelled before it started")
        try:
            return self._run(transfer, None, cancel_fn, h, call, args)
        finally:
            cancel._detach(key)

    # --- download ----------------------------------------------------------------
    def download(
        self,
        media_id: str,
        dest: Union[StrPath, IO[bytes]],
        progress: Optional[ProgressCallback] = None,
        start: int = 0,
        *,
        hd_voice: bool = False,
        cancel: Optional[CancelToken] = None,
    ) -> MediaInfo:
        """Download a media to a path or into a binary file object.

        Args:
            media_id: the media_id.
            dest: a path (``str`` or ``os.PathLike``): the library writes a
                sibling temporary file, verifies every byte, fsyncs and renames
                it into place; an interrupted download resumes from that file on
                the next call for the same media_id, and an existing file is
                never damaged by a failure.  Or a binary file object with
                ``write()``: chunks arrive in order, from ``start``.
            progress: ``progress(done, total)`` called as bytes arrive (at most
                about every 10 ms, and for the last byte) and, with unchanged
                figures, about every 100 ms while the transfer waits; ``total``
                is ``None`` while unknown.  It runs on the calling thread.
                Raising in it stops the transfer and the exception propagates.
            start: byte offset to resume from, for a file object only (a path
                download resumes by itself); it need not be 16-byte aligned.
            hd_voice: fetch HD voice (speex, ``cgi-bin/media/get/jssdk``).
            cancel: a :class:`CancelToken`.

        Returns:
            :class:`MediaInfo`.

        Raises:
            WxMediaError: or a subclass (InvalidMediaId, TokenError, NetworkError, ...).
            Whatever ``dest.write()`` or ``progress`` raised, unchanged.
        """
        media = _cstr(media_id, "media_id")
        start = _uint(start, "start", 64)
        if _is_path(dest):
            if start:
                raise ValueError(
                    "start= applies to file-object destinations; a download to a path resumes by itself"
                )
            path: Optional[bytes] = _path_bytes(dest, "dest")
            sink = None
        elif hasattr(dest, "write"):
            _check_binary_stream(dest, "dest")
            path = None
            sink = _StreamSink(dest, start).deliver
        else:
            raise TypeError(
                f"dest must be a path (str or os.PathLike) or a binary file object with write(), "
                f"not {type(dest).__name__}"
            )
        _check_progress(progress)
        return self._download(media, path, Transfer(sink, None, progress), SINK_TRAMPOLINE, start, hd_voice, cancel)

    def download_bytes(
        self,
        media_id: str,
        progress: Optional[ProgressCallback] = None,
        start: int = 0,
        *,
        max_size: Optional[int] = DEFAULT_MAX_BYTES,
        hd_voice: bool = False,
        cancel: Optional[CancelToken] = None,
    ) -> Tuple[bytes, MediaInfo]:
        """Download a small media into memory.

        Returns ``(data, info)``: the bytes (from ``start``) and the
        :class:`MediaInfo`.  Raises ``ValueError`` rather than grow past
        ``max_size`` bytes (default 64 MiB; ``None`` for no limit): use
        :meth:`download` for big media.
        """
        media = _cstr(media_id, "media_id")
        if start.__class__ is not int or start:  # the checks, but for the plain default
            start = _uint(start, "start", 64)
        if max_size is not None and max_size is not DEFAULT_MAX_BYTES:
            max_size = _uint(max_size, "max_size", 64)
        _check_progress(progress)
        transfer = BytesTransfer(start, max_size, progress)
        info = self._download(media, None, transfer, BYTES_SINK_TRAMPOLINE, start, hd_voice, cancel)
        return transfer.data(), info

    def download_to_object(
        self,
        media_id: str,
        store: "ObjectStore",
        bucket: str,
        key: str,
        *,
        progress: Optional[ProgressCallback] = None,
        hd_voice: bool = False,
        cancel: Optional[CancelToken] = None,
    ) -> MediaInfo:
        """Download a media straight into object ``key`` of ``bucket`` in ``store``, touching no disk.

        The aligned Range chunks become the parts of an S3 multipart upload
        (the store's part size each, the last one shorter), up to the client's
        ``parallelism`` fetched and uploaded at once, each checked by its
        Content-MD5; a media of at most one part is one PutObject.  The
        object, with the media's Content-Type and its WeChat filename as
        Content-Disposition, appears only when complete.  Memory: about
        ``parallelism × part_size``.

        A failed or cancelled call (a :class:`CancelToken`, Ctrl-C, an exception
        raised by ``progress``) aborts its upload, leaving no parts, unless the
        store has ``keep_parts_on_failure=True``: then the next call for the
        same media and key, in this process or another, completes that upload
        and fetches from WeChat only the parts it lacks
        (``info.counters.resumed_from`` is the bytes it already held).

        Args:
            media_id: the media_id.
            store: a :class:`wxmedia.ObjectStore`.
            bucket: the bucket (it must exist).
            key: the object's key.
            progress: ``progress(done, total)``, as for :meth:`download`.
            hd_voice: fetch HD voice (speex, ``cgi-bin/media/get/jssdk``).
            cancel: a :class:`CancelToken`.

        Returns:
            :class:`MediaInfo`, with its counters (``bytes_sent``: the parts' bytes).

        Raises:
            ObjectStoreAuthError: the store refused the credentials (not retried).
            NoSuchBucket: no such bucket.
            ObjectStoreError: another error the store answered (after retries for 5xx).
            WxMediaError: or another subclass, as :meth:`download` (InvalidMediaId, ...);
                :class:`InvalidArgument` when no credentials are given nor in the environment.
            Whatever ``progress`` raised, unchanged.
        """
        from .objstore import ObjectStore

        media = _cstr(media_id, "media_id")
        if not isinstance(store, ObjectStore):
            raise TypeError(f"store must be a wxmedia.ObjectStore, not {type(store).__name__}")
        target = (store._handle(), _cstr(bucket, "bucket"), _cstr(key, "key"))
        _check_progress(progress)
        # `store` stays referenced by this frame while the library copies it.
        return self._download(media, None, Transfer(None, None, progress), None, 0, hd_voice, cancel, target)

    def _download(
        self,
        media: bytes,
        path: Optional[bytes],
        transfer: Transfer,
        sink_trampoline: Any,
        start: int,
        hd_voice: bool,
        cancel: Optional[CancelToken],
        target: Optional[Tuple[int, bytes, bytes]] = None,
    ) -> MediaInfo:
        """One download, to ``path``, to an object (``target``: store address, bucket, key),
        or into ``transfer``'s sink through ``sink_trampoline``.

        The hot path of every small download, so written flat: handles are ints
        (``_ffi.fast``), and what ``_new_handle`` does is inlined.
        """
        key = _next_key()  # Registry.add without its lock: each step is atomic under the GIL
        _transfers[key] = transfer
        lock = self._lock
        try:
            with lock:  # close() cannot free the client under us
                client = self._addr
                if client is None:
                    raise StateError(ec.E_STATE, "the client is closed")
                h = _download_new(client, media)
                if not h:
                    detail = _ffi.last_errmsg()  # same thread, right after the call
            if not h:
                _raise_for(ec.E_INVALID_ARG, detail)
        except BaseException:
            del _transfers[key]
            raise
        try:
            if start:
                _check(_fast.wxm_download_set_start(h, start), _download_errmsg, h)
            if hd_voice:
                _check(_fast.wxm_download_set_hd_voice(h, 1), _download_errmsg, h)
            main = _get_ident() == _transfer._main_ident
            if transfer.progress is not None or (main and self.cancel_on_interrupt):
                # Also the heartbeat that lets Ctrl-C in on the main thread.
                rc = _download_set_progress(h, PROGRESS_TRAMPOLINE, key)
                if rc:
                    _check(rc, _download_errmsg, h)
            if path is not None:
                call: Any = _download_to_path
                args: Tuple[Any, ...] = (h, path)
            elif target is not None:
                call = _download_to_object
                args = (h, *target)
            else:
                call = _download_to_sink
                args = (h, sink_trampoline, key)
            if cancel is not None:
                rc = self._run_cancellable(transfer, cancel, _download_cancel, h, call, args)
            elif main:
                transfer.cancel = _download_cancel
                transfer.handle = h
                rc = call_on_main(transfer, call, *args)
            else:
                rc = call(*args)
            counters = read_counters(_download_counters, h)
            if transfer.error is not None:
                transfer.reraise()
            if rc:
                self._fail(rc, _download_errmsg, h, counters)
            content_type = _download_content_type(h)
            filename = _download_filename(h)
            video_url = _download_video_url(h)
            return _new_tuple(
                MediaInfo,
                (
                    _download_size(h),
                    content_type.decode("utf-8", "replace") if content_type else None,
                    filename.decode("utf-8", "replace") if filename else None,
                    video_url.decode("utf-8", "replace") if video_url else None,
                    counters,
                ),
            )
        finally:
            _transfers.pop(key, None)
            _download_free(h)

    # --- upload --------------------------------------------------------------------
    def upload(
        self,
        type: str,
        src: Union[StrPath, bytes, bytearray, memoryview, IO[bytes]],
        filename: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
        *,
        length: Optional[int] = None,
        cancel: Optional[CancelToken] = None,
    ) -> UploadResult:
        """Upload a temporary media (streamed; never read whole into memory).

        Args:
            type: ``"image"``, ``"voice"``, ``"video"``, ``"file"`` or ``"thumb"``
                (which ones a platform accepts is judged by the library: 40004),
                or ``"uploadimg"`` for a permanent image URL (``result.url``).
            src: a path (``str`` / ``os.PathLike``); ``bytes``-like data; or a
                binary file object with ``readinto()`` or ``read()``, read from
                its current position.  Its length comes from seek/tell or
                ``os.fstat``; for a pipe or socket pass ``length=``.
            filename: the name WeChat shows (default: the path's or the file
                object's name; for nameless data the library picks ``media.<ext>``
                from the content).  The library appends the extension matching
                the content when the name lacks it.
            progress: ``progress(done, total)``, as for downloads.
            length: exact number of bytes to read from a file object.
            cancel: a :class:`CancelToken`.

        The library checks type, size and format locally first and answers
        WeChat's own errcode (e.g. 40006, 40009, 40004, 40005) before sending a byte.
        A stream upload is not retried once bytes were read from it.

        Returns:
            :class:`UploadResult`.
        """
        type_b = _cstr(type, "type")
        if filename is not None:
            filename_b: Optional[bytes] = _cstr(filename, "filename")
        else:
            filename_b = None
        _check_progress(progress)

        path: Optional[bytes] = None
        reader: Optional[Callable[[int, int], int]] = None
        size = 0
        if _is_path(src):
            if length is not None:
                raise TypeError("length= is only for file objects; a path's length is its file size")
            path = _path_bytes(src, "src")
        elif isinstance(src, (bytes, bytearray, memoryview)):
            buf_reader = _BufferReader(src)
            size = len(buf_reader)
            if length is not None and length != size:
                raise ValueError(f"length={length} but the data holds {size} bytes")
            reader = buf_reader
        elif hasattr(src, "readinto") or hasattr(src, "read"):
            _check_binary_stream(src, "src")
            reader = _StreamReader(src)
            size = _uint(length, "length", 64) if length is not None else _stream_length(src)
            if filename_b is None:
                name = _stream_name(src)
                if name is not None:
                    filename_b = _cstr(name, "filename")
        else:
            raise TypeError(
                f"src must be a path, bytes, or a binary file object with read(), not {type_name(src)}"
            )

        transfer = Transfer(None, reader, progress)
        key = REGISTRY.add(transfer)
        try:
            h = self._new_handle(lib.wxm_upload_new, type_b)
        except BaseException:
            REGISTRY.remove(key)
            raise
        try:
            errmsg = lib.wxm_upload_errmsg
            if path is not None:
                _check(lib.wxm_upload_set_path(h, path), errmsg, h)
            else:
                _check(lib.wxm_upload_set_reader(h, READ_TRAMPOLINE, key, size), errmsg, h)
            if filename_b is not None:
                _check(lib.wxm_upload_set_filename(h, filename_b), errmsg, h)
            if progress is not None or (self.cancel_on_interrupt and _get_ident() == _transfer._main_ident):
                # Also the heartbeat that lets Ctrl-C in on the main thread.
                _check(lib.wxm_upload_set_progress(h, PROGRESS_TRAMPOLINE, key), errmsg, h)
            rc = self._run(transfer, cancel, lib.wxm_upload_cancel, h, lib.wxm_upload_run, (h,))
            counters = read_counters(lib.wxm_upload_counters, h)
            transfer.reraise()
            if rc:
                self._fail(rc, errmsg, h, counters)
            media_id = _ffi.decode(lib.wxm_upload_media_id(h))
            url = _ffi.decode(lib.wxm_upload_url(h))
            if not media_id and not url:
                raise make_error(ec.E_PROTOCOL, "the upload succeeded but no media_id was reported")
            return UploadResult(
                media_id=media_id or "",
                type=_ffi.decode(lib.wxm_upload_type(h)) or type,
                created_at=int(lib.wxm_upload_created_at(h)),
                url=url,
                counters=counters,
            )
        finally:
            REGISTRY.remove(key)
            lib.wxm_upload_free(h)

    # --- asynchronous upload by URL (WeCom, kf) --------------------------------------
    def upload_by_url(
        self,
        type: str,
        url: str,
        filename: str,
        *,
        md5: Optional[str] = None,
        md5_path: Optional[StrPath] = None,
        scene: Optional[int] = None,
        timeout: Optional[float] = None,
        cancel: Optional[CancelToken] = None,
    ) -> UploadResult:
        """Have WeChat fetch a file (``"video"`` or ``"file"``, up to 200 MB) from ``url``.

        Submits the job (``cgi-bin/media/upload_by_url``) and polls until it is
        done.  The URL must support Range requests.  Give the file's MD5 as
        ``md5`` (32 hex digits), or ``md5_path``, a local copy the library
        hashes (and checks against the size limits).  ``timeout`` seconds
        (default 10 minutes) bound the wait: then :class:`Timeout` is raised
        with ``.jobid`` set, and :meth:`wait_upload_by_url` picks it up later.
        Job failures raise their errcode (830001 URL without Range support,
        830003 download failed, 45001 size, 301019 MD5 mismatch), also with
        ``.jobid``.  Ctrl-C on the main thread stops the wait at once (see
        ``cancel_on_interrupt``); the job goes on at WeChat, so to pick it up
        afterwards use :meth:`submit_upload_by_url` and :meth:`wait_upload_by_url`.
        """
        h = self._new_url_upload(type, url, filename)
        return self._url_job(h, md5, md5_path, scene, None, timeout, cancel, submit_only=False)

    def submit_upload_by_url(
        self,
        type: str,
        url: str,
        filename: str,
        *,
        md5: Optional[str] = None,
        md5_path: Optional[StrPath] = None,
        scene: Optional[int] = None,
        cancel: Optional[CancelToken] = None,
    ) -> str:
        """Submit an upload by URL without waiting; returns the jobid (valid 60 minutes)."""
        h = self._new_url_upload(type, url, filename)
        result = self._url_job(h, md5, md5_path, scene, None, None, cancel, submit_only=True)
        assert result.jobid is not None
        return result.jobid

    def wait_upload_by_url(
        self, jobid: str, *, timeout: Optional[float] = None, cancel: Optional[CancelToken] = None
    ) -> UploadResult:
        """Wait for a submitted job (see :meth:`upload_by_url`)."""
        jobid_b = _cstr(jobid, "jobid")
        h = self._new_url_upload("file", "", "")
        return self._url_job(h, None, None, None, jobid_b, timeout, cancel, submit_only=False)

    def _new_url_upload(self, type_: str, url: str, filename: str) -> Any:
        args = (_cstr(type_, "type"), _cstr(url, "url"), _cstr(filename, "filename"))
        with self._lock:
            h = lib.wxm_url_upload_new(self._live(), *args)
            if not h:
                detail = _ffi.last_errmsg()
        if not h:
            _raise_for(ec.E_INVALID_ARG, detail)
        return h

    def _url_job(
        self,
        h: Any,
        md5: Optional[str],
        md5_path: Optional[StrPath],
        scene: Optional[int],
        jobid: Optional[bytes],
        timeout: Optional[float],
        cancel: Optional[CancelToken],
        submit_only: bool,
    ) -> UploadResult:
        transfer = Transfer()
        key: Optional[int] = None
        try:
            errmsg = lib.wxm_url_upload_errmsg
            if md5 is not None and md5_path is not None:
                raise TypeError("give md5 or md5_path, not both")
            if md5 is not None:
                _check(lib.wxm_url_upload_set_md5(h, _cstr(md5, "md5")), errmsg, h)
            if md5_path is not None:
                _check(lib.wxm_url_upload_set_md5_from_path(h, _path_bytes(md5_path, "md5_path")), errmsg, h)
            if scene is not None:
                _check(lib.wxm_url_upload_set_scene(h, _uint(scene, "scene", 32)), errmsg, h)
            if jobid is not None:
                _check(lib.wxm_url_upload_set_jobid(h, jobid), errmsg, h)
            timeout_ms = 0 if timeout is None else _millis(timeout, "timeout")
            if self.cancel_on_interrupt and _get_ident() == _transfer._main_ident:
                # No bytes of ours move: a pure heartbeat (0, 0), about every
                # 100 ms while WeChat's job runs, that lets Ctrl-C in.
                key = REGISTRY.add(transfer)
                _check(lib.wxm_url_upload_set_progress(h, PROGRESS_TRAMPOLINE, key), errmsg, h)
            call: Callable[..., int]
            args: Tuple[Any, ...]
            if submit_only:
                call, args = lib.wxm_url_upload_submit, (h,)
            else:
                call, args = lib.wxm_url_upload_run, (h, timeout_ms)  # waits only, when a jobid is set
            rc = self._run(transfer, cancel, lib.wxm_url_upload_cancel, h, call, args)
            counters = read_counters(lib.wxm_url_upload_counters, h)
            transfer.reraise()  # Ctrl-C (or a signal handler's exception) that stopped it
            job = _ffi.decode(lib.wxm_url_upload_jobid(h))
            if rc:
                try:
                    self._fail(rc, errmsg, h, counters)
                except WxMediaError as e:
                    e.jobid = job
                    raise
            return UploadResult(
                media_id=_ffi.decode(lib.wxm_url_upload_media_id(h)) or "",
                type="",
                created_at=int(lib.wxm_url_upload_created_at(h)),
                jobid=job,
                counters=counters,
            )
        finally:
            if key is not None:
                REGISTRY.remove(key)
            lib.wxm_url_upload_free(h)


def type_name(obj: Any) -> str:
    return type(obj).__name__
