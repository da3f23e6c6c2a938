"""Low-level ctypes binding of ``libwxmedia`` (the C ABI of include/wxmedia.h).

Nothing here is public API: use :class:`wxmedia.Client`.

The library is looked up, in order:

1. ``$WXMEDIA_LIBRARY`` — an explicit path (development, CI, packagers);
2. ``wxmedia/_lib/libwxmedia.so`` — the copy bundled by ``pip install``.

At import the major.minor of ``wxm_version()`` must equal the package's, so a
stale library fails loudly instead of misbehaving.  Every exported function
gets ``argtypes`` and ``restype``; ``tests/test_ffi.py`` fails when the header
has a ``wxm_`` function that is not declared here (or declared differently).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import types
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ._version import __version__
from .errors import LibraryError

LIBRARY_ENV = "WXMEDIA_LIBRARY"
"""Environment variable naming the shared library to load instead of the bundled one."""


def _library_filename() -> str:
    if sys.platform == "darwin":
        return "libwxmedia.dylib"
    if sys.platform == "win32":
        return "wxmedia.dll"
    return "libwxmedia.so"


BUNDLED_LIBRARY = Path(__file__).resolve().parent / "_lib" / _library_filename()
"""Where ``pip install`` puts the library inside the package."""


# --- opaque handle types ------------------------------------------------------
class wxm_config(Structure):
    """Opaque ``wxm_config``."""


class wxm_client(Structure):
    """Opaque ``wxm_client``."""


class wxm_download(Structure):
    """Opaque ``wxm_download``."""


class wxm_upload(Structure):
    """Opaque ``wxm_upload``."""


class wxm_url_upload(Structure):
    """Opaque ``wxm_url_upload``."""


class wxm_objstore(Structure):
    """Opaque ``wxm_objstore``."""


ConfigP = POINTER(wxm_config)
ClientP = POINTER(wxm_client)
DownloadP = POINTER(wxm_download)
UploadP = POINTER(wxm_upload)
UrlUploadP = POINTER(wxm_url_upload)
ObjstoreP = POINTER(wxm_objstore)


# --- structs ----------------------------------------------------------------------
# Field for field as in the header; tests/test_ffi.py compares them.
class wxm_counters(Structure):
    """``wxm_counters``: what a transfer handle counted over its last run (set ``size`` first)."""

    _fields_ = [
        ("size", c_size_t),
        ("transfer_id", c_uint64),
        ("requests", c_uint64),
        ("retries", c_uint64),
        ("bytes_received", c_uint64),
        ("bytes_sent", c_uint64),
        ("token_refreshes", c_uint64),
        ("resumed_from", c_uint64),
        ("elapsed_us", c_uint64),
    ]


class wxm_event(Structure):
    """``wxm_event``: one event, valid only during the handler's call (``endpoint`` and
    ``message`` read as ``bytes`` copies)."""

    _fields_ = [
        ("size", c_size_t),
        ("kind", c_int32),
        ("level", c_int32),
        ("time_ns", c_uint64),
        ("transfer_id", c_uint64),
        ("endpoint", c_char_p),
        ("message", c_char_p),
        ("range_start", c_uint64),
        ("range_end", c_uint64),
        ("http_status", c_int32),
        ("errcode", c_int32),
        ("bytes", c_uint64),
        ("duration_us", c_uint64),
        ("attempt", c_uint32),
        ("retry_reason", c_int32),
        ("backoff_ms", c_uint64),
        ("token_source", c_int32),
        ("expect_continue", c_int32),
        ("token_fetch_us", c_uint64),
        ("resume_offset", c_uint64),
        ("resume_verified", c_uint64),
        ("via_video_url", c_int32),
        ("reserved", c_int32),
        ("method", c_char_p),
    ]


STRUCTS: Dict[str, Any] = {"wxm_counters": wxm_counters, "wxm_event": wxm_event}
"""The header's structs by name (for tests/test_ffi.py)."""

CountersP = POINTER(wxm_counters)

# --- callback types -------------------------------------------------------------
# `data` and `buf` are declared as void* so the trampolines get plain integer
# addresses (no per-call pointer object); the ABI is the same as uint8_t*.
SINK_FN = CFUNCTYPE(c_int32, c_void_p, c_uint64, c_void_p, c_size_t)
"""``int32_t (*wxm_sink_fn)(void *user_data, uint64_t offset, const uint8_t *data, size_t len)``"""
PROGRESS_FN = CFUNCTYPE(c_int32, c_void_p, c_uint64, c_uint64)
"""``int32_t (*wxm_progress_fn)(void *user_data, uint64_t done, uint64_t total)``"""
READ_FN = CFUNCTYPE(c_int64, c_void_p, c_void_p, c_size_t)
"""``int64_t (*wxm_read_fn)(void *user_data, uint8_t *buf, size_t cap)``"""

