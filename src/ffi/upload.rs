//! `wxm_upload_*`: one handle per upload.

use super::boundary::{
    arg_ref, arg_str, free_handle, guard, guard_ptr, guard_void, opt_ptr, read_handle, to_cstring,
};
use super::download::{progress_fn, wxm_progress_fn, Callback};
use super::{owned, wxm_client};
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::transfer::Upload;
use crate::upload::UploadResult;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};

/// Supplies upload bytes: fill up to `cap` bytes of `buf` and return how
/// many, 0 at the end, or a negative number to stop the upload with
/// `WXM_E_ABORTED`. It must produce exactly the length given to
/// `wxm_upload_set_reader`: fewer or more bytes fail the upload with `WXM_E_IO`
/// (nothing is cut silently). Called on the thread that called
/// `wxm_upload_run`, never concurrently. A reader upload is retried only if
/// the failure came before the reader was read past its first 16 bytes.
/// `buf` is valid only during the call. The callback rules of the header's
/// preamble apply.
pub type wxm_read_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buf: *mut u8, cap: usize) -> i64>;

#[derive(Default)]
struct Outputs {
    url: Option<CString>,
    media_id: Option<CString>,
    kind: Option<CString>,
    created_at: i64,
    errmsg: CString,
}

/// One upload of one file. Created by `wxm_upload_new`, given a source by
/// `wxm_upload_set_path` or `wxm_upload_set_reader`, run by
/// `wxm_upload_run`, released by `wxm_upload_free`. Run it on one thread at
/// a time; `wxm_upload_cancel` may be called from any thread. Getters are
/// valid after a run returns, until the next run or the free.
pub struct wxm_upload {
    core: Upload,
    out: Mutex<Outputs>,
}

/// Creates an upload of media type `type` ("image", "voice", "video",
/// "file", "thumb"), or "uploadimg" for a permanent image URL
/// (`cgi-bin/media/uploadimg`, JPG/PNG up to 2 MB; read it with
/// `wxm_upload_url`). Any string is accepted here: the type, like every
/// local check, is judged by `wxm_upload_run`, which answers WeChat's own
/// errcode (40004) for a type the platform does not take. Returns NULL for
/// NULL or non-UTF-8 arguments (see `wxm_last_errmsg`).
///
/// # Safety
/// `client` is NULL or live; `type` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_new(
    client: *const wxm_client,
    r#type: *const c_char,
) -> *mut wxm_upload {
    guard_ptr(|| {
        // SAFETY: the caller passes NULL or a live client.
        let c = unsafe { arg_ref(client, "client") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let kind = unsafe { arg_str(r#type, "type") }?;
        Ok(Box::into_raw(Box::new(wxm_upload {
            core: Upload::new(c.inner.clone(), kind),
            out: Mutex::new(Outputs::default()),
        })))
    })
}

/// Uploads the file at `path` (streamed, never read whole; retried on -1,
/// 5xx and network errors). Its name is the default filename.
/// Returns 0 or `WXM_E_INVALID_ARG`; the file is opened by `wxm_upload_run`.
///
/// # Safety
/// `up` is NULL or live; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_set_path(up: *mut wxm_upload, path: *const c_char) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live upload.
        let u = unsafe { arg_ref(up, "upload") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let p = unsafe { arg_str(path, "path") }?;
        u.core.set_path(p)
    })
}

/// Uploads `length` bytes produced by `read` (see `wxm_read_fn`). Set a
/// filename with `wxm_upload_set_filename` (default "media" plus the
/// extension of the content). Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `up` is NULL or live; `read` and `user_data` stay valid while the upload runs.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_set_reader(
    up: *mut wxm_upload,
    read: wxm_read_fn,
    user_data: *mut c_void,
    length: u64,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live upload.
        let u = unsafe { arg_ref(up, "upload") }?;
        let Some(f) = read else {
            return Err(Error::InvalidArg("read is NULL".into()));
        };
        let read = Callback {
            f,
            user_data: user_data as usize,
        };
        u.core.set_reader(
            Arc::new(move |buf: &mut [u8]| -> Result<usize> {
                // SAFETY: the host's reader, called by the core on the run's
                // calling thread with our live buffer and its capacity.
                let n =
                    unsafe { (read.f)(read.user_data as *mut c_void, buf.as_mut_ptr(), buf.len()) };
                if n < 0 {
                    return Err(Error::Aborted(format!("reader returned {n}")));
                }
                let n = n as u64;
                if n > buf.len() as u64 {
                    return Err(Error::InvalidArg(format!(
                        "reader returned {n}, more than the {} bytes asked",
                        buf.len()
                    )));
                }
                Ok(n as usize)
            }),
            length,
        );
        Ok(())
    })
}

/// Sets the filename WeChat shows (UTF-8, sent raw as WeChat expects). Its
/// last path component is used, and the extension that matches the content
/// is appended when missing, since WeChat infers the type from it.
/// Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `up` is NULL or live; `filename` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_set_filename(
    up: *mut wxm_upload,
    filename: *const c_char,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live upload.
        let u = unsafe { arg_ref(up, "upload") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let f = unsafe { arg_str(filename, "filename") }?;
        u.core.set_filename(f);
        Ok(())
    })
}

