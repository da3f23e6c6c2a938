//! The transfers a host runs: `Download`, `Upload` and `UrlUpload`. They own
//! what every front end shares — one run at a time (`RunGuard`), the cancel
//! flag, progress pacing and the heartbeat, local validation, defaults, and
//! errors cleaned for a host — so that `ffi` only converts and the CLI
//! copies none of it.

use crate::cancel::HeartbeatScope;
use crate::client::Client;
use crate::download::{DownloadOptions, Endpoint, MediaInfo, PositionalWriter, Sink};
use crate::error::{Error, Result};
use crate::event::{self, Kind, Level};
use crate::objstore::ObjectStore;
use crate::sync::lock;
use crate::upload::{UploadResult, UploadSource};
use crate::url_upload::{JobStatus, UrlUploadRequest, MAX_SIZE, MIN_SIZE};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A host's progress callback: `done` of `total` bytes (0 while unknown).
/// An error stops the transfer with it. Called on the run's own thread.
pub type ProgressFn = Arc<dyn Fn(u64, u64) -> Result<()> + Send + Sync>;

/// A host's reader for an upload: fills the buffer, returns how many bytes
/// (0 at the end). Called on the run's own thread.
pub type ReadFn = Arc<dyn Fn(&mut [u8]) -> Result<usize> + Send + Sync>;

/// One run at a time per transfer: a second run, from another thread or
/// from the transfer's own callback, is refused with `Error::State` before
/// it touches anything.
pub struct RunGuard {
    running: AtomicBool,
    what: &'static str,
}

/// A run in progress; the guard is free again when it is dropped.
pub struct Running<'g>(&'g AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl RunGuard {
    pub fn new(what: &'static str) -> RunGuard {
        RunGuard {
            running: AtomicBool::new(false),
            what,
        }
    }

    pub fn enter(&self) -> Result<Running<'_>> {
        if self.running.swap(true, Ordering::AcqRel) {
            return Err(Error::State(format!(
                "this {} is already running (on another thread, or this is its own callback)",
                self.what
            )));
        }
        Ok(Running(&self.running))
    }
}

/// While bytes flow, the host's progress callback is called at most this
/// often (and always for the last byte): hosts that pay per call, a Python
/// callback say, pay a few hundred calls per second, not one per read.
const PROGRESS_PACE: Duration = Duration::from_millis(10);
/// While the transfer waits without news, the callback is called this often
/// with unchanged figures, so a host can stop a stalled transfer from the
/// transfer's own thread (Python's Ctrl-C, say).
const PROGRESS_HEARTBEAT: Duration = Duration::from_millis(100);

/// How long `UrlUpload::wait` waits for a job unless told otherwise.
pub const DEFAULT_JOB_WAIT: Duration = Duration::from_secs(600);

/// The host's progress callback for one run, paced, and its heartbeat.
/// Lives on the calling thread only.
struct PacedProgress {
    cb: ProgressFn,
    /// (done, total) last reported by the transfer.
    figures: Cell<(u64, u64)>,
    last_call: Cell<Option<Instant>>,
}

impl PacedProgress {
    /// The transfer has `done` of `total` bytes with the host.
    fn report(&self, done: u64, total: u64) -> Result<()> {
        self.figures.set((done, total));
        let last = total > 0 && done >= total;
        let due = self
            .last_call
            .get()
            .is_none_or(|t| t.elapsed() >= PROGRESS_PACE);
        if last || due {
            self.call()
        } else {
            Ok(())
        }
    }

    /// The transfer waited without news.
    fn beat(&self) -> Result<()> {
        if self
            .last_call
            .get()
            .is_none_or(|t| t.elapsed() >= PROGRESS_HEARTBEAT)
        {
            self.call()
        } else {
            Ok(())
        }
    }

    fn call(&self) -> Result<()> {
        let (done, total) = self.figures.get();
        self.last_call.set(Some(Instant::now()));
        (self.cb)(done, total)
    }
}

/// Runs `f` with the paced progress (if any) and its heartbeat installed.
fn with_progress<T>(
    cb: Option<ProgressFn>,
    f: impl FnOnce(&mut dyn FnMut(u64, u64) -> Result<()>) -> Result<T>,
) -> Result<T> {
    match cb {
        Some(cb) => {
            let p = Rc::new(PacedProgress {
                cb,
                figures: Cell::new((0, 0)),
                last_call: Cell::new(None),
            });
            let me = p.clone();
            let _beat = HeartbeatScope::enter(Rc::new(move || me.beat()));
            f(&mut |done, total| p.report(done, total))
        }
        None => f(&mut |_, _| Ok(())),
    }
}