TOKEN_PROVIDER_FN = CFUNCTYPE(c_int32, c_void_p, c_int32, c_void_p, c_size_t, POINTER(c_size_t))
"""``int32_t (*wxm_token_provider_fn)(void *user_data, int32_t force_refresh, char *buf, size_t cap, size_t *len)``"""
FREE_FN = CFUNCTYPE(None, c_void_p)
"""``void (*wxm_free_fn)(void *user_data)``"""
EVENT_FN = CFUNCTYPE(None, c_void_p, c_void_p)
"""``void (*wxm_event_fn)(void *user_data, const wxm_event *event)`` (the event as an address:
``wxm_event.from_address``)."""

CALLBACK_TYPES: Dict[str, Any] = {
    "wxm_sink_fn": SINK_FN,
    "wxm_progress_fn": PROGRESS_FN,
    "wxm_read_fn": READ_FN,
    "wxm_token_provider_fn": TOKEN_PROVIDER_FN,
    "wxm_free_fn": FREE_FN,
    "wxm_event_fn": EVENT_FN,
}

# --- every function of the header -------------------------------------------------
# name -> (restype, argtypes).  `None` restype means void.
SIGNATURES: Dict[str, Tuple[Any, List[Any]]] = {
    # configuration and client
    "wxm_config_new": (ConfigP, [c_int32]),
    "wxm_config_set_base_url": (c_int32, [ConfigP, c_char_p]),
    "wxm_config_set_access_token": (c_int32, [ConfigP, c_char_p]),
    "wxm_config_set_credentials": (c_int32, [ConfigP, c_char_p, c_char_p]),
    "wxm_config_set_token_api": (c_int32, [ConfigP, c_int32]),
    "wxm_config_set_token_provider": (c_int32, [ConfigP, TOKEN_PROVIDER_FN, c_void_p, FREE_FN]),
    "wxm_config_set_token_store": (c_int32, [ConfigP, c_char_p]),
    "wxm_config_set_token_store_timeouts": (c_int32, [ConfigP, c_uint32, c_uint32]),
    "wxm_config_set_token_store_fallback": (c_int32, [ConfigP, c_int32]),
    "wxm_config_set_chunk_size": (c_int32, [ConfigP, c_uint64]),
    "wxm_config_set_parallelism": (c_int32, [ConfigP, c_uint32]),
    "wxm_config_set_timeouts": (c_int32, [ConfigP, c_uint32, c_uint32]),
    "wxm_config_set_retries": (c_int32, [ConfigP, c_uint32, c_uint32]),
    "wxm_config_set_limit": (c_int32, [ConfigP, c_char_p, c_uint64]),
    "wxm_config_set_ca_file": (c_int32, [ConfigP, c_char_p]),
    "wxm_config_set_event_handler": (c_int32, [ConfigP, EVENT_FN, c_void_p, FREE_FN, c_int32]),
    "wxm_config_free": (None, [ConfigP]),
    "wxm_client_new": (c_int32, [ConfigP, POINTER(ClientP)]),
    "wxm_client_set_access_token": (c_int32, [ClientP, c_char_p]),
    "wxm_client_token_store_fallbacks": (c_int32, [ClientP, POINTER(c_uint64)]),
    "wxm_client_free": (None, [ClientP]),
    # download
    "wxm_download_new": (DownloadP, [ClientP, c_char_p]),
    "wxm_download_set_start": (c_int32, [DownloadP, c_uint64]),
    "wxm_download_set_hd_voice": (c_int32, [DownloadP, c_int32]),
    "wxm_download_set_progress": (c_int32, [DownloadP, PROGRESS_FN, c_void_p]),
    "wxm_download_to_sink": (c_int32, [DownloadP, SINK_FN, c_void_p]),
    "wxm_download_to_path": (c_int32, [DownloadP, c_char_p]),
    "wxm_download_cancel": (None, [DownloadP]),
    "wxm_download_size": (c_uint64, [DownloadP]),
    "wxm_download_content_type": (c_char_p, [DownloadP]),
    "wxm_download_filename": (c_char_p, [DownloadP]),
    "wxm_download_video_url": (c_char_p, [DownloadP]),
    "wxm_download_errmsg": (c_char_p, [DownloadP]),
    "wxm_download_counters": (c_int32, [DownloadP, CountersP]),
    "wxm_download_free": (None, [DownloadP]),
    # object storage (wxmedia.ObjectStore, Client.download_to_object)
    "wxm_objstore_new": (ObjstoreP, []),
    "wxm_objstore_set_endpoint": (c_int32, [ObjstoreP, c_char_p]),
    "wxm_objstore_set_region": (c_int32, [ObjstoreP, c_char_p]),
    "wxm_objstore_set_credentials": (c_int32, [ObjstoreP, c_char_p, c_char_p, c_char_p]),
    "wxm_objstore_set_path_style": (c_int32, [ObjstoreP, c_int32]),
    "wxm_objstore_set_keep_parts_on_failure": (c_int32, [ObjstoreP, c_int32]),
    "wxm_objstore_set_part_size": (c_int32, [ObjstoreP, c_uint64]),
    "wxm_objstore_free": (None, [ObjstoreP]),
    "wxm_download_to_object": (c_int32, [DownloadP, ObjstoreP, c_char_p, c_char_p]),
    # upload
    "wxm_upload_new": (UploadP, [ClientP, c_char_p]),
    "wxm_upload_set_path": (c_int32, [UploadP, c_char_p]),
    "wxm_upload_set_reader": (c_int32, [UploadP, READ_FN, c_void_p, c_uint64]),
    "wxm_upload_set_filename": (c_int32, [UploadP, c_char_p]),
    "wxm_upload_set_progress": (c_int32, [UploadP, PROGRESS_FN, c_void_p]),
    "wxm_upload_run": (c_int32, [UploadP]),
    "wxm_upload_cancel": (None, [UploadP]),
    "wxm_upload_media_id": (c_char_p, [UploadP]),
    "wxm_upload_url": (c_char_p, [UploadP]),
    "wxm_upload_type": (c_char_p, [UploadP]),
    "wxm_upload_created_at": (c_int64, [UploadP]),
    "wxm_upload_errmsg": (c_char_p, [UploadP]),
    "wxm_upload_counters": (c_int32, [UploadP, CountersP]),
    "wxm_upload_free": (None, [UploadP]),
    # asynchronous upload by URL
    "wxm_url_upload_new": (UrlUploadP, [ClientP, c_char_p, c_char_p, c_char_p]),
    "wxm_url_upload_set_md5": (c_int32, [UrlUploadP, c_char_p]),
    "wxm_url_upload_set_md5_from_path": (c_int32, [UrlUploadP, c_char_p]),
    "wxm_url_upload_set_scene": (c_int32, [UrlUploadP, c_uint32]),
    "wxm_url_upload_set_jobid": (c_int32, [UrlUploadP, c_char_p]),
    "wxm_url_upload_set_progress": (c_int32, [UrlUploadP, PROGRESS_FN, c_void_p]),
    "wxm_url_upload_submit": (c_int32, [UrlUploadP]),
    "wxm_url_upload_wait": (c_int32, [UrlUploadP, c_uint32]),
    "wxm_url_upload_run": (c_int32, [UrlUploadP, c_uint32]),
    "wxm_url_upload_cancel": (None, [UrlUploadP]),
    "wxm_url_upload_jobid": (c_char_p, [UrlUploadP]),
    "wxm_url_upload_media_id": (c_char_p, [UrlUploadP]),
    "wxm_url_upload_created_at": (c_int64, [UrlUploadP]),
    "wxm_url_upload_status": (c_int32, [UrlUploadP]),
    "wxm_url_upload_errmsg": (c_char_p, [UrlUploadP]),
    "wxm_url_upload_counters": (c_int32, [UrlUploadP, CountersP]),
    "wxm_url_upload_free": (None, [UrlUploadP]),
    # errors and version
    "wxm_strerror": (c_char_p, [c_int32]),
    "wxm_last_errmsg": (c_char_p, []),
    "wxm_version": (c_char_p, []),
}


