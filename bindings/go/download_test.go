package wxmedia_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

// newClient returns a Client for the emulator with short timeouts and quick
// retries; mod adjusts the Config first. Its events are checked for
// secrets when the test ends (recordEvents).
func newClient(t testing.TB, e *emulator, mod func(*wxmedia.Config)) *wxmedia.Client {
	t.Helper()
	c, _ := newClientEvents(t, e, mod)
	return c
}

// newClientEvents is newClient, also returning the log of the Client's events.
func newClientEvents(t testing.TB, e *emulator, mod func(*wxmedia.Config)) (*wxmedia.Client, *eventLog) {
	t.Helper()
	cfg := wxmedia.Config{
		Platform:       e.platform,
		BaseURL:        e.BaseURL,
		AccessToken:    testToken,
		ConnectTimeout: 2 * time.Second,
		IOTimeout:      5 * time.Second,
		MaxAttempts:    4,
		Backoff:        10 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	log := recordEvents(t, &cfg)
	c, err := wxmedia.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, log
}

// wantCode checks that err is an *Error with code, a message, and no secret.
// downloadCancelledAfterFourChunks adds a media of 20 chunks (seed picks its
// bytes) and downloads it to a fresh path, cancelling once four chunks are on
// disk while the fifth stalls. A fault acts on one response (AfterBytes
// counts its own bytes) and the first queued one that matches is taken: the
// first four requests take a stall of 1 ms, the fifth the long one. The
// cancel comes from the progress callback, which the library calls at least
// every 10 ms while bytes flow and every 100 ms while they do not.
func downloadCancelledAfterFourChunks(t testing.TB, e *emulator, c *wxmedia.Client, chunk int64, seed uint64) (mediaMeta, string, error) {
	t.Helper()
	meta := e.AddMedia(t, mediaSpec{Filename: "big.bin", Size: 20 * chunk, Seed: seed})
	e.Fault(t, fault{Kind: "stall", MediaID: meta.MediaID, Count: 4, AfterBytes: emutest.Ptr[int64](0), Ms: 1})
	e.Fault(t, fault{Kind: "stall", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](100), Ms: 20000})
	path := filepath.Join(t.TempDir(), "big.bin")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := c.DownloadFile(ctx, meta.MediaID, path, wxmedia.WithProgress(func(done, _ int64) {
		if done >= 4*chunk {
			cancel()
		}
	}))
	return meta, path, err
}

// closeDuringDownloads starts n downloads of mediaID and closes c while they
// run: some start after Close, and those fail with CodeState.
func closeDuringDownloads(t testing.TB, c *wxmedia.Client, mediaID string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Download(context.Background(), mediaID, io.Discard); err != nil {
				var we *wxmedia.Error
				if !errors.As(err, &we) || we.Code != wxmedia.CodeState {
					t.Errorf("download: %v", err)
				}
			}
		}()
	}
	c.Close()
	wg.Wait()
}

func wantCode(t testing.TB, err error, code wxmedia.Code) *wxmedia.Error {
	t.Helper()
	var e *wxmedia.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *wxmedia.Error with code %d", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("err = %v: code %d, want %d", err, e.Code, code)
	}
	if e.Message == "" {
		t.Errorf("err %d has no message", e.Code)
	}
	if !errors.Is(err, &wxmedia.Error{Code: code}) || !errors.Is(err, code) {
		t.Errorf("errors.Is(err, &Error{Code: %d}) or errors.Is(err, Code(%d)) = false", code, code)
	}
	wantIs(t, err, code)
	noSecrets(t, err)
	return e
}

func noSecrets(t testing.TB, err error) {
	t.Helper()
	for _, s := range []string{testToken, testSecret} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error message leaks a secret: %q", err.Error())
		}
	}
}

type hashWriter struct {
	h hash.Hash
	n int64
}

func newHashWriter() *hashWriter { return &hashWriter{h: sha256.New()} }

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

