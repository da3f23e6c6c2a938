"""asyncio for wxmedia: :class:`Client`, whose transfers are awaited.

Every transfer runs on a thread of the client's own pool (the library's call
blocks, with the GIL released), so the event loop is never blocked: not by a
stalled server, nor by a slow token provider.  What runs *your* coroutines
runs them on the event loop of the call: an async sink or file object, an
async reader, a progress coroutine, an async token provider.  The transfer's
thread waits for each of them (``asyncio.run_coroutine_threadsafe(...)
.result()``), so a sink slower than the network holds the library back
(backpressure: at most ``chunk_size × parallelism`` bytes are in flight).

Cancelling the task cancels the transfer in the library at once (the
library's own cancel, ``wxm_*_cancel``: it stops within its 100 ms poll,
also against a stalled server), then the task waits for the transfer's
thread to end and raises ``asyncio.CancelledError``: once the ``await``
has raised, nothing of the transfer runs any more, and a download to a path
left no partial file at the target (its ``.wxmpart`` stays, for resuming).
A queued call that had not started yet is simply dropped.

::

    import wxmedia.aio

    async with wxmedia.aio.Client("wecom", credentials=(corpid, corpsecret)) as client:
        up = await client.upload("file", "report.pdf")
        info = await client.download(up.media_id, "copy.pdf")
        data, info = await client.download_bytes(up.media_id)

        async def sink(chunk: bytes) -> None:        # awaited for every piece, in order
            await websocket.send_bytes(chunk)
        await client.download(up.media_id, sink)
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import inspect
import os
import queue
import threading
from typing import (
    IO,
    Any,
    Awaitable,
    Callable,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
    Union,
)

from . import client as _client
from . import errcodes as ec
from ._transfer import CancelToken
from .client import DEFAULT_MAX_BYTES, MediaInfo, UploadResult
from .errors import StateError
from .objstore import ObjectStore

__all__ = ["AsyncReader", "AsyncWriter", "Client", "DEFAULT_MAX_THREADS"]

T = TypeVar("T")
StrPath = Union[str, "os.PathLike[str]"]

DEFAULT_MAX_THREADS = 64
"""Transfers one :class:`Client` runs at once; more wait in a queue (``max_threads=``)."""

# How often a transfer's thread, waiting for a coroutine on the loop, checks
# that the loop still exists (one that was closed under it never answers).
_LOOP_CHECK_SECONDS = 0.5


class AsyncWriter(Protocol):
    """A destination with ``async def write(data: bytes)`` (an ``aiofiles`` file, say)."""

    def write(self, data: bytes) -> Awaitable[Any]: ...


class AsyncReader(Protocol):
    """A source with ``async def read(n: int) -> bytes``."""

    def read(self, n: int) -> Awaitable[bytes]: ...


AsyncSink = Callable[[bytes], Awaitable[Any]]
"""``async def sink(chunk: bytes) -> None``, awaited for each piece, in order."""

Progress = Callable[[int, Optional[int]], Union[None, Awaitable[Any]]]
"""``progress(done, total)``: a plain function or a coroutine function, run on the loop."""


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


async def _call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class _Call:
    """One awaited transfer: its loop, its CancelToken, and the coroutine its thread waits for."""

    __slots__ = ("loop", "token", "pending", "lock", "cancelled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.token = CancelToken()
        self.pending: Optional["concurrent.futures.Future[Any]"] = None
        self.lock = threading.Lock()
        self.cancelled = False

    def on_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From the transfer's thread: run ``fn(*args)`` on the loop (awaited if async) and wait."""
        fut = asyncio.run_coroutine_threadsafe(_call_maybe_async(fn, *args), self.loop)
        with self.lock:
            if self.cancelled:
                fut.cancel()
            self.pending = fut
        try:
            return _wait(fut, self.loop)
        finally:
            with self.lock:
                self.pending = None

    def cancel(self) -> None:
        """On the loop: stop the transfer, and the coroutine of ours its thread waits for."""
        with self.lock:
            self.cancelled = True
            pending = self.pending
        self.token.cancel()  # the library's wxm_*_cancel on the running handle
        if pending is not None:
            pending.cancel()  # its thread gets CancelledError, which aborts the transfer


def _wait(fut: "concurrent.futures.Future[T]", loop: asyncio.AbstractEventLoop) -> T:
    while True:
        try:
            return fut.result(_LOOP_CHECK_SECONDS)
        except concurrent.futures.TimeoutError:
            if loop.is_closed():
                fut.cancel()
                raise RuntimeError("the event loop of this wxmedia.aio call was closed") from None


class _Pool:
    """Threads for transfers: made as needed (up to ``max_threads``), reused, ended after a long idle.

    Not ``ThreadPoolExecutor``: its ``submit`` starts a thread and waits until
    it runs, on the loop's thread; 50 calls at once, on two busy cores, kept
    the loop waiting tens of milliseconds.  ``_thread.start_new_thread``
    returns at once.
    """

    IDLE_EXIT_SECONDS = 60.0

    def __init__(self, max_threads: int) -> None:
        self._max = max_threads
        self._jobs: "queue.SimpleQueue[Optional[Tuple[concurrent.futures.Future[Any], Callable[[], Any]]]]" = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a job (or just handed one)
        self._queued = 0  # jobs put and not yet taken
        self._closed = False

    def submit(self, fn: Callable[[], T]) -> "concurrent.futures.Future[T]":
        fut: "concurrent.futures.Future[T]" = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise StateError(ec.E_STATE, "the client is closed")
            self._queued += 1
            self._jobs.put((fut, fn))
            if self._queued > self._idle and self._threads < self._max:
                self._threads += 1
                _thread.start_new_thread(self._work, ())
        return fut

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=self.IDLE_EXIT_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._queued > self._idle:  # a job counted on this thread
                        continue
                    self._threads -= 1
                return
            with self._lock:
                self._idle -= 1
                if job is None:
                    self._threads -= 1
                    return
                self._queued -= 1
            fut, fn = job
            if not fut.set_running_or_notify_cancel():  # cancelled while queued: never runs
                continue
            try:
                result = fn()
            except BaseException as e:  # noqa: B902 - handed to the awaiting task
                fut.set_exception(e)
            else:
                fut.set_result(result)
            del fut, fn, job

    def close(self) -> None:
        """Let every thread end once the jobs already queued are done."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            n = self._threads
        for _ in range(n):
            self._jobs.put(None)


class _LoopRef:
    """The loop an async token provider runs on: the one of the last call.

    The library calls the provider from whichever thread needs a token (also
    a parallel download's own workers); they all serve calls of this client.
    Deliberately not the client itself: the library holds the provider until
    the client is freed, which a reference to the client would prevent.
    """

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: Optional[asyncio.AbstractEventLoop] = None


_here = threading.local()  # .call: the _Call the current thread runs, if any


def _async_provider(fn: Callable[[bool], Any], ref: _LoopRef) -> Callable[[bool], str]:
    def provider(force_refresh: bool) -> str:
        call: Optional[_Call] = getattr(_here, "call", None)
        if call is not None:
            return call.on_loop(fn, force_refresh)  # type: ignore[no-any-return]
        loop = ref.loop
        if loop is None or loop.is_closed():
            raise RuntimeError("an async token_provider needs the event loop of a wxmedia.aio call")
        return _wait(asyncio.run_coroutine_threadsafe(_call_maybe_async(fn, force_refresh), loop), loop)  # type: ignore[no-any-return]

    return provider


class _AsyncWriterAdapter:
    """A blocking binary writer (for the sync client) that awaits ``write`` on the loop."""

    def __init__(self, call: _Call, write: Callable[[bytes], Any]) -> None:
        self._call = call
        self._write = write

    def write(self, view: memoryview) -> int:
        n = len(view)
        # The sync client hands a file object it does not know a view of its own
        # fresh copy: pass that bytes object on rather than copy it again.
        data = view.obj if isinstance(view.obj, bytes) and len(view.obj) == n else bytes(view)
        self._call.on_loop(self._write, data)
        return n


class _AsyncReaderAdapter:
    """A blocking binary reader (for the sync client) that awaits ``read(n)`` on the loop."""

    def __init__(self, call: _Call, read: Callable[[int], Awaitable[bytes]]) -> None:
        self._call = call
        self._read = read

    def read(self, n: int) -> bytes:
        data = self._call.on_loop(self._read, n)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"src.read() returned {type(data).__name__}, expected bytes")
        return bytes(data) if not isinstance(data, bytes) else data


class Client:
    """An asyncio WeChat temporary-media client.

    Takes every argument of :class:`wxmedia.Client`, with the same meaning
    (``token_provider`` may also be a coroutine function, run on the event
    loop), plus ``max_threads``: how many transfers run at once (default
    :data:`DEFAULT_MAX_THREADS`; the threads are made as needed and reused;
    further calls wait their turn, and a cancelled one that has not started
    never does).  One client serves many tasks, on one loop or several.

    ``cancel_on_interrupt`` has no effect here: transfers never run on the
    main thread, and Ctrl-C reaches asyncio's own runner, which cancels the
    tasks and so the transfers.
    """

    def __init__(
        self,
        *args: Any,
        token_provider: Optional[Callable[[bool], Union[str, Awaitable[str]]]] = None,
        max_threads: int = DEFAULT_MAX_THREADS,
        **kwargs: Any,
    ) -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a positive int, got {max_threads!r}")
        self._loop_ref = _LoopRef()
        if _is_async(kwargs.get("on_event")):
            # It runs on the transfer's thread, and a transfer must not wait for the loop per request.
            raise TypeError("on_event must be a plain function (it runs on the transfer's thread); "
                            "hand events to the loop yourself, e.g. with loop.call_soon_threadsafe")
        if token_provider is not None and _is_async(token_provider):
            kwargs["token_provider"] = _async_provider(token_provider, self._loop_ref)
        elif token_provider is not None:
            # A plain function runs on the transfer's thread: slow is fine.
            kwargs["token_provider"] = token_provider
        self.sync = _client.Client(*args, **kwargs)
        """The :class:`wxmedia.Client` doing the work (same library handle)."""
        self._pool = _Pool(max_threads)

    # --- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        """Free the client (idempotent): running transfers finish, new calls raise ``StateError``."""
        self.sync.close()
        self._pool.close()

    async def aclose(self) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self.sync.closed

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<wxmedia.aio." + repr(self.sync)[len("<wxmedia.") :]

    def set_access_token(self, token: str) -> None:
        """Replace the access_token (does not block: no I/O)."""
        self.sync.set_access_token(token)

    # --- running a call on a thread ---------------------------------------------------
    async def _run(self, fn: Callable[..., T], call: Optional[_Call] = None, **kwargs: Any) -> T:
        """Run ``fn(**kwargs, cancel=token)`` on a pool thread; cancelling the task cancels it."""
        loop = asyncio.get_running_loop()
        if self.sync.closed:
            raise StateError(ec.E_STATE, "the client is closed")
        self._loop_ref.loop = loop
        if call is None:
            call = _Call(loop)
        c = call

        def work() -> T:
            _here.call = c
            try:
                return fn(cancel=c.token, **kwargs)
            finally:
                _here.call = None

        cf = self._pool.submit(work)
        fut = asyncio.wrap_future(cf, loop=loop)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if cf.cancel():  # still queued: it never runs
                raise
            call.cancel()
            # Wait for the thread: nothing of the transfer may run after we raise.
            # Its outcome (Cancelled, or a result that came too late) is dropped.
            while not fut.done():
                try:
                    await asyncio.wait([fut])
                except asyncio.CancelledError:
                    continue
            if not fut.cancelled():
                fut.exception()  # retrieved: no "never retrieved" warning
            raise

    def _progress(self, call: _Call, progress: Optional[Progress]) -> Optional[Callable[[int, Optional[int]], None]]:
        _client._check_progress(progress)
        if progress is None:
            return None

        def on_loop(done: int, total: Optional[int]) -> None:
            call.on_loop(progress, done, total)

        return on_loop

    # --- download ------------------------------------------------------------------
    async def download(
        self,
        media_id: str,
        dest: Union[StrPath, IO[bytes], AsyncWriter, AsyncSink],
        progress: Optional[Progress] = None,
        start: int = 0,
        *,
        hd_voice: bool = False,
    ) -> MediaInfo:
        """Download a media, as :meth:`wxmedia.Client.download` does.

        ``dest`` is a path (atomic, resumable); a binary file object, written
        on the transfer's thread (a blocking ``write()`` blocks no loop); an
        object whose ``write`` is a coroutine function (``aiofiles``), awaited on
        the loop; or an async callable ``sink(chunk: bytes)``, awaited for each
        piece in order.  The library waits while your coroutine runs.
        ``progress(done, total)`` runs on the loop; it may be a coroutine function.
        """
        loop = asyncio.get_running_loop()
        call = _Call(loop)
        target: Any = dest
        if not _client._is_path(dest):
            write = getattr(dest, "write", None)
            if write is not None and _is_async(write):
                target = _AsyncWriterAdapter(call, write)
            elif write is None and callable(dest):
                target = _AsyncWriterAdapter(call, dest)
        return await self._run(
            self.sync.download,
            call,
            media_id=media_id,
            dest=target,
            progress=self._progress(call, progress),
            start=start,
            hd_voice=hd_voice,
        )

    async def download_bytes(
        self,
        media_id: str,
        progress: Optional[Progress] = None,
        start: int = 0,
        *,
        max_size: Optional[int] = DEFAULT_MAX_BYTES,
        hd_voice: bool = False,
    ) -> Tuple[bytes, MediaInfo]:
        """Download a small media into memory, as :meth:`wxmedia.Client.download_bytes`."""
        call = _Call(asyncio.get_running_loop())
        return await self._run(
            self.sync.download_bytes,
            call,
            media_id=media_id,
            progress=self._progress(call, progress),
            start=start,
            max_size=max_size,
            hd_voice=hd_voice,
        )

    async def download_to_object(
        self,
        media_id: str,
        store: ObjectStore,
        bucket: str,
        key: str,
        *,
        progress: Optional[Progress] = None,
        hd_voice: bool = False,
    ) -> MediaInfo:
        """Download a media straight into an object, as :meth:`wxmedia.Client.download_to_object`.

        ``progress(done, total)`` runs on the loop; it may be a coroutine
        function.  Cancelling the task aborts the upload (unless the store
        keeps parts for a resume) before ``asyncio.CancelledError`` is raised.
        """
        call = _Call(asyncio.get_running_loop())
        return await self._run(
            self.sync.download_to_object,
            call,
            media_id=media_id,
            store=store,
            bucket=bucket,
            key=key,
            progress=self._progress(call, progress),
            hd_voice=hd_voice,
        )

    # --- upload --------------------------------------------------------------------
    async def upload(
        self,
        type: str,
        src: Union[StrPath, bytes, bytearray, memoryview, IO[bytes], AsyncReader],
        filename: Optional[str] = None,
        progress: Optional[Progress] = None,
        *,
        length: Optional[int] = None,
    ) -> UploadResult:
        """Upload a temporary media, as :meth:`wxmedia.Client.upload`.

        ``src`` is a path, bytes, a binary file object (read on the transfer's
        thread), or an object whose ``read(n)`` is a coroutine function, awaited
        on the loop; an async reader needs ``length=``, the exact number of
        bytes it yields.
        """
        call = _Call(asyncio.get_running_loop())
        source: Any = src
        read = getattr(src, "read", None)
        if not _client._is_path(src) and read is not None and _is_async(read):
            if length is None:
                raise TypeError("an async reader needs length= (the exact number of bytes it yields)")
            source = _AsyncReaderAdapter(call, read)
            if filename is None:
                filename = _client._stream_name(src)
        return await self._run(
            self.sync.upload,
            call,
            type=type,
            src=source,
            filename=filename,
            progress=self._progress(call, progress),
            length=length,
        )

    async def upload_by_url(
        self,
        type: str,
        url: str,
        filename: str,
        *,
        md5: Optional[str] = None,
        md5_path: Optional[StrPath] = None,
        scene: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> UploadResult:
        """Have WeChat fetch ``url`` and wait for the job, as :meth:`wxmedia.Client.upload_by_url`.

        Cancelling the task stops the wait (and the MD5 of ``md5_path``); a job
        already submitted goes on at WeChat.
        """
        return await self._run(
            self.sync.upload_by_url,
            type=type,
            url=url,
            filename=filename,
            md5=md5,
            md5_path=md5_path,
            scene=scene,
            timeout=timeout,
        )

    async def submit_upload_by_url(
        self,
        type: str,
        url: str,
        filename: str,
        *,
        md5: Optional[str] = None,
        md5_path: Optional[StrPath] = None,
        scene: Optional[int] = None,
    ) -> str:
        """Submit an upload by URL without waiting; returns the jobid."""
        return await self._run(
            self.sync.submit_upload_by_url, type=type, url=url, filename=filename, md5=md5, md5_path=md5_path, scene=scene
        )

    async def wait_upload_by_url(self, jobid: str, *, timeout: Optional[float] = None) -> UploadResult:
        """Wait for a submitted job."""
        return await self._run(self.sync.wait_upload_by_url, jobid=jobid, timeout=timeout)
