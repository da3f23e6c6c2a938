//! The async upload (异步上传临时素材, WeCom and kf only):
//! `POST /cgi-bin/media/upload_by_url` starts a job that fetches a URL with
//! Range requests in the background; `POST /cgi-bin/media/get_upload_by_url_result`
//! reports it. The fetch is a small HTTP/1.1 client on tokio: 4 MiB chunks,
//! streamed to a temp file with an incremental MD5, never whole in memory.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::md5::Md5;
use crate::state::{JobState, Media, Shared, Source, UrlFetch};
use crate::util::{self, query_get};
use crate::wechat::{drain, errcode, errcode_msg, json_ok, upload_path, Resp};

/// Bytes asked per Range request.
pub const FETCH_CHUNK: u64 = 4 * 1024 * 1024;
/// Anything at or below this many bytes is refused (45001), like uploads' "> 5 bytes".
const MIN_SIZE: u64 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for any read (head or body) from the fetched server.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounds on a response head from the fetched server.
const MAX_HEAD_LINE: u64 = 16 * 1024;
const MAX_HEAD_LINES: usize = 200;
/// A server handing out tiny chunks cannot keep a job going forever.
const MAX_REQUESTS_PER_JOB: u64 = 100_000;

/// Reads a JSON object body of at most 64 KiB; Err(47001) otherwise.
async fn read_json(req: Request<Incoming>) -> Result<Value, i64> {
    let body = http_body_util::Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|_| 47001)?
        .to_bytes();
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(47001),
    }
}

/// Token check, then the platform: the async upload is a WeCom (and kf) API.
async fn preamble(
    sh: &Shared,
    q: &[(String, String)],
    req: Request<Incoming>,
) -> Result<Value, Resp> {
    if let Err(c) = sh.check_token(query_get(q, "access_token")) {
        drain(req.into_body()).await;
        return Err(errcode(sh, c));
    }
    if !sh.platform.is_wecom_like() {
        drain(req.into_body()).await;
        return Err(errcode(sh, 48001));
    }
    read_json(req).await.map_err(|c| errcode(sh, c))
}

/// What a job fetches.
#[derive(Clone, Debug)]
struct JobReq {
    kind: String,
    filename: String,
    url: String,
    md5: String,
}

/// Validates the fields of an `upload_by_url` body.
fn validate(v: &Value) -> Result<JobReq, (i64, String)> {
    let bad = |field: &str, why: &str| (40058, format!("invalid Request Parameter: {field} {why}"));
    let scene_ok = match v.get("scene") {
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "1",
        _ => false,
    };
    if !scene_ok {
        return Err(bad("scene", "must be 1"));
    }
    let kind = match v.get("type").and_then(Value::as_str) {
        Some(t @ ("video" | "file")) => t.to_string(),
        _ => {
            return Err((
                40004,
                "invalid media type: type must be video or file".to_string(),
            ))
        }
    };
    let filename = match v.get("filename").and_then(Value::as_str) {
        Some(f) if !f.is_empty() && f.len() <= 128 => f.to_string(),
        _ => return Err(bad("filename", "must be 1 to 128 bytes")),
    };
    let url = match v.get("url").and_then(Value::as_str) {
        Some(u) if !u.is_empty() && u.len() <= 1024 && parse_url(u).is_some() => u.to_string(),
        _ => return Err(bad("url", "must be an http(s) URL of 1 to 1024 bytes")),
    };
    let md5 = match v.get("md5").and_then(Value::as_str) {
        Some(m) if m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()) => {
            m.to_ascii_lowercase()
        }
        _ => return Err(bad("md5", "must be 32 hex digits")),
    };
    Ok(JobReq {
        kind,
        filename,
        url,
        md5,
    })
}

