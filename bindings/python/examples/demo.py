#!/usr/bin/env python3
"""wxmedia's main job, from Python: upload a real file, download it back in
ranged chunks, and prove the bytes are the same.

    python demo.py --base-url http://127.0.0.1:PORT --token TOKEN
    WXMEDIA_BASE_URL=... WXMEDIA_ACCESS_TOKEN=... python demo.py

Start an emulator first (``target/release/wxmedia-emulator --listen
127.0.0.1:0 --access-token TOKEN`` prints its address), or run ``make py-demo``
which does it all.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import wxmedia


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default=os.environ.get("WXMEDIA_BASE_URL"), help="env WXMEDIA_BASE_URL")
    p.add_argument("--token", default=os.environ.get("WXMEDIA_ACCESS_TOKEN"), help="env WXMEDIA_ACCESS_TOKEN")
    p.add_argument("--platform", default=os.environ.get("WXMEDIA_PLATFORM", "wecom"))
    p.add_argument("--size", type=int, default=3 * 1024 * 1024 + 123, help="bytes of the file to make")
    p.add_argument("--chunk-size", type=int, default=64 * 1024)
    p.add_argument("--parallelism", type=int, default=2)
    args = p.parse_args()
    if not args.base_url or not args.token:
        p.error("give --base-url and --token (or WXMEDIA_BASE_URL and WXMEDIA_ACCESS_TOKEN)")

    with tempfile.TemporaryDirectory(prefix="wxmedia-demo-") as d:
        work = Path(d)
        # A real file: a CSV-like report with a Chinese name (a `file` upload
        # takes any format up to 20 MB).
        src = work / "季度报告.csv"
        with open(src, "wb") as f:
            row = 0
            while f.tell() < args.size:
                f.write(f"{row},{hashlib.sha256(str(row).encode()).hexdigest()},订单,{row * 37 % 1000}\n".encode())
                row += 1
            f.truncate(args.size)
        want = sha256_file(src)

        with wxmedia.Client(
            args.platform,
            access_token=args.token,
            base_url=args.base_url,
            chunk_size=args.chunk_size,
            parallelism=args.parallelism,
        ) as client:
            t0 = time.monotonic()
            up = client.upload("file", src)
            t1 = time.monotonic()
            dest = work / "downloaded.csv"
            info = client.download(up.media_id, dest)
            t2 = time.monotonic()

        got = sha256_file(dest)
        chunks = -(-info.size // args.chunk_size)
        mib = args.size / (1024 * 1024)
        print("wxmedia demo (Python, libwxmedia %s)" % wxmedia.library_version())
        print(f"  uploaded   {src.name}: {args.size} bytes as {up.type} media_id={up.media_id} "
              f"(created_at {up.created_at}) in {t1 - t0:.2f}s")
        print(f"  downloaded {info.size} bytes in {chunks} Range chunks of {args.chunk_size} bytes, "
              f"{args.parallelism} connections, in {t2 - t1:.2f}s ({mib / max(t2 - t1, 1e-6):.1f} MiB/s)")
        print(f"  filename   {info.filename!r}, content-type {info.content_type!r}")
        print(f"  sha256     {want}")
        if got != want or info.size != args.size:
            print(f"  MISMATCH: downloaded sha256 {got}, size {info.size}", file=sys.stderr)
            return 1
        print("  OK: the downloaded bytes are identical to the uploaded file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
