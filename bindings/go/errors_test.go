package wxmedia_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

// families is the documented mapping of codes to sentinels (errors.go); the
// table test checks the package against it, and wantIs uses it for every
// error the emulator tests produce.
var families = []struct {
	sentinel error
	codes    []wxmedia.Code
}{
	{wxmedia.ErrMediaNotFound, []wxmedia.Code{40007, 41006}},
	{wxmedia.ErrTokenRejected, []wxmedia.Code{40001, 40014, 42001, 41001}},
	{wxmedia.ErrInvalidCorpID, []wxmedia.Code{40013}},
	{wxmedia.ErrInvalidMediaType, []wxmedia.Code{40004, 40005}},
	{wxmedia.ErrMediaSize, []wxmedia.Code{40006, 40009, 40010, 40011, 40012, 44001, 45001, 830002}},
	{wxmedia.ErrInvalidParameter, []wxmedia.Code{40058}},
	{wxmedia.ErrRateLimited, []wxmedia.Code{-1, 45009, 45011, 45033}},
	{wxmedia.ErrAPIUnauthorized, []wxmedia.Code{48001}},
	{wxmedia.ErrURLUploadFailed, []wxmedia.Code{830001, 830003, 301019, 45001}},
	{wxmedia.ErrInvalidArg, []wxmedia.Code{-1001}},
	{wxmedia.ErrIO, []wxmedia.Code{-1002}},
	{wxmedia.ErrNetwork, []wxmedia.Code{-1003}},
	{wxmedia.ErrTimeout, []wxmedia.Code{-1004}},
	{wxmedia.ErrTLS, []wxmedia.Code{-1005}},
	{wxmedia.ErrHTTPStatus, []wxmedia.Code{-1006}},
	{wxmedia.ErrProtocol, []wxmedia.Code{-1007}},
	{wxmedia.ErrAborted, []wxmedia.Code{-1008}},
	{wxmedia.ErrCancelled, []wxmedia.Code{-1009}},
	{wxmedia.ErrNoToken, []wxmedia.Code{-1010}},
	{wxmedia.ErrPanic, []wxmedia.Code{-1011}},
	{wxmedia.ErrState, []wxmedia.Code{-1012}},
	{wxmedia.ErrTokenStore, []wxmedia.Code{-1013}},
	{wxmedia.ErrOutcomeUnknown, []wxmedia.Code{-1014}},
	{wxmedia.ErrObjectStore, []wxmedia.Code{-1015}},
	{wxmedia.ErrObjectStoreAuth, []wxmedia.Code{-1016}},
	{wxmedia.ErrNoSuchBucket, []wxmedia.Code{-1017}},
}

// documented is every named Code of the package.
var documented = []wxmedia.Code{
	wxmedia.CodeInvalidArg, wxmedia.CodeIO, wxmedia.CodeNetwork, wxmedia.CodeTimeout, wxmedia.CodeTLS,
	wxmedia.CodeHTTPStatus, wxmedia.CodeProtocol, wxmedia.CodeAborted, wxmedia.CodeCancelled,
	wxmedia.CodeNoToken, wxmedia.CodePanic, wxmedia.CodeState, wxmedia.CodeTokenStore, wxmedia.CodeOutcomeUnknown,
	wxmedia.CodeObjectStore, wxmedia.CodeObjectStoreAuth, wxmedia.CodeNoSuchBucket,
	wxmedia.CodeSystemBusy, wxmedia.CodeInvalidCredential, wxmedia.CodeInvalidMediaType,
	wxmedia.CodeInvalidFileType, wxmedia.CodeInvalidFileSize, wxmedia.CodeInvalidMediaID,
	wxmedia.CodeInvalidImageSize, wxmedia.CodeInvalidVoiceSize, wxmedia.CodeInvalidVideoSize,
	wxmedia.CodeInvalidThumbSize, wxmedia.CodeInvalidCorpID, wxmedia.CodeInvalidAccessToken,
	wxmedia.CodeInvalidParameter, wxmedia.CodeMissingAccessToken, wxmedia.CodeMissingMediaID,
	wxmedia.CodeAccessTokenExpired, wxmedia.CodeEmptyMedia, wxmedia.CodeMediaSizeLimit,
	wxmedia.CodeFrequencyLimit, wxmedia.CodeTooManyRequests, wxmedia.CodeAPIConcurrency,
	wxmedia.CodeAPIUnauthorized, wxmedia.CodeRangeRequired, wxmedia.CodeRangeNotSupported,
	wxmedia.CodeURLFetchFailed, wxmedia.CodeMD5Mismatch,
}

func inFamily(codes []wxmedia.Code, c wxmedia.Code) bool {
	for _, k := range codes {
		if k == c {
			return true
		}
	}
	return false
}

