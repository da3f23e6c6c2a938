//! Misuse from a host, each case in its own process: NULL for every
//! pointer, invalid UTF-8, zero and huge sizes, chunk sizes that are not a
//! multiple of 16 or over 20 MiB, a start past the end, running a transfer
//! twice (one after the other and at once), cancel before run, callbacks
//! that refuse. A crash (a signal) fails that case, not the suite.
//!
//! `every_misuse_case_in_its_own_process` re-executes this test binary
//! once per case with WXM_MISUSE_CASE set; `misuse_case_child` runs it.

use crate::support::{
    self, add_media, cs, last_errmsg, start, text, ClientOpts, Platform, HOSTILE_TOKEN, TOKEN,
};
use serde_json::json;
use std::ffi::{c_char, c_void};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};
use wxmedia::config::WXM_PLATFORM_WECOM;
use wxmedia::error::*;
use wxmedia::ffi::download::*;
use wxmedia::ffi::upload::*;
use wxmedia::ffi::*;

type Case = fn() -> Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}: {}", line!(), format!($($fmt)+)));
        }
    };
}

const CASES: &[(&str, Case)] = &[
    ("null_config_and_client", null_config_and_client),
    ("null_download", null_download),
    ("null_upload", null_upload),
    ("invalid_utf8_everywhere", invalid_utf8_everywhere),
    ("chunk_sizes", chunk_sizes),
    ("zero_and_huge_values", zero_and_huge_values),
    ("start_past_the_end", start_past_the_end),
    ("reader_lengths", reader_lengths),
    ("reader_lies", reader_lies),
    ("run_twice_in_a_row", run_twice_in_a_row),
    ("run_twice_at_once", run_twice_at_once),
    ("cancel_before_run", cancel_before_run),
    ("cancel_while_stalled", cancel_while_stalled),
    ("callbacks_refuse", callbacks_refuse),
    ("odd_ids_paths_and_urls", odd_ids_paths_and_urls),
    ("strerror_for_any_code", strerror_for_any_code),
];

#[test]
fn misuse_case_child() {
    let Ok(name) = std::env::var("WXM_MISUSE_CASE") else {
        return;
    };
    let case = CASES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    match (case.1)() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}

