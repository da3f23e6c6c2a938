//! `wxm_config_set_event_handler` and the counters of every transfer handle.

use super::{with_config, wxm_config, wxm_free_fn, HostData};
use crate::error::{Error, Result};
use crate::event::{CounterValues, Event, Events, Level};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

/// A transfer's run started (`wxm_download_to_*`, `wxm_upload_run`,
/// `wxm_url_upload_*`). Level INFO.
pub const WXM_EVENT_TRANSFER_STARTED: i32 = 1;
/// A run ended: `errcode` is its result (0: success), `duration_us` its
/// time, `bytes` what it moved. INFO on success, WARNING on failure.
pub const WXM_EVENT_TRANSFER_FINISHED: i32 = 2;
/// An HTTP request is about to be sent: `endpoint`, the Range asked for,
/// `attempt`, `via_video_url`. Level DEBUG.
pub const WXM_EVENT_REQUEST_STARTED: i32 = 3;
/// An HTTP request ended: `http_status` (0: no answer), `errcode`,
/// `bytes` (received for a download, the file's bytes sent for an upload),
/// `duration_us`, `expect_continue`. Level DEBUG.
pub const WXM_EVENT_REQUEST_FINISHED: i32 = 4;
/// A failed request will be sent again after `backoff_ms`: `attempt` is the
/// number of the coming attempt, `retry_reason` the code that caused it.
/// Level WARNING.
pub const WXM_EVENT_RETRY_SCHEDULED: i32 = 5;
/// An access_token was fetched (`token_source`, `token_fetch_us`). INFO.
pub const WXM_EVENT_TOKEN_FETCHED: i32 = 6;
/// An access_token was fetched again after WeChat rejected the one in use.
/// INFO.
pub const WXM_EVENT_TOKEN_REFRESHED: i32 = 7;
/// A token another process fetched was taken from the token store. INFO.
pub const WXM_EVENT_TOKEN_SHARED: i32 = 8;
/// A download to a path resumes its part file at `resume_offset`; the
/// `resume_verified` bytes before it are fetched again and compared first.
/// Level INFO.
pub const WXM_EVENT_RESUME_DECIDED: i32 = 9;
/// The part file failed that check (or the media changed size): it is
/// discarded and the media downloaded from byte 0. Level WARNING.
pub const WXM_EVENT_RESUME_CHECK_FAILED: i32 = 10;
/// A fallback was taken: the token store failed and the host allowed a
/// local fetch (WARNING), or a server refused `Expect: 100-continue` and
/// the body was sent again without it (INFO).
pub const WXM_EVENT_FALLBACK: i32 = 11;

/// Levels, with the numbers of Python's logging levels.
pub const WXM_LEVEL_DEBUG: i32 = 10;
pub const WXM_LEVEL_INFO: i32 = 20;
pub const WXM_LEVEL_WARNING: i32 = 30;
pub const WXM_LEVEL_ERROR: i32 = 40;

/// `wxm_event.token_source`: where a token came from.
pub const WXM_TOKEN_SOURCE_NONE: i32 = 0;
pub const WXM_TOKEN_SOURCE_STATIC: i32 = 1;
pub const WXM_TOKEN_SOURCE_CREDENTIALS: i32 = 2;
pub const WXM_TOKEN_SOURCE_PROVIDER: i32 = 3;
pub const WXM_TOKEN_SOURCE_STORE: i32 = 4;

/// `wxm_event.expect_continue`: how an upload's `Expect: 100-continue` went.
/// Not asked (bodies under 1 MiB).
pub const WXM_CONTINUE_NOT_ASKED: i32 = 0;
/// Asked, and the body was sent (after a 100, or after the wait for one).
pub const WXM_CONTINUE_BODY_SENT: i32 = 1;
/// Asked, and the server answered before the body: a refusal cost no body.
pub const WXM_CONTINUE_ANSWERED_FIRST: i32 = 2;
/// The server refused the expectation (417): sent again without it.
pub const WXM_CONTINUE_REFUSED: i32 = 3;

