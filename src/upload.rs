//! The streaming multipart uploader and the local pre-validation that
//! answers WeChat's own errcodes before a byte is sent.

use crate::cancel::{check_cancel, CancelScope};
use crate::client::Client;
use crate::config::{Format, UploadRule};
use crate::error::{Error, Result};
use crate::event::{self, Kind, Level};
use crate::http::map_ureq;
use crate::range::query_encode;
use crate::retry::{self, Effect, Reached, Retry};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Bytes read to recognise a format.
const SNIFF_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    /// Empty for `uploadimg`, which answers a URL instead.
    pub media_id: String,
    pub kind: String,
    pub created_at: i64,
    /// The permanent image URL answered by `uploadimg`.
    pub url: Option<String>,
}

/// A host reader: fills the buffer, returns bytes read, 0 at the end.
pub type ReadFn<'a> = dyn FnMut(&mut [u8]) -> Result<usize> + 'a;

pub enum UploadSource<'a> {
    Path(PathBuf),
    Reader {
        read: &'a mut ReadFn<'a>,
        length: u64,
    },
}

/// The checked facts of an upload, decided before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub filename: String,
    pub content_type: &'static str,
    pub length: u64,
}

/// Local validation, as WeChat would answer it: type (40004), empty (44001),
/// too small (40006), format by magic bytes (40005), size (per type).
pub fn prepare(
    rule: Option<UploadRule>,
    kind: &str,
    platform_name: &str,
    length: u64,
    head: &[u8],
    filename: &str,
) -> Result<Prepared> {
    let rule = rule.ok_or_else(|| {
        Error::wechat(
            40004,
            format!("invalid media type: {platform_name} does not accept type {kind:?}"),
        )
    })?;
    if length == 0 {
        return Err(Error::wechat(44001, "empty media file"));
    }
    if length <= 5 {
        return Err(Error::wechat(
            40006,
            format!("invalid file size: {length} bytes; WeChat needs more than 5"),
        ));
    }
    let sniffed = Format::sniff(head);
    if !rule.formats.is_empty() {
        match sniffed {
            Some(f) if rule.formats.contains(&f) => {}
            _ => {
                let names: Vec<&str> = rule.formats.iter().map(|f| f.extension()).collect();
                return Err(Error::wechat(
                    40005,
                    format!(
                        "invalid file type: type {kind:?} takes {} and the content is {}",
                        names.join("/"),
                        sniffed.map_or("none of them", |f| f.extension())
                    ),
                ));
            }
        }
    }
    if length > rule.limit {
        return Err(Error::wechat(
            rule.too_large,
            format!(
                "{kind} of {length} bytes is over the limit of {} bytes{}",
                rule.limit,
                if kind == "file" || kind == "video" {
                    "; larger files go through upload_by_url (WeCom async upload)"
                } else {
                    ""
                }
            ),
        ));
    }
    let filename = upload_filename(filename, sniffed);
    let content_type = sniffed.map_or("application/octet-stream", Format::content_type);
    Ok(Prepared {
        filename,
        content_type,
        length,
    })
}

/// The filename WeChat sees: the last path component, raw UTF-8, ending in
/// the extension that matches the content (WeChat infers the type from it),
/// with quotes, CR and LF percent-encoded as browsers do.
pub fn upload_filename(name: &str, format: Option<Format>) -> String {
    let mut base = crate::range::safe_filename(name).unwrap_or_else(|| "media".to_string());
    let ext = base
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 8);
    match (format, ext) {
        (Some(f), Some(e)) if f.matches_extension(&e) => {}
        (Some(f), _) => {
            base.push('.');
            base.push_str(f.extension());
        }
        (None, Some(_)) => {}
        (None, None) => base.push_str(".bin"),
    }
    let mut out = String::with_capacity(base.len());
    for c in base.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// The framing around the file bytes of a one-part multipart body.
pub fn multipart_frame(boundary: &str, p: &Prepared) -> (Vec<u8>, Vec<u8>) {
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{}\"; filelength={}\r\nContent-Type: {}\r\n\r\n",
        p.filename, p.length, p.content_type
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    (head.into_bytes(), tail.into_bytes())
}

fn new_boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let a = h.finish();
    h.write_u64(a);
    format!("----wxmedia{:016x}{:016x}", a, h.finish())
}

