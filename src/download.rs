//! The aligned Range downloader: sequential or parallel, into an in-order
//! sink or a file (atomic and resumable).

use crate::cancel::{check_cancel, heartbeat, stop_of, CancelScope};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::event::{self, Kind, Level};
use crate::http::{classify, header_str, header_u64, map_io, map_ureq, AnswerFrom, MediaAnswer};
use crate::range::{
    check_partial, content_disposition_filename, next_request, parse_content_range, query_encode,
    ChunkCursor, Request,
};
use crate::retry::{Attempt, Effect, Reached, Retry};
use crate::sync::lock;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

const READ_BUF: usize = 256 * 1024;
/// The most a sink is handed at once from a parallel download's buffers.
const SINK_SLICE: usize = 1024 * 1024;
/// A video_url may redirect; more hops than this is a loop.
const MAX_REDIRECTS: u32 = 5;

/// Receives verified bytes: (offset, data, total size when known).
pub(crate) type Deliver<'a> = dyn FnMut(u64, &[u8], Option<u64>) -> Result<()> + 'a;

/// What the host learns about the media.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaInfo {
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub video_url: Option<String>,
    /// What the library had to do to succeed that a host may want to know:
    /// a part file that failed its check and was downloaded again.
    pub note: Option<String>,
}

/// Which API path serves the media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `cgi-bin/media/get`
    Media,
    /// `cgi-bin/media/get/jssdk` (HD voice)
    Jssdk,
}

#[derive(Debug, Clone)]
enum Source {
    Api,
    /// A URL named by a `video_url` answer (possibly after redirects).
    Url {
        url: String,
        hops: u32,
    },
}

/// State shared by every request of one transfer (and by its workers).
pub(crate) struct Shared<'a> {
    client: &'a Client,
    media_id: &'a str,
    endpoint: Endpoint,
    total: Mutex<Option<u64>>,
    source: Mutex<Source>,
    info: Mutex<MediaInfo>,
}

impl<'a> Shared<'a> {
    /// For `to_object`, which fetches its own spans.
    pub(crate) fn new(client: &'a Client, media_id: &'a str, endpoint: Endpoint) -> Shared<'a> {
        Shared {
            client,
            media_id,
            endpoint,
            total: Mutex::new(None),
            source: Mutex::new(Source::Api),
            info: Mutex::new(MediaInfo::default()),
        }
    }

    pub(crate) fn total(&self) -> Option<u64> {
        *lock(&self.total)
    }

    pub(crate) fn info(&self) -> MediaInfo {
        lock(&self.info).clone()
    }
}

pub struct DownloadOptions<'a> {
    pub media_id: &'a str,
    pub endpoint: Endpoint,
    pub start: u64,
    /// Bytes before this offset go through `Sink::write` in order even in a
    /// parallel download (a resume compares them with its part file).
    pub in_order_until: u64,
    pub cancel: Arc<AtomicBool>,
}

/// Where verified bytes go: called in order, offsets contiguous.
pub trait Sink {
    /// Called once, as soon as the size is known, before any `write`.
    fn size_known(&mut self, _size: u64) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    fn progress(&mut self, _done: u64, _total: u64) -> Result<()> {
        Ok(())
    }
    /// A sink that can take bytes at any offset, from any thread (a file),
    /// lets parallel workers write as data arrives: no reorder buffer.
    fn positional(&mut self) -> Option<Arc<dyn PositionalWriter>> {
        None
    }
}

/// Writes at offsets, from worker threads.
pub trait PositionalWriter: Send + Sync {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Every byte before `end` is written (for the resume record).
    fn prefix_done(&self, end: u64) -> Result<()>;
}

