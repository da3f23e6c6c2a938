"""``python -m wxmedia get|upload`` and examples/demo.py against the emulator."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import wxmedia
from wxemu import PNG, TOKEN, Emulator, sha256, sha256_file

PKG_PARENT = str(Path(wxmedia.__file__).resolve().parent.parent)
DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def _env(emu: Optional[Emulator], **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXMEDIA_") or k == "WXMEDIA_LIBRARY"}
    env["PYTHONPATH"] = PKG_PARENT
    if emu is not None:
        env["WXMEDIA_BASE_URL"] = emu.base_url
        env["WXMEDIA_ACCESS_TOKEN"] = TOKEN
    env.update(extra)
    return env


def _cli(args: List[str], env: Dict[str, str], stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wxmedia", *args], env=env, capture_output=True, timeout=60, input=stdin, cwd="/"
    )


def test_get_with_environment(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=1_500_000, seed=3, filename="年报.pdf", content_type="application/pdf")
    out = tmp_path / "x.pdf"
    r = _cli(["get", media["media_id"], "-o", str(out)], _env(emu))
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == media["sha256"]
    err = r.stderr.decode()
    assert "1500000 bytes" in err and "年报.pdf" in err
    assert TOKEN not in err


def test_get_to_stdout_with_flags(emu: Emulator) -> None:
    payload = os.urandom(100_000)
    media = emu.add_media(data=payload)
    r = _cli(["get", media["media_id"], "-o", "-", "--base-url", emu.base_url, "--token", TOKEN,
              "--chunk-size", "16384", "--parallelism", "2", "--start", "1000"], _env(None))
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload[1000:]


def test_get_with_credentials(emu: Emulator, tmp_path: Path) -> None:
    from wxemu import CORPID, SECRET

    media = emu.add_media(size=1000, seed=1)
    r = _cli(["get", media["media_id"], "-o", str(tmp_path / "a"), "--base-url", emu.base_url],
             _env(None, WXMEDIA_CORPID=CORPID, WXMEDIA_SECRET=SECRET))
    assert r.returncode == 0, r.stderr
    assert emu.stats()["token_fetches"] == 1
    assert SECRET not in r.stderr.decode()


def test_upload_prints_the_media_id(emu: Emulator, tmp_path: Path) -> None:
    src = tmp_path / "logo.png"
    src.write_bytes(PNG)
    r = _cli(["upload", "image", str(src)], _env(emu))
    assert r.returncode == 0, r.stderr
    media_id = r.stdout.decode().strip()
    assert emu.media(media_id)["sha256"] == sha256(PNG)
    r = _cli(["upload", "image", str(src), "--json", "--filename", "标志.png"], _env(emu))
    answer = json.loads(r.stdout)
    assert answer["type"] == "image" and emu.media(answer["media_id"])["filename"] == "标志.png"


def test_upload_from_stdin(emu: Emulator) -> None:
    data = os.urandom(20_000)
    r = _cli(["upload", "file", "-", "--length", str(len(data)), "--filename", "in.bin"], _env(emu), stdin=data)
    assert r.returncode == 0, r.stderr
    assert emu.media(r.stdout.decode().strip())["sha256"] == sha256(data)


def test_errors_exit_1_with_the_errcode(emu: Emulator, tmp_path: Path) -> None:
    r = _cli(["get", "no-such-media", "-o", str(tmp_path / "x")], _env(emu))
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "InvalidMediaId" in err and "40007" in err and TOKEN not in err
    r = _cli(["upload", "image", str(tmp_path / "missing.png")], _env(emu))
    assert r.returncode == 1 and "missing.png" in r.stderr.decode()
    r = _cli(["upload", "image", "-"], _env(emu))
    assert r.returncode != 0 and "--length" in r.stderr.decode()


def test_missing_credentials_and_bad_usage(tmp_path: Path) -> None:
    r = _cli(["get", "m", "-o", str(tmp_path / "x")], _env(None))
    assert r.returncode != 0 and "--token" in r.stderr.decode()
    r = _cli(["frobnicate"], _env(None))
    assert r.returncode == 2
    r = _cli(["get", "m"], _env(None, WXMEDIA_ACCESS_TOKEN="t"))
    assert r.returncode == 2 and "-o" in r.stderr.decode()


def test_progress_bar_on_a_terminal(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=2_000_000, seed=4)
    emu.fault("throttle", media_id=media["media_id"], bytes_per_sec=4_000_000)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wxmedia", "get", media["media_id"], "-o", str(tmp_path / "p.bin")],
            env=_env(emu), stdout=subprocess.DEVNULL, stderr=slave, cwd="/",
        )
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        proc.wait(30)
    finally:
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "100.0%" in text and "[" in text and "\r" in text
    assert sha256_file(tmp_path / "p.bin") == media["sha256"]


def test_no_progress_bar_when_not_a_terminal(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=100_000, seed=4)
    r = _cli(["get", media["media_id"], "-o", str(tmp_path / "q")], _env(emu))
    assert r.returncode == 0 and "%" not in r.stderr.decode()


def test_demo_script(emu: Emulator) -> None:
    r = subprocess.run(
        [sys.executable, str(DEMO), "--base-url", emu.base_url, "--token", TOKEN],
        env=_env(None), capture_output=True, text=True, timeout=120, cwd="/",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: the downloaded bytes are identical" in r.stdout
    ranges = emu.stats()["ranges"]
    assert len(ranges) >= 40 and all(x["end"] - x["start"] + 1 <= 64 * 1024 for x in ranges)
    assert emu.stats()["uploads"] == 1