// wantIs checks that err matches, with errors.Is, exactly the sentinels
// whose family holds code, and the Code itself.
func wantIs(t testing.TB, err error, code wxmedia.Code) {
	t.Helper()
	if !errors.Is(err, code) {
		t.Errorf("errors.Is(%v, Code(%d)) = false", err, code)
	}
	for _, f := range families {
		if want := inFamily(f.codes, code); errors.Is(err, f.sentinel) != want {
			t.Errorf("errors.Is(err %d, %v) = %v, want %v", code, f.sentinel, !want, want)
		}
	}
}

// The rest, and every documented code, without the emulator.
func TestErrorSentinelsTable(t *testing.T) {
	for _, code := range documented {
		err := fmt.Errorf("wrapped: %w", &wxmedia.Error{Code: code, Message: "m"})
		wantIs(t, err, code)
		var e *wxmedia.Error
		if !errors.As(err, &e) || e.Code != code {
			t.Errorf("errors.As(%d) = %v", code, e)
		}
		if !errors.Is(err, &wxmedia.Error{Code: code}) {
			t.Errorf("errors.Is(err, &Error{Code: %d}) = false", code)
		}
		if errors.Is(err, code+1) {
			t.Errorf("errors.Is(err %d, Code(%d)) = true", code, code+1)
		}
		if text := code.Error(); text == "" || wxmedia.ErrorText(code) == "" {
			t.Errorf("Code(%d).Error() = %q", code, text)
		}
		var c wxmedia.Code
		if errors.As(err, &c) {
			t.Errorf("errors.As(err, *Code) found %d: an *Error is not a Code", c)
		}
	}
	// Every family code is documented, and every library code has its own sentinel.
	for _, f := range families {
		for _, c := range f.codes {
			if !inFamily(documented, c) {
				t.Errorf("%v lists %d, which has no Code constant", f.sentinel, c)
			}
		}
	}
	for c := wxmedia.CodeNoSuchBucket; c <= wxmedia.CodeInvalidArg; c++ {
		n := 0
		for _, f := range families {
			if errors.Is(&wxmedia.Error{Code: c}, f.sentinel) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("library code %d matches %d sentinels, want 1", c, n)
		}
	}
	if errors.Is(&wxmedia.Error{Code: 48002}, wxmedia.ErrAPIUnauthorized) || errors.Is(context.Canceled, wxmedia.ErrCancelled) {
		t.Error("a sentinel matched what it does not name")
	}
}

