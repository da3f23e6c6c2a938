//! What a transfer does, as data: structured events for the host's handler
//! (set on the config) and counters per transfer handle.
//!
//! An event is built only when a handler wants its level, so a client
//! without one pays a branch per request. The transfer running on a thread
//! (and its parallel workers) is found through a thread-local scope, as the
//! cancel flag is, so the code that does the work need not carry it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What happened. The numbers are the C ABI's `WXM_EVENT_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Kind {
    TransferStarted = 1,
    TransferFinished = 2,
    RequestStarted = 3,
    RequestFinished = 4,
    RetryScheduled = 5,
    TokenFetched = 6,
    TokenRefreshed = 7,
    /// A token another process fetched, taken from the shared store.
    TokenShared = 8,
    ResumeDecided = 9,
    /// The kept prefix of a part file did not match: downloaded again.
    ResumeCheckFailed = 10,
    /// A fallback was taken (the token store failed; the 100-continue
    /// refused by a server).
    Fallback = 11,
}

/// How much an operator cares. The numbers are Python's logging levels, so
/// hosts map them without a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
}

/// Where the access_token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(i32)]
pub enum TokenOrigin {
    #[default]
    None = 0,
    Static = 1,
    Credentials = 2,
    Provider = 3,
    Store = 4,
}

/// How an upload's `Expect: 100-continue` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(i32)]
pub enum Continue {
    /// Not asked (a small body).
    #[default]
    NotAsked = 0,
    /// Asked, and the body was sent (after a 100, or after the wait for
    /// one: the two look the same from here).
    BodySent = 1,
    /// Asked, and the server answered before the body: the refusal cost
    /// no body.
    AnsweredFirst = 2,
    /// The server refused the expectation (417): sent again without it.
    Refused = 3,
}

/// One event. Fields that do not apply to a kind are zero or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub level: Level,
    /// CLOCK_MONOTONIC, in nanoseconds (Python's `time.monotonic_ns`).
    pub time_ns: u64,
    /// The transfer handle's id (0: outside any transfer).
    pub transfer_id: u64,
    /// The API path or video_url path: no host, no query, never a token.
    pub endpoint: String,
    /// A request's HTTP method ("GET", "POST", "PUT"…); "" otherwise.
    pub method: &'static str,
    /// The Range asked for, `[range_start, range_end)`; both 0 without one.
    pub range_start: u64,
    pub range_end: u64,
    pub http_status: u16,
    /// WeChat's errcode or the library's code; 0 on success.
    pub errcode: i32,
    /// Bytes received (downloads) or sent (uploads) by the request.
    pub bytes: u64,
    pub duration_us: u64,
    /// 1 for the first attempt of a request, 2 for its first retry…
    pub attempt: u32,
    /// A retry: the code of the failure that caused it.
    pub retry_reason: i32,
    pub backoff_ms: u64,
    pub token_origin: TokenOrigin,
    /// A token event: how long the fetch took.
    pub token_fetch_us: u64,
    /// A resume: where it resumed, and the bytes compared to prove it.
    pub resume_offset: u64,
    pub resume_verified: u64,
    /// The body came from a `video_url`, not from media/get.
    pub via_video_url: bool,
    pub expect_continue: Continue,
    /// For a person; free of secrets like every message.
    pub message: String,
}

impl Event {
    fn new(kind: Kind, level: Level) -> Event {
        Event {
            kind,
            level,
            time_ns: monotonic_ns(),
            transfer_id: CURRENT.with(|c| c.borrow().as_ref().map_or(0, |t| t.id)),
            endpoint: String::new(),
            method: "",
            range_start: 0,
            range_end: 0,
            http_status: 0,
            errcode: 0,
            bytes: 0,
            duration_us: 0,
            attempt: 0,
            retry_reason: 0,
            backoff_ms: 0,
            token_origin: TokenOrigin::None,
            token_fetch_us: 0,
            resume_offset: 0,
            resume_verified: 0,
            via_video_url: false,
            expect_continue: Continue::NotAsked,
            message: String::new(),
        }
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on
    // every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The host's handler: called on whichever thread the event happens
/// (parallel workers too), so it must be `Send + Sync`.
pub type HandlerFn = Arc<dyn Fn(&Event) + Send + Sync>;

/// The handler of a client, or none. Cheap to clone.
#[derive(Clone, Default)]
pub struct Events {
    handler: Option<(HandlerFn, Level)>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.handler {
            Some((_, min)) => write!(f, "Events(handler, min {min:?})"),
            None => write!(f, "Events(none)"),
        }
    }
}

impl Events {
    pub fn new(handler: HandlerFn, min_level: Level) -> Events {
        Events {
            handler: Some((handler, min_level)),
        }
    }

