//! The response body: bytes produced on the fly in frames, with the faults
//! that act on a body (reset, stall, short body, token expiry, throttle).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use tokio::time::Sleep;

use crate::state::{Shared, MAX_SLEEP};
use crate::util;

/// Frame size for media bodies: big enough for GB/s, small enough to stay cache-friendly.
const FRAME: usize = 256 * 1024;
/// Pause before cutting a connection so hyper flushes what was written first.
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Per-connection control shared between the IO wrapper and bodies.
#[derive(Default)]
pub struct ConnCtl {
    /// Set by a `reset` fault: the IO wrapper refuses further writes and
    /// closes with SO_LINGER 0, so the peer sees a RST.
    pub aborted: AtomicBool,
    /// Whether this connection made a WeChat (non-admin) request and is
    /// counted in the concurrent-connection stats.
    pub counted: AtomicBool,
}

pub enum BodySource {
    Empty,
    Bytes(Bytes),
    Generated { seed: u64 },
    File(std::fs::File),
}

/// Faults acting on the body, in body-byte offsets.
#[derive(Default)]
pub struct BodyPlan {
    pub reset_at: Option<u64>,
    pub stall: Option<(u64, Duration)>,
    /// Close the connection (FIN) after this many bytes: short body, token expiry.
    pub close_at: Option<u64>,
    /// Token to expire when `close_at` is reached.
    pub expire_token: Option<String>,
    pub bytes_per_sec: Option<u64>,
}

enum After {
    Nothing,
    Abort,
    Close,
}

pub struct EmuBody {
    src: BodySource,
    /// Absolute offset in the source of the next byte.
    pos: u64,
    /// Absolute end (exclusive) of what the response should carry.
    end: u64,
    sent: u64,
    plan: BodyPlan,
    stalled: bool,
    buf: BytesMut,
    sleep: Option<Pin<Box<Sleep>>>,
    after: After,
    started: Option<Instant>,
    shared: Option<Arc<Shared>>,
    /// Count sent bytes in `bytes_served` (media bodies only).
    count: bool,
    ctl: Option<Arc<ConnCtl>>,
    done: bool,
}

impl EmuBody {
    pub fn empty() -> EmuBody {
        EmuBody::new(BodySource::Empty, 0, 0)
    }

    pub fn bytes(b: impl Into<Bytes>) -> EmuBody {
        let b: Bytes = b.into();
        let len = b.len() as u64;
        EmuBody::new(BodySource::Bytes(b), 0, len)
    }

    /// Bytes `start..end` of `src`.
    pub fn new(src: BodySource, start: u64, end: u64) -> EmuBody {
        EmuBody {
            src,
            pos: start,
            end,
            sent: 0,
            plan: BodyPlan::default(),
            stalled: false,
            buf: BytesMut::new(),
            sleep: None,
            after: After::Nothing,
            started: None,
            shared: None,
            count: false,
            ctl: None,
            done: false,
        }
    }

    pub fn len(&self) -> u64 {
        self.end - self.pos
    }

    pub fn with_plan(mut self, plan: BodyPlan, ctl: Arc<ConnCtl>, shared: Arc<Shared>) -> EmuBody {
        self.plan = plan;
        self.ctl = Some(ctl);
        if self.shared.is_none() {
            self.shared = Some(shared);
        }
        self
    }

    /// Counts the bytes sent in the `bytes_served` stat.
    pub fn counting(mut self, shared: Arc<Shared>) -> EmuBody {
        self.count = true;
        self.shared = Some(shared);
        self
    }

    fn start_sleep(&mut self, d: Duration, after: After) {
        self.sleep = Some(Box::pin(tokio::time::sleep(d.min(MAX_SLEEP))));
        self.after = after;
    }

    /// Reads up to `n` bytes at `self.pos` into a frame.
    fn produce(&mut self, n: usize) -> io::Result<Bytes> {
        match &self.src {
            BodySource::Empty => Ok(Bytes::new()),
            BodySource::Bytes(b) => {
                let s = self.pos as usize;
                Ok(b.slice(s..s + n))
            }
            BodySource::Generated { seed } => {
                let seed = *seed;
                // Reuses the allocation once hyper has written the previous frame.
                self.buf.clear();
                self.buf.resize(n, 0);
                util::fill_generated(seed, self.pos, &mut self.buf[..n]);
                Ok(self.buf.split().freeze())
            }
            BodySource::File(f) => {
                use std::os::unix::fs::FileExt;
                self.buf.clear();
                self.buf.resize(n, 0);
                // Page-cache reads are fast enough to do inline for an emulator.
                let got = f.read_at(&mut self.buf[..n], self.pos)?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "media file shrank while serving",
                    ));
                }
                self.buf.truncate(got);
                Ok(self.buf.split().freeze())
            }
        }
    }
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(s) = this.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
                match std::mem::replace(&mut this.after, After::Nothing) {
                    After::Nothing => {}
                    After::Abort => {
                        this.done = true;
                        if let Some(ctl) = &this.ctl {
                            ctl.aborted.store(true, Ordering::SeqCst);
                        }
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "emulated reset",
                        ))));
                    }
                    After::Close => {
                        this.done = true;
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "emulated short body",
                        ))));
                    }
                }
            }
            let remaining = this.end.saturating_sub(this.pos);
            let mut limit = (remaining as usize).min(FRAME) as u64;
            if let Some(r) = this.plan.reset_at {
                if this.sent >= r {
                    this.plan.reset_at = None;
                    this.start_sleep(FLUSH_PAUSE, After::Abort);
                    continue;
                }
                limit = limit.min(r - this.sent);
            }
            if let Some(c) = this.plan.close_at {
                if this.sent >= c {
                    this.plan.close_at = None;
                    if let (Some(t), Some(sh)) = (this.plan.expire_token.take(), &this.shared) {
                        sh.expire_token(&t);
                    }
                    this.start_sleep(FLUSH_PAUSE, After::Close);
                    continue;
                }
                limit = limit.min(c - this.sent);
            }
            if let Some((at, d)) = this.plan.stall {
                if !this.stalled {
                    if this.sent >= at {
                        this.stalled = true;
                        this.start_sleep(d, After::Nothing);
                        continue;
                    }
                    limit = limit.min(at - this.sent);
                }
            }
            if remaining == 0 {
                this.done = true;
                return Poll::Ready(None);
            }
            if let Some(rate) = this.plan.bytes_per_sec {
                let rate = rate.max(1);
                // ~20 frames a second keeps the rate smooth.
                limit = limit.min((rate / 20).max(1));
                let started = *this.started.get_or_insert_with(Instant::now);
                let ahead = Duration::try_from_secs_f64(this.sent as f64 / rate as f64)
                    .unwrap_or(MAX_SLEEP);
                let due = started.checked_add(ahead).unwrap_or(started + MAX_SLEEP);
                let now = Instant::now();
                if due > now + Duration::from_millis(1) {
                    this.start_sleep(due - now, After::Nothing);
                    continue;
                }
            }
            let n = limit as usize;
            let chunk = match this.produce(n) {
                Ok(c) => c,
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            };
            let got = chunk.len() as u64;
            this.pos += got;
            this.sent += got;
            if let (true, Some(sh)) = (this.count, &this.shared) {
                sh.add_bytes_served(got);
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    // Exact, so hyper sends Content-Length (as WeChat does) rather than chunked.
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.end.saturating_sub(self.pos))
    }
}
