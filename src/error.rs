//! One error type for the whole library; every error maps to one errcode.
//!
//! WeChat's own errcodes pass through unchanged (they are positive, or -1).
//! The library's own failures are negative and at most -1000 so they can never
//! collide with WeChat's.

/// Success.
pub const WXM_OK: i32 = 0;
/// An argument is invalid: a NULL pointer, a string that is not UTF-8, a value out of range.
pub const WXM_E_INVALID_ARG: i32 = -1001;
/// Local I/O failed: the target file or its temporary file could not be written, a source file could not be read.
pub const WXM_E_IO: i32 = -1002;
/// The network failed: connection refused or reset, name resolution, a body cut short (after retries).
pub const WXM_E_NETWORK: i32 = -1003;
/// Connecting or waiting for data took longer than the configured timeout (after retries).
pub const WXM_E_TIMEOUT: i32 = -1004;
/// TLS failed: handshake error or an untrusted certificate.
pub const WXM_E_TLS: i32 = -1005;
/// The server answered an HTTP status WeChat never uses for an API answer (after retries for 5xx).
pub const WXM_E_HTTP_STATUS: i32 = -1006;
/// The server broke the protocol: a Content-Range that does not match the request, a body of the wrong length, an oversized or malformed answer.
pub const WXM_E_PROTOCOL: i32 = -1007;
/// A host callback (sink, reader or progress) asked to stop.
pub const WXM_E_ABORTED: i32 = -1008;
/// The call was cancelled with `wxm_download_cancel`, `wxm_upload_cancel` or `wxm_url_upload_cancel`.
pub const WXM_E_CANCELLED: i32 = -1009;
/// No access_token is available: neither a token nor credentials were configured.
pub const WXM_E_NO_TOKEN: i32 = -1010;
/// A bug inside the library was caught at the C boundary (a Rust panic). Please report it.
pub const WXM_E_PANIC: i32 = -1011;
/// The handle cannot do this now: it is already running (on another thread, or the call came from one of its own callbacks), or has nothing to wait on.
pub const WXM_E_STATE: i32 = -1012;
/// The shared token store (`wxm_config_set_token_store`) failed: unreachable,
/// refused the credentials, read-only, or answered an error. The message names
/// the store without its password.
pub const WXM_E_TOKEN_STORE: i32 = -1013;
/// A request that creates something (an `upload_by_url` job) was sent but its
/// answer was lost: whether it took effect is unknown, so it was not sent
/// again. The message carries the job id when one is known.
pub const WXM_E_OUTCOME_UNKNOWN: i32 = -1014;
/// The object store (`wxm_download_to_object`) answered an error after
/// retries: a 5xx that persisted, a missing or invalid upload, a refused
/// request. The message carries the store's error code (e.g. `NoSuchUpload`).
pub const WXM_E_OBJECT_STORE: i32 = -1015;
/// The object store rejected the credentials: unknown access key, wrong
/// secret (`SignatureDoesNotMatch`), expired session token, or access denied.
/// Never retried. The message never contains the secret.
pub const WXM_E_OBJECT_STORE_AUTH: i32 = -1016;
/// The object store has no bucket of that name (`NoSuchBucket`).
pub const WXM_E_NO_SUCH_BUCKET: i32 = -1017;

/// Every failure the library reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("unexpected HTTP status {status}: {detail}")]
    HttpStatus { status: u16, detail: String },
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("aborted by the host: {0}")]
    Aborted(String),
    #[error("cancelled")]
    Cancelled,
    #[error("no access_token: configure a token or credentials")]
    NoToken,
    #[error("internal error (panic): {0}")]
    Panic(String),
    #[error("{0}")]
    State(String),
    #[error("token store: {0}")]
    TokenStore(String),
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// An error answered by the object store (`status`, S3 code, message).
    #[error("object store: HTTP {status} {code}: {msg}")]
    ObjectStore {
        status: u16,
        code: String,
        msg: String,
    },
    #[error("object store refused the credentials: {0}")]
    ObjectStoreAuth(String),
    #[error("object store: no such bucket: {0}")]
    NoSuchBucket(String),
    /// An errcode answered by WeChat, or the code WeChat would answer for a
    /// local rejection.
    #[error("errcode {code}: {msg}")]
    WeChat { code: i32, msg: String },
}