impl Client {
    /// Downloads into `sink`, from `opts.start` to the end.
    pub fn download(&self, opts: &DownloadOptions, sink: &mut dyn Sink) -> Result<MediaInfo> {
        let _scope = CancelScope::enter(&opts.cancel);
        check_cancel(&opts.cancel)?;
        let shared = Shared {
            client: self,
            media_id: opts.media_id,
            endpoint: opts.endpoint,
            total: Mutex::new(None),
            source: Mutex::new(Source::Api),
            info: Mutex::new(MediaInfo::default()),
        };
        let chunk = self.config.chunk_size;
        let parallel = self.config.parallelism > 1;
        let mut size_reported = false;
        let mut pos = opts.start;
        {
            let mut deliver = |off: u64, data: &[u8], total: Option<u64>| -> Result<()> {
                if !size_reported {
                    if let Some(t) = total {
                        sink.size_known(t)?;
                        size_reported = true;
                    }
                }
                debug_assert_eq!(off, pos);
                sink.write(off, data)?;
                pos = off + data.len() as u64;
                sink.progress(pos, total.unwrap_or(0))
            };
            // Sequentially, the whole file; in parallel, the first chunk alone
            // (it tells the size), then the rest by workers.
            // (None when it would not pass the start: a start at u64::MAX
            // is then asked for, and refused, like any start past the end.)
            let first_limit = parallel
                .then(|| {
                    crate::range::align_down(opts.start)
                        .saturating_add(crate::range::parallel_first_request(chunk))
                        // Whole 16-byte blocks: encrypted media refuse others.
                        .max(opts.in_order_until.div_ceil(16).saturating_mul(16))
                })
                .filter(|&limit| limit > opts.start);
            fetch_span(&shared, &opts.cancel, opts.start, first_limit, &mut deliver)?;
        }
        let total = shared.total().unwrap_or(pos);
        if !size_reported {
            sink.size_known(total)?;
        }
        if opts.start > total {
            return Err(Error::InvalidArg(format!(
                "start offset {} is beyond the media size {total}",
                opts.start
            )));
        }
        if pos < total {
            let writer = sink.positional();
            fetch_parallel(&shared, &opts.cancel, pos, total, sink, writer.as_deref())?;
        }
        let mut info = lock(&shared.info).clone();
        info.size = Some(total);
        Ok(info)
    }
}

/// Fetches `[from, limit)` (to the end when `limit` is None), retrying and
/// resuming at the first byte not yet delivered. `deliver` sees each byte
/// once, in order.
pub(crate) fn fetch_span(
    shared: &Shared,
    cancel: &AtomicBool,
    from: u64,
    limit: Option<u64>,
    deliver: &mut Deliver,
) -> Result<()> {
    let client = shared.client;
    let mut pos = from;
    let mut progress_mark = pos;
    // One read buffer for every request of this span, lent by the client.
    let mut lent = client.read_buffer();
    let what = shared.endpoint.path().trim_start_matches("cgi-bin/");
    Retry::new(client, Effect::Reads, what).run(cancel, |retry| {
        let total = shared.total();
        let end = match (limit, total) {
            (Some(l), Some(t)) => Some(l.min(t)),
            (l, t) => l.or(t),
        };
        if total.is_some_and(|t| pos >= t) || end.is_some_and(|e| pos >= e) {
            return Attempt::Done(());
        }
        let req = next_request(pos, client.config.chunk_size, end);
        let mut used_token = None;
        let events = &client.config.events;
        let at = pos;
        // Worked out only when a handler wants request or retry events.
        let (endpoint, via_video_url) = if events.wants(Level::Warning) {
            match &*lock(&shared.source) {
                Source::Api => (shared.endpoint.path().to_string(), false),
                Source::Url { url, .. } => (event::endpoint_of(url), true),
            }
        } else {
            (String::new(), false)
        };
        retry.requesting(&endpoint);
        let trace = events.request_started(
            |e| {
                e.method = "GET";
                e.endpoint = endpoint;
                e.via_video_url = via_video_url;
                e.range_start = req.start;
                e.range_end = req.end + 1;
                e.attempt = retry.attempt();
            },
            |e| format!("GET {} bytes={}-{}", e.endpoint, req.start, req.end),
        );
        let mut status = 0;
        let result = fetch_once(
            shared,
            &req,
            end,
            &mut pos,
            (&mut used_token, &mut status),
            &mut lent.buf,
            deliver,
        );
        event::add(|c| &c.bytes_received, pos - at);
        events.request_finished(
            trace,
            status,
            pos - at,
            || client.event_failure(result.as_ref().err()),
            |_| {},
        );
        if pos > progress_mark {
            retry.progressed();
            progress_mark = pos;
        }
        match result {
            // A whole body (Range ignored): nothing more to ask.
            Ok(true) => Attempt::Done(()),
            Ok(false) => Attempt::Again,
            Err(e) => Attempt::Failed {
                error: e,
                reached: Reached::Server,
                token: used_token,
            },
        }
    })
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Media => "cgi-bin/media/get",
            Endpoint::Jssdk => "cgi-bin/media/get/jssdk",
        }
    }
}

fn media_url(shared: &Shared, token: &str) -> String {
    format!(
        "{}/{}?access_token={}&media_id={}",
        shared.client.config.base_url,
        shared.endpoint.path(),
        query_encode(token),
        query_encode(shared.media_id)
    )
}