func (w *hashWriter) sum() string { return hex.EncodeToString(w.h.Sum(nil)) }

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// download fetches id into a hash and checks it against meta.
func checkDownload(t testing.TB, c *wxmedia.Client, meta mediaMeta, opts ...wxmedia.DownloadOption) *wxmedia.MediaInfo {
	t.Helper()
	w := newHashWriter()
	info, err := c.Download(context.Background(), meta.MediaID, w, opts...)
	if err != nil {
		t.Fatalf("Download(%s): %v", meta.MediaID, err)
	}
	if w.n != meta.Size || w.sum() != meta.SHA256 {
		t.Fatalf("Download(%s): %d bytes sha256 %s, want %d bytes %s", meta.MediaID, w.n, w.sum(), meta.Size, meta.SHA256)
	}
	if info.Size != meta.Size || info.MediaID != meta.MediaID {
		t.Errorf("MediaInfo %+v, want size %d", info, meta.Size)
	}
	return info
}

// checkAligned checks the ranges one download asked for: 16-byte aligned
// starts, at most chunk bytes each, and (when lengths16) lengths that are
// multiples of 16 except for the one reaching the end.
func checkAligned(t testing.TB, ranges []rangeRecord, size, chunk int64, lengths16 bool) {
	t.Helper()
	if len(ranges) == 0 {
		t.Fatal("the emulator saw no request")
	}
	for _, r := range ranges {
		if r.Start == nil || r.End == nil {
			t.Errorf("a request without Range: %+v", r)
			continue
		}
		start, end := *r.Start, *r.End
		n := end - start + 1
		if start%16 != 0 || n <= 0 || n > chunk {
			t.Errorf("range %d-%d: want a 16-aligned start and 1..%d bytes", start, end, chunk)
		}
		if lengths16 && n%16 != 0 && end+1 != size {
			t.Errorf("range %d-%d: length %d is not a multiple of 16 and not the last chunk", start, end, n)
		}
	}
}

func TestDownloadToWriter(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	const chunk = 256 << 10
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = chunk })
	meta := e.AddMedia(t, mediaSpec{Filename: "plain.bin", ContentType: "application/octet-stream", Size: 1_000_003, Seed: 1})
	info := checkDownload(t, c, meta)
	if info.Filename != "plain.bin" || info.ContentType != "application/octet-stream" || info.VideoURL != "" {
		t.Errorf("MediaInfo = %+v", info)
	}
	ranges := e.Stats(t).RangesOf(meta.MediaID)
	checkAligned(t, ranges, meta.Size, chunk, false)
	if want := (meta.Size + chunk - 1) / chunk; int64(len(ranges)) != want {
		t.Errorf("%d requests, want %d", len(ranges), want)
	}
}

func TestDownloadSmallAndEmptyWrites(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	for _, size := range []int64{6, 16, 17} {
		meta := e.AddMedia(t, mediaSpec{Filename: fmt.Sprintf("s%d.bin", size), Size: size, Seed: uint64(size)})
		checkDownload(t, c, meta)
	}
}

func TestDownloadFile(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 64 << 10; cfg.Parallelism = 3 })
	meta := e.AddMedia(t, mediaSpec{Filename: "report.pdf", ContentType: "application/pdf", Size: 700_001, Seed: 2})
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pdf")
	var last, total int64
	info, err := c.DownloadFile(context.Background(), meta.MediaID, path, wxmedia.WithProgress(func(done, tot int64) {
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		last, total = done, tot
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := fileSHA256(t, path); got != meta.SHA256 {
		t.Errorf("file sha256 %s, want %s", got, meta.SHA256)
	}
	if info.Filename != "report.pdf" || info.Size != meta.Size {
		t.Errorf("MediaInfo = %+v", info)
	}
	if last != meta.Size || total != meta.Size {
		t.Errorf("last progress %d/%d, want %d/%d", last, total, meta.Size, meta.Size)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the file", len(entries))
	}
}

func TestDownloadFileKeepsExistingFileOnFailure(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 64 << 10; cfg.MaxAttempts = 2 })
	path := filepath.Join(t.TempDir(), "keep.txt")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.DownloadFile(context.Background(), "no-such-media", path)
	wantCode(t, err, wxmedia.CodeInvalidMediaID)

	meta := e.AddMedia(t, mediaSpec{Filename: "x.bin", Size: 300_000, Seed: 3})
	// A reset before the first byte, every time: no progress, so it gives up
	// after MaxAttempts.
	e.Fault(t, fault{Kind: "reset", MediaID: meta.MediaID, Count: 100, AfterBytes: emutest.Ptr[int64](0)})
	_, err = c.DownloadFile(context.Background(), meta.MediaID, path)
	wantCode(t, err, wxmedia.CodeNetwork)
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("the existing file now holds %q", b)
	}
}

