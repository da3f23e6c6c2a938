#!/usr/bin/env python3
"""throttle_relay: a TCP relay that throttles each connection exactly.

    throttle_relay.py UPSTREAM_PORT BYTES_PER_SEC

Listens on 127.0.0.1 (a free port, printed on stdout once it listens) and
relays every connection to 127.0.0.1:UPSTREAM_PORT, the server's answers at
BYTES_PER_SEC per connection (a token bucket holding 50 ms of the rate: no
burst beyond it, and no more credit than that saved up while a connection
idles; a smaller one loses the time every sleep oversleeps on a busy
machine), the client's requests as they come. The bench puts it behind nginx's TLS stream proxy and
in front of the plain static server: an https server throttled per
connection, however many Range requests a connection carries.

nginx's own limits let the start of each connection (proxy_download_rate)
or request (limit_rate) through unthrottled: rate x (whole seconds since it
began + 1), i.e. one to two seconds' worth, which on a run of a few seconds
is most of the transfer (bench/README.md).

Standard library only; one thread per direction of each connection.
"""

import socket
import sys
import threading
import time

PIECE = 64 * 1024
BUCKET_SECS = 0.05


def pipe(src: socket.socket, dst: socket.socket, rate: float, both: "tuple[socket.socket, socket.socket]") -> None:
    buf = bytearray(PIECE)
    view = memoryview(buf)
    cap = max(float(PIECE), rate * BUCKET_SECS)
    tokens, last = cap, time.monotonic()
    try:
        while True:
            n = src.recv_into(buf)
            if n == 0:
                break
            if rate > 0:
                now = time.monotonic()
                tokens = min(cap, tokens + (now - last) * rate)
                last = now
                if tokens < n:
                    time.sleep((n - tokens) / rate)
                    now = time.monotonic()
                    tokens = min(cap, tokens + (now - last) * rate)
                    last = now
                tokens -= n
            dst.sendall(view[:n])
    except OSError:
        pass
    # Either side done: end both directions (the other thread sees it).
    for s in both:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(conn: socket.socket, upstream_port: int, rate: float) -> None:
    try:
        up = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        conn.close()
        return
    for s in (conn, up):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    both = (conn, up)
    t = threading.Thread(target=pipe, args=(conn, up, 0.0, both), daemon=True)
    t.start()
    pipe(up, conn, rate, both)
    t.join()
    conn.close()
    up.close()


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    upstream_port, rate = int(sys.argv[1]), float(sys.argv[2])
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(f"127.0.0.1:{ls.getsockname()[1]}", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, upstream_port, rate), daemon=True).start()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
