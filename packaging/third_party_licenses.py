#!/usr/bin/env python3
"""Write the licences of every crate statically linked into what `make dist`
ships (libwxmedia and wxmedia-emulator) to one text file.

Read from `cargo metadata` (offline, --locked) and the crates' own licence
files in cargo's registry cache: no extra tool to install (cargo-about and
cargo-license each take minutes to compile). Only normal dependencies count:
build and dev dependencies are not linked into the artifacts.

    python3 packaging/third_party_licenses.py OUT.txt
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOTS = ("wxmedia", "wxmedia-emulator")
TARGET = "x86_64-unknown-linux-gnu"
LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "UNLICENSE", "COPYRIGHT")


def metadata() -> Dict[str, object]:
    cargo = os.environ.get("CARGO", "cargo")
    out = subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--locked", "--filter-platform", TARGET],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def linked_packages(meta: Dict[str, object]) -> Tuple[List[Dict[str, object]], Dict[str, Set[str]]]:
    packages = {p["id"]: p for p in meta["packages"]}  # type: ignore[index, union-attr]
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}  # type: ignore[index]
    workspace = set(meta["workspace_members"])  # type: ignore[arg-type]
    used_by: Dict[str, Set[str]] = {}
    for root in ROOTS:
        start = [i for i in workspace if packages[i]["name"] == root]
        if len(start) != 1:
            raise SystemExit(f"third_party_licenses: workspace member {root} not found")
        stack, seen = list(start), set(start)
        while stack:
            for dep in nodes[stack.pop()]["deps"]:
                if not any(k["kind"] is None for k in dep["dep_kinds"]):
                    continue  # build or dev dependency: not in the binary
                if dep["pkg"] not in seen:
                    seen.add(dep["pkg"])
                    stack.append(dep["pkg"])
        for pid in seen - workspace:
            used_by.setdefault(pid, set()).add(root)
    chosen = sorted((packages[i] for i in used_by), key=lambda p: (p["name"], p["version"]))
    return chosen, used_by


def license_texts(pkg: Dict[str, object]) -> List[Tuple[str, str]]:
    d = Path(str(pkg["manifest_path"])).parent
    files = sorted(f for f in d.iterdir() if f.is_file() and f.name.upper().startswith(LICENSE_PREFIXES))
    if pkg.get("license_file"):
        extra = d / str(pkg["license_file"])
        if extra.is_file() and extra not in files:
            files.append(extra)
    return [(f.name, f.read_text(encoding="utf-8", errors="replace").strip()) for f in files]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    chosen, used_by = linked_packages(metadata())
    missing = []
    texts: Dict[str, List[str]] = {}  # licence text -> crates that carry it
    lines = [
        "Third-party software in wxmedia's binaries (libwxmedia, wxmedia-emulator)",
        "=" * 72,
        "",
        "wxmedia itself is licensed MIT OR Apache-2.0 (LICENSE-MIT, LICENSE-APACHE).",
        "It statically links the Rust standard library (MIT OR Apache-2.0) and the",
        f"crates below ({len(chosen)}), each under the licence it declares. Their licence",
        "texts follow, each identical text once, with the crates that ship it.",
        "",
    ]
    for p in chosen:
        who = ", ".join(sorted(used_by[str(p["id"])]))
        lic = p.get("license") or f"see {p.get('license_file')}"
        lines.append(f"{p['name']} {p['version']}: {lic}  (in {who})")
        found = license_texts(p)
        if not found:
            missing.append(f"{p['name']} {p['version']}")
        for name, text in found:
            texts.setdefault(text, []).append(f"{p['name']} {p['version']} ({name})")
    if missing:
        # A crate without a licence file in its package: say so rather than
        # silently shipping without its text.
        lines += ["", "No licence file in the package (licence per the SPDX expression above):"]
        lines += [f"  {m}" for m in missing]
    for text, crates in sorted(texts.items(), key=lambda kv: kv[1][0]):
        lines += ["", "-" * 72, "Used by: " + "; ".join(crates), "-" * 72, "", text]
    Path(sys.argv[1]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"third_party_licenses: {len(chosen)} crates, {len(texts)} distinct texts -> {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