func TestDownloadFileResumesAfterCancel(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	const chunk = 64 << 10
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = chunk; cfg.Parallelism = 1 })
	meta, path, err := downloadCancelledAfterFourChunks(t, e, c, chunk, 4)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	wantCode(t, err, wxmedia.CodeCancelled)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the interrupted download created %s (%v)", path, err)
	}

	e.Reset(t)
	if _, err := c.DownloadFile(context.Background(), meta.MediaID, path); err != nil {
		t.Fatal(err)
	}
	if got := fileSHA256(t, path); got != meta.SHA256 {
		t.Fatalf("sha256 %s, want %s", got, meta.SHA256)
	}
	// It resumes, first fetching again the 64 KiB before what was kept (the
	// overlap that proves the kept prefix).
	const overlap = 64 << 10
	ranges := e.Stats(t).RangesOf(meta.MediaID)
	if len(ranges) == 0 || ranges[0].Start == nil || *ranges[0].Start < 4*chunk-overlap {
		t.Errorf("the second run did not resume: its ranges are %+v", ranges)
	}
}

func TestDownloadChineseFilename(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	const name = "季度报告 2024（终版）.xlsx"
	meta := e.AddMedia(t, mediaSpec{Filename: name, Size: 4096, Seed: 5})
	if info := checkDownload(t, c, meta); info.Filename != name {
		t.Errorf("Filename = %q, want %q", info.Filename, name)
	}
	path := filepath.Join(t.TempDir(), "下载", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	info, err := c.DownloadFile(context.Background(), meta.MediaID, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Filename != name || fileSHA256(t, path) != meta.SHA256 {
		t.Errorf("DownloadFile to a Chinese path: %+v", info)
	}
}

func TestDownloadVideoURLOfficial(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformOfficial)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 64 << 10 })
	meta := e.AddMedia(t, mediaSpec{Filename: "clip.mp4", ContentType: "video/mp4", Size: 300_017, Seed: 6, Video: true, Kind: "video"})
	info := checkDownload(t, c, meta)
	want := e.BaseURL + "/__video/" + meta.MediaID
	if info.VideoURL != want {
		t.Errorf("VideoURL = %q, want %q", info.VideoURL, want)
	}
	s := e.Stats(t)
	if s.Requests["media/get"] < 1 || s.Requests["video"] < 1 {
		t.Errorf("requests %v: want media/get and then the video URL", s.Requests)
	}
}

func TestDownloadEncryptedMedia(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	const chunk = 64 << 10
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = chunk; cfg.Parallelism = 2 })
	meta := e.AddMedia(t, mediaSpec{Filename: "secret.bin", Size: 5*chunk + 7, Seed: 7, Encrypted: true})
	checkDownload(t, c, meta)
	checkAligned(t, e.Stats(t).RangesOf(meta.MediaID), meta.Size, chunk, true)

	// A resume offset that is not aligned is fetched from the aligned floor.
	e.Reset(t)
	var buf bytes.Buffer
	const start = 100_003
	if _, err := c.Download(context.Background(), meta.MediaID, &buf, wxmedia.WithStart(start)); err != nil {
		t.Fatal(err)
	}
	if want := emutest.GenBytes(7, start, meta.Size-start); !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("WithStart(%d): got %d bytes, want %d (content differs: %v)", start, buf.Len(), len(want), buf.Len() == len(want))
	}
	ranges := e.Stats(t).RangesOf(meta.MediaID)
	checkAligned(t, ranges, meta.Size, chunk, true)
	if *ranges[0].Start != start/16*16 {
		t.Errorf("first range starts at %d, want %d", *ranges[0].Start, start/16*16)
	}
}

