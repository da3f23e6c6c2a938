package wxmedia

// Events (Config.Logger, Config.OnEvent) and counters (Counters). The
// library calls wxmgoEvent through the trampoline in shim.c, on whichever
// thread the event happens: the goroutine's thread that runs a transfer, or
// one of the worker threads of a parallel download. user_data is the
// eventSink's runtime/cgo.Handle, owned by the library from
// wxm_config_set_event_handler on and deleted by wxmgoEventFree (its
// free_fn), exactly once, after the last event, as for the TokenProvider.

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/cgo"
	"time"
)

// EventKind is what an Event reports (the WXM_EVENT_* constants of
// wxmedia.h).
type EventKind int

// The kinds of events.
const (
	// A transfer (Download, DownloadFile, Upload, UploadFile, UploadByURL,
	// WaitUploadByURL) started. Info.
	EventTransferStarted EventKind = 1
	// A transfer ended: Errcode is its result (0: success), Duration its
	// time, Bytes what it moved. Info on success, Warn on failure.
	EventTransferFinished EventKind = 2
	// An HTTP request is about to be sent: Endpoint, the Range, Attempt,
	// ViaVideoURL. Debug.
	EventRequestStarted EventKind = 3
	// An HTTP request ended: HTTPStatus (0: no answer), Errcode, Bytes,
	// Duration, ExpectContinue. Debug.
	EventRequestFinished EventKind = 4
	// A failed request will be sent again after Backoff: Attempt is the
	// number of the coming attempt, RetryReason the code that caused it.
	// Warn.
	EventRetryScheduled EventKind = 5
	// An access_token was fetched (TokenSource, TokenFetch). Info.
	EventTokenFetched EventKind = 6
	// An access_token was fetched again after WeChat rejected the one in
	// use. Info.
	EventTokenRefreshed EventKind = 7
	// A token another process fetched was taken from the token store. Info.
	EventTokenShared EventKind = 8
	// DownloadFile resumes its temporary file at ResumeOffset, after
	// fetching the ResumeVerified bytes before it again and comparing them.
	// Info.
	EventResumeDecided EventKind = 9
	// The temporary file failed that check (or the media changed size): it
	// is discarded and the media downloaded from byte 0. Warn.
	EventResumeCheckFailed EventKind = 10
	// A fallback was taken: the token store failed and
	// Config.TokenStoreFallback allowed a fetch alone (Warn), or a server
	// refused Expect: 100-continue and the body was sent again without it
	// (Info).
	EventFallback EventKind = 11
)

var eventKindNames = [...]string{
	EventTransferStarted:   "transfer_started",
	EventTransferFinished:  "transfer_finished",
	EventRequestStarted:    "request_started",
	EventRequestFinished:   "request_finished",
	EventRetryScheduled:    "retry_scheduled",
	EventTokenFetched:      "token_fetched",
	EventTokenRefreshed:    "token_refreshed",
	EventTokenShared:       "token_shared",
	EventResumeDecided:     "resume_decided",
	EventResumeCheckFailed: "resume_check_failed",
	EventFallback:          "fallback",
}

// String returns the kind's stable name, e.g. "retry_scheduled" (the value
// of the "kind" attribute).
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// TokenSource is where an access_token came from (WXM_TOKEN_SOURCE_*).
type TokenSource int

// The token sources.
const (
	TokenSourceNone        TokenSource = 0
	TokenSourceStatic      TokenSource = 1 // Config.AccessToken or Client.SetAccessToken
	TokenSourceCredentials TokenSource = 2 // fetched with CorpID/AppID and Secret
	TokenSourceProvider    TokenSource = 3 // Config.TokenProvider
	TokenSourceStore       TokenSource = 4 // Config.TokenStore
)

// String returns "none", "static", "credentials", "provider" or "store".
func (s TokenSource) String() string {
	switch s {
	case TokenSourceNone:
		return "none"
	case TokenSourceStatic:
		return "static"
	case TokenSourceCredentials:
		return "credentials"
	case TokenSourceProvider:
		return "provider"
	case TokenSourceStore:
		return "store"
	}
	return fmt.Sprintf("TokenSource(%d)", int(s))
}

// ExpectContinue is how an upload's Expect: 100-continue went
// (WXM_CONTINUE_*).
type ExpectContinue int

// The outcomes of Expect: 100-continue.
const (
	ContinueNotAsked      ExpectContinue = 0 // not asked (bodies under 1 MiB)
	ContinueBodySent      ExpectContinue = 1 // the body was sent (after a 100, or after the wait for one)
	ContinueAnsweredFirst ExpectContinue = 2 // the server answered before the body: a refusal cost no body
	ContinueRefused       ExpectContinue = 3 // the server refused the expectation (417): sent again without it
)

