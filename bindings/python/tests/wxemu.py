"""Drive the real wxmedia emulator (tests/emulator) from Python tests.

Starts ``wxmedia-emulator --listen 127.0.0.1:0 ...`` (``$WXMEDIA_EMULATOR``
overrides the path), reads the bound address from its first stdout line and
scripts media and faults through its admin API (docs/CONTRACT.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import select
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "py-static-TOKEN-9d41c7e2"
"""The static access_token every emulator accepts (distinctive, to catch leaks)."""
CORPID = "wxm-corp"
SECRET = "wxm-secret-5b7e0a"

SECRETS = {TOKEN, SECRET, "wxm-secret", "s3cret-pw", "wrong-secret-123", "not-a-valid-token", "wxmedia-testing-token"}
"""Strings no event, log record or error text may contain; :meth:`Emulator.add_token` adds its tokens."""
ISSUED_TOKEN = r"wxmtok\d+_"
"""A regex matching the tokens the emulator issues from credentials."""


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the test process dies (no orphaned emulators)."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:  # not Linux: the session hook still stops it
        pass


def emulator_path() -> Path:
    env = os.environ.get("WXMEDIA_EMULATOR")
    return Path(env) if env else ROOT / "target" / "release" / "wxmedia-emulator"


class Emulator:
    """One running emulator process."""

    def __init__(self, platform: str = "wecom", extra: Sequence[str] = ()) -> None:
        exe = emulator_path()
        if not exe.is_file():
            raise RuntimeError(
                f"the emulator is not built at {exe}: run `make lib` (cargo build --release --workspace) "
                "or set WXMEDIA_EMULATOR"
            )
        self.platform = platform
        self.log = tempfile.TemporaryFile()
        args = [
            str(exe),
            "--listen",
            "127.0.0.1:0",
            "--platform",
            platform,
            "--access-token",
            TOKEN,
            "--corpid",
            CORPID,
            "--secret",
            SECRET,
            *extra,
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line or not line.startswith("127.0.0.1:"):
            self.proc.kill()
            self.proc.wait()
            self.log.seek(0)
            raise RuntimeError(f"emulator did not print its address (got {line!r}): {self.log.read()[-2000:]!r}")
        self.addr = line
        self.base_url = f"http://{line}"

    # --- admin API -------------------------------------------------------------
    def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"admin {method} {path} -> {e.code}: {e.read()[:500]!r}") from None
        return json.loads(raw) if raw.strip() else None

    def add_media(self, **kw: Any) -> Dict[str, Any]:
        """Register a media; ``data=bytes`` is sent as ``data_b64``."""
        if "data" in kw:
            kw["data_b64"] = base64.b64encode(kw.pop("data")).decode()
        return self.request("POST", "/__admin/media", kw)  # type: ignore[no-any-return]

    def media(self, media_id: str) -> Dict[str, Any]:
        return self.request("GET", "/__admin/media/" + urllib.request.quote(media_id, safe=""))  # type: ignore

    def fault(self, kind: str, **kw: Any) -> None:
        kw["kind"] = kind
        self.request("POST", "/__admin/faults", kw)

    def stats(self) -> Dict[str, Any]:
        return self.request("GET", "/__admin/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.request("POST", "/__admin/reset", {})

    def expire_token(self, token: Optional[str] = None) -> None:
        self.request("POST", "/__admin/expire_token", {"token": token} if token else {"all": True})

    def add_token(self, token: str, ttl_secs: int = 7200) -> None:
        SECRETS.add(token)
        self.request("POST", "/__admin/tokens", {"token": token, "ttl_secs": ttl_secs})

    def ranges(self, media_id: str) -> List[Dict[str, Any]]:
        return [r for r in self.stats()["ranges"] if r["media_id"] == media_id]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode

    def logs(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


# --- content helpers -------------------------------------------------------------
_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def generated(seed: int, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the emulator's generated content for ``seed``."""
    first, last = start // 8, (end + 7) // 8
    words = b"".join(_splitmix64(seed + k).to_bytes(8, "little") for k in range(first, last))
    return words[start - first * 8 : end - first * 8]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: "os.PathLike[str] | str") -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def interrupt(proc: "subprocess.Popen[str]") -> Tuple[str, str, float]:
    """Ctrl-C a child mid-transfer: its (stdout, stderr) and the seconds it took to exit.

    Fails the test if it has not exited within 10 s.
    """
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("Ctrl-C did not stop the transfer")
    return out, err, time.monotonic() - t0


def wait_for(pred: Any, timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


# Minimal valid-looking payloads for the library's magic-byte sniffing.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"
AMR = b"#!AMR\n" + bytes(range(256)) * 8
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 16
GIF = b"GIF89a" + bytes(range(256)) * 2
