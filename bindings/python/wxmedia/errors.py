"""Exceptions raised by :mod:`wxmedia`.

Every failure of the library is a :class:`WxMediaError` with ``.errcode``
(see :mod:`wxmedia.errcodes`) and ``.errmsg`` (the library's detail text,
which never contains an access_token or a secret).  Catch the subclass that
matches what you can handle::

    try:
        client.download(media_id, path)
    except wxmedia.InvalidMediaId:      # 40007: expired or unknown
        ...
    except wxmedia.TokenError:          # 40001 / 40014 / 42001 / 41001 ...
        ...
    except wxmedia.NetworkError:        # network, timeout, TLS, HTTP status, protocol
        ...

Exceptions raised by *your* callbacks (a sink's ``write()``, a reader's
``read()``, a ``progress`` callable) are not wrapped: the transfer is aborted
and the very exception object is re-raised with its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Type

from . import errcodes as ec

if TYPE_CHECKING:
    from .events import Counters


class WxMediaError(Exception):
    """A failure reported by the wxmedia library or by WeChat.

    Attributes:
        errcode: the integer code (WeChat's own errcode, or a negative
            ``errcodes.E_*`` value for the library's own failures).
        errmsg: human-readable detail (never contains a token or secret).
    """

    errcode: int
    errmsg: str
    jobid: "str | None" = None
    """For an upload by URL: the job concerned (wait for it again after a Timeout)."""
    counters: "Optional[Counters]" = None
    """For a failed transfer: what it counted (requests, retries, bytes, time) before failing."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(errcode, errmsg)
        self.errcode = int(errcode)
        self.errmsg = errmsg

    def __str__(self) -> str:
        return f"[{self.errcode}] {self.errmsg}" if self.errmsg else f"[{self.errcode}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.errcode!r}, {self.errmsg!r})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.errcode, self.errmsg))


class InvalidArgument(WxMediaError, ValueError):
    """``E_INVALID_ARG`` (-1001): a value the library refuses (also a ValueError)."""


class LocalIOError(WxMediaError, OSError):
    """``E_IO`` (-1002): a local file or the sink side failed (also an ``OSError``).

    ``except OSError`` catches it next to the standard library's own I/O
    errors.  ``.errno`` is ``None`` (the library reports no errno; the
    operating system's message is in ``.errmsg``/``.strerror``), and
    ``.errcode`` is ``E_IO``.
    """

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(errcode, errmsg)
        # OSError took errcode as an errno: it is not one.
        self.errno = None
        self.strerror = errmsg or None


class NetworkError(WxMediaError):
    """The transfer failed on the wire, after the library's retries.

    Codes ``E_NETWORK``, ``E_TIMEOUT``, ``E_TLS``, ``E_HTTP_STATUS`` and
    ``E_PROTOCOL``; the finer subclasses below can be caught separately.
    """


class Timeout(NetworkError, TimeoutError):
    """``E_TIMEOUT`` (-1004): connect or I/O timeout after retries.

    Also the built-in ``TimeoutError`` (hence an ``OSError``), so ``except
    TimeoutError`` catches it with the standard library's own time-outs; an
    upload by URL whose wait ran out raises it too, with ``.jobid`` set.
    """

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(errcode, errmsg)
        self.errno = None
        self.strerror = errmsg or None


class TLSError(NetworkError):
    """``E_TLS`` (-1005): TLS handshake or certificate failure."""


class HTTPStatusError(NetworkError):
    """``E_HTTP_STATUS`` (-1006): an HTTP status WeChat never answers, after retries."""


class ProtocolError(NetworkError):
    """``E_PROTOCOL`` (-1007): bad Content-Range, length mismatch, malformed answer."""


class Aborted(WxMediaError):
    """``E_ABORTED`` (-1008): a callback asked to stop.

    When the callback was one of ours (a Python callable raised), you get
    that exception instead of this one.
    """


class Cancelled(WxMediaError):
    """``E_CANCELLED`` (-1009): the transfer was cancelled by a :class:`wxmedia.CancelToken`.

    An ordinary ``Exception``, for a cancel *your* code asked for.  Two other
    stops are not this class, on purpose, so that they keep their meaning:
    Ctrl-C on the main thread cancels the transfer and raises
    ``KeyboardInterrupt`` (a ``BaseException``, which ``except Exception`` does
    not swallow), and cancelling an asyncio task running a
    :class:`wxmedia.aio.Client` call cancels the transfer and raises
    ``asyncio.CancelledError`` (also a ``BaseException``), as asyncio expects.
    """


class StateError(WxMediaError, RuntimeError):
    """``E_STATE`` (-1012): the handle cannot do that now."""


class TokenStoreError(WxMediaError):
    """``E_TOKEN_STORE`` (-1013): the shared token store (Redis) failed.

    Unreachable, wrong or missing password, a read-only replica, or any
    error reply; the message names the store without its password.
    """


class OutcomeUnknown(WxMediaError):
    """``E_OUTCOME_UNKNOWN`` (-1014): a job submission lost its answer.

    It was not sent again, since that could create a second job; the
    message carries the jobid when one is known.
    """


class ObjectStoreError(WxMediaError):
    """``E_OBJECT_STORE`` (-1015): the object store of :meth:`wxmedia.Client.download_to_object`
    answered an error (after retries for 5xx).

    The message carries the store's own error code (``NoSuchUpload``,
    ``InternalError``, ...) and never the secret.  The two finer cases below
    are subclasses, so ``except ObjectStoreError`` catches every failure of the store.
    """


class ObjectStoreAuthError(ObjectStoreError):
    """``E_OBJECT_STORE_AUTH`` (-1016): the object store refused the credentials.

    An unknown access key, a wrong secret (``SignatureDoesNotMatch``), an
    expired session token, or access denied.  Never retried, so it comes
    fast; the message never contains the secret or the session token.
    """


class NoSuchBucket(ObjectStoreError):
    """``E_NO_SUCH_BUCKET`` (-1017): the object store has no bucket of that name."""


class InternalError(WxMediaError):
    """``E_PANIC`` (-1011): the library caught an internal panic (a bug: please report it)."""


class TokenError(WxMediaError):
    """The access_token or the credentials were refused or are missing.

    Codes 40001, 40013, 40014, 41001, 42001 and ``E_NO_TOKEN``.  With
    credentials the library already refreshed the token (again after every
    rejection that followed progress) before giving up.
    """


class InvalidMediaId(WxMediaError):
    """40007 (and 41006): the media_id is unknown, malformed or expired (3 days)."""


class TooLarge(WxMediaError):
    """The size is outside what WeChat accepts.

    830002 (needs Range chunks), 40006 (5 bytes or less, or too large a
    ``file``), 40009 image, 40010 voice, 40011 video, 40012 thumb, 45001
    over the limit, 44001 empty.  Also available as :data:`InvalidSize`.
    """


InvalidSize = TooLarge


class InvalidType(WxMediaError):
    """40004 (type not accepted by the platform), 40005 (format does not match the type), 40123."""


class ServerBusy(WxMediaError):
    """-1 (system busy, after retries) and the rate limits 45009 / 45011 / 45033."""

_BY_CODE: Dict[int, Type[WxMediaError]] = {
    ec.E_INVALID_ARG: InvalidArgument,
    ec.E_IO: LocalIOError,
    ec.E_NETWORK: NetworkError,
    ec.E_TIMEOUT: Timeout,
    ec.E_TLS: TLSError,
    ec.E_HTTP_STATUS: HTTPStatusError,
    ec.E_PROTOCOL: ProtocolError,
    ec.E_ABORTED: Aborted,
    ec.E_CANCELLED: Cancelled,
    ec.E_STATE: StateError,
    ec.E_TOKEN_STORE: TokenStoreError,
    ec.E_OUTCOME_UNKNOWN: OutcomeUnknown,
    ec.E_PANIC: InternalError,
    ec.E_OBJECT_STORE: ObjectStoreError,
    ec.E_OBJECT_STORE_AUTH: ObjectStoreAuthError,
    ec.E_NO_SUCH_BUCKET: NoSuchBucket,
    ec.INVALID_MEDIA_ID: InvalidMediaId,
    ec.MISSING_MEDIA_ID: InvalidMediaId,
}
for _code in ec.TOKEN_CODES:
    _BY_CODE[_code] = TokenError
for _code in ec.SIZE_CODES:
    _BY_CODE[_code] = TooLarge
for _code in ec.TYPE_CODES:
    _BY_CODE[_code] = InvalidType
for _code in ec.BUSY_CODES:
    _BY_CODE[_code] = ServerBusy


def error_class(errcode: int) -> Type[WxMediaError]:
    """The exception class used for ``errcode`` (``WxMediaError`` when none is finer)."""
    return _BY_CODE.get(errcode, WxMediaError)


def make_error(errcode: int, errmsg: str) -> WxMediaError:
    """Build the exception for ``errcode`` with detail ``errmsg``."""
    return error_class(errcode)(errcode, errmsg)


class LibraryError(ImportError):
    """The native library is missing, cannot be loaded, or has the wrong version."""
