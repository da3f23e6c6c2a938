"""A 200 MiB media streamed to a file keeps memory bounded (measured in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import wxmedia
from wxemu import TOKEN, Emulator, sha256_file

MiB = 1024 * 1024
SIZE = 200 * MiB
# Default chunk (20 MiB) and 2 connections: a stream download may hold about
# parallelism x chunk_size (40 MiB) for reordering, plus read buffers; a path
# download writes chunks in place.  Buffering the whole media would need 200 MiB
# or more.  The subprocess pins glibc's mmap threshold: otherwise its dynamic
# threshold keeps freed 20 MiB buffers in per-thread arenas and the peak RSS
# measures the allocator (up to ~2x) more than the code.
BOUND = 120 * MiB

SCRIPT = textwrap.dedent(
    """
    import json, sys, wxmedia

    def hwm():
        # peak resident set size of this process, in bytes
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    base, token, media_id, out_path, out_stream = sys.argv[1:6]
    c = wxmedia.Client("wecom", access_token=token, base_url=base, parallelism=2)
    calls = [0]
    def progress(done, total):
        calls[0] += 1
    base_hwm = hwm()
    info = c.download(media_id, out_path, progress=progress)
    after_path = hwm()
    with open(out_stream, "wb") as f:
        c.download(media_id, f)
    after_stream = hwm()
    print(json.dumps({"size": info.size, "base": base_hwm, "path": after_path,
                      "stream": after_stream, "progress_calls": calls[0]}))
    """
)


def test_200_mib_download_with_bounded_memory(emu: Emulator, tmp_path: Path) -> None:
    media = emu.add_media(size=SIZE, seed=2024, filename="big.bin")
    script = tmp_path / "large.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(wxmedia.__file__).resolve().parent.parent)
    env["MALLOC_MMAP_THRESHOLD_"] = str(MiB)
    out_path, out_stream = tmp_path / "by-path.bin", tmp_path / "by-stream.bin"
    r = subprocess.run(
        [sys.executable, str(script), emu.base_url, TOKEN, media["media_id"], str(out_path), str(out_stream)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    try:
        assert m["size"] == SIZE
        grow_path = m["path"] - m["base"]
        grow_stream = m["stream"] - m["base"]
        assert grow_path < BOUND, f"to_path grew the peak RSS by {grow_path / MiB:.0f} MiB"
        assert grow_stream < BOUND, f"a stream download grew the peak RSS by {grow_stream / MiB:.0f} MiB"
        # paced by the library (at most every ~10 ms): a fast loopback run gets a few
        assert m["progress_calls"] > 1
        assert out_path.stat().st_size == SIZE and out_stream.stat().st_size == SIZE
        assert sha256_file(out_path) == media["sha256"]
        assert sha256_file(out_stream) == media["sha256"]
        ranges = emu.ranges(media["media_id"])
        assert all(r["end"] - r["start"] + 1 <= 20 * MiB for r in ranges)
    finally:
        print(f"peak RSS growth: to_path {(m['path'] - m['base']) / MiB:.1f} MiB, "
              f"stream {(m['stream'] - m['base']) / MiB:.1f} MiB")
        out_path.unlink(missing_ok=True)
        out_stream.unlink(missing_ok=True)
