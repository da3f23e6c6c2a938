"""A real S3-compatible server for the object-store tests: versitygw on loopback.

versitygw checks SigV4 signatures (a wrong secret is refused), unlike
emulators that skip them.  ``make versitygw`` installs it into
build/tools/bin (``$WXMEDIA_VERSITYGW`` overrides the path); a test that
needs it fails, never skips, without it.  The tests' own view of the store
(buckets, objects read back, uploads in progress) is boto3's, a test-only
dependency installed by ``make py-install``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional

from wxemu import ROOT, SECRETS, _die_with_parent

S3_ACCESS = "wxm-py-access"
S3_SECRET = "wxm-py-s3-secret-Qm83Zt"
S3_REGION = "us-east-1"
SECRETS.add(S3_SECRET)  # no event, log record or error text may hold it


def versitygw_path() -> Path:
    env = os.environ.get("WXMEDIA_VERSITYGW")
    return Path(env) if env else ROOT / "build" / "tools" / "bin" / "versitygw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Versitygw:
    """One versitygw process serving a fresh posix directory."""

    def __init__(self) -> None:
        exe = versitygw_path()
        if not exe.is_file():
            raise RuntimeError(f"{exe} is missing: run `make versitygw` (or set WXMEDIA_VERSITYGW)")
        self.dir = Path(tempfile.mkdtemp(prefix="wxmedia-py-s3-"))
        self.log = tempfile.TemporaryFile()
        self.proc: Optional["subprocess.Popen[bytes]"] = None
        # A port found free may be taken before versitygw binds it: a few tries.
        for _ in range(5):
            addr = f"127.0.0.1:{_free_port()}"
            proc = subprocess.Popen(
                [str(exe), "--access", S3_ACCESS, "--secret", S3_SECRET, "--region", S3_REGION,
                 "--port", addr, "--quiet", "posix", str(self.dir)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
                preexec_fn=_die_with_parent,
            )
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", int(addr.rsplit(":", 1)[1])), timeout=1).close()
                except OSError:
                    time.sleep(0.02)
                    continue
                self.proc, self.addr = proc, addr
                self.endpoint = f"http://{addr}"
                self.s3 = s3_client(self.endpoint)
                return
            proc.kill()
            proc.wait()
        self.log.seek(0)
        raise RuntimeError(f"versitygw did not start: {self.log.read()[-2000:]!r}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- the tests' view of a bucket -----------------------------------------------------
    def uploads(self, bucket: str) -> List[str]:
        """The keys of the multipart uploads in progress in ``bucket``."""
        r = self.s3.list_multipart_uploads(Bucket=bucket)
        return [u["Key"] for u in r.get("Uploads", [])]

    def keys(self, bucket: str) -> List[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def s3_client(endpoint: str, secret: str = S3_SECRET) -> Any:
    """A boto3 S3 client for ``endpoint`` (path style, as versitygw on an IP address needs)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:  # fail, never skip: `make py-install` installs it
        raise RuntimeError("the object-store tests read objects back with boto3: pip install boto3") from e
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
