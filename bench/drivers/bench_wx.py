#!/usr/bin/env python3
"""bench_wx (Python host): time one wxmedia transfer and print one line.

    bench_wx.py -m MODE -b BASE_URL -k TOKEN [-i MEDIA_ID] [-o OUT] [-f FILE]
                [-p PARALLELISM] [-c CHUNK] [-n COUNT] [-t TYPE] [-a CAFILE]

Same modes and output as bench_wx.c (path, sink, upload, small):
    BENCH ok=1 host=py mode=MODE bytes=N secs=S n=COUNT [media_id=ID]
Uses only the public API of the installed ``wxmedia`` package
(``Client.download``, ``Client.download_bytes``, ``Client.upload``).
"""

import argparse
import os
import sys
import time

import wxmedia


class Discard:
    """A binary file object that drops what it is given (the sink case)."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data) -> int:
        n = len(data)
        self.count += n
        return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", dest="mode", required=True, choices=["path", "sink", "upload", "small"])
    ap.add_argument("-b", dest="base", required=True)
    ap.add_argument("-k", dest="token", required=True)
    ap.add_argument("-i", dest="media")
    ap.add_argument("-o", dest="out")
    ap.add_argument("-f", dest="file")
    ap.add_argument("-p", dest="parallelism", type=int)
    ap.add_argument("-c", dest="chunk", type=int)
    ap.add_argument("-n", dest="count", type=int, default=1)
    ap.add_argument("-t", dest="type", default="file")
    ap.add_argument("-a", dest="ca_file", help="a PEM file of CAs to trust for https (the bench's test CA)")
    a = ap.parse_args()

    kwargs = {}
    if a.chunk:
        kwargs["chunk_size"] = a.chunk
    if a.parallelism:
        kwargs["parallelism"] = a.parallelism
    if a.ca_file:
        kwargs["ca_file"] = a.ca_file
    if a.mode == "upload":
        kwargs["limits"] = {a.type: 1 << 40}
    client = wxmedia.Client("wecom", access_token=a.token, base_url=a.base, **kwargs)
    extra = ""
    # COUNT transfers in one process (steady state; small downloads).
    n = max(a.count, 1)
    try:
        t0 = time.perf_counter()
        if a.mode == "path":
            nbytes = 0
            for _ in range(n):
                info = client.download(a.media, a.out)
                nbytes += info.size
        elif a.mode == "sink":
            sink = Discard()
            for _ in range(n):
                client.download(a.media, sink)
            nbytes = sink.count
        elif a.mode == "small":
            nbytes = 0
            for _ in range(n):
                data, _info = client.download_bytes(a.media)
                nbytes += len(data)
        else:
            n = 1
            res = client.upload(a.type, a.file)
            nbytes = os.path.getsize(a.file)
            extra = f" media_id={res.media_id}"
        secs = time.perf_counter() - t0
    except wxmedia.WxMediaError as e:
        print(f"BENCH ok=0 host=py mode={a.mode} rc={e.errcode} msg={e}")
        return 1
    finally:
        client.close()
    print(f"BENCH ok=1 host=py mode={a.mode} bytes={nbytes} secs={secs:.6f} n={n}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