/// What every transfer holds besides its own request.
struct Common {
    client: Arc<Client>,
    progress: Mutex<Option<ProgressFn>>,
    cancel: Arc<AtomicBool>,
    guard: RunGuard,
    /// The handle's id and the counters of its last run.
    transfer: Arc<event::Transfer>,
}

impl Common {
    fn new(client: Arc<Client>, what: &'static str) -> Common {
        Common {
            client,
            progress: Mutex::new(None),
            cancel: Arc::new(AtomicBool::new(false)),
            guard: RunGuard::new(what),
            transfer: event::Transfer::new(),
        }
    }

    /// One run: refused while another runs, `Cancelled` once cancelled, the
    /// progress and heartbeat installed, counted, its start and end
    /// emitted, the error cleaned for a host.
    fn run<T>(
        &self,
        detail: impl Fn() -> String,
        f: impl FnOnce(&mut dyn FnMut(u64, u64) -> Result<()>) -> Result<T>,
    ) -> Result<T> {
        let _running = self.guard.enter()?;
        self.transfer.reset();
        let _scope = event::TransferScope::enter(self.transfer.clone());
        let events = &self.client.config.events;
        let what = self.guard.what;
        events.emit(Level::Info, Kind::TransferStarted, |e| {
            e.message = format!("{what} {} started", detail());
        });
        let started = Instant::now();
        let result = if self.cancel.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            // Cloned out: the callback may set another one while we run.
            let cb = lock(&self.progress).clone();
            with_progress(cb, f)
        };
        let result = result.map_err(|e| self.client.clean_error(e));
        let elapsed = event::micros_since(started);
        self.transfer
            .counters
            .elapsed_us
            .store(elapsed, Ordering::Relaxed);
        let level = if result.is_ok() {
            Level::Info
        } else {
            Level::Warning
        };
        events.emit(level, Kind::TransferFinished, |e| {
            let c = self.transfer.values();
            e.duration_us = elapsed;
            e.bytes = c.bytes_received + c.bytes_sent;
            e.resume_offset = c.resumed_from;
            e.message = match &result {
                Ok(_) => format!(
                    "{what} {} done: {} requests, {} retries, {} token refreshes",
                    detail(),
                    c.requests,
                    c.retries,
                    c.token_refreshes
                ),
                Err(err) => {
                    e.errcode = err.code();
                    format!("{what} {} failed: {err}", detail())
                }
            };
        });
        result
    }
}

macro_rules! common_setters {
    () => {
        /// Sets (or clears) the progress callback of later runs.
        pub fn set_progress(&self, progress: Option<ProgressFn>) {
            *lock(&self.common.progress) = progress;
        }

        /// Cancels from any thread: a running transfer stops with
        /// `Error::Cancelled` within about 100 ms, and so does every later run.
        pub fn cancel(&self) {
            self.common.cancel.store(true, Ordering::Relaxed);
        }

        /// Uses `flag` as the cancel flag (a signal handler's, say).
        pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
            self.common.cancel = flag;
            self
        }

        /// The handle's id (as in its events) and the counters of its last
        /// run (of the one in progress, while it runs), whatever its outcome.
        pub fn counters(&self) -> event::CounterValues {
            self.common.transfer.values()
        }
    };
}

/// One download of one media; runs again after a failure (a path download
/// then resumes).
pub struct Download {
    common: Common,
    media_id: String,
    endpoint: Mutex<Endpoint>,
    start: Mutex<u64>,
}

/// The host's sink with the run's paced progress.
struct PacedSink<'s, 'p> {
    inner: &'s mut dyn Sink,
    report: &'p mut dyn FnMut(u64, u64) -> Result<()>,
}

impl Sink for PacedSink<'_, '_> {
    fn size_known(&mut self, size: u64) -> Result<()> {
        self.inner.size_known(size)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write(offset, data)
    }
    fn progress(&mut self, done: u64, total: u64) -> Result<()> {
        self.inner.progress(done, total)?;
        (self.report)(done, total)
    }
    fn positional(&mut self) -> Option<Arc<dyn PositionalWriter>> {
        self.inner.positional()
    }
}

