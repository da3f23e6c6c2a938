package main

// The command is tested as a user runs it: the test binary re-executes
// itself as wxmedia (WXMEDIA_CLI_AS_MAIN=1) against an emulator on loopback.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wxmedia/wxmedia/bindings/go/internal/emutest"
)

const token = "CliTestToken-31c9d0"

var emu *emutest.Emulator

func TestMain(m *testing.M) {
	if os.Getenv("WXMEDIA_CLI_AS_MAIN") == "1" {
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

type result struct {
	code           int
	stdout, stderr string
}

// run runs `wxmedia args...` in dir with the emulator's URL and token in the
// environment.
func run(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WXMEDIA_CLI_AS_MAIN=1",
		"WXMEDIA_BASE_URL="+emu.BaseURL, "WXMEDIA_ACCESS_TOKEN="+token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String()+stderr.String(), token) {
		t.Errorf("wxmedia %v printed the access token", args)
	}
	return result{code, stdout.String(), stderr.String()}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestUploadThenGet(t *testing.T) {
	dir := t.TempDir()
	data := append([]byte("\x89PNG\r\n\x1a\n"), emutest.GenBytes(1, 0, 100_000)...)
	if err := os.WriteFile(filepath.Join(dir, "照片.png"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, dir, "upload", "-type", "image", "照片.png")
	if r.code != 0 {
		t.Fatalf("upload: exit %d: %s", r.code, r.stderr)
	}
	var up struct {
		MediaID   string `json:"media_id"`
		Type      string `json:"type"`
		CreatedAt int64  `json:"created_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &up); err != nil || up.MediaID == "" || up.Type != "image" || up.CreatedAt == 0 {
		t.Fatalf("upload printed %q (%v)", r.stdout, err)
	}
	if got := emu.Media(t, up.MediaID); got.SHA256 != sha(data) || got.Filename != "照片.png" {
		t.Fatalf("the emulator stored %+v", got)
	}

	// -o PATH, in 64 KiB chunks over two connections.
	r = run(t, dir, "get", "-chunk-size", "65536", "-parallel", "2", "-o", "out.png", up.MediaID)
	if b, err := os.ReadFile(filepath.Join(dir, "out.png")); r.code != 0 || err != nil || sha(b) != sha(data) {
		t.Fatalf("get -o: exit %d, %v: %s", r.code, err, r.stderr)
	}
	if r = run(t, dir, "get", "-o", "out.png", up.MediaID); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("get -o over an existing file: exit %d: %s", r.code, r.stderr)
	}

	// -o - writes to stdout.
	r = run(t, dir, "get", "-o", "-", up.MediaID)
	if r.code != 0 || r.stdout != string(data) {
		t.Fatalf("get -o -: exit %d, %d bytes: %s", r.code, len(r.stdout), r.stderr)
	}

	// No -o: the server's filename, in the current directory.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	r = run(t, sub, "get", up.MediaID)
	if b, err := os.ReadFile(filepath.Join(sub, "照片.png")); r.code != 0 || err != nil || sha(b) != sha(data) {
		t.Fatalf("get: exit %d, %v: %s", r.code, err, r.stderr)
	}
	if entries, _ := os.ReadDir(sub); len(entries) != 1 {
		t.Errorf("get left %d entries in the directory, want 1", len(entries))
	}
}

func TestGetErrors(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, "get", "-o", "x.bin", "no-such-media")
	if r.code != 1 || !strings.Contains(r.stderr, "40007") {
		t.Errorf("unknown media: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.bin")); !os.IsNotExist(err) {
		t.Errorf("a failed get created the file (%v)", err)
	}
	if r = run(t, dir, "get", "-platform", "weibo", "m"); r.code != 1 || !strings.Contains(r.stderr, "unknown platform") {
		t.Errorf("bad platform: exit %d: %s", r.code, r.stderr)
	}
	if r = run(t, dir, "upload", "-type", "image", "missing.png"); r.code != 1 || !strings.Contains(r.stderr, "-1002") {
		t.Errorf("upload of a missing file: exit %d: %s", r.code, r.stderr)
	}
	if r = run(t, dir, "frobnicate"); r.code != 2 {
		t.Errorf("unknown command: exit %d", r.code)
	}
}

func TestDemo(t *testing.T) {
	r := run(t, t.TempDir(), "demo", "-size", "300001")
	if r.code != 0 || !strings.Contains(r.stdout, "matches: OK") {
		t.Fatalf("demo: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// 300001 bytes in 64 KiB chunks: 5 Range requests, and the emulator saw them.
	if !strings.Contains(r.stdout, "5 chunks of 64 KiB over 2 connections") || !strings.Contains(r.stdout, "saw 5 Range requests") {
		t.Errorf("demo summary:\n%s", r.stdout)
	}
}
