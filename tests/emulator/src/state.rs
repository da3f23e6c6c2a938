//! The emulator's state: media, tokens, faults, stats and the emulated clock.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::util;
use crate::{Options, Platform};

pub const MIB: u64 = 1024 * 1024;
/// WeChat refuses chunks (and unranged downloads) larger than this: 830002.
pub const MAX_CHUNK: u64 = 20 * MIB;
/// Temporary media live 3 days.
pub const MEDIA_LIFETIME_SECS: u64 = 3 * 24 * 3600;
/// Cap on the recorded ranges so a long benchmark cannot eat memory.
const MAX_RANGE_RECORDS: usize = 200_000;
/// Cap on the recorded `url_fetches` (same reason).
const MAX_FETCH_RECORDS: usize = 200_000;
/// Async-upload jobs answer `get_upload_by_url_result` for 60 minutes.
pub const JOB_LIFETIME_SECS: u64 = 3600;
/// Past this many jobs, expired ones are forgotten when a new one starts.
const JOBS_PRUNE_AT: usize = 10_000;

/// Where a media's bytes come from. Never the whole of a big media in memory
/// unless the test gave it literally.
#[derive(Clone, Debug)]
pub enum Source {
    Generated { seed: u64 },
    Bytes(Bytes),
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Media {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    pub kind: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes served. Set when the media is registered;
    /// for uploads computed when first asked (`media_sha256`), so that
    /// hashing stays out of the upload's own time.
    pub sha256: OnceLock<String>,
    pub source: Source,
    pub encrypted: bool,
    pub is_async: bool,
    pub video: bool,
    /// Emulated unix seconds.
    pub created_at: u64,
}

#[derive(Clone, Debug)]
pub struct TokenState {
    /// Emulated unix seconds; None = until expired through the admin API.
    pub expires_at: Option<u64>,
    pub expired: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Reset,
    Stall,
    SlowHeaders,
    Errcode,
    HttpStatus,
    TokenExpire,
    WrongContentRange,
    ShortBody,
    IgnoreRange,
    Throttle,
    /// Reads the request and acts on it (an upload is stored, a job is
    /// submitted), then resets the connection before any answer: the
    /// client cannot know what happened.
    DropAfterBody,
}

impl FaultKind {
    pub fn parse(s: &str) -> Option<FaultKind> {
        Some(match s {
            "reset" => FaultKind::Reset,
            "stall" => FaultKind::Stall,
            "slow_headers" => FaultKind::SlowHeaders,
            "errcode" => FaultKind::Errcode,
            "http_status" => FaultKind::HttpStatus,
            "token_expire" => FaultKind::TokenExpire,
            "wrong_content_range" => FaultKind::WrongContentRange,
            "short_body" => FaultKind::ShortBody,
            "ignore_range" => FaultKind::IgnoreRange,
            "throttle" => FaultKind::Throttle,
            "drop_after_body" => FaultKind::DropAfterBody,
            _ => return None,
        })
    }
}

pub const ENDPOINTS: &[&str] = &[
    "media/get",
    "media/upload",
    "media/get/jssdk",
    "video",
    "gettoken",
    "token",
    "stable_token",
    "media/upload_by_url",
    "media/get_upload_by_url_result",
    "media/uploadimg",
    "img",
];

#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: FaultKind,
    pub remaining: u32,
    pub endpoint: String,
    pub media_id: Option<String>,
    pub after_bytes: Option<u64>,
    pub ms: u64,
    pub errcode: i64,
    pub status: u16,
    pub bytes_per_sec: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RangeRecord {
    pub media_id: String,
    pub header: Option<String>,
    pub start: Option<u64>,
    pub end: Option<u64>,
}

/// One Range request the emulator made itself while fetching a job's URL.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UrlFetch {
    pub jobid: String,
    pub url: String,
    pub start: u64,
    pub end: u64,
}

/// Where an async-upload (`upload_by_url`) job is.
#[derive(Clone, Debug)]
pub enum JobState {
    /// status 1
    Processing,
    /// status 2
    Done { media_id: String, created_at: u64 },
    /// status 3, with the detail errcode (830001, 830003, 45001, 301019, -1).
    Failed { errcode: i64, errmsg: String },
}

#[derive(Clone, Debug)]
pub struct Job {
    /// Emulated unix seconds; the job answers for JOB_LIFETIME_SECS after.
    pub created_at: u64,
    pub state: JobState,
    /// The stats epoch it was counted in (a reset starts a new one).
    pub epoch: u64,
}

/// Jobs by status, since the last reset.
#[derive(Default, Debug, Clone, Copy, serde::Serialize)]
pub struct JobCounts {
    pub processing: u64,
    pub done: u64,
    pub failed: u64,
}