/// One event, valid only during the handler's call (copy what you keep).
/// Fields that do not apply to its kind are 0 or "". New fields are only
/// ever added at the end: read `size` before a field added later than the
/// ones you know. No field or message ever holds an access_token, secret or
/// password.
#[repr(C)]
pub struct wxm_event {
    /// `sizeof` the struct as this library fills it.
    pub size: usize,
    /// `WXM_EVENT_*`.
    pub kind: i32,
    /// `WXM_LEVEL_*`.
    pub level: i32,
    /// CLOCK_MONOTONIC in nanoseconds (Python's `time.monotonic_ns`).
    pub time_ns: u64,
    /// The transfer handle's id (`wxm_counters.transfer_id`); 0 outside one.
    pub transfer_id: u64,
    /// The API path (`cgi-bin/media/get`) or a video_url's path: no host, no
    /// query. Never NULL.
    pub endpoint: *const c_char,
    /// For a person. Never NULL.
    pub message: *const c_char,
    /// The Range asked for: `[range_start, range_end)`; 0 and 0 for none.
    pub range_start: u64,
    pub range_end: u64,
    /// The HTTP status of the answer (0: none).
    pub http_status: i32,
    /// WeChat's errcode or a `WXM_E_*` code; 0 for success.
    pub errcode: i32,
    pub bytes: u64,
    pub duration_us: u64,
    /// 1 for a request's first attempt, 2 for its first retry, …
    pub attempt: u32,
    /// A retry: the code of the failure that caused it.
    pub retry_reason: i32,
    pub backoff_ms: u64,
    /// `WXM_TOKEN_SOURCE_*`.
    pub token_source: i32,
    /// `WXM_CONTINUE_*`.
    pub expect_continue: i32,
    pub token_fetch_us: u64,
    pub resume_offset: u64,
    pub resume_verified: u64,
    /// Non-zero when the body came from a `video_url`.
    pub via_video_url: i32,
    pub reserved: i32,
    /// A request's HTTP method (`"GET"`, `"POST"`, `"PUT"`…); `""` for
    /// other kinds. Never NULL.
    pub method: *const c_char,
}

/// Receives events (see `wxm_event`). Called on the thread where the event
/// happens: the thread running a transfer, or one of the worker threads a
/// download with parallelism > 1 starts (joined before the run returns).
/// So it may be called concurrently, from several threads, for transfers
/// of the same client: it must be thread-safe. It must return quickly
/// (every request waits for it) and must not call `wxm_*` functions on the
/// transfer that emitted the event, except `wxm_*_cancel`. The callback
/// rules of the header's preamble apply.
pub type wxm_event_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const wxm_event)>;

/// Sends the events of every client made from this config, of `min_level`
/// (`WXM_LEVEL_*`) and above, to `handler` (see `wxm_event_fn`). Events
/// below `min_level` are never built: a client without a handler, or with a
/// high `min_level`, pays nothing for them.
///
/// Ownership of `user_data` is as for `wxm_config_set_token_provider`: the
/// library takes it in every case and calls `free_fn(user_data)` (if not
/// NULL) exactly once, after the last call of `handler`: when the config
/// and every client and transfer made from it are freed, or when it is
/// replaced on a config no client was made from, or at once when this
/// fails or `handler` is NULL (which removes the handler). Returns 0 or
/// `WXM_E_INVALID_ARG` (a NULL config, an unknown level).
///
/// # Safety
/// `cfg` is NULL or live; `handler`, `user_data` and `free_fn` follow the
/// contract above.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_event_handler(
    cfg: *mut wxm_config,
    handler: wxm_event_fn,
    user_data: *mut c_void,
    free_fn: wxm_free_fn,
    min_level: i32,
) -> i32 {
    // Owned from here: dropped (free_fn called) on every path that does
    // not hand it to the handler.
    let data = HostData {
        user_data: user_data as usize,
        free_fn,
    };
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_config(cfg, move |c| {
            let level = level_from(min_level)?;
            c.set_events(match handler {
                Some(f) => Events::new(host_handler(f, data), level),
                None => Events::default(),
            });
            Ok(())
        })
    }
}

fn level_from(n: i32) -> Result<Level> {
    Ok(match n {
        WXM_LEVEL_DEBUG => Level::Debug,
        WXM_LEVEL_INFO => Level::Info,
        WXM_LEVEL_WARNING => Level::Warning,
        WXM_LEVEL_ERROR => Level::Error,
        _ => {
            return Err(Error::InvalidArg(format!(
                "unknown event level {n} (WXM_LEVEL_DEBUG, _INFO, _WARNING or _ERROR)"
            )))
        }
    })
}

/// A NUL-terminated copy of an event's text (a NUL inside becomes a space).
fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

type HostEventFn = unsafe extern "C" fn(*mut c_void, *const wxm_event);

