package wxmedia_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

// eventLog holds every event of a Client (see recordEvents).
type eventLog struct {
	mu     sync.Mutex
	events []wxmedia.Event
}

func (l *eventLog) add(ev wxmedia.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *eventLog) all() []wxmedia.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]wxmedia.Event(nil), l.events...)
}

// of returns the events of one kind, in the order they came.
func (l *eventLog) of(kind wxmedia.EventKind) []wxmedia.Event {
	var out []wxmedia.Event
	for _, ev := range l.all() {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// secretMarkers are in every secret the tests use: the static token and
// secret, every token the emulator issues ("wxmtok…") or tokenService
// provides, and a token in a query.
var secretMarkers = []string{testToken, testSecret, "wxmtok", "GoProvided-", "access_token="}

// recordEvents makes cfg's Client record every event into the returned log
// (before cfg's own OnEvent, if any, is called), and checks when the test
// ends that no event carries a secret: the markers above and cfg's own
// token, secret and token store password. Every Client the tests make
// goes through it.
func recordEvents(t testing.TB, cfg *wxmedia.Config) *eventLog {
	t.Helper()
	l := &eventLog{}
	secrets := append([]string(nil), secretMarkers...)
	for _, s := range []string{cfg.AccessToken, cfg.Secret} {
		if len(s) >= 6 {
			secrets = append(secrets, s)
		}
	}
	if u, err := url.Parse(cfg.TokenStore); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			secrets = append(secrets, pw)
		}
	}
	own := cfg.OnEvent
	cfg.OnEvent = func(ev wxmedia.Event) {
		l.add(ev)
		if own != nil {
			own(ev)
		}
	}
	t.Cleanup(func() { l.check(t, secrets) })
	return l
}

// check fails t for an event that carries a secret, or whose kind or level
// is not one the package knows.
func (l *eventLog) check(t testing.TB, secrets []string) {
	t.Helper()
	for _, ev := range l.all() {
		text := fmt.Sprintf("%+v", ev)
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("an event leaks a secret (%q): %s", s, text)
			}
		}
		if strings.HasPrefix(ev.Kind.String(), "EventKind(") {
			t.Errorf("an event of unknown kind: %s", text)
		}
		switch ev.Level {
		case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
		default:
			t.Errorf("an event of level %v: %s", ev.Level, text)
		}
	}
}

// kinds lists the kinds of events, for messages.
func kinds(evs []wxmedia.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s(attempt %d, status %d, errcode %d) ", ev.Kind, ev.Attempt, ev.HTTPStatus, ev.Errcode)
	}
	return b.String()
}

func TestEventsRetries(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c, log := newClientEvents(t, e, nil)
	meta := e.AddMedia(t, mediaSpec{Filename: "r.bin", Size: 100_000, Seed: 40})
	e.Fault(t, fault{Kind: "http_status", Status: 503, MediaID: meta.MediaID, Count: 2})
	info := checkDownload(t, c, meta)

	evs := log.all()
	retries := log.of(wxmedia.EventRetryScheduled)
	if len(retries) != 2 {
		t.Fatalf("%d retry events, want 2: %s", len(retries), kinds(evs))
	}
	for i, ev := range retries {
		if ev.Attempt != i+2 || ev.RetryReason != wxmedia.CodeHTTPStatus || ev.Backoff <= 0 ||
			ev.Level != slog.LevelWarn || ev.Endpoint != "cgi-bin/media/get" || ev.TransferID != info.Counters.TransferID {
			t.Errorf("retry %d: %+v; want attempt %d, reason %d, a backoff, Warn, cgi-bin/media/get, transfer %d",
				i, ev, i+2, wxmedia.CodeHTTPStatus, info.Counters.TransferID)
		}
	}
	var statuses []int
	for i, ev := range log.of(wxmedia.EventRequestFinished) {
		statuses = append(statuses, ev.HTTPStatus)
		if ev.Attempt != i+1 || ev.Level != slog.LevelDebug || ev.Method != "GET" {
			t.Errorf("request_finished %d: attempt %d level %v method %q, want %d, Debug and GET", i, ev.Attempt, ev.Level, ev.Method, i+1)
		}
	}
	if fmt.Sprint(statuses) != "[503 503 206]" {
		t.Errorf("requests answered %v, want [503 503 206]", statuses)
	}
	if len(evs) == 0 || evs[0].Kind != wxmedia.EventTransferStarted || evs[len(evs)-1].Kind != wxmedia.EventTransferFinished {
		t.Errorf("events %s: want transfer_started first and transfer_finished last", kinds(evs))
	} else if last := evs[len(evs)-1]; last.Errcode != 0 || last.Level != slog.LevelInfo || last.Bytes != meta.Size {
		t.Errorf("transfer_finished %+v: want errcode 0, Info, %d bytes", last, meta.Size)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Monotonic < evs[i-1].Monotonic {
			t.Errorf("event %d (%s) is earlier than the one before", i, evs[i].Kind)
		}
	}

	cn := info.Counters
	if cn.Retries != 2 || cn.Requests != 3 || cn.BytesReceived != meta.Size || cn.BytesSent != 0 ||
		cn.TokenRefreshes != 0 || cn.ResumedFrom != 0 || cn.Elapsed <= 0 || cn.TransferID == 0 {
		t.Errorf("counters %+v: want 2 retries, 3 requests, %d bytes received", cn, meta.Size)
	}
}