/// One request. Returns Ok(true) when a whole-body answer delivered the
/// rest of the span (nothing more to ask), Ok(false) to go on with the
/// next range.
fn fetch_once(
    shared: &Shared,
    req: &Request,
    span_end: Option<u64>,
    pos: &mut u64,
    (used_token, answer_status): (&mut Option<String>, &mut u16),
    buf: &mut Vec<u8>,
    deliver: &mut Deliver,
) -> Result<bool> {
    let client = shared.client;
    let source = lock(&shared.source).clone();
    let url = match &source {
        Source::Api => {
            let token = client.token()?;
            let url = media_url(shared, &token);
            *used_token = Some(token);
            url
        }
        Source::Url { url, .. } => url.clone(),
    };
    let response = client
        .agent
        .get(&url)
        .header("Range", req.header())
        .call()
        .map_err(map_ureq)?;
    let status = response.status().as_u16();
    *answer_status = status;
    if let (Source::Url { url: base, hops }, 301 | 302 | 303 | 307 | 308) = (&source, status) {
        let location = header_str(response.headers(), "location")
            .ok_or_else(|| Error::Protocol("redirect without Location".into()))?;
        let next = resolve_location(base, location)?;
        if *hops >= MAX_REDIRECTS {
            return Err(Error::Protocol(format!(
                "video_url redirected more than {MAX_REDIRECTS} times"
            )));
        }
        *lock(&shared.source) = Source::Url {
            url: next,
            hops: hops + 1,
        };
        return Ok(false);
    }
    if status == 416 {
        // Nothing at or after the asked start: fine when the sink already
        // has every byte (an empty media, or a start at the very end).
        let total = header_str(response.headers(), "content-range")
            .and_then(|v| parse_content_range(v).err().flatten());
        if let Some(t) = total {
            if shared.total().is_none_or(|k| k == t) && *pos >= t {
                *lock(&shared.total) = Some(t);
                return Ok(true);
            }
        }
        return Err(Error::Protocol(format!(
            "range {} not satisfiable (size {})",
            req.header(),
            total.map_or("unknown".into(), |t| t.to_string())
        )));
    }
    let from = match source {
        Source::Api => AnswerFrom::Api,
        Source::Url { .. } => AnswerFrom::VideoUrl,
    };
    let answer = classify(
        response,
        crate::http::small_answer_deadline(client.config.io_timeout),
        from,
    )?;
    match answer {
        MediaAnswer::VideoUrl(url) => {
            check_video_url(&url)?;
            lock(&shared.info).video_url = Some(url.clone());
            *lock(&shared.source) = Source::Url { url, hops: 0 };
            Ok(false)
        }
        MediaAnswer::File {
            status,
            headers,
            prefix,
            mut reader,
        } => {
            let content_length = header_u64(&headers, "content-length");
            // A body framed by Content-Length alone can be read past ureq.
            let known_total = shared.total();
            {
                let mut info = lock(&shared.info);
                if info.content_type.is_none() {
                    info.content_type = header_str(&headers, "content-type").map(str::to_string);
                }
                if info.filename.is_none() {
                    info.filename = headers
                        .get("content-disposition")
                        .and_then(|v| content_disposition_filename(v.as_bytes()));
                }
            }
            if status == 206 {
                let cr_text = header_str(&headers, "content-range")
                    .ok_or_else(|| Error::Protocol("206 without Content-Range".into()))?;
                let cr = parse_content_range(cr_text)
                    .map_err(|_| Error::Protocol(format!("malformed Content-Range {cr_text:?}")))?;
                check_partial(req, &cr, known_total, content_length).map_err(Error::Protocol)?;
                let total = cr.total;
                *lock(&shared.total) = total;
                let body_len = cr.end - cr.start + 1;
                stream_body(
                    prefix,
                    &mut reader,
                    Framing {
                        body_start: req.start,
                        max_len: body_len,
                        expected: Some(body_len),
                        whole: true,
                    },
                    pos,
                    total,
                    buf,
                    deliver,
                )?;
                Ok(false)
            } else {
                // A whole body from byte 0: a small file, or a server that
                // ignores Range. Skip what the sink already has.
                if let (Some(k), Some(cl)) = (known_total, content_length) {
                    if k != cl {
                        return Err(Error::Protocol(format!(
                            "whole-body answer of {cl} bytes, but the size is {k}"
                        )));
                    }
                }
                // The size: announced, or known from earlier answers. A body
                // shorter than it is cut short (an error, resumed by a retry),
                // never the end of the file.
                let size = content_length.or(known_total);
                if let Some(s) = size {
                    *lock(&shared.total) = Some(s);
                }
                // Read no further than the span needs (a parallel worker
                // wants one chunk of it); the rest of the body is dropped
                // with the connection. Without a size (close-delimited or
                // chunked) the whole body is read: its end is the file's.
                let want = match size {
                    Some(s) => span_end.map_or(s, |e| e.min(s)),
                    None => u64::MAX,
                };
                let got = stream_body(
                    prefix,
                    &mut reader,
                    Framing {
                        body_start: 0,
                        max_len: want,
                        expected: size.map(|_| want),
                        whole: size == Some(want),
                    },
                    pos,
                    size,
                    buf,
                    deliver,
                )?;
                if size.is_none() {
                    *lock(&shared.total) = Some(got);
                }
                Ok(true)
            }
        }
    }
}