/// The core's handler for a host's callback. The closure owns `data`, so
/// `free_fn` runs when the last clone of the handler is dropped.
fn host_handler(f: HostEventFn, data: HostData) -> crate::event::HandlerFn {
    Arc::new(move |e: &Event| {
        // The whole `data`, not a field of it: the closure must own it.
        let data = &data;
        let endpoint = c_text(&e.endpoint);
        let message = c_text(&e.message);
        let method = c_text(e.method);
        let ev = wxm_event {
            size: std::mem::size_of::<wxm_event>(),
            kind: e.kind as i32,
            level: e.level as i32,
            time_ns: e.time_ns,
            transfer_id: e.transfer_id,
            endpoint: endpoint.as_ptr(),
            message: message.as_ptr(),
            range_start: e.range_start,
            range_end: e.range_end,
            http_status: i32::from(e.http_status),
            errcode: e.errcode,
            bytes: e.bytes,
            duration_us: e.duration_us,
            attempt: e.attempt,
            retry_reason: e.retry_reason,
            backoff_ms: e.backoff_ms,
            token_source: e.token_origin as i32,
            expect_continue: e.expect_continue as i32,
            token_fetch_us: e.token_fetch_us,
            resume_offset: e.resume_offset,
            resume_verified: e.resume_verified,
            via_video_url: i32::from(e.via_video_url),
            reserved: 0,
            method: method.as_ptr(),
        };
        // SAFETY: the host's handler with its own user_data (alive until
        // `data` is dropped) and an event whose strings live to the end of
        // this call; the host promised it is thread-safe.
        unsafe { f(data.user_data as *mut c_void, &ev) }
    })
}

/// What a transfer handle counted over its last run (the one in progress
/// while it runs), whatever its outcome. Set `size` to `sizeof(wxm_counters)`
/// before the call: the library fills no more than that, so a host built
/// against an older header keeps working when fields are added at the end.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct wxm_counters {
    /// Set by the caller: `sizeof(wxm_counters)`.
    pub size: usize,
    /// The handle's id, as in its events.
    pub transfer_id: u64,
    /// HTTP requests sent, each retry included (one per
    /// `WXM_EVENT_REQUEST_STARTED`); access_token fetches are not counted.
    pub requests: u64,
    /// Requests sent again after a transient failure (backoffs taken).
    pub retries: u64,
    /// Media bytes received (a resume's re-checked overlap included).
    pub bytes_received: u64,
    /// File bytes sent in upload bodies (a body sent again counts again);
    /// for `wxm_download_to_object`, the bodies of its parts and PutObject
    /// (its resume marker part adds a few hundred bytes).
    pub bytes_sent: u64,
    /// Access tokens fetched again for this run after WeChat rejected one
    /// (its `WXM_EVENT_TOKEN_REFRESHED` events): a token another worker or
    /// process had already fetched is taken, not counted.
    pub token_refreshes: u64,
    /// Where a download to a path resumed its part file (0: from the start).
    pub resumed_from: u64,
    /// Time of the run, in microseconds.
    pub elapsed_us: u64,
}

impl wxm_counters {
    fn from_values(v: CounterValues) -> wxm_counters {
        wxm_counters {
            size: std::mem::size_of::<wxm_counters>(),
            transfer_id: v.transfer_id,
            requests: v.requests,
            retries: v.retries,
            bytes_received: v.bytes_received,
            bytes_sent: v.bytes_sent,
            token_refreshes: v.token_refreshes,
            resumed_from: v.resumed_from,
            elapsed_us: v.elapsed_us,
        }
    }
}

/// Writes `values` into the host's `out`, no further than `out->size`.
///
/// # Safety
/// `out` is NULL or points to writable storage of at least `out->size`
/// bytes whose `size` field is set.
pub(crate) unsafe fn write_counters(out: *mut wxm_counters, values: CounterValues) -> Result<()> {
    if out.is_null() {
        return Err(Error::InvalidArg("out is NULL".into()));
    }
    // SAFETY: non-NULL, and the caller set its leading `size` field.
    let room = unsafe { std::ptr::addr_of!((*out).size).read_unaligned() };
    let first = std::mem::size_of::<usize>() + std::mem::size_of::<u64>();
    if room < first {
        return Err(Error::InvalidArg(format!(
            "out->size is {room}: set it to sizeof(wxm_counters)"
        )));
    }
    let full = wxm_counters::from_values(values);
    let n = room.min(std::mem::size_of::<wxm_counters>());
    // SAFETY: `out` has room for `room` >= `n` bytes (the caller's promise)
    // and `full` is a plain struct of `size_of` >= `n` bytes; they do not
    // overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&full as *const wxm_counters).cast::<u8>(),
            out.cast::<u8>(),
            n,
        );
        // What was filled, so a newer host sees which fields are old.
        std::ptr::addr_of_mut!((*out).size).write_unaligned(n);
    }
    Ok(())
}