// A failed transfer's counters are on its *Error, and its end is a Warn
// event with the errcode.
func TestEventsAndCountersOfAFailure(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c, log := newClientEvents(t, e, nil)
	meta := e.AddMedia(t, mediaSpec{Filename: "f.bin", Size: 1000, Seed: 41})
	e.Fault(t, fault{Kind: "http_status", Status: 503, MediaID: meta.MediaID, Count: 10})
	_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
	we := wantCode(t, err, wxmedia.CodeHTTPStatus)
	if we.Counters == nil {
		t.Fatal("the error has no Counters")
	}
	if cn := *we.Counters; cn.Requests != 4 || cn.Retries != 3 || cn.BytesReceived != 0 || cn.TransferID == 0 {
		t.Errorf("counters %+v: want 4 requests, 3 retries (MaxAttempts 4)", cn)
	}
	fin := log.of(wxmedia.EventTransferFinished)
	if len(fin) != 1 || fin[0].Errcode != wxmedia.CodeHTTPStatus || fin[0].Level != slog.LevelWarn ||
		fin[0].TransferID != we.Counters.TransferID {
		t.Errorf("transfer_finished %+v: want one, errcode %d, Warn", fin, wxmedia.CodeHTTPStatus)
	}

	// An error before the transfer ran has none.
	_, err = c.Download(context.Background(), "", io.Discard)
	if we := wantCode(t, err, wxmedia.CodeInvalidArg); we.Counters != nil {
		t.Errorf("an invalid argument has Counters %+v", we.Counters)
	}
}

func TestEventsTokenRefreshed(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c, log := newClientEvents(t, e, func(cfg *wxmedia.Config) {
		cfg.AccessToken = ""
		cfg.CorpID, cfg.Secret = testCorpID, testSecret
		cfg.ChunkSize = 64 << 10
	})
	meta := e.AddMedia(t, mediaSpec{Filename: "t.bin", Size: 300_000, Seed: 42})
	// The token the client fetched expires in the middle of a chunk.
	e.Fault(t, fault{Kind: "token_expire", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](30_000)})
	info := checkDownload(t, c, meta)

	fetched, refreshed := log.of(wxmedia.EventTokenFetched), log.of(wxmedia.EventTokenRefreshed)
	if len(fetched) != 1 || fetched[0].TokenSource != wxmedia.TokenSourceCredentials || fetched[0].Level != slog.LevelInfo {
		t.Errorf("token_fetched %+v: want one, from credentials, Info", fetched)
	}
	if len(refreshed) != 1 || refreshed[0].TokenSource != wxmedia.TokenSourceCredentials ||
		refreshed[0].TransferID != info.Counters.TransferID || refreshed[0].Level != slog.LevelInfo {
		t.Errorf("token_refreshed %+v: want one, from credentials, in transfer %d", refreshed, info.Counters.TransferID)
	}
	if info.Counters.TokenRefreshes < 1 {
		t.Errorf("counters %+v: want a token refresh", info.Counters)
	}
	if e.Stats(t).TokenFetches != 2 {
		t.Errorf("%d token fetches, want 2", e.Stats(t).TokenFetches)
	}
}