/// The body: framing head, file bytes, framing tail; the file is streamed.
struct Body<'s, 'r> {
    head: Vec<u8>,
    tail: Vec<u8>,
    phase: u8,
    offset: usize,
    sent: u64,
    length: u64,
    data: &'s mut DataSource<'r>,
    cancel: &'s AtomicBool,
    progress: &'s mut dyn FnMut(u64, u64) -> Result<()>,
    failure: Option<Error>,
}

enum DataSource<'a> {
    File(std::fs::File),
    Reader {
        read: &'a mut ReadFn<'a>,
        /// Bytes read while sniffing, sent first.
        head: Vec<u8>,
        head_sent: usize,
        /// Whether the host's reader was read past the sniffed head: then
        /// the body cannot be sent again.
        consumed: bool,
    },
}

impl DataSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self {
            DataSource::File(f) => f
                .read(buf)
                .map_err(|e| Error::Io(format!("reading the file: {e}"))),
            DataSource::Reader {
                read,
                head,
                head_sent,
                consumed,
            } => {
                if *head_sent < head.len() {
                    let n = (head.len() - *head_sent).min(buf.len());
                    buf[..n].copy_from_slice(&head[*head_sent..*head_sent + n]);
                    *head_sent += n;
                    return Ok(n);
                }
                let n = read(buf)?;
                // Only bytes past the head make the body impossible to resend;
                // a reader that just reports its end can be asked again.
                if n > 0 {
                    *consumed = true;
                }
                Ok(n)
            }
        }
    }

    fn rewind(&mut self) -> bool {
        match self {
            DataSource::File(f) => f.seek(SeekFrom::Start(0)).is_ok(),
            DataSource::Reader {
                head_sent,
                consumed,
                ..
            } => {
                if *consumed {
                    false
                } else {
                    *head_sent = 0;
                    true
                }
            }
        }
    }
}

impl Read for Body<'_, '_> {
    /// Fills `buf` across the parts' edges, as curl does: the multipart head
    /// goes out with the first file bytes and the closing boundary with the
    /// last, not as segments of their own (the socket has TCP_NODELAY, so
    /// each write is a packet and a wakeup of the server). One read of the
    /// source per call.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let sent_before = self.sent;
            let n = self.read_step(&mut buf[filled..])?;
            filled += n;
            let source_read = self.sent > sent_before;
            if n == 0 || (source_read && self.sent < self.length) {
                break;
            }
        }
        Ok(filled)
    }
}

impl<'s, 'r> Body<'s, 'r> {
    /// The body of one request: `head`, `length` bytes of `data`, `tail`.
    fn new(
        head: Vec<u8>,
        tail: Vec<u8>,
        length: u64,
        data: &'s mut DataSource<'r>,
        cancel: &'s AtomicBool,
        progress: &'s mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Self {
        Body {
            head,
            tail,
            phase: 0,
            offset: 0,
            sent: 0,
            length,
            data,
            cancel,
            progress,
            failure: None,
        }
    }

    /// One step of `read`: head bytes, one read of the source, or tail bytes.
    fn read_step(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let fail = |this: &mut Self, e: Error| {
            let io = std::io::Error::other(e.to_string());
            this.failure = Some(e);
            io
        };
        if let Err(e) = check_cancel(self.cancel) {
            return Err(fail(self, e));
        }
        loop {
            match self.phase {
                0 => {
                    if self.offset < self.head.len() {
                        let n = (self.head.len() - self.offset).min(buf.len());
                        buf[..n].copy_from_slice(&self.head[self.offset..self.offset + n]);
                        self.offset += n;
                        return Ok(n);
                    }
                    self.phase = 1;
                }
                1 => {
                    if self.sent >= self.length {
                        // A source longer than announced would be cut
                        // silently: refuse it before the closing boundary.
                        let mut probe = [0u8; 1];
                        match self.data.read(&mut probe) {
                            Ok(0) => {}
                            Ok(_) => {
                                let e = Error::Io(format!(
                                    "the source has more than the {} bytes announced",
                                    self.length
                                ));
                                return Err(fail(self, e));
                            }
                            Err(e) => return Err(fail(self, e)),
                        }
                        self.phase = 2;
                        self.offset = 0;
                        continue;
                    }
                    let want = ((self.length - self.sent).min(buf.len() as u64)) as usize;
                    let n = match self.data.read(&mut buf[..want]) {
                        Ok(n) => n,
                        Err(e) => return Err(fail(self, e)),
                    };
                    if n == 0 {
                        let e = Error::Io(format!(
                            "the source ended after {} of the {} bytes announced",
                            self.sent, self.length
                        ));
                        return Err(fail(self, e));
                    }
                    self.sent += n as u64;
                    if let Err(e) = (self.progress)(self.sent, self.length) {
                        return Err(fail(self, e));
                    }
                    return Ok(n);
                }
                _ => {
                    let n = (self.tail.len() - self.offset).min(buf.len());
                    buf[..n].copy_from_slice(&self.tail[self.offset..self.offset + n]);
                    self.offset += n;
                    return Ok(n);
                }
            }
        }
    }
}

