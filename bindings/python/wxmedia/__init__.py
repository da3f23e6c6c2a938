"""wxmedia — WeChat / WeCom temporary media (临时素材) from Python.

Downloads use aligned Range requests (chunks of at most 20 MiB, 16-byte
aligned for encrypted media, resumable, atomic on disk); uploads are streaming
multipart bodies checked locally first.  The work is done by the native
``libwxmedia`` (Rust, C ABI) bundled in this package; ``WXMEDIA_LIBRARY``
overrides which library file is loaded.

Quick start::

    import wxmedia

    with wxmedia.Client("wecom", credentials=(corpid, corpsecret)) as client:
        up = client.upload("file", "report.pdf")
        info = client.download(up.media_id, "copy.pdf")
        data, info = client.download_bytes(up.media_id)   # small media
        store = wxmedia.ObjectStore("https://s3.example.com", access_key=key_id, secret_key=secret)
        client.download_to_object(up.media_id, store, "bucket", "key")   # straight into S3

Progress with tqdm (optional; any callable ``progress(done, total)`` works)::

    from tqdm import tqdm
    with tqdm(unit="B", unit_scale=True) as bar:
        def progress(done, total):
            bar.total = total          # None while unknown
            bar.update(done - bar.n)   # `done` is cumulative, tqdm wants deltas
        client.download(media_id, "big.mp4", progress=progress)

Errors are :class:`WxMediaError` subclasses with ``.errcode`` (see
:mod:`wxmedia.errcodes`).  An exception raised by your own callback (a
sink's ``write()``, a reader's ``read()``, ``progress``) stops the transfer
and is re-raised unchanged.  Ctrl-C cancels a running transfer.
"""

from __future__ import annotations

from . import errcodes, events
from ._ffi import LIBRARY_PATH, LIBRARY_VERSION
from ._transfer import CancelToken
from ._version import __version__
from .client import Client, JobStatus, MediaInfo, Platform, TokenApi, UploadResult
from .events import Counters, Event, EventKind
from .objstore import ObjectStore
from .errors import (
    Aborted,
    Cancelled,
    HTTPStatusError,
    InternalError,
    InvalidArgument,
    InvalidMediaId,
    InvalidSize,
    InvalidType,
    LibraryError,
    LocalIOError,
    NetworkError,
    NoSuchBucket,
    ObjectStoreAuthError,
    ObjectStoreError,
    ProtocolError,
    ServerBusy,
    StateError,
    TokenStoreError,
    OutcomeUnknown,
    Timeout,
    TLSError,
    TokenError,
    TooLarge,
    WxMediaError,
)


def library_version() -> str:
    """The version string of the loaded native library (``wxm_version()``)."""
    return LIBRARY_VERSION


def strerror(errcode: int) -> str:
    """The library's static description of any error code."""
    from . import _ffi

    return _ffi.strerror(int(errcode))


__all__ = [
    "Aborted",
    "CancelToken",
    "Cancelled",
    "Client",
    "Counters",
    "Event",
    "EventKind",
    "HTTPStatusError",
    "InternalError",
    "InvalidArgument",
    "JobStatus",
    "InvalidMediaId",
    "InvalidSize",
    "InvalidType",
    "LIBRARY_PATH",
    "LibraryError",
    "LocalIOError",
    "MediaInfo",
    "NetworkError",
    "NoSuchBucket",
    "ObjectStore",
    "ObjectStoreAuthError",
    "ObjectStoreError",
    "Platform",
    "ProtocolError",
    "ServerBusy",
    "StateError",
    "TokenStoreError",
    "OutcomeUnknown",
    "TLSError",
    "Timeout",
    "TokenApi",
    "TokenError",
    "TooLarge",
    "UploadResult",
    "WxMediaError",
    "__version__",
    "errcodes",
    "events",
    "library_version",
    "strerror",
]
