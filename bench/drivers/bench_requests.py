#!/usr/bin/env python3
"""bench_requests: what a Python user writes with ``requests`` (the baseline).

    bench_requests.py [-a CAFILE] MODE ...   CAFILE: the CA to trust for https (verify=)
    bench_requests.py stream URL OUT          one GET, iter_content(1 MiB) into OUT
    bench_requests.py rangeloop URL OUT [CHUNK]  a Session, Range requests of CHUNK
                                              (default 20 MiB) one after another
    bench_requests.py small URL COUNT         a Session, COUNT GETs (.content)

Prints ``BENCH ok=1 host=requests mode=MODE bytes=N secs=S n=COUNT``
(secs: the transfer(s) only, not interpreter start-up).
"""

import re
import sys
import time

import requests

CHUNK = 20 * 1024 * 1024
READ = 1024 * 1024


def session(verify: "bool | str") -> requests.Session:
    s = requests.Session()
    s.verify = verify
    return s


def fail(mode: str, msg: str) -> int:
    print(f"BENCH ok=0 host=requests mode={mode} rc=0 msg={msg}")
    return 1


def main() -> int:
    verify = True
    if sys.argv[1:2] == ["-a"]:
        verify = sys.argv[2]
        del sys.argv[1:3]
    mode = sys.argv[1]
    url = sys.argv[2]
    n = 1
    t0 = time.perf_counter()
    if mode == "stream":
        out = sys.argv[3]
        nbytes = 0
        with requests.get(url, stream=True, verify=verify) as r, open(out, "wb") as f:
            if r.status_code != 200 or r.headers.get("content-type", "").startswith(("application/json", "text/plain")):
                return fail(mode, f"HTTP {r.status_code} {r.headers.get('content-type')}")
            for block in r.iter_content(READ):
                f.write(block)
                nbytes += len(block)
    elif mode == "rangeloop":
        out = sys.argv[3]
        chunk = int(sys.argv[4]) if len(sys.argv) > 4 else CHUNK
        nbytes = 0
        total = None
        with session(verify) as s, open(out, "wb") as f:
            start = 0
            while total is None or start < total:
                r = s.get(url, headers={"Range": f"bytes={start}-{start + chunk - 1}"}, verify=verify)
                if r.status_code != 206:
                    return fail(mode, f"HTTP {r.status_code}: {r.content[:200]!r}")
                m = re.match(r"bytes (\d+)-(\d+)/(\d+)", r.headers.get("content-range", ""))
                if not m or int(m.group(1)) != start:
                    return fail(mode, f"bad Content-Range {r.headers.get('content-range')}")
                total = int(m.group(3))
                f.write(r.content)
                nbytes += len(r.content)
                start = int(m.group(2)) + 1
    elif mode == "small":
        n = int(sys.argv[3])
        nbytes = 0
        with session(verify) as s:
            for _ in range(n):
                r = s.get(url, verify=verify)
                if r.status_code != 200:
                    return fail(mode, f"HTTP {r.status_code}")
                nbytes += len(r.content)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    secs = time.perf_counter() - t0
    print(f"BENCH ok=1 host=requests mode={mode} bytes={nbytes} secs={secs:.6f} n={n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
