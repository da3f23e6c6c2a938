package wxmedia_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

// tokenService issues tokens that it registers with the emulator, and
// records how it was called.
type tokenService struct {
	t testing.TB
	e *emulator

	mu     sync.Mutex
	issued int
	calls  []bool // forceRefresh of each call
}

func (s *tokenService) provide(ctx context.Context, force bool) (string, error) {
	// The Context is live and ends by the Client's IOTimeout at the latest.
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > wxmedia.DefaultIOTimeout || ctx.Err() != nil {
		s.t.Errorf("TokenProvider ctx: deadline %v (set %v), err %v", d, ok, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, force)
	s.issued++
	tok := fmt.Sprintf("GoProvided-%s-%d", s.t.Name(), s.issued)
	s.e.Post(s.t, "/__admin/tokens", map[string]any{"token": tok}, nil)
	return tok, nil
}

func (s *tokenService) forces() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.calls...)
}

func TestTokenProvider(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	svc := &tokenService{t: t, e: e}
	c := newClient(t, e, func(cfg *wxmedia.Config) {
		cfg.AccessToken = ""
		cfg.TokenProvider = svc.provide
		cfg.ChunkSize, cfg.Parallelism = 32<<10, 4
	})
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 400_000, Seed: 21})
	checkDownload(t, c, meta)
	checkDownload(t, c, meta)
	if got := svc.forces(); fmt.Sprint(got) != "[false]" {
		t.Fatalf("provider calls %v, want one", got)
	}

	// The token expires in the middle of a parallel download: a worker
	// thread asks for a new one.
	e.Fault(t, fault{Kind: "token_expire", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](10_000)})
	checkDownload(t, c, meta)
	if got := svc.forces(); fmt.Sprint(got) != "[false true]" {
		t.Errorf("provider calls %v, want a forced refresh after the expiry", got)
	}
	if s := e.Stats(t); s.TokenFetches != 0 {
		t.Errorf("the library fetched %d tokens itself", s.TokenFetches)
	}
}

func TestTokenProviderErrors(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 1000, Seed: 22})
	errDown := errors.New("token service down (test)")
	for name, tc := range map[string]struct {
		fn   wxmedia.TokenProvider
		code wxmedia.Code
		is   error
	}{
		"error": {func(context.Context, bool) (string, error) { return "", errDown }, wxmedia.CodeNoToken, errDown},
		"errcode": {func(context.Context, bool) (string, error) {
			return "", &wxmedia.Error{Code: 40013, Message: "invalid corpid"}
		}, 40013, nil},
		"panic":    {func(context.Context, bool) (string, error) { panic("provider panic (test)") }, wxmedia.CodeNoToken, nil},
		"too long": {func(context.Context, bool) (string, error) { return string(make([]byte, 100_000)), nil }, wxmedia.CodeNoToken, nil},
	} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.AccessToken = ""; cfg.TokenProvider = tc.fn })
			_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
			wantCode(t, err, tc.code)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.is)
			}
			if tc.code == wxmedia.CodeNoToken && errors.Unwrap(err) == nil {
				t.Errorf("err = %v, want the provider's error wrapped", err)
			}
		})
	}
}

// A transfer that outlives Close may still need the provider.
func TestTokenProviderAfterClose(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	svc := &tokenService{t: t, e: e}
	cfg := wxmedia.Config{BaseURL: e.BaseURL, TokenProvider: svc.provide, ChunkSize: 64 << 10}
	recordEvents(t, &cfg)
	c, err := wxmedia.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 3 * 64 << 10, Seed: 23})
	// The first progress report closes the Client and arms a fault that
	// expires the token in the next chunk, so the provider is called again
	// after Close. (Only plain calls in a callback: t.Fatal must not run there.)
	var once sync.Once
	var armErr error
	releasedAtClose := true
	closeFirst := wxmedia.WithProgress(func(int64, int64) {
		once.Do(func() {
			c.Close()
			releasedAtClose = wxmedia.ProviderReleased(c)
			armErr = postJSON(e.BaseURL+"/__admin/faults", fault{Kind: "token_expire", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](1000)})
		})
	})
	w := newHashWriter()
	if _, err := c.Download(context.Background(), meta.MediaID, w, closeFirst); err != nil || w.sum() != meta.SHA256 {
		t.Fatalf("download across Close: %v", err)
	}
	if armErr != nil {
		t.Fatal(armErr)
	}
	if n := e.Stats(t).FaultsFired; n != 1 {
		t.Errorf("%d faults fired, want the token expiry", n)
	}
	if got := svc.forces(); fmt.Sprint(got) != "[false true]" {
		t.Errorf("provider calls %v, want a forced refresh after Close", got)
	}
	if releasedAtClose {
		t.Error("the provider's handle was released while a transfer could still call it")
	}
	if !wxmedia.ProviderReleased(c) {
		t.Error("the provider's handle outlived the Client and its transfers")
	}
}

// The library releases the provider's handle (its free_fn) when the Client
// is closed, also when several goroutines use and close it at once, and
// when NewClient fails after the provider was set.
func TestTokenProviderReleased(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	svc := &tokenService{t: t, e: e}
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 200_000, Seed: 24})

	cfg := wxmedia.Config{BaseURL: e.BaseURL, TokenProvider: svc.provide}
	recordEvents(t, &cfg)
	c, err := wxmedia.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if wxmedia.ProviderReleased(c) {
		t.Fatal("released before Close")
	}
	c.Close()
	if !wxmedia.ProviderReleased(c) {
		t.Fatal("not released by Close")
	}

	for round := 0; round < 5; round++ {
		cfg := wxmedia.Config{BaseURL: e.BaseURL, TokenProvider: svc.provide, ChunkSize: 32 << 10, Parallelism: 2}
		recordEvents(t, &cfg)
		c, err := wxmedia.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		closeDuringDownloads(t, c, meta.MediaID, 4)
		if !wxmedia.ProviderReleased(c) {
			t.Fatalf("round %d: not released once Close and the transfers are done", round)
		}
	}

	// No Client to ask: the provider's closure must become garbage.
	collected := make(chan struct{})
	func() {
		canary := new(int)
		runtime.SetFinalizer(canary, func(*int) { close(collected) })
		provide := func(ctx context.Context, force bool) (string, error) { _ = canary; return svc.provide(ctx, force) }
		if _, err := wxmedia.NewClient(wxmedia.Config{BaseURL: e.BaseURL, TokenProvider: provide, CAFile: "/nonexistent/ca.pem"}); err == nil {
			t.Fatal("NewClient accepted a missing CA file")
		}
	}()
	for i := 0; ; i++ {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(10 * time.Millisecond):
		}
		if i == 500 {
			t.Fatal("the provider of a failed NewClient was never released")
		}
	}
}

func postJSON(url string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}
