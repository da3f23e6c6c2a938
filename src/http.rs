//! The HTTP layer: one ureq agent per client (a keep-alive pool shared by
//! every transfer), a transport wrapper that makes blocking reads
//! cancellable, and the classification of media/get answers.

use crate::cancel::{
    cancel_error, cancelled_here, heartbeat, host_stop, host_stop_error, stop_of, Stop, CANCEL_POLL,
};
use crate::error::{Error, Result};
use crate::scrub::pairs as scrub;
use crate::tcp::TcpConnector;
use std::io::Read;
use std::time::{Duration, Instant};
use ureq::http::{HeaderMap, Response};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ChainedConnector, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout,
    RustlsConnector, Transport,
};
use ureq::Body;

/// Upper bound on a JSON answer (errcode, token, upload result, video_url).
pub const MAX_JSON_BODY: u64 = 64 * 1024;

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
        let tls = self.inner.is_tls();
        self.inner
            .transmit_output(amount, timeout)
            .map_err(|e| mark_tls(e, tls))
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
                Err(ureq::Error::Timeout(_)) => {
                    if let Err(e) = heartbeat() {
                        return Err(host_stop_error(e));
                    }
                    continue;
                }
                other => return other.map_err(|e| mark_tls(e, self.inner.is_tls())),
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

/// A TLS failure (untrusted certificate, handshake alert) that the TLS
/// stream reported as an I/O error. Typed, so `map_io` can tell it apart
/// from a network failure without this crate naming rustls' error type.
#[derive(Debug)]
struct TlsFailure(String);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsFailure {}

/// rustls reports certificate and protocol failures as `InvalidData` I/O
/// errors of the TLS stream; plain socket failures have other kinds.
fn mark_tls(e: ureq::Error, tls: bool) -> ureq::Error {
    match e {
        ureq::Error::Io(io) if tls && io.kind() == std::io::ErrorKind::InvalidData => {
            ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                TlsFailure(io.to_string()),
            ))
        }
        other => other,
    }
}

/// ureq's default chain with our TCP transport: a CONNECT proxy (which
/// opens its own connection), else plain TCP (`crate::tcp`), then TLS for
/// https.
type WxChain = ChainedConnector<
    (),
    ChainedConnector<(), ChainedConnector<(), (), ConnectProxyConnector>, TcpConnector>,
    RustlsConnector,
>;

fn wx_chain() -> WxChain {
    ().chain(ConnectProxyConnector::default())
        .chain(TcpConnector)
        .chain(RustlsConnector::default())
}

/// The connector chain, with TLS failures during connect (the handshake:
/// an untrusted certificate, an alert) marked as such: rustls reports them
/// as `InvalidData` I/O errors.
#[derive(Debug)]
struct TlsAwareConnector(WxChain);

impl Connector<()> for TlsAwareConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let https = details
            .uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let host = details.uri.host().unwrap_or("");
        let port = details
            .uri
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 });
        // An IPv6 literal keeps its brackets, so host:port reads back.
        let peer = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        self.0
            .connect(details, chained)
            .map(|t| t.map(|t| Box::new(t) as Box<dyn Transport>))
            .map_err(|e| {
                ureq::Error::Other(Box::new(BeforeSending {
                    error: mark_tls(e, https),
                    peer,
                }))
            })
    }
}

/// A failure while connecting (resolving, TCP, the TLS handshake): no byte
/// of the request left this host, so even a request that creates
/// something may go again (`sent_nothing`).
/// Its message names the host and port that could not be reached.
#[derive(Debug)]
struct BeforeSending {
    error: ureq::Error,
    /// `host:port` of the server (or proxy) being connected to.
    peer: String,
}

impl std::fmt::Display for BeforeSending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connecting to {}: {}", self.peer, self.error)
    }
}

impl std::error::Error for BeforeSending {}

/// Whether a request failed before any of it was sent (see `BeforeSending`).
pub fn sent_nothing(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Other(inner) => inner.is::<BeforeSending>(),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::BadUri(_) => true,
        _ => false,
    }
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
    agent_over(s, TlsAwareConnector(wx_chain()))
}

