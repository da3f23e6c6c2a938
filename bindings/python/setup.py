"""Build hook: compile libwxmedia with cargo and bundle it in the package.

``pip install ./bindings/python`` builds in the source tree, so the Rust
workspace is ``../../`` from here.  The library is copied to
``wxmedia/_lib/`` (git-ignored) and shipped as package data in a
platform-specific wheel (``py3-none-<platform>``: ctypes, no ABI tie to CPython).

Environment:
    WXMEDIA_PREBUILT_LIB  bundle this already-built libwxmedia instead of running cargo
    CARGO                 the cargo executable (default: ``cargo`` on PATH, then ~/.cargo/bin/cargo)
    CARGO_TARGET_DIR      honoured as cargo does
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

try:  # setuptools >= 70.1 ships bdist_wheel itself
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # pragma: no cover - older setuptools with the `wheel` package
    try:
        from wheel.bdist_wheel import bdist_wheel as _bdist_wheel  # type: ignore
    except ImportError:
        _bdist_wheel = None  # type: ignore

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LIB_NAME = {"darwin": "libwxmedia.dylib", "win32": "wxmedia.dll"}.get(sys.platform, "libwxmedia.so")
BUNDLE_DIR = HERE / "wxmedia" / "_lib"


def _cargo() -> str:
    explicit = os.environ.get("CARGO")
    if explicit:
        return explicit
    found = shutil.which("cargo")
    if found:
        return found
    home = Path.home() / ".cargo" / "bin" / "cargo"
    if home.is_file():
        return str(home)
    raise SystemExit(
        "wxmedia: cargo not found. Install Rust (https://rustup.rs), or set CARGO, "
        "or set WXMEDIA_PREBUILT_LIB to an already-built libwxmedia."
    )


def build_library() -> Path:
    prebuilt = os.environ.get("WXMEDIA_PREBUILT_LIB")
    if prebuilt:
        lib = Path(prebuilt)
        if not lib.is_file():
            raise SystemExit(f"wxmedia: WXMEDIA_PREBUILT_LIB={prebuilt} is not a file")
        return lib
    manifest = REPO / "Cargo.toml"
    if not manifest.is_file():
        raise SystemExit(
            f"wxmedia: the Rust sources are not at {REPO} (no Cargo.toml). Install from the repository "
            "(pip install ./bindings/python), or set WXMEDIA_PREBUILT_LIB to a built libwxmedia."
        )
    cmd = [_cargo(), "build", "--release", "--manifest-path", str(manifest), "-p", "wxmedia", "--lib"]
    if (REPO / "Cargo.lock").is_file() and os.environ.get("WXMEDIA_CARGO_LOCKED", "1") != "0":
        cmd.append("--locked")
    print("wxmedia: building the native library:", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=str(REPO), check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    lib = target / "release" / LIB_NAME
    if not lib.is_file():
        raise SystemExit(f"wxmedia: cargo finished but {lib} does not exist")
    return lib


def bundle_library() -> None:
    lib = build_library()
    BUNDLE_DIR.mkdir(parents=True, exist_ok=True)
    dest = BUNDLE_DIR / LIB_NAME
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(lib, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


class build_py(_build_py):
    """Builds and bundles the native library before collecting package data."""

    def run(self) -> None:
        bundle_library()
        super().run()


cmdclass = {"build_py": build_py}

if _bdist_wheel is not None:

    class bdist_wheel(_bdist_wheel):  # type: ignore[misc, valid-type]
        """A platform wheel (it carries a native library) for any Python 3."""

        def finalize_options(self) -> None:
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):  # type: ignore[no-untyped-def]
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = bdist_wheel

setup(cmdclass=cmdclass)
