package main

import (
	"testing"

	"github.com/wxmedia/wxmedia-go/wxmediatest"
)

// The user's own test, offline, on the emulator the module embeds.
func TestRoundTrip(t *testing.T) {
	srv := wxmediatest.NewServer(t)
	if err := run(srv.URL, srv.Token); err != nil {
		t.Fatal(err)
	}
}
