//! The C ABI: handles, NULL and UTF-8 checks, the panic boundary. No logic
//! lives here; every function forwards to the core.
#![allow(non_camel_case_types)]

pub mod boundary;
pub mod download;
pub mod event;
pub mod objstore;
pub mod upload;
pub mod url_upload;

use crate::auth::ProviderFn;
use crate::client::Client;
use crate::config::{Config, Platform};
use crate::error::{Error, Result};
use boundary::{arg_mut, arg_ref, arg_str, free_handle, guard, guard_ptr};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;

/// Configuration for a client. Created by `wxm_config_new`, filled by the
/// `wxm_config_set_*` setters (which copy their strings), used by
/// `wxm_client_new` (which copies it) and released by `wxm_config_free`.
/// Not thread-safe: fill it on one thread.
pub struct wxm_config {
    pub(crate) inner: Config,
}

/// A client: one keep-alive connection pool and one access_token cache.
/// Thread-safe: share one client between threads and transfers. Every
/// transfer holds its own reference, so the client may be freed while
/// transfers created from it are still alive.
pub struct wxm_client {
    pub(crate) inner: Arc<Client>,
}

/// Creates a configuration for a platform: `WXM_PLATFORM_WECOM`,
/// `WXM_PLATFORM_KF`, `WXM_PLATFORM_OFFICIAL` or `WXM_PLATFORM_MINIPROGRAM`.
/// Defaults: the platform's API host, chunk size 20 MiB, parallelism 1,
/// connect timeout 10 s, I/O timeout 30 s, 4 attempts with 200 ms backoff.
/// Returns NULL for an unknown platform (see `wxm_last_errmsg`).
#[no_mangle]
pub extern "C" fn wxm_config_new(platform: i32) -> *mut wxm_config {
    guard_ptr(|| {
        let p = Platform::from_code(platform)
            .ok_or_else(|| Error::InvalidArg(format!("unknown platform {platform}")))?;
        Ok(Box::into_raw(Box::new(wxm_config {
            inner: Config::new(p),
        })))
    })
}

/// Releases a configuration. NULL is accepted and ignored. When no client
/// holds its token provider, the provider's `free_fn` runs here.
///
/// # Safety
/// `cfg` is NULL or a configuration from `wxm_config_new`, freed once.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_free(cfg: *mut wxm_config) {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { free_handle(cfg) }
}

/// Runs a setter on a config, with the boundary's checks.
unsafe fn with_config(cfg: *mut wxm_config, f: impl FnOnce(&mut Config) -> Result<()>) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live configuration.
        let c = unsafe { arg_mut(cfg, "config") }?;
        f(&mut c.inner)
    })
}

/// Sets the API base URL, e.g. the emulator's `http://127.0.0.1:PORT`.
/// Default: `https://qyapi.weixin.qq.com` (WeCom, kf) or
/// `https://api.weixin.qq.com` (Official Account, Mini Program).
/// Returns 0, or `WXM_E_INVALID_ARG` for NULL, non-UTF-8 or a URL that is not http(s).
///
/// # Safety
/// `cfg` is NULL or live; `url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_base_url(cfg: *mut wxm_config, url: *const c_char) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_base_url(arg_str(url, "url")?)) }
}

/// Sets a static access_token (the host fetches and rotates it; see also
/// `wxm_client_set_access_token`). Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or live; `token` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_access_token(
    cfg: *mut wxm_config,
    token: *const c_char,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_token(arg_str(token, "token")?)) }
}

/// Sets credentials: corpid/corpsecret (WeCom, kf: `cgi-bin/gettoken`) or
/// appid/secret (Official Account, Mini Program: `cgi-bin/stable_token`).
/// The client then fetches tokens itself, caches them until shortly before
/// they expire, and refreshes (single-flight) when WeChat answers 40001,
/// 40014, 42001 or 41001: again whenever the transfer moved bytes since its
/// last refresh; a token fetched for a rejection and rejected again before
/// any byte moved is final. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or live; `id` and `secret` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_credentials(
    cfg: *mut wxm_config,
    id: *const c_char,
    secret: *const c_char,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_config(cfg, |c| {
            c.set_credentials(arg_str(id, "id")?, arg_str(secret, "secret")?)
        })
    }
}