    /// Whether an event of `level` would reach the handler.
    #[inline]
    pub fn wants(&self, level: Level) -> bool {
        self.handler.as_ref().is_some_and(|(_, min)| level >= *min)
    }

    /// Emits an event of `kind` at `level`, filled by `fill`, which runs
    /// only when the handler wants it.
    #[inline]
    pub fn emit(&self, level: Level, kind: Kind, fill: impl FnOnce(&mut Event)) {
        if let Some((handler, min)) = &self.handler {
            if level >= *min {
                let mut e = Event::new(kind, level);
                fill(&mut e);
                handler(&e);
            }
        }
    }
}

/// One HTTP request's pair of events (REQUEST_STARTED, then
/// REQUEST_FINISHED with the same endpoint, range and attempt) and its
/// count: what every sender (downloads, uploads, the JSON APIs, the object
/// store) reports alike.
pub struct RequestTrace {
    started: Instant,
    /// The fields both events share, when a handler wants them.
    shared: Option<Event>,
}

impl Events {
    /// Counts a request and emits REQUEST_STARTED. `describe` fills the
    /// fields both events share (endpoint, range, attempt…) and `message`
    /// the start's text; neither runs unless a handler wants DEBUG.
    pub fn request_started(
        &self,
        describe: impl FnOnce(&mut Event),
        message: impl FnOnce(&Event) -> String,
    ) -> RequestTrace {
        add(|c| &c.requests, 1);
        let shared = self.wants(Level::Debug).then(|| {
            let mut e = Event::new(Kind::RequestStarted, Level::Debug);
            describe(&mut e);
            e
        });
        if let (Some(base), Some((handler, _))) = (&shared, &self.handler) {
            let mut e = base.clone();
            e.message = message(&e);
            handler(&e);
        }
        RequestTrace {
            started: Instant::now(),
            shared,
        }
    }

    /// Emits REQUEST_FINISHED: `status` (0: no answer), `bytes` moved, and
    /// the outcome: `failure` gives an error's code and host-fit text (run
    /// only when the event is built). `fill` adds what only the end knows
    /// (the 100-continue outcome).
    pub fn request_finished(
        &self,
        trace: RequestTrace,
        status: u16,
        bytes: u64,
        failure: impl FnOnce() -> Option<(i32, String)>,
        fill: impl FnOnce(&mut Event),
    ) {
        let (Some(mut e), Some((handler, _))) = (trace.shared, &self.handler) else {
            return;
        };
        e.kind = Kind::RequestFinished;
        e.time_ns = monotonic_ns();
        e.http_status = status;
        e.bytes = bytes;
        e.duration_us = micros_since(trace.started);
        e.message = match failure() {
            Some((code, text)) => {
                e.errcode = code;
                text
            }
            None => format!("status {status}, {bytes} bytes in {} us", e.duration_us),
        };
        fill(&mut e);
        handler(&e);
    }
}

/// What a transfer handle counts, over its last run.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub token_refreshes: AtomicU64,
    pub resumed_from: AtomicU64,
    pub elapsed_us: AtomicU64,
}

/// A snapshot of `Counters`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub transfer_id: u64,
    pub requests: u64,
    pub retries: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub token_refreshes: u64,
    pub resumed_from: u64,
    pub elapsed_us: u64,
}

/// One transfer handle's identity and counters.
#[derive(Debug)]
pub struct Transfer {
    pub id: u64,
    pub counters: Counters,
}

