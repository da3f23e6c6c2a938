//! Support for the reliability tests (issue 8): a client built from any base
//! URL, sha256, a seeded RNG, a raw TCP server for hostile answers, and the
//! "no token or secret in any message" check. Used with `tests/common`.
#![allow(dead_code)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wxmedia::ffi::download::*;
use wxmedia::ffi::*;

/// The static token every reliability test uses against a raw server.
pub const HOSTILE_TOKEN: &str = "hostile-token-Q7xV3kP9";
/// Credentials the emulator accepts by default (`--corpid`, `--secret`).
pub const CORPID: &str = "wxm-corp";
pub const SECRET: &str = "wxm-secret";

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

pub fn last_errmsg() -> String {
    // SAFETY: wxm_last_errmsg returns a NUL-terminated string owned by this thread.
    unsafe {
        let p = wxm_last_errmsg();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

pub fn cstr(s: &str) -> CString {
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

/// Client options for a server that is not the emulator.
#[derive(Clone, Debug)]
pub struct Opts {
    pub base_url: String,
    pub token: Option<String>,
    pub credentials: Option<(String, String)>,
    pub chunk: u64,
    pub parallelism: u32,
    pub connect_ms: u32,
    pub io_ms: u32,
    pub attempts: u32,
    pub backoff_ms: u32,
    pub ca_file: Option<String>,
}

impl Opts {
    pub fn new(base_url: &str) -> Opts {
        Opts {
            base_url: base_url.to_string(),
            token: Some(HOSTILE_TOKEN.to_string()),
            credentials: None,
            chunk: 64 * 1024,
            parallelism: 1,
            connect_ms: 2000,
            io_ms: 1000,
            attempts: 2,
            backoff_ms: 10,
            ca_file: None,
        }
    }
}

/// A client handle through the C ABI; freed on drop.
pub struct Client(pub *mut wxm_client);
// SAFETY: a wxm_client is documented thread-safe.
unsafe impl Send for Client {}
// SAFETY: as above.
unsafe impl Sync for Client {}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: created by wxm_client_new, freed once.
        unsafe { wxm_client_free(self.0) }
    }
}

/// Builds a client; Err(code, message) when `wxm_client_new` refuses.
pub fn try_client(o: &Opts) -> Result<Client, (i32, String)> {
    // SAFETY: every pointer is live for its call; handles are freed once.
    unsafe {
        let cfg = wxm_config_new(1);
        assert!(!cfg.is_null());
        assert_eq!(wxm_config_set_base_url(cfg, cstr(&o.base_url).as_ptr()), 0);
        if let Some(t) = &o.token {
            assert_eq!(wxm_config_set_access_token(cfg, cstr(t).as_ptr()), 0);
        }
        if let Some((id, s)) = &o.credentials {
            assert_eq!(
                wxm_config_set_credentials(cfg, cstr(id).as_ptr(), cstr(s).as_ptr()),
                0
            );
        }
        assert_eq!(wxm_config_set_chunk_size(cfg, o.chunk), 0);
        assert_eq!(wxm_config_set_parallelism(cfg, o.parallelism), 0);
        assert_eq!(wxm_config_set_timeouts(cfg, o.connect_ms, o.io_ms), 0);
        assert_eq!(wxm_config_set_retries(cfg, o.attempts, o.backoff_ms), 0);
        if let Some(ca) = &o.ca_file {
            assert_eq!(wxm_config_set_ca_file(cfg, cstr(ca).as_ptr()), 0);
        }
        let mut c = std::ptr::null_mut();
        let rc = wxm_client_new(cfg, &mut c);
        let msg = last_errmsg();
        wxm_config_free(cfg);
        if rc != 0 {
            return Err((rc, msg));
        }
        Ok(Client(c))
    }
}

pub fn new_client(o: &Opts) -> Client {
    try_client(o).unwrap_or_else(|(rc, m)| panic!("wxm_client_new: {rc} {m}"))
}

/// What one download through the C ABI gave.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rc: i32,
    /// Sink downloads: the bytes, in order; to_path: the target's bytes if any.
    pub data: Vec<u8>,
    pub in_order: bool,
    pub size: u64,
    pub filename: Option<String>,
    pub video_url: Option<String>,
    pub errmsg: String,
    pub last_errmsg: String,
    pub elapsed: Duration,
}

struct Collect {
    data: Vec<u8>,
    next: Option<u64>,
    in_order: bool,
    /// Stop (non-zero return) once this many bytes arrived.
    cap: usize,
}

