"""Command line: ``python -m wxmedia get MEDIA_ID -o FILE`` and ``python -m wxmedia upload TYPE FILE``.

Connection flags may come from the environment instead:

=====================  ==============================================
flag                   environment
=====================  ==============================================
``--base-url``         ``WXMEDIA_BASE_URL``
``--platform``         ``WXMEDIA_PLATFORM`` (wecom, kf, official, miniprogram)
``--token``            ``WXMEDIA_ACCESS_TOKEN``
``--corpid/--appid``   ``WXMEDIA_CORPID`` or ``WXMEDIA_APPID``
``--secret``           ``WXMEDIA_SECRET``
=====================  ==============================================

A progress bar is drawn on stderr when stderr is a terminal (``--progress``
forces it, ``--no-progress`` hides it).  ``get`` prints a summary on stderr;
``upload`` prints the new media_id on stdout (or JSON with ``--json``).
Exit status: 0 ok, 1 failure (the message names the errcode), 2 usage, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import IO, List, Optional, Sequence

from . import __version__
from .client import Client, MediaInfo
from .errors import WxMediaError


class ProgressBar:
    """A plain text progress bar on a stream (stderr), redrawn at most 10 times a second."""

    def __init__(self, label: str, stream: IO[str], width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.done = 0
        self.total: Optional[int] = None
        self.drawn = False

    def __call__(self, done: int, total: Optional[int]) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self.last_draw >= 0.1 or (total is not None and done >= total):
            self.last_draw = now
            self.draw()

    def draw(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r{self.label} [{bar}] {frac * 100:5.1f}% {_human(self.done)}/{_human(self.total)} {_human(rate)}/s"
        else:
            text = f"\r{self.label} {_human(self.done)} {_human(rate)}/s"
        self.stream.write(text)
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    env = os.environ.get
    g = common.add_argument_group("connection (flags override the WXMEDIA_* environment)")
    g.add_argument("--base-url", default=env("WXMEDIA_BASE_URL"), help="API host (env WXMEDIA_BASE_URL)")
    g.add_argument(
        "--platform",
        default=env("WXMEDIA_PLATFORM", "wecom"),
        choices=["wecom", "kf", "official", "miniprogram"],
        help="platform (env WXMEDIA_PLATFORM; default wecom)",
    )
    g.add_argument("--token", default=env("WXMEDIA_ACCESS_TOKEN"), help="static access_token (env WXMEDIA_ACCESS_TOKEN)")
    g.add_argument(
        "--corpid",
        "--appid",
        dest="corpid",
        default=env("WXMEDIA_CORPID") or env("WXMEDIA_APPID"),
        help="corpid or appid for fetching tokens (env WXMEDIA_CORPID / WXMEDIA_APPID)",
    )
    g.add_argument("--secret", default=env("WXMEDIA_SECRET"), help="corpsecret or secret (env WXMEDIA_SECRET)")
    g.add_argument("--chunk-size", type=int, help="bytes per Range request (multiple of 16, <= 20 MiB)")
    g.add_argument("--parallelism", type=int, help="connections per download")
    bar = common.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always draw a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never draw a progress bar")

    p = argparse.ArgumentParser(prog="python -m wxmedia", description="WeChat / WeCom temporary media.")
    p.add_argument("--version", action="version", version=f"wxmedia {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{get,upload}")

    get = sub.add_parser("get", parents=[common], help="download a media", description="Download a media.")
    get.add_argument("media_id")
    get.add_argument("-o", "--output", required=True, help="destination file ('-' for stdout)")
    get.add_argument("--start", type=int, default=0, help="resume into stdout from this byte offset")

    up = sub.add_parser("upload", parents=[common], help="upload a media", description="Upload a media.")
    up.add_argument("type", help="image, voice, video, file or thumb")
    up.add_argument("file", help="the file to upload ('-' for stdin, with --length)")
    up.add_argument("--filename", help="the name WeChat shows (default: the file's name)")
    up.add_argument("--length", type=int, help="bytes to read from stdin")
    up.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    return p


def _client(args: argparse.Namespace) -> Client:
    if not args.token and not (args.corpid and args.secret):
        raise SystemExit(
            "wxmedia: no credentials: pass --token (or WXMEDIA_ACCESS_TOKEN), "
            "or --corpid/--appid and --secret (or WXMEDIA_CORPID and WXMEDIA_SECRET)"
        )
    if (args.corpid is None) != (args.secret is None):
        raise SystemExit("wxmedia: --corpid/--appid and --secret go together")
    return Client(
        args.platform,
        access_token=args.token or None,
        credentials=(args.corpid, args.secret) if args.corpid and args.secret else None,
        base_url=args.base_url or None,
        chunk_size=args.chunk_size,
        parallelism=args.parallelism,
    )


def _want_bar(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty()


def _get(args: argparse.Namespace) -> int:
    bar = ProgressBar(f"get {args.media_id}", sys.stderr) if _want_bar(args) else None
    with _client(args) as client:
        try:
            info: MediaInfo
            if args.output == "-":
                info = client.download(args.media_id, sys.stdout.buffer, progress=bar, start=args.start)
                sys.stdout.buffer.flush()
            else:
                if args.start:
                    raise SystemExit("wxmedia: --start is for '-o -'; a file download resumes by itself")
                info = client.download(args.media_id, args.output, progress=bar)
        finally:
            if bar is not None:
                bar.finish()
    where = "stdout" if args.output == "-" else args.output
    parts = [f"{info.size} bytes"]
    if info.content_type:
        parts.append(info.content_type)
    if info.filename:
        parts.append(f"filename {info.filename!r}")
    if info.video_url:
        parts.append(f"video_url {info.video_url}")
    print(f"wxmedia: saved {args.media_id} to {where} ({', '.join(parts)})", file=sys.stderr)
    return 0


def _upload(args: argparse.Namespace) -> int:
    bar = ProgressBar(f"upload {args.file}", sys.stderr) if _want_bar(args) else None
    with _client(args) as client:
        try:
            if args.file == "-":
                if args.length is None:
                    raise SystemExit("wxmedia: uploading stdin needs --length")
                if not args.filename:
                    raise SystemExit("wxmedia: uploading stdin needs --filename")
                res = client.upload(args.type, sys.stdin.buffer, args.filename, progress=bar, length=args.length)
            else:
                if args.length is not None:
                    raise SystemExit("wxmedia: --length is only for stdin")
                res = client.upload(args.type, args.file, args.filename, progress=bar)
        finally:
            if bar is not None:
                bar.finish()
    if args.json:
        print(json.dumps(res._asdict(), ensure_ascii=False))
    else:
        print(res.media_id)
        print(f"wxmedia: uploaded {args.file} as {res.type} {res.media_id} (created_at {res.created_at})", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m wxmedia`` and the ``wxmedia`` script."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "get":
            return _get(args)
        return _upload(args)
    except WxMediaError as e:
        print(f"wxmedia: {args.command} failed: {type(e).__name__} {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError) as e:
        print(f"wxmedia: {args.command} failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nwxmedia: interrupted", file=sys.stderr)
        return 130


def run(argv: Optional[List[str]] = None) -> None:
    sys.exit(main(argv))