func TestDownloadWithStart(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 4096 })
	meta := e.AddMedia(t, mediaSpec{Filename: "r.bin", Size: 10_000, Seed: 8})
	for _, start := range []int64{0, 1, 15, 16, 4097, 9_999} {
		var buf bytes.Buffer
		if _, err := c.Download(context.Background(), meta.MediaID, &buf, wxmedia.WithStart(start)); err != nil {
			t.Fatalf("WithStart(%d): %v", start, err)
		}
		if !bytes.Equal(buf.Bytes(), emutest.GenBytes(8, start, meta.Size-start)) {
			t.Errorf("WithStart(%d): wrong bytes (%d of them)", start, buf.Len())
		}
	}
	_, err := c.Download(context.Background(), meta.MediaID, io.Discard, wxmedia.WithStart(-1))
	wantCode(t, err, wxmedia.CodeInvalidArg)
	_, err = c.DownloadFile(context.Background(), meta.MediaID, filepath.Join(t.TempDir(), "f"), wxmedia.WithStart(5))
	wantCode(t, err, wxmedia.CodeInvalidArg)
}

func TestDownloadHDVoice(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	meta := e.AddMedia(t, mediaSpec{Filename: "v.amr", Size: 5000, Seed: 30, Kind: "voice"})
	info := checkDownload(t, c, meta, wxmedia.WithHDVoice())
	if info.ContentType != "voice/speex" {
		t.Errorf("ContentType = %q, want voice/speex", info.ContentType)
	}
	if s := e.Stats(t); s.Requests["media/get/jssdk"] != 1 || s.Requests["media/get"] != 0 {
		t.Errorf("requests %v: want one media/get/jssdk", s.Requests)
	}
}

func TestDownloadOver20MiB(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "huge.bin", Size: 20<<20 + 4099, Seed: 9})
	// Sequentially: exactly two chunks, the default 20 MiB and the rest.
	c := newClient(t, e, nil)
	checkDownload(t, c, meta)
	ranges := e.Stats(t).RangesOf(meta.MediaID)
	checkAligned(t, ranges, meta.Size, 20<<20, false)
	if len(ranges) != 2 {
		t.Errorf("%d requests, want 2 chunks of at most 20 MiB: %+v", len(ranges), ranges)
	}
	// In parallel the library picks smaller chunks, never over 20 MiB.
	meta2 := e.AddMedia(t, mediaSpec{Filename: "huge2.bin", Size: 20<<20 + 4099, Seed: 19})
	cp := newClient(t, e, func(cfg *wxmedia.Config) { cfg.Parallelism = 2 })
	checkDownload(t, cp, meta2)
	checkAligned(t, e.Stats(t).RangesOf(meta2.MediaID), meta2.Size, 20<<20, false)
}

func TestDownloadProgress(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 16 << 10; cfg.Parallelism = 2 })
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 100_000, Seed: 10})
	var calls int
	var last int64
	checkDownload(t, c, meta, wxmedia.WithProgress(func(done, total int64) {
		calls++
		if done < last || total != 0 && total != meta.Size || done > meta.Size {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}))
	if calls < 2 || last != meta.Size {
		t.Errorf("%d progress calls ending at %d, want several ending at %d", calls, last, meta.Size)
	}
}

func TestDownloadErrcodes(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	_, err := c.Download(context.Background(), "no-such-media", io.Discard)
	wantCode(t, err, wxmedia.CodeInvalidMediaID)

	// A final errcode is not retried.
	meta := e.AddMedia(t, mediaSpec{Filename: "e.bin", Size: 1000, Seed: 11})
	e.Fault(t, fault{Kind: "errcode", MediaID: meta.MediaID, Errcode: emutest.Ptr[int64](48002)})
	_, err = c.Download(context.Background(), meta.MediaID, io.Discard)
	wantCode(t, err, 48002)
	if n := e.Stats(t).MediaRequests[meta.MediaID]; n != 1 {
		t.Errorf("%d requests for a final errcode, want 1", n)
	}

	// 830002 (a media that must be fetched in smaller Range chunks) is
	// final for a chunk the library already keeps within 20 MiB.
	e.Fault(t, fault{Kind: "errcode", MediaID: meta.MediaID, Errcode: emutest.Ptr[int64](830002)})
	_, err = c.Download(context.Background(), meta.MediaID, io.Discard)
	wantCode(t, err, wxmedia.CodeRangeRequired)

	// Over 20 MiB without Range: the library never asks for that, so a
	// chunk size of 20 MiB + 16 is refused up front.
	_, err = wxmedia.NewClient(wxmedia.Config{BaseURL: e.BaseURL, AccessToken: testToken, ChunkSize: 20<<20 + 16})
	wantCode(t, err, wxmedia.CodeInvalidArg)
}