/// The agent over `connector`, which makes the connections (sockets and
/// TLS; unit tests plug in a scripted one), with cancellation on top.
pub(crate) fn agent_over(
    s: &HttpSettings,
    connector: impl Connector<(), Out = Box<dyn Transport>>,
) -> Result<ureq::Agent> {
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
        // Each read waits at most io_timeout, but a server can trickle a
        // header line at a time forever: the whole head gets a deadline too.
        .timeout_recv_response(Some(small_answer_deadline(s.io_timeout)))
        // A server that ignores `Expect: 100-continue` gets the upload body
        // after this wait, kept under the per-read timeout (which would
        // otherwise end the call instead).
        .timeout_await_100(Some(AWAIT_100.min(s.io_timeout / 2)))
        .max_response_header_size(64 * 1024)
        .max_idle_connections_per_host(s.pool_size.max(2))
        .max_idle_connections(s.pool_size.max(2) * 4)
        // ureq zeroes both buffers of a connection in full when it first
        // uses them (page faults, ~2 us each here): sized to what is used.
        // A read never returns more than one input buffer: 256 KiB reads
        // (and file writes) measured ~15 % faster per byte into a tmpfs
        // file than 128 KiB ones. The output one holds request heads and
        // upload pieces (one write each; curl's upload buffer is 64 KiB too).
        .input_buffer_size(256 * 1024)
        .output_buffer_size(64 * 1024)
        .tls_config(tls.build())
        .build();
    Ok(ureq::Agent::with_parts(
        config,
        connector.chain(CancelConnector),
        DefaultResolver::default(),
    ))
}

/// Maps a ureq error, or an I/O error out of a body reader, to ours.
pub fn map_ureq(e: ureq::Error) -> Error {
    if cancelled_here() {
        return Error::Cancelled;
    }
    let e = match e {
        ureq::Error::Other(inner) => match inner.downcast::<BeforeSending>() {
            Ok(b) => {
                let peer = b.peer;
                return map_ureq(b.error).map_text(|t| format!("connecting to {peer}: {t}"));
            }
            Err(other) => ureq::Error::Other(other),
        },
        e => e,
    };
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
    match stop_of(&e) {
        Some(Stop::Cancelled) => return Error::Cancelled,
        Some(Stop::Host) => return host_stop(),
        None if cancelled_here() => return Error::Cancelled,
        None => {}
    }
    if e.get_ref().is_some_and(|r| r.is::<ureq::Error>()) {
        if let Some(Ok(u)) = e.into_inner().map(|b| b.downcast::<ureq::Error>()) {
            return map_ureq(*u);
        }
        return Error::Network("body read failed".into());
    }
    let text = scrub(&e.to_string());
    if e.get_ref().is_some_and(|r| r.is::<TlsFailure>()) {
        return Error::Tls(text);
    }
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Error::Timeout(text),
        _ => Error::Network(text),
    }
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// How long a response head, or a small (JSON) answer, may take as a whole:
/// every read waits at most the I/O timeout, but a server that trickles a
/// byte at a time must not hold a transfer forever.
pub fn small_answer_deadline(io_timeout: Duration) -> Duration {
    io_timeout.saturating_mul(2).max(Duration::from_secs(1))
}

/// How long an upload waits for `100 Continue` before sending its body
/// anyway: curl's default too.
const AWAIT_100: Duration = Duration::from_secs(1);

/// Used where the I/O timeout is not at hand.
pub(crate) const DEFAULT_SMALL_ANSWER_TIME: Duration = Duration::from_secs(60);