/// Chooses the endpoint that issues tokens from credentials:
/// `WXM_TOKEN_API_DEFAULT`, `WXM_TOKEN_API_STABLE` (Official Account and Mini
/// Program default) or `WXM_TOKEN_API_CLASSIC` (`cgi-bin/token`; each fetch
/// there invalidates other processes' tokens). WeCom and kf only have
/// `gettoken` (DEFAULT). Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_token_api(cfg: *mut wxm_config, api: i32) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_token_api(api)) }
}

/// Supplies access_tokens from the host's own token service: write the
/// token (visible ASCII, no NUL needed) into `buf` (room for `cap` bytes),
/// store its length in `*len`, and return 0. `force_refresh` is non-zero
/// when WeChat rejected the previous token (40001, 40014, 42001 or 41001):
/// return a new one. A non-zero return stops the transfer that needed the
/// token: a positive value is returned to the host as that errcode,
/// anything else as `WXM_E_NO_TOKEN`.
///
/// Called single-flight (never concurrently for one client) when a token
/// is first needed and after a rejection, inside a transfer's run function
/// (`wxm_download_to_sink`/`_to_path`, `wxm_upload_run`,
/// `wxm_url_upload_submit`/`_wait`/`_run`): on the thread that called it
/// or, in a download with parallelism > 1, on one of the worker threads the
/// library starts for that download (all joined before the run returns).
/// Never after the last run that can call it has returned. While it runs,
/// other transfers of the client that need a token wait for it, so it must
/// not run a transfer of the same client itself (that may wait for the
/// provider itself until cancelled).
pub type wxm_token_provider_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        force_refresh: i32,
        buf: *mut c_char,
        cap: usize,
        len: *mut usize,
    ) -> i32,
>;

/// Releases a host's `user_data` once the library holds it no more (a
/// finalizer, as wasmtime's C API has). Called exactly once, on whichever
/// thread makes the call that drops the library's last reference: that may
/// be any thread the host calls `wxm_*_free` or a setter from. It must not
/// call `wxm_*` functions on the handle being freed.
pub type wxm_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A host's `user_data` owned by the library: its `free_fn` runs when this
/// is dropped, i.e. exactly once and after the last use of `user_data`.
struct HostData {
    user_data: usize,
    free_fn: wxm_free_fn,
}

impl Drop for HostData {
    fn drop(&mut self) {
        if let Some(free) = self.free_fn {
            // SAFETY: the host's finalizer with its own user_data; Drop runs
            // once, and only when nothing can call the callback any more.
            unsafe { free(self.user_data as *mut c_void) }
        }
    }
}

/// Uses `provider` (see `wxm_token_provider_fn`) for tokens instead of
/// credentials. `user_data` is handed back to it as is, and must be usable
/// from any thread.
///
/// Ownership: the library takes `user_data` in every case, whatever this
/// returns. `free_fn(user_data)` (if `free_fn` is not NULL) is called
/// exactly once, after the last call of `provider`, when nothing can call
/// it any more: when this config is freed or its provider replaced (by
/// another call of this setter) while no client was made from it, or else
/// when the last of those holders is gone — the config, and every client
/// made from it (a client lives until `wxm_client_free` and the free of
/// the last transfer created from it, since transfers hold the client). So
/// it may run inside `wxm_config_free`, this setter, `wxm_client_free`,
/// `wxm_download_free`, `wxm_upload_free` or `wxm_url_upload_free`, on the
/// thread that called it. A host that keeps no reference count of its
/// own frees `user_data` there.
///
/// A NULL `provider` removes the provider (the previous one's `free_fn`
/// runs as above); `free_fn(user_data)` is then called before this returns.
/// When this fails (`cfg` NULL: `WXM_E_INVALID_ARG`), `free_fn(user_data)`
/// is also called before it returns, so the host never has to clean up.
/// Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or live; `provider`, `user_data` and `free_fn` follow the
/// contract above.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_token_provider(
    cfg: *mut wxm_config,
    provider: wxm_token_provider_fn,
    user_data: *mut c_void,
    free_fn: wxm_free_fn,
) -> i32 {
    // Owned from here: dropped (free_fn called) on every path that does not
    // hand it to the provider, a failure included.
    let data = HostData {
        user_data: user_data as usize,
        free_fn,
    };
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_config(cfg, move |c| {
            c.set_token_provider(provider.map(|f| host_provider(f, data)));
            Ok(())
        })
    }
}

