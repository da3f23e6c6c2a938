//! `wxm_url_upload_*`: WeCom's asynchronous upload by URL, one handle per job.

use super::boundary::{
    arg_ref, arg_str, free_handle, guard, guard_ptr, guard_void, opt_ptr, read_handle, to_cstring,
};
use super::download::{progress_fn, wxm_progress_fn};
use super::wxm_client;
use crate::error::Result;
use crate::sync::lock;
use crate::transfer::{JobPhase, UrlUpload};
use crate::url_upload::UrlUploadRequest;
use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Job status: not submitted yet.
pub const WXM_JOB_NONE: i32 = 0;
/// Job status: WeChat is fetching the URL.
pub const WXM_JOB_PROCESSING: i32 = 1;
/// Job status: done; the media_id is ready.
pub const WXM_JOB_DONE: i32 = 2;
/// Job status: failed; the run returned the job's errcode (830001, 830003, 45001, 301019).
pub const WXM_JOB_FAILED: i32 = 3;

/// The job as the getters show it, copied from the core after each call.
#[derive(Default)]
struct State {
    jobid: Option<CString>,
    status: i32,
    media_id: Option<CString>,
    created_at: i64,
    errmsg: CString,
}

/// One asynchronous upload by URL (WeCom, kf): WeChat fetches the file (up
/// to 200 MiB, video or file) from a URL that supports Range, and the
/// library polls for the result. Created by `wxm_url_upload_new`, run by
/// `wxm_url_upload_run` (or `_submit` then `_wait`), released by
/// `wxm_url_upload_free`. One thread at a time; cancel from any thread.
pub struct wxm_url_upload {
    core: UrlUpload,
    state: Mutex<State>,
}

/// Creates an upload by URL of `type` ("video" or "file") fetched by WeChat
/// from `url` and shown as `filename`. Set the MD5 with
/// `wxm_url_upload_set_md5` or `wxm_url_upload_set_md5_from_path` before
/// submitting. Returns NULL for NULL or non-UTF-8 arguments.
///
/// # Safety
/// `client` is NULL or live; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_new(
    client: *const wxm_client,
    r#type: *const c_char,
    url: *const c_char,
    filename: *const c_char,
) -> *mut wxm_url_upload {
    guard_ptr(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (c, kind, url, filename) = unsafe {
            (
                arg_ref(client, "client")?,
                arg_str(r#type, "type")?,
                arg_str(url, "url")?,
                arg_str(filename, "filename")?,
            )
        };
        let request = UrlUploadRequest {
            scene: 1,
            kind: kind.to_string(),
            filename: filename.to_string(),
            url: url.to_string(),
            md5: String::new(),
        };
        Ok(Box::into_raw(Box::new(wxm_url_upload {
            core: UrlUpload::new(c.inner.clone(), request),
            state: Mutex::new(State::default()),
        })))
    })
}

/// Sets the file's MD5 (32 hex digits), which WeChat checks (301019 on a
/// mismatch). Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `u` is NULL or live; `md5_hex` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_set_md5(
    u: *mut wxm_url_upload,
    md5_hex: *const c_char,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (u, m) = unsafe { (arg_ref(u, "url_upload")?, arg_str(md5_hex, "md5_hex")?) };
        u.core.set_md5(m)
    })
}

/// Computes the MD5 from a local copy of the file at `path` (streamed), and
/// checks its size against the limits of the async upload (45001 outside
/// 6 bytes to 200 MiB). Returns 0, 45001, `WXM_E_IO` or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `u` is NULL or live; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_set_md5_from_path(
    u: *mut wxm_url_upload,
    path: *const c_char,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (u, p) = unsafe { (arg_ref(u, "url_upload")?, arg_str(path, "path")?) };
        u.core.set_md5_from_path(Path::new(p))
    })
}

/// Sets the scene (default 1, 客户联系入群欢迎语素材, the only one documented).
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_set_scene(u: *mut wxm_url_upload, scene: u32) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let u = unsafe { arg_ref(u, "url_upload") }?;
        u.core.set_scene(scene)
    })
}

/// Waits on an already submitted job (e.g. after a restart, or on the
/// `upload_media_job_finish` event) instead of submitting a new one.
/// Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `u` is NULL or live; `jobid` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_set_jobid(
    u: *mut wxm_url_upload,
    jobid: *const c_char,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or live pointers.
        let (u, j) = unsafe { (arg_ref(u, "url_upload")?, arg_str(jobid, "jobid")?) };
        u.core.set_jobid(j)?;
        u.sync_job();
        Ok(())
    })
}

impl wxm_url_upload {
    /// Copies the core's job into the getters' strings; a string that did
    /// not change keeps its pointer.
    fn sync_job(&self) {
        let job = self.core.job();
        let mut st = lock(&self.state);
        let same = |c: &Option<CString>, s: &Option<String>| {
            c.as_ref().map(|c| c.as_bytes()) == s.as_deref().map(str::as_bytes)
        };
        if !same(&st.jobid, &job.jobid) {
            st.jobid = job.jobid.as_deref().map(to_cstring);
        }
        if !same(&st.media_id, &job.media_id) {
            st.media_id = job.media_id.as_deref().map(to_cstring);
        }
        st.created_at = job.created_at;
        st.status = match job.phase {
            JobPhase::None => WXM_JOB_NONE,
            JobPhase::Processing => WXM_JOB_PROCESSING,
            JobPhase::Done => WXM_JOB_DONE,
            JobPhase::Failed => WXM_JOB_FAILED,
        };
    }

