// Command demo is the README's main job through the Go package: it makes a
// random file, uploads it, downloads it back in aligned 64 KiB Range chunks
// over two connections, and checks the sha256. `make go-demo` runs it
// against a fresh emulator; `make go-static-check` checks that it links
// libwxmedia statically.
//
//	go run ./examples/demo -base-url http://127.0.0.1:PORT -token TOKEN
//
// The command line for users is the Rust `wxmedia` (crate cli/).
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	cfg := wxmedia.Config{ChunkSize: 64 << 10, Parallelism: 2}
	var platform string
	flag.StringVar(&cfg.BaseURL, "base-url", env("WXMEDIA_BASE_URL", ""), "API base URL, e.g. the emulator's http://127.0.0.1:PORT (env WXMEDIA_BASE_URL)")
	flag.StringVar(&platform, "platform", env("WXMEDIA_PLATFORM", "wecom"), "wecom, kf, official or miniprogram (env WXMEDIA_PLATFORM)")
	flag.StringVar(&cfg.AccessToken, "token", env("WXMEDIA_ACCESS_TOKEN", ""), "access_token (env WXMEDIA_ACCESS_TOKEN)")
	flag.StringVar(&cfg.CorpID, "corpid", env("WXMEDIA_CORPID", ""), "corpid or appid, to fetch tokens (env WXMEDIA_CORPID)")
	flag.StringVar(&cfg.Secret, "secret", env("WXMEDIA_SECRET", ""), "corpsecret or appsecret (env WXMEDIA_SECRET)")
	size := flag.Int64("size", 3<<20+12345, "bytes in the file to upload")
	typ := flag.String("type", wxmedia.TypeFile, "upload type")
	quiet := flag.Bool("q", false, "no progress bar")
	version := flag.Bool("version", false, "print the library version and exit")
	// Usage never shows secrets taken from the environment.
	flag.Lookup("token").DefValue = ""
	flag.Lookup("secret").DefValue = ""
	flag.Parse()
	if *version {
		fmt.Println("wxmedia", wxmedia.Version())
		return
	}
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := demo(ctx, cfg, platform, *size, *typ, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func demo(ctx context.Context, cfg wxmedia.Config, platform string, size int64, typ string, quiet bool) error {
	if cfg.BaseURL == "" {
		return fmt.Errorf("give -base-url (or WXMEDIA_BASE_URL), e.g. the emulator's http://127.0.0.1:PORT")
	}
	p, err := wxmedia.ParsePlatform(platform)
	if err != nil {
		return err
	}
	cfg.Platform = p
	c, err := wxmedia.NewClient(cfg)
	if err != nil {
		return err
	}
	defer c.Close()

	dir, err := os.MkdirTemp("", "wxmedia-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "wxmedia-demo-演示.bin")
	want, err := makeFile(src, size)
	if err != nil {
		return err
	}
	fmt.Printf("wxmedia %s demo against %s (%s)\n", wxmedia.Version(), cfg.BaseURL, cfg.Platform)
	fmt.Printf("  made      %s: %d bytes, sha256 %s\n", filepath.Base(src), size, want[:16])

	t0 := time.Now()
	bar := newProgressBar("  upload  ", quiet)
	res, err := c.UploadFile(ctx, typ, src, wxmedia.WithProgress(bar.update))
	bar.finish(err)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	fmt.Printf("  uploaded  media_id %s (type %s, created_at %d) in %s\n",
		res.MediaID, res.Type, res.CreatedAt.Unix(), time.Since(t0).Round(time.Millisecond))

	dst := filepath.Join(dir, "downloaded.bin")
	t0 = time.Now()
	bar = newProgressBar("  download", quiet)
	info, err := c.DownloadFile(ctx, res.MediaID, dst, wxmedia.WithProgress(bar.update))
	bar.finish(err)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	elapsed := time.Since(t0)
	chunks := (info.Size + cfg.ChunkSize - 1) / cfg.ChunkSize
	fmt.Printf("  downloaded %d bytes as %q in %s (%.1f MiB/s): %d chunks of %d KiB over %d connections\n",
		info.Size, info.Filename, elapsed.Round(time.Millisecond),
		float64(info.Size)/(1<<20)/max(elapsed.Seconds(), 1e-3), chunks, cfg.ChunkSize>>10, cfg.Parallelism)
	if seen, ok := emulatorRanges(cfg.BaseURL, res.MediaID); ok {
		fmt.Printf("  emulator  saw %d Range requests for the media\n", seen)
	}

	got, err := fileSHA256(dst)
	if err != nil {
		return err
	}
	if got != want || info.Size != size {
		return fmt.Errorf("MISMATCH: downloaded %d bytes sha256 %s, uploaded %d bytes sha256 %s", info.Size, got, size, want)
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