unsafe extern "C" fn collect_cb(ud: *mut c_void, offset: u64, data: *const u8, len: usize) -> i32 {
    // SAFETY: `ud` is the &mut Collect passed with this callback; data/len
    // describe a buffer the library keeps alive for the call.
    let st = unsafe { &mut *(ud as *mut Collect) };
    let bytes = if len == 0 {
        &[][..]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    if st.next.is_some_and(|n| n != offset) {
        st.in_order = false;
    }
    st.next = Some(offset + len as u64);
    st.data.extend_from_slice(bytes);
    if st.data.len() > st.cap {
        return 9;
    }
    0
}

/// Downloads `media_id` into memory (stopping past `cap` bytes).
pub fn sink_download(c: &Client, media_id: &str, start: u64, cap: usize) -> Outcome {
    let t0 = Instant::now();
    // SAFETY: live handles and state for the duration of each call.
    unsafe {
        let d = wxm_download_new(c.0, cstr(media_id).as_ptr());
        assert!(!d.is_null());
        if start > 0 {
            assert_eq!(wxm_download_set_start(d, start), 0);
        }
        let mut st = Collect {
            data: Vec::new(),
            next: None,
            in_order: true,
            cap,
        };
        let rc = wxm_download_to_sink(d, Some(collect_cb), &mut st as *mut Collect as *mut c_void);
        let last = last_errmsg();
        let out = Outcome {
            rc,
            data: st.data,
            in_order: st.in_order,
            size: wxm_download_size(d),
            filename: text(wxm_download_filename(d)),
            video_url: text(wxm_download_video_url(d)),
            errmsg: text(wxm_download_errmsg(d)).unwrap_or_default(),
            last_errmsg: last,
            elapsed: t0.elapsed(),
        };
        wxm_download_free(d);
        out
    }
}

/// Downloads `media_id` to `path`.
pub fn path_download(c: &Client, media_id: &str, path: &std::path::Path) -> Outcome {
    let t0 = Instant::now();
    // SAFETY: live handles for the duration of each call.
    unsafe {
        let d = wxm_download_new(c.0, cstr(media_id).as_ptr());
        assert!(!d.is_null());
        let rc = wxm_download_to_path(d, cstr(path.to_str().expect("utf-8")).as_ptr());
        let last = last_errmsg();
        let out = Outcome {
            rc,
            data: std::fs::read(path).unwrap_or_default(),
            in_order: true,
            size: wxm_download_size(d),
            filename: text(wxm_download_filename(d)),
            video_url: text(wxm_download_video_url(d)),
            errmsg: text(wxm_download_errmsg(d)).unwrap_or_default(),
            last_errmsg: last,
            elapsed: t0.elapsed(),
        };
        wxm_download_free(d);
        out
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

// ---- a raw HTTP server for hostile answers ---------------------------------

/// A request as the raw server read it.
#[derive(Clone, Debug, Default)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// `Range: bytes=a-b` when present.
    pub range: Option<(u64, u64)>,
    pub body_len: u64,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

type Handler = dyn Fn(&Req, &mut TcpStream) + Send + Sync;

/// A plain TCP server on 127.0.0.1 that reads one request per connection
/// and lets the test write whatever it wants back. Stops when dropped.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Req>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    pub fn start(handler: impl Fn(&Req, &mut TcpStream) + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s2, r2, seen2) = (stop.clone(), requests.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let (h, r, seen, stop) =
                            (handler.clone(), r2.clone(), seen2.clone(), s2.clone());
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                            let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                            if let Some(req) = read_request(&mut stream) {
                                r.fetch_add(1, Ordering::SeqCst);
                                seen.lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(req.clone());
                                if !stop.load(Ordering::Relaxed) {
                                    h(&req, &mut stream);
                                }
                            }
                            let _ = stream.flush();
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawServer {
            addr,
            stop,
            requests,
            seen,
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stopped(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request's head, read a byte at a time so that none of its body is
/// taken; None when the connection ends (or the head grows past 256 KiB)
/// first.
pub fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 256 * 1024 {
            return None;
        }
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn read_request(s: &mut TcpStream) -> Option<Req> {
    let text = read_head(s)?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut req = Req {
        method,
        target,
        ..Req::default()
    };
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            req.headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if let Some(r) = req.header("range").and_then(|v| v.strip_prefix("bytes=")) {
        if let Some((a, b)) = r.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                req.range = Some((a, b));
            }
        }
    }
    // Drain a request body (uploads) so that answering does not reset it.
    let len: u64 = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut left = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = left.min(chunk.len() as u64) as usize;
        match s.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => left -= n as u64,
        }
    }
    req.body_len = len - left;
    Some(req)
}

/// Writes a whole response with a body and `Connection: close`.
pub fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

/// The bytes a hostile server serves as "the media".
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Serves `data` correctly: 206 for a Range, 200 otherwise, with a
/// Content-Disposition of `disposition` (raw bytes allowed).
pub fn serve_range(s: &mut TcpStream, req: &Req, data: &[u8], disposition: &[u8]) {
    let total = data.len() as u64;
    let mut head = Vec::new();
    let body: &[u8] = match req.range {
        Some((a, b)) if a < total => {
            let b = b.min(total - 1);
            head.extend_from_slice(
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{total}\r\nContent-Length: {}\r\n",
                    b - a + 1
                )
                .as_bytes(),
            );
            &data[a as usize..=b as usize]
        }
        _ => {
            head.extend_from_slice(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n").as_bytes(),
            );
            data
        }
    };
    head.extend_from_slice(b"Connection: close\r\nContent-Type: application/octet-stream\r\n");
    if !disposition.is_empty() {
        head.extend_from_slice(b"Content-Disposition: ");
        head.extend_from_slice(disposition);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let _ = s.write_all(&head);
    let _ = s.write_all(body);
}