/// The core's provider for a host's callback. The closure owns `data`, so
/// `free_fn` runs when the last clone of the `ProviderFn` is dropped.
fn host_provider(
    f: unsafe extern "C" fn(*mut c_void, i32, *mut c_char, usize, *mut usize) -> i32,
    data: HostData,
) -> ProviderFn {
    ProviderFn(Arc::new(move |force: bool| -> Result<String> {
        // The whole `data`, not just its field (closures capture fields
        // apart): the closure must own it, or free_fn would run at once.
        let data = &data;
        let mut buf = vec![0u8; 4096];
        let mut len = 0usize;
        // SAFETY: the host's provider, with our live buffer, its capacity
        // and a live out-parameter; user_data is alive (not yet finalized,
        // since `data` is) and the host promised it is thread-safe.
        let rc = unsafe {
            f(
                data.user_data as *mut c_void,
                i32::from(force),
                buf.as_mut_ptr() as *mut c_char,
                buf.len(),
                &mut len,
            )
        };
        if rc > 0 {
            return Err(Error::wechat(rc, "the token provider failed"));
        }
        if rc != 0 {
            return Err(Error::NoToken);
        }
        if len == 0 || len > buf.len() {
            return Err(Error::Protocol(format!(
                "the token provider reported a length of {len}"
            )));
        }
        buf.truncate(len);
        String::from_utf8(buf)
            .map_err(|_| Error::Protocol("the token provider gave non-UTF-8".into()))
    }))
}

/// Shares one access_token per app between every process (and machine)
/// that uses the same Redis:
/// `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS
/// (verified against the built-in web PKI roots plus the certificates of
/// `wxm_config_set_ca_file`, if set). A password is always written after a
/// colon (`:password@`, or `user:password@` for an ACL user) and is
/// percent-decoded. With credentials, the token is cached in Redis under
/// `wxmedia:token:{corp|app}:{id}`; when it expires or is rejected exactly
/// one process (holding the lock `wxmedia:token-lock:…`, which lapses after
/// 15 s) fetches a new one and the others wait for it — at most 15 s plus
/// the command timeout, seeing their transfer's cancel meanwhile; shortly
/// before expiry one process renews it ahead of time.
///
/// Any failure of the store fails the transfer with `WXM_E_TOKEN_STORE`
/// within the store's timeouts (`wxm_config_set_token_store_timeouts`, 5 s
/// each by default): unreachable, refused credentials, an error reply (a
/// read-only replica's READONLY, MOVED, CLUSTERDOWN, …) and an untrusted TLS
/// certificate alike. The message names the store without its password.
/// The client does not fetch tokens alone then, unless the host chose so
/// with `wxm_config_set_token_store_fallback`.
/// Returns 0 or `WXM_E_INVALID_ARG` (a malformed URL).
///
/// # Safety
/// `cfg` is NULL or live; `redis_url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_token_store(
    cfg: *mut wxm_config,
    redis_url: *const c_char,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_token_store(arg_str(redis_url, "redis_url")?)) }
}

