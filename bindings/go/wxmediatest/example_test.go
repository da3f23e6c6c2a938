package wxmediatest_test

import (
	"bytes"
	"context"
	"testing"

	wxmedia "github.com/wxmedia/wxmedia/bindings/go"
	"github.com/wxmedia/wxmedia/bindings/go/wxmediatest"
)

// A test of your own code against the emulator: no network, no WeChat account.
func TestExampleDownload(t *testing.T) {
	srv := wxmediatest.NewServer(t)
	payload := bytes.Repeat([]byte("wxmedia"), 50000)
	mediaID, err := srv.AddMedia(payload, "report.bin")
	if err != nil {
		t.Fatal(err)
	}
	client, err := wxmedia.NewClient(wxmedia.Config{BaseURL: srv.URL, AccessToken: srv.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var got bytes.Buffer
	if _, err := client.Download(context.Background(), mediaID, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), payload) {
		t.Fatalf("got %d bytes, want %d", got.Len(), len(payload))
	}
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 4096)...)
	up, err := client.Upload(context.Background(), "image", bytes.NewReader(png), int64(len(png)), "a.png")
	if err != nil {
		t.Fatal(err)
	}
	if up.MediaID == "" {
		t.Fatal("no media_id")
	}
}