def library_path() -> Path:
    """The path of the library this process loads (see the module docstring)."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env)
    return BUNDLED_LIBRARY


def parse_version(text: str) -> Tuple[int, int]:
    """``(major, minor)`` of a version string such as ``"0.1.0"`` or ``"wxmedia 0.1.0"``."""
    m = re.search(r"(\d+)\.(\d+)", text)
    if not m:
        raise ValueError(f"not a version: {text!r}")
    return int(m.group(1)), int(m.group(2))


def check_version(library_version: str, package_version: str = __version__, path: Optional[Path] = None) -> None:
    """Raise :class:`LibraryError` unless major.minor of both versions match."""
    where = f" at {path}" if path is not None else ""
    try:
        lib_mm = parse_version(library_version)
    except ValueError:
        raise LibraryError(
            f"wxmedia: the library{where} reports an unreadable version {library_version!r}"
        ) from None
    if lib_mm != parse_version(package_version):
        raise LibraryError(
            f"wxmedia: the library{where} is version {library_version}, but this Python package is "
            f"{package_version}; their major.minor must match. Reinstall the package "
            f"(pip install ./bindings/python) or point {LIBRARY_ENV} at a matching libwxmedia."
        )


def _declare(lib: ctypes.CDLL, path: Path) -> None:
    missing = []
    for name, (restype, argtypes) in SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise LibraryError(
            f"wxmedia: the library at {path} lacks {', '.join(missing)}; it is older or newer than "
            f"this package. Reinstall the package or point {LIBRARY_ENV} at a matching libwxmedia."
        )


def load(path: Optional[Path] = None) -> ctypes.CDLL:
    """Load, declare and version-check the library (raises :class:`LibraryError`)."""
    if path is None:
        path = library_path()
    from_env = os.environ.get(LIBRARY_ENV)
    if not path.is_file():
        if from_env:
            hint = f"{LIBRARY_ENV}={from_env} does not name a file"
        else:
            hint = (
                "it is not bundled in this installation; reinstall with `pip install ./bindings/python` "
                f"(which builds it with cargo), or set {LIBRARY_ENV} to the path of libwxmedia"
            )
        raise LibraryError(f"wxmedia: native library not found at {path}: {hint}")
    try:
        # CDLL (not PyDLL): every call releases the GIL.
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise LibraryError(f"wxmedia: cannot load the native library {path}: {e}") from e
    # The version first: a library of another version likely lacks symbols,
    # and "wrong version" is the useful message then.
    try:
        version_fn = lib.wxm_version
    except AttributeError:
        raise LibraryError(f"wxmedia: {path} is not libwxmedia (it has no wxm_version)") from None
    version_fn.restype, version_fn.argtypes = SIGNATURES["wxm_version"]
    raw = version_fn()
    check_version(raw.decode("utf-8", "replace") if raw else "", __version__, path)
    _declare(lib, path)
    return lib


lib = load()
LIBRARY_PATH = library_path()
LIBRARY_VERSION: str = lib.wxm_version().decode("utf-8", "replace")

# --- the per-download calls, cheaper ----------------------------------------------------
# A download_bytes() of a small media costs a few microseconds of Python, and
# ctypes' own share of it counts: a POINTER(...) argument costs twice a
# c_void_p one, and releasing the GIL costs more than a getter itself.  So the
# calls every download makes also exist as private function objects (not the
# ``lib.<name>`` ones above, which keep the header's declarations) that take and
# return handles as plain addresses (ints), and those that return at once do
# not release the GIL.

INSTANT = (
    "wxm_download_new",
    "wxm_download_set_start",
    "wxm_download_set_hd_voice",
    "wxm_download_set_progress",
    "wxm_download_cancel",
    "wxm_download_size",
    "wxm_download_content_type",
    "wxm_download_filename",
    "wxm_download_video_url",
    "wxm_download_errmsg",
    "wxm_download_counters",  # relaxed atomic loads
)
"""Calls that return at once: they allocate, or read or set a field of a handle
(or flag it cancelled), take no lock that anyone holds for long, never call
back and never block; so they keep the GIL."""

BLOCKING = (
    "wxm_download_to_sink",
    "wxm_download_to_path",
    "wxm_download_to_object",
    "wxm_download_free",  # may drop the last reference to a closed client
)
"""Calls that may block or call back: they release the GIL, as ``lib``'s do."""

