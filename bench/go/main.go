// Command bench_wx_go (Go host): time one wxmedia transfer and print one line.
//
//	bench_wx_go -m MODE -b BASE_URL -k TOKEN [-i MEDIA_ID] [-o OUT] [-f FILE]
//	            [-p PARALLELISM] [-c CHUNK] [-n COUNT] [-t TYPE] [-a CAFILE]
//
// Same modes and output as bench/drivers/bench_wx.c (path, sink, upload, small):
//
//	BENCH ok=1 host=go mode=MODE bytes=N secs=S n=COUNT [media_id=ID]
//
// It uses only the public API of github.com/wxmedia/wxmedia/bindings/go
// (NewClient, DownloadFile, Download, UploadFile), linked statically as the
// bindings ship (make go-lib).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
)

// counter discards what it is given (the sink case) and counts it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func main() {
	mode := flag.String("m", "", "path|sink|upload|small")
	base := flag.String("b", "", "base URL")
	token := flag.String("k", "", "access token")
	media := flag.String("i", "", "media_id")
	out := flag.String("o", "", "output path (mode path)")
	file := flag.String("f", "", "file to upload (mode upload)")
	par := flag.Int("p", 0, "parallelism")
	chunk := flag.Int64("c", 0, "chunk size")
	count := flag.Int("n", 1, "transfers in one process")
	typ := flag.String("t", "file", "upload type")
	caFile := flag.String("a", "", "a PEM file of CAs to trust for https (the bench's test CA)")
	flag.Parse()
	if *mode == "" || *base == "" || *token == "" {
		flag.Usage()
		os.Exit(2)
	}

	cfg := wxmedia.Config{BaseURL: *base, AccessToken: *token, ChunkSize: *chunk, Parallelism: *par, CAFile: *caFile}
	if *mode == "upload" {
		cfg.Limits = map[string]int64{*typ: 1 << 40}
	}
	client, err := wxmedia.NewClient(cfg)
	if err != nil {
		fail(*mode, err)
	}
	defer client.Close()
	ctx := context.Background()

	var nbytes int64
	// COUNT transfers in one process (steady state; small downloads).
	n := max(*count, 1)
	extra := ""
	t0 := time.Now()
	switch *mode {
	case "path":
		for i := 0; i < n; i++ {
			info, err := client.DownloadFile(ctx, *media, *out)
			if err != nil {
				fail(*mode, err)
			}
			nbytes += info.Size
		}
	case "sink":
		c := &counter{}
		for i := 0; i < n; i++ {
			if _, err := client.Download(ctx, *media, c); err != nil {
				fail(*mode, err)
			}
		}
		nbytes = c.n
	case "small":
		var buf bytes.Buffer
		for i := 0; i < n; i++ {
			buf.Reset()
			if _, err := client.Download(ctx, *media, &buf); err != nil {
				fail(*mode, err)
			}
			nbytes += int64(buf.Len())
		}
	case "upload":
		n = 1
		res, err := client.UploadFile(ctx, *typ, *file)
		if err != nil {
			fail(*mode, err)
		}
		st, err := os.Stat(*file)
		if err != nil {
			fail(*mode, err)
		}
		nbytes = st.Size()
		extra = " media_id=" + res.MediaID
	default:
		flag.Usage()
		os.Exit(2)
	}
	secs := time.Since(t0).Seconds()
	fmt.Printf("BENCH ok=1 host=go mode=%s bytes=%d secs=%.6f n=%d%s\n", *mode, nbytes, secs, n, extra)
}

var _ io.Writer = (*counter)(nil)

func fail(mode string, err error) {
	code := 0
	var we *wxmedia.Error
	if errors.As(err, &we) {
		code = int(we.Code)
	}
	fmt.Printf("BENCH ok=0 host=go mode=%s rc=%d msg=%v\n", mode, code, err)
	os.Exit(1)
}