func TestDownloadFaultsRecovered(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	const chunk = 64 << 10
	c := newClient(t, e, func(cfg *wxmedia.Config) {
		cfg.ChunkSize = chunk
		cfg.IOTimeout = 400 * time.Millisecond
	})
	cases := []fault{
		{Kind: "reset", AfterBytes: emutest.Ptr[int64](1000)},
		{Kind: "reset", AfterBytes: emutest.Ptr[int64](chunk + 5000)},
		{Kind: "stall", AfterBytes: emutest.Ptr[int64](2000), Ms: 3000},
		{Kind: "slow_headers", Ms: 3000},
		{Kind: "errcode", Errcode: emutest.Ptr[int64](-1), Count: 2},
		{Kind: "http_status", Status: 500},
		{Kind: "http_status", Status: 502},
		{Kind: "http_status", Status: 503, Count: 2},
		{Kind: "short_body"},
		{Kind: "short_body", AfterBytes: emutest.Ptr[int64](10)},
		{Kind: "ignore_range"},
	}
	for i, f := range cases {
		t.Run(fmt.Sprintf("%s_%d", f.Kind, i), func(t *testing.T) {
			meta := e.AddMedia(t, mediaSpec{Filename: "f.bin", Size: 3*chunk + 99, Seed: uint64(100 + i)})
			f.MediaID = meta.MediaID
			before := e.Stats(t).FaultsFired
			e.Fault(t, f)
			checkDownload(t, c, meta)
			if fired := e.Stats(t).FaultsFired - before; fired < 1 {
				t.Errorf("the fault did not fire")
			}
		})
	}
}

func TestDownloadFaultsFinal(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	const chunk = 64 << 10
	const attempts = 3
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = chunk; cfg.MaxAttempts = attempts })
	cases := []struct {
		f    fault
		code wxmedia.Code
	}{
		{fault{Kind: "http_status", Status: 503}, wxmedia.CodeHTTPStatus},
		{fault{Kind: "errcode", Errcode: emutest.Ptr[int64](-1)}, wxmedia.CodeSystemBusy},
		// Faults before the first body byte: a try that makes progress
		// does not count against MaxAttempts.
		{fault{Kind: "reset", AfterBytes: emutest.Ptr[int64](0)}, wxmedia.CodeNetwork},
		{fault{Kind: "wrong_content_range"}, wxmedia.CodeProtocol},
	}
	for i, tc := range cases {
		t.Run(tc.f.Kind, func(t *testing.T) {
			meta := e.AddMedia(t, mediaSpec{Filename: "f.bin", Size: 2 * chunk, Seed: uint64(200 + i)})
			tc.f.MediaID, tc.f.Count = meta.MediaID, 100
			e.Fault(t, tc.f)
			var buf bytes.Buffer
			_, err := c.Download(context.Background(), meta.MediaID, &buf)
			wantCode(t, err, tc.code)
			// Whatever reached the writer is a true prefix of the media.
			if !bytes.Equal(buf.Bytes(), emutest.GenBytes(uint64(200+i), 0, int64(buf.Len()))) {
				t.Errorf("the writer received %d bytes that are not the media's", buf.Len())
			}
			if tc.code != wxmedia.CodeProtocol {
				if n := e.Stats(t).MediaRequests[meta.MediaID]; n != attempts {
					t.Errorf("%d requests, want MaxAttempts = %d", n, attempts)
				}
			}
		})
	}
}