/// Where an answer's body sits in the file, and how much of it to read.
struct Framing {
    /// The file offset of the body's first byte.
    body_start: u64,
    /// Read no more than this.
    max_len: u64,
    /// Fewer bytes than this is a short body (an error a retry resumes).
    expected: Option<u64>,
    /// `max_len` is the whole body: read on to its end, so the connection
    /// goes back to the keep-alive pool (ureq recycles it only then).
    whole: bool,
}

/// Streams a body that holds the file's bytes from `body_start`, delivering
/// those at and after `*pos` (and, when limited, before `max_len` bytes).
/// Returns the number of body bytes read; a body shorter than `expected` is
/// an error (after the bytes read were delivered, so a retry resumes).
fn stream_body(
    prefix: Vec<u8>,
    reader: &mut dyn Read,
    framing: Framing,
    pos: &mut u64,
    total: Option<u64>,
    buf: &mut Vec<u8>,
    deliver: &mut Deliver,
) -> Result<u64> {
    let Framing {
        body_start,
        max_len,
        expected,
        whole,
    } = framing;
    let mut at = body_start;
    let end = body_start.saturating_add(max_len);
    let handle = |data: &[u8], at: &mut u64, pos: &mut u64, deliver: &mut Deliver| -> Result<()> {
        let len = data.len() as u64;
        let chunk_end = (*at + len).min(end);
        if chunk_end > *pos && *at < chunk_end {
            let from = (*pos).max(*at);
            let slice = &data[(from - *at) as usize..(chunk_end - *at) as usize];
            deliver(from, slice, total)?;
            *pos = chunk_end;
        }
        *at += len;
        Ok(())
    };
    if !prefix.is_empty() {
        handle(&prefix[..], &mut at, pos, deliver)?;
    }
    // Small bodies get a small buffer; the buffer is kept for the span's next request.
    let size = max_len.clamp(4096, READ_BUF as u64) as usize;
    if buf.is_empty() {
        // Zeroed by the allocator (fresh pages from the kernel): only the
        // pages that reads fill are ever touched, where resize writes them all.
        *buf = vec![0; size];
    } else if buf.len() < size {
        buf.resize(size, 0);
    }
    let read_some = |reader: &mut dyn Read, buf: &mut [u8]| loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && stop_of(&e).is_none() => {
                continue
            }
            other => return other,
        }
    };
    while at < end {
        let want = ((end - at).min(buf.len() as u64)) as usize;
        let n = match read_some(reader, &mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(map_io(e)),
        };
        handle(&buf[..n], &mut at, pos, deliver)?;
    }
    if whole && at == end {
        // Expected to answer 0: the body's end, which frees the connection.
        let _ = read_some(reader, &mut buf[..1]);
    }
    let read = at - body_start;
    if let Some(exp) = expected {
        if read < exp {
            return Err(Error::Network(format!(
                "body cut short: {read} of {exp} bytes"
            )));
        }
    }
    Ok(read)
}