// String returns "not_asked", "body_sent", "answered_first" or "refused".
func (c ExpectContinue) String() string {
	switch c {
	case ContinueNotAsked:
		return "not_asked"
	case ContinueBodySent:
		return "body_sent"
	case ContinueAnsweredFirst:
		return "answered_first"
	case ContinueRefused:
		return "refused"
	}
	return fmt.Sprintf("ExpectContinue(%d)", int(c))
}

// Event is one thing a transfer did: a request, a retry, a token fetch, a
// resume, a fallback, its start and end. Fields that do not apply to its
// Kind are zero. No field holds an access_token, secret or password.
type Event struct {
	Kind EventKind
	// Level is slog.LevelDebug for requests, LevelInfo or LevelWarn for
	// the others (the library's WXM_LEVEL_* on slog's scale).
	Level slog.Level
	// Monotonic is CLOCK_MONOTONIC when the event happened: it orders
	// events, and compares with the C and Python hosts' timestamps (Python's
	// time.monotonic_ns); it is not a wall clock.
	Monotonic time.Duration
	// TransferID identifies the transfer (as Counters.TransferID); 0 for
	// an event outside one.
	TransferID uint64
	// Endpoint is the API path ("cgi-bin/media/get") or a video_url's
	// path: no host, no query.
	Endpoint string
	// Message is for a person.
	Message string
	// RangeStart and RangeEnd are the Range asked for, [RangeStart,
	// RangeEnd); both 0 for none.
	RangeStart, RangeEnd int64
	// HTTPStatus is the status of the answer (0: none).
	HTTPStatus int
	// Errcode is WeChat's errcode or one of the library's codes; 0 for
	// success.
	Errcode Code
	// Bytes is what a request received (download) or sent of the file
	// (upload), or what a finished transfer moved.
	Bytes    int64
	Duration time.Duration
	// Attempt is 1 for a request's first attempt, 2 for its first retry, …
	Attempt int
	// RetryReason is the code of the failure that caused a retry.
	RetryReason Code
	Backoff     time.Duration
	TokenSource TokenSource
	// TokenFetch is how long a token fetch took.
	TokenFetch time.Duration
	// ResumeOffset is where DownloadFile resumed, and ResumeVerified the
	// bytes before it fetched again and compared.
	ResumeOffset, ResumeVerified int64
	// ViaVideoURL is set when the body came from a video_url.
	ViaVideoURL    bool
	ExpectContinue ExpectContinue
	// Method is a request's HTTP method ("GET", "POST", "PUT"...), "" for
	// other kinds.
	Method string
}

// Attrs returns the event's fields as typed slog attributes with stable
// keys, as Config.Logger receives them: "kind" and "transfer_id" always;
// "errcode" on every *_finished event and "http_status" on
// request_finished; each other field only when not zero, under "endpoint",
// "range_start", "range_end", "attempt", "bytes", "duration",
// "retry_reason", "backoff", "token_source", "token_fetch",
// "resume_offset", "resume_verified", "via_video_url", "expect_continue",
// "method".
func (e *Event) Attrs() []slog.Attr {
	a := make([]slog.Attr, 0, 8)
	a = append(a, slog.String("kind", e.Kind.String()), slog.Uint64("transfer_id", e.TransferID))
	if e.Endpoint != "" {
		a = append(a, slog.String("endpoint", e.Endpoint))
	}
	if e.RangeStart != 0 || e.RangeEnd != 0 {
		a = append(a, slog.Int64("range_start", e.RangeStart), slog.Int64("range_end", e.RangeEnd))
	}
	if e.Attempt != 0 {
		a = append(a, slog.Int("attempt", e.Attempt))
	}
	finished := e.Kind == EventRequestFinished || e.Kind == EventTransferFinished
	if e.HTTPStatus != 0 || e.Kind == EventRequestFinished {
		a = append(a, slog.Int("http_status", e.HTTPStatus))
	}
	if e.Errcode != 0 || finished {
		a = append(a, slog.Int("errcode", int(e.Errcode)))
	}
	if e.Bytes != 0 {
		a = append(a, slog.Int64("bytes", e.Bytes))
	}
	if e.Duration != 0 {
		a = append(a, slog.Duration("duration", e.Duration))
	}
	if e.RetryReason != 0 {
		a = append(a, slog.Int("retry_reason", int(e.RetryReason)))
	}
	if e.Backoff != 0 {
		a = append(a, slog.Duration("backoff", e.Backoff))
	}
	if e.TokenSource != TokenSourceNone {
		a = append(a, slog.String("token_source", e.TokenSource.String()))
	}
	if e.TokenFetch != 0 {
		a = append(a, slog.Duration("token_fetch", e.TokenFetch))
	}
	if e.ResumeOffset != 0 {
		a = append(a, slog.Int64("resume_offset", e.ResumeOffset))
	}
	if e.ResumeVerified != 0 {
		a = append(a, slog.Int64("resume_verified", e.ResumeVerified))
	}
	if e.ViaVideoURL {
		a = append(a, slog.Bool("via_video_url", true))
	}
	if e.ExpectContinue != ContinueNotAsked {
		a = append(a, slog.String("expect_continue", e.ExpectContinue.String()))
	}
	if e.Method != "" {
		a = append(a, slog.String("method", e.Method))
	}
	return a
}