func TestTokenRefreshWithCredentials(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	// Expiring every token also expires the static one the other tests use.
	t.Cleanup(func() { e.Post(t, "/__admin/tokens", map[string]any{"token": testToken}, nil) })
	c := newClient(t, e, func(cfg *wxmedia.Config) {
		cfg.AccessToken = ""
		cfg.CorpID, cfg.Secret = testCorpID, testSecret
		cfg.ChunkSize = 64 << 10
	})
	meta := e.AddMedia(t, mediaSpec{Filename: "t.bin", Size: 300_000, Seed: 12})
	checkDownload(t, c, meta)
	if n := e.Stats(t).TokenFetches; n != 1 {
		t.Errorf("%d token fetches, want 1", n)
	}
	checkDownload(t, c, meta)
	if n := e.Stats(t).TokenFetches; n != 1 {
		t.Errorf("%d token fetches after a second download, want 1 (cached)", n)
	}

	e.Post(t, "/__admin/expire_token", map[string]any{"all": true}, nil)
	checkDownload(t, c, meta)
	if n := e.Stats(t).TokenFetches; n != 2 {
		t.Errorf("%d token fetches after expiry, want 2", n)
	}

	// The token expires in the middle of a chunk's body.
	e.Fault(t, fault{Kind: "token_expire", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](30_000)})
	checkDownload(t, c, meta)
	if s := e.Stats(t); s.TokenFetches != 3 || s.FaultsFired != 1 {
		t.Errorf("%d token fetches and %d faults after a mid-transfer expiry, want 3 and 1", s.TokenFetches, s.FaultsFired)
	}
}

func TestOfficialCredentials(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformOfficial)
	c := newClient(t, e, func(cfg *wxmedia.Config) {
		cfg.AccessToken = ""
		cfg.CorpID, cfg.Secret = testCorpID, testSecret // appid/secret here
	})
	meta := e.AddMedia(t, mediaSpec{Filename: "oa.jpg", Size: 70_000, Seed: 18, Kind: "image"})
	checkDownload(t, c, meta)
	if s := e.Stats(t); s.TokenFetches != 1 || s.Requests["stable_token"] != 1 {
		t.Errorf("token fetches %d, requests %v: want one stable_token", s.TokenFetches, s.Requests)
	}
}

func TestOfficialClassicTokenAPI(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformOfficial)
	c := newClient(t, e, func(cfg *wxmedia.Config) {
		cfg.AccessToken = ""
		cfg.CorpID, cfg.Secret = testCorpID, testSecret
		cfg.TokenAPI = wxmedia.TokenAPIClassic
	})
	meta := e.AddMedia(t, mediaSpec{Filename: "oa.jpg", Size: 1000, Seed: 19, Kind: "image"})
	checkDownload(t, c, meta)
	if s := e.Stats(t); s.Requests["token"] != 1 || s.Requests["stable_token"] != 0 {
		t.Errorf("requests %v: want one cgi-bin/token", s.Requests)
	}
}

func TestTokenStoreUnreachable(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "r.bin", Size: 1000, Seed: 20})
	// Nothing listens on port 1: the transfer fails with ErrTokenStore,
	// quickly and without the password, unless fallback was chosen.
	store := func(fallback bool) func(cfg *wxmedia.Config) {
		return func(cfg *wxmedia.Config) {
			cfg.AccessToken = ""
			cfg.CorpID, cfg.Secret = testCorpID, testSecret
			cfg.TokenStore = "redis://:s3cret-pw@127.0.0.1:1/0"
			cfg.TokenStoreConnectTimeout = time.Second
			cfg.TokenStoreFallback = fallback
		}
	}
	strict := newClient(t, e, store(false))
	started := time.Now()
	_, err := strict.Download(context.Background(), meta.MediaID, io.Discard)
	wantCode(t, err, wxmedia.CodeTokenStore)
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret-pw") || !strings.Contains(msg, "redis://127.0.0.1:1/0") {
		t.Errorf("message %q", msg)
	}
	lenient := newClient(t, e, store(true))
	checkDownload(t, lenient, meta)
	if n, err := lenient.TokenStoreFallbacks(); err != nil || n != 1 {
		t.Errorf("TokenStoreFallbacks = %d, %v; want 1", n, err)
	}
	_, err = wxmedia.NewClient(wxmedia.Config{BaseURL: e.BaseURL, TokenStore: "http://not-redis"})
	wantCode(t, err, wxmedia.CodeInvalidArg)
}

