//! Test support for every module of the `it` binary: an emulator on
//! loopback and its admin API, thin wrappers over the exported C functions
//! (the tests drive the library only through the C ABI, as hosts do), the
//! checks the reliability tests share (sha256, a seeded RNG, "no secret in a
//! message"), and, in `raw`, a raw server for hostile answers.
#![allow(dead_code)]

mod events;
mod raw;
pub use events::*;
pub use raw::*;
pub mod s3;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::time::{Duration, Instant};
use wxmedia::ffi::download::*;
use wxmedia::ffi::upload::*;
use wxmedia::ffi::*;
pub use wxmedia_emulator::{Emulator, Options, Platform};

/// The static token the emulator accepts in every test that starts one.
pub const TOKEN: &str = "static-test-token-5f1c";
/// The static token every reliability test uses against a raw server.
pub const HOSTILE_TOKEN: &str = "hostile-token-Q7xV3kP9";
/// Credentials the emulator accepts by default (`--corpid`, `--secret`).
pub const CORPID: &str = "wxm-corp";
pub const SECRET: &str = "wxm-secret";

/// The libtest name of test `name` declared in module `module_path`
/// (pass `module_path!()`), for tests that run one test of this binary in a
/// child process with `--exact`: `it::kill` + `host_child` gives
/// `kill::host_child`.
pub fn test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_, m)) => format!("{m}::{name}"),
        None => name.to_string(),
    }
}