fn check_video_url(url: &str) -> Result<()> {
    // Old Official Account documents serve video over plain http; nothing
    // but http(s) is ever followed.
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Error::Protocol(format!(
            "video_url has a scheme other than http/https: {:?}",
            url.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

fn resolve_location(base: &str, location: &str) -> Result<String> {
    let next = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if let Some(path) = location.strip_prefix('/') {
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        format!("{}/{}", &base[..host_end], path)
    } else {
        return Err(Error::Protocol(
            "redirect to a relative or non-http Location".into(),
        ));
    };
    check_video_url(&next)?;
    Ok(next)
}

/// What a parallel download's worker tells the calling thread.
enum Piece {
    /// The next bytes of chunk `idx` (at most `SINK_SLICE`), for a sink
    /// fed in order.
    Data(usize, Vec<u8>),
    /// Chunk `idx`, which ends at the offset given, is complete (delivered,
    /// or written at its offsets).
    Done(usize, u64),
    Failed(Error),
}

/// Fetches `[pos, total)` with up to `parallelism` requests in flight, one
/// chunk per request, from a shared cursor that makes the last chunks
/// smaller so the connections finish together.
///
/// With `writer` (a file), workers write each chunk at its offsets as it
/// arrives: memory stays at one read buffer per worker. Without, they hand
/// their bytes over in pieces and this thread feeds `sink` in order: the
/// chunk it needs next streams straight through, and only chunks that
/// arrive ahead of it wait in memory (at most `parallelism` chunks: workers
/// stay within that window). Either way progress, and a file's resume
/// record, follow this thread.
fn fetch_parallel(
    shared: &Shared,
    cancel: &AtomicBool,
    pos: u64,
    total: u64,
    sink: &mut dyn Sink,
    writer: Option<&dyn PositionalWriter>,
) -> Result<()> {
    let config = &shared.client.config;
    let cursor = Mutex::new(ChunkCursor::new(
        pos,
        total,
        config.chunk_size,
        config.parallelism,
    ));
    let window = config.parallelism as usize;
    let workers = (config.parallelism as usize)
        .min(lock(&cursor).most_chunks())
        .max(1);
    // Index of the next chunk the sink needs: in-order workers stay within
    // a window of it.
    let delivered = Mutex::new(0usize);
    let moved = Condvar::new();
    let halt = Arc::new(AtomicBool::new(false));
    let written = std::sync::atomic::AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<Piece>();
    // Delivered pieces' buffers, reused: no fresh (page-faulting) memory per piece.
    let pool: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    let transfer = event::current();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let transfer = transfer.clone();
            let (cursor, delivered, moved, halt, pool, written) =
                (&cursor, &delivered, &moved, &halt, &pool, &written);
            s.spawn(move || {
                let _scope = CancelScope::enter(halt);
                let _counted = transfer.map(event::TransferScope::enter);
                let fresh = || {
                    let mut b = lock(pool).pop().unwrap_or_default();
                    b.clear();
                    b.reserve(SINK_SLICE);
                    b
                };
                loop {
                    // Taken in order: chunk `idx` is the idx-th of the file.
                    let Some((idx, start, end)) = lock(cursor).take() else {
                        return;
                    };
                    if writer.is_none() {
                        let mut d = lock(delivered);
                        while idx >= *d + window && !halt.load(Ordering::Relaxed) {
                            d = moved
                                .wait_timeout(d, Duration::from_millis(100))
                                .map(|(g, _)| g)
                                .unwrap_or_else(|p| p.into_inner().0);
                        }
                    }
                    if halt.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut piece = Vec::new();
                    let result =
                        fetch_span(shared, halt, start, Some(end), &mut |off, mut d, _| {
                            if let Some(w) = writer {
                                w.write_at(off, d)?;
                                written.fetch_add(d.len() as u64, Ordering::Relaxed);
                                return Ok(());
                            }
                            while !d.is_empty() {
                                if piece.capacity() == 0 {
                                    piece = fresh();
                                }
                                let room = SINK_SLICE - piece.len();
                                let (now, rest) = d.split_at(d.len().min(room));
                                piece.extend_from_slice(now);
                                d = rest;
                                if piece.len() == SINK_SLICE
                                    && tx
                                        .send(Piece::Data(idx, std::mem::take(&mut piece)))
                                        .is_err()
                                {
                                    return Err(Error::Cancelled);
                                }
                            }
                            Ok(())
                        });
                    let sent = match result {
                        Ok(()) => {
                            let last = (!piece.is_empty())
                                .then(|| tx.send(Piece::Data(idx, std::mem::take(&mut piece))));
                            last.unwrap_or(Ok(())).is_ok() && tx.send(Piece::Done(idx, end)).is_ok()
                        }
                        Err(e) => {
                            let _ = tx.send(Piece::Failed(e));
                            false
                        }
                    };
                    if !sent {
                        return;
                    }
                }
            });
        }
        drop(tx);

        let outcome = (|| -> Result<()> {
            // Chunks ahead of `next`: their pieces so far, and their end once complete.
            let mut ahead: BTreeMap<usize, (Vec<Vec<u8>>, Option<u64>)> = BTreeMap::new();
            let mut next = 0usize;
            let mut at = pos;
            let mut reported = u64::MAX;
            let deliver = |sink: &mut dyn Sink, data: Vec<u8>, at: &mut u64| -> Result<()> {
                sink.write(*at, &data)?;
                *at += data.len() as u64;
                lock(&pool).push(data);
                Ok(())
            };
            while at < total {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(Piece::Data(idx, data)) if idx == next => {
                        deliver(&mut *sink, data, &mut at)?
                    }
                    Ok(Piece::Data(idx, data)) => ahead.entry(idx).or_default().0.push(data),
                    Ok(Piece::Done(idx, end)) => ahead.entry(idx).or_default().1 = Some(end),
                    Ok(Piece::Failed(e)) => return Err(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => heartbeat()?,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(Error::Panic("download workers stopped early".into()));
                    }
                }
                // The next chunks, as far as they are complete (a chunk
                // that became next may have arrived in part or whole).
                let before = next;
                while let Some((pieces, done)) = ahead.get_mut(&next) {
                    for data in pieces.drain(..) {
                        deliver(&mut *sink, data, &mut at)?;
                    }
                    let Some(end) = *done else { break };
                    ahead.remove(&next);
                    next += 1;
                    if writer.is_some() {
                        at = end;
                    } else if at != end {
                        return Err(Error::Protocol("chunk length mismatch".into()));
                    }
                }
                if next > before {
                    *lock(&delivered) = next;
                    moved.notify_all();
                    if let Some(w) = writer {
                        w.prefix_done(at)?;
                    }
                }
                // Written at offsets, progress counts every byte on disk.
                let now = match writer {
                    Some(_) => pos + written.load(Ordering::Relaxed),
                    None => at,
                };
                if now != reported {
                    reported = now;
                    sink.progress(now, total)?;
                }
            }
            Ok(())
        })();
        if outcome.is_err() {
            halt.store(true, Ordering::Relaxed);
            moved.notify_all();
        }
        outcome
    })
}