#[test]
fn every_misuse_case_in_its_own_process() {
    if std::env::var_os("WXM_MISUSE_CASE").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let child = support::test_name(module_path!(), "misuse_case_child");
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((name, _)) = CASES.get(i) else {
                    return;
                };
                let t0 = Instant::now();
                let out = std::process::Command::new(&exe)
                    .args([child.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                    .env("WXM_MISUSE_CASE", name)
                    .output()
                    .expect("spawn");
                let err = String::from_utf8_lossy(&out.stderr);
                let failure = match out.status.code() {
                    Some(0) => None,
                    Some(c) => Some(format!("{name}: exit {c}: {}", tail(&err))),
                    None => {
                        use std::os::unix::process::ExitStatusExt;
                        Some(format!(
                            "{name}: CRASHED with signal {:?}: {}",
                            out.status.signal(),
                            tail(&err)
                        ))
                    }
                };
                eprintln!(
                    "misuse case {name}: {} in {} ms",
                    if failure.is_some() { "FAILED" } else { "ok" },
                    t0.elapsed().as_millis()
                );
                if let Some(f) = failure {
                    failures.lock().unwrap_or_else(|p| p.into_inner()).push(f);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

// ---- helpers ---------------------------------------------------------------

const BAD_UTF8: &[&[u8]] = &[
    b"\xff\0",
    b"\xc0\xaf\0",         // overlong '/'
    b"\xed\xa0\x80\0",     // a UTF-16 surrogate
    b"abc\x80\0",          // a lone continuation byte
    b"\xe6\x88\0",         // truncated sequence
    b"\xf4\x90\x80\x80\0", // past U+10FFFF
];

fn bad(b: &[u8]) -> *const c_char {
    b.as_ptr() as *const c_char
}

fn msg_ok(context: &str) -> Result<(), String> {
    let m = last_errmsg();
    ensure!(!m.is_empty(), "{context}: no wxm_last_errmsg");
    ensure!(
        !m.contains(TOKEN) && !m.contains(HOSTILE_TOKEN) && !m.contains(support::SECRET),
        "{context}: message leaks a secret: {m}"
    );
    Ok(())
}

unsafe extern "C" fn sink_ok(_: *mut c_void, _: u64, _: *const u8, _: usize) -> i32 {
    0
}

unsafe extern "C" fn sink_refuse(_: *mut c_void, _: u64, _: *const u8, _: usize) -> i32 {
    -77
}

unsafe extern "C" fn progress_refuse(_: *mut c_void, _: u64, _: u64) -> i32 {
    1
}

unsafe extern "C" fn reader_refuse(_: *mut c_void, _: *mut u8, _: usize) -> i64 {
    -5
}

unsafe extern "C" fn reader_overclaims(_: *mut c_void, buf: *mut u8, cap: usize) -> i64 {
    // SAFETY: the library hands us `cap` writable bytes.
    unsafe { std::ptr::write_bytes(buf, b'A', cap) };
    cap as i64 + 1000
}

unsafe extern "C" fn reader_zeros(_: *mut c_void, buf: *mut u8, cap: usize) -> i64 {
    // SAFETY: the library hands us `cap` writable bytes.
    unsafe { std::ptr::write_bytes(buf, 0, cap) };
    cap as i64
}

/// Ends after `*(ud as *mut u64)` bytes.
unsafe extern "C" fn reader_short(ud: *mut c_void, buf: *mut u8, cap: usize) -> i64 {
    // SAFETY: ud is a live u64 counter; buf has cap bytes.
    let left = unsafe { &mut *(ud as *mut u64) };
    let n = (*left).min(cap as u64);
    unsafe { std::ptr::write_bytes(buf, b'x', n as usize) };
    *left -= n;
    n as i64
}

fn emulator_client(o: impl FnOnce(&mut ClientOpts)) -> (support::Emulator, support::TestClient) {
    let emu = start(Platform::WeCom);
    let mut opts = ClientOpts::at(&emu.base_url());
    opts.token = Some(TOKEN.to_string());
    o(&mut opts);
    let c = support::new_client(&opts);
    (emu, c)
}

// ---- the cases ---------------------------------------------------------------

fn null_config_and_client() -> Result<(), String> {
    // SAFETY: NULL or live pointers only; that is the point.
    unsafe {
        ensure!(
            wxm_config_new(0).is_null() && wxm_config_new(-1).is_null(),
            "bad platform"
        );
        msg_ok("config_new")?;
        ensure!(
            wxm_config_set_base_url(null_mut(), null()) == WXM_E_INVALID_ARG,
            "base_url"
        );
        ensure!(
            wxm_config_set_access_token(null_mut(), null()) == WXM_E_INVALID_ARG,
            "token"
        );
        ensure!(
            wxm_config_set_credentials(null_mut(), null(), null()) == WXM_E_INVALID_ARG,
            "cred"
        );
        ensure!(
            wxm_config_set_token_api(null_mut(), 0) == WXM_E_INVALID_ARG,
            "token_api"
        );
        ensure!(
            wxm_config_set_chunk_size(null_mut(), 16) == WXM_E_INVALID_ARG,
            "chunk"
        );
        ensure!(
            wxm_config_set_parallelism(null_mut(), 1) == WXM_E_INVALID_ARG,
            "par"
        );
        ensure!(
            wxm_config_set_timeouts(null_mut(), 1, 1) == WXM_E_INVALID_ARG,
            "timeouts"
        );
        ensure!(
            wxm_config_set_retries(null_mut(), 1, 1) == WXM_E_INVALID_ARG,
            "retries"
        );
        ensure!(
            wxm_config_set_limit(null_mut(), null(), 1) == WXM_E_INVALID_ARG,
            "limit"
        );
        ensure!(
            wxm_config_set_ca_file(null_mut(), null()) == WXM_E_INVALID_ARG,
            "ca"
        );
        msg_ok("setters")?;
        let cfg = wxm_config_new(WXM_PLATFORM_WECOM);
        ensure!(!cfg.is_null(), "config");
        for rc in [
            wxm_config_set_base_url(cfg, null()),
            wxm_config_set_access_token(cfg, null()),
            wxm_config_set_credentials(cfg, null(), cs("s").as_ptr()),
            wxm_config_set_credentials(cfg, cs("i").as_ptr(), null()),
            wxm_config_set_limit(cfg, null(), 5),
            wxm_config_set_ca_file(cfg, null()),
        ] {
            ensure!(rc == WXM_E_INVALID_ARG, "NULL string accepted: {rc}");
        }
        ensure!(
            wxm_client_new(null(), null_mut()) == WXM_E_INVALID_ARG,
            "client_new"
        );
        let mut out = std::ptr::dangling_mut::<wxm_client>();
        ensure!(
            wxm_client_new(null(), &mut out) == WXM_E_INVALID_ARG,
            "client_new null cfg"
        );
        ensure!(
            out == std::ptr::dangling_mut::<wxm_client>(),
            "out touched on failure"
        );
        ensure!(
            wxm_client_new(cfg, null_mut()) == WXM_E_INVALID_ARG,
            "client_new null out"
        );
        let mut c = null_mut();
        ensure!(wxm_client_new(cfg, &mut c) == 0 && !c.is_null(), "client");
        ensure!(
            wxm_client_set_access_token(null(), null()) == WXM_E_INVALID_ARG,
            "set token"
        );
        ensure!(
            wxm_client_set_access_token(c, null()) == WXM_E_INVALID_ARG,
            "set token"
        );
        wxm_client_free(c);
        wxm_client_free(null_mut());
        wxm_config_free(cfg);
        wxm_config_free(null_mut());
        ensure!(
            !wxm_version().is_null() && !wxm_last_errmsg().is_null(),
            "statics"
        );
    }
    Ok(())
}

fn null_download() -> Result<(), String> {
    let (_emu, c) = emulator_client(|_| {});
    // SAFETY: NULL or live pointers only.
    unsafe {
        ensure!(wxm_download_new(null(), null()).is_null(), "new");
        ensure!(wxm_download_new(c.0, null()).is_null(), "new media NULL");
        ensure!(
            wxm_download_new(null(), cs("m").as_ptr()).is_null(),
            "new client NULL"
        );
        msg_ok("download_new")?;
        ensure!(
            wxm_download_set_start(null_mut(), 0) == WXM_E_INVALID_ARG,
            "start"
        );
        ensure!(
            wxm_download_set_hd_voice(null_mut(), 1) == WXM_E_INVALID_ARG,
            "hd"
        );
        ensure!(
            wxm_download_set_progress(null_mut(), None, null_mut()) == WXM_E_INVALID_ARG,
            "progress"
        );
        ensure!(
            wxm_download_to_sink(null_mut(), Some(sink_ok), null_mut()) == WXM_E_INVALID_ARG,
            "to_sink"
        );
        ensure!(
            wxm_download_to_path(null_mut(), null()) == WXM_E_INVALID_ARG,
            "to_path"
        );
        let d = wxm_download_new(c.0, cs("m").as_ptr());
        ensure!(!d.is_null(), "download");
        ensure!(
            wxm_download_to_sink(d, None, null_mut()) == WXM_E_INVALID_ARG,
            "NULL sink"
        );
        ensure!(
            wxm_download_to_path(d, null()) == WXM_E_INVALID_ARG,
            "NULL path"
        );
        // A NULL progress function clears it; NULL user_data is the host's business.
        ensure!(
            wxm_download_set_progress(d, None, 0x10 as *mut c_void) == 0,
            "clear progress"
        );
        ensure!(wxm_download_size(null()) == 0, "size");
        for p in [
            wxm_download_content_type(null()),
            wxm_download_filename(null()),
            wxm_download_video_url(null()),
            wxm_download_errmsg(null()),
        ] {
            ensure!(p.is_null(), "getter on NULL");
        }
        ensure!(
            text(wxm_download_errmsg(d)).is_some(),
            "errmsg of a fresh handle"
        );
        wxm_download_cancel(null());
        wxm_download_free(null_mut());
        wxm_download_free(d);
    }
    Ok(())
}

fn null_upload() -> Result<(), String> {
    let (_emu, c) = emulator_client(|_| {});
    // SAFETY: NULL or live pointers only.
    unsafe {
        ensure!(wxm_upload_new(null(), null()).is_null(), "new");
        ensure!(wxm_upload_new(c.0, null()).is_null(), "new type NULL");
        ensure!(
            wxm_upload_new(null(), cs("file").as_ptr()).is_null(),
            "new client NULL"
        );
        ensure!(
            wxm_upload_set_path(null_mut(), null()) == WXM_E_INVALID_ARG,
            "path"
        );
        ensure!(
            wxm_upload_set_reader(null_mut(), None, null_mut(), 0) == WXM_E_INVALID_ARG,
            "reader"
        );
        ensure!(
            wxm_upload_set_filename(null_mut(), null()) == WXM_E_INVALID_ARG,
            "filename"
        );
        ensure!(
            wxm_upload_set_progress(null_mut(), None, null_mut()) == WXM_E_INVALID_ARG,
            "progress"
        );
        ensure!(wxm_upload_run(null_mut()) == WXM_E_INVALID_ARG, "run");
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        ensure!(!u.is_null(), "upload");
        ensure!(
            wxm_upload_run(u) == WXM_E_INVALID_ARG,
            "run without a source"
        );
        msg_ok("run without a source")?;
        ensure!(
            wxm_upload_set_path(u, null()) == WXM_E_INVALID_ARG,
            "NULL path"
        );
        ensure!(
            wxm_upload_set_reader(u, None, null_mut(), 10) == WXM_E_INVALID_ARG,
            "NULL reader"
        );
        ensure!(
            wxm_upload_set_filename(u, null()) == WXM_E_INVALID_ARG,
            "NULL filename"
        );
        ensure!(
            wxm_upload_media_id(null()).is_null() && wxm_upload_type(null()).is_null(),
            "getters"
        );
        ensure!(
            wxm_upload_errmsg(null()).is_null() && wxm_upload_created_at(null()) == 0,
            "getters"
        );
        ensure!(wxm_upload_media_id(u).is_null(), "media_id before a run");
        wxm_upload_cancel(null());
        wxm_upload_free(null_mut());
        wxm_upload_free(u);
    }
    Ok(())
}

fn invalid_utf8_everywhere() -> Result<(), String> {
    let (_emu, c) = emulator_client(|_| {});
    // SAFETY: live handles; every string is NUL-terminated.
    unsafe {
        let cfg = wxm_config_new(WXM_PLATFORM_WECOM);
        let d = wxm_download_new(c.0, cs("m").as_ptr());
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        for b in BAD_UTF8 {
            let p = bad(b);
            let rcs = [
                ("base_url", wxm_config_set_base_url(cfg, p)),
                ("token", wxm_config_set_access_token(cfg, p)),
                (
                    "cred id",
                    wxm_config_set_credentials(cfg, p, cs("s").as_ptr()),
                ),
                (
                    "cred secret",
                    wxm_config_set_credentials(cfg, cs("i").as_ptr(), p),
                ),
                ("limit", wxm_config_set_limit(cfg, p, 100)),
                ("ca", wxm_config_set_ca_file(cfg, p)),
                ("client token", wxm_client_set_access_token(c.0, p)),
                ("to_path", wxm_download_to_path(d, p)),
                ("upload path", wxm_upload_set_path(u, p)),
                ("upload filename", wxm_upload_set_filename(u, p)),
            ];
            for (what, rc) in rcs {
                ensure!(rc == WXM_E_INVALID_ARG, "{what} {b:?}: {rc}");
                let m = last_errmsg();
                ensure!(!m.is_empty(), "{what}: no message");
            }
            ensure!(wxm_download_new(c.0, p).is_null(), "download_new {b:?}");
            ensure!(wxm_upload_new(c.0, p).is_null(), "upload_new {b:?}");
        }
        // The client still works with its token after all that.
        ensure!(
            wxm_client_set_access_token(c.0, cs(TOKEN).as_ptr()) == 0,
            "token"
        );
        wxm_upload_free(u);
        wxm_download_free(d);
        wxm_config_free(cfg);
    }
    Ok(())
}

fn chunk_sizes() -> Result<(), String> {
    // SAFETY: a live config.
    unsafe {
        let cfg = wxm_config_new(WXM_PLATFORM_WECOM);
        for bad in [
            0u64,
            1,
            8,
            15,
            17,
            24,
            1000,
            20 * 1024 * 1024 + 16,
            20 * 1024 * 1024 + 8,
            1 << 40,
            u64::MAX,
        ] {
            ensure!(
                wxm_config_set_chunk_size(cfg, bad) == WXM_E_INVALID_ARG,
                "chunk {bad} accepted"
            );
            msg_ok("chunk")?;
        }
        for good in [16u64, 32, 4096, 20 * 1024 * 1024 - 16, 20 * 1024 * 1024] {
            ensure!(
                wxm_config_set_chunk_size(cfg, good) == 0,
                "chunk {good} refused"
            );
        }
        wxm_config_free(cfg);
    }
    // The smallest chunk really works, on an encrypted media.
    let (emu, c) = emulator_client(|o| o.chunk = 16);
    let (id, want) = add_media(&emu, json!({"size": 1000, "seed": 9, "encrypted": true}));
    let o = support::download_sink(&c, &id, 0);
    ensure!(
        o.rc == 0 && o.data == want,
        "16-byte chunks: {} {}",
        o.rc,
        o.errmsg
    );
    Ok(())
}

fn zero_and_huge_values() -> Result<(), String> {
    // SAFETY: a live config.
    unsafe {
        let cfg = wxm_config_new(WXM_PLATFORM_WECOM);
        for p in [0u32, 65, 1000, u32::MAX] {
            ensure!(
                wxm_config_set_parallelism(cfg, p) == WXM_E_INVALID_ARG,
                "parallelism {p}"
            );
        }
        ensure!(wxm_config_set_parallelism(cfg, 64) == 0, "parallelism 64");
        for (a, b) in [(0u32, 1u32), (1, 0), (0, 0)] {
            ensure!(
                wxm_config_set_timeouts(cfg, a, b) == WXM_E_INVALID_ARG,
                "timeouts {a} {b}"
            );
        }
        let huge = wxm_config_set_timeouts(cfg, u32::MAX, u32::MAX);
        ensure!(
            huge == 0 || huge == WXM_E_INVALID_ARG,
            "timeouts max: {huge}"
        );
        for (a, b) in [(0u32, 0u32), (101, 1), (u32::MAX, 1)] {
            ensure!(
                wxm_config_set_retries(cfg, a, b) == WXM_E_INVALID_ARG,
                "retries {a} {b}"
            );
        }
        let rc = wxm_config_set_retries(cfg, 100, u32::MAX);
        ensure!(rc == 0 || rc == WXM_E_INVALID_ARG, "backoff max: {rc}");
        for (t, v) in [("file", 0u64), ("file", u64::MAX), ("image", 1)] {
            let rc = wxm_config_set_limit(cfg, cs(t).as_ptr(), v);
            ensure!(rc == 0 || rc == WXM_E_INVALID_ARG, "limit {t} {v}: {rc}");
        }
        ensure!(
            wxm_config_set_limit(cfg, cs("nonsense").as_ptr(), 5) == WXM_E_INVALID_ARG,
            "limit of an unknown type"
        );
        for api in [-1, 3, i32::MAX, i32::MIN] {
            ensure!(
                wxm_config_set_token_api(cfg, api) == WXM_E_INVALID_ARG,
                "token api {api}"
            );
        }
        wxm_config_free(cfg);
    }
    // Parallelism 64 with a tiny chunk on a small file: fine.
    let (emu, c) = emulator_client(|o| {
        o.parallelism = 64;
        o.chunk = 16;
    });
    let (id, want) = add_media(&emu, json!({"size": 5000, "seed": 3}));
    let o = support::download_sink(&c, &id, 0);
    ensure!(
        o.rc == 0 && o.data == want && o.in_order,
        "64 × 16 B: {} {}",
        o.rc,
        o.errmsg
    );
    Ok(())
}

fn start_past_the_end() -> Result<(), String> {
    for parallelism in [1, 4] {
        let (emu, c) = emulator_client(|o| o.parallelism = parallelism);
        let (id, want) = add_media(&emu, json!({"size": 1000, "seed": 4}));
        for start in [999u64, 1000, 1001, 4096, 1 << 40, u64::MAX - 15, u64::MAX] {
            let o = support::download_sink(&c, &id, start);
            if start < 1000 {
                ensure!(
                    o.rc == 0 && o.data == want[start as usize..],
                    "start {start}: {}",
                    o.rc
                );
            } else if start == 1000 {
                ensure!(
                    o.rc == 0 && o.data.is_empty(),
                    "start at the end: {} {}",
                    o.rc,
                    o.errmsg
                );
            } else {
                ensure!(
                    [WXM_E_INVALID_ARG, WXM_E_PROTOCOL].contains(&o.rc),
                    "start {start} (parallelism {parallelism}): rc {} {}",
                    o.rc,
                    o.errmsg
                );
                ensure!(o.data.is_empty(), "bytes delivered past the end");
            }
        }
    }
    Ok(())
}

fn reader_lengths() -> Result<(), String> {
    let (_emu, c) = emulator_client(|_| {});
    // SAFETY: live handles; the reader callbacks only touch their buffer.
    unsafe {
        for (kind, len, want) in [
            ("file", 0u64, 44001),
            ("file", 5, 40006),
            ("file", u64::MAX, 40006),
            ("image", u64::MAX, 40005),
            ("file", 21 * 1024 * 1024, 40006),
        ] {
            let u = wxm_upload_new(c.0, cs(kind).as_ptr());
            ensure!(
                wxm_upload_set_reader(u, Some(reader_zeros), null_mut(), len) == 0,
                "set_reader"
            );
            let t0 = Instant::now();
            let rc = wxm_upload_run(u);
            ensure!(rc == want, "{kind} of {len}: {rc}, wanted {want}");
            ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "{kind} {len}: read it all?"
            );
            msg_ok("reader length")?;
            wxm_upload_free(u);
        }
    }
    Ok(())
}

fn reader_lies() -> Result<(), String> {
    let (_emu, c) = emulator_client(|_| {});
    // SAFETY: live handles; the callbacks only touch their buffer and counter.
    unsafe {
        // Claims more bytes than it was given room for.
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        wxm_upload_set_reader(u, Some(reader_overclaims), null_mut(), 100_000);
        let rc = wxm_upload_run(u);
        ensure!(
            rc == WXM_E_INVALID_ARG || rc == WXM_E_IO,
            "over-claiming reader: {rc}"
        );
        wxm_upload_free(u);
        // Ends early.
        let mut left: u64 = 50_000;
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        wxm_upload_set_reader(
            u,
            Some(reader_short),
            &mut left as *mut u64 as *mut c_void,
            100_000,
        );
        let rc = wxm_upload_run(u);
        ensure!(rc == WXM_E_IO, "short reader: {rc}");
        ensure!(
            text(wxm_upload_media_id(u)).is_none(),
            "media_id after a short reader"
        );
        wxm_upload_free(u);
        // Refuses.
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        wxm_upload_set_reader(u, Some(reader_refuse), null_mut(), 100);
        let rc = wxm_upload_run(u);
        ensure!(rc == WXM_E_ABORTED, "refusing reader: {rc}");
        wxm_upload_free(u);
    }
    Ok(())
}

fn run_twice_in_a_row() -> Result<(), String> {
    let (emu, c) = emulator_client(|_| {});
    let (id, want) = add_media(&emu, json!({"size": 70_000, "seed": 5}));
    let dir = std::env::temp_dir().join(format!("wxmedia-misuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let target = dir.join("twice.bin");
    let path = cs(target.to_str().unwrap_or_default());
    // SAFETY: live handles.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        for round in 0..2 {
            let rc = wxm_download_to_sink(d, Some(sink_ok), null_mut());
            ensure!(rc == 0, "sink round {round}: {rc}");
            let rc = wxm_download_to_path(d, path.as_ptr());
            ensure!(rc == 0, "to_path round {round}: {rc}");
            ensure!(
                std::fs::read(&target).unwrap_or_default() == want,
                "round {round}"
            );
            ensure!(wxm_download_size(d) == want.len() as u64, "size");
        }
        wxm_download_free(d);
        let src = dir.join("up.bin");
        std::fs::write(&src, &want).map_err(|e| e.to_string())?;
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        wxm_upload_set_path(u, cs(src.to_str().unwrap_or_default()).as_ptr());
        for round in 0..2 {
            let rc = wxm_upload_run(u);
            ensure!(rc == 0, "upload round {round}: {rc}");
            ensure!(
                text(wxm_upload_media_id(u)).is_some(),
                "media_id round {round}"
            );
        }
        wxm_upload_free(u);
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

fn run_twice_at_once() -> Result<(), String> {
    let (emu, c) = emulator_client(|o| o.io_ms = 5000);
    let (id, _) = add_media(&emu, json!({"size": 200_000, "seed": 6}));
    support::fault(
        &emu,
        json!({"kind": "throttle", "media_id": id, "bytes_per_sec": 400_000, "count": 100}),
    );
    // SAFETY: one live handle run from two threads at once: the library
    // must refuse the second run (WXM_E_STATE), not race.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr()) as usize;
        let rcs: Vec<i32> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(move || {
                        wxm_download_to_sink(d as *mut wxm_download, Some(sink_ok), null_mut())
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or(WXM_E_PANIC))
                .collect()
        });
        ensure!(rcs.contains(&0), "no run succeeded: {rcs:?}");
        ensure!(
            rcs.iter().all(|&r| r == 0 || r == WXM_E_STATE),
            "overlapping runs: {rcs:?}"
        );
        wxm_download_free(d as *mut wxm_download);
    }
    Ok(())
}

fn cancel_before_run() -> Result<(), String> {
    let (emu, c) = emulator_client(|_| {});
    let (id, _) = add_media(&emu, json!({"size": 1000, "seed": 7}));
    // SAFETY: live handles.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        wxm_download_cancel(d);
        wxm_download_cancel(d);
        for _ in 0..2 {
            ensure!(
                wxm_download_to_sink(d, Some(sink_ok), null_mut()) == WXM_E_CANCELLED,
                "sink"
            );
            ensure!(
                wxm_download_to_path(d, cs("/tmp/wxm-never").as_ptr()) == WXM_E_CANCELLED,
                "path"
            );
        }
        ensure!(
            !std::path::Path::new("/tmp/wxm-never").exists(),
            "a cancelled download wrote"
        );
        wxm_download_free(d);
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        wxm_upload_cancel(u);
        wxm_upload_set_reader(u, Some(reader_zeros), null_mut(), 100);
        ensure!(wxm_upload_run(u) == WXM_E_CANCELLED, "upload");
        wxm_upload_free(u);
    }
    Ok(())
}

fn cancel_while_stalled() -> Result<(), String> {
    let (emu, c) = emulator_client(|o| o.io_ms = 60_000);
    let (id, _) = add_media(&emu, json!({"size": 100_000, "seed": 8}));
    support::fault(
        &emu,
        json!({"kind": "stall", "media_id": id, "after_bytes": 1000, "ms": 30_000}),
    );
    // SAFETY: live handle; cancel is documented callable from any thread.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        let dp = d as usize;
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            wxm_download_cancel(dp as *const wxm_download);
        });
        let t0 = Instant::now();
        let rc = wxm_download_to_sink(d, Some(sink_ok), null_mut());
        let _ = t.join();
        ensure!(rc == WXM_E_CANCELLED, "rc {rc}");
        ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "cancel took {:?}",
            t0.elapsed()
        );
        wxm_download_free(d);
    }
    Ok(())
}