#[derive(Default, Debug)]
pub struct Stats {
    pub requests: BTreeMap<String, u64>,
    pub media_requests: BTreeMap<String, u64>,
    pub ranges: Vec<RangeRecord>,
    pub token_fetches: u64,
    pub uploads: u64,
    pub faults_fired: u64,
    pub url_fetches: Vec<UrlFetch>,
    pub jobs: JobCounts,
    pub images: u64,
}

#[derive(Default)]
pub struct Inner {
    pub tokens: HashMap<String, TokenState>,
    pub media: HashMap<String, Arc<Media>>,
    pub faults: Vec<Fault>,
    pub stats: Stats,
    /// The token gettoken hands out while it is valid (WeCom returns the same one).
    pub gettoken_current: Option<String>,
    /// The token stable_token hands out while it is valid.
    pub stable_current: Option<String>,
    /// Async-upload jobs by jobid.
    pub jobs: HashMap<String, Job>,
    /// Images from `media/uploadimg`, by `ID.ext` (served at `/__img/ID.ext`).
    pub images: HashMap<String, Arc<Media>>,
    /// Bumped by a stats reset; jobs of an older epoch no longer move the counts.
    pub stats_epoch: u64,
}

pub struct Shared {
    pub platform: Platform,
    pub addr: SocketAddr,
    pub corpid: String,
    pub secret: String,
    pub token_ttl: u64,
    pub limits: HashMap<String, u64>,
    pub media_dir: Option<PathBuf>,
    pub store_uploads: bool,
    /// Minimum real time an async-upload job takes.
    pub job_delay: Duration,
    /// Our own temp dir for uploads (removed on stop).
    pub upload_dir: PathBuf,
    start: Instant,
    start_unix: u64,
    clock_offset: AtomicU64,
    pub bytes_served: AtomicU64,
    pub conn_current: AtomicU64,
    pub conn_max: AtomicU64,
    /// Connections opened since the last reset (keep-alive reuse shows as
    /// fewer connections than requests).
    pub conn_opened: AtomicU64,
    seq: AtomicU64,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(opts: &Options, addr: SocketAddr) -> std::io::Result<Shared> {
        let platform = opts.platform;
        let mut limits: HashMap<String, u64> = if platform.is_wecom_like() {
            [
                ("image", 10 * MIB),
                ("voice", 2 * MIB),
                ("video", 10 * MIB),
                ("file", 20 * MIB),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        } else {
            [
                ("image", 10 * MIB),
                ("voice", 2 * MIB),
                ("video", 10 * MIB),
                ("thumb", 64 * 1024),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        };
        // Not media types: the async upload's 5 B–200 MiB and uploadimg's 2 MiB.
        limits.insert("upload_by_url".to_string(), 200 * MIB);
        limits.insert("uploadimg".to_string(), 2 * MIB);
        for (k, v) in &opts.limits {
            limits.insert(k.to_ascii_lowercase(), *v);
        }
        let upload_dir = std::env::temp_dir().join(format!(
            "wxmedia-emulator-{}-{}",
            std::process::id(),
            util::random_token(10)
        ));
        std::fs::create_dir_all(&upload_dir)?;
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1_700_000_000);
        let s = Shared {
            platform,
            addr,
            corpid: opts.corpid.clone(),
            secret: opts.secret.clone(),
            token_ttl: opts.token_ttl.as_secs(),
            limits,
            media_dir: opts.media_dir.clone(),
            store_uploads: opts.store_uploads,
            job_delay: opts.job_delay,
            upload_dir,
            start: Instant::now(),
            start_unix,
            clock_offset: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
            conn_current: AtomicU64::new(0),
            conn_max: AtomicU64::new(0),
            conn_opened: AtomicU64::new(0),
            seq: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
        };
        {
            let mut inner = s.lock();
            for t in &opts.access_tokens {
                inner.tokens.insert(
                    t.clone(),
                    TokenState {
                        expires_at: None,
                        expired: false,
                    },
                );
            }
        }
        if let Some(dir) = &opts.media_dir {
            s.load_media_dir(dir)?;
        }
        Ok(s)
    }

    /// A poisoned lock only means a handler panicked mid-update; the data is
    /// still usable for an emulator, so carry on rather than cascade panics.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emulated unix time in seconds.
    pub fn now(&self) -> u64 {
        self.start_unix
            .saturating_add(self.start.elapsed().as_secs())
            .saturating_add(self.clock_offset.load(Ordering::Relaxed))
    }

    pub fn advance_clock(&self, secs: u64) -> u64 {
        let _ = self
            .clock_offset
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(secs))
            });
        self.now()
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh media id in WeChat's style (letters, digits, '_' and '-').
    pub fn new_media_id(&self) -> String {
        format!("3wxm{}_{}", self.next_seq(), util::random_token(40))
    }

    pub fn new_jobid(&self) -> String {
        format!("wxmjob{}_{}", self.next_seq(), util::random_token(32))
    }

    pub fn new_token(&self) -> String {
        format!("wxmtok{}_{}", self.next_seq(), util::random_token(48))
    }

    pub fn limit(&self, kind: &str) -> u64 {
        self.limits.get(kind).copied().unwrap_or(20 * MIB)
    }

    fn load_media_dir(&self, dir: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = match std::fs::metadata(entry.path()) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha = sha256_file(&entry.path())?;
            let media = Media {
                id: name.clone(),
                filename: name.clone(),
                content_type: util::content_type_for(&name).to_string(),
                kind: kind_for_name(&name).to_string(),
                size: meta.len(),
                sha256: OnceLock::from(sha),
                source: Source::File(entry.path()),
                encrypted: false,
                is_async: false,
                video: false,
                created_at: self.now(),
            };
            self.lock().media.insert(name, Arc::new(media));
        }
        Ok(())
    }

    /// A media that exists and has not expired.
    pub fn media(&self, id: &str) -> Option<Arc<Media>> {
        let now = self.now();
        let inner = self.lock();
        let m = inner.media.get(id)?;
        if now >= m.created_at.saturating_add(MEDIA_LIFETIME_SECS) {
            return None;
        }
        Some(m.clone())
    }

    /// Checks an access token: Ok, or the errcode (41001 missing, 42001 expired, 40001 unknown).
    pub fn check_token(&self, token: Option<&str>) -> Result<(), i64> {
        let token = match token {
            Some(t) if !t.is_empty() => t,
            _ => return Err(41001),
        };
        let now = self.now();
        let inner = self.lock();
        match inner.tokens.get(token) {
            None => Err(40001),
            Some(t) if t.expired || t.expires_at.is_some_and(|e| now >= e) => Err(42001),
            Some(_) => Ok(()),
        }
    }

    pub fn token_valid(&self, inner: &Inner, token: &str) -> bool {
        let now = self.now();
        inner
            .tokens
            .get(token)
            .is_some_and(|t| !t.expired && t.expires_at.map_or(true, |e| now < e))
    }

    pub fn expire_token(&self, token: &str) {
        if let Some(t) = self.lock().tokens.get_mut(token) {
            t.expired = true;
        }
    }

    /// Issues a token with the configured TTL.
    pub fn issue_token(&self, inner: &mut Inner) -> String {
        let t = self.new_token();
        inner.tokens.insert(
            t.clone(),
            TokenState {
                expires_at: Some(self.now().saturating_add(self.token_ttl)),
                expired: false,
            },
        );
        t
    }

    /// Seconds left for a token (for `expires_in` of a re-served token).
    pub fn token_remaining(&self, inner: &Inner, token: &str) -> u64 {
        let now = self.now();
        match inner.tokens.get(token).and_then(|t| t.expires_at) {
            Some(e) => e.saturating_sub(now),
            None => self.token_ttl,
        }
    }

    /// Counts a request to a WeChat endpoint and, for media endpoints, the media.
    pub fn count_request(
        &self,
        endpoint: &str,
        media_id: Option<&str>,
        range: Option<RangeRecord>,
    ) {
        let mut inner = self.lock();
        *inner
            .stats
            .requests
            .entry(endpoint.to_string())
            .or_default() += 1;
        if let Some(id) = media_id {
            *inner
                .stats
                .media_requests
                .entry(id.to_string())
                .or_default() += 1;
        }
        if let Some(r) = range {
            if inner.stats.ranges.len() < MAX_RANGE_RECORDS {
                inner.stats.ranges.push(r);
            }
        }
        if matches!(endpoint, "gettoken" | "token" | "stable_token") {
            inner.stats.token_fetches += 1;
        }
    }

    /// Records a Range request made while fetching a job's URL.
    pub fn record_url_fetch(&self, f: UrlFetch) {
        let mut inner = self.lock();
        if inner.stats.url_fetches.len() < MAX_FETCH_RECORDS {
            inner.stats.url_fetches.push(f);
        }
    }

    /// Registers a new job, processing.
    pub fn add_job(&self, jobid: &str) {
        let now = self.now();
        let mut inner = self.lock();
        if inner.jobs.len() >= JOBS_PRUNE_AT {
            inner
                .jobs
                .retain(|_, j| now < j.created_at.saturating_add(JOB_LIFETIME_SECS));
        }
        let epoch = inner.stats_epoch;
        inner.jobs.insert(
            jobid.to_string(),
            Job {
                created_at: now,
                state: JobState::Processing,
                epoch,
            },
        );
        inner.stats.jobs.processing += 1;
    }

    /// Moves a job to its final state (and a successful one's media in place).
    pub fn finish_job(&self, jobid: &str, state: JobState, media: Option<Media>) {
        let mut inner = self.lock();
        if let Some(m) = media {
            inner.media.insert(m.id.clone(), Arc::new(m));
        }
        let epoch = inner.stats_epoch;
        let Some(job) = inner.jobs.get_mut(jobid) else {
            return;
        };
        let counted = job.epoch == epoch && matches!(job.state, JobState::Processing);
        let done = matches!(state, JobState::Done { .. });
        job.state = state;
        if counted {
            let c = &mut inner.stats.jobs;
            c.processing = c.processing.saturating_sub(1);
            if done {
                c.done += 1;
            } else {
                c.failed += 1;
            }
        }
    }

    /// A job that exists and has not expired (60 minutes of emulated time).
    pub fn job(&self, jobid: &str) -> Option<Job> {
        let now = self.now();
        let inner = self.lock();
        let j = inner.jobs.get(jobid)?;
        if now >= j.created_at.saturating_add(JOB_LIFETIME_SECS) {
            return None;
        }
        Some(j.clone())
    }

    /// Takes the first queued fault matching this request, if any.
    pub fn take_fault(&self, endpoint: &str, media_id: Option<&str>) -> Option<Fault> {
        let mut inner = self.lock();
        let idx = inner.faults.iter().position(|f| {
            (f.endpoint == "any" || f.endpoint == endpoint)
                && f.media_id.as_deref().map_or(true, |m| Some(m) == media_id)
        })?;
        let f = &mut inner.faults[idx];
        let fired = f.clone();
        f.remaining = f.remaining.saturating_sub(1);
        if f.remaining == 0 {
            inner.faults.remove(idx);
        }
        inner.stats.faults_fired += 1;
        Some(fired)
    }

    pub fn add_bytes_served(&self, n: u64) {
        self.bytes_served.fetch_add(n, Ordering::Relaxed);
    }

    pub fn conn_opened(&self) {
        let cur = self.conn_current.fetch_add(1, Ordering::SeqCst) + 1;
        self.conn_max.fetch_max(cur, Ordering::SeqCst);
        self.conn_opened.fetch_add(1, Ordering::SeqCst);
    }

    pub fn conn_closed(&self) {
        let _ = self
            .conn_current
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(1))
            });
    }

    pub fn reset_stats(&self) {
        let mut inner = self.lock();
        inner.faults.clear();
        inner.stats = Stats::default();
        inner.stats_epoch += 1;
        self.bytes_served.store(0, Ordering::Relaxed);
        self.conn_max
            .store(self.conn_current.load(Ordering::SeqCst), Ordering::SeqCst);
        self.conn_opened.store(0, Ordering::SeqCst);
    }

    /// Removes our temp dir (uploads not stored in --media DIR).
    pub fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.upload_dir);
    }
}