/// Reads after `head` until `done` says the bytes so far suffice, the body
/// ends, or more than `cap` bytes are in (one more than `cap`, so the caller
/// sees the excess), failing with a timeout once `within` has passed
/// (checked between reads; each read is bounded by the I/O timeout). A
/// failed read comes back with how many bytes had arrived.
fn read_until(
    reader: &mut dyn Read,
    head: Vec<u8>,
    cap: u64,
    within: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> std::result::Result<Vec<u8>, (Error, usize)> {
    let deadline = Instant::now() + within;
    let mut buf = head;
    let mut piece = [0u8; 8192];
    while (buf.len() as u64) <= cap && !done(&buf) {
        if Instant::now() > deadline {
            let e = Error::Timeout(format!(
                "a small answer was still arriving after {} ms ({} bytes)",
                within.as_millis(),
                buf.len()
            ));
            return Err((e, buf.len()));
        }
        let want = ((cap + 1 - buf.len() as u64) as usize).min(piece.len());
        match reader.read(&mut piece[..want]) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && stop_of(&e).is_none() => {}
            Err(e) => return Err((map_io(e), buf.len())),
        }
    }
    Ok(buf)
}

/// Reads at most `cap + 1` bytes within `within` (see `read_until`).
fn read_head(reader: &mut dyn Read, cap: u64, within: Duration) -> Result<Vec<u8>> {
    read_until(reader, Vec::new(), cap, within, |_| false).map_err(|(e, _)| e)
}

/// A JSON API's answer (the token endpoints, media/upload, upload_by_url):
/// its body read within `within`, a status other than 200 as
/// `Error::HttpStatus` naming `detail`, then its fields, a non-zero
/// errcode as the error.
pub fn read_api_answer(
    response: ureq::http::Response<Body>,
    within: Duration,
    detail: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let status = response.status().as_u16();
    let bytes = read_small_body_within(response.into_body(), within)?;
    if status != 200 {
        return Err(Error::HttpStatus {
            status,
            detail: detail.to_string(),
        });
    }
    parse_api_json(&bytes)
}

/// Reads a small body whole, refusing more than `MAX_JSON_BODY`, failing
/// with a timeout when it takes longer than `within` in all (see
/// `small_answer_deadline`).
pub fn read_small_body_within(body: Body, within: Duration) -> Result<Vec<u8>> {
    let buf = read_head(&mut body.into_reader(), MAX_JSON_BODY, within)?;
    if buf.len() as u64 > MAX_JSON_BODY {
        return Err(Error::Protocol(format!(
            "answer body larger than {MAX_JSON_BODY} bytes where JSON was expected"
        )));
    }
    Ok(buf)
}

/// Refuses a Content-Encoding other than identity: media requests never
/// ask for one (Range offsets count identity bytes, and compressed bytes
/// saved as the media would corrupt it).
fn check_identity_encoding(headers: &HeaderMap) -> Result<()> {
    for v in headers.get_all("content-encoding") {
        let identity = v.to_str().is_ok_and(|v| {
            v.split(',').all(|t| {
                let t = t.trim();
                t.is_empty() || t.eq_ignore_ascii_case("identity")
            })
        });
        if !identity {
            return Err(Error::Protocol(format!(
                "the server sent Content-Encoding {:?}, which was never asked for",
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(40)
                    .collect::<String>()
            )));
        }
    }
    Ok(())
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

/// Where a media/get answer came from: the API, or the URL a `video_url`
/// answer named (a CDN, whose bodies carry no Content-Disposition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFrom {
    Api,
    VideoUrl,
}

/// A type no media is served as: JSON, or any text. Such an answer without
/// Content-Disposition is an error or a video URL, never the media.
fn json_or_text(content_type: &str) -> bool {
    let ct = content_type.trim().to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence.ends_with("+json") || essence.starts_with("text/")
}

