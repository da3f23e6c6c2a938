//! `wxm_objstore_*` and `wxm_download_to_object`: a media straight into
//! S3-compatible object storage.

use super::boundary::{arg_ref, arg_str, free_handle, guard, guard_ptr};
use super::download::wxm_download;
use crate::error::{Error, Result};
use crate::objstore::ObjectStore;
use crate::sync::lock;
use std::ffi::c_char;
use std::sync::Mutex;

/// An S3-compatible object store: endpoint, region, credentials and how
/// to upload. Created by `wxm_objstore_new`, filled by the
/// `wxm_objstore_set_*` setters (which copy their strings), used by
/// `wxm_download_to_object` (which copies it when it starts) and released
/// by `wxm_objstore_free`. Thread-safe. What is left unset is taken from
/// the environment as the AWS tools do, when a transfer starts:
/// `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`, `AWS_REGION`/`AWS_DEFAULT_REGION`
/// (else `us-east-1`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`. Requests go through the client's connections: its
/// TLS verification, CA file (`wxm_config_set_ca_file`) and timeouts apply.
pub struct wxm_objstore {
    inner: Mutex<ObjectStore>,
}

/// Creates an object store with nothing set (see `wxm_objstore`). Part
/// size 8 MiB; a failed or cancelled transfer aborts its upload.
#[no_mangle]
pub extern "C" fn wxm_objstore_new() -> *mut wxm_objstore {
    guard_ptr(|| {
        Ok(Box::into_raw(Box::new(wxm_objstore {
            inner: Mutex::new(ObjectStore::new()),
        })))
    })
}

/// Runs a setter on a store, with the boundary's checks.
unsafe fn with_store(
    store: *const wxm_objstore,
    f: impl FnOnce(&mut ObjectStore) -> Result<()>,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live store.
        let s = unsafe { arg_ref(store, "store") }?;
        f(&mut lock(&s.inner))
    })
}

/// Sets the endpoint: `https://s3.example.com`, `http://127.0.0.1:9000`.
/// Default: the environment's, else `https://s3.REGION.amazonaws.com`.
/// Returns 0, or `WXM_E_INVALID_ARG` for NULL, non-UTF-8 or a URL that is
/// not http(s) with a host.
///
/// # Safety
/// `store` is NULL or live; `url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_objstore_set_endpoint(
    store: *mut wxm_objstore,
    url: *const c_char,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_store(store, |s| s.set_endpoint(arg_str(url, "url")?)) }
}

/// Sets the region the requests are signed for. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `store` is NULL or live; `region` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_objstore_set_region(
    store: *mut wxm_objstore,
    region: *const c_char,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_store(store, |s| s.set_region(arg_str(region, "region")?)) }
}

/// Sets the access key and secret, and the session token of temporary
/// credentials (NULL for none). The secret and token never appear in a
/// message. Returns 0 or `WXM_E_INVALID_ARG` (NULL or empty key or secret).
///
/// # Safety
/// `store` is NULL or live; `access_key` and `secret` are NULL or
/// NUL-terminated strings; `session_token` is NULL or one.
#[no_mangle]
pub unsafe extern "C" fn wxm_objstore_set_credentials(
    store: *mut wxm_objstore,
    access_key: *const c_char,
    secret: *const c_char,
    session_token: *const c_char,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_store(store, |s| {
            let token = if session_token.is_null() {
                None
            } else {
                Some(arg_str(session_token, "session_token")?)
            };
            s.set_credentials(
                arg_str(access_key, "access_key")?,
                arg_str(secret, "secret")?,
                token,
            )
        })
    }
}

/// Non-zero: path-style URLs (`endpoint/bucket/key`); 0: virtual-hosted
/// (`bucket.endpoint/key`). Default: path style with an endpoint set or
/// from the environment (what S3-compatible servers expect), virtual-hosted
/// on AWS. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `store` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn wxm_objstore_set_path_style(store: *mut wxm_objstore, enable: i32) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_store(store, |s| {
            s.set_path_style(enable != 0);
            Ok(())
        })
    }
}

/// Non-zero: a failed or cancelled `wxm_download_to_object` keeps its
/// multipart upload and the parts already uploaded, so that a later run
/// (in this process or another) resumes it. 0 (the default): it aborts the
/// upload, leaving no parts behind. A killed process cannot abort: its
/// upload is resumed by the next run for the same media and key, or
/// removed by the bucket's lifecycle rules. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `store` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn wxm_objstore_set_keep_parts_on_failure(
    store: *mut wxm_objstore,
    enable: i32,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_store(store, |s| {
            s.set_keep_parts_on_failure(enable != 0);
            Ok(())
        })
    }
}

/// Sets the part size: a multiple of 16 from 5 MiB to 512 MiB (default
/// 8 MiB). Each connection holds one part in memory: a transfer uses about
/// parallelism × part size. A media of at most one part is sent as one
/// PutObject. A resume needs the same part size as the run it resumes.
/// Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `store` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn wxm_objstore_set_part_size(store: *mut wxm_objstore, bytes: u64) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_store(store, |s| s.set_part_size(bytes)) }
}

/// Releases a store. NULL is ignored. Transfers copy the store when they
/// start, so it may be freed while they run.
///
/// # Safety
/// `store` is NULL or a store from `wxm_objstore_new`, freed once.
#[no_mangle]
pub unsafe extern "C" fn wxm_objstore_free(store: *mut wxm_objstore) {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { free_handle(store) }
}

/// Downloads the media into object `key` of `bucket` in `store`, without
/// touching a disk: the aligned Range chunks become the parts of an S3
/// multipart upload, up to the client's parallelism fetched and uploaded at
/// once, each checked by its Content-MD5. The object, with the media's
/// Content-Type and its WeChat filename as Content-Disposition, appears
/// only when complete. A media of at most one part is one PutObject.
///
/// Resume: an upload of the same media_id (and part size) to the same key
/// left by an earlier run, in this process or another, is found
/// (ListMultipartUploads, ListParts) and completed, fetching from WeChat
/// only the parts it lacks (`wxm_counters.resumed_from` tells how many
/// bytes it had). A failed or cancelled run aborts its upload unless
/// `wxm_objstore_set_keep_parts_on_failure` asked to keep it.
///
/// Returns as `wxm_download_to_path`, plus `WXM_E_OBJECT_STORE_AUTH`
/// (credentials refused, not retried), `WXM_E_NO_SUCH_BUCKET`,
/// `WXM_E_OBJECT_STORE` (another error the store answered, after retries
/// for 5xx), and `WXM_E_INVALID_ARG` (no credentials anywhere, an empty
/// key). Getters and `wxm_download_errmsg` as after `wxm_download_to_path`;
/// the message never contains the secret.
///
/// # Safety
/// `dl` is NULL or a live download; `store` is NULL or a live store;
/// `bucket` and `key` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn wxm_download_to_object(
    dl: *mut wxm_download,
    store: *const wxm_objstore,
    bucket: *const c_char,
    key: *const c_char,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live download.
        let d = unsafe { arg_ref(dl, "download") }?;
        // SAFETY: the caller passes NULL or a live store.
        let s = unsafe { arg_ref(store, "store") }?;
        // SAFETY: the caller passes NULL or NUL-terminated strings.
        let (b, k) = unsafe { (arg_str(bucket, "bucket")?, arg_str(key, "key")?) };
        if k.is_empty() {
            return Err(Error::InvalidArg("key is empty".into()));
        }
        let copy = lock(&s.inner).clone();
        d.finish(d.core.to_object(&copy, b, k))
    })
}