fn callbacks_refuse() -> Result<(), String> {
    let (emu, c) = emulator_client(|o| o.parallelism = 3);
    let (id, _) = add_media(&emu, json!({"size": 300_000, "seed": 10}));
    // SAFETY: live handles; the callbacks touch nothing.
    unsafe {
        let d = wxm_download_new(c.0, cs(&id).as_ptr());
        ensure!(
            wxm_download_to_sink(d, Some(sink_refuse), null_mut()) == WXM_E_ABORTED,
            "sink"
        );
        msg_ok("sink refused")?;
        wxm_download_set_progress(d, Some(progress_refuse), null_mut());
        ensure!(
            wxm_download_to_sink(d, Some(sink_ok), null_mut()) == WXM_E_ABORTED,
            "progress"
        );
        wxm_download_free(d);
    }
    Ok(())
}

fn odd_ids_paths_and_urls() -> Result<(), String> {
    let (emu, c) = emulator_client(|_| {});
    // SAFETY: live handles.
    unsafe {
        let long = "m".repeat(1025);
        ensure!(
            wxm_download_new(c.0, cs(&long).as_ptr()).is_null(),
            "1025-byte media_id"
        );
        ensure!(
            wxm_download_new(c.0, cs("").as_ptr()).is_null(),
            "empty media_id"
        );
        for id in [
            "../../x",
            "a&access_token=evil",
            "媒体",
            "a b%00c",
            &"m".repeat(1024),
        ] {
            let o = support::download_sink(&c, id, 0);
            ensure!(o.rc == 40007, "media_id {id:?}: {} {}", o.rc, o.errmsg);
        }
        let d = wxm_download_new(c.0, cs("nope").as_ptr());
        let dir = std::env::temp_dir().join(format!("wxmedia-misuse-p-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for (p, want) in [
            ("".to_string(), WXM_E_INVALID_ARG),
            (dir.to_string_lossy().into_owned(), WXM_E_INVALID_ARG),
            (format!("{}/", dir.display()), WXM_E_INVALID_ARG),
        ] {
            let rc = wxm_download_to_path(d, cs(&p).as_ptr());
            ensure!(rc == want, "path {p:?}: {rc}");
        }
        let rc = wxm_download_to_path(d, cs(&format!("{}/no/such/x", dir.display())).as_ptr());
        ensure!(rc == WXM_E_IO || rc == 40007, "missing directory: {rc}");
        wxm_download_free(d);
        let _ = std::fs::remove_dir_all(dir);
        let u = wxm_upload_new(c.0, cs("../../etc").as_ptr());
        wxm_upload_set_reader(u, Some(reader_zeros), null_mut(), 100);
        ensure!(wxm_upload_run(u) == 40004, "unknown type");
        wxm_upload_free(u);
        let u = wxm_upload_new(c.0, cs("file").as_ptr());
        wxm_upload_set_path(u, cs("/no/such/file").as_ptr());
        ensure!(wxm_upload_run(u) == WXM_E_IO, "missing file");
        wxm_upload_set_path(u, cs("/tmp").as_ptr());
        let rc = wxm_upload_run(u);
        ensure!(
            rc == WXM_E_INVALID_ARG || rc == WXM_E_IO,
            "a directory: {rc}"
        );
        wxm_upload_free(u);
    }
    drop(emu);
    // Base URLs that go nowhere: refused by the setter, or a clear code, fast.
    for url in [
        "http://127.0.0.1:1",
        "http://",
        "http://[::1",
        "https://127.0.0.1:1/x?y#z",
        "http://127.0.0.1:1/../..",
    ] {
        // SAFETY: config calls on a live config.
        let setter = unsafe {
            let cfg = wxm_config_new(1);
            let r = wxm_config_set_base_url(cfg, cs(url).as_ptr());
            wxm_config_free(cfg);
            r
        };
        if url == "http://[::1" || url == "http://" {
            ensure!(
                setter == WXM_E_INVALID_ARG,
                "{url}: the setter must refuse it, got {setter}"
            );
        }
        if setter == WXM_E_INVALID_ARG {
            continue;
        }
        ensure!(setter == 0, "{url}: setter {setter}");
        let mut o = ClientOpts::at(url);
        o.attempts = 1;
        let rc = match support::try_client(&o) {
            Err((rc, _)) => rc,
            Ok(c) => {
                let t0 = Instant::now();
                let out = support::download_sink(&c, "m", 0);
                ensure!(t0.elapsed() < Duration::from_secs(10), "{url}: slow");
                out.rc
            }
        };
        ensure!(
            [WXM_E_NETWORK, WXM_E_INVALID_ARG, WXM_E_TLS, WXM_E_TIMEOUT].contains(&rc),
            "{url}: {rc}"
        );
    }
    Ok(())
}

fn strerror_for_any_code() -> Result<(), String> {
    let mut codes: Vec<i32> = (-1100..=1000).collect();
    codes.extend([i32::MIN, i32::MAX, 40001, 830002, 45033, -1]);
    for code in codes {
        let p = wxm_strerror(code);
        ensure!(!p.is_null(), "NULL for {code}");
        ensure!(!text(p).unwrap_or_default().is_empty(), "empty for {code}");
    }
    Ok(())
}
