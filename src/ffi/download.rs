//! `wxm_download_*`: one handle per download.

use super::boundary::{
    arg_ref, arg_str, free_handle, guard, guard_ptr, guard_void, opt_ptr, read_handle, to_cstring,
};
use super::{owned, wxm_client};
use crate::download::{MediaInfo, Sink};
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::transfer::{Download, ProgressFn};
use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Receives the media's bytes, in order: `offset` is where `data` starts in
/// the file, contiguous and strictly increasing from the start offset.
/// `len` may be 0 only for an empty media. `data` is the library's buffer,
/// valid only during this call: copy what you keep. Called only on the
/// thread that called `wxm_download_to_sink`, never concurrently, even in
/// a parallel download. Return 0 to go on, anything else to stop the
/// transfer with `WXM_E_ABORTED`. The callback rules of the header's
/// preamble apply.
pub type wxm_sink_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, offset: u64, data: *const u8, len: usize) -> i32,
>;

/// Reports progress: `done` bytes of the media are with the host (counting
/// a resumed head), of `total` (0 while unknown). Called on the transfer's
/// calling thread: at most about every 10 ms while bytes flow, always for
/// the last byte, and about every 100 ms with unchanged figures while the
/// transfer waits (a stalled server, a slow answer), so a host can stop a
/// stalled transfer from its own thread. Never called from the library's
/// worker threads. Return 0 to go on, anything else to stop with
/// `WXM_E_ABORTED`. The callback rules of the header's preamble apply.
pub type wxm_progress_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, done: u64, total: u64) -> i32>;

#[derive(Clone, Copy)]
pub(crate) struct Callback<F> {
    pub f: F,
    /// The host's pointer, only ever handed back to its own callback on the
    /// calling thread; kept as an integer so the handle is Send + Sync.
    pub user_data: usize,
}

/// The host's progress function as the core's callback (None clears it).
pub(crate) fn progress_fn(progress: wxm_progress_fn, user_data: *mut c_void) -> Option<ProgressFn> {
    let cb = Callback {
        f: progress?,
        user_data: user_data as usize,
    };
    Some(Arc::new(move |done, total| {
        // SAFETY: the host registered `f` with this user_data for this
        // handle; the core calls it on the run's calling thread, as the
        // contract says.
        let rc = unsafe { (cb.f)(cb.user_data as *mut c_void, done, total) };
        if rc != 0 {
            return Err(Error::Aborted(format!("progress callback returned {rc}")));
        }
        Ok(())
    }))
}

#[derive(Default)]
struct Outputs {
    size: u64,
    content_type: Option<CString>,
    filename: Option<CString>,
    video_url: Option<CString>,
    errmsg: CString,
}

/// One download of one media. Created by `wxm_download_new`, run by
/// `wxm_download_to_sink` or `wxm_download_to_path` (again after a failure,
/// if the host wants), released by `wxm_download_free`. Run it on one
/// thread at a time; `wxm_download_cancel` may be called from any thread.
/// Getters are valid after a run returns, until the next run or the free.
pub struct wxm_download {
    pub(crate) core: Download,
    out: Mutex<Outputs>,
}

/// Creates a download of `media_id` with `client` (the download holds its
/// own reference to the client). Returns NULL for NULL or non-UTF-8
/// arguments or an empty media_id (see `wxm_last_errmsg`).
///
/// # Safety
/// `client` is NULL or live; `media_id` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_new(
    client: *const wxm_client,
    media_id: *const c_char,
) -> *mut wxm_download {
    guard_ptr(|| {
        // SAFETY: the caller passes NULL or a live client.
        let c = unsafe { arg_ref(client, "client") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let id = unsafe { arg_str(media_id, "media_id") }?;
        Ok(Box::into_raw(Box::new(wxm_download {
            core: Download::new(c.inner.clone(), id)?,
            out: Mutex::new(Outputs::default()),
        })))
    })
}

/// Starts a sink download at `offset` (host-managed resume): the sink's
/// first call has this offset. An unaligned offset is fetched from its
/// 16-byte floor and the head skipped. `wxm_download_to_path` manages its
/// own resume and refuses a non-zero start. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `dl` is NULL or a live download.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_set_start(dl: *mut wxm_download, offset: u64) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live download.
        let d = unsafe { arg_ref(dl, "download") }?;
        d.core.set_start(offset);
        Ok(())
    })
}