func TestEventsResumeDecided(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	const chunk = 64 << 10
	c, log := newClientEvents(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = chunk })
	meta, path, err := downloadCancelledAfterFourChunks(t, e, c, chunk, 43)
	we := wantCode(t, err, wxmedia.CodeCancelled)
	if we.Counters == nil || we.Counters.BytesReceived < 4*chunk || we.Counters.ResumedFrom != 0 {
		t.Errorf("the cancelled run's counters %+v: want >= %d bytes received, no resume", we.Counters, 4*chunk)
	}
	if n := len(log.of(wxmedia.EventResumeDecided)); n != 0 {
		t.Errorf("the first run reported %d resumes", n)
	}

	e.Reset(t)
	info, err := c.DownloadFile(context.Background(), meta.MediaID, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileSHA256(t, path); got != meta.SHA256 {
		t.Fatalf("sha256 %s, want %s", got, meta.SHA256)
	}
	resumes := log.of(wxmedia.EventResumeDecided)
	if len(resumes) != 1 {
		t.Fatalf("%d resume_decided events, want 1: %s", len(resumes), kinds(log.all()))
	}
	r := resumes[0]
	if r.ResumeOffset <= 0 || r.ResumeVerified <= 0 || r.ResumeVerified > r.ResumeOffset ||
		r.TransferID != info.Counters.TransferID || r.Level != slog.LevelInfo {
		t.Errorf("resume_decided %+v: want an offset > 0 verified by the bytes before it, Info", r)
	}
	if info.Counters.ResumedFrom != r.ResumeOffset || info.Counters.ResumedFrom <= 0 {
		t.Errorf("counters %+v: ResumedFrom, want %d", info.Counters, r.ResumeOffset)
	}
	if n := len(log.of(wxmedia.EventResumeCheckFailed)); n != 0 {
		t.Errorf("%d resume checks failed", n)
	}
}

// slogRecorder is a slog.Handler that keeps each record, and counts the
// Enabled questions for the Debug level.
type slogRecorder struct {
	level slog.Level

	mu           sync.Mutex
	records      []slog.Record
	debugAsked   int
	debugHandled int
}

func (h *slogRecorder) Enabled(_ context.Context, l slog.Level) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l == slog.LevelDebug {
		h.debugAsked++
	}
	return l >= h.level
}

func (h *slogRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level == slog.LevelDebug {
		h.debugHandled++
	}
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *slogRecorder) debugCounts() (asked, handled int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.debugAsked, h.debugHandled
}

func (h *slogRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *slogRecorder) WithGroup(string) slog.Handler      { return h }

// find returns the attributes of each record of an event kind, with its
// level.
func (h *slogRecorder) find(kind string) (levels []slog.Level, attrs []map[string]slog.Value) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		m := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		if m["kind"].String() == kind {
			levels, attrs = append(levels, r.Level), append(attrs, m)
		}
	}
	return levels, attrs
}