func TestTokenErrors(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	meta := e.AddMedia(t, mediaSpec{Filename: "t.bin", Size: 1000, Seed: 13})

	noToken := newClient(t, e, func(cfg *wxmedia.Config) { cfg.AccessToken = "" })
	_, err := noToken.Download(context.Background(), meta.MediaID, io.Discard)
	wantCode(t, err, wxmedia.CodeNoToken)

	badSecret := newClient(t, e, func(cfg *wxmedia.Config) {
		cfg.AccessToken = ""
		cfg.CorpID, cfg.Secret = testCorpID, "wrong-"+testSecret
	})
	_, err = badSecret.Download(context.Background(), meta.MediaID, io.Discard)
	wantCode(t, err, wxmedia.CodeInvalidCredential)

	// A static token that expires answers 42001; the host rotates it.
	const rotating = "GoTestToken-rotating-1"
	e.Post(t, "/__admin/tokens", map[string]any{"token": rotating}, nil)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.AccessToken = rotating })
	checkDownload(t, c, meta)
	e.Post(t, "/__admin/expire_token", map[string]any{"token": rotating}, nil)
	_, err = c.Download(context.Background(), meta.MediaID, io.Discard)
	if e := wantCode(t, err, wxmedia.CodeAccessTokenExpired); strings.Contains(e.Error(), rotating) {
		t.Errorf("the error shows the token: %v", e)
	}
	if err := c.SetAccessToken(testToken); err != nil {
		t.Fatal(err)
	}
	checkDownload(t, c, meta)
}

func TestCancelDuringStall(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 64 << 10; cfg.IOTimeout = 60 * time.Second })
	meta := e.AddMedia(t, mediaSpec{Filename: "s.bin", Size: 200_000, Seed: 14})

	check := func(t *testing.T, err error, elapsed time.Duration, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("err = %v, want it to wrap %v", err, want)
		}
		wantCode(t, err, wxmedia.CodeCancelled)
		if elapsed > 3*time.Second {
			t.Errorf("returned %v after the cancel, want promptly", elapsed)
		}
	}
	t.Run("cancel", func(t *testing.T) {
		e.Fault(t, fault{Kind: "stall", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](10_000), Ms: 30_000})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Download(ctx, meta.MediaID, io.Discard)
		check(t, err, time.Since(start)-300*time.Millisecond, context.Canceled)
	})
	t.Run("deadline", func(t *testing.T) {
		e.Fault(t, fault{Kind: "stall", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](10_000), Ms: 30_000})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.DownloadFile(ctx, meta.MediaID, filepath.Join(t.TempDir(), "s.bin"))
		check(t, err, time.Since(start)-300*time.Millisecond, context.DeadlineExceeded)
	})
	t.Run("slow_headers_upload", func(t *testing.T) {
		e.Fault(t, fault{Kind: "slow_headers", Endpoint: "media/upload", Ms: 30_000})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Upload(ctx, wxmedia.TypeFile, strings.NewReader("hello, world"), 12, "hello.txt")
		check(t, err, time.Since(start)-300*time.Millisecond, context.Canceled)
	})
	t.Run("before_start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		before := e.Stats(t).MediaRequests[meta.MediaID]
		_, err := c.Download(ctx, meta.MediaID, io.Discard)
		check(t, err, 0, context.Canceled)
		if after := e.Stats(t).MediaRequests[meta.MediaID]; after != before {
			t.Errorf("a cancelled context still sent %d requests", after-before)
		}
	})
}

var errBoom = errors.New("disk full (test)")

type failingWriter struct {
	n, limit int64
	err      error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.limit {
		return 0, w.err
	}
	w.n += int64(len(p))
	return len(p), nil
}

