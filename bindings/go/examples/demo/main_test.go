package main

// The demo is tested as `make go-demo` runs it: the test binary re-executes
// itself as the demo (WXMEDIA_DEMO_AS_MAIN=1) against an emulator on loopback.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

const token = "DemoTestToken-31c9d0"

var emu *emutest.Emulator

func TestMain(m *testing.M) {
	if os.Getenv("WXMEDIA_DEMO_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	var err error
	if emu, err = emutest.Start("--access-token", token); err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
	code := m.Run()
	emu.Stop()
	os.Exit(code)
}

func TestDemo(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-size", "300001")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "WXMEDIA_DEMO_AS_MAIN=1",
		"WXMEDIA_BASE_URL="+emu.BaseURL, "WXMEDIA_ACCESS_TOKEN="+token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "matches: OK") {
		t.Fatalf("demo: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), token) {
		t.Errorf("the demo printed the access token")
	}
	// 300001 bytes in 64 KiB chunks: 5 Range requests, and the emulator saw them.
	if out := stdout.String(); !strings.Contains(out, "5 chunks of 64 KiB over 2 connections") || !strings.Contains(out, "saw 5 Range requests") {
		t.Errorf("demo summary:\n%s", out)
	}
}