/// For a test that needs a process to itself (it measures a per-process
/// figure such as peak memory): in the test harness, runs test `name` of
/// `module_path` alone in a child process, asserts that it passed, and
/// returns false; in that child, returns true, and the test goes on.
pub fn in_own_process(module_path: &str, name: &str) -> bool {
    const CHILD: &str = "WXM_TEST_IN_OWN_PROCESS";
    let full = test_name(module_path, name);
    if std::env::var(CHILD).is_ok_and(|v| v == full) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([full.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &full)
        .output()
        .expect("spawn the test's own process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{full} in its own process: {:?}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

pub fn start(platform: Platform) -> Emulator {
    Emulator::start(Options {
        platform,
        access_tokens: vec![TOKEN.to_string()],
        ..Options::default()
    })
    .expect("emulator starts")
}

pub fn admin(
    emu: &Emulator,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{}", emu.base_url(), path);
    let mut resp = if method == "GET" {
        agent.get(&url).call()
    } else {
        agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
    }
    .expect("admin request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("admin body");
    assert_eq!(status, 200, "admin {path}: {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// Registers generated media; returns (media_id, expected bytes).
pub fn add_media(emu: &Emulator, spec: serde_json::Value) -> (String, Vec<u8>) {
    let r = admin(emu, "POST", "/__admin/media", spec.clone());
    let id = r["media_id"].as_str().expect("media_id").to_string();
    let bytes = if let Some(b64) = spec.get("data_b64").and_then(|v| v.as_str()) {
        base64_decode(b64)
    } else {
        generated(
            spec["seed"].as_u64().unwrap_or(0),
            r["size"].as_u64().expect("size"),
        )
    };
    (id, bytes)
}

pub fn fault(emu: &Emulator, spec: serde_json::Value) {
    admin(emu, "POST", "/__admin/faults", spec);
}

pub fn stats(emu: &Emulator) -> serde_json::Value {
    admin(emu, "GET", "/__admin/stats", serde_json::Value::Null)
}

pub fn reset(emu: &Emulator) {
    admin(emu, "POST", "/__admin/reset", serde_json::json!({}));
}

/// Every Range the emulator saw for a media: (start, end) pairs.
pub fn ranges(emu: &Emulator, media_id: &str) -> Vec<(u64, u64)> {
    stats(emu)["ranges"]
        .as_array()
        .expect("ranges")
        .iter()
        .filter(|r| r["media_id"] == media_id)
        .filter_map(|r| Some((r["start"].as_u64()?, r["end"].as_u64()?)))
        .collect()
}

/// Every Range the emulator saw starts on a 16-byte boundary (an AES block),
/// spans at most `chunk` and whole blocks unless it is the last; at least one was seen.
pub fn assert_aligned(rs: &[(u64, u64)], chunk: u64, size: u64) {
    assert!(!rs.is_empty(), "no Range requests seen");
    for &(s, e) in rs {
        assert_eq!(s % 16, 0, "range {s}-{e} starts unaligned");
        let len = e - s + 1;
        assert!(len <= chunk, "range {s}-{e} longer than chunk {chunk}");
        assert!(
            len % 16 == 0 || e + 1 >= size,
            "range {s}-{e} not a multiple of 16 and not last"
        );
    }
}

/// The emulator's generated content (docs/CONTRACT.md).
pub fn generated(seed: u64, size: u64) -> Vec<u8> {
    fn splitmix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut out = Vec::with_capacity(size as usize + 8);
    let mut i = 0u64;
    while (out.len() as u64) < size {
        out.extend_from_slice(&splitmix(seed.wrapping_add(i)).to_le_bytes());
        i += 1;
    }
    out.truncate(size as usize);
    out
}

pub fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("valid base64")
}

pub fn cs(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

pub fn text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: the library returns NUL-terminated strings it owns.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

pub fn last_errmsg() -> String {
    // A NUL-terminated string owned by this thread, read at once.
    text(wxm_last_errmsg()).unwrap_or_default()
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// splitmix64: a small, seedable, reproducible generator.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// Fails when a message shows a token or a secret (or a fragment long
/// enough to matter).
pub fn assert_clean(msg: &str, secrets: &[&str], context: &str) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!msg.contains(s), "{context}: message leaks {s:?}: {msg:?}");
    }
}

pub fn is_clean(msg: &str, secrets: &[&str]) -> bool {
    secrets.iter().all(|s| !msg.contains(s))
}

/// A client handle built through the C ABI; freed on drop.
pub struct TestClient(pub *mut wxm_client);
// SAFETY: a wxm_client is documented thread-safe.
unsafe impl Send for TestClient {}
// SAFETY: as above.
unsafe impl Sync for TestClient {}

impl Drop for TestClient {
    fn drop(&mut self) {
        // SAFETY: created by wxm_client_new, freed once.
        unsafe { wxm_client_free(self.0) }
        // Its events (every client of the support module has a handler).
        check_dropped(self.0);
    }
}

/// How to build a client. `Default` suits the emulator (`client` fills in
/// its URL); `ClientOpts::at` suits a server that is not the emulator.
#[derive(Clone, Debug)]
pub struct ClientOpts {
    pub base_url: String,
    pub platform: i32,
    pub token: Option<String>,
    pub credentials: Option<(String, String)>,
    pub token_api: i32,
    pub chunk: u64,
    pub parallelism: u32,
    pub connect_ms: u32,
    pub io_ms: u32,
    pub attempts: u32,
    pub backoff_ms: u32,
    pub ca_file: Option<String>,
    /// Where the client's events go (default: a log that only checks
    /// them for leaks), and from which level.
    pub events: Option<std::sync::Arc<EventLog>>,
    pub event_level: i32,
}

impl Default for ClientOpts {
    fn default() -> Self {
        ClientOpts {
            base_url: String::new(),
            platform: 1,
            token: Some(TOKEN.to_string()),
            credentials: None,
            token_api: 0,
            chunk: 64 * 1024,
            parallelism: 1,
            connect_ms: 2000,
            io_ms: 5000,
            attempts: 4,
            backoff_ms: 10,
            ca_file: None,
            events: None,
            event_level: wxmedia::ffi::event::WXM_LEVEL_DEBUG,
        }
    }
}

impl ClientOpts {
    /// For the emulator, fetching its token with the test credentials
    /// (`CORPID`, `SECRET`) instead of holding a static one.
    pub fn credentialed() -> ClientOpts {
        ClientOpts {
            token: None,
            credentials: Some((CORPID.into(), SECRET.into())),
            ..ClientOpts::default()
        }
    }

    /// For a server that is not the emulator (raw, TLS proxy): its static
    /// token, a short I/O timeout and one retry, so that hostile answers fail fast.
    pub fn at(base_url: &str) -> ClientOpts {
        ClientOpts {
            base_url: base_url.to_string(),
            token: Some(HOSTILE_TOKEN.to_string()),
            io_ms: 1000,
            attempts: 2,
            ..ClientOpts::default()
        }
    }
}

/// Builds a client; Err(code, message) when `wxm_client_new` refuses.
pub fn try_client(o: &ClientOpts) -> Result<TestClient, (i32, String)> {
    // SAFETY: every pointer is live for its call; handles are freed once.
    unsafe {
        let cfg = wxm_config_new(o.platform);
        assert!(!cfg.is_null());
        assert_eq!(wxm_config_set_base_url(cfg, cs(&o.base_url).as_ptr()), 0);
        if let Some(t) = &o.token {
            assert_eq!(wxm_config_set_access_token(cfg, cs(t).as_ptr()), 0);
        }
        if let Some((id, secret)) = &o.credentials {
            assert_eq!(
                wxm_config_set_credentials(cfg, cs(id).as_ptr(), cs(secret).as_ptr()),
                0
            );
        }
        assert_eq!(wxm_config_set_token_api(cfg, o.token_api), 0);
        assert_eq!(wxm_config_set_chunk_size(cfg, o.chunk), 0);
        assert_eq!(wxm_config_set_parallelism(cfg, o.parallelism), 0);
        assert_eq!(wxm_config_set_timeouts(cfg, o.connect_ms, o.io_ms), 0);
        assert_eq!(wxm_config_set_retries(cfg, o.attempts, o.backoff_ms), 0);
        if let Some(ca) = &o.ca_file {
            assert_eq!(wxm_config_set_ca_file(cfg, cs(ca).as_ptr()), 0);
        }
        // Every event of every test is checked for the secrets it was given.
        let mut secrets: Vec<&str> = o.token.iter().map(String::as_str).collect();
        if let Some((_, secret)) = &o.credentials {
            secrets.push(secret);
        }
        let log = o
            .events
            .clone()
            .unwrap_or_else(|| EventLog::checking(&secrets));
        watch(cfg, &log, o.event_level);
        let mut c = ptr::null_mut();
        let rc = wxm_client_new(cfg, &mut c);
        let msg = last_errmsg();
        wxm_config_free(cfg);
        if rc != 0 {
            return Err((rc, msg));
        }
        check_on_drop(c, log);
        Ok(TestClient(c))
    }
}

/// A client from a config a test built by hand (for settings `ClientOpts`
/// lacks), its events checked for leaks when it is dropped.
///
/// # Safety
/// `cfg` is a live config; it is freed here.
pub unsafe fn client_from_config(cfg: *mut wxm_config) -> TestClient {
    // SAFETY: forwarded; the config is freed once, after the client is made.
    unsafe {
        let leaks = watch_for_leaks(cfg, &[]);
        let mut c = ptr::null_mut();
        assert_eq!(wxm_client_new(cfg, &mut c), 0);
        wxm_config_free(cfg);
        check_on_drop(c, leaks);
        TestClient(c)
    }
}

pub fn new_client(o: &ClientOpts) -> TestClient {
    try_client(o).unwrap_or_else(|(rc, m)| panic!("wxm_client_new: {rc} {m}"))
}

/// A client of the emulator.
pub fn client(emu: &Emulator, o: ClientOpts) -> TestClient {
    new_client(&ClientOpts {
        base_url: emu.base_url(),
        ..o
    })
}

/// What one download through the C ABI gave.
#[derive(Debug, Default)]
pub struct Got {
    pub rc: i32,
    /// Sink downloads: the bytes as handed over; to_path: the target's bytes if any.
    pub data: Vec<u8>,
    pub first_offset: Option<u64>,
    pub in_order: bool,
    pub size: u64,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub video_url: Option<String>,
    pub errmsg: String,
    /// `wxm_last_errmsg` right after the run, on the calling thread.
    pub last_errmsg: String,
    pub elapsed: Duration,
    pub sink_threads: Vec<std::thread::ThreadId>,
    /// The largest slice one sink call was handed.
    pub max_slice: usize,
}

struct SinkState {
    data: Vec<u8>,
    first: Option<u64>,
    next: u64,
    in_order: bool,
    /// Stop (non-zero return) once more than this many bytes arrived.
    cap: usize,
    threads: Vec<std::thread::ThreadId>,
    max_slice: usize,
}

unsafe extern "C" fn sink_cb(ud: *mut c_void, offset: u64, data: *const u8, len: usize) -> i32 {
    // SAFETY: ud is the &mut SinkState we passed.
    let st = unsafe { &mut *(ud as *mut SinkState) };
    let bytes = if len == 0 {
        &[][..]
    } else {
        // SAFETY: data/len describe a buffer the library keeps alive for the call.
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    let tid = std::thread::current().id();
    if !st.threads.contains(&tid) {
        st.threads.push(tid);
    }
    if st.first.is_none() {
        st.first = Some(offset);
        st.next = offset;
    }
    if offset != st.next {
        st.in_order = false;
    }
    st.next = offset + len as u64;
    st.max_slice = st.max_slice.max(len);
    st.data.extend_from_slice(bytes);
    if st.data.len() > st.cap {
        return 9;
    }
    0
}

/// Downloads `media_id` from `start` into memory.
pub fn download_sink(c: &TestClient, media_id: &str, start: u64) -> Got {
    download_sink_capped(c, media_id, start, usize::MAX)
}

/// As `download_sink`, but the sink refuses (and so aborts the download)
/// once more than `cap` bytes arrived.
pub fn download_sink_capped(c: &TestClient, media_id: &str, start: u64, cap: usize) -> Got {
    let t0 = Instant::now();
    // SAFETY: live handles and buffers for the duration of each call.
    unsafe {
        let d = wxm_download_new(c.0, cs(media_id).as_ptr());
        assert!(!d.is_null());
        if start > 0 {
            assert_eq!(wxm_download_set_start(d, start), 0);
        }
        let mut st = SinkState {
            data: Vec::new(),
            first: None,
            next: 0,
            in_order: true,
            cap,
            threads: Vec::new(),
            max_slice: 0,
        };
        let rc = wxm_download_to_sink(d, Some(sink_cb), &mut st as *mut _ as *mut c_void);
        let last_errmsg = last_errmsg();
        let got = Got {
            rc,
            data: st.data,
            first_offset: st.first,
            in_order: st.in_order,
            size: wxm_download_size(d),
            content_type: text(wxm_download_content_type(d)),
            filename: text(wxm_download_filename(d)),
            video_url: text(wxm_download_video_url(d)),
            errmsg: text(wxm_download_errmsg(d)).unwrap_or_default(),
            last_errmsg,
            elapsed: t0.elapsed(),
            sink_threads: st.threads,
            max_slice: st.max_slice,
        };
        wxm_download_free(d);
        got
    }
}

/// Downloads `media_id` to `path`; `data` is what the target then holds.
pub fn download_path(c: &TestClient, media_id: &str, path: &std::path::Path) -> Got {
    let t0 = Instant::now();
    // SAFETY: live handles for the duration of each call.
    unsafe {
        let d = wxm_download_new(c.0, cs(media_id).as_ptr());
        assert!(!d.is_null());
        let rc = wxm_download_to_path(d, cs(path.to_str().expect("utf-8 path")).as_ptr());
        let last_errmsg = last_errmsg();
        let got = Got {
            rc,
            data: std::fs::read(path).unwrap_or_default(),
            in_order: true,
            size: wxm_download_size(d),
            content_type: text(wxm_download_content_type(d)),
            filename: text(wxm_download_filename(d)),
            video_url: text(wxm_download_video_url(d)),
            errmsg: text(wxm_download_errmsg(d)).unwrap_or_default(),
            last_errmsg,
            elapsed: t0.elapsed(),
            ..Got::default()
        };
        wxm_download_free(d);
        got
    }
}

/// The entries of a directory, sorted (to prove nothing landed beside the target).
pub fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

/// A 2 MiB media fetched in one request by a new client, whose connection
/// the emulator resets once, just past 1 MiB of body: (client, id, bytes).
/// The same cut for every way of taking the body (sink, file, ...).
pub fn media_cut_mid_body(emu: &Emulator, seed: u64) -> (TestClient, String, Vec<u8>) {
    let (id, want) = add_media(
        emu,
        serde_json::json!({"size": 2 * 1024 * 1024, "seed": seed}),
    );
    let c = client(
        emu,
        ClientOpts {
            chunk: 2 * 1024 * 1024,
            ..Default::default()
        },
    );
    fault(
        emu,
        serde_json::json!({"kind": "reset", "after_bytes": 1024 * 1024 + 3, "media_id": id, "count": 1}),
    );
    (c, id, want)
}

/// Runs `wxm_download_to_path` and cancels it from another thread after
/// `ms`: the code, and how long the call took to return after the cancel.
pub fn to_path_cancelled_after(
    c: &TestClient,
    id: &str,
    target: &std::path::Path,
    ms: u64,
) -> (i32, std::time::Duration) {
    // SAFETY: the handle outlives both threads' use of it.
    unsafe {
        let d = wxm_download_new(c.0, cs(id).as_ptr());
        assert!(!d.is_null());
        let dp = d as usize;
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let at = std::time::Instant::now();
            wxm_download_cancel(dp as *const _);
            at
        });
        let rc = wxm_download_to_path(d, cs(target.to_str().expect("utf-8 path")).as_ptr());
        let returned = std::time::Instant::now();
        let cancelled_at = canceller.join().expect("join");
        wxm_download_free(d);
        (rc, returned.saturating_duration_since(cancelled_at))
    }
}

#[derive(Debug)]
pub struct Uploaded {
    pub rc: i32,
    pub media_id: Option<String>,
    pub kind: Option<String>,
    pub created_at: i64,
    pub errmsg: String,
}

pub fn upload_path(
    c: &TestClient,
    kind: &str,
    path: &std::path::Path,
    filename: Option<&str>,
) -> Uploaded {
    // SAFETY: live handles for the duration of each call.
    unsafe {
        let u = wxm_upload_new(c.0, cs(kind).as_ptr());
        assert!(!u.is_null());
        assert_eq!(
            wxm_upload_set_path(u, cs(path.to_str().expect("utf-8")).as_ptr()),
            0
        );
        if let Some(f) = filename {
            assert_eq!(wxm_upload_set_filename(u, cs(f).as_ptr()), 0);
        }
        finish_upload(u)
    }
}

struct ReaderState {
    data: Vec<u8>,
    at: usize,
    fail_at: Option<usize>,
}

unsafe extern "C" fn read_cb(ud: *mut c_void, buf: *mut u8, cap: usize) -> i64 {
    // SAFETY: ud is our &mut ReaderState; buf has room for cap bytes.
    let st = unsafe { &mut *(ud as *mut ReaderState) };
    if st.fail_at.is_some_and(|f| st.at >= f) {
        return -1;
    }
    // Small reads, as a socket or pipe would give.
    let n = cap.min(8192).min(st.data.len() - st.at);
    unsafe { ptr::copy_nonoverlapping(st.data.as_ptr().add(st.at), buf, n) };
    st.at += n;
    n as i64
}

pub fn upload_reader(
    c: &TestClient,
    kind: &str,
    data: &[u8],
    declared: u64,
    filename: Option<&str>,
    fail_at: Option<usize>,
) -> Uploaded {
    let mut st = ReaderState {
        data: data.to_vec(),
        at: 0,
        fail_at,
    };
    // SAFETY: live handles and state for the duration of each call.
    unsafe {
        let u = wxm_upload_new(c.0, cs(kind).as_ptr());
        assert!(!u.is_null());
        assert_eq!(
            wxm_upload_set_reader(u, Some(read_cb), &mut st as *mut _ as *mut c_void, declared),
            0
        );
        if let Some(f) = filename {
            assert_eq!(wxm_upload_set_filename(u, cs(f).as_ptr()), 0);
        }
        finish_upload(u)
    }
}

unsafe fn finish_upload(u: *mut wxm_upload) -> Uploaded {
    // SAFETY: u is live until freed below.
    unsafe {
        let rc = wxm_upload_run(u);
        let r = Uploaded {
            rc,
            media_id: text(wxm_upload_media_id(u)),
            kind: text(wxm_upload_type(u)),
            created_at: wxm_upload_created_at(u),
            errmsg: text(wxm_upload_errmsg(u)).unwrap_or_default(),
        };
        wxm_upload_free(u);
        r
    }
}

pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wxmedia-test-{tag}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub const JPEG_HEAD: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
];
pub const PNG_HEAD: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
pub const AMR_HEAD: &[u8] = b"#!AMR\n";
pub const MP4_HEAD: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom";

/// A file of `len` bytes that starts with `head`.
pub fn media_bytes(head: &[u8], len: usize, seed: u64) -> Vec<u8> {
    let mut v = head.to_vec();
    v.extend(generated(seed, len.saturating_sub(head.len()) as u64));
    v.truncate(len);
    v
}