_HANDLE_TYPES = (ConfigP, ClientP, DownloadP, UploadP, UrlUploadP, ObjstoreP)


def _as_address(t: Any) -> Any:
    return c_void_p if t in _HANDLE_TYPES else t


def _load_fast() -> Any:
    fast = types.SimpleNamespace()
    # The same library (dlopen returns the loaded one), through PyDLL: its calls keep the GIL.
    for dll, names in ((ctypes.PyDLL(str(LIBRARY_PATH)), INSTANT), (lib, BLOCKING)):
        for name in names:
            fn = dll[name]  # not dll.<name>: a function object of our own
            restype, argtypes = SIGNATURES[name]
            fn.restype = _as_address(restype)
            fn.argtypes = [_as_address(t) for t in argtypes]
            setattr(fast, name, fn)
    return fast


fast: Any = _load_fast()
"""``fast.<name>``: the functions of :data:`INSTANT` and :data:`BLOCKING`, handles as ints."""


def address(handle: Any) -> int:
    """The address of a handle (a ctypes pointer), for :data:`fast`'s functions."""
    value = ctypes.cast(handle, c_void_p).value
    if not value:
        raise ValueError("a NULL handle")
    return value


def decode(raw: Optional[bytes]) -> Optional[str]:
    """A library string (copied by ctypes) as ``str``; ``None`` for NULL or empty."""
    if not raw:
        return None
    return raw.decode("utf-8", "replace")


def strerror(code: int) -> str:
    """Static text for any code."""
    return decode(lib.wxm_strerror(code)) or f"error {code}"


def last_errmsg() -> str:
    """Detail of the last handle-less failure on this thread ("" when none)."""
    return decode(lib.wxm_last_errmsg()) or ""