// errors.Is against the emulator: every WeChat code through its errcode
// fault on media/get, the library's codes by making them happen.
func TestErrorsIsAgainstEmulator(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.MaxAttempts = 2 })
	meta := e.AddMedia(t, mediaSpec{Filename: "e.bin", Size: 1000, Seed: 31})

	t.Run("wechat", func(t *testing.T) {
		for _, code := range documented {
			if code < 0 && code != wxmedia.CodeSystemBusy {
				continue // the library's own
			}
			e.Reset(t)
			e.Fault(t, fault{Kind: "errcode", MediaID: meta.MediaID, Errcode: emutest.Ptr(int64(code)), Count: 10})
			_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
			wantCode(t, err, code)
			wantIs(t, err, code)
		}
		e.Reset(t)
		_, err := c.Download(context.Background(), "no-such-media", io.Discard) // the real thing
		wantIs(t, err, wxmedia.CodeInvalidMediaID)
		if !errors.Is(err, wxmedia.ErrMediaNotFound) {
			t.Errorf("errors.Is(%v, ErrMediaNotFound) = false", err)
		}
	})

	run := func(name string, code wxmedia.Code, f func(t *testing.T) error) {
		t.Run(name, func(t *testing.T) {
			e.Reset(t)
			err := f(t)
			wantCode(t, err, code)
			wantIs(t, err, code)
		})
	}
	run("token_expired", wxmedia.CodeAccessTokenExpired, func(t *testing.T) error {
		tok := "GoExpiring-" + t.Name()
		e.Post(t, "/__admin/tokens", map[string]any{"token": tok}, nil)
		e.Post(t, "/__admin/expire_token", map[string]any{"token": tok}, nil)
		c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.AccessToken = tok })
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		if !errors.Is(err, wxmedia.ErrTokenRejected) {
			t.Errorf("errors.Is(%v, ErrTokenRejected) = false", err)
		}
		return err
	})
	run("bad_corpid", wxmedia.CodeInvalidCorpID, func(t *testing.T) error {
		c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.AccessToken = ""; cfg.CorpID, cfg.Secret = "nobody", testSecret })
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("invalid_arg", wxmedia.CodeInvalidArg, func(t *testing.T) error {
		_, err := wxmedia.NewClient(wxmedia.Config{BaseURL: e.BaseURL, AccessToken: testToken, ChunkSize: 17})
		return err
	})
	run("io", wxmedia.CodeIO, func(t *testing.T) error {
		_, err := c.DownloadFile(context.Background(), meta.MediaID, filepath.Join(t.TempDir(), "no", "dir", "x"))
		return err
	})
	run("network", wxmedia.CodeNetwork, func(t *testing.T) error {
		c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.BaseURL = fmt.Sprintf("http://127.0.0.1:%d", deadPort(t)) })
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("timeout", wxmedia.CodeTimeout, func(t *testing.T) error {
		e.Fault(t, fault{Kind: "stall", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](0), Ms: 3000, Count: 5})
		c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.IOTimeout = 300 * time.Millisecond; cfg.MaxAttempts = 1 })
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("tls", wxmedia.CodeTLS, func(t *testing.T) error {
		// The emulator speaks plain http: a TLS handshake with it fails.
		c := newClient(t, e, func(cfg *wxmedia.Config) {
			cfg.BaseURL = "https://" + e.BaseURL[len("http://"):]
			cfg.MaxAttempts = 1
		})
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("http_status", wxmedia.CodeHTTPStatus, func(t *testing.T) error {
		e.Fault(t, fault{Kind: "http_status", Status: 503, MediaID: meta.MediaID, Count: 10})
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("protocol", wxmedia.CodeProtocol, func(t *testing.T) error {
		e.Fault(t, fault{Kind: "wrong_content_range", MediaID: meta.MediaID, Count: 10})
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("aborted", wxmedia.CodeAborted, func(t *testing.T) error {
		mine := errors.New("disk full (test)")
		_, err := c.Download(context.Background(), meta.MediaID, &failingWriter{limit: 0, err: mine})
		if !errors.Is(err, mine) {
			t.Errorf("errors.Is(%v, the writer's error) = false", err)
		}
		return err
	})
	run("cancelled", wxmedia.CodeCancelled, func(t *testing.T) error {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Download(ctx, meta.MediaID, io.Discard)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false", err)
		}
		return err
	})
	run("no_token", wxmedia.CodeNoToken, func(t *testing.T) error {
		c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.AccessToken = "" })
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("state", wxmedia.CodeState, func(t *testing.T) error {
		c := newClient(t, e, nil)
		c.Close()
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	run("outcome_unknown", wxmedia.CodeOutcomeUnknown, func(t *testing.T) error {
		e.Fault(t, fault{Kind: "drop_after_body", Endpoint: "media/upload_by_url", Count: 10})
		_, err := c.UploadByURL(context.Background(), wxmedia.TypeFile, e.BaseURL+"/__video/"+meta.MediaID, "a.bin",
			wxmedia.WithMD5("0123456789abcdef0123456789abcdef"))
		return err
	})
	run("url_upload_failed", wxmedia.CodeMD5Mismatch, func(t *testing.T) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.UploadByURL(ctx, wxmedia.TypeFile, e.BaseURL+"/__video/"+meta.MediaID, "a.bin",
			wxmedia.WithMD5("0123456789abcdef0123456789abcdef"))
		return err
	})
	run("token_store", wxmedia.CodeTokenStore, func(t *testing.T) error {
		// Nothing listens on loopback port 1: the store is unreachable.
		c := newClient(t, e, func(cfg *wxmedia.Config) {
			cfg.AccessToken = ""
			cfg.CorpID, cfg.Secret = testCorpID, testSecret
			cfg.TokenStore = "redis://127.0.0.1:1/0"
			cfg.TokenStoreConnectTimeout = time.Second
		})
		_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
		return err
	})
	// CodePanic cannot be made on purpose (it is a bug in the library):
	// the table covers it.
}

// The TokenProvider may fail with a Code as well as with an *Error.
func TestTokenProviderReturnsCode(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) {
		cfg.AccessToken = ""
		cfg.TokenProvider = func(context.Context, bool) (string, error) { return "", wxmedia.CodeInvalidCorpID }
	})
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 100, Seed: 32})
	_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
	wantCode(t, err, wxmedia.CodeInvalidCorpID)
	wantIs(t, err, wxmedia.CodeInvalidCorpID)
}

// AppID names the Official Account's appid; CorpID the WeCom corpid.
func TestConfigAppID(t *testing.T) {
	oa := getEmulator(t, wxmedia.PlatformOfficial)
	meta := oa.AddMedia(t, mediaSpec{Filename: "a.bin", Size: 1000, Seed: 33})
	c := newClient(t, oa, func(cfg *wxmedia.Config) { cfg.AccessToken = ""; cfg.AppID, cfg.Secret = testCorpID, testSecret })
	var buf bytes.Buffer
	if _, err := c.Download(context.Background(), meta.MediaID, &buf); err != nil || buf.Len() != 1000 {
		t.Fatalf("download with AppID: %v (%d bytes)", err, buf.Len())
	}
	for name, cfg := range map[string]wxmedia.Config{
		"both":     {Platform: wxmedia.PlatformOfficial, AppID: "wx1", CorpID: "ww1", Secret: "s"},
		"on wecom": {Platform: wxmedia.PlatformWeCom, AppID: "wx1", Secret: "s"},
	} {
		cfg.BaseURL = oa.BaseURL
		_, err := wxmedia.NewClient(cfg)
		if !errors.Is(err, wxmedia.ErrInvalidArg) {
			t.Errorf("%s: err = %v, want ErrInvalidArg", name, err)
		}
	}
}