impl Error {
    /// The integer the C ABI returns for this error.
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidArg(_) => WXM_E_INVALID_ARG,
            Error::Io(_) => WXM_E_IO,
            Error::Network(_) => WXM_E_NETWORK,
            Error::Timeout(_) => WXM_E_TIMEOUT,
            Error::Tls(_) => WXM_E_TLS,
            Error::HttpStatus { .. } => WXM_E_HTTP_STATUS,
            Error::Protocol(_) => WXM_E_PROTOCOL,
            Error::Aborted(_) => WXM_E_ABORTED,
            Error::Cancelled => WXM_E_CANCELLED,
            Error::NoToken => WXM_E_NO_TOKEN,
            Error::Panic(_) => WXM_E_PANIC,
            Error::State(_) => WXM_E_STATE,
            Error::TokenStore(_) => WXM_E_TOKEN_STORE,
            Error::OutcomeUnknown(_) => WXM_E_OUTCOME_UNKNOWN,
            Error::ObjectStore { .. } => WXM_E_OBJECT_STORE,
            Error::ObjectStoreAuth(_) => WXM_E_OBJECT_STORE_AUTH,
            Error::NoSuchBucket(_) => WXM_E_NO_SUCH_BUCKET,
            Error::WeChat { code, .. } => *code,
        }
    }

    pub fn wechat(code: i32, msg: impl Into<String>) -> Self {
        Error::WeChat {
            code,
            msg: msg.into(),
        }
    }

    /// The same error with its text passed through `f` (to clean it of
    /// credentials before a host sees it).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> Error {
        match self {
            Error::InvalidArg(t) => Error::InvalidArg(f(&t)),
            Error::Io(t) => Error::Io(f(&t)),
            Error::Network(t) => Error::Network(f(&t)),
            Error::Timeout(t) => Error::Timeout(f(&t)),
            Error::Tls(t) => Error::Tls(f(&t)),
            Error::HttpStatus { status, detail } => Error::HttpStatus {
                status,
                detail: f(&detail),
            },
            Error::Protocol(t) => Error::Protocol(f(&t)),
            Error::Aborted(t) => Error::Aborted(f(&t)),
            Error::Panic(t) => Error::Panic(f(&t)),
            Error::State(t) => Error::State(f(&t)),
            Error::TokenStore(t) => Error::TokenStore(f(&t)),
            Error::OutcomeUnknown(t) => Error::OutcomeUnknown(f(&t)),
            Error::ObjectStore { status, code, msg } => Error::ObjectStore {
                status,
                code: f(&code),
                msg: f(&msg),
            },
            Error::ObjectStoreAuth(t) => Error::ObjectStoreAuth(f(&t)),
            Error::NoSuchBucket(t) => Error::NoSuchBucket(f(&t)),
            Error::WeChat { code, msg } => Error::WeChat { code, msg: f(&msg) },
            e @ (Error::Cancelled | Error::NoToken) => e,
        }
    }

    /// Worth another attempt at the same request after a pause.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network(_) | Error::Timeout(_) | Error::Protocol(_) => true,
            Error::HttpStatus { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            Error::WeChat { code, .. } => matches!(code, -1 | 45033 | 45011),
            Error::ObjectStore { status, code, .. } => {
                *status >= 500
                    || *status == 408
                    || *status == 429
                    // BadDigest: bytes damaged on the way (the store checked
                    // them against Content-MD5): sent again.
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "InternalError" | "BadDigest" | "IncompleteBody"
                    )
            }
            _ => false,
        }
    }

    /// The token was rejected: fetch a new one (when we can) and try again.
    pub fn is_token_rejected(&self) -> bool {
        matches!(self, Error::WeChat { code, .. } if matches!(code, 40001 | 40014 | 42001 | 41001))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Static text for a code: the library's own, and WeChat's common ones.
pub fn strerror(code: i32) -> &'static str {
    strerror_c(code).to_str().unwrap_or("unknown error code")
}