/// Bounds the token store's waits, in milliseconds (1 to 600000 each; 5000
/// by default): `connect_ms` for connecting (TCP, TLS, AUTH and SELECT),
/// `command_ms` for each command's answer. A store that does not answer in
/// time fails the transfer with `WXM_E_TOKEN_STORE`.
/// Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_token_store_timeouts(
    cfg: *mut wxm_config,
    connect_ms: u32,
    command_ms: u32,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_token_store_timeouts(connect_ms, command_ms)) }
}

/// Chooses what a client does when its token store fails:
/// `allow_local_fetch` 0 (the default) fails the transfer with
/// `WXM_E_TOKEN_STORE`; 1 fetches a token from WeChat alone and goes on.
/// Beware: on the Official Account and Mini Program (and with
/// `WXM_TOKEN_API_CLASSIC` above all) a token fetched alone can invalidate
/// the token every other process uses. Each fallback is counted
/// (`wxm_client_token_store_fallbacks`). Returns 0 or `WXM_E_INVALID_ARG`
/// (a value other than 0 or 1).
///
/// # Safety
/// `cfg` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_token_store_fallback(
    cfg: *mut wxm_config,
    allow_local_fetch: i32,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe {
        with_config(cfg, |c| {
            c.set_token_store_fallback(match allow_local_fetch {
                0 => false,
                1 => true,
                v => {
                    return Err(Error::InvalidArg(format!(
                        "allow_local_fetch {v} must be 0 or 1"
                    )))
                }
            });
            Ok(())
        })
    }
}

/// Sets the largest Range a download asks for: a non-zero multiple of 16,
/// at most 20 MiB (20971520, the default). Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_chunk_size(cfg: *mut wxm_config, bytes: u64) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_chunk_size(bytes)) }
}

/// Sets how many Range requests a download keeps in flight (1 to 64;
/// default 1). The sink is still called in order, on the calling thread;
/// memory grows to about `connections × chunk_size`.
/// Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_parallelism(cfg: *mut wxm_config, connections: u32) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_parallelism(connections)) }
}

/// Sets the connect timeout and the I/O timeout (the longest wait for the
/// next byte), in milliseconds, both at least 1. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_timeouts(
    cfg: *mut wxm_config,
    connect_ms: u32,
    io_ms: u32,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_timeouts(connect_ms, io_ms)) }
}

/// Sets the retry policy: at most `max_attempts` tries (1 to 100) of a
/// request that fails transiently (-1, 45033, 5xx, reset, timeout, short
/// body) without progress, waiting `backoff_ms × 2^n` with jitter between
/// them (capped at 10 s). Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or a live configuration.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_retries(
    cfg: *mut wxm_config,
    max_attempts: u32,
    backoff_ms: u32,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_retries(max_attempts, backoff_ms)) }
}

/// Overrides the local upload size limit for one type ("image", "voice",
/// "video", "file", "thumb"), since WeChat changes its limits over time.
/// Returns 0, or `WXM_E_INVALID_ARG` for a type the platform does not take.
///
/// # Safety
/// `cfg` is NULL or live; `type` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_limit(
    cfg: *mut wxm_config,
    r#type: *const c_char,
    max_bytes: u64,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_limit(arg_str(r#type, "type")?, max_bytes)) }
}

/// Trusts the PEM certificates in `pem_path` (a private CA) instead of the
/// bundled web PKI roots for https, and in addition to them for a
/// `rediss://` token store. Read when the client is created.
/// Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `cfg` is NULL or live; `pem_path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_config_set_ca_file(
    cfg: *mut wxm_config,
    pem_path: *const c_char,
) -> i32 {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { with_config(cfg, |c| c.set_ca_file(arg_str(pem_path, "pem_path")?)) }
}

