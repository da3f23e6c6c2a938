package main

// The command is tested as a user runs it: the test binary re-executes
// itself as wxmedia (WXMEDIA_CLI_AS_MAIN=1) against an emulator on loopback.

import (
	"bytes"
	"crypto/md5"
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
	// -h shows the flags, but not the token from the environment (run checks).
	if r = run(t, dir, "upload-by-url", "-h"); r.code != 0 || !strings.Contains(r.stderr, "-token") || !strings.Contains(r.stderr, "-jobid") {
		t.Errorf("upload-by-url -h: exit %d: %s", r.code, r.stderr)
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

func TestUploadByURL(t *testing.T) {
	dir := t.TempDir()
	meta := emu.AddMedia(t, emutest.MediaSpec{Size: 300_001, Seed: 7})
	data := emutest.GenBytes(7, 0, 300_001)
	if err := os.WriteFile(filepath.Join(dir, "片.mp4"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	url := emu.BaseURL + "/__video/" + meta.MediaID
	type answer struct {
		JobID     string `json:"jobid"`
		MediaID   string `json:"media_id"`
		CreatedAt int64  `json:"created_at"`
		Status    string `json:"status"`
	}
	parse := func(t *testing.T, r result) answer {
		t.Helper()
		var a answer
		if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || a.JobID == "" {
			t.Fatalf("printed %q (%v); stderr %s", r.stdout, err, r.stderr)
		}
		return a
	}
	stored := func(t *testing.T, a answer, name string) {
		t.Helper()
		if got := emu.Media(t, a.MediaID); a.MediaID == "" || a.CreatedAt == 0 || got.SHA256 != sha(data) || got.Filename != name {
			t.Fatalf("answered %+v; the emulator stored %+v", a, got)
		}
	}

	// -local: the MD5 from the local copy, whose name is the default filename.
	r := run(t, dir, "upload-by-url", "-type", "video", "-local", "片.mp4", url)
	if r.code != 0 {
		t.Fatalf("upload-by-url -local: exit %d: %s", r.code, r.stderr)
	}
	stored(t, parse(t, r), "片.mp4")

	// --md5 and --filename (GNU-style double dashes work as well).
	r = run(t, dir, "upload-by-url", "--type", "file", "--md5", md5Hex(data), "--filename", "报告.bin", url)
	if r.code != 0 {
		t.Fatalf("upload-by-url -md5: exit %d: %s", r.code, r.stderr)
	}
	stored(t, parse(t, r), "报告.bin")

	// A wrong MD5: the job's errcode.
	wrong := "0" + md5Hex(data)[1:]
	if wrong == md5Hex(data) {
		wrong = "1" + wrong[1:]
	}
	r = run(t, dir, "upload-by-url", "-type", "file", "-md5", wrong, url)
	if r.code != 1 || !strings.Contains(r.stderr, "301019") || r.stdout != "" {
		t.Errorf("wrong md5: exit %d, stdout %q: %s", r.code, r.stdout, r.stderr)
	}

	// A -timeout shorter than the job (the emulator takes 300 ms): the job id
	// is printed, and -jobid waits for it.
	r = run(t, dir, "upload-by-url", "-type", "video", "-local", "片.mp4", "-filename", "later.mp4", "-timeout", "100ms", url)
	if r.code != 1 || !strings.Contains(r.stderr, "-jobid") {
		t.Fatalf("-timeout 100ms: exit %d: %s", r.code, r.stderr)
	}
	pending := parse(t, r)
	if pending.Status != "processing" || pending.MediaID != "" {
		t.Fatalf("-timeout 100ms printed %+v", pending)
	}
	r = run(t, dir, "upload-by-url", "-jobid", pending.JobID, "-timeout", "30s")
	if r.code != 0 {
		t.Fatalf("upload-by-url -jobid: exit %d: %s", r.code, r.stderr)
	}
	done := parse(t, r)
	if done.JobID != pending.JobID {
		t.Errorf("-jobid answered job %q, want %q", done.JobID, pending.JobID)
	}
	stored(t, done, "later.mp4")

	// Usage errors exit 2; local rejections 1, with nothing sent.
	for _, args := range [][]string{
		{"upload-by-url", "-type", "file", url},                               // no MD5
		{"upload-by-url", "-type", "file", "-md5", wrong, "-local", "x", url}, // both
		{"upload-by-url", "-md5", wrong, url},                                 // no type
		{"upload-by-url", "-jobid", "j", url},                                 // jobid and URL
	} {
		if r = run(t, dir, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
	before := emu.Stats(t).Requests["media/upload_by_url"]
	if r = run(t, dir, "upload-by-url", "-type", "image", "-md5", wrong, url); r.code != 1 || !strings.Contains(r.stderr, "40004") {
		t.Errorf("type image: exit %d: %s", r.code, r.stderr)
	}
	if r = run(t, dir, "upload-by-url", "-type", "file", "-md5", wrong, "ftp://example.com/a.bin"); r.code != 1 || !strings.Contains(r.stderr, "40058") {
		t.Errorf("ftp URL: exit %d: %s", r.code, r.stderr)
	}
	if after := emu.Stats(t).Requests["media/upload_by_url"]; after != before {
		t.Errorf("local rejections sent %d requests", after-before)
	}
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}