/// `POST /cgi-bin/media/upload_by_url?access_token=T`.
pub async fn upload_by_url(
    sh: &Arc<Shared>,
    q: &[(String, String)],
    req: Request<Incoming>,
) -> Resp {
    let v = match preamble(sh, q, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let job = match validate(&v) {
        Ok(j) => j,
        Err((code, msg)) => return errcode_msg(sh, code, &msg),
    };
    let jobid = sh.new_jobid();
    sh.add_job(&jobid);
    tokio::spawn(run_job(sh.clone(), jobid.clone(), job));
    json_ok(sh, json!({"errcode": 0, "errmsg": "ok", "jobid": jobid}))
}

/// `POST /cgi-bin/media/get_upload_by_url_result?access_token=T`.
pub async fn result(sh: &Arc<Shared>, q: &[(String, String)], req: Request<Incoming>) -> Resp {
    let v = match preamble(sh, q, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let job = v
        .get("jobid")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 128)
        .and_then(|j| sh.job(j));
    let Some(job) = job else {
        return errcode_msg(sh, 40058, "invalid jobid");
    };
    let (status, detail) = match job.state {
        JobState::Processing => (1, json!({})),
        JobState::Done {
            media_id,
            created_at,
        } => (
            2,
            json!({"errcode": 0, "errmsg": "ok", "media_id": media_id, "created_at": created_at.to_string()}),
        ),
        JobState::Failed { errcode, errmsg } => (3, json!({"errcode": errcode, "errmsg": errmsg})),
    };
    json_ok(
        sh,
        json!({"errcode": 0, "errmsg": "ok", "status": status, "detail": detail}),
    )
}

/// Fetches, then waits out `job_delay`, then records the outcome.
async fn run_job(sh: Arc<Shared>, jobid: String, job: JobReq) {
    let started = Instant::now();
    let media_id = sh.new_media_id();
    // Fetched into the private temp dir; moved into `--media DIR` (with
    // --store-uploads) only once complete, so no partial file lands there.
    let tmp = sh.upload_dir.join(&media_id);
    let outcome = fetch(&sh, &jobid, &job, &tmp).await;
    if let Some(due) = started.checked_add(sh.job_delay) {
        tokio::time::sleep_until(due.into()).await;
    }
    match outcome {
        Ok((size, sha256)) => {
            let path = place(&sh, tmp, &job.filename, &media_id);
            let now = sh.now();
            let media = Media {
                id: media_id.clone(),
                filename: job.filename.clone(),
                content_type: util::content_type_for(&job.filename).to_string(),
                kind: job.kind.clone(),
                size,
                sha256: std::sync::OnceLock::from(sha256),
                source: Source::File(path),
                encrypted: false,
                is_async: true,
                video: false,
                created_at: now,
            };
            let state = JobState::Done {
                media_id,
                created_at: now,
            };
            sh.finish_job(&jobid, state, Some(media));
        }
        Err(f) => {
            let _ = std::fs::remove_file(&tmp);
            sh.finish_job(
                &jobid,
                JobState::Failed {
                    errcode: f.code,
                    errmsg: f.msg,
                },
                None,
            );
        }
    }
}

/// Moves a fetched file to where an upload of that name goes (see
/// `upload_path`); keeps it in the temp dir if it cannot be moved.
fn place(sh: &Shared, tmp: std::path::PathBuf, filename: &str, id: &str) -> std::path::PathBuf {
    let dest = upload_path(sh, filename, id);
    if dest == tmp {
        return tmp;
    }
    if std::fs::rename(&tmp, &dest).is_ok() {
        return dest;
    }
    // Another file system: copy, then drop the temp file.
    if std::fs::copy(&tmp, &dest).is_ok() {
        let _ = std::fs::remove_file(&tmp);
        return dest;
    }
    let _ = std::fs::remove_file(&dest);
    tmp
}

struct Failure {
    code: i64,
    msg: String,
}

fn fail<T>(code: i64, msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        code,
        msg: msg.into(),
    })
}

fn download_failed<T>(why: impl std::fmt::Display) -> Result<T, Failure> {
    fail(830003, format!("download url failed: {why}"))
}

/// An http(s) URL, split for a raw HTTP/1.1 request.
#[derive(Clone, Debug)]
pub struct Url {
    https: bool,
    host: String,
    port: u16,
    /// `Host` header value: as written in the URL.
    authority: String,
    /// Path and query, at least "/".
    target: String,
}

/// Parses `http://host[:port]/path?query` (and https); None if it is not one.
pub fn parse_url(s: &str) -> Option<Url> {
    let (scheme, rest) = s.split_once("://")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let mut target = rest[end..].split('#').next().unwrap_or("").to_string();
    if !target.starts_with('/') {
        target.insert(0, '/');
    }
    if authority.is_empty()
        || authority.contains('@')
        || authority.bytes().any(|b| b <= b' ' || b == 0x7f)
        || target.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return None;
    }
    let default_port = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after {
            "" => default_port,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Url {
        https,
        host,
        port,
        authority: authority.to_string(),
        target,
    })
}

/// An open connection to the fetched server.
struct Conn {
    r: BufReader<TcpStream>,
}

/// How the body of a response is delimited.
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    framing: Framing,
    keep_alive: bool,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn timed<T>(
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    match tokio::time::timeout(IO_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        )),
    }
}

async fn connect(url: &Url) -> std::io::Result<Conn> {
    let host = url.host.clone();
    let s = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, url.port))).await
    {
        Ok(r) => r?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        }
    };
    let _ = s.set_nodelay(true);
    Ok(Conn {
        r: BufReader::with_capacity(64 * 1024, s),
    })
}