/// Uploads of this size and more ask `Expect: 100-continue`, as curl does
/// from 1 MiB: a server that refuses the request (a stale token, a file too
/// large) answers before the body is sent, and one that takes it is ready
/// for the body when it comes (the emulator spends ~20 % less CPU on a
/// 1 MiB upload that arrives after its `100 Continue` than on one that
/// arrives with the head). Below this size the round trip costs more than
/// it can save.
const EXPECT_CONTINUE_FROM: u64 = 1024 * 1024;

/// How one request of an upload is made.
struct SendOptions<'t> {
    token: &'t str,
    /// Ask `Expect: 100-continue` (EXPECT_CONTINUE_FROM).
    expect_continue: bool,
}

/// What one request of an upload did, for its events.
#[derive(Default)]
struct Sent {
    status: u16,
    /// The file's bytes that left in the body.
    body_bytes: u64,
}

fn platform_name(p: crate::config::Platform) -> &'static str {
    match p {
        crate::config::Platform::WeCom => "WeCom",
        crate::config::Platform::Kf => "WeChat Customer Service",
        crate::config::Platform::Official => "the Official Account API",
        crate::config::Platform::MiniProgram => "the Mini Program API",
    }
}

impl Client {
    pub fn upload(
        &self,
        kind: &str,
        source: UploadSource<'_>,
        filename: Option<&str>,
        cancel: Arc<AtomicBool>,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<UploadResult> {
        let _scope = CancelScope::enter(&cancel);
        check_cancel(&cancel)?;
        let rule = self.config.upload_rule(kind);
        let pname = platform_name(self.config.platform);
        let (mut data, length, head, default_name) = match source {
            UploadSource::Path(path) => {
                let mut file = std::fs::File::open(&path)
                    .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
                let meta = file
                    .metadata()
                    .map_err(|e| Error::Io(format!("cannot stat {}: {e}", path.display())))?;
                if !meta.is_file() {
                    return Err(Error::InvalidArg(format!(
                        "{} is not a regular file",
                        path.display()
                    )));
                }
                let mut head = vec![0u8; SNIFF_LEN];
                let n = read_full(&mut |b| file.read(b).map_err(Error::from), &mut head)?;
                head.truncate(n);
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::Io(format!("cannot rewind {}: {e}", path.display())))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (DataSource::File(file), meta.len(), head, name)
            }
            UploadSource::Reader { read, length } => {
                let mut head = vec![0u8; SNIFF_LEN.min(length as usize)];
                let n = read_full(read, &mut head)?;
                head.truncate(n);
                let ds = DataSource::Reader {
                    read,
                    head: head.clone(),
                    head_sent: 0,
                    consumed: false,
                };
                (ds, length, head, String::new())
            }
        };
        let name = filename.map(str::to_string).unwrap_or(default_name);
        let prepared = prepare(rule, kind, pname, length, &head, &name)?;

        let what = if kind == "uploadimg" {
            "media/uploadimg"
        } else {
            "media/upload"
        };
        let mut expect_continue = prepared.length >= EXPECT_CONTINUE_FROM;
        let events = &self.config.events;
        let endpoint = format!("cgi-bin/{what}");
        Retry::new(self, Effect::CreatesMedia, what).run(&cancel, |retry| {
            let token = match self.token() {
                Ok(t) => t,
                Err(e) => return retry::Attempt::Final(e),
            };
            let options = SendOptions {
                token: &token,
                expect_continue,
            };
            let trace = events.request_started(
                |e| {
                    e.method = "POST";
                    e.endpoint = endpoint.clone();
                    e.attempt = retry.attempt();
                },
                |e| format!("POST {}: {} bytes of {kind}", e.endpoint, prepared.length),
            );
            let mut sent = Sent::default();
            let result = self.send_once(
                kind,
                options,
                &prepared,
                (&mut data, &mut sent),
                &cancel,
                progress,
            );
            event::add(|c| &c.bytes_sent, sent.body_bytes);
            let refused_expect =
                expect_continue && matches!(result, Err(Error::HttpStatus { status: 417, .. }));
            let continued = match (expect_continue, refused_expect) {
                (false, _) => event::Continue::NotAsked,
                (true, true) => event::Continue::Refused,
                (true, false) if sent.status != 0 && sent.body_bytes == 0 => {
                    event::Continue::AnsweredFirst
                }
                (true, false) => event::Continue::BodySent,
            };
            events.request_finished(
                trace,
                sent.status,
                sent.body_bytes,
                || self.event_failure(result.as_ref().err()),
                |e| e.expect_continue = continued,
            );
            let e = match result {
                Ok(r) => return retry::Attempt::Done(r),
                Err(e) => e,
            };
            // 417 Expectation Failed: a server (or proxy) that will not
            // do `Expect`; it read no body, so the same one goes again
            // without it, as curl does.
            if refused_expect && data.rewind() {
                expect_continue = false;
                events.emit(Level::Info, Kind::Fallback, |e| {
                    e.endpoint = endpoint.clone();
                    e.http_status = 417;
                    e.expect_continue = event::Continue::Refused;
                    e.message = "the server refused Expect: 100-continue (417): \
                                 sending the body again without it"
                        .into();
                });
                return retry::Attempt::Again;
            }
            // The local source failed, the host stopped, or the body cannot
            // be read again: nothing to retry.
            if matches!(e, Error::Cancelled | Error::Aborted(_) | Error::Io(_)) || !data.rewind() {
                return retry::Attempt::Final(e);
            }
            retry::Attempt::Failed {
                error: e,
                reached: Reached::Server,
                token: Some(token),
            }
        })
    }

