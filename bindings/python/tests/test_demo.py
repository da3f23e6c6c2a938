"""examples/demo.py, run as a user runs it, against the emulator.

The command line is the Rust ``wxmedia`` (crate ``cli/``, tested there); the
package ships no CLI of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import wxmedia
from wxemu import TOKEN, Emulator

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
