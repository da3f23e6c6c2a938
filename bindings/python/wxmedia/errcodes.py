"""Named error codes.

Two families share one integer space, exactly as the C ABI returns them:

* the library's own failures, negative and at most ``-1000`` (``E_*``; the
  header names them ``WXM_E_*``), and
* WeChat's own errcodes, which pass through unchanged (``-1`` and positive
  numbers).  Uploads that the library rejects locally, before any byte is
  sent, use the code WeChat would have answered.

Every exception raised by :mod:`wxmedia` carries one of these as
``.errcode``::

    from wxmedia import errcodes
    try:
        client.download(media_id, "out.bin")
    except wxmedia.WxMediaError as e:
        if e.errcode == errcodes.INVALID_MEDIA_ID: ...
"""

from __future__ import annotations

from typing import Dict

OK = 0

# --- the library's own codes (WXM_E_* in include/wxmedia.h) -----------------
E_INVALID_ARG = -1001
"""NULL pointer, bad UTF-8, out-of-range value, unknown platform."""
E_IO = -1002
"""Local file or sink-side I/O failed."""
E_NETWORK = -1003
"""Connect refused, reset, DNS, short body after retries."""
E_TIMEOUT = -1004
"""Connect or I/O timeout after retries."""
E_TLS = -1005
"""TLS handshake or certificate failure."""
E_HTTP_STATUS = -1006
"""An HTTP status WeChat never answers (4xx/5xx) after retries."""
E_PROTOCOL = -1007
"""The server broke the protocol: bad Content-Range, length mismatch, ..."""
E_ABORTED = -1008
"""A host callback (sink, reader, progress) asked to stop."""
E_CANCELLED = -1009
"""The transfer was cancelled (``wxm_*_cancel``)."""
E_NO_TOKEN = -1010
"""No access_token and no credentials configured."""
E_PANIC = -1011
"""An internal panic was caught at the boundary (a bug: please report it)."""
E_STATE = -1012
"""The handle cannot do that now (a transfer run twice, a setter after run)."""
E_TOKEN_STORE = -1013
"""The shared token store (Redis) failed: unreachable, refused, read-only."""
E_OUTCOME_UNKNOWN = -1014
"""A job submission lost its answer: it was not repeated, its outcome is unknown."""
E_OBJECT_STORE = -1015
"""The object store answered an error (after retries for 5xx)."""
E_OBJECT_STORE_AUTH = -1016
"""The object store refused the credentials (not retried)."""
E_NO_SUCH_BUCKET = -1017
"""The object store has no bucket of that name."""

LIBRARY_CODES: Dict[str, int] = {
    "WXM_OK": OK,
    "WXM_E_INVALID_ARG": E_INVALID_ARG,
    "WXM_E_IO": E_IO,
    "WXM_E_NETWORK": E_NETWORK,
    "WXM_E_TIMEOUT": E_TIMEOUT,
    "WXM_E_TLS": E_TLS,
    "WXM_E_HTTP_STATUS": E_HTTP_STATUS,
    "WXM_E_PROTOCOL": E_PROTOCOL,
    "WXM_E_ABORTED": E_ABORTED,
    "WXM_E_CANCELLED": E_CANCELLED,
    "WXM_E_NO_TOKEN": E_NO_TOKEN,
    "WXM_E_PANIC": E_PANIC,
    "WXM_E_STATE": E_STATE,
    "WXM_E_TOKEN_STORE": E_TOKEN_STORE,
    "WXM_E_OUTCOME_UNKNOWN": E_OUTCOME_UNKNOWN,
    "WXM_E_OBJECT_STORE": E_OBJECT_STORE,
    "WXM_E_OBJECT_STORE_AUTH": E_OBJECT_STORE_AUTH,
    "WXM_E_NO_SUCH_BUCKET": E_NO_SUCH_BUCKET,
}
"""The header's ``WXM_*`` error-code macros by name (a test checks them)."""

# --- WeChat's own errcodes (pass through unchanged) -------------------------
SYSTEM_BUSY = -1
"""系统繁忙: retried by the library with backoff."""
INVALID_CREDENTIAL = 40001
"""Invalid secret (gettoken) or invalid/not-latest access_token (API call)."""
INVALID_MEDIA_TYPE = 40004
"""The platform does not accept this media type."""
INVALID_FILE_TYPE = 40005
"""The file format does not match the type (e.g. a .txt as an image)."""
INVALID_FILE_SIZE = 40006
"""Size of 5 bytes or less, or over the limit for a ``file``."""
INVALID_MEDIA_ID = 40007
"""Invalid or expired media_id (temporary media live 3 days)."""
INVALID_IMAGE_SIZE = 40009
INVALID_VOICE_SIZE = 40010
INVALID_VIDEO_SIZE = 40011
INVALID_THUMB_SIZE = 40012
INVALID_APPID = 40013
"""Invalid corpid / appid."""
INVALID_ACCESS_TOKEN = 40014
INVALID_PARAMETER = 40058
"""Also what encrypted media answer for a chunk length not a multiple of 16."""
INVALID_IMAGE_FORMAT = 40123
MISSING_ACCESS_TOKEN = 41001
MEDIA_DATA_MISSING = 41005
MISSING_MEDIA_ID = 41006
ACCESS_TOKEN_EXPIRED = 42001
EMPTY_MEDIA = 44001
"""The media file is empty."""
MEDIA_SIZE_LIMIT = 45001
"""The media file is over the size limit."""
API_DAILY_QUOTA = 45009
API_MINUTE_QUOTA = 45011
API_CONCURRENCY_LIMIT = 45033
API_UNAUTHORIZED = 48001
FILE_TOO_BIG_NEEDS_RANGE = 830002
"""Over 20 MB: must be fetched in Range chunks of at most 20 MB."""
URL_WITHOUT_RANGE = 830001
"""Upload by URL: the URL is invalid or does not support Range."""
URL_DOWNLOAD_FAILED = 830003
"""Upload by URL: WeChat could not download the URL."""
MD5_MISMATCH = 301019
"""Upload by URL: the file's MD5 is not the one given."""

TOKEN_CODES = frozenset(
    {INVALID_CREDENTIAL, INVALID_APPID, INVALID_ACCESS_TOKEN, MISSING_ACCESS_TOKEN, ACCESS_TOKEN_EXPIRED, E_NO_TOKEN}
)
SIZE_CODES = frozenset(
    {
        FILE_TOO_BIG_NEEDS_RANGE,
        INVALID_FILE_SIZE,
        INVALID_IMAGE_SIZE,
        INVALID_VOICE_SIZE,
        INVALID_VIDEO_SIZE,
        INVALID_THUMB_SIZE,
        MEDIA_SIZE_LIMIT,
        EMPTY_MEDIA,
    }
)
TYPE_CODES = frozenset({INVALID_MEDIA_TYPE, INVALID_FILE_TYPE, INVALID_IMAGE_FORMAT})
BUSY_CODES = frozenset({SYSTEM_BUSY, API_DAILY_QUOTA, API_MINUTE_QUOTA, API_CONCURRENCY_LIMIT})
NETWORK_CODES = frozenset({E_NETWORK, E_TIMEOUT, E_TLS, E_HTTP_STATUS, E_PROTOCOL})
OBJECT_STORE_CODES = frozenset({E_OBJECT_STORE, E_OBJECT_STORE_AUTH, E_NO_SUCH_BUCKET})

__all__ = [name for name in dir() if name.isupper()]