/// `strerror`, NUL-terminated for the C ABI: static, never freed.
pub fn strerror_c(code: i32) -> &'static std::ffi::CStr {
    match code {
        WXM_OK => c"ok",
        WXM_E_INVALID_ARG => c"invalid argument",
        WXM_E_IO => c"local I/O error",
        WXM_E_NETWORK => c"network error",
        WXM_E_TIMEOUT => c"timeout",
        WXM_E_TLS => c"TLS error",
        WXM_E_HTTP_STATUS => c"unexpected HTTP status",
        WXM_E_PROTOCOL => c"protocol violation by the server",
        WXM_E_ABORTED => c"aborted by a host callback",
        WXM_E_CANCELLED => c"cancelled",
        WXM_E_NO_TOKEN => c"no access_token or credentials configured",
        WXM_E_PANIC => c"internal error (caught panic)",
        WXM_E_STATE => c"the handle is busy or was cancelled",
        WXM_E_TOKEN_STORE => c"the shared token store failed (unreachable, refused, or read-only)",
        WXM_E_OUTCOME_UNKNOWN => {
            c"a request that creates something lost its answer: outcome unknown, not repeated"
        }
        WXM_E_OBJECT_STORE => c"the object store answered an error",
        WXM_E_OBJECT_STORE_AUTH => c"the object store refused the credentials",
        WXM_E_NO_SUCH_BUCKET => c"the object store has no such bucket",
        -1 => c"system busy, retry later",
        40001 => c"invalid credential or access_token",
        40004 => c"invalid media type",
        40005 => c"invalid file type (format does not match the type or extension)",
        40006 => c"invalid file size",
        40007 => c"invalid media_id (unknown or expired)",
        40009 => c"invalid image size",
        40010 => c"invalid voice size",
        40011 => c"invalid video size",
        40012 => c"invalid thumb size",
        40013 => c"invalid corpid or appid",
        40014 => c"invalid access_token",
        40058 => c"invalid parameter",
        41001 => c"access_token missing",
        41005 => c"media data missing",
        41006 => c"media_id missing",
        42001 => c"access_token expired",
        44001 => c"empty media file",
        45001 => c"media file too large",
        45009 => c"API call frequency or daily quota exceeded",
        45011 => c"API minute quota exceeded",
        45033 => c"too many concurrent API calls",
        48001 => c"API unauthorized",
        830001 => c"upload_by_url: the URL is invalid or does not support Range",
        830002 => c"media too large for one request: fetch in Range chunks of at most 20 MB",
        830003 => c"upload_by_url: downloading the URL failed",
        301019 => c"upload_by_url: MD5 mismatch",
        c if c > 0 => c"WeChat errcode (see the platform's global return codes)",
        _ => c"unknown error code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_codes_are_negative_and_below_minus_1000() {
        for c in [
            WXM_E_INVALID_ARG,
            WXM_E_IO,
            WXM_E_NETWORK,
            WXM_E_TIMEOUT,
            WXM_E_TLS,
            WXM_E_HTTP_STATUS,
            WXM_E_PROTOCOL,
            WXM_E_ABORTED,
            WXM_E_CANCELLED,
            WXM_E_NO_TOKEN,
            WXM_E_PANIC,
            WXM_E_STATE,
            WXM_E_TOKEN_STORE,
            WXM_E_OUTCOME_UNKNOWN,
            WXM_E_OBJECT_STORE,
            WXM_E_OBJECT_STORE_AUTH,
            WXM_E_NO_SUCH_BUCKET,
        ] {
            assert!(c <= -1000);
            assert_ne!(strerror(c), "unknown error code");
        }
    }
}