impl Download {
    /// A download of `media_id` (1 to 1024 bytes).
    pub fn new(client: Arc<Client>, media_id: &str) -> Result<Download> {
        if media_id.is_empty() || media_id.len() > 1024 {
            return Err(Error::InvalidArg("media_id must be 1 to 1024 bytes".into()));
        }
        Ok(Download {
            common: Common::new(client, "download"),
            media_id: media_id.to_string(),
            endpoint: Mutex::new(Endpoint::Media),
            start: Mutex::new(0),
        })
    }

    common_setters!();

    /// Where a sink download starts (host-managed resume); 0 by default.
    pub fn set_start(&self, offset: u64) {
        *lock(&self.start) = offset;
    }

    /// HD voice (`media/get/jssdk`) instead of `media/get`.
    pub fn set_hd_voice(&self, enable: bool) {
        *lock(&self.endpoint) = if enable {
            Endpoint::Jssdk
        } else {
            Endpoint::Media
        };
    }

    /// Downloads into `sink`, in order, from the start offset.
    pub fn to_sink(&self, sink: &mut dyn Sink) -> Result<MediaInfo> {
        self.common.run(
            || format!("of {}", self.media_id),
            |report| {
                let opts = DownloadOptions {
                    media_id: &self.media_id,
                    endpoint: *lock(&self.endpoint),
                    start: *lock(&self.start),
                    in_order_until: 0,
                    cancel: self.common.cancel.clone(),
                };
                let mut paced = PacedSink {
                    inner: sink,
                    report,
                };
                self.common.client.download(&opts, &mut paced)
            },
        )
    }

    /// Downloads to `path` atomically, resuming a part file left by an
    /// earlier run (`Client::download_to_path`).
    pub fn to_path(&self, path: &Path) -> Result<MediaInfo> {
        if *lock(&self.start) != 0 {
            return Err(Error::InvalidArg(
                "wxm_download_to_path resumes by itself; a start offset applies to sinks only"
                    .into(),
            ));
        }
        self.common.run(
            || format!("of {}", self.media_id),
            |report| {
                self.common.client.download_to_path(
                    &self.media_id,
                    *lock(&self.endpoint),
                    path,
                    self.common.cancel.clone(),
                    report,
                )
            },
        )
    }
}

impl Download {
    /// Downloads into `bucket`/`key` of `store` as an S3 multipart upload
    /// (a single PutObject under one part), resuming an upload of the same
    /// media to the same key (`Client::download_to_object`).
    pub fn to_object(&self, store: &ObjectStore, bucket: &str, key: &str) -> Result<MediaInfo> {
        if *lock(&self.start) != 0 {
            return Err(Error::InvalidArg(
                "wxm_download_to_object resumes by itself; a start offset applies to sinks only"
                    .into(),
            ));
        }
        let describe = || format!("of {} to bucket {bucket}, key {key}", self.media_id);
        self.common.run(describe, |report| {
            self.common.client.download_to_object(
                &self.media_id,
                *lock(&self.endpoint),
                store,
                bucket,
                key,
                self.common.cancel.clone(),
                report,
            )
        })
    }
}

/// Where an upload's bytes come from.
#[derive(Clone)]
pub enum UploadInput {
    Path(PathBuf),
    /// Exactly `length` bytes from `read`.
    Reader {
        read: ReadFn,
        length: u64,
    },
}

/// One upload of one file.
pub struct Upload {
    common: Common,
    kind: String,
    source: Mutex<Option<UploadInput>>,
    filename: Mutex<Option<String>>,
}

impl Upload {
    /// An upload as media type `kind`; any string is taken here, `run`
    /// judges it with WeChat's own errcode.
    pub fn new(client: Arc<Client>, kind: &str) -> Upload {
        Upload {
            common: Common::new(client, "upload"),
            kind: kind.to_string(),
            source: Mutex::new(None),
            filename: Mutex::new(None),
        }
    }

    common_setters!();

    /// Uploads the file at `path` (its name is the default filename).
    pub fn set_path(&self, path: impl Into<PathBuf>) -> Result<()> {
        let path = path.into();
        if path.as_os_str().is_empty() {
            return Err(Error::InvalidArg("path is empty".into()));
        }
        *lock(&self.source) = Some(UploadInput::Path(path));
        Ok(())
    }

    /// Uploads `length` bytes from `read`.
    pub fn set_reader(&self, read: ReadFn, length: u64) {
        *lock(&self.source) = Some(UploadInput::Reader { read, length });
    }

