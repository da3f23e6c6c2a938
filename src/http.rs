//! The HTTP layer: one ureq agent per client (a keep-alive pool shared by
//! every transfer), a transport wrapper that makes blocking reads
//! cancellable, and the classification of media/get answers.

use crate::error::{scrub, Error, Result};
use std::cell::RefCell;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::http::{HeaderMap, Response};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};
use ureq::Body;

/// How often a blocked read wakes to look at the cancel flag: a cancel is
/// honoured within about this long, even while the server stalls.
const CANCEL_POLL: Duration = Duration::from_millis(100);
/// Upper bound on a JSON answer (errcode, token, upload result, video_url).
pub const MAX_JSON_BODY: u64 = 64 * 1024;

thread_local! {
    /// The cancel flag of the transfer running on this thread. Pooled
    /// connections outlive transfers, so the transport looks the flag up at
    /// each read rather than holding one.
    static CURRENT_CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Marks this thread as working for a transfer until dropped.
pub struct CancelScope {
    previous: Option<Arc<AtomicBool>>,
}

impl CancelScope {
    pub fn enter(flag: &Arc<AtomicBool>) -> CancelScope {
        let previous = CURRENT_CANCEL.with(|c| c.replace(Some(flag.clone())));
        CancelScope { previous }
    }
}

impl Drop for CancelScope {
    fn drop(&mut self) {
        let prev = self.previous.take();
        CURRENT_CANCEL.with(|c| *c.borrow_mut() = prev);
    }
}

fn cancelled_here() -> bool {
    CURRENT_CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

const CANCEL_MARK: &str = "wxmedia transfer cancelled";

/// Wraps the outermost transport (TLS or TCP) and splits every wait for
/// input into short slices, so a cancel from another thread is seen within
/// `CANCEL_POLL` while the configured read timeout still applies as a whole.
#[derive(Debug)]
struct CancellableTransport {
    inner: Box<dyn Transport>,
}

impl Transport for CancellableTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if cancelled_here() {
            return Err(cancel_error());
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let whole = timeout.for_read();
        let deadline = whole.not_zero().map(|d| Instant::now() + *d);
        loop {
            if cancelled_here() {
                return Err(cancel_error());
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if d <= now => return Err(ureq::Error::Timeout(whole.reason)),
                Some(d) => (d - now).min(CANCEL_POLL),
                None => CANCEL_POLL,
            };
            let sliced = NextTimeout {
                after: slice.into(),
                reason: whole.reason,
                per_read: None,
                per_write: timeout.per_write,
            };
            match self.inner.await_input(sliced) {
                Err(ureq::Error::Timeout(_)) => continue,
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

fn cancel_error() -> ureq::Error {
    ureq::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        CANCEL_MARK,
    ))
}

#[derive(Debug)]
struct CancelConnector;

impl Connector<Box<dyn Transport>> for CancelConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Box::new(CancellableTransport { inner }) as Box<dyn Transport>))
    }
}

pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    pub pool_size: usize,
    pub ca_file: Option<String>,
}

pub fn build_agent(s: &HttpSettings) -> Result<ureq::Agent> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = &s.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Error::InvalidArg(format!("cannot read CA file {path:?}: {e}")))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                certs.push(c.to_owned());
            }
        }
        if certs.is_empty() {
            return Err(Error::InvalidArg(format!(
                "CA file {path:?} holds no PEM certificate"
            )));
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Range offsets count identity bytes, and a compressed answer could
        // expand without bound: never ask for a Content-Encoding.
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .user_agent(format!("wxmedia/{}", env!("CARGO_PKG_VERSION")))
        .max_redirects(0)
        .timeout_connect(Some(s.connect_timeout))
        .timeout_per_read(Some(s.io_timeout))
        .timeout_per_write(Some(s.io_timeout))
        .max_response_header_size(64 * 1024)
        .max_idle_connections_per_host(s.pool_size.max(2))
        .max_idle_connections(s.pool_size.max(2) * 4)
        .input_buffer_size(256 * 1024)
        .output_buffer_size(256 * 1024)
        .tls_config(tls.build())
        .build();
    let connector = DefaultConnector::new().chain(CancelConnector);
    Ok(ureq::Agent::with_parts(
        config,
        connector,
        DefaultResolver::default(),
    ))
}

/// Maps a ureq error, or an I/O error out of a body reader, to ours.
pub fn map_ureq(e: ureq::Error) -> Error {
    if cancelled_here() {
        return Error::Cancelled;
    }
    let text = scrub(&e.to_string());
    match e {
        ureq::Error::Timeout(_) => Error::Timeout(text),
        ureq::Error::Io(io) => map_io(io),
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::Rustls(_) => Error::Tls(text),
        ureq::Error::BadUri(_) => Error::InvalidArg(text),
        ureq::Error::Protocol(_) | ureq::Error::Http(_) => Error::Protocol(text),
        _ => Error::Network(text),
    }
}

pub fn map_io(e: std::io::Error) -> Error {
    if cancelled_here() || e.to_string().contains(CANCEL_MARK) {
        return Error::Cancelled;
    }
    if e.get_ref().is_some_and(|r| r.is::<ureq::Error>()) {
        if let Some(Ok(u)) = e.into_inner().map(|b| b.downcast::<ureq::Error>()) {
            return map_ureq(*u);
        }
        return Error::Network("body read failed".into());
    }
    let text = scrub(&e.to_string());
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Error::Timeout(text),
        _ => Error::Network(text),
    }
}