/// Fetches HD voice (`cgi-bin/media/get/jssdk`, speex) instead of
/// `cgi-bin/media/get` when `enable` is non-zero. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `dl` is NULL or a live download.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_set_hd_voice(dl: *mut wxm_download, enable: i32) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live download.
        let d = unsafe { arg_ref(dl, "download") }?;
        d.core.set_hd_voice(enable != 0);
        Ok(())
    })
}

/// Sets (or, with a NULL function, clears) the progress callback.
/// `user_data` is handed back to it as is. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `dl` is NULL or a live download; `user_data` stays valid while the download runs.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_set_progress(
    dl: *mut wxm_download,
    progress: wxm_progress_fn,
    user_data: *mut c_void,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live download.
        let d = unsafe { arg_ref(dl, "download") }?;
        d.core.set_progress(progress_fn(progress, user_data));
        Ok(())
    })
}

struct CSink {
    sink: Callback<wxm_sink_fn>,
}

impl Sink for CSink {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if let Some(f) = self.sink.f {
            // SAFETY: the host's sink, called on the calling thread with a
            // pointer and length into our live buffer.
            let rc = unsafe {
                f(
                    self.sink.user_data as *mut c_void,
                    offset,
                    data.as_ptr(),
                    data.len(),
                )
            };
            if rc != 0 {
                return Err(Error::Aborted(format!("sink returned {rc}")));
            }
        }
        Ok(())
    }
}

impl wxm_download {
    /// Records what a run learnt (its error comes cleaned from the core,
    /// so `wxm_last_errmsg` gets the same text) and returns it.
    pub(crate) fn finish(&self, result: Result<MediaInfo>) -> Result<()> {
        let mut out = lock(&self.out);
        match result {
            Ok(info) => {
                out.size = info.size.unwrap_or(0);
                out.content_type = owned(&info.content_type);
                out.filename = owned(&info.filename);
                out.video_url = owned(&info.video_url);
                // A success may carry a note: a part file that failed its
                // check and was downloaded again.
                out.errmsg = info.note.as_deref().map(to_cstring).unwrap_or_default();
                Ok(())
            }
            Err(e) => {
                out.errmsg = to_cstring(&e.to_string());
                Err(e)
            }
        }
    }
}

/// Downloads the media into `sink`, in order, from the start offset
/// (`wxm_download_set_start`, default 0). Blocks until done; callbacks run
/// on this thread. Returns 0, WeChat's errcode (e.g. 40007, 830002) or a
/// `WXM_E_*`: `WXM_E_ABORTED` when the sink or progress callback stopped
/// it, `WXM_E_CANCELLED`, `WXM_E_NETWORK`/`_TIMEOUT`/`_PROTOCOL` after retries.
///
/// # Safety
/// `dl` is NULL or a live download; `sink` and `user_data` stay valid for the call.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_to_sink(
    dl: *mut wxm_download,
    sink: wxm_sink_fn,
    user_data: *mut c_void,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live download.
        let d = unsafe { arg_ref(dl, "download") }?;
        if sink.is_none() {
            return Err(Error::InvalidArg("sink is NULL".into()));
        }
        let mut s = CSink {
            sink: Callback {
                f: sink,
                user_data: user_data as usize,
            },
        };
        d.finish(d.core.to_sink(&mut s))
    })
}

/// Downloads the media to `path`, atomically: the bytes go to a temporary
/// file beside it (`PATH.wxmpart`, with a resume record
/// `PATH.wxmpart.json`) that is fsynced and renamed into place only when
/// complete. After a network failure or a cancel, the next call for the
/// same media_id and path resumes from the temporary file; after a killed
/// process too, for media of 4 MiB and more (smaller ones start again). A
/// failed download never creates or damages `path`. Returns as
/// `wxm_download_to_sink`, plus `WXM_E_IO` for local file errors.
///
/// # Safety
/// `dl` is NULL or a live download; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_to_path(dl: *mut wxm_download, path: *const c_char) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live download.
        let d = unsafe { arg_ref(dl, "download") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let p = unsafe { arg_str(path, "path") }?;
        if p.is_empty() {
            return Err(Error::InvalidArg("path is empty".into()));
        }
        d.finish(d.core.to_path(Path::new(p)))
    })
}