    /// The name WeChat shows.
    pub fn set_filename(&self, filename: &str) {
        *lock(&self.filename) = Some(filename.to_string());
    }

    /// Validates locally, then sends one streaming multipart request.
    pub fn run(&self) -> Result<UploadResult> {
        self.common.run(
            || format!("of a {}", self.kind),
            |report| {
                let Some(source) = lock(&self.source).clone() else {
                    return Err(Error::InvalidArg(
                        "no source: call wxm_upload_set_path or wxm_upload_set_reader first".into(),
                    ));
                };
                let filename = lock(&self.filename).clone();
                let client = &self.common.client;
                let cancel = self.common.cancel.clone();
                match source {
                    UploadInput::Path(p) => client.upload(
                        &self.kind,
                        UploadSource::Path(p),
                        filename.as_deref(),
                        cancel,
                        report,
                    ),
                    UploadInput::Reader { read, length } => client.upload(
                        &self.kind,
                        UploadSource::Reader {
                            read: &mut |buf: &mut [u8]| read(buf),
                            length,
                        },
                        filename.as_deref(),
                        cancel,
                        report,
                    ),
                }
            },
        )
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobPhase {
    #[default]
    None,
    Processing,
    Done,
    Failed,
}

/// What a `UrlUpload` knows of its job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobState {
    pub jobid: Option<String>,
    pub phase: JobPhase,
    pub media_id: Option<String>,
    pub created_at: i64,
}

/// A finished job's media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDone {
    pub media_id: String,
    pub created_at: i64,
}

/// One asynchronous upload by URL (WeCom, kf): submit, then wait.
pub struct UrlUpload {
    common: Common,
    request: Mutex<Option<UrlUploadRequest>>,
    job: Mutex<JobState>,
}

impl UrlUpload {
    /// A job to submit (scene 1; set the MD5 before submitting).
    pub fn new(client: Arc<Client>, request: UrlUploadRequest) -> UrlUpload {
        UrlUpload {
            common: Common::new(client, "upload by URL"),
            request: Mutex::new(Some(request)),
            job: Mutex::new(JobState::default()),
        }
    }

    /// A handle on a job submitted before (by another process, say): it
    /// only waits.
    pub fn for_job(client: Arc<Client>, jobid: &str) -> Result<UrlUpload> {
        let u = UrlUpload {
            common: Common::new(client, "upload by URL"),
            request: Mutex::new(None),
            job: Mutex::new(JobState::default()),
        };
        u.set_jobid(jobid)?;
        Ok(u)
    }

    common_setters!();

    fn with_request(&self, f: impl FnOnce(&mut UrlUploadRequest) -> Result<()>) -> Result<()> {
        let mut req = lock(&self.request);
        let req = req.as_mut().ok_or_else(|| {
            Error::State("this handle waits on a jobid; it has no request".into())
        })?;
        f(req)
    }