/// The temporary file of `to_path`, for parallel workers: positional
/// writes on a second handle, and the resume record's verified prefix.
struct FileWriter {
    file: std::fs::File,
    meta_path: PathBuf,
    meta: Mutex<PartMeta>,
}

impl PositionalWriter for FileWriter {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Error::Io(format!("writing the temporary file: {e}")))
    }
    fn prefix_done(&self, end: u64) -> Result<()> {
        // Only what is on disk is recorded: a crash may lose unsynced
        // writes, or leave zeros or stale blocks in their place.
        self.file
            .sync_data()
            .map_err(|e| Error::Io(format!("fdatasync of the temporary file: {e}")))?;
        let mut meta = lock(&self.meta);
        meta.complete = Some(end);
        meta.save(&self.meta_path)
    }
}

/// Below this size `to_path` writes no resume record up front: it is
/// written if the transfer fails in-process (so a cancel or a network error
/// resumes as always), and only a crash restarts such a file from byte 0.
/// The record costs a file create, write, rename and unlink per download,
/// about a tenth of the whole transfer time of a 1 MiB media (PERFORMANCE.md).
const RECORD_UP_FRONT_FROM: u64 = 4 * 1024 * 1024;

/// How many bytes of a kept part file are compared with the server's
/// before resuming after them: a crash can leave zeros, stale blocks or
/// another run's bytes past the last durable write, and a part file can be
/// another media's; these bytes, just before the resume point, are where
/// any of that shows.
pub const RESUME_OVERLAP: u64 = 64 * 1024;

/// Why a kept part file was given up, to start again from byte 0.
#[derive(Debug, Clone)]
enum Restart {
    /// The media's size differs from the one recorded with the part file.
    SizeChanged,
    /// Bytes before the resume point differ from the server's.
    Mismatch { from: u64, to: u64 },
}

impl Restart {
    /// What happened, for `MediaInfo::note` and the event.
    fn describe(&self) -> String {
        match self {
            Restart::SizeChanged => "the media changed size since the part file was \
                written: downloaded again from byte 0"
                .to_string(),
            Restart::Mismatch { from, to } => format!(
                "the part file differed from the media at byte {from} (of the \
                 {to} kept): discarded, downloaded again from byte 0"
            ),
        }
    }
}

/// A sink that writes a file in order (the temporary file of `to_path`).
struct FileSink<'a> {
    file: std::fs::File,
    meta_path: PathBuf,
    meta: PartMeta,
    resumed_from: u64,
    /// Bytes before this offset are already in the file: compared, not written.
    verify_until: u64,
    /// Compared so far (from the start of the overlap).
    verified: u64,
    /// Offset of the next byte to write.
    at: u64,
    /// Everything before this is on disk (fdatasync) and recorded.
    durable: u64,
    /// Make the prefix durable and record it at least this often.
    sync_every: u64,
    /// A record file exists (found at the start, or written since).
    recorded: bool,
    restart: Option<Restart>,
    progress: &'a mut dyn FnMut(u64, u64) -> Result<()>,
}

impl FileSink<'_> {
    fn record(&mut self) -> Result<()> {
        self.meta.save(&self.meta_path)?;
        self.recorded = true;
        Ok(())
    }

    /// Syncs what was written and records it as the resumable prefix.
    fn make_durable(&mut self) -> Result<()> {
        let upto = self.at.max(self.durable);
        self.file
            .sync_data()
            .map_err(|e| Error::Io(format!("fdatasync of the temporary file: {e}")))?;
        self.meta.complete = Some(upto);
        self.record()?;
        self.durable = upto;
        Ok(())
    }

    /// Compares `data` (the media's bytes at `offset`) with the part file.
    fn verify(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut kept = vec![0u8; data.len()];
        self.file
            .read_exact_at(&mut kept, offset)
            .map_err(|e| Error::Io(format!("reading back the temporary file: {e}")))?;
        if kept != data {
            let first = kept.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0) as u64;
            self.restart = Some(Restart::Mismatch {
                from: offset + first,
                to: self.verify_until,
            });
            return Err(Error::State("the part file differs from the media".into()));
        }
        self.verified += data.len() as u64;
        Ok(())
    }
}