/// One line of a response head, without CRLF; bounded.
async fn read_line(r: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = timed((&mut *r).take(MAX_HEAD_LINE).read_until(b'\n', &mut line)).await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "response head line too long",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

impl Conn {
    /// Sends `GET target` with `Range: bytes=start-end` and reads the head.
    async fn request(&mut self, url: &Url, start: u64, end: u64) -> std::io::Result<Head> {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nRange: bytes={start}-{end}\r\nUser-Agent: wxmedia-emulator\r\nAccept: */*\r\n\r\n",
            url.target, url.authority
        );
        timed(self.r.get_mut().write_all(req.as_bytes())).await?;
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        // Interim 1xx answers are skipped.
        loop {
            let status_line = read_line(&mut self.r).await?;
            let mut parts = status_line.split_whitespace();
            let version = parts.next().unwrap_or("");
            if !version.starts_with("HTTP/1.") {
                return Err(bad("not an HTTP/1.x response"));
            }
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("bad status line"))?;
            let mut headers = Vec::new();
            loop {
                let l = read_line(&mut self.r).await?;
                if l.is_empty() {
                    break;
                }
                if headers.len() >= MAX_HEAD_LINES {
                    return Err(bad("too many response headers"));
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            if (100..200).contains(&status) {
                continue;
            }
            let mut head = Head {
                status,
                headers,
                framing: Framing::Close,
                keep_alive: version != "HTTP/1.0",
            };
            if head
                .get("connection")
                .is_some_and(|c| c.to_ascii_lowercase().contains("close"))
            {
                head.keep_alive = false;
            }
            let chunked = head
                .get("transfer-encoding")
                .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
            head.framing = if chunked {
                Framing::Chunked
            } else if let Some(cl) = head.get("content-length") {
                Framing::Length(cl.parse().map_err(|_| bad("bad Content-Length"))?)
            } else if status == 204 || status == 304 {
                Framing::Length(0)
            } else {
                head.keep_alive = false;
                Framing::Close
            };
            return Ok(head);
        }
    }

    /// Reads a body of exactly `want` bytes into `sink`; an error if the
    /// server sends fewer or more.
    async fn read_body(
        &mut self,
        framing: &Framing,
        want: u64,
        sink: &mut impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        let mut got = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        match framing {
            Framing::Length(n) => {
                if *n != want {
                    return Err(bad(format!(
                        "Content-Length {n} does not match Content-Range length {want}"
                    )));
                }
                while got < want {
                    let k = ((want - got) as usize).min(buf.len());
                    let r = timed(self.r.read(&mut buf[..k])).await?;
                    if r == 0 {
                        return Err(bad(format!("body cut after {got} of {want} bytes")));
                    }
                    sink(&buf[..r])?;
                    got += r as u64;
                }
            }
            Framing::Close => loop {
                let r = timed(self.r.read(&mut buf)).await?;
                if r == 0 {
                    break;
                }
                got += r as u64;
                if got > want {
                    return Err(bad(format!("body longer than the {want} bytes announced")));
                }
                sink(&buf[..r])?;
            },
            Framing::Chunked => loop {
                let line = read_line(&mut self.r).await?;
                let size_s = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_s, 16)
                    .map_err(|_| bad(format!("bad chunk size {size_s:?}")))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        if read_line(&mut self.r).await?.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                if got.saturating_add(size) > want {
                    return Err(bad(format!("body longer than the {want} bytes announced")));
                }
                let mut left = size;
                while left > 0 {
                    let k = (left as usize).min(buf.len());
                    let r = timed(self.r.read(&mut buf[..k])).await?;
                    if r == 0 {
                        return Err(bad("chunked body cut".to_string()));
                    }
                    sink(&buf[..r])?;
                    left -= r as u64;
                }
                got += size;
                if !read_line(&mut self.r).await?.is_empty() {
                    return Err(bad("chunk not followed by CRLF".to_string()));
                }
            },
        }
        if got != want {
            return Err(bad(format!("body has {got} bytes, expected {want}")));
        }
        Ok(())
    }
}

/// A parsed Content-Range: the range (None for `*`) and the total (None for `*`).
type ContentRange = (Option<(u64, u64)>, Option<u64>);

/// `bytes a-b/total` (total may be `*`) or `bytes */total`.
fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let range = match range.trim() {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        }
    };
    Some((range, total))
}

/// Fetches the job's URL in Range chunks into `path`; Ok((size, sha256)).
async fn fetch(
    sh: &Arc<Shared>,
    jobid: &str,
    job: &JobReq,
    path: &std::path::Path,
) -> Result<(u64, String), Failure> {
    let Some(url) = parse_url(&job.url) else {
        return fail(830001, "invalid url");
    };
    if url.https {
        return download_failed("the emulator cannot fetch https URLs (no TLS); use http");
    }
    let limit = sh.limit("upload_by_url");
    let file = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => return fail(-1, format!("system error: cannot create a temp file: {e}")),
    };
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut md5 = Md5::new();
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut conn: Option<Conn> = None;
    let mut total: Option<u64> = None;
    let mut next = 0u64;
    let mut requests = 0u64;
    loop {
        requests += 1;
        if requests > MAX_REQUESTS_PER_JOB {
            return download_failed(format!("more than {MAX_REQUESTS_PER_JOB} Range requests"));
        }
        let end = match total {
            None => FETCH_CHUNK - 1,
            Some(t) => next.saturating_add(FETCH_CHUNK - 1).min(t - 1),
        };
        sh.record_url_fetch(UrlFetch {
            jobid: jobid.to_string(),
            url: job.url.clone(),
            start: next,
            end,
        });
        // A kept-alive connection the server has since closed fails at once:
        // then one retry on a fresh connection.
        let reused = conn.is_some();
        let mut c = match conn.take() {
            Some(c) => c,
            None => match connect(&url).await {
                Ok(c) => c,
                Err(e) => return download_failed(format!("connect {}: {e}", url.authority)),
            },
        };
        let head = match c.request(&url, next, end).await {
            Ok(h) => h,
            Err(_) if reused => {
                c = match connect(&url).await {
                    Ok(c) => c,
                    Err(e) => return download_failed(format!("connect {}: {e}", url.authority)),
                };
                match c.request(&url, next, end).await {
                    Ok(h) => h,
                    Err(e) => return download_failed(e),
                }
            }
            Err(e) => return download_failed(e),
        };
        let cr = head.get("content-range").and_then(parse_content_range);
        let first = total.is_none();
        let (a, b, t) = match (head.status, cr) {
            (206, Some((Some((a, b)), Some(t)))) => (a, b, t),
            (206, _) if first => {
                return fail(
                    830001,
                    "invalid url: the server answered 206 without a usable Content-Range",
                )
            }
            (200, _) if first => return fail(
                830001,
                "invalid url: the server does not support Range (answered 200, no Content-Range)",
            ),
            (416, Some((None, Some(t)))) if first && t <= MIN_SIZE => {
                return fail(
                    45001,
                    format!("media size out of limit: {t} bytes (must be more than {MIN_SIZE})"),
                )
            }
            (st, _) => return download_failed(format!("HTTP {st} for bytes={next}-{end}")),
        };
        match total {
            None => {
                if t <= MIN_SIZE || t > limit {
                    return fail(
                        45001,
                        format!(
                            "media size out of limit: {t} bytes (must be more than {MIN_SIZE} and at most {limit})"
                        ),
                    );
                }
                total = Some(t);
            }
            Some(known) if known != t => {
                return download_failed(format!("size changed from {known} to {t} bytes"))
            }
            Some(_) => {}
        }
        if a != next || b < a || b >= t {
            return download_failed(format!(
                "Content-Range bytes {a}-{b}/{t} does not answer bytes={next}-{end}"
            ));
        }
        let mut write_err: Option<std::io::Error> = None;
        let mut sink = |data: &[u8]| -> std::io::Result<()> {
            md5.update(data);
            sha.update(data);
            if let Err(e) = w.write_all(data) {
                write_err = Some(std::io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
            Ok(())
        };
        let body = c.read_body(&head.framing, b - a + 1, &mut sink).await;
        if let Some(e) = write_err {
            return fail(-1, format!("system error: writing the temp file: {e}"));
        }
        if let Err(e) = body {
            return download_failed(e);
        }
        if head.keep_alive {
            conn = Some(c);
        }
        next = b + 1;
        if next >= t {
            break;
        }
    }
    drop(conn);
    if let Err(e) = w.flush() {
        return fail(-1, format!("system error: writing the temp file: {e}"));
    }
    drop(w);
    let got = util::hex(&md5.finish());
    if got != job.md5 {
        return fail(
            301019,
            format!(
                "media md5 mismatch: the url's content has md5 {got}, not {}",
                job.md5
            ),
        );
    }
    Ok((next, util::hex(sha.finish().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/__video/a?b=c#frag").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.target.as_str()),
            (false, "127.0.0.1", 8080, "/__video/a?b=c")
        );
        let u = parse_url("HTTPS://example.com").unwrap();
        assert_eq!((u.https, u.port, u.target.as_str()), (true, 443, "/"));
        let u = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        for bad in [
            "ftp://a/b",
            "http://",
            "http:///x",
            "http://a:99999/",
            "http://a:x/",
            "http://a b/",
            "http://u@h/",
            "127.0.0.1/x",
            "http://[::1/x",
        ] {
            assert!(parse_url(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some((Some((0, 9)), Some(100)))
        );
        assert_eq!(parse_content_range("bytes */5"), Some((None, Some(5))));
        assert_eq!(
            parse_content_range("bytes 0-9/*"),
            Some((Some((0, 9)), None))
        );
        assert_eq!(parse_content_range("bytes x-9/100"), None);
        assert_eq!(parse_content_range("0-9/100"), None);
    }
}