/// Creates a client from a configuration (copied: the config may be freed
/// or changed afterwards). On success writes the client to `*out` and
/// returns 0; on failure leaves `*out` untouched and returns
/// `WXM_E_INVALID_ARG` (NULL arguments, an unreadable CA file).
///
/// # Safety
/// `cfg` is NULL or live; `out` is NULL or points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn wxm_client_new(cfg: *const wxm_config, out: *mut *mut wxm_client) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live configuration.
        let c = unsafe { arg_ref(cfg, "config") }?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        let client = Client::new(c.inner.clone())?;
        let handle = Box::into_raw(Box::new(wxm_client {
            inner: Arc::new(client),
        }));
        // SAFETY: `out` is non-NULL and the caller promises it is writable.
        unsafe { *out = handle };
        Ok(())
    })
}

/// Replaces the access_token the client uses, for hosts that rotate tokens
/// themselves. Safe to call while transfers run on other threads; they use
/// the new token from their next request. Returns 0 or `WXM_E_INVALID_ARG`.
///
/// # Safety
/// `client` is NULL or live; `token` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn wxm_client_set_access_token(
    client: *const wxm_client,
    token: *const c_char,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live client.
        let c = unsafe { arg_ref(client, "client") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let t = unsafe { arg_str(token, "token") }?;
        crate::auth::check_token(t)?;
        c.inner.tokens.set(t.to_string());
        Ok(())
    })
}

/// Writes to `*out` how many times this client fetched a token alone
/// because its token store failed (see
/// `wxm_config_set_token_store_fallback`; always 0 without it). Safe to
/// call while transfers run. Returns 0 or `WXM_E_INVALID_ARG` (NULL).
///
/// # Safety
/// `client` is NULL or live; `out` is NULL or points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn wxm_client_token_store_fallbacks(
    client: *const wxm_client,
    out: *mut u64,
) -> i32 {
    guard(|| {
        // SAFETY: the caller passes NULL or a live client.
        let c = unsafe { arg_ref(client, "client") }?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        let n = c.inner.tokens.store_fallbacks();
        // SAFETY: `out` is non-NULL and the caller promises it is writable.
        unsafe { *out = n };
        Ok(())
    })
}

/// Releases the host's reference to a client. Transfers created from it
/// keep their own reference and stay usable. NULL is accepted and ignored.
/// When nothing else holds its token provider (the config freed, no
/// transfer left), the provider's `free_fn` runs here (see
/// `wxm_config_set_token_provider`).
///
/// # Safety
/// `client` is NULL or a client from `wxm_client_new`, freed once.
#[no_mangle]
pub unsafe extern "C" fn wxm_client_free(client: *mut wxm_client) {
    // SAFETY: forwarded pointer contract of this function.
    unsafe { free_handle(client) }
}

/// Static, NUL-terminated text for any code: the library's `WXM_E_*`, 0,
/// and WeChat's common errcodes. Never NULL; never freed by the host.
#[no_mangle]
pub extern "C" fn wxm_strerror(errcode: i32) -> *const c_char {
    boundary::guard_value(c"unknown error code".as_ptr(), || {
        crate::error::strerror_c(errcode).as_ptr()
    })
}

/// The detail of the last failure of a call on this thread ("" after a
/// success). Valid until the next wxm_ call on this thread; hosts copy it.
/// Go hosts must read it under `runtime.LockOSThread`; prefer the
/// per-handle `wxm_download_errmsg` / `wxm_upload_errmsg`.
#[no_mangle]
pub extern "C" fn wxm_last_errmsg() -> *const c_char {
    boundary::last_error_ptr()
}

/// The library version, "MAJOR.MINOR.PATCH", equal to `WXM_VERSION_STRING`
/// of the header it was built with. Static; never freed.
#[no_mangle]
pub extern "C" fn wxm_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"0.0.0",
        };
    VERSION.as_ptr()
}

pub(crate) fn owned(s: &Option<String>) -> Option<CString> {
    s.as_deref().map(boundary::to_cstring)
}
