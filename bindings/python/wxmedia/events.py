"""What a transfer does: structured events and per-transfer counters.

Events go to ``logging.getLogger("wxmedia")`` by default (:data:`LOGGER`):
requests at DEBUG, the others at their own level (INFO; WARNING for
retries, failed transfers, failed resume checks and a token store
fallback), every field in the record's ``extra`` under a ``wxm_`` prefix
(``record.wxm_kind``, ``record.wxm_endpoint``, ``record.wxm_attempt``, ...,
see :func:`log_extra`).  ``Client(on_event=fn)`` also hands each event to
``fn`` as an :class:`Event`.  See :class:`wxmedia.Client` for the switches
and their cost.

Every download result (:class:`wxmedia.MediaInfo`) and upload result
(:class:`wxmedia.UploadResult`) carries the transfer's :class:`Counters`;
a :class:`wxmedia.WxMediaError` raised by a transfer carries them as
``exc.counters``.

No event field or message ever holds an access_token, a secret or a password.
"""

from __future__ import annotations

import ctypes
import enum
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, cast

from . import _ffi

__all__ = ["Counters", "Event", "EventKind", "ExpectContinue", "LOGGER", "TokenSource", "log_extra"]

LOGGER = logging.getLogger("wxmedia")
"""Where events are logged unless ``log_events=False``."""
# A library adds no handler of its own but this one: without it an application
# that never configured logging would see WARNING events on stderr (logging's
# "last resort").  Configure logging (or add a handler to this logger) to see them.
LOGGER.addHandler(logging.NullHandler())


class EventKind(enum.IntEnum):
    """What happened (``WXM_EVENT_*``)."""

    TRANSFER_STARTED = 1
    """A run started.  INFO."""
    TRANSFER_FINISHED = 2
    """A run ended: ``errcode`` is its result (0: success), ``duration`` its time,
    ``bytes`` what it moved.  INFO on success, WARNING on failure."""
    REQUEST_STARTED = 3
    """An HTTP request is about to be sent (``endpoint``, the Range, ``attempt``).  DEBUG."""
    REQUEST_FINISHED = 4
    """An HTTP request ended (``http_status``, ``errcode``, ``bytes``, ``duration``).  DEBUG."""
    RETRY_SCHEDULED = 5
    """A failed request will be sent again after ``backoff``: ``attempt`` is the
    coming attempt, ``retry_reason`` the code of the failure.  WARNING."""
    TOKEN_FETCHED = 6
    """An access_token was fetched (``token_source``, ``token_fetch``).  INFO."""
    TOKEN_REFRESHED = 7
    """An access_token was fetched again after WeChat rejected the one in use.  INFO."""
    TOKEN_SHARED = 8
    """A token another process fetched was taken from the token store.  INFO."""
    RESUME_DECIDED = 9
    """A download to a path resumes its part file at ``resume_offset``
    (``resume_verified`` bytes before it are compared first).  INFO."""
    RESUME_CHECK_FAILED = 10
    """The part file failed that check: downloaded again from byte 0.  WARNING."""
    FALLBACK = 11
    """A fallback was taken: the token store failed and a local fetch was allowed
    (WARNING), or a server refused ``Expect: 100-continue`` (INFO)."""


class TokenSource(enum.IntEnum):
    """Where a token came from (``WXM_TOKEN_SOURCE_*``)."""

    NONE = 0
    STATIC = 1
    CREDENTIALS = 2
    PROVIDER = 3
    STORE = 4


class ExpectContinue(enum.IntEnum):
    """How an upload's ``Expect: 100-continue`` went (``WXM_CONTINUE_*``)."""

    NOT_ASKED = 0
    """Not asked (bodies under 1 MiB)."""
    BODY_SENT = 1
    """Asked, and the body was sent."""
    ANSWERED_FIRST = 2
    """Asked, and the server answered before the body (a refusal cost no body)."""
    REFUSED = 3
    """The server refused the expectation (417): sent again without it."""