impl Sink for FileSink<'_> {
    fn size_known(&mut self, size: u64) -> Result<()> {
        if let Some(prev) = self.meta.size {
            if prev != size && self.resumed_from > 0 {
                self.restart = Some(Restart::SizeChanged);
                return Err(Error::State("the media changed size".into()));
            }
        }
        self.meta.size = Some(size);
        self.meta.complete = Some(self.durable);
        // A record found at the start is brought up to date whatever the size.
        if self.recorded || size >= RECORD_UP_FRONT_FROM {
            self.record()?;
        }
        Ok(())
    }
    fn write(&mut self, offset: u64, mut data: &[u8]) -> Result<()> {
        if offset < self.verify_until {
            let kept = ((self.verify_until - offset) as usize).min(data.len());
            self.verify(offset, &data[..kept])?;
            data = &data[kept..];
        }
        if data.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(data)
            .map_err(|e| Error::Io(format!("writing the temporary file: {e}")))?;
        self.at += data.len() as u64;
        if self.at - self.durable >= self.sync_every && self.recorded {
            self.make_durable()?;
        }
        Ok(())
    }
    fn progress(&mut self, done: u64, total: u64) -> Result<()> {
        // The overlap being compared is not progress.
        if done < self.verify_until {
            return Ok(());
        }
        (self.progress)(done, total)
    }
    fn positional(&mut self) -> Option<Arc<dyn PositionalWriter>> {
        let file = self.file.try_clone().ok()?;
        // Until workers report, only what was written in order is verified,
        // and it is made durable before it is recorded.
        self.make_durable().ok()?;
        Some(Arc::new(FileWriter {
            file,
            meta_path: self.meta_path.clone(),
            meta: Mutex::new(self.meta.clone()),
        }))
    }
}

/// What proves that a partial file belongs to the same media.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PartMeta {
    media_id: String,
    endpoint: String,
    size: Option<u64>,
    /// Every byte before this offset was on disk (fdatasync) when the
    /// record was written. A record without it vouches for nothing: a
    /// file's length is no evidence (a crash can extend it with zeros).
    complete: Option<u64>,
}

impl PartMeta {
    /// The record at `path`: whether a file is there at all (one read
    /// tells), and what it says when it is a usable record.
    fn load(path: &Path) -> (bool, Option<PartMeta>) {
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, None),
            Err(_) => (true, None),
            Ok(text) => (true, Self::parse(&text)),
        }
    }

    fn parse(text: &[u8]) -> Option<PartMeta> {
        let v: serde_json::Value = serde_json::from_slice(text).ok()?;
        Some(PartMeta {
            media_id: v.get("media_id")?.as_str()?.to_string(),
            endpoint: v.get("endpoint")?.as_str()?.to_string(),
            size: v.get("size").and_then(|s| s.as_u64()),
            complete: v.get("complete").and_then(|s| s.as_u64()),
        })
    }
    fn save(&self, path: &Path) -> Result<()> {
        let v = serde_json::json!({
            "media_id": self.media_id,
            "endpoint": self.endpoint,
            "size": self.size,
            "complete": self.complete,
        });
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, v.to_string())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::Io(format!("writing resume record: {e}")))
    }
}

pub fn part_paths(target: &Path) -> (PathBuf, PathBuf) {
    let mut part = target.as_os_str().to_owned();
    part.push(".wxmpart");
    let mut meta = part.clone();
    meta.push(".json");
    (PathBuf::from(part), PathBuf::from(meta))
}

