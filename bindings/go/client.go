package wxmedia

/*
#cgo CFLAGS: -I${SRCDIR}/include
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Platform selects the WeChat API a Client talks to: its default host, token
// endpoint, upload types and limits, and how answers look.
type Platform int

// The platforms (the WXM_PLATFORM_* constants of wxmedia.h).
const (
	PlatformWeCom       Platform = 1 // WeCom (企业微信), qyapi.weixin.qq.com
	PlatformKF          Platform = 2 // WeChat Customer Service (微信客服), same host as WeCom
	PlatformOfficial    Platform = 3 // Official Account (公众号), api.weixin.qq.com
	PlatformMiniProgram Platform = 4 // Mini Program customer service, images only
)

// String returns the platform's name as the emulator's --platform flag
// spells it.
func (p Platform) String() string {
	switch p {
	case PlatformWeCom:
		return "wecom"
	case PlatformKF:
		return "kf"
	case PlatformOfficial:
		return "official"
	case PlatformMiniProgram:
		return "miniprogram"
	}
	return fmt.Sprintf("Platform(%d)", int(p))
}

// ParsePlatform is the inverse of Platform.String.
func ParsePlatform(s string) (Platform, error) {
	for p := PlatformWeCom; p <= PlatformMiniProgram; p++ {
		if strings.EqualFold(s, p.String()) {
			return p, nil
		}
	}
	return 0, &Error{Code: CodeInvalidArg, Message: fmt.Sprintf("unknown platform %q (want wecom, kf, official or miniprogram)", s)}
}

// The library's defaults, used for whichever of a pair of Config fields is
// left zero when the other is set.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultIOTimeout      = 30 * time.Second
	DefaultMaxAttempts    = 4
	DefaultBackoff        = 200 * time.Millisecond
	// DefaultTokenStoreTimeout bounds the token store's connect and each of
	// its commands.
	DefaultTokenStoreTimeout = 5 * time.Second
)

// Config configures a Client. Zero values leave the library's defaults.
type Config struct {
	// Platform defaults to PlatformWeCom.
	Platform Platform
	// BaseURL replaces the platform's API host, e.g. "http://127.0.0.1:8080"
	// for the emulator.
	BaseURL string
	// AccessToken is a static access_token. Hosts that rotate tokens
	// themselves call Client.SetAccessToken.
	AccessToken string
	// CorpID and Secret are the credentials the library fetches (and, on
	// 40001/40014/42001, refreshes) tokens with on WeCom (企业微信) and
	// WeChat Customer Service (微信客服): the corpid (企业ID, "ww…") and the
	// application's corpsecret. On the Official Account and Mini Program
	// set AppID instead.
	CorpID, Secret string
	// AppID is the Official Account's or Mini Program's appid ("wx…"),
	// with Secret its AppSecret (PlatformOfficial, PlatformMiniProgram).
	// WeCom and KF have no appid: they take CorpID. Setting both AppID and
	// CorpID is an error (CodeInvalidArg), as is AppID on WeCom or KF.
	AppID string
	// ChunkSize is the length of each Range request: a multiple of 16, at
	// most 20 MiB (the default).
	ChunkSize int64
	// Parallelism is the number of Range requests one download keeps in
	// flight, 1 (the default) to 64. Memory grows to about Parallelism ×
	// ChunkSize; the writer still receives the bytes in order.
	Parallelism int
	// ConnectTimeout bounds connecting and IOTimeout the wait for the next
	// byte (millisecond resolution; defaults DefaultConnectTimeout and
	// DefaultIOTimeout).
	ConnectTimeout, IOTimeout time.Duration
	// MaxAttempts is the number of tries, 1 to 100, of a request that fails
	// transiently (-1, 45033, 5xx, reset, timeout, short body) without
	// progress; Backoff is the base of the exponential, jittered delay
	// between them (defaults DefaultMaxAttempts and DefaultBackoff).
	MaxAttempts int
	Backoff     time.Duration
	// Limits overrides per-type upload limits in bytes, e.g. {"video": 200 << 20}.
	Limits map[string]int64
	// CAFile is a PEM file of private CA certificates for https.
	CAFile string
	// TokenAPI chooses the endpoint that issues tokens from credentials on
	// the Official Account and Mini Program (WeCom and KF have only
	// gettoken).
	TokenAPI TokenAPI
	// TokenStore shares one access_token per app between every process
	// that uses the same Redis, "redis://[[user]:password@]host[:port][/db]"
	// (or "rediss://…" for TLS, trusting the built-in roots plus CAFile):
	// one process fetches or renews it under a Redis lock, the others wait
	// for it. Any failure of the store (unreachable, refused password,
	// READONLY, an error reply, an untrusted certificate, no answer in
	// time) fails the transfer with ErrTokenStore; the message names the
	// store without its password.
	TokenStore string
	// TokenStoreConnectTimeout and TokenStoreCommandTimeout bound the
	// token store's connect (TCP, TLS, AUTH) and each command (default
	// DefaultTokenStoreTimeout; either may be left zero when the other is
	// set).
	TokenStoreConnectTimeout time.Duration
	TokenStoreCommandTimeout time.Duration
	// TokenStoreFallback lets the client fetch a token from WeChat alone
	// when the token store fails, instead of failing with ErrTokenStore.
	// Off by default: on the Official Account a token fetched alone can
	// invalidate every other process's. Client.TokenStoreFallbacks counts
	// these.
	TokenStoreFallback bool
	// TokenProvider, if set, supplies the access tokens (instead of
	// AccessToken or CorpID/Secret), for hosts with a token service of their
	// own. See TokenProvider.
	TokenProvider TokenProvider
	// Logger receives the library's events (requests, retries, token
	// fetches and refreshes, resumes, fallbacks, each transfer's start and
	// end) as records with typed attributes (see Event.Attrs): requests at
	// slog.LevelDebug, the others at LevelInfo or LevelWarn. nil: silent,
	// and no event is built at all. The levels the Logger is enabled for
	// are read once, by NewClient: the library never builds events below
	// the lowest of them (a slog.LevelVar lowered later does not bring
	// them back). Its Handler is called on the library's threads, also
	// concurrently for concurrent transfers, and the transfer waits for
	// it: it must be safe for concurrent use and quick, as slog's own
	// handlers are.
	Logger *slog.Logger
	// OnEvent, if set, receives every event (Debug ones included) as a
	// typed Event, after the Logger. It runs as the Logger's handler does:
	// on the library's threads, concurrently for concurrent transfers, in
	// the transfer's way. A panic in it is recovered and logged (to Logger,
	// or slog.Default) and the transfer goes on; it must not call
	// runtime.Goexit (t.FailNow, t.Fatal), nor run or free the transfer
	// that emitted the event.
	OnEvent func(Event)
}

// TokenProvider returns an access_token. forceRefresh is true when WeChat
// rejected the previous one (40001, 40014, 42001, 41001): return a new one then.
//
// The library calls it when a token is first needed and after a rejection,
// never concurrently for one Client, but from any goroutine or thread,
// including the worker threads of a parallel download; it may run after
// Close while transfers started before Close finish. An error stops the
// transfer that needed the token: an *Error (or a Code) with a positive
// code is returned with that code, any other error as CodeNoToken wrapping
// it. A panic is recovered and treated as an error.
//
// ctx carries a deadline: the Client's IOTimeout (DefaultIOTimeout unless
// set) from the call on; pass it to your token service's request. It is
// not the Context of the transfer that asked: one call serves every
// transfer of the Client that waits for a token (the library never asks
// twice at once), and a parallel download asks from worker threads of the
// library that have no Context. A transfer whose Context ends while its
// provider runs returns once the provider has returned, so the deadline
// bounds how long a cancel can wait.
type TokenProvider func(ctx context.Context, forceRefresh bool) (string, error)

// TokenAPI is the endpoint that issues tokens from credentials.
type TokenAPI int

// The token endpoints (the WXM_TOKEN_API_* constants of wxmedia.h).
const (
	TokenAPIDefault TokenAPI = 0 // the platform's default: gettoken (WeCom, KF) or stable_token
	TokenAPIStable  TokenAPI = 1 // cgi-bin/stable_token (Official Account, Mini Program)
	TokenAPIClassic TokenAPI = 2 // cgi-bin/token: each fetch invalidates other processes' tokens
)

// Client is a configured connection to one WeChat API. It is safe for
// concurrent use by many goroutines and meant to be shared; Close releases
// it (a finalizer does so too if it is forgotten). Transfers already running
// keep their own reference and finish normally after Close.
type Client struct {
	mu     sync.Mutex
	ptr    *C.wxm_client // freed by Close, or by the last release after it
	closed bool
	// Calls between acquire and release, which use ptr: Close leaves its
	// free to the last of them.
	running int
	// nil without Config.TokenProvider. The library owns its handle and
	// releases it after its last call (wxmgoTokenFree); kept here only to
	// wrap the provider's last error.
	provider *tokenProvider
	// nil without Config.Logger and Config.OnEvent; the library owns its
	// handle as the provider's (wxmgoEventFree).
	events *eventSink
}

// NewClient creates a Client from cfg.
func NewClient(cfg Config) (*Client, error) {
	platform := cfg.Platform
	if platform == 0 {
		platform = PlatformWeCom
	}
	conf, err := callLocked(func() (*C.wxm_config, C.int32_t) {
		c := C.wxm_config_new(C.int32_t(platform))
		if c == nil {
			return nil, C.int32_t(CodeInvalidArg)
		}
		return c, 0
	})
	if err != nil {
		return nil, err
	}
	defer C.wxm_config_free(conf)

	var provider *tokenProvider
	if cfg.TokenProvider != nil {
		provider = newTokenProvider(cfg.TokenProvider, or(cfg.IOTimeout, DefaultIOTimeout))
	}
	events := newEventSink(cfg.Logger, cfg.OnEvent)
	// The library owns the provider's handle from configure on, and the
	// event sink's once configure gave it: freeing conf releases them when
	// no client was made.
	if err := configure(conf, &cfg, provider, events); err != nil {
		return nil, err
	}
	ptr, err := callLocked(func() (*C.wxm_client, C.int32_t) {
		var out *C.wxm_client
		rc := C.wxm_client_new(conf, &out)
		return out, rc
	})
	if err != nil {
		return nil, err
	}
	c := &Client{ptr: ptr, provider: provider, events: events}
	runtime.SetFinalizer(c, (*Client).Close)
	return c, nil
}

// configure applies the non-zero fields of cfg.
func configure(conf *C.wxm_config, cfg *Config, provider *tokenProvider, events *eventSink) error {
	s := &setter{}
	// First, so that it is always called: the library then owns the handle.
	if provider != nil {
		s.call("TokenProvider", func() C.int32_t {
			return C.wxmgo_config_set_token_provider(conf, C.uintptr_t(provider.handle))
		})
	}
	// The sink's handle is made by the call that hands it over, so none
	// exists when an earlier failure skips it.
	if events != nil {
		s.call("Logger/OnEvent", func() C.int32_t { return events.install(conf) })
	}
	if cfg.BaseURL != "" {
		s.str("BaseURL", cfg.BaseURL, func(v *C.char) C.int32_t { return C.wxm_config_set_base_url(conf, v) })
	}
	if cfg.AccessToken != "" {
		s.str("AccessToken", cfg.AccessToken, func(v *C.char) C.int32_t { return C.wxm_config_set_access_token(conf, v) })
	}
	id := cfg.CorpID
	if cfg.AppID != "" {
		s.check(cfg.CorpID == "", "set AppID (Official Account, Mini Program) or CorpID (WeCom, KF), not both")
		s.check(cfg.Platform == PlatformOfficial || cfg.Platform == PlatformMiniProgram,
			"AppID is for PlatformOfficial and PlatformMiniProgram; WeCom and KF take CorpID")
		id = cfg.AppID
	}
	if id != "" || cfg.Secret != "" {
		s.check(strings.IndexByte(id+cfg.Secret, 0) < 0, "CorpID/AppID/Secret must not contain NUL bytes")
		s.call("CorpID/AppID/Secret", func() C.int32_t {
			cid, secret := C.CString(id), C.CString(cfg.Secret)
			defer C.free(unsafe.Pointer(cid))
			defer C.free(unsafe.Pointer(secret))
			return C.wxm_config_set_credentials(conf, cid, secret)
		})
	}
	if cfg.ChunkSize != 0 {
		s.check(cfg.ChunkSize > 0, "ChunkSize must not be negative")
		s.call("ChunkSize", func() C.int32_t { return C.wxm_config_set_chunk_size(conf, C.uint64_t(cfg.ChunkSize)) })
	}
	if cfg.Parallelism != 0 {
		s.check(cfg.Parallelism > 0 && int64(cfg.Parallelism) <= math.MaxUint32, "Parallelism out of range")
		s.call("Parallelism", func() C.int32_t { return C.wxm_config_set_parallelism(conf, C.uint32_t(cfg.Parallelism)) })
	}
	// The library sets both timeouts, and both retry values, in one call.
	if cfg.ConnectTimeout != 0 || cfg.IOTimeout != 0 {
		connect := s.millis("ConnectTimeout", or(cfg.ConnectTimeout, DefaultConnectTimeout))
		io := s.millis("IOTimeout", or(cfg.IOTimeout, DefaultIOTimeout))
		s.call("timeouts", func() C.int32_t { return C.wxm_config_set_timeouts(conf, connect, io) })
	}
	if cfg.MaxAttempts != 0 || cfg.Backoff != 0 {
		attempts := or(cfg.MaxAttempts, DefaultMaxAttempts)
		s.check(attempts > 0 && int64(attempts) <= math.MaxUint32, "MaxAttempts out of range")
		backoff := s.millis("Backoff", or(cfg.Backoff, DefaultBackoff))
		s.call("retries", func() C.int32_t { return C.wxm_config_set_retries(conf, C.uint32_t(attempts), backoff) })
	}
	types := make([]string, 0, len(cfg.Limits))
	for typ := range cfg.Limits {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		max := cfg.Limits[typ]
		s.check(max >= 0, "Limits["+typ+"] must not be negative")
		s.str("Limits["+typ+"]", typ, func(v *C.char) C.int32_t { return C.wxm_config_set_limit(conf, v, C.uint64_t(max)) })
	}
	if cfg.CAFile != "" {
		s.str("CAFile", cfg.CAFile, func(v *C.char) C.int32_t { return C.wxm_config_set_ca_file(conf, v) })
	}
	if cfg.TokenAPI != TokenAPIDefault {
		s.call("TokenAPI", func() C.int32_t { return C.wxm_config_set_token_api(conf, C.int32_t(cfg.TokenAPI)) })
	}
	if cfg.TokenStore != "" {
		s.str("TokenStore", cfg.TokenStore, func(v *C.char) C.int32_t { return C.wxm_config_set_token_store(conf, v) })
	}
	if cfg.TokenStoreConnectTimeout != 0 || cfg.TokenStoreCommandTimeout != 0 {
		connect := s.millis("TokenStoreConnectTimeout", or(cfg.TokenStoreConnectTimeout, DefaultTokenStoreTimeout))
		command := s.millis("TokenStoreCommandTimeout", or(cfg.TokenStoreCommandTimeout, DefaultTokenStoreTimeout))
		s.call("token store timeouts", func() C.int32_t { return C.wxm_config_set_token_store_timeouts(conf, connect, command) })
	}
	if cfg.TokenStoreFallback {
		s.call("TokenStoreFallback", func() C.int32_t { return C.wxm_config_set_token_store_fallback(conf, 1) })
	}
	return s.err
}

// or returns v, or def when v is zero.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// setter runs configuration calls until the first failure, which it keeps.
type setter struct{ err error }

func (s *setter) check(ok bool, msg string) {
	if !ok && s.err == nil {
		s.err = invalidArg(msg)
	}
}

func (s *setter) call(what string, call func() C.int32_t) {
	if s.err != nil {
		return
	}
	if _, err := callLocked(func() (struct{}, C.int32_t) { return struct{}{}, call() }); err != nil {
		e := err.(*Error)
		e.Message = what + ": " + e.Message
		s.err = e
	}
}

// str passes value to call as a C string for the duration of the call.
func (s *setter) str(what, value string, call func(*C.char) C.int32_t) {
	s.check(strings.IndexByte(value, 0) < 0, what+" must not contain NUL bytes")
	s.call(what, func() C.int32_t {
		cs := C.CString(value)
		defer C.free(unsafe.Pointer(cs))
		return call(cs)
	})
}

// millis converts a duration to whole milliseconds for the library, rounding
// a positive sub-millisecond value up so that it does not become 0.
func (s *setter) millis(what string, d time.Duration) C.uint32_t {
	s.check(d >= 0, what+" must not be negative")
	ms := (d + time.Millisecond - 1) / time.Millisecond
	s.check(ms <= math.MaxUint32, what+" is too long")
	return C.uint32_t(ms)
}

func invalidArg(msg string) *Error { return &Error{Code: CodeInvalidArg, Message: msg} }

// SetAccessToken replaces the Client's access token, for hosts that rotate
// tokens themselves. Transfers started afterwards use it.
func (c *Client) SetAccessToken(token string) error {
	if strings.IndexByte(token, 0) >= 0 {
		return invalidArg("token must not contain NUL bytes")
	}
	ptr, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.release()
	cs := C.CString(token)
	defer C.free(unsafe.Pointer(cs))
	_, err = callLocked(func() (struct{}, C.int32_t) {
		return struct{}{}, C.wxm_client_set_access_token(ptr, cs)
	})
	return err
}

// TokenStoreFallbacks is how many times this Client fetched a token alone
// because its token store failed (only with Config.TokenStoreFallback).
func (c *Client) TokenStoreFallbacks() (uint64, error) {
	ptr, err := c.acquire()
	if err != nil {
		return 0, err
	}
	defer c.release()
	return callLocked(func() (uint64, C.int32_t) {
		var n C.uint64_t
		rc := C.wxm_client_token_store_fallbacks(ptr, &n)
		return uint64(n), rc
	})
}

// Close releases the Client. It is safe to call more than once; later calls
// on the Client fail with CodeState. Transfers already running finish.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		runtime.SetFinalizer(c, nil)
		if c.running == 0 {
			c.free()
		}
	}
	return nil
}

// free releases the host's reference to the library's client (transfers
// hold their own). Called with c.mu held.
func (c *Client) free() {
	C.wxm_client_free(c.ptr)
	c.ptr = nil
}

// acquire returns the client pointer and counts a running call until
// release, so that a concurrent Close cannot free the pointer in use.
func (c *Client) acquire() (*C.wxm_client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &Error{Code: CodeState, Message: "the Client is closed"}
	}
	c.running++
	return c.ptr, nil
}

// release ends a call counted by acquire.
func (c *Client) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running--
	if c.closed && c.running == 0 {
		c.free()
	}
}

// withProviderError adds the TokenProvider's last error to an CodeNoToken.
func (c *Client) withProviderError(err error) error {
	if e, ok := err.(*Error); ok && e.cause == nil && c.provider != nil {
		if e.Code == CodeNoToken {
			e.cause = c.provider.lastError()
		}
	}
	return err
}

// Version returns the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.wxm_version()) }
