"""Where :meth:`wxmedia.Client.download_to_object` puts media: :class:`ObjectStore`."""

from __future__ import annotations

from typing import Any, Optional

from . import _ffi
from . import errcodes as ec
from .client import _check, _cstr, _raise_for, _uint

lib = _ffi.lib


class ObjectStore:
    """An S3-compatible object store (AWS S3, MinIO, Tencent COS, Aliyun OSS, versitygw, ...).

    Args:
        endpoint: ``"https://s3.example.com"`` or ``"http://127.0.0.1:9000"``.
        region: the region requests are signed for.
        access_key: the access key id; give ``secret_key`` with it.
        secret_key: the secret access key.  Kept only by the library: no
            attribute, ``repr()`` or message shows it.
        session_token: the session token of temporary credentials.
        path_style: ``True``: ``endpoint/bucket/key`` URLs; ``False``:
            virtual-hosted ``bucket.endpoint/key``.  Default: path style with
            an endpoint (what S3-compatible servers expect), virtual-hosted
            on AWS.
        keep_parts_on_failure: a failed or cancelled transfer keeps its
            multipart upload and the parts already uploaded, so that a later
            call (in this process or another) for the same media and key
            resumes it.  Default: it aborts the upload, leaving nothing behind.
        part_size: bytes per part, a multiple of 16 from 5 MiB to 512 MiB
            (default 8 MiB).  Each connection holds one part in memory; a
            resume needs the part size of the run it resumes.

    Whatever is left ``None`` the library takes from the environment as the
    AWS tools do, when each transfer starts: ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (else
    ``us-east-1``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN``.  Requests go through the client's connections:
    its TLS verification, ``ca_file`` and timeouts apply.

    Values are checked here (a refused one raises ``TypeError``, ``ValueError``
    or :class:`wxmedia.InvalidArgument`) and fixed: make another store for
    other settings.  One store serves any number of transfers, on any thread.
    """

    __slots__ = (
        "_ptr",
        "_endpoint",
        "_region",
        "_access_key",
        "_credentials",
        "_path_style",
        "_keep_parts",
        "_part_size",
    )

    def __init__(
        self,
        endpoint: Optional[str] = None,
        *,
        region: Optional[str] = None,
        access_key: Optional[str] = None,
        secret_key: Optional[str] = None,
        session_token: Optional[str] = None,
        path_style: Optional[bool] = None,
        keep_parts_on_failure: bool = False,
        part_size: Optional[int] = None,
    ) -> None:
        self._ptr: Any = None
        if (access_key is None) != (secret_key is None):
            raise TypeError("give access_key and secret_key together (or neither, for the environment's)")
        if session_token is not None and access_key is None:
            raise TypeError("session_token needs access_key and secret_key")
        if path_style is not None and not isinstance(path_style, bool):
            raise TypeError(f"path_style must be a bool or None, not {type(path_style).__name__}")
        if not isinstance(keep_parts_on_failure, bool):
            raise TypeError(f"keep_parts_on_failure must be a bool, not {type(keep_parts_on_failure).__name__}")
        endpoint_b = _cstr(endpoint, "endpoint") if endpoint is not None else None
        region_b = _cstr(region, "region") if region is not None else None
        creds = None
        if access_key is not None and secret_key is not None:
            creds = (
                _cstr(access_key, "access_key"),
                _cstr(secret_key, "secret_key"),
                _cstr(session_token, "session_token") if session_token is not None else None,
            )
        part = _uint(part_size, "part_size", 64) if part_size is not None else None

        ptr = lib.wxm_objstore_new()
        if not ptr:
            _raise_for(ec.E_PANIC, "wxm_objstore_new returned NULL")
        self._ptr = ptr
        # Each setter's refusal (a bad URL, an empty key, a part size out of
        # range) is the library's, with its message, which never holds the secret.
        if endpoint_b is not None:
            _check(lib.wxm_objstore_set_endpoint(ptr, endpoint_b))
        if region_b is not None:
            _check(lib.wxm_objstore_set_region(ptr, region_b))
        if creds is not None:
            _check(lib.wxm_objstore_set_credentials(ptr, *creds))
        if path_style is not None:
            _check(lib.wxm_objstore_set_path_style(ptr, int(path_style)))
        if keep_parts_on_failure:
            _check(lib.wxm_objstore_set_keep_parts_on_failure(ptr, 1))
        if part is not None:
            _check(lib.wxm_objstore_set_part_size(ptr, part))
        self._endpoint = endpoint
        self._region = region
        self._access_key = access_key
        # What repr() says of the secret: never its value.
        self._credentials = (
            "from the environment" if creds is None else "with session token" if session_token is not None else "set"
        )
        self._path_style = path_style
        self._keep_parts = keep_parts_on_failure
        self._part_size = part_size

    @property
    def endpoint(self) -> Optional[str]:
        """The endpoint given (``None``: the environment's, else AWS's for the region)."""
        return self._endpoint

    @property
    def region(self) -> Optional[str]:
        """The region given (``None``: the environment's, else ``us-east-1``)."""
        return self._region

    @property
    def access_key(self) -> Optional[str]:
        """The access key id given (``None``: the environment's).  The secret is not kept here."""
        return self._access_key

    @property
    def path_style(self) -> Optional[bool]:
        return self._path_style

    @property
    def keep_parts_on_failure(self) -> bool:
        return self._keep_parts

    @property
    def part_size(self) -> Optional[int]:
        """Bytes per part given (``None``: the library's default, 8 MiB)."""
        return self._part_size

    def _handle(self) -> int:
        """The ``wxm_objstore*`` as an address (for ``_ffi.fast``)."""
        return _ffi.address(self._ptr)

    def __repr__(self) -> str:
        return (
            f"ObjectStore(endpoint={self._endpoint!r}, region={self._region!r}, "
            f"access_key={self._access_key!r}, secret_key=<{self._credentials}>, "
            f"path_style={self._path_style!r}, keep_parts_on_failure={self._keep_parts!r}, "
            f"part_size={self._part_size!r})"
        )

    def __reduce__(self) -> Any:
        # It would have to carry the secret, which it does not keep.
        raise TypeError("an ObjectStore cannot be pickled or copied: make one where it is used")

    def __del__(self) -> None:
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            # Transfers copy the store when they start: freeing it never affects one.
            try:
                lib.wxm_objstore_free(ptr)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass
