"""The exceptions join Python's standard hierarchy and keep ``.errcode``."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
from conftest import make_client
from wxemu import Emulator

import wxmedia
from wxmedia import errcodes
from wxmedia.errors import make_error

MiB = 1 << 20

ALL_CODES = sorted(
    {getattr(errcodes, n) for n in dir(errcodes) if n.isupper() and isinstance(getattr(errcodes, n), int)}
    - {errcodes.OK}
)


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_code_makes_an_error_with_its_errcode(code: int) -> None:
    e = make_error(code, "detail")
    assert isinstance(e, wxmedia.WxMediaError) and isinstance(e, Exception)
    assert e.errcode == code and e.errmsg == "detail"
    assert str(e) == f"[{code}] detail"
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is type(e) and again.errcode == code
    if isinstance(e, OSError):
        assert e.errno is None, "the errcode is not an errno"


def test_the_standard_bases() -> None:
    assert isinstance(make_error(errcodes.E_IO, "x"), OSError)
    assert isinstance(make_error(errcodes.E_TIMEOUT, "x"), TimeoutError)
    assert isinstance(make_error(errcodes.E_TIMEOUT, "x"), wxmedia.NetworkError)
    assert isinstance(make_error(errcodes.E_INVALID_ARG, "x"), ValueError)
    cancelled = make_error(errcodes.E_CANCELLED, "x")
    assert isinstance(cancelled, wxmedia.Cancelled)
    # Deliberately neither: those mean Ctrl-C and a cancelled asyncio task.
    assert not isinstance(cancelled, (KeyboardInterrupt, asyncio.CancelledError))
    assert not isinstance(make_error(errcodes.E_NETWORK, "x"), OSError)


def test_local_io_error_is_an_oserror(client: wxmedia.Client, emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=100, seed=1)
    with pytest.raises(OSError) as info:
        client.download(media["media_id"], tmp_path / "no" / "such" / "dir" / "x.bin")
    assert isinstance(info.value, wxmedia.LocalIOError)
    assert info.value.errcode == errcodes.E_IO and info.value.errno is None
    assert info.value.strerror == info.value.errmsg
    with pytest.raises(OSError):
        client.upload("file", tmp_path / "missing.bin")


def test_timeout_is_a_timeouterror(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=MiB, seed=5)
    emu.fault("stall", media_id=media["media_id"], after_bytes=0, ms=3000, count=5)
    with make_client(emu, timeouts=(2, 0.3), retries=(2, 0.01)) as c:
        with pytest.raises(TimeoutError) as info:
            c.download(media["media_id"], tmp_path / "s.bin")
    assert isinstance(info.value, wxmedia.Timeout) and info.value.errcode == errcodes.E_TIMEOUT


def test_invalid_argument_is_a_valueerror(emu: Emulator) -> None:
    with pytest.raises(ValueError) as info:
        make_client(emu, chunk_size=17)  # not a multiple of 16: the library refuses it
    assert isinstance(info.value, wxmedia.InvalidArgument)
    assert info.value.errcode == errcodes.E_INVALID_ARG


def test_cancelled_is_raised_for_a_cancel_token(emu: Emulator, client: wxmedia.Client) -> None:
    media = emu.add_media(size=100, seed=1)
    token = wxmedia.CancelToken()
    token.cancel()
    with pytest.raises(wxmedia.Cancelled) as info:
        client.download_bytes(media["media_id"], cancel=token)
    assert info.value.errcode == errcodes.E_CANCELLED
