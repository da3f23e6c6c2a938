// A user's program against the released Go module (tests/dist/run.sh builds
// it outside the repository): upload a file, download it back in ranges.
//
//	consumer BASE_URL TOKEN
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/wxmedia/wxmedia-go/wxmedia"
)

func run(baseURL, token string) error {
	ctx := context.Background()
	client, err := wxmedia.NewClient(wxmedia.Config{BaseURL: baseURL, AccessToken: token, ChunkSize: 64 * 1024, Parallelism: 2})
	if err != nil {
		return err
	}
	defer client.Close()
	data := make([]byte, 1<<20+13)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	up, err := client.Upload(ctx, "file", bytes.NewReader(data), int64(len(data)), "payload.bin")
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	var got bytes.Buffer
	info, err := client.Download(ctx, up.MediaID, &got)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		return fmt.Errorf("downloaded %d bytes, not the %d uploaded", got.Len(), len(data))
	}
	fmt.Printf("uploaded and downloaded %d bytes (media %s, %s)\n", info.Size, up.MediaID, wxmedia.Version())
	return nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: consumer BASE_URL TOKEN")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}