/// The media type a file name suggests (for media registered without one).
pub fn kind_for_name(name: &str) -> &'static str {
    match util::extension(name).as_deref() {
        Some("jpg" | "jpeg" | "png" | "gif" | "bmp") => "image",
        Some("amr" | "mp3" | "silk" | "speex") => "voice",
        Some("mp4") => "video",
        _ => "file",
    }
}

/// The media's SHA-256, computed off the async workers when not yet known.
pub async fn media_sha256(m: &Arc<Media>) -> std::io::Result<String> {
    if let Some(sha) = m.sha256.get() {
        return Ok(sha.clone());
    }
    let media = m.clone();
    let sha = tokio::task::spawn_blocking(move || match &media.source {
        Source::File(p) => sha256_file(p),
        Source::Bytes(b) => Ok(sha256_bytes(b)),
        Source::Generated { seed } => Ok(sha256_generated(*seed, media.size)),
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(m.sha256.get_or_init(|| sha).clone())
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(util::hex(ctx.finish().as_ref()))
}

pub fn sha256_generated(seed: u64, size: u64) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        util::fill_generated(seed, off, &mut buf[..n]);
        ctx.update(&buf[..n]);
        off += n as u64;
    }
    util::hex(ctx.finish().as_ref())
}

pub fn sha256_bytes(b: &[u8]) -> String {
    util::hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

/// How long a throttled/stalled body may wait at most (sanity bound).
pub const MAX_SLEEP: Duration = Duration::from_secs(3600);
