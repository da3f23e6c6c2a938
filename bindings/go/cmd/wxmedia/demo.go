package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

// demo is the README's main job: upload a real file, download it back in
// aligned Range chunks over two connections, and check that the bytes are
// the same.
func demo(ctx context.Context, args []string) error {
	cf := clientFlags{cfg: wxmedia.Config{ChunkSize: 64 << 10, Parallelism: 2}}
	fs := newFlagSet("demo", "", &cf)
	size := fs.Int64("size", 3<<20+12345, "bytes in the file to upload")
	typ := fs.String("type", wxmedia.TypeFile, "upload type")
	fs.Parse(args)
	if fs.NArg() != 0 {
		fs.Usage()
		os.Exit(2)
	}
	if cf.cfg.BaseURL == "" {
		return fmt.Errorf("demo needs -base-url (or WXMEDIA_BASE_URL), e.g. the emulator's http://127.0.0.1:PORT")
	}
	c, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()

	dir, err := os.MkdirTemp("", "wxmedia-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "wxmedia-demo-演示.bin")
	want, err := makeFile(src, *size)
	if err != nil {
		return err
	}
	fmt.Printf("wxmedia %s demo against %s (%s)\n", wxmedia.Version(), cf.cfg.BaseURL, cf.cfg.Platform)
	fmt.Printf("  made      %s: %d bytes, sha256 %s\n", filepath.Base(src), *size, want[:16])

	t0 := time.Now()
	bar := newProgressBar("  upload  ", cf.quiet)
	res, err := c.UploadFile(ctx, *typ, src, wxmedia.WithProgress(bar.update))
	bar.finish(err)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	fmt.Printf("  uploaded  media_id %s (type %s, created_at %d) in %s\n",
		res.MediaID, res.Type, res.CreatedAt.Unix(), time.Since(t0).Round(time.Millisecond))

	dst := filepath.Join(dir, "downloaded.bin")
	t0 = time.Now()
	bar = newProgressBar("  download", cf.quiet)
	info, err := c.DownloadFile(ctx, res.MediaID, dst, wxmedia.WithProgress(bar.update))
	bar.finish(err)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	elapsed := time.Since(t0)
	chunks := (info.Size + cf.cfg.ChunkSize - 1) / cf.cfg.ChunkSize
	fmt.Printf("  downloaded %d bytes as %q in %s (%.1f MiB/s): %d chunks of %d KiB over %d connections\n",
		info.Size, info.Filename, elapsed.Round(time.Millisecond),
		float64(info.Size)/(1<<20)/max(elapsed.Seconds(), 1e-3), chunks, cf.cfg.ChunkSize>>10, cf.cfg.Parallelism)
	if seen, ok := emulatorRanges(cf.cfg.BaseURL, res.MediaID); ok {
		fmt.Printf("  emulator  saw %d Range requests for the media\n", seen)
	}

	got, err := fileSHA256(dst)
	if err != nil {
		return err
	}
	if got != want || info.Size != *size {
		return fmt.Errorf("MISMATCH: downloaded %d bytes sha256 %s, uploaded %d bytes sha256 %s", info.Size, got, *size, want)
	}
	fmt.Printf("  verified  sha256 %s matches: OK\n", got)
	return nil
}

// makeFile writes size random bytes to path and returns their sha256.
func makeFile(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		f.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// emulatorRanges asks a wxmedia-emulator's admin API how many Range requests
// it served for mediaID; ok is false for any other server.
func emulatorRanges(baseURL, mediaID string) (n int, ok bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(baseURL + "/__admin/stats")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var stats struct {
		Ranges []struct {
			MediaID string `json:"media_id"`
			Start   *int64 `json:"start"`
		} `json:"ranges"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&stats) != nil {
		return 0, false
	}
	for _, r := range stats.Ranges {
		if r.MediaID == mediaID && r.Start != nil {
			n++
		}
	}
	return n, true
}