pub fn check_cancel(flag: &AtomicBool) -> Result<()> {
    if flag.load(Ordering::Relaxed) {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// Reads a small body whole, refusing more than `MAX_JSON_BODY`.
pub fn read_small_body(body: Body) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    body.into_reader()
        .take(MAX_JSON_BODY + 1)
        .read_to_end(&mut buf)
        .map_err(map_io)?;
    if buf.len() as u64 > MAX_JSON_BODY {
        return Err(Error::Protocol(format!(
            "answer body larger than {MAX_JSON_BODY} bytes where JSON was expected"
        )));
    }
    Ok(buf)
}

/// A WeChat JSON answer: `Err` for a non-zero errcode.
pub fn parse_api_json(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| {
        Error::Protocol(format!(
            "expected a JSON object, got {} bytes that are not JSON",
            bytes.len()
        ))
    })?;
    let serde_json::Value::Object(map) = v else {
        return Err(Error::Protocol("expected a JSON object".into()));
    };
    if let Some(code) = map.get("errcode").and_then(|c| c.as_i64()) {
        if code != 0 {
            let msg = map.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
            let code = i32::try_from(code).unwrap_or(i32::MAX);
            return Err(Error::wechat(code, scrub(msg)));
        }
    }
    Ok(map)
}

/// What a media/get answer turned out to be.
pub enum MediaAnswer {
    /// A file, or part of one (206), still to be read from the body.
    File {
        status: u16,
        headers: Box<HeaderMap>,
        /// Bytes of the body already read while classifying; they come
        /// before what `reader` yields.
        prefix: Vec<u8>,
        reader: ureq::BodyReader<'static>,
    },
    VideoUrl(String),
}

fn is_jsonish(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json")
                || ct.starts_with("text/plain")
                || ct.starts_with("text/json")
                || ct.starts_with("text/html")
        }
    }
}

/// Decides by headers whether a media/get answer is a file, an errcode or a
/// video URL. A file whose bytes happen to look like JSON stays a file when
/// it carries Content-Disposition or a 206; only a bare, small, JSON-typed
/// 200 is parsed.
pub fn classify(response: Response<Body>) -> Result<MediaAnswer> {
    let status = response.status().as_u16();
    let headers = response.headers();
    // WeCom sends the errcode in headers as well; trust it where present.
    if let Some(code) = header_str(headers, "error-code").and_then(|c| c.trim().parse::<i32>().ok())
    {
        if code != 0 && headers.get("content-disposition").is_none() {
            let msg = header_str(headers, "error-msg").unwrap_or("").to_string();
            let body = read_small_body(response.into_body()).unwrap_or_default();
            return match parse_api_json(&body) {
                Err(e @ Error::WeChat { .. }) => Err(e),
                _ => Err(Error::wechat(code, scrub(&msg))),
            };
        }
    }
    match status {
        206 => Ok(file(response, Vec::new())),
        200 => {
            let disposition = headers.get("content-disposition").is_some();
            let ct = header_str(headers, "content-type");
            let len = header_u64(headers, "content-length");
            if disposition || !is_jsonish(ct) || len.is_some_and(|l| l > MAX_JSON_BODY) {
                return Ok(file(response, Vec::new()));
            }
            // Read a bounded head of the body to look for a JSON errcode.
            let (parts, body) = response.into_parts();
            let mut reader = body.into_reader();
            let mut prefix = Vec::new();
            (&mut reader)
                .take(MAX_JSON_BODY + 1)
                .read_to_end(&mut prefix)
                .map_err(map_io)?;
            if prefix.len() as u64 <= MAX_JSON_BODY {
                if let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_slice::<serde_json::Value>(&prefix)
                {
                    if map.contains_key("errcode") || map.contains_key("video_url") {
                        let map = parse_api_json(&prefix)?;
                        if let Some(url) = map.get("video_url").and_then(|u| u.as_str()) {
                            return Ok(MediaAnswer::VideoUrl(url.to_string()));
                        }
                        return Err(Error::Protocol(
                            "JSON answer with errcode 0 and no media".into(),
                        ));
                    }
                }
            }
            Ok(MediaAnswer::File {
                status,
                headers: Box::new(parts.headers),
                prefix,
                reader,
            })
        }
        416 => {
            let total = header_str(headers, "content-range")
                .and_then(|v| crate::range::parse_content_range(v).err().flatten());
            Err(Error::Protocol(format!(
                "range not satisfiable (size {})",
                total.map_or("unknown".to_string(), |t| t.to_string())
            )))
        }
        _ => {
            let detail = read_small_body(response.into_body())
                .map(|b| scrub(&String::from_utf8_lossy(&b[..b.len().min(200)])))
                .unwrap_or_default();
            Err(Error::HttpStatus { status, detail })
        }
    }
}

fn file(response: Response<Body>, prefix: Vec<u8>) -> MediaAnswer {
    let (parts, body) = response.into_parts();
    MediaAnswer::File {
        status: parts.status.as_u16(),
        headers: Box::new(parts.headers),
        prefix,
        reader: body.into_reader(),
    }
}