func TestEventsSlog(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "s.bin", Size: 100_000, Seed: 44})
	rec := &slogRecorder{level: slog.LevelDebug}
	var out bytes.Buffer
	jh := slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})
	for _, h := range []slog.Handler{rec, jh} {
		c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.Logger = slog.New(h); cfg.ChunkSize = 64 << 10 })
		e.Fault(t, fault{Kind: "http_status", Status: 503, MediaID: meta.MediaID})
		checkDownload(t, c, meta)
	}

	type want struct {
		key  string
		kind slog.Kind
	}
	for _, tc := range []struct {
		kind  string
		level slog.Level
		n     int
		attrs []want
	}{
		{"transfer_started", slog.LevelInfo, 1, []want{{"transfer_id", slog.KindUint64}}},
		{"request_started", slog.LevelDebug, 3, []want{{"endpoint", slog.KindString}, {"range_start", slog.KindInt64},
			{"range_end", slog.KindInt64}, {"attempt", slog.KindInt64}}},
		{"request_finished", slog.LevelDebug, 3, []want{{"http_status", slog.KindInt64}, {"errcode", slog.KindInt64},
			{"duration", slog.KindDuration}}},
		{"retry_scheduled", slog.LevelWarn, 1, []want{{"attempt", slog.KindInt64}, {"retry_reason", slog.KindInt64},
			{"backoff", slog.KindDuration}}},
		{"transfer_finished", slog.LevelInfo, 1, []want{{"errcode", slog.KindInt64}, {"bytes", slog.KindInt64},
			{"duration", slog.KindDuration}}},
	} {
		levels, attrs := rec.find(tc.kind)
		if len(levels) != tc.n {
			t.Errorf("%d %s records, want %d", len(levels), tc.kind, tc.n)
			continue
		}
		for i := range levels {
			if levels[i] != tc.level {
				t.Errorf("%s at %v, want %v", tc.kind, levels[i], tc.level)
			}
			for _, w := range tc.attrs {
				if v, ok := attrs[i][w.key]; !ok || v.Kind() != w.kind {
					t.Errorf("%s: attribute %q is %v (%v), want a %v", tc.kind, w.key, v, v.Kind(), w.kind)
				}
			}
		}
	}
	_, retry := rec.find("retry_scheduled")
	if len(retry) == 1 && (retry[0]["attempt"].Int64() != 2 || retry[0]["retry_reason"].Int64() != int64(wxmedia.CodeHTTPStatus)) {
		t.Errorf("retry_scheduled attributes %v", retry[0])
	}
	_, finished := rec.find("request_finished")
	if len(finished) == 3 && (finished[0]["http_status"].Int64() != 503 || finished[1]["bytes"].Int64() != 64<<10) {
		t.Errorf("request_finished attributes %v", finished)
	}

	// The JSON handler writes the same records, numbers as numbers, and no
	// secret.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 9 {
		t.Errorf("%d JSON records, want 9:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if r["kind"] == "request_finished" {
			if _, ok := r["http_status"].(float64); !ok {
				t.Errorf("http_status is not a number: %s", line)
			}
		}
		for _, s := range secretMarkers {
			if strings.Contains(line, s) {
				t.Errorf("a log record leaks a secret: %s", line)
			}
		}
	}
}

// The library is asked only for the levels the Logger takes: an Info
// logger sees no Debug event, and is not even asked about one after
// NewClient; a Logger above Error (or none) installs no handler.
func TestEventsMinLevelFromLogger(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "m.bin", Size: 100_000, Seed: 45})
	rec := &slogRecorder{level: slog.LevelInfo}
	cfg := wxmedia.Config{BaseURL: e.BaseURL, AccessToken: testToken, ChunkSize: 32 << 10, Logger: slog.New(rec)}
	c, err := wxmedia.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	asked, _ := rec.debugCounts()
	checkDownload(t, c, meta)
	if nowAsked, handled := rec.debugCounts(); nowAsked != asked || handled != 0 {
		t.Errorf("Debug asked %d times during the download, %d handled: the library built Debug events",
			nowAsked-asked, handled)
	}
	if levels, _ := rec.find("transfer_finished"); len(levels) != 1 {
		t.Errorf("%d transfer_finished records, want 1", len(levels))
	}
	if !wxmedia.EventsInstalled(c) {
		t.Error("no handler for an Info logger")
	}

	for name, cfg := range map[string]wxmedia.Config{
		"nil logger":      {BaseURL: e.BaseURL, AccessToken: testToken},
		"logger above it": {BaseURL: e.BaseURL, AccessToken: testToken, Logger: slog.New(&slogRecorder{level: slog.LevelError + 1})},
	} {
		c, err := wxmedia.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if wxmedia.EventsInstalled(c) {
			t.Errorf("%s: an event handler was installed", name)
		}
		checkDownload(t, c, meta)
		c.Close()
	}
}