/// Cancels the download from any thread: a running transfer returns
/// `WXM_E_CANCELLED` within about a second, even while the server stalls,
/// and so does any later run of this handle. NULL is ignored.
///
/// # Safety
/// `dl` is NULL or a live download (not yet freed).
#[no_mangle]
pub unsafe extern "C" fn wxm_download_cancel(dl: *const wxm_download) {
    guard_void(|| {
        // SAFETY: the caller passes NULL or a live download.
        if let Some(d) = unsafe { dl.as_ref() } {
            d.core.cancel();
        }
    })
}

/// The media's size in bytes after a successful run (0 before, or for NULL).
///
/// # Safety
/// `dl` is NULL or a live download.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_size(dl: *const wxm_download) -> u64 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { read_handle(dl, 0, |d| lock(&d.out).size) }
}

fn string_getter(dl: *const wxm_download, pick: fn(&Outputs) -> *const c_char) -> *const c_char {
    // SAFETY: the exported getters pass on their NULL-or-live contract.
    unsafe { read_handle(dl, std::ptr::null(), |h| pick(&lock(&h.out))) }
}

/// The Content-Type of the media, or NULL when unknown. Owned by the handle.
///
/// # Safety
/// `dl` is NULL or a live download.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_content_type(dl: *const wxm_download) -> *const c_char {
    string_getter(dl, |o| opt_ptr(&o.content_type))
}

/// The filename from Content-Disposition (`filename*` first, then
/// `filename`), UTF-8, reduced to its last path component without control
/// characters so that it is safe to join to a directory; NULL when the
/// server sent none. Owned by the handle.
///
/// # Safety
/// `dl` is NULL or a live download.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_filename(dl: *const wxm_download) -> *const c_char {
    string_getter(dl, |o| opt_ptr(&o.filename))
}

/// For Official Account / Mini Program video: the `video_url` WeChat
/// answered (its bytes were downloaded from there); NULL otherwise.
/// Owned by the handle.
///
/// # Safety
/// `dl` is NULL or a live download.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_video_url(dl: *const wxm_download) -> *const c_char {
    string_getter(dl, |o| opt_ptr(&o.video_url))
}

/// The detail of the last failed run; after a success, "" or a note of what
/// the library did to succeed (a kept part file that differed from the
/// media and was downloaded again from byte 0). NULL for a NULL handle.
/// Never contains an access_token or secret. Owned by the handle.
///
/// # Safety
/// `dl` is NULL or a live download.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_errmsg(dl: *const wxm_download) -> *const c_char {
    string_getter(dl, |o| o.errmsg.as_ptr())
}

/// Fills `*out` with what this download counted over its last run (see
/// `wxm_counters`; set `out->size` first). Safe to call from any thread,
/// also while it runs. Returns 0 or `WXM_E_INVALID_ARG` (NULL, a `size`
/// too small).
///
/// # Safety
/// `dl` is NULL or live; `out` is NULL or points to writable storage of
/// `out->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_counters(
    dl: *const wxm_download,
    out: *mut super::event::wxm_counters,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let handle = unsafe { arg_ref(dl, "download") }?;
        // SAFETY: forwarded contract of `out`.
        unsafe { super::event::write_counters(out, handle.core.counters()) }
    })
}

/// Releases a download (not while it runs). NULL is ignored.
/// When it drops the last reference to a client, the token provider's
/// `free_fn` runs here (see `wxm_config_set_token_provider`).
///
/// # Safety
/// `dl` is NULL or a download from `wxm_download_new`, freed once, not running.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_free(dl: *mut wxm_download) {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { free_handle(dl) }
}