@dataclass(frozen=True)
class Event:
    """One event (a copy: keep it as long as you like).

    Fields that do not apply to its ``kind`` are 0, ``""`` or False.
    Durations are in seconds, as everywhere in this package.
    """

    kind: EventKind
    level: int
    """A :mod:`logging` level (``logging.DEBUG`` ... ``logging.ERROR``)."""
    time_ns: int
    """``time.monotonic_ns()`` when it happened."""
    transfer_id: int
    """The transfer's id, as in its :class:`Counters` (0: outside a transfer)."""
    endpoint: str
    """The API path (``cgi-bin/media/get``) or a video_url's path: no host, no query."""
    message: str
    """For a person."""
    range_start: int
    range_end: int
    """The Range asked for, ``[range_start, range_end)``; both 0 for none."""
    http_status: int
    """The HTTP status of the answer (0: none)."""
    errcode: int
    """WeChat's errcode or an ``errcodes.E_*`` code; 0 for success."""
    bytes: int
    duration: float
    attempt: int
    """1 for a request's first attempt, 2 for its first retry, ..."""
    retry_reason: int
    """A retry: the code of the failure that caused it."""
    backoff: float
    token_source: TokenSource
    token_fetch: float
    """A token event: how long the fetch took."""
    resume_offset: int
    resume_verified: int
    via_video_url: bool
    expect_continue: ExpectContinue
    method: str
    """A request's HTTP method (``"GET"``, ``"POST"``, ``"PUT"``...); ``""`` otherwise."""


@dataclass(frozen=True)
class Counters:
    """What one transfer counted over its run, whatever its outcome."""

    transfer_id: int
    """The transfer's id, as in its events (:attr:`Event.transfer_id`)."""
    requests: int = 0
    """HTTP requests sent (retries included)."""
    retries: int = 0
    """Requests sent again after a transient failure."""
    bytes_received: int = 0
    """Media bytes received (a resume's re-checked overlap included)."""
    bytes_sent: int = 0
    """File bytes sent in upload bodies (a body sent again counts again)."""
    token_refreshes: int = 0
    """Times a rejected access_token was replaced."""
    resumed_from: int = 0
    """Where a download to a path resumed its part file (0: from the start)."""
    elapsed: float = 0.0
    """Time of the run, in seconds."""


def read_counters(getter: Callable[[Any, Any], int], handle: Any) -> Optional[Counters]:
    """``getter(handle, &c)`` (a ``wxm_*_counters``) as :class:`Counters`; None if it fails."""
    c = _ffi.wxm_counters()
    c.size = _COUNTERS_SIZE
    if getter(handle, _byref(c)):
        return None
    return Counters(
        c.transfer_id,
        c.requests,
        c.retries,
        c.bytes_received,
        c.bytes_sent,
        c.token_refreshes,
        c.resumed_from,
        c.elapsed_us / 1e6,
    )


_COUNTERS_SIZE = ctypes.sizeof(_ffi.wxm_counters)
_byref = ctypes.byref
_from_address = _ffi.wxm_event.from_address
_KINDS = {k.value: k for k in EventKind}
_SOURCES = {s.value: s for s in TokenSource}
_CONTINUES = {c.value: c for c in ExpectContinue}


def event_at(address: int) -> Event:
    """A copy of the ``wxm_event`` at ``address`` (valid only during the handler's call)."""
    e = _from_address(address)
    kind = e.kind
    source = e.token_source
    cont = e.expect_continue
    return Event(
        cast(EventKind, _KINDS.get(kind, kind)),  # a kind newer than this package: the plain number
        e.level,
        e.time_ns,
        e.transfer_id,
        (e.endpoint or b"").decode("utf-8", "replace"),
        (e.message or b"").decode("utf-8", "replace"),
        e.range_start,
        e.range_end,
        e.http_status,
        e.errcode,
        e.bytes,
        e.duration_us / 1e6,
        e.attempt,
        e.retry_reason,
        e.backoff_ms / 1e3,
        cast(TokenSource, _SOURCES.get(source, source)),
        e.token_fetch_us / 1e6,
        e.resume_offset,
        e.resume_verified,
        bool(e.via_video_url),
        cast(ExpectContinue, _CONTINUES.get(cont, cont)),
        (e.method or b"").decode("ascii", "replace"),
    )