func TestEventsOnEventPanics(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 300_000, Seed: 46})
	rec := &slogRecorder{level: slog.LevelError}
	var calls sync.Map
	c, log := newClientEvents(t, e, func(cfg *wxmedia.Config) {
		// Parallel: events also come on the library's worker threads.
		cfg.ChunkSize, cfg.Parallelism = 32<<10, 4
		cfg.Logger = slog.New(rec)
		cfg.OnEvent = func(ev wxmedia.Event) {
			calls.Store(ev.Kind, true)
			panic(fmt.Sprintf("OnEvent panic (test) at %s", ev.Kind))
		}
	})
	e.Fault(t, fault{Kind: "reset", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](1000)})
	info := checkDownload(t, c, meta)
	if info.Counters.Retries != 1 {
		t.Errorf("counters %+v: want the retry", info.Counters)
	}
	n := len(log.all())
	if n < 3 {
		t.Fatalf("%d events", n)
	}
	rec.mu.Lock()
	panics := 0
	for _, r := range rec.records {
		if strings.Contains(r.Message, "Config.OnEvent panicked") {
			panics++
		}
	}
	rec.mu.Unlock()
	if panics != n {
		t.Errorf("%d panics logged for %d events", panics, n)
	}
	if _, ok := calls.Load(wxmedia.EventRetryScheduled); !ok {
		t.Error("OnEvent never saw the retry")
	}
}

// The library releases the event sink's handle (its free_fn, once) when
// the Client and its transfers are gone, and at once when NewClient fails.
func TestEventHandlerReleased(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "h.bin", Size: 200_000, Seed: 47})
	for round := 0; round < 3; round++ {
		cfg := wxmedia.Config{BaseURL: e.BaseURL, AccessToken: testToken, ChunkSize: 32 << 10, Parallelism: 2}
		log := recordEvents(t, &cfg)
		c, err := wxmedia.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !wxmedia.EventsInstalled(c) || wxmedia.EventsReleased(c) {
			t.Fatal("no handler, or released before Close")
		}
		checkDownload(t, c, meta)
		if len(log.of(wxmedia.EventTransferFinished)) != 1 {
			t.Fatalf("round %d: events %s", round, kinds(log.all()))
		}
		closeDuringDownloads(t, c, meta.MediaID, 3)
		if !wxmedia.EventsReleased(c) {
			t.Fatalf("round %d: not released once Close and the transfers are done", round)
		}
	}

	collected := make(chan struct{})
	func() {
		canary := new(int)
		runtime.SetFinalizer(canary, func(*int) { close(collected) })
		onEvent := func(wxmedia.Event) { _ = canary }
		if _, err := wxmedia.NewClient(wxmedia.Config{BaseURL: e.BaseURL, OnEvent: onEvent, CAFile: "/nonexistent/ca.pem"}); err == nil {
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
			t.Fatal("the OnEvent of a failed NewClient was never released")
		}
	}
}

func TestEventsUploadCounters(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c, log := newClientEvents(t, e, nil)
	const size = 2 << 20 // over 1 MiB: Expect: 100-continue
	path, _ := writeSample(t, t.TempDir(), "c.pdf", size, 48)
	e.Fault(t, fault{Kind: "http_status", Endpoint: "media/upload", Status: 503})
	res, err := c.UploadFile(context.Background(), wxmedia.TypeFile, path)
	if err != nil {
		t.Fatal(err)
	}
	if cn := res.Counters; cn.Requests != 2 || cn.Retries != 1 || cn.BytesSent < size || cn.TransferID == 0 || cn.Elapsed <= 0 {
		t.Errorf("counters %+v: want 2 requests, 1 retry, >= %d bytes sent", cn, size)
	}
	fin := log.of(wxmedia.EventRequestFinished)
	if len(fin) != 2 || fin[1].HTTPStatus != 200 || fin[1].Bytes != size || fin[1].ExpectContinue == wxmedia.ContinueNotAsked ||
		fin[1].Endpoint != "cgi-bin/media/upload" || fin[1].Method != "POST" {
		t.Errorf("request_finished %+v: want the second sent %d bytes with 100-continue", fin, size)
	}
}

func TestEventKindNames(t *testing.T) {
	seen := map[string]bool{}
	for k := wxmedia.EventTransferStarted; k <= wxmedia.EventFallback; k++ {
		s := k.String()
		if seen[s] || strings.HasPrefix(s, "EventKind(") || s != strings.ToLower(s) {
			t.Errorf("kind %d: name %q", int(k), s)
		}
		seen[s] = true
	}
	if s := wxmedia.EventKind(99).String(); s != "EventKind(99)" {
		t.Errorf("unknown kind: %q", s)
	}
}
