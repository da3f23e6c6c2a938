//! `wxm_url_upload_*`: WeCom's asynchronous upload by URL, one handle per job.

use super::boundary::{
    arg_ref, arg_str, free_handle, guard, guard_ptr, guard_void, opt_ptr, read_handle, to_cstring,
};
use super::download::{with_progress, wxm_progress_fn, Callback};
use super::{owned, wxm_client};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::url_upload::{JobStatus, UrlUpload, MAX_SIZE, MIN_SIZE};
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Job status: not submitted yet.
pub const WXM_JOB_NONE: i32 = 0;
/// Job status: WeChat is fetching the URL.
pub const WXM_JOB_PROCESSING: i32 = 1;
/// Job status: done; the media_id is ready.
pub const WXM_JOB_DONE: i32 = 2;
/// Job status: failed; the run returned the job's errcode (830001, 830003, 45001, 301019).
pub const WXM_JOB_FAILED: i32 = 3;

#[derive(Default)]
struct State {
    request: Option<UrlUpload>,
    jobid: Option<String>,
    status: i32,
    media_id: Option<CString>,
    created_at: i64,
    jobid_c: Option<CString>,
    errmsg: CString,
}

/// One asynchronous upload by URL (WeCom, kf): WeChat fetches the file (up
/// to 200 MiB, video or file) from a URL that supports Range, and the
/// library polls for the result. Created by `wxm_url_upload_new`, run by
/// `wxm_url_upload_run` (or `_submit` then `_wait`), released by
/// `wxm_url_upload_free`. One thread at a time; cancel from any thread.
pub struct wxm_url_upload {
    client: Arc<Client>,
    state: Mutex<State>,
    cancel: Arc<AtomicBool>,
    progress: Mutex<Option<Callback<wxm_progress_fn>>>,
    /// Set while `_submit`, `_wait` or `_run` runs: another call (from
    /// another thread, or from the heartbeat itself) gets `WXM_E_STATE`.
    running: AtomicBool,
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
        Ok(Box::into_raw(Box::new(wxm_url_upload {
            client: c.inner.clone(),
            state: Mutex::new(State {
                request: Some(UrlUpload {
                    scene: 1,
                    kind: kind.to_string(),
                    filename: filename.to_string(),
                    url: url.to_string(),
                    md5: String::new(),
                }),
                ..State::default()
            }),
            cancel: Arc::new(AtomicBool::new(false)),
            progress: Mutex::new(None),
            running: AtomicBool::new(false),
        })))
    })
}

unsafe fn with_request(
    u: *mut wxm_url_upload,
    f: impl FnOnce(&mut UrlUpload) -> Result<()>,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let u = unsafe { arg_ref(u, "url_upload") }?;
        let mut st = lock(&u.state);
        let req = st.request.as_mut().ok_or_else(|| {
            Error::State("this handle waits on a jobid; it has no request".into())
        })?;
        f(req)
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
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_request(u, |r| {
            let m = arg_str(md5_hex, "md5_hex")?;
            if m.len() != 32 || !m.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::InvalidArg("md5 must be 32 hex digits".into()));
            }
            r.md5 = m.to_ascii_lowercase();
            Ok(())
        })
    }
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
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_request(u, |r| {
            let p = arg_str(path, "path")?;
            let (hex, size) = crate::md5::hex_of_file(std::path::Path::new(p))
                .map_err(|e| Error::Io(format!("reading {p}: {e}")))?;
            if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
                return Err(Error::wechat(
                    45001,
                    format!("upload_by_url takes 6 bytes to 200 MiB; {p} has {size}"),
                ));
            }
            r.md5 = hex;
            Ok(())
        })
    }
}

/// Sets the scene (default 1, 客户联系入群欢迎语素材, the only one documented).
///
/// # Safety
/// `u` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wxm_url_upload_set_scene(u: *mut wxm_url_upload, scene: u32) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_request(u, |r| {
            r.scene = scene;
            Ok(())
        })
    }
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
        if j.is_empty() || j.len() > 128 {
            return Err(Error::InvalidArg("jobid must be 1 to 128 bytes".into()));
        }
        let mut st = lock(&u.state);
        st.jobid = Some(j.to_string());
        st.jobid_c = Some(to_cstring(j));
        st.status = WXM_JOB_PROCESSING;
        Ok(())
    })
}

impl wxm_url_upload {
    /// Runs `f` with the host's heartbeat (if set) called by the library's
    /// waits, and records its outcome; one call at a time.
    fn exclusive(&self, f: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.running.swap(true, Ordering::AcqRel) {
            return Err(Error::State(
                "this upload by URL is already running (on another thread, or this is its own callback)"
                    .into(),
            ));
        }
        let cb = *lock(&self.progress);
        let r = with_progress(cb, |_| f());
        self.running.store(false, Ordering::Release);
        self.record(r)
    }

    fn record(&self, result: Result<()>) -> Result<()> {
        let mut st = lock(&self.state);
        match result {
            Ok(()) => {
                st.errmsg = CString::default();
                Ok(())
            }
            Err(e) => {
                // Cleaned here too, so wxm_last_errmsg gets the same text.
                let e = self.client.clean_error(e);
                st.errmsg = to_cstring(&e.to_string());
                Err(e)
            }
        }
    }

    fn submit(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let req = {
            let st = lock(&self.state);
            if st.jobid.is_some() {
                return Ok(());
            }
            st.request
                .clone()
                .ok_or_else(|| Error::State("nothing to submit".into()))?
        };
        let jobid = self.client.upload_by_url_submit(&req, &self.cancel)?;
        let mut st = lock(&self.state);
        st.jobid_c = Some(to_cstring(&jobid));
        st.jobid = Some(jobid);
        st.status = WXM_JOB_PROCESSING;
        Ok(())
    }

    fn wait(&self, timeout_ms: u32) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let jobid = lock(&self.state)
            .jobid
            .clone()
            .ok_or_else(|| Error::State("no job: submit first or set a jobid".into()))?;
        let timeout = Duration::from_millis(if timeout_ms == 0 {
            600_000
        } else {
            timeout_ms.into()
        });
        let outcome = self
            .client
            .upload_by_url_wait(&jobid, timeout, &self.cancel)?;
        let mut st = lock(&self.state);
        match outcome {
            JobStatus::Done {
                media_id,
                created_at,
            } => {
                st.status = WXM_JOB_DONE;
                st.media_id = owned(&Some(media_id));
                st.created_at = created_at;
                Ok(())
            }
            JobStatus::Failed { errcode, errmsg } => {
                st.status = WXM_JOB_FAILED;
                Err(Error::wechat(
                    errcode,
                    format!("upload_by_url job failed: {errmsg}"),
                ))
            }
            JobStatus::Processing => Err(Error::Timeout("job still processing".into())),
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
        *lock(&u.progress) = progress.map(|_| Callback {
            f: progress,
            user_data: user_data as usize,
        });
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
        u.exclusive(|| u.submit())
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
        u.exclusive(|| u.wait(timeout_ms))
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
        u.exclusive(|| u.submit().and_then(|_| u.wait(timeout_ms)))
    })
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
            u.cancel.store(true, Ordering::Relaxed);
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
    getter(u, |s| opt_ptr(&s.jobid_c))
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
