"""The ctypes layer against include/wxmedia.h: declarations, constants, loading, versions."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import wxmedia
from wxmedia import _ffi, errcodes
from wxemu import ROOT

HEADER = ROOT / "include" / "wxmedia.h"
PKG_PARENT = str(Path(wxmedia.__file__).resolve().parent.parent)

_SCALARS: Dict[str, Any] = {
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "size_t": ctypes.c_size_t,
    "bool": ctypes.c_bool,
    "void": None,
}


def _ctype(c: str) -> Any:
    """The ctypes type a C type must be declared as."""
    c = re.sub(r"\bstruct\s+", "", c)
    c = re.sub(r"\s*\*\s*", " * ", c).split()
    norm = " ".join(t for t in c if t != "const")
    if norm in _SCALARS:
        return _SCALARS[norm]
    if norm in _ffi.CALLBACK_TYPES:
        return _ffi.CALLBACK_TYPES[norm]
    if norm == "char *":
        return ctypes.c_char_p
    if norm in ("void *", "uint8_t *"):
        return ctypes.c_void_p
    if norm.endswith(" *") and _SCALARS.get(norm[:-2]) is not None:
        return ctypes.POINTER(_SCALARS[norm[:-2]])  # an out-parameter
    if norm.endswith(" *") and norm[:-2] in _ffi.STRUCTS:
        return ctypes.POINTER(_ffi.STRUCTS[norm[:-2]])
    handles = {
        "wxm_config": _ffi.ConfigP,
        "wxm_client": _ffi.ClientP,
        "wxm_download": _ffi.DownloadP,
        "wxm_upload": _ffi.UploadP,
        "wxm_url_upload": _ffi.UrlUploadP,
        "wxm_objstore": _ffi.ObjstoreP,
    }
    m = re.fullmatch(r"(wxm_\w+) \*( \*)?", norm)
    if m and m.group(1) in handles:
        t = handles[m.group(1)]
        return ctypes.POINTER(t) if m.group(2) else t
    raise AssertionError(f"test_ffi does not know how to map the C type {c!r}")


def _strip_param_name(p: str) -> str:
    p = re.sub(r"\s*\*\s*", " * ", p).strip()
    toks = p.split()
    if len(toks) > 1 and re.fullmatch(r"[A-Za-z_]\w*", toks[-1]) and toks[-1] not in _SCALARS and toks[-1] != "const":
        toks = toks[:-1]
    return " ".join(toks)


def header_functions() -> Dict[str, Tuple[str, List[str]]]:
    """``name -> (return C type, [param C types])`` for every wxm_ function of the header."""
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    text = re.sub(r"\bextern\s+\"C\"\s*\{", " ", text)
    out: Dict[str, Tuple[str, List[str]]] = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(wxm_\w+)\s*\(([^;{}()]*)\)\s*;", text):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        ret = ret.replace("extern", " ").strip()
        if ret.startswith("typedef") or not ret:
            continue
        plist = [] if params.strip() in ("", "void") else [_strip_param_name(p) for p in params.split(",")]
        out[name] = (ret, plist)
    return out


@pytest.fixture(scope="module")
def functions() -> Dict[str, Tuple[str, List[str]]]:
    assert HEADER.is_file(), f"{HEADER} is missing"
    fns = header_functions()
    assert len(fns) >= 40, f"parsed only {len(fns)} functions from the header: {sorted(fns)}"
    return fns


def test_every_header_function_is_declared(functions: Dict[str, Tuple[str, List[str]]]) -> None:
    missing = sorted(set(functions) - set(_ffi.SIGNATURES))
    assert not missing, f"wxm_ functions of include/wxmedia.h not declared in wxmedia/_ffi.py: {missing}"
    stale = sorted(set(_ffi.SIGNATURES) - set(functions))
    assert not stale, f"_ffi.py declares functions the header does not have: {stale}"


def test_declarations_match_header_types(functions: Dict[str, Tuple[str, List[str]]]) -> None:
    wrong = []
    for name, (ret, params) in sorted(functions.items()):
        restype, argtypes = _ffi.SIGNATURES[name]
        want_ret = _ctype(ret)
        want_args = [_ctype(p) for p in params]
        if restype is not want_ret or list(argtypes) != want_args:
            wrong.append(f"{name}: header ({ret}; {', '.join(params)}) vs declared ({restype}; {argtypes})")
    assert not wrong, "\n".join(wrong)


def test_loaded_functions_carry_declarations() -> None:
    for name, (restype, argtypes) in _ffi.SIGNATURES.items():
        fn = getattr(_ffi.lib, name)
        assert fn.argtypes == argtypes, name
        assert fn.restype is restype, name


def _header_defines() -> Dict[str, int]:
    text = HEADER.read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define\s+(WXM_\w+)\s+\(?(-?\d+)\)?", text)}


def test_error_constants_match_header() -> None:
    defines = _header_defines()
    codes = {k: v for k, v in defines.items() if k == "WXM_OK" or k.startswith("WXM_E_")}
    assert codes == errcodes.LIBRARY_CODES


def test_platform_constants_match_header() -> None:
    defines = _header_defines()
    plats = {k[len("WXM_PLATFORM_") :]: v for k, v in defines.items() if k.startswith("WXM_PLATFORM_")}
    assert plats == {p.name: int(p) for p in wxmedia.Platform}


def test_token_api_constants_match_header() -> None:
    defines = _header_defines()
    apis = {k[len("WXM_TOKEN_API_") :]: v for k, v in defines.items() if k.startswith("WXM_TOKEN_API_")}
    assert apis == {t.name: int(t) for t in wxmedia.TokenApi}


def test_job_constants_match_header() -> None:
    defines = _header_defines()
    jobs = {k[len("WXM_JOB_") :]: v for k, v in defines.items() if k.startswith("WXM_JOB_")}
    assert jobs == {j.name: int(j) for j in wxmedia.JobStatus}


def test_event_constants_match_header() -> None:
    import logging

    from wxmedia.events import EventKind, ExpectContinue, TokenSource

    defines = _header_defines()

    def prefixed(prefix: str) -> Dict[str, int]:
        return {k[len(prefix) :]: v for k, v in defines.items() if k.startswith(prefix)}

    assert prefixed("WXM_EVENT_") == {k.name: int(k) for k in EventKind}
    assert prefixed("WXM_TOKEN_SOURCE_") == {s.name: int(s) for s in TokenSource}
    assert prefixed("WXM_CONTINUE_") == {c.name: int(c) for c in ExpectContinue}
    assert prefixed("WXM_LEVEL_") == {n: getattr(logging, n) for n in ("DEBUG", "INFO", "WARNING", "ERROR")}


def header_structs() -> Dict[str, List[Tuple[str, str]]]:
    """``name -> [(field, C type)]`` for every ``typedef struct { ... } wxm_x;`` of the header."""
    text = re.sub(r"/\*.*?\*/", " ", HEADER.read_text(), flags=re.S)
    out: Dict[str, List[Tuple[str, str]]] = {}
    for m in re.finditer(r"typedef struct\s*\{([^}]*)\}\s*(wxm_\w+)\s*;", text):
        fields = []
        for decl in m.group(1).split(";"):
            decl = decl.strip()
            if decl:
                ctype, name = decl.rsplit(None, 1)
                while name.startswith("*"):
                    ctype, name = ctype + " *", name[1:]
                fields.append((name, ctype))
        out[m.group(2)] = fields
    return out


def test_structs_match_header() -> None:
    structs = header_structs()
    assert set(structs) == set(_ffi.STRUCTS), "a struct of the header is not declared in _ffi.STRUCTS"
    for name, fields in structs.items():
        declared = _ffi.STRUCTS[name]._fields_
        assert [f for f, _ in declared] == [f for f, _ in fields], name
        for (field, ctype), (_, t) in zip(fields, declared):
            want = _ctype(ctype)
            assert t is want, f"{name}.{field}: header {ctype}, declared {t}"


def test_version_macros_match_the_package() -> None:
    defines = _header_defines()
    major, minor = _ffi.parse_version(wxmedia.__version__)
    assert (defines["WXM_VERSION_MAJOR"], defines["WXM_VERSION_MINOR"]) == (major, minor)


def test_every_code_has_text_and_a_class() -> None:
    for name, code in errcodes.LIBRARY_CODES.items():
        text = wxmedia.strerror(code)
        assert text and text != f"error {code}", name
    assert wxmedia.errors.error_class(errcodes.E_NETWORK) is wxmedia.NetworkError
    assert issubclass(wxmedia.errors.error_class(errcodes.E_TIMEOUT), wxmedia.NetworkError)
    assert issubclass(wxmedia.errors.error_class(errcodes.E_PROTOCOL), wxmedia.NetworkError)
    assert issubclass(wxmedia.errors.error_class(errcodes.E_TLS), wxmedia.NetworkError)
    assert issubclass(wxmedia.errors.error_class(errcodes.E_HTTP_STATUS), wxmedia.NetworkError)
    for code in (40001, 40014, 42001, 41001):
        assert wxmedia.errors.error_class(code) is wxmedia.TokenError
    for code in (830002, 40006, 40009, 40010, 40011, 40012, 45001):
        assert wxmedia.errors.error_class(code) is wxmedia.TooLarge
    for code in (40004, 40005):
        assert wxmedia.errors.error_class(code) is wxmedia.InvalidType
    assert wxmedia.errors.error_class(40007) is wxmedia.InvalidMediaId
    assert wxmedia.errors.error_class(errcodes.E_CANCELLED) is wxmedia.Cancelled
    assert wxmedia.errors.error_class(errcodes.E_ABORTED) is wxmedia.Aborted
    assert wxmedia.errors.error_class(12345) is wxmedia.WxMediaError
    e = wxmedia.errors.make_error(40007, "invalid media_id")
    assert (e.errcode, e.errmsg, str(e)) == (40007, "invalid media_id", "[40007] invalid media_id")
    assert isinstance(wxmedia.errors.make_error(errcodes.E_INVALID_ARG, "x"), ValueError)


def test_versions_agree() -> None:
    cargo = (ROOT / "Cargo.toml").read_text()
    m = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', cargo, flags=re.M | re.S)
    assert m, "no [package] version in Cargo.toml"
    assert wxmedia.__version__ == m.group(1), "bindings/python/wxmedia/_version.py must follow Cargo.toml"
    assert _ffi.parse_version(wxmedia.library_version()) == _ffi.parse_version(wxmedia.__version__)


def test_check_version_rejects_another_minor() -> None:
    _ffi.check_version("0.1.7", "0.1.0")
    with pytest.raises(wxmedia.LibraryError, match=r"9\.9\.0.*0\.1\.0.*major\.minor"):
        _ffi.check_version("9.9.0", "0.1.0")
    with pytest.raises(wxmedia.LibraryError, match="unreadable"):
        _ffi.check_version("garbage", "0.1.0")


def _import_in_subprocess(env_library: "str | None") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WXMEDIA_LIBRARY"}
    if env_library is not None:
        env["WXMEDIA_LIBRARY"] = env_library
    env["PYTHONPATH"] = PKG_PARENT
    code = "import wxmedia, sys; print(wxmedia.LIBRARY_PATH); print(wxmedia.library_version())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd="/"
    )


def test_bundled_library_is_loaded_without_override() -> None:
    r = _import_in_subprocess(None)
    assert r.returncode == 0, r.stderr
    loaded = Path(r.stdout.splitlines()[0])
    assert loaded == Path(PKG_PARENT) / "wxmedia" / "_lib" / loaded.name
    assert loaded.is_file()


def test_override_with_missing_library_is_a_clear_error(tmp_path: Path) -> None:
    r = _import_in_subprocess(str(tmp_path / "nope" / "libwxmedia.so"))
    assert r.returncode != 0
    assert "LibraryError" in r.stderr and "WXMEDIA_LIBRARY" in r.stderr and "not found" in r.stderr


def test_override_with_not_a_library_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "libwxmedia.so"
    bogus.write_text("not an ELF file\n")
    r = _import_in_subprocess(str(bogus))
    assert r.returncode != 0
    assert "LibraryError" in r.stderr and "cannot load" in r.stderr


def test_override_with_wrong_version_is_a_clear_error(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build a stand-in library")
    src = tmp_path / "stub.c"
    src.write_text('const char *wxm_version(void) { return "7.3.0"; }\n')
    lib = tmp_path / "libwxmedia.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    r = _import_in_subprocess(str(lib))
    assert r.returncode != 0
    assert "LibraryError" in r.stderr and "7.3.0" in r.stderr and wxmedia.__version__ in r.stderr


def test_override_is_honoured() -> None:
    # Point the override at the very library in use, by another path (a symlink).
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        link = Path(d) / "libwxmedia-link.so"
        link.symlink_to(_ffi.LIBRARY_PATH.resolve())
        r = _import_in_subprocess(str(link))
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == str(link)


def test_last_errmsg_reports_handle_less_failures() -> None:
    assert not _ffi.lib.wxm_config_new(99)
    assert "platform" in _ffi.last_errmsg().lower()