func TestWriterErrorAbortsTransfer(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	const chunk = 64 << 10
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = chunk; cfg.Parallelism = 2 })
	meta := e.AddMedia(t, mediaSpec{Filename: "w.bin", Size: 64 * chunk, Seed: 15})
	_, err := c.Download(context.Background(), meta.MediaID, &failingWriter{limit: 3 * chunk, err: errBoom})
	if !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want it to wrap the writer's error", err)
	}
	wantCode(t, err, wxmedia.CodeAborted)
	if n := len(e.Stats(t).RangesOf(meta.MediaID)); n > 16 {
		t.Errorf("%d of 64 chunks were requested after the writer failed at the fourth", n)
	}

	// A writer that writes less without an error is a short write.
	_, err = c.Download(context.Background(), meta.MediaID, shortWriter{})
	if !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("err = %v, want io.ErrShortWrite", err)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("writer panic (test)") }

func TestCallbackPanicReachesCaller(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, nil)
	meta := e.AddMedia(t, mediaSpec{Filename: "p.bin", Size: 5000, Seed: 16})
	recovered := func(f func()) (v any) {
		defer func() { v = recover() }()
		f()
		return nil
	}
	if v := recovered(func() { c.Download(context.Background(), meta.MediaID, panicWriter{}) }); v != "writer panic (test)" {
		t.Errorf("recovered %v from a panicking writer", v)
	}
	if v := recovered(func() {
		c.Download(context.Background(), meta.MediaID, io.Discard, wxmedia.WithProgress(func(int64, int64) { panic(42) }))
	}); v != 42 {
		t.Errorf("recovered %v from a panicking progress func", v)
	}
	checkDownload(t, c, meta) // the Client is still fine
}

func TestSharedClientAcrossGoroutines(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 32 << 10; cfg.Parallelism = 2 })
	var metas []mediaMeta
	for i := 0; i < 8; i++ {
		metas = append(metas, e.AddMedia(t, mediaSpec{Filename: fmt.Sprintf("g%d.bin", i), Size: 150_000 + int64(i)*1111, Seed: uint64(300 + i)}))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(metas))
	for i, m := range metas {
		wg.Add(2)
		go func() {
			defer wg.Done()
			w := newHashWriter()
			if _, err := c.Download(context.Background(), m.MediaID, w); err != nil {
				errs <- err
			} else if w.sum() != m.SHA256 {
				errs <- fmt.Errorf("%s: wrong content", m.MediaID)
			}
		}()
		go func() {
			defer wg.Done()
			data := emutest.GenBytes(uint64(400+i), 0, 10_000)
			r, err := c.Upload(context.Background(), wxmedia.TypeFile, bytes.NewReader(data), int64(len(data)), fmt.Sprintf("u%d.txt", i))
			if err != nil {
				errs <- err
				return
			}
			sum := sha256.Sum256(data)
			if got := e.Media(t, r.MediaID); got.SHA256 != hex.EncodeToString(sum[:]) {
				errs <- fmt.Errorf("upload %d stored %+v", i, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClientClose(t *testing.T) {
	e := getEmulator(t, wxmedia.PlatformWeCom)
	c := newClient(t, e, func(cfg *wxmedia.Config) { cfg.ChunkSize = 64 << 10 })
	meta := e.AddMedia(t, mediaSpec{Filename: "c.bin", Size: 300_000, Seed: 17})
	// A transfer running when the Client is closed finishes normally.
	e.Fault(t, fault{Kind: "stall", MediaID: meta.MediaID, AfterBytes: emutest.Ptr[int64](1000), Ms: 500})
	done := make(chan error)
	started := make(chan struct{})
	var once sync.Once
	w := newHashWriter()
	go func() {
		_, err := c.Download(context.Background(), meta.MediaID, w, wxmedia.WithProgress(func(int64, int64) {
			once.Do(func() { close(started) })
		}))
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the download ended before any progress: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || w.sum() != meta.SHA256 {
		t.Errorf("the running download: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err := c.Download(context.Background(), meta.MediaID, io.Discard)
	wantCode(t, err, wxmedia.CodeState)
	_, err = c.Upload(context.Background(), wxmedia.TypeFile, strings.NewReader("hello!"), 6, "a.txt")
	wantCode(t, err, wxmedia.CodeState)
}
