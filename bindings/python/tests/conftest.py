"""Fixtures: real emulators (one per platform, started once per session) and clients."""

from __future__ import annotations

import logging
import itertools
import os
import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3gw import Versitygw  # noqa: E402
from wxemu import CORPID, ISSUED_TOKEN, SECRET, SECRETS, TOKEN, Emulator  # noqa: E402

import wxmedia  # noqa: E402

_servers: Dict[str, Emulator] = {}


def _server(platform: str) -> Emulator:
    emu = _servers.get(platform)
    if emu is None:
        extra = ["--store-uploads", "--media", str(_media_dir(platform))]
        emu = Emulator(platform, extra)
        _servers[platform] = emu
    return emu


_media_root: Dict[str, Path] = {}


def _media_dir(platform: str) -> Path:
    import tempfile

    d = Path(tempfile.mkdtemp(prefix=f"wxmedia-py-{platform}-"))
    _media_root[platform] = d
    return d


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    for name, emu in list(_servers.items()):
        rc = emu.stop()
        if rc != 0 and exitstatus == 0:
            print(f"\nemulator {name} exited with {rc}:\n{emu.logs()[-3000:]}", file=sys.stderr)
    for d in _media_root.values():
        shutil.rmtree(d, ignore_errors=True)


def _fresh(platform: str) -> Emulator:
    emu = _server(platform)
    emu.reset()
    return emu


@pytest.fixture
def emu() -> Emulator:
    """The WeCom emulator, faults and stats cleared."""
    return _fresh("wecom")


@pytest.fixture(scope="session")
def versitygw() -> Iterator[Versitygw]:
    """A real S3-compatible server (versitygw, checking signatures) on loopback, for the session."""
    gw = Versitygw()
    try:
        yield gw
    finally:
        gw.stop()


_buckets = itertools.count(1)


@pytest.fixture
def bucket(versitygw: Versitygw) -> str:
    """A new, empty bucket of :func:`versitygw`."""
    name = f"media-{os.getpid()}-{next(_buckets)}"
    versitygw.s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def official() -> Emulator:
    """An Official Account emulator, faults and stats cleared."""
    return _fresh("official")


@pytest.fixture
def miniprogram() -> Emulator:
    return _fresh("miniprogram")


@pytest.fixture
def kf() -> Emulator:
    return _fresh("kf")


def make_client(emu: Emulator, **kw: object) -> wxmedia.Client:
    args: Dict[str, object] = dict(
        access_token=TOKEN,
        base_url=emu.base_url,
        timeouts=(5, 5),
        retries=(4, 0.02),
    )
    args.update(kw)
    return wxmedia.Client(emu.platform, **args)  # type: ignore[arg-type]


@pytest.fixture
def client(emu: Emulator) -> Iterator[wxmedia.Client]:
    with make_client(emu) as c:
        yield c


@pytest.fixture
def official_client(official: Emulator) -> Iterator[wxmedia.Client]:
    with make_client(official) as c:
        yield c


@pytest.fixture
def creds() -> tuple:
    return (CORPID, SECRET)


@pytest.fixture(autouse=True)
def _no_leaked_transfers() -> Iterator[None]:
    """Every transfer removes itself from the callback registry."""
    from wxmedia._transfer import REGISTRY

    before = len(REGISTRY)
    yield
    assert len(REGISTRY) == before, "a transfer was left in the callback registry"


class EventRecorder(logging.Handler):
    """Keeps every record of the "wxmedia" logger (thread-safe: Handler.handle locks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> List[logging.LogRecord]:
        """The records that are library events (they carry ``wxm_kind``)."""
        return [r for r in self.records if hasattr(r, "wxm_kind")]


@pytest.fixture(autouse=True)
def wxm_events() -> Iterator[EventRecorder]:
    """Every client of every test gets every event (the "wxmedia" logger at DEBUG when it is
    created), and after the test no event's message or field holds a token, secret or password."""
    logger = logging.getLogger("wxmedia")
    recorder = EventRecorder()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)
    issued = re.compile(ISSUED_TOKEN)
    for r in recorder.records:
        texts = [r.getMessage()] + [str(v) for k, v in vars(r).items() if k.startswith("wxm_")]
        if r.exc_info is None:  # a traceback of a test's own exception may quote anything
            for text in texts:
                found = [s for s in SECRETS if s in text] or issued.findall(text)
                assert not found and "access_token=" not in text, f"a secret in an event: {text!r} ({found})"


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"wxmedia {wxmedia.__version__} from {Path(wxmedia.__file__).parent}; "
        f"library {wxmedia.library_version()} at {wxmedia.LIBRARY_PATH}"
        + (" (WXMEDIA_LIBRARY)" if os.environ.get("WXMEDIA_LIBRARY") else " (bundled)")
    )
