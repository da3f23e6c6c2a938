package wxmedia

/*
#include "wxmedia.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// The library's own error codes (negative, at most -1000; the WXM_E_*
// constants of wxmedia.h).
const (
	ErrInvalidArg     = -1001 // NULL, bad UTF-8, out-of-range value, unknown platform
	ErrIO             = -1002 // local file or sink-side I/O failed
	ErrNetwork        = -1003 // connect refused, reset, DNS, short body after retries
	ErrTimeout        = -1004 // connect or I/O timeout after retries
	ErrTLS            = -1005 // TLS handshake or certificate failure
	ErrHTTPStatus     = -1006 // an HTTP status WeChat never answers, after retries
	ErrProtocol       = -1007 // bad Content-Range, length mismatch, malformed answer
	ErrAborted        = -1008 // a callback (writer, reader, progress) stopped the transfer
	ErrCancelled      = -1009 // the transfer was cancelled (context done)
	ErrNoToken        = -1010 // no access token and no credentials configured
	ErrPanic          = -1011 // an internal panic was caught in the library (a bug)
	ErrState          = -1012 // the handle cannot do that now (e.g. the Client is closed)
	ErrTokenStore     = -1013 // the shared token store (Redis) failed: unreachable, refused, read-only
	ErrOutcomeUnknown = -1014 // a job submission lost its answer: not repeated, outcome unknown
)

// Common WeChat errcodes. They pass through the library unchanged, and
// uploads rejected locally, before any byte is sent, use the code WeChat would
// have answered.
const (
	ErrSystemBusy         = -1     // system busy (retried by the library first)
	ErrInvalidCredential  = 40001  // invalid secret, or access_token invalid or not the latest
	ErrInvalidMediaType   = 40004  // the platform does not take this media type
	ErrInvalidFileType    = 40005  // the file format does not match the type
	ErrInvalidFileSize    = 40006  // 5 bytes or fewer, or a "file" over its limit
	ErrInvalidMediaID     = 40007  // unknown or expired media_id
	ErrInvalidImageSize   = 40009  // image too large
	ErrInvalidVoiceSize   = 40010  // voice too large
	ErrInvalidVideoSize   = 40011  // video too large
	ErrInvalidThumbSize   = 40012  // thumb too large
	ErrInvalidCorpID      = 40013  // invalid corpid / appid
	ErrInvalidAccessToken = 40014  // invalid access_token
	ErrInvalidParameter   = 40058  // invalid parameter (e.g. unaligned chunk of encrypted media, a bad field or unknown jobid of an upload by URL)
	ErrAccessTokenExpired = 42001  // access_token expired
	ErrEmptyMedia         = 44001  // empty media file
	ErrMediaSizeLimit     = 45001  // media size over the limit (upload by URL: outside 6 bytes to 200 MiB)
	ErrAPIConcurrency     = 45033  // too many concurrent calls
	ErrAPIUnauthorized    = 48001  // the API is not open to this app (upload by URL off WeCom and KF)
	ErrRangeRequired      = 830002 // media over 20 MB must be fetched in Range chunks of at most 20 MB
)

// The errcodes of a failed upload by URL (UploadByURL), as WeChat reports
// them for the job.
const (
	ErrRangeNotSupported = 830001 // the URL's server ignores Range (no 206 with Content-Range)
	ErrURLFetchFailed    = 830003 // WeChat could not download the URL (connection, HTTP status, cut body)
	ErrMD5Mismatch       = 301019 // the fetched file's MD5 differs from the one given
)

// Error is the error every operation of this package returns. Code is never
// 0: it is a WeChat errcode (positive, or -1) or one of the library's codes
// above (ErrInvalidArg and the others, all -1000 or below). Message is the library's detail (never an access_token or secret).
//
// Use errors.As to get at it. errors.Is(err, &Error{Code: c}) matches any
// *Error with that Code. When a Context ended the transfer the error also
// wraps context.Canceled or context.DeadlineExceeded, and when a writer or
// reader failed it wraps that error.
type Error struct {
	Code    int
	Message string

	cause error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("wxmedia: %s (errcode %d)", e.Message, e.Code)
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the error that caused this one (a Context's error, or the
// error of the caller's io.Writer or io.Reader), or nil.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}

// ErrorText returns the library's static description of an error code.
func ErrorText(code int) string {
	return C.GoString(C.wxm_strerror(C.int32_t(code)))
}

// newError builds an *Error for a non-zero code, falling back on the static
// text when the library gave no detail.
func newError(code C.int32_t, msg string) *Error {
	if msg == "" {
		msg = ErrorText(int(code))
	}
	return &Error{Code: int(code), Message: msg}
}

// callLocked runs a library call that reports failure through the
// thread-local wxm_last_errmsg, reading the message on the same OS thread.
// The returned pointer (nil on failure for constructors) is passed through.
func callLocked[T any](call func() (T, C.int32_t)) (T, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	v, rc := call()
	if rc != 0 {
		return v, newError(rc, C.GoString(C.wxm_last_errmsg()))
	}
	return v, nil
}

// The build fails here ("invalid array index") if a code above drifts from
// wxmedia.h.
func _() {
	var x [1]struct{}
	_ = x[ErrInvalidArg-C.WXM_E_INVALID_ARG]
	_ = x[ErrIO-C.WXM_E_IO]
	_ = x[ErrNetwork-C.WXM_E_NETWORK]
	_ = x[ErrTimeout-C.WXM_E_TIMEOUT]
	_ = x[ErrTLS-C.WXM_E_TLS]
	_ = x[ErrHTTPStatus-C.WXM_E_HTTP_STATUS]
	_ = x[ErrProtocol-C.WXM_E_PROTOCOL]
	_ = x[ErrAborted-C.WXM_E_ABORTED]
	_ = x[ErrCancelled-C.WXM_E_CANCELLED]
	_ = x[ErrNoToken-C.WXM_E_NO_TOKEN]
	_ = x[ErrPanic-C.WXM_E_PANIC]
	_ = x[ErrState-C.WXM_E_STATE]
	_ = x[ErrTokenStore-C.WXM_E_TOKEN_STORE]
	_ = x[ErrOutcomeUnknown-C.WXM_E_OUTCOME_UNKNOWN]
	_ = x[int(PlatformWeCom)-C.WXM_PLATFORM_WECOM]
	_ = x[int(PlatformKF)-C.WXM_PLATFORM_KF]
	_ = x[int(PlatformOfficial)-C.WXM_PLATFORM_OFFICIAL]
	_ = x[int(PlatformMiniProgram)-C.WXM_PLATFORM_MINIPROGRAM]
	_ = x[int(TokenAPIDefault)-C.WXM_TOKEN_API_DEFAULT]
	_ = x[int(TokenAPIStable)-C.WXM_TOKEN_API_STABLE]
	_ = x[int(TokenAPIClassic)-C.WXM_TOKEN_API_CLASSIC]
	_ = x[int(JobNone)-C.WXM_JOB_NONE]
	_ = x[int(JobProcessing)-C.WXM_JOB_PROCESSING]
	_ = x[int(JobDone)-C.WXM_JOB_DONE]
	_ = x[int(JobFailed)-C.WXM_JOB_FAILED]
}