impl Client {
    /// Downloads to `target` atomically: bytes go to a sibling temporary file
    /// that is renamed into place only when complete and verified. An
    /// interrupted transfer resumes from that file on the next call for the
    /// same media.
    pub fn download_to_path(
        &self,
        media_id: &str,
        endpoint: Endpoint,
        target: &Path,
        cancel: Arc<AtomicBool>,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<MediaInfo> {
        if target.file_name().is_none() {
            return Err(Error::InvalidArg(format!(
                "{} does not name a file",
                target.display()
            )));
        }
        if target.is_dir() {
            return Err(Error::InvalidArg(format!(
                "{} is a directory",
                target.display()
            )));
        }
        let (part_path, meta_path) = part_paths(target);
        let endpoint_name = format!("{endpoint:?}");
        // Why an earlier round of this call gave up the part file.
        let mut restarted: Option<Restart> = None;
        loop {
            let mut meta = PartMeta {
                media_id: media_id.to_string(),
                endpoint: endpoint_name.clone(),
                size: None,
                complete: None,
            };
            let mut resume = 0;
            let mut recorded = restarted.is_some();
            if restarted.is_none() {
                let (found, prev) = PartMeta::load(&meta_path);
                recorded = found;
                if let Some(prev) = prev {
                    if prev.media_id == meta.media_id && prev.endpoint == meta.endpoint {
                        let len = std::fs::metadata(&part_path).map(|m| m.len()).unwrap_or(0);
                        // Only the recorded, synced prefix counts; bytes past
                        // it (garbage, zeros, a torn write) are cut off.
                        resume = len.min(prev.complete.unwrap_or(0));
                        if prev.size.is_some_and(|s| resume > s) {
                            resume = 0;
                        }
                        meta.size = prev.size;
                    }
                }
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(false)
                .open(&part_path)
                .map_err(|e| Error::Io(format!("cannot create {}: {e}", part_path.display())))?;
            file.set_len(resume)
                .and_then(|_| file.seek(SeekFrom::Start(resume)))
                .map_err(|e| Error::Io(format!("preparing the temporary file: {e}")))?;
            // The kept prefix is proven by fetching its last RESUME_OVERLAP
            // bytes again (from a 16-byte boundary) and comparing them.
            let overlap_from = crate::range::align_down(resume.saturating_sub(RESUME_OVERLAP));
            event::count(|c| c.resumed_from.store(resume, Ordering::Relaxed));
            if resume > 0 {
                self.config
                    .events
                    .emit(Level::Info, Kind::ResumeDecided, |e| {
                        e.endpoint = endpoint.path().to_string();
                        e.resume_offset = resume;
                        e.resume_verified = resume - overlap_from;
                        e.range_start = overlap_from;
                        e.message = format!(
                            "resuming at byte {resume} of the part file; \
                             its last {} bytes are checked first",
                            resume - overlap_from
                        );
                    });
            }
            // The resume record is written once the size is known, before
            // the first byte (FileSink::size_known): until then the file
            // holds nothing a record could vouch for. Small media write it
            // only when the transfer fails (RECORD_UP_FRONT_FROM).
            let mut sink = FileSink {
                file,
                meta_path: meta_path.clone(),
                meta,
                resumed_from: resume,
                verify_until: resume,
                verified: 0,
                at: resume,
                durable: resume,
                sync_every: self.config.chunk_size,
                recorded,
                restart: None,
                progress,
            };
            let opts = DownloadOptions {
                media_id,
                endpoint,
                start: if resume > 0 { overlap_from } else { 0 },
                in_order_until: resume,
                cancel: cancel.clone(),
            };
            let result = self.download(&opts, &mut sink);
            if let Some(why) = sink.restart.take() {
                self.config
                    .events
                    .emit(Level::Warning, Kind::ResumeCheckFailed, |e| {
                        e.endpoint = endpoint.path().to_string();
                        e.resume_offset = sink.resumed_from;
                        e.resume_verified = sink.verified;
                        e.message = why.describe();
                    });
                if restarted.is_none() {
                    restarted = Some(why);
                    continue;
                }
            }
            match result {
                Ok(mut info) => {
                    let size = info.size.unwrap_or(0);
                    let len = sink
                        .file
                        .metadata()
                        .map_err(|e| Error::Io(e.to_string()))?
                        .len();
                    if len != size {
                        return Err(Error::Protocol(format!(
                            "wrote {len} bytes but the media has {size}"
                        )));
                    }
                    sink.file
                        .sync_all()
                        .map_err(|e| Error::Io(format!("fsync: {e}")))?;
                    let recorded = sink.recorded;
                    info.note = restarted.as_ref().map(Restart::describe);
                    drop(sink);
                    std::fs::rename(&part_path, target).map_err(|e| {
                        Error::Io(format!("renaming into {}: {e}", target.display()))
                    })?;
                    if recorded {
                        let _ = std::fs::remove_file(&meta_path);
                    }
                    if let Some(dir) = target.parent() {
                        let dir = if dir.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            dir
                        };
                        if let Ok(d) = std::fs::File::open(dir) {
                            let _ = d.sync_all();
                        }
                    }
                    return Ok(info);
                }
                Err(e) => {
                    let resumable = e.is_transient()
                        || matches!(
                            e,
                            Error::Cancelled
                                | Error::Aborted(_)
                                | Error::Io(_)
                                | Error::Network(_)
                                | Error::Timeout(_)
                        )
                        || e.is_token_rejected();
                    if !resumable {
                        // The media is gone or was never there: keep no debris.
                        drop(sink);
                        let _ = std::fs::remove_file(&part_path);
                        let _ = std::fs::remove_file(&meta_path);
                    } else if sink.meta.size.is_some() && sink.at > sink.durable {
                        // What was written in order is worth resuming: made
                        // durable, then recorded (a parallel download
                        // recorded itself before its first hole, and its
                        // workers record as chunks complete).
                        let _ = sink.make_durable();
                    }
                    return Err(e);
                }
            }
        }
    }
}