    fn send_once(
        &self,
        kind: &str,
        options: SendOptions<'_>,
        prepared: &Prepared,
        (data, sent): (&mut DataSource<'_>, &mut Sent),
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<UploadResult> {
        let SendOptions {
            token,
            expect_continue,
        } = options;
        let boundary = new_boundary();
        let (head, tail) = multipart_frame(&boundary, prepared);
        let total_len = head.len() as u64 + prepared.length + tail.len() as u64;
        let url = if kind == "uploadimg" {
            format!(
                "{}/cgi-bin/media/uploadimg?access_token={}",
                self.config.base_url,
                query_encode(token)
            )
        } else {
            format!(
                "{}/cgi-bin/media/upload?access_token={}&type={}",
                self.config.base_url,
                query_encode(token),
                query_encode(kind)
            )
        };
        let mut body = Body::new(head, tail, prepared.length, data, cancel, progress);
        let mut request = self
            .agent
            .post(&url)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("Content-Length", total_len.to_string());
        if expect_continue {
            request = request.header("Expect", "100-continue");
        }
        let answer = request.send(ureq::SendBody::from_reader(&mut body));
        sent.body_bytes = body.sent;
        let response = match answer {
            Ok(r) => r,
            Err(e) => return Err(body.failure.take().unwrap_or_else(|| map_ureq(e))),
        };
        sent.status = response.status().as_u16();
        let within = crate::http::small_answer_deadline(self.config.io_timeout);
        let map = crate::http::read_api_answer(response, within, "media/upload")?;
        if kind == "uploadimg" {
            let url = map
                .get("url")
                .and_then(|u| u.as_str())
                .filter(|u| !u.is_empty())
                .ok_or_else(|| Error::Protocol("uploadimg answer without a url".into()))?;
            return Ok(UploadResult {
                media_id: String::new(),
                kind: kind.to_string(),
                created_at: 0,
                url: Some(url.to_string()),
            });
        }
        let media_id = map
            .get("media_id")
            .or_else(|| map.get("thumb_media_id"))
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| Error::Protocol("upload answer without a media_id".into()))?
            .to_string();
        let created_at = match map.get("created_at") {
            Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        let kind = map
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or(kind)
            .to_string();
        Ok(UploadResult {
            media_id,
            kind,
            created_at,
            url: None,
        })
    }
}

/// Reads until `buf` is full or the source ends.
fn read_full(read: &mut ReadFn<'_>, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match read(&mut buf[n..])? {
            0 => break,
            k => n += k.min(buf.len() - n),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Platform;

    const JPG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];

    #[test]
    fn validation_order_and_codes() {
        let w = Platform::WeCom;
        let code = |kind: &str, len: u64, head: &[u8]| {
            prepare(w.upload_rule(kind), kind, "WeCom", len, head, "x")
                .err()
                .map(|e| e.code())
        };
        assert_eq!(code("thumb", 100, JPG), Some(40004));
        assert_eq!(code("image", 0, b""), Some(44001));
        assert_eq!(code("image", 5, JPG), Some(40006));
        assert_eq!(code("image", 100, b"GIF89a......"), Some(40005));
        assert_eq!(code("image", 11 << 20, JPG), Some(40009));
        assert_eq!(code("voice", 3 << 20, b"#!AMR\n"), Some(40010));
        assert_eq!(code("file", 21 << 20, b"anything"), Some(40006));
        assert_eq!(code("file", 100, b"{\"errcode\":1}"), None);
        assert_eq!(
            prepare(
                Platform::MiniProgram.upload_rule("voice"),
                "voice",
                "MP",
                100,
                b"#!AMR",
                "a"
            )
            .err()
            .map(|e| e.code()),
            Some(40004)
        );
    }

    #[test]
    fn filenames() {
        assert_eq!(upload_filename("photo", Some(Format::Jpg)), "photo.jpg");
        assert_eq!(
            upload_filename("photo.JPEG", Some(Format::Jpg)),
            "photo.JPEG"
        );
        assert_eq!(
            upload_filename("photo.png", Some(Format::Jpg)),
            "photo.png.jpg"
        );
        assert_eq!(upload_filename("报告.pdf", None), "报告.pdf");
        assert_eq!(upload_filename("noext", None), "noext.bin");
        assert_eq!(upload_filename("a\"b\r\n.txt", None), "a%22b.txt");
        assert_eq!(upload_filename("../../etc/passwd", None), "passwd.bin");
        assert_eq!(upload_filename("", None), "media.bin");
    }

    #[test]
    fn framing_is_exact() {
        let p = Prepared {
            filename: "语音.amr".into(),
            content_type: "audio/amr",
            length: 6,
        };
        let (h, t) = multipart_frame("B", &p);
        let mut body = h.clone();
        body.extend_from_slice(b"#!AMR\n");
        body.extend_from_slice(&t);
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            "--B\r\nContent-Disposition: form-data; name=\"media\"; filename=\"语音.amr\"; filelength=6\r\nContent-Type: audio/amr\r\n\r\n#!AMR\n\r\n--B--\r\n"
        );
    }