def log_extra(event: Event) -> Dict[str, Any]:
    """The ``extra`` of an event's log record: every field, ``wxm_``-prefixed.

    ``wxm_kind`` is the kind's name (``"RETRY_SCHEDULED"``), ``wxm_token_source``
    and ``wxm_expect_continue`` likewise; the others are the :class:`Event`'s
    values (durations in seconds).  ``message`` is the record's message.
    """
    kind = event.kind
    return {
        "wxm_kind": kind.name if isinstance(kind, EventKind) else str(kind),
        "wxm_transfer_id": event.transfer_id,
        "wxm_endpoint": event.endpoint,
        "wxm_range_start": event.range_start,
        "wxm_range_end": event.range_end,
        "wxm_http_status": event.http_status,
        "wxm_errcode": event.errcode,
        "wxm_bytes": event.bytes,
        "wxm_duration": event.duration,
        "wxm_attempt": event.attempt,
        "wxm_retry_reason": event.retry_reason,
        "wxm_backoff": event.backoff,
        "wxm_token_source": _name(event.token_source),
        "wxm_token_fetch": event.token_fetch,
        "wxm_resume_offset": event.resume_offset,
        "wxm_resume_verified": event.resume_verified,
        "wxm_via_video_url": event.via_video_url,
        "wxm_expect_continue": _name(event.expect_continue),
        "wxm_method": event.method,
        "wxm_time_ns": event.time_ns,
    }


def _name(value: Any) -> str:
    return value.name if isinstance(value, enum.Enum) else str(value)


_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)  # the library's WXM_LEVEL_*
_REQUEST_KINDS = (EventKind.REQUEST_STARTED, EventKind.REQUEST_FINISHED)

OnEvent = Callable[[Event], Any]
"""``on_event(event)``: called on the thread where the event happens."""


class EventHandler:
    """A client's consumers of events: its logger and its ``on_event`` (not public API).

    The library owns it (``user_data`` of ``wxm_config_set_event_handler``,
    through ``_transfer.HANDLERS``) until its ``free_fn``.
    """

    __slots__ = ("logger", "on_event", "on_event_level", "min_level", "__weakref__")

    def __init__(self, logger: Optional[logging.Logger], on_event: Optional[OnEvent], on_event_level: int) -> None:
        self.logger = logger
        self.on_event = on_event
        self.on_event_level = on_event_level
        self.min_level = self._min_level()

    def _min_level(self) -> Optional[int]:
        """The lowest ``WXM_LEVEL_*`` someone wants now (None: nobody; no handler)."""
        wanted = []
        if self.logger is not None:
            # isEnabledFor: the effective level, logging.disable() and .disabled.
            enabled = [lv for lv in _LEVELS if self.logger.isEnabledFor(lv)]
            if enabled:
                wanted.append(enabled[0])
        if self.on_event is not None and self.on_event_level <= logging.ERROR:
            # The library's levels are 10/20/30/40: the highest not above the one asked.
            wanted.append(max([lv for lv in _LEVELS if lv <= self.on_event_level] or [logging.DEBUG]))
        return min(wanted) if wanted else None

    def __call__(self, address: int) -> None:
        """One event from the library (on any thread; the caller catches what this raises)."""
        event = event_at(address)
        level = logging.DEBUG if event.kind in _REQUEST_KINDS else event.level
        logger = self.logger
        if logger is not None and logger.isEnabledFor(level):
            logger.log(level, event.message, extra=log_extra(event))
        on_event = self.on_event
        if on_event is not None and event.level >= self.on_event_level:
            try:
                on_event(event)
            except Exception:
                # Never into the library: the transfer goes on; the bug is told.
                LOGGER.error("wxmedia: on_event raised on %s; the transfer goes on", _name(event.kind), exc_info=True)