// slogLevel maps the library's levels (Python's logging numbers: DEBUG 10,
// INFO 20, WARNING 30, ERROR 40) onto slog's (-4, 0, 4, 8).
func slogLevel(level C.int32_t) slog.Level {
	return slog.Level((int(level) - C.WXM_LEVEL_INFO) * 4 / 10)
}

// eventSink is the Go side of Config.Logger and Config.OnEvent.
type eventSink struct {
	logger  *slog.Logger
	onEvent func(Event)
	// minLevel is what the library is asked to build (WXM_LEVEL_*).
	minLevel C.int32_t
	handle   cgo.Handle // set when given to the library, which deletes it
}

// newEventSink returns the sink for a Client, or nil when nothing would
// receive an event: no OnEvent, and no Logger enabled at any level the
// library emits. The Logger's levels are read here, once: events below
// the lowest level it takes are then never built.
func newEventSink(logger *slog.Logger, onEvent func(Event)) *eventSink {
	s := &eventSink{logger: logger, onEvent: onEvent}
	if onEvent != nil {
		s.minLevel = C.WXM_LEVEL_DEBUG
		return s
	}
	if logger == nil {
		return nil
	}
	for _, level := range []C.int32_t{C.WXM_LEVEL_DEBUG, C.WXM_LEVEL_INFO, C.WXM_LEVEL_WARNING, C.WXM_LEVEL_ERROR} {
		if logger.Enabled(context.Background(), slogLevel(level)) {
			s.minLevel = level
			return s
		}
	}
	return nil
}

// install gives the sink to the library, which owns its handle from here
// on, whatever the call returns.
func (s *eventSink) install(conf *C.wxm_config) C.int32_t {
	s.handle = cgo.NewHandle(s)
	return C.wxmgo_config_set_event_handler(conf, C.uintptr_t(s.handle), s.minLevel)
}

// deliver hands ev to the Logger and to OnEvent; a panic in either is
// recovered and logged, never let through to the library's thread.
func (s *eventSink) deliver(ev *Event) {
	if s.logger != nil {
		s.guard(ev, "Config.Logger", func() { s.log(ev) })
	}
	if s.onEvent != nil {
		s.guard(ev, "Config.OnEvent", func() { s.onEvent(*ev) })
	}
}

func (s *eventSink) log(ev *Event) {
	ctx := context.Background()
	h := s.logger.Handler()
	if !h.Enabled(ctx, ev.Level) {
		return
	}
	// pc 0: the caller is the library, not a Go source line.
	r := slog.NewRecord(time.Now(), ev.Level, ev.Message, 0)
	r.AddAttrs(ev.Attrs()...)
	_ = h.Handle(ctx, r) // as slog.Logger does: a handler's error goes nowhere
}

// guard runs fn, logging a panic to the Logger (or, without one or when
// the Logger itself panicked, to slog.Default) instead of letting it
// unwind into C, which would crash the process.
func (s *eventSink) guard(ev *Event, who string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			defer func() { _ = recover() }() // a Logger that panics again
			logger := s.logger
			if logger == nil || who == "Config.Logger" {
				logger = slog.Default()
			}
			logger.LogAttrs(context.Background(), slog.LevelError, "wxmedia: "+who+" panicked; the event is dropped",
				slog.String("panic", fmt.Sprint(v)), slog.String("kind", ev.Kind.String()), slog.Uint64("transfer_id", ev.TransferID))
		}
	}()
	fn()
}

//export wxmgoEvent
func wxmgoEvent(h C.uintptr_t, e *C.wxm_event) {
	ev := Event{
		Kind:           EventKind(e.kind),
		Level:          slogLevel(e.level),
		Monotonic:      time.Duration(e.time_ns),
		TransferID:     uint64(e.transfer_id),
		Endpoint:       C.GoString(e.endpoint),
		Message:        C.GoString(e.message),
		RangeStart:     int64(e.range_start),
		RangeEnd:       int64(e.range_end),
		HTTPStatus:     int(e.http_status),
		Errcode:        Code(e.errcode),
		Bytes:          int64(e.bytes),
		Duration:       time.Duration(e.duration_us) * time.Microsecond,
		Attempt:        int(e.attempt),
		RetryReason:    Code(e.retry_reason),
		Backoff:        time.Duration(e.backoff_ms) * time.Millisecond,
		TokenSource:    TokenSource(e.token_source),
		TokenFetch:     time.Duration(e.token_fetch_us) * time.Microsecond,
		ResumeOffset:   int64(e.resume_offset),
		ResumeVerified: int64(e.resume_verified),
		ViaVideoURL:    e.via_video_url != 0,
		ExpectContinue: ExpectContinue(e.expect_continue),
		Method:         C.GoString(e.method),
	}
	cgo.Handle(h).Value().(*eventSink).deliver(&ev)
}

