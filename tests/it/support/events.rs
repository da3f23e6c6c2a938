//! Events through the C ABI: a handler that copies every `wxm_event` it is
//! given, checks what must hold of every event (its `size`, non-NULL
//! strings, a known kind and level) and that no secret shows in its
//! endpoint or message. Every client the support module makes gets one at
//! DEBUG (the leak check of every test); a test that looks at the events
//! passes its own `EventLog` in `ClientOpts::events`.
//!
//! A problem is recorded, never panicked on inside the callback (a panic
//! cannot cross the C ABI): `TestClient`'s drop fails the test with it, and
//! tests that read the log call `assert_ok`.

use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wxmedia::ffi::event::*;
use wxmedia::ffi::*;

/// Never in an event: the tokens and secrets of the whole suite, and the
/// prefix of every token the emulator issues.
pub const SUITE_SECRETS: &[&str] = &[
    super::TOKEN,
    super::HOSTILE_TOKEN,
    super::SECRET,
    "wxmtok",
    "hostile-secret-9ZqT4",
    "not-the-secret",
    "s3cret-pw",
    "wrong-pw",
    "alice-pw",
];

/// One event, copied out of the callback.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ev {
    pub kind: i32,
    pub level: i32,
    pub time_ns: u64,
    pub transfer_id: u64,
    pub endpoint: String,
    pub message: String,
    pub range_start: u64,
    pub range_end: u64,
    pub http_status: i32,
    pub errcode: i32,
    pub bytes: u64,
    pub duration_us: u64,
    pub attempt: u32,
    pub retry_reason: i32,
    pub backoff_ms: u64,
    pub token_source: i32,
    pub expect_continue: i32,
    pub token_fetch_us: u64,
    pub resume_offset: u64,
    pub resume_verified: u64,
    pub via_video_url: bool,
    pub method: String,
    /// The thread that called the handler.
    pub thread: Option<String>,
}

/// What one handler saw.
#[derive(Debug, Default)]
pub struct EventLog {
    secrets: Vec<String>,
    record: bool,
    events: Mutex<Vec<Ev>>,
    problems: Mutex<Vec<String>>,
    /// Calls of the handler.
    pub calls: AtomicU64,
    /// Calls of its free_fn (1 once every holder let go).
    pub freed: AtomicU64,
}

impl EventLog {
    /// A log that only checks (the default of every client): nothing kept,
    /// so long tests do not grow.
    pub fn checking(extra_secrets: &[&str]) -> Arc<EventLog> {
        Self::make(extra_secrets, false)
    }

    /// A log that keeps every event.
    pub fn recording(extra_secrets: &[&str]) -> Arc<EventLog> {
        Self::make(extra_secrets, true)
    }

    fn make(extra: &[&str], record: bool) -> Arc<EventLog> {
        let secrets = SUITE_SECRETS
            .iter()
            .chain(extra)
            // A short "secret" would match ordinary words.
            .filter(|s| s.len() >= 6)
            .map(|s| s.to_string())
            .collect();
        Arc::new(EventLog {
            secrets,
            record,
            ..EventLog::default()
        })
    }

    pub fn events(&self) -> Vec<Ev> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The events of one transfer, in the order they were emitted.
    pub fn of(&self, transfer_id: u64) -> Vec<Ev> {
        let mut v: Vec<Ev> = self
            .events()
            .into_iter()
            .filter(|e| e.transfer_id == transfer_id)
            .collect();
        v.sort_by_key(|e| e.time_ns);
        v
    }

    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fails with every problem seen (a leak, a malformed event).
    pub fn assert_ok(&self) {
        let p = self.problems();
        assert!(p.is_empty(), "bad events: {p:#?}");
    }

    fn problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        // Enough to diagnose; a leak in every request need not be kept 10^4 times.
        if p.len() < 20 {
            p.push(what);
        }
    }

    fn check(&self, e: &Ev, size: usize, null: Option<&str>) {
        if size != std::mem::size_of::<wxm_event>() {
            self.problem(format!(
                "size {size} != sizeof(wxm_event) {}: {e:?}",
                std::mem::size_of::<wxm_event>()
            ));
        }
        if let Some(which) = null {
            self.problem(format!("{which} is NULL: {e:?}"));
        }
        if !(1..=11).contains(&e.kind) {
            self.problem(format!("unknown kind: {e:?}"));
        }
        // A request names its method; nothing else has one.
        let request = matches!(
            e.kind,
            WXM_EVENT_REQUEST_STARTED | WXM_EVENT_REQUEST_FINISHED
        );
        if request == e.method.is_empty() {
            self.problem(format!("method {:?} for kind {}: {e:?}", e.method, e.kind));
        }
        if ![10, 20, 30, 40].contains(&e.level) {
            self.problem(format!("unknown level: {e:?}"));
        }
        for s in &self.secrets {
            if e.endpoint.contains(s.as_str()) || e.message.contains(s.as_str()) {
                self.problem(format!("leaks {s:?}: {e:?}"));
            }
        }
    }
}