    /// The file's MD5, 32 hex digits.
    pub fn set_md5(&self, hex: &str) -> Result<()> {
        self.with_request(|r| {
            if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::InvalidArg("md5 must be 32 hex digits".into()));
            }
            r.md5 = hex.to_ascii_lowercase();
            Ok(())
        })
    }

    /// The MD5 of a local copy of the file (streamed), after checking its
    /// size against the job's limits (45001 outside 6 bytes to 200 MiB).
    pub fn set_md5_from_path(&self, path: &Path) -> Result<()> {
        self.with_request(|r| {
            let shown = path.display();
            let (hex, size) = crate::md5::hex_of_file(path)
                .map_err(|e| Error::Io(format!("reading {shown}: {e}")))?;
            if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
                return Err(Error::wechat(
                    45001,
                    format!("upload_by_url takes 6 bytes to 200 MiB; {shown} has {size}"),
                ));
            }
            r.md5 = hex;
            Ok(())
        })
    }

    pub fn set_scene(&self, scene: u32) -> Result<()> {
        self.with_request(|r| {
            r.scene = scene;
            Ok(())
        })
    }

    /// Waits on an already submitted job instead of submitting one.
    pub fn set_jobid(&self, jobid: &str) -> Result<()> {
        if jobid.is_empty() || jobid.len() > 128 {
            return Err(Error::InvalidArg("jobid must be 1 to 128 bytes".into()));
        }
        let mut job = lock(&self.job);
        job.jobid = Some(jobid.to_string());
        job.phase = JobPhase::Processing;
        Ok(())
    }

    /// What is known of the job.
    pub fn job(&self) -> JobState {
        lock(&self.job).clone()
    }

    /// Submits the job (validated locally first) and returns its jobid;
    /// does nothing but return it when a jobid is already set.
    pub fn submit(&self) -> Result<String> {
        self.common
            .run(|| "(submit)".into(), |_| self.submit_once())
    }

    /// Polls until the job is done or failed (its errcode), or `timeout`
    /// (default `DEFAULT_JOB_WAIT`) passes: `Error::Timeout`, the job goes on.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<JobDone> {
        self.common
            .run(|| "(wait)".into(), |_| self.wait_once(timeout))
    }

    /// `submit`, then `wait`, as one run.
    pub fn run(&self, timeout: Option<Duration>) -> Result<JobDone> {
        self.common.run(
            || "(submit and wait)".into(),
            |_| self.submit_once().and_then(|_| self.wait_once(timeout)),
        )
    }

    fn submit_once(&self) -> Result<String> {
        if let Some(jobid) = lock(&self.job).jobid.clone() {
            return Ok(jobid);
        }
        let req = lock(&self.request)
            .clone()
            .ok_or_else(|| Error::State("nothing to submit".into()))?;
        let jobid = self
            .common
            .client
            .upload_by_url_submit(&req, &self.common.cancel)?;
        let mut job = lock(&self.job);
        job.jobid = Some(jobid.clone());
        job.phase = JobPhase::Processing;
        Ok(jobid)
    }

    fn wait_once(&self, timeout: Option<Duration>) -> Result<JobDone> {
        let jobid = lock(&self.job)
            .jobid
            .clone()
            .ok_or_else(|| Error::State("no job: submit first or set a jobid".into()))?;
        let outcome = self.common.client.upload_by_url_wait(
            &jobid,
            timeout.unwrap_or(DEFAULT_JOB_WAIT),
            &self.common.cancel,
        )?;
        let mut job = lock(&self.job);
        match outcome {
            JobStatus::Done {
                media_id,
                created_at,
            } => {
                job.phase = JobPhase::Done;
                job.media_id = Some(media_id.clone());
                job.created_at = created_at;
                Ok(JobDone {
                    media_id,
                    created_at,
                })
            }
            JobStatus::Failed { errcode, errmsg } => {
                job.phase = JobPhase::Failed;
                Err(Error::wechat(
                    errcode,
                    format!("upload_by_url job failed: {errmsg}"),
                ))
            }
            JobStatus::Processing => Err(Error::Timeout("job still processing".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Platform};
    use crate::error::WXM_E_STATE;

    /// A client whose requests never reach a server (port 9, nothing
    /// listens): these tests stop every run before or at its first wait.
    fn client() -> Arc<Client> {
        let mut cfg = Config::new(Platform::WeCom);
        cfg.set_base_url("http://127.0.0.1:9").expect("base url");
        cfg.set_token("tok-0123456789abcdef").expect("token");
        Arc::new(Client::new(cfg).expect("client"))
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wxm-transfer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join(name)
    }

    struct NoSink;
    impl Sink for NoSink {
        fn write(&mut self, _: u64, _: &[u8]) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_second_run_is_refused_until_the_first_ends() {
        let g = RunGuard::new("download");
        let first = g.enter().expect("first run");
        match g.enter() {
            Err(Error::State(m)) => assert!(m.contains("download is already running"), "{m}"),
            other => panic!("second run: {:?}", other.map(|_| ())),
        }
        drop(first);
        assert!(g.enter().is_ok(), "free again after the first run");
    }

    #[test]
    fn every_transfer_refuses_a_run_inside_its_own_progress_callback() {
        // The progress callback runs inside the run (as the heartbeat or
        // for the first figures): a run of the same transfer from there is
        // refused, and the callback's own error then stops the outer run.
        let c = client();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dl = Arc::new(Download::new(c.clone(), "m").expect("download"));
        let (d, s) = (Arc::downgrade(&dl), seen.clone());
        dl.set_progress(Some(Arc::new(move |_, _| {
            if let Some(d) = d.upgrade() {
                lock(&s).push(d.to_sink(&mut NoSink).map(|_| ()).map_err(|e| e.code()));
            }
            Err(Error::Aborted("stop".into()))
        })));
        assert!(matches!(dl.to_sink(&mut NoSink), Err(Error::Aborted(_))));
        assert_eq!(*lock(&seen), [Err(WXM_E_STATE)], "download");
        lock(&seen).clear();

        let up = Arc::new(Upload::new(c.clone(), "file"));
        let file = scratch("up.bin");
        std::fs::write(&file, b"0123456789").expect("write");
        up.set_path(&file).expect("path");
        let (u, s) = (Arc::downgrade(&up), seen.clone());
        up.set_progress(Some(Arc::new(move |_, _| {
            if let Some(u) = u.upgrade() {
                lock(&s).push(u.run().map(|_| ()).map_err(|e| e.code()));
            }
            Err(Error::Aborted("stop".into()))
        })));
        assert!(matches!(up.run(), Err(Error::Aborted(_))));
        assert_eq!(*lock(&seen), [Err(WXM_E_STATE)], "upload");
        lock(&seen).clear();

        // The job's wait beats while it polls (here: while it retries an
        // unreachable server), so the refusal is seen from the heartbeat.
        let job = Arc::new(UrlUpload::for_job(c.clone(), "job-1").expect("job"));
        let (j, s) = (Arc::downgrade(&job), seen.clone());
        job.set_progress(Some(Arc::new(move |_, _| {
            if let Some(j) = j.upgrade() {
                lock(&s).push(j.wait(None).map(|_| ()).map_err(|e| e.code()));
            }
            Err(Error::Aborted("stop".into()))
        })));
        assert!(matches!(job.wait(None), Err(Error::Aborted(_))));
        assert_eq!(*lock(&seen), [Err(WXM_E_STATE)], "upload by URL");
    }

    #[test]
    fn errors_leave_the_core_cleaned_for_a_host() {
        // A callback's error that quotes the token comes back without it:
        // the C ABI and the CLI both show the core's text as is.
        let dl = Download::new(client(), "m").expect("download");
        dl.set_progress(Some(Arc::new(|_, _| {
            Err(Error::Aborted(
                "saw access_token=tok-0123456789abcdef and tok-0123456789abcdef".into(),
            ))
        })));
        let e = dl.to_sink(&mut NoSink).expect_err("aborted");
        let text = e.to_string();
        assert!(matches!(e, Error::Aborted(_)), "{e:?}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }

    #[test]
    fn validation_and_defaults_live_in_the_core() {
        let c = client();
        for id in ["", &"m".repeat(1025)] {
            assert!(matches!(
                Download::new(c.clone(), id),
                Err(Error::InvalidArg(_))
            ));
        }
        let dl = Download::new(c.clone(), "m").expect("download");
        dl.set_start(16);
        assert!(matches!(
            dl.to_path(&scratch("never")),
            Err(Error::InvalidArg(_))
        ));
        assert!(!scratch("never").exists());

        let up = Upload::new(c.clone(), "file");
        assert!(matches!(up.run(), Err(Error::InvalidArg(_))), "no source");
        assert!(matches!(up.set_path(""), Err(Error::InvalidArg(_))));
        up.cancel();
        assert!(matches!(up.run(), Err(Error::Cancelled)), "cancel first");

        let req = UrlUploadRequest {
            scene: 1,
            kind: "file".into(),
            filename: "a.bin".into(),
            url: "http://127.0.0.1:9/a".into(),
            md5: String::new(),
        };
        let job = UrlUpload::new(c.clone(), req);
        assert!(matches!(job.set_md5("xyz"), Err(Error::InvalidArg(_))));
        let five = scratch("five");
        std::fs::write(&five, b"12345").expect("write");
        match job.set_md5_from_path(&five) {
            Err(e) => assert_eq!(e.code(), 45001, "{e}"),
            Ok(()) => panic!("5 bytes accepted"),
        }
        let six = scratch("six");
        std::fs::write(&six, b"123456").expect("write");
        job.set_md5_from_path(&six).expect("6 bytes");
        assert_eq!(
            lock(&job.request).as_ref().map(|r| r.md5.clone()),
            Some("e10adc3949ba59abbe56e057f20f883e".to_string())
        );
        assert!(matches!(
            job.set_md5_from_path(&scratch("missing")),
            Err(Error::Io(_))
        ));
        assert!(matches!(job.wait(None), Err(Error::State(_))), "no job yet");
        assert!(matches!(
            UrlUpload::for_job(c, ""),
            Err(Error::InvalidArg(_))
        ));
        assert_eq!(DEFAULT_JOB_WAIT, Duration::from_secs(600));
    }
}
