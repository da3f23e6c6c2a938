package wxmedia

/*
#include "wxmedia.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// Code is an error code: WeChat's errcode, passed through as WeChat sent
// it (positive, or -1), or one of the library's own (-1000 and below, the
// WXM_E_* constants of wxmedia.h). A Code is an error itself, so that
// errors.Is(err, wxmedia.CodeInvalidImageSize) matches one exact code, as
// errors.Is(err, syscall.ENOENT) does; the Err* values below match families
// of codes.
type Code int32

// Error returns the library's static text for the code.
func (c Code) Error() string { return fmt.Sprintf("wxmedia: %s (errcode %d)", ErrorText(c), int32(c)) }

// The library's own codes.
const (
	CodeInvalidArg      Code = -1001 // NULL, bad UTF-8, out-of-range value, unknown platform
	CodeIO              Code = -1002 // local file or sink-side I/O failed
	CodeNetwork         Code = -1003 // connect refused, reset, DNS, short body after retries
	CodeTimeout         Code = -1004 // connect or I/O timeout after retries
	CodeTLS             Code = -1005 // TLS handshake or certificate failure
	CodeHTTPStatus      Code = -1006 // an HTTP status WeChat never answers, after retries
	CodeProtocol        Code = -1007 // bad Content-Range, length mismatch, malformed answer
	CodeAborted         Code = -1008 // a callback (writer, reader, progress) stopped the transfer
	CodeCancelled       Code = -1009 // the transfer was cancelled (context done)
	CodeNoToken         Code = -1010 // no access token and no credentials configured, or the TokenProvider failed
	CodePanic           Code = -1011 // an internal panic was caught in the library (a bug)
	CodeState           Code = -1012 // the handle cannot do that now (e.g. the Client is closed)
	CodeTokenStore      Code = -1013 // the shared token store (Redis) failed: unreachable, refused, read-only
	CodeOutcomeUnknown  Code = -1014 // a job submission lost its answer: not repeated, outcome unknown
	CodeObjectStore     Code = -1015 // the object store answered an error after retries (DownloadToObject)
	CodeObjectStoreAuth Code = -1016 // the object store refused the credentials (never retried)
	CodeNoSuchBucket    Code = -1017 // the object store has no bucket of that name
)

// Common WeChat errcodes. They pass through the library unchanged, and
// uploads rejected locally, before any byte is sent, use the code WeChat would
// have answered.
const (
	CodeSystemBusy         Code = -1     // system busy (retried by the library first)
	CodeInvalidCredential  Code = 40001  // invalid secret, or access_token invalid or not the latest
	CodeInvalidMediaType   Code = 40004  // the platform does not take this media type
	CodeInvalidFileType    Code = 40005  // the file format does not match the type
	CodeInvalidFileSize    Code = 40006  // 5 bytes or fewer, or a "file" over its limit
	CodeInvalidMediaID     Code = 40007  // unknown or expired media_id
	CodeInvalidImageSize   Code = 40009  // image too large
	CodeInvalidVoiceSize   Code = 40010  // voice too large
	CodeInvalidVideoSize   Code = 40011  // video too large
	CodeInvalidThumbSize   Code = 40012  // thumb too large
	CodeInvalidCorpID      Code = 40013  // invalid corpid / appid
	CodeInvalidAccessToken Code = 40014  // invalid access_token
	CodeInvalidParameter   Code = 40058  // invalid parameter (e.g. unaligned chunk of encrypted media, a bad field or unknown jobid of an upload by URL)
	CodeMissingAccessToken Code = 41001  // access_token missing
	CodeMissingMediaID     Code = 41006  // media_id missing
	CodeAccessTokenExpired Code = 42001  // access_token expired
	CodeEmptyMedia         Code = 44001  // empty media file
	CodeMediaSizeLimit     Code = 45001  // media size over the limit (upload by URL: outside 6 bytes to 200 MiB)
	CodeFrequencyLimit     Code = 45009  // the API's daily quota is used up
	CodeTooManyRequests    Code = 45011  // API calls too frequent
	CodeAPIConcurrency     Code = 45033  // too many concurrent calls
	CodeAPIUnauthorized    Code = 48001  // the API is not open to this app (upload by URL off WeCom and KF)
	CodeRangeRequired      Code = 830002 // media over 20 MB must be fetched in Range chunks of at most 20 MB
)

// The errcodes of a failed upload by URL (UploadByURL), as WeChat reports
// them for the job.
const (
	CodeRangeNotSupported Code = 830001 // the URL's server ignores Range (no 206 with Content-Range)
	CodeURLFetchFailed    Code = 830003 // WeChat could not download the URL (connection, HTTP status, cut body)
	CodeMD5Mismatch       Code = 301019 // the fetched file's MD5 differs from the one given
)

// A class is a sentinel error matching a set of codes: errors.Is(err,
// wxmedia.ErrTokenRejected) is true for an *Error with any of them.
type class struct {
	name  string
	codes []Code
}

func (c *class) Error() string { return "wxmedia: " + c.name }

func (c *class) has(code Code) bool {
	for _, k := range c.codes {
		if k == code {
			return true
		}
	}
	return false
}

func newClass(name string, codes ...Code) error { return &class{name: name, codes: codes} }

// Sentinel errors for errors.Is. Each matches the *Error values whose Code
// is one of those listed (a Code matches just itself, see Code).
var (
	// WeChat's answers.
	ErrMediaNotFound    = newClass("media_id unknown, expired or missing", CodeInvalidMediaID, CodeMissingMediaID)
	ErrTokenRejected    = newClass("access_token rejected", CodeInvalidCredential, CodeInvalidAccessToken, CodeAccessTokenExpired, CodeMissingAccessToken)
	ErrInvalidCorpID    = newClass("corpid / appid rejected", CodeInvalidCorpID)
	ErrInvalidMediaType = newClass("media type not accepted", CodeInvalidMediaType, CodeInvalidFileType)
	ErrMediaSize        = newClass("media size not accepted", CodeInvalidFileSize, CodeInvalidImageSize, CodeInvalidVoiceSize, CodeInvalidVideoSize, CodeInvalidThumbSize, CodeEmptyMedia, CodeMediaSizeLimit, CodeRangeRequired)
	ErrInvalidParameter = newClass("invalid parameter", CodeInvalidParameter)
	ErrRateLimited      = newClass("system busy or rate limited", CodeSystemBusy, CodeFrequencyLimit, CodeTooManyRequests, CodeAPIConcurrency)
	ErrAPIUnauthorized  = newClass("API not open to this app", CodeAPIUnauthorized)
	ErrURLUploadFailed  = newClass("upload by URL failed", CodeRangeNotSupported, CodeURLFetchFailed, CodeMD5Mismatch, CodeMediaSizeLimit)

	// The library's own codes, one each.
	ErrInvalidArg      = newClass("invalid argument", CodeInvalidArg)
	ErrIO              = newClass("local I/O failed", CodeIO)
	ErrNetwork         = newClass("network failure", CodeNetwork)
	ErrTimeout         = newClass("timed out", CodeTimeout)
	ErrTLS             = newClass("TLS failure", CodeTLS)
	ErrHTTPStatus      = newClass("unexpected HTTP status", CodeHTTPStatus)
	ErrProtocol        = newClass("protocol error", CodeProtocol)
	ErrAborted         = newClass("aborted by a callback", CodeAborted)
	ErrCancelled       = newClass("cancelled", CodeCancelled)
	ErrNoToken         = newClass("no access_token", CodeNoToken)
	ErrPanic           = newClass("internal panic", CodePanic)
	ErrState           = newClass("invalid state", CodeState)
	ErrTokenStore      = newClass("token store failed", CodeTokenStore)
	ErrOutcomeUnknown  = newClass("outcome unknown", CodeOutcomeUnknown)
	ErrObjectStore     = newClass("object store error", CodeObjectStore)
	ErrObjectStoreAuth = newClass("object store credentials refused", CodeObjectStoreAuth)
	ErrNoSuchBucket    = newClass("no such bucket", CodeNoSuchBucket)
)

// Error is the error every operation of this package returns. Code is never
// 0: it is a WeChat errcode (positive, or -1) or one of the library's codes
// above (CodeInvalidArg and the others, all -1000 or below). Message is the
// library's detail (never an access_token or secret).
//
// Match it with errors.Is against a sentinel (errors.Is(err,
// wxmedia.ErrMediaNotFound)) or a Code (errors.Is(err,
// wxmedia.CodeInvalidImageSize)), or get at it with errors.As. errors.Is(err,
// &Error{Code: c}) still matches any *Error with that Code. When a Context
// ended the transfer the error also wraps context.Canceled or
// context.DeadlineExceeded, and when a writer or reader failed it wraps that
// error.
type Error struct {
	Code    Code
	Message string
	// Counters is what the transfer did before it failed (requests,
	// retries, bytes, token refreshes…), for the errors of Download,
	// DownloadFile, Upload, UploadFile, UploadByURL and WaitUploadByURL
	// once the library made the transfer's handle (all zero but TransferID
	// when an option was refused before it sent anything); nil for errors
	// met before (an invalid argument, a closed Client, a Context already
	// done) and for those of other calls.
	Counters *Counters

	cause error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("wxmedia: %s (errcode %d)", e.Message, int32(e.Code))
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the error that caused this one (a Context's error, or the
// error of the caller's io.Writer or io.Reader), or nil.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is a sentinel of this package (Err*) whose
// codes include e.Code, that Code itself, or an *Error with the same Code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *class:
		return t.has(e.Code)
	case Code:
		return t == e.Code
	case *Error:
		return t != nil && t.Code == e.Code
	}
	return false
}

// ErrorText returns the library's static description of an error code.
func ErrorText(code Code) string {
	return C.GoString(C.wxm_strerror(C.int32_t(code)))
}

// newError builds an *Error for a non-zero code, falling back on the static
// text when the library gave no detail.
func newError(code C.int32_t, msg string) *Error {
	if msg == "" {
		msg = ErrorText(Code(code))
	}
	return &Error{Code: Code(code), Message: msg}
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
	_ = x[CodeInvalidArg-C.WXM_E_INVALID_ARG]
	_ = x[CodeIO-C.WXM_E_IO]
	_ = x[CodeNetwork-C.WXM_E_NETWORK]
	_ = x[CodeTimeout-C.WXM_E_TIMEOUT]
	_ = x[CodeTLS-C.WXM_E_TLS]
	_ = x[CodeHTTPStatus-C.WXM_E_HTTP_STATUS]
	_ = x[CodeProtocol-C.WXM_E_PROTOCOL]
	_ = x[CodeAborted-C.WXM_E_ABORTED]
	_ = x[CodeCancelled-C.WXM_E_CANCELLED]
	_ = x[CodeNoToken-C.WXM_E_NO_TOKEN]
	_ = x[CodePanic-C.WXM_E_PANIC]
	_ = x[CodeState-C.WXM_E_STATE]
	_ = x[CodeTokenStore-C.WXM_E_TOKEN_STORE]
	_ = x[CodeOutcomeUnknown-C.WXM_E_OUTCOME_UNKNOWN]
	_ = x[CodeObjectStore-C.WXM_E_OBJECT_STORE]
	_ = x[CodeObjectStoreAuth-C.WXM_E_OBJECT_STORE_AUTH]
	_ = x[CodeNoSuchBucket-C.WXM_E_NO_SUCH_BUCKET]
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