    /// Records a call's outcome (its error comes cleaned from the core, so
    /// `wxm_last_errmsg` gets the same text) and returns it.
    fn record<T>(&self, result: Result<T>) -> Result<()> {
        self.sync_job();
        let mut st = lock(&self.state);
        match result {
            Ok(_) => {
                st.errmsg = CString::default();
                Ok(())
            }
            Err(e) => {
                st.errmsg = to_cstring(&e.to_string());
                Err(e)
            }
        }
    }
}

/// Sets (or, with a NULL function, clears) a heartbeat for `_submit`,
/// `_wait` and `_run`: the progress callback, called on the calling thread
/// about every 100 ms while they wait (for WeChat's answers, between
/// polls, in retry pauses) with `done` and `total` both 0, since WeChat
/// fetches the bytes. A non-zero return stops the call with
/// `WXM_E_ABORTED`; the job goes on at WeChat, and a later `_wait` picks it
/// up. This is how a host checks for its own interrupts (Python's Ctrl-C)
/// during a wait of minutes. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `u` is NULL or live; `user_data` stays valid while a call of `u` runs.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_set_progress(
    u: *mut wxm_url_upload,
    progress: wxm_progress_fn,
    user_data: *mut c_void,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let u = unsafe { arg_ref(u, "url_upload") }?;
        u.core.set_progress(progress_fn(progress, user_data));
        Ok(())
    })
}

/// Submits the job (validating locally first: type 40004, fields 40058,
/// platform 48001). Returns 0 with the jobid in `wxm_url_upload_jobid`, or
/// an errcode. Does nothing when a jobid is already set.
///
/// The submission is never sent twice: it is retried only when it failed
/// before leaving this host, or when WeChat answered an errcode (then no job
/// exists). When the answer is lost after the request may have arrived, it
/// returns `WXM_E_OUTCOME_UNKNOWN`: a job may exist, and submitting again
/// could start a second one.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_submit(u: *mut wxm_url_upload) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let u = unsafe { arg_ref(u, "url_upload") }?;
        u.record(u.core.submit())
    })
}

/// Polls the job with backoff until it is done (0; `wxm_url_upload_media_id`)
/// or failed (the job's errcode: 830001 URL without Range support, 830003
/// download failed, 45001 size, 301019 MD5 mismatch), or `timeout_ms`
/// passes (`WXM_E_TIMEOUT`: the job goes on; wait again). 0 means 10 minutes.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_wait(u: *mut wxm_url_upload, timeout_ms: u32) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let u = unsafe { arg_ref(u, "url_upload") }?;
        u.record(u.core.wait(timeout(timeout_ms)))
    })
}

/// Submits (unless a jobid is set) and waits: `_submit` then `_wait`.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_run(u: *mut wxm_url_upload, timeout_ms: u32) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let u = unsafe { arg_ref(u, "url_upload") }?;
        u.record(u.core.run(timeout(timeout_ms)))
    })
}

/// 0 means the core's default wait.
fn timeout(timeout_ms: u32) -> Option<Duration> {
    (timeout_ms != 0).then(|| Duration::from_millis(timeout_ms.into()))
}

/// Cancels a submit or wait from any thread (`WXM_E_CANCELLED`); the job
/// itself goes on at WeChat. NULL is ignored.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_cancel(u: *const wxm_url_upload) {
    guard_void(|| {
        // SAFETY: the caller passes NULL or a live handle.
        if let Some(u) = unsafe { u.as_ref() } {
            u.core.cancel();
        }
    })
}

fn getter(u: *const wxm_url_upload, pick: fn(&State) -> *const c_char) -> *const c_char {
    // SAFETY: the exported getters pass on their NULL-or-live contract.
    unsafe { read_handle(u, std::ptr::null(), |h| pick(&lock(&h.state))) }
}

/// The jobid (valid 60 minutes at WeChat), or NULL before a submit. Owned by the handle.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_jobid(u: *const wxm_url_upload) -> *const c_char {
    getter(u, |s| opt_ptr(&s.jobid))
}

/// The media_id once the job is done, else NULL. Owned by the handle.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_media_id(u: *const wxm_url_upload) -> *const c_char {
    getter(u, |s| opt_ptr(&s.media_id))
}

/// The media's created_at once the job is done, else 0.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_created_at(u: *const wxm_url_upload) -> i64 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { read_handle(u, 0, |u| lock(&u.state).created_at) }
}

/// `WXM_JOB_NONE`, `_PROCESSING`, `_DONE` or `_FAILED` (0 for NULL).
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_status(u: *const wxm_url_upload) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { read_handle(u, 0, |u| lock(&u.state).status) }
}

/// The detail of the last failure ("" after a success; NULL for NULL). Owned by the handle.
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_errmsg(u: *const wxm_url_upload) -> *const c_char {
    getter(u, |s| s.errmsg.as_ptr())
}

/// Fills `*out` with what this upload by URL counted over its last run (see
/// `wxm_counters`; set `out->size` first). Safe to call from any thread,
/// also while it runs. Returns 0 or `WXM_E_INVALID_ARG` (NULL, a `size`
/// too small).
///
/// # Safety
/// `u` is NULL or live; `out` is NULL or points to writable storage of
/// `out->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_counters(
    u: *const wxm_url_upload,
    out: *mut super::event::wxm_counters,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let handle = unsafe { arg_ref(u, "upload by URL") }?;
        // SAFETY: forwarded contract of `out`.
        unsafe { super::event::write_counters(out, handle.core.counters()) }
    })
}

/// Releases the handle (not while it runs). NULL is ignored.
/// When it drops the last reference to a client, the token provider's
/// `free_fn` runs here (see `wxm_config_set_token_provider`).
///
/// # Safety
/// `u` is NULL or a handle from `wxm_url_upload_new`, freed once.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_free(u: *mut wxm_url_upload) {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { free_handle(u) }
}