// wxmgoEventFree is the sink's free_fn: called by the library exactly once,
// after its last event, on whichever thread dropped its last reference.
//
//export wxmgoEventFree
func wxmgoEventFree(h C.uintptr_t) {
	cgo.Handle(h).Delete()
}

// Counters is what one transfer did, read when it returned, whatever its
// outcome: on the result of a success (MediaInfo, UploadResult,
// URLUploadResult) and on the *Error of a failure (Error.Counters).
type Counters struct {
	// TransferID is the transfer's id, as in its events.
	TransferID uint64
	// Requests is the number of HTTP requests sent (token fetches aside).
	Requests int64
	// Retries is the number of requests sent again after a transient
	// failure (backoffs taken).
	Retries int64
	// BytesReceived counts media bytes received (the overlap a resume
	// fetches again to check the kept prefix included).
	BytesReceived int64
	// BytesSent counts file bytes sent in upload bodies (a body sent again
	// counts again).
	BytesSent int64
	// TokenRefreshes is the number of times a rejected access_token was
	// replaced.
	TokenRefreshes int64
	// ResumedFrom is where DownloadFile resumed its temporary file, or the
	// bytes a kept upload already held for DownloadToObject (0: from the
	// start).
	ResumedFrom int64
	// Elapsed is the time of the run.
	Elapsed time.Duration
}

func countersFrom(c *C.wxm_counters) Counters {
	return Counters{
		TransferID:     uint64(c.transfer_id),
		Requests:       int64(c.requests),
		Retries:        int64(c.retries),
		BytesReceived:  int64(c.bytes_received),
		BytesSent:      int64(c.bytes_sent),
		TokenRefreshes: int64(c.token_refreshes),
		ResumedFrom:    int64(c.resumed_from),
		Elapsed:        time.Duration(c.elapsed_us) * time.Microsecond,
	}
}

// The build fails here ("invalid array index") if a constant above drifts
// from wxmedia.h.
func _() {
	var x [1]struct{}
	_ = x[int(EventTransferStarted)-C.WXM_EVENT_TRANSFER_STARTED]
	_ = x[int(EventTransferFinished)-C.WXM_EVENT_TRANSFER_FINISHED]
	_ = x[int(EventRequestStarted)-C.WXM_EVENT_REQUEST_STARTED]
	_ = x[int(EventRequestFinished)-C.WXM_EVENT_REQUEST_FINISHED]
	_ = x[int(EventRetryScheduled)-C.WXM_EVENT_RETRY_SCHEDULED]
	_ = x[int(EventTokenFetched)-C.WXM_EVENT_TOKEN_FETCHED]
	_ = x[int(EventTokenRefreshed)-C.WXM_EVENT_TOKEN_REFRESHED]
	_ = x[int(EventTokenShared)-C.WXM_EVENT_TOKEN_SHARED]
	_ = x[int(EventResumeDecided)-C.WXM_EVENT_RESUME_DECIDED]
	_ = x[int(EventResumeCheckFailed)-C.WXM_EVENT_RESUME_CHECK_FAILED]
	_ = x[int(EventFallback)-C.WXM_EVENT_FALLBACK]
	_ = x[int(TokenSourceNone)-C.WXM_TOKEN_SOURCE_NONE]
	_ = x[int(TokenSourceStatic)-C.WXM_TOKEN_SOURCE_STATIC]
	_ = x[int(TokenSourceCredentials)-C.WXM_TOKEN_SOURCE_CREDENTIALS]
	_ = x[int(TokenSourceProvider)-C.WXM_TOKEN_SOURCE_PROVIDER]
	_ = x[int(TokenSourceStore)-C.WXM_TOKEN_SOURCE_STORE]
	_ = x[int(ContinueNotAsked)-C.WXM_CONTINUE_NOT_ASKED]
	_ = x[int(ContinueBodySent)-C.WXM_CONTINUE_BODY_SENT]
	_ = x[int(ContinueAnsweredFirst)-C.WXM_CONTINUE_ANSWERED_FIRST]
	_ = x[int(ContinueRefused)-C.WXM_CONTINUE_REFUSED]
}
