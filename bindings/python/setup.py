"""Build hook: compile libwxmedia with cargo and bundle it in the package.

``pip install ./bindings/python`` builds in the source tree, so the Rust
workspace is ``../../`` from here; an sdist (``make dist``) carries the
crate's sources in ``rust/`` instead.  The library is copied to
``wxmedia/_lib/`` (git-ignored) and shipped as package data in a
platform-specific wheel (``py3-none-<platform>``: ctypes, no ABI tie to CPython).

Environment:
    WXMEDIA_PREBUILT_LIB  bundle this already-built libwxmedia instead of running cargo
    WXMEDIA_PREBUILT_EMULATOR  also bundle this wxmedia-emulator (for wxmedia.testing)
    CARGO                 the cargo executable (default: ``cargo`` on PATH, then ~/.cargo/bin/cargo)
    CARGO_TARGET_DIR      honoured as cargo does
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
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


def _rust_root() -> Path:
    """The Cargo workspace: ``rust/`` in an sdist, else the repository."""
    return HERE / "rust" if (HERE / "rust" / "Cargo.toml").is_file() else REPO


def build_library() -> Path:
    prebuilt = os.environ.get("WXMEDIA_PREBUILT_LIB")
    if prebuilt:
        lib = Path(prebuilt)
        if not lib.is_file():
            raise SystemExit(f"wxmedia: WXMEDIA_PREBUILT_LIB={prebuilt} is not a file")
        return lib
    root = _rust_root()
    manifest = root / "Cargo.toml"
    if not manifest.is_file():
        raise SystemExit(
            f"wxmedia: the Rust sources are not at {root} (no Cargo.toml). Install from the repository "
            "(pip install ./bindings/python), or set WXMEDIA_PREBUILT_LIB to a built libwxmedia."
        )
    cmd = [_cargo(), "build", "--release", "--manifest-path", str(manifest), "-p", "wxmedia", "--lib"]
    # An sdist's rust/Cargo.lock is the repository's, which also pins the
    # workspace members left out of the sdist: cargo prunes those entries,
    # so --locked would refuse it there.
    if root == REPO and (REPO / "Cargo.lock").is_file() and os.environ.get("WXMEDIA_CARGO_LOCKED", "1") != "0":
        cmd.append("--locked")
    print("wxmedia: building the native library:", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=str(root), check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or root / "target")
    if not target.is_absolute():
        target = root / target
    lib = target / "release" / LIB_NAME
    if not lib.is_file():
        raise SystemExit(f"wxmedia: cargo finished but {lib} does not exist")
    return lib


def _copy_executable(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def bundle_library() -> None:
    lib = build_library()
    BUNDLE_DIR.mkdir(parents=True, exist_ok=True)
    _copy_executable(lib, BUNDLE_DIR / LIB_NAME)
    emulator = os.environ.get("WXMEDIA_PREBUILT_EMULATOR")
    if emulator:
        if not Path(emulator).is_file():
            raise SystemExit(f"wxmedia: WXMEDIA_PREBUILT_EMULATOR={emulator} is not a file")
        _copy_executable(Path(emulator), BUNDLE_DIR / "wxmedia-emulator")


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

class BinaryDistribution(Distribution):
    """Has a native library: installs into platlib (auditwheel reads only
    platlib), though no extension module is compiled by setuptools."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass=cmdclass, distclass=BinaryDistribution)