    /// Reads the whole body of a file of `len` bytes with reads of `cap`
    /// bytes; returns the reads' sizes and the bytes.
    fn body_reads(len: usize, cap: usize) -> (Vec<usize>, Vec<u8>, Vec<u8>) {
        let path =
            std::env::temp_dir().join(format!("wxm-body-{}-{len}-{cap}", std::process::id()));
        let content: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(&path, &content).expect("a temporary file");
        let file = std::fs::File::open(&path).expect("the file");
        let _ = std::fs::remove_file(&path);
        let (head, tail) = (b"HEAD-0123456789".to_vec(), b"-TAIL".to_vec());
        let mut expected = head.clone();
        expected.extend_from_slice(&content);
        expected.extend_from_slice(&tail);
        let mut data = DataSource::File(file);
        let cancel = AtomicBool::new(false);
        let mut progress = |_: u64, _: u64| Ok(());
        let mut body = Body::new(head, tail, len as u64, &mut data, &cancel, &mut progress);
        let (mut sizes, mut got, mut buf) = (Vec::new(), Vec::new(), vec![0u8; cap]);
        loop {
            let n = body.read(&mut buf).expect("a read");
            if n == 0 {
                break;
            }
            sizes.push(n);
            got.extend_from_slice(&buf[..n]);
        }
        (sizes, got, expected)
    }

    #[test]
    fn body_reads_carry_the_frame_with_the_file_bytes() {
        // The head rides with the first file bytes, the tail with the last.
        let (sizes, got, expected) = body_reads(100, 64);
        assert_eq!(got, expected);
        assert_eq!(sizes, vec![64, 56]);
        // Reads smaller than the head or the tail still give every byte, in order.
        for cap in [1, 2, 3, 7, 15, 16, 20] {
            let (sizes, got, expected) = body_reads(33, cap);
            assert_eq!(got, expected, "reads of {cap}");
            assert!(sizes.iter().all(|&n| n <= cap));
        }
        let (sizes, got, expected) = body_reads(0, 64);
        assert_eq!((sizes, got.len()), (vec![20], expected.len()));
    }
}