/// Decides by headers (and, for an untyped API answer from byte 0, by its
/// first byte) whether a media/get answer is a file, an errcode or a video
/// URL. Content-Disposition makes it a file whatever its bytes (a `file`
/// upload may itself be JSON). Without one, an answer typed as JSON or text,
/// or an API answer whose body starts as JSON, is read up to
/// `MAX_JSON_BODY` (within `json_within`) and becomes its errcode, or
/// `Protocol` when it holds none: whatever its Content-Length, not one of
/// its bytes is ever delivered as media.
pub fn classify(
    response: Response<Body>,
    json_within: Duration,
    from: AnswerFrom,
) -> Result<MediaAnswer> {
    let status = response.status().as_u16();
    let headers = response.headers();
    let disposition = headers.get("content-disposition").is_some();
    // WeCom sends the errcode in headers as well; trust it where present.
    if let Some(code) = header_str(headers, "error-code").and_then(|c| c.trim().parse::<i32>().ok())
    {
        if code != 0 && !disposition {
            let msg = header_str(headers, "error-msg").unwrap_or("").to_string();
            let body =
                read_small_body_within(response.into_body(), json_within).unwrap_or_default();
            return match parse_api_json(&body) {
                Err(e @ Error::WeChat { .. }) => Err(e),
                _ => Err(Error::wechat(code, scrub(&msg))),
            };
        }
    }
    match status {
        200 | 206 => {
            check_identity_encoding(headers)?;
            if disposition {
                return Ok(file(response, Vec::new()));
            }
            let ct = header_str(headers, "content-type").map(str::to_string);
            if ct.as_deref().is_some_and(json_or_text) {
                let (_, body) = response.into_parts();
                let head = read_answer(&mut body.into_reader(), Vec::new(), json_within)?;
                return not_media(&head, ct.as_deref(), from);
            }
            // Bytes in the middle of a media can be anything: only an
            // answer from byte 0 is looked at.
            let from_zero = status == 200
                || header_str(headers, "content-range")
                    .and_then(|v| crate::range::parse_content_range(v).ok())
                    .is_some_and(|cr| cr.start == 0);
            if from != AnswerFrom::Api || !from_zero {
                return Ok(file(response, Vec::new()));
            }
            let (parts, body) = response.into_parts();
            let mut reader = body.into_reader();
            let head = read_until_json_start(&mut reader, json_within)?;
            if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
                let whole = read_answer(&mut reader, head, json_within)?;
                return not_media(&whole, ct.as_deref(), from);
            }
            Ok(MediaAnswer::File {
                status,
                headers: Box::new(parts.headers),
                prefix: head,
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
            let detail = read_small_body_within(response.into_body(), json_within)
                .map(|b| scrub(&String::from_utf8_lossy(&b[..b.len().min(200)])))
                .unwrap_or_default();
            Err(Error::HttpStatus { status, detail })
        }
    }
}

/// Reads an answer that is not the media, after `head`: until it holds a
/// whole JSON value, ends, or passes `MAX_JSON_BODY`. A complete JSON object
/// ends the read even when the framing promises more (a Content-Length of
/// 10^15), and bytes that were cut short are reported as such, not as media.
fn read_answer(reader: &mut dyn Read, head: Vec<u8>, within: Duration) -> Result<Vec<u8>> {
    let complete =
        |b: &[u8]| !b.is_empty() && serde_json::from_slice::<serde_json::Value>(b).is_ok();
    read_until(reader, head, MAX_JSON_BODY, within, complete).map_err(|(e, got)| {
        if got == 0 || matches!(e, Error::Cancelled | Error::Aborted(_) | Error::Timeout(_)) {
            e
        } else {
            Error::Protocol(format!(
                "an answer that is not the media was cut short after {got} bytes ({e})"
            ))
        }
    })
}

/// Reads until the body's first byte that is not white space (or its end,
/// or `MAX_JSON_BODY` of white space), to tell JSON from media.
fn read_until_json_start(reader: &mut dyn Read, within: Duration) -> Result<Vec<u8>> {
    let started = |b: &[u8]| b.iter().any(|c| !c.is_ascii_whitespace());
    read_until(reader, Vec::new(), MAX_JSON_BODY, within, started).map_err(|(e, _)| e)
}

/// What an answer that is not the media says: its errcode, a video URL
/// (from the API only), or a protocol error.
fn not_media(body: &[u8], content_type: Option<&str>, from: AnswerFrom) -> Result<MediaAnswer> {
    let what = || {
        format!(
            "an answer without Content-Disposition{}",
            content_type.map_or(String::new(), |ct| format!(
                " typed {:?}",
                ct.chars().take(40).collect::<String>()
            ))
        )
    };
    if body.len() as u64 > MAX_JSON_BODY {
        return Err(Error::Protocol(format!(
            "{} ran past {MAX_JSON_BODY} bytes: it is not the media and holds no readable errcode",
            what()
        )));
    }
    let map = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(_)) => parse_api_json(body)?,
        _ => {
            return Err(Error::Protocol(format!(
                "{} is not JSON ({} bytes): it is not the media",
                what(),
                body.len()
            )))
        }
    };
    match map.get("video_url").and_then(|u| u.as_str()) {
        Some(url) if from == AnswerFrom::Api => Ok(MediaAnswer::VideoUrl(url.to_string())),
        Some(_) => Err(Error::Protocol(
            "a video_url answered with another video_url".into(),
        )),
        None => Err(Error::Protocol(format!(
            "{} holds no errcode and no video_url: it is not the media",
            what()
        ))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Response<Body> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::builder().data(body))
            .expect("a valid test response")
    }

    #[test]
    fn an_unrequested_content_encoding_is_refused() {
        // Regression (hostile server, issue 8): gzip bytes were saved as the media.
        for enc in ["gzip", "br", "x-gzip, identity", "deflate"] {
            let r = answer(206, &[("content-encoding", enc)], vec![0x1f, 0x8b]);
            assert!(
                matches!(
                    classify(r, Duration::from_secs(1), AnswerFrom::Api),
                    Err(Error::Protocol(_))
                ),
                "{enc}"
            );
        }
        for enc in ["identity", " identity ", ""] {
            let r = answer(206, &[("content-encoding", enc)], vec![1, 2]);
            assert!(
                classify(r, Duration::from_secs(1), AnswerFrom::Api).is_ok(),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn an_endless_json_typed_answer_is_not_a_file() {
        // Regression (hostile server, issue 8): a JSON-typed 200 without
        // Content-Disposition or length that never ended was streamed to
        // the target as the media.
        let big = vec![b' '; (MAX_JSON_BODY + 10) as usize];
        let r = answer(200, &[("content-type", "application/json")], big.clone());
        assert!(matches!(
            classify(r, Duration::from_secs(5), AnswerFrom::Api),
            Err(Error::Protocol(_))
        ));
        // Untyped, or with a disposition: still a file.
        let r = answer(200, &[], big.clone());
        assert!(matches!(
            classify(r, Duration::from_secs(5), AnswerFrom::Api),
            Ok(MediaAnswer::File { .. })
        ));
        let r = answer(
            200,
            &[
                ("content-type", "application/json"),
                ("content-disposition", "attachment; filename=a.json"),
            ],
            big,
        );
        assert!(matches!(
            classify(r, Duration::from_secs(5), AnswerFrom::Api),
            Ok(MediaAnswer::File { .. })
        ));
        let r = answer(
            200,
            &[("content-type", "text/plain")],
            br#"{"errcode":40007,"errmsg":"invalid media_id"}"#.to_vec(),
        );
        assert!(matches!(
            classify(r, Duration::from_secs(5), AnswerFrom::Api),
            Err(Error::WeChat { code: 40007, .. })
        ));
    }

    #[test]
    fn an_answer_without_disposition_typed_json_or_text_is_never_a_file() {
        let sec = Duration::from_secs(5);
        let errcode = br#"{"errcode":40007,"errmsg":"invalid media_id"}"#.to_vec();
        // Whatever its declared length (absent, huge), a JSON or text type
        // without Content-Disposition is read as an answer, not as media.
        for (status, headers) in [
            (200, vec![("content-type", "application/json")]),
            (
                200,
                vec![
                    ("content-type", "text/plain"),
                    ("content-length", "1000000000000000"),
                ],
            ),
            (
                206,
                vec![
                    ("content-type", "application/json; charset=utf-8"),
                    ("content-range", "bytes 1048576-2097151/9999999"),
                ],
            ),
            (200, vec![("content-type", "application/problem+json")]),
            (200, vec![("content-type", "text/html")]),
        ] {
            let r = answer(status, &headers, errcode.clone());
            let got = classify(r, sec, AnswerFrom::Api);
            assert!(
                matches!(got, Err(Error::WeChat { code: 40007, .. })),
                "{headers:?}"
            );
            // Not JSON, or JSON without an errcode: a protocol error.
            for body in [&b"hello, not media"[..], b"{\"a\":1}", b"[1,2]"] {
                let r = answer(status, &headers, body.to_vec());
                let got = classify(r, sec, AnswerFrom::VideoUrl);
                assert!(
                    matches!(got, Err(Error::Protocol(_))),
                    "{headers:?} {body:?}"
                );
            }
        }
        // Untyped, or typed as media, but starting as JSON from byte 0: the same.
        for headers in [vec![], vec![("content-type", "application/octet-stream")]] {
            let mut body = b"  \n".to_vec();
            body.extend_from_slice(&errcode);
            let r = answer(200, &headers, body);
            let got = classify(r, sec, AnswerFrom::Api);
            assert!(
                matches!(got, Err(Error::WeChat { code: 40007, .. })),
                "{headers:?}"
            );
            let r = answer(200, &headers, b"{not json".to_vec());
            assert!(matches!(
                classify(r, sec, AnswerFrom::Api),
                Err(Error::Protocol(_))
            ));
        }
        // A '{' in the middle of a media, or at the start of a CDN video, is media.
        let r = answer(
            206,
            &[
                ("content-type", "application/octet-stream"),
                ("content-range", "bytes 16-31/64"),
            ],
            errcode.clone(),
        );
        assert!(matches!(
            classify(r, sec, AnswerFrom::Api),
            Ok(MediaAnswer::File { .. })
        ));
        let r = answer(200, &[("content-type", "video/mp4")], errcode.clone());
        assert!(matches!(
            classify(r, sec, AnswerFrom::VideoUrl),
            Ok(MediaAnswer::File { .. })
        ));
        // A video_url is followed from the API only.
        let video = br#"{"video_url":"http://127.0.0.1:1/v.mp4"}"#.to_vec();
        let r = answer(200, &[("content-type", "text/plain")], video.clone());
        assert!(matches!(
            classify(r, sec, AnswerFrom::Api),
            Ok(MediaAnswer::VideoUrl(_))
        ));
        let r = answer(200, &[("content-type", "text/plain")], video);
        assert!(matches!(
            classify(r, sec, AnswerFrom::VideoUrl),
            Err(Error::Protocol(_))
        ));
        // Media bytes arrive whole after the look at byte 0.
        let r = answer(200, &[], b"\x89PNG....".to_vec());
        match classify(r, sec, AnswerFrom::Api) {
            Ok(MediaAnswer::File {
                prefix, mut reader, ..
            }) => {
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).expect("rest");
                assert_eq!([prefix, rest].concat(), b"\x89PNG....");
            }
            _ => panic!("a PNG without a type is media"),
        }
    }

    /// Yields one byte per read, sleeping first: a trickling server.
    struct Trickle(Duration);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(self.0);
            buf[0] = b' ';
            Ok(1)
        }
    }

    #[test]
    fn a_trickled_small_answer_times_out_as_a_whole() {
        // Regression (hostile server, issue 8): one byte per read, each inside
        // the I/O timeout, held a transfer for as long as the server liked.
        let t0 = Instant::now();
        let r = read_head(
            &mut Trickle(Duration::from_millis(5)),
            MAX_JSON_BODY,
            Duration::from_millis(200),
        );
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        let r = read_head(&mut &b"{}"[..], MAX_JSON_BODY, Duration::from_millis(200));
        assert_eq!(r.expect("small"), b"{}");
        assert!(small_answer_deadline(Duration::from_millis(1)) >= Duration::from_secs(1));
    }

    #[test]
    fn tls_failures_map_to_the_tls_code() {
        // Regression (issue 8, tests/it/tls.rs): an untrusted certificate came
        // back as WXM_E_NETWORK ("invalid peer certificate: UnknownIssuer").
        let io =
            || std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate");
        let e = map_ureq(mark_tls(ureq::Error::Io(io()), true));
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
        // The same kind on a plain connection is not TLS.
        let e = map_ureq(mark_tls(ureq::Error::Io(io()), false));
        assert!(matches!(e, Error::Network(_)), "{e:?}");
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = map_ureq(mark_tls(ureq::Error::Io(reset), true));
        assert!(matches!(e, Error::Network(_)), "{e:?}");
    }
}
