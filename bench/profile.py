#!/usr/bin/env python3
"""Where wxmedia spends its time: perf profiles of the C driver on loopback.

    python3 bench/profile.py [--out bench/results/DATE-profile.md]

Starts the emulator and nginx (as bench/run.py does), then for each scenario
runs bench/.build/bench_wx_c under ``perf record -e cpu-clock --call-graph
dwarf`` (this VM has no hardware counters: ``perf stat -e instructions`` is
"not supported", so the software clock is sampled) and writes, per scenario,
the top symbols by self time, the share under a few functions of interest
(inclusive), the TCP connects counted by strace, and /usr/bin/time figures.
Falls back to ``valgrind --tool=callgrind`` (instruction counts, much slower)
when perf cannot record.  Standard library only; needs perf (Debian
linux-perf) or valgrind, and strace.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (bench/run.py: servers and helpers)

C = os.path.join(HERE, ".build", "bench_wx_c")
INTEREST = [
    "ureq_proto::util::log_data",
    "ureq_proto::body::BodyReader::read_limit",
    "wxmedia::download::stream_body",
    "wxmedia::download::fetch_parallel",
    "alloc::vec::Vec<T,A>::extend_from_slice",
    "asm_exc_page_fault",
    "clear_page_erms",
    "__memmove_avx512_unaligned_erms",
    "__libc_recv",
    "__libc_write",
    "fsync",
    "__connect",
]


def sh(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run.ENV, **kw)


def perf_ok() -> bool:
    if not shutil.which("perf"):
        return False
    p = sh(["perf", "record", "-q", "-e", "cpu-clock", "-o", "/tmp/wxbench-perf-probe.data", "--", "sleep", "0.01"])
    return p.returncode == 0


def profile(name: str, cmd: list, work: str, use_perf: bool) -> list:
    shown = ["BASE_URL" if c.startswith("http") else c for c in cmd]
    out = [f"### {name}", "", "`" + " ".join(shown) + "`", ""]
    t = sh(["/usr/bin/time", "-f", "TIME wall %e s, user %U s, sys %S s, peak RSS %M KB"] + cmd)
    out.append("- " + "; ".join(re.findall(r"^(?:BENCH|TIME) .*$", t.stdout, re.M)))
    if shutil.which("strace"):
        st = os.path.join(work, "strace.txt")
        sh(["strace", "-f", "-e", "trace=connect,fsync,fdatasync", "-o", st] + cmd)
        with open(st) as f:
            text = f.read()
        connects = len(re.findall(r"connect\(", text))
        syncs = len(re.findall(r"f(?:data)?sync\(", text))
        out.append(f"- TCP connects: {connects}, fsync calls: {syncs} (strace)")
    if use_perf:
        data = os.path.join(work, f"{name.split()[0]}.perf")
        sh(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "--call-graph", "dwarf,16384", "-o", data, "--"]
           + cmd)  # fmt: skip
        self_rep = sh(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol", "-g", "none"])
        incl = sh(["perf", "report", "-i", data, "--stdio", "--children", "--sort", "symbol", "-g", "none"])
        out += ["", "Top self time (perf, cpu-clock):", "", "```"]
        out += [re.sub(r"\s+-\s+-\s*$", "", l).rstrip() for l in self_rep.stdout.splitlines()
                if re.match(r"\s+\d+\.\d+%", l)][:12]  # fmt: skip
        out += ["```", "", "Inclusive (children) share of functions of interest:", "", "```"]
        for l in incl.stdout.splitlines():
            m = re.match(r"\s+(\d+\.\d+)%\s+(\d+\.\d+)%\s+\[.\]\s+(.*?)\s+-\s+-", l)
            if m and any(m.group(3).startswith(i) for i in INTEREST):
                out.append(f"{m.group(1):>7}% incl  {m.group(2):>6}% self  {m.group(3)}")
        out += ["```"]
    else:
        cg = os.path.join(work, f"{name.split()[0]}.callgrind")
        sh(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}"] + cmd)
        ann = sh(["callgrind_annotate", "--inclusive=no", cg])
        out += ["", "Top instruction counts (callgrind):", "", "```"]
        out += [l for l in ann.stdout.splitlines() if re.match(r"\s*[\d,]+ \(", l)][:15] + ["```"]
    out.append("")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "results",
                                                  datetime.datetime.now().strftime("%Y-%m-%d-%H%M") + "-profile.md"))
    ap.add_argument("--size", type=run.parse_sizes, default=run.parse_sizes("256M"))
    a = ap.parse_args()
    size = a.size[0]
    if not os.access(C, os.X_OK):
        sys.exit(f"{C} is missing: make bench-build")
    work = "/tmp/wxbench-profile"
    files = os.path.join(work, "files")
    os.makedirs(files, exist_ok=True)
    b = run.Bench.__new__(run.Bench)
    b.files = files
    emu = run.Emulator(os.path.join(run.ROOT, "target", "release", "wxmedia-emulator"), work, 300 * run.MiB)
    ng = run.Nginx(files, os.path.join(work, "nginx"), 50_000_000)
    use_perf = perf_ok()
    name = run.media_name(size)
    try:
        b.make_file(name, size)
        b.register(emu, name, size, 1)
        b.make_file("m100K", 100 * 1024)
        b.register(emu, "m100K", 100 * 1024, 7)
        b.make_file("up20M.bin", 20 * run.MiB)
        outp = "/dev/shm/wxbench-profile.out" if os.path.isdir("/dev/shm") else os.path.join(work, "out.bin")
        base = [C, "-k", run.TOKEN]
        scen = [
            (f"seq-sink nginx {run.size_label(size)}", base + ["-m", "sink", "-b", ng.base, "-i", name]),
            (f"seq-sink emulator {run.size_label(size)}", base + ["-m", "sink", "-b", emu.base, "-i", name]),
            (f"p4-sink nginx {run.size_label(size)}", base + ["-m", "sink", "-p", "4", "-b", ng.base, "-i", name]),
            (f"p4-path nginx {run.size_label(size)} (tmpfs)",
             base + ["-m", "path", "-p", "4", "-b", ng.base, "-i", name, "-o", outp]),
            (f"seq-path-disk nginx {run.size_label(size)} (/tmp, ext4)",
             base + ["-m", "path", "-b", ng.base, "-i", name, "-o", os.path.join(work, "out.bin")]),
            ("small nginx 200 x 100 KiB", base + ["-m", "small", "-n", "200", "-b", ng.base, "-i", "m100K"]),
            ("upload emulator 20 MiB", base + ["-m", "upload", "-b", emu.base, "-f", os.path.join(files, "up20M.bin")]),
        ]
        lines = [
            f"# wxmedia profile, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            "",
            f"- {os.cpu_count()} CPUs, kernel {os.uname().release}, load average {os.getloadavg()[0]:.2f} at start; "
            + ("perf record -e cpu-clock (no hardware counters on this VM)" if use_perf else "valgrind callgrind"),
            "- the client process only (the server runs beside it on the same 2 cores)",
            "",
        ]
        for n, cmd in scen:
            run.log(f"profiling {n}")
            lines += profile(n, cmd, work, use_perf)
            for p in (outp, os.path.join(work, "out.bin")):
                run.rm(p, p + ".wxmpart", p + ".wxmpart.json")
    finally:
        ng.stop()
        emu.stop()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    run.log(f"written {a.out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