static NEXT_TRANSFER_ID: AtomicU64 = AtomicU64::new(1);

impl Transfer {
    pub fn new() -> Arc<Transfer> {
        Arc::new(Transfer {
            id: NEXT_TRANSFER_ID.fetch_add(1, Ordering::Relaxed),
            counters: Counters::default(),
        })
    }

    /// Zeroes the counters for a new run.
    pub fn reset(&self) {
        let c = &self.counters;
        for a in [
            &c.requests,
            &c.retries,
            &c.bytes_received,
            &c.bytes_sent,
            &c.token_refreshes,
            &c.resumed_from,
            &c.elapsed_us,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    pub fn values(&self) -> CounterValues {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterValues {
            transfer_id: self.id,
            requests: get(&c.requests),
            retries: get(&c.retries),
            bytes_received: get(&c.bytes_received),
            bytes_sent: get(&c.bytes_sent),
            token_refreshes: get(&c.token_refreshes),
            resumed_from: get(&c.resumed_from),
            elapsed_us: get(&c.elapsed_us),
        }
    }
}

thread_local! {
    /// The transfer this thread works for.
    static CURRENT: RefCell<Option<Arc<Transfer>>> = const { RefCell::new(None) };
}

/// Marks this thread as working for `transfer` until dropped (the run's own
/// thread, and each worker of a parallel download).
pub struct TransferScope {
    previous: Option<Arc<Transfer>>,
}

impl TransferScope {
    pub fn enter(transfer: Arc<Transfer>) -> TransferScope {
        let previous = CURRENT.with(|c| c.replace(Some(transfer)));
        TransferScope { previous }
    }
}

impl Drop for TransferScope {
    fn drop(&mut self) {
        let prev = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// The transfer this thread works for, to hand to a worker thread.
pub fn current() -> Option<Arc<Transfer>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Counts for the transfer this thread works for (nothing outside one).
#[inline]
pub fn count(f: impl FnOnce(&Counters)) {
    CURRENT.with(|c| {
        if let Some(t) = c.borrow().as_ref() {
            f(&t.counters)
        }
    })
}

/// Adds `n` to one counter of the current transfer.
#[inline]
pub fn add(counter: fn(&Counters) -> &AtomicU64, n: u64) {
    count(|c| {
        counter(c).fetch_add(n, Ordering::Relaxed);
    })
}

/// Microseconds since `t`, for event durations.
pub fn micros_since(t: Instant) -> u64 {
    t.elapsed().as_micros().min(u64::MAX as u128) as u64
}

/// The path of a URL: no scheme, host or query (never a token).
pub fn endpoint_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    path.trim_start_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn an_endpoint_has_no_host_and_no_query() {
        assert_eq!(
            endpoint_of(
                "https://qyapi.weixin.qq.com/cgi-bin/media/get?access_token=SECRET&media_id=1"
            ),
            "cgi-bin/media/get"
        );
        assert_eq!(endpoint_of("http://127.0.0.1:9/v/a.mp4#x"), "v/a.mp4");
        assert_eq!(endpoint_of("http://127.0.0.1:9"), "");
    }

    #[test]
    fn only_wanted_levels_are_built_and_they_carry_the_transfer() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let events = Events::new(
            Arc::new(move |e: &Event| s.lock().expect("lock").push((e.kind, e.transfer_id))),
            Level::Info,
        );
        let mut built = 0;
        events.emit(Level::Debug, Kind::RequestStarted, |_| built += 1);
        assert_eq!(built, 0);
        let t = Transfer::new();
        {
            let _scope = TransferScope::enter(t.clone());
            events.emit(Level::Warning, Kind::RetryScheduled, |_| built += 1);
            add(|c| &c.retries, 2);
        }
        add(|c| &c.retries, 5); // outside the scope: counted nowhere
        assert_eq!(built, 1);
        assert_eq!(*seen.lock().expect("lock"), [(Kind::RetryScheduled, t.id)]);
        assert_eq!(t.values().retries, 2);
        t.reset();
        assert_eq!(t.values().retries, 0);
        assert!(!Events::default().wants(Level::Error));
    }
}