/// Sets (or, with a NULL function, clears) the progress callback: `done`
/// bytes of the file sent, of `total`. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `up` is NULL or live; `user_data` stays valid while the upload runs.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_set_progress(
    up: *mut wxm_upload,
    progress: wxm_progress_fn,
    user_data: *mut c_void,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live upload.
        let u = unsafe { arg_ref(up, "upload") }?;
        u.core.set_progress(progress_fn(progress, user_data));
        Ok(())
    })
}

/// Validates locally (type 40004, empty 44001, ≤ 5 bytes 40006, format by
/// magic bytes 40005, size over the type's limit 40009/40010/40011/40012/40006
/// — sending nothing when a check fails), then sends one streaming
/// multipart request with an exact Content-Length. Returns 0, WeChat's
/// errcode, or a `WXM_E_*` (`WXM_E_IO` for an unreadable file or a reader
/// that ends early, `WXM_E_ABORTED`, `WXM_E_CANCELLED`, network codes).
///
/// Transient failures are retried (a reader only if it can be read again).
/// An upload whose answer was lost is sent again, so it may create a second
/// temporary media: nobody holds its media_id and WeChat drops it after 3
/// days, which costs less than failing the upload.
///
/// # Safety
/// `up` is NULL or a live upload.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_run(up: *mut wxm_upload) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live upload.
        let u = unsafe { arg_ref(up, "upload") }?;
        u.finish(u.core.run())
    })
}

impl wxm_upload {
    /// Records what a run learnt (its error comes cleaned from the core,
    /// so `wxm_last_errmsg` gets the same text) and returns it.
    fn finish(&self, result: Result<UploadResult>) -> Result<()> {
        let mut out = lock(&self.out);
        match result {
            Ok(r) => {
                out.media_id = owned(&Some(r.media_id).filter(|m| !m.is_empty()));
                out.url = owned(&r.url);
                out.kind = owned(&Some(r.kind));
                out.created_at = r.created_at;
                out.errmsg = CString::default();
                Ok(())
            }
            Err(e) => {
                out.errmsg = to_cstring(&e.to_string());
                Err(e)
            }
        }
    }
}

/// Cancels the upload from any thread: a running upload returns
/// `WXM_E_CANCELLED` promptly, and so does any later run. NULL is ignored.
///
/// # Safety
/// `up` is NULL or a live upload (not yet freed).
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_cancel(up: *const wxm_upload) {
    guard_void(|| {
        // SAFETY: the caller passes NULL or a live upload.
        if let Some(u) = unsafe { up.as_ref() } {
            u.core.cancel();
        }
    })
}

fn string_getter(up: *const wxm_upload, pick: fn(&Outputs) -> *const c_char) -> *const c_char {
    // SAFETY: the exported getters pass on their NULL-or-live contract.
    unsafe { read_handle(up, std::ptr::null(), |h| pick(&lock(&h.out))) }
}

/// The media_id WeChat answered (valid 3 days), or NULL before a successful
/// run. Owned by the handle.
///
/// # Safety
/// `up` is NULL or a live upload.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_media_id(up: *const wxm_upload) -> *const c_char {
    string_getter(up, |o| opt_ptr(&o.media_id))
}

/// For type "uploadimg" (`cgi-bin/media/uploadimg`): the permanent image
/// URL WeChat answered; NULL otherwise. Owned by the handle.
///
/// # Safety
/// `up` is NULL or a live upload.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_url(up: *const wxm_upload) -> *const c_char {
    string_getter(up, |o| opt_ptr(&o.url))
}

/// The type WeChat answered, or NULL before a successful run. Owned by the handle.
///
/// # Safety
/// `up` is NULL or a live upload.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_type(up: *const wxm_upload) -> *const c_char {
    string_getter(up, |o| opt_ptr(&o.kind))
}

/// `created_at` (Unix seconds; WeCom sends a string, the Official Account a
/// number: both are read), or 0 before a successful run.
///
/// # Safety
/// `up` is NULL or a live upload.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_created_at(up: *const wxm_upload) -> i64 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { read_handle(up, 0, |u| lock(&u.out).created_at) }
}

/// The detail of the last failed run ("" after a success; NULL for a NULL
/// handle). Never contains an access_token or secret. Owned by the handle.
///
/// # Safety
/// `up` is NULL or a live upload.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_errmsg(up: *const wxm_upload) -> *const c_char {
    string_getter(up, |o| o.errmsg.as_ptr())
}

/// Fills `*out` with what this upload counted over its last run (see
/// `wxm_counters`; set `out->size` first). Safe to call from any thread,
/// also while it runs. Returns 0 or `WXM_E_INVALID_ARG` (NULL, a `size`
/// too small).
///
/// # Safety
/// `up` is NULL or live; `out` is NULL or points to writable storage of
/// `out->size` bytes.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_counters(
    up: *const wxm_upload,
    out: *mut super::event::wxm_counters,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        let handle = unsafe { arg_ref(up, "upload") }?;
        // SAFETY: forwarded contract of `out`.
        unsafe { super::event::write_counters(out, handle.core.counters()) }
    })
}

/// Releases an upload (not while it runs). NULL is ignored.
/// When it drops the last reference to a client, the token provider's
/// `free_fn` runs here (see `wxm_config_set_token_provider`).
///
/// # Safety
/// `up` is NULL or an upload from `wxm_upload_new`, freed once, not running.
#[no_mangle]
pub unsafe extern "C" fn wxm_upload_free(up: *mut wxm_upload) {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { free_handle(up) }
}