/// The handler: copies, checks, keeps (when recording).
pub unsafe extern "C" fn on_event(ud: *mut c_void, ev: *const wxm_event) {
    // SAFETY: ud is the EventLog of `watch` (alive until free_log); ev is
    // valid for this call, as the header promises.
    let (log, ev) = unsafe { (&*(ud as *const EventLog), &*ev) };
    log.calls.fetch_add(1, Ordering::Relaxed);
    let string = |p: *const std::ffi::c_char| {
        // SAFETY: non-NULL strings of an event are NUL-terminated for the call.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let (endpoint, message, method) = (string(ev.endpoint), string(ev.message), string(ev.method));
    let null = match (&endpoint, &message, &method) {
        (None, _, _) => Some("endpoint"),
        (_, None, _) => Some("message"),
        (_, _, None) => Some("method"),
        _ => None,
    };
    let e = Ev {
        kind: ev.kind,
        level: ev.level,
        time_ns: ev.time_ns,
        transfer_id: ev.transfer_id,
        endpoint: endpoint.unwrap_or_default(),
        message: message.unwrap_or_default(),
        range_start: ev.range_start,
        range_end: ev.range_end,
        http_status: ev.http_status,
        errcode: ev.errcode,
        bytes: ev.bytes,
        duration_us: ev.duration_us,
        attempt: ev.attempt,
        retry_reason: ev.retry_reason,
        backoff_ms: ev.backoff_ms,
        token_source: ev.token_source,
        expect_continue: ev.expect_continue,
        token_fetch_us: ev.token_fetch_us,
        resume_offset: ev.resume_offset,
        resume_verified: ev.resume_verified,
        via_video_url: ev.via_video_url != 0,
        method: method.unwrap_or_default(),
        thread: log
            .record
            .then(|| format!("{:?}", std::thread::current().id())),
    };
    log.check(&e, ev.size, null);
    if log.record {
        log.events.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
}

unsafe extern "C" fn free_log(ud: *mut c_void) {
    // SAFETY: ud is the Arc::into_raw of `watch`, let go exactly once here.
    let log = unsafe { Arc::from_raw(ud as *const EventLog) };
    log.freed.fetch_add(1, Ordering::SeqCst);
}

/// Sends the events of clients made from `cfg` (of `min_level` and above)
/// to `log`.
///
/// # Safety
/// `cfg` is a live config.
pub unsafe fn watch(cfg: *mut wxm_config, log: &Arc<EventLog>, min_level: i32) {
    let ud = Arc::into_raw(log.clone()) as *mut c_void;
    // SAFETY: a live config; ud is let go by free_log, whatever the result.
    let rc =
        unsafe { wxm_config_set_event_handler(cfg, Some(on_event), ud, Some(free_log), min_level) };
    assert_eq!(rc, 0, "wxm_config_set_event_handler");
}

/// The logs of live clients, checked when the client is dropped.
static WATCHED: Mutex<Vec<(usize, Arc<EventLog>)>> = Mutex::new(Vec::new());

/// Checks `log` when the `TestClient` of `client` is dropped.
pub fn check_on_drop(client: *mut wxm_client, log: Arc<EventLog>) {
    WATCHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((client as usize, log));
}

/// Called by `TestClient::drop`, after the client is freed: fails the test
/// with the problems its events showed (unless it already fails).
pub(super) fn check_dropped(client: *mut wxm_client) {
    let log = {
        let mut w = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
        let at = w.iter().position(|(c, _)| *c == client as usize);
        at.map(|i| w.swap_remove(i).1)
    };
    if let Some(log) = log {
        if !std::thread::panicking() {
            log.assert_ok();
        }
    }
}

/// Installs the leak check on a config a test builds by hand; pass the
/// client made from it to `check_on_drop`.
///
/// # Safety
/// `cfg` is a live config.
pub unsafe fn watch_for_leaks(cfg: *mut wxm_config, extra_secrets: &[&str]) -> Arc<EventLog> {
    let log = EventLog::checking(extra_secrets);
    // SAFETY: forwarded.
    unsafe { watch(cfg, &log, WXM_LEVEL_DEBUG) };
    log
}

/// A `wxm_counters` ready for a getter: zero, with its `size` set.
pub fn empty_counters() -> wxm_counters {
    wxm_counters {
        size: std::mem::size_of::<wxm_counters>(),
        transfer_id: 0,
        requests: 0,
        retries: 0,
        bytes_received: 0,
        bytes_sent: 0,
        token_refreshes: 0,
        resumed_from: 0,
        elapsed_us: 0,
    }
}

/// A transfer's counters, comparable and printable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub transfer_id: u64,
    pub requests: u64,
    pub retries: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub token_refreshes: u64,
    pub resumed_from: u64,
    pub elapsed_us: u64,
}

impl From<wxm_counters> for Counted {
    fn from(c: wxm_counters) -> Counted {
        Counted {
            transfer_id: c.transfer_id,
            requests: c.requests,
            retries: c.retries,
            bytes_received: c.bytes_received,
            bytes_sent: c.bytes_sent,
            token_refreshes: c.token_refreshes,
            resumed_from: c.resumed_from,
            elapsed_us: c.elapsed_us,
        }
    }
}
