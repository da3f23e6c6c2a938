package wxmedia_test

// Benchmarks against the emulator on loopback, the same transfers as the
// small, sink and path modes of bench/go (bench/README.md):
//
//	go test -run '^$' -bench . -benchtime 2000x
//
// b.N downloads run on one Client, one after another, like the benchmark
// drivers; ns/op is one download. The figures move with the machine's
// load: compare builds with alternating runs (benchstat over -count 10).

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

// counter discards what it is given and counts it (the sink mode).
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func benchMedia(b *testing.B, size int64, parallelism int) (*wxmedia.Client, string) {
	e := getEmulator(b, wxmedia.PlatformWeCom)
	c := newClient(b, e, func(cfg *wxmedia.Config) { cfg.Parallelism = parallelism })
	meta := e.AddMedia(b, mediaSpec{Filename: "bench.bin", Size: size, Seed: 7})
	b.SetBytes(size)
	b.ResetTimer()
	return c, meta.MediaID
}

// BenchmarkDownloadSmall: 100 KiB into a reused bytes.Buffer.
func BenchmarkDownloadSmall(b *testing.B) {
	c, id := benchMedia(b, 100<<10, 1)
	ctx := context.Background()
	var buf bytes.Buffer
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if _, err := c.Download(ctx, id, &buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownloadSink1M: 1 MiB into a writer that discards it.
func BenchmarkDownloadSink1M(b *testing.B) {
	c, id := benchMedia(b, 1<<20, 1)
	ctx := context.Background()
	var w counter
	for i := 0; i < b.N; i++ {
		if _, err := c.Download(ctx, id, &w); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownloadFile1M: 1 MiB with DownloadFile (temporary file, fsync,
// rename) in the test's temporary directory.
func BenchmarkDownloadFile1M(b *testing.B) {
	c, id := benchMedia(b, 1<<20, 1)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "out.bin")
	for i := 0; i < b.N; i++ {
		if _, err := c.DownloadFile(ctx, id, path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownloadSinkParallel: 64 MiB over 4 connections into a writer that
// discards it.
func BenchmarkDownloadSinkParallel(b *testing.B) {
	c, id := benchMedia(b, 64<<20, 4)
	ctx := context.Background()
	var w counter
	for i := 0; i < b.N; i++ {
		if _, err := c.Download(ctx, id, &w); err != nil {
			b.Fatal(err)
		}
	}
}
